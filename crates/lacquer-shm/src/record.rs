//! One log record, in Varnish 7.1's binary layout (`include/vapi/vsl_int.h`).
//!
//! ```text
//! word 0 (u32, little endian): tag << 24 | length      (VSL_TAG, VSL_LEN; length ≤ 0xffff)
//! word 1 (u32):                vxid | marker           (VSL_ID; bit 30 client, bit 31 backend)
//! payload:                     `length` bytes, then zero padding to a multiple of 4
//! ```
//!
//! A text payload ends with a NUL that the length counts, as Varnish writes
//! it; a binary payload (tags flagged [`lacquer_defs::tags::BINARY`]) does
//! not. The same layout is used in the shared-memory ring and in the log
//! files of `-w`/`-r`, so files written by `varnishlog -w` read here and the
//! other way round.

use lacquer_defs::Tag;

/// Bytes of the two header words before a record's payload (`VSL_OVERHEAD`).
pub const OVERHEAD: usize = 8;
/// The largest payload length the length field holds (`VSL_LENMASK`).
pub const MAX_LEN: usize = 0xffff;
/// The vxid bit marking a client-side transaction (`VSL_CLIENTMARKER`).
pub const CLIENT_MARKER: u32 = 1 << 30;
/// The vxid bit marking a backend-side transaction (`VSL_BACKENDMARKER`).
pub const BACKEND_MARKER: u32 = 1 << 31;
/// The bits of the vxid word that are the vxid itself (`VSL_IDENTMASK`).
pub const IDENT_MASK: u32 = !(CLIENT_MARKER | BACKEND_MARKER);

/// Which side of the cache a record's transaction is on: shown as `c`, `b`
/// or `-` in raw output (`VSL_CLIENT()` / `VSL_BACKEND()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A session or client request.
    Client,
    /// A backend request.
    Backend,
    /// Not part of a transaction (vxid 0: CLI, health probes…).
    None,
}

impl Side {
    /// The marker bits this side sets in the vxid word.
    pub fn marker(self) -> u32 {
        match self {
            Side::Client => CLIENT_MARKER,
            Side::Backend => BACKEND_MARKER,
            Side::None => 0,
        }
    }

    /// The side a vxid word says.
    pub fn of_word(w: u32) -> Side {
        if w & BACKEND_MARKER != 0 {
            Side::Backend
        } else if w & CLIENT_MARKER != 0 {
            Side::Client
        } else {
            Side::None
        }
    }

    /// The letter varnishlog prints in raw mode.
    pub fn letter(self) -> char {
        match self {
            Side::Client => 'c',
            Side::Backend => 'b',
            Side::None => '-',
        }
    }
}

/// The number of bytes a record with a payload of `len` bytes takes, header
/// and padding included.
pub fn record_size(len: usize) -> usize {
    OVERHEAD + len.div_ceil(4) * 4
}

/// A record read back from the log, owning its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The tag number (a [`Tag`] when Varnish 7.1 knows it).
    pub tag: u8,
    /// The transaction id, without its marker.
    pub vxid: u32,
    /// Client, backend or neither.
    pub side: Side,
    /// The payload as stored: a text payload keeps its final NUL.
    pub data: Vec<u8>,
}

impl Record {
    /// A text record, as a writer would have logged it (for tests and for
    /// building logs by hand).
    pub fn text(tag: Tag, vxid: u32, side: Side, text: &str) -> Record {
        let mut data = text.as_bytes().to_vec();
        data.push(0);
        Record { tag: tag as u8, vxid, side, data }
    }

    /// The record's tag, if Varnish 7.1 knows its number.
    pub fn tag(&self) -> Option<Tag> {
        Tag::from_u8(self.tag)
    }

    /// The tag's name, or `Tag#N` for a number this version does not know.
    pub fn tag_name(&self) -> String {
        match self.tag() {
            Some(t) => t.as_str().to_string(),
            None => format!("Tag#{}", self.tag),
        }
    }

    /// The payload without the final NUL of a text record: what queries and
    /// `-I` match against.
    pub fn payload(&self) -> &[u8] {
        let binary = self.tag().is_some_and(|t| t.is_binary());
        match self.data.split_last() {
            Some((0, rest)) if !binary => rest,
            _ => &self.data,
        }
    }

    /// The payload as text (lossy), for matching and printing.
    pub fn payload_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.payload())
    }

    /// Appends the record in the binary layout.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self.data.len().min(MAX_LEN);
        out.extend_from_slice(&((u32::from(self.tag) << 24) | len as u32).to_le_bytes());
        out.extend_from_slice(&((self.vxid & IDENT_MASK) | self.side.marker()).to_le_bytes());
        out.extend_from_slice(&self.data[..len]);
        out.resize(out.len() + (record_size(len) - OVERHEAD - len), 0);
    }

    /// Reads the record at the start of `bytes`, returning it and the bytes
    /// it took; `None` if `bytes` is too short to hold it.
    pub fn decode(bytes: &[u8]) -> Option<(Record, usize)> {
        if bytes.len() < OVERHEAD {
            return None;
        }
        let w0 = u32::from_le_bytes(bytes[0..4].try_into().ok()?);
        let w1 = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
        let len = (w0 & MAX_LEN as u32) as usize;
        let size = record_size(len);
        if bytes.len() < size {
            return None;
        }
        let rec = Record {
            tag: (w0 >> 24) as u8,
            vxid: w1 & IDENT_MASK,
            side: Side::of_word(w1),
            data: bytes[OVERHEAD..OVERHEAD + len].to_vec(),
        };
        Some((rec, size))
    }

    /// Every record in `bytes` (a flushed buffer or a file body); a record
    /// cut short at the end is dropped.
    pub fn decode_all(mut bytes: &[u8]) -> Vec<Record> {
        let mut v = Vec::new();
        while let Some((r, n)) = Record::decode(bytes) {
            // Tag 0 is padding (Varnish's SLT__Bogus).
            if r.tag != 0 {
                v.push(r);
            }
            bytes = &bytes[n..];
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_varnishd() {
        // The first record of a `varnishlog -w` file from varnishd 7.1.1.
        let want = b"\x0c\x00\x00\x4c\x02\x00\x00\x40req 1 rxreq\x00";
        let mut out = Vec::new();
        Record::text(Tag::Begin, 2, Side::Client, "req 1 rxreq").encode(&mut out);
        assert_eq!(out, want);
        let (r, n) = Record::decode(want).unwrap();
        assert_eq!(n, 20);
        assert_eq!((r.tag(), r.vxid, r.side), (Some(Tag::Begin), 2, Side::Client));
        assert_eq!(r.payload(), b"req 1 rxreq");
    }

    #[test]
    fn padding_and_markers() {
        let mut out = Vec::new();
        Record::text(Tag::BereqURL, 1002, Side::Backend, "/").encode(&mut out);
        Record::text(Tag::CLI, 0, Side::None, "Rd ping").encode(&mut out);
        assert_eq!(out.len(), 12 + 16);
        let all = Record::decode_all(&out);
        assert_eq!(all[0].side, Side::Backend);
        assert_eq!(all[0].vxid, 1002);
        assert_eq!(all[1].side, Side::None);
        assert_eq!(all[1].payload_str(), "Rd ping");
        assert!(Record::decode(&out[..10]).is_none());
    }

    #[test]
    fn binary_payload_keeps_trailing_zero() {
        let r = Record { tag: Tag::H2RxHdr as u8, vxid: 5, side: Side::Client, data: vec![1, 0] };
        assert_eq!(r.payload(), &[1, 0]);
    }
}
