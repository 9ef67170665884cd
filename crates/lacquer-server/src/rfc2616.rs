//! How long a backend response may be cached (Varnish's
//! `cache_rfc2616.c`), and what its `Vary` asks of later requests.
//!
//! Varnish's policy, followed to the letter so that VCL written for it sees
//! the same `beresp.ttl`: the response's age (the `Age` header) moves its
//! origin back in time; then for the statuses a cache may keep by default
//! (200, 203, 204, 300, 301, 304, 404, 410, 414, and 302/307 only with
//! explicit freshness) the TTL is `s-maxage`, else `max-age`, else what
//! `Expires` says — relative to `Date` when the two clocks disagree by
//! more than `clock_skew`, to our clock otherwise — else `default_ttl`.
//! Any other status gets −1 (not cacheable). `stale-while-revalidate`
//! sets the grace.

use lacquer_cache::{Lifetime, VarySpec};
use lacquer_vcl::conv::parse_http_date_postel;

use crate::msg::Msg;
use crate::Params;

/// Reads a number of seconds as Varnish's `rfc2616_time`: a negative value
/// is 0, digits may be followed by blanks and then only the end, a comma
/// or a dot; anything else is 0. Saturates at `u32::MAX`.
fn seconds(v: &[u8]) -> u32 {
    if v.first() == Some(&b'-') {
        return 0;
    }
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = v[..digits].iter().fold(0u64, |n, d| (n * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX) + 1));
    let rest = v[digits..].trim_ascii_start();
    if rest.is_empty() || rest[0] == b',' || rest[0] == b'.' {
        n.min(u64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// The value of field `name` in the comma-separated `Cache-Control`
/// header (Varnish's `http_GetHdrField`): `Some(value)` when the field is
/// there with `=value`, `Some(b"")` without, `None` when absent.
fn cache_control<'a>(resp: &'a Msg, name: &[u8]) -> Option<&'a [u8]> {
    resp.head.header_all(&resp.buf, b"cache-control").flat_map(|v| v.split(|&b| b == b',')).find_map(|field| {
        let field = field.trim_ascii();
        let (k, v) = match field.iter().position(|&b| b == b'=') {
            Some(i) => (field[..i].trim_ascii(), field[i + 1..].trim_ascii()),
            None => (field, &b""[..]),
        };
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The lifetimes of a response received at `now`, before VCL changes them.
pub(crate) fn lifetime(resp: &Msg, now: f64, p: &Params) -> Lifetime {
    let mut life = Lifetime { t_origin: now, ttl: p.default_ttl, grace: p.default_grace, keep: p.default_keep };
    if let Some(age) = resp.header(b"age") {
        life.t_origin -= f64::from(seconds(age));
    }
    let postel = p.feature("http_date_postel");
    let date = |name: &[u8]| resp.header(name).and_then(|v| parse_http_date_postel(v, postel)).unwrap_or(0.0);
    let (expires, date) = (date(b"expires"), date(b"date"));
    let status = resp.head.status();
    match status {
        200 | 203 | 204 | 300 | 301 | 302 | 304 | 307 | 404 | 410 | 414 => {
            if status == 302 || status == 307 {
                life.ttl = -1.0;
            }
            let max_age = cache_control(resp, b"s-maxage")
                .filter(|v| !v.is_empty())
                .or_else(|| cache_control(resp, b"max-age").filter(|v| !v.is_empty()));
            if let Some(v) = max_age {
                life.ttl = f64::from(seconds(v));
            } else if expires != 0.0 {
                life.ttl = if expires < date {
                    0.0
                } else if date == 0.0 || (date - now).abs() < p.clock_skew {
                    (expires - now).max(0.0)
                } else {
                    (expires - date).trunc()
                };
            }
        }
        _ => life.ttl = -1.0,
    }
    if life.ttl >= 0.0 {
        if let Some(v) = cache_control(resp, b"stale-while-revalidate").filter(|v| !v.is_empty()) {
            life.grace = f64::from(seconds(v));
        }
    }
    life
}

/// What the response's `Vary` header asks of later requests, read off the
/// backend request that fetched it (Varnish's `VRY_Create`): each named
/// header's value then, or that it was absent. `Vary: *` matches nothing.
pub(crate) fn vary(resp: &Msg, bereq: &Msg) -> VarySpec {
    let mut spec = Vec::new();
    for name in resp.head.header_all(&resp.buf, b"vary").flat_map(|v| v.split(|&b| b == b',')) {
        let name = name.trim_ascii();
        if name == b"*" {
            return None;
        }
        if name.is_empty() {
            continue;
        }
        let name = name.to_ascii_lowercase();
        if spec.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = bereq.header(&name).map(|v| v.trim_ascii().to_vec());
        spec.push((name, value));
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> Msg {
        let mut m = Msg::response(status, b"x");
        for (n, v) in headers {
            m.append(n.as_bytes(), v.as_bytes());
        }
        m
    }

    fn ttl(status: u16, headers: &[(&str, &str)]) -> (f64, f64, f64) {
        let l = lifetime(&resp(status, headers), 1000.0, &Params::default());
        (l.ttl, l.grace, 1000.0 - l.t_origin)
    }

    #[test]
    fn ttls_as_varnish_computes_them() {
        assert_eq!(ttl(200, &[]), (120.0, 10.0, 0.0));
        assert_eq!(ttl(200, &[("Cache-Control", "max-age=60")]), (60.0, 10.0, 0.0));
        assert_eq!(ttl(200, &[("Cache-Control", "max-age=60, s-maxage=30")]), (30.0, 10.0, 0.0));
        assert_eq!(ttl(200, &[("Cache-Control", "public, max-age=10, stale-while-revalidate=20")]), (10.0, 20.0, 0.0));
        assert_eq!(ttl(200, &[("Cache-Control", "max-age=-5")]), (0.0, 10.0, 0.0));
        assert_eq!(ttl(200, &[("Cache-Control", "max-age=5x")]), (0.0, 10.0, 0.0));
        assert_eq!(ttl(200, &[("Age", "12"), ("Cache-Control", "max-age=60")]), (60.0, 10.0, 12.0));
        assert_eq!(ttl(302, &[]).0, -1.0);
        assert_eq!(ttl(307, &[("Cache-Control", "max-age=5")]).0, 5.0);
        assert_eq!(ttl(500, &[("Cache-Control", "max-age=5")]).0, -1.0);
        assert_eq!(ttl(206, &[]).0, -1.0);
        assert_eq!(ttl(404, &[]).0, 120.0);
    }

    #[test]
    fn expires_is_read_against_date_when_the_clocks_disagree() {
        let d = lacquer_vcl::conv::time_to_string;
        // No Date: relative to our clock.
        assert_eq!(ttl(200, &[("Expires", &d(1030.0))]).0, 30.0);
        // Date close to our clock: still ours.
        assert_eq!(ttl(200, &[("Date", &d(1005.0)), ("Expires", &d(1030.0))]).0, 30.0);
        // Date far off: Expires − Date.
        assert_eq!(ttl(200, &[("Date", &d(500.0)), ("Expires", &d(540.0))]).0, 40.0);
        // Already expired by its own clock.
        assert_eq!(ttl(200, &[("Date", &d(1000.0)), ("Expires", &d(900.0))]).0, 0.0);
    }

    #[test]
    fn vary_records_the_request_s_values() {
        let mut bereq = Msg::request(b"GET", b"/", b"HTTP/1.1");
        bereq.append(b"Accept-Encoding", b" gzip ");
        let r = resp(200, &[("Vary", "Accept-Encoding, X-Absent, accept-encoding")]);
        assert_eq!(
            vary(&r, &bereq),
            Some(vec![(b"accept-encoding".to_vec(), Some(b"gzip".to_vec())), (b"x-absent".to_vec(), None)])
        );
        assert_eq!(vary(&resp(200, &[("Vary", "*")]), &bereq), None);
        assert_eq!(vary(&resp(200, &[]), &bereq), Some(Vec::new()));
    }
}
