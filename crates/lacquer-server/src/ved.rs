//! Edge Side Includes, delivery side (Varnish's `cache_esi_deliver.c`,
//! the "VED"): follows the instructions `esi.rs` stored with an object,
//! sending its verbatim parts and running each include as a request of its
//! own through the whole client state machine (`vcl_recv` … `vcl_deliver`
//! of the same VCL), one level deeper (`req.esi_level`).
//!
//! Everything goes into one [`EsiOut`], the top request's writer: chunked
//! on the client's connection (or to EOF for HTTP/1.0), and gzipped as one
//! stream when the top object is gzip and the client takes it. Includes
//! write plain bytes into it; an include that fails without
//! `onerror="continue"` cuts the whole response off, as in Varnish.

use std::sync::Arc;

use lacquer_cache::Object;
use lacquer_http::{ChunkedEncoder, LAST_CHUNK};
use lacquer_shm::{Side, Tag};
use tokio::time::Instant;

use crate::esi::Instr;
use crate::gzip;
use crate::http1::Sess;
use crate::msg::{now, Msg};
use crate::req_fsm::{run_from, Req, ReqStep};
use crate::vsl::{self, Vsl};

/// How much compressed output is gathered before it is sent.
const GZIP_WRITE: usize = 16 * 1024;

/// The writer of an ESI response, shared by the top request and its
/// includes.
pub(crate) struct EsiOut {
    chunked: bool,
    since: Instant,
    /// The compressor of a gzip response.
    gzip: Option<gzip::Filter>,
    /// What the compressor gave and is not sent yet: sent in writes of a
    /// useful size, and whenever an include begins.
    pending: Vec<u8>,
    /// Body bytes put on the wire (`ReqAcct` of the top request).
    pub wire_bytes: u64,
    /// Body bytes given to the writer, before compression.
    pub plain_bytes: u64,
    /// The response is cut off: the client went, or an include failed
    /// that may not.
    pub broken: bool,
    /// Whether the include being delivered ends everything if it fails
    /// (no `onerror="continue"`).
    pub abort: bool,
}

impl EsiOut {
    /// A writer for a response begun at `since`.
    pub fn new(chunked: bool, since: Instant, gzip_level: Option<u32>) -> EsiOut {
        EsiOut {
            chunked,
            since,
            gzip: gzip_level.map(gzip::Filter::gzip),
            pending: Vec::new(),
            wire_bytes: 0,
            plain_bytes: 0,
            broken: false,
            abort: true,
        }
    }

    /// Whether gzip is what the client gets (includes then ask for gzip).
    pub fn is_gzip(&self) -> bool {
        self.gzip.is_some()
    }

    /// Writes plain body bytes; false once the response is cut off.
    pub async fn write(&mut self, sp: &mut Sess, data: &[u8]) -> bool {
        if self.broken || data.is_empty() {
            return !self.broken;
        }
        self.plain_bytes += data.len() as u64;
        let Some(f) = &mut self.gzip else {
            return self.send(sp, data).await;
        };
        match f.feed(data) {
            Ok(b) => self.pending.extend(b),
            Err(()) => {
                self.broken = true;
                return false;
            }
        }
        if self.pending.len() < GZIP_WRITE {
            return true;
        }
        let bytes = std::mem::take(&mut self.pending);
        self.send(sp, &bytes).await
    }

    /// Sends what the compressor holds, before an include that may take
    /// its time: the client reads the response as far as it is made.
    pub async fn flush(&mut self, sp: &mut Sess) -> bool {
        let Some(f) = &mut self.gzip else { return !self.broken };
        if self.broken {
            return false;
        }
        match f.flush() {
            Ok(bytes) => {
                let mut all = std::mem::take(&mut self.pending);
                all.extend(bytes);
                self.send(sp, &all).await
            }
            Err(()) => {
                self.broken = true;
                false
            }
        }
    }

    async fn send(&mut self, sp: &mut Sess, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        self.wire_bytes += bytes.len() as u64;
        let ok = if self.chunked {
            let mut framed = Vec::with_capacity(bytes.len() + 16);
            ChunkedEncoder::new().encode(bytes, &mut framed);
            sp.send(&framed, self.since).await
        } else {
            sp.send(bytes, self.since).await
        };
        if !ok {
            self.broken = true;
        }
        ok
    }

    /// Ends the body: the gzip trailer and the last chunk, unless it was
    /// cut off. Answers whether the response went out whole.
    pub async fn finish(mut self, sp: &mut Sess) -> (bool, u64) {
        if self.broken {
            return (false, self.wire_bytes);
        }
        if let Some(f) = self.gzip.take() {
            match f.finish() {
                Ok(tail) => {
                    let mut all = std::mem::take(&mut self.pending);
                    all.extend(tail);
                    self.send(sp, &all).await;
                }
                Err(()) => self.broken = true,
            }
        }
        if !self.broken && self.chunked && !sp.send(LAST_CHUNK, self.since).await {
            self.broken = true;
        }
        (!self.broken, self.wire_bytes)
    }
}

/// The body ESI instructions apply to.
pub(crate) enum EsiBody {
    /// A cached object's.
    Object(Arc<Object<Msg>>),
    /// A body not kept (a pass), and whether it is gzip.
    Bytes(Vec<u8>, bool),
}

/// The whole body, gunzipped if it is gzip: what the instructions'
/// offsets count in. `None` if it broke off or does not gunzip.
async fn plain_body(body: EsiBody) -> Option<Vec<u8>> {
    let (bytes, gzipped) = match body {
        EsiBody::Object(obj) => {
            let mut r = obj.reader();
            let mut bytes = Vec::with_capacity(obj.len() as usize);
            while let Some(piece) = r.next().await {
                bytes.extend_from_slice(&piece.ok()?);
            }
            (bytes, gzip::is_gzip(&obj.head))
        }
        EsiBody::Bytes(b, gzipped) => (b, gzipped),
    };
    if !gzipped {
        return Some(bytes);
    }
    let mut f = gzip::Filter::gunzip();
    let mut plain = f.feed(&bytes).ok()?;
    plain.extend(f.finish().ok()?);
    Some(plain)
}

/// Delivers a body by its ESI instructions into the request's
/// [`EsiOut`].
pub(crate) async fn deliver(req: &mut Req, sp: &mut Sess, body: EsiBody, instrs: &[Instr]) {
    let Some(body) = plain_body(body).await else {
        fail(req);
        return;
    };
    for i in instrs {
        if req.esi_out.as_ref().is_none_or(|o| o.broken) {
            return;
        }
        match i {
            Instr::Verbatim { at, len } => {
                let Some(piece) = body.get(*at..at + len) else { continue };
                if let Some(out) = req.esi_out.as_mut() {
                    out.write(sp, piece).await;
                }
            }
            Instr::Include { url, host, abort } => include(req, sp, url, host.as_deref(), *abort).await,
        }
    }
}

/// The include being delivered failed: the response is cut off if the
/// include may not fail.
pub(crate) fn fail(req: &mut Req) {
    if let Some(out) = req.esi_out.as_mut() {
        if out.abort {
            out.broken = true;
        }
    }
}

/// Runs one include as a request of its own (Varnish's `ved_include`).
async fn include(parent: &mut Req, sp: &mut Sess, url: &[u8], host: Option<&[u8]>, abort: bool) {
    // Too deep: the include is left out, the rest goes on.
    let depth = parent.params.max_esi_depth;
    if parent.esi_level as f64 >= depth {
        parent.vsl.fmt(Tag::VCL_Error, format_args!("ESI depth limit reach (param max_esi_depth = {depth})"));
        return;
    }
    let Some(mut out) = parent.esi_out.take() else { return };
    if !out.flush(sp).await {
        parent.esi_out = Some(out);
        return;
    }
    let mut child = child_req(parent, sp, url, host, out.is_gzip());
    let outer_abort = std::mem::replace(&mut out.abort, abort);
    child.esi_out = Some(out);
    parent.shared.stats.esi_req.inc();
    child.privs.get_mut().put_back(parent.privs.get_mut().take_top());
    *child.sess_privs.get_mut() = std::mem::take(parent.sess_privs.get_mut());
    Box::pin(run_from(&mut child, sp, ReqStep::Recv)).await;
    parent.privs.get_mut().put_back(child.privs.get_mut().take_top());
    *parent.sess_privs.get_mut() = std::mem::take(child.sess_privs.get_mut());
    let mut out = child.esi_out.take().expect("an include gives the writer back");
    out.abort = outer_abort;
    parent.esi_out = Some(out);
}

/// The request of an include: the parent's request as its client sent it,
/// for `url` (and `host`), made a plain GET that cannot be conditional or
/// partial, asking for gzip only when the response is gzip.
fn child_req(parent: &mut Req, sp: &Sess, url: &[u8], host: Option<&[u8]>, gzip: bool) -> Req {
    let vxid = crate::next_vxid();
    parent.vsl.fmt(Tag::Link, format_args!("req {vxid} esi"));
    let t = now();
    let mut vsl = Vsl::new(&parent.shared.log, vxid, Side::Client, t);
    vsl.fmt(Tag::Begin, format_args!("req {} esi", parent.vxid));
    vsl.timestamp("Start", t);
    let mut m = parent.req0.clone().unwrap_or_else(|| parent.req.clone());
    m.head.set_url(url);
    vsl.text(Tag::ReqURL, url);
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        m.unset(b"host");
        m.append(b"Host", h);
    }
    m.head.set_method(b"GET");
    m.head.set_proto(b"HTTP/1.1");
    let drop = |m: &mut Msg, name: &[u8], vsl: &mut Vsl| {
        for (n, v) in m.head.headers(&m.buf).filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            vsl.header(Tag::ReqUnset, n, v);
        }
        m.unset(name);
    };
    for h in [&b"if-modified-since"[..], b"if-none-match", b"range", b"content-length", b"transfer-encoding"] {
        drop(&mut m, h, &mut vsl);
    }
    if gzip {
        m.set(b"Accept-Encoding", b"gzip");
    } else {
        drop(&mut m, b"accept-encoding", &mut vsl);
    }
    let vcl = parent.vcl0.clone().unwrap_or_else(|| parent.vcl.clone());
    let mut child = Req::with_log(parent.shared.clone(), vcl, sp, m, vxid, vsl, parent.t_req);
    child.esi_level = parent.esi_level + 1;
    child.top = Some(parent.top.clone().unwrap_or_else(|| Arc::new((parent.req.clone(), parent.t_req))));
    child.ep = parent.ep.clone();
    child.timeouts = parent.timeouts;
    child.esi = parent.esi;
    child.req0 = Some(child.req.clone());
    let ip = child.ep.client_ip_text();
    let sock = child.shared.sockets.get(child.ep.socket).map_or("", |l| l.name.as_str());
    child.vsl.fmt(Tag::ReqStart, format_args!("{ip} {} {sock}", child.ep.client_port_text()));
    child.vsl.head(&child.req, vsl::REQ);
    child
}
