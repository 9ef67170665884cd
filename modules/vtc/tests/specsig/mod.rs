//! Renders a module's spec as one line per function, constructor and
//! method — `name(TYPE argname=default, …) -> RET` — in the form the
//! tests of the vtc and debug modules hold varnishd 7.1's specs in (read
//! off the JSON its libvmod_*.so files carry). Private-state arguments are
//! left out (VCL never passes them); `=?` marks an argument that may be
//! left out with no value (varnishd's NULL default or `[optional]`).

use lacquer_vcl::module::{ArgSpec, ArgType, DefaultValue, FuncSpec};
use lacquer_vcl::ModuleSpec;

fn arg(a: &ArgSpec) -> Option<String> {
    let mut s = match &a.ty {
        ArgType::Priv(_) => return None,
        ArgType::Value(t) => t.as_str().to_string(),
        ArgType::Enum(v) => format!("ENUM{{{}}}", v.join(",")),
        ArgType::Regex => "REGEX".to_string(),
    };
    if let Some(n) = &a.name {
        s.push(' ');
        s.push_str(n);
    }
    match &a.default {
        _ if a.optional => s.push_str("=?"),
        Some(DefaultValue::Str(d)) if matches!(a.ty, ArgType::Enum(_)) => s.push_str(&format!("={d}")),
        Some(DefaultValue::Str(d)) => s.push_str(&format!("={d:?}")),
        Some(DefaultValue::Num(n)) => s.push_str(&format!("={n}")),
        Some(DefaultValue::Bool(b)) => s.push_str(&format!("={b}")),
        None => {}
    }
    Some(s)
}

fn line(name: &str, f: &FuncSpec, ret: &str) -> String {
    let args: Vec<String> = f.args.iter().filter_map(arg).collect();
    format!("{name}({}) -> {ret}", args.join(", "))
}

/// Every function, constructor and method of `spec`, one line each (the
/// event function is not VCL's: varnishd's spec has it as `$EVENT`).
pub fn lines(spec: &ModuleSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in spec.functions.iter().enumerate() {
        if spec.event != Some(i as u32) {
            out.push(line(&f.name, f, f.ret.as_str()));
        }
    }
    for o in &spec.objects {
        out.push(line(&o.name, &o.ctor, "OBJECT"));
        for m in &o.methods {
            out.push(line(&format!("{}.{}", o.name, m.name), m, m.ret.as_str()));
        }
    }
    out
}
