//! HTTP dates (RFC 1123), as varnishd's `VTIM_format` writes them: what
//! modules put in `Last-Modified`, `Expires` or a cookie's `expires`.

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `t` (seconds since the epoch, the fraction dropped as C's cast drops
/// it) as `Thu, 01 Jan 1970 00:00:00 GMT`; `None` for a time no calendar
/// year of four digits holds.
pub fn http_date(t: f64) -> Option<String> {
    if !t.is_finite() {
        return None;
    }
    let secs = t.trunc();
    // Years 0 to 9999: what `%Y` writes in four digits.
    if !(-62_167_219_200.0..253_402_300_800.0).contains(&secs) {
        return None;
    }
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn formats_as_varnishd() {
        assert_eq!(http_date(0.0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_000_000_000.9).unwrap(), "Sun, 09 Sep 2001 01:46:40 GMT");
        assert_eq!(http_date(951_782_400.0).unwrap(), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(-86_400.0).unwrap(), "Wed, 31 Dec 1969 00:00:00 GMT");
        assert_eq!(http_date(f64::NAN), None);
        assert_eq!(http_date(1e300), None);
    }
}
