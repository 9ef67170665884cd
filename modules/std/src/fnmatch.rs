//! fnmatch(3) as glibc does it, for `std.fnmatch`: `*`, `?`, bracket
//! expressions with ranges, negation and character classes, and the flags
//! FNM_PATHNAME, FNM_NOESCAPE and FNM_PERIOD.

/// The flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    /// A `/` is matched only by a `/` in the pattern.
    pub pathname: bool,
    /// A backslash is an ordinary character.
    pub noescape: bool,
    /// A leading `.` (at the start, or after `/` with `pathname`) is
    /// matched only by a `.` in the pattern.
    pub period: bool,
}

/// Whether `subject` matches `pattern`.
pub fn fnmatch(pattern: &[u8], subject: &[u8], f: Flags) -> bool {
    m(pattern, 0, subject, f)
}

fn leading_period(whole: &[u8], at: usize, f: Flags) -> bool {
    f.period && whole.get(at) == Some(&b'.') && (at == 0 || (f.pathname && whole[at - 1] == b'/'))
}

fn m(p: &[u8], mut at: usize, whole: &[u8], f: Flags) -> bool {
    let mut pi = 0;
    while pi < p.len() {
        let s = &whole[at..];
        match p[pi] {
            b'?' => {
                match s.first() {
                    None => return false,
                    Some(b'/') if f.pathname => return false,
                    _ => {}
                }
                if leading_period(whole, at, f) {
                    return false;
                }
                at += 1;
                pi += 1;
            }
            b'*' => {
                while p.get(pi) == Some(&b'*') {
                    pi += 1;
                }
                if leading_period(whole, at, f) {
                    return false;
                }
                let rest = &p[pi..];
                if rest.is_empty() {
                    return !f.pathname || !s.contains(&b'/');
                }
                for i in 0..=s.len() {
                    if m(rest, at + i, whole, f) {
                        return true;
                    }
                    if f.pathname && s.get(i) == Some(&b'/') {
                        return false;
                    }
                }
                return false;
            }
            b'[' => {
                let Some(&c) = s.first() else { return false };
                match bracket(&p[pi + 1..], c, f) {
                    Some((matched, used)) => {
                        if !matched || (f.pathname && c == b'/') || leading_period(whole, at, f) {
                            return false;
                        }
                        pi += 1 + used;
                        at += 1;
                    }
                    None => {
                        if c != b'[' {
                            return false;
                        }
                        pi += 1;
                        at += 1;
                    }
                }
            }
            b'\\' if !f.noescape => {
                let lit = p.get(pi + 1).copied().unwrap_or(b'\\');
                if s.first() != Some(&lit) {
                    return false;
                }
                pi += 2;
                at += 1;
            }
            c => {
                if s.first() != Some(&c) {
                    return false;
                }
                pi += 1;
                at += 1;
            }
        }
    }
    at == whole.len()
}

fn class(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// Matches `c` against the bracket expression starting after `[`:
/// whether it matched and how many pattern bytes the expression used
/// (through `]`); `None` when it is not closed (then `[` is literal).
fn bracket(p: &[u8], c: u8, f: Flags) -> Option<(bool, usize)> {
    let mut i = 0;
    let neg = matches!(p.first(), Some(b'!' | b'^'));
    if neg {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != neg, i + 1));
        }
        first = false;
        if lo == b'[' && p.get(i + 1) == Some(&b':') {
            let end = p[i + 2..].windows(2).position(|w| w == b":]")?;
            let name = &p[i + 2..i + 2 + end];
            matched |= class(name, c)?;
            i += 2 + end + 2;
            continue;
        }
        if lo == b'\\' && !f.noescape {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&h| h != b']') {
            let mut hi = p[i + 1];
            i += 2;
            if hi == b'\\' && !f.noescape {
                hi = *p.get(i)?;
                i += 1;
            }
            matched |= lo <= c && c <= hi;
        } else {
            matched |= lo == c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_glibc() {
        let d = Flags::default();
        let path = Flags { pathname: true, ..d };
        let per = Flags { period: true, ..d };
        let cases: &[(&str, &str, Flags, bool)] = &[
            ("*", "abc", d, true),
            ("a*c", "abbbc", d, true),
            ("a?c", "abc", d, true),
            ("a?c", "ac", d, false),
            ("/a/*", "/a/b/c", d, true),
            ("/a/*", "/a/b/c", path, false),
            ("/a/*/c", "/a/b/c", path, true),
            ("[a-c]x", "bx", d, true),
            ("[!a-c]x", "bx", d, false),
            ("[]]", "]", d, true),
            ("[[:digit:]]*", "7up", d, true),
            ("\\*", "*", d, true),
            ("\\*", "a", d, false),
            ("*", ".hidden", per, false),
            (".*", ".hidden", per, true),
            ("/*", "/.x", Flags { pathname: true, period: true, ..d }, false),
            ("[", "[", d, true),
            ("a/?", "a//", path, false),
        ];
        for (p, s, f, want) in cases {
            assert_eq!(fnmatch(p.as_bytes(), s.as_bytes(), *f), *want, "{p} {s} {f:?}");
        }
    }
}
