//! Reading an instance's shared-memory log, whoever wrote it: the one
//! abstraction the log follower (`vsl|` lines, `-vsl_catchup`) and
//! `logexpect` read through.
//!
//! - **Lacquer** (`lacquer serve`) writes `<workdir>/_.vsl`, read in
//!   process with `lacquer-shm`'s [`ShmReader`].
//! - **varnishd** writes its own shared memory, which only libvarnishapi
//!   reads; the runner reads it through `varnishlog -n DIR -g raw -w -`,
//!   followed as a child process: its binary output is varnishlog 7.1's
//!   file format (`VSL\0`, then records in the layout `lacquer-shm`
//!   decodes), so records arrive exactly as logged, tags as numbers.
//!
//! varnishtest places its log cursors synchronously, in its own process;
//! a `varnishlog` child attaches some time after it is started. To know
//! when it has, the runner sends a *marker* over the CLI — a command
//! varnishd does not know, which its child logs (`CLI Rd
//! lacquer-vtc-mark-N`, then its `Wr 101` answer) — and waits for the
//! reader to see it. Markers and their answers are removed from what the
//! readers hand out, so no test sees them. They serve three ends:
//!
//! - attaching: a `logexpect` started while the child runs sees every
//!   record logged after `-start` returns, as varnishtest's does;
//! - `-d 1` (from the oldest record, then following), which varnishlog
//!   has no mode for: a follower is attached and synchronized with marker
//!   N, then `varnishlog -d` dumps the log up to its end; the records are
//!   the dump's up to marker N, then the follower's after it;
//! - `-vsl_catchup`: everything logged before the call has been read
//!   once the follower has read a marker sent by the call.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lacquer_shm::record::{record_size, OVERHEAD};
use lacquer_shm::{ReadEvent, Record, ShmReader, Start, Tag};

use crate::cli::{marker_in, Cli};
use crate::ctx::{kill_group, Ctx};

/// How often an unsynchronized reader sends a marker.
const MARK_EVERY: Duration = Duration::from_millis(100);

/// Where an instance's log is read from.
#[derive(Clone)]
pub enum LogSource {
    /// Lacquer's `<workdir>/_.vsl`.
    Lacquer,
    /// varnishd's log, through `varnishlog`, synchronized over `cli`.
    Varnishlog { program: PathBuf, cli: Arc<Cli> },
}

/// A reader of one instance's log.
pub trait LogReader: Send {
    /// What was logged since the last call (`None`: nothing new).
    fn next_event(&mut self) -> Result<Option<ReadEvent>, String>;
    /// The number of the last marker read (0 for a log without markers).
    fn marks_seen(&self) -> u64 {
        0
    }
}

impl LogSource {
    /// A reader of the log in `workdir`: from the oldest record still in
    /// it (`from_start`, logexpect's `-d 1`), else from what is logged
    /// next. With `running` (the instance's child runs), a varnishd
    /// reader is attached before this returns.
    pub fn open(&self, workdir: &Path, from_start: bool, running: bool) -> Result<Box<dyn LogReader>, String> {
        match self {
            LogSource::Lacquer => {
                let start = if from_start { Start::Tail } else { Start::Head };
                // The log may not exist yet (the instance is starting): it
                // is then read from its first record once it appears.
                let reader = ShmReader::open(workdir, start).ok();
                Ok(Box::new(ShmLog { workdir: workdir.to_path_buf(), reader }))
            }
            LogSource::Varnishlog { program, cli } => {
                let mut r = VarnishLog::spawn(program, workdir, cli.clone(), from_start)?;
                if running {
                    r.sync(Duration::from_secs(10))?;
                }
                Ok(Box::new(r))
            }
        }
    }
}

/// Lacquer's log, read in process.
struct ShmLog {
    workdir: PathBuf,
    reader: Option<ShmReader>,
}

impl LogReader for ShmLog {
    fn next_event(&mut self) -> Result<Option<ReadEvent>, String> {
        match self.reader.as_mut() {
            Some(r) => r.next_event().map_err(|e| format!("reading the log: {e}")),
            None => {
                self.reader = ShmReader::open(&self.workdir, Start::Tail).ok();
                Ok(None)
            }
        }
    }
}

/// What the thread reading a `varnishlog` hands over.
enum Item {
    Rec(Record),
    Mark(u64),
}

/// Removes markers and their answers from a stream of records: a marker
/// becomes `Item::Mark`, the `CLI Wr` record after it disappears.
#[derive(Default)]
struct Sifter {
    drop_answer: bool,
}

impl Sifter {
    fn sift(&mut self, r: Record) -> Option<Item> {
        if r.tag == Tag::CLI as u8 && r.vxid == 0 {
            if let Some(n) = marker_in(r.payload()) {
                self.drop_answer = true;
                return Some(Item::Mark(n));
            }
            if self.drop_answer && r.payload().starts_with(b"Wr ") {
                self.drop_answer = false;
                return None;
            }
        }
        Some(Item::Rec(r))
    }
}

/// Reads varnishlog's binary output (`-w -`): the file magic, then
/// records; `None` at its end.
fn read_record(r: &mut impl Read) -> Option<Record> {
    let mut head = [0u8; OVERHEAD];
    r.read_exact(&mut head).ok()?;
    let w0 = u32::from_le_bytes(head[0..4].try_into().ok()?);
    let len = (w0 & 0xffff) as usize;
    let mut buf = head.to_vec();
    buf.resize(record_size(len), 0);
    r.read_exact(&mut buf[OVERHEAD..]).ok()?;
    Record::decode(&buf).map(|(rec, _)| rec)
}

fn check_magic(r: &mut impl Read) -> Result<(), String> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(|e| format!("varnishlog wrote nothing: {e}"))?;
    if &magic != lacquer_shm::file::FILE_MAGIC {
        return Err(format!("varnishlog output is not a VSL file ({magic:?})"));
    }
    Ok(())
}

/// varnishd's log through a `varnishlog` child process.
struct VarnishLog {
    child: Child,
    rx: Receiver<Item>,
    program: PathBuf,
    workdir: PathBuf,
    cli: Arc<Cli>,
    /// Whether a marker has been read (the reader is attached, and for
    /// `from_start` the dump has been spliced in).
    synced: bool,
    /// Whether any record has been read (the child runs).
    alive: bool,
    last_mark: Option<Instant>,
    marks_seen: u64,
    pending: VecDeque<Record>,
}

impl VarnishLog {
    fn spawn(program: &Path, workdir: &Path, cli: Arc<Cli>, from_start: bool) -> Result<VarnishLog, String> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .arg("-n")
            .arg(workdir)
            .args(["-g", "raw", "-t", "off", "-u", "-w", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let mut out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if check_magic(&mut out).is_err() {
                return;
            }
            let mut sifter = Sifter::default();
            while let Some(rec) = read_record(&mut out) {
                if let Some(item) = sifter.sift(rec) {
                    if tx.send(item).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(VarnishLog {
            child,
            rx,
            program: program.to_path_buf(),
            workdir: workdir.to_path_buf(),
            cli,
            synced: !from_start,
            alive: false,
            last_mark: None,
            marks_seen: 0,
            pending: VecDeque::new(),
        })
    }

    /// Waits until a marker has been read, sending them as needed.
    fn sync(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let seen = self.marks_seen;
        loop {
            // Any marker read from now on was logged while attached.
            if self.marks_seen > seen {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not attach to the log within {} s",
                    self.program.display(),
                    limit.as_secs()
                ));
            }
            if self.last_mark.is_none_or(|t| t.elapsed() >= MARK_EVERY) {
                self.last_mark = Some(Instant::now());
                self.cli.mark()?;
            }
            if !self.pump(Duration::from_millis(10))? {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Takes what the reading thread has, waiting up to `wait` for the
    /// first item; returns whether anything came.
    fn pump(&mut self, wait: Duration) -> Result<bool, String> {
        let mut got = false;
        let first = match self.rx.recv_timeout(wait) {
            Ok(i) => Some(i),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.died()),
        };
        let mut next = first;
        while let Some(item) = next.take() {
            got = true;
            match item {
                Item::Rec(r) => {
                    self.alive = true;
                    // Before the first marker, `-d 1` takes the records
                    // from the dump instead.
                    if self.synced {
                        self.pending.push_back(r);
                    }
                }
                Item::Mark(n) => {
                    self.marks_seen = self.marks_seen.max(n);
                    if !self.synced {
                        let dumped = self.dump_until(n)?;
                        for (k, r) in dumped.into_iter().enumerate() {
                            self.pending.insert(k, r);
                        }
                        self.synced = true;
                    }
                }
            }
            next = match self.rx.try_recv() {
                Ok(i) => Some(i),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return Err(self.died()),
            };
        }
        Ok(got)
    }

    /// The log from its oldest record up to marker `n`, dumped with
    /// `varnishlog -d`.
    fn dump_until(&self, n: u64) -> Result<Vec<Record>, String> {
        let out = Command::new(&self.program)
            .arg("-n")
            .arg(&self.workdir)
            .args(["-g", "raw", "-d", "-t", "off", "-w", "-"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let mut bytes = out.stdout.as_slice();
        check_magic(&mut bytes)?;
        let mut sifter = Sifter::default();
        let mut recs = Vec::new();
        while let Some(r) = read_record(&mut bytes) {
            match sifter.sift(r) {
                Some(Item::Mark(m)) if m == n => return Ok(recs),
                Some(Item::Rec(r)) => recs.push(r),
                _ => {}
            }
        }
        Err(format!("the dump of the log (varnishlog -d) lacks marker {n}: the log wrapped around"))
    }

    fn died(&mut self) -> String {
        let status =
            self.child.try_wait().ok().flatten().map(|s| s.to_string()).unwrap_or_else(|| "closed its output".into());
        format!("{} stopped reading the log ({status})", self.program.display())
    }
}

impl LogReader for VarnishLog {
    fn next_event(&mut self) -> Result<Option<ReadEvent>, String> {
        // `-d 1` needs a marker once the child runs; sent from here when
        // the reader was opened before the child started.
        if !self.synced && self.alive && self.last_mark.is_none_or(|t| t.elapsed() >= MARK_EVERY) {
            self.last_mark = Some(Instant::now());
            self.cli.mark()?;
        }
        self.pump(Duration::ZERO)?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        Ok(Some(ReadEvent::Records(self.pending.drain(..).collect())))
    }

    fn marks_seen(&self) -> u64 {
        self.marks_seen
    }
}

impl Drop for VarnishLog {
    fn drop(&mut self) {
        kill_group(&mut self.child, "KILL");
        let _ = self.child.wait();
    }
}

/// A record as varnishtest's log thread prints it: `vsl|`, the vxid in
/// ten columns, the tag in fifteen, the side, and the payload (in hex,
/// between brackets, for a binary tag).
pub fn vsl_line(rec: &Record) -> String {
    let payload = if rec.tag().is_some_and(|t| t.is_binary()) {
        let hex: String = rec.payload().iter().map(|b| format!("{b:02x}")).collect();
        format!("[{hex}]")
    } else {
        String::from_utf8_lossy(rec.payload()).into_owned()
    };
    format!("vsl| {:>10} {:<15} {} {payload}", rec.vxid, rec.tag_name(), rec.side.letter())
}

/// The thread copying an instance's log into the test's log, as
/// varnishtest's `varnishlog_thread` does, counting the times it found
/// the log read to its head (`idle`) and the last marker it read.
pub struct Follower {
    stop: Arc<AtomicBool>,
    idle: Arc<AtomicU64>,
    marks: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Follows `reader`, logging under `name`.
    pub fn start(ctx: &Arc<Ctx>, name: &str, mut reader: Box<dyn LogReader>) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicU64::new(0));
        let marks = Arc::new(AtomicU64::new(0));
        let (c, n, s, i, m) = (ctx.clone(), name.to_string(), stop.clone(), idle.clone(), marks.clone());
        let thread = std::thread::spawn(move || {
            // After a stop, or at the end of the test, one last pass reads
            // what the instance logged meanwhile.
            let mut last_pass = false;
            loop {
                if s.load(Ordering::SeqCst) || c.aborted() {
                    if last_pass {
                        return;
                    }
                    last_pass = true;
                }
                let mut lines = String::new();
                loop {
                    match reader.next_event() {
                        Ok(Some(ReadEvent::Records(recs))) => {
                            for rec in recs {
                                lines.push_str(&vsl_line(&rec));
                                lines.push('\n');
                            }
                        }
                        Ok(Some(ReadEvent::Overrun(lost))) => lines.push_str(&format!("vsl| overrun, {lost} bytes\n")),
                        Ok(Some(ReadEvent::Reopened)) => lines.push_str("vsl| log reacquired\n"),
                        Ok(None) => break,
                        Err(e) => {
                            lines.push_str(&format!("vsl| {e}\n"));
                            if !lines.is_empty() {
                                c.say(&n, &lines);
                            }
                            // Nothing more will come: catching up is
                            // over at once.
                            m.store(u64::MAX, Ordering::SeqCst);
                            i.store(u64::MAX / 2, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                if !lines.is_empty() {
                    c.say(&n, &lines);
                }
                m.store(reader.marks_seen(), Ordering::SeqCst);
                i.fetch_add(1, Ordering::SeqCst);
                if !last_pass {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Follower { stop, idle, marks, thread: Some(thread) }
    }

    /// Waits until the thread has read the log to its head once more
    /// after this call (a log without markers). Returns early if the test
    /// is aborted.
    pub fn catchup_idle(&self, ctx: &Ctx) {
        let seen = self.idle.load(Ordering::SeqCst);
        // Two passes: the one running now may have started before the
        // last records were written.
        while self.idle.load(Ordering::SeqCst) < seen.saturating_add(2) && !ctx.aborted() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the thread has read a marker sent over `cli` after
    /// this call, sending another now and then in case the reader was
    /// not yet attached when one was logged.
    pub fn catchup_marked(&self, ctx: &Ctx, cli: &Cli, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let n = cli.mark()?;
            let again = Instant::now() + Duration::from_millis(500);
            while Instant::now() < again {
                if self.marks.load(Ordering::SeqCst) >= n || ctx.aborted() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if Instant::now() >= deadline {
                return Err(format!("the log reader did not catch up within {} s", limit.as_secs()));
            }
        }
    }

    /// Stops the thread, after one last read.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacquer_shm::Side;

    #[test]
    fn markers_and_their_answers_are_sifted_out() {
        let recs = [
            Record::text(Tag::CLI, 0, Side::None, "Rd lacquer-vtc-mark-3 "),
            Record::text(Tag::CLI, 0, Side::None, "Wr 101 44 Unknown request."),
            Record::text(Tag::CLI, 0, Side::None, "Rd ping"),
            Record::text(Tag::CLI, 0, Side::None, "Wr 200 19 PONG"),
        ];
        let mut s = Sifter::default();
        let out: Vec<String> = recs
            .into_iter()
            .filter_map(|r| match s.sift(r)? {
                Item::Mark(n) => Some(format!("mark {n}")),
                Item::Rec(r) => Some(r.payload_str().into_owned()),
            })
            .collect();
        assert_eq!(out, ["mark 3", "Rd ping", "Wr 200 19 PONG"]);
    }

    #[test]
    fn binary_output_reads_back() {
        let mut bytes = lacquer_shm::file::FILE_MAGIC.to_vec();
        Record::text(Tag::ReqURL, 1001, Side::Client, "/foo").encode(&mut bytes);
        Record::text(Tag::BerespStatus, 1002, Side::Backend, "200").encode(&mut bytes);
        let mut r = bytes.as_slice();
        check_magic(&mut r).unwrap();
        let a = read_record(&mut r).unwrap();
        let b = read_record(&mut r).unwrap();
        assert!(read_record(&mut r).is_none());
        assert_eq!(vsl_line(&a), "vsl|       1001 ReqURL          c /foo");
        assert_eq!((b.vxid, b.side.letter()), (1002, 'b'));
    }
}
