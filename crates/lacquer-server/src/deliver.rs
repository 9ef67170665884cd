//! What a delivered response becomes on its way out (Varnish's
//! `cache_range.c` and `RFC2616_Do_Cond`): a 304 when the client's
//! conditional request is satisfied, a 206 with the one range it asked
//! for, or a 416 when that range makes no sense — decided from the
//! request and the response head, before the body is written.

use lacquer_vcl::conv::parse_http_date_bytes;

use crate::msg::Msg;

/// How the body is cut: skip this many bytes, then send at most `take`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub skip: u64,
    pub take: Option<u64>,
}

impl Window {
    /// The whole body.
    pub const ALL: Window = Window { skip: 0, take: None };

    /// The part of `piece` inside the window, advancing past it; `None`
    /// once the window is used up.
    pub fn cut<'a>(&mut self, piece: &'a [u8]) -> Option<&'a [u8]> {
        if self.take == Some(0) {
            return None;
        }
        let from = (self.skip.min(piece.len() as u64)) as usize;
        self.skip -= from as u64;
        let rest = &piece[from..];
        let n = self.take.map_or(rest.len(), |t| (t as usize).min(rest.len()));
        if let Some(t) = &mut self.take {
            *t -= n as u64;
        }
        Some(&rest[..n])
    }

    /// Whether nothing more is wanted.
    pub fn done(&self) -> bool {
        self.take == Some(0)
    }
}

/// Whether the request's `If-None-Match` / `If-Modified-Since` is satisfied
/// by the response, so that a 304 answers it (Varnish's `RFC2616_Do_Cond`).
/// `If-None-Match` wins; it is compared as one string with the ETag —
/// strongly when the request also has a Range, weakly otherwise.
/// `last_modified` stands in when the response has no Last-Modified.
pub(crate) fn not_modified(req: &Msg, resp: &Msg, t_req: f64, last_modified: f64) -> bool {
    if resp.head.status() != 200 {
        return false;
    }
    if let Some(inm) = req.header(b"if-none-match") {
        let Some(etag) = resp.header(b"etag") else { return false };
        let weak = |t: &[u8]| t.starts_with(b"W/");
        if req.header(b"range").is_some() {
            return !weak(inm) && !weak(etag) && inm == etag;
        }
        let strip = |t: &'_ [u8]| -> Vec<u8> { t.strip_prefix(b"W/").unwrap_or(t).to_vec() };
        return strip(inm) == strip(etag);
    }
    if let Some(ims) = req.header(b"if-modified-since") {
        let ims = parse_http_date_bytes(ims).unwrap_or(0.0);
        if ims == 0.0 || ims > t_req {
            return false;
        }
        let lm = match resp.header(b"last-modified") {
            Some(v) => parse_http_date_bytes(v).unwrap_or(0.0),
            None => last_modified,
        };
        return lm != 0.0 && lm <= ims;
    }
    false
}

/// Whether the request's `If-Range` lets its Range apply (RFC 7233 3.2, as
/// Varnish's `vrg_ifrange`): always without one; with an entity tag, when
/// it is strong and equal to the response's (strong) ETag; with a date,
/// when it equals the Last-Modified, which must be a second or more older
/// than the response's Date to count as strong. `last_modified` stands in
/// when the response has no Last-Modified.
pub(crate) fn if_range(req: &Msg, resp: &Msg, last_modified: f64) -> bool {
    let Some(ir) = req.header(b"if-range") else { return true };
    if ir.starts_with(b"W/") {
        return false;
    }
    if ir.starts_with(b"\"") {
        return resp.header(b"etag").is_some_and(|e| !e.starts_with(b"W/") && e == ir);
    }
    let Some(ims) = parse_http_date_bytes(ir) else { return false };
    let lm = match resp.header(b"last-modified") {
        Some(v) => {
            let Some(lm) = parse_http_date_bytes(v) else { return false };
            if let Some(d) = resp.header(b"date") {
                match parse_http_date_bytes(d) {
                    Some(d) if lm <= d - 1.0 => {}
                    _ => return false,
                }
            }
            lm
        }
        None => last_modified,
    };
    ims == lm
}

/// The range a `Range` header asks for, as Varnish's `http_GetRange`
/// reads it: one `bytes=LOW-HIGH` (either side may be missing, not both),
/// checked against the body's length when it is known. `Ok(None)` serves
/// the whole body (no length to cut against); `Err` is the reason for a
/// 416, as Varnish logs it.
pub(crate) fn range(value: &[u8], len: Option<u64>) -> Result<Option<(u64, u64)>, &'static str> {
    let Some(rest) = value.strip_prefix(b"bytes=") else { return Err("Not Bytes") };
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = |s: &[u8]| -> Option<u64> { std::str::from_utf8(s).ok()?.parse().ok() };
    let n = digits(rest);
    let low = if n > 0 { Some(number(&rest[..n]).ok_or("Number too big")?) } else { None };
    let Some(rest) = rest[n..].strip_prefix(b"-") else { return Err("Missing hyphen") };
    let n = digits(rest);
    let high = if n > 0 { Some(number(&rest[..n]).ok_or("Number too big")?) } else { None };
    if n < rest.len() {
        return Err("Trailing stuff");
    }
    match (low, high) {
        (None, None) => return Err("Neither high nor low"),
        (None, Some(0)) => return Err("No low, high is zero"),
        (Some(l), Some(h)) if h < l => return Err("high smaller than low"),
        _ => {}
    }
    let Some(len) = len.filter(|&l| l > 0) else { return Ok(None) };
    let (low, high) = match (low, high) {
        (None, Some(h)) => (len.saturating_sub(h), len - 1),
        (Some(l), h) => (l, h.map_or(len - 1, |h| h.min(len - 1))),
        (None, None) => unreachable!("refused above"),
    };
    if low >= len {
        return Err("low range beyond object");
    }
    Ok(Some((low, high)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_varnish_reads_them() {
        let r = |v: &str| range(v.as_bytes(), Some(100));
        assert_eq!(r("bytes=0-49"), Ok(Some((0, 49))));
        assert_eq!(r("bytes=50-"), Ok(Some((50, 99))));
        assert_eq!(r("bytes=-50"), Ok(Some((50, 99))));
        assert_eq!(r("bytes=-2000"), Ok(Some((0, 99))));
        assert_eq!(r("bytes=0-0"), Ok(Some((0, 0))));
        assert_eq!(r("bytes=90-200"), Ok(Some((90, 99))));
        for bad in ["bytes =0-9", "bytes=0- 9", "bytes =-9", "bytes=0-a", "bytes=-", "bytes=5-2", "bytes=-0"] {
            assert!(r(bad).is_err(), "{bad}");
        }
        assert_eq!(r("bytes=100-"), Err("low range beyond object"));
        assert_eq!(r("bytes=0-1,3-4"), Err("Trailing stuff"));
        assert_eq!(range(b"bytes=0-9", None), Ok(None));
    }

    #[test]
    fn windows_cut_across_pieces() {
        let mut w = Window { skip: 3, take: Some(4) };
        assert_eq!(w.cut(b"ab"), Some(&b""[..]));
        assert_eq!(w.cut(b"cdef"), Some(&b"def"[..]));
        assert_eq!(w.cut(b"ghij"), Some(&b"g"[..]));
        assert!(w.done());
        assert_eq!(w.cut(b"k"), None);
    }

    #[test]
    fn conditionals_as_varnish_answers_them() {
        let mut resp = Msg::response(200, b"OK");
        resp.append(b"ETag", b"\"abc\"");
        resp.append(b"Last-Modified", b"Wed, 11 Sep 2013 13:36:55 GMT");
        let req = |h: &[(&str, &str)]| {
            let mut m = Msg::request(b"GET", b"/", b"HTTP/1.1");
            for (n, v) in h {
                m.append(n.as_bytes(), v.as_bytes());
            }
            m
        };
        let now = 2e9;
        assert!(not_modified(&req(&[("If-None-Match", "\"abc\"")]), &resp, now, 0.0));
        assert!(not_modified(&req(&[("If-None-Match", "W/\"abc\"")]), &resp, now, 0.0));
        assert!(!not_modified(&req(&[("If-None-Match", "W/\"abc\""), ("Range", "bytes=0-1")]), &resp, now, 0.0));
        assert!(!not_modified(&req(&[("If-None-Match", "\"x\"")]), &resp, now, 0.0));
        let ims = |d: &str| req(&[("If-Modified-Since", d)]);
        assert!(not_modified(&ims("Wed, 11 Sep 2013 13:36:55 GMT"), &resp, now, 0.0));
        assert!(!not_modified(&ims("Wed, 11 Sep 2013 13:36:54 GMT"), &resp, now, 0.0));
        assert!(!not_modified(&ims("Wed, 11 Sep 2013 13:36:55 GMT"), &resp, 1e9, 0.0), "IMS in the future");
        assert!(!not_modified(&req(&[]), &resp, now, 0.0));
    }
}
