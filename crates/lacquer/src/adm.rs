//! `lacquer adm`: the admin CLI's client, as `varnishadm -T … -S …` is:
//! one command from the arguments, or commands read line by line from
//! standard input, each sent as soon as it is read; each answer's body is
//! printed (after its status line in pass mode, `-p`). A command from the
//! arguments exits 0 when it succeeded and 1 otherwise; a broken
//! connection exits 2.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lacquer_cli::status;

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// The body, then a newline.
    Plain,
    /// `-p`: the status line as on the wire, then the body as it is.
    Pass,
}

/// An authenticated connection to a server's CLI.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    /// Connects, authenticates and checks the server answers `ping`, in
    /// varnishadm's steps and words.
    fn open(addr: &str, secret: Option<&Path>, timeout: Duration) -> Result<Conn, String> {
        let s = connect(addr, timeout).map_err(|e| format!("Connection failed ({addr}): {e}"))?;
        s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let mut c = Conn { r: BufReader::new(s.try_clone().map_err(|e| e.to_string())?), w: s };
        let (mut code, mut body) = c.answer().map_err(|e| format!("Rejected 400\n{e}"))?;
        if code == status::AUTH {
            let Some(path) = secret else {
                return Err("Authentication required".into());
            };
            let secret = std::fs::read(path).map_err(|e| format!("Cannot open \"{}\": {e}", path.display()))?;
            let challenge = body.lines().next().unwrap_or_default();
            (code, body) = c
                .send(&format!("auth {}", lacquer_cli::auth_response(challenge, &secret)))
                .map_err(|e| format!("Rejected 400\n{e}"))?;
        }
        if code != status::OK && code != status::TRUNCATED {
            return Err(format!("Rejected {code}\n{body}"));
        }
        match c.send("ping") {
            Ok((status::OK, b)) if b.contains("PONG") => Ok(c),
            _ => Err("No pong received from server".into()),
        }
    }

    fn answer(&mut self) -> Result<(u16, String), String> {
        lacquer_cli::read_answer(&mut self.r)
    }

    fn send(&mut self, line: &str) -> Result<(u16, String), String> {
        self.w.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("CLI write: {e}"))?;
        self.answer()
    }
}

/// Connects to the first of `addr`'s addresses that answers in time.
fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Prints one answer as `mode` says.
fn print_answer(code: u16, body: &str, mode: Mode) {
    let mut out = std::io::stdout().lock();
    let _ = match mode {
        Mode::Pass => write!(out, "{code:<3} {:<8}\n{body}", body.len()),
        Mode::Plain if code == status::TRUNCATED => writeln!(out, "{body}\n[response was truncated]"),
        Mode::Plain => writeln!(out, "{body}"),
    };
    let _ = out.flush();
}

/// Runs `lacquer adm` (and `varnishadm`): `command`'s words are sent as
/// one line, joined by blanks as varnishadm joins them (a word holding
/// blanks is sent as it is); without words, standard input's lines are.
pub fn run(addr: &str, secret: Option<&Path>, timeout: f64, command: &[String], mode: Mode) -> ExitCode {
    let mut c = match Conn::open(addr, secret, Duration::from_secs_f64(timeout.max(0.1))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !command.is_empty() {
        return match c.send(&command.join(" ")) {
            Ok((code, body)) => {
                print_answer(code, &body, mode);
                if code == status::OK || code == status::TRUNCATED {
                    ExitCode::SUCCESS
                } else {
                    if mode == Mode::Plain {
                        eprintln!("Command failed with error code {code}");
                    }
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        // A terminal in canonical mode hands over the carriage return too.
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match c.send(line) {
            Ok((code, body)) => {
                print_answer(code, &body, mode);
                if code == status::CLOSE {
                    break;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
