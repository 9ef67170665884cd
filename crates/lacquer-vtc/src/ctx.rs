//! What a test's actors share: the log, the macros, the first failure, and
//! the abort flag every blocking wait polls so that a failing or timed-out
//! test stops all its threads and child processes promptly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often blocking waits look at the abort flag.
pub const POLL: Duration = Duration::from_millis(50);

/// One test's shared state.
#[derive(Default)]
pub struct Ctx {
    log: Mutex<String>,
    failed: Mutex<Option<String>>,
    abort: AtomicBool,
    macros: Mutex<HashMap<String, String>>,
    /// What `setenv` set, for every `shell` (the top's or a spec's).
    env: Mutex<Vec<(String, String)>>,
    /// A directory put first on `PATH` for `shell` and `process`: where
    /// the Varnish tools' names lead to the Lacquer under test.
    tools: Mutex<Option<std::path::PathBuf>>,
    /// The default I/O timeout of an HTTP session (half the test's).
    pub session_timeout: Duration,
    /// The test's barriers, which every actor can use.
    pub barriers: crate::barrier::Barriers,
    /// `feature ignore_unknown_macro`: an undefined `${name}` stays as it
    /// is written instead of failing the test.
    pub ignore_unknown_macro: AtomicBool,
}

impl Ctx {
    /// A context whose sessions time out after `session_timeout`.
    pub fn new(session_timeout: Duration) -> Ctx {
        Ctx { session_timeout, ..Default::default() }
    }

    /// Appends `msg`, line by line, to the log under `who`.
    pub fn say(&self, who: &str, msg: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        for l in msg.lines() {
            let _ = writeln!(log, "**** {who:<5} {l}");
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the test's first failure and tells every actor to stop.
    pub fn fail(&self, who: &str, msg: &str) {
        self.say(who, &format!("FAIL: {msg}"));
        let mut f = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() && !self.aborted() {
            *f = Some(format!("{who}: {msg}"));
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    /// The first failure an actor recorded, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Tells every actor to stop, without a failure (the end of a test, or
    /// its timeout).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
    }

    /// Whether actors must stop.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// Defines a macro.
    pub fn define(&self, name: &str, value: &str) {
        self.macros.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), value.to_string());
    }

    /// Removes macro `name`.
    pub fn undefine(&self, name: &str) {
        self.macros.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    /// Removes the macros whose names start with `prefix`.
    pub fn undefine_prefix(&self, prefix: &str) {
        self.macros.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| !k.starts_with(prefix));
    }

    /// The value of macro `name`: a defined one or `string,repeat,N,TEXT`.
    pub fn macro_value(&self, name: &str) -> Result<String, String> {
        if let Some(args) = name.strip_prefix("string,repeat,") {
            if let Some((n, s)) = args.split_once(',') {
                if let Ok(n) = n.trim().parse::<usize>() {
                    // A quoted text is its inside: `${string,repeat,3," "}`.
                    let s = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s);
                    return Ok(s.repeat(n));
                }
            }
        }
        if let Some(v) = self.macros.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(v.clone());
        }
        if self.ignore_unknown_macro.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(format!("${{{name}}}"));
        }
        Err(format!("macro ${{{name}}} is not available (not defined, or not supported by lacquer vtc yet)"))
    }

    /// Expands the `${...}` macros of `text`.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        crate::parse::expand_macros(text, |n| self.macro_value(n))
    }

    /// Sets `name` in the environment of the test's shell commands.
    pub fn setenv(&self, name: &str, value: &str) {
        let mut env = self.env.lock().unwrap_or_else(|e| e.into_inner());
        env.retain(|(n, _)| n != name);
        env.push((name.to_string(), value.to_string()));
    }

    /// Makes `dir` hold the Varnish tools' names as links to `lacquer`,
    /// and puts it first on the `PATH` of `shell` and `process`, so that
    /// the scripts' `varnishlog`, `varnishadm` … read this Lacquer.
    pub fn provide_tools(&self, dir: &std::path::Path, lacquer: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for name in TOOLS {
            std::os::unix::fs::symlink(lacquer, dir.join(name))?;
        }
        *self.tools.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
        Ok(())
    }

    /// Prepares `cmd` to run a test's command: in `${tmpdir}`, with
    /// `${tmpdir}` and what `setenv` set in its environment, and the tools'
    /// directory first on its `PATH`.
    pub fn command_env(&self, cmd: &mut Command) -> Result<(), String> {
        let tmpdir = self.macro_value("tmpdir")?;
        cmd.current_dir(&tmpdir).env("tmpdir", &tmpdir);
        if let Some(dir) = self.tools.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let mut path = vec![dir.clone()];
            path.extend(std::env::var_os("PATH").iter().flat_map(std::env::split_paths));
            cmd.env("PATH", std::env::join_paths(path).map_err(|e| e.to_string())?);
        }
        self.apply_setenv(cmd);
        Ok(())
    }

    /// Puts what `setenv` set into the environment of `cmd`: varnishtest
    /// sets its own environment, which every process it starts inherits,
    /// `varnishd` included (`std.getenv` reads it).
    pub fn apply_setenv(&self, cmd: &mut Command) {
        cmd.envs(self.env.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }

    /// Whether `setenv` set `name`.
    pub fn env_is_set(&self, name: &str) -> bool {
        self.env.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(n, _)| n == name)
    }

    /// `shell [-err] [-exit N] [-expect TEXT] [-match REGEX] SCRIPT`, its
    /// arguments already expanded: runs SCRIPT with `/bin/sh` in the test's
    /// temporary directory, as varnishtest does from the top or from a
    /// server or client spec, and checks its exit status and output.
    pub fn shell(&self, who: &str, t: &[String]) -> Result<(), String> {
        let mut want_exit = Some(0);
        let mut expect = None;
        let mut matches = None;
        let mut i = 0;
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
                other => return Err(format!("shell {other}: not supported")),
            }
            i += 1;
        }
        let script = t.get(i).map(String::as_str).unwrap_or("");
        let mut cmd = Command::new("/bin/sh");
        // Standard error joins the output that is checked, as varnishtest
        // joins them.
        cmd.arg("-c").arg(format!("exec 2>&1 ; {script}"));
        self.command_env(&mut cmd)?;
        let out = self.output(&mut cmd).map_err(|e| format!("shell: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.say(who, &format!("shell_out|{}", stdout.trim_end()));
        let code = out.status.code();
        match want_exit {
            None if out.status.success() => return Err("shell: expected failure, got exit 0".into()),
            Some(w) if code != Some(w) => return Err(format!("shell: exit {code:?}, expected {w}")),
            _ => {}
        }
        if let Some(e) = expect {
            if !stdout.contains(&e) {
                return Err(format!("shell: output does not contain {e:?}"));
            }
        }
        if let Some(m) = matches {
            let re = pcre2::bytes::Regex::new(&m).map_err(|e| format!("shell -match: bad regex: {e}"))?;
            if !re.is_match(stdout.as_bytes()).unwrap_or(false) {
                return Err(format!("shell: output does not match {m:?}"));
            }
        }
        Ok(())
    }

    /// Sleeps for `d`, or less if the test is aborted.
    pub fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.aborted() {
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(POLL));
        }
    }

    /// Runs `cmd` in its own process group to completion, killing the
    /// whole group if the test is aborted; standard output and error are
    /// captured.
    pub fn output(&self, cmd: &mut Command) -> std::io::Result<Output> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn()?;
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut v);
            }
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v);
            }
            v
        });
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if self.aborted() {
                kill_group(&mut child, "KILL");
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = t_out.join().unwrap_or_default();
        let stderr = t_err.join().unwrap_or_default();
        Ok(Output { status, stdout, stderr })
    }
}

/// The Varnish tools Lacquer can be run as (`lacquer`'s `compat.rs`, and
/// `varnishd` as `lacquer serve`).
pub const TOOLS: &[&str] = &["varnishlog", "varnishncsa", "varnishstat", "varnishadm", "varnishd"];

/// Sends `sig` (a name such as `TERM`) to the process group led by `child`
/// (started with `process_group(0)`), through the `kill` command.
pub fn kill_group(child: &mut Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if sig == "KILL" {
        let _ = child.kill();
    }
}
