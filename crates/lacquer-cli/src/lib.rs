//! The admin CLI protocol, as Varnish speaks it (`vcli.h`, `cli_serve.c`),
//! so that `varnishadm -T … -S …` talks to Lacquer as to varnishd.
//!
//! Every answer is a head line — the status in three columns, a space, the
//! body's length in eight, a newline — then the body and a newline:
//! `200 19      \nPONG 1795560411 1.0\n`. A request is one line of words,
//! quoted as a shell quotes them.
//!
//! With a secret (`-S file`), a new connection first gets status 107 and a
//! challenge of 32 random lower-case letters; the client proves it knows
//! the secret by answering `auth HEX`, the SHA-256 of
//! `challenge "\n" secret challenge "\n"`.
//!
//! This crate is the protocol only, shared by the server, `lacquer adm`
//! and `lacquer vtc`; it opens no connections (reading an answer works on
//! any `BufRead` the caller has).

mod endpoint;
mod sha256;

pub use endpoint::Endpoint;
pub use sha256::sha256;

/// Statuses (Varnish's `CLIS_*`).
pub mod status {
    /// The command line does not parse (an unbalanced quote).
    pub const SYNTAX: u16 = 100;
    /// Unknown request.
    pub const UNKNOWN: u16 = 101;
    /// Too few parameters.
    pub const TOOFEW: u16 = 104;
    /// Too many parameters.
    pub const TOOMANY: u16 = 105;
    /// A parameter is wrong.
    pub const PARAM: u16 = 106;
    /// Authentication is needed.
    pub const AUTH: u16 = 107;
    /// Done.
    pub const OK: u16 = 200;
    /// Done, but the answer was cut at `cli_limit`.
    pub const TRUNCATED: u16 = 201;
    /// Cannot be done now.
    pub const CANT: u16 = 300;
    /// The connection closes.
    pub const CLOSE: u16 = 500;
}

/// An answer on the wire: head line, body, newline.
pub fn frame(status: u16, body: &str) -> Vec<u8> {
    let mut out = format!("{status:<3} {:<8}\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
    out
}

/// Reads an answer's head line (`"200 19      "`): status and body length.
pub fn parse_head(line: &str) -> Option<(u16, usize)> {
    let mut w = line.split_whitespace();
    let status = w.next()?.parse().ok()?;
    let len = w.next()?.parse().ok()?;
    Some((status, len))
}

/// Reads one answer — head line, body, newline — from a client's side of
/// the connection: its status and body.
pub fn read_answer(r: &mut impl std::io::BufRead) -> Result<(u16, String), String> {
    let mut head = String::new();
    r.read_line(&mut head).map_err(|e| format!("CLI read: {e}"))?;
    let (status, len) = parse_head(&head).ok_or_else(|| format!("CLI: bad answer {head:?}"))?;
    let mut body = vec![0; len + 1];
    r.read_exact(&mut body).map_err(|e| format!("CLI read: {e}"))?;
    body.pop();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// What the client must answer to a challenge, given the secret file's
/// contents (Varnish's `VCLI_AuthResponse`), in lower-case hex.
pub fn auth_response(challenge: &str, secret: &[u8]) -> String {
    let mut data = Vec::with_capacity(challenge.len() * 2 + secret.len() + 2);
    data.extend_from_slice(challenge.as_bytes());
    data.push(b'\n');
    data.extend_from_slice(secret);
    data.extend_from_slice(challenge.as_bytes());
    data.push(b'\n');
    sha256(&data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A challenge: 32 lower-case letters, from `seed` bytes (the server
/// reads them from the system's random source).
pub fn challenge(seed: &[u8; 32]) -> String {
    seed.iter().map(|b| char::from(b'a' + b % 26)).collect()
}

/// Splits a request line into words as Varnish's `VAV_Parse` does: blanks
/// separate, `"…"` quotes, and backslash escapes are decoded in and out of
/// quotes (`\\`, `\"`, `\n`, `\r`, `\t`, octal `\NNN`, hex `\xHH`; any
/// other is refused).
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let quoted = c == '"';
        if quoted {
            chars.next();
        }
        let mut w = String::new();
        loop {
            match chars.peek().copied() {
                None if quoted => return Err("Missing '\"'".into()),
                None => break,
                Some('"') if quoted => {
                    chars.next();
                    break;
                }
                Some(ch) if !quoted && ch.is_whitespace() => break,
                Some('\\') => {
                    chars.next();
                    w.push(backslash(&mut chars)?);
                }
                Some(ch) => {
                    w.push(ch);
                    chars.next();
                }
            }
        }
        out.push(w);
    }
    Ok(out)
}

/// The character a backslash sequence stands for (Varnish's
/// `VAV_BackSlash`), the backslash already read.
fn backslash(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    let invalid = || "Invalid backslash sequence".to_string();
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, radix: u32, max: usize| {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match chars.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    n += 1;
                    chars.next();
                }
                None => break,
            }
        }
        (n > 0 && v < 256).then(|| char::from(v as u8))
    };
    match chars.next() {
        Some('\\') => Ok('\\'),
        Some('"') => Ok('"'),
        Some('n') => Ok('\n'),
        Some('r') => Ok('\r'),
        Some('t') => Ok('\t'),
        Some('x') => digits(chars, 16, 2).ok_or_else(invalid),
        Some(c @ '0'..='7') => {
            let mut v = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|c| c.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            u8::try_from(v).map(char::from).map_err(|_| invalid())
        }
        _ => Err(invalid()),
    }
}

/// Quotes a word for a request line, when it needs it.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        return word.to_string();
    }
    let mut q = String::from("\"");
    for c in word.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_varnish_writes_them() {
        assert_eq!(frame(200, "PONG 1 1.0"), b"200 10      \nPONG 1 1.0\n");
        assert_eq!(parse_head("107 59      "), Some((107, 59)));
        let wire = frame(200, "a\nb");
        assert_eq!(read_answer(&mut &wire[..]), Ok((200, "a\nb".to_string())));
    }

    #[test]
    fn words_and_quotes_round_trip() {
        assert_eq!(words(r#"ban req.url ~ "^/a b" "#).unwrap(), ["ban", "req.url", "~", "^/a b"]);
        assert_eq!(words(r#"vcl.inline x "a\nb""#).unwrap(), ["vcl.inline", "x", "a\nb"]);
        assert!(words("\"open").is_err());
        assert_eq!(words(r#"ban a\"b a\\b a\x41b a\101b"#).unwrap(), ["ban", "a\"b", "a\\b", "aAb", "aAb"]);
        assert_eq!(words(r"ban \d").unwrap_err(), "Invalid backslash sequence");
        for w in ["plain", "two words", "q\"uote", "back\\slash", ""] {
            assert_eq!(words(&quote(w)).unwrap(), [w]);
        }
    }

    #[test]
    fn the_auth_response_is_varnishs() {
        // The construction of VCLI_AuthResponse: challenge, newline, the
        // secret file's bytes, challenge, newline.
        let r = auth_response("abc", b"secret\n");
        assert_eq!(r.len(), 64);
        assert_eq!(r, auth_response("abc", b"secret\n"));
        assert_ne!(r, auth_response("abd", b"secret\n"));
        assert_eq!(challenge(&[0; 32]), "a".repeat(32));
    }
}
