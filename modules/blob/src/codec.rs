//! The encodings, each decoding from a string in parts and encoding to a
//! string, byte for byte as varnishd's vmod_blob does — including how it
//! treats input its decoders were not written for (a `=` in the middle of
//! base64, an odd number of hex digits).

/// An encoding (the `decoding`/`encoding` ENUMs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Base64,
    Base64Url,
    Base64UrlNoPad,
    Base64Cf,
    Hex,
    Url,
}

impl Encoding {
    /// Every encoding, in the spec's order.
    pub const ALL: [Encoding; 7] = [
        Encoding::Identity,
        Encoding::Base64,
        Encoding::Base64Url,
        Encoding::Base64UrlNoPad,
        Encoding::Base64Cf,
        Encoding::Hex,
        Encoding::Url,
    ];

    /// The ENUM value.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "IDENTITY",
            Encoding::Base64 => "BASE64",
            Encoding::Base64Url => "BASE64URL",
            Encoding::Base64UrlNoPad => "BASE64URLNOPAD",
            Encoding::Base64Cf => "BASE64CF",
            Encoding::Hex => "HEX",
            Encoding::Url => "URL",
        }
    }

    /// The encoding an ENUM value names.
    pub fn parse(s: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether the encoding writes hex digits, and so has a case.
    pub fn has_case(self) -> bool {
        matches!(self, Encoding::Hex | Encoding::Url)
    }

    /// The room varnishd sets aside to decode `len` bytes of input (its
    /// `decode_l`); an object or `transcode()` whose input gets none
    /// decodes to nothing without looking at it.
    pub fn decoded_room(self, len: usize) -> usize {
        match self {
            Encoding::Identity | Encoding::Url => len,
            Encoding::Hex => len.div_ceil(2),
            _ => (len * 3) >> 2,
        }
    }

    /// Decodes the parts of `input` (a NULL part is skipped) as one
    /// string, reading at most `limit` bytes of it when given. An error is
    /// input that is not in the encoding.
    pub fn decode(self, input: &[Option<&[u8]>], limit: Option<usize>) -> Result<Vec<u8>, Illegal> {
        // Parts are C strings: each ends at its first NUL.
        let parts: Vec<&[u8]> = input.iter().map(|p| c_str(p.unwrap_or(b""))).collect();
        match self {
            Encoding::Identity => Ok(identity_decode(&parts, limit)),
            Encoding::Hex => hex_decode(&parts, limit),
            Encoding::Url => url_decode(&parts, limit),
            b64 => base64_decode(alphabet(b64), &parts, limit),
        }
    }

    /// Encodes `bytes`; `upper` picks upper-case hex digits.
    pub fn encode(self, bytes: &[u8], upper: bool) -> Vec<u8> {
        let digits = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
        match self {
            // A STRING ends at its first NUL.
            Encoding::Identity => c_str(bytes).to_vec(),
            Encoding::Hex => {
                bytes.iter().flat_map(|&b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]]).collect()
            }
            Encoding::Url => {
                let mut out = Vec::with_capacity(bytes.len() * 3);
                for &b in bytes {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        out.push(b);
                    } else {
                        out.extend_from_slice(&[b'%', digits[usize::from(b >> 4)], digits[usize::from(b & 15)]]);
                    }
                }
                out
            }
            b64 => base64_encode(alphabet(b64), bytes),
        }
    }
}

/// Input a decoder refuses (varnishd's `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Illegal;

fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

fn identity_decode(parts: &[&[u8]], limit: Option<usize>) -> Vec<u8> {
    let mut left = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for p in parts {
        if left == 0 {
            break;
        }
        let n = p.len().min(left);
        out.extend_from_slice(&p[..n]);
        left -= n;
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn hex_decode(parts: &[&[u8]], limit: Option<usize>) -> Result<Vec<u8>, Illegal> {
    if parts.iter().any(|p| p.iter().any(|c| !c.is_ascii_hexdigit())) {
        return Err(Illegal);
    }
    let mut len: usize = parts.iter().map(|p| p.len()).sum();
    if let Some(n) = limit {
        len = len.min(n);
    }
    // An odd count gets a leading zero nibble; the digits are then read in
    // pairs across the parts.
    let mut digits = Vec::with_capacity(len + 1);
    if len % 2 == 1 {
        digits.push(b'0');
    }
    digits.extend(parts.iter().flat_map(|p| p.iter().copied()).take(len));
    Ok(digits.chunks_exact(2).map(|d| (hex_value(d[0]).unwrap_or(0) << 4) | hex_value(d[1]).unwrap_or(0)).collect())
}

fn url_decode(parts: &[&[u8]], limit: Option<usize>) -> Result<Vec<u8>, Illegal> {
    // varnishd takes `0`–`9`, `A`–`F` and `a`–`f` after a `%`.
    let nibble = |c: u8| {
        if c.is_ascii_digit() || (b'A'..=b'F').contains(&c) || (b'a'..=b'f').contains(&c) {
            hex_value(c)
        } else {
            None
        }
    };
    let mut left = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    // `None`: not in an escape; `Some(None)`: just read `%`; `Some(Some(n))`:
    // read `%` and the first digit.
    let mut esc: Option<Option<u8>> = None;
    for &c in parts.iter().flat_map(|p| p.iter()) {
        if left == 0 {
            break;
        }
        left -= 1;
        esc = match esc {
            None if c == b'%' => Some(None),
            None => {
                out.push(c);
                None
            }
            Some(None) => Some(Some(nibble(c).ok_or(Illegal)?)),
            Some(Some(hi)) => {
                out.push((hi << 4) | nibble(c).ok_or(Illegal)?);
                None
            }
        };
    }
    if esc.is_some() {
        return Err(Illegal);
    }
    Ok(out)
}

/// A base64 alphabet: the 64 digits and the padding, if any.
struct Alphabet {
    digits: &'static [u8; 64],
    pad: Option<u8>,
}

fn alphabet(e: Encoding) -> Alphabet {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const CF: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~";
    match e {
        Encoding::Base64Url => Alphabet { digits: URL, pad: Some(b'=') },
        Encoding::Base64UrlNoPad => Alphabet { digits: URL, pad: None },
        Encoding::Base64Cf => Alphabet { digits: CF, pad: Some(b'_') },
        _ => Alphabet { digits: STD, pad: Some(b'=') },
    }
}

fn base64_encode(a: Alphabet, bytes: &[u8]) -> Vec<u8> {
    let d = |i: u32| a.digits[(i & 0x3f) as usize];
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(*chunk.get(i).unwrap_or(&0));
        let u = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(d(u >> 18));
        out.push(d(u >> 12));
        if chunk.len() > 1 {
            out.push(d(u >> 6));
        }
        if chunk.len() > 2 {
            out.push(d(u));
        }
        if let Some(pad) = a.pad {
            out.resize(out.len() + 3 - chunk.len(), pad);
        }
    }
    out
}

/// What a base64 character is.
enum B64 {
    Digit(u32),
    Pad,
}

fn base64_decode(a: Alphabet, parts: &[&[u8]], limit: Option<usize>) -> Result<Vec<u8>, Illegal> {
    let class = |c: u8| {
        if Some(c) == a.pad {
            Some(B64::Pad)
        } else {
            a.digits.iter().position(|&x| x == c).map(|i| B64::Digit(i as u32))
        }
    };
    // varnishd's decoder, step by step: `u` gathers 6 bits a character,
    // `n` counts characters of the group, `term` the padding seen so far
    // (never reset), and a group of n characters with `term` of them
    // padding gives n - term - 1 bytes; fewer than two is an error.
    fn emit(out: &mut Vec<u8>, mut u: u32, n: i64) -> Result<(), Illegal> {
        if n <= 1 {
            return Err(Illegal);
        }
        for _ in 0..n - 1 {
            out.push((u >> 16) as u8);
            u <<= 8;
        }
        Ok(())
    }
    let mut left = limit.unwrap_or(usize::MAX);
    let (mut u, mut n, mut term) = (0u32, 0i64, 0i64);
    let mut out = Vec::new();
    for p in parts {
        if left == 0 {
            break;
        }
        if !p.is_empty() && term > 0 {
            return Err(Illegal);
        }
        for &c in p.iter() {
            if left == 0 {
                break;
            }
            left -= 1;
            u <<= 6;
            let class = class(c).ok_or(Illegal)?;
            n += 1;
            match class {
                B64::Pad => term += 1,
                B64::Digit(v) => {
                    u |= v;
                    if n == 4 {
                        emit(&mut out, u, n - term)?;
                        n = 0;
                    }
                }
            }
        }
    }
    if n > 0 {
        if n - term != 0 {
            // A C shift, whose count the CPU takes modulo 32.
            u = u.wrapping_shl((6 * (4 - n)) as u32);
        }
        emit(&mut out, u, n - term)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(e: Encoding, s: &str) -> Result<Vec<u8>, Illegal> {
        e.decode(&[Some(s.as_bytes())], None)
    }

    #[test]
    fn round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for e in Encoding::ALL {
            if e == Encoding::Identity {
                continue;
            }
            for upper in [false, true] {
                for n in 0..6 {
                    let enc = e.encode(&all[250 - n..], upper);
                    assert_eq!(dec(e, std::str::from_utf8(&enc).unwrap()).unwrap(), &all[250 - n..], "{e:?}");
                }
            }
        }
    }

    #[test]
    fn encodes_as_varnishd() {
        assert_eq!(Encoding::Base64.encode(b"foo\xfb", false), b"Zm9v+w==");
        assert_eq!(Encoding::Base64Url.encode(b"foo\xfb", false), b"Zm9v-w==");
        assert_eq!(Encoding::Base64UrlNoPad.encode(b"foo\xfb", false), b"Zm9v-w");
        assert_eq!(Encoding::Base64Cf.encode(b"foo\xff", false), b"Zm9v~w__");
        assert_eq!(Encoding::Hex.encode(b"\x0a\xfe", true), b"0AFE");
        assert_eq!(Encoding::Url.encode(b"a b/~", false), b"a%20b%2f~");
        assert_eq!(Encoding::Identity.encode(b"ab\0c", false), b"ab");
    }

    #[test]
    fn decodes_as_varnishd() {
        assert_eq!(dec(Encoding::Hex, "abc").unwrap(), b"\x0a\xbc");
        assert_eq!(Encoding::Hex.decode(&[Some(b"ab"), None, Some(b"c")], None).unwrap(), b"\x0a\xbc");
        assert_eq!(Encoding::Hex.decode(&[Some(b"abcd")], Some(3)).unwrap(), b"\x0a\xbc");
        assert_eq!(dec(Encoding::Hex, "xy"), Err(Illegal));
        assert_eq!(dec(Encoding::Url, "a%2Fb%2f").unwrap(), b"a/b/");
        assert_eq!(dec(Encoding::Url, "a%2"), Err(Illegal));
        assert_eq!(dec(Encoding::Url, "%G0"), Err(Illegal));
        assert_eq!(dec(Encoding::Base64, "Zm9v").unwrap(), b"foo");
        assert_eq!(dec(Encoding::Base64, "Zm8=").unwrap(), b"fo");
        assert_eq!(dec(Encoding::Base64, "Zm8").unwrap(), b"fo");
        assert_eq!(dec(Encoding::Base64, "Z"), Err(Illegal));
        assert_eq!(dec(Encoding::Base64, "Zm9v!"), Err(Illegal));
        assert_eq!(Encoding::Base64.decode(&[Some(b"Zg=="), Some(b"Zg")], None), Err(Illegal));
        assert_eq!(Encoding::Identity.decode(&[Some(b"foo"), None, Some(b"bar")], Some(4)).unwrap(), b"foob");
        assert_eq!(Encoding::Base64.decoded_room(1), 0);
    }
}
