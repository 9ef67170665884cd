//! Varnish 7.1.1's own test scripts as a corpus for the VCL compiler.
//!
//! Every `varnish vN ... -vcl {...}`, `-vcl+backend {...}` and
//! `-errvcl {MESSAGE} {...}` in `shared/vtc/varnish-7.1.1/tests/*.vtc` is a
//! case, identified as `FILE:LINE` (the line of the `varnish` command). The
//! VCL source is built exactly as varnishtest 7.1 builds its `vcl.inline`
//! (bin/varnishtest/vtc_varnish.c, varnish_vcl / varnish_vclbackend):
//!
//! * `-vcl S` and `-errvcl M S`: `"vcl X.Y;\n" + S + "\n"`
//! * `-vcl+backend S`: `"vcl X.Y;\n" + one "backend sN { .host = \"ADDR\";
//!   .port = \"PORT\"; }\n" line per server declared so far (`.path` for a
//!   Unix-socket server) + "\n" + S + "\n"`
//!
//! where X.Y is 4.1 unless `-syntax` says otherwise, compiled under the name
//! `<vcl.inline>`. `-vcl`/`-vcl+backend` pass when the VCL compiles;
//! `-errvcl` passes when the compile fails and the message contains MESSAGE
//! (varnishtest uses a substring match).
//!
//! The test prints passed/failed/skipped per test-file letter and checks
//! `tests/conformance/vcl-corpus.txt` (repo root): every id listed there must
//! pass. `LACQUER_BLESS=1` rewrites that file with the ids that pass now.
//!
//! Other knobs:
//! * `LACQUER_DUMP_CORPUS=/dir` only extracts: it writes `ID.vcl` (the exact
//!   source) and `ID.expect` per case and compiles nothing. `ID.expect` is
//!   `key: value` lines (`kind`, `expect` = compiles|fails, `params` = the
//!   varnishd `-p` arguments for the VCC parameters, `skip` if skipped), an
//!   empty line, then the expected message verbatim (for -errvcl).
//! * `LACQUER_CORPUS_VERBOSE=1` lists every failing and skipped case.
//! * `LACQUER_VTC_DIR=/dir` reads the .vtc files from elsewhere.
//!
//! When the corpus directory is absent the test says so and passes.
//! The corpus files are never copied into this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lacquer_vcl::{compile_str, Options};
use lacquer_vtc::parse::{backslash, expand_macros, tokenize};

// ---------------------------------------------------------------------------
// Macros
// ---------------------------------------------------------------------------

const LOCALHOST: &str = "127.0.0.1";
const BAD_BACKEND_PORT: u16 = 9;

#[derive(Clone, Debug)]
enum Listen {
    Tcp {
        addr: String,
        port: String,
    },
    Uds(String),
    /// Its address uses a macro we cannot expand.
    Unknown(String),
}

#[derive(Clone, Debug)]
struct Server {
    name: String,
    listen: Listen,
}

/// Per-file macro and server state.
struct Env {
    testdir: String,
    servers: Vec<Server>,
    /// Macros defined by `-start`ed varnish instances, tunnels etc.
    defined: BTreeMap<String, String>,
}

fn fake_port(name: &str, base: u16) -> String {
    let n: u16 = name.trim_start_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(99);
    (base + n % 1000).to_string()
}

/// VAV_ParseTxt(..., ARGV_COMMA) for a macro body: comma-separated, with
/// optional "quoted" arguments.
fn split_macro_args(body: &str) -> Vec<String> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        while p < b.len() && (b[p] == b' ' || b[p] == b'\t') {
            p += 1;
        }
        let mut arg = Vec::new();
        if b.get(p) == Some(&b'"') {
            p += 1;
            while p < b.len() && b[p] != b'"' {
                if b[p] == b'\\' {
                    let (v, n) = backslash(&b[p..]);
                    arg.push(v);
                    p += n;
                } else {
                    arg.push(b[p]);
                    p += 1;
                }
            }
            p += 1;
            while p < b.len() && b[p] != b',' {
                p += 1;
            }
        } else {
            while p < b.len() && b[p] != b',' {
                arg.push(b[p]);
                p += 1;
            }
            while arg.last().is_some_and(|c| c.is_ascii_whitespace()) {
                arg.pop();
            }
        }
        out.push(String::from_utf8_lossy(&arg).into_owned());
        if p >= b.len() {
            break;
        }
        p += 1; // the comma
    }
    out
}

impl Env {
    fn macro_value(&self, name: &str) -> Result<String, String> {
        if name.contains(',') {
            let args = split_macro_args(name);
            if args.len() == 4 && args[0] == "string" && args[1] == "repeat" {
                let n: usize = args[2].parse().map_err(|_| format!("cannot expand ${{{name}}}"))?;
                return Ok(args[3].repeat(n));
            }
            return Err(format!("cannot expand macro function ${{{name}}}"));
        }
        match name {
            "localhost" => return Ok(LOCALHOST.into()),
            "bad_ip" => return Ok("192.0.2.255".into()),
            "bad_backend" => return Ok(format!("{LOCALHOST} {BAD_BACKEND_PORT}")),
            "listen_addr" => return Ok(format!("{LOCALHOST} 0")),
            "testdir" => return Ok(self.testdir.clone()),
            "tmpdir" | "vtcid" => return Err("uses ${tmpdir} (files made while the test runs)".into()),
            "pwd" => return Err("uses ${pwd} (varnishtest's working directory)".into()),
            "topbuild" | "topsrc" => return Err(format!("uses ${{{name}}} (a Varnish build tree)")),
            _ => {}
        }
        if let Some(v) = self.defined.get(name) {
            return Ok(v.clone());
        }
        for s in &self.servers {
            let Some(what) = name.strip_prefix(s.name.as_str()).and_then(|r| r.strip_prefix('_')) else {
                continue;
            };
            return match (&s.listen, what) {
                (Listen::Tcp { addr, .. }, "addr") => Ok(addr.clone()),
                (Listen::Tcp { port, .. }, "port") => Ok(port.clone()),
                (Listen::Tcp { addr, port }, "sock") => Ok(format!("{addr} {port}")),
                (Listen::Uds(_), "addr") => Ok("0.0.0.0".into()),
                (Listen::Uds(_), "port") => Ok("0".into()),
                (Listen::Uds(path), "sock") => Ok(path.clone()),
                (Listen::Unknown(why), _) => Err(why.clone()),
                _ => Err(format!("unknown macro ${{{name}}}")),
            };
        }
        Err(format!("unknown macro ${{{name}}}"))
    }

    /// macro_expand: replace every `${...}` (up to the first `}`).
    fn expand(&self, text: &str) -> Result<String, String> {
        expand_macros(text, |n| self.macro_value(n))
    }

    /// cmd_server_gen_vcl
    fn gen_backends(&self) -> Result<String, String> {
        let mut out = String::new();
        // varnishtest 7.1 lists every server, `-dispatch` ones included
        // (b00048 relies on `s0 ... -dispatch` being a backend).
        for s in &self.servers {
            match &s.listen {
                Listen::Tcp { addr, port } => {
                    let _ = writeln!(out, "backend {} {{ .host = \"{addr}\"; .port = \"{port}\"; }}", s.name);
                }
                Listen::Uds(path) => {
                    let _ = writeln!(out, "backend {} {{ .path = \"{path}\"; }}", s.name);
                }
                Listen::Unknown(why) => {
                    return Err(format!("server {}: {why}", s.name));
                }
            }
        }
        Ok(out)
    }

    fn server_command(&mut self, tokens: &[String]) {
        let Some(name) = tokens.get(1) else { return };
        if !name.starts_with('s') {
            return;
        }
        let mut listen = None;
        let mut i = 2;
        while i < tokens.len() {
            if tokens[i] == "-listen" {
                listen = tokens.get(i + 1).cloned();
                i += 1;
            }
            i += 1;
        }
        let idx = self.servers.iter().position(|s| &s.name == name);
        let listen = match listen {
            None => match idx {
                Some(i) => self.servers[i].listen.clone(),
                None => Listen::Tcp { addr: LOCALHOST.into(), port: fake_port(name, 30000) },
            },
            Some(l) => match self.expand(&l) {
                Err(why) => Listen::Unknown(why),
                Ok(l) if l.starts_with('/') || l.starts_with('@') => Listen::Uds(l),
                Ok(l) => {
                    let host = if let Some(r) = l.strip_prefix('[') {
                        r.split(']').next().unwrap_or(r).to_string()
                    } else if let Some((h, _)) = l.split_once(' ') {
                        h.to_string()
                    } else if l.matches(':').count() == 1 {
                        l.split(':').next().unwrap_or(&l).to_string()
                    } else {
                        l.clone()
                    };
                    Listen::Tcp { addr: host, port: fake_port(name, 30000) }
                }
            },
        };
        match idx {
            Some(i) => self.servers[i].listen = listen,
            None => self.servers.push(Server { name: name.clone(), listen }),
        }
    }
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Vcl,
    VclBackend,
    ErrVcl,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Vcl => "vcl",
            Kind::VclBackend => "vcl+backend",
            Kind::ErrVcl => "errvcl",
        }
    }
}

/// The VCC-relevant parameters of one varnish instance.
#[derive(Clone, Debug)]
struct Params {
    err_unref: bool,
    allow_inline_c: bool,
    unsafe_path: bool,
    /// Other VCC-relevant parameters set to something we cannot model.
    other: Vec<String>,
    /// `vcl_path`, when set: it only matters to plain relative includes.
    vcl_path: Option<String>,
    /// Storage backends added with `-s NAME=...`.
    storages: Vec<String>,
    /// VCL labels made with `vcl.label` over the CLI.
    labels: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            err_unref: true,
            allow_inline_c: false,
            unsafe_path: true,
            other: Vec::new(),
            vcl_path: None,
            storages: Vec::new(),
            labels: Vec::new(),
        }
    }
}

fn param_bool(v: &str) -> Option<bool> {
    match v {
        "on" | "true" | "yes" | "enable" => Some(true),
        "off" | "false" | "no" | "disable" => Some(false),
        _ => None,
    }
}

impl Params {
    fn set(&mut self, name: &str, value: &str) {
        match (name, param_bool(value)) {
            ("vcc_err_unref", Some(b)) => self.err_unref = b,
            ("vcc_allow_inline_c", Some(b)) => self.allow_inline_c = b,
            ("vcc_unsafe_path", Some(b)) => self.unsafe_path = b,
            ("vcl_path", _) => self.vcl_path = Some(value.to_string()),
            ("vmod_path", _) => self.other.push(format!("{name}={value}")),
            _ => {}
        }
    }

    /// `-p` arguments for varnishd that reproduce these parameters.
    fn varnishd_args(&self) -> String {
        format!(
            "-p vcc_err_unref={} -p vcc_allow_inline_c={} -p vcc_unsafe_path={}",
            self.err_unref, self.allow_inline_c, self.unsafe_path
        )
    }
}

#[derive(Debug)]
struct Case {
    id: String,
    file: String,
    kind: Kind,
    /// The exact source varnishtest would send, when it could be built.
    source: Option<String>,
    /// -errvcl's expected substring.
    message: Option<String>,
    params: Params,
    skip: Option<String>,
}

/// Remove comments and string literals from VCL, keeping the rest, so a scan
/// for `import NAME` is not fooled by either.
fn vcl_code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut p = 0;
    let starts = |p: usize, s: &str| b[p..].starts_with(s.as_bytes());
    let skip_to = |p: usize, end: &str| -> usize {
        match src[p..].find(end) {
            Some(i) => p + i + end.len(),
            None => b.len(),
        }
    };
    while p < b.len() {
        if starts(p, "\"\"\"") {
            p = skip_to(p + 3, "\"\"\"");
            out.push(b' ');
        } else if starts(p, "{\"") {
            p = skip_to(p + 2, "\"}");
            out.push(b' ');
        } else if b[p] == b'"' {
            let mut q = p + 1;
            while q < b.len() && b[q] != b'"' && b[q] != b'\n' {
                q += 1;
            }
            p = q + 1;
            out.push(b' ');
        } else if starts(p, "/*") {
            p = skip_to(p + 2, "*/");
            out.push(b' ');
        } else if starts(p, "//") || b[p] == b'#' {
            p = skip_to(p, "\n");
            out.push(b'\n');
        } else if starts(p, "C{") {
            p = skip_to(p + 2, "}C");
            out.push(b' ');
        } else {
            out.push(b[p]);
            p += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The modules a VCL imports.
fn imported_modules(src: &str) -> Vec<String> {
    let code = vcl_code_only(src);
    let words: Vec<&str> =
        code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ';')).filter(|w| !w.is_empty()).collect();
    let mut mods = Vec::new();
    for w in words.windows(2) {
        if w[0] == "import" {
            let m = w[1].trim_end_matches(';').to_string();
            if !m.is_empty() && !mods.contains(&m) {
                mods.push(m);
            }
        }
    }
    mods
}

/// Whether the VCL has an `include "x"` that VCC looks up in vcl_path (a
/// relative name not starting with "./"). Comments are not excluded: this
/// only decides whether to skip a case.
fn has_vcl_path_include(src: &str) -> bool {
    let mut rest = src;
    while let Some(i) = rest.find("include") {
        rest = rest[i + "include".len()..].trim_start();
        if let Some(r) = rest.strip_prefix("+glob") {
            rest = r.trim_start();
        }
        if let Some(r) = rest.strip_prefix('"') {
            let path = r.split('"').next().unwrap_or("");
            if !path.starts_with('/') && !path.starts_with("./") {
                return true;
            }
        }
    }
    false
}

/// strtod() then "%.1f"
fn syntax_text(arg: &str) -> String {
    let t = arg.trim_start();
    let mut end = 0;
    let mut seen_dot = false;
    for (i, c) in t.char_indices() {
        if c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')) {
            end = i + 1;
        } else if c == '.' && !seen_dot {
            seen_dot = true;
            end = i + 1;
        } else {
            break;
        }
    }
    let v: f64 = t[..end].parse().unwrap_or(0.0);
    format!("{v:.1}")
}

/// `-errvcl` cases whose error does not come from VCC, so no compiler can
/// produce it: varnishtest sees it from a later step of loading the VCL.
const NOT_VCC: &[(&str, &str)] = &[
    ("b00053.vtc:40", "rejected when loaded (VCL 4.0 with a Unix-socket listener), not by VCC"),
    ("c00109.vtc:10", "fails in the C compiler step (broken cc_command), not in VCC"),
    ("v00025.vtc:19", "refused by the max_vcl limit, not by VCC"),
    ("v00040.vtc:15", "vcl_init fails when the VCL is loaded, not a compile error"),
    ("v00040.vtc:22", "vcl_init fails when the VCL is loaded, not a compile error"),
];

/// The cases of one .vtc file.
fn extract_file(file: &str, text: &str, testdir: &str) -> Result<Vec<Case>, String> {
    let cmds = tokenize(text)?;
    let mut env = Env { testdir: testdir.to_string(), servers: Vec::new(), defined: BTreeMap::new() };
    let mut params: BTreeMap<String, Params> = BTreeMap::new();
    let mut cases = Vec::new();
    // `feature X` for an X this test cannot assume (varnishtest skips the
    // rest of the file when the machine lacks it).
    let mut needs_feature: Option<String> = None;

    for cmd in &cmds {
        let Some(verb) = cmd.tokens.first() else { continue };
        match verb.as_str() {
            "server" => env.server_command(&cmd.tokens),
            "feature" => {
                for f in &cmd.tokens[1..] {
                    if f == "dns" {
                        needs_feature.get_or_insert_with(|| f.clone());
                    }
                }
            }
            "barrier" => {
                // `barrier bN sock ...` listens on a socket: ${bN_sock}
                if let (Some(name), Some("sock")) = (cmd.tokens.get(1), cmd.tokens.get(2).map(String::as_str)) {
                    let port = fake_port(name, 33000);
                    env.defined.insert(format!("{name}_sock"), format!("{LOCALHOST} {port}"));
                }
            }
            "tunnel" => {
                if let Some(name) = cmd.tokens.get(1) {
                    let port = fake_port(name, 32000);
                    env.defined.insert(format!("{name}_addr"), LOCALHOST.into());
                    env.defined.insert(format!("{name}_port"), port.clone());
                    env.defined.insert(format!("{name}_sock"), format!("{LOCALHOST} {port}"));
                }
            }
            "varnish" => {
                let Some(vname) = cmd.tokens.get(1).cloned() else { continue };
                let p = params.entry(vname.clone()).or_default();
                let mut syntax = "4.1".to_string();
                let av = &cmd.tokens;
                let mut i = 2;
                // Expand a token the way parse_string does (all of them).
                let exp = |env: &Env, s: &str| env.expand(s);
                while i < av.len() {
                    let arg = av[i].as_str();
                    let a1 = av.get(i + 1).map(String::as_str);
                    let a2 = av.get(i + 2).map(String::as_str);
                    match arg {
                        "-arg" => {
                            if let Some(a) = a1 {
                                let a = exp(&env, a).unwrap_or_else(|_| a.to_string());
                                let words: Vec<&str> = a.split_whitespace().collect();
                                let mut k = 0;
                                while k < words.len() {
                                    let opt = |flag: &str, k: &mut usize| {
                                        if words[*k] == flag {
                                            *k += 1;
                                            words.get(*k).copied()
                                        } else {
                                            words[*k].strip_prefix(flag)
                                        }
                                    };
                                    if let Some(kv) = opt("-p", &mut k) {
                                        if let Some((n, v)) = kv.split_once('=') {
                                            p.set(n, v);
                                        }
                                    } else if let Some(sv) = opt("-s", &mut k) {
                                        // the two storages that always exist
                                        // need no special treatment
                                        if let Some((n, _)) = sv.split_once('=') {
                                            if n != "Transient" && n != "s0" {
                                                p.storages.push(n.to_string());
                                            }
                                        }
                                    }
                                    k += 1;
                                }
                            }
                            i += 2;
                        }
                        "-cli" | "-cliok" | "-clijson" => {
                            if let Some(a) = a1 {
                                cli_param(p, a);
                            }
                            i += 2;
                        }
                        "-clierr" | "-cliexpect" => {
                            if let Some(a) = a2 {
                                // a failing param.set changes nothing
                                if arg == "-cliexpect" || a1 == Some("200") {
                                    cli_param(p, a);
                                }
                            }
                            i += 3;
                        }
                        "-syntax" => {
                            if let Some(a) = a1 {
                                syntax = syntax_text(a);
                            }
                            i += 2;
                        }
                        "-vcl" | "-vcl+backend" | "-errvcl" => {
                            let (kind, msg, body) = match arg {
                                "-vcl" => (Kind::Vcl, None, a1),
                                "-vcl+backend" => (Kind::VclBackend, None, a1),
                                _ => (Kind::ErrVcl, a1, a2),
                            };
                            i += if kind == Kind::ErrVcl { 3 } else { 2 };
                            let Some(body) = body else { continue };
                            let mut skip = None;
                            let message = match msg.map(|m| exp(&env, m)) {
                                None => None,
                                Some(Ok(m)) => Some(m),
                                Some(Err(why)) => {
                                    skip = Some(why);
                                    Some(msg.unwrap().to_string())
                                }
                            };
                            let source = match exp(&env, body) {
                                Err(why) => {
                                    skip.get_or_insert(why);
                                    None
                                }
                                Ok(body) => match kind {
                                    Kind::VclBackend => match env.gen_backends() {
                                        Ok(be) => Some(format!("vcl {syntax};\n{be}\n{body}\n")),
                                        Err(why) => {
                                            skip.get_or_insert(why);
                                            None
                                        }
                                    },
                                    _ => Some(format!("vcl {syntax};\n{body}\n")),
                                },
                            };
                            if skip.is_none() {
                                if let Some(src) = &source {
                                    if let Some(m) = imported_modules(src).first() {
                                        skip = Some(format!("needs module {m}"));
                                    }
                                }
                            }
                            let id = format!("{file}:{}", cmd.line);
                            if skip.is_none() {
                                if let Some((_, why)) = NOT_VCC.iter().find(|(nid, _)| *nid == id) {
                                    skip = Some((*why).to_string());
                                }
                            }
                            if skip.is_none() && p.allow_inline_c {
                                if let Some(src) = &source {
                                    let toks = lacquer_vcl::token::lex(0, src.as_bytes()).unwrap_or_default();
                                    if toks.iter().any(|t| t.tok == lacquer_vcl::token::Tok::CSrc) {
                                        skip = Some("uses Inline-C: Lacquer has no C compiler step, by design".into());
                                    }
                                }
                            }
                            if skip.is_none() {
                                if let Some(f) = &needs_feature {
                                    skip = Some(format!("needs feature {f}"));
                                }
                            }
                            if skip.is_none() && !p.labels.is_empty() {
                                if let Some(src) = &source {
                                    if vcl_code_only(src).contains("vcl(") {
                                        skip = Some("needs VCL labels made by vcl.label".into());
                                    }
                                }
                            }
                            if skip.is_none() {
                                if let Some(src) = &source {
                                    let code = vcl_code_only(src);
                                    if let Some(st) =
                                        p.storages.iter().find(|st| code.contains(&format!("storage.{st}")))
                                    {
                                        skip = Some(format!("needs storage {st} made by varnishd -s"));
                                    }
                                }
                            }
                            if skip.is_none() && p.vcl_path.is_some() {
                                if let Some(src) = &source {
                                    if has_vcl_path_include(src) {
                                        skip = Some("needs param vcl_path".into());
                                    }
                                }
                            }
                            if skip.is_none() && !p.unsafe_path {
                                skip = Some("needs param vcc_unsafe_path=off".into());
                            }
                            if skip.is_none() && !p.other.is_empty() {
                                skip = Some(format!("needs param {}", p.other.join(" ")));
                            }
                            cases.push(Case {
                                id,
                                file: file.to_string(),
                                kind,
                                source,
                                message,
                                params: p.clone(),
                                skip,
                            });
                        }
                        "-expect" => i += 4,
                        "-jail" | "-proto" | "-vsc" | "-expectexit" => i += 2,
                        "-start" => {
                            let port = fake_port(&vname, 31000);
                            for (k, v) in [
                                ("addr", LOCALHOST.to_string()),
                                ("port", port.clone()),
                                ("sock", format!("{LOCALHOST} {port}")),
                            ] {
                                env.defined.insert(format!("{vname}_{k}"), v);
                            }
                            i += 1;
                        }
                        _ => i += 1,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(cases)
}

/// `param.set vcc_xxx VALUE` and `vcl.label NAME VCL` sent over the CLI.
fn cli_param(p: &mut Params, cli: &str) {
    let words: Vec<&str> = cli.split_whitespace().collect();
    if words.len() >= 3 && words[0] == "param.set" {
        p.set(words[1], words[2]);
    }
    if words.len() >= 3 && words[0] == "vcl.label" {
        p.labels.push(words[1].to_string());
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    match std::env::var_os("LACQUER_VTC_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vtc/varnish-7.1.1/tests"),
    }
}

fn list_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/vcl-corpus.txt")
}

fn extract_all(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "vtc"))
        .collect();
    files.sort();
    let testdir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string();
    let mut cases = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        match extract_file(&name, &text, &testdir) {
            Ok(mut c) => cases.append(&mut c),
            Err(e) => panic!("{name}: cannot tokenize: {e}"),
        }
    }
    cases
}

fn dump(cases: &[Case], out: &Path) {
    fs::create_dir_all(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let mut n = 0;
    for c in cases {
        let Some(src) = &c.source else { continue };
        fs::write(out.join(format!("{}.vcl", c.id)), src).unwrap();
        let mut e = String::new();
        let _ = writeln!(e, "kind: {}", c.kind.name());
        let expect = if c.kind == Kind::ErrVcl { "fails" } else { "compiles" };
        let _ = writeln!(e, "expect: {expect}");
        let _ = writeln!(e, "params: {}", c.params.varnishd_args());
        if let Some(s) = &c.skip {
            let _ = writeln!(e, "skip: {s}");
        }
        e.push('\n');
        if let Some(m) = &c.message {
            e.push_str(m);
        }
        fs::write(out.join(format!("{}.expect", c.id)), e).unwrap();
        n += 1;
    }
    eprintln!("dumped {n} of {} cases into {}", cases.len(), out.display());
}

enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

fn run_case(c: &Case) -> Verdict {
    if let Some(why) = &c.skip {
        return Verdict::Skip(why.clone());
    }
    let Some(src) = &c.source else {
        return Verdict::Skip("no source".into());
    };
    let opts = Options { err_unref: c.params.err_unref, allow_inline_c: c.params.allow_inline_c, ..Options::default() };
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        compile_str("<vcl.inline>", src, &opts).map(|_| ()).map_err(|e| e.to_string())
    }));
    match (c.kind, result) {
        (_, Err(_)) => Verdict::Fail("compiler panicked".into()),
        (Kind::ErrVcl, Ok(Ok(()))) => Verdict::Fail("compiled, expected an error".into()),
        (Kind::ErrVcl, Ok(Err(text))) => {
            let want = c.message.as_deref().unwrap_or("");
            // varnishtest searches the whole CLI reply, VCC's message framed
            // as varnishd frames it (some -errvcl strings start with the
            // newline that ends "Message from VCC-compiler:").
            let nl = if text.ends_with('\n') { "" } else { "\n" };
            let reply = format!(
                "Message from VCC-compiler:\n{text}{nl}\
                 Running VCC-compiler failed, exited with 2\n\
                 VCL compilation failed"
            );
            if reply.contains(want) {
                Verdict::Pass
            } else {
                Verdict::Fail(format!("error {:?} does not contain {want:?}", first_line(&text)))
            }
        }
        (_, Ok(Ok(()))) => Verdict::Pass,
        (_, Ok(Err(text))) => Verdict::Fail(format!("rejected: {}", first_line(&text))),
    }
}

/// Ids listed in vcl-corpus.txt, and its leading comment block.
fn read_list(path: &Path) -> (Vec<String>, String) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut header = String::new();
    let mut in_header = true;
    let mut ids = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if in_header && (t.starts_with('#') || t.is_empty()) {
            header.push_str(line);
            header.push('\n');
            continue;
        }
        in_header = false;
        let id = t.split('#').next().unwrap_or("").trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
    }
    (ids, header)
}

#[test]
fn vtc_corpus() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        eprintln!("NOTICE: {} is absent; the Varnish VTC corpus is not checked", dir.display());
        return;
    }
    let cases = extract_all(&dir);
    assert!(!cases.is_empty(), "no cases extracted from {}", dir.display());

    if let Some(out) = std::env::var_os("LACQUER_DUMP_CORPUS") {
        dump(&cases, Path::new(&out));
        return;
    }

    let verbose = std::env::var_os("LACQUER_CORPUS_VERBOSE").is_some();
    // letter -> [passed, failed, skipped]
    let mut by_letter: BTreeMap<char, [usize; 3]> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
    let mut passing: BTreeSet<&str> = BTreeSet::new();
    for c in &cases {
        let v = run_case(c);
        let slot = match &v {
            Verdict::Pass => {
                passing.insert(c.id.as_str());
                0
            }
            Verdict::Fail(_) => 1,
            Verdict::Skip(why) => {
                *skip_reasons.entry(why.clone()).or_default() += 1;
                2
            }
        };
        let letter = c.file.chars().next().unwrap_or('?');
        by_letter.entry(letter).or_default()[slot] += 1;
        by_kind.entry(c.kind.name()).or_default()[slot] += 1;
        if verbose {
            match &v {
                Verdict::Fail(why) => eprintln!("FAIL {}: {why}", c.id),
                Verdict::Skip(why) => eprintln!("skip {}: {why}", c.id),
                Verdict::Pass => {}
            }
        }
        verdicts.insert(c.id.as_str(), v);
    }

    let mut summary = String::new();
    let _ = writeln!(summary, "VTC corpus: {} cases from {}", cases.len(), dir.display());
    let _ = writeln!(summary, "  {:<12} {:>7} {:>7} {:>7}", "", "passed", "failed", "skipped");
    for (k, [p, f, s]) in &by_kind {
        let _ = writeln!(summary, "  {k:<12} {p:>7} {f:>7} {s:>7}");
    }
    for (l, [p, f, s]) in &by_letter {
        let _ = writeln!(summary, "  {:<12} {p:>7} {f:>7} {s:>7}", format!("{l}*.vtc"));
    }
    let [p, f, s] = by_kind.values().fold([0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
    let _ = writeln!(summary, "  {:<12} {p:>7} {f:>7} {s:>7}", "total");
    let _ = writeln!(summary, "  skipped because:");
    for (why, n) in &skip_reasons {
        let _ = writeln!(summary, "    {n:>4}  {why}");
    }
    eprint!("{summary}");

    let list = list_path();
    let (listed, header) = read_list(&list);

    if std::env::var("LACQUER_BLESS").is_ok_and(|v| v == "1") {
        let header = if header.trim().is_empty() {
            "# VTC corpus cases (FILE:LINE of the varnish command) that lacquer-vcl\n\
             # passes; crates/lacquer-vcl/tests/vtc_corpus.rs fails when one of them\n\
             # stops passing. Regenerate with LACQUER_BLESS=1 cargo test --test vtc_corpus.\n"
                .to_string()
        } else {
            header
        };
        let mut text = header;
        // keep the corpus order (file name, then line)
        for c in &cases {
            if passing.contains(c.id.as_str()) {
                text.push_str(&c.id);
                text.push('\n');
            }
        }
        fs::write(&list, text).unwrap_or_else(|e| panic!("{}: {e}", list.display()));
        eprintln!("blessed {} passing ids into {}", passing.len(), list.display());
        return;
    }

    let mut regressions = Vec::new();
    for id in &listed {
        match verdicts.get(id.as_str()) {
            Some(Verdict::Pass) => {}
            Some(Verdict::Fail(why)) => regressions.push(format!("{id}: {why}")),
            Some(Verdict::Skip(why)) => regressions.push(format!("{id}: now skipped ({why})")),
            None => regressions.push(format!("{id}: no such case")),
        }
    }
    let newly: Vec<&&str> = passing.iter().filter(|id| !listed.iter().any(|l| l == **id)).collect();
    if !newly.is_empty() {
        eprintln!("{} passing cases are not in {} yet (LACQUER_BLESS=1 to add them)", newly.len(), list.display());
    }
    if !regressions.is_empty() {
        for r in &regressions {
            eprintln!("REGRESSION {r}");
        }
        let ids: Vec<&str> = regressions.iter().map(|r| r.split_once(": ").map_or(r.as_str(), |(id, _)| id)).collect();
        let shown = ids.iter().take(20).copied().collect::<Vec<_>>().join(", ");
        let more = ids.len().saturating_sub(20);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        panic!("{} listed corpus cases do not pass: {shown}{more}", regressions.len());
    }
}
