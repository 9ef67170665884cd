//! Body framing: how a body is delimited, the incremental decoder, and the
//! chunked encoder.

use crate::chars::{hex_value, is, trim_sp, SP};
use crate::error::{BodyError, HeadErrorKind};
use crate::head::Head;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    Eof,
}

/// Parses a Content-Length value as Varnish's `http_GetContentLength` does:
/// digits only (the blanks around them are already trimmed), at most 2^63−1.
fn content_length(v: &[u8]) -> Result<u64, HeadErrorKind> {
    if v.is_empty() {
        return Err(HeadErrorKind::BadContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(HeadErrorKind::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or(HeadErrorKind::BadContentLength)?;
    }
    Ok(n)
}

/// The framing headers of a head: the first Content-Length and how many
/// there are, and the first Transfer-Encoding.
fn framing_headers<'a>(head: &'a Head, buf: &'a [u8]) -> (Option<&'a [u8]>, usize, Option<&'a [u8]>) {
    let mut cl = None;
    let mut n_cl = 0;
    let mut te = None;
    for f in head.fields() {
        let name = head.get(buf, f.name);
        if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            n_cl += 1;
            cl.get_or_insert(head.get(buf, f.value));
        } else if name.len() == 17 && te.is_none() && name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = Some(head.get(buf, f.value));
        }
    }
    (cl, n_cl, te)
}

/// Content-Length and Transfer-Encoding checks shared by both sides
/// (Varnish's `http1_body_status`).
fn length_or_chunked(cl: Option<&[u8]>, te: Option<&[u8]>) -> Result<Option<Framing>, HeadErrorKind> {
    let cl = cl.map(content_length).transpose()?;
    if let Some(te) = te {
        if !trim_sp(te).eq_ignore_ascii_case(b"chunked") {
            return Err(HeadErrorKind::BadTransferEncoding);
        }
        if cl.is_some() {
            return Err(HeadErrorKind::TransferEncodingWithContentLength);
        }
        return Ok(Some(Framing::Chunked));
    }
    Ok(cl.map(Framing::Length))
}

/// The framing of a parsed request's body.
pub(crate) fn request_framing(head: &Head, buf: &[u8]) -> Result<Framing, HeadErrorKind> {
    let (cl, n_cl, te) = framing_headers(head, buf);
    if n_cl > 1 {
        return Err(HeadErrorKind::DuplicateContentLength);
    }
    if let Some(f) = length_or_chunked(cl, te)? {
        return Ok(f);
    }
    let method = head.method(buf);
    if head.protover() < 11 && (method == b"POST" || method == b"PUT") {
        return Err(HeadErrorKind::BodyWithoutLength);
    }
    Ok(Framing::None)
}

/// The framing of a parsed response's body, assuming the request was not HEAD.
pub(crate) fn response_framing(head: &Head, buf: &[u8]) -> Result<Framing, HeadErrorKind> {
    let (cl, _, te) = framing_headers(head, buf);
    let f = length_or_chunked(cl, te)?;
    let status = head.status();
    if status < 200 {
        return Err(HeadErrorKind::Informational);
    }
    // A 304's Content-Length is the length of the representation it
    // stands for (RFC 9110 8.6), not of a body: it has none either way.
    if status == 304 && matches!(f, Some(Framing::Length(_))) {
        return Ok(Framing::None);
    }
    if status == 204 || status == 304 {
        return match f {
            None | Some(Framing::Length(0)) => Ok(Framing::None),
            Some(_) => Err(HeadErrorKind::BodyNotAllowed),
        };
    }
    if let Some(f) = f {
        return Ok(f);
    }
    match head.header(buf, b"connection") {
        Some(c) if c.eq_ignore_ascii_case(b"keep-alive") => Ok(Framing::None),
        _ => Ok(Framing::Eof),
    }
}

/// Where a [`BodyDecoder`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    Eof,
    Done,
    /// Before the digits of a chunk size; blanks are skipped.
    SizeStart,
    SizeDigits(u64),
    /// Blanks after the digits.
    SizeBlank(u64),
    /// A CR ended the size line; LF must follow.
    SizeLf(u64),
    Data(u64),
    /// After chunk data: CR or LF must follow.
    DataCr,
    DataLf,
    /// After the last (zero) chunk's size line.
    Last,
    LastLf,
    /// Inside a trailer line being skipped.
    Trailer,
}

/// One step of decoding: how much input was used and the body bytes it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// How many input bytes were used, framing included.
    pub consumed: usize,
    /// Body bytes: a slice of the input, never a copy.
    pub data: &'a [u8],
    /// Whether the body is complete; input after `consumed` belongs to the
    /// next message.
    pub done: bool,
}

/// An incremental body decoder.
///
/// Feed it whatever bytes arrived; each call returns at most one run of body
/// bytes, borrowed from the input, and how much input it used. Call again
/// with the rest. A call that uses nothing and is not done wants more bytes.
///
/// Chunked bodies are read as Varnish 7.1 reads them: blanks may precede and
/// follow the size, lines may end in LF alone, and chunk extensions and
/// trailers are errors (unless [`BodyDecoder::allow_trailers`] was asked for,
/// which skips trailers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    trailers: bool,
}

impl BodyDecoder {
    /// Makes a decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::SizeStart,
            Framing::Eof => State::Eof,
        };
        BodyDecoder { state, trailers: false }
    }

    /// Skips trailers after the last chunk instead of refusing them.
    pub fn allow_trailers(mut self, yes: bool) -> BodyDecoder {
        self.trailers = yes;
        self
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Tells the decoder the connection closed. A body read until close is
    /// then complete; any other unfinished body is truncated.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::Eof => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }

    /// Decodes from the start of `input`.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, BodyError> {
        let mut i = 0;
        loop {
            let next = match self.state {
                State::Done => return Ok(Decoded { consumed: i, data: &[], done: true }),
                State::Eof => return Ok(Decoded { consumed: input.len(), data: &input[i..], done: false }),
                State::Length(n) => {
                    let take = n.min((input.len() - i) as u64) as usize;
                    let left = n - take as u64;
                    self.state = if left == 0 { State::Done } else { State::Length(left) };
                    let data = &input[i..i + take];
                    return Ok(Decoded { consumed: i + take, data, done: left == 0 });
                }
                State::Data(n) => {
                    let take = n.min((input.len() - i) as u64) as usize;
                    if take == 0 {
                        return Ok(Decoded { consumed: i, data: &[], done: false });
                    }
                    let left = n - take as u64;
                    self.state = if left == 0 { State::DataCr } else { State::Data(left) };
                    let data = &input[i..i + take];
                    return Ok(Decoded { consumed: i + take, data, done: false });
                }
                s => {
                    let Some(&b) = input.get(i) else {
                        return Ok(Decoded { consumed: i, data: &[], done: false });
                    };
                    i += 1;
                    self.step(s, b)?
                }
            };
            self.state = next;
        }
    }

    /// One framing byte.
    #[inline]
    fn step(&self, s: State, b: u8) -> Result<State, BodyError> {
        Ok(match s {
            State::SizeStart => match hex_value(b) {
                Some(d) => State::SizeDigits(d),
                None if is(b, SP) => State::SizeStart,
                None => return Err(BodyError::ChunkSizeNotHex),
            },
            State::SizeDigits(v) => match hex_value(b) {
                // Varnish keeps sizes in a signed 64-bit integer.
                Some(_) if v >> 59 != 0 => return Err(BodyError::ChunkSizeTooLarge),
                Some(d) => State::SizeDigits(v << 4 | d),
                None => Self::size_end(v, b)?,
            },
            State::SizeBlank(v) => Self::size_end(v, b)?,
            State::SizeLf(v) => match b {
                b'\n' => Self::size_done(v),
                _ => return Err(BodyError::ChunkSizeBadEnd),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                b'\n' => State::SizeStart,
                _ => return Err(BodyError::ChunkDataNoNewline),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(BodyError::ChunkDataNoNewline),
            },
            State::Last => match b {
                b'\r' => State::LastLf,
                b'\n' => State::Done,
                _ if self.trailers => State::Trailer,
                _ => return Err(BodyError::ChunkTrailer),
            },
            State::LastLf => match b {
                b'\n' => State::Done,
                _ => return Err(BodyError::ChunkTrailer),
            },
            State::Trailer => match b {
                b'\n' => State::Last,
                _ => State::Trailer,
            },
            State::Length(_) | State::Eof | State::Done | State::Data(_) => s,
        })
    }

    fn size_end(v: u64, b: u8) -> Result<State, BodyError> {
        match b {
            b' ' | b'\t' => Ok(State::SizeBlank(v)),
            b'\r' => Ok(State::SizeLf(v)),
            b'\n' => Ok(Self::size_done(v)),
            _ => Err(BodyError::ChunkSizeBadEnd),
        }
    }

    fn size_done(v: u64) -> State {
        if v == 0 {
            State::Last
        } else {
            State::Data(v)
        }
    }
}

/// The line that opens a chunk of `len` bytes (`{len:x}\r\n`), kept on the
/// stack so that a writer can send it, the data and [`CHUNK_END`] as three
/// slices without copying the data.
#[derive(Clone, Copy, Debug)]
pub struct ChunkHeader {
    bytes: [u8; 18],
    len: u8,
}

impl ChunkHeader {
    /// Makes the size line for a chunk of `len` bytes.
    pub fn new(len: u64) -> ChunkHeader {
        let mut bytes = [0u8; 18];
        let digits = if len == 0 { 1 } else { (16 - len.leading_zeros() / 4) as usize };
        for (k, slot) in bytes[..digits].iter_mut().enumerate() {
            let shift = 4 * (digits - 1 - k);
            *slot = b"0123456789abcdef"[(len >> shift) as usize & 15];
        }
        bytes[digits] = b'\r';
        bytes[digits + 1] = b'\n';
        ChunkHeader { bytes, len: digits as u8 + 2 }
    }
}

impl AsRef<[u8]> for ChunkHeader {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What follows a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A chunked encoder that appends to a `Vec`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkedEncoder {
    finished: bool,
}

impl ChunkedEncoder {
    /// Makes an encoder.
    pub fn new() -> ChunkedEncoder {
        ChunkedEncoder::default()
    }

    /// Appends `data` as one chunk. Empty data writes nothing, since an
    /// empty chunk would end the body.
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() || self.finished {
            return;
        }
        out.extend_from_slice(ChunkHeader::new(data.len() as u64).as_ref());
        out.extend_from_slice(data);
        out.extend_from_slice(CHUNK_END);
    }

    /// Appends the last chunk. Later calls do nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.finished = true;
            out.extend_from_slice(LAST_CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_are_lower_case_hex() {
        for (n, s) in
            [(0, "0\r\n"), (1, "1\r\n"), (255, "ff\r\n"), (4096, "1000\r\n"), (u64::MAX, "ffffffffffffffff\r\n")]
        {
            assert_eq!(ChunkHeader::new(n).as_ref(), s.as_bytes());
        }
    }

    #[test]
    fn chunked_data_is_borrowed_from_the_input() {
        let input = b"5\r\nhello\r\n0\r\n\r\nNEXT";
        let mut dec = BodyDecoder::new(Framing::Chunked);
        let d = dec.decode(input).unwrap();
        assert_eq!((d.consumed, d.data, d.done), (8, &b"hello"[..], false));
        assert_eq!(d.data.as_ptr(), input[3..].as_ptr());
        let d = dec.decode(&input[8..]).unwrap();
        assert_eq!((d.consumed, d.data, d.done), (7, &b""[..], true));
        assert!(dec.is_done());
    }

    #[test]
    fn trailers_are_skipped_only_when_asked() {
        let input = b"1\r\na\r\n0\r\nX: y\r\nZ: w\r\n\r\n";
        let mut strict = BodyDecoder::new(Framing::Chunked);
        let d = strict.decode(input).unwrap();
        assert_eq!(strict.decode(&input[d.consumed..]), Err(BodyError::ChunkTrailer));
        let mut lax = BodyDecoder::new(Framing::Chunked).allow_trailers(true);
        let d = lax.decode(input).unwrap();
        let e = lax.decode(&input[d.consumed..]).unwrap();
        assert_eq!((d.consumed + e.consumed, e.done), (input.len(), true));
    }

    #[test]
    fn lengths_and_eof() {
        let mut dec = BodyDecoder::new(Framing::Length(3));
        assert_eq!(dec.decode(b"ab").unwrap().data, b"ab");
        assert_eq!(dec.finish(), Err(BodyError::Truncated));
        let d = dec.decode(b"cde").unwrap();
        assert_eq!((d.consumed, d.data, d.done), (1, &b"c"[..], true));
        let mut eof = BodyDecoder::new(Framing::Eof);
        assert_eq!(eof.decode(b"xyz").unwrap().data, b"xyz");
        assert_eq!(eof.finish(), Ok(()));
        assert!(BodyDecoder::new(Framing::None).is_done());
    }

    #[test]
    fn the_encoder_frames_and_finishes_once() {
        let mut out = Vec::new();
        let mut enc = ChunkedEncoder::new();
        enc.encode(b"hello", &mut out);
        enc.encode(b"", &mut out);
        enc.finish(&mut out);
        enc.finish(&mut out);
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }
}
