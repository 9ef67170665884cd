//! `lacquer`: one command for everything — serve, check, and (as they land)
//! vtc, log, ncsa, stat, adm, demo, module-doc.
//!
//! This file only parses the command line and hands over to the crate that
//! does the work.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod adm;
mod compat;

#[derive(Parser)]
#[command(name = "lacquer", version, about = "An HTTP accelerator that runs VCL")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a VCL file and report errors as Varnish's VCC does.
    Check {
        /// The VCL file, or `-` for standard input.
        file: String,
        /// VCL syntax errors for unused subroutines, ACLs and probes
        /// (`vcc_err_unref`); on by default.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        err_unref: bool,
        /// Extra directories to search for included files (`vcl_path`).
        #[arg(long = "vcl-path")]
        vcl_path: Vec<PathBuf>,
        /// The source name used in messages (default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run VTC test scripts, as varnishtest does.
    Vtc(VtcArgs),
    /// Serve the built-in demo: pages made by VCL, no backend needed.
    Demo {
        /// Where to listen.
        #[arg(short = 'a', default_value = "127.0.0.1:8080")]
        listen: String,
        /// The directory to serve (default: the source tree's examples/site).
        #[arg(long)]
        site: Option<PathBuf>,
    },
    /// Run the accelerator, as `varnishd -F` does.
    #[command(disable_help_flag = true)]
    Serve {
        /// Print help (`-h` is varnishd's hash option).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// Listen on `[host]:port` (repeatable; `:port` is every interface).
        #[arg(short = 'a')]
        listen: Vec<String>,
        /// The VCL file to run.
        #[arg(short = 'f', conflicts_with = "backend")]
        vcl: Option<PathBuf>,
        /// Run a VCL with one backend, `HOST[:PORT]`, instead of `-f`.
        #[arg(short = 'b')]
        backend: Option<String>,
        /// The instance's working directory (created if missing).
        #[arg(short = 'n')]
        workdir: Option<PathBuf>,
        /// Set a parameter, `name=value` (repeatable).
        #[arg(short = 'p')]
        params: Vec<String>,
        /// Stay in the foreground (Lacquer always does).
        #[arg(short = 'F')]
        foreground: bool,
        /// Storage, `[name=]malloc[,SIZE]` (repeatable).
        #[arg(short = 's')]
        storage: Vec<String>,
        /// varnishd's hash algorithm (`critbit`, `simple_list`,
        /// `classic[,BUCKETS]`): checked, and served by Lacquer's one.
        #[arg(short = 'h')]
        hash: Option<String>,
        /// varnishd's waiter (`epoll`, `poll`): checked; Lacquer waits
        /// with tokio.
        #[arg(short = 'W')]
        waiter: Option<String>,
        /// The server's identity (`server.identity`), the host name if not
        /// given.
        #[arg(short = 'i')]
        identity: Option<String>,
        /// Parameters the admin CLI may not change, `name[,name...]`.
        #[arg(short = 'r')]
        read_only: Vec<String>,
        /// Where the admin CLI listens, `host:port` (varnishadm -T);
        /// `127.0.0.1:0` by default, `none` for nowhere.
        #[arg(short = 'T')]
        cli: Option<String>,
        /// The file whose contents authenticate CLI clients (varnishadm -S).
        #[arg(short = 'S')]
        secret: Option<PathBuf>,
        /// varnishd's debug mode: bind the sockets, open the CLI, and
        /// accept clients only after the CLI's `start`; `-f` and `-b` are
        /// optional then (`vcl.load` + `vcl.use` give the VCL). The server
        /// stops when its standard input ends.
        #[arg(short = 'd')]
        debug: bool,
        /// Call an admin CLI client at `ADDR PORT` (varnishd -M, which is
        /// how varnishtest drives varnishd).
        #[arg(short = 'M')]
        cli_call: Option<String>,
        /// Write the process id to this file.
        #[arg(short = 'P')]
        pid_file: Option<PathBuf>,
        /// Set when run as `varnishd` without -F or -d, which would have
        /// it go to the background: refused once the pid files are
        /// checked, as Lacquer stays in the foreground.
        #[arg(skip)]
        background_refused: bool,
        /// The size of the shared-memory log (`vsl_space`), `SIZE[,VSM]`
        /// as varnishd takes it.
        #[arg(short = 'l')]
        shm_size: Option<String>,
    },
    /// Show the shared-memory transaction log, as varnishlog does.
    Log(LogArgs),
    /// Print a module's reference: a built-in one by name, or a shared
    /// library by its path.
    ModuleDoc {
        /// `std`, `directors` …, or `/path/to/libNAME.so`.
        module: String,
    },
    /// Show the log as access-log lines, as varnishncsa does.
    Ncsa(NcsaArgs),
    /// Show the server's counters, as varnishstat does.
    Stat(StatArgs),
    /// Talk to a server's admin CLI, as varnishadm does.
    Adm {
        /// The CLI's address, `host:port` (as given to `lacquer serve -T`).
        #[arg(short = 'T')]
        address: String,
        /// The secret file (as given to `lacquer serve -S`).
        #[arg(short = 'S')]
        secret: Option<PathBuf>,
        /// How long to wait for an answer, in seconds.
        #[arg(short = 't', default_value_t = 5.0)]
        timeout: f64,
        /// The command; without one, commands are read from standard input.
        command: Vec<String>,
    },
}

/// `lacquer stat`'s options, named after varnishstat's.
#[derive(clap::Args)]
struct StatArgs {
    /// The server's working directory (as given to `lacquer serve -n`).
    #[arg(short = 'n')]
    workdir: Option<PathBuf>,
    /// Print every counter once, as text, and exit.
    #[arg(short = '1')]
    once: bool,
    /// Print every counter once, as JSON, and exit.
    #[arg(short = 'j')]
    json: bool,
    /// List the counters' names and descriptions, and exit.
    #[arg(short = 'l')]
    list: bool,
    /// Print every counter once, as XML, and exit.
    #[arg(short = 'x')]
    xml: bool,
    /// Show only counters matching this glob; `^glob` hides them. Repeatable; the first match decides.
    #[arg(short = 'f', allow_hyphen_values = true)]
    filters: Vec<String>,
    /// Seconds to wait for the counters to appear (negative: forever).
    #[arg(short = 't', allow_negative_numbers = true)]
    wait: Option<f64>,
    /// Serve the counters for Prometheus on `http://ADDR/metrics`
    /// (read from shared memory at each scrape) instead of printing them.
    #[arg(short = 'P', value_name = "ADDR")]
    prometheus: Option<String>,
}

/// `lacquer module-doc`: the reference of a module, from the spec the VCL
/// compiler reads at `import` (so what it prints is what VCL may call).
fn module_doc(module: &str) -> ExitCode {
    use lacquer_vcl::ModuleResolver;
    let modules = lacquer_server::modules();
    let is_file = module.contains('/') || module.ends_with(".so");
    let found = if is_file { modules.resolve("", Some(module)) } else { modules.resolve(module, None) };
    match found {
        Ok(spec) => {
            print!("{}", spec.reference());
            ExitCode::SUCCESS
        }
        Err(lacquer_vcl::ResolveError::NotFound) => {
            eprintln!("lacquer module-doc: no built-in module is called {module}");
            ExitCode::from(2)
        }
        Err(lacquer_vcl::ResolveError::Unusable { file, reason }) => {
            eprintln!("lacquer module-doc: {file}: {reason}");
            ExitCode::from(2)
        }
    }
}

/// `lacquer ncsa`'s options, named after varnishncsa's.
#[derive(clap::Args)]
struct NcsaArgs {
    /// The server's working directory (as given to `lacquer serve -n`).
    #[arg(short = 'n')]
    workdir: Option<PathBuf>,
    /// The format (default: NCSA combined), with varnishncsa's specifiers.
    #[arg(short = 'F')]
    format: Option<String>,
    /// Read the format from the first line of this file.
    #[arg(short = 'f')]
    format_file: Option<PathBuf>,
    /// Log backend requests.
    #[arg(short = 'b')]
    backend: bool,
    /// Log client requests (the default; both with -b).
    #[arg(short = 'c')]
    client: bool,
    /// Log ESI requests too (and so client requests).
    #[arg(short = 'E')]
    esi: bool,
    /// Start at the oldest record still in the log, and stop at its end.
    #[arg(short = 'd')]
    dump: bool,
    /// Log only the requests matching this query (vsl-query(7)).
    #[arg(short = 'q')]
    query: Option<String>,
    /// Read a binary log file (from `lacquer log -w`) instead of the shared memory.
    #[arg(short = 'r')]
    read: Option<PathBuf>,
    /// Append the lines to this file instead of printing them.
    #[arg(short = 'w')]
    write: Option<PathBuf>,
    /// Quote the values for JSON strings (UTF-8 kept, control characters
    /// as `\u00XX`).
    #[arg(short = 'j')]
    json: bool,
    /// Stop after this many transactions.
    #[arg(short = 'k')]
    limit: Option<u64>,
    /// Seconds to wait for the log to appear (negative: forever).
    #[arg(short = 't', allow_negative_numbers = true)]
    wait: Option<f64>,
}

fn ncsa(a: NcsaArgs) -> ExitCode {
    let log = lacquer_shm::LogOptions {
        workdir: Some(a.workdir.unwrap_or_else(lacquer_shm::default_workdir)),
        dump: a.dump,
        query: a.query,
        esi: a.esi,
        read: a.read,
        limit: a.limit,
        wait: a.wait,
        // `lacquer ncsa -w` appends, as its help says.
        append: true,
        ..Default::default()
    };
    let opts = lacquer_shm::NcsaOptions {
        log,
        format: a.format,
        format_file: a.format_file,
        backend: a.backend,
        client: a.client,
        esi: a.esi,
        write: a.write,
        json: a.json,
    };
    ExitCode::from(lacquer_shm::run_ncsa(&opts))
}

/// `lacquer vtc`'s options, named after varnishtest's.
#[derive(clap::Args)]
struct VtcArgs {
    /// Tests run in parallel.
    #[arg(short = 'j', default_value_t = 1)]
    jobs: usize,
    /// Keep going after a failure.
    #[arg(short = 'k')]
    keep_going: bool,
    /// Print only failures and the summary.
    #[arg(short = 'q')]
    quiet: bool,
    /// Print every test's log.
    #[arg(short = 'v')]
    verbose: bool,
    /// Per-test timeout in seconds.
    #[arg(short = 't', default_value_t = 60)]
    timeout: u64,
    /// Keep each test's temporary directory.
    #[arg(short = 'L')]
    keep_tmp: bool,
    /// Oracle mode: run the `varnish` instances on this varnishd,
    /// driven as varnishtest drives it, instead of `lacquer serve`. A
    /// script that passes under varnishtest and fails here shows a
    /// runner bug, not a Lacquer one.
    #[arg(long = "varnishd", value_name = "PATH")]
    varnishd: Option<PathBuf>,
    /// The scripts.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `lacquer log`'s options, named after varnishlog's.
#[derive(clap::Args)]
struct LogArgs {
    /// The server's working directory (as given to `lacquer serve -n`).
    #[arg(short = 'n')]
    workdir: Option<PathBuf>,
    /// Grouping: raw, vxid, request or session.
    #[arg(short = 'g', default_value = "vxid")]
    grouping: String,
    /// Start at the oldest record still in the log, and stop at its end.
    #[arg(short = 'd')]
    dump: bool,
    /// Show only the groups matching this query (vsl-query(7)).
    #[arg(short = 'q')]
    query: Option<String>,
    /// Show only these tags (comma-separated names or globs; repeatable).
    #[arg(short = 'i')]
    include: Vec<String>,
    /// Do not show these tags (repeatable; applied after -i and -I).
    #[arg(short = 'x')]
    exclude: Vec<String>,
    /// Show only records matching `[taglist:]regex` (repeatable).
    #[arg(short = 'I')]
    include_regex: Vec<String>,
    /// Do not show records matching `[taglist:]regex` (repeatable).
    #[arg(short = 'X')]
    exclude_regex: Vec<String>,
    /// Only client-side records.
    #[arg(short = 'c')]
    client: bool,
    /// Only backend-side records.
    #[arg(short = 'b')]
    backend: bool,
    /// ESI requests too (left out by -c and -b).
    #[arg(short = 'E')]
    esi: bool,
    /// Read a binary log file (`-` for standard input) instead of the shared memory.
    #[arg(short = 'r')]
    read: Option<PathBuf>,
    /// Write matching records to a binary log file instead of printing them.
    #[arg(short = 'w')]
    write: Option<PathBuf>,
    /// Stop after this many groups.
    #[arg(short = 'k')]
    limit: Option<u64>,
    /// Seconds after which an incomplete transaction is shown anyway.
    #[arg(short = 'T')]
    timeout: Option<f64>,
    /// Seconds to wait for the log to appear (negative: forever).
    #[arg(short = 't', allow_negative_numbers = true)]
    wait: Option<f64>,
}

fn main() -> ExitCode {
    // Run under a Varnish tool's name, Lacquer is that tool.
    let mut args = std::env::args_os();
    let argv0 = args.next();
    if let Some(tool) = argv0.as_deref().and_then(compat::Tool::by_name) {
        let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return compat::run(tool, &args);
    }
    // As `varnishd`, Lacquer is `lacquer serve`, whose options are
    // varnishd's; it stays in the foreground, so it wants -F or -d.
    let as_varnishd =
        argv0.as_deref().map(std::path::Path::new).and_then(|p| p.file_name()) == Some("varnishd".as_ref());
    let cli = if as_varnishd {
        let rest: Vec<std::ffi::OsString> = args.collect();
        let foreground = rest.iter().any(|a| a == "-F" || a == "-d");
        let mut cli = Cli::parse_from(["lacquer".into(), "serve".into()].into_iter().chain(rest));
        if let Cmd::Serve { background_refused, .. } = &mut cli.cmd {
            *background_refused = !foreground;
        }
        cli
    } else {
        Cli::parse()
    };
    match cli.cmd {
        Cmd::Check { file, err_unref, vcl_path, name } => check(&file, err_unref, vcl_path, name),
        Cmd::Vtc(a) => vtc(a),
        Cmd::Demo { listen, site } => demo(listen, site),
        Cmd::Serve {
            listen,
            vcl,
            backend,
            workdir,
            params,
            storage,
            hash,
            waiter,
            identity,
            read_only,
            cli,
            secret,
            debug,
            cli_call,
            pid_file,
            shm_size,
            background_refused,
            ..
        } => {
            if let Err(e) = check_tuning(hash.as_deref(), waiter.as_deref()) {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
            let secret_file = secret.clone();
            let secret = match secret.map(std::fs::read).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: -S: {e}");
                    return ExitCode::from(2);
                }
            };
            // Without -T or -M, -d's CLI is the default -T, which
            // `lacquer adm -n` finds.
            // varnishd's CLI listens on `localhost:0` unless `-T none`.
            let cli = match cli.as_deref() {
                Some("none") => None,
                Some(_) => cli,
                None => Some("127.0.0.1:0".to_string()),
            };
            let mut params = params;
            if let Some(l) = shm_size {
                // Before the -p arguments, which may say otherwise.
                params.insert(0, format!("vsl_space={}", l.split(',').next().unwrap_or("")));
            }
            let s = Serve {
                read_only,
                listen,
                vcl,
                backend,
                workdir,
                params,
                storage,
                identity,
                cli,
                cli_call,
                secret,
                secret_file,
                pid_file,
                debug,
                background_refused,
            };
            serve(s)
        }
        Cmd::Log(args) => log(args),
        Cmd::Ncsa(a) => ncsa(a),
        Cmd::ModuleDoc { module } => module_doc(&module),
        Cmd::Stat(a) => stat(a),
        Cmd::Adm { address, secret, timeout, command } => {
            adm::run(&address, secret.as_deref(), timeout, &command, adm::Mode::Plain)
        }
    }
}

/// Checks varnishd's tuning flags that Lacquer accepts for compatibility
/// (`-h`, `-W`), refusing what varnishd refuses.
fn check_tuning(hash: Option<&str>, waiter: Option<&str>) -> Result<(), String> {
    if let Some(h) = hash {
        let (name, arg) = h.split_once(',').map_or((h, None), |(n, a)| (n, Some(a)));
        match (name, arg) {
            ("critbit" | "simple_list", None) => {}
            ("classic", None) => {}
            ("classic", Some(n)) if n.parse::<u32>().is_ok_and(|n| n > 0) => {}
            _ => return Err(format!("unknown hash algorithm or bad argument: -h {h}")),
        }
    }
    if let Some(w) = waiter {
        if !matches!(w, "epoll" | "poll") {
            return Err(format!("unknown waiter: -W {w}"));
        }
    }
    Ok(())
}

/// What `lacquer serve` was given.
struct Serve {
    /// `-r`: parameters the CLI may not change.
    read_only: Vec<String>,
    listen: Vec<String>,
    vcl: Option<PathBuf>,
    backend: Option<String>,
    workdir: Option<PathBuf>,
    params: Vec<String>,
    storage: Vec<String>,
    identity: Option<String>,
    cli: Option<String>,
    cli_call: Option<String>,
    secret: Option<Vec<u8>>,
    secret_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    debug: bool,
    /// Run as `varnishd` without -F or -d.
    background_refused: bool,
}

/// `lacquer serve`: compiles the VCL (or makes one from `-b`), sets the
/// parameters and runs the server until SIGTERM or SIGINT.
fn serve(a: Serve) -> ExitCode {
    let Serve {
        read_only,
        listen,
        vcl,
        backend,
        workdir,
        params,
        storage,
        identity,
        cli,
        cli_call,
        secret,
        secret_file,
        pid_file,
        debug,
        background_refused,
    } = a;
    let mut p = lacquer_server::Params::default();
    for a in &params {
        // Worded as varnishd words it.
        if !a.contains('=') {
            eprintln!("Error: \t-p lacks '='\n(lacquer serve --help gives usage)");
            return ExitCode::from(2);
        }
        if let Err(e) = p.apply(a) {
            eprintln!("Error:\n{e}");
            return ExitCode::from(2);
        }
    }
    for name in read_only.iter().flat_map(|r| r.split(',')) {
        if let Err(e) = p.protect(name.trim()) {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    }
    let workdir = workdir.unwrap_or_else(lacquer_shm::default_workdir);
    if let Err(e) = std::fs::create_dir_all(&workdir) {
        eprintln!("lacquer serve: cannot create {}: {e}", workdir.display());
        return ExitCode::from(2);
    }
    if let Err(e) = claim_pid_files(&workdir, pid_file.as_deref()) {
        eprintln!("Error: {e}");
        return ExitCode::from(2);
    }
    if background_refused {
        eprintln!("Error: Lacquer's varnishd runs in the foreground: give -F (or -d)");
        return ExitCode::from(2);
    }
    let storage = match lacquer_server::stevedore::parse_all(&storage) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lacquer serve: -s: {e}");
            return ExitCode::from(2);
        }
    };
    let modules = lacquer_server::modules();
    let resolver: std::sync::Arc<dyn lacquer_vcl::ModuleResolver> = modules.clone();
    let base = lacquer_vcl::Options {
        stevedores: storage.iter().map(|s| s.name.clone()).collect(),
        modules: Some(resolver),
        ..lacquer_vcl::Options::default()
    };
    let opts = lacquer_server::compile_options(&base, &p);
    let (compiled, file) = match (vcl, backend) {
        (Some(file), None) => (
            lacquer_vcl::compile_path(&file, &opts).map_err(Some).map(|prog| {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                (prog, (file.display().to_string(), text))
            }),
            Some(file),
        ),
        (None, Some(b)) => {
            let src = lacquer_server::backend_vcl(&b);
            let compiled = lacquer_vcl::compile_str("<-b argument>", &src, &opts).map_err(Some);
            (compiled.map(|prog| (prog, ("<-b argument>".into(), src))), None)
        }
        (None, None) if debug => (Err(None), None),
        _ => {
            eprintln!("lacquer serve: exactly one of -f FILE and -b HOST[:PORT] is needed (or -d)");
            return ExitCode::from(2);
        }
    };
    let boot = match compiled {
        Ok((program, source)) => Some(lacquer_server::Boot { program, source, file }),
        Err(None) => None,
        Err(Some(e)) => {
            eprintln!("Message from VCC-compiler:\n{e}");
            eprintln!("VCL compilation failed");
            return ExitCode::from(2);
        }
    };
    let config = lacquer_server::Config {
        listen,
        boot,
        params: p,
        storage,
        identity,
        workdir,
        modules,
        compile: base,
        cli,
        cli_call,
        secret,
        secret_file: secret_file.map(|f| std::path::absolute(&f).unwrap_or(f)),
        pid_file,
        wait_for_start: debug,
    };
    match lacquer_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lacquer serve: {e}");
            ExitCode::from(2)
        }
    }
}

/// Refuses to start where a server runs already, as varnishd refuses: the
/// working directory's `_.pid` (always written) and the `-P` file must
/// not name a live process; then both get this process's id.
fn claim_pid_files(workdir: &std::path::Path, pid_file: Option<&std::path::Path>) -> Result<(), String> {
    let own = workdir.join("_.pid");
    let files: Vec<&std::path::Path> = std::iter::once(own.as_path()).chain(pid_file).collect();
    for f in &files {
        let pid = std::fs::read_to_string(f).ok().and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|p| *p != std::process::id()) {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(format!("Varnishd is already running (pid={pid})"));
            }
        }
    }
    for f in files {
        std::fs::write(f, format!("{}\n", std::process::id()))
            .map_err(|e| format!("Could not open pid-file {}: {}", f.display(), lacquer_shm::os_message(&e)))?;
    }
    Ok(())
}

/// The demo's VCL, built in so that the command works from anywhere.
const DEMO_VCL: &str = include_str!("../../../examples/demo.vcl");

/// `lacquer demo`: serves pages made by the demo VCL until interrupted.
/// `lacquer log`: hands the options to `lacquer_shm::run_log`.
fn log(a: LogArgs) -> ExitCode {
    let filters = (a.include.into_iter().map(|v| ('i', v)))
        .chain(a.include_regex.into_iter().map(|v| ('I', v)))
        .chain(a.exclude.into_iter().map(|v| ('x', v)))
        .chain(a.exclude_regex.into_iter().map(|v| ('X', v)))
        .collect();
    let opts = lacquer_shm::LogOptions {
        workdir: Some(a.workdir.unwrap_or_else(lacquer_shm::default_workdir)),
        grouping: Some(a.grouping),
        dump: a.dump,
        query: a.query,
        filters,
        client: a.client,
        backend: a.backend,
        esi: a.esi,
        read: a.read,
        write: a.write,
        limit: a.limit,
        timeout: a.timeout,
        wait: a.wait,
        ..Default::default()
    };
    ExitCode::from(lacquer_shm::run_log(&opts))
}

fn demo(listen: String, site: Option<PathBuf>) -> ExitCode {
    // The site ships in the source tree, next to the demo's VCL.
    let site = site.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site")));
    let Ok(site) = std::fs::canonicalize(&site) else {
        eprintln!("lacquer demo: no site to serve at {}; give one with --site DIR", site.display());
        return ExitCode::from(2);
    };
    let site = site.display().to_string();
    if site.contains('"') || site.contains('\n') {
        eprintln!("lacquer demo: a VCL string cannot hold the path {site:?}; give another with --site DIR");
        return ExitCode::from(2);
    }
    let src = DEMO_VCL.replace("@SITE@", &site);
    let modules = lacquer_server::modules();
    let opts = lacquer_vcl::Options { modules: Some(modules.clone()), ..lacquer_vcl::Options::default() };
    let program = match lacquer_vcl::compile_str("<demo>", &src, &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lacquer demo: the built-in VCL does not compile:\n{e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("lacquer demo: open http://{listen}/ (Ctrl-C stops it)");
    let config = lacquer_server::Config {
        listen: vec![listen],
        boot: Some(lacquer_server::Boot { program, source: ("<demo>".into(), src), file: None }),
        params: lacquer_server::Params::default(),
        storage: lacquer_server::stevedore::parse_all(&[]).unwrap_or_default(),
        identity: None,
        workdir: lacquer_shm::default_workdir(),
        modules,
        compile: opts,
        cli: None,
        cli_call: None,
        secret: None,
        secret_file: None,
        pid_file: None,
        wait_for_start: false,
    };
    match lacquer_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lacquer demo: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(file: &str, err_unref: bool, vcl_path: Vec<PathBuf>, name: Option<String>) -> ExitCode {
    let opts =
        lacquer_vcl::Options { err_unref, vcl_path, modules: Some(lacquer_server::modules()), ..Default::default() };
    let result = if file == "-" {
        let mut src = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut src) {
            eprintln!("lacquer check: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        lacquer_vcl::compile_str(name.as_deref().unwrap_or("<stdin>"), &src, &opts)
    } else if let Some(name) = name {
        match std::fs::read_to_string(file) {
            Ok(src) => lacquer_vcl::compile_str(&name, &src, &opts),
            Err(e) => {
                eprintln!("lacquer check: cannot read {file}: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        lacquer_vcl::compile_path(std::path::Path::new(file), &opts)
    };
    match result {
        Ok(p) => {
            let user_subs = p.subs.len();
            println!(
                "{}: VCL {}.{} compiled: {} subroutines, {} backends, {} probes, {} ACLs, {} regexes, {} imports",
                file,
                p.syntax / 10,
                p.syntax % 10,
                user_subs,
                p.backends.len(),
                p.probes.len(),
                p.acls.len(),
                p.regexes.len(),
                p.imports.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Message from VCC-compiler:\n{e}");
            eprintln!("VCL compilation failed");
            ExitCode::from(1)
        }
    }
}

/// `lacquer vtc`: runs scripts on `jobs` threads, printing a line per test
/// as varnishtest does, then `N passed, N failed, N skipped`.
fn vtc(a: VtcArgs) -> ExitCode {
    let VtcArgs { jobs, keep_going, quiet, verbose, timeout, keep_tmp, varnishd, files } = a;
    use lacquer_vtc::{run_file, RunOptions, Verdict};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    let lacquer = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lacquer vtc: cannot find my own executable: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(v) = &varnishd {
        if !v.is_file() {
            eprintln!("lacquer vtc: --varnishd {}: no such file", v.display());
            return ExitCode::from(2);
        }
    }
    let opts = RunOptions { lacquer, timeout: std::time::Duration::from_secs(timeout.max(1)), keep_tmp, varnishd };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let counts = Mutex::new((0usize, 0usize, 0usize));
    let out = Mutex::new(());
    std::thread::scope(|sc| {
        for _ in 0..jobs.max(1) {
            sc.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { return };
                let o = run_file(f, &opts);
                let secs = o.elapsed.as_secs_f64();
                let _g = out.lock().unwrap_or_else(|e| e.into_inner());
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                match &o.verdict {
                    Verdict::Passed => {
                        c.0 += 1;
                        if verbose {
                            print!("{}", o.log);
                        }
                        if !quiet {
                            println!("#    top  TEST {} passed ({secs:.3})", f.display());
                        }
                    }
                    Verdict::Failed(why) => {
                        c.1 += 1;
                        print!("{}", o.log);
                        println!("#    top  TEST {} FAILED ({secs:.3}) {why}", f.display());
                        if !keep_going {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Verdict::Skipped(why) => {
                        c.2 += 1;
                        if !quiet {
                            println!("#    top  TEST {} skipped ({why})", f.display());
                        }
                    }
                }
            });
        }
    });
    let (p, f, s) = *counts.lock().unwrap_or_else(|e| e.into_inner());
    println!("{p} passed, {f} failed, {s} skipped");
    if f == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `lacquer stat`: hands the options to `lacquer_shm::run_stat`.
fn stat(a: StatArgs) -> ExitCode {
    let opts = lacquer_shm::StatOptions {
        workdir: Some(a.workdir.unwrap_or_else(lacquer_shm::default_workdir)),
        once: a.once,
        json: a.json,
        list: a.list,
        xml: a.xml,
        filters: a.filters,
        wait: a.wait,
        prometheus: a.prometheus,
    };
    ExitCode::from(lacquer_shm::run_stat(&opts))
}
