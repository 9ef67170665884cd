//! The admin CLI (`-T`, `-S`; Varnish's `mgt_cli.c` and the commands of
//! `cache_cli.c`), spoken as varnishd speaks it so that `varnishadm` and
//! `lacquer adm` both work: framing and authentication come from
//! `lacquer-cli`, the commands act on the running server here.
//!
//! The commands are those of varnishd 7.1 that mean something for
//! Lacquer, listed once in [`COMMANDS`] with their syntax, help and
//! arity: `help` prints that table, and every command line is checked
//! against it before it runs (104 too few, 105 too many arguments, 101
//! unknown, or not available while the server is stopped, as varnishd's
//! child commands are not). Answers longer than `cli_limit` are cut, with
//! status 201.
//!
//! A command line ending in `<< WORD` takes the lines after it, up to a
//! line that is `WORD` alone, as its last argument (varnishd's "here
//! document", which varnishadm and varnishtest use for `vcl.inline`).

use std::io;
use std::sync::Arc;

use lacquer_cli::{frame, status};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::vcl::Vcl;
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
                let child = child_command(&words);
                if logged {
                    let rd = child.as_ref().map_or(line.as_str(), |c| c.command.as_str());
                    crate::vsl::global(&shared.log, lacquer_defs::Tag::CLI, format!("Rd {rd}").as_bytes());
                }
                let (code, body) = limit(command(&shared, &words), shared.params.get().cli_limit as usize);
                if logged {
                    let said = match &child {
                        Some(c) if code == status::OK => c.answer.as_str(),
                        _ => body.as_str(),
                    };
                    let wr = format!("Wr {code:03} {} {said}", said.len());
                    crate::vsl::global(&shared.log, lacquer_defs::Tag::CLI, wr.as_bytes());
                }
                (code, body)
            }
            Err(e) => (status::SYNTAX, e),
        };
        w.write_all(&frame(code, &body)).await?;
        if code == status::CLOSE {
            return Ok(());
        }
    }
    Ok(())
}

/// Cuts an answer longer than `cli_limit` (keeping room for varnishd's
/// terminating NUL, so the same number of bytes arrive), saying so with
/// status 201.
fn limit((code, mut body): (u16, String), cli_limit: usize) -> (u16, String) {
    let max = cli_limit.saturating_sub(1);
    if body.len() <= max {
        return (code, body);
    }
    let mut cut = max;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
    (if code == status::OK { status::TRUNCATED } else { code }, body)
}

/// The command varnishd's child would get for a manager's command that
/// it rewrites, and the child's answer: `vcl.inline`/`vcl.load NAME …` reach the child as
/// `vcl.load "NAME" DIR/vgc.so 1auto` (the compiled file, and whether
/// the VCL starts warm, with its state).
fn child_command(words: &[String]) -> Option<ChildCommand> {
    if !matches!(words.first().map(String::as_str), Some("vcl.inline" | "vcl.load")) {
        return None;
    }
    let name = words.get(1)?;
    let state = match words.get(3).map(String::as_str) {
        Some("cold") => "0cold",
        Some("warm") => "1warm",
        _ => "1auto",
    };
    let t = crate::msg::now();
    let file = format!("vcl_{name}.{t:.6}/vgc.so");
    Some(ChildCommand {
        command: format!("vcl.load \"{name}\" {file} {state}"),
        answer: format!("Loaded \"{file}\" as \"{name}\""),
    })
}

/// A command as varnishd's child gets it, and its answer when it works.
struct ChildCommand {
    command: String,
    answer: String,
}

/// The commands varnishd's manager answers itself, which its child (and
/// so its log) never sees; `param.*` too.
const MANAGER_ONLY: &[&str] = &[
    "auth",
    "banner",
    "help",
    "pid",
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
    // `-CMD` is CMD whose failure a script may ignore (varnishd's `-I`
    // files); the answer is the command's own.
    let name = w[0].strip_prefix('-').unwrap_or(&w[0]);
    let running = shared.child.is_running();
    let Some(c) = lookup(name).filter(|c| running || !c.child) else {
        let text = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            "Unknown request.\nType 'help' for more info.\nall commands are in lower-case."
        } else if !running {
            "Unknown request in manager process (child not running).\nType 'help' for more info."
        } else {
            "Unknown request.\nType 'help' for more info."
        };
        return (status::UNKNOWN, text.into());
    };
    let args = &w[1..];
    let json = c.json && args.iter().any(|a| a == "-j");
    let n = args.len() - usize::from(json);
    if n < c.min {
        return (status::TOOFEW, "Too few parameters".into());
    }
    if c.max.is_some_and(|max| n > max) {
        return (status::TOOMANY, "Too many parameters".into());
    }
    let want = |n: usize| -> Option<(u16, String)> {
        if args.len() < n {
            Some((status::TOOFEW, "Too few parameters".into()))
        } else if args.len() > n {
            Some((status::TOOMANY, "Too many parameters".into()))
        } else {
            None
        }
    };
    match c.name {
        "ping" if json => (status::OK, format!("[ 2, [\"ping\", \"-j\"], {:.3}, \"PONG\"\n\n]", crate::msg::now())),
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
        "help" => {
            let rest: Vec<String> = args.iter().filter(|a| *a != "-j").cloned().collect();
            help(running, json, &rest)
        }
        "pid" => {
            // One process serves and answers the CLI: it is both of
            // varnishd's (the worker only while serving).
            let pid = std::process::id();
            if json {
                let worker = if running { format!(", \"worker\": {pid}") } else { String::new() };
                let t = crate::msg::now();
                (status::OK, format!("[ 2, [\"pid\", \"-j\"], {t:.3},\n  {{\"master\": {pid}{worker}}}\n]"))
            } else if running {
                (status::OK, format!("Master: {pid:>10}\nWorker: {pid:>10}\n"))
            } else {
                (status::OK, format!("Master: {pid:>10}\n"))
            }
        }
        "debug.srandom" => match args.first().map(|a| a.parse::<u32>()) {
            None => {
                lacquer_module::rand::seed(1);
                (status::OK, String::new())
            }
            Some(Ok(n)) => {
                lacquer_module::rand::seed(n);
                (status::OK, String::new())
            }
            Some(Err(_)) => (status::PARAM, format!("Not a number: {}", args[0])),
        },
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
            match crate::ban::parse_cli(args) {
                Ok(spec) => {
                    let t = crate::msg::now();
                    shared.cache.ban(t, spec.into_ban(t));
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
        "ban.list" => {
            let json = args.iter().any(|a| a == "-j");
            let debug = shared.params.get().show("debug").is_some_and(|d| d.contains("+lurker"));
            let out = if json { ban_list_json(shared, debug) } else { ban_list(shared, debug) };
            // As varnishd, listing wakes the lurker, which may then trim
            // the tail.
            shared.cache.kick_lurker();
            (status::OK, out)
        }
        "backend.list" if flag(args, 'j') => {
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
            each_director(shared, pattern, |vcl, d| rows.push(director_json(vcl, d)));
            let head = format!("[ 3, [\"backend.list\", \"-j\"], {:.3}", crate::msg::now());
            (status::OK, format!("{head},\n  {{\n{}\n  }}\n]", rows.join(",\n")))
        }
        "backend.list" => {
            let details = args.iter().any(|a| a == "-p");
            let pattern = args.iter().find(|a| !a.starts_with('-')).map_or("*", String::as_str);
            let mut rows = vec![(
                ["Backend name".to_string(), "Admin".into(), "Probe".into(), "Health".into(), "Last change".into()],
                None,
            )];
            each_backend(shared, pattern, |vcl, be| {
                let history = be.history();
                let admin = match (be.admin(), &history) {
                    (crate::vbe::Admin::Auto, Some(_)) => "probe".to_string(),
                    (crate::vbe::Admin::Auto, None) => "healthy".to_string(),
                    (a, _) => a.to_string(),
                };
                let probe = history.as_ref().map_or("0/0".to_string(), |h| format!("{}/{}", h.good(), h.window));
                let health = if be.healthy() { "healthy" } else { "sick" };
                let changed = lacquer_module::http_date(be.changed()).unwrap_or_default();
                let report = history.filter(|_| details).map(|h| h.report());
                rows.push(([format!("{vcl}.{}", be.def.name), admin, probe, health.into(), changed], report));
            });
            let details = flag(args, 'p');
            each_director(shared, pattern, |vcl, d| rows.push(director_row(vcl, d, details)));
            (status::OK, table(&rows))
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
        "param.reset" => match lacquer_defs::params::lookup(&args[0]) {
            Some(d) => match shared.params.set(d.name, d.default) {
                Ok(()) => (status::OK, String::new()),
                Err(e) => (e.status, e.message),
            },
            None => (status::PARAM, format!("Unknown parameter \"{}\".", args[0])),
        },
        "vcl.load" | "vcl.inline" => {
            if args.len() < 2 {
                return (status::TOOFEW, "Too few parameters".into());
            }
            if args.len() > 3 {
                return (status::TOOMANY, "Too many parameters".into());
            }
            let from = if c.name == "vcl.load" {
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
        "debug.fragfetch" => match args[0].parse::<usize>() {
            Ok(n) => {
                crate::fetch::set_fragfetch(n);
                (status::OK, String::new())
            }
            Err(_) => (status::PARAM, format!("Not a number: {}", args[0])),
        },
        "vcl.symtab" => (status::OK, symtab(shared)),
        "panic.show" => (status::CANT, "Child has not panicked or panic has been cleared".into()),
        "panic.clear" => (status::CANT, "No panic to clear".into()),
        _ => (status::UNKNOWN, "Unknown request.\nType 'help' for more info.".into()),
    }
}

/// `backend.list`'s table as varnishd lays it out: each column as wide
/// as its widest cell and some room, a probe's report (`-p`) under its
/// backend's line.
fn table(rows: &[([String; 5], Option<String>)]) -> String {
    let mut widths = [0usize; 4];
    for (cells, _) in rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for (cells, report) in rows {
        for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
            let room = if i == 0 { 3 } else { 4 };
            out.push_str(&format!("{c:<0$}", w + room));
        }
        out.push_str(&cells[4]);
        out.push('\n');
        if let Some(r) = report {
            out.push_str(r);
        }
    }
    out
}

/// `vcl.symtab`: each VCL's table of imported modules, laid out as
/// varnishd dumps its JSON (a version, then one object an import).
fn symtab(shared: &Shared) -> String {
    let mut out = String::new();
    shared.vcls.each(|vcl| {
        out.push_str(&format!("Vcl: {}\n  symtab:\n    {{array}}\n      {{object}}\n", vcl.name));
        out.push_str("        [\"version\"]: {number} <0>\n");
        for imp in &vcl.program.imports {
            let s = |v: &str| format!("{{string}} <\"{}\">", json_escape(v));
            out.push_str("      {object}\n");
            out.push_str(&format!("        [\"dir\"]: {}\n", s("import")));
            out.push_str(&format!("        [\"name\"]: {}\n", s(&imp.name)));
            out.push_str(&format!("        [\"file\"]: {}\n", s(imp.path.as_deref().unwrap_or("(built in)"))));
            if let Some(spec) = &imp.spec {
                out.push_str(&format!("        [\"abi\"]: {}\n", s(&format!("{}.{}", spec.abi.0, spec.abi.1))));
                out.push_str(&format!("        [\"level\"]: {}\n", s(spec.level.as_str())));
            }
        }
    });
    out
}

/// `ban.list` in varnishd's layout: newest first, each ban's time, the
/// objects still pointing at it, `C` once completed, its expression; with
/// `debug +lurker` also whether it tests the request (`R`) and the object
/// (`O`), where it lives, and the objects pointing at it.
fn ban_list(shared: &Shared, debug: bool) -> String {
    let mut out = String::from("Present bans:\n");
    for (b, objects) in bans_for_list(shared, debug) {
        let done = if b.completed() { "C" } else { "-" };
        out.push_str(&format!("{:10.6} {:5} {done}", b.t, b.refs()));
        if debug {
            let (r, o) = (if b.uses_req { "R" } else { "-" }, if b.uses_obj { "O" } else { "-" });
            out.push_str(&format!("{r}{o} {:p} ", std::sync::Arc::as_ptr(&b)));
        }
        out.push_str(&format!("  {}\n", b.spec()));
        for oc in objects {
            out.push_str(&format!("  oc = {oc:#x}\n"));
        }
    }
    out
}

/// The bans for `ban.list`, with their objects' addresses when debugging
/// the lurker (which costs a walk of the cache).
fn bans_for_list(shared: &Shared, debug: bool) -> Vec<(BanRef, Vec<usize>)> {
    if debug {
        shared.cache.bans_with_objects()
    } else {
        shared.cache.bans().into_iter().map(|b| (b, Vec::new())).collect()
    }
}

/// A ban as the cache lists it.
type BanRef = std::sync::Arc<lacquer_cache::Ban<crate::msg::Msg>>;

/// `ban.list -j`: varnishd's JSON, one object a ban, newest first.
fn ban_list_json(shared: &Shared, debug: bool) -> String {
    let bans: Vec<String> = bans_for_list(shared, debug)
        .iter()
        .map(|(b, objects)| {
            let mut o = format!(
                "  {{\n    \"time\": {:.6},\n    \"refs\": {},\n    \"completed\": {},\n    \"spec\": \"{}\"",
                b.t,
                b.refs(),
                b.completed(),
                json_escape(b.spec())
            );
            if debug {
                let ocs: Vec<String> = objects.iter().map(|oc| format!("      \"{oc:#x}\"")).collect();
                o.push_str(&format!(
                    ",\n    \"req_tests\": {},\n    \"obj_tests\": {},\n    \"pointer\": \"{:p}\",\n    \"objcores\": [\n{}\n    ]",
                    b.uses_req,
                    b.uses_obj,
                    std::sync::Arc::as_ptr(b),
                    ocs.join(",\n")
                ));
            }
            o + "\n}"
        })
        .collect();
    let head = format!("[ 2, [\"ban.list\", \"-j\"], {:.3}", crate::msg::now());
    format!("{head},\n{}\n]", bans.join(",\n"))
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
/// Whether the options (`-p`, `-j`, `-pj` …) have the letter `c`.
fn flag(args: &[String], c: char) -> bool {
    args.iter().any(|a| a.starts_with('-') && a[1..].contains(c))
}

/// The directors module objects made, of the VCLs and names `pattern`
/// globs, as [`each_backend`] does for backends.
fn each_director(shared: &Shared, pattern: &str, mut f: impl FnMut(&Vcl, &crate::director::ModDirector)) {
    let glob = |p: &str, n: &str| lacquer_shm::stat::fnmatch(p.as_bytes(), n.as_bytes());
    let mut one = |vcl: &Vcl, bp: &str| {
        for slot in &vcl.mod_backends {
            if let Some(crate::director::ModBackend::Director(d)) = slot.get() {
                if glob(bp, &d.name) {
                    f(vcl, d);
                }
            }
        }
    };
    match pattern.split_once('.') {
        Some((vp, bp)) => shared.vcls.each(|vcl| {
            if glob(vp, &vcl.name) {
                one(vcl, bp);
            }
        }),
        None => {
            if let Some(vcl) = shared.vcls.active() {
                one(&vcl, pattern);
            }
        }
    }
}

/// A director's members as the host knows them, for its listing.
struct Members<'a>(&'a Vcl);

impl lacquer_module::MemberState for Members<'_> {
    fn healthy(&self, be: lacquer_module::Backend) -> bool {
        self.0.member_healthy(be)
    }

    fn changed(&self, be: lacquer_module::Backend) -> Option<f64> {
        let id = u32::try_from(be.0?).ok()?;
        let b = self.0.backends.get(id as usize).or_else(|| self.0.dynamic_backend(id));
        b.map(|b| b.changed())
    }

    fn now(&self) -> f64 {
        crate::msg::now()
    }

    fn name(&self, be: lacquer_module::Backend) -> String {
        let id = be.0.and_then(|id| u32::try_from(id).ok());
        id.and_then(|id| self.0.director(id)).map_or_else(String::new, |d| d.name().to_string())
    }
}

/// A director's lines in `backend.list`: its own (the `Probe` column
/// counts the members that could serve), and with `-p` the table of its
/// members the director makes.
fn director_row(vcl: &Vcl, d: &crate::director::ModDirector, details: bool) -> ([String; 5], Option<String>) {
    use crate::director::Director;
    let listing = d.d.listing(&Members(vcl));
    let probe = listing.as_ref().map_or("-".to_string(), |l| format!("{}/{}", l.healthy, l.total));
    let health = if d.healthy(vcl) { "healthy" } else { "sick" };
    let name = format!("{}.{}", vcl.name, d.name);
    let mut report = None;
    if let (true, Some(l)) = (details, listing) {
        let mut out = String::from("\n");
        let cells = |first: &str, rest: &[String]| {
            let mut line = format!("{:16}{first:<10}", "");
            for c in rest {
                line.push_str(&format!(" {c:<10}"));
            }
            line.trim_end().to_string() + "\n"
        };
        out.push_str(&cells("Backend", &l.columns));
        for (member, row) in &l.rows {
            out.push_str(&cells(member, row));
        }
        out.push('\n');
        report = Some(out);
    }
    ([name, "probe".into(), probe, health.into(), String::new()], report)
}

/// A director in `backend.list -j`.
fn director_json(vcl: &Vcl, d: &crate::director::ModDirector) -> String {
    let listing = d.d.listing(&Members(vcl)).unwrap_or_default();
    let mut details: Vec<String> =
        listing.json_settings.iter().map(|(k, v)| format!("        \"{}\": {v}", json_escape(k))).collect();
    let members: Vec<String> = listing
        .rows
        .iter()
        .zip(&listing.json_members)
        .map(|((name, _), fields)| {
            let fields: Vec<String> =
                fields.iter().map(|(k, v)| format!("            \"{}\": {v}", json_escape(k))).collect();
            format!("          \"{}\": {{\n{}\n          }}", json_escape(name), fields.join(",\n"))
        })
        .collect();
    details.push(format!("        \"backends\": {{\n{}\n        }}", members.join(",\n")));
    let kind = if listing.kind.is_empty() { "director" } else { listing.kind.as_str() };
    let health = if crate::director::Director::healthy(d, vcl) { "healthy" } else { "sick" };
    let mut out = format!("    \"{}.{}\": {{\n", json_escape(&vcl.name), json_escape(&d.name));
    out.push_str(&format!("      \"type\": \"{}\",\n", json_escape(kind)));
    out.push_str("      \"admin_health\": \"probe\",\n");
    out.push_str(&format!("      \"probe_message\": [{}, {}, \"{health}\"],\n", listing.healthy, listing.total));
    out.push_str(&format!("      \"probe_details\": {{\n{}\n      }},\n", details.join(",\n")));
    out.push_str(&format!("      \"last_change\": {:.3}\n    }}", crate::msg::now()));
    out
}

fn each_backend(shared: &Shared, pattern: &str, mut f: impl FnMut(&str, &crate::vbe::Backend)) {
    let glob = |p: &str, n: &str| lacquer_shm::stat::fnmatch(p.as_bytes(), n.as_bytes());
    match pattern.split_once('.') {
        Some((vp, bp)) => shared.vcls.each(|vcl| {
            if glob(vp, &vcl.name) {
                let dynamic = vcl.dynamic.live().map(|(_, b)| b);
                for be in vcl.backends.iter().chain(dynamic).filter(|b| glob(bp, &b.def.name)) {
                    f(&vcl.name, be);
                }
            }
        }),
        None => {
            if let Some(vcl) = shared.vcls.active() {
                let dynamic = vcl.dynamic.live().map(|(_, b)| b);
                for be in vcl.backends.iter().chain(dynamic).filter(|b| glob(pattern, &b.def.name)) {
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

/// One admin command: how it is written, what it does, how many
/// arguments it takes, and where it is answered. The table is what
/// `help` shows and what every command line is checked against before it
/// runs, so the arity errors (104, 105) come from one place.
struct Cmd {
    name: &'static str,
    syntax: &'static str,
    help: &'static str,
    min: usize,
    /// `None`: no upper bound (`ban`, `vcl.discard`).
    max: Option<usize>,
    /// Takes `-j` for JSON output; `-j` is not counted as an argument.
    json: bool,
    /// A debugging command, listed by `help -d` and `help -a` only.
    debug: bool,
    /// Answered by the cache itself, so only while it runs (varnishd's
    /// child); the others are the manager's and always answered.
    child: bool,
}

const fn cmd(name: &'static str, syntax: &'static str, help: &'static str, min: usize, max: Option<usize>) -> Cmd {
    Cmd { name, syntax, help, min, max, json: false, debug: false, child: false }
}

impl Cmd {
    const fn json(mut self) -> Cmd {
        self.json = true;
        self
    }
    const fn debug(mut self) -> Cmd {
        self.debug = true;
        self
    }
    const fn child(mut self) -> Cmd {
        self.child = true;
        self
    }
}

/// Every command, by name (varnishd 7.1's set and syntax).
const COMMANDS: &[Cmd] = &[
    cmd("auth", "auth <response>", "Answer the authentication challenge.", 1, Some(1)),
    cmd(
        "backend.list",
        "backend.list [-j] [-p] [<backend_pattern>]",
        "List the backends, with their health; -p adds each probe's recent history.",
        0,
        Some(2),
    )
    .json()
    .child(),
    cmd(
        "backend.set_health",
        "backend.set_health <backend_pattern> [auto|healthy|sick]",
        "Force the health of the matching backends, or give it back to their probes (auto).",
        2,
        Some(2),
    )
    .child(),
    cmd(
        "ban",
        "ban <field> <operator> <arg> [&& <field> <oper> <arg> ...]",
        "Invalidate every cached object the conditions all match.",
        3,
        None,
    )
    .child(),
    cmd("ban.list", "ban.list [-j]", "List the bans still in force.", 0, Some(0)).json().child(),
    cmd("banner", "banner", "Show the greeting a new CLI connection gets.", 0, Some(0)),
    cmd(
        "debug.fragfetch",
        "debug.fragfetch <size>",
        "Hand backend bodies on in pieces of at most <size> bytes.",
        1,
        Some(1),
    )
    .debug()
    .child(),
    cmd("debug.listen_address", "debug.listen_address", "Show the addresses the listeners actually bound.", 0, Some(0))
        .debug()
        .child(),
    cmd("debug.srandom", "debug.srandom", "Seed the testable random numbers (1 if no seed is given).", 0, Some(1))
        .debug()
        .child(),
    cmd("debug.xid", "debug.xid [<xid> [<cachesize>]]", "Show or set the last transaction id.", 0, Some(2))
        .debug()
        .child(),
    cmd(
        "help",
        "help [-j|<command>]",
        "List the commands, or show one in full; -a lists the debug commands too, -d only those.",
        0,
        Some(1),
    )
    .json(),
    cmd("panic.clear", "panic.clear [-z]", "Forget the last panic; -z also zeroes the panic counter.", 0, Some(1)),
    cmd("panic.show", "panic.show [-j]", "Show the last panic, if there was one.", 0, Some(0)).json(),
    cmd("param.reset", "param.reset <param>", "Give a parameter back its default value.", 1, Some(1)),
    cmd(
        "param.set",
        "param.set [-j] <param> <value>",
        "Change a parameter; tasks that start after it see the new value.",
        2,
        Some(2),
    )
    .json(),
    cmd(
        "param.show",
        "param.show [-l|-j] [<param>|changed]",
        "Show the parameters, one in full, or those not at their default.",
        0,
        Some(2),
    )
    .json(),
    cmd("pid", "pid [-j]", "Show the server's process id.", 0, Some(0)).json(),
    cmd("ping", "ping [-j] [<timestamp>]", "Answer PONG, to keep a connection alive.", 0, Some(1)).json(),
    cmd("quit", "quit", "Close this CLI connection.", 0, Some(0)),
    cmd("start", "start", "Start accepting and serving clients.", 0, Some(0)),
    cmd("status", "status [-j]", "Say whether the server is serving clients.", 0, Some(0)).json(),
    cmd("stop", "stop", "Stop serving clients, and drop the cache.", 0, Some(0)),
    cmd("storage.list", "storage.list [-j]", "List the storage the cache uses.", 0, Some(0)).json(),
    cmd(
        "vcl.discard",
        "vcl.discard <name_pattern>...",
        "Unload the VCLs the patterns name, when nothing uses them.",
        1,
        None,
    ),
    cmd(
        "vcl.inline",
        "vcl.inline <configname> <quoted_VCLstring> [auto|cold|warm]",
        "Compile and load the VCL given as text, under this name.",
        2,
        Some(3),
    ),
    cmd(
        "vcl.label",
        "vcl.label <label> <configname>",
        "Make a label name a VCL (for vcl.use and return(vcl(label))).",
        2,
        Some(2),
    ),
    cmd("vcl.list", "vcl.list [-j]", "List the loaded VCLs and their states.", 0, Some(0)).json(),
    cmd(
        "vcl.load",
        "vcl.load <configname> <filename> [auto|cold|warm]",
        "Compile and load the VCL in a file, under this name.",
        2,
        Some(3),
    ),
    cmd(
        "vcl.show",
        "vcl.show [-v] [<configname>]",
        "Show a VCL's source; -v shows every file it was made of, and the built-in VCL.",
        0,
        Some(2),
    )
    .child(),
    cmd(
        "vcl.state",
        "vcl.state <configname> [auto|cold|warm]",
        "Set a VCL's temperature, or let it follow its use (auto).",
        2,
        Some(2),
    ),
    cmd("vcl.symtab", "vcl.symtab", "Show what each loaded VCL imported (its symbol table).", 0, Some(0)).debug(),
    cmd("vcl.use", "vcl.use <configname|label>", "Make a VCL the one new requests use.", 1, Some(1)),
];

fn lookup(name: &str) -> Option<&'static Cmd> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// `help`: the commands one may use now (debug ones with `-a` or only
/// with `-d`), one command in full, or the table in JSON with `-j`.
fn help(running: bool, json: bool, args: &[String]) -> (u16, String) {
    let usable = |c: &&Cmd| running || !c.child;
    if json {
        let objs: Vec<String> = COMMANDS
            .iter()
            .filter(usable)
            .map(|c| {
                let max = c.max.map_or(-1, |m| m as i64);
                let flags = if c.debug { "d" } else { "" };
                format!(
                    "  {{\n    \"request\": \"{}\",\n    \"syntax\": \"{}\",\n    \"help\": \"{}\",\n    \
                     \"minarg\": {},\n    \"maxarg\": {max},\n    \"flags\": \"{flags}\",\n    \"json\": {}\n  }}",
                    c.name,
                    json_escape(c.syntax),
                    json_escape(c.help),
                    c.min,
                    c.json
                )
            })
            .collect();
        let head = format!("[ 2, [\"help\", \"-j\"], {:.3}", crate::msg::now());
        return (status::OK, format!("{head},\n{}\n]", objs.join(",\n")));
    }
    let list = |pick: &dyn Fn(&Cmd) -> bool| -> String {
        COMMANDS.iter().filter(usable).filter(|c| pick(c)).map(|c| format!("{}\n", c.syntax)).collect()
    };
    match args.first().map(String::as_str) {
        None => (status::OK, list(&|c| !c.debug)),
        Some("-a") => (status::OK, list(&|_| true)),
        Some("-d") => (status::OK, list(&|c| c.debug)),
        Some(a) if a.starts_with('-') => (status::UNKNOWN, "Unknown flag".into()),
        Some(name) => match lookup(name).filter(usable) {
            Some(c) => (status::OK, format!("{}\n{}\n", c.syntax, c.help)),
            None => (status::UNKNOWN, "Unknown request.\nType 'help' for more info.".into()),
        },
    }
}
