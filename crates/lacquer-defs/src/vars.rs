//! The VCL variables of Varnish 7.1: one row each, with type and where the
//! variable may be read, set and unset.
//!
//! A row whose name ends in `.` (`req.http.`) is a family: the rest of the
//! name is a header name (or, for `storage.`, a stevedore and a field).
//!
//! The table was taken from `vcl-var(7)` of Varnish 7.1.1 and then checked
//! against its compiler: every row was read, set and unset in each of the 14
//! built-in subroutines under `vcl 4.1;` and `vcl 4.0;` with `varnishd -C`,
//! and the masks below are what VCC accepted. Where the man page and VCC
//! disagree VCC wins (`storage.` is readable in `vcl_init`/`vcl_fini` too).
//! The rows carry VCL 4.1's rules; the one thing a row cannot say, that the
//! `*.proto` variables are writable in VCL 4.0, is in [`VCL40_WRITE`].

// VCC's messages for these checks
// ===============================
//
// What `varnishd -C -f check.vcl` (Varnish 7.1.1) prints, verbatim, minus a
// "Could not delete 'vcl_boot.…/vgc.sym'" line; the exit status is 2 each
// time. check.vcl is `vcl 4.1;` (or `vcl 4.0;`), a line
// `backend default { .host = "127.0.0.1"; }`, an empty line, then the line
// shown in the message.
//
// (a) Reading a variable where it is not readable:
//         "Not available in subroutine 'vcl_recv'."
//
//     Message from VCC-compiler:
//     ('/tmp/vcct/check.vcl' Line 4 Pos 33) -- (Pos 38)
//     sub vcl_recv { set req.http.x = beresp.ttl; }
//     --------------------------------######-------
//
//     Not available in subroutine 'vcl_recv'.
//     Running VCC-compiler failed, exited with 2
//     VCL compilation failed
//
//     (When reading, VCC underlines only the first component, `beresp`.)
//
// (b) Setting a read-only variable:
//         "Variable is read only."
//
//     Message from VCC-compiler:
//     ('/tmp/vcct/check.vcl' Line 4 Pos 20) -- (Pos 31)
//     sub vcl_recv { set req.can_gzip = true; }
//     -------------------############----------
//
//     Variable is read only.
//     Running VCC-compiler failed, exited with 2
//     VCL compilation failed
//
//     That is only where the variable is readable. Elsewhere setting a
//     read-only variable gives (a) instead, on the whole name:
//     `sub vcl_backend_fetch { set req.can_gzip = true; }` →
//     "Not available in subroutine 'vcl_backend_fetch'.". A variable that is
//     neither readable nor writable anywhere (`bereq.body`) gives
//     "Variable cannot be set.".
//
// (c) Setting a variable writable elsewhere but not here:
//         "Cannot be set in subroutine 'vcl_recv'."
//
//     Message from VCC-compiler:
//     ('/tmp/vcct/check.vcl' Line 4 Pos 20) -- (Pos 29)
//     sub vcl_recv { set beresp.ttl = 1s; }
//     -------------------##########--------
//
//     Cannot be set in subroutine 'vcl_recv'.
//     Running VCC-compiler failed, exited with 2
//     VCL compilation failed
//
// (d) Unsetting a variable that cannot be unset:
//         "Variable cannot be unset."
//
//     Message from VCC-compiler:
//     ('/tmp/vcct/check.vcl' Line 4 Pos 22) -- (Pos 28)
//     sub vcl_recv { unset req.url; }
//     ---------------------#######---
//
//     Variable cannot be unset.
//     Running VCC-compiler failed, exited with 2
//     VCL compilation failed
//
//     A variable unsetable elsewhere but not here (`unset req.http.x;` in
//     vcl_backend_fetch) gives "Cannot be unset in subroutine
//     'vcl_backend_fetch'." instead.
//
// (e) A VCL 4.1-only variable under `vcl 4.0;`:
//         "Symbol not found: 'local.socket' (Only available when 4.1 <= VCL syntax)"
//
//     Message from VCC-compiler:
//     Symbol not found: 'local.socket' (Only available when 4.1 <= VCL syntax)
//     At: ('/tmp/vcct/check.vcl' Line 4 Pos 33) -- (Pos 44)
//     sub vcl_recv { set req.http.x = local.socket; }
//     --------------------------------############---
//
//     Running VCC-compiler failed, exited with 2
//     VCL compilation failed
//
//     The other way round, a 4.0-only variable under `vcl 4.1;` gives
//     "Symbol not found: 'req.esi' (Only available when VCL syntax <= 4.0)"
//     when set or unset, but when read VCC takes `req` as the HTTP variable
//     and says "Unknown property 'esi' for type HTTP" (likewise
//     `beresp.backend.ip`: "Unknown property 'ip' for type BACKEND").
//     An unknown stevedore gives "Symbol not found: 'storage.foo.happy'".

use crate::method::{Method, MethodMask};
use crate::types::VclType;

/// One VCL variable, as the compiler and the docs see it.
#[derive(Clone, Copy, Debug)]
pub struct VarDef {
    /// The runtime identity: what the compiled program asks the context for.
    pub id: Var,
    /// The name as written in VCL (`req.url`), or a family prefix (`req.http.`).
    pub name: &'static str,
    /// The value type.
    pub ty: VclType,
    /// Methods it may be read from.
    pub read: MethodMask,
    /// Methods it may be set from.
    pub write: MethodMask,
    /// Methods it may be unset from.
    pub unset: MethodMask,
    /// The first VCL version that has it (40 for 4.0, 41 for 4.1).
    pub vcl_min: u8,
    /// The last VCL version that has it.
    pub vcl_max: u8,
    /// The reference text.
    pub doc: &'static str,
}

impl VarDef {
    /// Whether this row is a family (`req.http.`) rather than one variable.
    pub fn is_family(&self) -> bool {
        self.name.ends_with('.')
    }
}

#[allow(dead_code)]
const NONE: MethodMask = 0;
#[allow(dead_code)]
const CLIENT: MethodMask = Method::CLIENT;
#[allow(dead_code)]
const BACKEND: MethodMask = Method::BACKEND;
#[allow(dead_code)]
const BOTH: MethodMask = Method::CLIENT | Method::BACKEND;
#[allow(dead_code)]
const HOUSEKEEPING: MethodMask = Method::HOUSEKEEPING;
#[allow(dead_code)]
const ALL: MethodMask = Method::ALL_MASK;

/// A mask from a list of methods: `m!(Recv, Hash)`.
macro_rules! m {
    ($($meth:ident),*) => { 0 $(| Method::$meth.bit())* };
}

macro_rules! vars {
    ($( $id:ident = $name:literal : $ty:ident,
        read $read:expr, write $write:expr, unset $unset:expr,
        vcl $lo:literal ..= $hi:literal, $doc:literal ;)*) => {
        /// The identity of a VCL variable (or variable family) at run time.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Var { $( #[doc = $name] $id, )* }

        /// Every variable, in table order; `VARIABLES[v as usize].id == v`.
        pub static VARIABLES: &[VarDef] = &[ $( VarDef {
            id: Var::$id,
            name: $name,
            ty: VclType::$ty,
            read: $read,
            write: $write,
            unset: $unset,
            vcl_min: $lo,
            vcl_max: $hi,
            doc: $doc,
        }, )* ];
    };
}

impl Var {
    /// This variable's row.
    pub fn def(self) -> &'static VarDef {
        &VARIABLES[self as usize]
    }
}

/// Finds the row for a name as written in VCL: an exact variable, or the
/// family whose prefix it starts with (`req.http.host` → `req.http.`).
pub fn lookup(name: &str) -> Option<&'static VarDef> {
    VARIABLES
        .iter()
        .find(|v| !v.is_family() && v.name == name)
        .or_else(|| VARIABLES.iter().find(|v| v.is_family() && name.len() > v.name.len() && name.starts_with(v.name)))
}

vars! {
    Now = "now": Time, read ALL, write NONE, unset NONE, vcl 40..=41,
        "The current time, in seconds since the UNIX epoch. As a string it is an HTTP date such as \"Tue, 20 Feb 2018 09:30:31 GMT\".";

    Req = "req": Http, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The whole client request as one value, mostly useful as an argument to VMOD functions.";
    ReqBackendHint = "req.backend_hint": Backend, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "The backend or director bereq.backend starts out as if the request is fetched. Reading it gives the backend a director picked, if it picked at once, else the director; as a string, its name.";
    ReqCanGzip = "req.can_gzip": Bool, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "True if the client's Accept-Encoding header offers gzip or x-gzip.";
    ReqEsi = "req.esi": Bool, read CLIENT, write CLIENT, unset NONE, vcl 40..=40,
        "Set to false to turn ESI processing off for this request whatever beresp.do_esi says; defaults to true. VCL 4.0 only: resp.do_esi replaces it in 4.1.";
    ReqEsiLevel = "req.esi_level": Int, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "How many levels of ESI include deep this request is; 0 for the request the client sent.";
    ReqGrace = "req.grace": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Upper limit on object grace: a lookup uses the lesser of this and the grace stored with the object.";
    ReqHash = "req.hash": Blob, read m!(Pass, Purge, Miss, Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The hash key of the request, as computed by vcl_hash. Mostly for VMODs, or for debugging hits and misses.";
    ReqHashAlwaysMiss = "req.hash_always_miss": Bool, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Force a cache miss even if a good object is cached, e.g. to refresh an entry while keeping the old one in case the fetch fails. Default false.";
    ReqHashIgnoreBusy = "req.hash_ignore_busy": Bool, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Ignore busy objects (fetches in progress) during the lookup, e.g. to avoid deadlocks between two caches that look up from each other. Default false.";
    ReqHashIgnoreVary = "req.hash_ignore_vary": Bool, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Ignore the objects' Vary during the lookup and take the first match, whatever variant it is; use with care. Default false.";
    ReqHttp = "req.http.": Header, read CLIENT, write CLIENT, unset CLIENT, vcl 40..=41,
        "The headers of the request (req.http.date). Set and unset act on every header of that name; a name that is not a VCL symbol can be quoted, req.http.\"a.b\".";
    ReqIsHitmiss = "req.is_hitmiss": Bool, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "True if this request resulted in a hit-for-miss.";
    ReqIsHitpass = "req.is_hitpass": Bool, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "True if this request resulted in a hit-for-pass.";
    ReqMethod = "req.method": String, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "The request method, such as \"GET\" or \"HEAD\".";
    ReqProto = "req.proto": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The protocol version the client used, usually \"HTTP/1.1\" or \"HTTP/2.0\". Read-only in VCL 4.1; VCL 4.0 also lets the client methods set it (see VCL40_WRITE).";
    ReqRestarts = "req.restarts": Int, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "How many times this request has been restarted.";
    ReqStorage = "req.storage": Stevedore, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "The storage backend in which to save the request body.";
    ReqTime = "req.time": Time, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "When the request was fully received; unchanged across restarts.";
    ReqTransport = "req.transport": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The name of the transport protocol that brought the request.";
    ReqTtl = "req.ttl": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Upper limit on the age of an object for a lookup to count as a hit.";
    ReqUrl = "req.url": String, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "The requested URL, for instance \"/robots.txt\".";
    ReqXid = "req.xid": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The unique ID (VXID) of this request.";

    ReqTopHttp = "req_top.http.": Header, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The headers of the top-level request of an ESI tree; the same as req.http. when there is no ESI.";
    ReqTopMethod = "req_top.method": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The method of the top-level request of an ESI tree; the same as req.method when there is no ESI.";
    ReqTopProto = "req_top.proto": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The protocol version of the top-level request of an ESI tree; the same as req.proto when there is no ESI.";
    ReqTopTime = "req_top.time": Time, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "When the top-level request was fully received; unchanged across restarts.";
    ReqTopUrl = "req_top.url": String, read CLIENT, write NONE, unset NONE, vcl 40..=41,
        "The URL of the top-level request of an ESI tree; the same as req.url when there is no ESI.";

    Bereq = "bereq": Http, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "The whole backend request as one value, mostly useful as an argument to VMOD functions.";
    BereqBackend = "bereq.backend": Backend, read BACKEND | m!(Pipe), write BACKEND | m!(Pipe), unset NONE, vcl 40..=41,
        "The backend or director to fetch from. Reading it gives the backend a director picked, if it picked at once, else the director; as a string, its name.";
    BereqBetweenBytesTimeout = "bereq.between_bytes_timeout": Duration, read BACKEND, write BACKEND, unset NONE, vcl 40..=41,
        "How long to wait between bytes received from the backend; defaults to the backend's .between_bytes_timeout or the parameter. Not used for pipe.";
    BereqBody = "bereq.body": Body, read NONE, write NONE, unset m!(BackendFetch), vcl 40..=41,
        "The body of the backend request. It can only be unset, which also removes bereq.http.Content-Length.";
    BereqConnectTimeout = "bereq.connect_timeout": Duration, read BACKEND | m!(Pipe), write BACKEND | m!(Pipe), unset NONE, vcl 40..=41,
        "How long to wait for the backend connection to be established; defaults to the backend's .connect_timeout or the parameter.";
    BereqFirstByteTimeout = "bereq.first_byte_timeout": Duration, read BACKEND, write BACKEND, unset NONE, vcl 40..=41,
        "How long to wait for the first byte of the backend's response; defaults to the backend's .first_byte_timeout or the parameter. Not used for pipe.";
    BereqHash = "bereq.hash": Blob, read BACKEND | m!(Pipe), write NONE, unset NONE, vcl 40..=41,
        "The hash key of the request, a copy of req.hash.";
    BereqHttp = "bereq.http.": Header, read BACKEND | m!(Pipe), write BACKEND | m!(Pipe), unset BACKEND | m!(Pipe), vcl 40..=41,
        "The headers to send to the backend.";
    BereqIsBgfetch = "bereq.is_bgfetch": Bool, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "True for a background fetch, started because a client got a grace hit and a fresh copy is wanted.";
    BereqIsHitmiss = "bereq.is_hitmiss": Bool, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "True if this backend request was caused by a hit-for-miss.";
    BereqIsHitpass = "bereq.is_hitpass": Bool, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "True if this backend request was caused by a hit-for-pass.";
    BereqMethod = "bereq.method": String, read BACKEND | m!(Pipe), write BACKEND | m!(Pipe), unset NONE, vcl 40..=41,
        "The method of the backend request, such as \"GET\"; always \"GET\" for ordinary fetches (neither pass nor pipe).";
    BereqProto = "bereq.proto": String, read BACKEND | m!(Pipe), write NONE, unset NONE, vcl 40..=41,
        "The protocol version sent to the backend: \"HTTP/1.1\" unless a pass or pipe request came in as \"HTTP/1.0\". Read-only in VCL 4.1; VCL 4.0 also lets vcl_pipe and the backend methods set it (see VCL40_WRITE).";
    BereqRetries = "bereq.retries": Int, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "How many times this backend request has been retried.";
    BereqTime = "bereq.time": Time, read BACKEND | m!(Pipe), write NONE, unset NONE, vcl 40..=41,
        "When the first backend request began to be prepared; unchanged across retries.";
    BereqUncacheable = "bereq.uncacheable": Bool, read BACKEND, write NONE, unset NONE, vcl 40..=41,
        "True if the fetch cannot be cached, because of a pass on the client side or a hit on a hit-for-pass object.";
    BereqUrl = "bereq.url": String, read BACKEND | m!(Pipe), write BACKEND | m!(Pipe), unset NONE, vcl 40..=41,
        "The URL to request from the backend, copied from req.url.";
    BereqXid = "bereq.xid": String, read BACKEND | m!(Pipe), write NONE, unset NONE, vcl 40..=41,
        "The unique ID (VXID) of this backend request.";

    Beresp = "beresp": Http, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "The whole backend response as one value, mostly useful as an argument to VMOD functions.";
    BerespAge = "beresp.age": Duration, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "The age of the object: from the Age header, else zero.";
    BerespBackend = "beresp.backend": Backend, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "The backend the response came from (the one a director picked, if bereq.backend was a director); as a string, its name.";
    BerespBackendIp = "beresp.backend.ip": Ip, read m!(BackendResponse), write NONE, unset NONE, vcl 40..=40,
        "The IP address of the backend the response came from. VCL 4.0 only.";
    BerespBackendName = "beresp.backend.name": String, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "The name of the backend the response came from; the same as beresp.backend as a string.";
    BerespBody = "beresp.body": Body, read NONE, write m!(BackendError), unset NONE, vcl 40..=41,
        "The body of a synthetic backend response, made in vcl_backend_error. It can only be set.";
    BerespDoEsi = "beresp.do_esi": Bool, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "Set to true to parse the object for ESI directives, without which no ESI processing can happen on delivery. Default false; an error once beresp.filters is set.";
    BerespDoGunzip = "beresp.do_gunzip": Bool, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "Set to true to gunzip the object before storing it (no effect without http_gzip_support). Default false; an error once beresp.filters is set.";
    BerespDoGzip = "beresp.do_gzip": Bool, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "Set to true to gzip the object before storing it (no effect without http_gzip_support). Default false; an error once beresp.filters is set.";
    BerespDoStream = "beresp.do_stream": Bool, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "Deliver the object to the client while it is still being fetched. Default true; no effect with ESI or an empty body.";
    BerespFilters = "beresp.filters": String, read m!(BackendResponse), write m!(BackendResponse), unset NONE, vcl 40..=41,
        "The fetch filters (VFPs: gzip, gunzip, testgunzip, esi, esi_gzip, or from VMODs) the body passes through before storage, leftmost first. Built from the beresp.do_* switches by default; they may not be used once it is set.";
    BerespGrace = "beresp.grace": Duration, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "How long a stale object may still be delivered after its TTL. Defaults to Cache-Control stale-while-revalidate or the default_grace parameter.";
    BerespHttp = "beresp.http.": Header, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset m!(BackendResponse, BackendError), vcl 40..=41,
        "The headers of the backend response.";
    BerespKeep = "beresp.keep": Duration, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "How long to keep the object beyond TTL and grace, for conditional requests to the backend. Defaults to the default_keep parameter.";
    BerespProto = "beresp.proto": String, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "The protocol version the backend replied with. Read-only in VCL 4.1; VCL 4.0 also lets vcl_backend_response and vcl_backend_error set it (see VCL40_WRITE).";
    BerespReason = "beresp.reason": String, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "The status message of the backend response.";
    BerespStatus = "beresp.status": Int, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "The status code of the backend response; VCL may use codes up to 65535, of which only the last three digits are sent.";
    BerespStorage = "beresp.storage": Stevedore, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "The storage backend in which to save the object.";
    BerespStorageHint = "beresp.storage_hint": String, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=40,
        "The name of the storage backend in which to save the object. Deprecated, and VCL 4.0 only: use beresp.storage.";
    BerespTime = "beresp.time": Time, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "When the response headers were fully received, just before vcl_backend_response; or when vcl_backend_error was entered.";
    BerespTtl = "beresp.ttl": Duration, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "The object's remaining time to live, in seconds. Defaults from Cache-Control s-maxage or max-age, the Expires header, or the default_ttl parameter.";
    BerespUncacheable = "beresp.uncacheable": Bool, read m!(BackendResponse, BackendError), write m!(BackendResponse, BackendError), unset NONE, vcl 40..=41,
        "Starts as bereq.uncacheable; setting it to true makes the object uncacheable (possibly a hit-for-miss object), and setting it back to false has no effect.";
    BerespWas304 = "beresp.was_304": Bool, read m!(BackendResponse, BackendError), write NONE, unset NONE, vcl 40..=41,
        "True if the backend answered our conditional fetch with a 304, which Varnish turned into a 200.";

    ObjAge = "obj.age": Duration, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The age of the cached object.";
    ObjCanEsi = "obj.can_esi": Bool, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "True if the object can be ESI-processed, that is if setting resp.do_esi (or adding esi to resp.filters) in vcl_deliver would take effect.";
    ObjGrace = "obj.grace": Duration, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The object's grace period, in seconds.";
    ObjHits = "obj.hits": Int, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "How many cache hits the object has had; 0 in vcl_deliver means this was a miss.";
    ObjHttp = "obj.http.": Header, read m!(Hit), write NONE, unset NONE, vcl 40..=41,
        "The headers stored in the object.";
    ObjKeep = "obj.keep": Duration, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The object's keep period, in seconds.";
    ObjProto = "obj.proto": String, read m!(Hit), write NONE, unset NONE, vcl 40..=41,
        "The protocol version stored in the object.";
    ObjReason = "obj.reason": String, read m!(Hit), write NONE, unset NONE, vcl 40..=41,
        "The reason phrase stored in the object.";
    ObjStatus = "obj.status": Int, read m!(Hit), write NONE, unset NONE, vcl 40..=41,
        "The status code stored in the object.";
    ObjStorage = "obj.storage": Stevedore, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The storage backend the object is stored in.";
    ObjTime = "obj.time": Time, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "When the object was created, as seen by the server that made it; roughly now - obj.age.";
    ObjTtl = "obj.ttl": Duration, read m!(Hit, Deliver), write NONE, unset NONE, vcl 40..=41,
        "The object's remaining time to live, in seconds.";
    ObjUncacheable = "obj.uncacheable": Bool, read m!(Deliver), write NONE, unset NONE, vcl 40..=41,
        "True if the object is uncacheable (pass, hit-for-pass or hit-for-miss).";

    Resp = "resp": Http, read m!(Deliver, Synth), write NONE, unset NONE, vcl 40..=41,
        "The whole response as one value, mostly useful as an argument to VMOD functions.";
    RespBody = "resp.body": Body, read NONE, write m!(Synth), unset NONE, vcl 40..=41,
        "The body of a synthetic response, made in vcl_synth. It can only be set.";
    RespDoEsi = "resp.do_esi": Bool, read m!(Deliver, Synth), write m!(Deliver, Synth), unset NONE, vcl 41..=41,
        "Set to false to skip ESI processing of this delivery even though the object was parsed for ESI. Defaults to obj.can_esi; an error once resp.filters is set. VCL 4.1 only.";
    RespFilters = "resp.filters": String, read m!(Deliver, Synth), write m!(Deliver, Synth), unset NONE, vcl 40..=41,
        "The delivery filters (VDPs) the body passes through. Until set, reading it gives the default list; once set, resp.do_esi may not be used.";
    RespHttp = "resp.http.": Header, read m!(Deliver, Synth), write m!(Deliver, Synth), unset m!(Deliver, Synth), vcl 40..=41,
        "The headers of the response to send.";
    RespIsStreaming = "resp.is_streaming": Bool, read m!(Deliver, Synth), write NONE, unset NONE, vcl 40..=41,
        "True if the response will be streamed while it is still being fetched from the backend.";
    RespProto = "resp.proto": String, read m!(Deliver, Synth), write NONE, unset NONE, vcl 40..=41,
        "The protocol version of the response. Read-only in VCL 4.1; VCL 4.0 also lets vcl_deliver and vcl_synth set it (see VCL40_WRITE).";
    RespReason = "resp.reason": String, read m!(Deliver, Synth), write m!(Deliver, Synth), unset NONE, vcl 40..=41,
        "The status message to send.";
    RespStatus = "resp.status": Int, read m!(Deliver, Synth), write m!(Deliver, Synth), unset NONE, vcl 40..=41,
        "The status code to send. A 200 may become a 304 after vcl_deliver when a conditional request validates against the object.";
    RespTime = "resp.time": Time, read m!(Deliver, Synth), write NONE, unset NONE, vcl 40..=41,
        "When Varnish began preparing the response, just before vcl_deliver or vcl_synth.";

    ClientIdentity = "client.identity": String, read BOTH, write CLIENT, unset NONE, vcl 40..=41,
        "Identifies the client for load balancing (the client director). Defaults to client.ip; may be set to something more precise, e.g. from a cookie.";
    ClientIp = "client.ip": Ip, read BOTH, write NONE, unset NONE, vcl 40..=41,
        "The client's IP address: remote.ip, or the address the PROXY protocol gave.";

    ServerHostname = "server.hostname": String, read ALL, write NONE, unset NONE, vcl 40..=41,
        "The host name of the machine, from gethostname(3).";
    ServerIdentity = "server.identity": String, read ALL, write NONE, unset NONE, vcl 40..=41,
        "The identity of the server, set by varnishd -i; the host name if -i was not given.";
    ServerIp = "server.ip": Ip, read BOTH, write NONE, unset NONE, vcl 40..=41,
        "The address of the socket the client connection was received on: local.ip, or what the PROXY protocol said.";

    LocalEndpoint = "local.endpoint": String, read BOTH, write NONE, unset NONE, vcl 41..=41,
        "The address of the -a listen socket the session was accepted on, e.g. \":81\" for -a foo=:81. VCL 4.1 only.";
    LocalIp = "local.ip": Ip, read BOTH, write NONE, unset NONE, vcl 40..=41,
        "The IP address and port of the local end of the TCP connection; 0.0.0.0:0 for a Unix domain socket.";
    LocalSocket = "local.socket": String, read BOTH, write NONE, unset NONE, vcl 41..=41,
        "The name of the -a listen socket the session was accepted on, e.g. \"foo\" for -a foo=:81 (unnamed ones are a0, a1 …). VCL 4.1 only.";

    RemoteIp = "remote.ip": Ip, read BOTH, write NONE, unset NONE, vcl 40..=41,
        "The IP address of the other end of the TCP connection, the client or a proxy; 0.0.0.0:0 for a Unix domain socket.";

    SessIdleSendTimeout = "sess.idle_send_timeout": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Send timeout for each piece of data on this client connection; defaults to the idle_send_timeout parameter.";
    SessSendTimeout = "sess.send_timeout": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Total send timeout for ordinary HTTP/1 responses; defaults to the send_timeout parameter.";
    SessTimeoutIdle = "sess.timeout_idle": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Idle timeout for this session; defaults to the timeout_idle parameter.";
    SessTimeoutLinger = "sess.timeout_linger": Duration, read CLIENT, write CLIENT, unset NONE, vcl 40..=41,
        "Linger timeout for this session; defaults to the timeout_linger parameter.";
    SessXid = "sess.xid": String, read BOTH, write NONE, unset NONE, vcl 41..=41,
        "The unique ID (VXID) of this session. VCL 4.1 only.";

    Storage = "storage.": Stevedore, read ALL, write NONE, unset NONE, vcl 40..=41,
        "A storage backend by name. The rest is `<stevedore>` or `<stevedore>.<field>`: storage.<stevedore> is the STEVEDORE (a configured one, such as s0 or Transient, else the name is unknown), and the fields are methods on it: free_space and used_space (BYTES, only the malloc stevedore knows them) and happy (BOOL).";
}

/// Write permissions VCL 4.0 adds to a row's `write` mask. The rows carry
/// VCL 4.1's rules; under `vcl 4.0;` VCC also lets the four `*.proto`
/// variables be set wherever they can be read.
pub static VCL40_WRITE: &[(Var, MethodMask)] = &[
    (Var::ReqProto, CLIENT),
    (Var::BereqProto, BACKEND | m!(Pipe)),
    (Var::BerespProto, m!(BackendResponse, BackendError)),
    (Var::RespProto, m!(Deliver, Synth)),
];

impl VarDef {
    /// Whether the variable exists under VCL version `vcl` (40 or 41).
    pub fn in_vcl(&self, vcl: u8) -> bool {
        self.vcl_min <= vcl && vcl <= self.vcl_max
    }

    /// The methods it may be set from under VCL version `vcl`: `write`, plus
    /// [`VCL40_WRITE`] under 4.0, and nothing where it does not exist.
    pub fn write_in(&self, vcl: u8) -> MethodMask {
        if !self.in_vcl(vcl) {
            return NONE;
        }
        let extra =
            if vcl < 41 { VCL40_WRITE.iter().find(|(v, _)| *v == self.id).map_or(NONE, |&(_, m)| m) } else { NONE };
        self.write | extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_the_table() {
        for (i, v) in VARIABLES.iter().enumerate() {
            assert_eq!(v.id as usize, i, "{}", v.name);
        }
    }

    #[test]
    fn families_match_by_prefix() {
        assert_eq!(lookup("req.http.host").map(|v| v.id), Some(Var::ReqHttp));
        assert_eq!(lookup("req.url").map(|v| v.id), Some(Var::ReqUrl));
        assert!(lookup("req.http.").is_none());
        assert!(lookup("req.nope").is_none());
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for v in VARIABLES {
            assert!(seen.insert(v.name), "duplicate {}", v.name);
        }
        assert_eq!(VARIABLES.len(), 107);
    }

    #[test]
    fn families_end_with_a_dot() {
        for v in VARIABLES {
            match v.ty {
                VclType::Header => assert!(v.is_family(), "{} is a header but no family", v.name),
                VclType::Stevedore if v.name.starts_with("storage") => {
                    assert_eq!(v.name, "storage.")
                }
                _ => assert!(!v.is_family(), "{} ends with '.'", v.name),
            }
        }
        let families: Vec<_> = VARIABLES.iter().filter(|v| v.is_family()).map(|v| v.name).collect();
        assert_eq!(
            families,
            ["req.http.", "req_top.http.", "bereq.http.", "beresp.http.", "obj.http.", "resp.http.", "storage."]
        );
    }

    #[test]
    fn masks_are_methods() {
        for v in VARIABLES {
            for m in [v.read, v.write, v.unset] {
                assert_eq!(m & !Method::ALL_MASK, 0, "{}", v.name);
            }
            assert!(40 <= v.vcl_min && v.vcl_min <= v.vcl_max && v.vcl_max <= 41, "{}", v.name);
            assert!(!v.doc.is_empty(), "{}", v.name);
        }
        for &(var, m) in VCL40_WRITE {
            assert_eq!(m & !var.def().read, 0, "{:?}", var);
        }
    }

    #[test]
    fn rows_agree_with_vcc() {
        // Spot checks of what `varnishd -C` accepted.
        let def = |n: &str| lookup(n).unwrap();
        assert_eq!(def("now").read, Method::ALL_MASK);
        assert_eq!(def("storage.s0.happy").id, Var::Storage);
        assert_eq!(def("storage.Transient").read & Method::Init.bit(), Method::Init.bit());
        assert_eq!(def("bereq.backend").write, Method::BACKEND | Method::Pipe.bit());
        assert_eq!(def("bereq").read, Method::BACKEND);
        assert_eq!(def("bereq.body").unset, Method::BackendFetch.bit());
        assert_eq!(def("beresp.filters").read, Method::BackendResponse.bit());
        assert_eq!(def("obj.http.x").read, Method::Hit.bit());
        assert_eq!(def("resp.body").write, Method::Synth.bit());
        assert_eq!(def("client.identity").write, Method::CLIENT);
        assert_eq!(def("req.hash").read & Method::Recv.bit(), 0);
        assert!(!def("req.esi").in_vcl(41) && def("req.esi").in_vcl(40));
        assert!(def("sess.xid").in_vcl(41) && !def("sess.xid").in_vcl(40));
        assert_eq!(def("req.proto").write_in(41), 0);
        assert_eq!(def("req.proto").write_in(40), Method::CLIENT);
        assert_eq!(def("resp.do_esi").write_in(40), 0);
        assert_eq!(def("req.url").write_in(40), Method::CLIENT);
    }
}
