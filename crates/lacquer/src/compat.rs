//! Varnish's tool names: run as `varnishlog`, `varnishncsa`, `varnishstat`
//! or `varnishadm` (a link to the `lacquer` executable under that name),
//! Lacquer is that tool, with its command line read as the Varnish tool
//! reads it (getopt(3): clustered short options, an option's argument
//! attached or next) and its usage and errors in the same words, so that
//! operators' scripts and Varnish's tests run unchanged.
//!
//! Each tool is one table of options ([`Opt`]), from which both the parser
//! and the usage text come, and one function that turns what was given
//! into the options of the `lacquer` subcommand doing the work.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A tool Lacquer can be run as.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tool {
    Log,
    Ncsa,
    Stat,
    Adm,
}

impl Tool {
    /// Every tool, as named on the command line.
    pub const ALL: &'static [(&'static str, Tool)] = &[
        ("varnishlog", Tool::Log),
        ("varnishncsa", Tool::Ncsa),
        ("varnishstat", Tool::Stat),
        ("varnishadm", Tool::Adm),
    ];

    /// The tool an executable called `argv0` is, if any.
    pub fn by_name(argv0: &OsStr) -> Option<Tool> {
        let name = Path::new(argv0).file_name()?.to_str()?;
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, t)| *t == self).map_or("varnish", |(n, _)| n)
    }

    fn options(self) -> &'static [Opt] {
        match self {
            Tool::Log => LOG_OPTS,
            Tool::Ncsa => NCSA_OPTS,
            Tool::Stat => STAT_OPTS,
            Tool::Adm => ADM_OPTS,
        }
    }
}

/// One option: its letter, its argument's name (none for a flag) and what
/// it does, for the usage text.
struct Opt(char, Option<&'static str>, &'static str);

const LOG_OPTS: &[Opt] = &[
    Opt('a', None, "Append to file"),
    Opt('A', None, "Text output"),
    Opt('b', None, "Only display backend records"),
    Opt('c', None, "Only display client records"),
    Opt('C', None, "Caseless regular expressions"),
    Opt('d', None, "Process old log entries and exit"),
    Opt('D', None, "Daemonize"),
    Opt('E', None, "Display ESI transactions"),
    Opt('g', Some("session|request|vxid|raw"), "Grouping mode (default: vxid)"),
    Opt('h', None, "Usage help"),
    Opt('i', Some("taglist"), "Include tags"),
    Opt('I', Some("[taglist:]regex"), "Include by regex"),
    Opt('k', Some("num"), "Limit transactions"),
    Opt('L', Some("limit"), "Incomplete transaction limit"),
    Opt('n', Some("dir"), "varnishd working directory"),
    Opt('P', Some("file"), "PID file"),
    Opt('Q', Some("file"), "VSL query file"),
    Opt('q', Some("query"), "VSL query"),
    Opt('r', Some("filename"), "Binary file input"),
    Opt('R', Some("limit[/duration]"), "Output rate limit"),
    Opt('t', Some("seconds|off"), "VSM connection timeout"),
    Opt('T', Some("seconds"), "Transaction end timeout"),
    Opt('u', None, "Unbuffered output"),
    Opt('v', None, "Verbose record printing"),
    Opt('V', None, "Version"),
    Opt('w', Some("filename"), "Output filename"),
    Opt('x', Some("taglist"), "Exclude tags"),
    Opt('X', Some("[taglist:]regex"), "Exclude by regex"),
];

const NCSA_OPTS: &[Opt] = &[
    Opt('a', None, "Append to file"),
    Opt('b', None, "Backend mode"),
    Opt('c', None, "Client mode"),
    Opt('C', None, "Caseless regular expressions"),
    Opt('d', None, "Process old log entries and exit"),
    Opt('D', None, "Daemonize"),
    Opt('E', None, "Show ESI requests"),
    Opt('F', Some("format"), "Set output format"),
    Opt('f', Some("formatfile"), "Read output format from file"),
    Opt('g', Some("request|vxid"), "Grouping mode (default: vxid)"),
    Opt('h', None, "Usage help"),
    Opt('j', None, "Make output JSON-compatible"),
    Opt('k', Some("num"), "Limit transactions"),
    Opt('L', Some("limit"), "Incomplete transaction limit"),
    Opt('n', Some("dir"), "varnishd working directory"),
    Opt('P', Some("file"), "PID file"),
    Opt('Q', Some("file"), "VSL query file"),
    Opt('q', Some("query"), "VSL query"),
    Opt('r', Some("filename"), "Binary file input"),
    Opt('R', Some("limit[/duration]"), "Output rate limit"),
    Opt('t', Some("seconds|off"), "VSM connection timeout"),
    Opt('V', None, "Version"),
    Opt('w', Some("filename"), "Output filename"),
];

const STAT_OPTS: &[Opt] = &[
    Opt('1', None, "Print the statistics to stdout"),
    Opt('f', Some("glob"), "Legacy field filtering glob"),
    Opt('h', None, "Usage help"),
    Opt('I', Some("glob"), "Field inclusion glob"),
    Opt('j', None, "Print statistics to stdout as JSON"),
    Opt('l', None, "Lists the available fields to use with the -f option"),
    Opt('n', Some("dir"), "varnishd working directory"),
    Opt('t', Some("seconds|off"), "VSM connection timeout"),
    Opt('V', None, "Version"),
    Opt('X', Some("glob"), "Field exclusion glob"),
    Opt('x', None, "Print statistics to stdout as XML"),
];

const ADM_OPTS: &[Opt] = &[
    Opt('h', None, "Usage help"),
    Opt('n', Some("ident"), "varnishd working directory"),
    Opt('p', None, "Pass mode: print each answer's status line"),
    Opt('S', Some("secretfile"), "The CLI's secret file"),
    Opt('T', Some("[address]:port"), "The CLI's address"),
    Opt('t', Some("timeout"), "How long to wait for an answer"),
];

/// What getopt(3) made of a command line.
struct Parsed {
    opts: Vec<(char, String)>,
    operands: Vec<String>,
}

impl Parsed {
    fn has(&self, c: char) -> bool {
        self.opts.iter().any(|(o, _)| *o == c)
    }

    /// The last value of option `c`.
    fn last(&self, c: char) -> Option<&str> {
        self.opts.iter().rev().find(|(o, _)| *o == c).map(|(_, v)| v.as_str())
    }
}

/// getopt(3) in POSIX mode: options until the first operand or `--`;
/// errors in glibc's words.
fn getopt(tool: Tool, args: &[String]) -> Result<Parsed, String> {
    let table = tool.options();
    let mut p = Parsed { opts: Vec::new(), operands: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        for (at, c) in a[1..].char_indices() {
            let Some(opt) = table.iter().find(|o| o.0 == c) else {
                return Err(format!("{}: invalid option -- '{c}'", tool.name()));
            };
            if opt.1.is_none() {
                p.opts.push((c, String::new()));
                continue;
            }
            let rest = &a[1 + at + c.len_utf8()..];
            let value = if !rest.is_empty() {
                rest.to_string()
            } else {
                i += 1;
                args.get(i).cloned().ok_or_else(|| format!("{}: option requires an argument -- '{c}'", tool.name()))?
            };
            p.opts.push((c, value));
            break;
        }
        i += 1;
    }
    p.operands.extend(args[i.min(args.len())..].iter().cloned());
    Ok(p)
}

/// The usage text, made from the tool's table.
fn usage(tool: Tool) -> String {
    if tool == Tool::Adm {
        return "Usage: varnishadm [-h] [-n ident] [-p] [-S secretfile] [-T [address]:port] [-t timeout] \
                [command [...]]\n\t-n is mutually exclusive with -S and -T\n"
            .to_string();
    }
    let mut s = format!("Usage: {} <options>\n\nOptions:\n", tool.name());
    for Opt(c, arg, doc) in tool.options() {
        let syn = match arg {
            Some(a) => format!("[-{c} <{a}>]"),
            None => format!("[-{c}]"),
        };
        s.push_str(&format!(" {syn:<25} {doc}\n"));
    }
    s
}

fn version(tool: Tool) -> String {
    format!(
        "{} (Lacquer {}, command-line compatible with Varnish Cache 7.1)\n\
         Varnish Cache: Copyright (c) 2006 Verdens Gang AS, Copyright (c) 2006-2022 Varnish Software\n",
        tool.name(),
        env!("CARGO_PKG_VERSION")
    )
}

/// A command line the tool refuses: the message, then the usage, on
/// standard error.
fn usage_error(tool: Tool, msg: &str) -> ExitCode {
    if !msg.is_empty() {
        eprintln!("{msg}");
    }
    eprint!("{}", usage(tool));
    ExitCode::from(1)
}

fn error(msg: &str) -> ExitCode {
    eprintln!("{msg}");
    ExitCode::from(1)
}

/// Runs `tool` with `args` (the arguments after the program's name).
pub fn run(tool: Tool, args: &[String]) -> ExitCode {
    let p = match getopt(tool, args) {
        Ok(p) => p,
        Err(e) => return usage_error(tool, &e),
    };
    if p.has('h') {
        // varnishadm's usage goes to standard error, the others' to output.
        if tool == Tool::Adm {
            eprint!("{}", usage(tool));
        } else {
            print!("{}", usage(tool));
        }
        return ExitCode::SUCCESS;
    }
    if p.has('V') {
        print!("{}", version(tool));
        return ExitCode::SUCCESS;
    }
    if tool != Tool::Adm && !p.operands.is_empty() {
        return usage_error(tool, "");
    }
    if matches!(tool, Tool::Log | Tool::Ncsa) {
        match daemonize(tool, &p) {
            Ok(Some(done)) => return done,
            Ok(None) => {}
            Err(e) => return error(&e),
        }
    }
    let r = match tool {
        Tool::Log => log(&p),
        Tool::Ncsa => ncsa(&p),
        Tool::Stat => stat(&p),
        Tool::Adm => return adm(&p),
    };
    r.unwrap_or_else(|e| error(&e))
}

/// `-t seconds|off`: the VSM connection timeout, negative for `off`.
fn vsm_timeout(p: &Parsed) -> Result<Option<f64>, String> {
    match p.last('t') {
        None => Ok(None),
        Some("off") => Ok(Some(-1.0)),
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(format!("-t: Invalid argument: {t}")),
        },
    }
}

/// `-g`: a grouping named by a prefix of its name, as the VSL API takes it.
fn grouping(arg: &str, allowed: &[&str]) -> Result<String, String> {
    let names = ["raw", "vxid", "request", "session"];
    let hits: Vec<&str> = names.iter().copied().filter(|n| n.starts_with(arg) && !arg.is_empty()).collect();
    match hits.as_slice() {
        [one] if allowed.contains(one) => Ok(one.to_string()),
        [one] => Err(format!("Invalid grouping mode: {one}")),
        [] => Err(format!("Unknown grouping type: {arg}")),
        _ => Err(format!("Ambiguous grouping type: {arg}")),
    }
}

/// `-n` and `-r`, which exclude each other; the default working
/// directory when neither is given.
fn source(p: &Parsed) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    match (p.last('n'), p.last('r')) {
        (Some(_), Some(_)) => Err("Only one of -n and -r options may be used".into()),
        (n, Some(r)) => Ok((n.map(PathBuf::from), Some(PathBuf::from(r)))),
        (n, None) => Ok((Some(n.map_or_else(lacquer_shm::default_workdir, PathBuf::from)), None)),
    }
}

/// `-k num`.
fn limit(p: &Parsed) -> Result<Option<u64>, String> {
    p.last('k').map(|k| k.parse::<u64>().map_err(|_| format!("-k: Invalid number '{k}'"))).transpose()
}

/// `-q` queries and `-Q` files, in the order given: one query whose lines
/// are each a query, any of which may match (vsl-query(7)).
fn query(p: &Parsed) -> Result<Option<String>, String> {
    let mut lines = Vec::new();
    for (c, v) in &p.opts {
        match c {
            'q' => lines.push(v.clone()),
            'Q' => {
                lines.push(std::fs::read_to_string(v).map_err(|e| format!("-Q {v}: {}", lacquer_shm::os_message(&e)))?)
            }
            _ => {}
        }
    }
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}

fn log_options(p: &Parsed, groupings: &[&str]) -> Result<lacquer_shm::LogOptions, String> {
    let (workdir, read) = source(p)?;
    let grouping = p.last('g').map(|g| grouping(g, groupings)).transpose()?;
    let timeout = match p.last('T') {
        None => None,
        Some(t) => Some(
            t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or(format!("-T: Invalid argument: {t}"))?,
        ),
    };
    Ok(lacquer_shm::LogOptions {
        workdir,
        grouping,
        dump: p.has('d'),
        query: query(p)?,
        filters: p.opts.iter().filter(|(c, _)| matches!(c, 'i' | 'x' | 'I' | 'X')).cloned().collect(),
        client: p.has('c'),
        backend: p.has('b'),
        esi: p.has('E'),
        read,
        write: None,
        limit: limit(p)?,
        timeout,
        wait: vsm_timeout(p)?,
        caseless: p.has('C'),
        verbose: p.has('v'),
        text: p.has('A'),
        append: p.has('a'),
        unbuffered: p.has('u'),
        rate: p.last('R').map(rate).transpose()?,
        incomplete: p.last('L').map(incomplete).transpose()?,
    })
}

/// `-R limit[/duration]`: at most `limit` groups per duration (a second
/// by default), worded as the VUT library words its errors.
fn rate(arg: &str) -> Result<(u64, f64), String> {
    let (n, per) = match arg.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (arg, None),
    };
    let n: i64 = n.parse().map_err(|_| "-R: Syntax error".to_string())?;
    if n <= 0 || n > i64::from(i32::MAX) {
        return Err("-R: Range error".into());
    }
    let secs = match per {
        None => 1.0,
        Some(d) => duration(d).filter(|s| *s > 0.0).ok_or("-R: Syntax error: Invalid duration")?,
    };
    Ok((n as u64, secs))
}

/// A duration as Varnish writes them: a number and a unit (`ms`, `s`, `m`,
/// `h`, `d`, `w`, `y`), in seconds; `None` if it is not one (numbers
/// longer than 15 characters are refused, as too precise to be meant).
fn duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let mult = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 604_800.0,
        "y" => 31_536_000.0,
        _ => return None,
    };
    // A unit alone is one of it (`10/s`).
    let v: f64 = if num.is_empty() { 1.0 } else { num.parse().ok()? };
    (v.is_finite() && num.len() <= 15).then_some(v * mult)
}

/// `-L limit`: a positive number of incomplete transactions.
fn incomplete(arg: &str) -> Result<usize, String> {
    match arg.parse::<i64>() {
        Ok(n) if n > 0 && n <= i64::from(i32::MAX) => Ok(n as usize),
        Ok(_) => Err("-L: Range error".into()),
        Err(_) => Err("-L: Syntax error".into()),
    }
}

/// `-D` (with `-P`): the tool goes on in the background, as a process of
/// its own, and the command returns at once; `-P` names a file that gets
/// that process's id. Without `-D`, `-P` gets this process's id.
fn daemonize(tool: Tool, p: &Parsed) -> Result<Option<ExitCode>, String> {
    use std::os::unix::process::CommandExt;
    let pid_file = p.last('P');
    if !p.has('D') {
        if let Some(f) = pid_file {
            std::fs::write(f, format!("{}\n", std::process::id()))
                .map_err(|e| format!("Cannot write pid file: {e}"))?;
        }
        return Ok(None);
    }
    match p.last('w') {
        None => return Err("Missing -w option".into()),
        Some("-") => return Err("Daemon cannot write to stdout".into()),
        Some(_) => {}
    }
    let mut args = Vec::new();
    for (c, v) in p.opts.iter().filter(|(c, _)| !matches!(c, 'D' | 'P')) {
        args.push(format!("-{c}"));
        if tool.options().iter().any(|o| o.0 == *c && o.1.is_some()) {
            args.push(v.clone());
        }
    }
    let me = std::env::current_exe().map_err(|e| format!("Cannot find my own executable: {e}"))?;
    let child = std::process::Command::new(me)
        .arg0(tool.name())
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("Cannot daemonize: {e}"))?;
    if let Some(f) = pid_file {
        std::fs::write(f, format!("{}\n", child.id())).map_err(|e| format!("Cannot write pid file: {e}"))?;
    }
    Ok(Some(ExitCode::SUCCESS))
}

fn log(p: &Parsed) -> Result<ExitCode, String> {
    let mut o = log_options(p, &["raw", "vxid", "request", "session"])?;
    o.write = p.last('w').map(PathBuf::from);
    Ok(ExitCode::from(lacquer_shm::run_log(&o)))
}

fn ncsa(p: &Parsed) -> Result<ExitCode, String> {
    let log = log_options(p, &["vxid", "request"])?;
    let opts = lacquer_shm::NcsaOptions {
        log,
        format: p.last('F').map(str::to_string),
        format_file: p.last('f').map(PathBuf::from),
        backend: p.has('b'),
        client: p.has('c'),
        esi: p.has('E'),
        write: p.last('w').map(PathBuf::from),
        json: p.has('j'),
    };
    Ok(ExitCode::from(lacquer_shm::run_ncsa(&opts)))
}

fn stat(p: &Parsed) -> Result<ExitCode, String> {
    // -f, -I and -X in the order given; -X is an excluding -f.
    let filters = p
        .opts
        .iter()
        .filter_map(|(c, v)| match c {
            'f' | 'I' => Some(v.clone()),
            'X' => Some(format!("^{v}")),
            _ => None,
        })
        .collect();
    let opts = lacquer_shm::StatOptions {
        workdir: Some(p.last('n').map_or_else(lacquer_shm::default_workdir, PathBuf::from)),
        once: p.has('1'),
        json: p.has('j'),
        list: p.has('l'),
        xml: p.has('x'),
        filters,
        wait: vsm_timeout(p)?,
        prometheus: None,
    };
    Ok(ExitCode::from(lacquer_shm::run_stat(&opts)))
}

/// varnishadm: `-T` and `-S`, or `-n` to find both in the working
/// directory; `-p` prints each answer's status line as well.
fn adm(p: &Parsed) -> ExitCode {
    let timeout = match p.last('t') {
        None => 5.0,
        Some(t) => match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v,
            _ => {
                eprintln!("-t: Invalid argument: {t}");
                return ExitCode::from(2);
            }
        },
    };
    if p.has('n') && (p.has('T') || p.has('S')) {
        return usage_error(Tool::Adm, "");
    }
    let (address, secret) = match (p.last('T'), p.last('n')) {
        (Some(t), _) => (t.to_string(), p.last('S').map(PathBuf::from)),
        (None, n) => {
            let dir = n.map_or_else(lacquer_shm::default_workdir, PathBuf::from);
            match lacquer_cli::Endpoint::find(&dir) {
                Ok(e) => (e.address, Some(e.secret)),
                Err(_) => {
                    eprintln!("Could not get hold of varnishd, is it running?");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let mode = if p.has('p') { crate::adm::Mode::Pass } else { crate::adm::Mode::Plain };
    crate::adm::run(&address, secret.as_deref(), timeout, &p.operands, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn getopt_clusters_and_arguments() {
        let p = getopt(Tool::Log, &args("-dg raw -ifoo -n dir")).unwrap();
        assert_eq!(p.opts, vec![('d', "".into()), ('g', "raw".into()), ('i', "foo".into()), ('n', "dir".into())]);
        let p = getopt(Tool::Stat, &args("-t -1")).unwrap();
        assert_eq!(p.last('t'), Some("-1"));
        assert_eq!(getopt(Tool::Log, &args("-K")).err().unwrap(), "varnishlog: invalid option -- 'K'");
        assert_eq!(getopt(Tool::Log, &args("-g")).err().unwrap(), "varnishlog: option requires an argument -- 'g'");
        let p = getopt(Tool::Adm, &args("-n d param.show -j")).unwrap();
        assert_eq!(p.operands, args("param.show -j"));
    }

    #[test]
    fn rates_and_limits_as_vut_reads_them() {
        assert_eq!(rate("10/s").unwrap(), (10, 1.0));
        assert_eq!(rate("100").unwrap(), (100, 1.0));
        assert_eq!(rate("5/2m").unwrap(), (5, 120.0));
        assert_eq!(rate("1foo").unwrap_err(), "-R: Syntax error");
        for r in ["0", "-1", "3000000000"] {
            assert_eq!(rate(r).unwrap_err(), "-R: Range error", "{r}");
        }
        for r in ["10/0s", "10/-10s", "10/1q", "10/11f09s"] {
            assert_eq!(rate(r).unwrap_err(), "-R: Syntax error: Invalid duration", "{r}");
        }
        assert!(rate("1000000000/1000000000000000000000000000000s").unwrap_err().starts_with("-R: Syntax error"));
        assert_eq!(incomplete("0").unwrap_err(), "-L: Range error");
        assert_eq!(incomplete("12").unwrap(), 12);
    }

    #[test]
    fn groupings_by_prefix() {
        let all = ["raw", "vxid", "request", "session"];
        assert_eq!(grouping("req", &all).unwrap(), "request");
        assert_eq!(grouping("r", &all).unwrap_err(), "Ambiguous grouping type: r");
        assert_eq!(grouping("foo", &all).unwrap_err(), "Unknown grouping type: foo");
        assert_eq!(grouping("session", &["vxid", "request"]).unwrap_err(), "Invalid grouping mode: session");
    }

    #[test]
    fn usage_from_the_table() {
        let u = usage(Tool::Stat);
        assert!(u.starts_with("Usage: varnishstat <options>\n"));
        assert!(u.contains(" [-f <glob>]               Legacy field filtering glob\n"), "{u}");
        assert_eq!(Tool::by_name(OsStr::new("/usr/bin/varnishncsa")), Some(Tool::Ncsa));
        assert_eq!(Tool::by_name(OsStr::new("lacquer")), None);
    }
}
