//! strftime(3) in the C locale over a UTC time, for `std.strftime`.

use crate::num::{civil, days};

const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats `t` (seconds since the epoch, truncated) with `fmt`; an
/// unknown conversion is copied as written, as glibc does. `None` when
/// the time is out of range.
pub fn strftime(t: f64, fmt: &[u8]) -> Option<Vec<u8>> {
    if !t.is_finite() || t.abs() > 1e15 {
        return None;
    }
    let secs = t.trunc() as i64;
    let day = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, mo, d) = civil(day);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let wday = (day + 4).rem_euclid(7);
    let yday = day - days(y, 1, 1);
    let mut out = Vec::new();
    let mut it = fmt.iter().copied();
    while let Some(c) = it.next() {
        if c != b'%' {
            out.push(c);
            continue;
        }
        let Some(k) = it.next() else {
            out.push(b'%');
            break;
        };
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        let piece = match k {
            b'a' => DAYS[wday as usize][..3].to_string(),
            b'A' => DAYS[wday as usize].to_string(),
            b'b' | b'h' => MONTHS[mo as usize - 1][..3].to_string(),
            b'B' => MONTHS[mo as usize - 1].to_string(),
            b'c' => format!(
                "{} {} {:2} {h:02}:{mi:02}:{s:02} {y}",
                &DAYS[wday as usize][..3],
                &MONTHS[mo as usize - 1][..3],
                d
            ),
            b'C' => format!("{:02}", y.div_euclid(100)),
            b'd' => format!("{d:02}"),
            b'D' | b'x' => format!("{mo:02}/{d:02}/{:02}", y.rem_euclid(100)),
            b'e' => format!("{d:2}"),
            b'F' => format!("{y}-{mo:02}-{d:02}"),
            b'H' => format!("{h:02}"),
            b'I' => format!("{h12:02}"),
            b'j' => format!("{:03}", yday + 1),
            b'k' => format!("{h:2}"),
            b'l' => format!("{h12:2}"),
            b'm' => format!("{mo:02}"),
            b'M' => format!("{mi:02}"),
            b'n' => "\n".into(),
            b'p' => (if h < 12 { "AM" } else { "PM" }).into(),
            b'P' => (if h < 12 { "am" } else { "pm" }).into(),
            b'r' => format!("{h12:02}:{mi:02}:{s:02} {}", if h < 12 { "AM" } else { "PM" }),
            b'R' => format!("{h:02}:{mi:02}"),
            b's' => secs.to_string(),
            b'S' => format!("{s:02}"),
            b't' => "\t".into(),
            b'T' | b'X' => format!("{h:02}:{mi:02}:{s:02}"),
            b'u' => (if wday == 0 { 7 } else { wday }).to_string(),
            b'U' => format!("{:02}", (yday + 7 - wday) / 7),
            b'w' => wday.to_string(),
            b'W' => format!("{:02}", (yday + 7 - (wday + 6) % 7) / 7),
            b'y' => format!("{:02}", y.rem_euclid(100)),
            b'Y' => y.to_string(),
            b'z' => "+0000".into(),
            b'Z' => "GMT".into(),
            b'%' => "%".into(),
            other => {
                out.push(b'%');
                out.push(other);
                continue;
            }
        };
        out.extend_from_slice(piece.as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::strftime;

    #[test]
    fn formats() {
        let f = |t: f64, s: &str| String::from_utf8(strftime(t, s.as_bytes()).unwrap()).unwrap();
        assert_eq!(f(784111777.0, "%a, %d %b %Y %H:%M:%S GMT"), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(f(784111777.0, "%F %T %j %s %%"), "1994-11-06 08:49:37 310 784111777 %");
        assert_eq!(f(0.0, "%c|%e|%I%p|%u|%w"), "Thu Jan  1 00:00:00 1970| 1|12AM|4|4");
        assert_eq!(f(1704067200.0, "%j %U %W"), "001 00 01");
    }
}
