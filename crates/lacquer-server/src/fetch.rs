//! The backend fetch (Varnish's `cache_fetch.c`): its own task and its own
//! state machine, one function per [`FetchStep`].
//!
//! The client side hands over a [`Bo`] (the backend request and what it
//! needs to run VCL) and waits on a oneshot channel for [`Fetched`]: a
//! response head with a body to deliver, or the news that the fetch failed
//! altogether. The body of a backend response is streamed: once the head
//! is handed over, this task keeps reading the backend and sends the body
//! on through a bounded channel, so a slow client slows the backend read
//! instead of filling memory. When the client goes away the channel closes
//! and the backend connection is dropped rather than reused.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lacquer_cache::{Busy, Lifetime, ObjCore, Object, Published};
use lacquer_defs::{Action, Method};
use lacquer_http::{BodyDecoder, ChunkedEncoder, Framing, Head, Parsed};
use lacquer_vcl::program::BackendId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::ctx::{BoCtx, Endpoints};
use crate::esi;
use crate::gzip;
use crate::msg::{http_date, is_hop_by_hop, now, reason, wire_status, Msg};
use crate::rfc2616;
use crate::vbe::{Conn, Io};
use crate::vcl::Vcl;
use crate::vsl::{self, Vsl};
use crate::Shared;
use lacquer_module::Workspace;
use lacquer_shm::{Side, Tag};
use lacquer_vcl::conv::ipaddr_to_string;

/// How many body pieces may wait between the fetch task and the client,
/// either way.
pub(crate) const BODY_QUEUE: usize = 8;

/// The steps of a backend fetch (Varnish's `F_STP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FetchStep {
    /// Runs `vcl_backend_fetch`.
    StartFetch,
    /// Sends the backend request and reads the response head.
    Send,
    /// Runs `vcl_backend_response`.
    Response,
    /// Hands the head to the client and streams the body after it.
    FetchBody,
    /// Counts a retry and starts over.
    Retry,
    /// Makes a synthetic response in `vcl_backend_error`.
    Error,
    /// Tells the client the fetch failed.
    Fail,
    /// The task ends.
    Done,
}

/// What the fetch hands to the client side.
// Sent once per fetch, moved rather than copied: boxing the head would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Fetched {
    /// A response to deliver, with its lifetimes as VCL left them (what
    /// `obj.*` reads when the response is not kept in the cache).
    Resp { beresp: Msg, body: BeBody, life: Lifetime },
    /// The fetch failed without a response (abandoned, failed VCL, too many
    /// retries in `vcl_backend_error`): the client makes a 503.
    Failed,
}

/// The body of a fetched response.
pub(crate) enum BeBody {
    /// No body.
    Empty,
    /// A body made by `vcl_backend_error`.
    Bytes(Vec<u8>),
    /// A body still arriving from the backend: its length if known, and
    /// its pieces (`gzipped` when a fetch filter made or checked them as
    /// gzip); an `Err` piece means the backend failed mid-body.
    Stream { len: Option<u64>, gzipped: bool, rx: mpsc::Receiver<Result<Vec<u8>, ()>> },
    /// A cached object, its body possibly still arriving.
    Object(Arc<ObjCore<Msg>>, Arc<Object<Msg>>),
    /// A body that is not kept, read whole for ESI, with its instructions
    /// (what a cached object holds as its `esidata`).
    Esi(Vec<u8>, Arc<Vec<u8>>),
}

/// Where a streamed request body arrives: its pieces in order, an `Err`
/// when the client failed mid-body, the end when the sender goes.
pub(crate) type BodyRx = mpsc::Receiver<Result<Vec<u8>, ()>>;

/// The request body a fetch sends (Varnish's `req_body_status`).
pub(crate) enum ReqBody {
    /// No body: a miss, or a request without one.
    None,
    /// The whole body, already read; a retry can send it again.
    Cached(Arc<Vec<u8>>),
    /// The body as the client sends it, piece by piece, forwarded without
    /// waiting for the rest: `len` is its Content-Length, `None` when the
    /// client sent it chunked (and so it goes on chunked). An `Err` piece
    /// means the client failed mid-body. It can be sent once only.
    Stream { len: Option<u64>, rx: BodyRx },
    /// A streamed body an earlier fetch of this request already sent.
    Taken,
}

/// A backend fetch: the backend request, the response as it arrives, and
/// what VCL may read or change about them.
pub(crate) struct Bo {
    /// The VCL of the request that started the fetch.
    pub vcl: Arc<Vcl>,
    pub vxid: u64,
    pub req_vxid: u64,
    pub sess_vxid: u64,
    pub ep: Endpoints,
    pub bereq: Msg,
    /// The request body to send.
    pub body: ReqBody,
    pub beresp: Option<Msg>,
    /// The body `vcl_backend_error` makes.
    pub synth_body: Vec<u8>,
    pub backend: Option<BackendId>,
    pub backend_ip: Option<SocketAddr>,
    pub retries: u32,
    pub is_pass: bool,
    /// The store a cached object goes to (`beresp.storage`), by index;
    /// `None` when VCL set it to NULL (a module's STEVEDORE), which leaves
    /// the choice to the next store in turn, as varnishd does.
    pub storage: Option<usize>,
    /// `client.identity` of the request that started the fetch, if its
    /// VCL set one.
    pub client_identity: Option<String>,
    pub uncacheable: bool,
    pub connect_timeout: f64,
    pub first_byte_timeout: f64,
    pub between_bytes_timeout: f64,
    pub t_start: f64,
    pub t_resp: f64,
    pub ttl: f64,
    pub grace: f64,
    pub keep: f64,
    /// When the response was made: received, less its `Age`.
    pub t_origin: f64,
    /// The busy object a miss fills (or marks uncacheable).
    pub busy: Option<Busy<Msg>>,
    /// A background fetch refreshing an object in grace: nobody waits.
    pub is_bgfetch: bool,
    /// `beresp.do_stream`: hand the body on as it arrives (the default),
    /// or only once it is whole.
    pub do_stream: bool,
    /// `beresp.do_gzip` / `beresp.do_gunzip`.
    pub do_gzip: bool,
    pub do_gunzip: bool,
    /// `beresp.do_esi`: parse the body for ESI (`esi.rs`).
    pub do_esi: bool,
    /// The body's transformation on its way in, when VCL asked for one.
    filter: Option<gzip::Filter>,
    /// The request's hash (`bereq.hash`), for directors that pick by it.
    pub hash: Vec<u8>,
    /// The backend the director picked for this fetch (an index into the
    /// VCL's backends; `beresp.backend`).
    pub resolved: Option<usize>,
    /// The fetch's log.
    pub vsl: Vsl,
    /// Modules' PRIV_TASK state, released with the fetch.
    pub privs: std::cell::RefCell<crate::vmod::Privs>,
    /// The fetch's workspace (`workspace_backend`, see `ws.rs`).
    pub ws: crate::ws::Ws,
    /// Where `std.rollback(bereq)` takes the workspace back to: its use
    /// before VCL (Varnish's `bo->ws_bo`).
    pub ws_bo: usize,
    /// The backend request as made from the client's, before VCL
    /// (Varnish's `bo->bereq0`), kept when the VCL may roll it back.
    pub bereq0: Option<Msg>,
    /// The worker's scratch workspace (`workspace_thread`).
    pub thr_ws: crate::ws::Ws,
    /// `VCL_Log` lines of module calls made inside expressions, logged
    /// when the subroutine returns.
    pub module_logs: std::cell::RefCell<Vec<(Tag, Vec<u8>)>>,
    /// Body bytes taken from the backend (`Length`, `BereqAcct`).
    body_bytes: u64,
    /// The backend connection's descriptor, and whether it went back to
    /// the pool (`BackendClose … recycle`).
    conn_fd: i32,
    recycled: bool,
    /// Bytes of request head and body sent, and of response head received.
    acct: (u64, u64, u64),
    /// A stale object this fetch may revalidate (`keep`): its validators go
    /// to the backend, and a 304 answer is made whole from it.
    pub stale: Option<Published<Msg>>,
    /// The backend answered 304 to the revalidation (`beresp.was_304`).
    pub was_304: bool,
    /// The plain length of the gzip body fetched, once it is all read (or
    /// the revalidated object's).
    gunzipped_len: Option<u64>,
    /// A fetch filter changed the Content-Encoding (or did so for the
    /// revalidated object).
    changed_ce: bool,
    /// `beresp.filters` as VCL set it; the default list until then.
    pub filters: Option<String>,
    /// The body is gzip as a fetch filter made or checked it (varnishd's
    /// `OF_GZIPED`): only such a body is gunzipped for clients.
    gzipped: bool,
    /// `return (pass(DURATION))`: mark the object hit-for-pass this long.
    hit_for_pass: Option<f64>,
    /// The status and reason `return (error(...))` asked for.
    err: Option<(u16, Option<Vec<u8>>)>,
    /// The backend connection, between `Send` and the end of the body; it
    /// counts against the backend's `.max_connections` until it goes back
    /// to the pool or is dropped.
    conn: Option<Conn>,
    /// Whether `std.rollback(bereq)` in `vcl_backend_response` let the
    /// backend connection go: Varnish keeps it in the workspace the
    /// rollback empties, so the body cannot be fetched.
    conn_dropped: bool,
    /// Body bytes read with the head.
    rest: Vec<u8>,
    framing: Framing,
    /// The backend connection is not to be reused, whatever VCL does to
    /// the headers: the request went with `Connection: close`, or the
    /// response came with it (or as HTTP/1.0 without keep-alive).
    doclose: bool,
}

impl Bo {
    /// Lets the backend connection go, as a rollback in
    /// `vcl_backend_response` does in Varnish: back to the pool when no
    /// body is left to read on it, else closed.
    pub fn drop_conn(&mut self, shared: &Shared) {
        let bodiless = matches!(self.framing, Framing::None | Framing::Length(0));
        recycle(shared, self, bodiless);
        self.conn = None;
        self.conn_dropped = true;
    }

    /// The response's lifetimes as they stand.
    pub fn lifetime(&self) -> Lifetime {
        Lifetime { t_origin: self.t_origin, ttl: self.ttl, grace: self.grace, keep: self.keep }
    }

    /// How old the response is at VCL's "now" (when it arrived, or when
    /// the error was made): `beresp.ttl` reads and writes are relative to
    /// that moment, while `ttl` counts from `t_origin`.
    pub fn age(&self) -> f64 {
        if self.t_origin == 0.0 {
            0.0
        } else {
            self.t_resp - self.t_origin
        }
    }

    /// A fetch of `bereq` from the backend `backend`, with the server's
    /// default timeouts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: &Shared,
        vcl: Arc<Vcl>,
        vxid: u64,
        req_vxid: u64,
        sess_vxid: u64,
        ep: Endpoints,
        bereq: Msg,
        body: ReqBody,
        backend: Option<BackendId>,
        is_pass: bool,
    ) -> Bo {
        let params = shared.params.get();
        let p = &params;
        let t_start = now();
        Bo {
            vcl,
            vxid,
            req_vxid,
            sess_vxid,
            ep,
            bereq,
            body,
            beresp: None,
            synth_body: Vec::new(),
            backend,
            backend_ip: None,
            retries: 0,
            is_pass,
            uncacheable: is_pass,
            // `beresp.storage` before VCL says otherwise (varnishd's
            // `bo->storage`): Transient for a pass, else the next store.
            storage: Some(if is_pass { shared.cache.stores().len() - 1 } else { shared.cache.next_store() }),
            client_identity: None,
            connect_timeout: p.connect_timeout,
            first_byte_timeout: p.first_byte_timeout,
            between_bytes_timeout: p.between_bytes_timeout,
            t_start,
            t_resp: 0.0,
            ttl: -1.0,
            grace: p.default_grace,
            keep: p.default_keep,
            t_origin: 0.0,
            busy: None,
            is_bgfetch: false,
            do_stream: true,
            do_gzip: false,
            do_gunzip: false,
            do_esi: false,
            filter: None,
            resolved: None,
            hash: Vec::new(),
            vsl: Vsl::new(&shared.log, vxid, Side::Backend, t_start),
            privs: Default::default(),
            ws_bo: 0,
            ws: crate::ws::Ws::backend(p),
            bereq0: None,
            thr_ws: crate::ws::Ws::thread(p),
            module_logs: Default::default(),
            body_bytes: 0,
            conn_fd: -1,
            recycled: false,
            acct: (0, 0, 0),
            hit_for_pass: None,
            stale: None,
            was_304: false,
            gunzipped_len: None,
            changed_ce: false,
            filters: None,
            gzipped: false,
            err: None,
            conn: None,
            conn_dropped: false,
            rest: Vec::new(),
            framing: Framing::None,
            doclose: false,
        }
    }
}

/// Starts the fetch task; the answer comes on the returned channel.
pub(crate) fn spawn(shared: Arc<Shared>, bo: Bo) -> oneshot::Receiver<Fetched> {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(run(shared, bo, tx));
    rx
}

/// The transition loop.
async fn run(shared: Arc<Shared>, mut bo: Bo, tx: oneshot::Sender<Fetched>) {
    let mut tx = Some(tx);
    let how = if bo.is_bgfetch { "bgfetch" } else { "fetch" };
    bo.vsl.fmt(Tag::Begin, format_args!("bereq {} {how}", bo.req_vxid));
    bo.vsl.str(Tag::VCL_use, &bo.vcl.name);
    bo.vsl.timestamp("Start", bo.t_start);
    add_validators(&mut bo);
    bo.vsl.head(&bo.bereq, vsl::BEREQ);
    if bo.vcl.rolls_back {
        bo.bereq0 = Some(bo.bereq.clone());
    }
    let mut step = FetchStep::StartFetch;
    loop {
        step = match step {
            FetchStep::StartFetch => stp_startfetch(&shared, &mut bo),
            FetchStep::Send => stp_send(&shared, &mut bo).await,
            FetchStep::Response => stp_response(&shared, &mut bo),
            FetchStep::FetchBody => stp_fetchbody(&shared, &mut bo, &mut tx).await,
            FetchStep::Retry => stp_retry(&mut bo),
            FetchStep::Error => stp_error(&shared, &mut bo, &mut tx),
            FetchStep::Fail => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Fetched::Failed);
                }
                FetchStep::Done
            }
            FetchStep::Done => {
                let (hdr, body, resp_hdr) = bo.acct;
                let resp_body = bo.body_bytes;
                bo.vsl.fmt(
                    Tag::BereqAcct,
                    format_args!("{hdr} {body} {} {resp_hdr} {resp_body} {}", hdr + body, resp_hdr + resp_body),
                );
                if bo.ws.overflowed() {
                    shared.stats.ws_backend_overflow.inc();
                }
                if bo.thr_ws.overflowed() {
                    shared.stats.ws_thread_overflow.inc();
                }
                bo.vsl.end();
                return;
            }
        };
    }
}

/// Asks the backend whether the stale object is still good (Varnish's
/// conditional fetch): its ETag in If-None-Match, its Last-Modified in
/// If-Modified-Since — set before `vcl_backend_fetch`, which may remove
/// them.
fn add_validators(bo: &mut Bo) {
    let Some((_, obj)) = &bo.stale else { return };
    // A stale object still being fetched may be revalidated too: its body
    // is copied as it arrives, and if its fetch fails so does this one.
    if obj.head.head.status() != 200 {
        return;
    }
    if let Some(etag) = obj.head.header(b"etag").map(<[u8]>::to_vec) {
        bo.bereq.set(b"If-None-Match", &etag);
    }
    if let Some(lm) = obj.head.header(b"last-modified").map(<[u8]>::to_vec) {
        bo.bereq.set(b"If-Modified-Since", &lm);
    }
}

/// A 304 to a revalidation becomes the stale object renewed: its status
/// and headers, updated by those of the 304 (Varnish's `vbf_stp_condfetch`).
/// The stored body's encoding and length stand, whatever the 304 says; a
/// new ETag is weakened when a fetch filter changed the stored encoding
/// (`vbf_304_logic`).
fn merge_304(stale_obj: &Object<Msg>, mut fresh: Msg) -> Msg {
    fresh.unset(b"content-encoding");
    fresh.unset(b"content-length");
    if stale_obj.changed_ce() {
        gzip::weaken_etag(&mut fresh);
    }
    let stale = &stale_obj.head;
    let mut merged = Msg::response(stale.head.status(), stale.head.reason(&stale.buf));
    merged.copy_headers(stale, |_| true);
    for (name, value) in fresh.head.headers(&fresh.buf) {
        if is_hop_by_hop(name, &[]) {
            continue;
        }
        merged.set(name, value);
    }
    merged
}

/// Runs a backend method; a VCL failure is `return (fail)`.
fn vcl(shared: &Arc<Shared>, bo: &mut Bo, method: Method) -> lacquer_vcl::Handling {
    bo.vsl.vcl_call(method);
    let vcl = bo.vcl.clone();
    let validate_headers = shared.params.get().feature("validate_headers");
    let mut ctx = BoCtx { bo, shared, method, now: now(), validate_headers };
    let h = match lacquer_vcl::exec::run(&vcl.program, method, &mut ctx) {
        Ok(h) => h,
        Err(f) => {
            bo.vsl.str(Tag::VCL_Error, &f.0);
            lacquer_vcl::Handling::plain(Action::Fail)
        }
    };
    crate::ctx::flush(&mut bo.vsl, &mut bo.module_logs);
    bo.vsl.str(Tag::VCL_return, h.action.as_str());
    h
}

/// Retries if retries are left, else goes to `otherwise`. The count goes
/// up either way, as Varnish's `bo->retries++ < max_retries`: after the
/// last refused retry `vcl_backend_error` sees `bereq.retries` one past
/// `max_retries`.
fn retry_or(shared: &Shared, bo: &mut Bo, otherwise: FetchStep) -> FetchStep {
    bo.retries += 1;
    if ((bo.retries - 1) as f64) < shared.params.get().max_retries {
        FetchStep::Retry
    } else {
        otherwise
    }
}

fn stp_startfetch(shared: &Arc<Shared>, bo: &mut Bo) -> FetchStep {
    let h = vcl(shared, bo, Method::BackendFetch);
    match h.action {
        Action::Fetch => FetchStep::Send,
        Action::Error => {
            bo.err = Some((h.status.map(wire_status).unwrap_or(503), h.reason));
            FetchStep::Error
        }
        _ => FetchStep::Fail,
    }
}

fn stp_retry(bo: &mut Bo) -> FetchStep {
    // Varnish: "Retry not possible, req.body not cached".
    if matches!(bo.body, ReqBody::Taken) {
        return FetchStep::Fail;
    }
    bo.beresp = None;
    bo.conn = None;
    bo.conn_dropped = false;
    bo.rest.clear();
    bo.err = None;
    FetchStep::StartFetch
}

async fn stp_send(shared: &Arc<Shared>, bo: &mut Bo) -> FetchStep {
    bo.vsl.timestamp("Fetch", now());
    // The director VCL chose picks the backend now (Varnish's VDI_Resolve).
    let vcl = bo.vcl.clone();
    let (be, logs) = match bo.backend {
        Some(id) => crate::vmod::resolve(shared, &vcl, crate::vmod::TaskRef::Bo(bo), Method::BackendFetch, id),
        None => (None, Vec::new()),
    };
    for (tag, l) in logs {
        bo.vsl.text(tag, &l);
    }
    bo.resolved = be.and_then(|be| vcl.backend_index(be));
    let Some(be) = be else {
        bo.vsl.str(Tag::FetchError, "No backend");
        return FetchStep::Error;
    };
    bo.backend_ip = be.def.addrs.first().copied();
    // Varnish takes the backend connection's state from the workspace
    // here: a fetch whose VCL used it up fails.
    if !bo.ws.alloc(crate::ws::HTC_SIZE) {
        bo.vsl.str(Tag::FetchError, "out of workspace");
        return FetchStep::Error;
    }
    let mut bereq = bo.bereq.clone();
    if bereq.header(b"host").is_none() {
        if let Some(h) = be.host_header() {
            bereq.append(b"Host", h.as_bytes());
        }
    }
    bereq.unset(b"content-length");
    bereq.unset(b"transfer-encoding");
    // A streamed body can be sent once: it leaves `bo` here, and a second
    // send (a retry, a restart's next fetch) finds it `Taken`.
    let mut stream = match std::mem::replace(&mut bo.body, ReqBody::Taken) {
        ReqBody::Stream { len, rx } => Some((len, rx)),
        other => {
            bo.body = other;
            None
        }
    };
    match (&bo.body, &stream) {
        (ReqBody::Cached(b), _) => bereq.append(b"Content-Length", b.len().to_string().as_bytes()),
        (_, Some((Some(n), _))) => bereq.append(b"Content-Length", n.to_string().as_bytes()),
        (_, Some((None, _))) => bereq.append(b"Transfer-Encoding", b"chunked"),
        (ReqBody::Taken, None) => {
            bo.vsl.str(Tag::FetchError, "Uncached req.body can only be consumed once");
            return FetchStep::Error;
        }
        _ => {}
    }
    bo.doclose = bereq.has_token(b"connection", b"close");
    let mut out = Vec::with_capacity(1024);
    bereq.write_to(&mut out);
    if let ReqBody::Cached(body) = &bo.body {
        out.extend_from_slice(body);
    }
    let is_head = bereq.head.method(&bereq.buf).eq_ignore_ascii_case(b"HEAD");
    // A reused connection the backend closed meanwhile gets a second try on
    // a new one, unless the body was streamed and cannot be sent again.
    let tries = if stream.is_some() { 1 } else { 2 };
    for attempt in 0..tries {
        let (connect, first_byte, between_bytes) = timeouts(shared, bo);
        // A sick or busy backend refuses here without connecting (Varnish's
        // FetchError "backend NAME: unhealthy" or "busy"), as does one
        // that cannot be reached: all go to vcl_backend_error.
        let hold = crate::vbe::Holddown::from_params(&shared.params.get());
        let conn = if attempt == 0 { be.get(connect, hold).await } else { be.connect(connect, hold).await };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                let m = &shared.stats;
                match e.kind() {
                    io::ErrorKind::ConnectionRefused if !be.healthy() => m.backend_unhealthy.inc(),
                    io::ErrorKind::WouldBlock => m.backend_busy.inc(),
                    _ => {
                        m.backend_fail.inc();
                        let vbe = bo.resolved.and_then(|i| bo.vcl.vbe.get(i));
                        if let Some(v) = vbe {
                            count_connect_failure(v, &e);
                        }
                        if let Some(errno) = e.raw_os_error() {
                            let text = e.to_string();
                            let text = text.split(" (os error").next().unwrap_or_default();
                            bo.vsl.fmt(
                                Tag::FetchError,
                                format_args!("backend {}: fail errno {errno} ({text})", be.def.name),
                            );
                            return FetchStep::Error;
                        }
                    }
                }
                bo.vsl.fmt(Tag::FetchError, format_args!("backend {}: {e}", be.def.name));
                return FetchStep::Error;
            }
        };
        bo.vsl.timestamp("Connected", now());
        if conn.reused {
            shared.stats.backend_reuse.inc();
        } else {
            shared.stats.backend_conn.inc();
        }
        if let Some(v) = bo.backend.and_then(|b| bo.vcl.vbe.get(b as usize)) {
            v.req.inc();
        }
        let (fd, local) = conn.io.describe();
        bo.conn_fd = fd;
        let (ip, port) = bo.backend_ip.map_or((String::from("0.0.0.0"), 0), |a| (ipaddr_to_string(a.ip()), a.port()));
        bo.vsl.fmt(
            Tag::BackendOpen,
            format_args!(
                "{fd} {} {ip} {port} {} {} {}",
                be.def.name,
                ipaddr_to_string(local.ip()),
                local.port(),
                if conn.reused { "reuse" } else { "connect" }
            ),
        );
        bo.vsl.timestamp("Bereq", now());
        bo.acct.0 = (out.len() - if let ReqBody::Cached(b) = &bo.body { b.len() } else { 0 }) as u64;
        let mut buf = Vec::with_capacity(4096);
        let mut head = Head::new();
        let timeouts = (first_byte, between_bytes);
        let body = stream.as_mut().map(|(len, rx)| (len.is_none(), rx));
        let cached = if let ReqBody::Cached(b) = &bo.body { b.len() as u64 } else { 0 };
        match exchange(shared, timeouts, &mut conn.io, &out, body, &mut buf, &mut head).await {
            Ok((n, body_sent)) => {
                bo.acct.1 = body_sent + cached;
                let rest = buf.split_off(n);
                bo.acct.2 = n as u64;
                bo.vsl.timestamp("Beresp", now());
                let mut beresp = Msg { buf, head };
                bo.doclose |= beresp.has_token(b"connection", b"close")
                    || (beresp.head.protover() < 11 && !beresp.has_token(b"connection", b"keep-alive"));
                bo.framing = if is_head { Framing::None } else { beresp.head.framing() };
                if beresp.header(b"date").is_none() {
                    beresp.append(b"Date", http_date().as_bytes());
                }
                bo.t_resp = now();
                if beresp.head.status() == 304
                    && bo.bereq.header(b"if-none-match").or(bo.bereq.header(b"if-modified-since")).is_some()
                {
                    if let Some((_, obj)) = bo.stale.as_ref() {
                        beresp = merge_304(obj, beresp);
                        bo.changed_ce = obj.changed_ce();
                        bo.gzipped = obj.gzipped();
                        bo.gunzipped_len = obj.gunzipped_len();
                        bo.was_304 = true;
                        bo.framing = Framing::None;
                    }
                }
                let life = rfc2616::lifetime(&beresp, bo.t_resp, &shared.params.get());
                bo.vsl.head(&beresp, vsl::BERESP);
                if bo.is_pass {
                    // A pass keeps nothing: only the response's age counts
                    // (Varnish asks RFC 2616 nothing, and logs no `TTL`).
                    (bo.t_origin, bo.ttl, bo.grace, bo.keep) = (life.t_origin, 0.0, 0.0, 0.0);
                } else {
                    (bo.t_origin, bo.ttl, bo.grace, bo.keep) = (life.t_origin, life.ttl, life.grace, life.keep);
                    bo.vsl.fmt(
                        Tag::TTL,
                        format_args!(
                            "RFC {:.0} {:.0} {:.0} {:.0} {:.0} {}",
                            life.ttl,
                            life.grace,
                            life.keep,
                            bo.t_resp,
                            life.t_origin,
                            if bo.uncacheable { "uncacheable" } else { "cacheable" }
                        ),
                    );
                }
                // The head as received stays in the workspace.
                bo.ws.alloc(beresp.buf.len());
                bo.beresp = Some(beresp);
                bo.rest = rest;
                bo.conn = Some(conn);
                return FetchStep::Response;
            }
            // A reused connection the backend had closed: one more try on
            // a fresh one.
            Err(Exchange::Closed) if conn.reused => {
                bo.vsl.str(Tag::FetchError, "HTC eof (-1)");
                bo.vsl.fmt(Tag::BackendClose, format_args!("{fd} {} close", be.def.name));
                shared.stats.backend_retry.inc();
                continue;
            }
            Err(e) => {
                bo.vsl.str(Tag::FetchError, e.why());
                return FetchStep::Error;
            }
        }
    }
    FetchStep::Error
}

/// A backend's count of what made a connect fail, by errno as Varnish
/// sorts them, or that it was not tried while held down.
fn count_connect_failure(v: &lacquer_shm::vsc::Vbe, e: &io::Error) {
    if crate::vbe::is_held_down(e) {
        v.helddown.inc();
        return;
    }
    match (e.raw_os_error(), e.kind()) {
        (Some(1 | 13), _) => v.fail_eacces.inc(),
        (Some(99), _) => v.fail_eaddrnotavail.inc(),
        (Some(111), _) => v.fail_econnrefused.inc(),
        (Some(101), _) => v.fail_enetunreach.inc(),
        (Some(110), _) | (_, io::ErrorKind::TimedOut) => v.fail_etimedout.inc(),
        _ => v.fail_other.inc(),
    }
}

/// The connect, first-byte and between-bytes timeouts of a fetch, each
/// picked as Varnish's `FIND_TMO` does: the value VCL gave `bereq`, else
/// the backend's, else the parameter. `Bo` keeps them as plain numbers
/// that start at the parameters, so a `bereq` value equal to the parameter
/// counts as not set.
fn timeouts(shared: &Shared, bo: &Bo) -> (f64, f64, f64) {
    let params = shared.params.get();
    let p = &params;
    let def = bo.resolved.or(bo.backend.map(|b| b as usize)).and_then(|i| bo.vcl.backends.get(i)).map(|be| &be.def);
    let pick = |asked: f64, param: f64, own: Option<f64>| {
        if asked != param {
            asked
        } else {
            own.filter(|v| *v >= 0.0).unwrap_or(param)
        }
    };
    (
        pick(bo.connect_timeout, p.connect_timeout, def.and_then(|d| d.connect_timeout)),
        pick(bo.first_byte_timeout, p.first_byte_timeout, def.and_then(|d| d.first_byte_timeout)),
        pick(bo.between_bytes_timeout, p.between_bytes_timeout, def.and_then(|d| d.between_bytes_timeout)),
    )
}

/// Why an exchange with a backend failed.
enum Exchange {
    /// The connection closed before any response byte.
    Closed,
    /// No response byte within the first byte timeout.
    FirstByte,
    /// Anything else: a bad head, a reset or a stall mid-head, a request
    /// body that could not be sent.
    Failed,
}

impl Exchange {
    /// The `FetchError` text, in Varnish's words where it has them.
    fn why(&self) -> &'static str {
        match self {
            Exchange::Closed => "backend closed the connection",
            Exchange::FirstByte => "first byte timeout",
            Exchange::Failed => "http first read error",
        }
    }
}

/// Writes the request head (and a cached body) from `out`, then a
/// streamed body as it arrives (`chunked` says whether to frame it), and
/// reads the response head into `buf`; answers how many bytes the head
/// took.
async fn exchange(
    shared: &Shared,
    (first_byte, between_bytes): (f64, f64),
    io: &mut Box<dyn Io>,
    out: &[u8],
    body: Option<(bool, &mut BodyRx)>,
    buf: &mut Vec<u8>,
    head: &mut Head,
) -> Result<(usize, u64), Exchange> {
    let mut body_sent = 0u64;
    if io.write_all(out).await.is_err() {
        return Err(Exchange::Closed);
    }
    if let Some((chunked, rx)) = body {
        let mut enc = ChunkedEncoder::new();
        let mut framed = Vec::new();
        while let Some(piece) = rx.recv().await {
            // The client failed mid-body: the backend must not take what
            // it got for the whole request.
            let piece = piece.map_err(|_| Exchange::Failed)?;
            body_sent += piece.len() as u64;
            let sent = if chunked {
                framed.clear();
                enc.encode(&piece, &mut framed);
                io.write_all(&framed).await
            } else {
                io.write_all(&piece).await
            };
            sent.map_err(|_| Exchange::Failed)?;
        }
        if chunked {
            framed.clear();
            enc.finish(&mut framed);
            io.write_all(&framed).await.map_err(|_| Exchange::Failed)?;
        }
    }
    if io.flush().await.is_err() {
        return Err(Exchange::Closed);
    }
    let limits = shared.params.get().resp_limits();
    loop {
        let wait = if buf.is_empty() { first_byte } else { between_bytes };
        buf.reserve(4096);
        let n = match tokio::time::timeout(secs(wait), io.read_buf(buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) if buf.is_empty() => return Err(Exchange::Closed),
            Err(_) if buf.is_empty() => return Err(Exchange::FirstByte),
            _ => return Err(Exchange::Failed),
        };
        if n == 0 {
            return Err(if buf.is_empty() { Exchange::Closed } else { Exchange::Failed });
        }
        match head.parse_response(buf, &limits) {
            Ok(Parsed::Complete(n)) => return Ok((n, body_sent)),
            Ok(Parsed::Partial) => {}
            Err(_) => return Err(Exchange::Failed),
        }
    }
}

/// A duration in seconds as a `Duration`, never zero.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.001, 1e9))
}

fn stp_response(shared: &Arc<Shared>, bo: &mut Bo) -> FetchStep {
    let h = vcl(shared, bo, Method::BackendResponse);
    match h.action {
        Action::Deliver => FetchStep::FetchBody,
        Action::Pass => {
            let ttl = h.pass_ttl.unwrap_or(0.0);
            bo.hit_for_pass = Some(ttl);
            bo.uncacheable = true;
            bo.vsl.fmt(Tag::TTL, format_args!("HFP {ttl:.0} 0 0 {:.0} uncacheable", now()));
            FetchStep::FetchBody
        }
        Action::Retry => {
            // A response without a body leaves the connection ready for
            // the next request; one with a body unread is closed.
            if matches!(bo.framing, Framing::None | Framing::Length(0)) {
                let keep = !bo.doclose && !bo.beresp.as_ref().is_some_and(|b| b.has_token(b"connection", b"close"));
                recycle(shared, bo, keep);
            }
            retry_or(shared, bo, FetchStep::Error)
        }
        Action::Error => {
            bo.err = Some((h.status.map(wire_status).unwrap_or(503), h.reason));
            FetchStep::Error
        }
        _ => FetchStep::Fail,
    }
}

async fn stp_fetchbody(shared: &Arc<Shared>, bo: &mut Bo, tx: &mut Option<oneshot::Sender<Fetched>>) -> FetchStep {
    if bo.conn_dropped {
        bo.vsl.str(Tag::FetchError, "No backend connection (rollback?)");
        bo.beresp = None;
        return FetchStep::Error;
    }
    let Some(mut beresp) = bo.beresp.take() else {
        return FetchStep::Done;
    };
    setup_filter(shared, bo, &mut beresp);
    let stv = match body_store(shared, bo) {
        Ok(stv) => stv,
        Err(step) => return step,
    };
    let tx = tx.take();
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only
    // when told to.
    // Closed when either side said so: on the wire (`doclose`), or in the
    // response as VCL left it.
    let keep_conn = !bo.doclose && !beresp.has_token(b"connection", b"close");
    let life = bo.lifetime();
    // ESI instructions go with the object when it is published, so a body
    // parsed for ESI is read whole first.
    if !bo.do_stream || bo.do_esi {
        return fetch_whole(shared, bo, beresp, tx, keep_conn, stv).await;
    }
    let sink = match store(shared, bo, &beresp, stv) {
        Some((oc, obj)) => {
            if let Some(tx) = tx {
                let body = BeBody::Object(oc.clone(), obj.clone());
                let _ = tx.send(Fetched::Resp { beresp, body, life });
            }
            Sink::Object(oc, obj)
        }
        None => {
            // Not kept: straight through to the one client, if there is
            // still one.
            let Some(tx) = tx else { return FetchStep::Done };
            let len = match bo.framing {
                Framing::None => {
                    let _ = tx.send(Fetched::Resp { beresp, body: BeBody::Empty, life });
                    recycle(shared, bo, keep_conn);
                    return FetchStep::Done;
                }
                Framing::Length(n) if bo.filter.as_ref().is_none_or(gzip::Filter::keeps_bytes) => Some(n),
                _ => None,
            };
            let (btx, rx) = mpsc::channel(BODY_QUEUE);
            if tx.send(Fetched::Resp { beresp, body: BeBody::Stream { len, gzipped: bo.gzipped, rx }, life }).is_err() {
                return FetchStep::Done;
            }
            Sink::Channel(btx)
        }
    };
    let stv = match &sink {
        Sink::Object(_, obj) => obj.store().storage(),
        _ => transient(shared),
    };
    let stv = format!("{} {}", stv.kind(), stv.name());
    log_body_start(shared, bo, &stv, true);
    let ok = if bo.was_304 {
        recycle(shared, bo, keep_conn);
        copy_stale_body(bo, &sink).await
    } else {
        pull_beresp_body(shared, bo, &sink, keep_conn).await
    };
    log_body_end(shared, bo, ok);
    if ok && matches!(sink, Sink::Object(..)) {
        retire_stale(shared, bo);
    }
    sink.end(shared, ok).await;
    FetchStep::Done
}

/// The object a fetch replaced is not needed any more once the new one is
/// whole (Varnish kills the stale object after a fetch or a 304).
fn retire_stale(shared: &Shared, bo: &mut Bo) {
    if let Some((oc, _)) = bo.stale.take() {
        shared.cache.remove(&oc);
    }
}

/// The body of a revalidated object: the stale object's, copied.
async fn copy_stale_body(bo: &mut Bo, sink: &Sink) -> bool {
    let Some((_, stale)) = bo.stale.clone() else { return false };
    let mut r = stale.reader();
    while let Some(piece) = r.next().await {
        let Ok(piece) = piece else { return false };
        bo.body_bytes += piece.len() as u64;
        if !sink.put(piece.to_vec()).await {
            return false;
        }
    }
    true
}

/// `Storage` (the store's kind and name) and `Fetch_Body`, as the body
/// starts to come.
fn log_body_start(shared: &Shared, bo: &mut Bo, stv: &str, stream: bool) {
    let m = &shared.stats;
    match bo.framing {
        Framing::None => m.fetch_none.inc(),
        Framing::Length(_) => m.fetch_length.inc(),
        Framing::Chunked => m.fetch_chunked.inc(),
        Framing::Eof => m.fetch_eof.inc(),
    }
    bo.vsl.str(Tag::Storage, stv);
    let (n, how) = match bo.framing {
        Framing::None => (0, "none"),
        Framing::Length(_) => (2, "length"),
        Framing::Chunked => (3, "chunked"),
        Framing::Eof => (4, "eof"),
    };
    bo.vsl.fmt(Tag::Fetch_Body, format_args!("{n} {how} {}", if stream { "stream" } else { "-" }));
}

/// What became of the connection and how much body came.
fn log_body_end(shared: &Shared, bo: &mut Bo, ok: bool) {
    let name = bo.resolved.and_then(|i| bo.vcl.backends.get(i)).map_or("", |be| be.def.name.as_str());
    if !ok {
        bo.vsl.str(Tag::FetchError, "Could not get the body");
        shared.stats.fetch_failed.inc();
    }
    bo.vsl.fmt(
        Tag::BackendClose,
        format_args!("{} {name} {}", bo.conn_fd, if bo.recycled { "recycle" } else { "close" }),
    );
    bo.vsl.timestamp("BerespBody", now());
    bo.vsl.fmt(Tag::Length, format_args!("{}", bo.body_bytes));
}

/// The fetch filters (VFPs) `beresp.filters` may name.
pub(crate) const FETCH_FILTERS: [&str; 5] = ["gzip", "gunzip", "testgunzip", "esi", "esi_gzip"];

/// The fetch filter list varnishd builds from `beresp.do_gzip`,
/// `do_gunzip` and `do_esi` (`vbf_default_filter_list`), each name after
/// a blank: gunzip a gzip body asked to or parsed for ESI, gzip a plain
/// one asked to, check a gzip body stored as it came. Nothing without
/// http_gzip_support for the gzip ones, nothing at all without a body.
pub(crate) fn default_filters(shared: &Shared, bo: &Bo, beresp: &Msg) -> String {
    if bo.framing == Framing::None {
        return String::new();
    }
    let support = shared.params.get().http_gzip_support != 0.0;
    let is_gzip = gzip::is_gzip(beresp);
    let is_plain = beresp.header(b"content-encoding").is_none();
    let do_gunzip = support && bo.do_gunzip && is_gzip;
    let do_gzip = support && bo.do_gzip && is_plain;
    let mut list = String::new();
    if do_gunzip || (is_gzip && bo.do_esi) {
        list.push_str(" gunzip");
    }
    if bo.do_esi && (do_gzip || (is_gzip && !do_gunzip)) {
        list.push_str(" esi_gzip");
    } else if bo.do_esi {
        list.push_str(" esi");
    } else if do_gzip {
        list.push_str(" gzip");
    } else if is_gzip && !do_gunzip && support {
        list.push_str(" testgunzip");
    }
    list
}

/// Sets up the fetch filters (varnishd's VFP stack) from `beresp.filters`
/// or the default list, and logs them: `Filters` with each filter after a
/// blank. A filter that has nothing to do (gunzip on a plain body, gzip on
/// an encoded one) is left out, as varnishd's are; gzip and gunzip change
/// the headers as they take effect: the length is no longer known, the
/// ETag becomes weak, and gzip varies on Accept-Encoding.
fn setup_filter(shared: &Shared, bo: &mut Bo, beresp: &mut Msg) {
    if bo.was_304 {
        return;
    }
    let list = match &bo.filters {
        Some(l) => l.clone(),
        None => default_filters(shared, bo, beresp),
    };
    bo.vsl.str(Tag::Filters, &list);
    if bo.framing == Framing::None {
        return;
    }
    let mut chain = Vec::new();
    let mut esi = false;
    for name in list.split_ascii_whitespace() {
        let gzipped = gzip::is_gzip(beresp);
        let plain = beresp.header(b"content-encoding").is_none();
        match name {
            "gunzip" if gzipped => {
                chain.push(gzip::Filter::gunzip());
                beresp.unset(b"content-encoding");
                bo.changed_ce = true;
                shared.stats.n_gunzip.inc();
            }
            "gzip" | "esi_gzip" if plain => {
                esi |= name == "esi_gzip";
                chain.push(gzip::Filter::gzip(shared.params.get().gzip_level as u32));
                beresp.set(b"Content-Encoding", b"gzip");
                gzip::vary_ae(beresp);
                bo.changed_ce = true;
                shared.stats.n_gzip.inc();
            }
            "testgunzip" if gzipped => {
                chain.push(gzip::Filter::test_gunzip());
                // Clients that do not take gzip get it gunzipped.
                gzip::vary_ae(beresp);
                shared.stats.n_test_gunzip.inc();
            }
            "esi" | "esi_gzip" => {
                esi = true;
                if gzipped {
                    // Which clients get the gzip ESI makes depends on
                    // their Accept-Encoding.
                    gzip::vary_ae(beresp);
                }
            }
            _ => {}
        }
    }
    bo.do_esi = esi;
    bo.filter = gzip::Filter::chain(chain);
    bo.gzipped = bo.filter.as_ref().is_some_and(gzip::Filter::makes_gzip);
    if bo.filter.as_ref().is_none_or(gzip::Filter::keeps_bytes) {
        return;
    }
    beresp.unset(b"content-length");
    gzip::weaken_etag(beresp);
}

/// `beresp.do_stream = false`: the body is read whole before anybody is
/// answered, so a backend that fails mid-body gives a 503 instead of a
/// truncated response, and clients waiting for the object keep waiting
/// until it is complete.
async fn fetch_whole(
    shared: &Arc<Shared>,
    bo: &mut Bo,
    beresp: Msg,
    tx: Option<oneshot::Sender<Fetched>>,
    keep_conn: bool,
    stv: usize,
) -> FetchStep {
    let sink = Sink::Buffer(std::sync::Mutex::new(Vec::new()));
    let stored = bo.busy.is_some() && !bo.uncacheable && bo.hit_for_pass.is_none();
    let named = if stored { shared.cache.stores()[stv].storage() } else { transient(shared) };
    log_body_start(shared, bo, &format!("{} {}", named.kind(), named.name()), false);
    let ok = if bo.was_304 {
        recycle(shared, bo, keep_conn);
        copy_stale_body(bo, &sink).await
    } else {
        pull_beresp_body(shared, bo, &sink, keep_conn).await
    };
    let Sink::Buffer(body) = sink else { unreachable!("made above") };
    let body = body.into_inner().unwrap_or_else(|e| e.into_inner());
    // Varnish parses as the body comes: its complaints come before the
    // end of the body is logged.
    let esidata = if ok { esi_instructions(shared, bo, &beresp, &body) } else { None };
    log_body_end(shared, bo, ok);
    if !ok {
        // The busy object goes with `bo`; whoever waits looks again.
        if let Some(tx) = tx {
            let _ = tx.send(Fetched::Failed);
        }
        return FetchStep::Done;
    }
    if let (Some(data), Some(busy)) = (&esidata, bo.busy.as_mut()) {
        busy.set_esidata(data.clone());
    }
    let life = bo.lifetime();
    let fetched = match store(shared, bo, &beresp, stv) {
        Some((oc, obj)) => {
            let ok = obj.append(body).is_ok();
            if let Some(n) = bo.gunzipped_len {
                obj.set_gunzipped_len(n);
            }
            obj.finish(ok);
            if ok {
                retire_stale(shared, bo);
            } else {
                shared.cache.remove(&oc);
            }
            Fetched::Resp { beresp, body: BeBody::Object(oc, obj), life }
        }
        None => match esidata {
            Some(data) => Fetched::Resp { beresp, body: BeBody::Esi(body, Arc::new(data)), life },
            None => Fetched::Resp { beresp, body: BeBody::Bytes(body), life },
        },
    };
    if let Some(tx) = tx {
        let _ = tx.send(fetched);
    }
    FetchStep::Done
}

/// The ESI instructions of the object being made, in their stored form:
/// the stale object's when a 304 revalidated it, else those parsed from
/// the body when `beresp.do_esi` asks for them (a gzip body is parsed
/// gunzipped). The parser's complaints are logged as `ESI_xmlerror` and
/// counted.
fn esi_instructions(shared: &Shared, bo: &mut Bo, beresp: &Msg, body: &[u8]) -> Option<Vec<u8>> {
    if bo.was_304 {
        return bo.stale.as_ref().and_then(|(_, obj)| obj.esidata()).map(|d| d.to_vec());
    }
    if !bo.do_esi {
        return None;
    }
    let plain;
    let text = if gzip::is_gzip(beresp) {
        let mut f = gzip::Filter::gunzip();
        let mut p = f.feed(body).ok()?;
        p.extend(f.finish().ok()?);
        plain = p;
        &plain[..]
    } else {
        body
    };
    let params = shared.params.get();
    let url = bo.bereq.head.url(&bo.bereq.buf).to_vec();
    let parsed = esi::parse(text, &url, esi::Features::of(&params));
    for note in &parsed.notes {
        match note {
            esi::Note::Error(_) => shared.stats.esi_errors.inc(),
            esi::Note::Warning(_) => shared.stats.esi_warnings.inc(),
            esi::Note::Notice(_) => {}
        }
        bo.vsl.str(Tag::ESI_xmlerror, note.text());
    }
    parsed.instrs.map(|i| esi::encode(&i))
}

/// Where a backend response body goes.
enum Sink {
    /// Kept here until it is whole (`do_stream = false`).
    Buffer(std::sync::Mutex<Vec<u8>>),
    /// To the one client of a pass (or an uncacheable miss).
    Channel(mpsc::Sender<Result<Vec<u8>, ()>>),
    /// Into a cached object, for every client reading it.
    Object(Arc<ObjCore<Msg>>, Arc<Object<Msg>>),
}

impl Sink {
    /// Hands on a piece; false when nobody can take it (the client went,
    /// the store is full).
    async fn put(&self, piece: Vec<u8>) -> bool {
        match self {
            Sink::Buffer(b) => {
                b.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&piece);
                true
            }
            Sink::Channel(tx) => tx.send(Ok(piece)).await.is_ok(),
            Sink::Object(_, obj) => obj.append(piece).is_ok(),
        }
    }

    /// Ends the body, complete or not. An incomplete object is removed
    /// from the cache: nobody may be served a truncated copy later.
    async fn end(self, shared: &Shared, ok: bool) {
        match self {
            Sink::Buffer(_) => {}
            Sink::Channel(tx) => {
                let _ = tx.send(if ok { Ok(Vec::new()) } else { Err(()) }).await;
            }
            Sink::Object(oc, obj) => {
                obj.finish(ok);
                if !ok {
                    shared.cache.remove(&oc);
                }
            }
        }
    }
}

/// The Transient store (always the cache's last).
fn transient(shared: &Shared) -> &dyn lacquer_cache::Storage {
    shared.cache.stores().last().expect("Transient always exists").storage()
}

/// Which store an object goes to, as varnishd's `vbf_allocobj` decides:
/// Transient when it is uncacheable or its whole life (`ttl + grace +
/// keep`) is shorter than `shortlived`; otherwise `beresp.storage`, which
/// starts as the next store in turn (`STV_next`: the stores `-s` gave,
/// Transient left out, round robin). Counts the first two cases
/// (`beresp_uncacheable`, `beresp_shortlived`). `None` when VCL set
/// `beresp.storage` to NULL: there is no store to put the object in.
fn choose_store(shared: &Shared, bo: &Bo) -> Option<usize> {
    let last = shared.cache.stores().len() - 1;
    let life = bo.ttl + bo.grace.max(0.0) + bo.keep.max(0.0);
    if bo.uncacheable {
        shared.stats.beresp_uncacheable.inc();
        return Some(last);
    }
    if life < shared.params.get().shortlived {
        shared.stats.beresp_shortlived.inc();
        return Some(last);
    }
    bo.storage
}

/// The store for the body of a fetched response, or, when VCL left none
/// (`beresp.storage` NULL), the fetch error varnishd logs before it goes
/// to `vcl_backend_error`.
fn body_store(shared: &Shared, bo: &mut Bo) -> Result<usize, FetchStep> {
    choose_store(shared, bo).ok_or_else(|| {
        bo.vsl.str(Tag::FetchError, "Could not get storage");
        bo.beresp = None;
        FetchStep::Error
    })
}

/// Completes a miss's busy object from the response as VCL left it:
/// hit-for-pass, hit-for-miss, or a cached object in store `stv` whose
/// body is yet to be read. Answers the object when there is one to fill.
/// When `stv` has no room for it, the object goes to Transient with its
/// life cut to `shortlived` (varnishd's salvage in `vbf_allocobj`).
fn store(shared: &Shared, bo: &mut Bo, beresp: &Msg, stv: usize) -> Option<Published<Msg>> {
    let busy = bo.busy.take()?;
    let life = bo.lifetime();
    let vary = rfc2616::vary(beresp, &bo.bereq);
    if let Some(ttl) = bo.hit_for_pass {
        busy.hit_for_pass(bo.vxid, Lifetime { ttl, ..life }, vary, beresp.clone());
        return None;
    }
    if bo.uncacheable {
        busy.hit_for_miss(bo.vxid, life, vary, beresp.clone());
        return None;
    }
    // The stored head: the response as VCL left it, without its
    // connection's headers; Content-Length stays, for clients that come
    // while the body is still arriving.
    // Proxy credentials are one client's, not for everyone the object
    // serves (Varnish's HTTPH_A_INS).
    let credentials =
        |n: &[u8]| n.eq_ignore_ascii_case(b"proxy-authenticate") || n.eq_ignore_ascii_case(b"proxy-authorization");
    let mut kept = Msg::response(beresp.head.status(), beresp.head.reason(&beresp.buf));
    kept.copy_end_to_end(beresp, |n, hop| (!hop && !credentials(n)) || n.eq_ignore_ascii_case(b"content-length"));
    if !matches!(bo.framing, Framing::Length(_)) {
        kept.unset(b"content-length");
    }
    let mut wire = Vec::new();
    kept.write_to(&mut wire);
    let last = shared.cache.stores().len() - 1;
    let published = match busy.publish_in(stv, kept.clone(), wire.len() as u64, bo.vxid, life, vary.clone()) {
        Ok(p) => Some(p),
        Err(_) if stv == last => None,
        Err((busy, _)) => {
            let short = shared.params.get().shortlived;
            let life = Lifetime { ttl: life.ttl.min(short), grace: 0.0, keep: 0.0, ..life };
            busy.publish_in(last, kept, wire.len() as u64, bo.vxid, life, vary).ok()
        }
    };
    if let Some((_, obj)) = &published {
        if bo.changed_ce {
            obj.set_changed_ce();
        }
        if bo.gzipped {
            obj.set_gzipped();
        }
        if let (true, Some(n)) = (bo.was_304, bo.gunzipped_len) {
            obj.set_gunzipped_len(n);
        }
    }
    published
}

/// `debug.fragfetch N`: backend bodies are handed on in pieces of at most
/// N bytes (0: as they come), so that filters and storage see a body in
/// many pieces, as Varnish's test command does.
static FRAGFETCH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets what `debug.fragfetch` sets.
pub(crate) fn set_fragfetch(n: usize) {
    FRAGFETCH.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Hands a decoded piece of backend body through the fetch filter to
/// `sink`, cut as `debug.fragfetch` asks; false when it cannot go on.
async fn put_piece(bo: &mut Bo, sink: &Sink, data: &[u8]) -> bool {
    let frag = FRAGFETCH.load(std::sync::atomic::Ordering::Relaxed);
    let size = if frag == 0 { data.len().max(1) } else { frag };
    for part in data.chunks(size) {
        let piece = match &mut bo.filter {
            Some(f) => match f.feed(part) {
                Ok(p) => p,
                Err(()) => return false,
            },
            None => part.to_vec(),
        };
        if !piece.is_empty() && !sink.put(piece).await {
            return false;
        }
    }
    true
}

/// Ends the fetch filter at the end of the body: what it still holds goes
/// to `sink`, and the plain length of a gzip body is kept with the object
/// (in `bo` until a whole-read body is stored). False for a body that was
/// not valid gzip.
async fn finish_filter(bo: &mut Bo, sink: &Sink, f: gzip::Filter) -> bool {
    let makes_gzip = f.makes_gzip();
    let Ok((tail, plain)) = f.finish_counted() else { return false };
    if makes_gzip {
        bo.gunzipped_len = Some(plain);
        if let Sink::Object(_, obj) = sink {
            obj.set_gunzipped_len(plain);
        }
    }
    tail.is_empty() || sink.put(tail).await
}

/// Reads the backend response body into `sink`; answers whether it was
/// read whole. The connection goes back to the pool when it can.
async fn pull_beresp_body(shared: &Arc<Shared>, bo: &mut Bo, sink: &Sink, keep_conn: bool) -> bool {
    if bo.framing == Framing::None {
        recycle(shared, bo, keep_conn);
        return true;
    }
    let Some(mut io) = bo.conn.take() else {
        return false;
    };
    let between_bytes = timeouts(shared, bo).2;
    let mut dec = BodyDecoder::new(bo.framing);
    let mut rest = std::mem::take(&mut bo.rest);
    loop {
        let Ok(d) = dec.decode(&rest) else { return false };
        let (consumed, done) = (d.consumed, d.done);
        // Nobody to take it (the client went away, the store is full):
        // drop the connection, mid-body.
        bo.body_bytes += d.data.len() as u64;
        if !put_piece(bo, sink, d.data).await {
            return false;
        }
        rest.drain(..consumed);
        if done {
            if let Some(f) = bo.filter.take() {
                if !finish_filter(bo, sink, f).await {
                    return false;
                }
            }
            // Back to the pool before the client hears the end, so that
            // its next request finds the connection there.
            if keep_conn && rest.is_empty() && bo.framing != Framing::Eof {
                bo.conn = Some(io);
                recycle(shared, bo, true);
            }
            return true;
        }
        if consumed > 0 {
            continue;
        }
        // Large reads make large pieces: fewer of them to store and send.
        rest.reserve(65536);
        match tokio::time::timeout(secs(between_bytes), io.read_buf(&mut rest)).await {
            Ok(Ok(0)) => {
                if dec.finish().is_err() {
                    return false;
                }
                return match bo.filter.take() {
                    None => true,
                    Some(f) => finish_filter(bo, sink, f).await,
                };
            }
            Ok(Ok(_)) => {}
            _ => return false,
        }
    }
}

/// Gives the backend connection back to its pool, or drops it.
fn recycle(shared: &Shared, bo: &mut Bo, keep: bool) {
    let Some(conn) = bo.conn.take() else { return };
    if keep && bo.rest.is_empty() {
        if let Some(be) = bo.resolved.and_then(|i| bo.vcl.backends.get(i)) {
            be.recycle(conn);
            bo.recycled = true;
            shared.stats.backend_recycle.inc();
        }
    }
}

fn stp_error(shared: &Arc<Shared>, bo: &mut Bo, tx: &mut Option<oneshot::Sender<Fetched>>) -> FetchStep {
    bo.conn = None;
    bo.rest.clear();
    // A failed fetch counts; VCL's own `return (error(...))` does not.
    if bo.err.is_none() {
        shared.stats.fetch_failed.inc();
    }
    let (status, why) = bo.err.take().unwrap_or((503, None));
    let why = why.unwrap_or_else(|| {
        if status == 503 {
            b"Backend fetch failed".to_vec()
        } else {
            reason(status).as_bytes().to_vec()
        }
    });
    let mut beresp = Msg::response(status, &why);
    beresp.append(b"Date", http_date().as_bytes());
    beresp.append(b"Server", b"Lacquer");
    bo.beresp = Some(beresp);
    // The error is made now and kept for no time unless VCL says so.
    bo.t_resp = now();
    bo.vsl.timestamp("Error", bo.t_resp);
    (bo.t_origin, bo.ttl, bo.grace, bo.keep) = (bo.t_resp, 0.0, 0.0, 0.0);
    bo.synth_body.clear();
    let h = vcl(shared, bo, Method::BackendError);
    match h.action {
        Action::Deliver => {
            deliver_error(shared, bo, tx.take());
            FetchStep::Done
        }
        Action::Retry => retry_or(shared, bo, FetchStep::Fail),
        _ => FetchStep::Fail,
    }
}

/// Hands on the response `vcl_backend_error` made. It is an object like
/// any other to Varnish: a miss stores it by the same rules, kept as long
/// as VCL said (by default not at all), so that a backend that is down
/// need not be asked again for each request.
fn deliver_error(shared: &Shared, bo: &mut Bo, tx: Option<oneshot::Sender<Fetched>>) {
    let Some(beresp) = bo.beresp.take() else { return };
    let body = std::mem::take(&mut bo.synth_body);
    bo.framing = Framing::Length(body.len() as u64);
    // The error's object goes to the next store when VCL left none.
    let stv = choose_store(shared, bo).unwrap_or_else(|| shared.cache.next_store());
    let life = bo.lifetime();
    let fetched = match store(shared, bo, &beresp, stv) {
        Some((oc, obj)) => {
            let ok = obj.append(body).is_ok();
            obj.finish(ok);
            if !ok {
                shared.cache.remove(&oc);
            } else if life.ttl > 0.0 {
                retire_stale(shared, bo);
            }
            Fetched::Resp { beresp, body: BeBody::Object(oc, obj), life }
        }
        None => Fetched::Resp { beresp, body: BeBody::Bytes(body), life },
    };
    if let Some(tx) = tx {
        let _ = tx.send(fetched);
    }
}

/// Reads from a connection into `buf` with a timeout; `Ok(0)` is end of
/// stream.
pub(crate) async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut Vec<u8>,
    wait: f64,
) -> io::Result<usize> {
    buf.reserve(16384);
    match tokio::time::timeout(secs(wait), io.read_buf(buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timeout")),
    }
}
