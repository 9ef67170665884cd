//! Stage two: the JSON interface, in the format `lacquer_vcl::module`
//! reads (one object: name, abi, level, doc, functions, objects).

use syn::Lit;

use crate::model::{Func, Kind, Module};

pub fn string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub fn lit(l: &Lit) -> String {
    match l {
        Lit::Str(s) => string(&s.value()),
        Lit::Int(i) => i.base10_digits().to_string(),
        Lit::Float(f) => f.base10_digits().to_string(),
        Lit::Bool(b) => b.value.to_string(),
        _ => "null".into(),
    }
}

fn args(f: &Func) -> String {
    let mut out = Vec::new();
    for p in &f.params {
        match &p.kind {
            Kind::Ctx => {}
            Kind::Priv { scope, .. } => out.push(format!("{{\"type\": \"{scope}\"}}")),
            Kind::Value { vcl, name, optional, positional, default, values } => {
                let mut s = String::from("{");
                if !positional {
                    s.push_str(&format!("\"name\": {}, ", string(name)));
                }
                s.push_str(&format!("\"type\": \"{vcl}\""));
                if !values.is_empty() {
                    let v: Vec<String> = values.iter().map(|v| string(v)).collect();
                    s.push_str(&format!(", \"values\": [{}]", v.join(", ")));
                }
                if let Some(d) = default {
                    s.push_str(&format!(", \"default\": {}", lit(d)));
                }
                if *optional && default.is_none() {
                    s.push_str(", \"optional\": true");
                }
                s.push('}');
                out.push(s);
            }
        }
    }
    format!("[{}]", out.join(", "))
}

fn func(f: &Func, with_ret: bool) -> String {
    let mut s = format!("{{\"name\": {}", string(&f.name));
    if with_ret && f.ret != "VOID" {
        s.push_str(&format!(", \"ret\": \"{}\"", f.ret));
    }
    s.push_str(&format!(", \"args\": {}", args(f)));
    if !f.restrict.is_empty() {
        let r: Vec<String> = f.restrict.iter().map(|r| string(r)).collect();
        s.push_str(&format!(", \"restrict\": [{}]", r.join(", ")));
    }
    if f.event {
        s.push_str(", \"event\": true");
    }
    if f.request_raw {
        s.push_str(", \"request_raw\": true");
    }
    s.push_str(&format!(", \"doc\": {}}}", string(&f.doc)));
    s
}

/// The spec of `m` (ABI version filled in by the generated code's
/// `concat!` would not be const-checkable, so the macro writes the version
/// it knows: [`ABI`]).
pub fn json(m: &Module) -> String {
    let fns: Vec<String> = m.functions.iter().map(|f| format!("\n  {}", func(f, true))).collect();
    let objs: Vec<String> = m
        .objects
        .iter()
        .map(|o| {
            let methods: Vec<String> = o.methods.iter().map(|f| format!("\n    {}", func(f, true))).collect();
            format!(
                "\n  {{\"name\": {}, \"args\": {}, \"doc\": {}, \"methods\": [{}]}}",
                string(&o.name),
                args(&o.ctor),
                string(&o.doc),
                methods.join(",")
            )
        })
        .collect();
    format!(
        "{{\"name\": {}, \"abi\": [{}, {}], \"level\": \"stable\", \"doc\": {},\n\"functions\": [{}],\n\"objects\": [{}]}}\n",
        string(&m.name),
        ABI.0,
        ABI.1,
        string(&m.doc),
        fns.join(","),
        objs.join(",")
    )
}

/// The `lacquer-abi` version this macro writes into specs; the generated
/// code asserts at compile time that it equals `lacquer_abi`'s.
pub const ABI: (u32, u32) = (1, 4);
