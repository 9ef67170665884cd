//! The admin CLI (`-T`, `-S`; Varnish's `mgt_cli.c` and the commands of
//! `cache_cli.c`), spoken as varnishd speaks it so that `varnishadm` and
//! `lacquer adm` both work: framing and authentication come from
//! `lacquer-cli`, the commands act on the running server here.
//!
//! Commands: `ping`, `banner`, `status`, `start`, `stop`, `help`,
//! `param.show [name]`, `param.set NAME VALUE` (applies to the tasks that
//! start after it), `ban FIELD OP ARG [&& …]`, `ban.list`, `backend.list`,
//! `backend.set_health NAME healthy|sick|auto`, `vcl.list`,
//! `panic.show`, `panic.clear`, `quit`. Loading and switching VCLs
//! (`vcl.load`, `vcl.use` …) are not there yet: Lacquer runs the VCL it
//! started with, and says so.

use std::io;
use std::sync::Arc;

use lacquer_cli::{frame, status};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;

/// What `banner` and a new connection show.
fn banner() -> String {
    format!(
        "-----------------------------\nLacquer CLI 1.0\n-----------------------------\n{} {},{}\nlacquer-{}\n\n\
         Type 'help' for command list.\nType 'quit' to close CLI session.\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        "tokio",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Accepts CLI connections until the server stops.
pub(crate) async fn serve(shared: Arc<Shared>, l: TcpListener, secret: Option<Vec<u8>>) {
    let secret = secret.map(Arc::new);
    loop {
        let Ok((s, _)) = l.accept().await else {
            // Out of descriptors and the like: wait a little, do not spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let (shared, secret) = (shared.clone(), secret.clone());
        tokio::spawn(async move {
            let _ = session(shared, s, secret).await;
        });
    }
}

/// 32 random bytes for a challenge, from the system's random source.
fn seed() -> [u8; 32] {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    b
}

async fn session(shared: Arc<Shared>, s: TcpStream, secret: Option<Arc<Vec<u8>>>) -> io::Result<()> {
    let (r, mut w) = s.into_split();
    let mut lines = BufReader::new(r).lines();
    if let Some(secret) = &secret {
        // Challenge until answered right (Varnish answers a wrong `auth`
        // with a new challenge too).
        loop {
            let challenge = lacquer_cli::challenge(&seed());
            w.write_all(&frame(status::AUTH, &format!("{challenge}\n\nAuthentication required."))).await?;
            let Some(line) = lines.next_line().await? else { return Ok(()) };
            let words = lacquer_cli::words(&line).unwrap_or_default();
            if words.len() == 2 && words[0] == "auth" && words[1] == lacquer_cli::auth_response(&challenge, secret) {
                break;
            }
        }
    }
    w.write_all(&frame(status::OK, &banner())).await?;
    while let Some(line) = lines.next_line().await? {
        let (code, body) = match lacquer_cli::words(&line) {
            Ok(words) if words.is_empty() => continue,
            Ok(words) => command(&shared, &words),
            Err(e) => (status::PARAM, e),
        };
        w.write_all(&frame(code, &body)).await?;
        if code == status::CLOSE {
            return Ok(());
        }
    }
    Ok(())
}

/// Runs one command: its status and answer.
fn command(shared: &Shared, w: &[String]) -> (u16, String) {
    let args = &w[1..];
    let want = |n: usize| -> Option<(u16, String)> {
        if args.len() < n {
            Some((status::TOOFEW, "Too few parameters".into()))
        } else if args.len() > n {
            Some((status::TOOMANY, "Too many parameters".into()))
        } else {
            None
        }
    };
    match w[0].as_str() {
        "ping" => {
            let now = crate::msg::now() as u64;
            (status::OK, format!("PONG {now} 1.0"))
        }
        "banner" => (status::OK, banner()),
        "status" => (status::OK, "Child in state running".into()),
        "start" => (status::CANT, "Child in state running".into()),
        "stop" => (status::CANT, "Lacquer's worker cannot be stopped alone: send SIGTERM to stop Lacquer".into()),
        "help" => (status::OK, HELP.into()),
        "quit" => (status::CLOSE, "Closing CLI connection".into()),
        "param.show" => param_show(shared, args),
        "param.set" => {
            if let Some(e) = want(2) {
                return e;
            }
            match shared.params.set(&args[0], &args[1]) {
                Ok(()) => (status::OK, String::new()),
                Err(e) => (e.status, e.message),
            }
        }
        "ban" => {
            if args.len() < 3 {
                return (status::TOOFEW, "Too few parameters".into());
            }
            let expr = args.iter().map(|a| lacquer_cli::quote(a)).collect::<Vec<_>>().join(" ");
            match crate::ban::parse(&expr) {
                Ok(spec) => {
                    let uses_req = spec.uses_req();
                    let text = args.join(" ");
                    shared.cache.ban(crate::msg::now(), text, uses_req, spec.into_test());
                    (status::OK, String::new())
                }
                Err(e) => (status::PARAM, e),
            }
        }
        "ban.list" => {
            let mut out = String::from("Present bans:\n");
            for b in shared.cache.bans() {
                let req = if b.uses_req { "R" } else { "-" };
                out.push_str(&format!("{:.6} {req}  {}\n", b.t, b.spec));
            }
            (status::OK, out)
        }
        "backend.list" => {
            let mut out = format!("{:<30} {:<10} {:<8} {:<10} {}\n", "Backend name", "Admin", "Probe", "Health", "");
            for be in &shared.backends {
                let probe = if be.def.probe.is_some() { "probe" } else { "-" };
                let health = if be.healthy() { "healthy" } else { "sick" };
                out.push_str(&format!(
                    "{:<30} {:<10} {:<8} {:<10}\n",
                    format!("boot.{}", be.def.name),
                    be.admin(),
                    probe,
                    health
                ));
            }
            (status::OK, out)
        }
        "backend.set_health" => {
            if let Some(e) = want(2) {
                return e;
            }
            let admin = match args[1].to_ascii_lowercase().as_str() {
                "healthy" => crate::vbe::Admin::Healthy,
                "sick" => crate::vbe::Admin::Sick,
                "auto" => crate::vbe::Admin::Auto,
                _ => return (status::PARAM, "Invalid state ".to_string() + &args[1]),
            };
            let name = args[0].strip_prefix("boot.").unwrap_or(&args[0]);
            let mut found = false;
            for be in shared.backends.iter().filter(|b| b.def.name == name || name == "*") {
                be.set_admin(admin);
                found = true;
            }
            if found {
                (status::OK, String::new())
            } else {
                (status::PARAM, "No Backends matches".into())
            }
        }
        "vcl.list" => (status::OK, "active      auto    warm         0    boot".into()),
        "vcl.load" | "vcl.inline" | "vcl.use" | "vcl.discard" | "vcl.label" | "vcl.show" | "vcl.state" => (
            status::CANT,
            "Lacquer runs the VCL it was started with; loading and switching VCLs is not supported yet".into(),
        ),
        "panic.show" => (status::CANT, "Child has not panicked or panic has been cleared".into()),
        "panic.clear" => (status::CANT, "No panic to clear".into()),
        _ => (status::UNKNOWN, "Unknown request.\nType 'help' for more info.".into()),
    }
}

/// `param.show`: every parameter's value, or one parameter in full.
fn param_show(shared: &Shared, args: &[String]) -> (u16, String) {
    let p = shared.params.get();
    let names: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    match names.as_slice() {
        [] => {
            let mut out = String::new();
            for d in lacquer_defs::params::PARAMS {
                let v = p.show(d.name).unwrap_or_default();
                out.push_str(format!("{:<32} {} {}", d.name, v, d.units).trim_end());
                out.push('\n');
            }
            (status::OK, out)
        }
        [name] => match lacquer_defs::params::lookup(name) {
            Some(d) => {
                let v = p.show(name).unwrap_or_default();
                let units = if d.units.is_empty() { String::new() } else { format!(" [{}]", d.units) };
                (
                    status::OK,
                    format!(
                        "{name}\n        Value is: {v}{units}\n        Default is: {}\n\n        {}\n",
                        d.default, d.doc
                    ),
                )
            }
            None => (status::PARAM, format!("Unknown parameter \"{name}\".")),
        },
        _ => (status::TOOMANY, "Too many parameters".into()),
    }
}

const HELP: &str = "ping [-j]\nbanner\nstatus\nstart\nstop\nhelp [-j|<command>]\nquit\nparam.show [-l|-j] [<param>]\n\
param.set <param> <value>\nban <field> <operator> <arg> [&& <field> <oper> <arg> ...]\nban.list\nbackend.list\n\
backend.set_health <backend_pattern> [auto|healthy|sick]\nvcl.list\npanic.show\npanic.clear";
