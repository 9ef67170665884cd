//! Subroutines and statements (VCC's `vcc_parse.c` and `vcc_action.c`).

use lacquer_defs::{Action, Method, VclType};

use crate::compile::{Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::symb::{Found, SymKind};
use crate::token::{Op, Tok};

impl Vcc<'_> {
    /// `sub name { ... }`. A method may be defined several times (and is,
    /// by the built-in VCL): the bodies run one after the other.
    pub(crate) fn parse_sub(&mut self) -> R<()> {
        self.next();
        let span = self.expect_vid("subroutine")?;
        let nt = self.t().clone();
        let name = self.text(span);
        // The methods and the built-in VCL's own subroutines may be defined
        // again; the bodies run one after the other, the user's first.
        let is_method = Method::from_name(&name).is_some();
        let appends = is_method || builtin_subs().any(|b| b == name);
        if name.starts_with("vcl_") && !appends && self.syms.get(&name).is_none() {
            let mut list: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
            list.sort_unstable();
            let mut d = Diag::new(vec![
                Piece::text("The names 'vcl_*' are reserved for subroutines.\n"),
                Piece::Where(nt.span),
                Piece::text("Valid vcl_* subroutines are:\n"),
            ]);
            // VCC lists the methods, then the built-in VCL's other
            // subroutines in the order it defines them.
            for b in builtin_subs() {
                if !list.contains(&b) {
                    list.push(b);
                }
            }
            for m in list {
                d.push(Piece::Text(format!("\t{}\n", m)));
            }
            return self.fail(d);
        }
        let id = match self.sym_in_version(&name) {
            Some(sym) => match sym.kind {
                SymKind::Sub(id) => {
                    if let (Some(def), false) = (self.procs[id as usize].def, appends) {
                        let d = Diag::new(vec![
                            Piece::Text(format!("Subroutine '{}' redefined\n", name)),
                            Piece::Where(nt.span),
                            Piece::text("Previously defined here:\n"),
                            Piece::Where(def),
                        ]);
                        return self.fail(d);
                    }
                    id
                }
                _ => {
                    let d = self.wrong_type(&name, &sym, "sub", span);
                    return self.fail(d);
                }
            },
            None => self.new_sub(&name),
        };
        if self.procs[id as usize].def.is_none() {
            self.procs[id as usize].def = Some(nt.span);
            self.syms.set_def(&name, nt.span);
        }
        self.next();
        self.cur = Some(id);
        let body = self.compound()?;
        self.cur = None;
        self.subs[id as usize].body.extend(body);
        Ok(())
    }

    /// `{ statements }`
    fn compound(&mut self) -> R<Vec<Stmt>> {
        self.skip(Op::LBrace, 150)?;
        let mut out = Vec::new();
        loop {
            let t = self.t().clone();
            match t.tok {
                Tok::Op(Op::LBrace) => {
                    let inner = self.compound()?;
                    out.extend(inner);
                }
                Tok::Op(Op::RBrace) => {
                    self.next();
                    return Ok(out);
                }
                Tok::CSrc => return self.fail(Diag::at("Inline-C not allowed", t.span)),
                Tok::Eoi => return self.fail_here("End of input while in compound statement"),
                Tok::Id => {
                    let w = self.tok_text();
                    let s = match w.as_str() {
                        "if" => {
                            out.push(self.if_stmt()?);
                            continue;
                        }
                        "set" => {
                            let s = self.act_set()?;
                            self.skip(Op::Semi, 186)?;
                            s
                        }
                        "unset" => self.act_unset()?,
                        "call" => self.act_call()?,
                        "return" if self.leaves() => {
                            self.next();
                            self.next();
                            Stmt::Leave
                        }
                        "return" => {
                            let s = self.act_return()?;
                            self.skip(Op::Semi, 410)?;
                            s
                        }
                        "synthetic" => self.act_fn(
                            Method::Synth.bit() | Method::BackendError.bit(),
                            [421, 430, 431],
                            Stmt::Synthetic,
                        )?,
                        "hash_data" => self.act_fn(Method::Hash.bit(), [241, 247, 248], Stmt::HashData)?,
                        "ban" => self.act_fn(lacquer_defs::Method::ALL_MASK, [220, 229, 230], Stmt::Ban)?,
                        "new" => {
                            let s = self.act_new()?;
                            self.skip(Op::Semi, 186)?;
                            s
                        }
                        _ => self.other_statement()?,
                    };
                    out.push(s);
                }
                _ => return self.fail_here("Expected an action, 'if', '{' or '}'"),
            }
        }
    }

    /// A statement that does not start with a keyword: a function called
    /// for its effect, or an error.
    fn other_statement(&mut self) -> R<Stmt> {
        let t = self.t().clone();
        let name = self.text(t.span);
        match self.syms.lookup_partial_at(&name, self.syntax) {
            None => {
                let note = self.syms.version_note(&name, self.syntax);
                self.diags.push(Diag::new(vec![
                    Piece::Text(format!("Symbol not found: '{}'{}\nAt: ", name, note)),
                    Piece::Where2(t.span, t.span),
                ]));
                self.next();
                self.fail_here("Symbol not found.")
            }
            Some((Found::Sym(s), used))
                if used == name.len() && matches!(s.kind, SymKind::ModFunc(..) | SymKind::InstanceMethod(..)) =>
            {
                let t1 = self.i;
                self.next();
                let e = match s.kind {
                    SymKind::ModFunc(m, f) => self.call_function(m, f, t1)?,
                    SymKind::InstanceMethod(i, m) => self.call_method(i, m, t1)?,
                    _ => unreachable!("matched above"),
                };
                self.skip(Op::Semi, 1516)?;
                Ok(Stmt::Eval(e))
            }
            Some((Found::Sym(s), _)) if matches!(s.kind, SymKind::Module(m) if self.imports[m as usize].spec.is_some()) =>
            {
                // The module is known and has no such member.
                self.diags.push(Diag::new(vec![
                    Piece::Text(format!("Symbol not found: '{}'\nAt: ", name)),
                    Piece::Where2(t.span, t.span),
                ]));
                self.next();
                self.fail_here("Symbol not found.")
            }
            Some((Found::Sym(s), _)) if matches!(s.kind, SymKind::Module(_)) => {
                let d = Diag::new(vec![
                    Piece::Text(format!(
                        "Module '{}' is imported, but the compiler was given no modules to call into\n",
                        name.split('.').next().unwrap_or("")
                    )),
                    Piece::Where(t.span),
                ]);
                self.fail(d)
            }
            Some((Found::Sym(s), used)) if used == name.len() && matches!(s.kind, SymKind::Instance(_)) => {
                // An object alone: VCC wants `.method` after it.
                self.next();
                self.skip(Op::Dot, 1478)?;
                self.fail_here("Symbol cannot be used here.")
            }
            Some((Found::Sym(s), used)) if used < name.len() && matches!(s.kind, SymKind::ModObject(..)) => {
                let SymKind::ModObject(m, o) = s.kind else { unreachable!("matched above") };
                self.split_token(used);
                let first = self.t().span;
                self.next();
                if self.names_class_method(m, o) {
                    let d = self.class_method_call(first);
                    return self.fail(d);
                }
                self.fail_here("Symbol cannot be used here.")
            }
            Some(_) => {
                self.next();
                self.fail_here("Symbol cannot be used here.")
            }
        }
    }

    /// The target of `set` / `unset`: an exact variable or a header
    /// (VCC's `VCC_SymbolGet` for a VAR). The span covers the whole name.
    fn place(&mut self, line: u32) -> R<(Place, &'static lacquer_defs::VarDef, crate::source::Span)> {
        self.expect_tok(Tok::Id, line)?;
        let t = self.t().clone();
        if let Some((v, id, sp)) = self.quoted_header()? {
            return Ok((Place::Header(v.id, id), v, sp));
        }
        // VCC reads `name . more` as one name, spaces or not.
        let (name, last) = self.joined_name();
        self.place_lookup(&name, crate::source::Span { end: last.end, ..t.span })
    }

    /// `req.http."name"` here: the family, the header and the span of the
    /// three tokens, consumed; `None` and nothing consumed for anything else.
    pub(crate) fn quoted_header(&mut self) -> R<Option<(&'static lacquer_defs::VarDef, HdrId, crate::source::Span)>> {
        let t = self.t().clone();
        let (Some(dot), Some(next)) = (self.toks.get(self.i + 1), self.toks.get(self.i + 2)) else {
            return Ok(None);
        };
        if !dot.is(Op::Dot) || next.tok != Tok::CStr {
            return Ok(None);
        }
        let next = next.clone();
        let v = match self.syms.get(&self.text(t.span)) {
            Some(crate::symb::Sym { kind: SymKind::HdrFamily(v), .. }) => *v,
            _ => return Ok(None),
        };
        if self.syntax < 41 {
            let d = Diag::new(vec![
                Piece::text("Quoted headers are available for VCL >= 4.1.\nAt:"),
                Piece::Where(next.span),
            ]);
            return self.fail(d);
        }
        let h = String::from_utf8_lossy(&next.dec).into_owned();
        if let Some(c) = h.chars().find(|&c| !is_tchar(c)) {
            let shown = if c.is_ascii_graphic() || c == ' ' { c.to_string() } else { c.escape_default().to_string() };
            return self.fail(Diag::new(vec![Piece::Text(format!("Invalid character '{}' in header name.\n", shown))]));
        }
        let id = self.header_id(&h)?;
        self.next();
        self.next();
        self.next();
        Ok(Some((v, id, crate::source::Span { end: next.span.end, ..t.span })))
    }

    /// The variable or header called `name`, written at `sp`.
    fn place_lookup(
        &mut self,
        name: &str,
        sp: crate::source::Span,
    ) -> R<(Place, &'static lacquer_defs::VarDef, crate::source::Span)> {
        let found = match self.syms.lookup_partial_at(name, self.syntax) {
            Some((f, used)) if used == name.len() => Some(f),
            _ => None,
        };
        let (p, v) = match found {
            Some(Found::Header(v, h)) => {
                let id = self.header_id(&h)?;
                (Place::Header(v.id, id), v)
            }
            Some(Found::Sym(s)) => match s.kind {
                SymKind::Var(v) => (Place::Var(v.id), v),
                // A header family has a wildcard, which VCL 4.0 sees too.
                _ if self.other_kinds_visible(name) || matches!(s.kind, SymKind::HdrFamily(_)) => {
                    let d = self.wrong_type(name, &s, "var", sp);
                    return self.fail(d);
                }
                _ => {
                    let d = Diag::new(vec![
                        Piece::Text(format!("Symbol not found: '{}'\nAt: ", name)),
                        Piece::Where2(sp, sp),
                    ]);
                    return self.fail(d);
                }
            },
            None => {
                // Only a variable of the other version gets a note here.
                let note = match self.syms.get(name) {
                    Some(crate::symb::Sym { kind: SymKind::Var(_), .. }) => self.syms.version_note(name, self.syntax),
                    _ => String::new(),
                };
                let d = Diag::new(vec![
                    Piece::Text(format!("Symbol not found: '{}'{}\nAt: ", name, note)),
                    Piece::Where2(sp, sp),
                ]);
                return self.fail(d);
            }
        };
        while self.t().span.start < sp.end && self.t().tok != Tok::Eoi {
            self.next();
        }
        Ok((p, v, sp))
    }

    fn act_set(&mut self) -> R<Stmt> {
        self.next();
        let (place, v, sp) = self.place(158)?;
        // A read-only variable is refused by the cross-reference checks,
        // as VCC does.
        self.add_write_use(v.write_in(self.syntax), v.read, sp);
        // A body is built from strings, but VCC names it BODY and does not
        // let the target make `+` a concatenation.
        let ty = match v.ty {
            VclType::Header => VclType::String,
            t => t,
        };
        let op = self.t().tok;
        let compound = |want: VclType, aop: ArithOp| (want, aop);
        let arith = match (ty, op) {
            (VclType::Int, Tok::Op(Op::Incr)) => Some(compound(VclType::Int, ArithOp::Add)),
            (VclType::Int, Tok::Op(Op::Decr)) => Some(compound(VclType::Int, ArithOp::Sub)),
            (VclType::Int, Tok::Op(Op::MulAssign)) => Some(compound(VclType::Int, ArithOp::Mul)),
            (VclType::Int, Tok::Op(Op::DivAssign)) => Some(compound(VclType::Int, ArithOp::Div)),
            (VclType::Time | VclType::Duration, Tok::Op(Op::Incr)) => Some(compound(VclType::Duration, ArithOp::Add)),
            (VclType::Time | VclType::Duration, Tok::Op(Op::Decr)) => Some(compound(VclType::Duration, ArithOp::Sub)),
            (VclType::Time | VclType::Duration, Tok::Op(Op::MulAssign)) => Some(compound(VclType::Real, ArithOp::Mul)),
            (VclType::Time | VclType::Duration, Tok::Op(Op::DivAssign)) => Some(compound(VclType::Real, ArithOp::Div)),
            _ => None,
        };
        let cur = || match place {
            Place::Var(id) => Expr::Var(id, ty),
            Place::Header(f, h) => Expr::Header(f, h),
        };
        if ty == VclType::Body && op == Tok::Op(Op::Incr) {
            // Appending to a body is what `synthetic()` does.
            self.next();
            return Ok(Stmt::Synthetic(self.expr(VclType::Body)?));
        }
        let value = if ty == VclType::String && op == Tok::Op(Op::Incr) {
            // `+=` appends to a string.
            self.next();
            let rhs = self.expr(VclType::String)?;
            Expr::Concat(vec![cur(), rhs])
        } else if let Some((want, aop)) = arith {
            self.next();
            let rhs = self.expr(want)?;
            Expr::Arith(aop, Box::new(cur()), Box::new(rhs), ty)
        } else {
            self.skip(Op::Assign, 177)?;
            self.expr(ty)?
        };
        Ok(Stmt::Set(place, value))
    }

    fn act_unset(&mut self) -> R<Stmt> {
        self.next();
        let (place, v, sp) = self.place(196)?;
        if v.unset == 0 {
            let d = Diag::new(vec![Piece::Where2(sp, sp), Piece::text("Variable cannot be unset.\n")]);
            return self.fail(d);
        }
        self.add_use("Cannot be unset", v.unset, sp, sp);
        self.skip(Op::Semi, 208)?;
        Ok(Stmt::Unset(place))
    }

    fn act_call(&mut self) -> R<Stmt> {
        self.next();
        self.expect_tok(Tok::Id, 51)?;
        let t = self.t().clone();
        let name = self.text(t.span);
        // VCC reads the callee as an expression of type SUB; a name it does
        // not know yet is a subroutine defined later.
        let not_sub = |ty| {
            Diag::new(vec![
                Piece::Text(format!("Expression has type {}, expected SUB\n", crate::expr::utype(ty))),
                Piece::Where2(t.span, t.span),
            ])
        };
        let wrong = match self.syms.lookup_partial_at(&name, self.syntax) {
            Some((Found::Sym(s), used)) if used == name.len() => match s.kind {
                SymKind::Sub(_) => None,
                SymKind::DefaultBackend => {
                    let d = self.reserved_word(t.span);
                    return self.fail(d);
                }
                SymKind::Action | SymKind::Reserved | SymKind::HdrFamily(_) => {
                    let mut d = Diag::at(
                        format!("Symbol '{}' type ({}) can not be used in expression.", name, s.kind.word()),
                        t.span,
                    );
                    if let Some(def) = s.def {
                        d.push(Piece::text("That symbol was defined here:\n"));
                        d.push(Piece::Where(def));
                    }
                    Some(d)
                }
                _ => Some(not_sub(s.ty)),
            },
            Some((Found::Header(..), used)) if used == name.len() => Some(not_sub(VclType::String)),
            _ => None,
        };
        if let Some(d) = wrong {
            // VCC reports it and still wants the `;`.
            self.diags.push(d);
            self.next();
            if !self.t().is(Op::Semi) {
                self.skip(Op::Semi, 80)?;
            }
            return Err(crate::compile::Stop);
        }
        let id = self.sub_ref(&name, t.span)?;
        if let Some(c) = self.cur {
            self.procs[c as usize].calls.push((id, t.span));
        }
        self.next();
        self.skip(Op::Semi, 67)?;
        Ok(Stmt::Call(id))
    }

    /// `hash_data(...)`, `synthetic(...)`, `ban(...)`: one STRING argument
    /// and the `;`; `lines` are VCC's lines for the `(`, `)` and `;` checks.
    fn act_fn(&mut self, mask: lacquer_defs::MethodMask, lines: [u32; 3], mk: impl FnOnce(Expr) -> Stmt) -> R<Stmt> {
        let kw = self.t().span;
        self.add_use("Not a valid action", mask, kw, kw);
        self.next();
        self.skip(Op::LParen, lines[0])?;
        let e = self.expr(VclType::String)?;
        self.skip(Op::RParen, lines[1])?;
        self.skip(Op::Semi, lines[2])?;
        Ok(mk(e))
    }

    /// `new x = module.object(...)` needs the module system.
    fn act_new(&mut self) -> R<Stmt> {
        let kw = self.t().span;
        self.add_use("Not a valid action", Method::Init.bit(), kw, kw);
        self.next();
        let name_sp = self.expect_vid("VCL object")?;
        self.next();
        self.skip(Op::Assign, 522)?;
        self.expect_tok(Tok::Id, 523)?;
        if self.opts.modules.is_some() {
            return self.act_new_instance(name_sp);
        }
        let t = self.t().clone();
        let name = self.text(t.span);
        let module = name.split('.').next().unwrap_or_default();
        let d = if matches!(self.syms.get(module), Some(crate::symb::Sym { kind: SymKind::Module(_), .. })) {
            Diag::new(vec![
                Piece::Text(format!("Objects ('{}') need the module system, which is not built yet\n", name)),
                Piece::Where(t.span),
            ])
        } else {
            Diag::new(vec![Piece::Text(format!("Symbol not found: '{}'\nAt: ", name)), Piece::Where2(t.span, t.span)])
        };
        self.fail(d)
    }

    /// Whether this is `return;` in a subroutine that is not a method,
    /// which VCC takes as leaving it.
    fn leaves(&self) -> bool {
        let in_method = self.cur.is_some_and(|c| self.procs[c as usize].method.is_some());
        !in_method && self.toks.get(self.i + 1).is_some_and(|t| t.is(Op::Semi))
    }

    /// `return (action[(args)])`
    fn act_return(&mut self) -> R<Stmt> {
        self.next();
        self.skip(Op::LParen, 361)?;
        self.expect_tok(Tok::Id, 362)?;
        let at = self.t().clone();
        let word = self.text(at.span);
        let Some(action) = Action::from_name(&word) else {
            return self.fail_here("Expected return action name.");
        };
        if let Some(c) = self.cur {
            self.procs[c as usize].returns.push((action, at.span));
        }
        self.next();
        let ret = if self.t().is(Op::LParen) {
            match action {
                Action::Synth | Action::Error => {
                    self.next();
                    let status = self.expr(VclType::Int)?;
                    let reason = if self.t().is(Op::Comma) {
                        self.next();
                        Some(self.expr(VclType::String)?)
                    } else {
                        None
                    };
                    self.skip(Op::RParen, 301)?;
                    Return::Synth(action, status, reason)
                }
                Action::Pass => {
                    self.next();
                    let d = self.expr(VclType::Duration)?;
                    self.skip(Op::RParen, 262)?;
                    Return::PassFor(d)
                }
                Action::Vcl => {
                    self.next();
                    self.expect_tok(Tok::Id, 315)?;
                    let label = self.tok_text();
                    let lt = self.t().span;
                    // Labels are resolved when the VCL is loaded: the
                    // server says which exist.
                    if self.opts.labels.contains(&label) {
                        self.next();
                        self.skip(Op::RParen, 316)?;
                        if !self.vcl_labels.contains(&label) {
                            self.vcl_labels.push(label.clone());
                        }
                        Return::Vcl(label)
                    } else {
                        let d = match self.syms.get(&label).cloned().filter(|_| self.other_kinds_visible(&label)) {
                            Some(sym) => self.wrong_type(&label, &sym, "vcl", lt),
                            None => Diag::new(vec![
                                Piece::Text(format!("Symbol not found: '{}'\nAt: ", label)),
                                Piece::Where2(lt, lt),
                            ]),
                        };
                        return self.fail(d);
                    }
                }
                Action::Fail => {
                    self.next();
                    let why = self.expr(VclType::String)?;
                    self.skip(Op::RParen, 316)?;
                    Return::FailWith(why)
                }
                _ => return self.fail_here("Arguments not allowed."),
            }
        } else {
            if matches!(action, Action::Synth | Action::Vcl) {
                return self.fail_here("Missing argument.");
            }
            Return::Plain(action)
        };
        self.skip(Op::RParen, 409)?;
        Ok(Stmt::Return(ret))
    }

    /// `if (cond) { } [elseif|elsif|elif|else if (cond) { }]... [else { }]`
    fn if_stmt(&mut self) -> R<Stmt> {
        self.next();
        let mut arms = Vec::new();
        let cond = self.conditional()?;
        let body = self.compound()?;
        arms.push((cond, body));
        let mut els = Vec::new();
        while self.t().tok == Tok::Id {
            if self.is_id("else") {
                self.next();
                if self.t().is(Op::LBrace) {
                    els = self.compound()?;
                    break;
                }
                if !self.is_id("if") {
                    return self.fail_here("'else' must be followed by 'if' or '{'");
                }
            } else if !(self.is_id("elseif") || self.is_id("elsif") || self.is_id("elif")) {
                break;
            }
            self.next();
            let c = self.conditional()?;
            let b = self.compound()?;
            arms.push((c, b));
        }
        Ok(Stmt::If(arms, els))
    }

    fn conditional(&mut self) -> R<Expr> {
        self.skip(Op::LParen, 65)?;
        let e = self.expr(VclType::Bool)?;
        self.skip(Op::RParen, 70)?;
        Ok(e)
    }
}

/// Whether `c` may appear in a header name (RFC 9110's `tchar`).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The subroutines the built-in VCL defines, in its order.
fn builtin_subs() -> impl Iterator<Item = &'static str> {
    crate::compile::BUILTIN_VCL.lines().filter_map(|l| l.strip_prefix("sub ")).map(|n| n.trim_end_matches('{').trim())
}
