//! A `varnish` instance driven the way varnishtest 7.1 drives varnishd
//! (`vtc_varnish.c`): a manager process in debug mode (`-d`) that opens
//! its admin CLI back to the runner (`-M`), and everything else over that
//! one connection.
//!
//! - **Launch**, at the first `varnish vN` command that needs the process
//!   (a VCL, a CLI command, `-start`, `-expect` …): the runner listens on
//!   `127.0.0.1:0` and runs, through `/bin/sh -c` so that `-arg` strings
//!   are read as varnishtest's shell reads them,
//!   `cd ${pwd} && exec varnishd [JAIL] -d -n ${tmpdir}/vN -l 2m -p
//!   auto_restart=off -p syslog_cli_traffic=off -p thread_pool_min=10 -p
//!   debug=+vtc_mode -p vsl_mask=+Debug -p h2_initial_window_size=1m -p
//!   h2_rx_window_low_water=64k [-a '127.0.0.1:0'[,PROTO]] -M 'ADDR PORT'
//!   -P ${tmpdir}/vN/varnishd.pid ARGS`, standard error joined to standard
//!   output, both copied to the test's log (`debug|`), standard input kept
//!   open (a manager in debug mode exits when it closes). varnishd
//!   connects, demands authentication (107 and a challenge), and the
//!   runner answers with `${tmpdir}/vN/_.secret`, which varnishd made.
//!   `-M` rather than `-T`/`-S`: it is what varnishtest does, the runner
//!   needs no port from the process (it made the listening socket), and
//!   the one connection serializes the CLI as varnishtest's does.
//! - **VCL**: `vcl.inline vclN << NONSENSE` … `NONSENSE`, then `vcl.use
//!   vclN`, N counting from 1 per instance.
//! - **`-start`**: `start`, then `status` every 200 ms until the child
//!   runs, `debug.listen_address`, `debug.xid 999` (so that vxids are
//!   varnishtest's) and `debug.listen_address` again, whose lines name the
//!   endpoints (`a0 127.0.0.1 36417`, a socket's path with port `-`).
//! - **`-stop`**: `stop`, then `status` until the child is stopped.
//! - **`-wait`** and the end of the test: `backend.list`, stop, `panic.clear`
//!   (which must answer 300: no panic), then the cleanup: the CLI and
//!   standard input are closed, the manager exits, its exit status must be
//!   `-expectexit`'s (0 unless told).
//!
//! What is not the process itself — counters and the log — comes through
//! [`Daemon`]: `varnishstat` and `varnishlog` for varnishd (see
//! `counters.rs` and `vsl.rs`). A Lacquer process driven by this very flow
//! (`lacquer serve -d`) is one more kind of [`Daemon`].

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::counters::CounterSource;
use crate::ctx::{kill_group, Ctx};
use crate::vsl::{Follower, LogSource};

/// The delimiter of varnishtest's here documents.
pub const NONSENSE: &str = "%XJEIFLH|)Xspa8P";

/// The kind of process the CLI flow drives: how it is started, and where
/// its counters and log are read.
#[derive(Clone, Debug)]
pub enum Daemon {
    /// An installed Varnish: its varnishd, and the varnishlog and
    /// varnishstat that read what it publishes.
    Varnishd { varnishd: PathBuf, varnishlog: PathBuf, varnishstat: PathBuf },
    /// Lacquer: `lacquer serve` in the same flow (it takes varnishd's
    /// `-d -n -l -p -a -M -P`), its counters and log read from its
    /// working directory directly.
    Lacquer { lacquer: PathBuf },
}

impl Daemon {
    /// varnishd at `varnishd`, with the tools found beside it (a build
    /// tree), in `../bin` (`/usr/sbin` and `/usr/bin`), or else on `PATH`.
    pub fn varnishd(varnishd: &Path) -> Daemon {
        let dir = varnishd.parent().unwrap_or(Path::new("."));
        let find = |tool: &str| {
            [dir.join(tool), dir.join("../bin").join(tool)]
                .into_iter()
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(tool))
        };
        Daemon::Varnishd {
            varnishd: varnishd.to_path_buf(),
            varnishlog: find("varnishlog"),
            varnishstat: find("varnishstat"),
        }
    }

    /// The program run in debug mode.
    fn program(&self) -> &Path {
        match self {
            Daemon::Varnishd { varnishd, .. } => varnishd,
            Daemon::Lacquer { lacquer } => lacquer,
        }
    }

    /// The command that starts it, for the shell: the program quoted by
    /// `q`, and its subcommand.
    fn command(&self, q: impl Fn(&str) -> String) -> String {
        let program = q(&self.program().to_string_lossy());
        match self {
            Daemon::Varnishd { .. } => program,
            // With varnishd's default `-T localhost:0`, which
            // `varnishadm -n` finds.
            Daemon::Lacquer { .. } => format!("{program} serve -T 127.0.0.1:0"),
        }
    }

    /// Where its counters are read.
    pub fn counters(&self) -> CounterSource {
        match self {
            Daemon::Varnishd { varnishstat, .. } => CounterSource::Varnishstat(varnishstat.clone()),
            Daemon::Lacquer { .. } => CounterSource::Lacquer,
        }
    }

    /// Where its log is read; markers go over `cli`.
    pub fn log(&self, cli: Arc<Cli>) -> LogSource {
        match self {
            Daemon::Varnishd { varnishlog, .. } => LogSource::Varnishlog { program: varnishlog.clone(), cli },
            Daemon::Lacquer { .. } => LogSource::Lacquer,
        }
    }
}

/// What a launch needs besides the daemon.
pub struct LaunchSpec<'a> {
    pub name: &'a str,
    /// `${tmpdir}/vN`, the `-n` directory.
    pub workdir: &'a Path,
    /// `${pwd}`, where the manager runs.
    pub pwd: &'a str,
    /// `-jail`'s argument, placed right after the program.
    pub jail: &'a str,
    /// The `-arg` strings, each after a blank, as varnishtest pastes them.
    pub args: &'a str,
    /// Whether an `-arg` string starts with `-a`: then the runner adds no
    /// listen address of its own.
    pub has_a_arg: bool,
    /// `-proto`: the default listen address's protocol.
    pub proto: Option<&'a str>,
    /// How long the CLI may take to answer (varnishtest's `vtc_maxdur`).
    pub timeout: Duration,
}

/// One endpoint of a started child, from `debug.listen_address`.
#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub name: String,
    pub addr: String,
    pub port: String,
    pub sock: String,
}

/// Reads `debug.listen_address`'s lines as `varnish_listen` does.
pub fn parse_listen(answer: &str) -> Result<Vec<Listen>, String> {
    let mut out = Vec::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split(' ').collect();
        let [name, addr, port] = w.as_slice() else {
            return Err(format!("debug.listen_address: cannot read {line:?}"));
        };
        let (addr, port, sock) = if *port == "-" {
            ("0.0.0.0".to_string(), "0".to_string(), addr.to_string())
        } else if addr.contains(':') {
            (addr.to_string(), port.to_string(), format!("[{addr}]:{port}"))
        } else {
            (addr.to_string(), port.to_string(), format!("{addr}:{port}"))
        };
        out.push(Listen { name: name.to_string(), addr, port, sock });
    }
    Ok(out)
}

/// A launched manager process and its CLI.
pub struct Manager {
    ctx: Arc<Ctx>,
    name: String,
    workdir: PathBuf,
    daemon: Daemon,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Option<JoinHandle<()>>,
    cli: Arc<Cli>,
    follower: Option<Follower>,
    /// The number of the last `vclN` loaded.
    pub vcl_nbr: u32,
    /// `-expectexit`: the exit status the manager must end with.
    pub expect_exit: i32,
    /// Whether the child was started and not stopped since.
    pub running: bool,
    /// At the end of the test: the other actors are being stopped, which
    /// must not cut the shutdown short (varnishtest stops them first).
    resetting: bool,
}

impl Manager {
    /// Starts the manager and opens its CLI (varnishtest's
    /// `varnish_launch`).
    pub fn launch(ctx: &Arc<Ctx>, daemon: &Daemon, spec: &LaunchSpec) -> Result<Manager, String> {
        use std::os::unix::process::CommandExt;
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("Create CLI listen socket failed: {e}"))?;
        let me = listener.local_addr().map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(spec.workdir);
        std::fs::create_dir_all(spec.workdir).map_err(|e| format!("{}: {e}", spec.workdir.display()))?;
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut cmd = format!(
            "cd {} && exec {} {} -d -n {}",
            q(spec.pwd),
            daemon.command(q),
            spec.jail,
            q(&spec.workdir.to_string_lossy())
        );
        cmd.push_str(" -l 2m -p auto_restart=off -p syslog_cli_traffic=off -p thread_pool_min=10");
        cmd.push_str(" -p debug=+vtc_mode -p vsl_mask=+Debug -p h2_initial_window_size=1m");
        cmd.push_str(" -p h2_rx_window_low_water=64k");
        if !spec.has_a_arg {
            cmd.push_str(" -a '127.0.0.1:0'");
            if let Some(p) = spec.proto {
                cmd.push(',');
                cmd.push_str(p);
            }
        }
        cmd.push_str(&format!(" -M '{} {}'", me.ip(), me.port()));
        cmd.push_str(&format!(" -P {}/varnishd.pid", q(&spec.workdir.to_string_lossy())));
        cmd.push_str(spec.args);
        cmd.push_str(" 2>&1");
        ctx.say(spec.name, &format!("CMD: {cmd}"));
        let mut sh = Command::new("/bin/sh");
        ctx.apply_setenv(&mut sh);
        let mut child = sh
            .arg("-c")
            .arg(&cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
        ctx.say(spec.name, &format!("PID: {}", child.id()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let (c, n) = (ctx.clone(), spec.name.to_string());
        let (said_tx, said_rx) = std::sync::mpsc::channel::<String>();
        let output = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                c.say(&n, &format!("debug|{line}"));
                let _ = said_tx.send(line);
            }
        });
        // Waiting for the manager to call home.
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + spec.timeout / 3;
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("FAIL no CLI connection accepted: {e}")),
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || ctx.aborted() || Instant::now() >= deadline {
                kill_group(&mut child, "KILL");
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let _ = output.join();
                let said: Vec<String> = said_rx.try_iter().take(6).collect();
                let why = if exited.is_some() { "debug pipe closed" } else { "timeout waiting for CLI connection" };
                return Err(format!("FAIL {why} ({}, {status}): {}", daemon.program().display(), said.join(" / ")));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        ctx.say(spec.name, "CLI connection accepted");
        let mut m = Manager {
            ctx: ctx.clone(),
            name: spec.name.to_string(),
            workdir: spec.workdir.to_path_buf(),
            daemon: daemon.clone(),
            child,
            stdin,
            output: Some(output),
            cli: Arc::new(Cli::new(stream, spec.timeout)?),
            follower: None,
            vcl_nbr: 0,
            expect_exit: 0,
            running: false,
            resetting: false,
        };
        m.authenticate()?;
        let reader = m.log_source().open(&m.workdir, false, false)?;
        m.follower = Some(Follower::start(ctx, spec.name, reader));
        Ok(m)
    }

    /// The banner's 107 and challenge, answered with `_.secret`.
    fn authenticate(&mut self) -> Result<(), String> {
        let (status, body) = self.cli.read_banner()?;
        self.log_rx(status, &body);
        if status != lacquer_cli::status::AUTH {
            return Err(format!("CLI auth demand expected: {status} {body}"));
        }
        let secret_file = self.workdir.join("_.secret");
        let secret = std::fs::read(&secret_file).map_err(|e| format!("{}: {e}", secret_file.display()))?;
        let challenge = body.lines().next().unwrap_or_default();
        let (status, body) = self.ask(&format!("auth {}", lacquer_cli::auth_response(challenge, &secret)))?;
        if status != lacquer_cli::status::OK {
            return Err(format!("CLI auth command failed: {status} {body}"));
        }
        Ok(())
    }

    fn log_rx(&self, status: u16, body: &str) {
        let mut s = format!("CLI RX  {status}\n");
        for l in body.lines() {
            s.push_str(&format!("CLI RX|{l}\n"));
        }
        self.ctx.say(&self.name, &s);
    }

    /// The manager's process id, varnishtest's `${vN_pid}`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CLI, for the log readers' markers.
    pub fn cli(&self) -> Arc<Cli> {
        self.cli.clone()
    }

    /// Where this instance's counters are read.
    pub fn counters(&self) -> CounterSource {
        self.daemon.counters()
    }

    /// Where this instance's log is read.
    pub fn log_source(&self) -> LogSource {
        self.daemon.log(self.cli.clone())
    }

    /// One CLI request and its answer, logged as varnishtest logs them.
    pub fn ask(&self, request: &str) -> Result<(u16, String), String> {
        let mut s = String::new();
        for l in request.lines() {
            s.push_str(&format!("CLI TX|{l}\n"));
        }
        self.ctx.say(&self.name, &s);
        let (status, body) = self.cli.ask(request).map_err(|e| format!("CLI failed ({request}) = {e}"))?;
        self.log_rx(status, &body);
        Ok((status, body))
    }

    /// `-vcl`, `-vcl+backend` and `-errvcl` (`varnish_vcl`): loads `src`
    /// as the next `vclN` and uses it. With `fail`, it must not compile;
    /// answers what `vcl.inline` answered.
    pub fn vcl(&mut self, src: &str, fail: bool) -> Result<String, String> {
        self.vcl_nbr += 1;
        let n = self.vcl_nbr;
        let (mut status, answer) = self.ask(&format!("vcl.inline vcl{n} << {NONSENSE}\n{src}\n{NONSENSE}\n"))?;
        if status == lacquer_cli::status::OK {
            status = self.ask(&format!("vcl.use vcl{n}"))?.0;
        }
        match (status == lacquer_cli::status::OK, fail) {
            (true, true) => Err("VCL compilation succeeded expected failure".into()),
            (false, false) => Err("VCL compilation failed expected success".into()),
            (false, true) => {
                self.ctx.say(&self.name, "VCL compilation failed (as expected)");
                Ok(answer)
            }
            (true, false) => Ok(answer),
        }
    }

    /// Whether to give up waiting: the test is being aborted (but not
    /// while it is being reset, which has deadlines of its own).
    fn give_up(&self) -> bool {
        !self.resetting && self.ctx.aborted()
    }

    fn nap(&self, d: Duration) {
        if self.resetting {
            std::thread::sleep(d);
        } else {
            self.ctx.sleep(d);
        }
    }

    /// `status` until the child runs (`wait_running`).
    pub fn wait_running(&mut self) -> Result<(), String> {
        loop {
            self.ctx.say(&self.name, "wait-running");
            let (st, r) = self.ask("status")?;
            if st != lacquer_cli::status::OK {
                return Err(format!("CLI status command failed: {st} {r}"));
            }
            if r == "Child in state stopped" {
                return Err(format!("Child stopped before running: {st} {r}"));
            }
            if r == "Child in state running" {
                let (st, r) = self.ask("debug.listen_address")?;
                if st != lacquer_cli::status::OK {
                    return Err(format!("CLI status command failed: {st} {r}"));
                }
                self.running = true;
                return Ok(());
            }
            if self.give_up() {
                return Err("aborted".into());
            }
            self.nap(Duration::from_millis(200));
        }
    }

    /// `status` until the child is stopped (`wait_stopped`).
    pub fn wait_stopped(&mut self) -> Result<(), String> {
        self.ctx.say(&self.name, "wait-stopped");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.resetting && Instant::now() >= deadline {
                return Err("the child did not stop within 30 s".into());
            }
            let (st, r) = self.ask("status")?;
            if st != lacquer_cli::status::OK {
                return Err(format!("CLI status command failed: {st} {r}"));
            }
            if r == "Child in state stopped" {
                self.running = false;
                return Ok(());
            }
            if self.give_up() {
                return Err("aborted".into());
            }
            self.nap(Duration::from_millis(200));
        }
    }

    /// `-start` (`varnish_start`): answers the endpoints.
    pub fn start(&mut self) -> Result<Vec<Listen>, String> {
        self.ctx.say(&self.name, "Start");
        let (st, r) = self.ask("start")?;
        if st != lacquer_cli::status::OK {
            return Err(format!("CLI start command failed: {st} {r}"));
        }
        self.wait_running()?;
        let (st, r) = self.ask("debug.xid 999")?;
        if st != lacquer_cli::status::OK {
            return Err(format!("CLI debug.xid command failed: {st} {r}"));
        }
        let (st, r) = self.ask("debug.listen_address")?;
        if st != lacquer_cli::status::OK {
            return Err(format!("CLI debug.listen_address command failed: {st} {r}"));
        }
        let listen = parse_listen(&r)?;
        // varnishtest waits for its log thread to get underway.
        self.vsl_catchup()?;
        Ok(listen)
    }

    /// `-stop` (`varnish_stop`).
    pub fn stop(&mut self) -> Result<(), String> {
        self.ctx.say(&self.name, "Stop");
        self.ask("stop")?;
        self.wait_stopped()
    }

    /// `-vsl_catchup`: everything the child logged before this call has
    /// been copied to the test's log. Nothing to wait for without a child.
    pub fn vsl_catchup(&self) -> Result<(), String> {
        match (&self.follower, &self.daemon) {
            // Lacquer's log is read in place: the reader has caught up when
            // it has read to the head twice since.
            (Some(f), Daemon::Lacquer { .. }) => {
                f.catchup_idle(&self.ctx);
                Ok(())
            }
            (Some(f), _) if self.running => f.catchup_marked(&self.ctx, &self.cli, Duration::from_secs(10)),
            _ => Ok(()),
        }
    }

    /// `-wait` and the end of a test (`varnish_wait`): a `backend.list`
    /// for the log, stop, no panic, cleanup. At the end of a test that
    /// failed (`failed`), the process is killed instead: the verdict is
    /// known, and a hung varnishd must not hold it.
    pub fn wait(mut self, failed: bool, at_reset: bool) -> Result<(), String> {
        if failed {
            return Ok(());
        }
        self.resetting = at_reset;
        self.ctx.say(&self.name, "Wait");
        let r = (|| {
            self.ask("backend.list")?;
            self.stop()?;
            let (st, _) = self.ask("panic.clear")?;
            if st != lacquer_cli::status::CANT {
                return Err("Unexpected panic".to_string());
            }
            Ok(())
        })();
        let c = self.cleanup();
        r.and(c)
    }

    /// `-cleanup` (`varnish_cleanup`): closes the CLI and standard input,
    /// waits for the manager to exit and checks its exit status.
    pub fn cleanup(mut self) -> Result<(), String> {
        use std::os::unix::process::ExitStatusExt;
        self.cli.close();
        self.stdin = None;
        // A manager that does not exit by itself is killed after a while
        // (varnishtest would wait for its own timeout).
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s;
            }
            if Instant::now() >= deadline || self.give_up() {
                kill_group(&mut self.child, "KILL");
                break self.child.wait().map_err(|e| e.to_string())?;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(t) = self.output.take() {
            let _ = t.join();
        }
        if let Some(mut f) = self.follower.take() {
            f.stop();
        }
        self.running = false;
        let raw = status.into_raw();
        self.ctx.say(&self.name, &format!("WAIT4 pid={} status=0x{raw:04x}", self.child.id()));
        if status.code() == Some(self.expect_exit) {
            return Ok(());
        }
        Err(format!(
            "Bad exit status: 0x{raw:04x} exit 0x{:x} signal {} core {}",
            status.code().unwrap_or(0),
            status.signal().unwrap_or(0),
            i32::from(status.core_dumped())
        ))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(&mut self.child, "KILL");
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_read_as_varnishtest_reads_them() {
        let got = parse_listen("a0 127.0.0.1 36417\nfoo ::1 80\nbar /tmp/v1.sock -\n").unwrap();
        let socks: Vec<(&str, &str, &str, &str)> =
            got.iter().map(|l| (l.name.as_str(), l.addr.as_str(), l.port.as_str(), l.sock.as_str())).collect();
        assert_eq!(
            socks,
            [
                ("a0", "127.0.0.1", "36417", "127.0.0.1:36417"),
                ("foo", "::1", "80", "[::1]:80"),
                ("bar", "0.0.0.0", "0", "/tmp/v1.sock"),
            ]
        );
        assert!(parse_listen("garbage").is_err());
    }

    #[test]
    fn tools_are_found_beside_varnishd() {
        let d = Daemon::varnishd(Path::new("/nonexistent/sbin/varnishd"));
        let Daemon::Varnishd { varnishlog, varnishstat, .. } = d else { panic!("varnishd") };
        assert_eq!((varnishlog, varnishstat), (PathBuf::from("varnishlog"), PathBuf::from("varnishstat")));
    }
}
