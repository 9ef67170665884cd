//! The PROXY protocol on listening sockets (varnishd's
//! `proxy/cache_proxy_proto.c`): a listener given as `-a …,PROXY` expects
//! every connection to open with a PROXY header, version 1 (a text line)
//! or version 2 (binary), as HAProxy's `proxy-protocol.txt` defines them,
//! and only then HTTP/1.
//!
//! What a header says becomes `client.ip` and `server.ip` (and what
//! `X-Forwarded-For`, `ReqStart` and `client.identity` are made of), while
//! `remote.ip` and `local.ip` stay the socket's two ends. This module
//! follows varnishd 7.1 as it behaves, quirks included:
//!
//! - **Receiving** ([`complete`], [`receive`]): at most 1024 bytes are read
//!   for a header; the first bytes decide the version and anything else is
//!   junk. A version 1 line whose `\n` comes after byte 107, a version 2
//!   header announcing more than 1024 bytes, or 1024 bytes without a
//!   whole header overflow. Closing before a whole header is a remote
//!   close; `timeout_idle` from the session's start is a timeout.
//! - **Version 1** ([`parse`]): the line ends at the first `\r`, which must
//!   be followed by `\n`; it splits on single spaces into exactly six
//!   fields; the protocol must be `TCP4` or `TCP6` (no `UNKNOWN`); the
//!   addresses and ports are read as glibc's `getaddrinfo` reads them with
//!   `AI_NUMERICHOST | AI_NUMERICSERV` (so `1.2.3` and `0x7f.1` are IPv4
//!   addresses, and port `70000` is 4464). The client address and port
//!   are kept as text as the header wrote them (a port `01234` is logged
//!   and forwarded as `01234`).
//! - **Version 2**: version 2 only; `LOCAL` keeps the socket's addresses;
//!   an unspecified, unknown or short address block is logged and
//!   ignored; TCP over IPv4 or IPv6 gives the addresses; then the TLVs
//!   must tile the rest exactly, and a `CRC32C` TLV must match the header.
//!
//! A header that fails closes the session with `RX_JUNK`, after a
//! `ProxyGarbage` record saying why (for the failures varnishd explains);
//! a good one is logged as a `Proxy` record, `1 1.2.3.4 1234 5.6.7.8 80`
//! or `2 local local local local`, and the bytes after it are the first
//! of the HTTP/1 session.
//!
//! Not followed: varnishd 7.1 keeps a version 2 header's TLVs for
//! `vmod_proxy`, which Lacquer does not have; TLVs are checked as above
//! and then dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use lacquer_shm::Tag;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::acceptor::ClientStream;

/// The most bytes read for a header (varnishd's `HTC_RxStuff` limit).
const MAX: usize = 1024;
/// A version 1 header's `\n` may be no further in than this.
const V1_MAX: usize = 107;
const V1_SIG: &[u8; 5] = b"PROXY";
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The version 2 TLV holding a CRC32C of the header.
const PP2_TYPE_CRC32C: u8 = 0x03;
/// The version 2 TLV describing a TLS connection, with TLVs inside.
const PP2_TYPE_SSL: u8 = 0x20;

/// How far the bytes read so far make a header (varnishd's `vpx_complete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    More,
    Complete,
    Junk,
    Overflow,
}

/// Whether `buf` starts with a whole header.
pub(crate) fn complete(buf: &[u8]) -> Status {
    let mut j = 3u8;
    for z in 0..buf.len() {
        if z < V1_SIG.len() && buf[z] != V1_SIG[z] {
            j &= !1;
        }
        if z < V2_SIG.len() && buf[z] != V2_SIG[z] {
            j &= !2;
        }
        if j == 0 {
            return Status::Junk;
        }
        if j == 1 && z == V1_SIG.len() {
            return match memchr::memchr(b'\n', &buf[z..]) {
                None => Status::More,
                Some(q) if z + q > V1_MAX => Status::Overflow,
                Some(_) => Status::Complete,
            };
        }
        if j == 2 && z == V2_SIG.len() {
            if buf.len() < 16 {
                return Status::More;
            }
            let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
            if len > MAX {
                return Status::Overflow;
            }
            return if buf.len() < 16 + len { Status::More } else { Status::Complete };
        }
    }
    Status::More
}

/// Reads until `buf` holds a whole header (and perhaps bytes after it),
/// by `deadline`; the error is the `SessClose` reason.
pub(crate) async fn receive(
    stream: &mut ClientStream,
    deadline: tokio::time::Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Vec<u8>, &'static str> {
    let mut buf = Vec::with_capacity(MAX);
    loop {
        match complete(&buf) {
            Status::Complete => return Ok(buf),
            Status::Junk => return Err("RX_JUNK"),
            Status::Overflow => return Err("RX_OVERFLOW"),
            Status::More if buf.len() >= MAX => return Err("RX_OVERFLOW"),
            Status::More => {}
        }
        if *shutdown.borrow() {
            return Err("REM_CLOSE");
        }
        let mut chunk = [0u8; MAX];
        let want = MAX - buf.len();
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want]));
        let n = tokio::select! {
            r = read => r,
            _ = shutdown.changed() => return Err("REM_CLOSE"),
        };
        match n {
            Err(_) => return Err("RX_TIMEOUT"),
            Ok(Ok(0)) | Ok(Err(_)) => return Err("REM_CLOSE"),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What a good header said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The header's length: the HTTP/1 session starts after it.
    pub len: usize,
    /// The client's and the server's addresses, when the header gave them.
    pub addrs: Option<Addrs>,
    /// The bytes of a version 2 header's TLVs, which varnishd keeps in
    /// the session's workspace.
    pub tlv_len: usize,
}

/// The addresses a header gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Addrs {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The client's address and port as a version 1 header wrote them.
    pub text: Option<(String, String)>,
}

/// Reads the header at the start of `buf`, which [`complete`] found
/// whole, logging what it finds; `Err` closes the session (`RX_JUNK`).
pub(crate) fn parse(buf: &[u8], log: &mut dyn FnMut(Tag, String)) -> Result<Header, ()> {
    match buf.first() {
        Some(b'P') => parse_v1(buf, log),
        Some(b'\r') => parse_v2(buf, log),
        _ => Err(()),
    }
}

/// Version 1 (varnishd's `vpx_proto1`).
fn parse_v1(buf: &[u8], log: &mut dyn FnMut(Tag, String)) -> Result<Header, ()> {
    let cr = memchr::memchr(b'\r', buf).ok_or(())?;
    if buf.get(cr + 1) != Some(&b'\n') {
        return Err(());
    }
    // varnishd works on C strings: a NUL ends the line early.
    let mut line = &buf[..cr];
    if let Some(nul) = memchr::memchr(0, line) {
        line = &line[..nul];
    }
    let fld: Vec<&[u8]> = line.split(|b| *b == b' ').skip(1).collect();
    let mut garbage = |why: &str| log(Tag::ProxyGarbage, format!("PROXY1: {why}"));
    if fld.len() < 5 {
        garbage("Too few fields");
        return Err(());
    }
    if fld.len() > 5 {
        garbage("Too many fields");
        return Err(());
    }
    let v6 = match fld[0] {
        b"TCP4" => false,
        b"TCP6" => true,
        _ => {
            garbage("Wrong TCP[46] field");
            return Err(());
        }
    };
    let Some(client) = getaddrinfo(fld[1], fld[3], v6) else {
        garbage("Cannot resolve source address");
        return Err(());
    };
    let Some(server) = getaddrinfo(fld[2], fld[4], v6) else {
        garbage("Cannot resolve destination address");
        return Err(());
    };
    // Every field resolved, so every one is ASCII.
    let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
    log(Tag::Proxy, format!("1 {} {} {} {}", text(fld[1]), text(fld[3]), text(fld[2]), text(fld[4])));
    let addrs = Some(Addrs { client, server, text: Some((text(fld[1]), text(fld[3]))) });
    Ok(Header { len: cr + 2, addrs, tlv_len: 0 })
}

/// Version 2 (varnishd's `vpx_proto2`).
fn parse_v2(buf: &[u8], log: &mut dyn FnMut(Tag, String)) -> Result<Header, ()> {
    let l = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let hdr_len = 16 + l;
    let p = &buf[..hdr_len];
    let done = |addrs| Ok(Header { len: hdr_len, addrs, tlv_len: 0 });
    if p[12] >> 4 != 2 {
        log(Tag::ProxyGarbage, format!("PROXY2: bad version ({})", p[12] >> 4));
        return Err(());
    }
    match p[12] & 0x0f {
        0 => {
            log(Tag::Proxy, "2 local local local local".into());
            return done(None);
        }
        1 => {}
        cmd => {
            log(Tag::ProxyGarbage, format!("PROXY2: bad command ({cmd})"));
            return Err(());
        }
    }
    let port = |at: usize| u16::from_be_bytes([p[at], p[at + 1]]);
    let (client, server, alen) = match p[13] {
        0x00 => {
            log(Tag::ProxyGarbage, "PROXY2: Ignoring UNSPEC|UNSPEC addresses".into());
            return done(None);
        }
        0x11 if l < 12 => {
            log(Tag::ProxyGarbage, format!("PROXY2: Ignoring short IPv4 addresses ({l})"));
            return done(None);
        }
        0x21 if l < 36 => {
            log(Tag::ProxyGarbage, format!("PROXY2: Ignoring short IPv6 addresses ({l})"));
            return done(None);
        }
        0x11 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]));
            (SocketAddr::new(ip(16), port(24)), SocketAddr::new(ip(20), port(26)), 12)
        }
        0x21 => {
            let ip = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&p[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            (SocketAddr::new(ip(16), port(48)), SocketAddr::new(ip(32), port(50)), 36)
        }
        fam => {
            log(Tag::ProxyGarbage, format!("PROXY2: Ignoring unsupported protocol (0x{fam:02x})"));
            return done(None);
        }
    };
    let name = lacquer_vcl::conv::ipaddr_to_string;
    log(Tag::Proxy, format!("2 {} {} {} {}", name(client.ip()), client.port(), name(server.ip()), server.port()));
    // The CRC is of the header with the CRC's own bytes zeroed.
    let mut zeroed = p.to_vec();
    let checked = walk_tlvs(p, 16 + alen, hdr_len, &mut |typ, at, len| match typ {
        PP2_TYPE_SSL if len < 5 => Err("PROXY2: TLV Length Error"),
        // A client byte, a 32-bit verify result, then TLVs of its own.
        PP2_TYPE_SSL => walk_tlvs(p, at + 5, at + len, &mut |_, _, _| Ok(())),
        PP2_TYPE_CRC32C => {
            // Four bytes, whatever the TLV's length says.
            let byte = |i: usize| buf.get(at + i).copied().unwrap_or(0);
            let want = u32::from_be_bytes([byte(0), byte(1), byte(2), byte(3)]);
            for b in zeroed.iter_mut().skip(at).take(4) {
                *b = 0;
            }
            if crc32c(&zeroed) == want {
                Ok(())
            } else {
                Err("PROXY2: CRC error")
            }
        }
        _ => Ok(()),
    });
    if let Err(why) = checked {
        log(Tag::ProxyGarbage, why.into());
        return Err(());
    }
    let tlv_len = hdr_len - 16 - alen;
    Ok(Header { len: hdr_len, addrs: Some(Addrs { client, server, text: None }), tlv_len })
}

/// Walks the TLVs in `p[d..end]`, calling `f` with each one's type, where
/// its value starts and its length, as varnishd's `VPX_TLV_FOREACH`: they
/// must fill the span exactly.
fn walk_tlvs(
    p: &[u8],
    mut d: usize,
    end: usize,
    f: &mut dyn FnMut(u8, usize, usize) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    while d < end {
        if end - d < 3 {
            return Err("PROXY2: TLV Dribble bytes");
        }
        let len = usize::from(u16::from_be_bytes([p[d + 1], p[d + 2]]));
        if len + 3 > end - d {
            return Err("PROXY2: TLV Length Error");
        }
        f(p[d], d + 3, len)?;
        d += 3 + len;
    }
    Ok(())
}

/// CRC-32C (Castagnoli), as the version 2 `CRC32C` TLV carries it.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// An address and port as glibc's `getaddrinfo(host, port)` reads them
/// with `AI_NUMERICHOST | AI_NUMERICSERV` and one address family.
fn getaddrinfo(host: &[u8], port: &[u8], v6: bool) -> Option<SocketAddr> {
    let port = numeric_service(port)?;
    let host = std::str::from_utf8(host).ok()?;
    if !v6 {
        return Some(SocketAddr::new(IpAddr::V4(inet_aton(host.as_bytes())?), port));
    }
    let (addr, scope) = match host.split_once('%') {
        Some((a, s)) => (a, Some(s)),
        None => (host, None),
    };
    let ip: Ipv6Addr = addr.parse().ok()?;
    let scope_id = match scope {
        None => 0,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
        // An interface name, as `if_nametoindex` finds it.
        Some(s) if !s.is_empty() && !s.contains(['/', '.']) => {
            std::fs::read_to_string(format!("/sys/class/net/{s}/ifindex")).ok()?.trim().parse().ok()?
        }
        Some(_) => return None,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope_id)))
}

/// A service as glibc reads a numeric one: empty is port 0; otherwise
/// `strtoul(s, &end, 10)` must use it all, a value that is -1 as an `int`
/// is refused, and the port is the value's low 16 bits.
fn numeric_service(s: &[u8]) -> Option<u16> {
    if s.is_empty() {
        return Some(0);
    }
    let mut i = s.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')).count();
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v =
        digits.iter().try_fold(0u64, |v, d| v.checked_mul(10)?.checked_add(u64::from(d - b'0'))).unwrap_or(u64::MAX);
    let v = if neg { v.wrapping_neg() } else { v };
    if v as u32 as i32 == -1 {
        return None;
    }
    Some(v as u16)
}

/// glibc's `inet_aton`, whole string only: one to four parts, each
/// decimal, octal (`0…`) or hex (`0x…`), the last filling the bytes left.
fn inet_aton(s: &[u8]) -> Option<Ipv4Addr> {
    let mut parts: Vec<u32> = Vec::with_capacity(4);
    let mut i = 0;
    loop {
        if !s.get(i)?.is_ascii_digit() {
            return None;
        }
        let mut base = 10;
        if s[i] == b'0' {
            i += 1;
            base = 8;
            if matches!(s.get(i), Some(b'x' | b'X')) {
                base = 16;
                i += 1;
            }
        }
        let mut val: u64 = 0;
        while let Some(&c) = s.get(i) {
            let d = match c {
                b'0'..=b'9' if base != 8 || c < b'8' => c - b'0',
                b'8' | b'9' => return None,
                b'a'..=b'f' if base == 16 => c - b'a' + 10,
                b'A'..=b'F' if base == 16 => c - b'A' + 10,
                _ => break,
            };
            val = val * base + u64::from(d);
            if val > 0xffff_ffff {
                return None;
            }
            i += 1;
        }
        match s.get(i) {
            Some(b'.') => {
                if parts.len() > 2 || val > 0xff {
                    return None;
                }
                parts.push(val as u32);
                i += 1;
            }
            None => {
                let val = val as u32;
                let max = [u32::MAX, 0xff_ffff, 0xffff, 0xff][parts.len()];
                if val > max {
                    return None;
                }
                let mut n = val;
                for (k, p) in parts.iter().enumerate() {
                    n |= p << (24 - 8 * k);
                }
                return Some(Ipv4Addr::from(n));
            }
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &[u8]) -> (Result<Header, ()>, Vec<String>) {
        let mut logged = Vec::new();
        let r = parse(buf, &mut |tag, s| logged.push(format!("{} {s}", tag.as_str())));
        (r, logged)
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.extend([cmd, fam]);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend(body);
        h
    }

    #[test]
    fn complete_reads_as_vpx_complete() {
        assert_eq!(complete(b""), Status::More);
        assert_eq!(complete(b"PROXY"), Status::More);
        assert_eq!(complete(b"PROXY TCP4"), Status::More);
        assert_eq!(complete(b"PROXY TCP4 x\n"), Status::Complete);
        assert_eq!(complete(b"XYZ"), Status::Junk);
        assert_eq!(complete(b"PROXZ"), Status::Junk);
        assert_eq!(complete(b"\r\n\r\n\0\r\nQUIT\x0b"), Status::Junk);
        let mut long = b"PROXY ".to_vec();
        long.resize(107, b' ');
        long.push(b'\n');
        assert_eq!(complete(&long), Status::Complete, "\\n at 107");
        long.insert(10, b' ');
        assert_eq!(complete(&long), Status::Overflow, "\\n at 108");
        assert_eq!(complete(&v2(0x20, 0, &[])[..15]), Status::More);
        assert_eq!(complete(&v2(0x20, 0, &[])), Status::Complete);
        let big = v2(0x20, 0, &[0; 1024]);
        assert_eq!(complete(&big[..16]), Status::More, "1024 announced");
        assert_eq!(complete(&big), Status::Complete);
        let mut over = big[..16].to_vec();
        over[15] = 1;
        over[14] = 4;
        assert_eq!(complete(&over), Status::Overflow, "1025 announced");
    }

    #[test]
    fn v1_fields_fail_as_varnishd_says() {
        for (line, why) in [
            (&b"PROXY A B C D\r\n"[..], "Too few fields"),
            (b"PROXYXTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "Too few fields"),
            (b"PROXY A B C D E F\r\n", "Too many fields"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "Too many fields"),
            (b"PROXY A B C D E\r\n", "Wrong TCP[46] field"),
            (b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", "Wrong TCP[46] field"),
            (b"PROXY TCP4 B C D E\r\n", "Cannot resolve source address"),
            (b"PROXY TCP4 1.2.3.4 C D E\r\n", "Cannot resolve source address"),
            (b"PROXY TCP4 1.2.3.4 D 1234 E\r\n", "Cannot resolve destination address"),
            (b"PROXY TCP6 1.2.3.4 5.6.7.8 1234 5678\r\n", "Cannot resolve source address"),
            (b"PROXY TCP4 1:f::2 5:a::8 1234 5678\r\n", "Cannot resolve source address"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 5678\r\n", "Cannot resolve source address"),
        ] {
            let (r, logged) = run(line);
            assert!(r.is_err(), "{line:?}");
            assert_eq!(logged, [format!("ProxyGarbage PROXY1: {why}")], "{line:?}");
        }
        for line in [&b"PROXY TCP4 1.2.3.4 5.6.7.8 1234 5678\n"[..], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n"] {
            assert_eq!(run(line), (Err(()), vec![]), "{line:?}");
        }
    }

    #[test]
    fn v1_addresses_keep_their_text() {
        let (r, logged) = run(b"PROXY TCP4 1.2.3.4 5.6.7.8 01234 5678\r\nGET");
        let h = r.unwrap();
        assert_eq!(logged, ["Proxy 1 1.2.3.4 01234 5.6.7.8 5678"]);
        assert_eq!(h.len, 39);
        let a = h.addrs.unwrap();
        assert_eq!(a.client, "1.2.3.4:1234".parse().unwrap());
        assert_eq!(a.server, "5.6.7.8:5678".parse().unwrap());
        assert_eq!(a.text, Some(("1.2.3.4".into(), "01234".into())));
        let (r, logged) = run(b"PROXY TCP6 1:f::2 5:a::8 1234 5678\r\n");
        assert_eq!(logged, ["Proxy 1 1:f::2 1234 5:a::8 5678"]);
        assert_eq!(r.unwrap().addrs.unwrap().client, "[1:f::2]:1234".parse().unwrap());
        // Only the five letters are the signature.
        assert_eq!(run(b"PROXYX TCP4 1.2.3.4 5.6.7.8 1 2\r\n").1, ["Proxy 1 1.2.3.4 1 5.6.7.8 2"]);
    }

    #[test]
    fn numbers_read_as_glibc_reads_them() {
        let v4 = |s: &str| inet_aton(s.as_bytes()).map(|a| a.to_string());
        assert_eq!(v4("1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(v4("1.2.3").as_deref(), Some("1.2.0.3"));
        assert_eq!(v4("0x1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(v4("1.2.3.010").as_deref(), Some("1.2.3.8"));
        assert_eq!(v4("4294967295").as_deref(), Some("255.255.255.255"));
        for bad in ["", "1.2.3.4.", "1..2", "1.2.3.256", "1.2.3.4 ", "1.2.3.09", "x", "1.2.3.4.5"] {
            assert_eq!(v4(bad), None, "{bad:?}");
        }
        let port = |s: &str| numeric_service(s.as_bytes());
        assert_eq!(port("1234"), Some(1234));
        assert_eq!(port("70000"), Some(4464));
        assert_eq!(port("+5"), Some(5));
        assert_eq!(port(" 5"), Some(5));
        assert_eq!(port(""), Some(0));
        for bad in ["-1", "5x", "0x10", "99999999999999999999999", "4294967295", "+"] {
            assert_eq!(port(bad), None, "{bad:?}");
        }
        assert_eq!(getaddrinfo(b"fe80::1%1", b"5", true), Some("[fe80::1%1]:5".parse().unwrap()));
    }

    #[test]
    fn v2_headers_read_as_varnishd_reads_them() {
        let (r, logged) = run(&v2(0x20, 0, &[]));
        assert_eq!(
            (r, logged),
            (Ok(Header { len: 16, addrs: None, tlv_len: 0 }), vec!["Proxy 2 local local local local".into()])
        );
        assert_eq!(run(&v2(0x22, 0, &[])).1, ["ProxyGarbage PROXY2: bad command (2)"]);
        assert_eq!(run(&v2(0x12, 0, &[])).1, ["ProxyGarbage PROXY2: bad version (1)"]);
        assert_eq!(run(&v2(0x21, 0x00, &[])).1, ["ProxyGarbage PROXY2: Ignoring UNSPEC|UNSPEC addresses"]);
        assert_eq!(run(&v2(0x21, 0x99, &[])).1, ["ProxyGarbage PROXY2: Ignoring unsupported protocol (0x99)"]);
        assert_eq!(run(&v2(0x21, 0x11, &[0; 11])).1, ["ProxyGarbage PROXY2: Ignoring short IPv4 addresses (11)"]);
        assert_eq!(run(&v2(0x21, 0x21, &[0; 35])).1, ["ProxyGarbage PROXY2: Ignoring short IPv6 addresses (35)"]);
        assert!(run(&v2(0x21, 0x21, &[0; 35])).0.is_ok());
        let (r, logged) = run(&v2(0x21, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c]));
        assert_eq!(logged, ["Proxy 2 1.2.3.4 2314 5.6.7.8 2828"]);
        let a = r.unwrap().addrs.unwrap();
        assert_eq!((a.client, a.server), ("1.2.3.4:2314".parse().unwrap(), "5.6.7.8:2828".parse().unwrap()));
    }

    /// The header of varnishd's `o00005.vtc` and `proxy_b00000.vtc`: good,
    /// then with its CRC broken, a TLV too long, and two bytes left over.
    #[test]
    fn v2_tlvs_are_checked() {
        let hex = "0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 65 d9 46 b5 21 5f 8e a8 22 ed 96 01 bb
            03 00 04 95 03 ee 75 01 00 02 68 32 02 00 0a 68 6f 63 64 65 74 2e 6e 65 74 20 00 3d 01 00 00 00 00
            21 00 07 54 4c 53 76 31 2e 33 25 00 05 45 43 32 35 36 24 00 0a 52 53 41 2d 53 48 41 32 35 36
            23 00 16 41 45 41 44 2d 41 45 53 31 32 38 2d 47 43 4d 2d 53 48 41 32 35 36";
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let good: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let (r, logged) = run(&good);
        assert_eq!(logged, ["Proxy 2 217.70.181.33 60822 95.142.168.34 443"]);
        assert_eq!(r.unwrap().len, good.len());
        let mut bad_crc = good.clone();
        bad_crc[34] = 0x74;
        assert_eq!(run(&bad_crc).1[1], "ProxyGarbage PROXY2: CRC error");
        let mut long_tlv = good.clone();
        long_tlv[15] = 0x60;
        long_tlv[28] = 0xff;
        assert_eq!(run(&long_tlv).1[1], "ProxyGarbage PROXY2: TLV Length Error");
        let mut dribble = good.clone();
        dribble[15] = 0x67;
        dribble[28] = 0xff;
        dribble.extend([0xff, 0xff]);
        assert_eq!(run(&dribble).1[1], "ProxyGarbage PROXY2: TLV Dribble bytes");
        // The SSL TLV's own TLVs are checked too.
        let mut short_ssl = long_tlv.clone();
        short_ssl[15] = 0x65;
        short_ssl[55] = 0x3c;
        assert_eq!(run(&short_ssl).1[1], "ProxyGarbage PROXY2: TLV Length Error");
        let addrs = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
        for (tlvs, why) in [
            (&[0x20, 0, 3, 1, 0, 0][..], Some("TLV Length Error")),
            (&[0x20, 0, 6, 1, 0, 0, 0, 0, 0x21], Some("TLV Dribble bytes")),
            (&[0x20, 0, 8, 1, 0, 0, 0, 0, 0x21, 0, 1], Some("TLV Length Error")),
            (&[0x03, 0, 2, 0, 0], Some("CRC error")),
            (&[0x20, 0, 5, 1, 0, 0, 0, 0], None),
        ] {
            let h = v2(0x21, 0x11, &[&addrs[..], tlvs].concat());
            let (r, logged) = run(&h);
            assert_eq!(r.is_ok(), why.is_none(), "{tlvs:?}");
            assert_eq!(logged.get(1).cloned(), why.map(|w| format!("ProxyGarbage PROXY2: {w}")), "{tlvs:?}");
        }
    }

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
