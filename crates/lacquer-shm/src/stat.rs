//! `lacquer stat`: varnishstat, reading the counters of [`crate::vsc`] from
//! another process; and the Prometheus text exposition of the same
//! counters, which the server serves on `metrics_listen`. The command line
//! is parsed in the `lacquer` binary; this is the work.
//!
//! The outputs of `-1`, `-j` and `-l` are varnishstat 7.1's, byte for byte
//! (save for the timestamp of `-j`, which is in UTC), so that scripts and
//! exporters written for varnishstat read them. The live view is our own,
//! drawn with plain ANSI sequences: no curses.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lacquer_defs::counters::Kind;

use crate::vsc::{Point, VscReader};

/// The options of `lacquer stat`, named after varnishstat's.
#[derive(Clone, Debug, Default)]
pub struct StatOptions {
    /// `-n`: the server's working directory.
    pub workdir: Option<PathBuf>,
    /// `-1`: print every counter once, as text.
    pub once: bool,
    /// `-j`: print every counter once, as JSON.
    pub json: bool,
    /// `-l`: list the counters' names and descriptions.
    pub list: bool,
    /// `-x`: print every counter once, as XML.
    pub xml: bool,
    /// `-f`: globs in the order given; `^glob` excludes.
    pub filters: Vec<String>,
    /// `-t`: seconds to wait for the counters to appear (default 5;
    /// negative: forever).
    pub wait: Option<f64>,
    /// `-P ADDR`: serve the counters for Prometheus on `http://ADDR/metrics`
    /// instead of printing them ([`serve_prometheus`]).
    pub prometheus: Option<String>,
}

/// Which counters `-f` lets through (varnishstat's field filter): the first
/// glob that matches a name decides (`^glob` excludes); a name no glob
/// matches is shown unless some glob includes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    globs: Vec<(bool, String)>,
}

impl Filter {
    /// The filter of these `-f` arguments.
    pub fn new(args: &[String]) -> Filter {
        Filter {
            globs: args
                .iter()
                .map(|a| match a.strip_prefix('^') {
                    Some(g) => (false, g.to_string()),
                    None => (true, a.clone()),
                })
                .collect(),
        }
    }

    /// Whether the counter called `name` is shown.
    pub fn matches(&self, name: &str) -> bool {
        match self.globs.iter().find(|(_, g)| fnmatch(g.as_bytes(), name.as_bytes())) {
            Some((include, _)) => *include,
            None => !self.globs.iter().any(|(include, _)| *include),
        }
    }
}

/// Shell-style matching as fnmatch(3) with no flags, which varnishstat
/// uses: `*` and `?` match any characters, dots and slashes included;
/// `[...]` is a set (`!` or `^` negates, `a-z` is a range); `\` quotes.
pub fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some((&c, rest)) = s.split_first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(i), Some(b'!' | b'^'));
            if negate {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
                    hit |= lo <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    hit |= lo == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: the `[` is an ordinary character.
                return c == b'[' && fnmatch(&p[1..], rest);
            }
            hit != negate && fnmatch(&p[i + 1..], rest)
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && fnmatch(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && fnmatch(&p[1..], &s[1..]),
    }
}

fn uptime_of(points: &[Point]) -> u64 {
    points.iter().find(|p| p.name == "MAIN.uptime").map_or(0, |p| p.value)
}

/// `-1`: one line per counter, as varnishstat 7.1 prints them: the name
/// padded to a column that widens as longer names come, the value, the
/// average rate per second of uptime (counters only; `.` otherwise) and
/// the description. `uptime` is `MAIN.uptime`, read whatever the filter.
pub fn once_text(points: &[Point], uptime: u64) -> String {
    let mut out = String::new();
    let mut pad = 18;
    for p in points {
        let i = p.name.len();
        if i >= pad {
            pad = i + 1;
        }
        let _ = write!(out, "{}{:w$}", p.name, "", w = pad - i);
        if p.kind == Kind::Counter {
            let rate = if uptime > 0 { p.value as f64 / uptime as f64 } else { 0.0 };
            let _ = writeln!(out, "{:12} {:12.2} {}", p.value, rate, p.doc);
        } else {
            let _ = writeln!(out, "{:12} {:>12} {}", p.value, ".  ", p.doc);
        }
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// `-j`: varnishstat 7.1's JSON (`"version": 1`, a timestamp, then the
/// counters by name with description, flag, format and value).
pub fn json(points: &[Point], timestamp: &str) -> String {
    let mut out = format!("{{\n  \"version\": 1,\n  \"timestamp\": \"{timestamp}\",\n  \"counters\": {{\n");
    let entries: Vec<String> = points
        .iter()
        .map(|p| {
            format!(
                "    \"{}\": {{\n      \"description\": \"{}\",\n      \"flag\": \"{}\",\n      \"format\": \"{}\",\n      \
                 \"value\": {}\n    }}",
                json_str(&p.name),
                json_str(&p.doc),
                p.kind.as_char(),
                p.unit.as_char(),
                p.value
            )
        })
        .collect();
    out.push_str(&entries.join(",\n"));
    out.push_str("\n  }\n}\n");
    out
}

/// `-x`: varnishstat 7.1's XML (a timestamp, then one `stat` element per
/// counter with its name, value, flag, format and description).
pub fn xml(points: &[Point], timestamp: &str) -> String {
    fn text(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }
    let mut out = format!("<?xml version=\"1.0\"?>\n<varnishstat timestamp=\"{timestamp}\">\n");
    for p in points {
        let _ = write!(
            out,
            "\t<stat>\n\t\t<name>{}</name>\n\t\t<value>{}</value>\n\t\t<flag>{}</flag>\n\t\t<format>{}</format>\n\t\t\
             <description>{}</description>\n\t</stat>\n",
            text(&p.name),
            p.value,
            p.kind.as_char(),
            p.unit.as_char(),
            text(&p.doc)
        );
    }
    out.push_str("</varnishstat>\n");
    out
}

/// `-l`: the names and descriptions, as varnishstat 7.1 lists them.
pub fn list(points: &[Point]) -> String {
    let mut out = String::from(
        "Varnishstat -f option fields:\nField name                     Description\n----------                     -----------\n",
    );
    for p in points {
        let _ = writeln!(out, "{:<30} {}", p.name, p.doc);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC for `t` (varnishstat prints local time).
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::ncsa::civil(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The Prometheus text exposition (format 0.0.4) of the counters, named as
/// prometheus_varnish_exporter names varnishstat's: `varnish_main_<name>`
/// for MAIN; `varnish_backend_<name>{backend="…",server="<vcl>"}` for
/// VBE; `varnish_sma_<name>{type="<store>"}` for SMA; any other group
/// `varnish_<group>_<name>{id="<ident>"}`. Counters have `TYPE counter`,
/// gauges and bitmaps `TYPE gauge`; each family is written once with its
/// `HELP` line, even when several segments (backends) share it. Unlike
/// the exporter, `MAIN.backend_*` stay under `varnish_main_` so that they
/// cannot clash with the per-backend families.
pub fn prometheus(points: &[Point]) -> String {
    fn clean(s: &str) -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect()
    }
    fn label(v: &str) -> String {
        v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    }
    struct Family {
        name: String,
        help: String,
        kind: &'static str,
        samples: Vec<String>,
    }
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for p in points {
        let (family, labels) = match p.group.as_str() {
            "MAIN" if p.ident.is_empty() => (format!("varnish_main_{}", clean(&p.field)), String::new()),
            "VBE" => {
                let (vcl, be) = p.ident.split_once('.').unwrap_or(("", &p.ident));
                (
                    format!("varnish_backend_{}", clean(&p.field)),
                    format!("{{backend=\"{}\",server=\"{}\"}}", label(be), label(vcl)),
                )
            }
            "SMA" => (format!("varnish_sma_{}", clean(&p.field)), format!("{{type=\"{}\"}}", label(&p.ident))),
            g => {
                let labels = if p.ident.is_empty() { String::new() } else { format!("{{id=\"{}\"}}", label(&p.ident)) };
                (format!("varnish_{}_{}", clean(g), clean(&p.field)), labels)
            }
        };
        let i = *index.entry(family.clone()).or_insert_with(|| {
            families.push(Family {
                name: family,
                help: p.doc.replace('\\', "\\\\").replace('\n', "\\n"),
                kind: if p.kind == Kind::Counter { "counter" } else { "gauge" },
                samples: Vec::new(),
            });
            families.len() - 1
        });
        let f = &mut families[i];
        f.samples.push(format!("{}{} {}", f.name, labels, p.value));
    }
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        for s in f.samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

/// Runs `lacquer stat`; returns the exit status.
pub fn run(o: &StatOptions) -> u8 {
    match run_inner(o) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn open(o: &StatOptions) -> io::Result<VscReader> {
    let Some(dir) = &o.workdir else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "lacquer stat: -n DIR (the server's working directory) is needed",
        ));
    };
    let wait = o.wait.unwrap_or(5.0);
    let started = Instant::now();
    loop {
        match VscReader::open(dir) {
            Ok(r) => return Ok(r),
            Err(e) => {
                if wait >= 0.0 && started.elapsed().as_secs_f64() >= wait {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("Could not get hold of the counters in {}, is lacquer running? ({e})", dir.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn run_inner(o: &StatOptions) -> io::Result<()> {
    if let Some(addr) = &o.prometheus {
        let l = std::net::TcpListener::bind(addr)?;
        eprintln!("lacquer stat: metrics on http://{}/metrics", l.local_addr()?);
        return serve_prometheus(l, o);
    }
    let mut reader = open(o)?;
    let filter = Filter::new(&o.filters);
    let all = reader.snapshot()?;
    let uptime = uptime_of(&all);
    let shown: Vec<Point> = all.into_iter().filter(|p| filter.matches(&p.name)).collect();
    let text = if o.list {
        list(&shown)
    } else if o.json {
        json(&shown, &timestamp(SystemTime::now()))
    } else if o.xml {
        xml(&shown, &timestamp(SystemTime::now()))
    } else if o.once {
        once_text(&shown, uptime)
    } else {
        return live(&mut reader, &filter);
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Answers scrapes on `l` for as long as the process runs: `GET /metrics`
/// is the [`prometheus`] exposition of the counters `-f` lets through,
/// read from shared memory at each scrape (so the server does no work for
/// it, and a restarted server is found again); anything else is 404. One
/// scrape at a time is ample for a scraper.
pub fn serve_prometheus(l: std::net::TcpListener, o: &StatOptions) -> io::Result<()> {
    use std::io::{BufRead, BufReader};
    let filter = Filter::new(&o.filters);
    let mut reader: Option<VscReader> = None;
    for conn in l.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut r = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => continue,
        });
        let mut first = String::new();
        if r.read_line(&mut first).is_err() {
            continue;
        }
        // The rest of the head, up to the empty line.
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
            line.clear();
        }
        let mut words = first.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (status, body) = if method != "GET" && method != "HEAD" {
            ("405 Method Not Allowed", String::from("GET /metrics\n"))
        } else if path.split('?').next() != Some("/metrics") {
            ("404 Not Found", String::from("GET /metrics\n"))
        } else {
            if reader.as_ref().is_none_or(VscReader::replaced) {
                reader = open(&StatOptions { wait: Some(0.0), ..o.clone() }).ok();
            }
            match reader.as_mut().map(VscReader::snapshot) {
                Some(Ok(all)) => {
                    let shown: Vec<Point> = all.into_iter().filter(|p| filter.matches(&p.name)).collect();
                    ("200 OK", prometheus(&shown))
                }
                _ => {
                    reader = None;
                    ("503 Service Unavailable", String::from("the server's counters cannot be read\n"))
                }
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        if method != "HEAD" {
            let _ = conn.write_all(body.as_bytes());
        }
    }
    Ok(())
}

/// The terminal in the mode the live view needs (no echo, no line
/// buffering, Ctrl-C as a key, reads that return after a second), set and
/// put back with stty(1) so that no terminal crate is needed. Dropping it
/// restores the saved mode.
struct RawTerm {
    saved: Option<String>,
}

impl RawTerm {
    fn stty(args: &[&str]) -> Option<String> {
        let out = Command::new("stty").args(args).stdin(Stdio::inherit()).stderr(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn enter() -> RawTerm {
        let saved = RawTerm::stty(&["-g"]);
        if saved.is_some() {
            RawTerm::stty(&["-icanon", "-echo", "-isig", "min", "0", "time", "10"]);
        }
        RawTerm { saved }
    }

    /// (rows, columns), 24×80 if unknown.
    fn size() -> (usize, usize) {
        let s = RawTerm::stty(&["size"]).unwrap_or_default();
        let mut it = s.split_whitespace().map(|n| n.parse::<usize>().unwrap_or(0));
        match (it.next(), it.next()) {
            (Some(r), Some(c)) if r > 0 && c > 0 => (r, c),
            _ => (24, 80),
        }
    }
}

impl Drop for RawTerm {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            RawTerm::stty(&[s]);
        }
    }
}

fn dhms(secs: u64) -> String {
    format!("{}+{:02}:{:02}:{:02}", secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60)
}

/// One frame of the live view: a title line with the uptime and the hit
/// rate, then the shown counters that are not zero, those that changed
/// since the last frame first, each with its value, its change per second
/// and its average over the uptime. Lines are cut to `cols`, the list to
/// `rows`.
pub fn frame(now: &[Point], before: &HashMap<String, u64>, secs: f64, uptime: u64, rows: usize, cols: usize) -> String {
    let get = |name: &str| now.iter().find(|p| p.name == name).map_or(0, |p| p.value);
    let delta = |name: &str| get(name).saturating_sub(*before.get(name).unwrap_or(&get(name)));
    let ratio = |h: u64, m: u64| if h + m == 0 { 0.0 } else { 100.0 * h as f64 / (h + m) as f64 };
    let (hits, misses) = (get("MAIN.cache_hit"), get("MAIN.cache_miss"));
    let mut lines = vec![
        format!(
            "Uptime {}   Hit rate {:5.1}% now, {:5.1}% overall   Requests {}",
            dhms(uptime),
            ratio(delta("MAIN.cache_hit"), delta("MAIN.cache_miss")),
            ratio(hits, misses),
            get("MAIN.client_req")
        ),
        String::new(),
        format!("{:<40} {:>14} {:>12} {:>12}", "NAME", "CURRENT", "CHANGE", "AVERAGE"),
    ];
    let mut rows_shown: Vec<(bool, &Point)> =
        now.iter().filter(|p| p.value != 0).map(|p| (before.get(&p.name).is_some_and(|&b| b != p.value), p)).collect();
    rows_shown.sort_by_key(|(changed, _)| !changed);
    for (_, p) in rows_shown.into_iter().take(rows.saturating_sub(lines.len() + 1)) {
        let line = if p.kind == Kind::Counter {
            let change = p.value.saturating_sub(*before.get(&p.name).unwrap_or(&p.value)) as f64 / secs.max(0.001);
            let avg = if uptime > 0 { p.value as f64 / uptime as f64 } else { 0.0 };
            format!("{:<40} {:>14} {:>12.2} {:>12.2}", p.name, p.value, change, avg)
        } else {
            format!("{:<40} {:>14} {:>12} {:>12}", p.name, p.value, ".", ".")
        };
        lines.push(line);
    }
    let mut out = String::from("\x1b[H\x1b[2J");
    for l in lines {
        out.extend(l.chars().take(cols));
        out.push_str("\r\n");
    }
    out.push_str("\x1b[7m q: quit \x1b[0m");
    out
}

/// The default mode: a view refreshed every second until `q` or Ctrl-C.
fn live(reader: &mut VscReader, filter: &Filter) -> io::Result<()> {
    let _term = RawTerm::enter();
    let mut out = io::stdout();
    out.write_all(b"\x1b[?25l")?;
    let mut before: HashMap<String, u64> = HashMap::new();
    let mut last = Instant::now();
    let result = (|| -> io::Result<()> {
        loop {
            let all = reader.snapshot()?;
            let uptime = uptime_of(&all);
            let shown: Vec<Point> = all.into_iter().filter(|p| filter.matches(&p.name)).collect();
            let (rows, cols) = RawTerm::size();
            let secs = last.elapsed().as_secs_f64();
            last = Instant::now();
            out.write_all(frame(&shown, &before, secs, uptime, rows, cols).as_bytes())?;
            out.flush()?;
            before = shown.iter().map(|p| (p.name.clone(), p.value)).collect();
            // The terminal's read returns after a second or on a key.
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let mut b = [0u8; 16];
                let n = io::stdin().read(&mut b).unwrap_or(0);
                if b[..n].iter().any(|&c| c == b'q' || c == b'Q' || c == 3) {
                    return Ok(());
                }
                if n == 0 {
                    std::thread::sleep(
                        Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now())),
                    );
                }
            }
        }
    })();
    out.write_all(b"\x1b[?25h\r\n")?;
    out.flush()?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacquer_defs::counters::{Level, Unit};

    fn pt(name: &str, kind: Kind, unit: Unit, value: u64, doc: &str) -> Point {
        let mut parts = name.splitn(2, '.');
        let group = parts.next().unwrap().to_string();
        let rest = parts.next().unwrap();
        let (ident, field) = rest.rsplit_once('.').unwrap_or(("", rest));
        Point {
            name: name.into(),
            group,
            ident: ident.into(),
            field: field.into(),
            kind,
            level: Level::Info,
            unit,
            doc: doc.into(),
            value,
            serial: 1,
        }
    }

    #[test]
    fn globs_as_fnmatch() {
        let m = |p: &str, s: &str| fnmatch(p.as_bytes(), s.as_bytes());
        assert!(m("MAIN.*", "MAIN.cache_hit"));
        assert!(m("*hit", "MAIN.cache_hit"));
        assert!(m("*.happy", "VBE.boot.default.happy"));
        assert!(m("MAIN.cache_h?t", "MAIN.cache_hit"));
        assert!(m("MAIN.[cs]*", "MAIN.s_sess"));
        assert!(m("MAIN.[!a-c]*", "MAIN.s_sess"));
        assert!(!m("MAIN.[!a-z]*", "MAIN.s_sess"));
        assert!(!m("MAIN.S_SESS", "MAIN.s_sess"));
        assert!(!m("MAIN", "MAIN.s_sess"));
        assert!(m("a\\*", "a*"));
    }

    #[test]
    fn first_matching_glob_decides() {
        let f = |args: &[&str]| Filter::new(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // As varnishstat 7.1 does (checked against varnishd's counters).
        let names = ["MAIN.s_sess", "MAIN.uptime", "SMA.s0.c_req"];
        let shown = |f: Filter| names.iter().filter(|n| f.matches(n)).copied().collect::<Vec<_>>();
        assert_eq!(shown(f(&[])), names);
        assert_eq!(shown(f(&["^MAIN.s_*", "MAIN.*"])), ["MAIN.uptime"]);
        assert_eq!(shown(f(&["^MAIN.*"])), ["SMA.s0.c_req"]);
        assert_eq!(shown(f(&["^MAIN.*", "MAIN.s_*"])), Vec::<&str>::new());
        assert_eq!(shown(f(&["MAIN.s_*", "^MAIN.*"])), ["MAIN.s_sess"]);
        assert_eq!(shown(f(&["MAIN.*", "^MAIN.s_*"])), ["MAIN.s_sess", "MAIN.uptime"]);
    }

    #[test]
    fn once_pads_like_varnishstat() {
        let p = [
            pt("MAIN.uptime", Kind::Counter, Unit::Seconds, 2, "Child process uptime"),
            pt("MAIN.sess_fail_econnaborted", Kind::Counter, Unit::Count, 0, "Failures"),
            pt("MAIN.threads", Kind::Gauge, Unit::Count, 200, "Threads"),
            pt("SMA.s0.g_space", Kind::Gauge, Unit::Bytes, 104857600, "Bytes free"),
        ];
        assert_eq!(
            once_text(&p, 2),
            "MAIN.uptime                  2         1.00 Child process uptime\n\
             MAIN.sess_fail_econnaborted            0         0.00 Failures\n\
             MAIN.threads                         200          .   Threads\n\
             SMA.s0.g_space                 104857600          .   Bytes free\n"
        );
    }

    #[test]
    fn json_and_list_like_varnishstat() {
        let p = [
            pt("MAIN.uptime", Kind::Counter, Unit::Seconds, 1, "Up \"time\""),
            pt("VBE.boot.default.happy", Kind::Bitmap, Unit::Bits, 3, "Happy"),
        ];
        assert_eq!(
            json(&p, "2026-11-24T22:46:43"),
            "{\n  \"version\": 1,\n  \"timestamp\": \"2026-11-24T22:46:43\",\n  \"counters\": {\n    \"MAIN.uptime\": {\n      \
             \"description\": \"Up \\\"time\\\"\",\n      \"flag\": \"c\",\n      \"format\": \"d\",\n      \"value\": 1\n    \
             },\n    \"VBE.boot.default.happy\": {\n      \"description\": \"Happy\",\n      \"flag\": \"b\",\n      \
             \"format\": \"b\",\n      \"value\": 3\n    }\n  }\n}\n"
        );
        assert_eq!(json(&[], "T"), "{\n  \"version\": 1,\n  \"timestamp\": \"T\",\n  \"counters\": {\n\n  }\n}\n");
        assert_eq!(
            list(&p),
            "Varnishstat -f option fields:\nField name                     Description\n\
             ----------                     -----------\nMAIN.uptime                    Up \"time\"\n\
             VBE.boot.default.happy         Happy\n"
        );
    }

    #[test]
    fn xml_like_varnishstat() {
        let p = [pt("MAIN.uptime", Kind::Counter, Unit::Seconds, 7, "Child <process> uptime")];
        assert_eq!(
            xml(&p, "2026-01-02T03:04:05"),
            "<?xml version=\"1.0\"?>\n<varnishstat timestamp=\"2026-01-02T03:04:05\">\n\t<stat>\n\t\t<name>MAIN.uptime</name>\n\
             \t\t<value>7</value>\n\t\t<flag>c</flag>\n\t\t<format>d</format>\n\t\t<description>Child &lt;process&gt; \
             uptime</description>\n\t</stat>\n</varnishstat>\n"
        );
    }

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(1_795_992_403)), "2026-11-29T22:46:43");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00");
    }

    #[test]
    fn prometheus_exposition() {
        let p = [
            pt("MAIN.cache_hit", Kind::Counter, Unit::Count, 5, "Cache hits"),
            pt("MAIN.n_object", Kind::Gauge, Unit::Count, 2, "Objects"),
            pt("SMA.s0.g_bytes", Kind::Gauge, Unit::Bytes, 10, "Bytes held"),
            pt("VBE.boot.a.req", Kind::Counter, Unit::Count, 1, "Requests sent"),
            pt("VBE.boot.a.happy", Kind::Bitmap, Unit::Bits, 3, "Probes"),
            pt("VBE.boot.b.req", Kind::Counter, Unit::Count, 4, "Requests sent"),
            pt("KV.store-1.hits", Kind::Counter, Unit::Count, 9, "Hits\\n"),
        ];
        assert_eq!(
            prometheus(&p),
            "# HELP varnish_main_cache_hit Cache hits\n# TYPE varnish_main_cache_hit counter\n\
             varnish_main_cache_hit 5\n\
             # HELP varnish_main_n_object Objects\n# TYPE varnish_main_n_object gauge\nvarnish_main_n_object 2\n\
             # HELP varnish_sma_g_bytes Bytes held\n# TYPE varnish_sma_g_bytes gauge\n\
             varnish_sma_g_bytes{type=\"s0\"} 10\n\
             # HELP varnish_backend_req Requests sent\n# TYPE varnish_backend_req counter\n\
             varnish_backend_req{backend=\"a\",server=\"boot\"} 1\n\
             varnish_backend_req{backend=\"b\",server=\"boot\"} 4\n\
             # HELP varnish_backend_happy Probes\n# TYPE varnish_backend_happy gauge\n\
             varnish_backend_happy{backend=\"a\",server=\"boot\"} 3\n\
             # HELP varnish_kv_hits Hits\\\\n\n# TYPE varnish_kv_hits counter\nvarnish_kv_hits{id=\"store-1\"} 9\n"
        );
    }

    #[test]
    fn live_frame_puts_changes_first() {
        let now = [
            pt("MAIN.uptime", Kind::Counter, Unit::Seconds, 10, "Up"),
            pt("MAIN.cache_hit", Kind::Counter, Unit::Count, 9, "Hits"),
            pt("MAIN.cache_miss", Kind::Counter, Unit::Count, 1, "Misses"),
            pt("MAIN.n_object", Kind::Gauge, Unit::Count, 1, "Objects"),
            pt("MAIN.s_pipe", Kind::Counter, Unit::Count, 0, "Pipes"),
        ];
        let before: HashMap<String, u64> =
            [("MAIN.uptime", 9), ("MAIN.cache_hit", 5), ("MAIN.cache_miss", 1), ("MAIN.n_object", 1)]
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
        let f = frame(&now, &before, 1.0, 10, 24, 100);
        let lines: Vec<&str> = f.split("\r\n").collect();
        assert_eq!(lines[0], "\x1b[H\x1b[2JUptime 0+00:00:10   Hit rate 100.0% now,  90.0% overall   Requests 0");
        assert!(lines[3].starts_with("MAIN.uptime "));
        assert!(lines[4].starts_with("MAIN.cache_hit ") && lines[4].ends_with("4.00         0.90"));
        assert!(lines[5].starts_with("MAIN.cache_miss "));
        assert!(lines[6].starts_with("MAIN.n_object ") && lines[6].ends_with(".            ."));
        assert_eq!(lines.len(), 8);
    }
}
