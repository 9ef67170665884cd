//! The `process` actor, as varnishtest's `vtc_process.c`: a command run by
//! `/bin/sh -c` in the test's temporary directory with `TERM=xterm`, its
//! standard input and output on a pseudo-terminal (24 × 80 unless
//! `-winsz` says otherwise, in the terminal's usual "sane" modes, echo
//! included, as varnishtest leaves it) and its standard error on a pipe.
//!
//! `process pNAME [SPEC] [options]`, the options run in order:
//! `-start`, `-wait`, `-run`, `-kill SIG` (`TERM`, `INT`, `KILL`, `HUP` or
//! `-N`), `-stop` (`-kill TERM`), `-close` (`-kill HUP`), `-write`,
//! `-writeln`, `-writehex`, `-expect-exit N`, `-log`, `-dump`, `-hexdump`,
//! `-need-bytes [+]N`, `-winsz LIN COL`, `-expect-text LIN COL PAT`,
//! `-expect-cursor LIN COL`, `-screen_dump` (or `-screen-dump`).
//! `-ansi-response` (answering the terminal queries a program sends) is
//! not supported: a test using it fails, naming it.
//!
//! What the terminal shows is copied verbatim to `${pNAME_out}` and fed to
//! a virtual screen (`screen.rs`) that `-expect-text` waits on; standard
//! error goes to `${pNAME_err}` and to the log. `-wait` checks how the
//! process ended: a process killed by the signal this actor last sent
//! ended well, any other signal is a failure, and an exit status must be
//! the `-expect-exit` one (0 unless told). `${pNAME_pid}` is defined
//! while the process runs. A process still running at the end of the test
//! is killed, with its process group.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ctx::{Ctx, POLL};
use crate::screen::Screen;

/// How a process's terminal output goes into the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LogMode {
    None,
    /// `-log`: line by line.
    Log,
    /// `-dump`: escaped, line by line.
    Dump,
    /// `-hexdump`: bytes in hex.
    Hexdump,
}

/// What the reading threads and the commands share.
struct Term {
    screen: Mutex<Screen>,
    /// Bytes read from the terminal so far.
    bytes: AtomicUsize,
    /// The terminal reader has seen the end.
    done: AtomicBool,
}

/// A running process.
struct Running {
    child: Child,
    /// The terminal's master side, written to by `-write`.
    master: File,
    readers: Vec<JoinHandle<()>>,
    /// Tells the readers to stop when the process is gone but something
    /// else keeps the terminal open.
    stop: Arc<AtomicBool>,
}

/// A declared process.
pub struct Process {
    name: String,
    spec: String,
    log: LogMode,
    expect_exit: i32,
    /// The signal last sent: a death by it is a good end.
    expect_signal: i32,
    winsz: (u16, u16),
    dir: PathBuf,
    term: Arc<Term>,
    running: Option<Running>,
}

type R = Result<(), String>;

impl Process {
    /// Process `name`, its directory `${tmpdir}/name`.
    pub fn new(ctx: &Ctx, name: &str) -> Result<Process, String> {
        let tmpdir = ctx.macro_value("tmpdir")?;
        let dir = PathBuf::from(tmpdir).join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("process {name}: {}: {e}", dir.display()))?;
        Ok(Process {
            name: name.to_string(),
            spec: String::new(),
            log: LogMode::None,
            expect_exit: 0,
            expect_signal: 0,
            winsz: (24, 80),
            dir,
            term: Arc::new(Term {
                screen: Mutex::new(Screen::new(24, 80)),
                bytes: AtomicUsize::new(0),
                done: AtomicBool::new(false),
            }),
            running: None,
        })
    }

    fn say(&self, ctx: &Ctx, msg: &str) {
        ctx.say(&self.name, msg);
    }

    fn screen(&self) -> std::sync::MutexGuard<'_, Screen> {
        self.term.screen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the words after `process pNAME`, macros expanded, in order.
    pub fn command(&mut self, ctx: &Arc<Ctx>, args: &[String]) -> R {
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            let arg = |k: usize| {
                args.get(i + k).cloned().ok_or_else(|| format!("process {} {a}: missing argument", self.name))
            };
            match a {
                "-start" => self.start(ctx)?,
                "-wait" => self.wait(ctx)?,
                "-run" => {
                    self.start(ctx)?;
                    self.wait(ctx)?;
                }
                "-kill" => {
                    let s = arg(1)?;
                    self.kill(ctx, &s)?;
                    i += 1;
                }
                "-stop" => self.kill(ctx, "TERM")?,
                "-close" => self.kill(ctx, "HUP")?,
                "-write" => {
                    let s = arg(1)?;
                    self.write(ctx, s.as_bytes())?;
                    i += 1;
                }
                "-writeln" => {
                    let s = arg(1)?;
                    self.write(ctx, s.as_bytes())?;
                    self.write(ctx, b"\n")?;
                    i += 1;
                }
                "-writehex" => {
                    let s = arg(1)?;
                    let hex: String = s.split_whitespace().collect();
                    if hex.len() & 1 == 1 {
                        return Err(format!("process {} -writehex: odd number of hex digits", self.name));
                    }
                    let bytes = (0..hex.len())
                        .step_by(2)
                        .map(|k| u8::from_str_radix(&hex[k..k + 2], 16))
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| format!("process {} -writehex: bad hex {s:?}", self.name))?;
                    self.write(ctx, &bytes)?;
                    i += 1;
                }
                "-expect-exit" => {
                    let s = arg(1)?;
                    self.expect_exit = s
                        .trim()
                        .parse()
                        .map_err(|_| format!("process {} -expect-exit: bad number {s:?}", self.name))?;
                    i += 1;
                }
                "-log" => self.log = LogMode::Log,
                "-dump" => self.log = LogMode::Dump,
                "-hexdump" => self.log = LogMode::Hexdump,
                "-need-bytes" => {
                    let s = arg(1)?;
                    self.need_bytes(ctx, &s)?;
                    i += 1;
                }
                "-winsz" => {
                    let (l, c) = (arg(1)?, arg(2)?);
                    let (Ok(l), Ok(c)) = (l.trim().parse::<u16>(), c.trim().parse::<u16>()) else {
                        return Err(format!("process {} -winsz: bad size {l} {c}", self.name));
                    };
                    self.winsz = (l.max(1), c.max(1));
                    self.screen().resize(l.into(), c.into());
                    if let Some(r) = &self.running {
                        set_winsz(&r.master, self.winsz);
                    }
                    i += 2;
                }
                "-expect-text" => {
                    let (l, c, pat) = (arg(1)?, arg(2)?, arg(3)?);
                    let (Ok(l), Ok(c)) = (l.trim().parse::<usize>(), c.trim().parse::<usize>()) else {
                        return Err(format!("process {} -expect-text: bad position {l} {c}", self.name));
                    };
                    self.expect_text(ctx, l, c, &pat)?;
                    i += 3;
                }
                "-expect-cursor" => {
                    let (l, c) = (arg(1)?, arg(2)?);
                    let (Ok(l), Ok(c)) = (l.trim().parse::<usize>(), c.trim().parse::<usize>()) else {
                        return Err(format!("process {} -expect-cursor: bad position {l} {c}", self.name));
                    };
                    let (cl, cc) = self.screen().cursor();
                    if (l != 0 && l != cl) || (c != 0 && c != cc) {
                        return Err(format!(
                            "process {}: cursor at line {cl} column {cc}, expected {l} {c}",
                            self.name
                        ));
                    }
                    self.say(ctx, &format!("Cursor at line {cl} column {cc}"));
                    i += 2;
                }
                "-screen_dump" | "-screen-dump" => self.screen_dump(ctx),
                "-ansi-response" => {
                    return Err(format!("process {} -ansi-response: not supported by lacquer vtc yet", self.name));
                }
                o if o.starts_with('-') => return Err(format!("process {} {o}: unknown option", self.name)),
                spec => {
                    if self.running.is_some() {
                        return Err(format!("process {}: cannot change the command of a running process", self.name));
                    }
                    self.spec = spec.to_string();
                }
            }
            i += 1;
        }
        Ok(())
    }

    fn start(&mut self, ctx: &Arc<Ctx>) -> R {
        let name = self.name.clone();
        if self.running.is_some() {
            return Err(format!("process {name}: already running"));
        }
        self.say(ctx, &format!("CMD: {}", self.spec));
        let (master, slave) = open_pty().map_err(|e| format!("process {name}: cannot open a terminal: {e}"))?;
        set_winsz(&master, self.winsz);
        *self.screen() = Screen::new(self.winsz.0.into(), self.winsz.1.into());
        self.term.bytes.store(0, Ordering::SeqCst);
        self.term.done.store(false, Ordering::SeqCst);
        self.expect_signal = 0;
        let out = self.dir.join("term");
        let err = self.dir.join("stderr");
        let io = |e: std::io::Error| format!("process {name}: {e}");
        let mut cmd = Command::new("/bin/sh");
        ctx.command_env(&mut cmd)?;
        cmd.arg("-c")
            .arg(&self.spec)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().map_err(io)?))
            .stdout(Stdio::from(slave))
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec: a new
        // session, whose controlling terminal is the one on fd 0.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(io)?;
        drop(cmd);
        let pid = child.id();
        self.say(ctx, &format!("PID: {pid}"));
        ctx.define(&format!("{name}_pid"), &pid.to_string());
        ctx.define(&format!("{name}_dir"), &self.dir.display().to_string());
        ctx.define(&format!("{name}_out"), &out.display().to_string());
        ctx.define(&format!("{name}_err"), &err.display().to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let out_file = File::create(&out).map_err(io)?;
        let err_file = File::create(&err).map_err(io)?;
        let reader = master.try_clone().map_err(io)?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            self.reader(ctx, reader, out_file, stop.clone()),
            stderr_reader(ctx, &name, stderr, err_file, stop.clone()),
        ];
        self.running = Some(Running { child, master, readers, stop });
        Ok(())
    }

    /// The thread that copies the terminal's output to `${pNAME_out}`,
    /// the screen and the log.
    fn reader(&self, ctx: &Arc<Ctx>, master: File, mut out: File, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let (term, mode, name) = (self.term.clone(), self.log, self.name.clone());
        let ctx = Logger::new(ctx, &name);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Some(n) = read_some(&master, &mut buf, &stop) {
                let data = &buf[..n];
                let _ = out.write_all(data);
                term.screen.lock().unwrap_or_else(|e| e.into_inner()).feed(data);
                match mode {
                    LogMode::None => {}
                    LogMode::Log => {
                        line.extend_from_slice(data);
                        while let Some(k) = line.iter().position(|&c| c == b'\n') {
                            let l: Vec<u8> = line.drain(..=k).collect();
                            let l = String::from_utf8_lossy(&l);
                            ctx.say(&format!("output|{}", l.trim_end_matches(['\r', '\n'])));
                        }
                    }
                    LogMode::Dump => ctx.lines("stdout", escape(data).trim_end_matches('\n')),
                    LogMode::Hexdump => {
                        let hex: Vec<String> = data.iter().map(|b| format!("{b:02x}")).collect();
                        ctx.say(&format!("stdout|{}", hex.join(" ")));
                    }
                }
                term.bytes.fetch_add(n, Ordering::SeqCst);
            }
            if mode == LogMode::Log && !line.is_empty() {
                ctx.say(&format!("output|{}", String::from_utf8_lossy(&line)));
            }
            term.done.store(true, Ordering::SeqCst);
        })
    }

    fn write(&mut self, ctx: &Ctx, bytes: &[u8]) -> R {
        let Some(r) = self.running.as_mut() else {
            return Err(format!("process {}: Cannot write to a non-running process", self.name));
        };
        r.master.write_all(bytes).map_err(|e| format!("process {}: write failed: {e}", self.name))?;
        self.say(ctx, &format!("Writing {} bytes", bytes.len()));
        Ok(())
    }

    fn kill(&mut self, ctx: &Ctx, sig: &str) -> R {
        let n = match sig {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "KILL" => libc::SIGKILL,
            "HUP" => libc::SIGHUP,
            s => match s.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
                Some(n) => n,
                None => return Err(format!("process {}: Could not grok signal ({sig})", self.name)),
            },
        };
        let Some(r) = self.running.as_ref() else {
            return Err(format!("process {}: Cannot signal a non-running process", self.name));
        };
        let pid = r.child.id() as libc::pid_t;
        // The whole process group, as varnishtest signals it: the shell
        // and the command it runs (the shell does not always exec it).
        // SAFETY: kill(2) on our own child's group; the child, its leader,
        // has not been reaped.
        if unsafe { libc::kill(-pid, n) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("process {}: Failed to send signal {n} ({e})", self.name));
        }
        self.expect_signal = n;
        self.say(ctx, &format!("Sent signal {n}"));
        Ok(())
    }

    fn wait(&mut self, ctx: &Ctx) -> R {
        let Some(mut r) = self.running.take() else {
            return Ok(());
        };
        let status = loop {
            match r.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(format!("process {}: wait: {e}", self.name)),
            }
            if ctx.aborted() {
                kill_group(&mut r);
                return Err(format!("process {}: the test stopped while waiting for it", self.name));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // What the process wrote before it ended is read to the end,
        // unless something it started keeps the terminal open.
        let end = Instant::now() + Duration::from_secs(1);
        while !self.term.done.load(Ordering::SeqCst) && Instant::now() < end && !ctx.aborted() {
            std::thread::sleep(Duration::from_millis(5));
        }
        r.stop.store(true, Ordering::SeqCst);
        for t in r.readers.drain(..) {
            let _ = t.join();
        }
        let raw = status.into_raw();
        self.say(ctx, &format!("WAIT4 pid={} status=0x{raw:04x}", r.child.id()));
        ctx.undefine(&format!("{}_pid", self.name));
        let ok = match status.signal() {
            Some(s) => s == self.expect_signal,
            None => status.code() == Some(self.expect_exit),
        };
        if !ok {
            let (code, sig) = (status.code().unwrap_or(0), status.signal().unwrap_or(0));
            return Err(format!(
                "process {}: Bad exit status: 0x{raw:04x} exit 0x{code:x} signal {sig} core {} (expected exit {} signal {})",
                self.name,
                i32::from(status.core_dumped()),
                self.expect_exit,
                self.expect_signal
            ));
        }
        Ok(())
    }

    fn need_bytes(&self, ctx: &Ctx, spec: &str) -> R {
        let (plus, n) = match spec.strip_prefix('+') {
            Some(n) => (true, n),
            None => (false, spec),
        };
        let n: usize =
            n.trim().parse().map_err(|_| format!("process {} -need-bytes: bad number {spec:?}", self.name))?;
        let want = if plus { self.term.bytes.load(Ordering::SeqCst) + n } else { n };
        loop {
            let have = self.term.bytes.load(Ordering::SeqCst);
            if have >= want {
                self.say(ctx, &format!("Have {have} bytes"));
                return Ok(());
            }
            if self.term.done.load(Ordering::SeqCst) || self.running.is_none() {
                return Err(format!("process {}: the terminal closed after {have} bytes, {want} needed", self.name));
            }
            if ctx.aborted() {
                return Err(format!("process {}: the test stopped while waiting for {want} bytes", self.name));
            }
            std::thread::sleep(POLL);
        }
    }

    fn expect_text(&self, ctx: &Ctx, lin: usize, col: usize, pat: &str) -> R {
        let (lines, cols) = (usize::from(self.winsz.0), usize::from(self.winsz.1));
        if lin > lines || col > cols {
            return Err(format!("process {} -expect-text: {lin} {col} is off the {lines}x{cols} screen", self.name));
        }
        loop {
            // Whether the reader had finished before this look at the screen.
            let done = self.term.done.load(Ordering::SeqCst) || self.running.is_none();
            if self.screen().has_text(lin, col, pat) {
                self.say(ctx, &format!("found expected text at {lin},{col}: '{pat}'"));
                return Ok(());
            }
            if done {
                self.screen_dump(ctx);
                return Err(format!(
                    "process {}: expected text not found at {lin},{col}: '{pat}' (and the terminal has closed)",
                    self.name
                ));
            }
            if ctx.aborted() {
                self.screen_dump(ctx);
                return Err(format!("process {}: expected text not found at {lin},{col}: '{pat}'", self.name));
            }
            std::thread::sleep(POLL);
        }
    }

    fn screen_dump(&self, ctx: &Ctx) {
        let s = self.screen();
        let mut text = String::new();
        for l in 0..s.lines() {
            text.push_str(&format!("screen|{}\n", s.line(l)));
        }
        let (l, c) = s.cursor();
        text.push_str(&format!("Cursor at line {l} column {c}"));
        drop(s);
        self.say(ctx, &text);
    }

    /// The end of the test: a process still running is killed, with its
    /// process group.
    pub fn finish(&mut self) {
        if let Some(mut r) = self.running.take() {
            kill_group(&mut r);
        }
    }
}

/// Kills a running process's group and reaps it.
fn kill_group(r: &mut Running) {
    // SAFETY: the child leads its own session (setsid), so its process
    // group is its pid, and it has not been reaped.
    unsafe {
        libc::kill(-(r.child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = r.child.kill();
    let _ = r.child.wait();
    r.stop.store(true, Ordering::SeqCst);
    for t in r.readers.drain(..) {
        let _ = t.join();
    }
}

/// Logs under a process's name from its threads.
struct Logger {
    ctx: Arc<Ctx>,
    name: String,
}

impl Logger {
    fn new(ctx: &Arc<Ctx>, name: &str) -> Logger {
        Logger { ctx: ctx.clone(), name: name.to_string() }
    }

    fn say(&self, msg: &str) {
        self.ctx.say(&self.name, msg);
    }

    /// Logs `text` line by line, each line after `tag|`.
    fn lines(&self, tag: &str, text: &str) {
        let mut out = String::new();
        for l in text.split('\n') {
            out.push_str(&format!("{tag}|{l}\n"));
        }
        self.say(&out);
    }
}

/// The thread that copies standard error to `${pNAME_err}` and the log.
fn stderr_reader(
    ctx: &Arc<Ctx>,
    name: &str,
    stderr: std::process::ChildStderr,
    mut file: File,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let log = Logger::new(ctx, name);
    std::thread::spawn(move || {
        let fd = OwnedFd::from(stderr);
        let f = File::from(fd);
        let mut buf = [0u8; 4096];
        let mut line = Vec::new();
        while let Some(n) = read_some(&f, &mut buf, &stop) {
            let _ = file.write_all(&buf[..n]);
            line.extend_from_slice(&buf[..n]);
            while let Some(k) = line.iter().position(|&c| c == b'\n') {
                let l: Vec<u8> = line.drain(..=k).collect();
                log.say(&format!("stderr|{}", String::from_utf8_lossy(&l).trim_end_matches('\n')));
            }
        }
        if !line.is_empty() {
            log.say(&format!("stderr|{}", String::from_utf8_lossy(&line)));
        }
    })
}

/// Reads what `f` has, waiting for it in steps so that `stop` is seen;
/// None at the end (or an error, as a terminal gives once the process and
/// its children are gone).
fn read_some(mut f: &File, buf: &mut [u8], stop: &AtomicBool) -> Option<usize> {
    loop {
        let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for a descriptor `f` owns.
        let r = unsafe { libc::poll(&mut p, 1, POLL.as_millis() as libc::c_int) };
        if r > 0 {
            return match f.read(buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(n),
            };
        }
        if stop.load(Ordering::SeqCst) {
            return None;
        }
    }
}

/// A new pseudo-terminal: its master and its slave side.
fn open_pty() -> std::io::Result<(File, File)> {
    let last = std::io::Error::last_os_error;
    // SAFETY: the libc calls below are given valid arguments; each
    // descriptor is owned by a File as soon as it is open.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(last());
        }
        let master = File::from_raw_fd(m);
        if libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
            return Err(last());
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(last());
        }
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if s < 0 {
            return Err(last());
        }
        Ok((master, File::from_raw_fd(s)))
    }
}

/// Tells the terminal its size, as `-winsz` does.
fn set_winsz(master: &File, (lines, cols): (u16, u16)) {
    let ws = libc::winsize { ws_row: lines, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ as _, &ws);
    }
}

/// Bytes as log text, controls escaped as varnishtest's `vtc_dump` does.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &c in bytes {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push('\n'),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}
