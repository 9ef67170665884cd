//! `std.ip`'s address parsing (Varnish's `vss.c`): `host`, `host port`,
//! `host:port`, `[v6]`, `[v6]:port`, `[v6] port`, a bare IPv6 address.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Splits an address into host and port (`vss_parse`).
fn split(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        if after.is_empty() {
            return Some((host, None));
        }
        let port = after.strip_prefix([' ', ':'])?;
        return Some((host, Some(port)));
    }
    let Some(i) = s.find(' ').or_else(|| s.find(':')) else { return Some((s, None)) };
    if s.as_bytes()[i] == b':' && s[i + 1..].contains(':') {
        return Some((s, None));
    }
    Some((&s[..i], Some(&s[i + 1..])))
}

/// The first address `s` names, with `default_port` when it has none;
/// without `resolve`, only numeric hosts and ports.
pub fn resolve_first(s: &str, default_port: &str, resolve: bool) -> Option<SocketAddr> {
    let (host, port) = split(s)?;
    let port = port.unwrap_or(default_port);
    let port: u16 = port.parse().ok()?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    if !resolve || host.is_empty() {
        return None;
    }
    (host, port).to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let r = |s: &str, p: &str| resolve_first(s, p, false).map(|a| a.to_string());
        assert_eq!(r("1.2.3.4", "80").as_deref(), Some("1.2.3.4:80"));
        assert_eq!(r("1.2.3.4 8080", "80").as_deref(), Some("1.2.3.4:8080"));
        assert_eq!(r("1.2.3.4:443", "80").as_deref(), Some("1.2.3.4:443"));
        assert_eq!(r("1.2.3.4 80", "443").as_deref(), Some("1.2.3.4:80"));
        assert_eq!(r("2001:db8::", "80").as_deref(), Some("[2001:db8::]:80"));
        assert_eq!(r("[::1]:8", "80").as_deref(), Some("[::1]:8"));
        assert_eq!(r("2001::db8::", "80"), None);
        assert_eq!(r("localhost", "80"), None);
        assert_eq!(r("1.2.3.*", "80"), None);
        assert!(resolve_first("localhost", "80", true).is_some_and(|a| a.ip().is_loopback()));
    }
}
