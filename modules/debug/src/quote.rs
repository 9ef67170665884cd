//! Quoting a string for a PCRE pattern (Varnish's `VRE_quote`).

/// `s` as a pattern matching exactly `s`: the text inside `\Q` … `\E`,
/// with every `\E` in it (which would end the quoting) written as `\\EE`
/// — a backslash, the end of the quoting, an `E` — and the quoting opened
/// again for what follows. The empty string stays empty.
pub fn re_quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 4);
    if s.is_empty() {
        return out;
    }
    let mut rest = s;
    out.extend_from_slice(b"\\Q");
    while let Some(i) = rest.windows(2).position(|w| w == b"\\E") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"\\\\EE");
        rest = &rest[i + 2..];
        if rest.is_empty() {
            return out;
        }
        out.extend_from_slice(b"\\Q");
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(b"\\E");
    out
}

#[cfg(test)]
mod tests {
    use super::re_quote;

    /// The expectations of Varnish's v00065.vtc, which varnishd meets.
    #[test]
    fn as_varnish_quotes() {
        for (s, want) in [
            ("", ""),
            ("hello", "\\Qhello\\E"),
            ("hello\\E", "\\Qhello\\\\EE"),
            ("hello\\Eworld", "\\Qhello\\\\EE\\Qworld\\E"),
            ("\\E", "\\Q\\\\EE"),
            ("\\Q", "\\Q\\Q\\E"),
        ] {
            assert_eq!(String::from_utf8(re_quote(s.as_bytes())).unwrap(), want, "{s}");
        }
    }
}
