//! Cross-reference checks (VCC's `vcc_xref.c`), run after parsing: every
//! subroutine defined and used, no recursion, every `return()` legal in
//! every method that can reach it, every variable and action available
//! there.

use lacquer_defs::{Action, Method};

use crate::compile::{Use, Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::SubId;

pub(crate) fn check(v: &mut Vcc) -> R<()> {
    references(v)?;
    recursion(v)?;
    returns(v)?;
    uses(v)?;
    possible(v)
}

/// A subroutine whose variables and returns leave no method it could be
/// called from (VCC's `vcc_checkpossible`; only an unused one gets here,
/// and only when unused subroutines are allowed).
fn possible(v: &mut Vcc) -> R<()> {
    let mut order: Vec<usize> = (0..v.subs.len()).collect();
    order.sort_by_key(|&i| v.subs[i].name.to_ascii_lowercase());
    let mut memo = vec![None; v.subs.len()];
    for i in order {
        if okmask(v, i, &mut memo) == 0 {
            if let Some(def) = v.procs[i].def {
                return v.fail(Diag::new(vec![Piece::text("Impossible Subroutine"), Piece::Where(def)]));
            }
        }
    }
    Ok(())
}

/// The methods sub `i` could run in, given what it uses, returns and calls.
fn okmask(v: &Vcc, i: usize, memo: &mut Vec<Option<lacquer_defs::MethodMask>>) -> lacquer_defs::MethodMask {
    if let Some(m) = memo[i] {
        return m;
    }
    // Recursion was refused before; this only stops a cycle.
    memo[i] = Some(Method::ALL_MASK);
    let p = &v.procs[i];
    let mut m = Method::ALL_MASK;
    for u in &p.uses {
        m &= u.mask;
    }
    for &(a, _) in &p.returns {
        m &= Method::ALL.iter().filter(|x| x.actions() & a.bit() != 0).fold(0, |acc, x| acc | x.bit());
    }
    for &(callee, _) in &p.calls {
        m &= okmask(v, callee as usize, memo);
    }
    memo[i] = Some(m);
    m
}

/// Subroutines, ACLs and backends referenced but never defined, and
/// defined but never used. VCC walks its symbols in name order (ignoring
/// case) and reports the first.
fn references(v: &mut Vcc) -> R<()> {
    // (name, unused rather than undefined, message)
    let mut found: Vec<(String, bool, Diag)> = Vec::new();
    for (i, p) in v.procs.iter().enumerate() {
        let name = &v.subs[i].name;
        match (p.def, p.first_ref) {
            (None, Some(r)) => {
                found.push((name.clone(), false, Diag::at(format!("Undefined sub {}, first reference:", name), r)))
            }
            (Some(d), None) if p.method.is_none() && !is_builtin(v, d) => {
                found.push((name.clone(), true, Diag::at(format!("Unused sub {}, defined:", name), d)))
            }
            _ => {}
        }
    }
    for (k, o) in v.objects.iter().enumerate() {
        if v.undefined.contains(&k) {
            found.push((o.1.clone(), false, Diag::at(format!("Undefined {} {}, first reference:", o.0, o.1), o.2)));
        } else if o.3 == 0 {
            found.push((o.1.clone(), true, Diag::at(format!("Unused {} {}, defined:", o.0, o.1), o.2)));
        }
    }
    found.sort_by_key(|(name, ..)| name.to_ascii_lowercase());
    for (_, unused, d) in found {
        if unused && !v.opts.err_unref {
            // Only a warning then, printed with any error after it.
            v.diags.push(d.text("(That was just a warning)\n"));
        } else {
            return v.fail(d);
        }
    }
    Ok(())
}

fn is_builtin(v: &Vcc, sp: crate::source::Span) -> bool {
    sp.src as usize == v.srcs.list.len() - 1
}

/// A subroutine that calls itself, directly or not.
fn recursion(v: &mut Vcc) -> R<()> {
    let mut order: Vec<usize> = (0..v.subs.len()).collect();
    order.sort_by(|a, b| v.subs[*a].name.cmp(&v.subs[*b].name));
    let mut done = vec![false; v.subs.len()];
    for i in order {
        let mut active = vec![false; v.subs.len()];
        if let Some(d) = recurse(v, i as SubId, &mut active, &mut done) {
            return v.fail(d);
        }
    }
    Ok(())
}

fn recurse(v: &Vcc, s: SubId, active: &mut [bool], done: &mut [bool]) -> Option<Diag> {
    let i = s as usize;
    if active[i] {
        return Some(Diag::at("Subroutine recurses on", v.procs[i].def?));
    }
    if done[i] {
        return None;
    }
    active[i] = true;
    for &(callee, at) in &v.procs[i].calls {
        if let Some(mut d) = recurse(v, callee, active, done) {
            d.push(Piece::Text(format!("\n...called from \"{}\"\n", v.subs[i].name)));
            d.push(Piece::Where(at));
            return Some(d);
        }
    }
    active[i] = false;
    done[i] = true;
    None
}

/// The method entry subroutine for each method.
fn method_subs(v: &Vcc) -> Vec<(Method, SubId)> {
    Method::ALL
        .iter()
        .filter_map(|m| match v.syms.get(m.as_str()).map(|s| &s.kind) {
            Some(crate::symb::SymKind::Sub(id)) => Some((*m, *id)),
            _ => None,
        })
        .collect()
}

/// Every `return()` reachable from a method is legal there.
fn returns(v: &mut Vcc) -> R<()> {
    for (m, sid) in method_subs(v) {
        if let Some(mut d) = bad_return(v, sid, m, &mut vec![false; v.subs.len()]) {
            d.push(Piece::Text(format!("\n...which is the \"{}\" subroutine\n", m.as_str())));
            let mut legal = String::from("Legal returns are:");
            for a in Action::ALL.iter().filter(|a| m.actions() & a.bit() != 0) {
                legal.push_str(&format!(" \"{}\"", a.as_str()));
            }
            legal.push('\n');
            d.push(Piece::Text(legal));
            return v.fail(d);
        }
    }
    Ok(())
}

fn bad_return(v: &Vcc, s: SubId, m: Method, seen: &mut Vec<bool>) -> Option<Diag> {
    let i = s as usize;
    if seen[i] {
        return None;
    }
    seen[i] = true;
    let p = &v.procs[i];
    if let Some(&(a, at)) = p.returns.iter().find(|(a, _)| m.actions() & a.bit() == 0) {
        let mut d = Diag::at(format!("Invalid return \"{}\"", a.as_str()), at);
        push_in_sub(v, &mut d, i);
        return Some(d);
    }
    for &(callee, at) in &p.calls {
        if let Some(mut d) = bad_return(v, callee, m, seen) {
            d.push(Piece::Text(format!("\n...called from \"{}\"\n", v.subs[i].name)));
            d.push(Piece::Where(at));
            return Some(d);
        }
    }
    None
}

fn push_in_sub(v: &Vcc, d: &mut Diag, i: usize) {
    d.push(Piece::Text(format!("\n...in subroutine \"{}\"\n", v.subs[i].name)));
    if let Some(def) = v.procs[i].def {
        d.push(Piece::Where(def));
    }
}

/// Every variable and action reachable from a method is available there
/// (VCC's `vcc_CheckUses`, which walks the methods in name order).
fn uses(v: &mut Vcc) -> R<()> {
    let mut methods = method_subs(v);
    methods.sort_by_key(|(m, _)| m.as_str());
    for (m, sid) in methods {
        let i = sid as usize;
        let mut d = Diag::new(Vec::new());
        if let Some(u) = illegal_use(v, i, m, &mut d) {
            d.push(Piece::Where2(u.first, u.last));
            d.push(Piece::Text(format!("{} in subroutine '{}'.\n", u.what, m.as_str())));
            return v.fail(d);
        }
        if !d.pieces.is_empty() {
            return v.fail(d);
        }
        let mut seen = vec![false; v.subs.len()];
        seen[i] = true;
        for &(callee, at) in &v.procs[i].calls {
            if let Some(mut d) = bad_use(v, callee, m, &mut seen) {
                d.push(Piece::Text(format!("\n...called from \"{}\"\n", v.subs[i].name)));
                d.push(Piece::Where(at));
                d.push(Piece::Text(format!("\n...which is the \"{}\" subroutine\n", m.as_str())));
                return v.fail(d);
            }
        }
    }
    Ok(())
}

/// VCC's `vcc_FindIllegalUse`: the first use in sub `i` that method `m`
/// does not allow. A `set` of a read-only variable is reported into `d` as
/// it is met ("Variable is read only."), and then stops the search.
fn illegal_use(v: &Vcc, i: usize, m: Method, d: &mut Diag) -> Option<Use> {
    let mut found = None;
    for u in &v.procs[i].uses {
        let mut pw = None;
        if let (0, Some(read)) = (u.mask, u.write_of) {
            if read == 0 {
                d.push(Piece::Where2(u.first, u.last));
                d.push(Piece::text("Variable cannot be set.\n"));
            } else if read & m.bit() == 0 {
                pw = Some(Use { what: "Not available", ..u.clone() });
            } else {
                d.push(Piece::Where2(u.first, u.last));
                d.push(Piece::text("Variable is read only.\n"));
            }
        }
        if found.is_some() {
            continue;
        }
        if !d.pieces.is_empty() {
            found = pw;
        } else if u.mask & m.bit() == 0 {
            found = Some(pw.unwrap_or_else(|| u.clone()));
        }
    }
    found
}

fn bad_use(v: &Vcc, s: SubId, m: Method, seen: &mut Vec<bool>) -> Option<Diag> {
    let i = s as usize;
    if seen[i] {
        return None;
    }
    seen[i] = true;
    let mut d = Diag::new(Vec::new());
    if let Some(u) = illegal_use(v, i, m, &mut d) {
        d.push(Piece::Where2(u.first, u.last));
        d.push(Piece::Text(format!("{} from subroutine '{}'.\n", u.what, m.as_str())));
        push_in_sub(v, &mut d, i);
        return Some(d);
    }
    if !d.pieces.is_empty() {
        return Some(d);
    }
    for &(callee, at) in &v.procs[i].calls {
        if let Some(mut d) = bad_use(v, callee, m, seen) {
            d.push(Piece::Text(format!("\n...called from \"{}\"\n", v.subs[i].name)));
            d.push(Piece::Where(at));
            return Some(d);
        }
    }
    None
}
