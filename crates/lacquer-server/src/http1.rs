//! The HTTP/1 client session (Varnish's `cache_http1_fsm.c`): reads a
//! request head off the connection, hands it to the request state machine,
//! and loops while the connection may be kept alive. Bytes that arrive
//! beyond a request (its body, or the next pipelined request) stay in the
//! session's `rest` buffer, so pipelining needs nothing special.

use std::sync::Arc;

use lacquer_http::{BodyDecoder, Head, HeadError, Parsed};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use std::os::fd::AsRawFd;

use lacquer_shm::{Side, Tag};
use lacquer_vcl::conv::ipaddr_to_string;

use crate::acceptor::ClientStream;
use crate::ctx::Endpoints;
use crate::fetch::read_some;
use crate::msg::now;
use crate::msg::Msg;
use crate::proxy;
use crate::req_fsm::{self, Req};
use crate::vsl::Vsl;
use crate::Shared;

/// One client connection.
pub(crate) struct Sess {
    pub stream: ClientStream,
    /// Bytes received and not yet used: a body, or the next request.
    pub rest: Vec<u8>,
    pub ep: Endpoints,
    pub vxid: u64,
    /// This connection's timeouts, which VCL may change (`sess.*`).
    pub timeouts: Timeouts,
    shutdown: watch::Receiver<bool>,
    /// The session's log: `SessOpen`, a `Link` per request, `SessClose`.
    pub vsl: Vsl,
    /// Request body bytes read for the request being served (`ReqAcct`).
    pub body_in: u64,
    /// Modules' PRIV_SESS state, released when the connection closes.
    pub privs: crate::vmod::Privs,
    /// The session's workspace, lent to each request like `privs`.
    pub ws: crate::ws::Ws,
    /// Why the session ends, as `SessClose` says it (Varnish's
    /// `sess_close` reasons).
    pub close: &'static str,
    pub t_open: f64,
}

/// A session's timeouts, in seconds: the parameters of the same names to
/// begin with, then whatever VCL sets in `sess.timeout_idle`,
/// `sess.send_timeout`, `sess.idle_send_timeout` and `sess.timeout_linger`
/// for the rest of the connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timeouts {
    /// How long to wait for (the rest of) a request head or body.
    pub idle: f64,
    /// How long a response may take to send in all.
    pub send: f64,
    /// How long one write may stall.
    pub idle_send: f64,
    /// Kept for VCL; tokio parks idle connections for free, so Lacquer has
    /// no waiter hand-off for it to tune.
    pub linger: f64,
}

impl Timeouts {
    fn new(p: &crate::Params) -> Timeouts {
        Timeouts {
            idle: p.timeout_idle,
            send: p.send_timeout,
            idle_send: p.idle_send_timeout,
            linger: p.timeout_linger,
        }
    }
}

impl Sess {
    /// Writes `bytes` to the client, as Varnish's `send_timeout` and
    /// `idle_send_timeout` bound it: a write that stalls for
    /// `idle_send_timeout` is given up once the response, begun at
    /// `since`, has also been sending for `send_timeout`. Answers whether
    /// it was all written; on `false` the connection is to be closed.
    pub async fn send(&mut self, bytes: &[u8], since: tokio::time::Instant) -> bool {
        let deadline = self.send_deadline(since);
        matches!(tokio::time::timeout_at(deadline, self.stream.write_all(bytes)).await, Ok(Ok(())))
    }

    /// Writes several pieces with as few system calls as the socket allows
    /// (`writev`), under the same timeouts as [`Sess::send`].
    pub async fn send_all(&mut self, pieces: &[&[u8]], since: tokio::time::Instant) -> bool {
        let deadline = self.send_deadline(since);
        let write = async {
            let (mut i, mut off) = (0, 0);
            while i < pieces.len() {
                let mut slices = Vec::with_capacity(pieces.len() - i);
                slices.push(std::io::IoSlice::new(&pieces[i][off..]));
                slices.extend(pieces[i + 1..].iter().map(|p| std::io::IoSlice::new(p)));
                let mut n = self.stream.write_vectored(&slices).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                while i < pieces.len() && n >= pieces[i].len() - off {
                    n -= pieces[i].len() - off;
                    i += 1;
                    off = 0;
                }
                off += n;
            }
            Ok::<(), std::io::Error>(())
        };
        matches!(tokio::time::timeout_at(deadline, write).await, Ok(Ok(())))
    }

    /// When a write begun now is given up: it may stall `idle_send_timeout`,
    /// or longer while the response, begun at `since`, is within
    /// `send_timeout`.
    fn send_deadline(&self, since: tokio::time::Instant) -> tokio::time::Instant {
        let t = self.timeouts;
        (tokio::time::Instant::now() + crate::fetch::secs(t.idle_send)).max(since + crate::fetch::secs(t.send))
    }
}

/// How reading a request head ended.
enum HeadRead {
    /// A request.
    Req(Msg),
    /// The client closed, went idle too long, or the server is stopping:
    /// the `SessClose` reason.
    Gone(&'static str),
    /// A head that lacquer-http refused, and why in the log's words.
    Bad(HeadError, String),
}

/// Serves one connection until it closes. `_alive` is dropped when the
/// session ends, which is how the acceptor knows every session is done.
pub(crate) async fn session(
    shared: Arc<Shared>,
    stream: ClientStream,
    ep: Endpoints,
    shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let timeouts = Timeouts::new(&shared.params.get());
    shared.stats.sess_conn.inc();
    shared.stats.s_sess.inc();
    let vxid = crate::next_vxid();
    let t_open = now();
    let mut vsl = Vsl::new(&shared.log, vxid, Side::Client, t_open);
    let proxy = shared.sockets.get(ep.socket).is_some_and(|l| l.proxy);
    vsl.str(Tag::Begin, if proxy { "sess 0 PROXY" } else { "sess 0 HTTP/1" });
    let sock = shared.sockets.get(ep.socket).map_or("", |l| l.name.as_str());
    vsl.fmt(
        Tag::SessOpen,
        format_args!(
            "{} {} {sock} {} {} {t_open:.6} {}",
            ipaddr_to_string(ep.remote.ip()),
            ep.remote.port(),
            ipaddr_to_string(ep.local.ip()),
            ep.local.port(),
            stream.as_raw_fd()
        ),
    );
    shared.modules.notify(lacquer_module::server_events::CONN_OPEN, || {
        format!("{vxid} {} {} {sock}", ipaddr_to_string(ep.client.ip()), ep.client.port())
    });
    let mut sp = Sess {
        stream,
        rest: Vec::new(),
        ep,
        vxid,
        timeouts,
        shutdown,
        vsl,
        body_in: 0,
        privs: Default::default(),
        ws: crate::ws::Ws::session(&shared.params.get()),
        close: "REM_CLOSE",
        t_open,
    };
    if !proxy || proxy_preamble(&mut sp).await {
        serve(&shared, &mut sp).await;
    }
    // A connection handed to another process is that process's: no
    // shutdown, only our descriptor closes (handoff.rs).
    if sp.close != "TX_HANDOFF" {
        let _ = sp.stream.shutdown().await;
    }
    let dur = now() - sp.t_open;
    let close = sp.close;
    sp.vsl.fmt(Tag::SessClose, format_args!("{close} {dur:.3}"));
    shared.modules.notify(lacquer_module::server_events::CONN_CLOSE, || format!("{} {close}", sp.vxid));
    let m = &shared.stats;
    if lacquer_module::Workspace::overflowed(&sp.ws) {
        m.ws_session_overflow.inc();
    }
    m.sess_closed.inc();
    match close {
        "REM_CLOSE" => m.sc_rem_close.inc(),
        "REQ_CLOSE" => m.sc_req_close.inc(),
        "REQ_HTTP10" => m.sc_req_http10.inc(),
        "RX_BAD" => m.sc_rx_bad.inc(),
        "RX_BODY" => m.sc_rx_body.inc(),
        "RX_JUNK" => m.sc_rx_junk.inc(),
        "RX_OVERFLOW" => m.sc_rx_overflow.inc(),
        "RX_TIMEOUT" => m.sc_rx_timeout.inc(),
        "TX_PIPE" => m.sc_tx_pipe.inc(),
        "TX_HANDOFF" => m.sc_tx_handoff.inc(),
        "TX_ERROR" => m.sc_tx_error.inc(),
        "TX_EOF" => m.sc_tx_eof.inc(),
        "RESP_CLOSE" => m.sc_resp_close.inc(),
        "VCL_FAILURE" => m.sc_vcl_failure.inc(),
        _ => {}
    }
    if !matches!(close, "REM_CLOSE" | "REQ_CLOSE" | "REQ_HTTP10" | "TX_PIPE" | "TX_HANDOFF" | "TX_EOF" | "RESP_CLOSE") {
        m.sess_closed_err.inc();
    }
    sp.vsl.end();
}

/// Serves requests on the connection until it is to close, `sp.close`
/// saying why.
async fn serve(shared: &Arc<Shared>, sp: &mut Sess) {
    loop {
        let msg = match read_head(shared, sp).await {
            HeadRead::Req(m) => m,
            HeadRead::Gone(why) => {
                sp.close = why;
                break;
            }
            HeadRead::Bad(e, why) => {
                bad_request(shared, sp, e, &why).await;
                break;
            }
        };
        // The active VCL; `start` refuses to accept without one, and none
        // can be taken away while it is active.
        let Some(vcl) = shared.vcls.active() else {
            sp.close = "REQ_CLOSE";
            break;
        };
        let mut req = Req::new(shared.clone(), vcl, sp, msg);
        *req.sess_privs.get_mut() = std::mem::take(&mut sp.privs);
        req.sess_ws = std::mem::take(&mut sp.ws);
        shared.stats.client_req.inc();
        sp.body_in = 0;
        sp.vsl.fmt(Tag::Link, format_args!("req {} rxreq", req.vxid));
        req_fsm::run(&mut req, sp).await;
        sp.privs = std::mem::take(req.sess_privs.get_mut());
        sp.ws = std::mem::take(&mut req.sess_ws);
        if req.doclose {
            sp.close = req.close;
            break;
        }
        if *sp.shutdown.borrow() {
            break;
        }
    }
}

/// Reads the PROXY header a `,PROXY` listener's connections open with
/// and takes the addresses it gives; the bytes after it are the start of
/// the HTTP/1 session. `false` when the session is to close, `sp.close`
/// saying why.
async fn proxy_preamble(sp: &mut Sess) -> bool {
    let deadline = tokio::time::Instant::now() + crate::fetch::secs(sp.timeouts.idle);
    let buf = match proxy::receive(&mut sp.stream, deadline, &mut sp.shutdown).await {
        Ok(buf) => buf,
        Err(why) => {
            sp.close = why;
            return false;
        }
    };
    let vsl = &mut sp.vsl;
    match proxy::parse(&buf, &mut |tag, text| vsl.str(tag, &text)) {
        Ok(h) => {
            if !crate::ws::proxy_tlvs(&sp.ws, h.tlv_len) {
                sp.vsl.str(Tag::Error, "insufficient workspace (proto_priv)");
                sp.close = "RX_JUNK";
                return false;
            }
            sp.rest = buf[h.len..].to_vec();
            if h.tlv_len > 0 {
                sp.ep.proxy_tlvs = Some(Arc::from(&buf[h.len - h.tlv_len..h.len]));
            }
            if let Some(a) = h.addrs {
                sp.ep.client = a.client;
                sp.ep.server = a.server;
                sp.ep.client_text = a.text.map(Arc::new);
            }
            true
        }
        Err(()) => {
            sp.close = "RX_JUNK";
            false
        }
    }
}

/// Answers a head lacquer-http refused (400, or nothing for an oversized
/// head), logged as Varnish logs it: a request transaction with the reason
/// in `BogoHeader`, and the session closed as junk or a bad request.
async fn bad_request(shared: &Shared, sp: &mut Sess, e: HeadError, why: &str) {
    use lacquer_http::HeadErrorKind as K;
    let vxid = crate::next_vxid();
    let t = now();
    sp.vsl.fmt(Tag::Link, format_args!("req {vxid} rxreq"));
    let mut vsl = Vsl::new(&shared.log, vxid, Side::Client, t);
    vsl.fmt(Tag::Begin, format_args!("req {} rxreq", sp.vxid));
    vsl.timestamp("Start", t);
    vsl.timestamp("Req", t);
    vsl.str(Tag::BogoHeader, why);
    shared.stats.client_req_400.inc();
    if let Some(status) = e.status() {
        let reason = crate::msg::reason(status);
        vsl.str(Tag::RespProtocol, "HTTP/1.1");
        vsl.fmt(Tag::RespStatus, format_args!("{status}"));
        vsl.str(Tag::RespReason, reason);
        let line = format!("HTTP/1.1 {status} {reason}\r\n\r\n");
        let _ = sp.send(line.as_bytes(), tokio::time::Instant::now()).await;
    }
    vsl.end();
    sp.close = match e.kind {
        K::Overflow => "RX_OVERFLOW",
        K::DuplicateContentLength
        | K::BadContentLength
        | K::BadTransferEncoding
        | K::TransferEncodingWithContentLength
        | K::BodyWithoutLength => "RX_BAD",
        _ => "RX_JUNK",
    };
}

/// Why a head was refused, as Varnish's `BogoHeader` says it when a header
/// line is at fault (naming the line, or its first control byte), else
/// lacquer-http's own words.
fn bogo_header(e: &HeadError, head: &Head, buf: &[u8]) -> String {
    use lacquer_http::HeadErrorKind as K;
    let Some(line) = head.bad_line().and_then(|r| buf.get(r)) else {
        return e.kind.to_string();
    };
    // Varnish shows at most 20 bytes of the line.
    let shown = String::from_utf8_lossy(&line[..line.len().min(20)]).into_owned();
    match e.kind {
        K::ControlByte => match line.iter().find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            Some(b) => format!("Header has ctrl char 0x{b:02x}"),
            None => e.kind.to_string(),
        },
        K::FoldWithoutHeader => format!("1st header has white space: {shown}"),
        // The name ends at a ':' only when there is none.
        K::BadHeaderName(b':') => format!("Missing header name: {shown}"),
        _ => e.kind.to_string(),
    }
}

/// Reads until a whole request head is in the buffer, within
/// `timeout_idle`. While nothing of a request has arrived the wait also
/// ends when the server stops.
async fn read_head(shared: &Shared, sp: &mut Sess) -> HeadRead {
    let limits = shared.params.get().req_limits();
    let mut buf = std::mem::take(&mut sp.rest);
    // Bytes of this request came with the last one (pipelining).
    if !buf.iter().all(|b| b.is_ascii_whitespace()) {
        shared.stats.sess_readahead.inc();
    }
    let mut head = Head::new();
    let deadline = tokio::time::Instant::now() + crate::fetch::secs(sp.timeouts.idle);
    loop {
        if !buf.is_empty() {
            match head.parse_request(&buf, &limits) {
                Ok(Parsed::Complete(n)) => {
                    sp.rest = buf.split_off(n);
                    return HeadRead::Req(Msg { buf, head });
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return HeadRead::Bad(e, bogo_header(&e, &head, &buf)),
            }
        }
        buf.reserve(16384);
        let idle = buf.iter().all(|b| b.is_ascii_whitespace());
        if idle && *sp.shutdown.borrow() {
            return HeadRead::Gone("REM_CLOSE");
        }
        let read = tokio::time::timeout_at(deadline, tokio::io::AsyncReadExt::read_buf(&mut sp.stream, &mut buf));
        let n = if idle {
            tokio::select! {
                r = read => r,
                _ = sp.shutdown.changed() => return HeadRead::Gone("REM_CLOSE"),
            }
        } else {
            read.await
        };
        match n {
            Ok(Ok(0)) if buf.is_empty() => return HeadRead::Gone("REM_CLOSE"),
            Ok(Ok(0)) | Ok(Err(_)) => return HeadRead::Gone("RX_JUNK"),
            Err(_) if idle => return HeadRead::Gone("RX_TIMEOUT"),
            Err(_) => return HeadRead::Gone("RX_TIMEOUT"),
            Ok(Ok(_)) => {}
        }
    }
}

/// Feeds the request body to `sink`, reading the connection as needed.
/// Bytes past the body stay in `sp.rest`.
pub(crate) async fn pull_body(sp: &mut Sess, dec: &mut BodyDecoder, mut sink: impl FnMut(&[u8])) -> Result<(), ()> {
    loop {
        let d = dec.decode(&sp.rest).map_err(|_| ())?;
        sink(d.data);
        let (consumed, done) = (d.consumed, d.done);
        sp.rest.drain(..consumed);
        sp.body_in += consumed as u64;
        if done {
            return Ok(());
        }
        if consumed > 0 {
            continue;
        }
        match read_some(&mut sp.stream, &mut sp.rest, sp.timeouts.idle).await {
            Ok(0) => return dec.finish().map_err(|_| ()),
            Ok(_) => {}
            Err(_) => return Err(()),
        }
    }
}

/// Why forwarding a request body stopped before its end.
pub(crate) enum Pump {
    /// The client failed: it closed, stalled past `timeout_idle`, or sent a
    /// body that does not decode. The connection cannot be kept.
    Client,
    /// The fetch stopped taking the body; the rest is still to be read.
    Gone,
}

/// Forwards the request body to a fetch piece by piece as it arrives, and
/// tells the fetch with an `Err` piece when the client fails mid-body.
/// Safe to cancel: each piece leaves the session's buffer before it is
/// handed on, so what remains can still be read by [`pull_body`].
pub(crate) async fn pump_body(
    sp: &mut Sess,
    dec: &mut BodyDecoder,
    tx: mpsc::Sender<Result<Vec<u8>, ()>>,
) -> Result<(), Pump> {
    let fail = |tx: mpsc::Sender<Result<Vec<u8>, ()>>| async move {
        let _ = tx.send(Err(())).await;
        Err(Pump::Client)
    };
    loop {
        let Ok(d) = dec.decode(&sp.rest) else { return fail(tx).await };
        let (piece, consumed, done) = (d.data.to_vec(), d.consumed, d.done);
        sp.rest.drain(..consumed);
        sp.body_in += consumed as u64;
        if !piece.is_empty() && tx.send(Ok(piece)).await.is_err() {
            return Err(Pump::Gone);
        }
        if done {
            return Ok(());
        }
        if consumed > 0 {
            continue;
        }
        match read_some(&mut sp.stream, &mut sp.rest, sp.timeouts.idle).await {
            Ok(0) if dec.finish().is_ok() => return Ok(()),
            Ok(0) | Err(_) => return fail(tx).await,
            Ok(_) => {}
        }
    }
}
