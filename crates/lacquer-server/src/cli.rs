//! The admin CLI (`-T`, `-S`; Varnish's `mgt_cli.c` and the commands of
//! `cache_cli.c`), spoken as varnishd speaks it so that `varnishadm` and
//! `lacquer adm` both work: framing and authentication come from
//! `lacquer-cli`, the commands act on the running server here.
//!
//! Commands: `ping`, `banner`, `status`, `start`, `stop`, `help`,
//! `param.show [name]`, `param.set NAME VALUE` (applies to the tasks that
//! start after it), `ban FIELD OP ARG [&& …]`, `ban.list`,
//! `backend.list [PATTERN]`, `backend.set_health PATTERN
//! healthy|sick|auto`, `vcl.load`, `vcl.inline`, `vcl.use`, `vcl.discard`,
//! `vcl.list`, `vcl.show`, `vcl.label`, `vcl.state` (see [`crate::vcl`]),
//! `panic.show`, `panic.clear`, `quit`.
//!
//! A command line ending in `<< WORD` takes the lines after it, up to a
//! line that is `WORD` alone, as its last argument (varnishd's "here
//! document", which varnishadm and varnishtest use for `vcl.inline`).

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

/// Makes `<workdir>/_.secret`, a random secret readable by the owner
/// only, as varnishd does when `-S` is not given; returns its bytes.
pub(crate) fn make_secret(workdir: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let hex: String = seed().iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("{hex}\n").into_bytes();
    let path = workdir.join("_.secret");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    f.write_all(&secret)?;
    Ok(secret)
}

/// One CLI session on a connection the server made itself (`-M`, as
/// varnishd calls varnishtest back).
pub(crate) async fn call(shared: Arc<Shared>, s: TcpStream, secret: Arc<Vec<u8>>) {
    let _ = session(shared, s, Some(secret)).await;
}

/// Accepts CLI connections until the server stops.
pub(crate) async fn serve(shared: Arc<Shared>, l: TcpListener, secret: Arc<Vec<u8>>) {
    let secret = Some(secret);
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
            Ok(mut words) => {
                if words.len() >= 3 && words[words.len() - 2] == "<<" {
                    let end = words.pop().unwrap_or_default();
                    words.pop();
                    let mut doc = String::new();
                    loop {
                        let Some(l) = lines.next_line().await? else { return Ok(()) };
                        if l == end {
                            break;
                        }
                        doc.push_str(&l);
                        doc.push('\n');
                    }
                    words.push(doc);
                }
                // A command varnishd's child would see goes to the log at
                // vxid 0 with its answer, as the child logs them.
                let logged = !MANAGER_ONLY.contains(&words[0].as_str()) && !words[0].starts_with("param.");
                if logged {
                    crate::vsl::global(&shared.log, lacquer_defs::Tag::CLI, format!("Rd {line}").as_bytes());
                }
                let (code, body) = command(&shared, &words);
                if logged {
                    let wr = format!("Wr {code:03} {} {body}", body.len());
                    crate::vsl::global(&shared.log, lacquer_defs::Tag::CLI, wr.as_bytes());
                }
                (code, body)
            }
            Err(e) => (status::PARAM, e),
        };
        w.write_all(&frame(code, &body)).await?;
        if code == status::CLOSE {
            return Ok(());
        }
    }
    Ok(())
}

/// The commands varnishd's manager answers itself, which its child (and
/// so its log) never sees; `param.*` too.
const MANAGER_ONLY: &[&str] = &[
    "auth",
    "banner",
    "help",
    "ping",
    "quit",
    "status",
    "start",
    "stop",
    "vcl.list",
    "vcl.show",
    "debug.listen_address",
    "panic.show",
    "panic.clear",
];

/// Runs one command: its status and answer.
fn command(shared: &Arc<Shared>, w: &[String]) -> (u16, String) {
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
        "status" => {
            let state = if shared.child.is_running() { "running" } else { "stopped" };
            if args.iter().any(|a| a == "-j") {
                (status::OK, format!("[ 2, [\"status\", \"-j\"], {:.3}, \"{state}\"\n]", crate::msg::now()))
            } else {
                (status::OK, format!("Child in state {state}"))
            }
        }
        "start" => match shared.child.start(shared) {
            Ok(()) => (status::OK, String::new()),
            Err(e) => (status::CANT, e),
        },
        "stop" => {
            if shared.child.stop() {
                // varnishd's child goes, and its cache (malloc) with it.
                shared.cache.clear();
                (status::OK, String::new())
            } else {
                (status::CANT, "Child in state stopped".into())
            }
        }
        "help" => (status::OK, HELP.into()),
        "quit" => (status::CLOSE, "Closing CLI connection".into()),
        "param.show" => param_show(shared, args),
        "param.set" => {
            // `-j`: answer with the parameter as `param.show -j` shows it.
            let json = args.first().is_some_and(|a| a == "-j");
            let rest = if json { &args[1..] } else { args };
            match rest.len() {
                0 | 1 => return (status::TOOFEW, "Too few parameters".into()),
                2 => {}
                _ => return (status::TOOMANY, "Too many parameters".into()),
            }
            let set = shared.params.set(&rest[0], &rest[1]);
            if set.is_ok() && (rest[0].starts_with("vsl_") || rest[0] == "debug") {
                crate::apply_log_params(&shared.log, &shared.params.get());
            }
            match set {
                Ok(()) if json => {
                    param_show_json(&shared.params.get(), &["-j".to_string(), rest[0].clone()], &[&rest[0]])
                }
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
        "storage.list" if args.iter().any(|a| a == "-j") => {
            let stores: Vec<String> = shared
                .cache
                .stores()
                .iter()
                .map(|st| {
                    let (name, kind) = (json_escape(st.name()), st.storage().kind());
                    format!("  {{\n    \"name\": \"{name}\",\n    \"storage\": \"{kind}\"\n}}")
                })
                .collect();
            let head = format!("[ 2, [\"storage.list\", \"-j\"], {:.3}", crate::msg::now());
            (status::OK, format!("{head},\n{}\n]", stores.join(",\n")))
        }
        "storage.list" => {
            let mut out = String::from("Storage devices:\n");
            for st in shared.cache.stores() {
                out.push_str(&format!("\tstorage.{} = {}\n", st.name(), st.storage().kind()));
            }
            (status::OK, out)
        }
        "ban.list" if args.iter().any(|a| a == "-j") => {
            // varnishd's JSON: the CLI's header, then one object a ban
            // (without the reference counts Lacquer does not keep).
            let bans: Vec<String> = shared
                .cache
                .bans()
                .iter()
                .map(|b| {
                    format!(
                        "  {{\n    \"time\": {:.6},\n    \"req\": {},\n    \"spec\": \"{}\"\n}}",
                        b.t,
                        b.uses_req,
                        json_escape(&b.spec)
                    )
                })
                .collect();
            let head = format!("[ 2, [\"ban.list\", \"-j\"], {:.3}", crate::msg::now());
            let body = if bans.is_empty() { String::new() } else { format!(",\n{}", bans.join(",\n")) };
            (status::OK, format!("{head}{body}\n]"))
        }
        "ban.list" => {
            let mut out = String::from("Present bans:\n");
            for b in shared.cache.bans() {
                let req = if b.uses_req { "R" } else { "-" };
                out.push_str(&format!("{:.6} {req}  {}\n", b.t, b.spec));
            }
            (status::OK, out)
        }
        "backend.list" if args.iter().any(|a| a == "-j") => {
            let pattern = args.iter().find(|a| !a.starts_with('-')).map_or("*", String::as_str);
            let mut rows = Vec::new();
            each_backend(shared, pattern, |vcl, be| {
                let health = if be.healthy() { "healthy" } else { "sick" };
                // As varnishd words them: the admin's say, or the health
                // when it leaves it to the probe.
                let admin = match be.admin() {
                    crate::vbe::Admin::Auto => health,
                    crate::vbe::Admin::Healthy => "healthy",
                    crate::vbe::Admin::Sick => "sick",
                };
                rows.push(format!(
                    "    \"{}.{}\": {{\n      \"type\": \"backend\",\n      \"admin_health\": \"{admin}\",\n      \
                     \"probe_message\": [0, 0, \"{health}\"]\n    }}",
                    json_escape(vcl),
                    json_escape(&be.def.name)
                ));
            });
            let head = format!("[ 3, [\"backend.list\", \"-j\"], {:.3}", crate::msg::now());
            (status::OK, format!("{head},\n  {{\n{}\n  }}\n]", rows.join(",\n")))
        }
        "backend.list" => {
            let pattern = args.iter().find(|a| !a.starts_with('-')).map_or("*", String::as_str);
            let mut out = format!("{:<30} {:<10} {:<8} {:<10} {}\n", "Backend name", "Admin", "Probe", "Health", "");
            each_backend(shared, pattern, |vcl, be| {
                let probe = if be.def.probe.is_some() { "probe" } else { "-" };
                let health = if be.healthy() { "healthy" } else { "sick" };
                let name = format!("{vcl}.{}", be.def.name);
                out.push_str(&format!("{name:<30} {:<10} {probe:<8} {health:<10}\n", be.admin()));
            });
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
            let mut found = false;
            each_backend(shared, &args[0], |_, be| {
                be.set_admin(admin);
                found = true;
            });
            if found {
                (status::OK, String::new())
            } else {
                (status::PARAM, "No Backends matches".into())
            }
        }
        "vcl.load" | "vcl.inline" => {
            if args.len() < 2 {
                return (status::TOOFEW, "Too few parameters".into());
            }
            if args.len() > 3 {
                return (status::TOOMANY, "Too many parameters".into());
            }
            let from = if w[0] == "vcl.load" {
                crate::vcl::Origin::File(std::path::Path::new(&args[1]))
            } else {
                crate::vcl::Origin::Inline(&args[1])
            };
            shared.vcls.load(shared, &args[0], from, args.get(2).map(String::as_str))
        }
        "vcl.use" => match want(1) {
            Some(e) => e,
            None => shared.vcls.use_(shared, &args[0]),
        },
        "vcl.state" => match want(2) {
            Some(e) => e,
            None => shared.vcls.state(shared, &args[0], &args[1]),
        },
        "vcl.label" => match want(2) {
            Some(e) => e,
            None => shared.vcls.label(shared, &args[0], &args[1]),
        },
        "vcl.discard" => {
            if args.is_empty() {
                return (status::TOOFEW, "Too few parameters".into());
            }
            shared.vcls.discard(shared, args)
        }
        "vcl.list" => {
            let json = args.iter().any(|a| a == "-j");
            let (code, text) = shared.vcls.list(json, shared.child.is_running());
            if json {
                let t = crate::msg::now();
                let body = if text.is_empty() { String::new() } else { format!(",\n{text}") };
                (code, format!("[ 2, [\"vcl.list\", \"-j\"], {t:.3}{body}\n]"))
            } else {
                (code, text)
            }
        }
        "vcl.show" => shared.vcls.show(args),
        "debug.listen_address" => {
            let mut out = String::new();
            for l in &shared.sockets {
                // `name address port`, a socket's path with port `-`.
                let line = match l.endpoint.parse::<std::net::SocketAddr>() {
                    Ok(a) => format!("{} {} {}", l.name, a.ip(), a.port()),
                    Err(_) => format!("{} {} -", l.name, l.endpoint),
                };
                out.push_str(&line);
                out.push('\n');
            }
            (status::OK, out)
        }
        "debug.xid" => match args.first().map(|a| a.parse::<u64>()) {
            None => (status::OK, "XID is (not set)".into()),
            Some(Ok(n)) => {
                crate::set_last_vxid(n);
                (status::OK, format!("XID is {n}"))
            }
            Some(Err(_)) => (status::PARAM, format!("Not a number: {}", args[0])),
        },
        "panic.show" => (status::CANT, "Child has not panicked or panic has been cleared".into()),
        "panic.clear" => (status::CANT, "No panic to clear".into()),
        _ => (status::UNKNOWN, "Unknown request.\nType 'help' for more info.".into()),
    }
}

/// `s` inside a JSON string.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `param.show -j [NAME|changed]`: varnishd's JSON, one object a
/// parameter (`implemented` says whether Lacquer acts on it; values are
/// given as `param.show` writes them).
fn param_show_json(p: &crate::Params, args: &[String], names: &[&str]) -> (u16, String) {
    if args.iter().any(|a| a == "-l") {
        return (status::PARAM, "-l and -j are mutually exclusive".into());
    }
    if names.len() > 1 {
        return (status::TOOMANY, "Too many parameters".into());
    }
    let defaults = crate::Params::default();
    let wanted: Vec<&lacquer_defs::params::ParamDef> = match names.first() {
        None => lacquer_defs::params::PARAMS.iter().collect(),
        Some(&"changed") => {
            lacquer_defs::params::PARAMS.iter().filter(|d| p.show(d.name) != defaults.show(d.name)).collect()
        }
        Some(n) => match lacquer_defs::params::lookup(n) {
            Some(d) => vec![d],
            None => return (status::PARAM, format!("Unknown parameter \"{n}\".")),
        },
    };
    let objs: Vec<String> = wanted
        .iter()
        .map(|d| {
            let mut o = format!(
                "  {{\n    \"name\": \"{}\",\n    \"implemented\": {},\n    \"value\": \"{}\",\n",
                d.name,
                d.honoured,
                json_escape(&p.show(d.name).unwrap_or_default())
            );
            if !d.units.is_empty() {
                o.push_str(&format!("    \"units\": \"{}\",\n", d.units));
            }
            o.push_str(&format!(
                "    \"default\": \"{}\",\n    \"description\": \"{}\",\n    \"flags\": []\n  }}",
                json_escape(d.default),
                json_escape(d.doc)
            ));
            o
        })
        .collect();
    let mut words = vec!["\"param.show\"".to_string()];
    words.extend(args.iter().map(|a| format!("\"{}\"", json_escape(a))));
    let head = format!("[ 2, [{}], {:.3}", words.join(", "), crate::msg::now());
    let body = if objs.is_empty() { String::new() } else { format!(",\n{}", objs.join(",\n")) };
    (status::OK, format!("{head}{body}\n]"))
}

/// Runs `f` on each backend `pattern` names, with its VCL's name:
/// `BACKEND` globs among the active VCL's backends, `VCL.BACKEND` among
/// those of the VCLs the first part globs (as varnishd's `backend.list`).
fn each_backend(shared: &Shared, pattern: &str, mut f: impl FnMut(&str, &crate::vbe::Backend)) {
    let glob = |p: &str, n: &str| lacquer_shm::stat::fnmatch(p.as_bytes(), n.as_bytes());
    match pattern.split_once('.') {
        Some((vp, bp)) => shared.vcls.each(|vcl| {
            if glob(vp, &vcl.name) {
                for be in vcl.backends.iter().filter(|b| glob(bp, &b.def.name)) {
                    f(&vcl.name, be);
                }
            }
        }),
        None => {
            if let Some(vcl) = shared.vcls.active() {
                for be in vcl.backends.iter().filter(|b| glob(pattern, &b.def.name)) {
                    f(&vcl.name, be);
                }
            }
        }
    }
}

/// `param.show`: every parameter's value, or one parameter in full.
fn param_show(shared: &Shared, args: &[String]) -> (u16, String) {
    let p = shared.params.get();
    let names: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "-j") {
        return param_show_json(&p, args, &names);
    }
    match names.as_slice() {
        // Every parameter (or, with `changed`, those not at their
        // default), as varnishd lists them: the name in 30 columns, the
        // value, the units in brackets, `(default)` when it is.
        [] | ["changed"] => {
            let changed_only = names == ["changed"];
            let defaults = crate::Params::default();
            let mut out = String::new();
            for d in lacquer_defs::params::PARAMS {
                let v = p.show(d.name).unwrap_or_default();
                let is_default = defaults.show(d.name).as_deref() == Some(v.as_str());
                if changed_only && is_default {
                    continue;
                }
                let mut line = format!("{:<29} {v}", d.name);
                if !d.units.is_empty() {
                    line.push_str(&format!(" [{}]", d.units));
                }
                if is_default {
                    line.push_str(" (default)");
                }
                out.push_str(&line);
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
param.set <param> <value>\nstorage.list [-j]\nban <field> <operator> <arg> [&& <field> <oper> <arg> ...]\nban.list\nbackend.list\n\
backend.set_health <backend_pattern> [auto|healthy|sick]\nvcl.load <configname> <filename> [auto|cold|warm]\n\
vcl.inline <configname> <quoted_VCLstring> [auto|cold|warm]\nvcl.use <configname|label>\n\
vcl.discard <configname|label>...\nvcl.list [-j]\nvcl.show [-v] [<configname>]\nvcl.state <configname> auto|cold|warm\n\
vcl.label <label> <configname>\npanic.show\npanic.clear";
