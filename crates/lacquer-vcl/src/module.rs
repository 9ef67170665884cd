//! Module interfaces as the compiler sees them (VCC's `vcc_vmod.c`).
//!
//! A module declares its interface — functions, objects with their
//! constructors and methods, argument types, defaults, where each may be
//! called from — in a JSON spec that its build emits. At `import`, a
//! [`ModuleResolver`] finds the spec; its functions and objects enter the
//! symbol table and are type-checked like built-ins. The compiler reads
//! specs only: it never loads or runs module code.
//!
//! The spec format (one object):
//!
//! ```json
//! {"name": "kv", "abi": [1, 0], "level": "stable", "doc": "…",
//!  "functions": [
//!    {"name": "get", "ret": "STRING", "restrict": ["client", "backend"],
//!     "args": [{"name": "key", "type": "STRING"},
//!              {"name": "fallback", "type": "STRING", "default": ""},
//!              {"name": "how", "type": "ENUM", "values": ["exact", "prefix"], "default": "exact"},
//!              {"name": "limit", "type": "INT", "optional": true},
//!              {"type": "PRIV_TASK"}]}],
//!  "objects": [
//!    {"name": "map", "args": [], "methods": [ …functions… ]}]}
//! ```
//!
//! `restrict` lists methods (`vcl_recv`) or groups (`client`, `backend`,
//! `housekeeping`); absent means everywhere. A default is a JSON value of
//! the argument's type (DURATION and BYTES as numbers of seconds / bytes).

use std::fmt::Debug;

use lacquer_abi::ApiLevel;
use lacquer_defs::{Method, MethodMask, VclType};

use crate::json::Json;

/// Finds the interface of a module named in `import`.
pub trait ModuleResolver: Debug + Send + Sync {
    /// The spec of `name`, loaded from `path` when the import names one.
    /// The error is shown to the user as the reason the import failed.
    fn resolve(&self, name: &str, path: Option<&str>) -> Result<ModuleSpec, ResolveError>;
}

/// Why an import found no usable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No module of that name on the module path.
    NotFound,
    /// The file exists (or was named) but cannot be used; `reason` says
    /// why, in the loader's words.
    Unusable { file: String, reason: String },
}

/// A module's declared interface.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSpec {
    pub name: String,
    /// The ABI version it was built against.
    pub abi: (u32, u32),
    pub level: ApiLevel,
    pub doc: String,
    pub functions: Vec<FuncSpec>,
    pub objects: Vec<ObjectSpec>,
    /// The function the server calls with each request's head before
    /// VCL (`"request_raw": true`); VCL cannot call it.
    pub request_raw: Option<u32>,
    /// The function the server calls with the VCL's events (`"event":
    /// true` in the spec; Varnish's `$Event`); VCL cannot call it.
    pub event: Option<u32>,
}

/// A function, method or constructor.
#[derive(Debug, Clone, PartialEq)]
pub struct FuncSpec {
    pub name: String,
    /// `Void` for a procedure, usable only as a statement.
    pub ret: VclType,
    pub args: Vec<ArgSpec>,
    /// The methods it may be called from.
    pub restrict: MethodMask,
    pub doc: String,
}

/// An object class: `new x = module.name(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub name: String,
    /// The constructor's arguments.
    pub ctor: FuncSpec,
    pub methods: Vec<FuncSpec>,
    pub doc: String,
}

/// One argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgSpec {
    /// The name, by which VCL may pass it (`f(name = value)`); private-state
    /// arguments and some positional ones have none.
    pub name: Option<String>,
    pub ty: ArgType,
    /// The value used when the argument is left out.
    pub default: Option<DefaultValue>,
    /// May be left out with no default (the module sees "absent").
    pub optional: bool,
}

/// What an argument is.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgType {
    /// A value of a VCL type.
    Value(VclType),
    /// One of a fixed set of words, written bare in VCL.
    Enum(Vec<String>),
    /// A regular expression (VCC's REGEX): a string literal the compiler
    /// checks as a pattern; the module gets the pattern's text.
    Regex,
    /// Private state, supplied by the host.
    Priv(PrivScope),
}

/// The scope of a private-state argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivScope {
    /// One per call site.
    Call,
    /// One per client request or backend fetch.
    Task,
    /// One per top-level request (shared with ESI children).
    Top,
    /// One per loaded VCL.
    Vcl,
    /// One per client connection.
    Sess,
}

/// A default argument value.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl ModuleSpec {
    /// Reads a spec from its JSON text.
    pub fn from_json(text: &str) -> Result<ModuleSpec, String> {
        let j = Json::parse(text).map_err(|e| format!("spec is not valid JSON: {e}"))?;
        let name = req_str(&j, "name")?.to_string();
        let abi = match j.get("abi").and_then(Json::as_arr) {
            Some([a, b]) => (num_u32(a)?, num_u32(b)?),
            _ => return Err("spec: \"abi\" must be [major, minor]".into()),
        };
        let level = match j.get("level").and_then(Json::as_str).unwrap_or("stable") {
            "stable" => ApiLevel::Stable,
            "package" => ApiLevel::Package,
            "source" => ApiLevel::Source,
            other => return Err(format!("spec: unknown API level '{other}'")),
        };
        let fjson = list(&j, "functions")?;
        let functions = fjson.iter().map(func).collect::<Result<_, _>>()?;
        let flagged =
            |key: &str| fjson.iter().position(|f| f.get(key).and_then(Json::as_bool) == Some(true)).map(|i| i as u32);
        let (event, request_raw) = (flagged("event"), flagged("request_raw"));
        let objects = list(&j, "objects")?
            .iter()
            .map(|o| {
                let name = req_str(o, "name")?.to_string();
                let mut ctor = func_with_name(o, name.clone(), VclType::Void)?;
                ctor.restrict = Method::Init.bit();
                let methods = list(o, "methods")?.iter().map(func).collect::<Result<_, _>>()?;
                Ok(ObjectSpec { name, ctor, methods, doc: opt_str(o, "doc") })
            })
            .collect::<Result<_, String>>()?;
        Ok(ModuleSpec { name, abi, level, doc: opt_str(&j, "doc"), functions, objects, event, request_raw })
    }

    /// The module's reference, as `lacquer module-doc` prints it: its doc,
    /// version and level, then each function and object class with its
    /// methods, their VCL signatures (private-state arguments left out,
    /// optional ones in brackets, defaults after `=`) and their docs.
    pub fn reference(&self) -> String {
        fn indent(doc: &str, by: &str) -> String {
            doc.lines().map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("{by}{l}\n") }).collect()
        }
        fn args(f: &FuncSpec) -> String {
            let shown: Vec<String> = f
                .args
                .iter()
                .filter(|a| !matches!(a.ty, ArgType::Priv(_)))
                .map(|a| {
                    let mut s = match &a.ty {
                        ArgType::Value(t) => t.as_str().to_string(),
                        ArgType::Enum(v) => format!("ENUM {{{}}}", v.join(", ")),
                        ArgType::Regex => "REGEX".to_string(),
                        ArgType::Priv(_) => String::new(),
                    };
                    if let Some(n) = &a.name {
                        s.push(' ');
                        s.push_str(n);
                    }
                    match &a.default {
                        Some(DefaultValue::Str(d)) if matches!(a.ty, ArgType::Enum(_)) => s.push_str(&format!("={d}")),
                        Some(DefaultValue::Str(d)) => s.push_str(&format!("={d:?}")),
                        Some(DefaultValue::Num(n)) => s.push_str(&format!("={n}")),
                        Some(DefaultValue::Bool(b)) => s.push_str(&format!("={b}")),
                        None => {}
                    }
                    if a.optional {
                        s = format!("[{s}]");
                    }
                    s
                })
                .collect();
            shown.join(", ")
        }
        let mut out = format!("{} (ABI {}.{}, {} level)\n", self.name, self.abi.0, self.abi.1, self.level.as_str());
        out.push_str(&indent(&self.doc, "    "));
        if self.event.is_some() {
            out.push_str("\n    It is told the VCL's events (load, warm, cold, discard).\n");
        }
        if let Some(f) = self.request_raw.and_then(|i| self.functions.get(i as usize)) {
            out.push_str("\n    It sees each request's head before VCL does:\n");
            out.push_str(&indent(&f.doc, "      "));
        }
        let functions: Vec<(usize, &FuncSpec)> =
            self.functions.iter().enumerate().filter(|(i, _)| self.callable(*i)).collect();
        if !functions.is_empty() {
            out.push_str("\nFUNCTIONS\n");
            for (_, f) in functions {
                out.push_str(&format!("\n  {} {}.{}({})\n", f.ret.as_str(), self.name, f.name, args(f)));
                out.push_str(&indent(&f.doc, "      "));
            }
        }
        if !self.objects.is_empty() {
            out.push_str("\nOBJECTS\n");
            for o in &self.objects {
                out.push_str(&format!("\n  new x = {}.{}({})\n", self.name, o.name, args(&o.ctor)));
                out.push_str(&indent(&o.doc, "      "));
                for m in &o.methods {
                    out.push_str(&format!("\n    {} x.{}({})\n", m.ret.as_str(), m.name, args(m)));
                    out.push_str(&indent(&m.doc, "        "));
                }
            }
        }
        out
    }

    /// A function VCL may call, by name.
    pub fn function(&self, name: &str) -> Option<(usize, &FuncSpec)> {
        self.functions.iter().enumerate().find(|(i, f)| f.name == name && self.callable(*i))
    }

    /// Whether VCL may call function `i` (the event and request_raw
    /// functions are the server's).
    pub fn callable(&self, i: usize) -> bool {
        let i = Some(i as u32);
        self.event != i && self.request_raw != i
    }

    /// An object class by name.
    pub fn object(&self, name: &str) -> Option<(usize, &ObjectSpec)> {
        self.objects.iter().enumerate().find(|(_, o)| o.name == name)
    }
}

fn req_str<'a>(j: &'a Json, k: &str) -> Result<&'a str, String> {
    j.get(k).and_then(Json::as_str).ok_or_else(|| format!("spec: missing string \"{k}\""))
}

fn opt_str(j: &Json, k: &str) -> String {
    j.get(k).and_then(Json::as_str).unwrap_or("").to_string()
}

fn num_u32(j: &Json) -> Result<u32, String> {
    match j.as_f64() {
        Some(n) if n >= 0.0 && n <= u32::MAX as f64 && n.fract() == 0.0 => Ok(n as u32),
        _ => Err("spec: version numbers must be unsigned integers".into()),
    }
}

fn list<'a>(j: &'a Json, k: &str) -> Result<&'a [Json], String> {
    match j.get(k) {
        None => Ok(&[]),
        Some(v) => v.as_arr().ok_or_else(|| format!("spec: \"{k}\" must be a list")),
    }
}

fn func(j: &Json) -> Result<FuncSpec, String> {
    let name = req_str(j, "name")?.to_string();
    let ret = match j.get("ret").and_then(Json::as_str) {
        None => VclType::Void,
        Some(t) => VclType::from_name(t).ok_or_else(|| format!("spec: {name}: unknown return type '{t}'"))?,
    };
    func_with_name(j, name, ret)
}

fn func_with_name(j: &Json, name: String, ret: VclType) -> Result<FuncSpec, String> {
    let args = list(j, "args")?.iter().map(|a| arg(&name, a)).collect::<Result<Vec<_>, _>>()?;
    let restrict = match j.get("restrict") {
        None => Method::ALL_MASK,
        Some(r) => {
            let mut m = 0;
            for w in r.as_arr().ok_or_else(|| format!("spec: {name}: \"restrict\" must be a list"))? {
                let w = w.as_str().unwrap_or("");
                m |= match w {
                    "client" => Method::CLIENT,
                    "backend" => Method::BACKEND,
                    "housekeeping" => Method::HOUSEKEEPING,
                    _ => Method::from_name(w)
                        .map(Method::bit)
                        .ok_or_else(|| format!("spec: {name}: unknown method '{w}' in \"restrict\""))?,
                };
            }
            m
        }
    };
    Ok(FuncSpec { name, ret, args, restrict, doc: opt_str(j, "doc") })
}

fn arg(func: &str, j: &Json) -> Result<ArgSpec, String> {
    let t = req_str(j, "type")?;
    let name = j.get("name").and_then(Json::as_str).map(str::to_string);
    let ty = match t {
        "PRIV_CALL" => ArgType::Priv(PrivScope::Call),
        "PRIV_TASK" => ArgType::Priv(PrivScope::Task),
        "PRIV_TOP" => ArgType::Priv(PrivScope::Top),
        "PRIV_VCL" => ArgType::Priv(PrivScope::Vcl),
        "PRIV_SESS" => ArgType::Priv(PrivScope::Sess),
        "REGEX" => ArgType::Regex,
        "ENUM" => {
            let vals = list(j, "values")?
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("spec: {func}: ENUM values are strings")))
                .collect::<Result<Vec<_>, _>>()?;
            if vals.is_empty() {
                return Err(format!("spec: {func}: ENUM without values"));
            }
            ArgType::Enum(vals)
        }
        _ => ArgType::Value(VclType::from_name(t).ok_or_else(|| format!("spec: {func}: unknown argument type '{t}'"))?),
    };
    let default = match j.get("default") {
        None | Some(Json::Null) => None,
        Some(Json::Str(s)) => Some(DefaultValue::Str(s.clone())),
        Some(Json::Num(n)) => Some(DefaultValue::Num(*n)),
        Some(Json::Bool(b)) => Some(DefaultValue::Bool(*b)),
        Some(_) => return Err(format!("spec: {func}: a default must be a string, number or boolean")),
    };
    if let (ArgType::Enum(vals), Some(DefaultValue::Str(d))) = (&ty, &default) {
        if !vals.contains(d) {
            return Err(format!("spec: {func}: ENUM default '{d}' is not one of its values"));
        }
    }
    let optional = j.get("optional").and_then(Json::as_bool).unwrap_or(false);
    Ok(ArgSpec { name, ty, default, optional })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_spec() {
        let s = ModuleSpec::from_json(
            r#"{"name": "kv", "abi": [1, 0], "functions": [
                 {"name": "get", "ret": "STRING", "restrict": ["client"],
                  "args": [{"name": "key", "type": "STRING"},
                           {"name": "how", "type": "ENUM", "values": ["a", "b"], "default": "a"},
                           {"type": "PRIV_TASK"},
                           {"name": "re", "type": "REGEX"}]}],
               "objects": [{"name": "map", "methods": [{"name": "set", "args": [{"name": "k", "type": "STRING"}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(s.level, ApiLevel::Stable);
        let (_, f) = s.function("get").unwrap();
        assert_eq!(f.ret, VclType::String);
        assert_eq!(f.restrict, Method::CLIENT);
        assert_eq!(f.args[1].ty, ArgType::Enum(vec!["a".into(), "b".into()]));
        assert_eq!(f.args[2].ty, ArgType::Priv(PrivScope::Task));
        assert_eq!(f.args[3].ty, ArgType::Regex);
        let (_, o) = s.object("map").unwrap();
        assert_eq!(o.ctor.restrict, Method::Init.bit());
        assert_eq!(o.methods[0].ret, VclType::Void);
    }

    #[test]
    fn refuses_bad_specs_with_reasons() {
        let bad = [
            (r#"{"abi": [1, 0]}"#, "missing string \"name\""),
            (r#"{"name": "x", "abi": [1]}"#, "\"abi\" must be"),
            (r#"{"name": "x", "abi": [1, 0], "functions": [{"name": "f", "ret": "NOPE"}]}"#, "unknown return type"),
            (
                r#"{"name": "x", "abi": [1, 0], "functions": [{"name": "f", "args": [{"type": "NOPE"}]}]}"#,
                "unknown argument type",
            ),
            (
                r#"{"name": "x", "abi": [1, 0], "functions": [{"name": "f", "args": [{"name": "e", "type": "ENUM", "values": ["a"], "default": "b"}]}]}"#,
                "not one of its values",
            ),
            ("not json", "not valid JSON"),
        ];
        for (text, want) in bad {
            let e = ModuleSpec::from_json(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
