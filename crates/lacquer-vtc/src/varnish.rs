//! A `varnish` instance run for real: a `lacquer serve` process with the
//! instance's latest VCL and parameters, stopped with SIGTERM.
//!
//! `lacquer serve` prints `lacquer: listening on ENDPOINT` for each socket
//! it bound, in the order of its `-a` arguments (at least one line each,
//! more for a host name with several addresses); that is how the runner
//! learns the ports it picked and names each endpoint as varnishd does:
//! `name=` from the `-a` argument, else `aN` after its position.
//!
//! Like varnishtest, the runner follows each running instance's
//! shared-memory log in a thread of its own (`vsl.rs`'s [`Follower`]) and
//! copies every record into the test's log (`vsl|` lines), counting the
//! times it found nothing new: `varnish vN -vsl_catchup` waits for that
//! count to move, that is, until everything logged so far has been read.
//!
//! This is the runner's first way of running Lacquer, kept until `lacquer
//! serve -d` follows varnishd's CLI flow (`mgr.rs`), which varnishd itself
//! follows under `lacquer vtc --varnishd`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::ExitStatus;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ctx::{kill_group, Ctx};
use crate::vsl::{Follower, LogSource};

/// How long a starting `lacquer serve` may take to listen.
const START: Duration = Duration::from_secs(10);
/// How long a stopping one may take before it is killed.
const STOP: Duration = Duration::from_secs(2);

/// A running `lacquer serve`.
pub struct Instance {
    child: Child,
    /// What it listens on, in the order of its `-a` arguments.
    pub listen: Vec<Endpoint>,
    vsl: Follower,
    /// Its admin CLI (`-T`) and the secret that opens it (`-S`).
    cli: String,
    secret: Vec<u8>,
}

/// One bound socket of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// `a0`, `a1` … or the `name=` of its `-a` argument.
    pub name: String,
    /// `host:port` (`[v6]:port`) as bound, or a Unix socket's path.
    pub endpoint: String,
    /// The `-a` argument that binds this very endpoint again (a restart
    /// keeps its ports): `name=ENDPOINT` and the original's `,` options.
    pub again: String,
}

impl Endpoint {
    /// What varnishtest defines as `vN_addr`, `vN_port` and `vN_sock`:
    /// `0.0.0.0`, `0` and the path for a Unix socket.
    pub fn macros(&self) -> (String, String, String) {
        if crate::net::is_path(&self.endpoint) {
            return ("0.0.0.0".into(), "0".into(), self.endpoint.clone());
        }
        match self.endpoint.parse::<std::net::SocketAddr>() {
            Ok(a) => (a.ip().to_string(), a.port().to_string(), self.endpoint.clone()),
            Err(_) => (self.endpoint.clone(), String::new(), self.endpoint.clone()),
        }
    }
}

/// One `-a` argument as the runner needs it: its name (`name=` or the
/// default `aN`), its address and its options (`,PROXY`, `,mode=…`),
/// split as `lacquer serve` and varnishd split it.
fn split_listen(i: usize, arg: &str) -> (String, &str, &str) {
    let (first, opts) = match arg.find(',') {
        Some(k) => arg.split_at(k),
        None => (arg, ""),
    };
    match first.split_once('=') {
        Some((n, a)) if !n.is_empty() && !n.contains([':', '/', '[']) => (n.to_string(), a, opts),
        _ => (format!("a{i}"), first, opts),
    }
}

/// Whether `lacquer serve` may bind more than one socket for this
/// address: a host name (not a literal address, `:port` or a path).
fn may_resolve_to_many(addr: &str) -> bool {
    if crate::net::is_path(addr) || addr.starts_with(':') || addr.starts_with('[') {
        return false;
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.parse::<std::net::IpAddr>().is_err() && addr.parse::<std::net::IpAddr>().is_err()
}

/// Pairs the endpoints `lacquer serve` printed with its `-a` arguments:
/// one each, and the extra ones (several addresses for one host name) to
/// the first argument that names a host.
fn name_endpoints(args: &[String], printed: &[String]) -> Vec<Endpoint> {
    let extra = printed.len().saturating_sub(args.len());
    let many = args.iter().enumerate().position(|(i, a)| may_resolve_to_many(split_listen(i, a).1));
    let mut out = Vec::new();
    let mut lines = printed.iter();
    for (i, a) in args.iter().enumerate() {
        let (name, _, opts) = split_listen(i, a);
        let n = if Some(i) == many { 1 + extra } else { 1 };
        for e in lines.by_ref().take(n) {
            out.push(Endpoint { name: name.clone(), endpoint: e.clone(), again: format!("{name}={e}{opts}") });
        }
    }
    out
}

/// What to start an instance with.
pub struct Launch<'a> {
    pub lacquer: &'a Path,
    pub name: &'a str,
    pub workdir: &'a Path,
    /// The VCL file given with `-vcl`; without it, `boot` must say what
    /// to run.
    pub vcl: Option<&'a Path>,
    /// `-b …` or `-f …` as `-arg` gave them, used only without `vcl`: a
    /// VCL loaded later replaces the boot VCL, as `vcl.use` does.
    pub boot: &'a [String],
    pub params: &'a [String],
    /// More arguments, as `-arg` gave them (`-s …`, `-h …`).
    pub args: &'a [String],
    /// The `-a` arguments, at least one.
    pub listen: &'a [String],
    /// The `-S` secret file for the admin CLI.
    pub secret: &'a Path,
}

impl Instance {
    /// Starts `lacquer serve` and waits until it listens; its standard
    /// error goes to the log.
    pub fn start(ctx: &Arc<Ctx>, l: &Launch) -> Result<Instance, String> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(l.lacquer);
        cmd.arg("serve");
        for a in l.listen {
            cmd.args(["-a", a]);
        }
        cmd.args(["-T", "127.0.0.1:0", "-S"]).arg(l.secret);
        cmd.arg("-n").arg(l.workdir);
        match l.vcl {
            Some(vcl) => {
                cmd.arg("-f").arg(vcl);
            }
            None => {
                cmd.args(l.boot);
            }
        }
        for p in l.params {
            cmd.args(["-p", p]);
        }
        cmd.args(l.args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", l.lacquer.display()))?;
        // Both outputs go to the log and are read here: what a `serve` that
        // exits at once printed (its usage, on standard output) says why.
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let (c, name, tx2) = (ctx.clone(), l.name.to_string(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                c.say(&name, &line);
                let _ = tx2.send(line);
            }
        });
        let stderr = child.stderr.take().expect("piped");
        let (c, name) = (ctx.clone(), l.name.to_string());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                c.say(&name, &line);
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START;
        let mut said = Vec::new();
        let mut printed = Vec::new();
        // Once every argument has its line, a host name may still bring
        // more: they come at once, so a short wait sees them.
        let linger = l.listen.iter().enumerate().any(|(i, a)| may_resolve_to_many(split_listen(i, a).1));
        let mut done_at: Option<Instant> = None;
        let mut cli = None;
        loop {
            if let (Some(t), Some(cli)) = (done_at, &cli) {
                if !linger || t.elapsed() >= Duration::from_millis(200) {
                    let listen = name_endpoints(l.listen, &printed);
                    // From the log's first record: the file is made anew
                    // by each `lacquer serve`.
                    let reader = match LogSource::Lacquer.open(l.workdir, true, false) {
                        Ok(r) => r,
                        Err(e) => {
                            kill_group(&mut child, "KILL");
                            let _ = child.wait();
                            return Err(e);
                        }
                    };
                    let vsl = Follower::start(ctx, l.name, reader);
                    let secret = std::fs::read(l.secret).unwrap_or_default();
                    return Ok(Instance { child, listen, vsl, cli: String::clone(cli), secret });
                }
            }
            if ctx.aborted() || Instant::now() >= deadline {
                kill_group(&mut child, "KILL");
                let _ = child.wait();
                return Err(format!("lacquer serve did not start listening within {} s", START.as_secs()));
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("lacquer: CLI listening on ") {
                        cli = Some(a.trim().to_string());
                        continue;
                    }
                    if let Some(a) = line.strip_prefix("lacquer: listening on ") {
                        printed.push(a.trim().to_string());
                        if printed.len() >= l.listen.len() && done_at.is_none() {
                            done_at = Some(Instant::now());
                        }
                        continue;
                    }
                    said.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    said.truncate(4);
                    return Err(format!("lacquer serve exited ({status}): {}", said.join(" / ")));
                }
            }
        }
    }

    /// Sends one command over the admin CLI, authenticating first as
    /// varnishtest does; answers the status and the body.
    pub fn cli(&self, command: &str) -> Result<(u16, String), String> {
        use std::io::Write;
        let s = std::net::TcpStream::connect(&self.cli).map_err(|e| format!("CLI {}: {e}", self.cli))?;
        s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let mut r = std::io::BufReader::new(s);
        let mut answer = || lacquer_cli::read_answer(&mut r);
        let (status, body) = answer()?;
        if status == lacquer_cli::status::AUTH {
            let challenge = body.lines().next().unwrap_or_default();
            let auth = lacquer_cli::auth_response(challenge, &self.secret);
            w.write_all(format!("auth {auth}\n").as_bytes()).map_err(|e| e.to_string())?;
            let (status, body) = answer()?;
            if status != lacquer_cli::status::OK {
                return Err(format!("CLI authentication refused: {status} {body}"));
            }
        }
        w.write_all(format!("{command}\n").as_bytes()).map_err(|e| e.to_string())?;
        answer()
    }

    /// The process id of `lacquer serve`, varnishtest's `${vN_pid}`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `-vsl_catchup`: waits until the log thread has read the log to
    /// its head once more, so that everything logged before this call is
    /// in the test's log (varnishtest's `vsl_catchup`). Returns early if
    /// the test is aborted.
    pub fn vsl_catchup(&self, ctx: &Ctx) {
        self.vsl.catchup_idle(ctx);
    }

    /// Stops it: SIGTERM, then SIGKILL if it has not exited in time; then
    /// its log thread, after one last read. Answers how it ended.
    pub fn stop(mut self) -> Exit {
        let before = self.child.try_wait().ok().flatten();
        if let Some(status) = before {
            self.vsl.stop();
            return Exit { status: Some(status), by_runner: false };
        }
        kill_group(&mut self.child, "TERM");
        let deadline = Instant::now() + STOP;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if status.is_none() {
            kill_group(&mut self.child, "KILL");
            let _ = self.child.wait();
        }
        self.vsl.stop();
        Exit { status, by_runner: true }
    }
}

/// How a stopped `lacquer serve` ended.
pub struct Exit {
    /// Its status; `None` if it had to be killed.
    pub status: Option<ExitStatus>,
    /// Whether the runner stopped it (else it had exited by itself).
    pub by_runner: bool,
}

impl Exit {
    /// Checks it against `-expectexit`, as varnishtest checks varnishd's:
    /// a process that exited by itself must have exited with `expect`; one
    /// the runner stopped counts as having exited 0 if it did as asked
    /// (exited 0, or died of the SIGTERM), as varnishd's manager exits 0
    /// when varnishtest closes its standard input.
    pub fn check(&self, expect: i32) -> Result<(), String> {
        use std::os::unix::process::ExitStatusExt;
        let Some(s) = self.status else {
            return Err("did not exit when told to, and was killed".into());
        };
        let code = if self.by_runner && (s.success() || s.signal() == Some(15)) { Some(0) } else { s.code() };
        if code == Some(expect) {
            return Ok(());
        }
        Err(format!(
            "Bad exit status: 0x{:04x} exit 0x{:x} signal {} core {}",
            s.into_raw(),
            s.code().unwrap_or(0),
            s.signal().unwrap_or(0),
            i32::from(s.core_dumped())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_arguments_split_as_varnishd_does() {
        assert_eq!(split_listen(0, "127.0.0.1:0"), ("a0".into(), "127.0.0.1:0", ""));
        assert_eq!(split_listen(1, "foo=/tmp/v1.sock,mode=660"), ("foo".into(), "/tmp/v1.sock", ",mode=660"));
        assert_eq!(split_listen(2, "[::1]:0,PROXY"), ("a2".into(), "[::1]:0", ",PROXY"));
    }

    #[test]
    fn endpoints_are_named_after_their_arguments() {
        let args = ["/tmp/v1.sock".to_string(), "localhost:0".into(), "x=127.0.0.1:0,PROXY".into()];
        let printed = ["/tmp/v1.sock".to_string(), "127.0.0.1:1".into(), "[::1]:1".into(), "127.0.0.1:2".into()];
        let got: Vec<(String, String)> =
            name_endpoints(&args, &printed).into_iter().map(|e| (e.name, e.again)).collect();
        assert_eq!(
            got,
            [
                ("a0".into(), "a0=/tmp/v1.sock".into()),
                ("a1".into(), "a1=127.0.0.1:1".into()),
                ("a1".into(), "a1=[::1]:1".into()),
                ("x".into(), "x=127.0.0.1:2,PROXY".into()),
            ]
        );
    }

    #[test]
    fn unix_endpoints_have_varnishtests_macros() {
        let e = Endpoint { name: "a0".into(), endpoint: "/tmp/v1.sock".into(), again: String::new() };
        assert_eq!(e.macros(), ("0.0.0.0".into(), "0".into(), "/tmp/v1.sock".into()));
        let e = Endpoint { name: "a0".into(), endpoint: "127.0.0.1:80".into(), again: String::new() };
        assert_eq!(e.macros(), ("127.0.0.1".into(), "80".into(), "127.0.0.1:80".into()));
    }
}
