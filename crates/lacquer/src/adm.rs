//! `lacquer adm`: the admin CLI's client, as `varnishadm -T … -S …` is:
//! one command from the arguments, or commands read line by line from
//! standard input; each answer's body is printed, and the exit status says
//! whether the last command succeeded (0 for status 200, 1 otherwise).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// An authenticated connection to a server's CLI.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str, secret: Option<&Path>, timeout: f64) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("Connection failed ({addr}): {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs_f64(timeout.max(0.1)))).map_err(|e| e.to_string())?;
        let mut c = Conn { r: BufReader::new(s.try_clone().map_err(|e| e.to_string())?), w: s };
        let (status, body) = c.answer()?;
        if status == lacquer_cli::status::AUTH {
            let Some(path) = secret else {
                return Err("Authentication required: give the secret file with -S".into());
            };
            let secret = std::fs::read(path).map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
            let challenge = body.lines().next().unwrap_or_default();
            let (status, body) = c.send(&format!("auth {}", lacquer_cli::auth_response(challenge, &secret)))?;
            if status != lacquer_cli::status::OK {
                return Err(format!("Rejected {status}\n{body}"));
            }
        } else if status != lacquer_cli::status::OK {
            return Err(format!("Rejected {status}\n{body}"));
        }
        Ok(c)
    }

    fn answer(&mut self) -> Result<(u16, String), String> {
        lacquer_cli::read_answer(&mut self.r)
    }

    fn send(&mut self, line: &str) -> Result<(u16, String), String> {
        self.w.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("CLI write: {e}"))?;
        self.answer()
    }
}

/// Runs `lacquer adm`.
pub fn run(addr: &str, secret: Option<&Path>, timeout: f64, command: &[String]) -> ExitCode {
    let mut c = match Conn::open(addr, secret, timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let lines: Vec<String> = if command.is_empty() {
        std::io::stdin().lock().lines().map_while(Result::ok).collect()
    } else {
        vec![command.iter().map(|w| lacquer_cli::quote(w)).collect::<Vec<_>>().join(" ")]
    };
    let mut ok = true;
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        match c.send(line) {
            Ok((status, body)) => {
                ok = status == lacquer_cli::status::OK;
                if !ok && !command.is_empty() {
                    println!("Command failed with error code {status}");
                }
                println!("{body}");
                if status == lacquer_cli::status::CLOSE {
                    break;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
