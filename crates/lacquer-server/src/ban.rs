//! Ban expressions (Varnish's `cache_ban_build.c`): `ban("req.url ~ ^/a
//! && obj.http.x-tag == news")` from VCL, later `ban …` from the admin
//! CLI. An expression is conditions joined by `&&`, each `FIELD OP ARG`:
//!
//! - fields: `req.url`, `req.http.NAME`, `obj.status`, `obj.http.NAME`,
//!   and the durations `obj.ttl`, `obj.age`, `obj.grace`, `obj.keep`;
//! - string operators `==`, `!=`, `~`, `!~` (regular expressions are
//!   PCRE2, as in VCL); `obj.status` and the durations also take `<`,
//!   `>`, `<=`, `>=`;
//! - arguments may be quoted with `"` (Varnish splits the expression as
//!   its CLI splits words).
//!
//! A parsed ban is a test the cache runs against objects: with the request
//! at lookup, or without one in the lurker, which then leaves bans on
//! `req.*` to lookups.

use lacquer_cache::{BanReq, BanTest, Lifetime};
use lacquer_vcl::regex::Regex;

use crate::msg::{now, Msg};

#[derive(Debug)]
enum Field {
    ReqUrl,
    ReqHttp(Vec<u8>),
    ObjStatus,
    ObjHttp(Vec<u8>),
    ObjTtl,
    ObjAge,
    ObjGrace,
    ObjKeep,
}

#[derive(Debug)]
enum Arg {
    Text(Vec<u8>),
    Regex(Regex, bool),
    Number(f64),
}

#[derive(Clone, Copy, Debug)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug)]
struct Cond {
    field: Field,
    cmp: Cmp,
    arg: Arg,
}

/// A parsed ban: its conditions, all of which must hold.
#[derive(Debug)]
pub(crate) struct BanSpec {
    conds: Vec<Cond>,
    /// The expression as given, for `ban.list`.
    pub text: String,
}

/// Parses a ban expression; the error is worded as Varnish words it.
pub(crate) fn parse(text: &str) -> Result<BanSpec, String> {
    // Split as the CLI splits its words (Varnish's `VAV_Parse` for both).
    let w = lacquer_cli::words(text)?;
    let mut conds = Vec::new();
    let mut i = 0;
    loop {
        let Some(field) = w.get(i) else {
            return Err(if i == 0 { "No ban conditions found." } else { "Expected condition after &&." }.into());
        };
        let field = match field.as_str() {
            "req.url" => Field::ReqUrl,
            "obj.status" => Field::ObjStatus,
            "obj.ttl" => Field::ObjTtl,
            "obj.age" => Field::ObjAge,
            "obj.grace" => Field::ObjGrace,
            "obj.keep" => Field::ObjKeep,
            f => match (f.strip_prefix("req.http."), f.strip_prefix("obj.http.")) {
                (Some(""), _) | (_, Some("")) => return Err(format!("Missing header name: \"{f}\"")),
                (Some(h), _) => Field::ReqHttp(h.to_ascii_lowercase().into_bytes()),
                (_, Some(h)) => Field::ObjHttp(h.to_ascii_lowercase().into_bytes()),
                _ => return Err(format!("Unknown or unsupported field \"{f}\"")),
            },
        };
        // In Varnish 7.1 `obj.status` compares as text, like a header; the
        // lifetimes compare as durations.
        let numeric = matches!(field, Field::ObjTtl | Field::ObjAge | Field::ObjGrace | Field::ObjKeep);
        let Some(op) = w.get(i + 1) else { return Err("Expected comparison operator.".into()) };
        let Some(arg) = w.get(i + 2) else { return Err("Expected second operand.".into()) };
        let (cmp, arg) = match op.as_str() {
            "~" | "!~" if !numeric => {
                let re = Regex::new(arg).map_err(|e| format!("Regex compile error: {}", e.message()))?;
                (Cmp::Eq, Arg::Regex(re, op == "~"))
            }
            "==" | "!=" | "<" | ">" | "<=" | ">=" if numeric => {
                let cmp = match op.as_str() {
                    "==" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    ">" => Cmp::Gt,
                    "<=" => Cmp::Le,
                    _ => Cmp::Ge,
                };
                let n =
                    duration(arg).ok_or_else(|| format!("expected duration <n.nn>.ms|s|m|h|d|w|y. got \"{arg}\""))?;
                (cmp, Arg::Number(n))
            }
            "==" | "!=" => (if op == "==" { Cmp::Eq } else { Cmp::Ne }, Arg::Text(arg.as_bytes().to_vec())),
            _ if numeric => return Err(format!("expected conditional (==, !=, >, >=, < or <=) got \"{op}\"")),
            _ => return Err(format!("expected conditional (==, !=, ~ or !~) got \"{op}\"")),
        };
        conds.push(Cond { field, cmp, arg });
        i += 3;
        match w.get(i).map(String::as_str) {
            None => break,
            Some("&&") => i += 1,
            Some(other) => return Err(format!("Expected && between conditions, found \"{other}\"")),
        }
    }
    Ok(BanSpec { conds, text: text.trim().to_string() })
}

/// A duration as a ban writes it: a number and a VCL unit (`10s`, `1.5h`).
fn duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))?;
    let (n, unit) = text.split_at(split);
    Some(n.parse::<f64>().ok()? * lacquer_vcl::conv::duration_unit(unit)?)
}

impl BanSpec {
    /// Whether a condition looks at the request (so the lurker cannot
    /// decide it).
    pub fn uses_req(&self) -> bool {
        self.conds.iter().any(|c| matches!(c.field, Field::ReqUrl | Field::ReqHttp(_)))
    }

    /// The test the cache runs.
    pub fn into_test(self) -> BanTest<Msg> {
        Box::new(move |obj: &Msg, life: &Lifetime, req: Option<&BanReq<'_>>| {
            for c in &self.conds {
                if !c.holds(obj, life, req)? {
                    return Some(false);
                }
            }
            Some(true)
        })
    }
}

impl Cond {
    /// Whether the condition holds; `None` when it needs a request.
    fn holds(&self, obj: &Msg, life: &Lifetime, req: Option<&BanReq<'_>>) -> Option<bool> {
        let t = now();
        let value: Option<Vec<u8>> = match &self.field {
            Field::ReqUrl => Some(req?.url.to_vec()),
            Field::ReqHttp(h) => (req?.header)(h),
            Field::ObjHttp(h) => obj.header(h).map(<[u8]>::to_vec),
            Field::ObjStatus => Some(obj.head.status().to_string().into_bytes()),
            Field::ObjTtl => return Some(self.number(life.t_origin + life.ttl - t)),
            Field::ObjAge => return Some(self.number(t - life.t_origin)),
            Field::ObjGrace => return Some(self.number(life.grace)),
            Field::ObjKeep => return Some(self.number(life.keep)),
        };
        Some(match &self.arg {
            // A missing header matches nothing but `!=` and `!~`.
            Arg::Text(want) => match self.cmp {
                Cmp::Eq => value.as_deref() == Some(want.as_slice()),
                _ => value.as_deref() != Some(want.as_slice()),
            },
            Arg::Regex(re, positive) => {
                let hit = value.as_deref().is_some_and(|v| re.is_match(v).unwrap_or(false));
                hit == *positive
            }
            Arg::Number(_) => false,
        })
    }

    fn number(&self, v: f64) -> bool {
        let Arg::Number(n) = self.arg else { return false };
        match self.cmp {
            Cmp::Eq => v == n,
            Cmp::Ne => v != n,
            Cmp::Lt => v < n,
            Cmp::Gt => v > n,
            Cmp::Le => v <= n,
            Cmp::Ge => v >= n,
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

    fn test(expr: &str, o: &Msg, url: Option<&str>) -> Option<bool> {
        let spec = parse(expr).unwrap();
        let t = spec.into_test();
        let none = |_: &[u8]| None;
        let life = Lifetime { t_origin: now() - 10.0, ttl: 60.0, grace: 10.0, keep: 0.0 };
        match url {
            Some(u) => t(o, &life, Some(&BanReq { url: u.as_bytes(), header: &none })),
            None => t(o, &life, None),
        }
    }

    #[test]
    fn expressions_match_objects_and_requests() {
        let o = obj(200, &[("X-Tag", "news sport")]);
        assert_eq!(test("obj.http.x-tag ~ sport", &o, None), Some(true));
        assert_eq!(test("obj.http.X-Tag == \"news sport\"", &o, None), Some(true));
        assert_eq!(test("obj.http.x-missing != a", &o, None), Some(true));
        assert_eq!(test("obj.status == 200 && obj.http.x-tag !~ news", &o, None), Some(false));
        assert_eq!(test("req.url ~ ^/a", &o, None), None, "needs a request");
        assert_eq!(test("req.url ~ ^/a && obj.status == 200", &o, Some("/abc")), Some(true));
        assert_eq!(test("obj.age > 5s && obj.ttl < 1m", &o, None), Some(true));
        assert!(parse("req.url ~ ^/a").unwrap().uses_req());
        assert!(!parse("obj.status != 200").unwrap().uses_req());
    }

    #[test]
    fn bad_expressions_are_refused_in_varnish_s_words() {
        for (expr, want) in [
            ("foo == bar", "Unknown or unsupported field \"foo\""),
            ("req.url = /", "expected conditional (==, !=, ~ or !~) got \"=\""),
            ("", "No ban conditions found."),
            ("req.url", "Expected comparison operator."),
            ("req.url ~", "Expected second operand."),
            ("req.url ~ /a || req.url ~ /b", "Expected && between conditions, found \"||\""),
            ("obj.http. == x", "Missing header name: \"obj.http.\""),
            ("req.url ~ (", "Regex compile error"),
            ("obj.status < 200", "expected conditional (==, !=, ~ or !~) got \"<\""),
            ("obj.ttl ~ 1", "expected conditional (==, !=, >, >=, < or <=) got \"~\""),
        ] {
            let e = parse(expr).unwrap_err();
            assert!(e.starts_with(want), "{expr}: {e}");
        }
    }
}
