//! `lacquer log`: varnishlog, reading Lacquer's shared-memory log or a
//! binary log file, grouping, filtering and printing as varnishlog does.
//! The command line is parsed in the `lacquer` binary; this is the work.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::file::{read_file, FileWriter};
use crate::group::{Group, Grouper, Grouping};
use crate::print::{print_group, Filter};
use crate::query::Query;
use crate::record::Record;
use crate::ring::{ReadEvent, ShmReader, Start};
use lacquer_defs::Tag;

/// The options of `lacquer log`, named after varnishlog's.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `-n`: the server's working directory.
    pub workdir: Option<PathBuf>,
    /// `-g`: `raw`, `vxid` (default), `request` or `session`.
    pub grouping: Option<String>,
    /// `-d`: start at the oldest record and stop at the end of the log.
    pub dump: bool,
    /// `-q`: a query; only matching groups are shown.
    pub query: Option<String>,
    /// `-i`/`-x`/`-I`/`-X` in the order given: (option letter, argument).
    pub filters: Vec<(char, String)>,
    /// `-c`: only client-side records.
    pub client: bool,
    /// `-b`: only backend-side records.
    pub backend: bool,
    /// `-E`: ESI requests too.
    pub esi: bool,
    /// `-r`: read this binary log file instead of shared memory.
    pub read: Option<PathBuf>,
    /// `-w`: write matching records to this binary log file.
    pub write: Option<PathBuf>,
    /// `-k`: stop after this many groups.
    pub limit: Option<u64>,
    /// `-T`: seconds after which an incomplete transaction is shown anyway
    /// (default 120).
    pub timeout: Option<f64>,
    /// `-t`: seconds to wait for the log to appear (default 5; `off` is
    /// forever, given as a negative value).
    pub wait: Option<f64>,
    /// `-C`: `-I` and `-X` regular expressions ignore case.
    pub caseless: bool,
    /// `-v`: grouped records printed with their vxid and side.
    pub verbose: bool,
    /// `-A`: `-w` writes text, as printed, instead of binary records.
    pub text: bool,
    /// `-a`: `-w` appends to the file instead of replacing it.
    pub append: bool,
    /// `-u`: output flushed after every group, even with `-d` or `-r`.
    pub unbuffered: bool,
    /// `-R`: at most this many groups per this many seconds; the others
    /// are dropped.
    pub rate: Option<(u64, f64)>,
    /// `-L`: with more incomplete transactions than this, all of them
    /// are shown as they are.
    pub incomplete: Option<usize>,
}

/// Set by SIGHUP: the `-w` file is to be reopened (log rotation).
static HUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_hup(_: libc::c_int) {
    HUP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGHUP ask for the output file to be reopened, as varnishlog
/// and varnishncsa do for log rotation.
pub(crate) fn reopen_on_hup() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
    }
}

/// Set by SIGINT and SIGTERM: stop, flushing what was shown.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM end the tool cleanly, as the Varnish tools
/// end: output flushed, or, while still waiting for the log, an error.
fn stop_on_signals() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
    }
}

fn stopped() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Whether a SIGHUP came since the last call.
pub(crate) fn hup_received() -> bool {
    HUP.swap(false, std::sync::atomic::Ordering::SeqCst)
}

/// `-R`: a budget of groups per period.
struct Rate {
    limit: u64,
    period: Duration,
    start: Instant,
    used: u64,
}

impl Rate {
    /// Whether one more group may be shown now.
    fn admit(&mut self) -> bool {
        if self.start.elapsed() >= self.period {
            self.start = Instant::now();
            self.used = 0;
        }
        self.used += 1;
        self.used <= self.limit
    }
}

/// Opens the `-w` file as the options say: text or binary records,
/// appended or replacing; `-` is standard output.
fn open_output<'s>(path: &std::path::Path, o: &LogOptions) -> io::Result<Out<'s>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("Cannot open output file ({})", crate::os_message(&e)));
    if o.text {
        let w: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(o.append)
                    .truncate(!o.append)
                    .open(path)
                    .map_err(named)?,
            )
        };
        return Ok(Out::Text(io::BufWriter::new(w)));
    }
    Ok(Out::File(FileWriter::open(path, o.append).map_err(named)?))
}

/// Another tool's use of each group: called with the group and whether
/// the log is being followed live (then it should flush).
pub(crate) type Lines<'s> = &'s mut dyn FnMut(&Group, bool) -> io::Result<()>;

/// What becomes of each group shown.
enum Out<'s> {
    Text(io::BufWriter<Box<dyn Write>>),
    File(FileWriter),
    Lines(Lines<'s>),
}

struct Run<'s> {
    grouper: Grouper,
    filter: Filter,
    query: Option<Query>,
    out: Out<'s>,
    shown: u64,
    limit: Option<u64>,
    live: bool,
    rate: Option<Rate>,
    incomplete: Option<usize>,
    /// The `-w` file, reopened on SIGHUP.
    reopen: Option<(PathBuf, LogOptions)>,
}

impl Run<'_> {
    /// Shows every finished group; `false` when `-k` is reached.
    fn drain(&mut self) -> io::Result<bool> {
        while let Some(g) = self.grouper.pop() {
            if !self.show(&g)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn show(&mut self, g: &Group) -> io::Result<bool> {
        if self.limit.is_some_and(|k| self.shown >= k) {
            return Ok(false);
        }
        if let Some(q) = &self.query {
            if !q.matches(g) {
                return Ok(true);
            }
        }
        if self.rate.as_mut().is_some_and(|r| !r.admit()) {
            return Ok(true);
        }
        if let Some((path, o)) = &self.reopen {
            if hup_received() {
                self.out = open_output(path, o)?;
            }
        }
        self.shown += 1;
        match &mut self.out {
            Out::Text(w) => {
                print_group(w, g, &self.filter)?;
                if self.live {
                    w.flush()?;
                }
            }
            Out::File(w) => {
                // Begin, Link and End are always kept: without them the
                // file could not be grouped again, as varnishlog keeps them.
                let structure = |r: &Record| matches!(r.tag(), Some(Tag::Begin | Tag::Link | Tag::End));
                for r in g.iter().flat_map(|t| t.records.iter()).filter(|r| structure(r) || self.filter.matches(r)) {
                    w.write(r)?;
                }
                if self.live {
                    w.flush()?;
                }
            }
            Out::Lines(f) => f(g, self.live)?,
        }
        Ok(self.limit.is_none_or(|k| self.shown < k))
    }

    fn feed(&mut self, recs: Vec<Record>) -> io::Result<bool> {
        for r in recs {
            self.grouper.feed(r);
            if self.incomplete.is_some_and(|l| self.grouper.pending() > l) {
                self.grouper.flush_all();
            }
            if !self.drain()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// At the end of `-d` or `-r`. Groups still incomplete are left out,
    /// as varnishlog leaves them out.
    fn finish(&mut self) -> io::Result<()> {
        match &mut self.out {
            Out::Text(w) => w.flush(),
            Out::File(w) => w.flush(),
            Out::Lines(_) => Ok(()),
        }
    }
}

/// Runs `lacquer log`; returns the exit status. Errors are printed as
/// varnishlog prints them.
pub fn run(o: &LogOptions) -> u8 {
    match run_inner(o, None) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn usage(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Reads the log as `lacquer log` does (`-n`, `-d`, `-g`, `-q`, `-r`, `-k`,
/// `-t`, `-T`), handing each group to `lines` instead of printing it: how
/// `lacquer ncsa` reads.
pub(crate) fn run_with(o: &LogOptions, lines: Lines<'_>) -> io::Result<()> {
    run_inner(o, Some(lines))
}

fn run_inner(o: &LogOptions, lines: Option<Lines<'_>>) -> io::Result<()> {
    let grouping = match o.grouping.as_deref() {
        None => Grouping::Vxid,
        Some(g) => Grouping::parse(g).ok_or_else(|| usage(format!("Unknown grouping type: {g}")))?,
    };
    let mut filter = Filter::default();
    filter.client_only = o.client || o.esi;
    filter.esi = o.esi;
    filter.caseless = o.caseless;
    filter.verbose = o.verbose;
    filter.backend_only = o.backend;
    for (opt, arg) in &o.filters {
        match opt {
            'i' => filter.include(arg),
            'x' => filter.exclude(arg),
            'I' => filter.include_regex(arg),
            'X' => filter.exclude_regex(arg),
            _ => Err(format!("-{opt}: not a filter option")),
        }
        .map_err(usage)?;
    }
    let query = match &o.query {
        Some(q) => Some(Query::parse(q).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    let out = match (lines, &o.write) {
        (Some(f), _) => Out::Lines(f),
        (None, Some(p)) => open_output(p, o)?,
        (None, None) => Out::Text(io::BufWriter::new(Box::new(io::stdout()))),
    };
    let reopen = match &o.write {
        Some(p) if p.as_os_str() != "-" => {
            reopen_on_hup();
            Some((p.clone(), o.clone()))
        }
        _ => None,
    };
    let rate = o.rate.map(|(limit, secs)| Rate {
        limit,
        period: Duration::from_secs_f64(secs),
        start: Instant::now(),
        used: 0,
    });
    let mut run = Run {
        grouper: Grouper::new(grouping),
        filter,
        query,
        out,
        shown: 0,
        limit: o.limit,
        live: o.unbuffered,
        rate,
        incomplete: o.incomplete,
        reopen,
    };
    if let Some(path) = &o.read {
        let recs = read_file(path)?;
        if run.feed(recs)? {
            run.finish()?;
        }
        return Ok(());
    }
    let Some(dir) = &o.workdir else {
        return Err(usage("lacquer log: -n DIR (the server's working directory) or -r FILE is needed".into()));
    };
    let wait = o.wait.unwrap_or(5.0);
    let started = Instant::now();
    stop_on_signals();
    let mut reader = loop {
        if stopped() {
            return Err(io::Error::other("VSM: Attach interrupted"));
        }
        match ShmReader::open(dir, if o.dump { Start::Tail } else { Start::Head }) {
            Ok(r) => break r,
            Err(e) => {
                if wait >= 0.0 && started.elapsed().as_secs_f64() >= wait {
                    return Err(io::Error::new(e.kind(), format!("Cannot open log: {e}")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let timeout = Duration::from_secs_f64(o.timeout.unwrap_or(120.0).max(0.0));
    run.live = !o.dump || o.unbuffered;
    // With -d, the end of the log is the head as it is now.
    let end = o.dump.then(|| reader.positions().1);
    let mut last_expire = Instant::now();
    loop {
        match reader.next_event()? {
            Some(ReadEvent::Records(recs)) => {
                if !run.feed(recs)? {
                    return run.finish();
                }
            }
            Some(ReadEvent::Overrun(_)) => eprintln!("Log overrun"),
            Some(ReadEvent::Reopened) => {
                eprintln!("Log reacquired");
                if o.dump {
                    return run.finish();
                }
            }
            None => {
                if stopped() || end.is_some_and(|e| reader.positions().0 >= e) {
                    return run.finish();
                }
                if let Out::Text(w) = &mut run.out {
                    w.flush()?;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if end.is_some_and(|e| reader.positions().0 >= e) {
            return run.finish();
        }
        if last_expire.elapsed() > Duration::from_millis(500) {
            last_expire = Instant::now();
            run.grouper.expire(timeout);
            if !run.drain()? {
                return run.finish();
            }
        }
    }
}
