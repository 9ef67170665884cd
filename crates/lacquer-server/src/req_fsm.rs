//! The client request state machine (Varnish's `cache_req_fsm.c`): one
//! [`ReqStep`] per state, one `cnt_*` function per step, and one transition
//! loop, [`run`]. The diagram is in the crate's documentation.

use std::sync::Arc;

use lacquer_cache::{BodyReader, Busy, Lifetime, Lookup, ObjCore, Object, Published, Want};
use lacquer_defs::{Action, Method};
use lacquer_http::{BodyDecoder, ChunkedEncoder, Framing, LAST_CHUNK};
use lacquer_shm::{Side, Tag};
use lacquer_vcl::program::BackendId;
use lacquer_vcl::Handling;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ctx::{Endpoints, ReqCtx};
use crate::deliver;
use crate::esi::{self, Instr};
use crate::fetch::{self, BeBody, Bo, Fetched, ReqBody};
use crate::gzip;
use crate::http1::{pull_body, pump_body, Pump, Sess, Timeouts};
use crate::msg::{http_date, now, reason, wire_status, Msg};
use crate::vcl::Vcl;
use crate::ved::EsiBody;
use crate::vsl::{self, Vsl};
use crate::Shared;

/// The steps of a client request (Varnish's `REQ_STEPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqStep {
    /// Protocol work before VCL: `Expect`, `Connection`, `X-Forwarded-For`.
    Transport,
    /// Counts a restart and goes back to `Recv`, or to a 503.
    Restart,
    /// Runs `vcl_recv` (and `vcl_hash` when it returns `hash` or `purge`).
    Recv,
    /// Runs `vcl_pipe` and tunnels bytes both ways.
    Pipe,
    /// Runs `vcl_pass`.
    Pass,
    /// Looks the hash up in the cache, waiting while another request
    /// fetches the object.
    Lookup,
    /// Runs `vcl_hit` on an object found in the cache.
    Hit,
    /// Runs `vcl_purge`.
    Purge,
    /// Runs `vcl_miss`.
    Miss,
    /// Runs the backend fetch task and waits for its response head.
    Fetch,
    /// Runs `vcl_deliver` on the response made from the fetched one.
    Deliver,
    /// A VCL failure: a 503 through `vcl_synth`, then close.
    VclFail,
    /// Runs `vcl_synth` on a synthetic response.
    Synth,
    /// Writes the response and its body.
    Transmit,
    /// Reads any unread request body, so the next request can start.
    Finish,
    /// The connection went to another process (`handoff.rs`): nothing is
    /// written, the session forgets it.
    Handoff,
}

/// The body of the response being delivered.
enum RespBody {
    None,
    /// The synthetic body in `Req::synth_body`.
    Synth,
    Fetched(BeBody),
}

/// One client request, across restarts.
pub(crate) struct Req {
    pub shared: Arc<Shared>,
    /// The VCL the request runs: the active one when it came, kept to its
    /// end (restarts included) and lent to its fetches.
    pub vcl: Arc<Vcl>,
    pub vxid: u64,
    pub bereq_vxid: u64,
    pub sess_vxid: u64,
    pub ep: Endpoints,
    pub restarts: u32,
    pub t_req: f64,
    pub t_resp: f64,
    pub req: Msg,
    body: BodyDecoder,
    /// The body, when it was all at hand for a pass (kept for retries and
    /// restarts).
    body_cached: Option<Arc<Vec<u8>>>,
    /// Whether the body was read to its end (or there is none).
    body_done: bool,
    /// Whether the body was streamed to a backend, so it cannot be sent
    /// again (Varnish's `BS_TAKEN`).
    body_taken: bool,
    pub bereq: Option<Msg>,
    pub resp: Option<Msg>,
    resp_body: RespBody,
    pub synth_body: Vec<u8>,
    err_code: u16,
    err_reason: Option<Vec<u8>>,
    pub backend_hint: Option<BackendId>,
    pub hash: Vec<u8>,
    pub hash_always_miss: bool,
    pub hash_ignore_busy: bool,
    pub hash_ignore_vary: bool,
    /// `req.storage`: where a cached request body would go (by index).
    pub storage: Option<usize>,
    /// The status the response went out with (0 before it did).
    pub resp_status: u16,
    /// `client.identity` as VCL set it (the client's address until then);
    /// fetches inherit it.
    pub client_identity: Option<String>,
    pub ttl: f64,
    pub grace: f64,
    /// Whether the fetch being made is a pass (not a miss).
    pass: bool,
    /// Whether the connection closes after this request.
    pub doclose: bool,
    /// Why, as `SessClose` says it.
    pub close: &'static str,
    /// The cached object being delivered (`obj.*`): found by the lookup,
    /// or made by this request's fetch.
    pub obj: Option<Published<Msg>>,
    /// The busy object a miss fetches into.
    busy: Option<Busy<Msg>>,
    /// The stale object a miss may revalidate instead of fetching anew.
    stale: Option<Published<Msg>>,
    /// The busy object a hit in grace refreshes in the background.
    bgfetch: Option<Busy<Msg>>,
    pub is_hitmiss: bool,
    pub is_hitpass: bool,
    /// The lookup found an object (Varnish's `is_hit`): it stays so when
    /// `vcl_hit` passes, and `X-Varnish` then names the pass's fetch.
    is_hit: bool,
    /// The lifetimes of the response being delivered when it was fetched
    /// (its `t_origin`: when it was made, less its age), or found.
    pub life: Option<Lifetime>,
    /// The session's timeouts as VCL sees and sets them (`sess.*`); they
    /// go back to the session when the response is sent.
    pub timeouts: Timeouts,
    /// The parameters as they were when the request came.
    pub params: Arc<crate::Params>,
    /// The request's log.
    pub vsl: Vsl,
    /// Modules' PRIV_TASK and PRIV_TOP state, released with the request.
    pub privs: std::cell::RefCell<crate::vmod::Privs>,
    /// Modules' PRIV_SESS state, lent by the session for the request.
    pub sess_privs: std::cell::RefCell<crate::vmod::Privs>,
    /// The request's workspace (`workspace_client`): what VCL and modules
    /// keep for the request is charged to it (see `ws.rs`).
    pub ws: crate::ws::Ws,
    /// The workspace's use once the head was received: where a VCL
    /// failure or `std.rollback(req)` rolls it back to (Varnish's
    /// `req->ws_req`).
    pub ws_req: usize,
    /// The session's workspace, lent by the session for the request.
    pub sess_ws: crate::ws::Ws,
    /// The worker's scratch workspace (`workspace_thread`).
    pub thr_ws: crate::ws::Ws,
    /// Records of what expressions did (module calls' `VCL_Log` lines,
    /// `+log` ACLs' verdicts), which cannot log as they run: logged
    /// before the next thing VCL logs, or when the subroutine returns.
    pub module_logs: std::cell::RefCell<Vec<(Tag, Vec<u8>)>>,
    /// The VCL the request started with, once `return (vcl(LABEL))` has
    /// switched it to the labelled one (Varnish's `req->vcl0`).
    pub vcl0: Option<Arc<Vcl>>,
    /// A piped request's `PipeAcct` (request head, backend request head,
    /// bytes piped each way), logged instead of `ReqAcct`.
    piped: Option<[u64; 4]>,
    /// Bytes of response head and body written (`ReqAcct`).
    resp_hdr_bytes: u64,
    resp_body_bytes: u64,
    /// The client connection, for a module to hand over (`handoff.rs`).
    pub conn: crate::handoff::Conn,
    /// How deep in ESI includes the request is (`req.esi_level`): 0 for a
    /// client's own request.
    pub esi_level: u32,
    /// The request as the client sent it, before VCL changed it
    /// (Varnish's `http0`): what ESI includes start from.
    pub req0: Option<Msg>,
    /// The top request's head and time (`req_top.*`), in an ESI include.
    pub top: Option<Arc<(Msg, f64)>>,
    /// `req.esi` (VCL 4.0): whether ESI instructions are followed at all.
    pub esi: bool,
    /// `resp.do_esi` as VCL set it; unset, it is `obj.can_esi`.
    pub do_esi: Option<bool>,
    /// `resp.filters` as VCL set it; the default list until then.
    pub filters: Option<String>,
    /// Where the body goes when it is part of an ESI delivery (`ved.rs`):
    /// the top request's writer, lent to each include in turn.
    pub esi_out: Option<crate::ved::EsiOut>,
}

impl Req {
    /// A request received on `sp`, to run `vcl`.
    pub fn new(shared: Arc<Shared>, vcl: Arc<Vcl>, sp: &Sess, req: Msg) -> Req {
        let vxid = crate::next_vxid();
        let t_req = now();
        let mut vsl = Vsl::new(&shared.log, vxid, Side::Client, t_req);
        vsl.fmt(Tag::Begin, format_args!("req {} rxreq", sp.vxid));
        vsl.timestamp("Start", t_req);
        vsl.timestamp("Req", t_req);
        Req::with_log(shared, vcl, sp, req, vxid, vsl, t_req)
    }

    /// A request whose transaction `vxid` has begun in `vsl`.
    pub fn with_log(shared: Arc<Shared>, vcl: Arc<Vcl>, sp: &Sess, req: Msg, vxid: u64, vsl: Vsl, t_req: f64) -> Req {
        let framing = req.head.framing();
        let backend_hint = vcl.program.default_backend;
        let params = shared.params.get();
        // The head as received stays in the workspace, as Varnish's
        // receive buffer does.
        let ws = crate::ws::Ws::client(&params);
        lacquer_module::Workspace::alloc(&ws, req.buf.len());
        Req {
            esi_level: 0,
            req0: None,
            top: None,
            esi: true,
            do_esi: None,
            filters: None,
            esi_out: None,
            ws_req: ws.mark(),
            ws,
            sess_ws: Default::default(),
            thr_ws: crate::ws::Ws::thread(&params),
            params,
            vsl,
            privs: Default::default(),
            sess_privs: Default::default(),
            module_logs: Default::default(),
            resp_hdr_bytes: 0,
            resp_body_bytes: 0,
            piped: None,
            vcl0: None,
            conn: crate::handoff::Conn::new(std::os::fd::AsRawFd::as_raw_fd(&sp.stream)),
            shared,
            vcl,
            vxid,
            bereq_vxid: 0,
            sess_vxid: sp.vxid,
            ep: sp.ep.clone(),
            restarts: 0,
            t_req,
            t_resp: 0.0,
            body: BodyDecoder::new(framing),
            body_cached: None,
            body_done: framing == Framing::None,
            body_taken: false,
            req,
            bereq: None,
            resp: None,
            resp_body: RespBody::None,
            synth_body: Vec::new(),
            err_code: 0,
            err_reason: None,
            backend_hint,
            hash: Vec::new(),
            hash_always_miss: false,
            hash_ignore_busy: false,
            hash_ignore_vary: false,
            storage: None,
            client_identity: None,
            resp_status: 0,
            ttl: -1.0,
            grace: -1.0,
            pass: false,
            doclose: false,
            close: "REQ_CLOSE",
            obj: None,
            busy: None,
            stale: None,
            bgfetch: None,
            is_hitmiss: false,
            is_hitpass: false,
            is_hit: false,
            life: None,
            timeouts: sp.timeouts,
        }
    }

    /// Whether the response body is still arriving from a backend.
    pub fn is_streaming(&self) -> bool {
        match &self.resp_body {
            RespBody::Fetched(BeBody::Stream { .. }) => true,
            RespBody::Fetched(BeBody::Object(_, obj)) => obj.is_open(),
            _ => false,
        }
    }

    /// Whether a gzip body goes out gunzipped to this client: one a fetch
    /// filter made or checked as gzip (a Content-Encoding VCL set by hand
    /// is taken at its word), to a client that does not take gzip.
    fn wants_gunzip(&self, body: &RespBody, resp: &Msg) -> bool {
        let body_gzipped = match body {
            RespBody::Fetched(BeBody::Object(_, obj)) => obj.gzipped(),
            RespBody::Fetched(BeBody::Stream { gzipped, .. }) => *gzipped,
            _ => true,
        };
        self.params.http_gzip_support != 0.0 && body_gzipped && gzip::is_gzip(resp) && !gzip::accepts_gzip(&self.req)
    }

    /// The delivery filters (VDPs) as varnishd picks them
    /// (`resp_default_filter_list`), what `resp.filters` reads until VCL
    /// sets it: esi for an object with ESI instructions to follow, gunzip
    /// for a client that does not take the gzip body, range for a Range
    /// request on a 200.
    pub fn default_resp_filters(&self) -> String {
        let Some(resp) = &self.resp else { return String::new() };
        let mut names = Vec::new();
        if self.esi && self.can_esi() && self.do_esi != Some(false) {
            names.push("esi");
        }
        if self.wants_gunzip(&self.resp_body, resp) {
            names.push("gunzip");
        }
        if self.params.http_range_support != 0.0 && resp.head.status() == 200 && self.req.header(b"range").is_some() {
            names.push("range");
        }
        names.join(" ")
    }

    /// Whether `resp.filters`, as VCL set it, names `filter`.
    fn names_filter(&self, filter: &str) -> Option<bool> {
        Some(self.filters.as_ref()?.split_ascii_whitespace().any(|n| n == filter))
    }

    /// Whether the object being delivered has ESI instructions
    /// (`obj.can_esi`).
    pub fn can_esi(&self) -> bool {
        match &self.resp_body {
            RespBody::Fetched(BeBody::Esi(..)) => true,
            _ => self.obj.as_ref().is_some_and(|(_, obj)| obj.esidata().is_some()),
        }
    }

    fn is_head(&self) -> bool {
        self.req.head.method(&self.req.buf).eq_ignore_ascii_case(b"HEAD")
    }

    /// Whether the object being delivered was made by this request's own
    /// fetch (a miss), rather than found (a hit).
    fn busy_xid(&self) -> bool {
        self.obj.as_ref().is_some_and(|(_, obj)| obj.xid == self.bereq_vxid)
    }

    /// Asks for a synthetic response.
    fn synth(&mut self, status: i64, why: Option<Vec<u8>>) -> ReqStep {
        self.err_code = wire_status(status);
        self.err_reason = why;
        ReqStep::Synth
    }
}

/// Runs a client method. A VCL failure is `return (fail)`.
fn vcl(req: &mut Req, method: Method) -> Handling {
    let vcl = req.vcl.clone();
    req.vsl.vcl_call(method);
    let mut ctx = ReqCtx { req, method, now: now() };
    let h = match lacquer_vcl::exec::run(&vcl.program, method, &mut ctx) {
        Ok(h) => h,
        Err(f) => match crate::handoff::stopped(req) {
            // A module ended the request (handoff.rs).
            Some(h) => h,
            None => {
                req.vsl.str(Tag::VCL_Error, &f.0);
                Handling::plain(Action::Fail)
            }
        },
    };
    crate::ctx::flush(&mut req.vsl, &mut req.module_logs);
    let word = crate::handoff::return_word(req).unwrap_or(h.action.as_str());
    req.vsl.str(Tag::VCL_return, word);
    h
}

/// The transition loop: runs steps until `Finish` is done.
pub(crate) async fn run(req: &mut Req, sp: &mut Sess) {
    run_from(req, sp, ReqStep::Transport).await
}

/// The transition loop from `step`: an ESI include starts at `Recv`.
pub(crate) async fn run_from(req: &mut Req, sp: &mut Sess, mut step: ReqStep) {
    loop {
        step = match step {
            ReqStep::Transport => cnt_transport(req, sp).await,
            ReqStep::Restart => cnt_restart(req),
            ReqStep::Recv => crate::handoff::lend_rest(req, sp, cnt_recv),
            ReqStep::Handoff => crate::handoff::cnt_handoff(req),
            ReqStep::Pipe => cnt_pipe(req, sp).await,
            ReqStep::Pass => cnt_pass(req),
            ReqStep::Lookup => cnt_lookup(req).await,
            ReqStep::Hit => cnt_hit(req),
            ReqStep::Purge => cnt_purge(req),
            ReqStep::Miss => cnt_miss(req),
            ReqStep::Fetch => cnt_fetch(req, sp).await,
            ReqStep::Deliver => cnt_deliver(req),
            ReqStep::VclFail => cnt_vclfail(req),
            ReqStep::Synth => cnt_synth(req, sp).await,
            ReqStep::Transmit => cnt_transmit(req, sp).await,
            ReqStep::Finish => {
                cnt_finish(req, sp).await;
                if lacquer_module::Workspace::overflowed(&req.ws) {
                    req.shared.stats.ws_client_overflow.inc();
                }
                if lacquer_module::Workspace::overflowed(&req.thr_ws) {
                    req.shared.stats.ws_thread_overflow.inc();
                }
                if let Some([hdr, behdr, piped_in, piped_out]) = req.piped {
                    // As varnishd: a pipe is accounted in PipeAcct alone.
                    req.vsl.fmt(Tag::PipeAcct, format_args!("{hdr} {behdr} {piped_in} {piped_out}"));
                    req.vsl.end();
                    return;
                }
                let (hdr_in, body_in) = match req.esi_level {
                    0 => (req.req.buf.len() as u64, sp.body_in),
                    _ => (0, 0),
                };
                let (hdr_out, body_out) = (req.resp_hdr_bytes, req.resp_body_bytes);
                // An include's bytes are the top request's already.
                if req.esi_level == 0 {
                    let m = &req.shared.stats;
                    m.s_req_hdrbytes.add(hdr_in);
                    m.s_req_bodybytes.add(body_in);
                    m.s_resp_hdrbytes.add(hdr_out);
                    m.s_resp_bodybytes.add(body_out);
                }
                req.vsl.fmt(
                    Tag::ReqAcct,
                    format_args!("{hdr_in} {body_in} {} {hdr_out} {body_out} {}", hdr_in + body_in, hdr_out + body_out),
                );
                req.vsl.end();
                let r = &*req;
                if r.esi_level > 0 {
                    // An ESI include is part of its top request's answer.
                    return;
                }
                r.shared.modules.notify(lacquer_module::server_events::REQUEST_DONE, || {
                    format!("{} {} {body_out} {:.6}", r.vxid, r.resp_status, crate::msg::now() - r.t_req)
                });
                return;
            }
        };
    }
}

async fn cnt_transport(req: &mut Req, sp: &mut Sess) -> ReqStep {
    let m = &mut req.req;
    // Connection: close, and HTTP/1.0 without keep-alive, end the
    // connection after this request. The header lines it names stay
    // visible to VCL and are left out of backend requests
    // (`Msg::copy_end_to_end`); naming a header Varnish needs is refused.
    if m.has_token(b"connection", b"close") || (m.head.protover() < 11 && !m.has_token(b"connection", b"keep-alive")) {
        req.doclose = true;
        req.close = if m.has_token(b"connection", b"close") { "REQ_CLOSE" } else { "REQ_HTTP10" };
    }
    if crate::msg::names_well_known(m).is_some() {
        // Asked to drop a header Varnish needs end to end: a bad request.
        req.vsl.str(Tag::Error, "Bad Connection header");
        req.shared.stats.client_req_400.inc();
        let _ = sp.send(b"HTTP/1.1 400 Bad Request\r\n\r\n", Instant::now()).await;
        req.doclose = true;
        req.close = "RX_BAD";
        return ReqStep::Finish;
    }
    if let Some(expect) = m.header(b"expect") {
        if !expect.eq_ignore_ascii_case(b"100-continue") {
            let _ = sp.send(b"HTTP/1.1 417 Expectation Failed\r\n\r\n", Instant::now()).await;
            req.doclose = true;
            req.close = "RX_JUNK";
            return ReqStep::Finish;
        }
        let want = m.head.protover() >= 11 && sp.rest.is_empty() && !req.body_done;
        m.unset(b"expect");
        if want && !sp.send(b"HTTP/1.1 100 Continue\r\n\r\n", Instant::now()).await {
            req.doclose = true;
            req.close = "TX_ERROR";
            return ReqStep::Finish;
        }
    }
    let ip = req.ep.client_ip_text();
    req.req.append_value(b"X-Forwarded-For", ip.as_bytes());
    lacquer_module::Workspace::alloc(&req.ws, crate::ws::header_size(15, ip.len()));
    req.vsl.str(Tag::VCL_use, &req.vcl.name);
    let sock = req.shared.sockets.get(req.ep.socket).map_or("", |l| l.name.as_str());
    req.vsl.fmt(Tag::ReqStart, format_args!("{ip} {} {sock}", req.ep.client_port_text()));
    req.vsl.head(&req.req, vsl::REQ);
    // The request as received, for `std.rollback(req)` and for ESI
    // includes to start from: a copy per request, so only when the VCL
    // may need it.
    if req.vcl.rolls_back || req.vcl.esi {
        req.req0 = Some(req.req.clone());
    }
    ReqStep::Recv
}

fn cnt_restart(req: &mut Req) -> ReqStep {
    req.restarts += 1;
    req.obj = None;
    req.busy = None;
    req.stale = None;
    req.bgfetch = None;
    req.is_hitmiss = false;
    req.is_hitpass = false;
    req.is_hit = false;
    req.resp = None;
    req.resp_body = RespBody::None;
    req.synth_body.clear();
    req.bereq = None;
    req.do_esi = None;
    req.filters = None;
    if req.restarts as f64 > req.params.max_restarts {
        req.vsl.str(Tag::VCL_Error, "Too many restarts");
        return req.synth(503, None);
    }
    // A restart is a new transaction, linked from the old one.
    let (old, new, t) = (req.vxid, crate::next_vxid(), now());
    req.vsl.timestamp("Restart", t);
    req.vsl.fmt(Tag::Link, format_args!("req {new} restart"));
    req.vsl.end();
    req.vxid = new;
    req.vsl.rebind(new, t);
    req.vsl.fmt(Tag::Begin, format_args!("req {old} restart"));
    req.vsl.timestamp("Start", t);
    req.vsl.str(Tag::VCL_use, &req.vcl.name);
    req.vsl.head(&req.req, vsl::REQ);
    ReqStep::Recv
}

fn cnt_recv(req: &mut Req) -> ReqStep {
    req.hash.clear();
    // Modules with a request_raw function see the head first (not again
    // on a restart, and not for ESI includes, which have no connection of
    // their own); one may end the request there, VCL unseen.
    if req.restarts == 0 && req.esi_level == 0 {
        match crate::vmod::request_raw(req) {
            Ok(()) => {}
            Err(why) => {
                req.vsl.str(Tag::VCL_Error, &why);
                return ReqStep::VclFail;
            }
        }
        if req.conn.end.is_some() {
            req.vsl.str(Tag::VCL_return, crate::handoff::return_word(req).unwrap_or("fail"));
            if let Some(step) = crate::handoff::after_recv(req) {
                return step;
            }
            let h = crate::handoff::stopped(req).unwrap_or_else(|| Handling::plain(Action::Fail));
            return req.synth(h.status.unwrap_or(503), h.reason);
        }
    }
    let h = vcl(req, Method::Recv);
    if let Some(step) = crate::handoff::after_recv(req) {
        return step;
    }
    if h.action == Action::Vcl {
        return switch_vcl(req, h.label.as_deref().unwrap_or(""));
    }
    if !matches!(h.action, Action::Hash | Action::Purge | Action::Pass | Action::Pipe | Action::Synth | Action::Restart)
    {
        return ReqStep::VclFail;
    }
    // The cache stores gzip once for everybody: the request only says
    // whether it takes gzip (Varnish's cnt_recv); a pass or a pipe sends
    // what the client said.
    if req.params.http_gzip_support != 0.0 && !matches!(h.action, Action::Pass | Action::Pipe) {
        if gzip::accepts_gzip(&req.req) {
            req.req.set(b"Accept-Encoding", b"gzip");
        } else {
            req.req.unset(b"accept-encoding");
        }
    }
    // Whatever vcl_recv chose, vcl_hash makes the request's hash, as in
    // varnishd (directors pick by it, `req.hash` shows it).
    if vcl(req, Method::Hash).action != Action::Lookup {
        return ReqStep::VclFail;
    }
    match h.action {
        Action::Hash => ReqStep::Lookup,
        Action::Purge => ReqStep::Purge,
        Action::Pass => ReqStep::Pass,
        // An include has no connection of its own to pipe.
        Action::Pipe if req.esi_level > 0 => {
            req.vsl.str(Tag::VCL_Error, "vcl_recv{} returns pipe for ESI included object.  Doing pass.");
            ReqStep::Pass
        }
        Action::Pipe => ReqStep::Pipe,
        Action::Synth => req.synth(h.status.unwrap_or(503), h.reason),
        Action::Restart => ReqStep::Restart,
        _ => ReqStep::VclFail,
    }
}

/// `return (vcl(LABEL))` (Varnish's `VPI_vcl_select`): the request runs
/// `vcl_recv` again in the VCL the label points at. Only once, and only
/// before any restart; the VCL switched to may not switch again (a
/// failure, as in varnishd). What the first `vcl_recv` changed in the
/// request stays (varnishd rolls it back).
fn switch_vcl(req: &mut Req, label: &str) -> ReqStep {
    if req.vcl0.is_some() || req.restarts > 0 {
        req.vsl.str(Tag::VCL_Error, "return(vcl) only allowed once, from vcl_recv of the active VCL");
        return ReqStep::VclFail;
    }
    let Some(to) = req.shared.vcls.get(label) else {
        req.vsl.fmt(Tag::VCL_Error, format_args!("No VCL labelled {label}"));
        return ReqStep::VclFail;
    };
    req.vsl.fmt(Tag::VCL_use, format_args!("{} via {label}", to.name));
    req.vcl0 = Some(std::mem::replace(&mut req.vcl, to));
    ReqStep::Recv
}

/// Looks the request's hash up (Varnish's `cnt_lookup`). A lookup that
/// finds only a fetch under way waits for it on the object's waiting list
/// and looks again.
async fn cnt_lookup(req: &mut Req) -> ReqStep {
    let shared = req.shared.clone();
    loop {
        let found = {
            let r = &req.req;
            let header = |name: &[u8]| r.header(name).map(<[u8]>::to_vec);
            let want = Want {
                url: r.head.url(&r.buf),
                header: &header,
                ignore_busy: req.hash_ignore_busy,
                always_miss: req.hash_always_miss,
                ignore_vary: req.hash_ignore_vary,
                vary_ignore: if req.params.http_gzip_support != 0.0 { &[b"accept-encoding"] } else { &[] },
                grace: (req.grace >= 0.0).then_some(req.grace),
                now: now(),
            };
            let mut banned = Vec::new();
            let found = shared.cache.lookup_noting_bans(&req.hash, &want, &mut banned);
            for xid in banned {
                req.vsl.fmt(Tag::ExpBan, format_args!("{xid} banned lookup"));
            }
            found
        };
        match found {
            Lookup::Wait(ticket) => ticket.wait().await,
            Lookup::Hit(oc) | Lookup::Grace(oc, None) => {
                // Expired or evicted since the lookup found it: look again.
                let Some(obj) = oc.object() else { continue };
                log_hit(req, Tag::Hit, &oc, obj.xid, Some(&obj));
                req.obj = Some((oc, obj));
                req.is_hit = true;
                return ReqStep::Hit;
            }
            Lookup::Grace(oc, Some(bg)) => {
                let Some(obj) = oc.object() else { continue };
                log_hit(req, Tag::Hit, &oc, obj.xid, Some(&obj));
                req.obj = Some((oc, obj));
                req.is_hit = true;
                req.bgfetch = Some(bg);
                return ReqStep::Hit;
            }
            Lookup::HitPass(oc) => {
                log_hit(req, Tag::HitPass, &oc, oc.xid(), None);
                req.is_hitpass = true;
                return ReqStep::Pass;
            }
            Lookup::HitMiss(busy, oc) => {
                log_hit(req, Tag::HitMiss, &oc, oc.xid(), None);
                req.is_hitmiss = true;
                req.busy = Some(busy);
                return ReqStep::Miss;
            }
            Lookup::Miss(busy, stale) => {
                req.busy = Some(busy);
                // A stale object kept for revalidation (`keep`).
                req.stale = stale.and_then(|oc| oc.object().map(|obj| (oc, obj)));
                return ReqStep::Miss;
            }
        }
    }
}

/// `Hit <xid> <ttl left> <grace> <keep>` (or `HitPass`/`HitMiss <xid>
/// <ttl left>`). A hit on an object still being fetched adds how much
/// body has come so far, and how much is expected when the length is
/// known (Varnish 7.1's `Hit … fetched [expected]`).
fn log_hit(req: &mut Req, tag: Tag, oc: &ObjCore<Msg>, xid: u64, obj: Option<&Object<Msg>>) {
    let life = oc.lifetime();
    let ttl = life.t_origin + life.ttl - now();
    if tag == Tag::Hit {
        let mut fetching = String::new();
        if let Some(obj) = obj.filter(|o| o.is_open()) {
            fetching = format!(" {}", obj.len());
            let cl = obj.head.header(b"content-length");
            if let Some(n) = cl.and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok()) {
                fetching.push_str(&format!(" {n}"));
            }
        }
        req.vsl.fmt(tag, format_args!("{xid} {ttl:.6} {:.6} {:.6}{fetching}", life.grace, life.keep));
    } else {
        req.vsl.fmt(tag, format_args!("{xid} {ttl:.6}"));
    }
}

fn cnt_hit(req: &mut Req) -> ReqStep {
    let h = vcl(req, Method::Hit);
    match h.action {
        Action::Deliver => {
            if let Some(bg) = req.bgfetch.take() {
                start_bgfetch(req, bg);
            }
            let Some((oc, obj)) = req.obj.clone() else {
                return ReqStep::VclFail;
            };
            req.life = Some(oc.lifetime());
            req.resp = Some(obj.head.clone());
            req.resp_body = RespBody::Fetched(BeBody::Object(oc, obj));
            ReqStep::Deliver
        }
        action => {
            req.obj = None;
            req.bgfetch = None;
            match action {
                Action::Pass => ReqStep::Pass,
                Action::Synth => req.synth(h.status.unwrap_or(503), h.reason),
                Action::Restart => ReqStep::Restart,
                _ => ReqStep::VclFail,
            }
        }
    }
}

/// Starts the fetch that refreshes an object delivered in grace; nobody
/// waits for its answer (`bereq.is_bgfetch`).
fn start_bgfetch(req: &mut Req, busy: Busy<Msg>) {
    let bereq = make_bereq(req, false);
    let vxid = crate::next_vxid();
    let shared = req.shared.clone();
    let mut bo = Bo::new(
        &shared,
        req.vcl.clone(),
        vxid,
        req.vxid,
        req.sess_vxid,
        req.ep.clone(),
        bereq,
        ReqBody::None,
        req.backend_hint,
        false,
    );
    bo.hash = req.hash.clone();
    bo.busy = Some(busy);
    bo.is_bgfetch = true;
    bo.client_identity = req.client_identity.clone();
    // The object in grace is what the refresh revalidates.
    bo.stale = req.obj.clone();
    drop(fetch::spawn(shared, bo));
}

fn cnt_miss(req: &mut Req) -> ReqStep {
    let h = vcl(req, Method::Miss);
    if h.action != Action::Fetch {
        // Not fetching after all: the busy object goes and whoever waits on
        // it looks again.
        req.busy = None;
    }
    match h.action {
        Action::Fetch => {
            // Varnish counts a miss when vcl_miss fetches, hit-for-miss
            // included.
            req.shared.stats.cache_miss.inc();
            fetch_step(req, false)
        }
        Action::Pass => ReqStep::Pass,
        Action::Synth => req.synth(h.status.unwrap_or(503), h.reason),
        Action::Restart => ReqStep::Restart,
        _ => ReqStep::VclFail,
    }
}

fn cnt_pass(req: &mut Req) -> ReqStep {
    req.busy = None;
    let h = vcl(req, Method::Pass);
    match h.action {
        Action::Fetch => fetch_step(req, true),
        Action::Synth => req.synth(h.status.unwrap_or(503), h.reason),
        Action::Restart => ReqStep::Restart,
        _ => ReqStep::VclFail,
    }
}

fn cnt_purge(req: &mut Req) -> ReqStep {
    req.shared.cache.purge(&req.hash, req.t_req);
    let h = vcl(req, Method::Purge);
    match h.action {
        Action::Synth => req.synth(h.status.unwrap_or(200), h.reason),
        Action::Restart => ReqStep::Restart,
        _ => ReqStep::VclFail,
    }
}

/// The backend request for a pass or a miss: a miss always fetches the
/// whole object with GET, whatever the client asked.
fn make_bereq(req: &Req, pass: bool) -> Msg {
    let method = req.req.head.method(&req.req.buf);
    let method = if !pass && method.eq_ignore_ascii_case(b"HEAD") { &b"GET"[..] } else { method };
    let mut bereq = Msg::request(method, req.req.head.url(&req.req.buf), b"HTTP/1.1");
    // A miss fetches the whole object for everyone: the client's own
    // conditions, range and proxy credentials stay with it (Varnish's
    // HTTPH_R_FETCH).
    const PER_CLIENT: &[&[u8]] = &[
        b"if-match",
        b"if-modified-since",
        b"if-none-match",
        b"if-range",
        b"if-unmodified-since",
        b"range",
        b"content-range",
        b"proxy-authenticate",
        b"proxy-authorization",
    ];
    let per_client = |n: &[u8]| !pass && PER_CLIENT.iter().any(|h| n.eq_ignore_ascii_case(h));
    // What the client takes in ranges is no concern of the backend's.
    let ranges = |n: &[u8]| n.eq_ignore_ascii_case(b"accept-ranges");
    bereq.copy_end_to_end(&req.req, |n, hop| !hop && !per_client(n) && !ranges(n));
    // A miss asks for gzip whatever this client takes: the object serves
    // every client, and is gunzipped for those that do not take it.
    if !pass && req.params.http_gzip_support != 0.0 {
        bereq.set(b"Accept-Encoding", b"gzip");
    }
    bereq
}

/// Makes the backend request for a pass or a miss and goes to `Fetch`.
fn fetch_step(req: &mut Req, pass: bool) -> ReqStep {
    let mut bereq = make_bereq(req, pass);
    req.bereq_vxid = crate::next_vxid();
    bereq.append(b"X-Varnish", req.bereq_vxid.to_string().as_bytes());
    req.bereq = Some(bereq);
    req.pass = pass;
    ReqStep::Fetch
}

async fn cnt_fetch(req: &mut Req, sp: &mut Sess) -> ReqStep {
    let pass = req.pass;
    let Some(bereq) = req.bereq.take() else {
        return ReqStep::VclFail;
    };
    let shared = req.shared.clone();
    // A miss sends no body. A pass sends the client's body: whole if it is
    // all at hand already (small bodies usually are), which lets a retry
    // send it again; else streamed to the backend while it arrives, never
    // held whole (Varnish's default without `std.cache_req_body`).
    let mut pump = None;
    let body = if !pass {
        ReqBody::None
    } else if let Some(b) = &req.body_cached {
        ReqBody::Cached(b.clone())
    } else if req.body_taken {
        ReqBody::Taken
    } else if req.body_done {
        ReqBody::None
    } else if let Some(whole) = body_at_hand(req, sp) {
        let whole = Arc::new(whole);
        req.body_cached = Some(whole.clone());
        ReqBody::Cached(whole)
    } else {
        let (tx, rx) = mpsc::channel(fetch::BODY_QUEUE);
        pump = Some(tx);
        req.body_taken = true;
        let len = match req.req.head.framing() {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        ReqBody::Stream { len, rx }
    };
    if pass {
        shared.stats.s_pass.inc();
    }
    shared.stats.s_fetch.inc();
    let mut bo = Bo::new(
        &shared,
        req.vcl.clone(),
        req.bereq_vxid,
        req.vxid,
        req.sess_vxid,
        req.ep.clone(),
        bereq,
        body,
        req.backend_hint,
        pass,
    );
    bo.client_identity = req.client_identity.clone();
    bo.hash = req.hash.clone();
    bo.busy = if pass { None } else { req.busy.take() };
    bo.stale = if pass { None } else { req.stale.take() };
    req.vsl.fmt(Tag::Link, format_args!("bereq {} fetch", req.bereq_vxid));
    let fetched = fetch::spawn(shared.clone(), bo);
    let fetched = match pump {
        None => fetched.await,
        Some(tx) => {
            // The body goes on while the fetch waits for it. If the fetch
            // answers first (the backend failed), what is left of the body
            // is read and dropped by `Finish`.
            let pump = pump_body(sp, &mut req.body, tx);
            tokio::pin!(pump, fetched);
            let mut pumping = true;
            loop {
                tokio::select! {
                    r = &mut pump, if pumping => {
                        pumping = false;
                        match r {
                            Ok(()) => req.body_done = true,
                            Err(Pump::Client) => {
                                req.doclose = true;
                                req.close = "RX_BODY";
                                req.body_done = true;
                            }
                            Err(Pump::Gone) => {}
                        }
                    }
                    f = &mut fetched => break f,
                }
            }
        }
    };
    match fetched {
        Ok(Fetched::Resp { beresp, body, life }) => {
            req.vsl.timestamp("Fetch", now());
            if let BeBody::Object(oc, obj) = &body {
                req.obj = Some((oc.clone(), obj.clone()));
            }
            req.life = Some(life);
            req.resp = Some(beresp);
            req.resp_body = RespBody::Fetched(body);
            ReqStep::Deliver
        }
        Ok(Fetched::Failed) | Err(_) => req.synth(503, None),
    }
}

/// The whole request body, when it is already in the session's buffer:
/// decoded, taken out of the buffer, and the body marked read.
fn body_at_hand(req: &mut Req, sp: &mut Sess) -> Option<Vec<u8>> {
    let mut dec = req.body;
    let (mut data, mut at) = (Vec::new(), 0);
    loop {
        let d = dec.decode(&sp.rest[at..]).ok()?;
        data.extend_from_slice(d.data);
        at += d.consumed;
        if d.done {
            break;
        }
        if d.consumed == 0 {
            return None;
        }
    }
    req.body = dec;
    sp.rest.drain(..at);
    sp.body_in += at as u64;
    req.body_done = true;
    Some(data)
}

fn cnt_deliver(req: &mut Req) -> ReqStep {
    let Some(beresp) = req.resp.take() else {
        return ReqStep::VclFail;
    };
    let mut resp = Msg::response(beresp.head.status(), beresp.head.reason(&beresp.buf));
    // The length, when known: a whole object's, or the one the backend
    // announced for a body still arriving. (Transmit has the last word:
    // HEAD, 304 and VCL's changes.)
    let length = match &req.resp_body {
        RespBody::Fetched(BeBody::Stream { len, .. }) => *len,
        RespBody::Fetched(BeBody::Object(_, obj)) => obj.complete_len().or_else(|| {
            let cl = beresp.header(b"content-length")?;
            std::str::from_utf8(cl).ok()?.parse().ok()
        }),
        RespBody::Fetched(BeBody::Bytes(b) | BeBody::Esi(b, _)) => Some(b.len() as u64),
        _ => None,
    };
    let length = head_length(req, &beresp).or(length);
    resp.copy_end_to_end(&beresp, |_, hop| !hop);
    if let Some(n) = length {
        resp.append(b"Content-Length", n.to_string().as_bytes());
    }
    // A hit names the fetch that made the object too.
    let xvarnish = match (&req.obj, req.busy_xid()) {
        (Some((_, obj)), false) => format!("{} {}", req.vxid, obj.xid),
        _ if req.is_hit => format!("{} {}", req.vxid, req.bereq_vxid),
        _ => req.vxid.to_string(),
    };
    resp.append(b"X-Varnish", xvarnish.as_bytes());
    let t_origin = req.life.map_or(now(), |l| l.t_origin);
    let age = ((now() - t_origin).floor().max(0.0) as u64).to_string();
    resp.append(b"Age", age.as_bytes());
    // Both are printed into the workspace in Varnish.
    let ws = &req.ws;
    lacquer_module::Workspace::alloc(ws, crate::ws::header_size(9, xvarnish.len()));
    lacquer_module::Workspace::alloc(ws, crate::ws::header_size(3, age.len()));
    if req.params.http_range_support != 0.0 && req.obj.is_some() && resp.head.status() == 200 {
        resp.set(b"Accept-Ranges", b"bytes");
    }
    resp.append_value(b"Via", crate::VIA.as_bytes());
    req.vsl.head(&resp, vsl::RESP);
    req.resp = Some(resp);
    req.t_resp = now();
    let h = vcl(req, Method::Deliver);
    match h.action {
        Action::Deliver => ReqStep::Transmit,
        Action::Restart => ReqStep::Restart,
        Action::Synth => {
            req.resp_body = RespBody::None;
            req.synth(h.status.unwrap_or(503), h.reason)
        }
        _ => {
            req.resp_body = RespBody::None;
            ReqStep::VclFail
        }
    }
}

fn cnt_vclfail(req: &mut Req) -> ReqStep {
    req.shared.stats.vcl_fail.inc();
    // The request goes back to what it was when received, its workspace
    // too: an overflow is counted and forgotten (`Req_Rollback`).
    if req.ws.rollback(req.ws_req) {
        req.shared.stats.ws_client_overflow.inc();
    }
    req.doclose = true;
    req.close = "VCL_FAILURE";
    req.resp = None;
    req.resp_body = RespBody::None;
    req.synth(503, Some(b"VCL failed".to_vec()))
}

async fn cnt_synth(req: &mut Req, sp: &mut Sess) -> ReqStep {
    req.shared.stats.s_synth.inc();
    let status = req.err_code;
    let why = req.err_reason.take().unwrap_or_else(|| reason(status).as_bytes().to_vec());
    let mut resp = Msg::response(status, &why);
    resp.append(b"Date", http_date().as_bytes());
    resp.append(b"Server", b"Lacquer");
    resp.append(b"X-Varnish", req.vxid.to_string().as_bytes());
    req.vsl.timestamp("Process", now());
    req.vsl.head(&resp, vsl::RESP);
    req.resp = Some(resp);
    req.resp_body = RespBody::Synth;
    req.synth_body.clear();
    req.t_resp = now();
    let h = vcl(req, Method::Synth);
    match h.action {
        // Past `max_restarts` (the restart that went one too far made this
        // synth) a restart delivers instead, as in Varnish.
        Action::Restart if (req.restarts as f64) <= req.params.max_restarts => ReqStep::Restart,
        Action::Deliver | Action::Restart => ReqStep::Transmit,
        _ => {
            // A failing vcl_synth gets the least response there is.
            let _ = sp.send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", Instant::now()).await;
            req.doclose = true;
            req.close = "VCL_FAILURE";
            ReqStep::Finish
        }
    }
}

fn cnt_pipe_bereq(req: &mut Req) {
    let m = &req.req;
    let mut bereq = Msg::request(m.head.method(&m.buf), m.head.url(&m.buf), m.head.proto(&m.buf));
    // The body goes through as raw bytes, so its framing headers stay.
    bereq.copy_end_to_end(m, |n, hop| {
        n.eq_ignore_ascii_case(b"content-length") || n.eq_ignore_ascii_case(b"transfer-encoding") || !hop
    });
    req.bereq_vxid = crate::next_vxid();
    bereq.append(b"X-Varnish", req.bereq_vxid.to_string().as_bytes());
    bereq.set(b"Connection", b"close");
    req.bereq = Some(bereq);
}

async fn cnt_pipe(req: &mut Req, sp: &mut Sess) -> ReqStep {
    cnt_pipe_bereq(req);
    let h = vcl(req, Method::Pipe);
    match h.action {
        Action::Pipe => {}
        Action::Synth => {
            req.doclose = true;
            req.close = "TX_PIPE";
            return req.synth(h.status.unwrap_or(503), h.reason);
        }
        _ => return ReqStep::VclFail,
    }
    req.doclose = true;
    req.close = "TX_PIPE";
    let Some(bereq) = req.bereq.take() else {
        return ReqStep::VclFail;
    };
    let shared = req.shared.clone();
    let vcl = req.vcl.clone();
    let (be, logs) = match req.backend_hint {
        Some(id) => crate::vmod::resolve(&shared, &vcl, crate::vmod::TaskRef::Req(req), Method::Pipe, id),
        None => (None, Vec::new()),
    };
    for (tag, l) in logs {
        req.vsl.text(tag, &l);
    }
    let Some(be) = be else {
        return req.synth(503, None);
    };
    let hold = crate::vbe::Holddown::from_params(&req.params);
    // A pipe may take an idle pooled connection, as Varnish's does.
    let mut io = match be.get(be.def.connect_timeout.unwrap_or(req.params.connect_timeout), hold).await {
        Ok(io) => io,
        Err(_) => return req.synth(503, None),
    };
    let mut bereq = bereq;
    if bereq.header(b"host").is_none() {
        if let Some(h) = be.host_header() {
            bereq.append(b"Host", h.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(1024);
    bereq.write_to(&mut out);
    let behdr = out.len() as u64;
    let early = sp.rest.len() as u64;
    out.append(&mut sp.rest);
    shared.stats.s_pipe.inc();
    shared.stats.n_pipe.inc();
    req.vsl.timestamp("Pipe", now());
    let (mut piped_in, mut piped_out) = (early, 0);
    if io.write_all(&out).await.is_ok() {
        let (a_to_b, b_to_a) = tunnel(&mut sp.stream, &mut io, req.params.pipe_timeout).await;
        piped_in += a_to_b;
        piped_out = b_to_a;
    }
    req.vsl.timestamp("PipeSess", now());
    shared.stats.n_pipe.dec();
    req.piped = Some([req.req.buf.len() as u64, behdr, piped_in, piped_out]);
    req.body_done = true;
    ReqStep::Finish
}

/// Copies bytes both ways between the client and the backend until both
/// have closed, or nothing has moved either way for `idle` seconds
/// (Varnish's `pipe_timeout`). When one side closes, the other is told by a
/// shutdown of its write half and may still answer. Answers the bytes
/// moved from `a` to `b` and from `b` to `a`.
async fn tunnel<A, B>(a: &mut A, b: &mut B, idle: f64) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let idle = crate::fetch::secs(idle);
    let (mut from_a, mut from_b) = (vec![0u8; 16384], vec![0u8; 16384]);
    let (mut a_open, mut b_open) = (true, true);
    let (mut a_to_b, mut b_to_a) = (0u64, 0u64);
    while a_open || b_open {
        let moved = tokio::time::timeout(idle, async {
            tokio::select! {
                r = a.read(&mut from_a), if a_open => match r {
                    Ok(n) if n > 0 => {
                        a_to_b += n as u64;
                        b.write_all(&from_a[..n]).await.is_ok()
                    }
                    _ => {
                        a_open = false;
                        b.shutdown().await.is_ok() || b_open
                    }
                },
                r = b.read(&mut from_b), if b_open => match r {
                    Ok(n) if n > 0 => {
                        b_to_a += n as u64;
                        a.write_all(&from_b[..n]).await.is_ok()
                    }
                    _ => {
                        b_open = false;
                        a.shutdown().await.is_ok() || a_open
                    }
                },
            }
        })
        .await;
        if !matches!(moved, Ok(true)) {
            break;
        }
    }
    (a_to_b, b_to_a)
}

/// How the response body is delimited on the wire.
enum Wire {
    None,
    Length,
    Chunked,
    Eof,
}

/// The response to a request whose workspace overflowed (Varnish's
/// `v1d_error`): whatever VCL made of the response is dropped, the client
/// gets a bare 500 and the connection closes.
async fn overflow_500(req: &mut Req, sp: &mut Sess, msg: &str) {
    const R500: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nServer: Varnish\r\nConnection: close\r\n\r\n";
    req.vsl.str(Tag::Error, msg);
    req.vsl.str(Tag::RespProtocol, "HTTP/1.1");
    req.vsl.str(Tag::RespStatus, "500");
    req.vsl.str(Tag::RespReason, "Internal Server Error");
    req.shared.stats.client_resp_500.inc();
    let _ = sp.send(R500, Instant::now()).await;
    req.doclose = true;
    req.close = "TX_EOF";
}

/// A HEAD passed to the backend brings no body to count: the response's
/// Content-Length says how long the body would be.
fn head_length(req: &Req, resp: &Msg) -> Option<u64> {
    let bodiless = match &req.resp_body {
        RespBody::Fetched(BeBody::Empty) => true,
        RespBody::Fetched(BeBody::Bytes(b)) => b.is_empty(),
        _ => false,
    };
    if !req.is_head() || !bodiless {
        return None;
    }
    std::str::from_utf8(resp.header(b"content-length")?).ok()?.trim().parse().ok()
}

async fn cnt_transmit(req: &mut Req, sp: &mut Sess) -> ReqStep {
    let Some(mut resp) = req.resp.take() else {
        return ReqStep::Finish;
    };
    let head_len = head_length(req, &resp);
    let body = std::mem::replace(&mut req.resp_body, RespBody::None);
    if req.esi_out.is_some() {
        return transmit_include(req, sp, resp, body).await;
    }
    let status = resp.head.status();
    let bodiless = status < 200 || status == 204 || status == 304;
    // A satisfied conditional request gets its 304 below, ESI or not.
    let get_or_head = req.is_head() || req.req.head.method(&req.req.buf).eq_ignore_ascii_case(b"GET");
    let cond = get_or_head && deliver::not_modified(&req.req, &resp, req.t_req, req.life.map_or(0.0, |l| l.t_origin));
    if let Some((esi_body, instrs)) = esi_instructions(req, &resp, &body).filter(|_| !bodiless && !cond) {
        return transmit_esi(req, sp, resp, esi_body, instrs).await;
    }
    let mut len = match &body {
        RespBody::None => Some(0),
        RespBody::Synth => Some(req.synth_body.len() as u64),
        RespBody::Fetched(BeBody::Empty) => Some(0),
        RespBody::Fetched(BeBody::Bytes(b) | BeBody::Esi(b, _)) => Some(b.len() as u64),
        RespBody::Fetched(BeBody::Stream { len, .. }) => *len,
        RespBody::Fetched(BeBody::Object(_, obj)) => obj.complete_len().or_else(|| {
            let cl = resp.header(b"content-length")?;
            std::str::from_utf8(cl).ok()?.parse().ok()
        }),
    };
    if head_len.is_some() {
        len = head_len;
    }
    // A gzip body goes out gunzipped to a client that does not take gzip
    // (its length then unknown until the end).
    let mut gunzip = None;
    let wants_gunzip = match req.names_filter("gunzip") {
        Some(named) => named && gzip::is_gzip(&resp),
        None => req.wants_gunzip(&body, &resp),
    };
    if wants_gunzip {
        resp.unset(b"content-encoding");
        gzip::weaken_etag(&mut resp);
        gunzip = Some(gzip::Filter::gunzip());
        req.shared.stats.n_gunzip.inc();
        // A complete object knows how long it is gunzipped.
        len = match &body {
            RespBody::Fetched(BeBody::Object(_, obj)) => obj.gunzipped_len(),
            _ => None,
        };
    }
    // A satisfied conditional request gets 304; a Range gets its part.
    let mut window = deliver::Window::ALL;
    let get_or_head = req.is_head() || req.req.head.method(&req.req.buf).eq_ignore_ascii_case(b"GET");
    let last_modified = req.life.map_or(0.0, |l| l.t_origin);
    if get_or_head && deliver::not_modified(&req.req, &resp, req.t_req, last_modified) {
        resp.head.set_status(304);
        resp.head.set_reason(b"Not Modified");
    } else if resp.head.status() == 200
        && req.names_filter("range").unwrap_or(req.params.http_range_support != 0.0)
        && deliver::if_range(&req.req, &resp, last_modified)
    {
        if let Some(r) = req.req.header(b"range").map(<[u8]>::to_vec) {
            match deliver::range(&r, len) {
                Ok(None) => {}
                Ok(Some((lo, hi))) => {
                    let total = len.unwrap_or(0);
                    resp.head.set_status(206);
                    resp.head.set_reason(b"Partial Content");
                    resp.append(b"Content-Range", format!("bytes {lo}-{hi}/{total}").as_bytes());
                    window = deliver::Window { skip: lo, take: Some(hi - lo + 1) };
                    len = Some(hi - lo + 1);
                }
                Err(why) => {
                    req.vsl.fmt(Tag::Debug, format_args!("RANGE_FAIL {why}"));
                    resp.head.set_status(416);
                    resp.head.set_reason(b"Requested Range Not Satisfiable");
                    let total = len.map_or_else(|| "*".to_string(), |l| l.to_string());
                    resp.append(b"Content-Range", format!("bytes */{total}").as_bytes());
                    window = deliver::Window { skip: 0, take: Some(0) };
                    len = Some(0);
                }
            }
        }
    }
    let status = resp.head.status();
    req.resp_status = status;
    let bodiless = status < 200 || status == 204 || status == 304;
    if !bodiless {
        // The delivery filters, each after a blank (varnishd's VDP list).
        let mut filters = String::new();
        if gunzip.is_some() {
            filters.push_str(" gunzip");
        }
        if status == 206 {
            filters.push_str(" range");
        }
        req.vsl.str(Tag::Filters, &filters);
    }
    if resp.has_token(b"connection", b"close") {
        req.doclose = true;
        req.close = "RESP_CLOSE";
    }
    resp.unset(b"connection");
    resp.unset(b"content-length");
    resp.unset(b"transfer-encoding");
    let wire = if bodiless {
        Wire::None
    } else if let Some(n) = len {
        resp.append(b"Content-Length", n.to_string().as_bytes());
        Wire::Length
    } else if req.req.head.protover() >= 11 {
        resp.append(b"Transfer-Encoding", b"chunked");
        Wire::Chunked
    } else {
        req.doclose = true;
        req.close = "TX_EOF";
        Wire::Eof
    };
    resp.append(b"Connection", if req.doclose { b"close" } else { b"keep-alive" });
    req.vsl.timestamp("Process", now());
    req.vsl.str(Tag::RespHeader, if req.doclose { "Connection: close" } else { "Connection: keep-alive" });
    let overflowed = [&req.ws, &req.sess_ws].into_iter().find(|w| lacquer_module::Workspace::overflowed(*w));
    if let Some(msg) = overflowed.map(|w| w.overflow_message()) {
        overflow_500(req, sp, &msg).await;
        return ReqStep::Finish;
    }
    let mut out = Vec::with_capacity(1024);
    resp.write_to(&mut out);
    let out_len = out.len() as u64;
    // VCL may have changed the session's send timeouts for this response.
    sp.timeouts = req.timeouts;
    let since = Instant::now();
    let send_body = !bodiless && !req.is_head() && !window.done();
    let mut source = match body {
        _ if !send_body => Source::Nothing,
        RespBody::Synth => Source::Once(std::mem::take(&mut req.synth_body)),
        RespBody::Fetched(BeBody::Bytes(b) | BeBody::Esi(b, _)) => Source::Once(b),
        RespBody::Fetched(BeBody::Stream { rx, .. }) => Source::Stream(rx),
        RespBody::Fetched(BeBody::Object(_, obj)) => Source::Object(obj.reader()),
        RespBody::Fetched(BeBody::Empty) | RespBody::None => Source::Nothing,
    };
    let ok = match &mut source {
        // A body at hand goes out with the head, in one write.
        Source::Once(b) if gunzip.is_none() => {
            out.extend_from_slice(window.cut(b).unwrap_or_default());
            sp.send(&out, since).await
        }
        Source::Nothing => sp.send(&out, since).await,
        _ => {
            let mut ok = sp.send(&out, since).await;
            let mut complete = false;
            while ok {
                match source.next().await {
                    None => {
                        complete = true;
                        break;
                    }
                    Some(Ok(piece)) => {
                        // What else is already there goes in the same write.
                        let mut batch = vec![piece];
                        let mut size = batch[0].len();
                        while size < WRITE_BATCH {
                            let Some(more) = source.try_next() else { break };
                            size += more.len();
                            batch.push(more);
                        }
                        if let Some(f) = &mut gunzip {
                            let mut plain = Vec::new();
                            for p in &batch {
                                match f.feed(p) {
                                    Ok(out) => plain.extend(out),
                                    Err(()) => break,
                                }
                            }
                            batch = vec![Arc::new(plain)];
                        }
                        // A filter may have nothing to show for a piece yet: an
                        // empty write would read as a closed connection.
                        let parts: Vec<&[u8]> =
                            batch.iter().filter_map(|p| window.cut(p)).filter(|p| !p.is_empty()).collect();
                        ok = match wire {
                            Wire::Chunked => {
                                let mut framed = Vec::with_capacity(size + 16 * parts.len());
                                let mut enc = ChunkedEncoder::new();
                                for p in &parts {
                                    enc.encode(p, &mut framed);
                                }
                                sp.send(&framed, since).await
                            }
                            _ => sp.send_all(&parts, since).await,
                        };
                        if window.done() {
                            complete = true;
                            break;
                        }
                    }
                    Some(Err(())) => break,
                }
            }
            if complete && ok {
                if let Some(f) = gunzip.take() {
                    // What the decompressor still held is cut like the rest.
                    match f.finish().map(|t| window.cut(&t).unwrap_or_default().to_vec()) {
                        Ok(tail) if tail.is_empty() => {}
                        Ok(tail) => {
                            let mut framed = Vec::new();
                            match wire {
                                Wire::Chunked => ChunkedEncoder::new().encode(&tail, &mut framed),
                                _ => framed = tail,
                            }
                            ok = sp.send(&framed, since).await;
                        }
                        Err(()) => complete = false,
                    }
                }
            }
            if complete && ok && matches!(wire, Wire::Chunked) {
                ok = sp.send(LAST_CHUNK, since).await;
            }
            ok && complete
        }
    };
    if !ok || matches!(wire, Wire::Eof) {
        req.doclose = true;
        req.close = if ok { "TX_EOF" } else { "TX_ERROR" };
    }
    req.resp_hdr_bytes = out_len;
    req.resp_body_bytes = if send_body { len.unwrap_or(0) } else { 0 };
    req.vsl.timestamp("Resp", now());
    ReqStep::Finish
}

/// The ESI instructions of the body being delivered and the body they
/// apply to, when they are to be followed: the object has them
/// (`obj.can_esi`), `req.esi` is on and `resp.do_esi` was not turned off.
fn esi_instructions(req: &Req, resp: &Msg, body: &RespBody) -> Option<(EsiBody, Vec<Instr>)> {
    if !req.esi || req.do_esi == Some(false) {
        return None;
    }
    let (body, data) = match body {
        RespBody::Fetched(BeBody::Object(_, obj)) => (EsiBody::Object(obj.clone()), obj.esidata()?.clone()),
        RespBody::Fetched(BeBody::Esi(b, data)) => (EsiBody::Bytes(b.clone(), gzip::is_gzip(resp)), data.clone()),
        _ => return None,
    };
    Some((body, esi::decode(&data)?))
}

/// Sends a response made by ESI (Varnish's `VDP_esi` at the top): the
/// length is not known, so it goes chunked (to EOF for HTTP/1.0); a gzip
/// object stays gzip for a client that takes it, as one stream with the
/// includes inside.
async fn transmit_esi(req: &mut Req, sp: &mut Sess, mut resp: Msg, body: EsiBody, instrs: Vec<Instr>) -> ReqStep {
    // Without http_gzip_support, gzip goes out as it is, whoever asks.
    let gzipped = gzip::is_gzip(&resp);
    let to_gzip = gzipped
        && match req.names_filter("gunzip") {
            Some(named) => !named,
            None => req.params.http_gzip_support == 0.0 || gzip::accepts_gzip(&req.req),
        };
    if gzipped && !to_gzip {
        resp.unset(b"content-encoding");
        gzip::weaken_etag(&mut resp);
        req.shared.stats.n_gunzip.inc();
    }
    req.vsl.str(Tag::Filters, if gzipped && !to_gzip { " esi gunzip" } else { " esi" });
    if resp.has_token(b"connection", b"close") {
        req.doclose = true;
        req.close = "RESP_CLOSE";
    }
    resp.unset(b"connection");
    if let Some(cl) = resp.header(b"content-length").map(<[u8]>::to_vec) {
        req.vsl.header(Tag::RespUnset, b"Content-Length", &cl);
    }
    resp.unset(b"content-length");
    resp.unset(b"transfer-encoding");
    // A HEAD gets the head alone, without a length or framing.
    let head_only = req.is_head();
    let chunked = !head_only && req.req.head.protover() >= 11;
    if !chunked && !head_only {
        req.doclose = true;
        req.close = "TX_EOF";
    }
    let conn: &[u8] = if req.doclose { b"close" } else { b"keep-alive" };
    resp.append(b"Connection", conn);
    req.vsl.header(Tag::RespHeader, b"Connection", conn);
    if chunked {
        resp.append(b"Transfer-Encoding", b"chunked");
        req.vsl.header(Tag::RespHeader, b"Transfer-Encoding", b"chunked");
    }
    req.vsl.timestamp("Process", now());
    let mut head = Vec::with_capacity(1024);
    resp.write_to(&mut head);
    sp.timeouts = req.timeouts;
    let since = Instant::now();
    let mut ok = sp.send(&head, since).await;
    if ok && !head_only {
        let level = to_gzip.then_some(req.params.gzip_level as u32);
        req.esi_out = Some(crate::ved::EsiOut::new(chunked, since, level));
        crate::ved::deliver(req, sp, body, &instrs).await;
        let out = req.esi_out.take().expect("the writer comes back");
        let (whole, bytes) = out.finish(sp).await;
        ok = whole;
        req.resp_body_bytes = bytes;
    }
    if !ok {
        req.doclose = true;
        req.close = "TX_ERROR";
    }
    req.resp_hdr_bytes = head.len() as u64;
    req.vsl.timestamp("Resp", now());
    ReqStep::Finish
}

/// Sends the body of an include into the top request's response: no head,
/// plain bytes (gunzipped if need be), and the object's own ESI followed
/// if it has any. Whatever its status, the body is included (as varnishd
/// 7.1 does); a body that breaks off cuts the whole response off unless
/// the include may fail (`onerror="continue"`).
async fn transmit_include(req: &mut Req, sp: &mut Sess, resp: Msg, body: RespBody) -> ReqStep {
    req.vsl.timestamp("Process", now());
    let status = resp.head.status();
    let before = req.esi_out.as_ref().map_or(0, |o| o.plain_bytes);
    if let Some((esi_body, instrs)) = esi_instructions(req, &resp, &body) {
        req.vsl.str(Tag::Filters, " esi");
        crate::ved::deliver(req, sp, esi_body, &instrs).await;
    } else {
        let gzipped = match &body {
            RespBody::Fetched(BeBody::Object(_, obj)) => gzip::is_gzip(&obj.head),
            _ => gzip::is_gzip(&resp),
        };
        req.vsl.str(Tag::Filters, if gzipped { " gunzip" } else { "" });
        if gzipped && !req.esi_out.as_ref().is_some_and(crate::ved::EsiOut::is_gzip) {
            req.shared.stats.n_gunzip.inc();
        }
        let mut gunzip = gzipped.then(gzip::Filter::gunzip);
        let mut source = match body {
            _ if status < 200 || status == 204 || status == 304 => Source::Nothing,
            RespBody::Synth => Source::Once(std::mem::take(&mut req.synth_body)),
            RespBody::Fetched(BeBody::Bytes(b) | BeBody::Esi(b, _)) => Source::Once(b),
            RespBody::Fetched(BeBody::Stream { rx, .. }) => Source::Stream(rx),
            RespBody::Fetched(BeBody::Object(_, obj)) => Source::Object(obj.reader()),
            RespBody::Fetched(BeBody::Empty) | RespBody::None => Source::Nothing,
        };
        let mut failed = false;
        loop {
            let piece = match source.next().await {
                None => break,
                Some(Ok(piece)) => piece,
                Some(Err(())) => {
                    failed = true;
                    break;
                }
            };
            let plain = match &mut gunzip {
                Some(f) => match f.feed(&piece) {
                    Ok(p) => p,
                    Err(()) => {
                        failed = true;
                        break;
                    }
                },
                None => piece.to_vec(),
            };
            let Some(out) = req.esi_out.as_mut() else { break };
            if !out.write(sp, &plain).await {
                break;
            }
        }
        if let (false, Some(f)) = (failed, gunzip) {
            match f.finish() {
                Ok(tail) => {
                    if let Some(out) = req.esi_out.as_mut() {
                        out.write(sp, &tail).await;
                    }
                }
                Err(()) => failed = true,
            }
        }
        if failed {
            crate::ved::fail(req);
        }
    }
    req.resp_body_bytes = req.esi_out.as_ref().map_or(0, |o| o.plain_bytes) - before;
    req.vsl.timestamp("Resp", now());
    ReqStep::Finish
}

/// Where the body being written comes from.
enum Source {
    Nothing,
    /// All of it, at hand.
    Once(Vec<u8>),
    /// Pieces from a fetch that is not kept (pass); an empty piece ends it.
    Stream(mpsc::Receiver<Result<Vec<u8>, ()>>),
    /// A cached object, perhaps still arriving.
    Object(BodyReader<Msg>),
}

/// How many body bytes are gathered into one write at most.
const WRITE_BATCH: usize = 256 * 1024;

impl Source {
    /// A piece that is already there, without waiting (cached objects).
    fn try_next(&mut self) -> Option<Arc<Vec<u8>>> {
        match self {
            Source::Object(r) => r.try_next(),
            _ => None,
        }
    }

    /// The next piece; `None` at the end, `Err` when it broke off.
    async fn next(&mut self) -> Option<Result<Arc<Vec<u8>>, ()>> {
        match self {
            Source::Nothing => None,
            Source::Once(b) if b.is_empty() => None,
            Source::Once(b) => Some(Ok(Arc::new(std::mem::take(b)))),
            Source::Stream(rx) => match rx.recv().await {
                Some(Ok(piece)) if piece.is_empty() => None,
                Some(Ok(piece)) => Some(Ok(Arc::new(piece))),
                Some(Err(())) | None => Some(Err(())),
            },
            Source::Object(r) => r.next().await,
        }
    }
}

async fn cnt_finish(req: &mut Req, sp: &mut Sess) {
    sp.timeouts = req.timeouts;
    if req.doclose || req.body_done {
        return;
    }
    // The body nobody read goes, so the next request starts at its head.
    if pull_body(sp, &mut req.body, |_| {}).await.is_err() {
        req.doclose = true;
        req.close = "RX_BODY";
    }
    req.body_done = true;
}
