//! HTTP/1 on the wire, without the wire.
//!
//! `lacquer-http` turns bytes into values and values into bytes: request and
//! response heads, the framing of the body that follows a head, and the
//! limits and refusals that Varnish 7.1 applies to both. It owns the wire
//! format and nothing else. It opens no socket, reads no clock, spawns no
//! thread and knows nothing of VCL or the cache: a session in the server
//! reads bytes, hands them to this crate, and acts on what comes back — a
//! [`Parsed`] head, body bytes from a [`BodyDecoder`], or an error that
//! already knows which status Varnish would answer with.
//!
//! The key design decision is that a parsed head is offsets into one
//! buffer. The server reads a request into a single per-request buffer that
//! grows as bytes arrive; [`Head::parse_request`] looks at that buffer and
//! either asks for more or records the method, URL, protocol and every
//! header as [`Span`]s, `(start, end)` pairs into it. Nothing is copied and
//! nothing is allocated per header. Because a [`Head`] holds offsets rather
//! than borrows, the server can keep the buffer and the head side by side
//! in one session struct and keep appending to the buffer. Reading takes
//! the buffer back (`head.header(&buf, b"host")`). Editing, as VCL does with
//! `set`, `unset` and `set req.url`, writes the new bytes to a small arena
//! inside the head and points the span there, so the unedited parts remain
//! zero-copy and the buffer is never written. [`Head::write_to`] serialises
//! the head as it now stands.
//!
//! Headers keep their order and their spelling; lookups ignore case. Where
//! the RFCs leave room, the parsers do what Varnish 7.1.1 does, read off a
//! running `varnishd` rather than its documentation: a proxy that frames a
//! message differently from the proxy it replaces is a request-smuggling
//! hazard, and Varnish users' tests encode Varnish's answers.
//!
//! # Limits
//!
//! [`Limits`] carries Varnish's parameters with their defaults:
//! `http_req_hdr_len` and `http_resp_hdr_len` (8k, longest header line,
//! continuation lines included, line ending excluded), `http_req_size` and
//! `http_resp_size` (32k, the whole head up to and including its blank line)
//! and `http_max_hdr` (64, of which the first line takes five, so 59 header
//! lines fit). A request head over `http_req_size` gets no answer: Varnish
//! closes the connection. Every other refused request gets 400 and the
//! connection is closed; a refused backend response fails the fetch, and the
//! client gets 503.
//!
//! # What is refused, and how
//!
//! Each line below was read off varnishd 7.1.1 by sending raw bytes and is
//! pinned by the table in `tests/varnish_cases.rs`.
//!
//! | input (request) | Varnish 7.1 |
//! |---|---|
//! | two Content-Length headers, equal or not | 400, close |
//! | Content-Length `2, 2`, `+2`, `-2`, `0x2`, `2x`, `1 2`, empty | 400, close |
//! | Content-Length above 2^63−1 | 400, close (2^63−1 itself is accepted) |
//! | Content-Length with blanks around it or leading zeros | accepted |
//! | Transfer-Encoding with Content-Length, in either order | 400, close |
//! | Transfer-Encoding other than `chunked` (`gzip`, `identity`, `gzip, chunked`, `chunked,`, empty) | 400, close |
//! | Transfer-Encoding `Chunked` (any case), or twice; only the first is read | accepted |
//! | HTTP/1.0 POST or PUT without Content-Length or Transfer-Encoding | 400, close |
//! | obs-fold (a line starting with a space or tab) | accepted, unfolded to spaces |
//! | the first header line starting with a space or tab | 400, close |
//! | bare LF line endings in the head and in chunk framing | accepted |
//! | CR not followed by LF anywhere in the head | 400, close |
//! | NUL or other control byte (tab excepted) in a name, value, method, URL or protocol | 400, close |
//! | space or tab before the colon; empty name; name with `(` or a byte ≥ 0x80 | 400, close |
//! | header line without a colon | 400, close |
//! | header line over 8192 bytes; more than 59 header lines | 400, close |
//! | head over 32768 bytes | no answer, close |
//! | protocol other than HTTP/1.0 and HTTP/1.1 (HTTP/0.9, HTTP/1.2, HTTP/2.0, none, trailing space) | 400, close |
//! | `PRI * HTTP/2.0` (HTTP/2's preface) | no answer, close |
//! | a method with any byte but controls and blanks (`get`, `GE(T`, 0x80) | accepted (built-in VCL pipes unknown methods) |
//! | blank lines or blanks before the request line | accepted, skipped |
//! | absolute URL `http://host/path` (scheme in any case) | accepted: URL becomes `/path`, every Host goes, `Host: host` is appended; `https://` and a URL without a path are left alone |
//! | chunk size not hexadecimal, negative, `0x` prefixed, or with an extension (`;a=b`) | body error: close (503 on pass) |
//! | chunk size above 2^63−1 | body error |
//! | chunk data not followed by CRLF or LF | body error |
//! | trailers after the last chunk | body error (Varnish 7.1 has no trailers) |
//! | blanks before or after a chunk size, leading zeros, upper-case hex | accepted |
//!
//! Backend responses follow the same line rules, with these differences:
//! duplicate Content-Length is accepted and the first one wins; any
//! protocol `HTTP/x.y` from 1.0 up is accepted; the status must be three
//! digits, the first not 0; any 1xx is refused, and so is a 204 that
//! announces a body (Content-Length 0 is fine) or a 304 that announces a
//! chunked one (its Content-Length is the representation's); with neither length
//! nor chunking the body runs until close, even on HTTP/1.1, unless
//! `Connection: keep-alive` says there is none. Header values lose the
//! blanks around them, as Varnish forwards them.

mod body;
mod chars;
mod error;
mod head;
mod limits;

pub use body::{BodyDecoder, ChunkHeader, ChunkedEncoder, Decoded, Framing, CHUNK_END, LAST_CHUNK};
pub use chars::{valid_header_name, valid_header_value};
pub use error::{BodyError, HeadError, HeadErrorKind, Side};
pub use head::{Field, Head, Parsed, Span};
pub use limits::Limits;
