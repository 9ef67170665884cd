//! `lacquer ncsa`: varnishncsa, one access-log line per client request (or
//! backend request with `-b`) read from the shared-memory log, in NCSA
//! combined format or a `-F` format with varnishncsa's specifiers.
//!
//! A line is made from one transaction's records, as varnishncsa makes it:
//!
//! | spec | client side (`-c`, default) | backend side (`-b`) |
//! |---|---|---|
//! | `%b` | response body bytes (`ReqAcct` 5th), `-` for none | `BereqAcct` 5th |
//! | `%D` `%T` | microseconds / seconds from `Start` to `Resp` | to `BerespBody` |
//! | `%H` `%m` `%U` `%q` | protocol, method, path, `?query` or nothing | from `Bereq*` |
//! | `%h` | the client's address (`ReqStart`) | the backend's (`BackendOpen`) |
//! | `%I` `%O` | bytes received / sent (`ReqAcct`) | (`BereqAcct`) |
//! | `%{X}i` `%{X}o` | request / response header `X` | bereq / beresp header |
//! | `%l` | `-` | `-` |
//! | `%r` | `METHOD http://HOST/PATH PROTOCOL` (Host, else `localhost`) | likewise |
//! | `%s` | `RespStatus` | `BerespStatus` |
//! | `%t` `%{FMT}t` | the `Start` time as `[%d/%b/%Y:%H:%M:%S %z]`, or by `FMT` | |
//! | `%u` | the user of a `Basic` `Authorization`, else `-` | |
//! | `%{Varnish:x}x` | `time_firstbyte`, `hitmiss`, `handling`, `side`, `vxid` | |
//! | `%{VCL_Log:KEY}x` | the value logged as `KEY: value` by `std.log` | |
//! | `%{VSL:Tag[N]}x` | the first `Tag` record, or its `N`th field | |
//!
//! A value the transaction lacks prints as `-`. Times are shown in UTC.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::group::{Group, Tx, TxKind};
use crate::tool::{run_with, LogOptions};
use lacquer_defs::Tag;

/// varnishncsa's default format: the NCSA combined log format.
pub const COMBINED: &str = "%h %l %u %t \"%r\" %s %b \"%{Referer}i\" \"%{User-agent}i\"";

/// The options of `lacquer ncsa`, named after varnishncsa's.
#[derive(Clone, Debug, Default)]
pub struct NcsaOptions {
    /// Where to read and how much (`-n`, `-d`, `-q`, `-r`, `-k`, `-t`).
    pub log: LogOptions,
    /// `-F`: the format.
    pub format: Option<String>,
    /// `-f`: a file whose first line is the format.
    pub format_file: Option<PathBuf>,
    /// `-b`: backend requests.
    pub backend: bool,
    /// `-c`: client requests (the default; both with `-b -c`).
    pub client: bool,
    /// `-E`: ESI requests too (and so client requests).
    pub esi: bool,
    /// `-w`: append the lines to this file instead of printing them.
    pub write: Option<PathBuf>,
    /// `-j`: quote the values for JSON strings.
    pub json: bool,
}

/// Runs `lacquer ncsa`; returns the exit status.
pub fn run(o: &NcsaOptions) -> u8 {
    match run_inner(o) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn run_inner(o: &NcsaOptions) -> io::Result<()> {
    let text = match (&o.format, &o.format_file) {
        (Some(f), _) => f.clone(),
        (None, Some(path)) => {
            let t = std::fs::read_to_string(path)
                .map_err(|e| io::Error::new(e.kind(), format!("Can't open format file ({})", crate::os_message(&e))))?;
            match t.lines().next() {
                Some(line) => line.to_string(),
                None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "Empty format file")),
            }
        }
        (None, None) => COMBINED.to_string(),
    };
    let format = Format::parse_as(&text, o.json).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (client, backend) = (o.client || o.esi || !o.backend, o.backend);
    let open = |p: &std::path::Path| -> io::Result<Box<dyn Write>> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(o.log.append)
            .truncate(!o.log.append)
            .open(p)
            .map_err(|e| io::Error::new(e.kind(), format!("Can't open output file ({})", crate::os_message(&e))))?;
        Ok(Box::new(io::BufWriter::new(f)))
    };
    let mut out: Box<dyn Write> = match &o.write {
        Some(p) => {
            crate::tool::reopen_on_hup();
            open(p)?
        }
        None => Box::new(io::BufWriter::new(io::stdout())),
    };
    let mut log = o.log.clone();
    log.grouping = Some("vxid".into());
    run_with(&log, &mut |g: &Group, live: bool| {
        if let Some(p) = o.write.as_deref().filter(|_| crate::tool::hup_received()) {
            out.flush()?;
            out = open(p)?;
        }
        for tx in g {
            let wanted = match tx.kind {
                TxKind::Request => client && (o.esi || tx.reason != "esi"),
                TxKind::BeReq => backend,
                _ => false,
            };
            if wanted {
                out.write_all(format.line(tx).as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        if live {
            out.flush()?;
        }
        Ok(())
    })?;
    out.flush()
}

/// A parsed `-F` format, and how the values it puts in a line are quoted.
#[derive(Debug, PartialEq)]
pub struct Format {
    items: Vec<Item>,
    /// `-j`: values quoted for a JSON string rather than for a terminal.
    json: bool,
}

#[derive(Debug, PartialEq)]
enum Item {
    Text(String),
    /// `%c` or `%{arg}c`.
    Spec(char, Option<String>),
}

impl Format {
    /// Parses a format, refusing what varnishncsa refuses.
    pub fn parse(s: &str) -> Result<Format, String> {
        Self::parse_as(s, false)
    }

    /// Parses a format whose values are quoted for JSON (`-j`) or not; a
    /// tag whose records may hold control characters is refused without
    /// `-j`, as varnishncsa refuses it.
    pub fn parse_as(s: &str, json: bool) -> Result<Format, String> {
        let mut items = Vec::new();
        let mut text = String::new();
        let mut it = s.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some(o) => text.push(o),
                    None => text.push('\\'),
                },
                '%' => {
                    let arg = if it.peek() == Some(&'{') {
                        it.next();
                        // Braces nest: `%{{%F}T{%T}}t` has the argument
                        // `{%F}T{%T}`.
                        let mut a = String::new();
                        let mut depth = 1;
                        loop {
                            match it.next() {
                                Some('}') if depth == 1 => break,
                                Some(ch) => {
                                    depth += usize::from(ch == '{');
                                    depth -= usize::from(ch == '}');
                                    a.push(ch);
                                }
                                None => return Err(format!("Unmatched bracket at: {s}")),
                            }
                        }
                        Some(a)
                    } else {
                        None
                    };
                    let Some(spec) = it.next() else { return Err("Unknown format specifier at: %".into()) };
                    let known = match (spec, &arg) {
                        ('%', None) => {
                            text.push('%');
                            continue;
                        }
                        ('b' | 'D' | 'H' | 'h' | 'I' | 'l' | 'm' | 'O' | 'q' | 'r' | 's' | 'T' | 'U' | 'u', None) => {
                            true
                        }
                        ('t', _) | ('T', Some(_)) => true,
                        ('i' | 'o', Some(_)) => true,
                        ('x', Some(a)) => {
                            if let Some(spec) = a.strip_prefix("VSL:") {
                                VslSpec::parse(spec)?;
                            } else if !a.starts_with("VCL_Log:")
                                && !matches!(
                                    a.as_str(),
                                    "Varnish:time_firstbyte"
                                        | "Varnish:hitmiss"
                                        | "Varnish:handling"
                                        | "Varnish:side"
                                        | "Varnish:vxid"
                                )
                            {
                                return Err(format!("Unknown formatting extension: {a}"));
                            }
                            true
                        }
                        _ => false,
                    };
                    if !known {
                        let shown = arg.map(|a| format!("%{{{a}}}{spec}")).unwrap_or(format!("%{spec}"));
                        return Err(format!("Unknown format specifier at: {shown}"));
                    }
                    if let (false, Some(tag)) = (json, arg.as_deref().and_then(vsl_tag)) {
                        if tag.is_unsafe() {
                            return Err(format!("Tag {tag} can contain control characters"));
                        }
                    }
                    if !text.is_empty() {
                        items.push(Item::Text(std::mem::take(&mut text)));
                    }
                    items.push(Item::Spec(spec, arg));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        Ok(Format { items, json })
    }

    /// The line for one transaction.
    pub fn line(&self, tx: &Tx) -> String {
        let v = View { tx, backend: tx.kind == TxKind::BeReq };
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Text(t) => out.push_str(t),
                Item::Spec(c, arg) => match v.spec(*c, arg.as_deref()) {
                    Some(value) => quote(&mut out, &value, self.json),
                    None => out.push('-'),
                },
            }
        }
        out
    }
}

/// The tag of a `VSL:Tag[...]` extended specifier's argument.
fn vsl_tag(arg: &str) -> Option<Tag> {
    VslSpec::parse(arg.strip_prefix("VSL:")?).ok().map(|v| v.tag)
}

/// `%{VSL:Tag[:Prefix][[field]]}x`: the first record of a tag, or of
/// those whose payload starts with `Prefix:` the rest, or one
/// blank-separated field of it (from 1).
#[derive(Debug, PartialEq)]
struct VslSpec {
    tag: Tag,
    prefix: Option<String>,
    field: Option<usize>,
}

impl VslSpec {
    /// Reads the part after `VSL:`, refusing what varnishncsa refuses in
    /// its words.
    fn parse(spec: &str) -> Result<VslSpec, String> {
        if spec.is_empty() {
            return Err("Missing tag in VSL:".into());
        }
        let (mut rest, mut field) = (spec, None);
        if let Some(inner) = spec.strip_suffix(']') {
            let open = inner.rfind('[').filter(|&i| i > 0 && i + 1 < inner.len());
            let Some(open) = open else { return Err(format!("Syntax error: VSL:{spec}")) };
            let n: u64 = inner[open + 1..].parse().map_err(|_| format!("Syntax error: VSL:{spec}"))?;
            if !(1..=255).contains(&n) {
                return Err(format!("Syntax error. Field specifier must be between 1 and 255: {spec}"));
            }
            (rest, field) = (&inner[..open], Some(n as usize));
        }
        let (name, prefix) = match rest.split_once(':') {
            Some((n, p)) => (n, Some(p.to_string())),
            None => (rest, None),
        };
        let tag = match crate::query::glob(name) {
            _ if name.contains('*') || name.is_empty() => return Err(format!("Unknown log tag: {name}")),
            Ok(t) if t.len() == 1 => t[0],
            Err(crate::query::GlobError::Ambiguous) => return Err(format!("Tag not unique: {name}")),
            _ => return Err(format!("Unknown log tag: {name}")),
        };
        Ok(VslSpec { tag, prefix, field })
    }
}

/// Appends a value as varnishncsa quotes it (`VSB_quote`): `"` and `\`
/// escaped, tabs and newlines by name; other control characters as `\xHH`
/// and bytes past ASCII likewise, or, with `-j`, control characters as
/// `\u00HH` and UTF-8 as it is.
fn quote(out: &mut String, value: &str, json: bool) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ if json && !c.is_ascii() => out.push(c),
            _ if json => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            _ => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
        }
    }
}

/// One transaction's records, read for a line.
struct View<'a> {
    tx: &'a Tx,
    backend: bool,
}

impl View<'_> {
    /// The payload of the first record with `tag`.
    fn first(&self, tag: Tag) -> Option<String> {
        self.tx.records.iter().find(|r| r.tag() == Some(tag)).map(|r| r.payload_str().into_owned())
    }

    /// The last record with `tag` (the final status after a restart …).
    fn last(&self, tag: Tag) -> Option<String> {
        self.tx.records.iter().rev().find(|r| r.tag() == Some(tag)).map(|r| r.payload_str().into_owned())
    }

    /// The value of header `name` among the records `tag`, as the headers
    /// stood at the end (an unset header is gone).
    fn header(&self, set: Tag, unset: Tag, name: &str) -> Option<String> {
        let mut value = None;
        for r in &self.tx.records {
            let t = r.tag();
            if t != Some(set) && t != Some(unset) {
                continue;
            }
            let p = r.payload_str();
            let Some((n, v)) = p.split_once(':') else { continue };
            if !n.trim().eq_ignore_ascii_case(name) {
                continue;
            }
            if t == Some(set) {
                value.get_or_insert_with(|| v.trim().to_string());
            } else if value.as_deref() == Some(v.trim()) {
                value = None;
            }
        }
        value
    }

    fn req_header(&self, name: &str) -> Option<String> {
        if self.backend {
            self.header(Tag::BereqHeader, Tag::BereqUnset, name)
        } else {
            self.header(Tag::ReqHeader, Tag::ReqUnset, name)
        }
    }

    fn resp_header(&self, name: &str) -> Option<String> {
        if self.backend {
            self.header(Tag::BerespHeader, Tag::BerespUnset, name)
        } else {
            self.header(Tag::RespHeader, Tag::RespUnset, name)
        }
    }

    fn pick(&self, client: Tag, backend: Tag) -> Option<String> {
        self.first(if self.backend { backend } else { client })
    }

    /// A `Timestamp` record's absolute time and time since the start.
    fn timestamp(&self, label: &str) -> Option<(f64, f64)> {
        self.tx.records.iter().filter(|r| r.tag() == Some(Tag::Timestamp)).find_map(|r| {
            let p = r.payload_str();
            let rest = p.strip_prefix(label)?.strip_prefix(':')?;
            let mut f = rest.split_whitespace().map(|x| x.parse::<f64>().ok());
            Some((f.next()??, f.next()??))
        })
    }

    /// The `ReqAcct`/`BereqAcct` fields: head in, body in, total in, head
    /// out, body out, total out.
    fn acct(&self) -> Option<Vec<u64>> {
        let a = self.pick(Tag::ReqAcct, Tag::BereqAcct)?;
        Some(a.split_whitespace().filter_map(|x| x.parse().ok()).collect())
    }

    /// Field `i` (from 0) of a client transaction's `PipeAcct`.
    fn pipe_acct(&self, i: usize) -> Option<String> {
        if self.backend {
            return None;
        }
        self.first(Tag::PipeAcct)?.split_whitespace().nth(i).map(str::to_string)
    }

    fn url(&self) -> Option<String> {
        self.last_of(Tag::ReqURL, Tag::BereqURL)
    }

    fn last_of(&self, client: Tag, backend: Tag) -> Option<String> {
        self.last(if self.backend { backend } else { client })
    }

    fn spec(&self, c: char, arg: Option<&str>) -> Option<String> {
        match c {
            'b' => {
                // varnishncsa: the body bytes sent (received from the backend
                // with -b), `-` for none.
                // (fifth of `ReqAcct` and `BereqAcct` alike).
                let n = *self.acct()?.get(4)?;
                (n > 0).then(|| n.to_string())
            }
            'D' | 'T' => {
                let end = if self.backend { "BerespBody" } else { "Resp" };
                let (_, since) = self
                    .timestamp(end)
                    .or_else(|| self.timestamp("Retry"))
                    .or_else(|| self.timestamp("PipeSess").filter(|_| !self.backend))?;
                // `%{s}T`, `%{ms}T`, `%{us}T`: the duration in that unit.
                Some(match (c, arg) {
                    ('D', _) | ('T', Some("us")) => format!("{:.0}", since * 1e6),
                    ('T', Some("ms")) => format!("{}", (since * 1e3) as u64),
                    _ => format!("{}", since as u64),
                })
            }
            'H' => self.last_of(Tag::ReqProtocol, Tag::BereqProtocol),
            'h' => {
                if self.backend {
                    // BackendOpen: fd name remote-ip remote-port local-ip local-port
                    self.first(Tag::BackendOpen)?.split_whitespace().nth(2).map(str::to_string)
                } else {
                    self.first(Tag::ReqStart)?.split_whitespace().next().map(str::to_string)
                }
            }
            // A piped request has `PipeAcct` instead: its third and
            // fourth fields are the bytes piped from and to the client.
            'I' => match self.acct() {
                Some(a) => Some(if self.backend { *a.get(5)? } else { *a.get(2)? }.to_string()),
                None => self.pipe_acct(2),
            },
            'O' => match self.acct() {
                Some(a) => Some(if self.backend { *a.get(2)? } else { *a.get(5)? }.to_string()),
                None => self.pipe_acct(3),
            },
            'i' => self.req_header(arg?),
            'o' => self.resp_header(arg?),
            'l' => None,
            'm' => self.last_of(Tag::ReqMethod, Tag::BereqMethod),
            'q' => {
                let url = self.url()?;
                Some(url.find('?').map_or(String::new(), |i| url[i..].to_string()))
            }
            'U' => {
                let url = self.url()?;
                Some(url.split('?').next().unwrap_or("").to_string())
            }
            'r' => {
                let method = self.last_of(Tag::ReqMethod, Tag::BereqMethod).unwrap_or_else(|| "-".into());
                let host = self.req_header("Host").unwrap_or_else(|| "localhost".into());
                let url = self.url().unwrap_or_else(|| "-".into());
                let proto = self.last_of(Tag::ReqProtocol, Tag::BereqProtocol).unwrap_or_else(|| "-".into());
                let host = if host.starts_with("http://") || host.starts_with("https://") {
                    host
                } else {
                    format!("http://{host}")
                };
                Some(format!("{method} {host}{url} {proto}"))
            }
            's' => self.last_of(Tag::RespStatus, Tag::BerespStatus),
            't' => {
                let (t, _) = self.timestamp("Start")?;
                // The start as a number (`sec`, `msec`, `usec`), its
                // fraction (`msec_frac`, `usec_frac`), or through strftime.
                Some(match arg {
                    None => strftime("[%d/%b/%Y:%H:%M:%S %z]", t),
                    Some("sec") => format!("{}", t as u64),
                    Some("msec") => format!("{}", (t * 1e3) as u64),
                    Some("usec") => format!("{}", (t * 1e6) as u64),
                    Some("msec_frac") => format!("{:03}", ((t * 1e3) as u64) % 1000),
                    Some("usec_frac") => format!("{:06}", ((t * 1e6) as u64) % 1_000_000),
                    Some(f) => strftime(f, t),
                })
            }
            'u' => {
                let auth = self.req_header("Authorization")?;
                let b64 = auth.strip_prefix("Basic ").or_else(|| auth.strip_prefix("basic "))?;
                let plain = base64_decode(b64.trim())?;
                let plain = String::from_utf8_lossy(&plain).into_owned();
                Some(plain.split(':').next().unwrap_or("").to_string())
            }
            'x' => self.extended(arg?),
            _ => None,
        }
    }

    fn extended(&self, arg: &str) -> Option<String> {
        if let Some(key) = arg.strip_prefix("VCL_Log:") {
            // A key never logged is empty, not `-`, as in varnishncsa.
            let found = self.tx.records.iter().filter(|r| r.tag() == Some(Tag::VCL_Log)).find_map(|r| {
                let p = r.payload_str();
                let (k, v) = p.split_once(':')?;
                (k == key).then(|| v.trim_start().to_string())
            });
            return Some(found.unwrap_or_default());
        }
        if let Some(spec) = arg.strip_prefix("VSL:") {
            let v = VslSpec::parse(spec).ok()?;
            let p = self.tx.records.iter().filter(|r| r.tag() == Some(v.tag)).find_map(|r| {
                let p = r.payload_str();
                match &v.prefix {
                    None => Some(p.into_owned()),
                    Some(pre) => {
                        let (k, rest) = p.split_once(':')?;
                        k.eq_ignore_ascii_case(pre).then(|| rest.trim_start().to_string())
                    }
                }
            })?;
            return match v.field {
                None => Some(p),
                Some(n) => p.split_whitespace().nth(n - 1).map(str::to_string),
            };
        }
        match arg {
            "Varnish:time_firstbyte" => {
                let labels: &[&str] = if self.backend { &["Beresp"] } else { &["Process", "Pipe"] };
                labels.iter().find_map(|l| self.timestamp(l)).map(|(_, since)| format!("{since:.6}"))
            }
            "Varnish:side" => Some(if self.backend { "b" } else { "c" }.into()),
            "Varnish:vxid" => Some(self.tx.vxid.to_string()),
            "Varnish:hitmiss" | "Varnish:handling" => {
                if self.backend {
                    return None;
                }
                // The last of the steps that decide wins, read as
                // varnishncsa reads them; synth and pass count as misses.
                let mut seen = None;
                for r in &self.tx.records {
                    let p = r.payload_str().to_ascii_lowercase();
                    seen = match (r.tag(), p.as_str()) {
                        (Some(Tag::VCL_call), "hit") => Some(("hit", "hit")),
                        (Some(Tag::VCL_call), "miss") => Some(("miss", "miss")),
                        (Some(Tag::VCL_call), "pass") => Some(("miss", "pass")),
                        (Some(Tag::VCL_call), "synth") => Some(("miss", "synth")),
                        (Some(Tag::VCL_return), "pipe") => Some(("miss", "pipe")),
                        _ => seen,
                    };
                }
                let (hitmiss, handling) = seen?;
                Some(if arg == "Varnish:handling" { handling } else { hitmiss }.into())
            }
            _ => None,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// strftime(3) in UTC for the conversions access logs use: `%a %b %d %e
/// %F %H %j %M %m %S %s %T %Y %y %z %Z %%`; others are copied.
fn strftime(fmt: &str, t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days from 1970-01-01 to January 1st of `y`.
    let jan1 = (y - 1970) * 365 + (y - 1969).div_euclid(4) - (y - 1901).div_euclid(100) + (y - 1601).div_euclid(400);
    let yday = days - jan1 + 1;
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('a') => out.push_str(DAYS[days.rem_euclid(7) as usize]),
            Some('b') | Some('h') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('F') => out.push_str(&format!("{y:04}-{m:02}-{d:02}")),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('s') => out.push_str(&secs.to_string()),
            Some('T') => out.push_str(&format!("{hh:02}:{mm:02}:{ss:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('z') => out.push_str("+0000"),
            Some('Z') => out.push_str("UTC"),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Standard base64 (with or without padding); `None` if it is not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Side};

    fn tx(kind: TxKind, recs: &[(Tag, &str)]) -> Tx {
        let side = if kind == TxKind::BeReq { Side::Backend } else { Side::Client };
        Tx {
            vxid: 1001,
            kind,
            parent: 1000,
            reason: "rxreq".into(),
            level: 1,
            complete: true,
            records: recs.iter().map(|(t, s)| Record::text(*t, 1001, side, s)).collect(),
        }
    }

    fn client() -> Tx {
        tx(
            TxKind::Request,
            &[
                (Tag::Begin, "req 1000 rxreq"),
                (Tag::Timestamp, "Start: 1764030950.250000 0.000000 0.000000"),
                (Tag::ReqStart, "127.0.0.1 51000 a0"),
                (Tag::ReqMethod, "GET"),
                (Tag::ReqURL, "/a/b?x=1"),
                (Tag::ReqProtocol, "HTTP/1.1"),
                (Tag::ReqHeader, "Host: example.com"),
                (Tag::ReqHeader, "User-Agent: curl/8"),
                (Tag::ReqHeader, "Authorization: Basic dXNlcjpwYXNz"),
                (Tag::VCL_call, "RECV"),
                (Tag::VCL_call, "HASH"),
                (Tag::VCL_call, "MISS"),
                (Tag::VCL_Log, "key: the value"),
                (Tag::RespStatus, "200"),
                (Tag::RespHeader, "X-Cache: MISS"),
                (Tag::Timestamp, "Process: 1764030950.260000 0.010000 0.010000"),
                (Tag::Timestamp, "Resp: 1764030950.262500 0.012500 0.002500"),
                (Tag::ReqAcct, "78 0 78 250 1234 1484"),
                (Tag::End, ""),
            ],
        )
    }

    #[test]
    fn the_combined_format_reads_as_varnishncsas() {
        let f = Format::parse(COMBINED).unwrap();
        assert_eq!(
            f.line(&client()),
            "127.0.0.1 - user [25/Nov/2025:00:35:50 +0000] \"GET http://example.com/a/b?x=1 HTTP/1.1\" 200 1234 \"-\" \"curl/8\""
        );
    }

    #[test]
    fn every_specifier_reads_its_record() {
        let f = Format::parse(
            "%D %T %H %m %U %q %I %O %{X-Cache}o %{Varnish:handling}x %{Varnish:hitmiss}x %{Varnish:side}x \
             %{Varnish:vxid}x %{Varnish:time_firstbyte}x %{VCL_Log:key}x %{VSL:ReqStart[2]}x %{%F %T %a %j}t %%",
        )
        .unwrap();
        assert_eq!(
            f.line(&client()),
            "12500 0 HTTP/1.1 GET /a/b ?x=1 78 1484 MISS miss miss c 1001 0.010000 the value 51000 2025-11-25 00:35:50 Tue 329 %"
        );
    }

    #[test]
    fn backend_lines_read_the_backend_records() {
        let be = tx(
            TxKind::BeReq,
            &[
                (Tag::Begin, "bereq 1001 fetch"),
                (Tag::Timestamp, "Start: 1764030950.250000 0.000000 0.000000"),
                (Tag::BereqMethod, "GET"),
                (Tag::BereqURL, "/a"),
                (Tag::BereqProtocol, "HTTP/1.1"),
                (Tag::BereqHeader, "Host: origin"),
                (Tag::BackendOpen, "23 default 127.0.0.1 8080 127.0.0.1 40000 connect"),
                (Tag::BerespStatus, "404"),
                (Tag::BereqAcct, "60 0 60 100 9 109"),
                (Tag::End, ""),
            ],
        );
        let f = Format::parse("%h \"%r\" %s %b %{Varnish:side}x").unwrap();
        assert_eq!(f.line(&be), "127.0.0.1 \"GET http://origin/a HTTP/1.1\" 404 9 b");
    }

    #[test]
    fn bad_formats_are_refused_as_varnishncsa_refuses_them() {
        assert_eq!(Format::parse("%Z").unwrap_err(), "Unknown format specifier at: %Z");
        assert_eq!(Format::parse("%{Foo}x").unwrap_err(), "Unknown formatting extension: Foo");
        assert!(Format::parse("%{Host").unwrap_err().starts_with("Unmatched bracket"));
        assert_eq!(
            Format::parse("a\\tb %%").unwrap(),
            Format { items: vec![Item::Text("a\tb %".into())], json: false }
        );
    }

    #[test]
    fn values_quoted_as_varnishncsa_quotes_them() {
        let mut out = String::new();
        quote(&mut out, "q\"b\\c\u{2203}d\te\u{0}", false);
        assert_eq!(out, r#"q\"b\\c\xe2\x88\x83d\te\x00"#);
        out.clear();
        quote(&mut out, "q\"b\\c\u{2203}d\te\u{0}", true);
        assert_eq!(out, "q\\\"b\\\\c\u{2203}d\\te\\u0000");
        assert_eq!(Format::parse("%{VSL:Debug}x").unwrap_err(), "Tag Debug can contain control characters");
        assert!(Format::parse_as("%{VSL:Debug}x", true).is_ok());
    }

    #[test]
    fn vsl_specifiers_as_varnishncsa_reads_them() {
        let ok = |s: &str| VslSpec::parse(s).unwrap();
        assert_eq!(
            ok("Timestamp:Resp[2]"),
            VslSpec { tag: Tag::Timestamp, prefix: Some("Resp".into()), field: Some(2) }
        );
        assert_eq!(ok("Begin"), VslSpec { tag: Tag::Begin, prefix: None, field: None });
        let err = |s: &str| VslSpec::parse(s).unwrap_err();
        assert_eq!(err(""), "Missing tag in VSL:");
        assert_eq!(err("nonexistent"), "Unknown log tag: nonexistent");
        assert_eq!(err("Req"), "Tag not unique: Req");
        assert_eq!(err("Begin["), "Unknown log tag: Begin[");
        assert_eq!(err("Begin]"), "Syntax error: VSL:Begin]");
        assert_eq!(err("Begin[a]"), "Syntax error: VSL:Begin[a]");
        assert_eq!(err("Begin[0]"), "Syntax error. Field specifier must be between 1 and 255: Begin[0]");
        assert_eq!(Format::parse("%{foo}x").unwrap_err(), "Unknown formatting extension: foo");
    }

    #[test]
    fn missing_values_print_as_a_dash() {
        let t = tx(TxKind::Request, &[(Tag::Begin, "req 1000 rxreq")]);
        assert_eq!(Format::parse("%s %b %{Referer}i %u %t").unwrap().line(&t), "- - - - -");
    }
}
