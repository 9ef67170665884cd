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
    Opt('b', None, "Only display backend records"),
    Opt('c', None, "Only display client records"),
    Opt('d', None, "Process old log entries and exit"),
    Opt('E', None, "Display ESI transactions"),
    Opt('g', Some("session|request|vxid|raw"), "Grouping mode (default: vxid)"),
    Opt('h', None, "Usage help"),
    Opt('i', Some("taglist"), "Include tags"),
    Opt('I', Some("[taglist:]regex"), "Include by regex"),
    Opt('k', Some("num"), "Limit transactions"),
    Opt('n', Some("dir"), "varnishd working directory"),
    Opt('Q', Some("file"), "VSL query file"),
    Opt('q', Some("query"), "VSL query"),
    Opt('r', Some("filename"), "Binary file input"),
    Opt('t', Some("seconds|off"), "VSM connection timeout"),
    Opt('T', Some("seconds"), "Transaction end timeout"),
    Opt('u', None, "Unbuffered output"),
    Opt('V', None, "Version"),
    Opt('w', Some("filename"), "Output filename"),
    Opt('x', Some("taglist"), "Exclude tags"),
    Opt('X', Some("[taglist:]regex"), "Exclude by regex"),
];

const NCSA_OPTS: &[Opt] = &[
    Opt('b', None, "Backend mode"),
    Opt('c', None, "Client mode"),
    Opt('d', None, "Process old log entries and exit"),
    Opt('E', None, "Show ESI requests"),
    Opt('F', Some("format"), "Set output format"),
    Opt('f', Some("formatfile"), "Read output format from file"),
    Opt('g', Some("request|vxid"), "Grouping mode (default: vxid)"),
    Opt('h', None, "Usage help"),
    Opt('j', None, "Make output JSON-compatible"),
    Opt('k', Some("num"), "Limit transactions"),
    Opt('n', Some("dir"), "varnishd working directory"),
    Opt('Q', Some("file"), "VSL query file"),
    Opt('q', Some("query"), "VSL query"),
    Opt('r', Some("filename"), "Binary file input"),
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
            'Q' => lines.push(std::fs::read_to_string(v).map_err(|e| format!("-Q {v}: {}", io_message(&e)))?),
            _ => {}
        }
    }
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}

/// An I/O error's message as strerror(3) words it, without Rust's
/// `(os error N)`.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
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
    })
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
