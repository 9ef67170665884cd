//! The interpreter: runs a method of a [`Program`] against a
//! [`VclContext`].
//!
//! Expressions evaluate to [`Value`]s that borrow from the program and the
//! context where they can (a header compared with a constant allocates
//! nothing); strings are only built when they are concatenated, converted
//! or stored.

use std::borrow::Cow;

use lacquer_defs::{Action, Method};

use crate::conv;
use crate::ctx::{Failure, Handling, Value, VclContext};
use crate::program::*;

/// Runs `method` and returns what it decided.
pub fn run<C: VclContext>(p: &Program, method: Method, ctx: &mut C) -> Result<Handling, Failure> {
    let sub = p.methods[method as usize];
    match block(p, &p.subs[sub as usize].body, ctx)? {
        Flow::Return(h) => Ok(h),
        // The built-in VCL ends every method with a return; a program
        // without it (hand-built) falls back to failing.
        Flow::Next | Flow::Leave => Err(Failure(format!("{} did not return", method.as_str()))),
    }
}

enum Flow {
    Next,
    Return(Handling),
    /// `return;`: the rest of the current subroutine is skipped.
    Leave,
}

fn block<C: VclContext>(p: &Program, stmts: &[Stmt], ctx: &mut C) -> Result<Flow, Failure> {
    for s in stmts {
        match stmt(p, s, ctx)? {
            Flow::Next => {}
            f => return Ok(f),
        }
    }
    Ok(Flow::Next)
}

fn stmt<C: VclContext>(p: &Program, s: &Stmt, ctx: &mut C) -> Result<Flow, Failure> {
    match s {
        Stmt::Set(place, e) => match place {
            Place::Var(v) => {
                let val = eval(p, &*ctx, e)?.into_owned();
                ctx.set(*v, val)?;
            }
            Place::Header(fam, h) => {
                let name = &p.headers[*h as usize];
                if let Expr::Const(Const::Str(s)) = e {
                    // The common case, a constant: no copy.
                    ctx.set_header(*fam, name, s)?;
                } else if let Expr::Concat(parts) = e {
                    // The parts go straight into the header (Varnish's
                    // STRANDS): only the header is charged.
                    let val = concat(p, &*ctx, parts)?.unwrap_or_default();
                    ctx.set_header(*fam, name, &val)?;
                } else {
                    let val = string_of(p, &*ctx, e)?.map(Cow::into_owned).unwrap_or_default();
                    ctx.set_header(*fam, name, &val)?;
                }
            }
        },
        Stmt::Unset(place) => match place {
            Place::Var(v) => ctx.unset(*v)?,
            Place::Header(fam, h) => ctx.unset_header(*fam, &p.headers[*h as usize]),
        },
        Stmt::Call(id) => {
            return match block(p, &p.subs[*id as usize].body, ctx)? {
                Flow::Leave => Ok(Flow::Next),
                f => Ok(f),
            }
        }
        Stmt::Return(r) => return Ok(Flow::Return(handling(p, r, ctx)?)),
        Stmt::Leave => return Ok(Flow::Leave),
        Stmt::If(arms, els) => {
            for (cond, body) in arms {
                if truth(p, &*ctx, cond)? {
                    return block(p, body, ctx);
                }
            }
            return block(p, els, ctx);
        }
        Stmt::Synthetic(e) => {
            let v = string_of(p, &*ctx, e)?.map(Cow::into_owned).unwrap_or_default();
            ctx.synthetic(&v);
        }
        Stmt::HashData(e) => {
            let v = string_of(p, &*ctx, e)?.map(Cow::into_owned).unwrap_or_default();
            ctx.hash_data(&v);
        }
        Stmt::Ban(e) => {
            let v = string_of(p, &*ctx, e)?.map(Cow::into_owned);
            ctx.ban(v.as_deref());
        }
        // A call made as a statement (a procedure, or a function whose
        // value is dropped) may change the task: its arguments are
        // evaluated first, then the context is lent to it mutably.
        Stmt::Eval(Expr::Call(id, _)) => {
            call_stmt(p, ctx, *id)?;
        }
        Stmt::Eval(e) => {
            eval(p, &*ctx, e)?;
        }
        Stmt::New(i) => {
            if let Some(c) = p.instances[*i as usize].ctor {
                call_stmt(p, ctx, c)?;
            }
        }
    }
    Ok(Flow::Next)
}

fn handling<C: VclContext>(p: &Program, r: &Return, ctx: &C) -> Result<Handling, Failure> {
    Ok(match r {
        Return::Plain(a) => Handling::plain(*a),
        Return::Synth(a, status, reason) => {
            let status = match eval(p, ctx, status)? {
                Value::Int(i) => i,
                _ => 503,
            };
            let reason = match reason {
                Some(e) => string_of(p, ctx, e)?.map(Cow::into_owned),
                None => None,
            };
            Handling { status: Some(status), reason, ..Handling::plain(*a) }
        }
        Return::PassFor(d) => {
            let ttl = match eval(p, ctx, d)? {
                Value::Duration(d) => d,
                _ => 0.0,
            };
            Handling { pass_ttl: Some(ttl), ..Handling::plain(Action::Pass) }
        }
        Return::Vcl(label) => Handling { label: Some(label.clone()), ..Handling::plain(Action::Vcl) },
        Return::FailWith(why) => {
            let why = string_of(p, ctx, why)?;
            return Err(Failure(String::from_utf8_lossy(why.as_deref().unwrap_or(b"")).into_owned()));
        }
    })
}

/// Evaluates a BOOL expression.
pub fn truth<C: VclContext>(p: &Program, ctx: &C, e: &Expr) -> Result<bool, Failure> {
    match eval(p, ctx, e)? {
        Value::Bool(b) => Ok(b),
        other => Err(Failure(format!("expected BOOL, got {:?}", other))),
    }
}

/// Evaluates a STRING expression; `None` is NULL.
pub fn string_of<'a, C: VclContext>(p: &'a Program, ctx: &'a C, e: &'a Expr) -> Result<Option<Cow<'a, [u8]>>, Failure> {
    Ok(match eval(p, ctx, e)? {
        Value::Str(s) => s,
        other => to_string(p, ctx, other),
    })
}

/// The parts of a concatenation joined; NULL when every part is.
fn concat<C: VclContext>(p: &Program, ctx: &C, parts: &[Expr]) -> Result<Option<Vec<u8>>, Failure> {
    let mut out = Vec::new();
    let mut any = false;
    for part in parts {
        if let Some(s) = string_of(p, ctx, part)? {
            out.extend_from_slice(&s);
            any = true;
        }
    }
    // All parts NULL concatenate to NULL, as in Varnish.
    Ok(any.then_some(out))
}

/// A value converted to STRING, the new string charged to the workspace.
fn to_string<'a, C: VclContext>(p: &Program, ctx: &'a C, v: Value<'a>) -> Option<Cow<'a, [u8]>> {
    if let Value::Str(s) = v {
        return s;
    }
    let s = convert(p, ctx, v);
    if let Some(Cow::Owned(o)) = &s {
        ctx.ws_charge(o.len());
    }
    s
}

fn convert<'a, C: VclContext>(p: &Program, ctx: &'a C, v: Value<'a>) -> Option<Cow<'a, [u8]>> {
    let s = match v {
        Value::Str(s) => return s,
        Value::Int(i) => conv::int_to_string(i),
        Value::Real(r) => conv::real_to_string(r),
        Value::Duration(d) => conv::duration_to_string(d),
        Value::Bytes(b) => conv::bytes_to_string(b),
        Value::Time(t) => conv::time_to_string(t),
        Value::Bool(b) => conv::bool_to_string(b).to_string(),
        Value::Ip(Some(a)) => conv::ip_to_string(&a),
        Value::Ip(None) => return None,
        Value::Backend(Some(b)) => return ctx.backend_name(b).map(|n| Cow::Owned(n.as_bytes().to_vec())),
        // An ACL is its name, as `Expr::Acl` evaluates.
        Value::Acl(a) => {
            return a.and_then(|id| p.acls.get(id as usize)).map(|a| Cow::Owned(a.name.as_bytes().to_vec()))
        }
        Value::Backend(None) | Value::Opaque => return None,
        Value::Strands(parts) => {
            let mut out = Vec::new();
            for part in parts.iter().flatten() {
                out.extend_from_slice(part);
            }
            return Some(Cow::Owned(out));
        }
    };
    Some(Cow::Owned(s.into_bytes()))
}

fn fail<T>(msg: &str) -> Result<T, Failure> {
    Err(Failure(msg.to_string()))
}

/// Evaluates any expression.
pub fn eval<'a, C: VclContext>(p: &'a Program, ctx: &'a C, e: &'a Expr) -> Result<Value<'a>, Failure> {
    Ok(match e {
        Expr::Const(c) => match c {
            Const::Str(s) => Value::Str(Some(Cow::Borrowed(s))),
            Const::Int(i) => Value::Int(*i),
            Const::Real(r) => Value::Real(*r),
            Const::Duration(d) => Value::Duration(*d),
            Const::Bytes(b) => Value::Bytes(*b),
            Const::Bool(b) => Value::Bool(*b),
            Const::Time(t) => Value::Time(*t),
            Const::NoBackend => Value::Backend(None),
            Const::Ip(a) => Value::Ip(Some(*a)),
        },
        Expr::Var(v, _) => ctx.read(*v)?,
        Expr::Header(fam, h) => Value::Str(ctx.header(*fam, &p.headers[*h as usize]).map(Cow::Borrowed)),
        Expr::Strands(parts) => {
            Value::Strands(parts.iter().map(|part| string_of(p, ctx, part)).collect::<Result<_, _>>()?)
        }
        Expr::Concat(parts) => {
            let out = concat(p, ctx, parts)?;
            if let Some(o) = &out {
                ctx.ws_charge(o.len());
            }
            Value::Str(out.map(Cow::Owned))
        }
        Expr::ToString(inner) => {
            let v = eval(p, ctx, inner)?;
            Value::Str(to_string(p, ctx, v))
        }
        Expr::ToBool(inner) => Value::Bool(match eval(p, ctx, inner)? {
            Value::Str(s) => s.is_some(),
            Value::Int(i) => i != 0,
            Value::Duration(d) => d > 0.0,
            Value::Backend(b) => b.is_some(),
            Value::Bool(b) => b,
            _ => false,
        }),
        Expr::ToReal(inner) => match eval(p, ctx, inner)? {
            Value::Int(i) => Value::Real(i as f64),
            v => v,
        },
        Expr::Arith(op, a, b, ty) => arith(*op, eval(p, ctx, a)?, eval(p, ctx, b)?, *ty)?,
        Expr::Neg(inner) => match eval(p, ctx, inner)? {
            Value::Int(i) => Value::Int(-i),
            Value::Real(r) => Value::Real(-r),
            Value::Duration(d) => Value::Duration(-d),
            v => v,
        },
        Expr::Cmp(op, a, b) => Value::Bool(compare(p, ctx, *op, a, b)?),
        Expr::Match(s, re, neg) => {
            let s = string_of(p, ctx, s)?;
            let m = p.regexes[*re as usize]
                .is_match(s.as_deref().unwrap_or(b""))
                .map_err(|e| Failure(e.match_failure()))?;
            Value::Bool(m != *neg)
        }
        Expr::AclMatch(ip, acl, neg) => Value::Bool(acl_match(p, ctx, ip, *acl)? != *neg),
        Expr::AclMatchDyn(ip, acl, neg) => match eval(p, ctx, acl)? {
            Value::Acl(Some(id)) if (id as usize) < p.acls.len() => Value::Bool(acl_match(p, ctx, ip, id)? != *neg),
            Value::Acl(Some(id)) => return fail(&format!("ACL {id} is not one of this VCL's")),
            _ => return fail("Cannot match a null ACL"),
        },
        Expr::And(v) => {
            for x in v {
                if !truth(p, ctx, x)? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Expr::Or(v) => {
            for x in v {
                if truth(p, ctx, x)? {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Expr::Not(x) => Value::Bool(!truth(p, ctx, x)?),
        Expr::Builtin(b, args, re) => {
            let subject = string_of(p, ctx, &args[0])?;
            let with = string_of(p, ctx, &args[1])?;
            // A NULL subject or replacement counts as empty, as in Varnish.
            let all = *b == Builtin::Regsuball;
            let out = p.regexes[*re as usize]
                .try_sub(subject.as_deref().unwrap_or(b""), with.as_deref().unwrap_or(b""), all)
                .map_err(|e| Failure(e.regsub_failure()))?;
            ctx.ws_charge(out.len());
            Value::Str(Some(Cow::Owned(out)))
        }
        Expr::Method(m, inner) => match m {
            TypeMethod::Lower | TypeMethod::Upper => {
                let s = string_of(p, ctx, inner)?;
                Value::Str(s.map(|s| {
                    let v = if *m == TypeMethod::Lower { s.to_ascii_lowercase() } else { s.to_ascii_uppercase() };
                    ctx.ws_charge(v.len());
                    Cow::Owned(v)
                }))
            }
            TypeMethod::Resolve => match eval(p, ctx, inner)? {
                Value::Backend(Some(b)) => Value::Backend(ctx.resolve_backend(b)),
                other => other,
            },
            // Storage statistics come from the cache, which the compiler
            // does not know; the context answers them.
            TypeMethod::FreeSpace | TypeMethod::UsedSpace | TypeMethod::Happy => match &**inner {
                Expr::Stevedore(name) => ctx.stevedore(name, *m),
                _ => return Err(Failure(format!("{m:?} of something that is not a storage"))),
            },
        },
        Expr::Backend(id) => Value::Backend(Some(*id)),
        // As STRING these are their names (module calls take the ACL or
        // probe itself from the expression, see the server's `vmod`).
        Expr::Acl(id) => Value::Str(p.acls.get(*id as usize).map(|a| Cow::Borrowed(a.name.as_bytes()))),
        Expr::Probe(id) => Value::Str(p.probes.get(*id as usize).map(|d| Cow::Borrowed(d.name.as_bytes()))),
        Expr::Stevedore(name) => Value::Str(Some(Cow::Owned(format!("storage.{name}").into_bytes()))),
        Expr::Call(id, _) => call(p, ctx, *id)?,
    })
}

/// A call as a statement: arguments evaluated and detached, then the call
/// made with the context lent mutably.
fn call_stmt<C: VclContext>(p: &Program, ctx: &mut C, id: CallId) -> Result<Value<'static>, Failure> {
    let site = &p.calls[id as usize];
    let args = site
        .args
        .iter()
        .map(|a| a.as_ref().map(|e| eval(p, &*ctx, e).map(Value::into_owned)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    ctx.call_mut(p, id, &args)
}

/// Evaluates a call site's arguments and hands the call to the context.
fn call<'a, C: VclContext>(p: &'a Program, ctx: &'a C, id: CallId) -> Result<Value<'a>, Failure> {
    let site = &p.calls[id as usize];
    let args =
        site.args.iter().map(|a| a.as_ref().map(|e| eval(p, ctx, e)).transpose()).collect::<Result<Vec<_>, _>>()?;
    ctx.call(p, id, &args)
}

/// Whether the IP `ip` evaluates to matches ACL `acl` (no IP matches
/// nothing); a `+log` ACL logs which entry decided, as `VCL_acl`.
fn acl_match<C: VclContext>(p: &Program, ctx: &C, ip: &Expr, acl: AclId) -> Result<bool, Failure> {
    let def = &p.acls[acl as usize];
    Ok(match eval(p, ctx, ip)? {
        Value::Ip(Some(a)) if def.log => {
            let hit = def.acl.lookup(a.ip());
            let line = match hit {
                Some(e) => {
                    let verdict = if e.negated { "NEG_MATCH" } else { "MATCH" };
                    let label = def.labels.get(e.label as usize).map_or("", String::as_str);
                    format!("{verdict} {} {label}", def.name)
                }
                None => format!("NO_MATCH {}", def.name),
            };
            ctx.log_acl(&line);
            hit.is_some_and(|e| !e.negated)
        }
        Value::Ip(Some(a)) => def.acl.matches(a.ip()),
        _ => false,
    })
}

fn arith<'a>(op: ArithOp, a: Value<'a>, b: Value<'a>, ty: lacquer_defs::VclType) -> Result<Value<'a>, Failure> {
    use lacquer_defs::VclType as T;
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    let num = |v: &Value| match v {
        Value::Int(i) => *i as f64,
        Value::Real(r) | Value::Duration(r) | Value::Time(r) | Value::Bytes(r) => *r,
        _ => 0.0,
    };
    if ty == T::Int {
        let (Some(x), Some(y)) = (int(&a), int(&b)) else {
            return fail("INT arithmetic on non-INT values");
        };
        let r = match op {
            ArithOp::Add => x.checked_add(y),
            ArithOp::Sub => x.checked_sub(y),
            ArithOp::Mul => x.checked_mul(y),
            ArithOp::Div => {
                if y == 0 {
                    return fail("INT division by zero");
                }
                x.checked_div(y)
            }
            ArithOp::Rem => {
                if y == 0 {
                    return fail("INT modulo by zero");
                }
                x.checked_rem(y)
            }
        };
        return r.map(Value::Int).ok_or_else(|| Failure("INT overflow".into()));
    }
    let (x, y) = (num(&a), num(&b));
    let r = match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div => {
            if y == 0.0 {
                return fail(&format!("{} division by zero", ty.as_str()));
            }
            x / y
        }
        ArithOp::Rem => x % y,
    };
    if !r.is_finite() {
        return fail(&format!("{} overflow", ty.as_str()));
    }
    Ok(match ty {
        T::Real => Value::Real(r),
        T::Duration => Value::Duration(r),
        T::Time => Value::Time(r),
        T::Bytes => Value::Bytes(r),
        _ => Value::Real(r),
    })
}

fn compare<C: VclContext>(p: &Program, ctx: &C, op: CmpOp, a: &Expr, b: &Expr) -> Result<bool, Failure> {
    let x = eval(p, ctx, a)?;
    let y = eval(p, ctx, b)?;
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (&x, &y) {
        (Value::Str(_), _) | (_, Value::Str(_)) => {
            let xs = match x {
                Value::Str(s) => s,
                v => to_string(p, ctx, v),
            };
            let ys = match y {
                Value::Str(s) => s,
                v => to_string(p, ctx, v),
            };
            // As Varnish's `VRT_strcmp`: a NULL string equals nothing,
            // not even another NULL (two unset headers are not equal).
            match (xs, ys) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => None,
            }
        }
        (Value::Int(i), Value::Int(j)) => Some(i.cmp(j)),
        (Value::Real(i), Value::Real(j))
        | (Value::Duration(i), Value::Duration(j))
        | (Value::Time(i), Value::Time(j))
        | (Value::Bytes(i), Value::Bytes(j)) => i.partial_cmp(j),
        (Value::Bool(i), Value::Bool(j)) => Some(i.cmp(j)),
        (Value::Ip(i), Value::Ip(j)) => {
            let e = i.map(|a| a.ip()) == j.map(|a| a.ip());
            Some(if e { Ordering::Equal } else { Ordering::Less })
        }
        (Value::Backend(i), Value::Backend(j)) => Some(if i == j { Ordering::Equal } else { Ordering::Less }),
        _ => None,
    };
    let Some(o) = ord else {
        return Ok(op == CmpOp::Ne);
    };
    Ok(match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use lacquer_defs::{Action, Method, Var};

    use super::run;
    use crate::testctx::MemContext;
    use crate::{compile_str, Options};

    #[test]
    fn plain_return_leaves_the_subroutine_and_its_builtin_part() {
        // The user's vcl_req_cookie runs before the built-in one, which
        // would drop the cookie; `return;` skips it, as in Varnish.
        let src = "vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }\n\
                   sub vcl_req_cookie { set req.http.x = \"1\"; return; set req.http.x = \"2\"; }\n";
        let p = compile_str("<test>", src, &Options::default()).expect("compiles");
        let mut c = MemContext::new(Method::Recv);
        c.set_str(Var::ReqUrl, "/").set_str(Var::ReqMethod, "GET").set_str(Var::ReqProto, "HTTP/1.1");
        c.add_header(Var::ReqHttp, "Host", "example.com");
        c.add_header(Var::ReqHttp, "Cookie", "a=b");
        let h = run(&p, Method::Recv, &mut c).expect("vcl_recv ran");
        assert_eq!(c.hdr(Var::ReqHttp, "x").as_deref(), Some("1"));
        // The built-in part would have passed a request with a cookie.
        assert_eq!(h.action, Action::Hash);
    }
}
