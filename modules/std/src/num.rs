//! Varnish's number parsers (`vnum.c`, `vtim.c`), as vmod_std uses them.
//! The expected values in the tests were read off varnishd 7.1.

/// Skips blanks as `vct_issp` does.
fn skip_sp(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')).count();
    &s[n..]
}

/// A decimal number prefix (`VNUMpfx`): blanks, an optional `-`, at most
/// 12 integer digits, an optional `.` and fraction (three digits count,
/// more are skipped), blanks. Returns the value and the rest, `None` when
/// there is no number.
pub fn pfx(s: &[u8]) -> Option<(f64, &[u8])> {
    let mut s = skip_sp(s);
    let neg = s.first() == Some(&b'-');
    if neg {
        s = &s[1..];
    }
    let mut v = 0.0f64;
    let mut nd = 0;
    while let Some(d) = s.first().filter(|c| c.is_ascii_digit()) {
        nd += 1;
        if nd > 12 {
            return None;
        }
        v = v * 10.0 + f64::from(d - b'0');
        s = &s[1..];
    }
    let mut nf = 0;
    if s.first() == Some(&b'.') {
        s = &s[1..];
        let mut scale = 1.0;
        while let Some(d) = s.first().filter(|c| c.is_ascii_digit()) {
            if nf < 3 {
                scale *= 0.1;
                v += scale * f64::from(d - b'0');
            }
            nf += 1;
            s = &s[1..];
        }
    }
    if nd == 0 && nf == 0 {
        return None;
    }
    Some((if neg { -v } else { v }, skip_sp(s)))
}

/// A number prefix as `SF_Parse_Number` reads one: up to 15 integer
/// digits, or a decimal as [`pfx`] reads it.
fn sf_pfx(s: &[u8]) -> Option<(f64, &[u8])> {
    let t = skip_sp(s);
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let nd = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits.get(nd) == Some(&b'.') {
        return pfx(s);
    }
    if nd == 0 || nd > 15 {
        return None;
    }
    let v: f64 = std::str::from_utf8(&digits[..nd]).ok()?.parse().ok()?;
    Some((if neg { -v } else { v }, skip_sp(&digits[nd..])))
}

/// A whole string as a decimal number (`VNUM`).
pub fn vnum(s: &[u8]) -> Option<f64> {
    match pfx(s)? {
        (v, []) => Some(v),
        _ => None,
    }
}

/// An integer the way `std.integer` reads one (`SF_Parse_Number`, not
/// strict): up to 15 digits, or a decimal whose value is whole.
pub fn integer(s: &[u8]) -> Option<i64> {
    let t = skip_sp(s);
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let nd = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    if nd == 0 || nd > 15 {
        return None;
    }
    let rest = skip_sp(&digits[nd..]);
    if rest.is_empty() {
        let v: i64 = std::str::from_utf8(&digits[..nd]).ok()?.parse().ok()?;
        return Some(if neg { -v } else { v });
    }
    if digits[nd] != b'.' {
        return None;
    }
    let v = vnum(s)?;
    (v.fract() == 0.0).then_some(v as i64)
}

/// A duration with its unit (`VNUM_duration`): `1.5s`, `10 m`, `1ms`.
pub fn duration(s: &[u8]) -> Option<f64> {
    let (v, rest) = pfx(s)?;
    let (scale, rest) = match rest {
        [b'm', b's', r @ ..] => (1e-3, r),
        [b's', r @ ..] => (1.0, r),
        [b'm', r @ ..] => (60.0, r),
        [b'h', r @ ..] => (3600.0, r),
        [b'd', r @ ..] => (86400.0, r),
        [b'w', r @ ..] => (604800.0, r),
        [b'y', r @ ..] => (31536000.0, r),
        _ => return None,
    };
    skip_sp(rest).is_empty().then_some(v * scale)
}

/// A byte count (`VNUM_2bytes`): a whole number, or a number with a
/// `k`/`m`/`g`/`t`/`p` multiplier (powers of 1024) and an optional `b`.
pub fn bytes(s: &[u8]) -> Option<f64> {
    let (v, rest) = sf_pfx(s)?;
    if v < 0.0 {
        return None;
    }
    if rest.is_empty() {
        let t = skip_sp(s);
        let t = t.strip_suffix(b" ").unwrap_or(t);
        return (v.fract() == 0.0 && !t.ends_with(b".")).then_some(v);
    }
    let (mul, rest) = match rest.first().map(u8::to_ascii_lowercase) {
        Some(b'k') => (1u64 << 10, &rest[1..]),
        Some(b'm') => (1 << 20, &rest[1..]),
        Some(b'g') => (1 << 30, &rest[1..]),
        Some(b't') => (1 << 40, &rest[1..]),
        Some(b'p') => (1 << 50, &rest[1..]),
        _ => (1, rest),
    };
    let rest = match rest {
        [b'b' | b'B', r @ ..] => r,
        r => r,
    };
    rest.is_empty().then(|| (v * mul as f64).round())
}

const WDAY: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WEEKDAY: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTH: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 of a civil date.
pub fn days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day number: (year, month, day).
pub fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
}

fn hms(s: &str) -> Option<i64> {
    let mut it = s.split(':');
    let (h, m, sec) = (num(it.next()?, 2)?, num(it.next()?, 2)?, num(it.next()?, 2)?);
    // A leap second (`:60`) counts as the last second of its minute.
    (it.next().is_none() && h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec.min(59))
}

/// An ISO 8601 date and time in UTC, `YYYY-MM-DDTHH:MM:SS`, which
/// `std.time` accepts besides the HTTP formats. `None` when malformed or
/// when the day does not exist.
pub fn iso8601(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?.trim_matches(' ');
    let (date, time) = s.split_once('T')?;
    let mut p = date.split('-');
    let (y, m, d) = (num(p.next()?, 4)?, num(p.next()?, 2)?, num(p.next()?, 2)?);
    if p.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > month_days(y, m) {
        return None;
    }
    Some((days(y, m, d) * 86400 + hms(time)?) as f64)
}

fn month(s: &str) -> Option<i64> {
    MONTH.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

/// How many days month *m* (1-12) of year *y* has: an HTTP date naming a
/// day past the end of its month is refused, not carried into the next.
fn month_days(y: i64, m: i64) -> i64 {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An HTTP date (`VTIM_parse`): RFC 1123, RFC 850 or asctime, with the
/// weekday checked. `None` when it is none of them. With `postel`
/// (`feature=+http_date_postel`) RFC 1123's day of the month may be one
/// digit.
pub fn http_date(s: &[u8], postel: bool) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?.trim_matches(' ');
    let f: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    let (wd, y, m, d, t) = if let [wd, d, mo, y, t, "GMT"] = f[..] {
        let d = if postel && d.len() == 1 { num(d, 1)? } else { num(d, 2)? };
        (wd.strip_suffix(',')?, num(y, 4)?, month(mo)?, d, hms(t)?)
    } else if let [wd, dmy, t, "GMT"] = f[..] {
        let mut p = dmy.split('-');
        let (d, mo, y) = (num(p.next()?, 2)?, month(p.next()?)?, num(p.next()?, 2)?);
        let y = if y < 70 { 2000 + y } else { 1900 + y };
        let wd = wd.strip_suffix(',')?;
        let wd = WEEKDAY.iter().position(|w| *w == wd)?;
        (WDAY[wd], y, mo, d, hms(t)?)
    } else if let [wd, mo, d, t, y] = f[..] {
        let d = if d.len() == 1 { num(d, 1)? } else { num(d, 2)? };
        (wd, num(y, 4)?, month(mo)?, d, hms(t)?)
    } else {
        return None;
    };
    if d < 1 || d > month_days(y, m) {
        return None;
    }
    let n = days(y, m, d);
    if WDAY[(n + 4).rem_euclid(7) as usize] != wd {
        return None;
    }
    Some((n * 86400 + t) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(b"Sun, 06 Nov 1994 08:49:37 GMT", false), Some(784111777.0));
        assert_eq!(http_date(b"Sun, 6 Nov 1994 08:49:37 GMT", false), None);
        assert_eq!(http_date(b"Sun, 6 Nov 1994 08:49:37 GMT", true), Some(784111777.0));
        assert_eq!(http_date(b"Sunday, 06-Nov-94 08:49:37 GMT", false), Some(784111777.0));
        assert_eq!(http_date(b"Sun Nov  6 08:49:37 1994", false), Some(784111777.0));
        assert_eq!(http_date(b"Mon, 06 Nov 1994 08:49:37 GMT", false), None);
        assert_eq!(http_date(b"Monday, 30-Feb-15 00:00:00 GMT", false), None);
        assert_eq!(http_date(b"Thu, 29 Feb 2024 00:00:00 GMT", false), Some(1709164800.0));
        assert_eq!(iso8601(b"2030-12-20T00:00:00"), Some(1923955200.0));
        assert_eq!(iso8601(b"2010-13-20T00:00:00"), None);
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(days(2024, 2, 29)), (2024, 2, 29));
    }
}
