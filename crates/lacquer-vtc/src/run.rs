//! Running one script: its commands in order, each by an actor.
//!
//! Macros follow the installed varnishtest 7.1.1: `${sN_sock}`,
//! `${bad_backend}` and `${listen_addr}` are `host:port`. One deliberate
//! difference: a declared server listens (and has its macros) at once,
//! where varnishtest defines them only at `-start`.
//!
//! Implemented today: `varnishtest`, `feature`, `server` (declared and
//! listening; serving needs the HTTP actors), `varnish` (VCL compilation:
//! `-vcl`, `-vcl+backend`, `-errvcl`, `-syntax`, and the VCC parameters
//! through `-arg "-p ..."` or `-cliok "param.set ..."`), `shell`, `delay`,
//! `filewrite`, `setenv`. Everything else fails the test with the name of
//! what is missing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::parse::{tokenize, Command};

/// How to run scripts.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `lacquer` executable to drive.
    pub lacquer: PathBuf,
    /// A test taking longer fails.
    pub timeout: Duration,
    /// Keep each test's temporary directory.
    pub keep_tmp: bool,
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
    std::thread::spawn(move || {
        let _ = tx.send(run_inner(&p, &o));
    });
    match rx.recv_timeout(opts.timeout) {
        Ok((verdict, log)) => Outcome { verdict, log, elapsed: start.elapsed() },
        Err(_) => Outcome {
            verdict: Verdict::Failed(format!("timed out after {} s", opts.timeout.as_secs())),
            log: String::new(),
            elapsed: start.elapsed(),
        },
    }
}

/// A step's result: go on, or stop the test with a verdict.
type Step = Result<(), Verdict>;

fn fail<T>(msg: impl Into<String>) -> Result<T, Verdict> {
    Err(Verdict::Failed(msg.into()))
}

fn run_inner(path: &Path, opts: &RunOptions) -> (Verdict, String) {
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
    let testdir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let testdir = std::fs::canonicalize(&testdir).unwrap_or(testdir);
    let mut t = Test::new(tmp.clone(), testdir, opts);
    let verdict = match t.run(&cmds) {
        Ok(()) => Verdict::Passed,
        Err(v) => v,
    };
    if !opts.keep_tmp {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    (verdict, t.log)
}

/// A declared server: listening, so that its address is real.
struct Server {
    name: String,
    addr: String,
    port: String,
    _listener: Option<TcpListener>,
}

/// A `varnish` instance, as far as VCL compilation needs one.
#[derive(Default)]
struct Varnish {
    syntax: Option<String>,
    err_unref: bool,
    allow_inline_c: bool,
}

struct Test<'o> {
    opts: &'o RunOptions,
    tmpdir: PathBuf,
    testdir: PathBuf,
    servers: Vec<Server>,
    varnishes: HashMap<String, Varnish>,
    env: Vec<(String, String)>,
    bad_backend: String,
    log: String,
}

impl<'o> Test<'o> {
    fn new(tmpdir: PathBuf, testdir: PathBuf, opts: &'o RunOptions) -> Test<'o> {
        // A port nothing listens on: bound, then released.
        let bad_port = TcpListener::bind("127.0.0.1:0").ok().and_then(|l| l.local_addr().ok()).map_or(9, |a| a.port());
        Test {
            opts,
            tmpdir,
            testdir,
            servers: Vec::new(),
            varnishes: HashMap::new(),
            env: Vec::new(),
            bad_backend: format!("127.0.0.1:{bad_port}"),
            log: String::new(),
        }
    }

    fn say(&mut self, who: &str, line: usize, msg: &str) {
        for l in msg.lines() {
            let _ = writeln!(self.log, "**** {who:<5} {line:>4} {l}");
        }
    }

    fn run(&mut self, cmds: &[Command]) -> Step {
        for c in cmds {
            let Some(word) = c.tokens.first() else { continue };
            let r = match word.as_str() {
                "varnishtest" => {
                    let title = c.tokens.get(1).cloned().unwrap_or_default();
                    self.say("top", c.line, &format!("TEST {title}"));
                    Ok(())
                }
                "feature" => self.feature(&c.tokens[1..]),
                "server" => self.server(c),
                "varnish" => self.varnish(c),
                "shell" => self.shell(c),
                "delay" => {
                    let secs: f64 = c.tokens.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    std::thread::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
                    Ok(())
                }
                "filewrite" => self.filewrite(c),
                "setenv" => self.setenv(c),
                other => fail(format!("line {}: '{other}' is not supported by lacquer vtc yet", c.line)),
            };
            if let Err(v) = r {
                if let Verdict::Failed(why) = &v {
                    self.say("top", c.line, &format!("FAIL: {why}"));
                }
                return Err(v);
            }
        }
        Ok(())
    }

    // ----- macros -----

    fn macro_value(&self, name: &str) -> Result<String, String> {
        if let Some(args) = name.strip_prefix("string,repeat,") {
            if let Some((n, s)) = args.split_once(',') {
                if let Ok(n) = n.trim().parse::<usize>() {
                    return Ok(s.repeat(n));
                }
            }
        }
        Ok(match name {
            "localhost" => "127.0.0.1".into(),
            "bad_ip" => "192.0.2.255".into(),
            "bad_backend" => self.bad_backend.clone(),
            "listen_addr" => "127.0.0.1:0".into(),
            "tmpdir" => self.tmpdir.display().to_string(),
            "testdir" => self.testdir.display().to_string(),
            "pwd" => std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            _ => {
                for s in &self.servers {
                    if let Some(what) = name.strip_prefix(s.name.as_str()).and_then(|r| r.strip_prefix('_')) {
                        return match what {
                            "addr" => Ok(s.addr.clone()),
                            "port" => Ok(s.port.clone()),
                            "sock" => Ok(if s.addr.contains(':') {
                                format!("[{}]:{}", s.addr, s.port)
                            } else {
                                format!("{}:{}", s.addr, s.port)
                            }),
                            _ => Err(format!("unknown macro ${{{name}}}")),
                        };
                    }
                }
                return Err(format!("macro ${{{name}}} is not available (not supported by lacquer vtc yet)"));
            }
        })
    }

    fn expand(&self, text: &str) -> Result<String, Verdict> {
        crate::parse::expand_macros(text, |n| self.macro_value(n)).map_err(Verdict::Failed)
    }

    // ----- commands -----

    fn feature(&mut self, names: &[String]) -> Step {
        let mut i = 0;
        while i < names.len() {
            let f = names[i].as_str();
            let present = match f {
                "64bit" | "ipv4" | "pcre_jit" | "SO_RCVTIMEO_WORKS" => true,
                "ipv6" => TcpListener::bind("[::1]:0").is_ok(),
                "root" => Process::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0")),
                "dns" => std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).is_ok(),
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
                _ => false,
            };
            if !present {
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
        let mut listen = None;
        let mut i = 2;
        while i < c.tokens.len() {
            match c.tokens[i].as_str() {
                "-listen" => {
                    i += 1;
                    listen = c.tokens.get(i).cloned();
                }
                "-start" | "-wait" | "-dispatch" | "-break" => {
                    return fail(format!(
                        "server {name} {}: serving needs the HTTP actors, which are not built yet",
                        c.tokens[i]
                    ));
                }
                "-repeat" => i += 1,
                _ => {} // the script body; kept for when servers serve
            }
            i += 1;
        }
        if self.servers.iter().any(|s| s.name == name) && listen.is_none() {
            return Ok(());
        }
        let want = match listen {
            Some(l) => self.expand(&l)?,
            None => "127.0.0.1:0".into(),
        };
        if want.starts_with('/') || want.starts_with('@') {
            return fail(format!("server {name}: Unix socket servers are not supported yet"));
        }
        // varnishtest writes addresses as "host port" or "host:port".
        let bind = match want.split_once(' ') {
            Some((h, p)) => format!("{h}:{p}"),
            None => want,
        };
        let l = TcpListener::bind(&bind).or_else(|_| fail(format!("server {name}: cannot listen on {bind}")))?;
        let a = l.local_addr().or_else(|e| fail(format!("server {name}: {e}")))?;
        self.servers.retain(|s| s.name != name);
        self.servers.push(Server { name, addr: a.ip().to_string(), port: a.port().to_string(), _listener: Some(l) });
        Ok(())
    }

    fn varnish(&mut self, c: &Command) -> Step {
        let name = c.tokens.get(1).cloned().unwrap_or_default();
        if !name.starts_with('v') {
            return fail(format!("varnish name '{name}' must start with 'v'"));
        }
        self.varnishes.entry(name.clone()).or_insert_with(|| Varnish { err_unref: true, ..Default::default() });
        let t = &c.tokens;
        let mut i = 2;
        while i < t.len() {
            let arg = t[i].as_str();
            let next =
                |k: usize| t.get(i + k).cloned().ok_or_else(|| Verdict::Failed(format!("{arg}: missing argument")));
            match arg {
                "-syntax" => {
                    let v = next(1)?;
                    self.varnishes.get_mut(&name).expect("made above").syntax = Some(v);
                    i += 2;
                }
                "-arg" => {
                    let a = self.expand(&next(1)?)?;
                    self.varnish_arg(&name, &a)?;
                    i += 2;
                }
                "-cliok" => {
                    let cmd = self.expand(&next(1)?)?;
                    let words: Vec<&str> = cmd.split_whitespace().collect();
                    match words.as_slice() {
                        ["param.set", p, v] => self.set_param(&name, p, v)?,
                        _ => return fail(format!("varnish {name} -cliok \"{cmd}\": the admin CLI is not built yet")),
                    }
                    i += 2;
                }
                "-vcl" | "-vcl+backend" => {
                    let body = self.expand(&next(1)?)?;
                    let src = self.vcl_source(&name, &body, arg == "-vcl+backend");
                    let (ok, out) = self.compile(&name, &src)?;
                    if !ok {
                        self.say(&name, c.line, &out);
                        return fail(format!("varnish {name} {arg}: VCL did not compile"));
                    }
                    i += 2;
                }
                "-errvcl" => {
                    let want = self.expand(&next(1)?)?;
                    let body = self.expand(&next(2)?)?;
                    let src = self.vcl_source(&name, &body, false);
                    let (ok, out) = self.compile(&name, &src)?;
                    if ok {
                        return fail(format!("varnish {name} -errvcl: VCL compiled, expected failure"));
                    }
                    if !out.contains(&want) {
                        self.say(&name, c.line, &out);
                        return fail(format!("varnish {name} -errvcl: expected error text not found: {want:?}"));
                    }
                    self.say(&name, c.line, &format!("VCL compilation failed (expected): {want}"));
                    i += 3;
                }
                other => {
                    return fail(format!(
                        "varnish {name} {other}: running an instance is not supported by lacquer vtc yet"
                    ))
                }
            }
        }
        Ok(())
    }

    fn varnish_arg(&mut self, name: &str, a: &str) -> Step {
        let words: Vec<&str> = a.split_whitespace().collect();
        let mut k = 0;
        while k < words.len() {
            match (words[k], words.get(k + 1)) {
                ("-p", Some(pv)) => {
                    let (p, v) = pv.split_once('=').unwrap_or((pv, ""));
                    self.set_param(name, p, v)?;
                    k += 2;
                }
                _ => return fail(format!("varnish {name} -arg \"{a}\": not supported by lacquer vtc yet")),
            }
        }
        Ok(())
    }

    fn set_param(&mut self, name: &str, p: &str, v: &str) -> Step {
        let on = matches!(v, "on" | "true" | "1" | "yes");
        let off = matches!(v, "off" | "false" | "0" | "no");
        let inst = self.varnishes.get_mut(name).expect("varnish made first");
        match p {
            "vcc_err_unref" if on || off => inst.err_unref = on,
            "vcc_allow_inline_c" if on || off => inst.allow_inline_c = on,
            _ => return fail(format!("varnish {name}: parameter {p}={v} is not supported by lacquer vtc yet")),
        }
        Ok(())
    }

    /// The source varnishtest sends with `vcl.inline`.
    fn vcl_source(&self, name: &str, body: &str, backends: bool) -> String {
        let syntax = self.varnishes.get(name).and_then(|v| v.syntax.clone()).unwrap_or_else(|| "4.1".into());
        let mut s = format!("vcl {syntax};\n");
        if backends {
            for sv in &self.servers {
                let _ = writeln!(s, "backend {} {{ .host = \"{}\"; .port = \"{}\"; }}", sv.name, sv.addr, sv.port);
            }
            s.push('\n');
        }
        s.push_str(body);
        s.push('\n');
        s
    }

    /// Compiles through `lacquer check`, as a user would; returns whether
    /// it compiled and what it printed.
    fn compile(&mut self, name: &str, src: &str) -> Result<(bool, String), Verdict> {
        let inst = &self.varnishes[name];
        let mut cmd = Process::new(&self.opts.lacquer);
        cmd.args(["check", "--name", "<vcl.inline>", "--err-unref", if inst.err_unref { "true" } else { "false" }])
            .arg("-")
            .current_dir(&self.tmpdir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().or_else(|e| fail(format!("cannot run {}: {e}", self.opts.lacquer.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(src.as_bytes());
        }
        let out = child.wait_with_output().or_else(|e| fail(format!("lacquer check: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        Ok((out.status.success(), text))
    }

    fn shell(&mut self, c: &Command) -> Step {
        let t = &c.tokens;
        let mut want_exit = Some(0);
        let mut expect = None;
        let mut matches = None;
        let mut i = 1;
        while i < t.len() && t[i].starts_with('-') {
            match t[i].as_str() {
                "-err" => want_exit = None,
                "-exit" => {
                    i += 1;
                    want_exit = t.get(i).and_then(|s| s.parse().ok());
                }
                "-expect" => {
                    i += 1;
                    expect = t.get(i).cloned();
                }
                "-match" => {
                    i += 1;
                    matches = t.get(i).cloned();
                }
                other => return fail(format!("shell {other}: not supported")),
            }
            i += 1;
        }
        let script = self.expand(t.get(i).map(String::as_str).unwrap_or(""))?;
        let out = Process::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .current_dir(&self.tmpdir)
            .env("tmpdir", &self.tmpdir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .or_else(|e| fail(format!("shell: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.say("top", c.line, &format!("shell_out|{}", stdout.trim_end()));
        let code = out.status.code();
        match want_exit {
            None if out.status.success() => return fail("shell: expected failure, got exit 0"),
            Some(w) if code != Some(w) => return fail(format!("shell: exit {code:?}, expected {w}")),
            _ => {}
        }
        if let Some(e) = expect {
            let e = self.expand(&e)?;
            if !stdout.contains(&e) {
                return fail(format!("shell: output does not contain {e:?}"));
            }
        }
        if let Some(m) = matches {
            let m = self.expand(&m)?;
            let re = pcre2::bytes::Regex::new(&m).or_else(|e| fail(format!("shell -match: bad regex: {e}")))?;
            if !re.is_match(stdout.as_bytes()).unwrap_or(false) {
                return fail(format!("shell: output does not match {m:?}"));
            }
        }
        Ok(())
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
        if ifunset && (std::env::var_os(k).is_some() || self.env.iter().any(|(n, _)| n == k)) {
            return Ok(());
        }
        let v = self.expand(v)?;
        self.env.retain(|(n, _)| n != k);
        self.env.push((k.clone(), v));
        Ok(())
    }
}
