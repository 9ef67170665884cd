//! Writing the shared-memory log (Varnish's `VSLb` and friends in
//! `cache_shmlog.c`): one [`Vsl`] per task — session, client request,
//! backend fetch — buffering its records and appending them to the log
//! as a whole, so that a transaction costs the log one atomic add, not one
//! per record.
//!
//! The records and their fields are Varnish 7.1's, so that `lacquer log`
//! (and a `varnishlog` user's habits and queries) see what they expect:
//! `Begin req 1000 rxreq`, `Timestamp Resp: <abs> <since start> <since
//! last>`, `ReqHeader Host: example.com`, and so on.

use std::fmt;

use lacquer_shm::{Log, Side, Tag, VslBuf};

/// Bytes shown as text: valid UTF-8 as it is, anything else replaced, with
/// no allocation either way.
pub(crate) struct Text<'a>(pub &'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// One transaction's log writer.
pub(crate) struct Vsl {
    buf: VslBuf,
    vxid: u32,
    side: Side,
    /// When the transaction began, and when it last wrote a timestamp.
    t_start: f64,
    t_last: f64,
}

impl Vsl {
    /// A writer for transaction `vxid` on `side`, begun at `now`.
    pub fn new(log: &Log, vxid: u64, side: Side, now: f64) -> Vsl {
        Vsl { buf: log.buffer(), vxid: wire_vxid(vxid), side, t_start: now, t_last: now }
    }

    /// Moves the writer to another transaction (a restart keeps its
    /// buffer and begins a new one).
    pub fn rebind(&mut self, vxid: u64, now: f64) {
        self.vxid = wire_vxid(vxid);
        self.t_start = now;
        self.t_last = now;
    }

    /// A record of plain text.
    pub fn str(&mut self, tag: Tag, text: &str) {
        self.buf.log_str(tag, self.vxid, self.side, text);
    }

    /// A record made by formatting.
    pub fn fmt(&mut self, tag: Tag, args: fmt::Arguments<'_>) {
        self.buf.log(tag, self.vxid, self.side, args);
    }

    /// A record of bytes shown as text.
    pub fn text(&mut self, tag: Tag, bytes: &[u8]) {
        match std::str::from_utf8(bytes) {
            Ok(s) => self.str(tag, s),
            Err(_) => self.fmt(tag, format_args!("{}", Text(bytes))),
        }
    }

    /// A header record: `Name: value`.
    pub fn header(&mut self, tag: Tag, name: &[u8], value: &[u8]) {
        self.fmt(tag, format_args!("{}: {}", Text(name), Text(value)));
    }

    /// `Timestamp <label>: <now> <since start> <since last timestamp>`.
    pub fn timestamp(&mut self, label: &str, now: f64) {
        let (start, last) = (now - self.t_start, now - self.t_last);
        self.t_last = now;
        self.fmt(Tag::Timestamp, format_args!("{label}: {now:.6} {start:.6} {last:.6}"));
    }

    /// `End`, which also hands the buffer to the log.
    pub fn end(&mut self) {
        self.str(Tag::End, "");
        self.buf.flush();
    }
}

/// A vxid as the log's 30 bits carry it.
fn wire_vxid(vxid: u64) -> u32 {
    (vxid & 0x3fff_ffff) as u32
}

/// The tags a kind of head is logged under: first line fields, headers,
/// and unset headers.
#[derive(Clone, Copy)]
pub(crate) struct HeadTags {
    pub first: [Tag; 3],
    pub header: Tag,
    pub unset: Tag,
}

/// Client requests.
pub(crate) const REQ: HeadTags =
    HeadTags { first: [Tag::ReqMethod, Tag::ReqURL, Tag::ReqProtocol], header: Tag::ReqHeader, unset: Tag::ReqUnset };
/// Client responses.
pub(crate) const RESP: HeadTags = HeadTags {
    first: [Tag::RespProtocol, Tag::RespStatus, Tag::RespReason],
    header: Tag::RespHeader,
    unset: Tag::RespUnset,
};
/// Backend requests.
pub(crate) const BEREQ: HeadTags = HeadTags {
    first: [Tag::BereqMethod, Tag::BereqURL, Tag::BereqProtocol],
    header: Tag::BereqHeader,
    unset: Tag::BereqUnset,
};
/// Backend responses.
pub(crate) const BERESP: HeadTags = HeadTags {
    first: [Tag::BerespProtocol, Tag::BerespStatus, Tag::BerespReason],
    header: Tag::BerespHeader,
    unset: Tag::BerespUnset,
};

impl Vsl {
    /// Logs a whole head: its first line's three fields, then every header
    /// in order.
    pub fn head(&mut self, m: &crate::msg::Msg, tags: HeadTags) {
        let h = &m.head;
        if tags.first[0] == Tag::ReqMethod || tags.first[0] == Tag::BereqMethod {
            self.text(tags.first[0], h.method(&m.buf));
            self.text(tags.first[1], h.url(&m.buf));
            self.text(tags.first[2], h.proto(&m.buf));
        } else {
            self.text(tags.first[0], h.proto(&m.buf));
            self.fmt(tags.first[1], format_args!("{}", h.status()));
            self.text(tags.first[2], h.reason(&m.buf));
        }
        for (name, value) in h.headers(&m.buf) {
            self.header(tags.header, name, value);
        }
    }

    /// `VCL_call` with the method's name as Varnish logs it (`RECV`).
    pub fn vcl_call(&mut self, method: lacquer_defs::Method) {
        self.fmt(Tag::VCL_call, format_args!("{}", Upper(method.short())));
    }
}

/// Text in upper case, written without allocating.
struct Upper<'a>(&'a str);

impl fmt::Display for Upper<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        self.0.chars().try_for_each(|c| f.write_char(c.to_ascii_uppercase()))
    }
}

/// Logs one record outside any transaction (vxid 0): what Varnish logs with
/// `VSL(tag, 0, …)` from the CLI, `vcl_init` and module events.
pub(crate) fn global(log: &lacquer_shm::Log, tag: Tag, text: &[u8]) {
    let mut b = log.buffer();
    // A text record, cut at `vsl_reclen` − 1 with its NUL, as any other.
    match std::str::from_utf8(text) {
        Ok(s) => b.log_str(tag, 0, lacquer_shm::Side::None, s),
        Err(_) => b.log(tag, 0, lacquer_shm::Side::None, format_args!("{}", Text(text))),
    }
    b.flush();
}

/// Logs one record for any transaction, as `vtc.vsl` does with Varnish's
/// `VSLs`: the record stands alone, outside the task that wrote it.
pub(crate) fn record(log: &lacquer_shm::Log, vxid: u64, side: Side, tag: Tag, text: &[u8]) {
    let mut b = log.buffer();
    b.log_bytes(tag, wire_vxid(vxid), side, text);
    b.flush();
}
