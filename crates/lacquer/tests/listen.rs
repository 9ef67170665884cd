//! `-a` listeners through real sockets: several at once, Unix sockets,
//! `:port` on every address, the PROXY protocol, and what VCL sees of each.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

/// A VCL that answers every request itself, telling what it saw.
const ECHO: &str = r#"vcl 4.1;
import std;
backend default none;
sub vcl_recv { return (synth(200)); }
sub vcl_synth {
    set resp.http.socket = local.socket;
    set resp.http.endpoint = local.endpoint;
    set resp.http.client = client.ip;
    set resp.http.server = server.ip;
    set resp.http.ports = std.port(client.ip) + " " + std.port(server.ip);
    set resp.http.remote = remote.ip;
    set resp.http.local = local.ip;
    set resp.http.xff = req.http.X-Forwarded-For;
    set resp.http.identity = client.identity;
}
"#;

fn serve_on(listen: &[&str]) -> (Server, Vec<String>) {
    let dir = scratch();
    let f = dir.join("t.vcl");
    std::fs::write(&f, ECHO).unwrap();
    let mut cmd = Command::new(LACQUER);
    cmd.arg("serve").arg("-n").arg(dir.join("n")).arg("-f").arg(&f);
    for a in listen {
        cmd.arg("-a").arg(a.replace("DIR", dir.to_str().unwrap()));
    }
    let s = launch_n(cmd, dir, listen.len());
    let all = s.addrs.clone();
    (s, all)
}

fn ask(stream: impl std::io::Read + Write + Clone) -> String {
    let mut w = stream.clone();
    w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_head(&mut BufReader::new(stream)).expect("a response")
}

#[test]
fn unix_socket_and_tcp_listeners_side_by_side() {
    let (s, addrs) = serve_on(&["web=DIR/l.sock,mode=600", "127.0.0.1:0"]);
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let path = &addrs[0];
    assert!(path.ends_with("/l.sock"), "{path}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);

    let u = UnixStream::connect(path).unwrap();
    u.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask(&u);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "socket").as_deref(), Some("web"));
    assert_eq!(header(&head, "endpoint").as_deref(), Some(path.as_str()));
    assert_eq!(header(&head, "client").as_deref(), Some("0.0.0.0"));
    assert_eq!(header(&head, "server").as_deref(), Some("0.0.0.0"));

    let t = std::net::TcpStream::connect(&addrs[1]).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask(&t);
    assert_eq!(header(&head, "socket").as_deref(), Some("a1"));
    assert_eq!(header(&head, "endpoint").as_deref(), Some(addrs[1].as_str()));
    assert_eq!(header(&head, "client").as_deref(), Some("127.0.0.1"));
    drop(s);
}

#[test]
fn a_port_alone_listens_on_ipv4_and_ipv6() {
    let (s, addrs) = serve_on(&[":0"]);
    let port = addrs[0].rsplit(':').next().unwrap().to_string();
    let v4 = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    v4.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask(&v4);
    // An IPv4 client is an IPv4 address, not `::ffff:127.0.0.1`.
    assert_eq!(header(&head, "client").as_deref(), Some("127.0.0.1"), "{head}");
    if let Ok(v6) = std::net::TcpStream::connect(format!("[::1]:{port}")) {
        v6.set_read_timeout(Some(WAIT)).unwrap();
        let head = ask(&v6);
        assert_eq!(header(&head, "client").as_deref(), Some("::1"), "{head}");
    }
    drop(s);
}

#[test]
fn bad_listen_arguments_are_refused_with_the_reason() {
    for (arg, why) in [
        (":http", "bad port"),
        ("127.0.0.1:0,PROXY,FOO", "Too many protocol sub-args"),
        ("127.0.0.1:0,SPDY", "Unknown protocol 'SPDY'"),
        (":0,mode=600", "Unix"),
    ] {
        let out = Command::new(LACQUER).args(["serve", "-b", "127.0.0.1:9", "-a", arg]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{arg}");
        assert!(err.contains(why) && err.contains(arg), "{arg}: {err}");
    }
}

/// Sends `preamble`, then a request, and reads the answer (`None` when the
/// connection closes without one).
fn ask_after(mut stream: impl std::io::Read + Write, preamble: &[u8]) -> Option<String> {
    let mut all = preamble.to_vec();
    all.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(&all).unwrap();
    read_head(&mut BufReader::new(stream))
}

/// A PROXY version 2 header for TCP over IPv4.
fn proxy_v2(client: [u8; 4], cport: u16, server: [u8; 4], sport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend(client);
    h.extend(server);
    h.extend(cport.to_be_bytes());
    h.extend(sport.to_be_bytes());
    h
}

#[test]
fn a_proxy_listener_takes_the_client_from_the_header() {
    let (s, addrs) = serve_on(&["127.0.0.1:0,PROXY", "plain=127.0.0.1:0"]);
    let t = std::net::TcpStream::connect(&addrs[0]).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask_after(&t, b"PROXY TCP4 1.2.3.4 5.6.7.8 01234 80\r\n").expect("an answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "client").as_deref(), Some("1.2.3.4"), "{head}");
    assert_eq!(header(&head, "server").as_deref(), Some("5.6.7.8"), "{head}");
    assert_eq!(header(&head, "ports").as_deref(), Some("1234 80"), "{head}");
    // The socket's own ends stay what they are; the port is forwarded as
    // the header wrote its text, not its number.
    assert_eq!(header(&head, "remote").as_deref(), Some("127.0.0.1"), "{head}");
    assert_eq!(header(&head, "local").as_deref(), Some("127.0.0.1"), "{head}");
    assert_eq!(header(&head, "xff").as_deref(), Some("1.2.3.4"), "{head}");
    assert_eq!(header(&head, "identity").as_deref(), Some("1.2.3.4"), "{head}");

    // Version 2 over IPv6 addresses, a second request on the same
    // connection keeping them.
    let mut t = std::net::TcpStream::connect(&addrs[0]).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend((1..=16).collect::<Vec<u8>>());
    v2.extend([0x20; 16]);
    v2.extend([0, 7, 0, 8]);
    let mut r = BufReader::new(t.try_clone().unwrap());
    t.write_all(&[&v2[..], b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"].concat()).unwrap();
    for _ in 0..2 {
        let head = read_head(&mut r).expect("an answer");
        assert_eq!(header(&head, "client").as_deref(), Some("102:304:506:708:90a:b0c:d0e:f10"), "{head}");
        assert_eq!(header(&head, "server").as_deref(), Some("2020:2020:2020:2020:2020:2020:2020:2020"), "{head}");
        assert_eq!(header(&head, "ports").as_deref(), Some("7 8"), "{head}");
        assert_eq!(header(&head, "remote").as_deref(), Some("127.0.0.1"), "{head}");
        let _ = read_body(&mut r, &head);
        t.write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }

    // The other listener is plain HTTP: its client is the socket's.
    let plain = std::net::TcpStream::connect(&addrs[1]).unwrap();
    plain.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask(&plain);
    assert_eq!(header(&head, "client").as_deref(), Some("127.0.0.1"), "{head}");
    drop(s);
}

#[test]
fn a_proxy_listener_closes_on_a_bad_or_missing_header() {
    let (s, addrs) = serve_on(&["127.0.0.1:0,PROXY"]);
    for preamble in [
        &b""[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1234\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\n",
        b"PROXY UNKNOWN\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x22\x00\x00\x00",
    ] {
        let t = std::net::TcpStream::connect(&addrs[0]).unwrap();
        t.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(ask_after(&t, preamble), None, "{}", String::from_utf8_lossy(preamble));
    }
    drop(s);
}

#[test]
fn a_unix_socket_can_take_proxy_headers() {
    let (s, addrs) = serve_on(&["DIR/p.sock,PROXY,mode=666"]);
    let u = UnixStream::connect(&addrs[0]).unwrap();
    u.set_read_timeout(Some(WAIT)).unwrap();
    let head = ask_after(&u, &proxy_v2([10, 0, 0, 1], 4444, [10, 0, 0, 2], 443)).expect("an answer");
    assert_eq!(header(&head, "client").as_deref(), Some("10.0.0.1"), "{head}");
    assert_eq!(header(&head, "server").as_deref(), Some("10.0.0.2"), "{head}");
    assert_eq!(header(&head, "ports").as_deref(), Some("4444 443"), "{head}");
    assert_eq!(header(&head, "remote").as_deref(), Some("0.0.0.0"), "{head}");
    assert_eq!(header(&head, "xff").as_deref(), Some("10.0.0.1"), "{head}");
    drop(s);
}
