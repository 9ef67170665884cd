//! Ban expressions (Varnish 7.1's `cache_ban_build.c` and the evaluation in
//! `cache_ban.c`): `ban("req.url ~ ^/a && obj.http.x-tag == news")` from
//! VCL, `ban …` from the admin CLI. An expression is conditions joined by
//! `&&`, each `FIELD OP ARG`:
//!
//! - fields, matched by prefix as varnishd matches them: `req.url`,
//!   `req.http.NAME`, `obj.status`, `obj.http.NAME` (strings: `==`, `!=`,
//!   `~`, `!~`, the regular expressions PCRE2's) and the durations
//!   `obj.ttl`, `obj.age`, `obj.grace`, `obj.keep` (`==`, `!=`, `>`, `>=`,
//!   `<`, `<=` and a duration with its unit);
//! - the VCL `ban()` splits its string at white space; the CLI has split
//!   its words already, quotes and all.
//!
//! `obj.ttl` and `obj.age` are measured at the time the ban was made, so
//! the same object gets the same answer whenever it is tested; such bans
//! are never duplicates of one another (`BANS_FLAG_NODEDUP`).

use lacquer_cache::{render_duration, BanReq, Lifetime, NewBan};
use lacquer_vcl::regex::Regex;

use crate::msg::Msg;

/// The fields, in varnishd's order (`tbl/ban_vars.h`): the first whose
/// name starts the word is taken.
const FIELDS: &[(&str, FieldKind)] = &[
    ("req.url", FieldKind::ReqUrl),
    ("req.http.", FieldKind::ReqHttp),
    ("obj.status", FieldKind::ObjStatus),
    ("obj.http.", FieldKind::ObjHttp),
    ("obj.ttl", FieldKind::ObjTtl),
    ("obj.age", FieldKind::ObjAge),
    ("obj.grace", FieldKind::ObjGrace),
    ("obj.keep", FieldKind::ObjKeep),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    ReqUrl,
    ReqHttp,
    ObjStatus,
    ObjHttp,
    ObjTtl,
    ObjAge,
    ObjGrace,
    ObjKeep,
}

impl FieldKind {
    fn is_duration(self) -> bool {
        matches!(self, FieldKind::ObjTtl | FieldKind::ObjAge | FieldKind::ObjGrace | FieldKind::ObjKeep)
    }

    fn is_req(self) -> bool {
        matches!(self, FieldKind::ReqUrl | FieldKind::ReqHttp)
    }
}

/// The operators, in varnishd's order (`tbl/ban_oper.h`), which is the
/// order its error messages list them in.
const OPERS: &[(&str, Op)] = &[
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("~", Op::Match),
    ("!~", Op::NoMatch),
    (">", Op::Gt),
    (">=", Op::Ge),
    ("<", Op::Lt),
    ("<=", Op::Le),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Match,
    NoMatch,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn allowed(self, duration: bool) -> bool {
        match self {
            Op::Eq | Op::Ne => true,
            Op::Match | Op::NoMatch => !duration,
            _ => duration,
        }
    }
}

#[derive(Debug)]
enum Arg {
    Text(Vec<u8>),
    Regex(Regex),
    Duration(f64),
}

#[derive(Debug)]
struct Cond {
    field: FieldKind,
    /// The header name as given, for `req.http.` and `obj.http.`.
    header: String,
    /// The header name lower-cased, as the lookups want it.
    header_lc: Vec<u8>,
    op: Op,
    /// The argument as given.
    text: String,
    arg: Arg,
}

/// A parsed ban: its conditions, all of which must hold.
#[derive(Debug)]
pub(crate) struct BanSpec {
    conds: Vec<Cond>,
}

/// Parses the string of VCL's `ban()` (and `std.ban()`): the error is
/// worded as varnishd words it, without its `ban(): ` prefix.
pub(crate) fn parse_vcl(expr: Option<&[u8]>) -> Result<BanSpec, String> {
    let Some(expr) = expr else { return Err("Null argument".into()) };
    let text = String::from_utf8_lossy(expr);
    let w: Vec<&str> = text.split_ascii_whitespace().collect();
    let mut conds = Vec::new();
    let mut i = 0;
    loop {
        let Some(a1) = w.get(i) else { return Err("No ban conditions found.".into()) };
        let Some(a2) = w.get(i + 1) else { return Err("Expected comparison operator.".into()) };
        let Some(a3) = w.get(i + 2) else { return Err("Expected second operand.".into()) };
        conds.push(condition(a1, a2, a3)?);
        i += 3;
        match w.get(i) {
            None => return Ok(BanSpec { conds }),
            Some(&"&&") => i += 1,
            Some(other) => return Err(format!("Expected && between conditions, found \"{other}\"")),
        }
    }
}

/// Parses the words of the CLI's `ban` (at least three, which the command
/// table checks), with varnishd's errors.
pub(crate) fn parse_cli(w: &[String]) -> Result<BanSpec, String> {
    if w.len() % 4 != 3 {
        return Err("Wrong number of arguments".into());
    }
    if let Some(bad) = w.iter().skip(3).step_by(4).find(|a| *a != "&&") {
        return Err(format!("Found \"{bad}\" expected &&"));
    }
    let conds = w.chunks(4).map(|c| condition(&c[0], &c[1], &c[2])).collect::<Result<_, _>>()?;
    Ok(BanSpec { conds })
}

/// One `FIELD OP ARG` (varnishd's `BAN_AddTest`).
fn condition(a1: &str, a2: &str, a3: &str) -> Result<Cond, String> {
    let Some((name, field)) = FIELDS.iter().find(|(name, _)| a1.starts_with(name)) else {
        return Err(format!("Unknown or unsupported field \"{a1}\""));
    };
    let header = match field {
        FieldKind::ReqHttp | FieldKind::ObjHttp => a1[name.len()..].to_string(),
        _ => String::new(),
    };
    let duration = field.is_duration();
    let op = OPERS.iter().find(|(s, _)| *s == a2).map(|(_, op)| *op).filter(|op| op.allowed(duration));
    let Some(op) = op else {
        let help: Vec<&str> = OPERS.iter().filter(|(_, op)| op.allowed(duration)).map(|(s, _)| *s).collect();
        let (last, rest) = help.split_last().expect("every field has operators");
        return Err(format!("expected conditional ({} or {last}) got \"{a2}\"", rest.join(", ")));
    };
    let arg = if duration {
        let d = duration_arg(a3).ok_or_else(|| format!("expected duration <n.nn>[ms|s|m|h|d|w|y] got \"{a3}\""))?;
        Arg::Duration(d)
    } else if matches!(op, Op::Match | Op::NoMatch) {
        Arg::Regex(Regex::new(a3).map_err(|e| format!("Regex compile error: {}", e.message()))?)
    } else {
        Arg::Text(a3.as_bytes().to_vec())
    };
    let header_lc = header.to_ascii_lowercase().into_bytes();
    Ok(Cond { field: *field, header, header_lc, op, text: a3.to_string(), arg })
}

/// A duration as a ban takes it (varnishd's `VNUM_duration`): a number
/// and a unit (`10s`, `1.5h`, `-3s`), optionally with blanks between.
fn duration_arg(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(n * lacquer_vcl::conv::duration_unit(unit.trim_start())?)
}

impl BanSpec {
    /// Whether a condition looks at the request (`BANS_FLAG_REQ`).
    pub fn uses_req(&self) -> bool {
        self.conds.iter().any(|c| c.field.is_req())
    }

    /// The expression as `ban.list` shows it (`ban_render`): the field's
    /// name, the operator, the argument (durations rendered anew).
    pub fn render(&self) -> String {
        let conds = self.conds.iter().map(|c| {
            let name = FIELDS.iter().find(|(_, f)| *f == c.field).map_or("", |(n, _)| n);
            let op = OPERS.iter().find(|(_, o)| *o == c.op).map_or("", |(s, _)| s);
            let arg = match c.arg {
                Arg::Duration(d) => render_duration(d),
                _ => c.text.clone(),
            };
            format!("{name}{} {op} {arg}", c.header)
        });
        conds.collect::<Vec<_>>().join(" && ")
    }

    /// What makes two bans the same for `ban_dups`; none for bans on
    /// `obj.ttl` or `obj.age`, which depend on when they were made.
    fn dedup(&self) -> Option<String> {
        if self.conds.iter().any(|c| matches!(c.field, FieldKind::ObjTtl | FieldKind::ObjAge)) {
            return None;
        }
        let key = self.conds.iter().map(|c| {
            let arg = match c.arg {
                Arg::Duration(d) => format!("{:x}", d.to_bits()),
                _ => c.text.clone(),
            };
            format!("{:?}\u{0}{}\u{0}{:?}\u{0}{arg}", c.field, c.header, c.op)
        });
        Some(key.collect::<Vec<_>>().join("\u{1}"))
    }

    /// The ban as the cache takes it, made at `t`.
    pub fn into_ban(self, t: f64) -> NewBan<Msg> {
        let spec = self.render();
        let dedup = self.dedup();
        let uses_req = self.uses_req();
        let uses_obj = self.conds.iter().any(|c| !c.field.is_req());
        let test = Box::new(move |obj: &Msg, life: &Lifetime, req: Option<&BanReq<'_>>, tests: &mut u64| {
            self.conds.iter().all(|c| {
                *tests += 1;
                c.holds(obj, life, req, t)
            })
        });
        NewBan { spec, dedup, uses_req, uses_obj, test }
    }
}

impl Cond {
    /// Whether the condition holds (varnishd's `ban_evaluate`); `t` is
    /// when the ban was made. Without a request, conditions on it fail
    /// (the lurker never tests such bans).
    fn holds(&self, obj: &Msg, life: &Lifetime, req: Option<&BanReq<'_>>, t: f64) -> bool {
        let status;
        let value: Option<std::borrow::Cow<'_, [u8]>> = match self.field {
            FieldKind::ReqUrl => match req {
                Some(r) => Some(r.url.into()),
                None => return false,
            },
            FieldKind::ReqHttp => match req {
                Some(r) => (r.header)(&self.header_lc).map(Into::into),
                None => return false,
            },
            FieldKind::ObjHttp => obj.header(&self.header_lc).map(Into::into),
            FieldKind::ObjStatus => {
                status = obj.head.status().to_string();
                Some(status.as_bytes().into())
            }
            FieldKind::ObjTtl => return self.compare(life.t_origin + life.ttl, self.number() + t),
            FieldKind::ObjAge => return self.compare(-life.t_origin, -(t - self.number())),
            FieldKind::ObjGrace => return self.compare(life.grace, self.number()),
            FieldKind::ObjKeep => return self.compare(life.keep, self.number()),
        };
        match (&self.arg, value) {
            (Arg::Text(want), Some(v)) => (*v == **want) == (self.op == Op::Eq),
            // A missing header is unequal to anything, and matches no
            // expression, negated or not.
            (Arg::Text(_), None) => self.op == Op::Ne,
            (Arg::Regex(re), Some(v)) => re.is_match(&v).unwrap_or(false) == (self.op == Op::Match),
            _ => false,
        }
    }

    fn number(&self) -> f64 {
        match self.arg {
            Arg::Duration(d) => d,
            _ => f64::NAN,
        }
    }

    fn compare(&self, a: f64, b: f64) -> bool {
        match self.op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Match | Op::NoMatch => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(status: u16, headers: &[(&str, &str)]) -> Msg {
        let mut m = Msg::response(status, b"x");
        for (n, v) in headers {
            m.append(n.as_bytes(), v.as_bytes());
        }
        m
    }

    fn test(expr: &str, o: &Msg, url: Option<&str>) -> bool {
        let now = crate::msg::now();
        let ban = parse_vcl(Some(expr.as_bytes())).unwrap().into_ban(now);
        let none = |_: &[u8]| None;
        let life = Lifetime { t_origin: now - 10.0, ttl: 60.0, grace: 10.0, keep: 0.0 };
        let mut n = 0;
        match url {
            Some(u) => (ban.test)(o, &life, Some(&BanReq { url: u.as_bytes(), header: &none }), &mut n),
            None => (ban.test)(o, &life, None, &mut n),
        }
    }

    #[test]
    fn expressions_match_objects_and_requests() {
        let o = obj(200, &[("X-Tag", "news sport")]);
        assert!(test("obj.http.x-tag ~ sport", &o, None));
        assert!(test("obj.http.x-missing != a", &o, None));
        assert!(!test("obj.http.x-missing !~ a", &o, None), "a missing header matches no expression");
        assert!(!test("obj.status == 200 && obj.http.x-tag !~ news", &o, None));
        assert!(test("obj.status ~ ^2", &o, None));
        assert!(!test("req.url ~ ^/a", &o, None), "needs a request");
        assert!(test("req.url ~ ^/a && obj.status == 200", &o, Some("/abc")));
        assert!(test("obj.age > 5s && obj.ttl < 1m", &o, None));
        assert!(test("obj.grace == 10s && obj.keep == 0s", &o, None));
        assert!(parse_vcl(Some(b"req.url ~ ^/a")).unwrap().uses_req());
        assert!(!parse_vcl(Some(b"obj.status != 200")).unwrap().uses_req());
    }

    #[test]
    fn bans_render_and_deduplicate_as_varnish_s() {
        let spec = parse_vcl(Some(b"obj.http.X-Foo ~ a && obj.grace != 10.0s")).unwrap();
        assert_eq!(spec.render(), "obj.http.X-Foo ~ a && obj.grace != 10s");
        assert!(spec.dedup().is_some());
        assert_eq!(parse_vcl(Some(b"req.urlx == /")).unwrap().render(), "req.url == /");
        assert!(parse_vcl(Some(b"obj.ttl > 1d")).unwrap().dedup().is_none());
    }

    #[test]
    fn bad_expressions_are_refused_in_varnish_s_words() {
        for (expr, want) in [
            ("foo == bar", "Unknown or unsupported field \"foo\""),
            ("req.url = /", "expected conditional (==, !=, ~ or !~) got \"=\""),
            ("obj.age // 4d", "expected conditional (==, !=, >, >=, < or <=) got \"//\""),
            ("obj.age == 4", "expected duration <n.nn>[ms|s|m|h|d|w|y] got \"4\""),
            ("", "No ban conditions found."),
            ("req.url == a &&", "No ban conditions found."),
            ("req.url", "Expected comparison operator."),
            ("req.url ~", "Expected second operand."),
            ("req.url ~ /a || req.url ~ /b", "Expected && between conditions, found \"||\""),
            ("req.url ~ [[[", "Regex compile error: missing terminating ] for character class"),
        ] {
            let e = parse_vcl(Some(expr.as_bytes())).unwrap_err();
            assert_eq!(e, want, "{expr}");
        }
        assert_eq!(parse_vcl(None).unwrap_err(), "Null argument");
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(parse_cli(&w("req.url == a &&")).unwrap_err(), "Wrong number of arguments");
        assert_eq!(parse_cli(&w("req.url == a || b == c")).unwrap_err(), "Found \"||\" expected &&");
        assert!(parse_cli(&w("req.url == a && obj.http.x ~ b")).is_ok());
    }
}
