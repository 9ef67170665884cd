//! The two [`VclContext`]s (Varnish's `VRT_ctx` as seen from each task):
//! one for a client request, one for a backend fetch. Each answers VCL's
//! variables from the heads it holds and writes VCL's changes back into
//! them.
//!
//! Variables that need something not built yet answer a default and
//! ignore writes:
//!
//! - cache state not built yet: `req.hash` (opaque), `req.ttl` (kept,
//!   unused), `req.storage` (kept, unused: request bodies are not kept in
//!   a store), `bereq.hash`;
//! - filter lists: `resp.filters`, `beresp.filters`;
//! - `sess.timeout_linger` is kept for VCL and has no effect.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use lacquer_defs::{Method, Var, VclType};
use lacquer_vcl::program::{BackendId, CallId, Header, TypeMethod};
use lacquer_vcl::{Failure, Program, Value, VclContext};

use crate::fetch::Bo;

/// A STEVEDORE value as VCL sees it: `storage.NAME` (the compiler keeps
/// the types apart, so the name is all a value needs to carry).
fn storage_value(shared: &Shared, i: Option<usize>) -> Value<'static> {
    match i.and_then(|i| shared.cache.stores().get(i)) {
        Some(st) => Value::Str(Some(Cow::Owned(format!("storage.{}", st.name()).into_bytes()))),
        None => Value::Str(None),
    }
}

/// `storage.NAME.used_space`, `.free_space` and `.happy`: the bytes the
/// store holds, the bytes it may still take (0 when it has no limit, as
/// varnishd's malloc answers) and whether it exists.
fn stevedore(shared: &Shared, name: &str, m: TypeMethod) -> Value<'static> {
    let st = shared.cache.stores().iter().find(|st| st.name() == name);
    match (m, st) {
        (TypeMethod::Happy, st) => Value::Bool(st.is_some()),
        (TypeMethod::UsedSpace, Some(st)) => Value::Bytes(st.used() as f64),
        (TypeMethod::FreeSpace, Some(st)) => {
            Value::Bytes(st.limit().map_or(0.0, |l| l.saturating_sub(st.used()) as f64))
        }
        _ => Value::Bytes(0.0),
    }
}

/// The store a STEVEDORE value names, by index.
fn store_of(shared: &Shared, v: &Value<'_>) -> Option<usize> {
    let Value::Str(Some(name)) = v else { return None };
    let name = name.strip_prefix(b"storage.")?;
    shared.cache.stores().iter().position(|st| st.name().as_bytes() == name)
}
use crate::msg::{now, reason, wire_status, Msg};
use crate::req_fsm::Req;
use crate::vmod;
use crate::vsl::{self, Vsl};
use crate::ws::Ws;
use crate::Shared;
use lacquer_module::Workspace;

/// A string value borrowed from a head.
fn s(b: &[u8]) -> Value<'_> {
    Value::Str(Some(Cow::Borrowed(b)))
}

/// A string value made here.
fn owned(text: String) -> Value<'static> {
    Value::Str(Some(Cow::Owned(text.into_bytes())))
}

/// The bytes of a STRING value (NULL is empty, as Varnish writes it).
fn bytes_of(v: &Value<'_>) -> Vec<u8> {
    match v {
        Value::Str(Some(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// The value a variable has when nobody set it: zero of its type.
fn default_of(var: Var) -> Value<'static> {
    match var.def().ty {
        VclType::Int => Value::Int(0),
        VclType::Bool => Value::Bool(false),
        VclType::Duration => Value::Duration(0.0),
        VclType::Real => Value::Real(0.0),
        VclType::Time => Value::Time(0.0),
        VclType::Ip => Value::Ip(None),
        VclType::Backend => Value::Backend(None),
        VclType::String => Value::Str(None),
        _ => Value::Opaque,
    }
}

/// The addresses and names a task knows about its connection.
///
/// `remote` and `local` are the socket's two ends (`remote.ip`,
/// `local.ip`); `client` and `server` are the same unless a PROXY header
/// said otherwise (`client.ip`, `server.ip`).
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Which listener accepted the connection: an index into
    /// `Shared::sockets`.
    pub socket: usize,
    /// The client's address and port as a PROXY version 1 header wrote
    /// them (varnishd's `SA_CLIENT_IP` and `SA_CLIENT_PORT`), which is what
    /// `X-Forwarded-For`, `ReqStart` and `client.identity` use; otherwise
    /// they are `client` written out.
    pub client_text: Option<Arc<(String, String)>>,
    /// The TLVs of the connection's PROXY version 2 header, as sent
    /// (varnishd keeps them in the session workspace for `vmod_proxy`).
    pub proxy_tlvs: Option<Arc<[u8]>>,
    /// Who is at the other end of a Unix socket, for `vmod_unix`.
    pub peer_cred: Result<(u32, u32), lacquer_module::PeerCredError>,
}

impl Endpoints {
    /// A connection as accepted, before any PROXY header.
    pub fn accepted(remote: SocketAddr, local: SocketAddr, socket: usize) -> Endpoints {
        Endpoints {
            client: remote,
            server: local,
            remote,
            local,
            socket,
            client_text: None,
            proxy_tlvs: None,
            peer_cred: Err(lacquer_module::PeerCredError::NotUnix),
        }
    }

    /// The client's address as text.
    pub fn client_ip_text(&self) -> String {
        match &self.client_text {
            Some(t) => t.0.clone(),
            None => lacquer_vcl::conv::ip_to_string(&self.client),
        }
    }

    /// The client's port as text.
    pub fn client_port_text(&self) -> String {
        match &self.client_text {
            Some(t) => t.1.clone(),
            None => self.client.port().to_string(),
        }
    }
}

/// Variables both sides answer the same way.
fn common(var: Var, shared: &Shared, ep: &Endpoints, now: f64) -> Option<Value<'static>> {
    Some(match var {
        Var::Now => Value::Time(now),
        Var::ClientIp => Value::Ip(Some(ep.client)),
        Var::RemoteIp => Value::Ip(Some(ep.remote)),
        Var::ServerIp => Value::Ip(Some(ep.server)),
        Var::LocalIp => Value::Ip(Some(ep.local)),
        Var::ClientIdentity => owned(ep.client_ip_text()),
        Var::ServerHostname => owned(shared.hostname.clone()),
        Var::ServerIdentity => owned(shared.identity.clone()),
        Var::LocalEndpoint => owned(shared.sockets.get(ep.socket).map_or_else(String::new, |l| l.endpoint.clone())),
        Var::LocalSocket => owned(shared.sockets.get(ep.socket).map_or_else(String::new, |l| l.name.clone())),
        _ => return None,
    })
}

/// Reads the first line of a head as VCL's `*.method`, `*.url`, `*.proto`,
/// `*.status`, `*.reason`.
fn line_get(m: &Msg, what: Line) -> Value<'_> {
    match what {
        Line::Method => s(m.head.method(&m.buf)),
        Line::Url => s(m.head.url(&m.buf)),
        Line::Proto => s(m.head.proto(&m.buf)),
        Line::Reason => s(m.head.reason(&m.buf)),
        Line::Status => Value::Int(m.head.status() as i64),
    }
}

/// Writes the first line of a head. Setting a status also resets the
/// reason to the status's own, as Varnish's `http_SetStatus` does.
fn line_set(m: &mut Msg, what: Line, v: &Value<'_>) {
    match what {
        Line::Method => m.head.set_method(&bytes_of(v)),
        Line::Url => m.head.set_url(&bytes_of(v)),
        Line::Proto => m.head.set_proto(&bytes_of(v)),
        Line::Reason => m.head.set_reason(&bytes_of(v)),
        Line::Status => {
            if let Value::Int(i) = v {
                let st = wire_status(*i);
                m.head.set_status(st);
                m.head.set_reason(reason(st).as_bytes());
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Line {
    Method,
    Url,
    Proto,
    Status,
    Reason,
}

/// Which part of which message a variable is, for the variables that are
/// parts of heads.
fn line_of(var: Var) -> Option<(Var, Line)> {
    Some(match var {
        Var::ReqMethod => (Var::ReqHttp, Line::Method),
        Var::ReqUrl => (Var::ReqHttp, Line::Url),
        Var::ReqProto => (Var::ReqHttp, Line::Proto),
        Var::ReqTopMethod => (Var::ReqTopHttp, Line::Method),
        Var::ReqTopUrl => (Var::ReqTopHttp, Line::Url),
        Var::ReqTopProto => (Var::ReqTopHttp, Line::Proto),
        Var::BereqMethod => (Var::BereqHttp, Line::Method),
        Var::BereqUrl => (Var::BereqHttp, Line::Url),
        Var::BereqProto => (Var::BereqHttp, Line::Proto),
        Var::BerespProto => (Var::BerespHttp, Line::Proto),
        Var::BerespStatus => (Var::BerespHttp, Line::Status),
        Var::BerespReason => (Var::BerespHttp, Line::Reason),
        Var::RespProto => (Var::RespHttp, Line::Proto),
        Var::ObjProto => (Var::ObjHttp, Line::Proto),
        Var::ObjStatus => (Var::ObjHttp, Line::Status),
        Var::ObjReason => (Var::ObjHttp, Line::Reason),
        Var::RespStatus => (Var::RespHttp, Line::Status),
        Var::RespReason => (Var::RespHttp, Line::Reason),
        _ => return None,
    })
}

/// The context of a client request: `req`, `resp` and, in `vcl_pipe`,
/// `bereq`.
pub(crate) struct ReqCtx<'a> {
    pub req: &'a mut Req,
    pub method: Method,
    /// VCL's `now`: when the subroutine was called, the same throughout.
    pub now: f64,
}

/// The messages a context can reach by header family (`req.http.` …),
/// and the header access VCL needs, written once for both contexts.
trait Messages {
    fn msg(&self, family: Var) -> Option<&Msg>;
    fn msg_mut(&mut self, family: Var) -> Option<&mut Msg>;
    /// The message, the task's log and its workspace, for edits that are
    /// logged and charged.
    fn msg_vsl(&mut self, family: Var) -> Option<(&mut Msg, &mut Vsl, &Ws)>;
    /// Whether header values VCL sets are checked (`feature=+validate_headers`).
    fn validate_headers(&self) -> bool;

    fn read_header(&self, family: Var, name: &Header) -> Option<&[u8]> {
        self.msg(family)?.header(name.lower.as_bytes())
    }

    /// Sets a header, logging what goes (`ReqUnset`) and what comes
    /// (`ReqHeader`) as Varnish does.
    fn write_header(&mut self, family: Var, name: &Header, value: &[u8]) -> Result<(), Failure> {
        // With `feature=+validate_headers` (the default) a value that would
        // break the head (a control byte other than tab) fails the VCL.
        if self.validate_headers() && !lacquer_http::valid_header_value(value) {
            return Err(Failure(format!("Bad header {}:", name.name)));
        }
        if let Some((m, vsl, ws)) = self.msg_vsl(family) {
            // Varnish builds `name: value` in the workspace; when it does
            // not fit the header is lost and the workspace overflowed.
            if !ws.alloc(crate::ws::header_size(name.name.len(), value.len())) {
                let mut lost = name.name.as_bytes().to_vec();
                lost.push(b':');
                vsl.text(lacquer_shm::Tag::LostHeader, &lost);
                return Ok(());
            }
            let tags = head_tags(family);
            for old in m.head.header_all(&m.buf, name.lower.as_bytes()) {
                vsl.header(tags.unset, name.name.as_bytes(), old);
            }
            m.set(name.name.as_bytes(), value);
            vsl.header(tags.header, name.name.as_bytes(), value);
        }
        Ok(())
    }

    fn remove_header(&mut self, family: Var, name: &Header) {
        if let Some((m, vsl, _)) = self.msg_vsl(family) {
            let tags = head_tags(family);
            for old in m.head.header_all(&m.buf, name.lower.as_bytes()) {
                vsl.header(tags.unset, name.name.as_bytes(), old);
            }
            m.unset(name.lower.as_bytes());
        }
    }
}

/// A BLOB variable is handed to VCL in a struct taken from the workspace
/// (`VRT_blob`): the read fails when it does not fit.
fn blob_struct(var: Var, ws: &Ws) -> Result<(), Failure> {
    if var == Var::ReqHash && !ws.alloc(24) {
        return Err(Failure(format!("Workspace overflow ({})", var.def().name)));
    }
    Ok(())
}

/// `ban()` from VCL: a bad expression is logged and otherwise ignored, as
/// in Varnish.
fn add_ban(shared: &Shared, vsl: &mut Vsl, expr: Option<&[u8]>) {
    match crate::ban::parse_vcl(expr) {
        Ok(spec) => {
            let t = now();
            shared.cache.ban(t, spec.into_ban(t));
        }
        Err(e) => vsl.fmt(lacquer_shm::Tag::VCL_Error, format_args!("ban(): {e}")),
    }
}

/// The log tags of a header family.
fn head_tags(family: Var) -> vsl::HeadTags {
    match family {
        Var::RespHttp => vsl::RESP,
        Var::BereqHttp => vsl::BEREQ,
        Var::BerespHttp => vsl::BERESP,
        _ => vsl::REQ,
    }
}

impl Messages for ReqCtx<'_> {
    fn validate_headers(&self) -> bool {
        self.req.params.feature("validate_headers")
    }

    fn msg(&self, family: Var) -> Option<&Msg> {
        match family {
            // In an ESI include, `req_top` is the client's own request.
            Var::ReqTopHttp => Some(self.req.top.as_ref().map_or(&self.req.req, |t| &t.0)),
            Var::ReqHttp => Some(&self.req.req),
            Var::RespHttp => self.req.resp.as_ref(),
            Var::BereqHttp => self.req.bereq.as_ref(),
            Var::ObjHttp => self.req.obj.as_ref().map(|(_, obj)| &obj.head),
            _ => None,
        }
    }

    fn msg_mut(&mut self, family: Var) -> Option<&mut Msg> {
        match family {
            Var::ReqHttp => Some(&mut self.req.req),
            Var::RespHttp => self.req.resp.as_mut(),
            Var::BereqHttp => self.req.bereq.as_mut(),
            _ => None,
        }
    }

    fn msg_vsl(&mut self, family: Var) -> Option<(&mut Msg, &mut Vsl, &Ws)> {
        let r = &mut *self.req;
        match family {
            Var::ReqHttp => Some((&mut r.req, &mut r.vsl, &r.ws)),
            Var::RespHttp => Some((r.resp.as_mut()?, &mut r.vsl, &r.ws)),
            Var::BereqHttp => Some((r.bereq.as_mut()?, &mut r.vsl, &r.ws)),
            _ => None,
        }
    }
}

impl ReqCtx<'_> {
    /// Logs what expressions queued (module logs, ACL verdicts) before
    /// anything else is logged, so the records keep VCL's order.
    fn flush_pending(&mut self) {
        flush(&mut self.req.vsl, &mut self.req.module_logs);
    }
}

/// Logs and empties the records expressions queued.
pub(crate) fn flush(vsl: &mut Vsl, pending: &mut std::cell::RefCell<Vec<(lacquer_shm::Tag, Vec<u8>)>>) {
    for (tag, l) in pending.get_mut().drain(..) {
        vsl.text(tag, &l);
    }
}

impl VclContext for ReqCtx<'_> {
    fn method(&self) -> Method {
        self.method
    }

    fn get(&self, var: Var) -> Value<'_> {
        if let Some((family, line)) = line_of(var) {
            return match self.msg(family) {
                Some(m) => line_get(m, line),
                None => default_of(var),
            };
        }
        let r = &*self.req;
        if let (Var::ClientIdentity, Some(id)) = (var, &r.client_identity) {
            return s(id.as_bytes());
        }
        if let Some(v) = common(var, &r.shared, &r.ep, self.now) {
            return v;
        }
        match var {
            Var::ReqXid => owned(r.vxid.to_string()),
            // The digest of what `hash_data` added, each part ended by a
            // NUL byte (Varnish's field separator).
            Var::ReqHash | Var::BereqHash => Value::Str(Some(Cow::Owned(lacquer_cli::sha256(&r.hash).to_vec()))),
            Var::BereqXid => owned(r.bereq_vxid.to_string()),
            Var::SessXid => owned(r.sess_vxid.to_string()),
            Var::ReqRestarts => Value::Int(r.restarts as i64),
            Var::ReqEsiLevel => Value::Int(r.esi_level as i64),
            Var::ReqEsi => Value::Bool(r.esi),
            Var::RespDoEsi => Value::Bool(r.do_esi.unwrap_or_else(|| r.can_esi())),
            Var::RespFilters => {
                let list = r.filters.clone().unwrap_or_else(|| r.default_resp_filters());
                Value::Str(Some(Cow::Owned(list.into_bytes())))
            }
            Var::ReqCanGzip => Value::Bool(crate::gzip::accepts_gzip(&r.req)),
            Var::ReqBackendHint | Var::BereqBackend => Value::Backend(r.backend_hint),
            Var::ReqHashAlwaysMiss => Value::Bool(r.hash_always_miss),
            Var::ReqHashIgnoreBusy => Value::Bool(r.hash_ignore_busy),
            Var::ReqHashIgnoreVary => Value::Bool(r.hash_ignore_vary),
            Var::ReqTtl => Value::Duration(r.ttl),
            Var::ReqGrace => Value::Duration(r.grace),
            Var::ReqTime => Value::Time(r.t_req),
            Var::ReqTopTime => Value::Time(r.top.as_ref().map_or(r.t_req, |t| t.1)),
            Var::RespTime => Value::Time(r.t_resp),
            Var::ReqTransport => s(b"HTTP/1"),
            Var::RespIsStreaming => Value::Bool(r.is_streaming()),
            Var::ReqIsHitmiss => Value::Bool(r.is_hitmiss),
            Var::ReqIsHitpass => Value::Bool(r.is_hitpass),
            Var::ObjHits => match &r.obj {
                Some((oc, _)) => Value::Int(oc.hits() as i64),
                None => default_of(var),
            },
            // A response the cache did not keep has lifetimes all the same
            // (Varnish's private object), as its fetch left them.
            Var::ObjAge | Var::ObjTtl | Var::ObjGrace | Var::ObjKeep | Var::ObjTime => {
                let Some(life) = r.obj.as_ref().map(|(oc, _)| oc.lifetime()).or(r.life) else {
                    return default_of(var);
                };
                let t = now();
                match var {
                    Var::ObjAge => Value::Duration(t - life.t_origin),
                    Var::ObjTtl => Value::Duration(life.ttl.max(0.0) - (t - life.t_origin)),
                    Var::ObjGrace => Value::Duration(life.grace.max(0.0)),
                    Var::ObjKeep => Value::Duration(life.keep.max(0.0)),
                    _ => Value::Time(life.t_origin),
                }
            }
            Var::ReqStorage => storage_value(&r.shared, r.storage),
            // A pass's body is not kept, but varnishd would have put it in
            // Transient, and that is what VCL is told.
            Var::ObjStorage => match &r.obj {
                Some((_, obj)) => owned(format!("storage.{}", obj.store().name())),
                None => storage_value(&r.shared, Some(r.shared.cache.stores().len() - 1)),
            },
            Var::ObjUncacheable => Value::Bool(r.obj.is_none()),
            Var::ObjCanEsi => Value::Bool(r.can_esi()),
            Var::SessTimeoutIdle => Value::Duration(r.timeouts.idle),
            Var::SessTimeoutLinger => Value::Duration(r.timeouts.linger),
            Var::SessSendTimeout => Value::Duration(r.timeouts.send),
            Var::SessIdleSendTimeout => Value::Duration(r.timeouts.idle_send),
            _ => default_of(var),
        }
    }

    fn set(&mut self, var: Var, value: Value<'_>) -> Result<(), Failure> {
        self.flush_pending();
        if let Some((family, line)) = line_of(var) {
            if let Some(m) = self.msg_mut(family) {
                line_set(m, line, &value);
            }
            return Ok(());
        }
        let r = &mut *self.req;
        match (var, &value) {
            (Var::ReqBackendHint | Var::BereqBackend, Value::Backend(b)) => r.backend_hint = *b,
            (Var::ReqHashAlwaysMiss, Value::Bool(b)) => r.hash_always_miss = *b,
            (Var::ReqHashIgnoreBusy, Value::Bool(b)) => r.hash_ignore_busy = *b,
            (Var::ReqHashIgnoreVary, Value::Bool(b)) => r.hash_ignore_vary = *b,
            (Var::ReqStorage, v) => r.storage = store_of(&r.shared, v),
            (Var::ClientIdentity, v) => {
                r.client_identity = Some(String::from_utf8_lossy(&bytes_of(v)).into_owned());
            }
            (Var::ReqTtl, Value::Duration(d)) => r.ttl = *d,
            // Only the top request may turn ESI off: an include half way
            // through a response cannot (as in Varnish).
            (Var::ReqEsi, Value::Bool(b)) if r.esi_level == 0 => r.esi = *b,
            (Var::RespDoEsi, _) if r.filters.is_some() => {
                return Err(Failure("resp.filters are already fixed, resp.do_esi is undefined".into()));
            }
            (Var::RespDoEsi, Value::Bool(b)) => r.do_esi = Some(*b),
            (Var::RespFilters, v) => {
                // Lacquer's delivery knows esi, gunzip and range; names of
                // delivery filters from modules (varnishd's debug.pedantic,
                // rot13) are kept in the list but have no effect yet.
                let list = String::from_utf8_lossy(&bytes_of(v)).into_owned();
                // ESI is followed when the list names it.
                r.do_esi = Some(list.split_ascii_whitespace().any(|n| n == "esi"));
                r.filters = Some(list);
            }
            (Var::ReqGrace, Value::Duration(d)) => r.grace = *d,
            (Var::RespBody, v) => r.synth_body = bytes_of(v),
            (Var::SessTimeoutIdle, Value::Duration(d)) => r.timeouts.idle = *d,
            (Var::SessTimeoutLinger, Value::Duration(d)) => r.timeouts.linger = *d,
            (Var::SessSendTimeout, Value::Duration(d)) => r.timeouts.send = *d,
            (Var::SessIdleSendTimeout, Value::Duration(d)) => r.timeouts.idle_send = *d,
            _ => {}
        }
        Ok(())
    }

    fn unset(&mut self, var: Var) -> Result<(), Failure> {
        self.flush_pending();
        if var == Var::RespBody {
            self.req.synth_body.clear();
        }
        Ok(())
    }

    fn header(&self, family: Var, name: &Header) -> Option<&[u8]> {
        self.read_header(family, name)
    }

    fn set_header(&mut self, family: Var, name: &Header, value: &[u8]) -> Result<(), Failure> {
        self.flush_pending();
        self.write_header(family, name, value)
    }

    fn unset_header(&mut self, family: Var, name: &Header) {
        self.flush_pending();
        self.remove_header(family, name);
    }

    fn hash_data(&mut self, data: &[u8]) {
        self.flush_pending();
        self.req.hash.extend_from_slice(data);
        self.req.hash.push(0);
    }

    fn synthetic(&mut self, body: &[u8]) {
        self.flush_pending();
        self.req.synth_body.extend_from_slice(body);
    }

    fn ban(&mut self, expr: Option<&[u8]>) {
        self.flush_pending();
        let (shared, vsl) = (self.req.shared.clone(), &mut self.req.vsl);
        add_ban(&shared, vsl, expr);
    }

    fn call(&self, _program: &Program, call: CallId, args: &[Option<Value<'_>>]) -> Result<Value<'static>, Failure> {
        let (shared, vcl) = (self.req.shared.clone(), self.req.vcl.clone());
        let task = vmod::Task::Req(vmod::Lent::Shared(&*self.req));
        let (v, logs) = vmod::call(&shared, &vcl, task, self.method, call, args)?;
        self.req.module_logs.borrow_mut().extend(logs);
        Ok(v)
    }

    fn call_mut(
        &mut self,
        _program: &Program,
        call: CallId,
        args: &[Option<Value<'static>>],
    ) -> Result<Value<'static>, Failure> {
        self.flush_pending();
        let (shared, vcl) = (self.req.shared.clone(), self.req.vcl.clone());
        let task = vmod::Task::Req(vmod::Lent::Mut(&mut *self.req));
        let (v, logs) = vmod::call(&shared, &vcl, task, self.method, call, args)?;
        for (tag, l) in logs {
            self.req.vsl.text(tag, &l);
        }
        if self.req.conn.end.is_some() {
            // A module ended the request: nothing after the call runs
            // (see handoff.rs).
            return Err(Failure("the request was ended by a module".into()));
        }
        Ok(v)
    }

    fn backend_name(&self, b: BackendId) -> Option<&str> {
        self.req.vcl.director(b).map(|d| d.name())
    }

    fn stevedore(&self, name: &str, m: TypeMethod) -> Value<'static> {
        stevedore(&self.req.shared, name, m)
    }

    fn log_acl(&self, line: &str) {
        self.req.module_logs.borrow_mut().push((lacquer_shm::Tag::VCL_acl, line.as_bytes().to_vec()));
    }

    fn ws_charge(&self, len: usize) -> bool {
        self.req.ws.alloc_str(len)
    }

    fn read(&self, var: Var) -> Result<Value<'_>, Failure> {
        blob_struct(var, &self.req.ws)?;
        Ok(self.get(var))
    }

    fn resolve_backend(&self, b: BackendId) -> Option<BackendId> {
        let (shared, vcl) = (self.req.shared.clone(), self.req.vcl.clone());
        let (be, logs) = vmod::resolve(&shared, &vcl, vmod::TaskRef::Req(self.req), self.method, b);
        self.req.module_logs.borrow_mut().extend(logs);
        vcl.backend_id(be?)
    }
}

/// The context of a backend fetch: `bereq` and `beresp`.
pub(crate) struct BoCtx<'a> {
    pub bo: &'a mut Bo,
    pub shared: &'a Arc<Shared>,
    pub method: Method,
    /// VCL's `now`: when the subroutine was called, the same throughout.
    pub now: f64,
    /// `feature=+validate_headers` when the subroutine was called.
    pub validate_headers: bool,
}

impl Messages for BoCtx<'_> {
    fn validate_headers(&self) -> bool {
        self.validate_headers
    }

    fn msg(&self, family: Var) -> Option<&Msg> {
        match family {
            Var::BereqHttp => Some(&self.bo.bereq),
            Var::BerespHttp => self.bo.beresp.as_ref(),
            _ => None,
        }
    }

    fn msg_mut(&mut self, family: Var) -> Option<&mut Msg> {
        match family {
            Var::BereqHttp => Some(&mut self.bo.bereq),
            Var::BerespHttp => self.bo.beresp.as_mut(),
            _ => None,
        }
    }

    fn msg_vsl(&mut self, family: Var) -> Option<(&mut Msg, &mut Vsl, &Ws)> {
        let bo = &mut *self.bo;
        match family {
            Var::BereqHttp => Some((&mut bo.bereq, &mut bo.vsl, &bo.ws)),
            Var::BerespHttp => Some((bo.beresp.as_mut()?, &mut bo.vsl, &bo.ws)),
            _ => None,
        }
    }
}

impl BoCtx<'_> {
    /// As [`ReqCtx::flush_pending`].
    fn flush_pending(&mut self) {
        flush(&mut self.bo.vsl, &mut self.bo.module_logs);
    }
}

impl VclContext for BoCtx<'_> {
    fn method(&self) -> Method {
        self.method
    }

    fn get(&self, var: Var) -> Value<'_> {
        if let Some((family, line)) = line_of(var) {
            return match self.msg(family) {
                Some(m) => line_get(m, line),
                None => default_of(var),
            };
        }
        if let (Var::ClientIdentity, Some(id)) = (var, &self.bo.client_identity) {
            return s(id.as_bytes());
        }
        if let Some(v) = common(var, self.shared, &self.bo.ep, self.now) {
            return v;
        }
        let bo = &*self.bo;
        match var {
            Var::BereqXid => owned(bo.vxid.to_string()),
            Var::BereqHash => Value::Str(Some(Cow::Owned(lacquer_cli::sha256(&bo.hash).to_vec()))),
            Var::ReqXid => owned(bo.req_vxid.to_string()),
            Var::SessXid => owned(bo.sess_vxid.to_string()),
            Var::BereqRetries => Value::Int(bo.retries as i64),
            Var::BereqBackend => Value::Backend(bo.backend),
            Var::BerespBackend => Value::Backend(bo.resolved.map(|i| i as u32).or(bo.backend)),
            Var::BerespBackendName => match bo.resolved.and_then(|i| bo.vcl.backends.get(i)) {
                Some(be) => s(be.def.name.as_bytes()),
                None => Value::Str(None),
            },
            Var::BerespBackendIp => Value::Ip(bo.backend_ip),
            Var::BereqUncacheable => Value::Bool(bo.is_pass),
            Var::BerespUncacheable => Value::Bool(bo.uncacheable),
            Var::BereqConnectTimeout => Value::Duration(bo.connect_timeout),
            Var::BereqFirstByteTimeout => Value::Duration(bo.first_byte_timeout),
            Var::BereqBetweenBytesTimeout => Value::Duration(bo.between_bytes_timeout),
            Var::BereqTime => Value::Time(bo.t_start),
            Var::BerespTime => Value::Time(bo.t_resp),
            // As Varnish reads them: never below zero, the TTL less the
            // response's age.
            Var::BerespTtl => Value::Duration(bo.ttl.max(0.0) - bo.age()),
            Var::BerespGrace => Value::Duration(bo.grace.max(0.0)),
            Var::BerespKeep => Value::Duration(bo.keep.max(0.0)),
            Var::BerespAge => Value::Duration(bo.age()),
            Var::BerespDoStream => Value::Bool(bo.do_stream),
            Var::BerespDoGzip => Value::Bool(bo.do_gzip),
            Var::BerespDoGunzip => Value::Bool(bo.do_gunzip),
            Var::BerespDoEsi => Value::Bool(bo.do_esi),
            Var::BerespFilters => {
                let list = match (&bo.filters, bo.beresp.as_ref()) {
                    (Some(l), _) => l.clone(),
                    (None, Some(beresp)) => crate::fetch::default_filters(self.shared, bo, beresp),
                    (None, None) => String::new(),
                };
                Value::Str(Some(Cow::Owned(list.into_bytes())))
            }
            Var::BereqIsBgfetch => Value::Bool(bo.is_bgfetch),
            Var::BerespWas304 => Value::Bool(bo.was_304),
            // The hint (VCL 4.0) reads as the storage, as varnishd's.
            Var::BerespStorage | Var::BerespStorageHint => storage_value(self.shared, bo.storage),
            _ => default_of(var),
        }
    }

    fn set(&mut self, var: Var, value: Value<'_>) -> Result<(), Failure> {
        self.flush_pending();
        if let Some((family, line)) = line_of(var) {
            if let Some(m) = self.msg_mut(family) {
                line_set(m, line, &value);
            }
            return Ok(());
        }
        let bo = &mut *self.bo;
        match (var, &value) {
            (Var::BereqBackend, Value::Backend(b)) => bo.backend = *b,
            (Var::BereqConnectTimeout, Value::Duration(d)) => bo.connect_timeout = *d,
            (Var::BereqFirstByteTimeout, Value::Duration(d)) => bo.first_byte_timeout = *d,
            (Var::BereqBetweenBytesTimeout, Value::Duration(d)) => bo.between_bytes_timeout = *d,
            (Var::BerespUncacheable, Value::Bool(b)) => {
                // Once uncacheable, always: Varnish refuses the way back.
                if bo.uncacheable && !*b {
                    bo.vsl.str(lacquer_shm::Tag::VCL_Error, "Ignoring attempt to reset beresp.uncacheable");
                } else if *b {
                    bo.uncacheable = true;
                }
                log_ttl(bo);
            }
            (Var::BerespDoGzip | Var::BerespDoGunzip | Var::BerespDoEsi, _) if bo.filters.is_some() => {
                return Err(Failure(format!("beresp.filters are already fixed, {} is undefined", var.def().name)));
            }
            (Var::BerespFilters, v) => {
                let list = String::from_utf8_lossy(&bytes_of(v)).into_owned();
                if let Some(bad) = list.split_ascii_whitespace().find(|n| !crate::fetch::FETCH_FILTERS.contains(n)) {
                    return Err(Failure(format!("Filter '{bad}' not found")));
                }
                bo.filters = Some(list);
            }
            (Var::BerespDoStream, Value::Bool(b)) => bo.do_stream = *b,
            (Var::BerespDoGzip, Value::Bool(b)) => bo.do_gzip = *b,
            (Var::BerespDoGunzip, Value::Bool(b)) => bo.do_gunzip = *b,
            (Var::BerespDoEsi, Value::Bool(b)) => bo.do_esi = *b,
            (Var::BerespTtl, Value::Duration(d)) => {
                bo.ttl = (d + bo.age()).max(0.0);
                log_ttl(bo);
            }
            (Var::BerespGrace, Value::Duration(d)) => {
                bo.grace = d.max(0.0);
                log_ttl(bo);
            }
            (Var::BerespKeep, Value::Duration(d)) => {
                bo.keep = d.max(0.0);
                log_ttl(bo);
            }
            (Var::BerespBody, v) => bo.synth_body = bytes_of(v),
            // VCL type-checks a STEVEDORE: only NULL names no store.
            (Var::BerespStorage, v) => bo.storage = store_of(self.shared, v),
            // The hint names a store without `storage.`; an unknown name
            // changes nothing (varnishd logs it and goes on).
            (Var::BerespStorageHint, Value::Str(Some(name))) => {
                if let Some(i) = self.shared.cache.stores().iter().position(|st| st.name().as_bytes() == &**name) {
                    bo.storage = Some(i);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn unset(&mut self, var: Var) -> Result<(), Failure> {
        self.flush_pending();
        if var == Var::BereqBody {
            self.bo.body = crate::fetch::ReqBody::None;
        }
        Ok(())
    }

    fn header(&self, family: Var, name: &Header) -> Option<&[u8]> {
        self.read_header(family, name)
    }

    fn set_header(&mut self, family: Var, name: &Header, value: &[u8]) -> Result<(), Failure> {
        self.flush_pending();
        self.write_header(family, name, value)
    }

    fn unset_header(&mut self, family: Var, name: &Header) {
        self.flush_pending();
        self.remove_header(family, name);
    }

    fn synthetic(&mut self, body: &[u8]) {
        self.flush_pending();
        self.bo.synth_body.extend_from_slice(body);
    }

    fn ban(&mut self, expr: Option<&[u8]>) {
        self.flush_pending();
        add_ban(self.shared, &mut self.bo.vsl, expr);
    }

    fn call(&self, _program: &Program, call: CallId, args: &[Option<Value<'_>>]) -> Result<Value<'static>, Failure> {
        let vcl = self.bo.vcl.clone();
        let task = vmod::Task::Bo(vmod::Lent::Shared(&*self.bo));
        let (v, logs) = vmod::call(self.shared, &vcl, task, self.method, call, args)?;
        self.bo.module_logs.borrow_mut().extend(logs);
        Ok(v)
    }

    fn call_mut(
        &mut self,
        _program: &Program,
        call: CallId,
        args: &[Option<Value<'static>>],
    ) -> Result<Value<'static>, Failure> {
        self.flush_pending();
        let vcl = self.bo.vcl.clone();
        let task = vmod::Task::Bo(vmod::Lent::Mut(&mut *self.bo));
        let (v, logs) = vmod::call(self.shared, &vcl, task, self.method, call, args)?;
        for (tag, l) in logs {
            self.bo.vsl.text(tag, &l);
        }
        Ok(v)
    }

    fn backend_name(&self, b: BackendId) -> Option<&str> {
        self.bo.vcl.director(b).map(|d| d.name())
    }

    fn stevedore(&self, name: &str, m: TypeMethod) -> Value<'static> {
        stevedore(self.shared, name, m)
    }

    fn log_acl(&self, line: &str) {
        self.bo.module_logs.borrow_mut().push((lacquer_shm::Tag::VCL_acl, line.as_bytes().to_vec()));
    }

    fn ws_charge(&self, len: usize) -> bool {
        self.bo.ws.alloc_str(len)
    }

    fn resolve_backend(&self, b: BackendId) -> Option<BackendId> {
        let vcl = self.bo.vcl.clone();
        let (be, logs) = vmod::resolve(self.shared, &vcl, vmod::TaskRef::Bo(self.bo), self.method, b);
        self.bo.module_logs.borrow_mut().extend(logs);
        vcl.backend_id(be?)
    }
}

/// `TTL VCL …`: the lifetimes after VCL changed one of them (or
/// `beresp.uncacheable`), as Varnish logs them.
fn log_ttl(bo: &mut Bo) {
    let how = if bo.uncacheable { "uncacheable" } else { "cacheable" };
    bo.vsl.fmt(
        lacquer_shm::Tag::TTL,
        format_args!("VCL {:.0} {:.0} {:.0} {:.0} {how}", bo.ttl, bo.grace, bo.keep, bo.t_origin),
    );
}
