//! Reading an instance's counters, whoever keeps them, and varnishtest's
//! `-expect` and `-vsc` on top (`varnish_expect`, `varnish_vsc` in
//! `vtc_varnish.c`).
//!
//! - **Lacquer** publishes `<workdir>/_.vsc`, read in process with
//!   `lacquer-shm`'s [`VscReader`](lacquer_shm::VscReader).
//! - **varnishd**'s counters are read with `varnishstat -n DIR -1`, whose
//!   lines (`NAME VALUE RATE DESCRIPTION`) list every counter in the order
//!   varnishtest's `VSC_Iter` visits them, so "the first counter matching"
//!   is the same one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ctx::Ctx;

/// Where counters are read from.
#[derive(Clone, Debug)]
pub enum CounterSource {
    /// Lacquer's `<workdir>/_.vsc`.
    Lacquer,
    /// varnishd's, through this `varnishstat`.
    Varnishstat(PathBuf),
}

impl CounterSource {
    /// Every counter, in order: name and value.
    pub fn snapshot(&self, workdir: &Path) -> Result<Vec<(String, u64)>, String> {
        match self {
            CounterSource::Lacquer => {
                let mut r = lacquer_shm::VscReader::open(workdir).map_err(|e| e.to_string())?;
                let points = r.snapshot().map_err(|e| e.to_string())?;
                Ok(points.into_iter().map(|p| (p.name, p.value)).collect())
            }
            CounterSource::Varnishstat(program) => {
                let out = Command::new(program)
                    .arg("-n")
                    .arg(workdir)
                    .arg("-1")
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
                if !out.status.success() {
                    return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
                }
                Ok(parse_varnishstat(&String::from_utf8_lossy(&out.stdout)))
            }
        }
    }
}

/// `varnishstat -1` lines: name, value, rate, description.
fn parse_varnishstat(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let value = w.next()?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// fnmatch(3) without flags: `*` any run (dots and slashes included), `?`
/// any one character, `[...]` a class (`!` or `^` negates, `a-z` ranges),
/// `\` quotes the next character.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // `p` starts after the `[`; returns whether `c` is in the class
        // and how many characters the class took (with its `]`).
        let mut i = 0;
        let negate = matches!(p.first(), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((hit != negate, i + 1));
            }
            first = false;
            let lo = p[i];
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                hit |= lo <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= lo == c;
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') if !n.is_empty() => match class(&p[1..], n[0]) {
                Some((true, used)) => go(&p[1 + used..], &n[1..]),
                Some((false, _)) => false,
                None => n[0] == '[' && go(&p[1..], &n[1..]),
            },
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && go(&p[2..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// varnishtest's `stat_match`: a pattern without a dot is in `MAIN`.
fn stat_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('.') {
        return name.strip_prefix("MAIN.").is_some_and(|rest| fnmatch(pattern, rest));
    }
    fnmatch(pattern, name)
}

/// A number as `strtoumax(s, &end, 0)` reads a whole one: decimal, `0x`
/// hexadecimal or `0` octal.
pub fn parse_number(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok().filter(|&v| v != u64::MAX)
}

/// `-expect !PATTERN`, `-expect PATTERN OP NUMBER` or `-expect PATTERN OP
/// PATTERN`: tries for up to five seconds (50 times, 100 ms apart) until
/// the counters are found and the comparison holds. Answers the line to
/// log, or the failure, both worded as varnishtest words them.
pub fn expect(ctx: &Ctx, source: &CounterSource, workdir: &Path, av: &[String]) -> Result<String, String> {
    let lhs_arg = av.first().ok_or("-expect: missing argument")?;
    let not = lhs_arg.starts_with('!');
    let lhs = lhs_arg.trim_start_matches('!');
    let (op, rhs) = if not {
        (String::new(), None)
    } else {
        let op = av.get(1).ok_or("-expect: missing operator")?.clone();
        let r = av.get(2).ok_or("-expect: missing value")?.clone();
        (op, Some(r))
    };
    let rhs_value = rhs.as_deref().and_then(parse_number);
    let rhs_pattern = rhs.as_deref().filter(|_| rhs_value.is_none());
    let mut last = None;
    let mut found_lhs = false;
    for i in 0..50 {
        if i > 0 {
            ctx.sleep(Duration::from_millis(100));
        }
        if ctx.aborted() {
            return Err("aborted".into());
        }
        let Ok(points) = source.snapshot(workdir) else { continue };
        let l = points.iter().find(|(n, _)| stat_match(lhs, n)).map(|p| p.1);
        let r = match rhs_pattern {
            Some(p) => points.iter().find(|(n, _)| stat_match(p, n)).map(|p| p.1),
            None => rhs_value,
        };
        found_lhs = l.is_some();
        let (Some(l), Some(r)) = (l, r.or(if not { Some(0) } else { None })) else { continue };
        if not {
            return Err(format!("Found (not expected): {lhs}"));
        }
        let good = match op.as_str() {
            "==" => l == r,
            "!=" => l != r,
            ">" => l > r,
            "<" => l < r,
            ">=" => l >= r,
            "<=" => l <= r,
            _ => return Err(format!("comparison {op} unknown")),
        };
        last = Some((l, r));
        if good {
            let rhs = rhs.unwrap_or_default();
            return Ok(format!("as expected: {lhs_arg} ({l}) {op} {rhs} ({r})"));
        }
    }
    match last {
        Some((l, r)) => Err(format!("Not true: {lhs_arg} ({l}) {op} {} ({r})", rhs.unwrap_or_default())),
        None if not => Ok(format!("not found (as expected): {lhs}")),
        None => Err(format!("stats field {} unknown", if found_lhs { rhs_pattern.unwrap_or(lhs) } else { lhs })),
    }
}

/// `-vsc PATTERN`: the counters matching PATTERN (`*` all), as
/// varnishtest logs them (`VSC NAME VALUE`).
pub fn vsc(source: &CounterSource, workdir: &Path, pattern: &str) -> Result<Vec<String>, String> {
    let points = source.snapshot(workdir)?;
    Ok(points
        .into_iter()
        .filter(|(n, _)| pattern == "*" || fnmatch(pattern, n))
        .map(|(n, v)| format!("VSC {n} {v}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_fnmatch_does() {
        assert!(fnmatch("SM?.Transient.g_bytes", "SMA.Transient.g_bytes"));
        assert!(fnmatch("MAIN.*", "MAIN.cache_hit"));
        assert!(!fnmatch("MAIN.cache_hit", "MAIN.cache_hitpass"));
        assert!(fnmatch("VBE.*.s[12].happy", "VBE.vcl1.s2.happy"));
        assert!(!fnmatch("VBE.*.s[!12].happy", "VBE.vcl1.s2.happy"));
        assert!(stat_match("cache_hit", "MAIN.cache_hit"));
        assert!(!stat_match("cache_hit", "VBE.cache_hit"));
    }

    #[test]
    fn varnishstat_lines_parse() {
        let text = "MAIN.uptime                 5          1.00 Child process uptime\nSMA.s0.g_bytes   0   .   Bytes outstanding\n";
        assert_eq!(parse_varnishstat(text), [("MAIN.uptime".to_string(), 5), ("SMA.s0.g_bytes".to_string(), 0)]);
    }

    #[test]
    fn numbers_read_as_strtoumax_reads_them() {
        assert_eq!(parse_number("10"), Some(10));
        assert_eq!(parse_number("0x40"), Some(64));
        assert_eq!(parse_number("010"), Some(8));
        assert_eq!(parse_number("cache_hit"), None);
    }
}
