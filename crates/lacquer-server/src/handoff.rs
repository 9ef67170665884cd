//! Connection handoff, the server's side: a module called in `vcl_recv`
//! may take the client connection ([`lacquer_module::Host::connection`])
//! and hand it to another local process, which then answers on it
//! directly — a `return (pipe)` whose other end is a process that
//! speaks HTTP itself, with Lacquer out of the path.
//!
//! The module gets a *duplicate* of the socket's descriptor, the head as
//! received and the bytes that came after it (the session's `rest`,
//! lent to the request while `vcl_recv` runs), and the addresses. It then
//! ends the request ([`lacquer_module::Host::end_request`]):
//!
//! - [`RequestEnd::HandedOff`]: the VCL stops at once, the request takes
//!   the `Handoff` step (`VCL_return handoff`, a `Timestamp Handoff:`,
//!   `MAIN.s_handoff`), and the session ends with `SessClose TX_HANDOFF`
//!   (`MAIN.sc_tx_handoff`) *without writing anything or shutting the
//!   socket down*: it only closes its own descriptor, so the process that
//!   holds the other copy owns the connection.
//! - [`RequestEnd::Synth`]: the VCL stops and the request goes to
//!   `vcl_synth` with that status, as `return (synth(…))` would.
//!
//! Stopping the VCL: after a statement call that ended the request,
//! `ReqCtx::call_mut` answers a failure, which unwinds the interpreter;
//! [`stopped`] then turns it into the module's ending instead of a VCL
//! failure.

use std::os::fd::{BorrowedFd, RawFd};

use lacquer_defs::Action;
use lacquer_module::{ConnInfo, Connection, Failure, RequestEnd};
use lacquer_vcl::Handling;

use crate::http1::Sess;
use crate::req_fsm::{Req, ReqStep};

/// The connection as a request sees it, for a module to take.
pub(crate) struct Conn {
    /// The session's descriptor of the client socket (borrowed: the
    /// session owns it).
    fd: RawFd,
    /// The session's unread bytes, lent while `vcl_recv` runs.
    pub rest: Vec<u8>,
    /// How a module ended the request, if one did.
    pub end: Option<RequestEnd>,
}

impl Conn {
    pub fn new(fd: RawFd) -> Conn {
        Conn { fd, rest: Vec::new(), end: None }
    }

    /// The client socket, for socket options (`std.set_ip_tos`); the
    /// session still owns it.
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

/// Runs `recv` (the `Recv` step) with the session's unread bytes lent to
/// the request, so a module can take them with the connection.
pub(crate) fn lend_rest(req: &mut Req, sp: &mut Sess, recv: fn(&mut Req) -> ReqStep) -> ReqStep {
    req.conn.rest = std::mem::take(&mut sp.rest);
    let step = recv(req);
    sp.rest = std::mem::take(&mut req.conn.rest);
    step
}

/// What [`lacquer_module::Host::connection`] answers for a request.
pub(crate) fn connection(req: &Req) -> Result<Connection, Failure> {
    if req.conn.end.is_some() {
        return Err(Failure("the request has ended already".into()));
    }
    if req.esi_level > 0 {
        return Err(Failure("an ESI include has no connection of its own".into()));
    }
    // SAFETY: the session owns `fd` and outlives the request.
    let fd = unsafe { BorrowedFd::borrow_raw(req.conn.fd) }
        .try_clone_to_owned()
        .map_err(|e| Failure(format!("cannot duplicate the client socket: {e}")))?;
    let mut received = Vec::with_capacity(req.req.buf.len() + req.conn.rest.len());
    received.extend_from_slice(&req.req.buf);
    received.extend_from_slice(&req.conn.rest);
    let ep = &req.ep;
    let listener = req.shared.sockets.get(ep.socket);
    let info = ConnInfo {
        client: ep.client,
        server: ep.server,
        remote: ep.remote,
        local: ep.local,
        xid: req.vxid,
        sess_xid: req.sess_vxid,
        listener: listener.map_or_else(String::new, |l| l.name.clone()),
        proxy: listener.is_some_and(|l| l.proxy),
    };
    Ok(Connection { fd, received, head_len: req.req.buf.len(), info })
}

/// What [`lacquer_module::Host::end_request`] does for a request.
pub(crate) fn end_request(req: &mut Req, end: RequestEnd) -> Result<(), Failure> {
    if req.conn.end.is_some() {
        return Err(Failure("the request has ended already".into()));
    }
    if req.esi_level > 0 {
        return Err(Failure("an ESI include has no connection of its own".into()));
    }
    req.conn.end = Some(end);
    Ok(())
}

/// The handling a module's ending stands for, when the VCL stopped
/// because of it; `None` when the VCL failed on its own.
pub(crate) fn stopped(req: &Req) -> Option<Handling> {
    match req.conn.end.as_ref()? {
        // The request step turns this into `Handoff` (see `cnt_recv`).
        RequestEnd::HandedOff { .. } => Some(Handling::plain(Action::Fail)),
        RequestEnd::Synth { status, reason, .. } => {
            let mut h = Handling::plain(Action::Synth);
            h.status = Some(i64::from(*status));
            h.reason = Some(reason.clone().into_bytes());
            Some(h)
        }
    }
}

/// The word `VCL_return` logs for a subroutine a module stopped.
pub(crate) fn return_word(req: &Req) -> Option<&'static str> {
    match req.conn.end.as_ref()? {
        RequestEnd::HandedOff { .. } => Some("handoff"),
        RequestEnd::Synth { .. } => Some("synth"),
    }
}

/// The `Handoff` step: the connection is another process's now. Nothing
/// is written; the session closes its descriptor (`TX_HANDOFF`).
pub(crate) fn cnt_handoff(req: &mut Req) -> ReqStep {
    req.shared.stats.s_handoff.inc();
    req.vsl.timestamp("Handoff", crate::msg::now());
    req.doclose = true;
    req.close = "TX_HANDOFF";
    ReqStep::Finish
}

/// Where `vcl_recv` leads when a module ended the request: the `Handoff`
/// step, or on to the synthetic response (the connection closing after
/// it when the module said so).
pub(crate) fn after_recv(req: &mut Req) -> Option<ReqStep> {
    match req.conn.end {
        Some(RequestEnd::HandedOff { .. }) => Some(ReqStep::Handoff),
        Some(RequestEnd::Synth { close: true, .. }) => {
            req.doclose = true;
            req.close = "RESP_CLOSE";
            None
        }
        _ => None,
    }
}
