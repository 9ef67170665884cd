//! Heads: parsing into offsets of the caller's buffer, reading, editing and
//! writing back.

use memchr::memchr;

use crate::body::{self, Framing};
use crate::chars::{has_bad, is, trim_sp, BAD, CTL, LWS, SP, TCHAR};
use crate::error::{HeadError, HeadErrorKind, Side};
use crate::limits::Limits;

/// The bit of `Span::start` that says the bytes are in the head's arena.
const ARENA: u32 = 1 << 31;
/// The largest buffer offset a span can hold.
const MAX_OFFSET: usize = (ARENA - 1) as usize;

/// Where some bytes of a head are: a range of the caller's buffer, or, once
/// edited, a range of the head's own arena.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn buf(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    fn arena(start: usize, end: usize) -> Span {
        Span { start: start as u32 | ARENA, end: end as u32 }
    }

    /// Whether the bytes live in the head's arena (they were edited or
    /// unfolded) rather than in the buffer that was parsed.
    pub fn is_edited(self) -> bool {
        self.start & ARENA != 0
    }

    /// The offset of the first byte, in the buffer or in the arena.
    pub fn start(self) -> usize {
        (self.start & !ARENA) as usize
    }

    /// The offset just past the last byte.
    pub fn end(self) -> usize {
        self.end as usize
    }

    /// The `(start, end)` pair.
    pub fn range(self) -> (usize, usize) {
        (self.start(), self.end())
    }

    /// The number of bytes.
    pub fn len(self) -> usize {
        self.end().saturating_sub(self.start())
    }

    /// Whether the span holds no bytes.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// One header line: its name and its value, blanks trimmed from both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The name, spelt as received.
    pub name: Span,
    /// The value, without the blanks around it.
    pub value: Span,
}

/// The outcome of a parse that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: call again when more bytes arrived.
    Partial,
    /// The head is complete and took this many bytes of the buffer; the body
    /// (or the next request) starts there.
    Complete(usize),
}

/// An HTTP/1 request or response head.
///
/// A `Head` does not hold the bytes it was parsed from: its method, URL,
/// protocol, reason and headers are [`Span`]s into the caller's buffer, and
/// every reading method takes that buffer back. Edits write their bytes to
/// a small arena inside the head and leave the buffer alone, so the
/// unedited parts stay zero-copy. A head is meant to be reused: parsing
/// clears it but keeps its allocations.
#[derive(Clone, Debug)]
pub struct Head {
    side: Side,
    /// Method, URL, protocol for a request; protocol, status, reason for a response.
    line: [Span; 3],
    status: u16,
    protover: u8,
    fields: Vec<Field>,
    arena: Vec<u8>,
    framing: Framing,
    len: usize,
    /// Where the search for the end of the head resumes.
    scan: usize,
    /// Where the first line starts, once found.
    first: usize,
    /// The offset of every LF found so far in the head, so that splitting
    /// it into lines does not search again.
    nls: Vec<u32>,
}

impl Default for Head {
    fn default() -> Self {
        Head::new()
    }
}

impl Head {
    /// Makes an empty request head.
    pub fn new() -> Head {
        Head {
            side: Side::Request,
            line: [Span::default(); 3],
            status: 0,
            protover: 0,
            fields: Vec::with_capacity(16),
            arena: Vec::new(),
            framing: Framing::None,
            len: 0,
            scan: 0,
            first: 0,
            nls: Vec::with_capacity(32),
        }
    }

    /// Makes a request head from scratch, as Varnish does for a backend
    /// request: everything lives in the arena.
    pub fn request(method: &[u8], url: &[u8], proto: &[u8]) -> Head {
        let mut h = Head::new();
        h.side = Side::Request;
        h.set_method(method);
        h.set_url(url);
        h.set_proto(proto);
        h
    }

    /// Makes a response head from scratch, as for a synthetic response.
    pub fn response(proto: &[u8], status: u16, reason: &[u8]) -> Head {
        let mut h = Head::new();
        h.side = Side::Response;
        h.set_proto(proto);
        h.set_status(status);
        h.set_reason(reason);
        h
    }

    /// Forgets what a parse found (lines, status, fields, edits, framing),
    /// keeping allocations; the scanning position is the callers' business.
    fn reset_parsed(&mut self) {
        self.line = [Span::default(); 3];
        self.status = 0;
        self.protover = 0;
        self.fields.clear();
        self.arena.clear();
        self.framing = Framing::None;
    }

    /// Forgets everything, keeping allocations, before parsing a new message.
    pub fn clear(&mut self) {
        self.reset_parsed();
        self.len = 0;
        self.scan = 0;
        self.first = 0;
        self.nls.clear();
    }

    /// Parses a client request head from the start of `buf`.
    ///
    /// Call it again with the same, longer buffer while it answers
    /// [`Parsed::Partial`]; it resumes its search for the end of the head
    /// where it stopped. After a complete head the next call starts afresh;
    /// after an error, call [`Head::clear`] before reusing the head.
    ///
    /// As Varnish does, an absolute `http://host/path` URL is split: the URL
    /// becomes `/path` and the Host headers are replaced by `Host: host`.
    pub fn parse_request(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, HeadError> {
        self.parse(buf, limits, Side::Request)
    }

    /// Parses a backend response head from the start of `buf`, like
    /// [`Head::parse_request`].
    ///
    /// The framing it computes assumes the request was not HEAD; for a
    /// response to HEAD there is no body whatever the headers say.
    pub fn parse_response(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, HeadError> {
        self.parse(buf, limits, Side::Response)
    }

    fn parse(&mut self, buf: &[u8], limits: &Limits, side: Side) -> Result<Parsed, HeadError> {
        if self.len != 0 {
            // A head was complete: this must be a new message.
            self.clear();
        }
        let size = limits.size.min(MAX_OFFSET);
        let window = &buf[..buf.len().min(size)];
        let Some(end) = self.find_end(window) else {
            if buf.len() >= size {
                return Err(HeadError { kind: HeadErrorKind::Overflow, side });
            }
            return Ok(Parsed::Partial);
        };
        self.reset_parsed();
        self.side = side;
        match self.dissect(&buf[..end], limits) {
            Ok(()) => {
                self.len = end;
                Ok(Parsed::Complete(end))
            }
            Err(kind) => Err(HeadError { kind, side }),
        }
    }

    /// Searches `buf` for the end of a head: a LF followed by LF or CRLF,
    /// after any blank bytes that precede the first line (Varnish's
    /// `HTTP1_Complete`). Remembers where to resume and every LF it passed.
    fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        let mut from = self.scan;
        if from == 0 {
            while from < buf.len() && is(buf[from], LWS) {
                from += 1;
            }
            if from == buf.len() {
                return None;
            }
            self.first = from;
            self.nls.clear();
        }
        for off in memchr::memchr_iter(b'\n', buf.get(from..)?) {
            let nl = from + off;
            let (next, after) = match (buf.get(nl + 1), buf.get(nl + 2)) {
                (Some(b'\n'), _) => (nl + 1, nl + 2),
                (Some(b'\r'), Some(b'\n')) => (nl + 2, nl + 3),
                (None, _) | (Some(b'\r'), None) => {
                    // Whether this LF ends the head depends on bytes to come.
                    self.scan = nl;
                    return None;
                }
                _ => {
                    self.nls.push(nl as u32);
                    continue;
                }
            };
            self.nls.push(nl as u32);
            self.nls.push(next as u32);
            self.scan = after;
            return Some(after);
        }
        self.scan = buf.len();
        None
    }

    /// Splits a complete head (ending with its blank line) into spans.
    fn dissect(&mut self, buf: &[u8], limits: &Limits) -> Result<(), HeadErrorKind> {
        let nls = std::mem::take(&mut self.nls);
        let r = self.dissect_lines(buf, limits, &nls);
        self.nls = nls;
        r
    }

    fn dissect_lines(&mut self, buf: &[u8], limits: &Limits, nls: &[u32]) -> Result<(), HeadErrorKind> {
        let mut lines = nls.iter().map(|&nl| nl as usize);
        let mut p = self.first;
        let nl = lines.next().ok_or(HeadErrorKind::BadFirstLine)?;
        let e = strip_cr(buf, p, nl);
        self.first_line(buf, p, e)?;
        p = nl + 1;

        let max_fields = limits.max_fields();
        // The header being collected: start of its line, end of its name,
        // end of its last line, whether continuation lines were folded in.
        let mut pending: Option<(usize, usize, usize, bool)> = None;
        for nl in lines {
            let e = strip_cr(buf, p, nl);
            if e == p {
                break;
            }
            let line = &buf[p..e];
            if is(line[0], SP) {
                if has_bad(line) {
                    return Err(HeadErrorKind::ControlByte);
                }
                match pending.as_mut() {
                    Some(h) => {
                        h.2 = e;
                        h.3 = true;
                    }
                    None => return Err(HeadErrorKind::FoldWithoutHeader),
                }
            } else {
                if let Some(h) = pending.take() {
                    self.push_field(buf, h, limits)?;
                }
                let mut colon = 0;
                while colon < line.len() && is(line[colon], TCHAR) {
                    colon += 1;
                }
                if colon == 0 || colon == line.len() || line[colon] != b':' {
                    // Varnish looks for control bytes first, then the colon.
                    return Err(if has_bad(line) {
                        HeadErrorKind::ControlByte
                    } else if memchr(b':', line).is_none() {
                        HeadErrorKind::MissingColon
                    } else {
                        HeadErrorKind::BadHeaderName(line[colon])
                    });
                }
                if has_bad(&line[colon + 1..]) {
                    return Err(HeadErrorKind::ControlByte);
                }
                if self.fields.len() >= max_fields {
                    return Err(HeadErrorKind::TooManyHeaders);
                }
                pending = Some((p, p + colon, e, false));
            }
            p = nl + 1;
        }
        if let Some(h) = pending {
            self.push_field(buf, h, limits)?;
        }
        if self.side == Side::Request {
            self.absolute_url(buf);
        }
        self.framing = match self.side {
            Side::Request => body::request_framing(self, buf)?,
            Side::Response => body::response_framing(self, buf)?,
        };
        Ok(())
    }

    /// Splits an absolute URL as Varnish's `HTTP1_DissectRequest` does
    /// (RFC 9112, 3.2.2): for `http://host/path` (scheme in any case) the URL
    /// becomes `/path`, every Host header goes and `Host: host` is appended.
    /// An absolute URL without a path, or with `https://`, is left alone.
    fn absolute_url(&mut self, buf: &[u8]) {
        let url = self.line[1];
        let bytes = self.get(buf, url);
        if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"http://") {
            return;
        }
        let Some(slash) = memchr(b'/', &bytes[7..]) else { return };
        let host = Span::buf(url.start() + 7, url.start() + 7 + slash);
        self.line[1] = Span::buf(host.end(), url.end());
        self.unset(buf, b"host");
        let name = self.push_arena(b"Host");
        self.fields.push(Field { name, value: host });
    }

    fn push_field(
        &mut self,
        buf: &[u8],
        (start, colon, end, folded): (usize, usize, usize, bool),
        limits: &Limits,
    ) -> Result<(), HeadErrorKind> {
        if end - start > limits.hdr_len {
            return Err(HeadErrorKind::HeaderTooLong);
        }
        if !folded {
            let mut vs = colon + 1;
            let mut ve = end;
            while vs < ve && is(buf[vs], SP) {
                vs += 1;
            }
            while ve > vs && is(buf[ve - 1], SP) {
                ve -= 1;
            }
            self.fields.push(Field { name: Span::buf(start, colon), value: Span::buf(vs, ve) });
            return Ok(());
        }
        // Varnish unfolds in place: every CR and LF of a continuation, and the
        // blanks that open the next line, become spaces. The buffer is not
        // ours to write, so the unfolded value goes to the arena.
        let name = self.push_arena(&buf[start..colon]);
        let at = self.arena.len();
        let mut after_nl = false;
        for &b in &buf[colon + 1..end] {
            let c = match b {
                b'\r' => b' ',
                b'\n' => {
                    after_nl = true;
                    b' '
                }
                b' ' | b'\t' if after_nl => b' ',
                _ => {
                    after_nl = false;
                    b
                }
            };
            self.arena.push(c);
        }
        let trimmed = trim_sp(&self.arena[at..]);
        let lead = trimmed.as_ptr() as usize - self.arena[at..].as_ptr() as usize;
        let value = Span::arena(at + lead, at + lead + trimmed.len());
        self.fields.push(Field { name, value });
        Ok(())
    }

    /// Splits the first line the way Varnish's `http1_splitline` does.
    fn first_line(&mut self, buf: &[u8], p: usize, e: usize) -> Result<(), HeadErrorKind> {
        let mut i = p;
        while i < e && !is(buf[i], SP) {
            if is(buf[i], CTL) {
                return Err(HeadErrorKind::ControlByte);
            }
            i += 1;
        }
        if i == e || i == p {
            return Err(HeadErrorKind::BadFirstLine);
        }
        let f1 = Span::buf(p, i);
        while i < e && is(buf[i], SP) {
            i += 1;
        }
        let s2 = i;
        i = memchr::memchr2(b' ', b'\t', &buf[s2..e]).map_or(e, |k| s2 + k);
        if has_bad(&buf[s2..i]) {
            return Err(HeadErrorKind::ControlByte);
        }
        if i == s2 {
            return Err(HeadErrorKind::BadFirstLine);
        }
        let f2 = Span::buf(s2, i);
        while i < e && is(buf[i], SP) {
            i += 1;
        }
        if buf[i..e].iter().any(|&b| is(b, BAD)) {
            return Err(HeadErrorKind::ControlByte);
        }
        let f3 = Span::buf(i, e);
        self.line = [f1, f2, f3];
        match self.side {
            Side::Request => {
                self.protover = protover(&buf[i..e]);
                if &buf[p..f1.end()] == b"PRI" && &buf[s2..f2.end()] == b"*" && &buf[i..e] == b"HTTP/2.0" {
                    return Err(HeadErrorKind::H2Preface);
                }
                if self.protover != 10 && self.protover != 11 {
                    return Err(HeadErrorKind::BadProtocol);
                }
            }
            Side::Response => {
                self.protover = protover(&buf[p..f1.end()]);
                if self.protover < 10 {
                    return Err(HeadErrorKind::BadProtocol);
                }
                self.status = match buf[s2..f2.end()] {
                    [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9'] => {
                        100 * u16::from(a - b'0') + 10 * u16::from(b - b'0') + u16::from(c - b'0')
                    }
                    _ => return Err(HeadErrorKind::BadStatus),
                };
            }
        }
        Ok(())
    }

    fn push_arena(&mut self, bytes: &[u8]) -> Span {
        let at = self.arena.len();
        self.arena.extend_from_slice(bytes);
        Span::arena(at, self.arena.len())
    }

    // ---------------------------------------------------------------- reading

    /// The bytes a span stands for. A span from another head, or a buffer
    /// other than the one parsed, gives wrong bytes but never a panic.
    #[inline]
    pub fn get<'a>(&'a self, buf: &'a [u8], span: Span) -> &'a [u8] {
        let store = if span.is_edited() { &self.arena[..] } else { buf };
        store.get(span.start()..span.end()).unwrap_or(&[])
    }

    /// Whether this is a request or a response head.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The number of buffer bytes the head took, blank line included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no head has been parsed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the body that follows is delimited, as computed when the head was
    /// parsed (later edits do not change it).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Varnish's `protover`: 10 × major + minor for `HTTP/x.y`, 0 otherwise.
    pub fn protover(&self) -> u8 {
        self.protover
    }

    /// The span of the method (requests only).
    pub fn method_span(&self) -> Span {
        match self.side {
            Side::Request => self.line[0],
            Side::Response => Span::default(),
        }
    }

    /// The span of the URL (requests only).
    pub fn url_span(&self) -> Span {
        match self.side {
            Side::Request => self.line[1],
            Side::Response => Span::default(),
        }
    }

    /// The span of the protocol.
    pub fn proto_span(&self) -> Span {
        match self.side {
            Side::Request => self.line[2],
            Side::Response => self.line[0],
        }
    }

    /// The span of the reason phrase (responses only).
    pub fn reason_span(&self) -> Span {
        match self.side {
            Side::Request => Span::default(),
            Side::Response => self.line[2],
        }
    }

    /// The method, or nothing for a response.
    pub fn method<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        self.get(buf, self.method_span())
    }

    /// The URL, or nothing for a response.
    pub fn url<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        self.get(buf, self.url_span())
    }

    /// The protocol, such as `HTTP/1.1`.
    pub fn proto<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        self.get(buf, self.proto_span())
    }

    /// The reason phrase, or nothing for a request.
    pub fn reason<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        self.get(buf, self.reason_span())
    }

    /// The status of a response, 0 for a request.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The header lines, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The headers as `(name, value)` pairs, in order.
    pub fn headers<'a>(&'a self, buf: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.fields.iter().map(move |f| (self.get(buf, f.name), self.get(buf, f.value)))
    }

    /// The value of the first header called `name` (compared without case),
    /// as VCL's `req.http.name` reads it.
    pub fn header<'a>(&'a self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.fields.iter().find(|f| self.get(buf, f.name).eq_ignore_ascii_case(name)).map(|f| self.get(buf, f.value))
    }

    /// The values of every header called `name`, in order.
    pub fn header_all<'a>(&'a self, buf: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers(buf).filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The number of headers called `name`.
    pub fn count(&self, buf: &[u8], name: &[u8]) -> usize {
        self.fields.iter().filter(|f| self.get(buf, f.name).eq_ignore_ascii_case(name)).count()
    }

    // ---------------------------------------------------------------- editing

    /// Replaces the method (requests only).
    pub fn set_method(&mut self, method: &[u8]) {
        if self.side == Side::Request {
            self.line[0] = self.push_arena(method);
        }
    }

    /// Replaces the URL (requests only).
    pub fn set_url(&mut self, url: &[u8]) {
        if self.side == Side::Request {
            self.line[1] = self.push_arena(url);
        }
    }

    /// Replaces the protocol and recomputes [`Head::protover`].
    pub fn set_proto(&mut self, proto: &[u8]) {
        let span = self.push_arena(proto);
        match self.side {
            Side::Request => self.line[2] = span,
            Side::Response => self.line[0] = span,
        }
        self.protover = protover(proto);
    }

    /// Replaces the status of a response.
    pub fn set_status(&mut self, status: u16) {
        if self.side == Side::Response {
            self.status = status;
            let at = self.arena.len();
            push_status(&mut self.arena, status);
            self.line[1] = Span::arena(at, self.arena.len());
        }
    }

    /// Replaces the reason phrase of a response.
    pub fn set_reason(&mut self, reason: &[u8]) {
        if self.side == Side::Response {
            self.line[2] = self.push_arena(reason);
        }
    }

    /// Removes every header called `name` and returns how many there were,
    /// as VCL's `unset req.http.name`.
    pub fn unset(&mut self, buf: &[u8], name: &[u8]) -> usize {
        let before = self.fields.len();
        let arena = &self.arena;
        self.fields.retain(|f| {
            let store = if f.name.is_edited() { &arena[..] } else { buf };
            !store.get(f.name.start()..f.name.end()).unwrap_or(&[]).eq_ignore_ascii_case(name)
        });
        before - self.fields.len()
    }

    /// Adds a header line at the end, keeping any of the same name.
    ///
    /// Neither name nor value is checked here; see
    /// [`valid_header_name`](crate::valid_header_name) and
    /// [`valid_header_value`](crate::valid_header_value).
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let name = self.push_arena(name);
        let value = self.push_arena(value);
        self.fields.push(Field { name, value });
    }

    /// Sets a header as VCL's `set req.http.name = value` does: every header
    /// of that name goes, and one line with the new value is added at the end.
    pub fn set(&mut self, buf: &[u8], name: &[u8], value: &[u8]) {
        self.unset(buf, name);
        self.append(name, value);
    }

    /// Keeps only the header lines for which `keep(name, value)` is true.
    pub fn retain(&mut self, buf: &[u8], mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let arena = &self.arena;
        let get = |s: Span| {
            let store = if s.is_edited() { &arena[..] } else { buf };
            store.get(s.start()..s.end()).unwrap_or(&[])
        };
        self.fields.retain(|f| keep(get(f.name), get(f.value)));
    }

    // ---------------------------------------------------------------- writing

    /// Appends the head, as it now stands, to `out` in wire format: the first
    /// line, one `name: value` line per header, and the blank line.
    pub fn write_to(&self, buf: &[u8], out: &mut Vec<u8>) {
        let mut need = 4 + self.line.iter().map(|s| s.len() + 2).sum::<usize>();
        need += self.fields.iter().map(|f| f.name.len() + f.value.len() + 4).sum::<usize>();
        out.reserve(need);
        match self.side {
            Side::Request => {
                out.extend_from_slice(self.get(buf, self.line[0]));
                out.push(b' ');
                out.extend_from_slice(self.get(buf, self.line[1]));
                out.push(b' ');
                out.extend_from_slice(self.get(buf, self.line[2]));
            }
            Side::Response => {
                out.extend_from_slice(self.get(buf, self.line[0]));
                out.push(b' ');
                push_status(out, self.status);
                out.push(b' ');
                out.extend_from_slice(self.get(buf, self.line[2]));
            }
        }
        out.extend_from_slice(b"\r\n");
        for f in &self.fields {
            out.extend_from_slice(self.get(buf, f.name));
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.get(buf, f.value));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The end of the line that runs from `start` to the LF at `nl`, without
/// the CR before the LF if there is one.
#[inline]
fn strip_cr(buf: &[u8], start: usize, nl: usize) -> usize {
    if nl > start && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    }
}

/// Varnish's `http_Proto`: `HTTP/x.y` (any case) gives 10 × x + y, anything else 0.
fn protover(proto: &[u8]) -> u8 {
    match proto {
        [h, t1, t2, p, b'/', major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9']
            if h.eq_ignore_ascii_case(&b'H')
                && t1.eq_ignore_ascii_case(&b'T')
                && t2.eq_ignore_ascii_case(&b'T')
                && p.eq_ignore_ascii_case(&b'P') =>
        {
            10 * (major - b'0') + (minor - b'0')
        }
        _ => 0,
    }
}

/// Appends a status as three (or, above 999, more) ASCII digits.
fn push_status(out: &mut Vec<u8>, status: u16) {
    if status < 1000 {
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(status.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\nAccept:  */* \r\nx-dup: 2\r\n\r\nBODY";

    fn parsed(buf: &[u8]) -> Head {
        let mut h = Head::new();
        assert_eq!(h.parse_request(buf, &Limits::REQUEST), Ok(Parsed::Complete(buf.len() - 4)));
        h
    }

    #[test]
    fn spans_are_offsets_into_the_buffer() {
        let h = parsed(REQ);
        assert_eq!(h.method_span().range(), (0, 3));
        assert_eq!(h.url_span().range(), (4, 8));
        assert_eq!(h.proto_span().range(), (9, 17));
        let f = h.fields()[0];
        assert_eq!((f.name.range(), f.value.range()), ((19, 23), (25, 36)));
        assert!(!f.name.is_edited());
        assert_eq!(h.header(REQ, b"ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(h.header(REQ, b"x-dup"), Some(&b"1"[..]));
        assert_eq!(h.header_all(REQ, b"X-DUP").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(h.count(REQ, b"x-dup"), 2);
        assert_eq!(h.header(REQ, b"missing"), None);
        assert_eq!(h.len(), REQ.len() - 4);
        assert_eq!(h.protover(), 11);
    }

    #[test]
    fn edits_go_to_the_arena_and_keep_order() {
        let mut h = parsed(REQ);
        h.set(REQ, b"X-DUP", b"3");
        h.append(b"Via", b"1.1 lacquer");
        h.set_url(b"/rewritten");
        h.set_method(b"POST");
        assert_eq!(h.unset(REQ, b"host"), 1);
        assert_eq!(h.unset(REQ, b"host"), 0);
        assert!(h.url_span().is_edited());
        assert!(!h.proto_span().is_edited());
        let mut out = Vec::new();
        h.write_to(REQ, &mut out);
        assert_eq!(out, b"POST /rewritten HTTP/1.1\r\nAccept: */*\r\nX-DUP: 3\r\nVia: 1.1 lacquer\r\n\r\n");
        h.retain(REQ, |n, _| n != b"Via");
        assert_eq!(h.headers(REQ).count(), 2);
    }

    #[test]
    fn responses_parse_and_write() {
        let buf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
        let mut h = Head::new();
        assert_eq!(h.parse_response(buf, &Limits::RESPONSE), Ok(Parsed::Complete(buf.len() - 3)));
        assert_eq!((h.status(), h.reason(buf), h.proto(buf)), (404, &b"Not Found"[..], &b"HTTP/1.1"[..]));
        assert_eq!(h.framing(), Framing::Length(3));
        assert_eq!(h.method(buf), b"");
        h.set_status(200);
        h.set_reason(b"OK");
        let mut out = Vec::new();
        h.write_to(buf, &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    }

    #[test]
    fn heads_can_be_built_from_scratch() {
        let mut h = Head::request(b"GET", b"/", b"HTTP/1.1");
        h.append(b"Host", b"x");
        let mut out = Vec::new();
        h.write_to(&[], &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let h = Head::response(b"HTTP/1.1", 503, b"Backend fetch failed");
        out.clear();
        h.write_to(&[], &mut out);
        assert_eq!(out, b"HTTP/1.1 503 Backend fetch failed\r\n\r\n");
    }

    #[test]
    fn partial_heads_ask_for_more_and_resume() {
        let mut h = Head::new();
        for end in 0..REQ.len() - 4 {
            assert_eq!(h.parse_request(&REQ[..end], &Limits::REQUEST), Ok(Parsed::Partial), "{end}");
        }
        assert_eq!(h.parse_request(REQ, &Limits::REQUEST), Ok(Parsed::Complete(REQ.len() - 4)));
        assert_eq!(h.url(REQ), b"/a?b");
    }

    #[test]
    fn limits_are_parameters() {
        let tight = Limits { hdr_len: 10, size: 64, max_hdr: 6 };
        let mut h = Head::new();
        let err = |kind| Err(HeadError { kind, side: Side::Request });
        assert_eq!(h.parse_request(b"GET / HTTP/1.1\r\nA: 1234567\r\n\r\n", &tight), Ok(Parsed::Complete(30)));
        h.clear();
        assert_eq!(
            h.parse_request(b"GET / HTTP/1.1\r\nA: 12345678\r\n\r\n", &tight),
            err(HeadErrorKind::HeaderTooLong)
        );
        h.clear();
        assert_eq!(
            h.parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", &tight),
            err(HeadErrorKind::TooManyHeaders)
        );
        h.clear();
        assert_eq!(h.parse_request(&[b'x'; 63], &tight), Ok(Parsed::Partial));
        assert_eq!(h.parse_request(&[b'x'; 64], &tight), err(HeadErrorKind::Overflow));
        assert_eq!(HeadError { kind: HeadErrorKind::Overflow, side: Side::Request }.status(), None);
    }
}
