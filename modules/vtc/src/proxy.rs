//! PROXY protocol headers (haproxy's proxy-protocol.txt), as Varnish's
//! `VRT_Format_Proxy` writes them for `vtc.proxy_header` and for backends
//! with `.proxy_header`.

use std::net::{IpAddr, SocketAddr};

/// The twelve bytes every version 2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// PP2_TYPE_AUTHORITY: the host name the client asked for.
const PP2_TYPE_AUTHORITY: u8 = 0x02;

/// The header a client connected from `client` to `server` sends, in
/// `version` 1 or 2. Version 1 has no room for `authority`; version 2
/// carries it as a TLV. Both addresses must be of one family.
pub fn format(
    version: u8,
    client: SocketAddr,
    server: SocketAddr,
    authority: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match (version, client.ip(), server.ip()) {
        (1, IpAddr::V4(c), IpAddr::V4(s)) => {
            out.extend_from_slice(format!("PROXY TCP4 {c} {s} {} {}\r\n", client.port(), server.port()).as_bytes())
        }
        (1, IpAddr::V6(c), IpAddr::V6(s)) => {
            out.extend_from_slice(format!("PROXY TCP6 {c} {s} {} {}\r\n", client.port(), server.port()).as_bytes())
        }
        (2, c, s) => {
            let (fam, mut addrs) = match (c, s) {
                (IpAddr::V4(c), IpAddr::V4(s)) => (0x11, [c.octets(), s.octets()].concat()),
                (IpAddr::V6(c), IpAddr::V6(s)) => (0x21, [c.octets(), s.octets()].concat()),
                _ => return Err("proxy_header: the addresses are of different families".into()),
            };
            addrs.extend_from_slice(&client.port().to_be_bytes());
            addrs.extend_from_slice(&server.port().to_be_bytes());
            if let Some(a) = authority.filter(|a| !a.is_empty()) {
                let len = u16::try_from(a.len()).map_err(|_| "proxy_header: authority too long".to_string())?;
                addrs.push(PP2_TYPE_AUTHORITY);
                addrs.extend_from_slice(&len.to_be_bytes());
                addrs.extend_from_slice(a);
            }
            let len = u16::try_from(addrs.len()).map_err(|_| "proxy_header: header too long".to_string())?;
            out.extend_from_slice(V2_SIGNATURE);
            out.push(0x21); // version 2, PROXY command
            out.push(fam);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&addrs);
        }
        (1, _, _) => return Err("proxy_header: the addresses are of different families".into()),
        (v, _, _) => return Err(format!("proxy_header: no PROXY protocol version {v}")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The expectations of Varnish's o00003.vtc, which varnishd meets.
    #[test]
    fn as_varnish_writes_them() {
        let c: SocketAddr = "1.2.3.4:1111".parse().unwrap();
        let s: SocketAddr = "5.6.7.8:5678".parse().unwrap();
        assert_eq!(format(1, c, s, None).unwrap(), b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 5678\r\n");
        assert_eq!(
            hex(&format(2, c, s, Some(b"vtc.varnish-cache.org")).unwrap()),
            "0d0a0d0a000d0a515549540a2111002401020304050607080457162e0200157674632e7661726e6973682d63616368652e6f7267"
        );
    }

    #[test]
    fn ipv6_and_mixed_families() {
        let c: SocketAddr = "[::1]:1".parse().unwrap();
        let s: SocketAddr = "[2001:db8::2]:2".parse().unwrap();
        assert_eq!(format(1, c, s, None).unwrap(), b"PROXY TCP6 ::1 2001:db8::2 1 2\r\n");
        let v2 = format(2, c, s, None).unwrap();
        assert_eq!(&v2[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(v2.len(), 16 + 36);
        let v4: SocketAddr = "1.2.3.4:1".parse().unwrap();
        assert!(format(1, c, v4, None).is_err());
        assert!(format(2, c, v4, None).is_err());
    }
}
