//! Running one script: its commands in order, each by an actor.
//!
//! Macros follow the installed varnishtest 7.1.1: `${sN_sock}`,
//! `${vN_sock}`, `${bad_backend}` and `${listen_addr}` are `host:port`; for
//! a Unix socket `${sN_sock}`/`${vN_sock}` is its path, `_addr` `0.0.0.0`
//! and `_port` `0`. An instance also has `${vN_NAME_addr}` … for each of
//! its `-a` endpoints (`a0`, `a1` … or `name=`) and `${vN_pid}`. One
//! deliberate difference: a declared server listens (and has its macros) at
//! once, where varnishtest defines them only at `-start`.
//!
//! Implemented today: `varnishtest` (or `vtest`), `feature`, `server` and
//! `client` (the HTTP/1 actors of `http.rs` and `server.rs`, over TCP or
//! Unix sockets, `-repeat` and `-keepalive`), `varnish` (VCL compilation
//! through `lacquer check`, and `-start`/`-stop`/`-wait` running a real
//! `lacquer serve`, see `varnish.rs`), `shell`, `delay`, `filewrite`,
//! `setenv`, `barrier` (`barrier.rs`, also inside server and client specs),
//! `logexpect` (`logexp.rs`, reading the instance's shared-memory log) and
//! `varnish vN -vsl_catchup`.
//! Everything else fails the test with the name of what is missing.
//!
//! Hygiene: every actor polls the test's abort flag (`ctx.rs`), so that at
//! the end of a test, at its first failure or at its timeout, all threads
//! end and every `lacquer serve` is stopped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::counters::CounterSource;
use crate::ctx::Ctx;
use crate::mgr::{Daemon, LaunchSpec, Manager};
use crate::net::Listener;
use crate::parse::{tokenize, Command};
use crate::server::Repeat;
use crate::vsl::LogSource;

/// How to run scripts.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `lacquer` executable to drive.
    pub lacquer: PathBuf,
    /// A test taking longer fails.
    pub timeout: Duration,
    /// Keep each test's temporary directory.
    pub keep_tmp: bool,
    /// Oracle mode: run every `varnish` instance on this varnishd, driven
    /// as varnishtest drives it (`mgr.rs`), instead of `lacquer serve`.
    pub varnishd: Option<PathBuf>,
}

/// What became of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Passed,
    /// Why it failed.
    Failed(String),
    /// Why it was not run (a `feature` this machine lacks).
    Skipped(String),
}

/// A verdict with the test's log and how long it took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    pub log: String,
    pub elapsed: Duration,
}

/// Runs one script within the timeout.
pub fn run_file(path: &Path, opts: &RunOptions) -> Outcome {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let (p, o) = (path.to_path_buf(), opts.clone());
    let ctx = Arc::new(Ctx::new(opts.timeout / 2));
    let c = ctx.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run_inner(&p, &o, c));
    });
    match rx.recv_timeout(opts.timeout) {
        Ok((verdict, log)) => Outcome { verdict, log, elapsed: start.elapsed() },
        Err(_) => {
            // The barriers still waited on say what the test was stuck on.
            let stuck = ctx.barriers.report();
            let mut why = format!("timed out after {} s", opts.timeout.as_secs());
            if !stuck.is_empty() {
                why.push_str(&format!(", waiting on barrier {}", stuck.join(", ")));
            }
            // Every actor polls the abort flag: the test thread stops its
            // threads and processes, and then answers.
            ctx.abort();
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Outcome { verdict: Verdict::Failed(why), log: ctx.log(), elapsed: start.elapsed() }
        }
    }
}

/// A step's result: go on, or stop the test with a verdict.
type Step = Result<(), Verdict>;

fn fail<T>(msg: impl Into<String>) -> Result<T, Verdict> {
    Err(Verdict::Failed(msg.into()))
}

fn run_inner(path: &Path, opts: &RunOptions, ctx: Arc<Ctx>) -> (Verdict, String) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return (Verdict::Failed(format!("cannot read {}: {e}", path.display())), String::new()),
    };
    let cmds = match tokenize(&text) {
        Ok(c) => c,
        Err(e) => return (Verdict::Failed(format!("syntax: {e}")), String::new()),
    };
    let tmp = std::env::temp_dir().join(format!(
        "lacquer-vtc.{}.{}",
        std::process::id(),
        path.file_stem().and_then(|s| s.to_str()).unwrap_or("t")
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        return (Verdict::Failed(format!("cannot make {}: {e}", tmp.display())), String::new());
    }
    // A script named without a directory is in the current one.
    let testdir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let testdir = std::fs::canonicalize(&testdir).unwrap_or(testdir);
    // Driving Lacquer, the scripts' Varnish tools are Lacquer's; driving
    // varnishd (oracle mode), they are the installed ones.
    if opts.varnishd.is_none() {
        if let Err(e) = ctx.provide_tools(&tmp.join(".lacquer-tools"), &opts.lacquer) {
            return (Verdict::Failed(format!("cannot link the Varnish tools to lacquer: {e}")), String::new());
        }
    }
    let mut t = Test::new(tmp.clone(), testdir, opts, ctx.clone());
    let mut verdict = match t.run(&cmds) {
        Ok(()) => Verdict::Passed,
        Err(v) => v,
    };
    if verdict == Verdict::Passed {
        if let Some(why) = ctx.failure() {
            verdict = Verdict::Failed(why);
        }
    }
    if let Err(v) = t.varnish_reset(verdict != Verdict::Passed) {
        if verdict == Verdict::Passed {
            verdict = v;
        }
    }
    t.finish();
    if !opts.keep_tmp {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    (verdict, ctx.log())
}

/// A declared server: listening, so that its address is real.
struct Server {
    name: String,
    /// How `-vcl+backend` declares it: `.host` and `.port`, or `.path`.
    backend: String,
    listener: Arc<Listener>,
    spec: String,
    repeat: usize,
    keepalive: bool,
    dispatch: bool,
    /// Set by `-break` to stop the running spec.
    brk: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// A declared client.
#[derive(Default)]
struct Client {
    connect: Option<String>,
    spec: String,
    repeat: usize,
    keepalive: bool,
    /// `-proxy1`/`-proxy2` and `-rcvbuf`.
    opts: crate::server::ClientOptions,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// A `varnish` instance: what its launch needs, and its manager once
/// launched (`lacquer serve -d`, or varnishd under `--varnishd`).
#[derive(Default)]
struct Varnish {
    /// `-proto`: the protocol of the default listen address.
    proto: Option<String>,
    /// `-expectexit`: the exit status the process must end with.
    expect_exit: i32,
    /// The `-arg` strings, each after a blank, as varnishtest pastes them
    /// into varnishd's command line.
    raw_args: String,
    /// Whether an `-arg` string starts with `-a`.
    has_a_arg: bool,
    /// `-jail`'s argument (varnishd only).
    jail: String,
    /// The last `vclN` loaded, kept across launches.
    vcl_nbr: u32,
    /// The launched manager.
    mgr: Option<Manager>,
}

struct Test<'o> {
    opts: &'o RunOptions,
    ctx: Arc<Ctx>,
    tmpdir: PathBuf,
    servers: Vec<Server>,
    clients: HashMap<String, Client>,
    varnishes: HashMap<String, Varnish>,
    logexps: HashMap<String, LogExpect>,
    tunnels: HashMap<String, crate::tunnel::Tunnel>,
    processes: HashMap<String, crate::process::Process>,
}

/// A declared `logexpect`: its instance, options and script, and its
/// thread while it runs.
struct LogExpect {
    /// The instance it reads (`-v`), which cannot change.
    vname: String,
    opts: crate::logexp::Options,
    /// The script's lines, split into words and macros expanded.
    script: Vec<Vec<String>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl<'o> Test<'o> {
    fn new(tmpdir: PathBuf, testdir: PathBuf, opts: &'o RunOptions, ctx: Arc<Ctx>) -> Test<'o> {
        // A port nothing listens on: bound, then released.
        let bad_port = TcpListener::bind("127.0.0.1:0").ok().and_then(|l| l.local_addr().ok()).map_or(9, |a| a.port());
        ctx.define("localhost", "127.0.0.1");
        ctx.define("bad_ip", "192.0.2.255");
        ctx.define("bad_backend", &format!("127.0.0.1:{bad_port}"));
        ctx.define("listen_addr", "127.0.0.1:0");
        ctx.define("tmpdir", &tmpdir.display().to_string());
        ctx.define("testdir", &testdir.display().to_string());
        ctx.define("pwd", &std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default());
        Test {
            opts,
            ctx,
            tmpdir,
            servers: Vec::new(),
            clients: HashMap::new(),
            varnishes: HashMap::new(),
            logexps: HashMap::new(),
            tunnels: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    fn say(&mut self, who: &str, line: usize, msg: &str) {
        let mut s = String::new();
        for l in msg.lines() {
            let _ = writeln!(s, "{line:>4} {l}");
        }
        self.ctx.say(who, &s);
    }

    /// The end of a test, whatever its verdict: every actor is told to
    /// stop, every instance stopped and every thread joined.
    fn finish(&mut self) {
        self.ctx.abort();
        // A logexpect never waited for ends with the test, whatever it was
        // still expecting (varnishtest cancels it).
        for l in self.logexps.values_mut() {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
        for v in self.varnishes.values_mut() {
            // A manager still there was not waited for (the test failed
            // first): dropping it kills it.
            drop(v.mgr.take());
        }
        for s in &mut self.servers {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
        for c in self.clients.values_mut() {
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
        for (name, t) in &mut self.tunnels {
            let _ = t.wait(name);
        }
        for p in self.processes.values_mut() {
            p.finish();
        }
    }

    fn run(&mut self, cmds: &[Command]) -> Step {
        // Decided before anything runs: Lacquer does not speak HTTP/2 yet.
        if let Some(cmd) = crate::parse::h2_command(cmds) {
            self.ctx.say("top", &format!("'{cmd}' is HTTP/2: h2 not supported"));
            return Err(Verdict::Skipped("h2 not supported".into()));
        }
        for c in cmds {
            let Some(word) = c.tokens.first() else { continue };
            let r = match word.as_str() {
                // `vtest` is the name varnishtest's successor gives the
                // same command.
                "varnishtest" | "vtest" => {
                    let title = c.tokens.get(1).cloned().unwrap_or_default();
                    self.say("top", c.line, &format!("TEST {title}"));
                    Ok(())
                }
                "feature" => self.feature(&c.tokens[1..]),
                "server" => self.server(c),
                "varnish" => self.varnish(c),
                "shell" => self.shell(c),
                "client" => self.client(c),
                "delay" => {
                    let secs: f64 = c.tokens.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    self.ctx.sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
                    Ok(())
                }
                "filewrite" => self.filewrite(c),
                "setenv" => self.setenv(c),
                "barrier" => self.barrier(c),
                "logexpect" => self.logexpect(c),
                "tunnel" => self.tunnel(c),
                "process" => self.process(c),
                other => fail(format!("line {}: '{other}' is not supported by lacquer vtc yet", c.line)),
            };
            if let Err(v) = r {
                if let Verdict::Failed(why) = &v {
                    self.say("top", c.line, &format!("FAIL: {why}"));
                }
                return Err(v);
            }
            if let Some(why) = self.ctx.failure() {
                return Err(Verdict::Failed(why));
            }
        }
        Ok(())
    }

    // ----- macros -----

    fn expand(&self, text: &str) -> Result<String, Verdict> {
        self.ctx.expand(text).map_err(Verdict::Failed)
    }

    // ----- commands -----

    fn feature(&mut self, names: &[String]) -> Step {
        let mut i = 0;
        while i < names.len() {
            let f = names[i].as_str();
            // `!name`: the test runs only where the feature is absent.
            let (negated, name) = match f.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, f),
            };
            let present = match name {
                "64bit" | "ipv4" | "pcre_jit" | "SO_RCVTIMEO_WORKS" => true,
                "ipv6" => TcpListener::bind("[::1]:0").is_ok(),
                "root" => Process::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0")),
                // As varnishtest: the tests that need DNS need the real
                // one, which resolves this canary to 192.0.2.255.
                "dns" => std::net::ToSocketAddrs::to_socket_addrs(&("dns-canary.varnish-cache.org", 80))
                    .is_ok_and(|mut a| a.any(|a| a.ip() == std::net::Ipv4Addr::new(192, 0, 2, 255))),
                "cmd" => {
                    i += 1;
                    let cmd = names.get(i).cloned().unwrap_or_default();
                    let cmd = self.expand(&cmd)?;
                    Process::new("/bin/sh")
                        .arg("-c")
                        .arg(&cmd)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                }
                "ignore_unknown_macro" => {
                    self.ctx.ignore_unknown_macro.store(true, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                // Builds of varnishd that Lacquer is not: sanitizers,
                // coverage, the workspace emulator, a source tree; and the
                // privilege-separation users Lacquer does not switch to.
                _ => false,
            };
            if present == negated {
                return Err(Verdict::Skipped(format!("feature {f} not present")));
            }
            i += 1;
        }
        Ok(())
    }

    fn server(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('s') {
            return fail(format!("server name '{name}' must start with 's'"));
        }
        let t = &c.tokens;
        // A first pass declares (and binds) the server, as `-listen` says.
        let mut listen = None;
        let mut i = 2;
        while i < t.len() {
            if t[i] == "-listen" {
                listen = t.get(i + 1).cloned();
                i += 1;
            }
            i += 1;
        }
        if !self.servers.iter().any(|s| s.name == name) || listen.is_some() {
            self.declare_server(&name, listen)?;
        }
        let k = self.servers.iter().position(|s| s.name == name).expect("declared above");
        let mut i = 2;
        while i < t.len() {
            let arg = t[i].as_str();
            match arg {
                "-listen" => i += 1,
                "-repeat" => {
                    i += 1;
                    let n = t.get(i).and_then(|v| v.parse().ok());
                    self.servers[k].repeat = n.ok_or_else(|| Verdict::Failed("server -repeat: bad count".into()))?;
                }
                "-keepalive" => self.servers[k].keepalive = true,
                // Starts the server, as `-start` does, serving every
                // connection at once (varnishtest's `server_dispatch`).
                "-dispatch" | "-start" => {
                    if arg == "-dispatch" {
                        if name != "s0" {
                            return fail("server -dispatch: only for s0");
                        }
                        self.servers[k].dispatch = true;
                    }
                    self.server_wait(k)?;
                    let s = &mut self.servers[k];
                    let (ctx, n, l, spec) = (self.ctx.clone(), s.name.clone(), s.listener.clone(), s.spec.clone());
                    let repeat = Repeat { count: s.repeat, keepalive: s.keepalive };
                    s.brk.store(false, std::sync::atomic::Ordering::SeqCst);
                    s.thread = Some(crate::server::start_server(ctx, n, l, spec, repeat, s.dispatch, s.brk.clone()));
                }
                "-wait" => self.server_wait(k)?,
                // Stops the server wherever its spec is, as varnishtest
                // cancels its thread; the listening socket stays.
                "-break" => {
                    self.servers[k].brk.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Some(th) = self.servers[k].thread.take() {
                        let _ = th.join();
                    }
                    self.ctx.say(&name, "Broken");
                }
                a if a.starts_with('-') => return fail(format!("server {name} {a}: unknown option")),
                _ => self.servers[k].spec = t[i].clone(),
            }
            i += 1;
        }
        Ok(())
    }

    /// Joins server `k`'s thread if it runs; its failure fails the test.
    fn server_wait(&mut self, k: usize) -> Step {
        if let Some(th) = self.servers[k].thread.take() {
            let name = self.servers[k].name.clone();
            match th.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return fail(self.first_failure("server", &name, &e)),
                Err(_) => return fail(format!("server {name}: its thread panicked")),
            }
        }
        Ok(())
    }

    fn declare_server(&mut self, name: &str, listen: Option<String>) -> Step {
        let want = match listen {
            Some(l) => self.expand(&l)?,
            None => "127.0.0.1:0".into(),
        };
        // A server declared again lets go of its socket first, so that the
        // same path or port can be listened on anew.
        if let Some(k) = self.servers.iter().position(|s| s.name == name) {
            self.server_wait(k)?;
            self.servers.remove(k);
        }
        let l = Listener::bind(&want).or_else(|e| fail(format!("server {name}: cannot listen on {want}: {e}")))?;
        let (addr, port, sock) = l.macros().or_else(|e| fail(format!("server {name}: {e}")))?;
        let backend = if crate::net::is_path(&want) {
            format!(".path = \"{sock}\";")
        } else {
            format!(".host = \"{addr}\"; .port = \"{port}\";")
        };
        self.ctx.define(&format!("{name}_addr"), &addr);
        self.ctx.define(&format!("{name}_port"), &port);
        self.ctx.define(&format!("{name}_sock"), &sock);
        self.servers.push(Server {
            name: name.to_string(),
            backend,
            listener: Arc::new(l),
            spec: String::new(),
            repeat: 1,
            keepalive: false,
            dispatch: false,
            brk: Arc::default(),
            thread: None,
        });
        Ok(())
    }

    fn client(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('c') {
            return fail(format!("client name '{name}' must start with 'c'"));
        }
        let t = &c.tokens;
        let mut i = 2;
        while i < t.len() {
            let arg = t[i].as_str();
            match arg {
                "-connect" => {
                    i += 1;
                    let a = t.get(i).cloned().ok_or_else(|| Verdict::Failed("client -connect: missing".into()))?;
                    self.clients.entry(name.clone()).or_default().connect = Some(a);
                }
                "-repeat" => {
                    i += 1;
                    let n = t.get(i).and_then(|v| v.parse().ok());
                    self.clients.entry(name.clone()).or_default().repeat =
                        n.ok_or_else(|| Verdict::Failed("client -repeat: bad count".into()))?;
                }
                "-keepalive" => self.clients.entry(name.clone()).or_default().keepalive = true,
                "-proxy1" | "-proxy2" => {
                    i += 1;
                    let p = t.get(i).ok_or_else(|| Verdict::Failed(format!("client {arg}: missing argument")))?;
                    let p = self.expand(p)?;
                    let v = if arg == "-proxy1" { 1 } else { 2 };
                    // Checked now, as varnishtest parses it when given.
                    crate::server::proxy_header(v, &p).map_err(Verdict::Failed)?;
                    self.clients.entry(name.clone()).or_default().opts.proxy = Some((v, p));
                }
                "-rcvbuf" => {
                    i += 1;
                    let n = t.get(i).and_then(|v| v.parse().ok());
                    self.clients.entry(name.clone()).or_default().opts.rcvbuf =
                        Some(n.ok_or_else(|| Verdict::Failed("client -rcvbuf: bad size".into()))?);
                }
                "-start" => self.client_start(&name)?,
                "-wait" => self.client_wait(&name)?,
                "-run" => {
                    self.client_start(&name)?;
                    self.client_wait(&name)?;
                }
                a if a.starts_with('-') => {
                    return fail(format!("client {name} {a}: not supported by lacquer vtc yet"));
                }
                _ => self.clients.entry(name.clone()).or_default().spec = t[i].clone(),
            }
            i += 1;
        }
        Ok(())
    }

    /// `tunnel tNAME …`, see `tunnel.rs`: declared (and listening) at its
    /// first use, as varnishtest's servers are here.
    fn tunnel(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('t') {
            return fail(format!("tunnel name '{name}' must start with 't'"));
        }
        let t = &c.tokens[2..];
        let mut args = Vec::with_capacity(t.len());
        let mut listen = None;
        let mut i = 0;
        while i < t.len() {
            if t[i] == "-listen" {
                i += 1;
                listen = Some(self.expand(t.get(i).map_or("", String::as_str))?);
            } else if t[i].starts_with('-') {
                args.push(self.expand(&t[i])?);
            } else {
                // A spec (expanded as it runs), or an option's argument.
                let after_option = args.last().is_some_and(|a: &String| a == "-connect");
                args.push(if after_option { self.expand(&t[i])? } else { t[i].clone() });
            }
            i += 1;
        }
        if !self.tunnels.contains_key(&name) || listen.is_some() {
            if let Some(mut old) = self.tunnels.remove(&name) {
                old.wait(&name).map_err(Verdict::Failed)?;
            }
            let l = listen.unwrap_or_else(|| "127.0.0.1:0".into());
            let tun = crate::tunnel::Tunnel::declare(&self.ctx, &name, &l).map_err(Verdict::Failed)?;
            self.tunnels.insert(name.clone(), tun);
        }
        let tun = self.tunnels.get_mut(&name).expect("declared above");
        tun.command(&self.ctx, &name, &args).map_err(|e| match self.ctx.failure() {
            Some(f) if !f.starts_with(&format!("{name}: ")) => Verdict::Failed(f),
            _ => Verdict::Failed(e),
        })
    }

    /// `process pNAME …`, see `process.rs`.
    fn process(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('p') {
            return fail(format!("process name '{name}' must start with 'p'"));
        }
        let mut args = Vec::with_capacity(c.tokens.len());
        for t in &c.tokens[2..] {
            args.push(self.expand(t)?);
        }
        if !self.processes.contains_key(&name) {
            let p = crate::process::Process::new(&self.ctx, &name).map_err(Verdict::Failed)?;
            self.processes.insert(name.clone(), p);
        }
        let p = self.processes.get_mut(&name).expect("declared above");
        p.command(&self.ctx, &args).map_err(Verdict::Failed)
    }

    fn client_start(&mut self, name: &str) -> Step {
        self.client_wait(name)?;
        let cl = self.clients.entry(name.to_string()).or_default();
        let connect = cl.connect.clone().unwrap_or_else(|| "${v1_sock}".into());
        let (spec, repeat) = (cl.spec.clone(), Repeat { count: cl.repeat.max(1), keepalive: cl.keepalive });
        let addr = self.expand(&connect)?;
        let opts = self.clients[name].opts.clone();
        let th = crate::server::start_client(self.ctx.clone(), name.to_string(), addr, spec, repeat, opts);
        self.clients.get_mut(name).expect("made above").thread = Some(th);
        Ok(())
    }

    /// The verdict when actor `name` failed with `e`: the test's first
    /// failure, if another actor's came first (a server that fails closes
    /// its connection, and its client's end-of-file is only a
    /// consequence), as varnishtest's log shows the first failure.
    fn first_failure(&self, kind: &str, name: &str, e: &str) -> String {
        match self.ctx.failure() {
            Some(f) if !f.starts_with(&format!("{name}: ")) => f,
            _ => format!("{kind} {name}: {e}"),
        }
    }

    fn client_wait(&mut self, name: &str) -> Step {
        if let Some(th) = self.clients.get_mut(name).and_then(|c| c.thread.take()) {
            match th.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return fail(self.first_failure("client", name, &e)),
                Err(_) => return fail(format!("client {name}: its thread panicked")),
            }
        }
        Ok(())
    }

    /// `varnish vN …`: its options in order, as `cmd_varnish` takes them.
    /// Under `--varnishd` the instance is a real varnishd driven over its
    /// CLI (`varnish_oracle`); otherwise a `lacquer serve` process
    /// (`varnish.rs`), restarted when its VCL or parameters change.
    fn varnish(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('v') {
            return fail(format!("varnish name '{name}' must start with 'v'"));
        }
        if !self.varnishes.contains_key(&name) {
            self.varnishes.insert(name.clone(), Varnish::default());
            // varnishtest's `-n` directory for the instance.
            let workdir = self.tmpdir.join(&name);
            self.ctx.define(&format!("{name}_name"), &workdir.to_string_lossy());
        }
        // As in varnishtest, `-syntax` holds for the rest of this command
        // only: each `varnish` command starts again from 4.1.
        let mut syntax = "4.1".to_string();
        let t = &c.tokens;
        let mut i = 2;
        while i < t.len() {
            let arg = t[i].as_str();
            let next =
                |k: usize| t.get(i + k).cloned().ok_or_else(|| Verdict::Failed(format!("{arg}: missing argument")));
            match arg {
                "-syntax" => {
                    // `strtod`, printed with one decimal: `4` is `4.0`.
                    let v = next(1)?;
                    syntax = format!("{:.1}", v.trim().parse::<f64>().unwrap_or(0.0));
                    i += 2;
                    continue;
                }
                "-expectexit" => {
                    let v = next(1)?;
                    let code = crate::counters::parse_number(v.trim())
                        .ok_or_else(|| Verdict::Failed(format!("varnish {name} -expectexit {v}: not a number")))?;
                    let inst = self.varnishes.get_mut(&name).expect("made above");
                    inst.expect_exit = code as i32;
                    if let Some(m) = inst.mgr.as_mut() {
                        m.expect_exit = code as i32;
                    }
                    i += 2;
                    continue;
                }
                "-proto" => {
                    let p = self.expand(&next(1)?)?;
                    self.varnishes.get_mut(&name).expect("made above").proto = Some(p);
                    i += 2;
                    continue;
                }
                "-vsc" => {
                    let pattern = self.expand(&next(1)?)?;
                    let source = self.varnish_counters(&name)?;
                    let lines = crate::counters::vsc(&source, &self.tmpdir.join(&name), &pattern)
                        .or_else(|e| fail(format!("varnish {name} -vsc: {e}")))?;
                    self.say(&name, c.line, &lines.join("\n"));
                    i += 2;
                    continue;
                }
                "-expect" => {
                    let first = self.expand(&next(1)?)?;
                    let mut av = vec![first.clone()];
                    if !first.starts_with('!') {
                        av.push(next(2)?);
                        av.push(self.expand(&next(3)?)?);
                    }
                    i += 1 + av.len();
                    let source = self.varnish_counters(&name)?;
                    let dir = self.tmpdir.join(&name);
                    match crate::counters::expect(&self.ctx, &source, &dir, &av) {
                        Ok(said) => self.say(&name, c.line, &said),
                        Err(e) => return fail(format!("varnish {name} -expect: {e}")),
                    }
                    continue;
                }
                "-clijson" => {
                    let cmd = self.expand(&next(1)?)?;
                    let (status, body) = self.varnish_ask(&name, &cmd)?;
                    if status != lacquer_cli::status::OK {
                        return fail(format!(
                            "varnish {name} -clijson \"{cmd}\": FAIL CLI response {status} expected 200"
                        ));
                    }
                    crate::json::validate(&body).or_else(|e| {
                        fail(format!("varnish {name} -clijson \"{cmd}\": FAIL CLI, not good JSON: {e}"))
                    })?;
                    i += 2;
                    continue;
                }
                _ => {}
            }
            i += self.varnish_option(&name, c.line, &t[i..], &syntax)?;
        }
        Ok(())
    }

    /// One option of `varnish vN`, at the start of `t`; answers how many
    /// words it took. Each does what `cmd_varnish` does, launching the
    /// manager first where varnishtest does (`VARNISH_LAUNCH`).
    fn varnish_option(&mut self, name: &str, line: usize, t: &[String], syntax: &str) -> Result<usize, Verdict> {
        let arg = t[0].as_str();
        let next = |k: usize| t.get(k).cloned().ok_or_else(|| Verdict::Failed(format!("{arg}: missing argument")));
        let failed = |e: String| Verdict::Failed(format!("varnish {name} {arg}: {e}"));
        match arg {
            "-arg" | "-jail" => {
                let a = self.expand(&next(1)?)?;
                let v = self.varnishes.get_mut(name).expect("varnish made first");
                if v.mgr.is_some() {
                    return fail(format!("varnish {name} {arg}: varnishd is already launched"));
                }
                if arg == "-jail" {
                    v.jail = a;
                } else {
                    v.has_a_arg |= a.starts_with("-a");
                    v.raw_args.push(' ');
                    v.raw_args.push_str(&a);
                }
                Ok(2)
            }
            "-cli" | "-cliok" | "-clierr" | "-cliexpect" => {
                let (want, cmd) = match arg {
                    "-clierr" | "-cliexpect" => (Some(self.expand(&next(1)?)?), self.expand(&next(2)?)?),
                    _ => (None, self.expand(&next(1)?)?),
                };
                let re = match (arg, &want) {
                    ("-cliexpect", Some(w)) => Some(
                        pcre2::bytes::Regex::new(w)
                            .or_else(|e| fail(format!("varnish {name}: Illegal regexp: {e}")))?,
                    ),
                    _ => None,
                };
                let (status, body) = self.varnish_ask(name, &cmd)?;
                self.say(name, line, &format!("CLI {status:03} <{cmd}>"));
                let exp = match arg {
                    "-cliok" => Some(lacquer_cli::status::OK),
                    "-clierr" => Some(want.as_deref().map(|w| w.trim().parse::<u16>().unwrap_or(0)).unwrap_or(0)),
                    _ => None,
                };
                if let Some(e) = exp.filter(|&e| e != 0 && e != status) {
                    return fail(format!("varnish {name} {arg} \"{cmd}\": FAIL CLI response {status} expected {e}"));
                }
                if let Some(re) = re {
                    if !re.is_match(body.as_bytes()).unwrap_or(false) {
                        return fail(format!(
                            "varnish {name} -cliexpect \"{}\" \"{cmd}\": Expect failed (no match)",
                            want.unwrap_or_default()
                        ));
                    }
                }
                Ok(if want.is_some() { 3 } else { 2 })
            }
            "-vcl" | "-vcl+backend" | "-errvcl" => {
                let (want, body) = if arg == "-errvcl" {
                    (Some(self.expand(&next(1)?)?), self.expand(&next(2)?)?)
                } else {
                    (None, self.expand(&next(1)?)?)
                };
                let src = self.vcl_source(syntax, &body, arg == "-vcl+backend");
                let answer = self.varnish_mgr(name)?.vcl(&src, want.is_some()).map_err(failed)?;
                if let Some(w) = &want {
                    if !answer.contains(w.as_str()) {
                        return fail(format!("varnish {name} -errvcl: Did not find expected string: (\"{w}\")"));
                    }
                    self.say(name, line, &format!("Found expected string: (\"{w}\")"));
                }
                let v = self.varnishes.get_mut(name).expect("varnish made first");
                v.vcl_nbr = v.mgr.as_ref().map_or(v.vcl_nbr, |m| m.vcl_nbr);
                Ok(if want.is_some() { 3 } else { 2 })
            }
            "-start" => {
                let listen = self.varnish_mgr(name)?.start().map_err(failed)?;
                // As `varnish_listen`: the first endpoint is `vN_addr` …,
                // and each name's first is `vN_NAME_addr` ….
                let mut seen = Vec::new();
                for (k, l) in listen.iter().enumerate() {
                    if k == 0 {
                        self.say(name, line, &format!("Listen on {} {}", l.addr, l.port));
                        self.ctx.define(&format!("{name}_addr"), &l.addr);
                        self.ctx.define(&format!("{name}_port"), &l.port);
                        self.ctx.define(&format!("{name}_sock"), &l.sock);
                    }
                    if seen.last() == Some(&l.name) {
                        continue;
                    }
                    self.ctx.define(&format!("{name}_{}_addr", l.name), &l.addr);
                    self.ctx.define(&format!("{name}_{}_port", l.name), &l.port);
                    self.ctx.define(&format!("{name}_{}_sock", l.name), &l.sock);
                    seen.push(l.name.clone());
                }
                Ok(1)
            }
            "-stop" => {
                self.varnish_mgr(name)?.stop().map_err(failed)?;
                Ok(1)
            }
            "-wait-running" => {
                self.varnish_mgr(name)?.wait_running().map_err(failed)?;
                Ok(1)
            }
            "-wait-stopped" => {
                self.varnish_mgr(name)?.wait_stopped().map_err(failed)?;
                Ok(1)
            }
            "-vsl_catchup" => {
                self.varnish_mgr(name)?.vsl_catchup().map_err(failed)?;
                Ok(1)
            }
            "-wait" => {
                if let Some(m) = self.varnishes.get_mut(name).and_then(|v| v.mgr.take()) {
                    m.wait(false, false).map_err(failed)?;
                }
                Ok(1)
            }
            "-cleanup" => {
                let Some(m) = self.varnishes.get_mut(name).and_then(|v| v.mgr.take()) else {
                    return fail(format!("varnish {name} -cleanup: varnishd was not launched"));
                };
                m.cleanup().map_err(failed)?;
                Ok(1)
            }
            other => fail(format!("varnish {name}: Unknown varnish argument: {other}")),
        }
    }

    /// The instance's manager — `lacquer serve -d`, or varnishd under
    /// `--varnishd` — launched first if need be (varnishtest's
    /// `VARNISH_LAUNCH`), defining `${vN_pid}`.
    fn varnish_mgr(&mut self, name: &str) -> Result<&mut Manager, Verdict> {
        if self.varnishes[name].mgr.is_none() {
            let daemon = match &self.opts.varnishd {
                Some(varnishd) => Daemon::varnishd(varnishd),
                None => Daemon::Lacquer { lacquer: self.opts.lacquer.clone() },
            };
            let workdir = self.tmpdir.join(name);
            let pwd = self.ctx.macro_value("pwd").unwrap_or_default();
            let v = &self.varnishes[name];
            let spec = LaunchSpec {
                name,
                workdir: &workdir,
                pwd: &pwd,
                jail: &v.jail,
                args: &v.raw_args,
                has_a_arg: v.has_a_arg,
                proto: v.proto.as_deref(),
                timeout: self.opts.timeout,
            };
            let mut m = Manager::launch(&self.ctx, &daemon, &spec).or_else(|e| fail(format!("varnish {name}: {e}")))?;
            m.vcl_nbr = v.vcl_nbr;
            m.expect_exit = v.expect_exit;
            self.ctx.define(&format!("{name}_pid"), &m.pid().to_string());
            self.varnishes.get_mut(name).expect("varnish made first").mgr = Some(m);
        }
        Ok(self.varnishes.get_mut(name).and_then(|v| v.mgr.as_mut()).expect("launched above"))
    }

    /// One CLI command over the manager's connection.
    fn varnish_ask(&mut self, name: &str, cmd: &str) -> Result<(u16, String), Verdict> {
        self.varnish_mgr(name)?.ask(cmd).or_else(|e| fail(format!("varnish {name}: {e}")))
    }

    /// Where instance `name`'s counters are read (launching it first, as
    /// varnishtest's `-expect` does).
    fn varnish_counters(&mut self, name: &str) -> Result<CounterSource, Verdict> {
        Ok(self.varnish_mgr(name)?.counters())
    }

    /// The end of a test (varnishtest's `cmd_varnish(NULL)`): every
    /// launched varnishd is waited for — stopped, checked for a panic, its
    /// exit status checked — which can fail a test that passed so far.
    /// A `lacquer serve` that was told `-expectexit` is checked likewise.
    fn varnish_reset(&mut self, failed: bool) -> Step {
        let mut first = Ok(());
        let mut names: Vec<String> = self.varnishes.keys().cloned().collect();
        names.sort();
        for name in names {
            let v = self.varnishes.get_mut(&name).expect("listed");
            let r = match v.mgr.take() {
                Some(m) => m.wait(failed, true),
                None => Ok(()),
            };
            if let Err(e) = r {
                self.ctx.say(&name, &format!("FAIL: {e}"));
                if first.is_ok() {
                    first = fail(format!("varnish {name}: {e}"));
                }
            }
        }
        first
    }

    /// The source varnishtest sends with `vcl.inline`.
    fn vcl_source(&self, syntax: &str, body: &str, backends: bool) -> String {
        let mut s = format!("vcl {syntax};\n");
        if backends {
            for sv in &self.servers {
                let _ = writeln!(s, "backend {} {{ {} }}", sv.name, sv.backend);
            }
            s.push('\n');
        }
        s.push_str(body);
        s.push('\n');
        s
    }

    /// `logexpect lN -v vN [options] [{script}] [-start|-wait|-run]`, as
    /// `cmd_logexpect` reads it: the first use names the instance, later
    /// ones may change options and script; anything but `-wait` on a
    /// running logexpect first waits for it.
    fn logexpect(&mut self, c: &Command) -> Step {
        use crate::logexp::Options;
        use lacquer_shm::Grouping;
        let t = &c.tokens;
        let name = t.get(1).cloned().unwrap_or_default();
        if !name.starts_with('l') {
            return fail(format!("logexpect name '{name}' must start with 'l'"));
        }
        let mut i = 2;
        if !self.logexps.contains_key(&name) {
            if t.get(2).map(String::as_str) != Some("-v") || t.get(3).is_none() {
                return fail(format!("logexpect {name}: new logexp lacks -v"));
            }
            let vname = self.expand(&t[3])?;
            if !self.varnishes.contains_key(&vname) {
                return fail(format!("logexpect {name} -v {vname}: no such varnish instance"));
            }
            let le = LogExpect { vname, opts: Options::default(), script: Vec::new(), thread: None };
            self.logexps.insert(name.clone(), le);
            i = 4;
        }
        while i < t.len() {
            let arg = t[i].as_str();
            if arg == "-wait" {
                if self.logexps[&name].thread.is_none() {
                    return fail(format!("logexpect {name}: logexp not -started '-wait'"));
                }
                self.logexpect_wait(&name, c.line)?;
                i += 1;
                continue;
            }
            self.logexpect_wait(&name, c.line)?;
            let next = |k: usize| {
                t.get(i + k)
                    .cloned()
                    .ok_or_else(|| Verdict::Failed(format!("logexpect {name}: Missing {arg} argument")))
            };
            match arg {
                "-v" => {
                    let v = self.expand(&next(1)?)?;
                    if v != self.logexps[&name].vname {
                        return fail(format!("logexpect {name}: -v argument cannot change"));
                    }
                    i += 1;
                }
                "-d" => {
                    let d = next(1)?;
                    self.logexps.get_mut(&name).expect("declared").opts.dump =
                        d.trim().parse::<i64>().unwrap_or(0) != 0;
                    i += 1;
                }
                "-g" => {
                    let g = next(1)?;
                    let g = Grouping::parse(&g).ok_or_else(|| Verdict::Failed(format!("Unknown grouping '{g}'")))?;
                    self.logexps.get_mut(&name).expect("declared").opts.grouping = g;
                    i += 1;
                }
                "-q" => {
                    let q = self.expand(&next(1)?)?;
                    self.logexps.get_mut(&name).expect("declared").opts.query = Some(q);
                    i += 1;
                }
                "-m" => {
                    let o = &mut self.logexps.get_mut(&name).expect("declared").opts;
                    o.misses = !o.misses;
                }
                "-err" => {
                    let o = &mut self.logexps.get_mut(&name).expect("declared").opts;
                    o.err = !o.err;
                }
                "-start" => self.logexpect_start(&name, c.line)?,
                "-run" => {
                    self.logexpect_start(&name, c.line)?;
                    self.logexpect_wait(&name, c.line)?;
                }
                "-i" | "-x" | "-I" | "-X" => {
                    let v = self.expand(&next(1)?)?;
                    let opt = arg.chars().nth(1).expect("two characters");
                    let le = self.logexps.get_mut(&name).expect("declared");
                    le.opts.filters.push((opt, v));
                    // Checked now, as varnishtest's VSL_Arg checks it.
                    crate::logexp::filter(&le.opts).or_else(|e| fail(format!("logexpect {name}: {e}")))?;
                    i += 1;
                }
                "-c" | "-b" => {
                    let opt = arg.chars().nth(1).expect("two characters");
                    self.logexps.get_mut(&name).expect("declared").opts.filters.push((opt, String::new()));
                }
                "-T" => {
                    let v = next(1)?;
                    let secs = v.parse::<f64>().or_else(|_| fail(format!("-T: Syntax error: '{v}'")))?;
                    self.logexps.get_mut(&name).expect("declared").opts.tx_timeout = secs;
                    i += 1;
                }
                a if a.starts_with('-') => {
                    return fail(format!("logexpect {name} {a}: not supported by lacquer vtc yet"));
                }
                spec => {
                    let mut script = Vec::new();
                    for cmd in tokenize(spec).or_else(|e| fail(format!("logexpect {name}: {e}")))? {
                        let mut words = Vec::with_capacity(cmd.tokens.len());
                        for w in &cmd.tokens {
                            words.push(self.expand(w)?);
                        }
                        script.push(words);
                    }
                    // Checked now, as varnishtest parses the script when it
                    // is given.
                    crate::logexp::Matcher::parse(&script).or_else(|e| fail(format!("logexpect {name}: {e}")))?;
                    self.logexps.get_mut(&name).expect("declared").script = script;
                }
            }
            i += 1;
        }
        Ok(())
    }

    fn logexpect_start(&mut self, name: &str, line: usize) -> Step {
        let le = &self.logexps[name];
        let m = crate::logexp::Matcher::parse(&le.script).or_else(|e| fail(format!("logexpect {name}: {e}")))?;
        let (vname, dump) = (le.vname.clone(), le.opts.dump);
        let workdir = self.tmpdir.join(&vname);
        // Under `--varnishd` the log is varnishd's, read through varnishlog
        // and synchronized over the manager's CLI.
        // A logexpect does not launch Lacquer (varnishtest's does not
        // launch varnishd either): it waits for the log to appear. Under
        // --varnishd the log is read through varnishd's CLI, which must be
        // there.
        let reader = match (&self.opts.varnishd, self.varnishes[&vname].mgr.as_ref()) {
            (None, None) => LogSource::Lacquer.open(&workdir, dump, false),
            _ => {
                let m = self.varnish_mgr(&vname)?;
                let running = m.running;
                m.log_source().open(&workdir, dump, running)
            }
        };
        let reader = reader.or_else(|e| fail(format!("logexpect {name}: {e}")))?;
        let le = &self.logexps[name];
        let th = crate::logexp::start(self.ctx.clone(), name, reader, &le.opts, m)
            .or_else(|e| fail(format!("logexpect {name}: {e}")))?;
        self.logexps.get_mut(name).expect("declared").thread = Some(th);
        self.say(name, line, "started");
        Ok(())
    }

    /// Joins logexpect `name`'s thread if it runs; its failure fails the
    /// test, and if the test was stopped meanwhile, whoever stopped it has
    /// the verdict.
    fn logexpect_wait(&mut self, name: &str, line: usize) -> Step {
        let Some(th) = self.logexps.get_mut(name).and_then(|l| l.thread.take()) else {
            return Ok(());
        };
        self.say(name, line, "Waiting for logexp");
        match th.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => fail(self.ctx.failure().unwrap_or_else(|| format!("logexpect {name}: {e}"))),
            Err(_) => fail(format!("logexpect {name}: its thread panicked")),
        }
    }

    fn shell(&mut self, c: &Command) -> Step {
        let mut args = Vec::with_capacity(c.tokens.len());
        for t in &c.tokens[1..] {
            args.push(self.expand(t)?);
        }
        self.ctx.shell(&format!("top {:>4}", c.line), &args).map_err(Verdict::Failed)
    }

    fn barrier(&mut self, c: &Command) -> Step {
        let mut args = Vec::with_capacity(c.tokens.len());
        for t in &c.tokens[1..] {
            args.push(self.expand(t)?);
        }
        match crate::barrier::command(&self.ctx, "top", &args) {
            Ok(()) => Ok(()),
            Err(crate::barrier::Stop::Fail(m)) => fail(m),
            // Whoever aborted the test (a failing actor, the timeout) has
            // the verdict.
            Err(crate::barrier::Stop::Aborted) => {
                fail(self.ctx.failure().unwrap_or_else(|| "aborted while waiting on a barrier".into()))
            }
        }
    }

    fn filewrite(&mut self, c: &Command) -> Step {
        let mut t = &c.tokens[1..];
        let append = t.first().is_some_and(|a| a == "-a");
        if append {
            t = &t[1..];
        }
        let Some((file, parts)) = t.split_first() else {
            return fail("filewrite: missing file name");
        };
        let file = self.expand(file)?;
        let mut data = String::new();
        for p in parts {
            data.push_str(&self.expand(p)?);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&file)
            .or_else(|e| fail(format!("filewrite {file}: {e}")))?;
        f.write_all(data.as_bytes()).or_else(|e| fail(format!("filewrite {file}: {e}")))
    }

    fn setenv(&mut self, c: &Command) -> Step {
        let mut t = &c.tokens[1..];
        let ifunset = t.first().is_some_and(|a| a == "-ifunset");
        if ifunset {
            t = &t[1..];
        }
        let (Some(k), Some(v)) = (t.first(), t.get(1)) else {
            return fail("setenv: needs a name and a value");
        };
        if ifunset && (std::env::var_os(k).is_some() || self.ctx.env_is_set(k)) {
            return Ok(());
        }
        let v = self.expand(v)?;
        self.ctx.setenv(k, &v);
        Ok(())
    }
}
