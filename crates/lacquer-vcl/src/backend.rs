//! Backend and probe declarations (VCC's `vcc_backend.c`).
//!
//! Host names are resolved at compile time, as VCC does: a backend whose
//! `.host` does not resolve is a compile error.

use std::net::ToSocketAddrs;

use lacquer_defs::VclType;

use crate::compile::{Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::source::Span;
use crate::symb::{Sym, SymKind};
use crate::token::{Op, Tok};

const BACKEND_FIELDS: &[&str] = &[
    "host",
    "port",
    "path",
    "host_header",
    "connect_timeout",
    "first_byte_timeout",
    "between_bytes_timeout",
    "probe",
    "max_connections",
    "proxy_header",
    "preamble",
];

const PROBE_FIELDS: &[&str] =
    &["url", "request", "expected_response", "timeout", "interval", "window", "threshold", "initial"];

impl Vcc<'_> {
    /// `.field =` — returns the field name; VCC's `vcc_IsField`.
    fn field(&mut self, allowed: &[&str], seen: &mut Vec<(String, Span)>) -> R<String> {
        self.expect_op(Op::Dot, 95)?;
        self.next();
        self.expect_tok(Tok::Id, 96)?;
        self.split_at_dot();
        let t = self.t().span;
        let name = self.text(t);
        self.next();
        self.skip(Op::Assign, 100)?;
        if !allowed.contains(&name.as_str()) {
            let d = Diag::new(vec![Piece::Text(format!("Unknown field: '{}' at\n", name)), Piece::Where(t)]);
            return self.fail(d);
        }
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let first = *first;
            let d = Diag::new(vec![
                Piece::Text(format!("Field '{}' redefined at:\n", name)),
                Piece::Where(t),
                Piece::text("\nFirst defined at:\n"),
                Piece::Where(first),
            ]);
            return self.fail(d);
        }
        seen.push((name.clone(), t));
        Ok(name)
    }

    fn cstr(&mut self, line: u32) -> R<(String, Span)> {
        self.expect_tok(Tok::CStr, line)?;
        let t = self.t().clone();
        self.next();
        Ok((String::from_utf8_lossy(&t.dec).into_owned(), t.span))
    }

    /// A duration constant: a number and a unit.
    pub(crate) fn duration_const(&mut self) -> R<f64> {
        if !matches!(self.t().tok, Tok::CNum | Tok::FNum) {
            return self.expect_err("CNUM", 338);
        }
        let v: f64 = self.tok_text().parse().unwrap_or(0.0);
        self.next();
        self.expect_tok(Tok::Id, 355)?;
        self.split_at_dot();
        let u = self.tok_text();
        let Some(scale) = crate::conv::duration_unit(&u) else {
            let msg = format!(
                "Unknown duration unit '{}'\nLegal duration units are 'ms', 's', 'm', 'h', 'd', 'w' and 'y'\n",
                u
            );
            return self.fail_here(&msg);
        };
        self.next();
        Ok(v * scale)
    }

    /// An unsigned integer constant.
    fn uint_const(&mut self) -> R<(u64, Span)> {
        self.expect_tok(Tok::CNum, 319)?;
        let t = self.t().span;
        let v = self.tok_text().parse().unwrap_or(u64::MAX);
        self.next();
        Ok((v, t))
    }

    /// `backend name { ... }` or `backend name none;`
    pub(crate) fn parse_backend(&mut self) -> R<()> {
        let kw = self.t().span;
        self.next();
        let nt = self.expect_vid("backend")?;
        let name = self.text(nt);
        let mut id = self.backends.len() as BackendId;
        if name == "default" {
            // Not a symbol of its own in VCC: the default director. Until
            // one is declared, the first backend is the default and need not
            // be used.
            if self.default_backend {
                return self.fail(Diag::at("Only one default director possible.", kw));
            }
            self.default_backend = true;
            if let Some(first) = self.first_backend.take() {
                self.objects[first].3 -= 1;
            }
        } else if let Some(SymKind::Backend(fid)) = self.handle_symbol(SymKind::Backend(id), VclType::Backend, nt)? {
            // Referenced before: fill in the placeholder.
            id = fid;
        } else {
            let noref = !self.default_backend && self.first_declared.is_none();
            if noref {
                self.first_backend = Some(self.objects.len());
            }
            self.objects.push(("backend", name.clone(), nt, u32::from(noref)));
        }
        if name != "default" {
            self.first_declared.get_or_insert(id);
        }
        self.next();
        let def = if self.is_id("none") || self.is_id("None") {
            self.next();
            self.skip(Op::Semi, 354).map(|()| BackendDef { name, none: true, ..Default::default() })
        } else {
            self.host_def(name, nt)
        };
        match def {
            Ok(def) => {
                self.store_backend(id, def);
                Ok(())
            }
            Err(e) => {
                if let Some(d) = self.diags.last_mut() {
                    d.push(Piece::text("\nIn backend specification starting at:\n"));
                    d.push(Piece::Where(kw));
                }
                Err(e)
            }
        }
    }

    /// Puts a backend in its place: a new one, or one referenced before.
    fn store_backend(&mut self, id: BackendId, def: BackendDef) {
        match self.backends.get_mut(id as usize) {
            Some(b) => *b = def,
            None => self.backends.push(def),
        }
    }

    fn host_def(&mut self, name: String, nt: Span) -> R<BackendDef> {
        let mut b = BackendDef { name: name.clone(), ..Default::default() };
        let mut seen = Vec::new();
        let mut host: Option<Span> = None;
        let mut path: Option<Span> = None;
        // The first `.host` or `.path` field name, for VCC's redefinition check.
        let mut t_addr: Option<Span> = None;
        self.skip(Op::LBrace, 361)?;
        // Varnish 2's `set .host = ...` gets a hint.
        if self.is_id("set") {
            let t = self.t().clone();
            let d = Diag::new(vec![
                Piece::Text(format!(
                    "NB: Backend Syntax has changed:\nRemove \"set\" and \"backend\" in front of backend fields.\n{} at ",
                    self.tok_desc(&t)
                )),
                Piece::Where(t.span),
            ]);
            return self.fail(d);
        }
        while !self.t().is(Op::RBrace) {
            let f = self.field(BACKEND_FIELDS, &mut seen)?;
            let fsp = seen.last().map(|s| s.1).unwrap_or(nt);
            match f.as_str() {
                "host" | "path" => {
                    if let Some(prev) = t_addr {
                        let d = Diag::new(vec![
                            Piece::text("Address redefinition at:\n"),
                            Piece::Where(fsp),
                            Piece::text("Previous definition:\n"),
                            Piece::Where(prev),
                        ]);
                        return self.fail(d);
                    }
                    t_addr = Some(fsp);
                    if f == "host" {
                        let (v, sp) = self.cstr(407)?;
                        host = Some(sp);
                        b.host = Some(v);
                        self.skip(Op::Semi, 411)?;
                    } else {
                        if self.syntax < 41 {
                            let t = self.t().clone();
                            let d = Diag::new(vec![
                                Piece::Text(format!(
                                    "Unix socket backends only supported in VCL4.1 and higher.\n{} at ",
                                    self.tok_desc(&t)
                                )),
                                Piece::Where(self.head(&t)),
                            ]);
                            return self.fail(d);
                        }
                        let (v, sp) = self.cstr(431)?;
                        path = Some(sp);
                        b.path = Some(v);
                        self.skip(Op::Semi, 435)?;
                    }
                }
                "port" => {
                    b.port = Some(self.cstr(413)?.0);
                    self.skip(Op::Semi, 417)?;
                }
                "host_header" => {
                    b.host_header = Some(self.cstr(437)?.0);
                    self.skip(Op::Semi, 441)?;
                }
                "connect_timeout" | "first_byte_timeout" | "between_bytes_timeout" => {
                    let d = self.duration_const()?;
                    let line = match f.as_str() {
                        "connect_timeout" => {
                            b.connect_timeout = Some(d);
                            447
                        }
                        "first_byte_timeout" => {
                            b.first_byte_timeout = Some(d);
                            453
                        }
                        _ => {
                            b.between_bytes_timeout = Some(d);
                            459
                        }
                    };
                    self.skip(Op::Semi, line)?;
                }
                "max_connections" => {
                    let (v, _) = self.uint_const()?;
                    b.max_connections = Some(v.min(u32::MAX as u64) as u32);
                    self.skip(Op::Semi, 463)?;
                }
                "preamble" => {
                    if self.t().tok != Tok::CBlob {
                        return self.expect_err("CBLOB", 503);
                    }
                    let text = self.tok_text();
                    b.preamble = Some(crate::conv::base64_decode(text.trim_matches(':')));
                    self.next();
                    self.skip(Op::Semi, 506)?;
                }
                "proxy_header" => {
                    let (v, sp) = self.uint_const()?;
                    if v != 1 && v != 2 {
                        return self.fail(Diag::at(".proxy_header must be 1 or 2", sp));
                    }
                    b.proxy_header = Some(v as u8);
                    self.skip(Op::Semi, 476)?;
                }
                "probe" => {
                    if self.t().is(Op::LBrace) {
                        let pname = format!("vgc_probe__{}", self.probes.len());
                        let p = self.probe_spec(pname)?;
                        b.probe = Some(self.probes.len() as ProbeId);
                        self.probes.push(p);
                    } else if self.is_id("default") {
                        // The probe named `default`, which is no symbol.
                        self.next();
                        let Some(pid) = self.default_probe else {
                            let t = self.t().clone();
                            let d = Diag::new(vec![
                                Piece::Text(format!("No default probe defined\n{} at\n", self.tok_desc(&t))),
                                Piece::Where(self.head(&t)),
                            ]);
                            return self.fail(d);
                        };
                        b.probe = Some(pid);
                        self.skip(Op::Semi, 494)?;
                    } else if self.t().tok == Tok::Id {
                        let (pn, plast) = self.joined_name();
                        let psp = self.t().span;
                        match self.syms.get(&pn).cloned() {
                            Some(Sym { kind: SymKind::Probe(pid), .. }) => {
                                b.probe = Some(pid);
                                self.count_probe(&pn);
                            }
                            Some(sym) if self.other_kinds_visible(&pn) => {
                                let d = self.wrong_type(&pn, &sym, "probe", psp);
                                return self.fail(d);
                            }
                            _ => {
                                let d = Diag::new(vec![
                                    Piece::Text(format!("Symbol not found: '{}'\nAt: ", pn)),
                                    Piece::Where2(psp, plast),
                                ]);
                                return self.fail(d);
                            }
                        }
                        self.next();
                        self.skip(Op::Semi, 494)?;
                    } else {
                        let t = self.t().clone();
                        let d = Diag::new(vec![
                            Piece::Text(format!("Expected '{{' or name of probe, got {} at\n", self.tok_desc(&t))),
                            Piece::Where(self.head(&t)),
                        ]);
                        return self.fail(d);
                    }
                }
                _ => unreachable!("field() only returns listed fields"),
            }
        }
        if b.probe.is_none() {
            b.probe = self.default_probe;
        }
        if host.is_none() && path.is_none() {
            return self.fail(Diag::at("Expected .host or .path.", nt));
        }
        if let (Some(psp), Some(pv)) = (path, b.path.as_deref()) {
            // VCC checks the path when it compiles; a missing file is only
            // a warning there.
            use std::os::unix::fs::FileTypeExt;
            let why = if !pv.starts_with('/') {
                Some("Backend path: Must be an absolute path:")
            } else {
                match std::fs::metadata(pv) {
                    Ok(m) if !m.file_type().is_socket() => Some("Backend path: Not a socket:"),
                    Ok(_) => None,
                    Err(e) => {
                        // A warning: VCC prints it with any error after it.
                        let msg = format!("Backend path: Cannot stat: {}", crate::compile::io_reason(&e));
                        self.diags.push(Diag::at(msg, psp).text("(That was just a warning)\n"));
                        None
                    }
                }
            };
            if let Some(why) = why {
                return self.fail(Diag::at(why, psp));
            }
        }
        if let (Some(hsp), Some(h)) = (host, b.host.clone()) {
            let port = b.port.clone().unwrap_or_else(|| "80".into());
            match split_host_port(&h, &port).and_then(|(name, port)| resolve(name, port)) {
                Ok(addrs) => b.addrs = addrs,
                Err(reason) => {
                    let d = Diag::new(vec![
                        Piece::Text(format!(
                            "Backend host '\"{}\"' could not be resolved to an IP address:\n\t{}\n(Sorry if that error message is gibberish.)\n",
                            h, reason
                        )),
                        Piece::Where(hsp),
                    ]);
                    return self.fail(d);
                }
            }
        }
        self.skip(Op::RBrace, 640)?;
        Ok(b)
    }

    /// VCC's `vcc_Redef` for a probe's `.url` and `.request`: only one of them.
    fn probe_redef(&mut self, t_did: &mut Option<Span>, seen: &[(String, Span)]) -> R<()> {
        let Some(&(_, field)) = seen.last() else {
            return Ok(());
        };
        if let Some(prev) = *t_did {
            let d = Diag::new(vec![
                Piece::text("Probe request redefinition at:\n"),
                Piece::Where(field),
                Piece::text("Previous definition:\n"),
                Piece::Where(prev),
            ]);
            return self.fail(d);
        }
        *t_did = Some(field);
        Ok(())
    }

    fn count_probe(&mut self, name: &str) {
        for o in self.objects.iter_mut().filter(|o| o.0 == "probe" && o.1 == name) {
            o.3 += 1;
        }
    }

    /// `probe name { ... }`
    pub(crate) fn parse_probe_decl(&mut self) -> R<()> {
        self.next();
        let nt = self.expect_vid("backend probe")?;
        let name = self.text(nt);
        let id = self.probes.len() as ProbeId;
        // The probe named `default` is no symbol in VCC: it is the probe of
        // every backend declared after it without one of its own.
        let is_default = name == "default";
        if !is_default {
            self.handle_symbol(SymKind::Probe(id), VclType::Probe, nt)?;
        }
        self.next();
        let p = self.probe_spec(name.clone())?;
        self.probes.push(p);
        if is_default {
            self.default_probe = Some(id);
        } else {
            self.objects.push(("probe", name, nt, 0));
        }
        Ok(())
    }

    /// The `{ ... }` of a probe.
    fn probe_spec(&mut self, name: String) -> R<ProbeDef> {
        let mut p = ProbeDef { name, ..Default::default() };
        let mut seen = Vec::new();
        let mut t_window = None;
        let mut t_threshold = None;
        // The first `.url` or `.request` field name.
        let mut t_did = None;
        self.skip(Op::LBrace, 174)?;
        while !self.t().is(Op::RBrace) {
            let f = self.field(PROBE_FIELDS, &mut seen)?;
            match f.as_str() {
                "url" => {
                    self.probe_redef(&mut t_did, &seen)?;
                    p.url = Some(self.cstr(198)?.0);
                }
                "request" => {
                    self.probe_redef(&mut t_did, &seen)?;
                    self.expect_tok(Tok::CStr, 206)?;
                    let mut lines = Vec::new();
                    while self.t().tok == Tok::CStr {
                        lines.push(String::from_utf8_lossy(&self.t().dec).into_owned());
                        self.next();
                    }
                    p.request = Some(lines);
                }
                "timeout" => p.timeout = self.duration_const()?,
                "interval" => p.interval = self.duration_const()?,
                "window" => {
                    let (v, sp) = self.uint_const()?;
                    p.window = v.min(u32::MAX as u64) as u32;
                    t_window = Some(sp);
                }
                "threshold" => {
                    let (v, sp) = self.uint_const()?;
                    p.threshold = v.min(u32::MAX as u64) as u32;
                    t_threshold = Some(sp);
                }
                "initial" => {
                    let (v, _) = self.uint_const()?;
                    p.initial = Some(v.min(u32::MAX as u64) as u32);
                }
                "expected_response" => {
                    if self.t().tok != Tok::CNum {
                        // VCC reports the missing number and then the range
                        // check on the same token.
                        let _ = self.expect_tok(Tok::CNum, 319);
                        let sp = self.head(self.t());
                        return self.fail(Diag::at(
                            "Must specify .expected_response with exactly three digits (100 <= x <= 999)",
                            sp,
                        ));
                    }
                    let (v, _) = self.uint_const()?;
                    if !(100..=999).contains(&v) {
                        // VCC marks the token after the number.
                        let sp = self.head(self.t());
                        return self.fail(Diag::at(
                            "Must specify .expected_response with exactly three digits (100 <= x <= 999)",
                            sp,
                        ));
                    }
                    p.expected_response = v as u16;
                }
                _ => unreachable!("field() only returns listed fields"),
            }
            self.skip(Op::Semi, 255)?;
        }
        if t_threshold.is_some() || t_window.is_some() {
            match (t_threshold, t_window) {
                (None, Some(w)) => return self.fail(Diag::at("Must specify .threshold with .window", w)),
                (Some(t), None) => {
                    if p.threshold > 64 {
                        return self.fail(Diag::at("Threshold must be 64 or less.", t));
                    }
                    p.window = p.threshold + 1;
                }
                (_, Some(w)) if p.window > 64 => return self.fail(Diag::at("Window must be 64 or less.", w)),
                _ => {}
            }
            if p.threshold > p.window {
                let mut d = Diag::at("Threshold can not be greater than window.", t_threshold.unwrap_or_default());
                if let Some(w) = t_window {
                    d.push(Piece::Where(w));
                }
                return self.fail(d);
            }
        }
        self.skip(Op::RBrace, 800)?;
        Ok(p)
    }
}

/// Splits a `.host` that carries its own port, as Varnish's resolver does:
/// `"name:port"`, `"name port"`, `"[v6]:port"` and `"v6 port"`; a bare
/// IPv6 address has no port.
fn split_host_port<'a>(host: &'a str, port: &'a str) -> Result<(&'a str, &'a str), String> {
    let given = |p: &'a str| {
        let p = p.trim_start_matches(' ');
        if p.is_empty() {
            port
        } else {
            p
        }
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, tail)) = rest.split_once(']') else {
            return Err("IPv6 address lacks ']'".into());
        };
        return match tail.strip_prefix([':', ' ']) {
            Some(p) => Ok((addr, given(p))),
            None if tail.is_empty() => Ok((addr, port)),
            None => Err("IPv6 address has wrong port separator".into()),
        };
    }
    if let Some((name, p)) = host.split_once(' ') {
        return Ok((name, given(p)));
    }
    Ok(match host.split_once(':') {
        Some((name, p)) if !p.contains(':') => (name, given(p)),
        _ => (host, port),
    })
}

/// Resolves a host and port as `getaddrinfo` does.
pub(crate) fn resolve(host: &str, port: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    // An IPv6 address may be written in brackets (`[::1]`, `[::1]:8080`),
    // as in a URL; the resolver wants it bare.
    let (host, port) = match host.strip_prefix('[').and_then(|h| h.split_once(']')) {
        Some((addr, "")) => (addr, port),
        Some((addr, rest)) => match rest.strip_prefix(':').or_else(|| rest.strip_prefix(' ')) {
            Some(p) if !p.is_empty() => (addr, p),
            _ => return Err("Name or service not known".into()),
        },
        // Otherwise `host:port` (one colon: more is a bare IPv6 address)
        // or `host port`, as Varnish's resolver reads them.
        None => match host.split_once(' ').or_else(|| host.split_once(':').filter(|(_, p)| !p.contains(':'))) {
            Some((h, p)) if !h.is_empty() && !p.is_empty() => (h, p.trim_start()),
            _ => (host, port),
        },
    };
    let port_num: u16 = match port.parse() {
        Ok(p) => p,
        Err(_) => match port {
            "http" => 80,
            "https" => 443,
            _ => return Err("Servname not supported for ai_socktype".into()),
        },
    };
    match (host, port_num).to_socket_addrs() {
        Ok(it) => {
            let v: Vec<_> = it.collect();
            if v.is_empty() {
                Err("Name or service not known".into())
            } else {
                Ok(v)
            }
        }
        Err(_) => Err("Name or service not known".into()),
    }
}
