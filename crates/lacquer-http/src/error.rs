//! Error values, each knowing how Varnish answers it.

use std::fmt;

/// Which side of the proxy a head came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A client's request.
    Request,
    /// A backend's response.
    Response,
}

/// Why a head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadErrorKind {
    /// The head did not end within `http_req_size` (or `http_resp_size`) bytes.
    Overflow,
    /// The client sent HTTP/2's connection preface (`PRI * HTTP/2.0`).
    H2Preface,
    /// The first line is malformed: a control byte, a missing field, a
    /// non-digit status.
    BadFirstLine,
    /// A request's protocol is not HTTP/1.0 or HTTP/1.1, or a response's is
    /// not `HTTP/x.y` with x.y at least 1.0.
    BadProtocol,
    /// A response's status is not three digits from 100 to 999.
    BadStatus,
    /// A header line (with its continuation lines) is longer than `hdr_len`.
    HeaderTooLong,
    /// More header lines than `http_max_hdr` allows.
    TooManyHeaders,
    /// A control byte (other than tab) inside a line, including a CR that is
    /// not followed by LF.
    ControlByte,
    /// A header line without a colon.
    MissingColon,
    /// A header name that is empty or holds a byte that is not a token
    /// character, such as a space before the colon: that byte.
    BadHeaderName(u8),
    /// The first header line starts with a space or tab, so it continues nothing.
    FoldWithoutHeader,
    /// A request carries Content-Length more than once, even with equal values.
    DuplicateContentLength,
    /// Content-Length is not digits (with optional surrounding blanks) or is
    /// more than 2^63−1.
    BadContentLength,
    /// The first Transfer-Encoding header is anything but `chunked`.
    BadTransferEncoding,
    /// Transfer-Encoding and Content-Length together.
    TransferEncodingWithContentLength,
    /// An HTTP/1.0 POST or PUT with neither Content-Length nor Transfer-Encoding.
    BodyWithoutLength,
    /// A 204 or 304 response that announces a body.
    BodyNotAllowed,
    /// A 1xx response from a backend, which Varnish 7.1 never accepts.
    Informational,
}

impl HeadErrorKind {
    /// A short lowercase description.
    pub fn message(self) -> &'static str {
        match self {
            HeadErrorKind::Overflow => "head too large",
            HeadErrorKind::H2Preface => "http/2 connection preface",
            HeadErrorKind::BadFirstLine => "malformed first line",
            HeadErrorKind::BadProtocol => "unsupported protocol",
            HeadErrorKind::BadStatus => "malformed status",
            HeadErrorKind::HeaderTooLong => "header too long",
            HeadErrorKind::TooManyHeaders => "too many headers",
            HeadErrorKind::ControlByte => "control byte in head",
            HeadErrorKind::MissingColon => "header without colon",
            HeadErrorKind::BadHeaderName(_) => "illegal header name",
            HeadErrorKind::FoldWithoutHeader => "continuation line without header",
            HeadErrorKind::DuplicateContentLength => "duplicate content-length",
            HeadErrorKind::BadContentLength => "malformed content-length",
            HeadErrorKind::BadTransferEncoding => "unsupported transfer-encoding",
            HeadErrorKind::TransferEncodingWithContentLength => "transfer-encoding with content-length",
            HeadErrorKind::BodyWithoutLength => "request body without length",
            HeadErrorKind::BodyNotAllowed => "body on a status that has none",
            HeadErrorKind::Informational => "informational (1xx) response",
        }
    }
}

impl fmt::Display for HeadErrorKind {
    /// What Varnish logs (`BogoHeader`) where it has its own words, the
    /// short description elsewhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadErrorKind::BadHeaderName(b) => write!(f, "Illegal char 0x{b:02x} in header name"),
            k => f.write_str(k.message()),
        }
    }
}

/// A refused head: what was wrong and on which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeadError {
    /// What was wrong.
    pub kind: HeadErrorKind,
    /// Whether the head was a request or a response.
    pub side: Side,
}

impl HeadError {
    /// The status Varnish 7.1 answers the client with, or `None` when it
    /// closes the connection without answering.
    ///
    /// A bad request gets 400, except an oversized head and HTTP/2's preface,
    /// which get no answer. A bad backend response fails the fetch, and the
    /// client sees Varnish's 503.
    pub fn status(&self) -> Option<u16> {
        match (self.side, self.kind) {
            (Side::Request, HeadErrorKind::Overflow | HeadErrorKind::H2Preface) => None,
            (Side::Request, _) => Some(400),
            (Side::Response, _) => Some(503),
        }
    }

    /// Whether the connection the head came on must be closed. It always
    /// must: once framing is in doubt no later byte can be trusted.
    pub fn closes(&self) -> bool {
        true
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        write!(f, "{side}: {}", self.kind.message())
    }
}

impl std::error::Error for HeadError {}

/// Why a body could not be decoded.
///
/// Varnish 7.1 closes the connection on every one of these. When the body
/// was being passed to a backend the fetch fails and the client sees 503;
/// when it was being discarded (a lookup) the response is sent and the
/// connection closed after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyError {
    /// A chunk-size line does not start with a hexadecimal digit (after
    /// optional spaces and tabs).
    ChunkSizeNotHex,
    /// A chunk size above 2^63−1.
    ChunkSizeTooLarge,
    /// A chunk-size line with something other than blanks and a line ending
    /// after the digits, such as a chunk extension (`;name=value`).
    ChunkSizeBadEnd,
    /// Chunk data not followed by CRLF (or LF).
    ChunkDataNoNewline,
    /// Something other than the final CRLF after the last chunk: trailers,
    /// which Varnish 7.1 does not accept.
    ChunkTrailer,
    /// The connection ended before the body did.
    Truncated,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::ChunkSizeNotHex => "chunk size not hexadecimal",
            BodyError::ChunkSizeTooLarge => "chunk size too large",
            BodyError::ChunkSizeBadEnd => "junk after chunk size",
            BodyError::ChunkDataNoNewline => "chunk data not followed by newline",
            BodyError::ChunkTrailer => "trailer after last chunk",
            BodyError::Truncated => "body truncated",
        })
    }
}

impl std::error::Error for BodyError {}
