//! The shared-memory log tags of Varnish 7.1 (`include/tbl/vsl_tags.h` and
//! `vsl_tags_http.h`): one row per tag, in Varnish's numbering, with its
//! flags and a one-line description of our own.
//!
//! The numbers are the ones `varnishd` 7.1.1 writes into the log (and into
//! `varnishlog -w` files), checked against `VSL_tags[]` and
//! `VSL_tagflags[]` of its `libvarnishapi`: tag 0 is reserved (Varnish's
//! `SLT__Bogus`) and the 96 real tags are numbered 1 to 96 without gaps.
//! The `vsl_mask` parameter's bits are these tags in this order (bit `i` is
//! tag `i + 1`), and the shared-memory log (`lacquer-shm`) stores the
//! number in each record.

/// The tag is no longer written by Varnish (`SLT_F_UNUSED`); it keeps its
/// number so that old logs read the same.
pub const UNUSED: u8 = 1 << 0;
/// The payload may hold anything a client sent, NUL bytes included, so
/// readers print it quoted and escaped (`SLT_F_UNSAFE`).
pub const UNSAFE: u8 = 1 << 1;
/// The payload is binary, printed as hex (`SLT_F_BINARY`).
pub const BINARY: u8 = 1 << 2;

macro_rules! tags {
    ($( $num:literal $name:ident $flags:expr, $doc:literal; )*) => {
        /// A log tag: what a log record says (Varnish's `enum VSL_tag_e`,
        /// `SLT_*`). The discriminant is Varnish's tag number.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Tag {
            $( #[doc = $doc] $name = $num, )*
        }

        /// Every tag, in number order.
        pub static ALL: &[Tag] = &[$(Tag::$name),*];

        /// Every tag's name, in number order: the bits of `vsl_mask`.
        pub static NAMES: &[&str] = &[$(stringify!($name)),*];

        /// Every tag's description, in number order.
        pub static DOCS: &[&str] = &[$($doc),*];

        static FLAGS: &[u8] = &[$($flags),*];
    };
}

impl Tag {
    /// The highest tag number in use.
    pub const MAX: u8 = 96;

    /// The tag with Varnish's number `n`, if there is one.
    pub fn from_u8(n: u8) -> Option<Tag> {
        if n == 0 || n > Tag::MAX {
            return None;
        }
        Some(ALL[n as usize - 1])
    }

    /// The tag called `name`, in any case, as `varnishlog -i` and
    /// `vsl_mask` take it.
    pub fn from_name(name: &str) -> Option<Tag> {
        NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| ALL[i])
    }

    /// Varnish's name for the tag (`ReqURL`).
    pub fn as_str(self) -> &'static str {
        NAMES[self as usize - 1]
    }

    /// The one-line description.
    pub fn doc(self) -> &'static str {
        DOCS[self as usize - 1]
    }

    /// The tag's flags: [`UNUSED`], [`UNSAFE`], [`BINARY`].
    pub fn flags(self) -> u8 {
        FLAGS[self as usize - 1]
    }

    /// Whether the payload is binary ([`BINARY`]).
    pub fn is_binary(self) -> bool {
        self.flags() & BINARY != 0
    }

    /// Whether the payload is printed escaped ([`UNSAFE`]).
    pub fn is_unsafe(self) -> bool {
        self.flags() & UNSAFE != 0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tags! {
    1 Debug UNSAFE, "Debugging messages, mostly switched on by the `debug` parameter; masked by default.";
    2 Error 0, "An error worth an operator's attention.";
    3 CLI 0, "A command and its answer on the management CLI.";
    4 SessOpen 0, "A client connection opened: remote address and port, listen name, local address and port, start time, file descriptor.";
    5 SessClose 0, "A client connection closed: why, and how long it was open.";
    6 BackendOpen 0, "A new connection to a backend: fd, backend, remote and local addresses.";
    7 BackendReuse 0, "A backend connection went back to the pool for reuse.";
    8 BackendClose 0, "A backend connection was closed or recycled.";
    9 HttpGarbage UNSAFE, "Bytes that could not be parsed as an HTTP request.";
    10 Proxy 0, "The addresses a PROXY protocol header gave.";
    11 ProxyGarbage 0, "A PROXY protocol header that could not be parsed.";
    12 Backend 0, "The backend a fetch was sent to.";
    13 Length 0, "The size of a body fetched from a backend.";
    14 FetchError 0, "Why a fetch from a backend failed.";
    15 ReqMethod 0, "The method of a client request.";
    16 ReqURL 0, "The URL of a client request.";
    17 ReqProtocol 0, "The protocol of a client request.";
    18 ReqStatus UNUSED, "Status of a client request (never written).";
    19 ReqReason UNUSED, "Reason of a client request (never written).";
    20 ReqHeader 0, "A header of a client request, as set or added.";
    21 ReqUnset 0, "A header removed from a client request.";
    22 ReqLost UNUSED, "A client request header lost to lack of space (never written).";
    23 RespMethod UNUSED, "Method of a client response (never written).";
    24 RespURL UNUSED, "URL of a client response (never written).";
    25 RespProtocol 0, "The protocol of the response to a client.";
    26 RespStatus 0, "The status code of the response to a client.";
    27 RespReason 0, "The reason phrase of the response to a client.";
    28 RespHeader 0, "A header of the response to a client, as set or added.";
    29 RespUnset 0, "A header removed from the response to a client.";
    30 RespLost UNUSED, "A client response header lost to lack of space (never written).";
    31 BereqMethod 0, "The method of a backend request.";
    32 BereqURL 0, "The URL of a backend request.";
    33 BereqProtocol 0, "The protocol of a backend request.";
    34 BereqStatus UNUSED, "Status of a backend request (never written).";
    35 BereqReason UNUSED, "Reason of a backend request (never written).";
    36 BereqHeader 0, "A header of a backend request, as set or added.";
    37 BereqUnset 0, "A header removed from a backend request.";
    38 BereqLost UNUSED, "A backend request header lost to lack of space (never written).";
    39 BerespMethod UNUSED, "Method of a backend response (never written).";
    40 BerespURL UNUSED, "URL of a backend response (never written).";
    41 BerespProtocol 0, "The protocol of a backend response.";
    42 BerespStatus 0, "The status code of a backend response.";
    43 BerespReason 0, "The reason phrase of a backend response.";
    44 BerespHeader 0, "A header of a backend response, as set or added.";
    45 BerespUnset 0, "A header removed from a backend response.";
    46 BerespLost UNUSED, "A backend response header lost to lack of space (never written).";
    47 ObjMethod UNUSED, "Method of a cached object (never written).";
    48 ObjURL UNUSED, "URL of a cached object (never written).";
    49 ObjProtocol 0, "The protocol stored with a cached object; masked by default.";
    50 ObjStatus 0, "The status stored with a cached object; masked by default.";
    51 ObjReason 0, "The reason phrase stored with a cached object; masked by default.";
    52 ObjHeader 0, "A header stored with a cached object; masked by default.";
    53 ObjUnset 0, "A header removed from a cached object.";
    54 ObjLost UNUSED, "A cached object header lost to lack of space (never written).";
    55 BogoHeader 0, "A header that does not parse as one, dropped.";
    56 LostHeader 0, "A header that did not fit in the workspace, dropped.";
    57 TTL 0, "A change of an object's time to live, grace and keep, and who made it (RFC or VCL).";
    58 Fetch_Body 0, "How a backend body is read: framing and whether it is streamed.";
    59 VCL_acl 0, "The result of matching an ACL: MATCH or NO_MATCH, the ACL and the entry.";
    60 VCL_call 0, "A built-in VCL subroutine was called (RECV, DELIVER …).";
    61 VCL_trace 0, "A VCL line was run (with `vsl_mask=+VCL_trace`); masked by default.";
    62 VCL_return 0, "The action a VCL subroutine returned.";
    63 ReqStart 0, "A client request started: client address, port and listen name.";
    64 Hit 0, "The request found an object in cache: its vxid and remaining ttl, grace and keep.";
    65 HitPass 0, "The request found a hit-for-pass object and passes.";
    66 ExpBan 0, "An object was removed because a ban matched it.";
    67 ExpKill 0, "An expiry event of the expiry thread; masked by default.";
    68 WorkThread 0, "A worker thread started or stopped; masked by default.";
    69 ESI_xmlerror 0, "An error in the XML of an ESI body.";
    70 Hash UNSAFE, "A piece of data added to the cache key; masked by default.";
    71 Backend_health 0, "The result of a backend health probe.";
    72 VCL_Log 0, "Text logged by VCL with std.log().";
    73 VCL_Error 0, "An error raised while running VCL.";
    74 Gzip 0, "Gzip or gunzip work done on a body, with sizes and bit positions.";
    75 Link 0, "A child transaction was started: its kind, vxid and reason.";
    76 Begin 0, "The first record of a transaction: its kind, the parent's vxid and the reason.";
    77 End 0, "The last record of a transaction.";
    78 VSL 0, "A message from the log API itself (a timeout or overflow while grouping).";
    79 Storage 0, "The storage an object was put in: its type and name.";
    80 Timestamp 0, "A point in the life of a transaction: event, absolute time, time since start, time since the last timestamp.";
    81 ReqAcct 0, "Bytes received and sent for a client request: header, body, total, each way.";
    82 PipeAcct 0, "Bytes moved by a pipe: client request, backend request, in, out.";
    83 BereqAcct 0, "Bytes sent and received for a backend request: header, body, total, each way.";
    84 VfpAcct 0, "Work of one fetch filter: name, calls, bytes; masked by default.";
    85 Witness 0, "Lock ordering witness output (with the `witness` debug bit).";
    86 BackendStart 0, "A backend request started: backend address and port.";
    87 H2RxHdr BINARY, "A received HTTP/2 frame header, in binary; masked by default.";
    88 H2RxBody BINARY, "A received HTTP/2 frame body, in binary; masked by default.";
    89 H2TxHdr BINARY, "A sent HTTP/2 frame header, in binary; masked by default.";
    90 H2TxBody BINARY, "A sent HTTP/2 frame body, in binary; masked by default.";
    91 HitMiss 0, "The request found a hit-for-miss object: its vxid and remaining ttl.";
    92 Filters 0, "The filters applied to a body, in order.";
    93 SessError 0, "A client connection could not be accepted: listen name, address, port and the error.";
    94 VCL_use 0, "The VCL a transaction runs (and its label, if any).";
    95 Notice 0, "An informational message about something unusual but handled.";
    96 VdpAcct 0, "Work of one delivery filter: name, calls, bytes; masked by default.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_varnish_71() {
        assert_eq!(ALL.len(), Tag::MAX as usize);
        for (i, t) in ALL.iter().enumerate() {
            assert_eq!(*t as usize, i + 1, "{t} out of order");
            assert_eq!(Tag::from_u8(*t as u8), Some(*t));
        }
        // Numbers seen in a `varnishlog -w` file of varnishd 7.1.1.
        assert_eq!(Tag::ReqMethod as u8, 15);
        assert_eq!(Tag::ReqURL as u8, 16);
        assert_eq!(Tag::VCL_call as u8, 60);
        assert_eq!(Tag::ReqStart as u8, 63);
        assert_eq!(Tag::Link as u8, 75);
        assert_eq!(Tag::Begin as u8, 76);
        assert_eq!(Tag::Timestamp as u8, 80);
        assert_eq!(Tag::VCL_use as u8, 94);
        assert_eq!(Tag::from_u8(0), None);
        assert_eq!(Tag::from_u8(97), None);
    }

    #[test]
    fn names_and_flags() {
        assert_eq!(Tag::from_name("requrl"), Some(Tag::ReqURL));
        assert_eq!(Tag::from_name("EXP_Rearm"), None);
        assert_eq!(Tag::ReqURL.as_str(), "ReqURL");
        assert!(Tag::Debug.is_unsafe() && !Tag::Debug.is_binary());
        assert!(Tag::H2RxHdr.is_binary());
        assert_eq!(Tag::ReqStatus.flags(), UNUSED);
        assert!(DOCS.iter().all(|d| !d.is_empty()));
    }
}
