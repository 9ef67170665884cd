//! VCL's regular expressions: compiling a pattern as Varnish does, the `~`
//! match and the `regsub()`/`regsuball()` substitution, with Varnish 7.1's
//! semantics down to its handling of empty matches and of backslashes in
//! the replacement.
//!
//! Varnish uses PCRE2 through its `vre.c` wrapper, and so does this module,
//! through the `pcre2` crate. Patterns are compiled with no options (no UTF
//! mode, so `.` matches one byte), JIT-compiled where the platform has a JIT,
//! and matched under Varnish's default limits (the `pcre2_match_limit` and
//! `pcre2_depth_limit` parameters, 10000 and 20). Subjects and replacements
//! are C strings in Varnish, so both end at their first NUL byte here too.

use std::fmt;

use pcre2::bytes::{CaptureLocations, Regex as Pcre2Regex, RegexBuilder};

/// Varnish 7.1's default for the `pcre2_match_limit` parameter.
pub const MATCH_LIMIT: u32 = 10_000;

/// Varnish 7.1's default for the `pcre2_depth_limit` parameter.
pub const DEPTH_LIMIT: u32 = 20;

/// The most capture groups a replacement can name: `\0` to `\9`.
const MAX_GROUPS: usize = 10;

/// The PCRE2 error code for an exceeded match limit (`PCRE2_ERROR_MATCHLIMIT`).
pub const ERROR_MATCHLIMIT: i32 = -47;

/// A compiled VCL regular expression.
///
/// The `pcre2` crate gives no access to a match context's limits, so the
/// limits are set inside the pattern, with the `(*LIMIT_MATCH=10000)` and
/// `(*LIMIT_DEPTH=20)` start-of-pattern settings, which lower PCRE2's own
/// defaults to Varnish's. With JIT (as in Varnish, whose
/// `pcre2_jit_compilation` is on by default) only the match limit applies;
/// the depth limit binds only where no JIT is available. One difference
/// remains: a pattern that itself starts with `(*LIMIT_MATCH=n)` or
/// `(*LIMIT_DEPTH=n)` gets its own `n` here, where Varnish would use the
/// smaller of `n` and its parameter.
///
/// `regsuball()` looks for every match after the first with PCRE2's
/// `PCRE2_NOTEMPTY` option, which the crate cannot pass either, so a second
/// copy of the pattern is compiled with the equivalent `(*NOTEMPTY)` setting.
#[derive(Clone)]
pub struct Regex {
    /// The pattern as written in the VCL.
    pattern: String,
    /// The pattern under Varnish's limits.
    first: Pcre2Regex,
    /// The same, refusing empty matches, for the matches after the first;
    /// compiled on first use, since only `regsuball()` needs it.
    again: std::sync::OnceLock<Pcre2Regex>,
    /// The pattern as a plain string, when it is one: `~` then needs no
    /// PCRE2 at all.
    literal: Option<Literal>,
    /// The number of groups a replacement can insert, counting group 0:
    /// the pattern's capture groups plus one, at most ten.
    groups: usize,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.pattern).finish()
    }
}

/// A pattern that PCRE2 would not compile.
///
/// Its `Display` is the start of what VCC prints: `Regexp compilation
/// error:`, a blank line and PCRE2's message, each ending in a newline.
/// VCC then prints one more newline (a blank line) before quoting the
/// string token, from it back to the token before it, as in
/// `('f.vcl' Line 4 Pos 19) -- (Pos 17)`. VCC does not print PCRE2's
/// offset; it is kept here all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexError {
    message: String,
    offset: usize,
}

impl RegexError {
    /// PCRE2's own message, such as `missing closing parenthesis`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// PCRE2's offset of the error in the pattern, in bytes.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regexp compilation error:\n\n{}\n", self.message)
    }
}

impl std::error::Error for RegexError {}

/// A match that PCRE2 gave up on, such as one that hit the match limit.
///
/// Varnish 7.1 does not treat this as "no match": it fails the VCL
/// transaction (`VRT_fail`), logging a `VCL_Error` whose text differs
/// between the `~` operator ([`MatchError::match_failure`]) and
/// `regsub()`/`regsuball()` ([`MatchError::regsub_failure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchError {
    code: i32,
    message: String,
}

impl MatchError {
    /// PCRE2's negative error code, such as -47 for the match limit.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// PCRE2's message, such as `match limit exceeded`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `VCL_Error` text Varnish logs when a `~` or `!~` match fails,
    /// such as `Regexp matching failed: match limit exceeded`.
    pub fn match_failure(&self) -> String {
        format!("Regexp matching failed: {}", self.message)
    }

    /// The `VCL_Error` text Varnish logs when `regsub()` or `regsuball()`
    /// fails, such as `regsub: Regexp matching returned -47`.
    pub fn regsub_failure(&self) -> String {
        format!("regsub: Regexp matching returned {}", self.code)
    }

    fn from_pcre2(err: &pcre2::Error) -> MatchError {
        let text = err.to_string();
        let message = text.strip_prefix("PCRE2: error matching: ").unwrap_or(&text).to_string();
        MatchError { code: err.code(), message }
    }
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MatchError {}

/// The settings that put a pattern under Varnish's limits.
fn limits_prefix() -> String {
    format!("(*LIMIT_MATCH={MATCH_LIMIT})(*LIMIT_DEPTH={DEPTH_LIMIT})")
}

/// A pattern that is a plain string — perhaps anchored with `^` and `$`,
/// perhaps made caseless with a leading `(?i)` — matched without PCRE2.
/// Most VCL regexes are of this kind (`^/admin`, `gzip`, `(?i)websocket`).
/// A unit test checks this matcher against PCRE2 on the same patterns.
#[derive(Clone, Debug, PartialEq)]
struct Literal {
    text: Vec<u8>,
    start: bool,
    end: bool,
    caseless: bool,
}

impl Literal {
    /// The literal a pattern stands for, if it is one.
    fn of(pattern: &str) -> Option<Literal> {
        let mut p = pattern.as_bytes();
        let caseless = match p.strip_prefix(b"(?i)") {
            Some(rest) => {
                p = rest;
                true
            }
            None => false,
        };
        let start = match p.strip_prefix(b"^") {
            Some(rest) => {
                p = rest;
                true
            }
            None => false,
        };
        let mut text = Vec::with_capacity(p.len());
        let mut end = false;
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                // An escaped punctuation character stands for itself;
                // `\d`, `\w`, `\b` … are classes and assertions.
                b'\\' => {
                    let n = *p.get(i + 1)?;
                    if !n.is_ascii_punctuation() {
                        return None;
                    }
                    text.push(n);
                    i += 2;
                    continue;
                }
                b'$' if i + 1 == p.len() => end = true,
                b'.' | b'^' | b'$' | b'|' | b'?' | b'*' | b'+' | b'(' | b')' | b'[' | b']' | b'{' | b'}' => {
                    return None
                }
                c if !(0x20..0x7f).contains(&c) => return None,
                c => text.push(c),
            }
            i += 1;
        }
        if caseless {
            text.make_ascii_lowercase();
        }
        Some(Literal { text, start, end, caseless })
    }

    fn eq(&self, a: &[u8]) -> bool {
        if self.caseless {
            a.eq_ignore_ascii_case(&self.text)
        } else {
            a == &self.text[..]
        }
    }

    /// Whether the pattern matches `s`, exactly as PCRE2 would: `$` also
    /// matches before a newline that ends the subject.
    fn is_match(&self, s: &[u8]) -> bool {
        let n = self.text.len();
        let at_end = |s: &[u8]| s.len() >= n && self.eq(&s[s.len() - n..]);
        match (self.start, self.end) {
            (true, false) => s.len() >= n && self.eq(&s[..n]),
            (true, true) => self.eq(s) || s.strip_suffix(b"\n").is_some_and(|t| self.eq(t)),
            (false, true) => at_end(s) || s.strip_suffix(b"\n").is_some_and(at_end),
            (false, false) => {
                if n == 0 {
                    true
                } else if self.caseless {
                    s.windows(n).any(|w| self.eq(w))
                } else {
                    memchr::memmem::find(s, &self.text).is_some()
                }
            }
        }
    }
}

/// Compiles `pattern` behind `prefix`, reporting errors against `pattern`.
fn build(prefix: &str, pattern: &str) -> Result<Pcre2Regex, RegexError> {
    let full = format!("{prefix}{pattern}");
    RegexBuilder::new().jit_if_available(true).build(&full).map_err(|err| compile_error(&err, prefix.len()))
}

/// Turns a `pcre2` compile error into VCC's terms, taking away the length
/// of the settings put in front of the pattern from the offset.
fn compile_error(err: &pcre2::Error, prefix_len: usize) -> RegexError {
    let text = err.to_string();
    // The crate's text is "PCRE2: error compiling pattern at offset N: MSG".
    let message = text
        .strip_prefix("PCRE2: error compiling pattern at offset ")
        .and_then(|rest| rest.split_once(": ").map(|(_, msg)| msg))
        .or_else(|| text.strip_prefix("PCRE2: error compiling pattern: "))
        .unwrap_or(&text)
        .to_string();
    RegexError { message, offset: err.offset().unwrap_or(0).saturating_sub(prefix_len) }
}

/// The part of `bytes` before its first NUL, as C sees a string.
fn c_str(bytes: &[u8]) -> &[u8] {
    match memchr::memchr(0, bytes) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

impl Regex {
    /// Compiles `pattern` as VCC and Varnish do.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let limits = limits_prefix();
        let first = build(&limits, pattern)?;
        let groups = first.captures_len().min(MAX_GROUPS);
        let literal = Literal::of(pattern);
        Ok(Regex { pattern: pattern.to_string(), first, again: std::sync::OnceLock::new(), literal, groups })
    }

    /// The pattern as written in the VCL.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The `~` operator: whether the pattern matches anywhere in `subject`.
    ///
    /// An error is a match PCRE2 gave up on; Varnish fails the transaction
    /// then (see [`MatchError`]).
    pub fn is_match(&self, subject: &[u8]) -> Result<bool, MatchError> {
        if let Some(lit) = &self.literal {
            return Ok(lit.is_match(c_str(subject)));
        }
        self.first.is_match(c_str(subject)).map_err(|err| MatchError::from_pcre2(&err))
    }

    /// `regsub()` (`all` false) and `regsuball()` (`all` true), returning
    /// the subject unchanged when the pattern does not match.
    ///
    /// When matching fails (see [`MatchError`]) this returns the subject
    /// unchanged, as Varnish's `VRT_regsub` does; Varnish also fails the
    /// transaction then, so a caller that must do the same should use
    /// [`Regex::try_sub`].
    pub fn sub(&self, subject: &[u8], replacement: &[u8], all: bool) -> Vec<u8> {
        self.try_sub(subject, replacement, all).unwrap_or_else(|_| c_str(subject).to_vec())
    }

    /// [`Regex::sub`], reporting a failed match.
    ///
    /// The first match is looked for from the start of the subject. For
    /// `regsuball()` each further match is looked for from the end of the
    /// previous one with empty matches refused (`PCRE2_NOTEMPTY`), and the
    /// search does not move past an empty match: so `regsuball("abc",
    /// "x*", "-")` is `-abc`, with one replacement at the start only.
    ///
    /// In the replacement `\0` to `\9` insert that capture group (nothing
    /// if it did not take part in the match or the pattern has no such
    /// group), a backslash before any other character inserts that
    /// character, and a backslash at the very end is kept.
    pub fn try_sub(&self, subject: &[u8], replacement: &[u8], all: bool) -> Result<Vec<u8>, MatchError> {
        let subject = c_str(subject);
        let replacement = c_str(replacement);
        let pcre = |err: pcre2::Error| MatchError::from_pcre2(&err);

        // Most regsub() calls in real VCL do not match (clean-ups of
        // optional parts); finding that out needs no capture storage.
        if !self.is_match(subject)? {
            return Ok(subject.to_vec());
        }
        let mut locs = self.first.capture_locations();
        if self.first.captures_read(&mut locs, subject).map_err(pcre)?.is_none() {
            return Ok(subject.to_vec());
        }
        let mut out = Vec::with_capacity(subject.len() + replacement.len());
        let mut offset = 0;
        let mut again: Option<CaptureLocations> = None;
        loop {
            let current = again.as_ref().unwrap_or(&locs);
            let (start, end) = current.get(0).unwrap_or((offset, offset));
            if start > offset {
                out.extend_from_slice(&subject[offset..start]);
            }
            self.expand(replacement, subject, current, &mut out);
            let moved = end > offset;
            offset = offset.max(end);
            // Every match after the first is non-empty and so moves on; the
            // test of `moved` only makes sure that the loop ends.
            if !all || (again.is_some() && !moved) {
                break;
            }
            let again_re = self.again.get_or_init(|| {
                build(&format!("(*NOTEMPTY){}", limits_prefix()), &self.pattern)
                    .expect("the pattern compiled once already")
            });
            let next = again.get_or_insert_with(|| again_re.capture_locations());
            if again_re.captures_read_at(next, subject, offset).map_err(pcre)?.is_none() {
                break;
            }
        }
        out.extend_from_slice(&subject[offset..]);
        Ok(out)
    }

    /// Appends `replacement` to `out`, with the escapes expanded against
    /// the match in `locs`, as Varnish's `VRE_sub` does.
    fn expand(&self, replacement: &[u8], subject: &[u8], locs: &CaptureLocations, out: &mut Vec<u8>) {
        // `s` is the start of the text not yet copied; `e` walks the string.
        let mut s = 0;
        let mut e = 0;
        while e < replacement.len() {
            if replacement[e] != b'\\' || e + 1 == replacement.len() {
                e += 1;
                continue;
            }
            out.extend_from_slice(&replacement[s..e]);
            e += 1;
            s = e;
            let c = replacement[e];
            if c.is_ascii_digit() {
                s += 1;
                let group = usize::from(c - b'0');
                if group < self.groups {
                    if let Some(text) = locs.get(group).and_then(|(from, to)| subject.get(from..to)) {
                        out.extend_from_slice(text);
                    }
                }
            }
            e += 1;
        }
        out.extend_from_slice(&replacement[s..e]);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn literal_fast_path_agrees_with_pcre2() {
        let patterns = [
            "^/admin",
            "gzip",
            "(?i)websocket",
            "^/a$",
            "\\.js$",
            "x",
            "",
            "^",
            "$",
            "(?i)^/API/",
            "a\\?b",
            "^/static/",
            "private",
            "(?i)no-store$",
            "^$",
            "/$",
            "(?i)GZip",
        ];
        let subjects: [&[u8]; 16] = [
            b"",
            b"/",
            b"/admin",
            b"/admin/x",
            b"/ADMIN",
            b"gzip, deflate",
            b"GZIP",
            b"Upgrade: WebSocket",
            b"/a",
            b"/a\n",
            b"/a\n\n",
            b"app.js",
            b"app.js\n",
            b"a?b",
            b"ab",
            b"no-STORE",
        ];
        for p in patterns {
            let re = Regex::new(p).unwrap();
            assert!(re.literal.is_some(), "{p} should be a literal");
            for s in subjects {
                let pcre = re.first.is_match(s).unwrap();
                assert_eq!(re.is_match(s).unwrap(), pcre, "pattern {p:?} subject {:?}", String::from_utf8_lossy(s));
            }
        }
        for p in ["^/(a|b)", "\\d+", "a.b", "a*", "[x]", "a{2}", "\\bword"] {
            assert!(Regex::new(p).unwrap().literal.is_none(), "{p} is not a literal");
        }
    }
    use super::*;

    fn sub(subject: &str, pattern: &str, replacement: &str, all: bool) -> String {
        let re = Regex::new(pattern).unwrap();
        String::from_utf8(re.sub(subject.as_bytes(), replacement.as_bytes(), all)).unwrap()
    }

    /// `regsub()` and `regsuball()` results, read off varnishd 7.1.1
    /// (`set resp.http.x = regsub(...)` in `vcl_synth`). VCL strings have
    /// no escapes, so each backslash below is one backslash in the VCL.
    #[test]
    fn substitution_matches_varnishd() {
        let cases: &[(&str, &str, &str, bool, &str)] = &[
            ("abc", "x*", "-", true, "-abc"),
            ("axb", "x*", "-", true, "-a-b"),
            ("abc", "", "-", true, "-abc"),
            ("abc", "", "-", false, "-abc"),
            ("aaa", "", "-", true, "-aaa"),
            ("abc", "^", "-", true, "-abc"),
            ("abc", "^", "-", false, "-abc"),
            ("abc", "$", "-", true, "abc-"),
            ("aaa", "a", "b", true, "bbb"),
            ("aaa", "a*", r"<\0>", true, "<aaa>"),
            ("baaac", "a*", r"<\0>", true, "<>b<aaa>c"),
            ("hello world", r"(\w+) (\w+)", r"\2 \1", false, "world hello"),
            ("abc", "(x)?b", r"[\1]", false, "a[]c"),
            ("abc", "b", r"\5", false, "ac"),
            ("abc", "b", r"\\", false, r"a\c"),
            ("abc", "b", r"x\", false, r"ax\c"),
            ("abc", "b", r"\", false, r"a\c"),
            ("abc", "b", r"\n\q", false, "anqc"),
            ("x", "x", r"\a\b\c", false, "abc"),
            ("abc", "b", r"\10", false, "a0c"),
            ("abc", "b", r"a\\\b", false, r"aa\bc"),
            ("abc", "b", r"\0\0", false, "abbc"),
            ("a.b.c", r"\.", "/", true, "a/b/c"),
            ("abab", "(?=b)", "-", true, "a-bab"),
            ("xaxbx", "x|", "-", true, "-a-b-"),
            ("aaa", "a|", "-", true, "---"),
            ("abcbc", "c|", "-", true, "-ab-b-"),
            ("abc def", r"\b", "|", true, "|abc def"),
            ("b", "(a)|b", r"[\1]", false, "[]"),
            ("ab", "(a)|b", r"[\1]", true, "[a][]"),
            ("abab", "(a)|(b)", r"[\1\2]", true, "[a][b][a][b]"),
            ("abc", ".", r"\0\0", true, "aabbcc"),
            ("", "x*", "-", true, "-"),
            ("", "x*", "-", false, "-"),
            ("", "x", "-", false, ""),
            ("aab", r"\Ga", "x", true, "xxb"),
            ("aaa", "(?<=a)a", "b", true, "abb"),
            ("aaa", "^a", "b", true, "baa"),
            (r"a\nb", "^", "-", true, r"-a\nb"),
            (r"a\nb", ".", "x", true, "xxxx"),
            // A real newline (a `{"..."}` string in the VCL): `^` and `$`
            // are not multi-line, and `.` does not match it.
            ("a\nb", "^", "-", true, "-a\nb"),
            ("a\nb", ".", "x", true, "x\nx"),
            ("a\nb", "$", "-", true, "a\nb-"),
            ("abcabc", "(b)(c)", r"\2\1\3", true, "acbacb"),
            ("abc", "(((((((((b)))))))))", r"\9\8", false, "abbc"),
            ("abcdefghijk", "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)", r"\9\0", false, "iabcdefghijk"),
            ("abc", "(?<x>b)", r"[\1]", false, "a[b]c"),
            ("a-b-c", "-", "", true, "abc"),
            ("aXbXc", "x", "_", true, "aXbXc"),
            ("aXbXc", "(?i)x", "_", true, "a_b_c"),
            ("ab", "a|b|", r"<\0>", true, "<a><b>"),
            ("ba", "a|b|", r"<\0>", true, "<b><a>"),
            ("a", "a*?", "-", true, "--"),
            ("ab", "a*?", "-", true, "--b"),
            ("abc", "(?=c)|b", "-", true, "a-c"),
            ("abc", "b|(?=c)", "-", true, "a-c"),
            ("a/b//c", "/+", "/", true, "a/b/c"),
            ("h\u{e9}llo", "\u{e9}", "e", false, "hello"),
            // There is no UTF mode: `.` is one byte, and "é" is two.
            ("h\u{e9}llo", "h.l", "X", false, "h\u{e9}llo"),
        ];
        for &(subject, pattern, replacement, all, want) in cases {
            assert_eq!(
                sub(subject, pattern, replacement, all),
                want,
                "regsub{}({subject:?}, {pattern:?}, {replacement:?})",
                if all { "all" } else { "" }
            );
        }
    }

    /// Compile errors as `varnishd -C` 7.1.1 prints them for
    /// `if (req.url ~ "PATTERN") {}`.
    #[test]
    fn compile_errors_match_vcc() {
        let cases: &[(&str, &str)] = &[
            ("(", "missing closing parenthesis"),
            ("abcdefghij(", "missing closing parenthesis"),
            ("a)", "unmatched closing parenthesis"),
            ("[a", "missing terminating ] for character class"),
            ("a{2,1}", "numbers out of order in {} quantifier"),
            ("*", "quantifier does not follow a repeatable item"),
            ("ab(?<n", "syntax error in subpattern name (missing terminator?)"),
            ("(?P<1>x)", "subpattern name must start with a non-digit"),
        ];
        for &(pattern, message) in cases {
            let err = Regex::new(pattern).unwrap_err();
            assert_eq!(err.message(), message, "{pattern:?}");
            assert_eq!(err.to_string(), format!("Regexp compilation error:\n\n{message}\n"));
        }
        assert_eq!(
            Regex::new("(").unwrap_err().to_string(),
            "Regexp compilation error:\n\nmissing closing parenthesis\n"
        );
    }

    /// The offset is PCRE2's, counted in the pattern as written.
    #[test]
    fn compile_error_offsets_ignore_the_limits_prefix() {
        for (pattern, offset) in [("(", 1), ("a)", 1), ("abcdefghij(", 11), ("[a", 2)] {
            let plain = pcre2::bytes::Regex::new(pattern).unwrap_err();
            assert_eq!(plain.offset(), Some(offset), "{pattern:?}");
            assert_eq!(Regex::new(pattern).unwrap_err().offset(), offset, "{pattern:?}");
        }
    }

    /// The limits prefix must not change which patterns compile, nor what
    /// PCRE2 says about those that do not.
    #[test]
    fn limits_prefix_keeps_messages() {
        for pattern in [
            "(*",
            "(*FOO)",
            "(*UTF)a",
            "(*CR)a",
            "\\",
            "a**",
            "(?<=a+)b",
            "\\k<x>",
            "(?",
            "x{99999999}",
            "[z-a]",
            "(*NOTEMPTY)x",
            "(*LIMIT_MATCH=5)a",
        ] {
            let plain = pcre2::bytes::RegexBuilder::new().build(pattern);
            let ours = Regex::new(pattern);
            match (plain, ours) {
                (Ok(_), Ok(_)) => {}
                (Err(p), Err(o)) => {
                    assert_eq!(compile_error(&p, 0).message(), o.message(), "{pattern:?}");
                    assert_eq!(p.offset(), Some(o.offset()), "{pattern:?}");
                }
                (p, o) => panic!("{pattern:?}: {:?} vs {:?}", p.is_ok(), o.is_ok()),
            }
        }
    }

    #[test]
    fn is_match_is_bytewise_and_case_sensitive() {
        let re = Regex::new("^/a.c$").unwrap();
        assert_eq!(re.is_match(b"/abc"), Ok(true));
        assert_eq!(re.is_match(b"/ABC"), Ok(false));
        assert_eq!(re.is_match(b"/a\xffc"), Ok(true));
        assert_eq!(re.is_match(b"/a\xc3\xa9c"), Ok(false));
        assert_eq!(Regex::new("").unwrap().is_match(b""), Ok(true));
        assert_eq!(re.as_str(), "^/a.c$");
    }

    /// Subjects are C strings in Varnish: they end at the first NUL.
    #[test]
    fn subjects_end_at_nul() {
        let re = Regex::new("b").unwrap();
        assert_eq!(re.is_match(b"a\0b"), Ok(false));
        assert_eq!(re.sub(b"abc\0b", b"x\0y", true), b"axc");
    }

    /// varnishd 7.1.1 fails `regsub(S, "(a+)+$", "x")` with
    /// `regsub: Regexp matching returned -47` when S is 13 or more `a`s and
    /// a `!`, and returns S for 12; `~` fails with `Regexp matching failed:
    /// match limit exceeded`.
    #[test]
    fn match_limit_is_varnishs() {
        let re = Regex::new("(a+)+$").unwrap();
        let subject = |n: usize| format!("{}!", "a".repeat(n)).into_bytes();
        assert_eq!(re.try_sub(&subject(12), b"x", false), Ok(subject(12)));
        for n in [13, 14, 20, 36] {
            let err = re.try_sub(&subject(n), b"x", false).unwrap_err();
            assert_eq!(err.code(), ERROR_MATCHLIMIT);
            assert_eq!(err.regsub_failure(), "regsub: Regexp matching returned -47");
            assert_eq!(re.sub(&subject(n), b"x", true), subject(n));
        }
        let err = re.is_match(&subject(24)).unwrap_err();
        assert_eq!(err.message(), "match limit exceeded");
        assert_eq!(err.match_failure(), "Regexp matching failed: match limit exceeded");
        assert_eq!(re.is_match(b"aaaaaaaaaa"), Ok(true));
        assert_eq!(re.is_match(b"aaaaaaaaaa!"), Ok(false));
        // A failure after the first match of regsuball() fails it all.
        let re = Regex::new("b|(a+)+$").unwrap();
        let subject = b"b aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!";
        assert!(re.try_sub(subject, b"x", true).is_err());
        assert_eq!(re.try_sub(subject, b"x", false).unwrap(), b"x aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
    }
}
