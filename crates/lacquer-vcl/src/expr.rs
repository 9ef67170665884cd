//! Expressions (VCC's `vcc_expr.c`): parsed, typed and lowered in one
//! recursive descent, each level told the type its caller wants.
//!
//! Levels, loosest first: `||`, `&&`, `!`, comparisons, `+ -`, `* / %`,
//! type methods (`.lower()`), atoms. A level converts its result only where
//! VCC does: to BOOL at the end of a comparison level asked for BOOL, to
//! STRING where `+` meets a string or the caller wants one, and at the very
//! end (`Vcc::expr`) to what the caller asked for.

use lacquer_defs::VclType;

use crate::compile::{Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::symb::{Found, SymKind};
use crate::token::{Op, Tok};

/// An expression and the index of its first token.
pub(crate) struct E {
    pub e: Expr,
    pub t1: usize,
}

/// The type VCC's messages print: a string is a STRING.
pub(crate) fn utype(t: VclType) -> &'static str {
    match t {
        VclType::Strands | VclType::Header => "STRING",
        _ => t.as_str(),
    }
}

fn is_str(t: VclType) -> bool {
    matches!(t, VclType::String | VclType::Strands | VclType::Header)
}

/// Whether VCL converts values of this type to a string implicitly.
fn stringable(t: VclType) -> bool {
    matches!(
        t,
        VclType::Int
            | VclType::Real
            | VclType::Duration
            | VclType::Time
            | VclType::Bytes
            | VclType::Bool
            | VclType::Ip
            | VclType::Backend
            | VclType::Acl
            | VclType::Probe
            | VclType::Stevedore
            | VclType::Blob
    ) || is_str(t)
}

impl Vcc<'_> {
    /// A `Where2` piece from token `t1` up to (not including) the current token.
    pub(crate) fn range(&self, t1: usize) -> Piece {
        let last = self.i.saturating_sub(1).max(t1.min(self.i));
        let last = if self.i > t1 { self.i - 1 } else { last };
        Piece::Where2(self.toks[t1].span, self.toks[last].span)
    }

    /// VCC's `vcc_Expr`: an expression of type `want`.
    pub(crate) fn expr(&mut self, want: VclType) -> R<Expr> {
        let t1 = self.i;
        let e = self.expr0(want)?;
        let mut e = E { e: e.e, t1 };
        // VCC converts to BOOL here and for the operands of `!`, `&&` and
        // `||`, not inside parentheses: `(2 - 1) > 0` compares an INT.
        if want == VclType::Bool {
            e = self.tobool(e);
        }
        if matches!(want, VclType::String | VclType::Strands | VclType::Body) {
            let t = e.e.ty();
            e = match self.tostring(e) {
                Ok(e) => e,
                Err(stop) => {
                    // Here VCC goes on to report the type mismatch too.
                    let d = Diag::new(vec![
                        Piece::Text(format!("Expression has type {}, expected STRING\n", utype(t))),
                        self.range(t1),
                    ]);
                    self.diags.push(d);
                    return Err(stop);
                }
            };
        }
        if want == VclType::Real && e.e.ty() == VclType::Int {
            e.e = Expr::ToReal(Box::new(e.e));
        }
        let got = e.e.ty();
        let ok = got == want || ((is_str(want) || want == VclType::Body) && is_str(got));
        if !ok {
            let d = Diag::new(vec![
                Piece::Text(format!("Expression has type {}, expected {}\n", utype(got), utype(want))),
                self.range(t1),
            ]);
            return self.fail(d);
        }
        Ok(e.e)
    }

    /// Converts to STRING, or fails as VCC does.
    fn tostring(&mut self, e: E) -> R<E> {
        let t = e.e.ty();
        if is_str(t) {
            return Ok(e);
        }
        if let Expr::Probe(id) = e.e {
            // A probe has no string form: VCC puts its name there.
            let name = self.probes[id as usize].name.clone().into_bytes();
            return Ok(E { e: Expr::Const(Const::Str(name)), t1: e.t1 });
        }
        if stringable(t) {
            return Ok(E { e: Expr::ToString(Box::new(e.e)), t1: e.t1 });
        }
        // VCC marks the token it has reached.
        let at = self.head(self.t());
        self.fail(Diag::new(vec![Piece::Text(format!("Cannot convert {} to STRING.\n", utype(t))), Piece::Where(at)]))
    }

    fn expr0(&mut self, want: VclType) -> R<E> {
        let first = self.expr_cand(want)?;
        self.bool_chain(first, want, Op::COr)
    }

    fn expr_cand(&mut self, want: VclType) -> R<E> {
        let first = self.expr_not(want)?;
        self.bool_chain(first, want, Op::CAnd)
    }

    /// `first || ...` or `first && ...` (VCC's `vcc_expr0` and
    /// `vcc_expr_cand`): with the operator, every operand is converted to
    /// BOOL, and must be one.
    fn bool_chain(&mut self, first: E, want: VclType, op: Op) -> R<E> {
        if !self.t().is(op) {
            return Ok(first);
        }
        let t1 = first.t1;
        let first = self.tobool(first);
        if first.e.ty() != VclType::Bool {
            let d = Diag::new(vec![
                Piece::Text(format!("'{}' must be preceeded by BOOL, found {}.\n", op.as_str(), utype(first.e.ty()))),
                self.range(t1),
            ]);
            return self.fail(d);
        }
        let mut v = vec![first.e];
        while self.t().is(op) {
            self.next();
            let tk = self.i;
            let e2 = if op == Op::COr { self.expr_cand(want)? } else { self.expr_not(want)? };
            let e2 = self.tobool(e2);
            if e2.e.ty() != VclType::Bool {
                let d = Diag::new(vec![
                    Piece::Text(format!("'{}' must be followed by BOOL, found {}.\n", op.as_str(), utype(e2.e.ty()))),
                    self.range(tk),
                ]);
                return self.fail(d);
            }
            v.push(e2.e);
        }
        let e = if op == Op::COr { Expr::Or(v) } else { Expr::And(v) };
        Ok(E { e, t1 })
    }

    fn expr_not(&mut self, want: VclType) -> R<E> {
        if !self.t().is(Op::Bang) {
            return self.expr_cmp(want);
        }
        let tk = self.i;
        self.next();
        // The operand is converted to BOOL, whatever the caller wants.
        let e2 = self.expr_cmp(want)?;
        let e2 = self.tobool(e2);
        if e2.e.ty() != VclType::Bool {
            let d = Diag::new(vec![
                Piece::Text(format!("'!' must be followed by BOOL, found {}.\n", utype(e2.e.ty()))),
                self.range(tk),
            ]);
            return self.fail(d);
        }
        Ok(E { e: Expr::Not(Box::new(e2.e)), t1: tk })
    }

    fn expr_cmp(&mut self, want: VclType) -> R<E> {
        let e = self.expr_add(want)?;
        let tok = self.t().tok;
        let op = match tok {
            Tok::Op(Op::Eq) => Some(CmpOp::Eq),
            Tok::Op(Op::Neq) => Some(CmpOp::Ne),
            Tok::Op(Op::Lt) => Some(CmpOp::Lt),
            Tok::Op(Op::Gt) => Some(CmpOp::Gt),
            Tok::Op(Op::Leq) => Some(CmpOp::Le),
            Tok::Op(Op::Geq) => Some(CmpOp::Ge),
            _ => None,
        };
        let is_match = matches!(tok, Tok::Op(Op::Tilde) | Tok::Op(Op::NoMatch));
        let ty = e.e.ty();
        let numeric = matches!(ty, VclType::Int | VclType::Duration | VclType::Bytes | VclType::Real | VclType::Time);
        let ident = matches!(
            ty,
            VclType::Backend | VclType::Acl | VclType::Probe | VclType::Stevedore | VclType::Sub | VclType::Instance
        );
        if let Some(op) = op {
            let eq = matches!(op, CmpOp::Eq | CmpOp::Ne);
            if numeric || ((ident || ty == VclType::Bool || ty == VclType::Ip) && eq) {
                return self.cmp_simple(e, op, ty);
            }
            if is_str(ty) {
                return self.cmp_string(e, op);
            }
        }
        if is_match && ty == VclType::Ip {
            return self.cmp_acl(e);
        }
        if is_match && is_str(ty) {
            return self.cmp_regexp(e);
        }
        if op.is_some() || is_match {
            let t = self.t().clone();
            let d = Diag::new(vec![
                Piece::Text(format!("Operator {} not possible on {}\n", self.text(t.span), utype(ty))),
                Piece::Where(t.span),
            ]);
            return self.fail(d);
        }
        Ok(e)
    }

    /// VCC's `vcc_expr_tobool`: the implicit conversions to BOOL.
    fn tobool(&mut self, e: E) -> E {
        match e.e.ty() {
            VclType::Backend
            | VclType::Int
            | VclType::Duration
            | VclType::String
            | VclType::Strands
            | VclType::Header => E { e: Expr::ToBool(Box::new(e.e)), t1: e.t1 },
            _ => e,
        }
    }

    fn cmp_simple(&mut self, e: E, op: CmpOp, ty: VclType) -> R<E> {
        let tk = self.t().span;
        self.next();
        let e2 = self.expr_add(ty)?;
        if e2.e.ty() != ty {
            let d = Diag::new(vec![
                Piece::Text(format!(
                    "Comparison of different types: {} '{}' {}\n",
                    utype(ty),
                    self.text(tk),
                    utype(e2.e.ty())
                )),
                Piece::Where(tk),
            ]);
            return self.fail(d);
        }
        Ok(E { e: Expr::Cmp(op, Box::new(e.e), Box::new(e2.e)), t1: e.t1 })
    }

    fn cmp_string(&mut self, e: E, op: CmpOp) -> R<E> {
        let tk = self.t().span;
        self.next();
        let mut e2 = self.expr_add(VclType::String)?;
        if e2.e.ty() == VclType::Probe {
            e2 = self.tostring(e2)?;
        }
        if !is_str(e2.e.ty()) {
            let d = Diag::new(vec![
                Piece::Text(format!(
                    "Comparison of different types: {} '{}' {}\n",
                    utype(e.e.ty()),
                    self.text(tk),
                    utype(e2.e.ty())
                )),
                Piece::Where(tk),
            ]);
            return self.fail(d);
        }
        Ok(E { e: Expr::Cmp(op, Box::new(e.e), Box::new(e2.e)), t1: e.t1 })
    }

    fn cmp_regexp(&mut self, e: E) -> R<E> {
        let neg = self.t().is(Op::NoMatch);
        self.next();
        if self.t().tok != Tok::CStr {
            return self.not_a_regex();
        }
        let re = self.regex_here()?;
        Ok(E { e: Expr::Match(Box::new(e.e), re, neg), t1: e.t1 })
    }

    /// Compiles the string literal here as a regex and consumes it.
    pub(crate) fn regex_here(&mut self) -> R<ReId> {
        let t = self.t().clone();
        // Constant strings joined with `+` make one pattern.
        let mut raw = t.dec.clone();
        while self.toks.get(self.i + 1).is_some_and(|n| n.is(Op::Plus)) {
            self.next();
            self.next();
            self.expect_tok(Tok::CStr, 65)?;
            raw.extend_from_slice(&self.t().dec);
        }
        let pat = String::from_utf8_lossy(&raw).into_owned();
        match crate::regex::Regex::new(&pat) {
            Ok(re) => {
                self.next();
                let id = self.regexes.len() as ReId;
                self.regexes.push(re);
                Ok(id)
            }
            Err(err) => {
                // VCC marks from the first literal to the token before the
                // last one (for one literal, back to the operator).
                let prev = self.toks[self.i.saturating_sub(1)].span;
                let d = Diag::new(vec![Piece::Text(format!("{}\n", err)), Piece::Where2(t.span, prev)]);
                // The literal is used up all the same.
                self.next();
                self.fail(d)
            }
        }
    }

    fn cmp_acl(&mut self, e: E) -> R<E> {
        let neg = self.t().is(Op::NoMatch);
        self.next();
        let t1 = self.i;
        // Just a name, in VCC: `~ a + b` stops after `a`.
        let e2 = self.expr4(VclType::Acl)?;
        match e2.e {
            Expr::Acl(id) => Ok(E { e: Expr::AclMatch(Box::new(e.e), id, neg), t1: e.t1 }),
            // A module's ACL result (`client.ip ~ debug.acl(a)`).
            other if other.ty() == VclType::Acl => {
                Ok(E { e: Expr::AclMatchDyn(Box::new(e.e), Box::new(other), neg), t1: e.t1 })
            }
            other => {
                let d = Diag::new(vec![
                    Piece::Text(format!("Expression has type {}, expected ACL\n", utype(other.ty()))),
                    self.range(t1),
                ]);
                self.fail(d)
            }
        }
    }

    fn expr_add(&mut self, want: VclType) -> R<E> {
        let mut e = self.expr_mul(want)?;
        while self.t().is(Op::Plus) || self.t().is(Op::Minus) {
            let tk_i = self.i;
            let tk = self.t().clone();
            let plus = tk.is(Op::Plus);
            let lt = e.e.ty();
            let has_row = add_row(plus, lt, None).is_some();
            self.next();
            let e2 = if !has_row && is_str(want) { self.expr_mul(VclType::String)? } else { self.expr_mul(lt)? };
            let rt = e2.e.ty();
            if let Some(res) = add_row(plus, lt, Some(rt)) {
                let (a, b) = promote(e.e, e2.e, res);
                let op = if plus { ArithOp::Add } else { ArithOp::Sub };
                e = E { e: Expr::Arith(op, Box::new(a), Box::new(b), res), t1: e.t1 };
            } else if plus && (is_str(lt) || is_str(want)) {
                let t1 = e.t1;
                let a = self.tostring(e)?;
                let b = self.tostring(e2)?;
                let mut parts = match a.e {
                    Expr::Concat(v) => v,
                    x => vec![x],
                };
                parts.push(b.e);
                e = E { e: Expr::Concat(parts), t1 };
            } else {
                let d = Diag::new(vec![
                    Piece::Text(format!("{} {} {} not possible.\n", utype(lt), self.text(tk.span), utype(rt))),
                    self.range(tk_i),
                ]);
                return self.fail(d);
            }
        }
        Ok(e)
    }

    fn expr_mul(&mut self, want: VclType) -> R<E> {
        let mut e = self.expr4(want)?;
        loop {
            let op = match self.t().tok {
                Tok::Op(Op::Star) => ArithOp::Mul,
                Tok::Op(Op::Slash) => ArithOp::Div,
                Tok::Op(Op::Percent) => ArithOp::Rem,
                _ => return Ok(e),
            };
            let lt = e.e.ty();
            if op == ArithOp::Rem && lt != VclType::Int {
                return self.fail_here("Operator % only possible on INT.");
            }
            let f2 = match lt {
                VclType::Int => VclType::Int,
                VclType::Real | VclType::Duration | VclType::Bytes => VclType::Real,
                _ => {
                    let msg = format!("Operator {} not possible on type {}.", self.tok_text(), utype(lt));
                    return self.fail_here(&msg);
                }
            };
            let tk = self.t().span;
            self.next();
            let e2 = self.expr4(f2)?;
            let rt = e2.e.ty();
            if rt != VclType::Int && rt != f2 {
                let d = Diag::new(vec![
                    Piece::Text(format!("{} {} {} not possible.\n", utype(lt), self.text(tk), utype(rt))),
                    Piece::Where(tk),
                ]);
                return self.fail(d);
            }
            let b = if rt == VclType::Int && f2 == VclType::Real { Expr::ToReal(Box::new(e2.e)) } else { e2.e };
            e = E { e: Expr::Arith(op, Box::new(e.e), Box::new(b), lt), t1: e.t1 };
        }
    }

    /// Type methods: `.lower()`, `.upper()`, `.resolve()`, `.free_space` …
    fn expr4(&mut self, want: VclType) -> R<E> {
        let mut e = self.expr5(want)?;
        while self.t().is(Op::Dot) {
            self.next();
            self.expect_tok(Tok::Id, 940)?;
            let name = self.tok_text();
            let ty = e.e.ty();
            let m = match (ty, name.as_str()) {
                (t, "lower") if is_str(t) => Some(TypeMethod::Lower),
                (t, "upper") if is_str(t) => Some(TypeMethod::Upper),
                (VclType::Backend, "resolve") => Some(TypeMethod::Resolve),
                (VclType::Stevedore, "free_space") => Some(TypeMethod::FreeSpace),
                (VclType::Stevedore, "used_space") => Some(TypeMethod::UsedSpace),
                (VclType::Stevedore, "happy") => Some(TypeMethod::Happy),
                _ => None,
            };
            let Some(m) = m else {
                let tname = if is_str(ty) { "STRINGS" } else { ty.as_str() };
                let msg = format!("Unknown property '{}' for type {}", name, tname);
                return self.fail_here(&msg);
            };
            self.next();
            // The string and backend methods are calls; the stevedore's
            // are properties.
            if matches!(m, TypeMethod::Lower | TypeMethod::Upper | TypeMethod::Resolve) {
                self.skip(Op::LParen, 284)?;
                self.skip(Op::RParen, 288)?;
            }
            e = E { e: Expr::Method(m, Box::new(e.e)), t1: e.t1 };
        }
        Ok(e)
    }

    fn expr5(&mut self, want: VclType) -> R<E> {
        let t1 = self.i;
        let t = self.t().clone();
        match t.tok {
            Tok::Op(Op::LParen) => {
                self.next();
                let e2 = self.expr0(want)?;
                self.skip(Op::RParen, 771)?;
                Ok(E { e: e2.e, t1 })
            }
            Tok::Id => self.expr_symbol(want),
            Tok::CStr if want == VclType::Ip => {
                // VCC resolves a string literal where an IP is wanted; a
                // socket's path is not one. Its port is 80 unless it names one.
                let host = String::from_utf8_lossy(&t.dec).into_owned();
                if host.starts_with('/') {
                    let msg = format!("Cannot convert to an IP address: '\"{host}\"'");
                    return self.fail(Diag::at(msg, t.span));
                }
                match crate::backend::resolve(&host, "80") {
                    Ok(addrs) => {
                        self.next();
                        Ok(E { e: Expr::Const(Const::Ip(addrs[0])), t1 })
                    }
                    Err(reason) => {
                        let msg = format!(
                            "IP constant '\"{}\"' could not be resolved to an IP address:\n\t{}\n(Sorry if that error message is gibberish.)\n",
                            host, reason
                        );
                        self.fail(Diag::at(msg, t.span))
                    }
                }
            }
            Tok::CStr => {
                self.next();
                Ok(E { e: Expr::Const(Const::Str(t.dec.clone())), t1 })
            }
            Tok::Op(Op::Minus)
                if matches!(
                    want,
                    VclType::Int | VclType::Real | VclType::Duration | VclType::String | VclType::Strands
                ) =>
            {
                self.next();
                if matches!(self.t().tok, Tok::CNum | Tok::FNum) {
                    let e = self.number(want, true)?;
                    return Ok(E { e, t1 });
                }
                // A non-numeric operand is left for the caller's type
                // check, as VCC does. (VCC negates a whole `||` expression
                // here, so `-a - 3` is `-(a - 3)`; Lacquer keeps the
                // conventional `(-a) - 3`.)
                let e1 = self.expr5(want)?;
                match e1.e.ty() {
                    VclType::Int | VclType::Real | VclType::Duration => Ok(E { e: Expr::Neg(Box::new(e1.e)), t1 }),
                    _ => Ok(E { e: e1.e, t1 }),
                }
            }
            Tok::CNum | Tok::FNum => {
                let e = self.number(want, false)?;
                Ok(E { e, t1 })
            }
            _ => self.unknown_token(utype(want)),
        }
    }

    /// VCC's complaint about a token that cannot start an expression of
    /// the type called `what`.
    fn unknown_token<T>(&mut self, what: &str) -> R<T> {
        let t = self.t().clone();
        let msg = format!("Unknown token {} when looking for {}\n\n", self.tok_desc(&t), what);
        let d = Diag::new(vec![Piece::Text(msg), Piece::Where(self.head(&t))]);
        self.fail(d)
    }

    /// A regex argument that is not a literal: VCC parses it as an
    /// expression of type REGEX, which Lacquer has not, and refuses what
    /// it finds.
    pub(crate) fn not_a_regex<T>(&mut self) -> R<T> {
        let t1 = self.i;
        if !matches!(self.t().tok, Tok::Id | Tok::CNum | Tok::FNum | Tok::Op(Op::LParen)) {
            return self.unknown_token("REGEX");
        }
        // One operand: `~ a + "b"` stops after `a`.
        let e2 = self.expr4(VclType::String)?;
        let d = Diag::new(vec![
            Piece::Text(format!("Expression has type {}, expected REGEX\n", utype(e2.e.ty()))),
            self.range(t1),
        ]);
        self.fail(d)
    }

    /// A numeric literal, with its unit if one follows.
    fn number(&mut self, want: VclType, neg: bool) -> R<Expr> {
        let t = self.t().clone();
        let txt = self.text(t.span);
        if let Some((int, frac)) = txt.split_once('.') {
            // VCC's reals are SF-decimals: twelve digits, three after the point.
            if int.len() > 12 || frac.len() > 3 {
                return self.fail(Diag::at("Too many digits for real.", t.span));
            }
        }
        self.next();
        let sign = if neg { -1.0 } else { 1.0 };
        if want == VclType::Bytes {
            // A BYTES constant needs its unit, one name.
            self.split_at_dot();
            let u = self.t().clone();
            let d = if u.tok != Tok::Id {
                Diag::new(vec![
                    Piece::Text(format!("Expected BYTES unit (B, KB, MB...) got {}\n", self.tok_desc(&u))),
                    Piece::Where(self.head(&u)),
                ])
            } else if let Some(scale) = crate::conv::bytes_unit(&self.tok_text()) {
                self.next();
                let v: f64 = txt.parse().unwrap_or(0.0);
                return Ok(Expr::Const(Const::Bytes(sign * v * scale)));
            } else {
                Diag::new(vec![
                    Piece::Text(format!("Unknown BYTES unit of measurement ([KMGTP][B]){}", self.tok_desc(&u))),
                    Piece::Where(self.head(&u)),
                ])
            };
            return self.fail(d);
        }
        if self.t().tok == Tok::Id {
            // The unit is one name: `10s.foo` is `10s` and `.foo`.
            self.split_at_dot();
            let u = self.tok_text();
            let v: f64 = txt.parse().unwrap_or(0.0);
            let Some(scale) = crate::conv::duration_unit(&u) else {
                let msg = format!(
                    "Unknown duration unit '{}'\nLegal duration units are 'ms', 's', 'm', 'h', 'd', 'w' and 'y'\n",
                    u
                );
                return self.fail_here(&msg);
            };
            self.next();
            return Ok(Expr::Const(Const::Duration(sign * v * scale)));
        }
        if t.tok == Tok::FNum || want == VclType::Real {
            let v: f64 = txt.parse().unwrap_or(0.0);
            return Ok(Expr::Const(Const::Real(sign * v)));
        }
        // VCC takes at most 15 digits, which a double holds exactly.
        match txt.parse::<i64>() {
            Ok(v) if txt.len() <= 15 => Ok(Expr::Const(Const::Int(if neg { -v } else { v }))),
            _ => {
                let d = Diag::at("Too many digits for integer.", t.span);
                self.fail(d)
            }
        }
    }

    /// An identifier in an expression: a variable, header, function,
    /// backend, ACL …
    fn expr_symbol(&mut self, want: VclType) -> R<E> {
        let t1 = self.i;
        if let Some((v, id, sp)) = self.quoted_header()? {
            self.add_use("Not available", v.read, sp, sp);
            return Ok(E { e: Expr::Header(v.id, id), t1 });
        }
        let plain = !self.tok_text().contains('.');
        if plain
            && matches!(want, VclType::Acl | VclType::Backend)
            && self.syms.lookup_partial_at(&self.tok_text(), self.syntax).is_none()
        {
            // VCC makes the symbol on first use; it must be declared later.
            let sp = self.t().span;
            self.next();
            return Ok(E { e: self.forward_ref(want, sp)?, t1 });
        }
        let found = self.lookup_partial_split("Symbol not found")?;
        let tspan = self.toks[t1].span;
        // VCC marks only the first component of a variable read.
        let head = {
            let name = self.text(tspan);
            let n = name.find('.').unwrap_or(name.len());
            crate::source::Span { end: tspan.start + n as u32, ..tspan }
        };
        let e = match found {
            Found::Header(v, name) => {
                self.add_use("Not available", v.read, head, head);
                let id = self.header_id(&name)?;
                Expr::Header(v.id, id)
            }
            Found::Sym(sym) => match sym.kind {
                SymKind::Var(v) => {
                    self.add_use("Not available", v.read, head, head);
                    if v.ty == VclType::Http {
                        Expr::Var(v.id, VclType::Http)
                    } else {
                        Expr::Var(v.id, v.ty)
                    }
                }
                SymKind::BoolConst(b) => Expr::Const(Const::Bool(b)),
                SymKind::DefaultBackend if want != VclType::Backend => {
                    let d = self.reserved_word(tspan);
                    return self.fail(d);
                }
                SymKind::DefaultBackend => {
                    if self.backends.is_empty() {
                        Expr::Const(Const::NoBackend)
                    } else {
                        Expr::Backend(self.default_backend_id())
                    }
                }
                SymKind::Backend(id) => {
                    self.objects
                        .iter_mut()
                        .filter(|o| o.0 == "backend" && o.1 == self.backends[id as usize].name)
                        .for_each(|o| o.3 += 1);
                    Expr::Backend(id)
                }
                SymKind::Acl(id) => {
                    self.count_ref("acl", id as usize);
                    Expr::Acl(id)
                }
                SymKind::Probe(id) => {
                    self.count_ref("probe", id as usize);
                    Expr::Probe(id)
                }
                SymKind::Stevedore(name) => Expr::Stevedore(name),
                SymKind::Func(b) => return self.builtin_call(b, t1),
                SymKind::Sub(_) => {
                    let name = self.text(tspan);
                    let after = self.t().span;
                    let d = Diag::new(vec![
                        Piece::Text(format!("Symbol '{}' can only be used as a SUB expression\n", name)),
                        Piece::Where(after),
                        Piece::text("While compiling function call:\n\n"),
                        Piece::Where2(tspan, self.prev_span()),
                    ]);
                    return self.fail(d);
                }
                SymKind::ModFunc(m, f) => {
                    if self.imports[m as usize]
                        .spec
                        .as_ref()
                        .is_some_and(|s| s.functions[f as usize].ret == VclType::Void)
                    {
                        return self.fail_here("Function returns VOID:");
                    }
                    return Ok(E { e: self.call_function(m, f, t1)?, t1 });
                }
                SymKind::InstanceMethod(i, m) => {
                    let inst = &self.instances[i as usize];
                    let spec = self.imports[inst.module as usize].spec.as_ref().expect("instances have specs");
                    if spec.objects[inst.object as usize].methods[m as usize].ret == VclType::Void {
                        return self.fail_here("Function returns VOID:");
                    }
                    return Ok(E { e: self.call_method(i, m, t1)?, t1 });
                }
                SymKind::Module(m) if self.imports[m as usize].spec.is_some() => {
                    // The module is known and has no such member: VCC names
                    // and marks the whole dotted name.
                    let member = (self.tok_text() == ".").then(|| self.toks.get(self.i + 1)).flatten();
                    let whole = match member {
                        Some(m) => crate::source::Span { end: m.span.end, ..tspan },
                        None => tspan,
                    };
                    let name = self.text(whole);
                    let d = Diag::new(vec![
                        Piece::Text(format!("Symbol not found: '{name}'\nAt: ")),
                        Piece::Where2(whole, whole),
                    ]);
                    return self.fail(d);
                }
                SymKind::Module(_) => {
                    let name = self.text(tspan);
                    let d = Diag::new(vec![
                        Piece::Text(format!(
                            "Module '{}' is imported, but the compiler was given no modules to call into\n",
                            name
                        )),
                        Piece::Where(tspan),
                    ]);
                    return self.fail(d);
                }
                SymKind::Instance(i) if self.t().is(Op::Dot) => {
                    // `obj.nosuch`: the instance is known, the member is not.
                    let inst = &self.instances[i as usize];
                    let spec = self.imports[inst.module as usize].spec.as_ref().expect("instances have specs");
                    let class = format!("{}.{}", spec.name, spec.objects[inst.object as usize].name);
                    self.next();
                    let msg = format!("Unknown property '{}' for type {}", self.tok_text(), class);
                    return self.fail_here(&msg);
                }
                SymKind::ModObject(m, o) if self.names_class_method(m, o) => {
                    let d = self.class_method_call(tspan);
                    return self.fail(d);
                }
                SymKind::Instance(i) if want == VclType::Acl => {
                    // An object where an ACL goes: VCC names the object's
                    // type (objects have one each).
                    let inst = &self.instances[i as usize];
                    let spec = self.imports[inst.module as usize].spec.as_ref().expect("instances have specs");
                    let class = format!("{}.{}", spec.name, spec.objects[inst.object as usize].name);
                    let d = Diag::new(vec![
                        Piece::Text(format!("Expression has type {class}, expected ACL\n")),
                        Piece::Where2(tspan, tspan),
                    ]);
                    return self.fail(d);
                }
                kind @ (SymKind::Action
                | SymKind::Reserved
                | SymKind::HdrFamily(_)
                | SymKind::ModObject(..)
                | SymKind::Instance(_)) => {
                    let name = self.text(tspan);
                    let mut d = Diag::new(vec![
                        Piece::Text(format!(
                            "Symbol '{}' type ({}) can not be used in expression.\n",
                            name,
                            kind.word()
                        )),
                        Piece::Where(tspan),
                    ]);
                    if let Some(def) = sym.def {
                        d.push(Piece::text("That symbol was defined here:\n"));
                        d.push(Piece::Where(def));
                    }
                    return self.fail(d);
                }
            },
        };
        let _ = want;
        Ok(E { e, t1 })
    }

    fn count_ref(&mut self, kind: &'static str, idx: usize) {
        let name = match kind {
            "acl" => self.acls[idx].name.clone(),
            _ => self.probes[idx].name.clone(),
        };
        for o in self.objects.iter_mut().filter(|o| o.0 == kind && o.1 == name) {
            o.3 += 1;
        }
    }

    /// Looks up the identifier here, longest prefix first; when only a
    /// prefix names something, the token is split so that the rest
    /// (`.lower`, `.z`) is read as a type method. Fails with
    /// `"<what>: 'name'"` when nothing matches.
    /// Whether the tokens after an object type's name (`directors.hash`)
    /// go on to one of its methods (`.backend`): a method called on the
    /// type rather than on an object made with `new`.
    pub(crate) fn names_class_method(&self, m: u32, o: u32) -> bool {
        let (Some(dot), Some(id)) = (self.toks.get(self.i), self.toks.get(self.i + 1)) else { return false };
        if !dot.is(Op::Dot) || id.tok != Tok::Id {
            return false;
        }
        let name = self.text(id.span);
        let spec = self.imports.get(m as usize).and_then(|i| i.spec.as_ref());
        spec.and_then(|s| s.objects.get(o as usize)).is_some_and(|ob| ob.methods.iter().any(|f| f.name == name))
    }

    /// VCC's answer to `module.type.method(...)`: a syntax error, shown
    /// over the whole call (the arguments are read past).
    pub(crate) fn class_method_call(&mut self, first: crate::source::Span) -> Diag {
        self.next();
        self.next();
        if self.t().is(Op::LParen) {
            let mut depth = 0;
            loop {
                if self.t().is(Op::LParen) {
                    depth += 1;
                } else if self.t().is(Op::RParen) {
                    depth -= 1;
                } else if self.t().tok == Tok::Eoi {
                    break;
                }
                self.next();
                if depth == 0 {
                    break;
                }
            }
        }
        Diag::new(vec![
            Piece::text("Syntax error.\n"),
            Piece::text("While compiling function call:\n\n"),
            Piece::Where2(first, self.prev_span()),
        ])
    }

    pub(crate) fn lookup_partial_split(&mut self, what: &str) -> R<Found> {
        let t = self.t().clone();
        let (joined, last) = self.joined_name();
        if last != t.span {
            return self.lookup_joined(what, &joined, last);
        }
        let name = self.text(t.span);
        let Some((found, used)) = self.syms.lookup_partial_at(&name, self.syntax) else {
            let note = self.syms.version_note(&name, self.syntax);
            let d = Diag::new(vec![
                Piece::Text(format!("{}: '{}'{}\nAt: ", what, name, note)),
                Piece::Where2(t.span, t.span),
            ]);
            // VCC has read the name by then (a call's range shows it).
            self.next();
            return self.fail(d);
        };
        if used < name.len() {
            self.split_token(used);
        }
        self.next();
        Ok(found)
    }

    /// [`Vcc::lookup_partial_split`] for a name written in several tokens
    /// (`req . http . x`), which VCC reads as one: the tokens of the part
    /// that names something are used up, the rest stays for type methods.
    fn lookup_joined(&mut self, what: &str, name: &str, last: crate::source::Span) -> R<Found> {
        let first = self.t().span;
        let Some((found, used)) = self.syms.lookup_partial_at(name, self.syntax) else {
            let note = self.syms.version_note(name, self.syntax);
            let d =
                Diag::new(vec![Piece::Text(format!("{}: '{}'{}\nAt: ", what, name, note)), Piece::Where2(first, last)]);
            while self.t().span.start < last.end && self.t().tok != Tok::Eoi {
                self.next();
            }
            return self.fail(d);
        };
        // Walk the name's tokens to the one the match ends in.
        let mut pos = 0;
        loop {
            let len = self.text(self.t().span).len();
            if used <= pos + len {
                if used < pos + len {
                    self.split_token(used - pos);
                }
                self.next();
                return Ok(found);
            }
            pos += len + 1;
            self.next();
            self.next();
        }
    }

    /// Splits the identifier token here after `at` bytes into
    /// `ident`, `.`, `rest` (the rest is split again on demand).
    pub(crate) fn split_token(&mut self, at: usize) {
        use crate::token::Token;
        let t = self.toks[self.i].clone();
        let s = t.span;
        let a = s.start + at as u32;
        let head = Token { tok: Tok::Id, span: crate::source::Span { end: a, ..s }, dec: Vec::new() };
        let dot =
            Token { tok: Tok::Op(Op::Dot), span: crate::source::Span { start: a, end: a + 1, ..s }, dec: Vec::new() };
        let rest = Token { tok: Tok::Id, span: crate::source::Span { start: a + 1, ..s }, dec: Vec::new() };
        // The rest up to its next dot is one identifier; later dots are
        // split as they are reached.
        let rest_text = self.text(rest.span);
        let mut toks = vec![head, dot];
        if let Some(d) = rest_text.find('.') {
            let r = rest.span;
            let mid = r.start + d as u32;
            toks.push(Token { tok: Tok::Id, span: crate::source::Span { end: mid, ..r }, dec: Vec::new() });
            toks.push(Token {
                tok: Tok::Op(Op::Dot),
                span: crate::source::Span { start: mid, end: mid + 1, ..r },
                dec: Vec::new(),
            });
            toks.push(Token { tok: Tok::Id, span: crate::source::Span { start: mid + 1, ..r }, dec: Vec::new() });
        } else {
            toks.push(rest);
        }
        self.toks.splice(self.i..self.i + 1, toks);
    }

    /// `regsub(STRING, REGEX, STRING)` and `regsuball(...)`.
    fn builtin_call(&mut self, b: Builtin, t1: usize) -> R<E> {
        let r = self.builtin_args(b, t1);
        if r.is_err() {
            // VCC's `vcc_func` adds the call so far to any error in it.
            let range = Piece::Where2(self.toks[t1].span, self.prev_span());
            if let Some(d) = self.diags.last_mut() {
                d.push(Piece::text("While compiling function call:\n\n"));
                d.push(range);
            }
        }
        r
    }

    fn builtin_args(&mut self, b: Builtin, t1: usize) -> R<E> {
        self.skip(Op::LParen, 1555)?;
        let subject = self.expr(VclType::String)?;
        self.skip(Op::Comma, 1558)?;
        if self.t().tok != Tok::CStr {
            return self.not_a_regex();
        }
        let re = self.regex_here()?;
        self.skip(Op::Comma, 1564)?;
        let with = self.expr(VclType::String)?;
        self.skip(Op::RParen, 1569)?;
        Ok(E { e: Expr::Builtin(b, vec![subject, with], re), t1 })
    }
}

/// VCC's table of `+`/`-` operand types: the result type for `a op b`, or,
/// with `b` unknown, whether any row has `a` on the left.
fn add_row(plus: bool, a: VclType, b: Option<VclType>) -> Option<VclType> {
    use VclType::*;
    const ROWS: &[(bool, VclType, VclType, VclType)] = &[
        (true, Bytes, Bytes, Bytes),
        (false, Bytes, Bytes, Bytes),
        (true, Duration, Duration, Duration),
        (false, Duration, Duration, Duration),
        (true, Int, Int, Int),
        (false, Int, Int, Int),
        (true, Int, Real, Real),
        (false, Int, Real, Real),
        (true, Real, Int, Real),
        (false, Real, Int, Real),
        (true, Real, Real, Real),
        (false, Real, Real, Real),
        (false, Time, Time, Duration),
        (true, Time, Duration, Time),
        (false, Time, Duration, Time),
    ];
    ROWS.iter().find(|r| r.0 == plus && r.1 == a && b.is_none_or(|b| r.2 == b)).map(|r| r.3)
}

/// Promotes INT operands of a REAL operation.
fn promote(a: Expr, b: Expr, res: VclType) -> (Expr, Expr) {
    if res != VclType::Real {
        return (a, b);
    }
    let up = |e: Expr| if e.ty() == VclType::Int { Expr::ToReal(Box::new(e)) } else { e };
    (up(a), up(b))
}
