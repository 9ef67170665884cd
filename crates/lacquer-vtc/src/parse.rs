//! VTC syntax: a script is a sequence of commands, one per line, whose
//! words are separated by spaces; `"..."` is a word with backslash escapes,
//! `{...}` a word with nested braces that may span lines, and `\` at the
//! end of a line continues the command. This is `vtc.c`'s `parse_string`.

/// One top-level VTC command: its tokens (quotes and braces removed,
/// backslash escapes in "..." processed, macros not yet expanded) and the
/// 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The line the command starts on, 1-based.
    pub line: usize,
    /// The words, quotes and braces removed.
    pub tokens: Vec<String>,
}

/// VAV_BackSlash: decode the escape starting at `s[0] == '\\'`; returns the
/// decoded byte and the number of input bytes used.
pub fn backslash(s: &[u8]) -> (u8, usize) {
    debug_assert_eq!(s[0], b'\\');
    match s.get(1).copied() {
        Some(b'\\') => (b'\\', 2),
        Some(b'"') => (b'"', 2),
        Some(b'n') => (b'\n', 2),
        Some(b'r') => (b'\r', 2),
        Some(b't') => (b'\t', 2),
        Some(b'x') => {
            let mut v: u32 = 0;
            let mut n = 2;
            while n < 4 {
                match s.get(n).and_then(|c| (*c as char).to_digit(16)) {
                    Some(d) => v = v * 16 + d,
                    None => break,
                }
                n += 1;
            }
            if n == 2 {
                (b'x', 2)
            } else {
                (v as u8, n)
            }
        }
        Some(b'0'..=b'7') => {
            let mut v: u32 = 0;
            let mut n = 1;
            while n < 4 {
                match s.get(n) {
                    Some(c @ b'0'..=b'7') => v = v * 8 + u32::from(c - b'0'),
                    _ => break,
                }
                n += 1;
            }
            (v as u8, n)
        }
        Some(c) => (c, 2),
        None => (b'\\', 1),
    }
}

/// Split a whole .vtc file into top-level commands, the way parse_string
/// does: a command starts at the first non-space of a line, `#` there starts
/// a comment line, tokens are whitespace-separated, `"..."` has backslash
/// escapes, `{...}` nests braces (and may span lines), `\` + newline between
/// tokens continues the command, and a newline outside a token ends it.
pub fn tokenize(text: &str) -> Result<Vec<Command>, String> {
    let b = text.as_bytes();
    let mut cmds = Vec::new();
    let mut p = 0usize;
    let mut line = 1usize;
    while p < b.len() {
        let c = b[p];
        if c == b'\n' {
            line += 1;
            p += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            p += 1;
            continue;
        }
        if c == b'#' {
            while p < b.len() && b[p] != b'\n' {
                p += 1;
            }
            continue;
        }
        let start_line = line;
        let mut tokens = Vec::new();
        while p < b.len() {
            let c = b[p];
            if c == b'\n' {
                break;
            }
            if c.is_ascii_whitespace() {
                p += 1;
                continue;
            }
            if c == b'\\' && b.get(p + 1) == Some(&b'\n') {
                p += 2;
                line += 1;
                continue;
            }
            if c == b'"' {
                p += 1;
                let mut tok = Vec::new();
                loop {
                    match b.get(p) {
                        None => break,
                        Some(b'"') => {
                            p += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let (v, n) = backslash(&b[p..]);
                            tok.push(v);
                            p += n;
                        }
                        // A macro is taken whole, quotes in its arguments
                        // included: `"x${string,repeat,3," "}y"`.
                        Some(b'$') if b.get(p + 1) == Some(&b'{') => {
                            match b[p..].iter().position(|c| matches!(c, b'}' | b'\n')) {
                                Some(n) if b[p + n] == b'}' => {
                                    tok.extend_from_slice(&b[p..=p + n]);
                                    p += n + 1;
                                }
                                _ => {
                                    tok.push(b'$');
                                    p += 1;
                                }
                            }
                        }
                        Some(b'\n') => {
                            return Err(format!("line {line}: unterminated quoted string"));
                        }
                        Some(&c) => {
                            tok.push(c);
                            p += 1;
                        }
                    }
                }
                tokens.push(String::from_utf8_lossy(&tok).into_owned());
            } else if c == b'{' {
                let begin = p + 1;
                let mut depth = 0usize;
                loop {
                    match b.get(p) {
                        None => {
                            return Err(format!("line {start_line}: unbalanced braces"));
                        }
                        Some(b'{') => depth += 1,
                        Some(b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(b'\n') => line += 1,
                        Some(_) => {}
                    }
                    p += 1;
                }
                tokens.push(String::from_utf8_lossy(&b[begin..p]).into_owned());
                p += 1;
            } else {
                let begin = p;
                while p < b.len() && !b[p].is_ascii_whitespace() {
                    p += 1;
                }
                tokens.push(String::from_utf8_lossy(&b[begin..p]).into_owned());
            }
        }
        cmds.push(Command { line: start_line, tokens });
    }
    Ok(cmds)
}

/// varnishtest's `macro_expand`: replaces every `${name}` (up to the first
/// `}`) by what `value` says; an unterminated `${` is kept as it is.
pub fn expand_macros<E>(text: &str, value: impl Fn(&str) -> Result<String, E>) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        out.push_str(&value(&after[..j])?);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The commands of varnishtest's HTTP/2 session language (`vtc_http2.c`):
/// a client or server spec using any of them speaks HTTP/2.
const H2_COMMANDS: &[&str] = &[
    "txpri",
    "rxpri",
    "stream",
    "settings",
    "txsettings",
    "rxsettings",
    "txping",
    "rxping",
    "txprio",
    "rxprio",
    "txrst",
    "rxrst",
    "txgoaway",
    "rxgoaway",
    "txwinup",
    "rxwinup",
    "txdata",
    "rxdata",
    "txcont",
    "rxcont",
    "txpush",
    "rxpush",
    "rxhdrs",
    "rxframe",
    "sendhex_h2",
];

/// The first HTTP/2-only command in the `server` and `client` specs of a
/// script, if any: such a script is skipped ("h2 not supported") before it
/// runs, since Lacquer does not speak HTTP/2 yet.
pub fn h2_command(cmds: &[Command]) -> Option<String> {
    fn in_spec(spec: &str, depth: usize) -> Option<String> {
        let cmds = tokenize(spec).ok()?;
        for c in cmds {
            let first = c.tokens.first()?.as_str();
            if H2_COMMANDS.contains(&first) {
                return Some(first.to_string());
            }
            if first == "expect" && c.tokens.get(1).is_some_and(|l| l.starts_with("h2.") || l.starts_with("stream.")) {
                return Some(format!("expect {}", c.tokens[1]));
            }
            // `loop N {spec}` nests a spec.
            if depth < 4 {
                for t in &c.tokens[1..] {
                    if t.contains('\n') {
                        if let Some(h) = in_spec(t, depth + 1) {
                            return Some(h);
                        }
                    }
                }
            }
        }
        None
    }
    cmds.iter()
        .filter(|c| matches!(c.tokens.first().map(String::as_str), Some("server" | "client")))
        .flat_map(|c| c.tokens.iter().skip(2).filter(|t| !t.starts_with('-')))
        .find_map(|spec| in_spec(spec, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_words_quotes_and_braces() {
        let c =
            tokenize("varnishtest \"a \\\"b\\\"\"\n# comment\nvarnish v1 -vcl {\n\tsub vcl_recv { }\n} \\\n  -start\n")
                .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].tokens, ["varnishtest", "a \"b\""]);
        assert_eq!(c[1].line, 3);
        assert_eq!(c[1].tokens, ["varnish", "v1", "-vcl", "\n\tsub vcl_recv { }\n", "-start"]);
    }

    #[test]
    fn macros_expand() {
        let v = |n: &str| if n == "a" { Ok("1".to_string()) } else { Err(n.to_string()) };
        assert_eq!(expand_macros("x${a}y${a}", v), Ok("x1y1".into()));
        assert_eq!(expand_macros("x${b}", v), Err("b".into()));
        assert_eq!(expand_macros("x${a", v), Ok("x${a".into()));
        let quoted = tokenize("send \"a${string,repeat,2,\" \"}b\\r\"\n").unwrap();
        assert_eq!(quoted[0].tokens, ["send", "a${string,repeat,2,\" \"}b\r"]);
    }

    #[test]
    fn h2_specs_are_found() {
        let h2 = tokenize("server s1 {\n\tstream 1 {\n\t\trxreq\n\t} -run\n} -start\n").unwrap();
        assert_eq!(h2_command(&h2).as_deref(), Some("stream"));
        let h2 = tokenize("client c1 -connect ${v1_sock} {\n\ttxpri\n} -run\n").unwrap();
        assert_eq!(h2_command(&h2).as_deref(), Some("txpri"));
        let h2 = tokenize("client c1 {\n\tloop 2 {\n\t\texpect h2.state == open\n\t}\n} -run\n").unwrap();
        assert_eq!(h2_command(&h2).as_deref(), Some("expect h2.state"));
        let h1 = tokenize("server s1 {\n\trxreq\n\ttxresp -hdr \"stream: 1\"\n} -start\nshell {stream}\n").unwrap();
        assert_eq!(h2_command(&h1), None);
    }

    #[test]
    fn unbalanced_input_is_an_error() {
        assert!(tokenize("varnish v1 -vcl {").is_err());
        assert!(tokenize("x \"abc\ny\"").is_err());
    }
}
