//! Gzip as Varnish does it (`cache_gzip.c`, `http_gzip_support`): bodies
//! compressed or decompressed as they stream, piece by piece, for
//! `beresp.do_gzip` / `beresp.do_gunzip` on the way into the cache and for
//! clients that do not accept gzip on the way out; and which requests
//! accept it (`RFC2616_Req_Gzip`).

use std::io::Write;

use flate2::write::{GzDecoder, GzEncoder};
use flate2::Compression;

use crate::msg::Msg;

/// A body transformation applied as the body passes, counting the plain
/// (uncompressed) bytes it sees.
pub(crate) struct Filter {
    kind: Kind,
    plain: u64,
}

enum Kind {
    Gzip(GzEncoder<Vec<u8>>),
    Gunzip(GzDecoder<Vec<u8>>),
    /// Varnish's `testgunzip`: a gzip body stored as it came, checked on
    /// the way that it really is gzip (what comes out is only counted).
    Test(GzDecoder<Vec<u8>>),
    /// Several, each feeding the next (a `beresp.filters` list).
    Chain(Vec<Filter>),
}

impl Filter {
    fn of(kind: Kind) -> Filter {
        Filter { kind, plain: 0 }
    }

    /// Compresses at `level` (the `gzip_level` parameter).
    pub fn gzip(level: u32) -> Filter {
        Filter::of(Kind::Gzip(GzEncoder::new(Vec::new(), Compression::new(level.min(9)))))
    }

    /// Decompresses.
    pub fn gunzip() -> Filter {
        Filter::of(Kind::Gunzip(GzDecoder::new(Vec::new())))
    }

    /// Checks a gzip body while passing it on unchanged.
    pub fn test_gunzip() -> Filter {
        Filter::of(Kind::Test(GzDecoder::new(Vec::new())))
    }

    /// The filters one after the other: none, one, or a chain.
    pub fn chain(mut filters: Vec<Filter>) -> Option<Filter> {
        match filters.len() {
            0 => None,
            1 => filters.pop(),
            _ => Some(Filter::of(Kind::Chain(filters))),
        }
    }

    /// Whether the bytes stay as they are (the body keeps its length and
    /// its ETag).
    pub fn keeps_bytes(&self) -> bool {
        match &self.kind {
            Kind::Test(_) => true,
            Kind::Chain(all) => all.iter().all(Filter::keeps_bytes),
            _ => false,
        }
    }

    /// Whether what comes out is gzip whose plain length is worth keeping
    /// (varnishd's `OA_GZIPBITS`): a client that does not take gzip is
    /// then told the length of what it gets.
    pub fn makes_gzip(&self) -> bool {
        match &self.kind {
            Kind::Gzip(_) | Kind::Test(_) => true,
            Kind::Chain(all) => all.last().is_some_and(Filter::makes_gzip),
            Kind::Gunzip(_) => false,
        }
    }

    /// Feeds a piece of body; answers what came out (perhaps nothing yet).
    /// An error is a body that is not valid gzip.
    pub fn feed(&mut self, piece: &[u8]) -> Result<Vec<u8>, ()> {
        match &mut self.kind {
            Kind::Gzip(e) => {
                e.write_all(piece).map_err(|_| ())?;
                self.plain += piece.len() as u64;
                Ok(std::mem::take(e.get_mut()))
            }
            Kind::Gunzip(d) => {
                inflate(d, piece)?;
                self.plain += d.get_ref().len() as u64;
                Ok(std::mem::take(d.get_mut()))
            }
            Kind::Test(d) => {
                inflate(d, piece)?;
                self.plain += d.get_ref().len() as u64;
                d.get_mut().clear();
                Ok(piece.to_vec())
            }
            Kind::Chain(all) => {
                let mut out = piece.to_vec();
                for f in all {
                    out = f.feed(&out)?;
                }
                Ok(out)
            }
        }
    }

    /// What has been fed so far, all out: a sync flush of the compressor,
    /// so that the client can read everything sent up to here (nothing
    /// more for a decompressor).
    pub fn flush(&mut self) -> Result<Vec<u8>, ()> {
        match &mut self.kind {
            Kind::Gzip(e) => {
                e.flush().map_err(|_| ())?;
                Ok(std::mem::take(e.get_mut()))
            }
            Kind::Gunzip(d) => {
                self.plain += d.get_ref().len() as u64;
                Ok(std::mem::take(d.get_mut()))
            }
            Kind::Test(_) => Ok(Vec::new()),
            Kind::Chain(all) => {
                let mut out = Vec::new();
                for f in all {
                    let mut next = f.feed(&out)?;
                    next.extend(f.flush()?);
                    out = next;
                }
                Ok(out)
            }
        }
    }

    /// The end of the body: what is left to come out.
    pub fn finish(self) -> Result<Vec<u8>, ()> {
        self.finish_counted().map(|(tail, _)| tail)
    }

    /// The end of the body: what is left to come out, and how many plain
    /// bytes the whole body holds.
    pub fn finish_counted(self) -> Result<(Vec<u8>, u64), ()> {
        let plain = self.plain;
        match self.kind {
            Kind::Gzip(e) => e.finish().map(|tail| (tail, plain)).map_err(|_| ()),
            Kind::Gunzip(d) => {
                d.finish().map(|tail| (plain + tail.len() as u64, tail)).map(|(n, t)| (t, n)).map_err(|_| ())
            }
            Kind::Test(d) => d.finish().map(|tail| (Vec::new(), plain + tail.len() as u64)).map_err(|_| ()),
            Kind::Chain(all) => {
                // Each one's end goes through those after it; the plain
                // length is the last one's.
                let mut out = Vec::new();
                let mut n = 0;
                for mut f in all {
                    let fed = f.feed(&out)?;
                    let (tail, plain) = f.finish_counted()?;
                    out = fed;
                    out.extend(tail);
                    n = plain;
                }
                Ok((out, n))
            }
        }
    }
}

/// Feeds a decompressor. Bytes after the gzip trailer are ignored, as
/// varnishd's inflate stops at the end of the stream.
fn inflate(d: &mut GzDecoder<Vec<u8>>, piece: &[u8]) -> Result<(), ()> {
    let mut rest = piece;
    while !rest.is_empty() {
        match d.write(rest).map_err(|_| ())? {
            0 => break,
            n => rest = &rest[n..],
        }
    }
    Ok(())
}

/// Whether a request accepts gzip (Varnish's `RFC2616_Req_Gzip`):
/// `x-gzip` anywhere (whatever its q value), or else `gzip` with a q value
/// above zero.
pub(crate) fn accepts_gzip(req: &Msg) -> bool {
    let codings = || {
        req.head.header_all(&req.buf, b"accept-encoding").flat_map(|v| v.split(|&b| b == b',')).map(|t| {
            let mut parts = t.split(|&b| b == b';');
            (parts.next().unwrap_or_default().trim_ascii(), parts)
        })
    };
    if codings().any(|(c, _)| c.eq_ignore_ascii_case(b"x-gzip")) {
        return true;
    }
    let Some((_, params)) = codings().find(|(c, _)| c.eq_ignore_ascii_case(b"gzip")) else {
        return false;
    };
    let q = params
        .filter_map(|p| {
            let p = p.trim_ascii();
            p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))
        })
        .next()
        .and_then(|q| std::str::from_utf8(q).ok()?.trim().parse::<f64>().ok())
        .unwrap_or(1.0);
    q > 0.0
}

/// Whether a message's body is gzip (`Content-Encoding: gzip`).
pub(crate) fn is_gzip(m: &Msg) -> bool {
    m.header(b"content-encoding").is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"gzip"))
}

/// A strong ETag becomes weak once the body's bytes change
/// (`RFC2616_Weaken_Etag`).
pub(crate) fn weaken_etag(m: &mut Msg) {
    if let Some(e) = m.header(b"etag").filter(|e| !e.starts_with(b"W/")).map(<[u8]>::to_vec) {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(&e);
        m.set(b"ETag", &weak);
    }
}

/// Adds `Accept-Encoding` to `Vary` (`RFC2616_Vary_AE`).
pub(crate) fn vary_ae(m: &mut Msg) {
    if m.has_token(b"vary", b"accept-encoding") {
        return;
    }
    match m.header(b"vary").map(<[u8]>::to_vec) {
        Some(v) => {
            let mut all = v;
            all.extend_from_slice(b", Accept-Encoding");
            m.set(b"Vary", &all);
        }
        None => m.append(b"Vary", b"Accept-Encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_go_through_and_back() {
        let mut z = Filter::gzip(6);
        let mut packed = Vec::new();
        for piece in [&b"hello "[..], b"gzip ", b"world"] {
            packed.extend(z.feed(piece).unwrap());
        }
        packed.extend(z.finish().unwrap());
        let mut u = Filter::gunzip();
        let mut out = Vec::new();
        for piece in packed.chunks(7) {
            out.extend(u.feed(piece).unwrap());
        }
        out.extend(u.finish().unwrap());
        assert_eq!(out, b"hello gzip world");
        assert!(Filter::gunzip().feed(b"not gzip at all").is_err());
        let mut u = Filter::gunzip();
        let mut trailing = packed.clone();
        trailing.push(0);
        let mut out = u.feed(&trailing).unwrap();
        out.extend(u.finish().unwrap());
        assert_eq!(out, b"hello gzip world");
    }

    #[test]
    fn accept_encoding_as_varnish_reads_it() {
        let req = |ae: &str| {
            let mut m = Msg::request(b"GET", b"/", b"HTTP/1.1");
            m.append(b"Accept-Encoding", ae.as_bytes());
            m
        };
        assert!(accepts_gzip(&req("gzip, deflate")));
        assert!(accepts_gzip(&req("deflate, x-gzip")));
        assert!(accepts_gzip(&req("gzip;q=0.5")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(accepts_gzip(&req("gzip;q=0, x-gzip")));
        assert!(!accepts_gzip(&req("deflate, br")));
        assert!(!accepts_gzip(&Msg::request(b"GET", b"/", b"HTTP/1.1")));
    }
}
