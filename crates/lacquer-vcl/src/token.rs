//! The lexer: VCL source bytes to tokens, as VCC's `vcc_token.c` cuts them.
//!
//! Identifiers may contain `.` and `-` (so `req.http.X-Forwarded-For` is one
//! token); numbers are `CNUM` (integer) or `FNUM` (with a fraction), and
//! units such as `10ms` are two tokens joined by the expression parser.
//! Strings come in three forms: `"..."` (one line, no escapes), `{"..."}`
//! and `"""..."""` (both multi-line). Inline C (`C{ ... }C`) is lexed so that
//! it can be refused with VCC's message.

use crate::diag::{Diag, Piece};
use crate::source::{Span, SrcId};

/// What kind of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An identifier (`req.url`, `vcl_recv`, `ms`).
    Id,
    /// An integer literal.
    CNum,
    /// A literal with a decimal point.
    FNum,
    /// A string literal of any form; its value is in [`Token::dec`].
    CStr,
    /// Inline C.
    CSrc,
    /// A BLOB literal, `:base64:`.
    CBlob,
    /// An operator or punctuation: one of the single characters
    /// `{}()*+-/%><=;!&.|~,` or one of the two-character operators.
    Op(Op),
    /// The end of the input.
    Eoi,
}

macro_rules! ops {
    ($( $id:ident = $text:literal ),* $(,)?) => {
        /// Operators and punctuation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Op { $( $id, )* }
        impl Op {
            /// The operator as written.
            pub const fn as_str(self) -> &'static str {
                match self { $( Op::$id => $text, )* }
            }
            /// Every operator, two-character ones first so they win.
            pub const ALL: &'static [Op] = &[ $( Op::$id, )* ];
        }
    };
}

ops! {
    Inc = "++", Dec = "--", CAnd = "&&", COr = "||", Leq = "<=", Eq = "==",
    Neq = "!=", Geq = ">=", Shr = ">>", Shl = "<<", Incr = "+=", Decr = "-=",
    MulAssign = "*=", DivAssign = "/=", NoMatch = "!~",
    LBrace = "{", RBrace = "}", LParen = "(", RParen = ")", Star = "*",
    Plus = "+", Minus = "-", Slash = "/", Percent = "%", Gt = ">", Lt = "<",
    Assign = "=", Semi = ";", Bang = "!", Amp = "&", Dot = ".", Pipe = "|",
    Tilde = "~", Comma = ",",
}

/// One token.
#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
    /// For [`Tok::CStr`], the string's value; empty otherwise.
    pub dec: Vec<u8>,
}

impl Token {
    /// Whether this is the operator `op`.
    pub fn is(&self, op: Op) -> bool {
        self.tok == Tok::Op(op)
    }
}

fn is_ident1(c: u8) -> bool {
    c.is_ascii_alphabetic()
}

/// Whether `c` may continue an identifier.
pub fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

/// Cuts one source into tokens, ending with [`Tok::Eoi`].
pub fn lex(src: SrcId, text: &[u8]) -> Result<Vec<Token>, Diag> {
    let mut out = Vec::new();
    let mut p = 0usize;
    let n = text.len();
    let sp = |b: usize, e: usize| Span { src, start: b as u32, end: e as u32 };
    let push = |out: &mut Vec<Token>, tok: Tok, b: usize, e: usize, dec: Vec<u8>| {
        out.push(Token { tok, span: sp(b, e), dec });
    };
    while p < n {
        let c = text[p];
        if c.is_ascii_whitespace() {
            p += 1;
            continue;
        }
        // Comments: `#` and `//` to the end of the line, `/* ... */`.
        if c == b'#' || (c == b'/' && text.get(p + 1) == Some(&b'/')) {
            while p < n && text[p] != b'\n' {
                p += 1;
            }
            continue;
        }
        if c == b'/' && text.get(p + 1) == Some(&b'*') {
            let end = memfind(&text[p + 2..], b"*/");
            let inner = memfind(&text[p + 2..], b"/*");
            if let Some(j) = inner.filter(|&j| end.is_none_or(|i| j < i)) {
                let q = p + 2 + j;
                return Err(Diag::new(vec![
                    Piece::text("/* ... */ comment contains /*\n"),
                    Piece::Where(sp(p, p + 2)),
                    Piece::Where(sp(q, q + 2)),
                ]));
            }
            match end {
                Some(i) => {
                    p = p + 2 + i + 2;
                    continue;
                }
                None => {
                    return Err(Diag::new(vec![
                        Piece::text("Unterminated /* ... */ comment, starting at\n"),
                        Piece::Where(sp(p, p + 2)),
                    ]));
                }
            }
        }
        // Inline C.
        if c == b'C' && text.get(p + 1) == Some(&b'{') {
            match memfind(&text[p + 2..], b"}C") {
                Some(i) => {
                    let e = p + 2 + i + 2;
                    push(&mut out, Tok::CSrc, p, e, Vec::new());
                    p = e;
                    continue;
                }
                None => {
                    return Err(Diag::new(vec![
                        Piece::text("Unterminated inline C source, starting at\n"),
                        Piece::Where(sp(p, p + 2)),
                    ]));
                }
            }
        }
        // Long strings: {"..."} and """...""".
        if c == b'{' && text.get(p + 1) == Some(&b'"') {
            match memfind(&text[p + 2..], b"\"}") {
                Some(i) => {
                    let e = p + 2 + i + 2;
                    push(&mut out, Tok::CStr, p, e, text[p + 2..p + 2 + i].to_vec());
                    p = e;
                    continue;
                }
                None => {
                    return Err(Diag::new(vec![
                        Piece::text("Unterminated long-string, starting at\n"),
                        Piece::Where(sp(p, p + 2)),
                    ]));
                }
            }
        }
        if text[p..].starts_with(b"\"\"\"") {
            match memfind(&text[p + 3..], b"\"\"\"") {
                Some(i) => {
                    let e = p + 3 + i + 3;
                    push(&mut out, Tok::CStr, p, e, text[p + 3..p + 3 + i].to_vec());
                    p = e;
                    continue;
                }
                None => {
                    return Err(Diag::new(vec![
                        Piece::text("Unterminated long-string, starting at\n"),
                        Piece::Where(sp(p, p + 3)),
                    ]));
                }
            }
        }
        // BLOB literals, `:base64:`, checked as VCC checks them; the
        // places that take one (a backend's `.preamble`) decode the text.
        if c == b':' {
            let Some(r) = blob_end(text, p) else {
                let q = n - (n - (p + 1)) % 4;
                return Err(Diag::new(vec![
                    Piece::text("Missing colon at end of BLOB:\n"),
                    Piece::Where(sp(p, (q + 1).min(n))),
                ]));
            };
            let msg = match text[r] {
                b':' if (r - p) % 4 != 1 => Some("BLOB must have n*4 base64 characters\n"),
                b':' => None,
                b'=' => Some("Wrong padding ('=') in BLOB:\n"),
                _ => Some("Illegal BLOB character:\n"),
            };
            if let Some(msg) = msg {
                return Err(Diag::new(vec![Piece::text(msg), Piece::Where(sp(p, r + 1))]));
            }
            push(&mut out, Tok::CBlob, p, r + 1, Vec::new());
            p = r + 1;
            continue;
        }
        // Operators, longest first.
        if let Some(op) = Op::ALL.iter().find(|o| text[p..].starts_with(o.as_str().as_bytes())) {
            let e = p + op.as_str().len();
            push(&mut out, Tok::Op(*op), p, e, Vec::new());
            p = e;
            continue;
        }
        // Plain strings: one line, no escapes.
        if c == b'"' {
            let mut q = p + 1;
            while q < n && text[q] != b'"' && text[q] != b'\n' {
                q += 1;
            }
            if q >= n || text[q] == b'\n' {
                return Err(Diag::new(vec![
                    Piece::text("Unterminated string, starting at\n"),
                    Piece::Where(sp(p, p + 1)),
                ]));
            }
            push(&mut out, Tok::CStr, p, q + 1, text[p + 1..q].to_vec());
            p = q + 1;
            continue;
        }
        if is_ident1(c) {
            // A dot continues the name only before a letter: VCC reads
            // `req.http.` and `foo.5` as a name, a dot and what follows.
            let mut q = p + 1;
            while q < n && is_ident(text[q]) && (text[q] != b'.' || text.get(q + 1).is_some_and(|&d| is_ident1(d))) {
                q += 1;
            }
            push(&mut out, Tok::Id, p, q, Vec::new());
            p = q;
            continue;
        }
        if c.is_ascii_digit() {
            let mut q = p;
            while q < n && text[q].is_ascii_digit() {
                q += 1;
            }
            if q < n && text[q] == b'.' {
                q += 1;
                while q < n && text[q].is_ascii_digit() {
                    q += 1;
                }
                push(&mut out, Tok::FNum, p, q, Vec::new());
            } else {
                push(&mut out, Tok::CNum, p, q, Vec::new());
            }
            p = q;
            continue;
        }
        return Err(Diag::new(vec![Piece::text("Syntax error at\n"), Piece::Where(sp(p, p + 1))]));
    }
    push(&mut out, Tok::Eoi, n, n, Vec::new());
    Ok(out)
}

/// Where VCC's base64 decoder (`VENC_Decode_Base64`) stops in the BLOB
/// literal whose colon is at `p`: the index of the first byte it does not
/// take, `None` at the end of the input. A `=` too early, or a final
/// character whose unused bits are not zero, stops it there.
fn blob_end(text: &[u8], p: usize) -> Option<usize> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    // The decoder is given whole groups of four from here to the end of
    // the source, and reports reaching their end as `None`.
    let end = text.len() - (text.len() - (p + 1)) % 4;
    let mut q = p + 1;
    while q < end && value(text[q]).is_some() {
        q += 1;
    }
    if q >= end {
        return None;
    }
    if text[q] != b'=' {
        return Some(q);
    }
    // Padding: after two or three characters of a group, and only when the
    // last one has no bits left over.
    let (pad, spare) = match (q - p - 1) % 4 {
        2 => (2, 0x0f),
        3 => (1, 0x03),
        _ => return Some(q),
    };
    if value(text[q - 1]).unwrap_or(0) & spare != 0 {
        return Some(q - 1);
    }
    let mut r = q;
    while r < end && r < q + pad && text[r] == b'=' {
        r += 1;
    }
    (r < end).then_some(r)
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(0, s.as_bytes()).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn identifiers_swallow_dots_and_dashes() {
        let t = lex(0, b"set req.http.X-Foo = 10ms;").unwrap();
        assert_eq!(t[1].tok, Tok::Id);
        assert_eq!(t[1].span.end - t[1].span.start, 14);
        assert_eq!(t[3].tok, Tok::CNum);
        assert_eq!(t[4].tok, Tok::Id);
    }

    #[test]
    fn strings_and_comments() {
        assert_eq!(
            kinds("\"a\" {\"b\nc\"} \"\"\"d\"e\"\"\" # x\n// y\n/* z */"),
            vec![Tok::CStr; 3].into_iter().chain([Tok::Eoi]).collect::<Vec<_>>()
        );
        let t = lex(0, b"{\"x\"y\"}").unwrap();
        assert_eq!(t[0].dec, b"x\"y");
    }

    #[test]
    fn two_char_ops_win() {
        assert_eq!(kinds("a != b"), vec![Tok::Id, Tok::Op(Op::Neq), Tok::Id, Tok::Eoi]);
        assert_eq!(kinds("1.5"), vec![Tok::FNum, Tok::Eoi]);
        assert_eq!(kinds("1."), vec![Tok::FNum, Tok::Eoi]);
    }

    #[test]
    fn errors() {
        assert!(lex(0, b"\"abc\n\"").is_err());
        assert!(lex(0, b"/* x").is_err());
        assert!(lex(0, b"@").is_err());
    }
}
