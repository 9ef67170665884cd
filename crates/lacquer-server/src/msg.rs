//! A message head together with the buffer it points into, and the small
//! facts about HTTP the state machines share: hop-by-hop headers, reason
//! phrases, dates.

use lacquer_http::Head;

/// A head and its buffer, kept side by side as `lacquer-http` intends: the
/// head is offsets into `buf` (or, once edited, into its own arena).
#[derive(Clone, Debug, Default)]
pub(crate) struct Msg {
    pub buf: Vec<u8>,
    pub head: Head,
}

impl Msg {
    /// A request made from scratch (a backend request).
    pub fn request(method: &[u8], url: &[u8], proto: &[u8]) -> Msg {
        Msg { buf: Vec::new(), head: Head::request(method, url, proto) }
    }

    /// A response made from scratch (a synthetic or delivered response).
    pub fn response(status: u16, reason: &[u8]) -> Msg {
        Msg { buf: Vec::new(), head: Head::response(b"HTTP/1.1", status, reason) }
    }

    /// The first header called `name`, compared without case.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.head.header(&self.buf, name)
    }

    /// Whether a comma-separated header holds `token`, compared without case.
    pub fn has_token(&self, name: &[u8], token: &[u8]) -> bool {
        self.head
            .header_all(&self.buf, name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    }

    /// Replaces every header called `name` with one line at the end.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        self.head.set(&self.buf, name, value);
    }

    /// Removes every header called `name`.
    pub fn unset(&mut self, name: &[u8]) {
        self.head.unset(&self.buf, name);
    }

    /// Adds a header line at the end.
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        self.head.append(name, value);
    }

    /// Adds `value` to the header called `name`, after a comma if there is
    /// one already (Varnish's `http_AppendHeader`).
    pub fn append_value(&mut self, name: &[u8], value: &[u8]) {
        match self.header(name) {
            Some(old) => {
                let mut v = old.to_vec();
                v.extend_from_slice(b", ");
                v.extend_from_slice(value);
                self.set(name, &v);
            }
            None => self.append(name, value),
        }
    }

    /// Copies the header lines of `from` for which `keep(name)` holds.
    pub fn copy_headers(&mut self, from: &Msg, mut keep: impl FnMut(&[u8]) -> bool) {
        for (n, v) in from.head.headers(&from.buf) {
            if keep(n) {
                self.head.append(n, v);
            }
        }
    }

    /// Copies the header lines of `from` that go end to end, as `keep(name,
    /// hop)` says: `hop` is whether the line is hop-by-hop, by its name or
    /// because `from`'s `Connection` header named it. Only lines received
    /// so are named: Varnish marks them when the head arrives, so a line
    /// VCL adds later under such a name goes on.
    pub fn copy_end_to_end(&mut self, from: &Msg, mut keep: impl FnMut(&[u8], bool) -> bool) {
        let named = from.connection_named();
        for (f, (n, v)) in from.head.fields().iter().zip(from.head.headers(&from.buf)) {
            let received = !f.name.is_edited() && !f.value.is_edited();
            let hop = is_hop_by_hop(n, &[]) || (received && is_hop_by_hop(n, &named));
            if keep(n, hop) {
                self.head.append(n, v);
            }
        }
    }

    /// The headers named by this message's `Connection` header (its
    /// hop-by-hop extension), lowercased, without `close` and `keep-alive`.
    pub fn connection_named(&self) -> Vec<Vec<u8>> {
        self.head
            .header_all(&self.buf, b"connection")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != b"close" && t != b"keep-alive")
            .collect()
    }

    /// Appends the head in wire format.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.head.write_to(&self.buf, out);
    }
}

/// Headers that describe one connection, never forwarded to the other side
/// (RFC 9110 7.6.1, as Varnish's `http_headers.h` marks them), plus the
/// framing headers, which each side writes for itself.
const HOP_BY_HOP: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"http2-settings",
    b"content-length",
];

/// Headers Varnish knows and needs end to end: a `Connection` header that
/// names one of them (asking for it to be dropped) makes a bad request.
const WELL_KNOWN: &[&[u8]] = &[
    b"accept",
    b"accept-charset",
    b"accept-encoding",
    b"accept-language",
    b"age",
    b"allow",
    b"authorization",
    b"cache-control",
    b"content-encoding",
    b"content-language",
    b"content-length",
    b"content-location",
    b"content-md5",
    b"content-range",
    b"content-type",
    b"cookie",
    b"date",
    b"etag",
    b"expect",
    b"expires",
    b"from",
    b"host",
    b"if-match",
    b"if-modified-since",
    b"if-none-match",
    b"if-range",
    b"if-unmodified-since",
    b"last-modified",
    b"location",
    b"max-forwards",
    b"pragma",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"range",
    b"referer",
    b"retry-after",
    b"server",
    b"set-cookie",
    b"user-agent",
    b"vary",
    b"via",
    b"warning",
    b"www-authenticate",
    b"x-forwarded-for",
];

/// The first header `Connection` names that may not be dropped, if any.
pub(crate) fn names_well_known(m: &Msg) -> Option<Vec<u8>> {
    m.connection_named().into_iter().find(|n| WELL_KNOWN.contains(&n.as_slice()))
}

/// Whether a header is hop-by-hop (or framing), or named in `named`.
pub(crate) fn is_hop_by_hop(name: &[u8], named: &[Vec<u8>]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) || named.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The reason phrase Varnish gives a status when none is given
/// (`http_Status2Reason`).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown HTTP Status",
    }
}

/// The current time as VCL's TIME: seconds since the epoch.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The current time as an HTTP date, for `Date` headers.
pub(crate) fn http_date() -> String {
    lacquer_vcl::conv::time_to_string(now().floor())
}

/// The status a VCL status becomes on the wire: Varnish lets VCL carry
/// information in the thousands (`synth(1404)` sends 404); anything else
/// out of range becomes 503.
pub(crate) fn wire_status(status: i64) -> u16 {
    let s = if status >= 1000 { status % 1000 } else { status };
    if (100..=999).contains(&s) {
        s as u16
    } else {
        503
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_and_append() {
        let mut m = Msg::response(200, b"OK");
        m.append(b"Connection", b"keep-alive, X-Foo");
        m.append(b"Via", b"1.0 a");
        assert_eq!(m.connection_named(), vec![b"x-foo".to_vec()]);
        assert!(m.has_token(b"connection", b"Keep-Alive"));
        m.append_value(b"via", b"1.1 b");
        assert_eq!(m.header(b"via"), Some(&b"1.0 a, 1.1 b"[..]));
        assert!(is_hop_by_hop(b"X-FOO", &m.connection_named()));
        assert!(is_hop_by_hop(b"Transfer-Encoding", &[]));
        assert!(!is_hop_by_hop(b"Host", &[]));
    }

    #[test]
    fn statuses() {
        assert_eq!(wire_status(1404), 404);
        assert_eq!(wire_status(42), 503);
        assert_eq!(reason(503), "Service Unavailable");
    }
}
