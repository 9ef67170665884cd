//! A `varnish` instance run for real: a `lacquer serve` process with the
//! instance's latest VCL and parameters, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ctx::{kill_group, Ctx};

/// How long a starting `lacquer serve` may take to listen.
const START: Duration = Duration::from_secs(10);
/// How long a stopping one may take before it is killed.
const STOP: Duration = Duration::from_secs(2);

/// A running `lacquer serve`.
pub struct Instance {
    child: Child,
    /// The address it listens on, `host:port`.
    pub addr: std::net::SocketAddr,
}

/// What to start an instance with.
pub struct Launch<'a> {
    pub lacquer: &'a Path,
    pub name: &'a str,
    pub workdir: &'a Path,
    pub vcl: &'a Path,
    pub params: &'a [String],
    /// More arguments, as `-arg` gave them (`-s …`).
    pub args: &'a [String],
    pub listen: &'a str,
}

impl Instance {
    /// Starts `lacquer serve` and waits until it listens; its standard
    /// error goes to the log.
    pub fn start(ctx: &Arc<Ctx>, l: &Launch) -> Result<Instance, String> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(l.lacquer);
        cmd.arg("serve").args(["-a", l.listen]).arg("-n").arg(l.workdir).arg("-f").arg(l.vcl);
        for p in l.params {
            cmd.args(["-p", p]);
        }
        cmd.args(l.args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", l.lacquer.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
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
        loop {
            if ctx.aborted() || Instant::now() >= deadline {
                kill_group(&mut child, "KILL");
                let _ = child.wait();
                return Err(format!("lacquer serve did not start listening within {} s", START.as_secs()));
            }
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("lacquer: listening on ") {
                        if let Ok(addr) = a.trim().parse() {
                            return Ok(Instance { child, addr });
                        }
                    }
                    said.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("lacquer serve exited ({status}): {}", said.join(" / ")));
                }
            }
        }
    }

    /// Stops it: SIGTERM, then SIGKILL if it has not exited in time.
    pub fn stop(mut self) {
        kill_group(&mut self.child, "TERM");
        let deadline = Instant::now() + STOP;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.child, "KILL");
        let _ = self.child.wait();
    }
}
