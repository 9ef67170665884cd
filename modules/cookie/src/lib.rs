//! Varnish 7.1's vmod_cookie for Lacquer: the `Cookie` request header as
//! a list of name–value pairs that VCL can read, filter and rewrite,
//! written with `lacquer-module` the way an outside author would.
//!
//! A typical use reads the header in `vcl_recv`, keeps only the cookies
//! the backend needs, and writes the header back:
//!
//! ```vcl
//! import cookie;
//! sub vcl_recv {
//!     cookie.parse(req.http.cookie);
//!     cookie.keep("SESSIONID,PHPSESSID");
//!     set req.http.cookie = cookie.get_string();
//! }
//! ```
//!
//! The list lives in the task's private state (`PRIV_TASK`): one per
//! client request and one per backend fetch, gone when the task ends.
//! Everything follows varnishd's code, quirks included: `parse` splits
//! at the first `=` after a name even past a `;`, an empty name or value
//! is never stored, a name set twice keeps its first place with the new
//! value, and `get_string` writes `name=value;` pairs joined by a space.
//! The `*_re` functions take a REGEX (a string literal the VCL compiler
//! checks), compiled with PCRE2 once per call site, and matched as
//! varnishd matches (`VRT_re_match`) under its default limits; a match
//! that hits the limit fails the task.
//!
//! Left out: the `Debug` log records varnishd writes (`cookie: parsed 2
//! cookies.` …), since the host has no way yet for a module to log under
//! a tag of its choice within the transaction, and varnishd's
//! workspace-overflow errors (Lacquer's strings are not held in a
//! fixed-size workspace).

#[doc(hidden)]
pub use lacquer_module::http_date;

/// The cookies of one task, in the order first set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Jar {
    list: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Whether `c` is white space to C's `isspace()`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

impl Jar {
    /// Reads a `Cookie` header, replacing what the jar held (unless the
    /// header is empty, which leaves the jar alone). Returns how many
    /// pairs were read, as varnishd counts them (empty ones included).
    pub fn parse(&mut self, header: &[u8]) -> usize {
        if header.is_empty() {
            return 0;
        }
        self.list.clear();
        let mut n = 0;
        let mut p = 0;
        while p < header.len() {
            while p < header.len() && is_space(header[p]) {
                p += 1;
            }
            let Some(eq) = header[p..].iter().position(|&c| c == b'=') else { break };
            let name = &header[p..p + eq];
            p += eq + 1;
            let end = header[p..].iter().position(|&c| c == b';').map_or(header.len(), |i| p + i);
            self.set(name, &header[p..end]);
            n += 1;
            if end == header.len() {
                break;
            }
            p = end + 1;
        }
        n
    }

    /// Sets a cookie: a new one goes last, a known one keeps its place. An
    /// empty name or value is ignored.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        if name.is_empty() || value.is_empty() {
            return;
        }
        match self.list.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.list.push((name.to_vec(), value.to_vec())),
        }
    }

    /// A cookie's value.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Removes a cookie.
    pub fn delete(&mut self, name: &[u8]) {
        if let Some(i) = self.list.iter().position(|(n, _)| n == name) {
            self.list.remove(i);
        }
    }

    /// Empties the jar.
    pub fn clean(&mut self) {
        self.list.clear();
    }

    /// Keeps the cookies named in the comma-separated `names` (`keep`
    /// true), or removes them (`keep` false). Names are taken as written
    /// between commas, after leading white space; empty ones are skipped.
    pub fn filter_names(&mut self, names: &[u8], keep: bool) {
        let mut wanted: Vec<&[u8]> = Vec::new();
        let mut p = 0;
        while p < names.len() {
            while p < names.len() && is_space(names[p]) {
                p += 1;
            }
            if p == names.len() {
                break;
            }
            let end = names[p..].iter().position(|&c| c == b',').map_or(names.len(), |i| p + i);
            if end == p {
                p += 1;
                continue;
            }
            wanted.push(&names[p..end]);
            p = end;
            if p < names.len() {
                p += 1;
            }
        }
        self.list.retain(|(n, _)| wanted.contains(&n.as_slice()) == keep);
    }

    /// Keeps (`keep` true) or removes the cookies whose name `matches`;
    /// stops at the first error `matches` returns.
    pub fn filter_by<E>(&mut self, keep: bool, mut matches: impl FnMut(&[u8]) -> Result<bool, E>) -> Result<(), E> {
        let mut out = Vec::with_capacity(self.list.len());
        let mut result = Ok(());
        for (n, v) in self.list.drain(..) {
            if result.is_ok() {
                match matches(&n) {
                    Ok(m) if m != keep => continue,
                    Ok(_) => {}
                    Err(e) => result = Err(e),
                }
            }
            out.push((n, v));
        }
        self.list = out;
        result
    }

    /// The value of the first cookie whose name `matches`.
    pub fn find_by<E>(&self, mut matches: impl FnMut(&[u8]) -> Result<bool, E>) -> Result<Option<&[u8]>, E> {
        for (n, v) in &self.list {
            if matches(n)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The jar as a `Cookie` header: `a=1; b=2;`, or empty.
    pub fn to_header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (n, v)) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(n);
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(b';');
        }
        out
    }
}

/// A REGEX compiled as varnishd compiles it for `VRT_re_match`: no
/// options, JIT where available, and varnishd's default match limits
/// (`pcre2_match_limit` 10000, `pcre2_depth_limit` 20), set with PCRE2's
/// start-of-pattern settings since the `pcre2` crate has no match context.
pub struct CompiledRe(pcre2::bytes::Regex);

impl CompiledRe {
    /// Compiles `pattern`; the VCL compiler has already checked it.
    pub fn new(pattern: &[u8]) -> Result<CompiledRe, String> {
        let text = format!("(*LIMIT_MATCH=10000)(*LIMIT_DEPTH=20){}", String::from_utf8_lossy(pattern));
        pcre2::bytes::RegexBuilder::new()
            .jit_if_available(true)
            .build(&text)
            .map(CompiledRe)
            .map_err(|e| format!("Regexp compilation error: {e}"))
    }

    /// Whether the pattern matches in `subject`; an error is a match
    /// PCRE2 gave up on, in varnishd's words.
    pub fn is_match(&self, subject: &[u8]) -> Result<bool, String> {
        self.0.is_match(subject).map_err(|e| format!("Regexp matching returned {}", e.code()))
    }
}

#[lacquer_module::module(name = "cookie")]
pub mod vmod {
    //! Varnish Cookie Module: handle the `Cookie` request header as a list
    //! of cookies, one list per task.

    use lacquer_module::{Failure, NullStr, PrivCall, PrivTask, Regex, Time};

    use crate::{CompiledRe, Jar};

    fn compiled<'a>(re: Regex, cache: &'a PrivCall<Result<CompiledRe, String>>) -> Result<&'a CompiledRe, Failure> {
        cache.get_or_init(|| CompiledRe::new(re.0))?.as_ref().map_err(|e| Failure(e.clone()))
    }

    fn check(cache: &CompiledRe) -> impl FnMut(&[u8]) -> Result<bool, Failure> + '_ {
        move |name| cache.is_match(name).map_err(Failure)
    }

    /// Empties the list of cookies.
    pub fn clean(mut jar: PrivTask<Jar>) {
        jar.get_or_insert_with(Jar::default).clean();
    }

    /// Removes the cookie named *cookiename*, if there is one.
    pub fn delete(mut jar: PrivTask<Jar>, cookiename: &[u8]) {
        jar.get_or_insert_with(Jar::default).delete(cookiename);
    }

    /// Removes every cookie named in the comma-separated *filterstring*.
    pub fn filter(mut jar: PrivTask<Jar>, filterstring: &[u8]) {
        jar.get_or_insert_with(Jar::default).filter_names(filterstring, false);
    }

    /// Removes every cookie whose name matches *expression*.
    pub fn filter_re(
        mut jar: PrivTask<Jar>,
        cache: PrivCall<Result<CompiledRe, String>>,
        expression: Regex,
    ) -> Result<(), Failure> {
        let re = compiled(expression, &cache)?;
        jar.get_or_insert_with(Jar::default).filter_by(false, check(re))
    }

    /// Keeps only the cookies named in the comma-separated *filterstring*.
    pub fn keep(mut jar: PrivTask<Jar>, filterstring: &[u8]) {
        jar.get_or_insert_with(Jar::default).filter_names(filterstring, true);
    }

    /// Keeps only the cookies whose name matches *expression*.
    pub fn keep_re(
        mut jar: PrivTask<Jar>,
        cache: PrivCall<Result<CompiledRe, String>>,
        expression: Regex,
    ) -> Result<(), Failure> {
        let re = compiled(expression, &cache)?;
        jar.get_or_insert_with(Jar::default).filter_by(true, check(re))
    }

    /// Returns *now* plus *timedelta* as an HTTP date (RFC 1123), as used
    /// in the `Expires` attribute of `Set-Cookie`.
    pub fn format_date(now: Time, timedelta: lacquer_module::Duration) -> Result<String, Failure> {
        lacquer_module::http_date(now.0 + timedelta.0).ok_or_else(|| Failure("Unformatable VCL_TIME".into()))
    }

    /// The same as `format_date` (its older name).
    pub fn format_rfc1123(now: Time, timedelta: lacquer_module::Duration) -> Result<String, Failure> {
        format_date(now, timedelta)
    }

    /// Returns the value of the cookie named *cookiename*, or NULL.
    pub fn get(jar: PrivTask<Jar>, cookiename: &[u8]) -> Option<Vec<u8>> {
        jar.get()?.get(cookiename).map(<[u8]>::to_vec)
    }

    /// Returns the value of the first cookie whose name matches
    /// *expression*, or NULL.
    pub fn get_re(
        jar: PrivTask<Jar>,
        cache: PrivCall<Result<CompiledRe, String>>,
        expression: Regex,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let re = compiled(expression, &cache)?;
        match jar.get() {
            Some(jar) => Ok(jar.find_by(check(re))?.map(<[u8]>::to_vec)),
            None => Ok(None),
        }
    }

    /// Returns the cookies as a `Cookie` header value (`a=1; b=2;`).
    pub fn get_string(jar: PrivTask<Jar>) -> Vec<u8> {
        jar.get().map(Jar::to_header).unwrap_or_default()
    }

    /// Whether there is a cookie named *cookiename*.
    pub fn isset(jar: PrivTask<Jar>, cookiename: &[u8]) -> bool {
        !cookiename.is_empty() && jar.get().and_then(|j| j.get(cookiename)).is_some()
    }

    /// Reads the cookies from *cookieheader* (usually `req.http.cookie`),
    /// replacing the list; an empty or unset header leaves it alone.
    pub fn parse(mut jar: PrivTask<Jar>, cookieheader: NullStr) {
        let header = cookieheader.0.unwrap_or(b"");
        jar.get_or_insert_with(Jar::default).parse(header);
    }

    /// Sets the cookie *cookiename* to *value*; an empty name or value is
    /// ignored.
    pub fn set(mut jar: PrivTask<Jar>, cookiename: &[u8], value: &[u8]) {
        jar.get_or_insert_with(Jar::default).set(cookiename, value);
    }
}
