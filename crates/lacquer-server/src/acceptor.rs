//! Listening sockets (Varnish's `cache_acceptor.c` and the `-a` parsing of
//! `mgt_acceptor.c`): what one `-a` argument means, binding it, and the
//! client stream a session reads and writes, over TCP or a Unix socket.
//!
//! An `-a` argument is `[name=][address][:port][,PROTO][,mode=OCTAL]`, as
//! varnishd takes it:
//!
//! - `host:port`, `[v6addr]:port` or `host` (port 80): every address the
//!   name resolves to;
//! - `:port`: every local address, IPv4 and IPv6. Lacquer binds one
//!   dual-stack `[::]` socket (so port 0 gives one port, not two), falling
//!   back to `0.0.0.0` where IPv6 is off; IPv4 clients on it are seen with
//!   their plain IPv4 address, not the mapped `::ffff:` form;
//! - `/path`: a Unix socket, replaced if a stale one is there; `mode=` sets
//!   its permissions. Sessions on it see `client.ip` and `server.ip` as
//!   `0.0.0.0`, as in Varnish, and `local.endpoint` is the path.
//!
//! Names default to `a0`, `a1` … in order, which is what `local.socket`
//! answers. The protocol is `HTTP` (the default) or `PROXY`, in any case
//! and at most one, as varnishd takes it: on a `PROXY` listener every
//! connection opens with a PROXY protocol header (see `proxy.rs`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::pin::Pin;
use std::task::{Context, Poll};

use lacquer_module::PeerCredError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::ServeError;

/// What a session knows about the listener it came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenInfo {
    /// `local.socket`: the name given with `name=`, or `aN`.
    pub name: String,
    /// `local.endpoint`: the bound address, or the socket's path.
    pub endpoint: String,
    /// Whether connections open with a PROXY protocol header (`,PROXY`).
    pub proxy: bool,
}

/// A bound listening socket.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted client connection.
pub(crate) enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// An accepted connection with its two ends (`0.0.0.0:0` for both over a
/// Unix socket).
pub(crate) struct Accepted {
    pub stream: ClientStream,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Who is at the other end of a Unix socket (`SO_PEERCRED`), read
    /// once at accept for `vmod_unix`.
    pub peer_cred: Result<(u32, u32), PeerCredError>,
}

/// One `-a` argument, read but not bound.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListenSpec {
    name: Option<String>,
    addr: Addr,
    mode: Option<u32>,
    proxy: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Addr {
    /// `:port`: every local address.
    Any(u16),
    /// A host (name or literal) and port, to resolve.
    Host(String, u16),
    /// A Unix socket path.
    Path(String),
}

/// Reads one `-a` argument.
fn parse_spec(arg: &str) -> Result<ListenSpec, ServeError> {
    let bad = |why: &str| ServeError::Listen(format!("'{arg}': {why}"));
    let mut parts = arg.split(',');
    let first = parts.next().unwrap_or_default();
    // `name=` only counts before anything that could be an address.
    let (name, addr) = match first.split_once('=') {
        Some((n, a)) if !n.is_empty() && !n.contains([':', '/', '[']) => (Some(n.to_string()), a),
        _ => (None, first),
    };
    let mut mode = None;
    let mut proto: Option<bool> = None;
    for opt in parts {
        match opt.split_once('=') {
            None if proto.is_some() => return Err(bad(&format!("Too many protocol sub-args in -a ({opt})"))),
            None if opt.eq_ignore_ascii_case("HTTP") => proto = Some(false),
            None if opt.eq_ignore_ascii_case("PROXY") => proto = Some(true),
            None => return Err(bad(&format!("Unknown protocol '{opt}'"))),
            Some(("mode", m)) => {
                mode = Some(u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o777).ok_or_else(|| bad("bad mode"))?);
            }
            Some(("user" | "group", _)) => return Err(bad("user= and group= are not supported; use mode=")),
            _ => return Err(bad(&format!("unknown option '{opt}'"))),
        }
    }
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad("bad port"));
    let addr = if addr.starts_with('/') {
        Addr::Path(addr.to_string())
    } else if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        Addr::Host(addr.to_string(), 80)
    } else if let Some(p) = addr.strip_prefix(':') {
        Addr::Any(port(p)?)
    } else if let Some(rest) = addr.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        Addr::Host(h.to_string(), p.strip_prefix(':').map(port).transpose()?.unwrap_or(80))
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Addr::Host(h.to_string(), port(p)?),
            _ if addr.is_empty() => return Err(bad("no address")),
            _ => Addr::Host(addr.to_string(), 80),
        }
    };
    if mode.is_some() && !matches!(addr, Addr::Path(_)) {
        return Err(bad("mode= is only for Unix sockets"));
    }
    Ok(ListenSpec { name, addr, mode, proxy: proto.unwrap_or(false) })
}

/// Binds every `-a` argument; answers the listeners with what sessions on
/// each will know about it.
pub(crate) async fn bind_all(args: &[String]) -> Result<Vec<(Listener, ListenInfo)>, ServeError> {
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let spec = parse_spec(arg)?;
        let name = spec.name.clone().unwrap_or_else(|| format!("a{i}"));
        match &spec.addr {
            Addr::Path(path) => {
                // A socket left by an earlier run would make bind fail; only a
                // socket is removed, never a file that happens to be there.
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|e| ServeError::Bind(path.clone(), e))?;
                if let Some(mode) = spec.mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| ServeError::Bind(path.clone(), e))?;
                }
                out.push((Listener::Unix(l), ListenInfo { name, endpoint: path.clone(), proxy: spec.proxy }));
            }
            Addr::Any(port) => {
                let v6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), *port);
                let l = match TcpListener::bind(v6).await {
                    Ok(l) => l,
                    Err(_) => {
                        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port);
                        TcpListener::bind(v4).await.map_err(|e| ServeError::Bind(arg.clone(), e))?
                    }
                };
                let endpoint = l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| arg.clone());
                out.push((Listener::Tcp(l), ListenInfo { name, endpoint, proxy: spec.proxy }));
            }
            Addr::Host(host, port) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|_| ServeError::Address(arg.clone()))?
                    .collect();
                if addrs.is_empty() {
                    return Err(ServeError::Address(arg.clone()));
                }
                for addr in addrs {
                    let l = TcpListener::bind(addr).await.map_err(|e| ServeError::Bind(addr.to_string(), e))?;
                    let endpoint = l.local_addr().unwrap_or(addr).to_string();
                    out.push((Listener::Tcp(l), ListenInfo { name: name.clone(), endpoint, proxy: spec.proxy }));
                }
            }
        }
    }
    Ok(out)
}

impl Listener {
    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let local = s.local_addr().unwrap_or(peer);
                Ok(Accepted {
                    stream: ClientStream::Tcp(s),
                    peer: canonical(peer),
                    local: canonical(local),
                    peer_cred: Err(PeerCredError::NotUnix),
                })
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let none = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
                let peer_cred = s.peer_cred().map(|c| (c.uid(), c.gid())).map_err(|_| PeerCredError::Unavailable);
                Ok(Accepted { stream: ClientStream::Unix(s), peer: none, local: none, peer_cred })
            }
        }
    }
}

/// An IPv4 client on a dual-stack socket as the IPv4 address it is.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ClientStream::Tcp(s) => s.as_raw_fd(),
            ClientStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Whether client connections are accepted: Varnish's child process, which
/// the CLI's `start` and `stop` start and end. Here the listening sockets
/// stay bound throughout (as varnishd's manager keeps them) and `start`
/// runs one accepting task per socket; `stop` ends them, and the sessions
/// they started close after the request they are serving.
pub(crate) struct Child {
    listeners: Vec<std::sync::Arc<Listener>>,
    /// Set while running: telling it `true` stops this run's acceptors
    /// and sessions.
    running: std::sync::Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    /// Cloned into each acceptor and session; the server's shutdown waits
    /// until every clone is gone.
    alive: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<()>>>,
}

impl Child {
    pub fn new(listeners: Vec<Listener>, alive: tokio::sync::mpsc::Sender<()>) -> Child {
        Child {
            listeners: listeners.into_iter().map(std::sync::Arc::new).collect(),
            running: Default::default(),
            alive: std::sync::Mutex::new(Some(alive)),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Starts accepting; the error is `start`'s answer when it cannot.
    pub fn start(&self, shared: &std::sync::Arc<crate::Shared>) -> Result<(), String> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_some() {
            return Err("Child in state running".into());
        }
        if shared.vcls.active().is_none() {
            return Err("No active VCL".into());
        }
        let Some(alive) = self.alive.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Err("Child in state stopping".into());
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        for (i, l) in self.listeners.iter().enumerate() {
            tokio::spawn(crate::accept_loop(l.clone(), i, shared.clone(), rx.clone(), alive.clone()));
        }
        *running = Some(tx);
        Ok(())
    }

    /// Stops accepting; `false` if it was not running.
    pub fn stop(&self) -> bool {
        match self.running.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(tx) => {
                let _ = tx.send(true);
                true
            }
            None => false,
        }
    }

    /// Stops for good: nothing is started again, and the server's wait for
    /// the last session can end.
    pub fn shutdown(&self) {
        self.stop();
        self.alive.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(a: &str) -> ListenSpec {
        parse_spec(a).unwrap()
    }

    #[test]
    fn arguments_read_as_varnishd_reads_them() {
        assert_eq!(spec(":8080").addr, Addr::Any(8080));
        assert_eq!(spec("127.0.0.1:81").addr, Addr::Host("127.0.0.1".into(), 81));
        assert_eq!(spec("localhost").addr, Addr::Host("localhost".into(), 80));
        assert_eq!(spec("[::1]:82").addr, Addr::Host("::1".into(), 82));
        assert_eq!(spec("::1").addr, Addr::Host("::1".into(), 80));
        let s = spec("web=/tmp/x.sock,HTTP,mode=660");
        assert_eq!((s.name.as_deref(), &s.addr, s.mode), (Some("web"), &Addr::Path("/tmp/x.sock".into()), Some(0o660)));
        assert_eq!(spec("adm=127.0.0.1:0,HTTP").name.as_deref(), Some("adm"));
        assert!(!spec(":80").proxy && !spec(":80,HTTP").proxy);
        assert!(spec(":80,PROXY").proxy && spec("127.0.0.1:80,proxy").proxy);
        let s = spec("p=/tmp/x.sock,mode=600,PROXY");
        assert!(s.proxy && s.mode == Some(0o600) && s.name.as_deref() == Some("p"));
    }

    #[test]
    fn bad_arguments_say_why() {
        for (arg, why) in [
            (":http", "bad port"),
            ("127.0.0.1:99999", "bad port"),
            ("[::1:80", "unclosed"),
            (":80,PROXY,FOO", "Too many protocol sub-args in -a (FOO)"),
            (":80,HTTP,PROXY", "Too many protocol sub-args in -a (PROXY)"),
            (":80,mode=600", "only for Unix"),
            ("/tmp/s,mode=999", "bad mode"),
            ("/tmp/s,user=www", "mode="),
            (":80,SPDY", "Unknown protocol 'SPDY'"),
            (":80,x=y", "unknown option"),
        ] {
            let e = parse_spec(arg).unwrap_err().to_string();
            assert!(e.contains(why), "{arg}: {e}");
        }
    }
}
