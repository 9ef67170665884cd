//! The handoff wire format, version 1: what Lacquer sends a process
//! with a client connection, and what the process answers.
//!
//! Lacquer connects to the process's Unix stream socket, one control
//! connection per transfer, and sends one message:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "LQHO"
//! 4       1     version: 1
//! 5       3     reserved, zero
//! 8       4     M, the metadata's length (u32, big-endian), at most 65536
//! 12      4     D, the data's length (u32, big-endian), at most 16 MiB
//! 16      M     metadata: UTF-8 lines "name: value\n"
//! 16+M    D     data: the bytes Lacquer read off the connection
//! ```
//!
//! The client socket travels as `SCM_RIGHTS` ancillary data on the first
//! bytes of the message: exactly one descriptor. The metadata lines are
//! (unknown names are ignored, so a version 1 reader takes additions):
//!
//! | name | value |
//! |---|---|
//! | `client` | `client.ip` and port, `1.2.3.4:5678` or `[::1]:5678` (a PROXY header's source) |
//! | `server` | `server.ip` and port (a PROXY header's destination) |
//! | `remote` | the socket's peer (`0.0.0.0:0` on a Unix listener) |
//! | `local` | the socket's own address |
//! | `xid` | the request's transaction id (`X-Varnish`) |
//! | `sess-xid` | the session's transaction id |
//! | `listener` | the listener's name (`a0` …) |
//! | `proxy` | `1` when the connection began with a PROXY header, else `0` |
//! | `head-len` | how many bytes of the data are the request head |
//! | `endpoint` | the VCL name of the `handoff.endpoint` object |
//!
//! `head-len` is required; the data is the head exactly as the client sent
//! it, then whatever Lacquer read after it (the body's first part, or
//! pipelined requests). TLS information would be a `tls` line; Lacquer
//! terminates no TLS, so there is none yet.
//!
//! The process answers one line on the control connection: `OK\n` when
//! it keeps the connection (Lacquer then closes its copy and forgets it),
//! `NO <reason>\n` when it refuses (it must close its copy without
//! reading or writing; Lacquer answers the client itself). Anything else,
//! or nothing before Lacquer's timeout, is a refusal too; then Lacquer
//! also closes the client connection after its 503, since it cannot know
//! whether the process touched it. Lines are at most 1024 bytes.

use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The message's first bytes.
pub const MAGIC: &[u8; 4] = b"LQHO";
/// The version this crate writes and reads.
pub const VERSION: u8 = 1;
/// The largest metadata accepted.
pub const MAX_META: usize = 65536;
/// The largest data accepted.
pub const MAX_DATA: usize = 16 << 20;
/// The header's length.
const HEADER: usize = 16;

/// What Lacquer knows about a transferred connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub xid: u64,
    pub sess_xid: u64,
    pub listener: String,
    pub proxy: bool,
    pub head_len: usize,
    pub endpoint: String,
}

impl Meta {
    /// The metadata lines.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| {
            // A value cannot hold a line break; names are fixed.
            let v: String = v.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            out.push_str(k);
            out.push_str(": ");
            out.push_str(&v);
            out.push('\n');
        };
        for (k, a) in [("client", self.client), ("server", self.server), ("remote", self.remote), ("local", self.local)]
        {
            if let Some(a) = a {
                line(k, &a.to_string());
            }
        }
        line("xid", &self.xid.to_string());
        line("sess-xid", &self.sess_xid.to_string());
        line("listener", &self.listener);
        line("proxy", if self.proxy { "1" } else { "0" });
        line("head-len", &self.head_len.to_string());
        line("endpoint", &self.endpoint);
        out.into_bytes()
    }

    /// Reads metadata lines; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Meta, String> {
        let text = std::str::from_utf8(b).map_err(|_| "metadata is not UTF-8".to_string())?;
        let mut m = Meta::default();
        let mut head_len = None;
        for l in text.lines().filter(|l| !l.is_empty()) {
            let (k, v) = l.split_once(": ").ok_or_else(|| format!("bad metadata line '{l}'"))?;
            let addr = |v: &str| v.parse::<SocketAddr>().map(Some).map_err(|_| format!("bad address in '{l}'"));
            let num = |v: &str| v.parse::<u64>().map_err(|_| format!("bad number in '{l}'"));
            match k {
                "client" => m.client = addr(v)?,
                "server" => m.server = addr(v)?,
                "remote" => m.remote = addr(v)?,
                "local" => m.local = addr(v)?,
                "xid" => m.xid = num(v)?,
                "sess-xid" => m.sess_xid = num(v)?,
                "listener" => m.listener = v.to_string(),
                "proxy" => m.proxy = v == "1",
                "head-len" => head_len = Some(num(v)? as usize),
                "endpoint" => m.endpoint = v.to_string(),
                _ => {}
            }
        }
        m.head_len = head_len.ok_or("no head-len in the metadata")?;
        Ok(m)
    }
}

/// The process's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    No(String),
}

impl Reply {
    /// The answer's line.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Ok => b"OK\n".to_vec(),
            Reply::No(why) => {
                let mut why: String = why.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                why.truncate(1000);
                format!("NO {why}\n").into_bytes()
            }
        }
    }

    /// Reads an answer's line (without its newline).
    pub fn decode(line: &[u8]) -> Result<Reply, String> {
        match line {
            b"OK" => Ok(Reply::Ok),
            _ if line.starts_with(b"NO") => Ok(Reply::No(String::from_utf8_lossy(&line[2..]).trim().to_string())),
            _ => Err(format!("bad answer '{}'", String::from_utf8_lossy(line))),
        }
    }
}

/// Why sending a connection did not give it away. Only after
/// [`SendError::Refused`], [`SendError::NoAnswer`] and
/// [`SendError::Send`] may the process have the descriptor.
#[derive(Debug)]
pub enum SendError {
    /// No process listening there (or the backlog is full).
    Connect(io::Error),
    /// The message could not be sent whole.
    Send(io::Error),
    /// The process answered `NO`, with its reason.
    Refused(String),
    /// No answer in time, the connection closed, or an answer that is
    /// not one.
    NoAnswer(String),
}

impl SendError {
    /// Whether the process may have got the descriptor (so the client
    /// connection is not to be used any more).
    pub fn maybe_delivered(&self) -> bool {
        !matches!(self, SendError::Connect(_))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "not accepting: {e}"),
            SendError::Send(e) => write!(f, "send failed: {e}"),
            SendError::Refused(why) => write!(f, "refused: {why}"),
            SendError::NoAnswer(why) => write!(f, "no answer: {why}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Checks that `path` is a socket owned by this process's user or by
/// root, so that no other user can have put it there to receive clients.
pub fn check_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !m.file_type().is_socket() {
        return Err("not a socket".into());
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me && m.uid() != 0 {
        return Err(format!("owned by uid {}, not by {me} or root", m.uid()));
    }
    Ok(())
}

/// Connects to a Unix stream socket without waiting: a full backlog is
/// `WouldBlock` at once, not a wait. The socket is left blocking.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: plain system calls on a descriptor made here and owned by
    // `OwnedFd` at once; `addr` is a zeroed sockaddr_un filled in bounds.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_un = zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
        }
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        if libc::connect(fd, &addr as *const libc::sockaddr_un as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let s = UnixStream::from(owned);
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

/// Sends the message with `fd` on `s`, then waits up to `timeout` for
/// the answer.
pub fn send_message(
    s: &UnixStream,
    fd: BorrowedFd<'_>,
    meta: &Meta,
    data: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    let timeout = timeout.max(Duration::from_millis(1));
    s.set_write_timeout(Some(timeout)).map_err(SendError::Send)?;
    s.set_read_timeout(Some(timeout)).map_err(SendError::Send)?;
    let m = meta.encode();
    if data.len() > MAX_DATA {
        return Err(SendError::Send(io::Error::new(io::ErrorKind::InvalidInput, "too much data")));
    }
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4] = VERSION;
    header[8..12].copy_from_slice(&(m.len() as u32).to_be_bytes());
    header[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    send_with_fd(s, &header, fd).map_err(SendError::Send)?;
    let mut w = s;
    w.write_all(&m).and_then(|()| w.write_all(data)).map_err(SendError::Send)?;
    let line = read_line(s).map_err(|e| SendError::NoAnswer(e.to_string()))?;
    match Reply::decode(&line).map_err(SendError::NoAnswer)? {
        Reply::Ok => Ok(()),
        Reply::No(why) => Err(SendError::Refused(why)),
    }
}

/// Reads one line (at most 1024 bytes), without its newline.
fn read_line(mut s: &UnixStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed without an answer")),
            Ok(_) if b[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() < 1024 => line.push(b[0]),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "answer too long")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The space a control message with one descriptor takes.
fn cmsg_space() -> usize {
    // SAFETY: a pure computation.
    unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize }
}

/// Sends `bytes` (some of them at least; the rest with `write_all`) with
/// `fd` attached.
fn send_with_fd(s: &UnixStream, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut cbuf = vec![0u64; cmsg_space().div_ceil(8)];
    // SAFETY: the msghdr points at live buffers of the stated lengths; the
    // control buffer is aligned (u64) and CMSG_SPACE bytes long.
    let sent = unsafe {
        let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
        let mut msg: libc::msghdr = zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = cmsg_space() as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, fd.as_raw_fd());
        loop {
            let n = libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    };
    let mut w = s;
    w.write_all(&bytes[sent..])
}

/// Reads some bytes and the descriptors sent with them (made
/// close-on-exec).
fn recv_with_fds(s: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    // Room for a few descriptors, so extra ones are received and closed.
    let space = unsafe { libc::CMSG_SPACE((4 * size_of::<libc::c_int>()) as u32) as usize };
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: as in `send_with_fd`; every descriptor the kernel wrote is
    // taken into an `OwnedFd` once.
    unsafe {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let mut msg: libc::msghdr = zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / size_of::<libc::c_int>() {
                    let fd = std::ptr::read_unaligned((data as *const libc::c_int).add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too many descriptors"));
        }
        Ok((n, fds))
    }
}

/// Reads one message: the descriptor, the metadata, the data. Errors of
/// kind `InvalidData` are the sender's fault, and worth telling it.
pub fn recv_message(s: &UnixStream) -> io::Result<(OwnedFd, Meta, Vec<u8>)> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut header = [0u8; HEADER];
    let (n, mut fds) = recv_with_fds(s, &mut header)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a message"));
    }
    let mut r = s;
    r.read_exact(&mut header[n..])?;
    if &header[..4] != MAGIC {
        return Err(bad("not a handoff message".into()));
    }
    if header[4] != VERSION {
        return Err(bad(format!("version {} is not supported (1 is)", header[4])));
    }
    if fds.len() != 1 {
        return Err(bad(format!("{} descriptors sent, one expected", fds.len())));
    }
    let m_len = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    let d_len = u32::from_be_bytes(header[12..16].try_into().expect("4 bytes")) as usize;
    if m_len > MAX_META || d_len > MAX_DATA {
        return Err(bad("message too large".into()));
    }
    let mut m = vec![0u8; m_len];
    r.read_exact(&mut m)?;
    let meta = Meta::decode(&m).map_err(bad)?;
    let mut data = vec![0u8; d_len];
    r.read_exact(&mut data)?;
    if meta.head_len > data.len() {
        return Err(bad("head-len is longer than the data".into()));
    }
    Ok((fds.remove(0), meta, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            client: Some("192.0.2.1:4567".parse().unwrap()),
            server: Some("[2001:db8::1]:80".parse().unwrap()),
            remote: Some("127.0.0.1:4567".parse().unwrap()),
            local: Some("127.0.0.1:80".parse().unwrap()),
            xid: 1002,
            sess_xid: 1001,
            listener: "a0".into(),
            proxy: true,
            head_len: 18,
            endpoint: "app".into(),
        }
    }

    #[test]
    fn metadata_reads_back_as_written() {
        let m = meta();
        assert_eq!(Meta::decode(&m.encode()).unwrap(), m);
        assert_eq!(Meta::decode(b"xid: 1\nhead-len: 3\nfuture: x\n").unwrap().head_len, 3);
        assert!(Meta::decode(b"xid: 1\n").unwrap_err().contains("head-len"));
        assert!(Meta::decode(b"client: nowhere\nhead-len: 1\n").is_err());
    }

    #[test]
    fn answers_read_back_as_written() {
        assert_eq!(Reply::decode(b"OK").unwrap(), Reply::Ok);
        let no = Reply::No("busy\nnow".into()).encode();
        assert_eq!(no, b"NO busynow\n");
        assert_eq!(Reply::decode(&no[..no.len() - 1]).unwrap(), Reply::No("busynow".into()));
        assert!(Reply::decode(b"MAYBE").is_err());
    }

    #[test]
    fn a_descriptor_and_its_message_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut x, y) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let (fd, m, data) = recv_message(&b).unwrap();
            // The descriptor is the other end's socket: writing on it
            // reaches `x`.
            let mut s = UnixStream::from(fd);
            s.write_all(b"through").unwrap();
            (&b).write_all(b"OK\n").unwrap();
            (m, data)
        });
        send_message(&a, y.as_fd_borrowed(), &meta(), b"GET / HTTP/1.1\r\n\r\nbody", Duration::from_secs(5)).unwrap();
        let (m, data) = t.join().unwrap();
        assert_eq!(m, meta());
        assert_eq!(data, b"GET / HTTP/1.1\r\n\r\nbody");
        drop(y);
        let mut got = [0u8; 7];
        x.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through");
    }

    #[test]
    fn a_message_without_a_descriptor_or_of_another_version_is_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(MAGIC);
        h[4] = 1;
        (&a).write_all(&h).unwrap();
        let e = recv_message(&b).unwrap_err();
        assert!(e.to_string().contains("0 descriptors"), "{e}");
        let (a, b) = UnixStream::pair().unwrap();
        let (_x, y) = UnixStream::pair().unwrap();
        h[4] = 2;
        send_with_fd(&a, &h, y.as_fd_borrowed()).unwrap();
        let e = recv_message(&b).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
    }

    #[test]
    fn a_refusal_and_a_silence_are_told_apart() {
        let (a, b) = UnixStream::pair().unwrap();
        let (_x, y) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let _ = recv_message(&b).unwrap();
            (&b).write_all(b"NO full\n").unwrap();
        });
        let e = send_message(&a, y.as_fd_borrowed(), &meta(), b"GET / HTTP/1.1\r\n\r\n", Duration::from_secs(5))
            .unwrap_err();
        t.join().unwrap();
        assert!(matches!(&e, SendError::Refused(w) if w == "full"), "{e}");
        let (a, b) = UnixStream::pair().unwrap();
        let e = send_message(&a, y.as_fd_borrowed(), &meta(), b"GET / HTTP/1.1\r\n\r\n", Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(e, SendError::NoAnswer(_)), "{e}");
        drop(b);
        assert!(connect(Path::new("/nonexistent/handoff.sock")).is_err());
    }

    trait Borrowed {
        fn as_fd_borrowed(&self) -> BorrowedFd<'_>;
    }
    impl Borrowed for UnixStream {
        fn as_fd_borrowed(&self) -> BorrowedFd<'_> {
            std::os::fd::AsFd::as_fd(self)
        }
    }
}
