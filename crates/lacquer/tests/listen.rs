//! `-a` listeners through real sockets: several at once, Unix sockets,
//! `:port` on every address, and what VCL sees of each.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

/// A VCL that answers every request itself, telling what it saw.
const ECHO: &str = r#"vcl 4.1;
backend default none;
sub vcl_recv { return (synth(200)); }
sub vcl_synth {
    set resp.http.socket = local.socket;
    set resp.http.endpoint = local.endpoint;
    set resp.http.client = client.ip;
    set resp.http.server = server.ip;
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
    for (arg, why) in [(":http", "bad port"), ("127.0.0.1:0,PROXY", "PROXY"), (":0,mode=600", "Unix")] {
        let out = Command::new(LACQUER).args(["serve", "-b", "127.0.0.1:9", "-a", arg]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{arg}");
        assert!(err.contains(why) && err.contains(arg), "{arg}: {err}");
    }
}
