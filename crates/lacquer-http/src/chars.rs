//! Byte classes, as Varnish's `vct.h` draws them.
//!
//! One table answers every per-byte question the parsers ask, so that the
//! hot loops are a load and a mask.

/// A token character (RFC 9110 `tchar`): the only bytes allowed in a header name.
pub(crate) const TCHAR: u8 = 1;
/// A control byte (0x00–0x1f and 0x7f), horizontal tab included.
pub(crate) const CTL: u8 = 2;
/// Space or horizontal tab (Varnish's `vct_issp`).
pub(crate) const SP: u8 = 4;
/// Space, tab, CR or LF (Varnish's `vct_islws`).
pub(crate) const LWS: u8 = 8;
/// A hexadecimal digit.
pub(crate) const HEX: u8 = 16;
/// A control byte other than horizontal tab: never allowed inside a line.
pub(crate) const BAD: u8 = 32;

static CLASS: [u8; 256] = build();

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b < 0x20 || b == 0x7f {
            c |= CTL;
            if b != b'\t' {
                c |= BAD;
            }
        }
        if b == b' ' || b == b'\t' {
            c |= SP | LWS;
        }
        if b == b'\r' || b == b'\n' {
            c |= LWS;
        }
        if b.is_ascii_hexdigit() {
            c |= HEX;
        }
        if b.is_ascii_alphanumeric() {
            c |= TCHAR;
        }
        let mut j = 0;
        let extra = b"!#$%&'*+-.^_`|~";
        while j < extra.len() {
            if extra[j] == b {
                c |= TCHAR;
            }
            j += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// Tells whether `b` belongs to any of the classes in `mask`.
#[inline(always)]
pub(crate) fn is(b: u8, mask: u8) -> bool {
    CLASS[b as usize] & mask != 0
}

/// Gives the value of a hexadecimal digit, or `None`.
#[inline]
pub(crate) fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Tells whether `s` holds a control byte other than tab, eight bytes at a
/// time: a word is looked at byte by byte only when it may hold one.
#[inline]
pub(crate) fn has_bad(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        // Some byte is below 0x20, or some byte is 0x7f (exact tests on the word).
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y & HIGH;
        if below | del != 0 && w.iter().any(|&b| is(b, BAD)) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| is(b, BAD))
}

/// Tells whether `name` is a legal header name: one or more token characters.
pub fn valid_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| is(b, TCHAR))
}

/// Tells whether `value` may be written as a header value: no control byte
/// other than horizontal tab (so no CR, LF or NUL that could split the head).
pub fn valid_header_value(value: &[u8]) -> bool {
    !has_bad(value)
}

/// Trims spaces and tabs from both ends.
pub(crate) fn trim_sp(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is(*first, SP) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is(*last, SP) {
            s = rest;
        } else {
            break;
        }
    }
    s
}
