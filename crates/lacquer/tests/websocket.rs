//! A websocket through `return (pipe)`, with a real websocket client and
//! server (tungstenite) on either side of Lacquer: the upgrade handshake
//! goes to the backend, and after it Lacquer is a byte tunnel both ways.

mod common;

use common::*;
use std::net::TcpListener;
use tungstenite::Message;

/// Varnish's recipe for websockets: pipe upgrades, and hand the
/// hop-by-hop `Upgrade` and `Connection` on to the backend explicitly.
const PIPE_UPGRADES: &str = r#"
sub vcl_recv {
    if (req.http.upgrade ~ "(?i)websocket") {
        return (pipe);
    }
    return (synth(200, "plain"));
}
sub vcl_pipe {
    if (req.http.upgrade) {
        set bereq.http.upgrade = req.http.upgrade;
        set bereq.http.connection = req.http.connection;
    }
}
"#;

/// A websocket server that echoes every text message upper-cased, on as
/// many connections as come.
fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(s) else { return };
                while let Ok(m) = ws.read() {
                    let reply = match m {
                        Message::Text(t) => Message::Text(t.to_uppercase()),
                        Message::Binary(b) => Message::Binary(b.into_iter().rev().collect()),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_websocket_client_talks_to_its_backend_through_pipe() {
    let o = echo_server();
    let s = start(Some(&vcl(&o, PIPE_UPGRADES)), &[]);
    // Two sockets open at once, interleaved: each is its own tunnel.
    let mut clients: Vec<_> = (0..2)
        .map(|i| {
            let (ws, resp) = tungstenite::connect(format!("ws://{}/chat/{i}", s.addr)).expect("the upgrade");
            assert_eq!(resp.status(), 101);
            ws
        })
        .collect();
    for round in 0..3 {
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(Message::Text(format!("hello {i} round {round}"))).unwrap();
        }
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_eq!(ws.read().unwrap(), Message::Text(format!("HELLO {i} ROUND {round}")));
        }
    }
    // Ordinary requests are served while the tunnels are open.
    let (head, _) = request(&s, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    let ws = &mut clients[0];
    ws.send(Message::Binary(vec![1, 2, 3])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(vec![3, 2, 1]));
    for mut ws in clients {
        ws.close(None).unwrap();
    }
}
