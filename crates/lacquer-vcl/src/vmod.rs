//! Imported modules in VCL (VCC's `vcc_vmod.c` and the call half of
//! `vcc_expr.c`): `import`, calls of module functions and object methods,
//! and `new`.

use lacquer_defs::VclType;

use crate::compile::{Stop, Vcc, R};
use crate::diag::{Diag, Piece};
use crate::module::{ArgSpec, ArgType, DefaultValue, FuncSpec, ModuleSpec, ResolveError};
use crate::program::*;
use crate::source::Span;
use crate::symb::{Sym, SymKind};
use crate::token::{Op, Tok};

impl Vcc<'_> {
    /// Resolves an import's spec, checks its ABI version and enters its
    /// functions and object classes as `alias.member` symbols.
    pub(crate) fn import_module(&mut self, idx: u32, name: &str, alias: &str, path: Option<&str>, at: Span) -> R<()> {
        let Some(resolver) = self.opts.modules.clone() else {
            return Ok(());
        };
        let spec = match resolver.resolve(name, path) {
            Ok(s) => s,
            Err(ResolveError::NotFound) => {
                return self.fail(Diag::at(format!("Could not find VMOD {}", name), at));
            }
            Err(ResolveError::Unusable { file, reason }) => {
                let d = Diag::new(vec![
                    Piece::Text(format!("Could not open VMOD {}\n\tFile name: {}\n\t{}\n", name, file, reason)),
                    Piece::Where(at),
                ]);
                return self.fail(d);
            }
        };
        if let Err(e) =
            lacquer_abi::check_version(lacquer_abi::DESCRIPTOR_MAGIC, spec.abi.0, spec.abi.1, spec.level as u32)
        {
            let d = Diag::new(vec![
                Piece::Text(format!(
                    "Incompatible VMOD {}\n\tFile name: {}\n\t{}\n",
                    name,
                    path.unwrap_or("(built in)"),
                    e
                )),
                Piece::Where(at),
            ]);
            return self.fail(d);
        }
        if spec.name != name {
            let d = Diag::new(vec![
                Piece::Text(format!("Wrong file for VMOD {}\n\tContains: {}\n", name, spec.name)),
                Piece::Where(at),
            ]);
            return self.fail(d);
        }
        self.imports[idx as usize].spec = Some(spec);
        self.enter_module_symbols(idx, alias, at);
        Ok(())
    }

    /// Enters the functions and object classes of import `idx` as
    /// `alias.member` symbols.
    pub(crate) fn enter_module_symbols(&mut self, idx: u32, alias: &str, at: Span) {
        let Some(spec) = self.imports[idx as usize].spec.as_ref() else { return };
        let mut syms = Vec::new();
        for (i, f) in spec.functions.iter().enumerate() {
            if !spec.callable(i) {
                continue;
            }
            let sym = Sym { kind: SymKind::ModFunc(idx, i as u32), def: Some(at), ty: f.ret };
            syms.push((format!("{}.{}", alias, f.name), sym));
        }
        for (i, o) in spec.objects.iter().enumerate() {
            let sym = Sym { kind: SymKind::ModObject(idx, i as u32), def: Some(at), ty: VclType::Instance };
            syms.push((format!("{}.{}", alias, o.name), sym));
        }
        for (n, sym) in syms {
            self.syms.insert(n, sym);
        }
    }

    fn spec(&self, module: u32) -> &ModuleSpec {
        self.imports[module as usize].spec.as_ref().expect("symbols exist only for resolved modules")
    }

    /// A call of a module function whose name token was `t1`; the current
    /// token is just after the name.
    pub(crate) fn call_function(&mut self, module: u32, func: u32, t1: usize) -> R<Expr> {
        let f = self.spec(module).functions[func as usize].clone();
        let target = CallTarget::Function { module, func };
        self.call(&f, target, t1)
    }

    /// A call of an object's method.
    pub(crate) fn call_method(&mut self, instance: u32, method: u32, t1: usize) -> R<Expr> {
        let inst = &self.instances[instance as usize];
        let f = self.spec(inst.module).objects[inst.object as usize].methods[method as usize].clone();
        self.call(&f, CallTarget::Method { instance, method }, t1)
    }

    fn call(&mut self, f: &FuncSpec, target: CallTarget, t1: usize) -> R<Expr> {
        let name_sp = self.toks[t1].span;
        self.add_use("Not available", f.restrict, name_sp, name_sp);
        let args = match self.call_args(f) {
            Ok(a) => a,
            Err(ArgError::Bare) => return Err(Stop),
            Err(ArgError::InCall) => {
                let last = self.toks[self.i.saturating_sub(1)].span;
                if let Some(d) = self.diags.last_mut() {
                    d.push(Piece::text("While compiling function call:\n\n"));
                    // VCC has no start token for a constructor's call.
                    if !matches!(target, CallTarget::Constructor { .. }) {
                        d.push(Piece::Where2(name_sp, last));
                    }
                }
                return Err(Stop);
            }
        };
        let id = self.calls.len() as CallId;
        self.calls.push(CallSite { target, args, ret: f.ret });
        Ok(Expr::Call(id, f.ret))
    }

    /// `( positional..., name = value... )`, checked against the spec.
    fn call_args(&mut self, f: &FuncSpec) -> Result<Vec<Option<Expr>>, ArgError> {
        self.skip(Op::LParen, 532)?;
        let n = f.args.len();
        let mut got: Vec<Option<Expr>> = vec![None; n];
        let mut given = vec![false; n];
        let value_args: Vec<usize> = (0..n).filter(|&i| !matches!(f.args[i].ty, ArgType::Priv(_))).collect();
        let mut pos = 0;
        let mut named = false;
        while !self.t().is(Op::RParen) {
            if self.t().tok == Tok::Id && self.toks.get(self.i + 1).is_some_and(|t| t.is(Op::Assign)) {
                named = true;
            }
            let slot = if named {
                let nt = self.t().span;
                let an = self.tok_text();
                let Some(&slot) = value_args.iter().find(|&&i| f.args[i].name.as_deref() == Some(&an)) else {
                    let d = Diag::at(format!("Unknown argument '{}'", an), nt);
                    return Err(self.stop(d).into());
                };
                if given[slot] {
                    let d = Diag::at(format!("Argument '{}' already used", an), nt);
                    return Err(self.stop(d).into());
                }
                self.next();
                self.next();
                slot
            } else {
                let Some(&slot) = value_args.get(pos) else {
                    return self.expect_err("')'", 670).map_err(ArgError::from);
                };
                pos += 1;
                slot
            };
            given[slot] = true;
            got[slot] = Some(self.call_arg(&f.args[slot])?);
            if self.t().is(Op::Comma) {
                self.next();
            } else {
                break;
            }
        }
        for &i in &value_args {
            if given[i] {
                continue;
            }
            let a = &f.args[i];
            match (&a.default, &a.ty) {
                (Some(d), ArgType::Value(t)) => got[i] = Some(Expr::Const(default_const(d, *t))),
                (Some(DefaultValue::Str(s)), ArgType::Enum(_)) => {
                    got[i] = Some(Expr::Const(Const::Str(s.as_bytes().to_vec())))
                }
                _ if a.optional => {}
                _ => {
                    let msg = format!("Argument '{}' missing", a.name.as_deref().unwrap_or(""));
                    let at = self.t().span;
                    return Err(self.stop(Diag::at(msg, at)).into());
                }
            }
        }
        self.skip(Op::RParen, 690)?;
        Ok(got)
    }

    fn call_arg(&mut self, a: &ArgSpec) -> Result<Expr, ArgError> {
        match &a.ty {
            ArgType::Value(t) => {
                let want = if *t == VclType::Strands { VclType::String } else { *t };
                let e = self.expr(want).map_err(|Stop| {
                    // VCC names the argument it was reading.
                    if let Some(d) = self.diags.last_mut() {
                        let name = a.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
                        d.push(Piece::Text(format!("Expected argument: {}{}\n\n", t.as_str(), name)));
                    }
                    ArgError::InCall
                })?;
                // The parts of a STRANDS stay apart, but for literals side
                // by side, which VCC joins into one.
                Ok(match e {
                    Expr::Concat(parts) if *t == VclType::Strands => {
                        let mut out: Vec<Expr> = Vec::with_capacity(parts.len());
                        for part in parts {
                            match (out.last_mut(), part) {
                                (Some(Expr::Const(Const::Str(a))), Expr::Const(Const::Str(b))) => {
                                    a.extend_from_slice(&b)
                                }
                                (_, part) => out.push(part),
                            }
                        }
                        Expr::Strands(out)
                    }
                    e if *t == VclType::Strands => Expr::Strands(vec![e]),
                    e => e,
                })
            }
            ArgType::Enum(vals) => {
                self.expect_tok(Tok::Id, 610)?;
                let w = self.tok_text();
                if !vals.contains(&w) {
                    let mut msg = String::from("Wrong enum value.  Expected one of:\n");
                    for v in vals {
                        msg.push_str(&format!("\t{}\n", v));
                    }
                    let at = self.t().span;
                    self.stop(Diag::at(msg, at));
                    return Err(ArgError::Bare);
                }
                self.next();
                Ok(Expr::Const(Const::Str(w.into_bytes())))
            }
            ArgType::Regex => {
                // As VCC: only a string literal (or literals joined with
                // `+`), checked as a pattern here; the module gets its text.
                if self.t().tok != Tok::CStr {
                    return self.not_a_regex().map_err(ArgError::from);
                }
                let re = self.regex_here()?;
                let pattern = self.regexes[re as usize].as_str().as_bytes().to_vec();
                Ok(Expr::Const(Const::Str(pattern)))
            }
            ArgType::Priv(_) => unreachable!("private arguments are never written in VCL"),
        }
    }

    /// `new name = module.class(args);`
    pub(crate) fn act_new_instance(&mut self, name_sp: Span) -> R<Stmt> {
        let name = self.text(name_sp);
        if let Some(prev) = self.syms.get(&name) {
            let mut d =
                Diag::new(vec![Piece::Text(format!("Instance '{}' redefined.\n", name)), Piece::Where(name_sp)]);
            if let Some(def) = prev.def {
                d.push(Piece::text("First definition:\n"));
                d.push(Piece::Where(def));
            }
            return self.fail(d);
        }
        let ct = self.t().clone();
        let class = self.text(ct.span);
        let (module, object) = match self.syms.get(&class).map(|s| s.kind.clone()) {
            Some(SymKind::ModObject(m, o)) => (m, o),
            _ => {
                let d = Diag::new(vec![
                    Piece::Text(format!("Symbol not found: '{}'\nAt: ", class)),
                    Piece::Where2(ct.span, ct.span),
                ]);
                return self.fail(d);
            }
        };
        let t1 = self.i;
        self.next();
        let obj = self.spec(module).objects[object as usize].clone();
        let id = self.instances.len() as u32;
        self.instances.push(Instance { name: name.clone(), module, object, ctor: None });
        let Expr::Call(call, _) = self.call(&obj.ctor, CallTarget::Constructor { instance: id }, t1)? else {
            unreachable!("call() makes a call");
        };
        self.instances[id as usize].ctor = Some(call);
        self.syms.insert(name.clone(), Sym { kind: SymKind::Instance(id), def: Some(name_sp), ty: VclType::Instance });
        for (i, m) in obj.methods.iter().enumerate() {
            let sym = Sym { kind: SymKind::InstanceMethod(id, i as u32), def: Some(name_sp), ty: m.ret };
            self.syms.insert(format!("{}.{}", name, m.name), sym);
        }
        Ok(Stmt::New(id))
    }
}

/// How a failed argument list is reported: inside VCC's "While compiling
/// function call" context, or bare (a wrong ENUM word).
enum ArgError {
    InCall,
    Bare,
}

impl From<Stop> for ArgError {
    fn from(_: Stop) -> ArgError {
        ArgError::InCall
    }
}

fn default_const(d: &DefaultValue, t: VclType) -> Const {
    match (d, t) {
        (DefaultValue::Bool(b), _) => Const::Bool(*b),
        (DefaultValue::Num(n), VclType::Int) => Const::Int(*n as i64),
        (DefaultValue::Num(n), VclType::Duration) => Const::Duration(*n),
        (DefaultValue::Num(n), VclType::Bytes) => Const::Bytes(*n),
        (DefaultValue::Num(n), VclType::Time) => Const::Time(*n),
        (DefaultValue::Num(n), _) => Const::Real(*n),
        (DefaultValue::Str(s), _) => Const::Str(s.as_bytes().to_vec()),
    }
}
