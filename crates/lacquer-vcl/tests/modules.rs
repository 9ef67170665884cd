//! Modules as the compiler sees them: an interface read at `import`,
//! functions and objects type-checked like built-ins, calls reaching the
//! host at run time. The specs here are test data; `std` is a subset of
//! Varnish 7.1's vmod_std interface, so its messages can be compared with
//! varnishd's (the expected texts below were read off `varnishd -C`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use lacquer_defs::{Action, Method, Var};
use lacquer_vcl::exec::run;
use lacquer_vcl::program::CallTarget;
use lacquer_vcl::testctx::MemContext;
use lacquer_vcl::{compile_str, ModuleResolver, ModuleSpec, Options, Program, ResolveError, Value};

const STD: &str = r#"{"name": "std", "abi": [1, 0], "functions": [
  {"name": "strstr", "ret": "STRING", "args": [{"name": "s1", "type": "STRING"}, {"name": "s2", "type": "STRING"}]},
  {"name": "log", "args": [{"name": "s", "type": "STRANDS"}]},
  {"name": "integer", "ret": "INT", "args": [
     {"name": "s", "type": "STRING", "optional": true}, {"name": "fallback", "type": "INT", "optional": true},
     {"name": "bool", "type": "BOOL", "optional": true}]},
  {"name": "fnmatch", "ret": "BOOL", "args": [{"name": "pattern", "type": "STRING"}, {"name": "subject", "type": "STRING"},
     {"name": "pathname", "type": "BOOL", "default": true}]},
  {"name": "fileread", "ret": "STRING", "args": [{"type": "PRIV_CALL"}, {"name": "path", "type": "STRING"}]}
]}"#;

const KV: &str = r#"{"name": "kv", "abi": [1, 0], "level": "stable", "objects": [
  {"name": "map", "args": [{"name": "mode", "type": "ENUM", "values": ["shared", "task"], "default": "shared"}],
   "methods": [
     {"name": "set", "args": [{"name": "key", "type": "STRING"}, {"name": "value", "type": "STRING"}]},
     {"name": "get", "ret": "STRING", "args": [{"name": "key", "type": "STRING"}], "restrict": ["client"]}]}]}"#;

#[derive(Debug)]
struct Specs;

impl ModuleResolver for Specs {
    fn resolve(&self, name: &str, path: Option<&str>) -> Result<ModuleSpec, ResolveError> {
        let spec = |json: &str| {
            ModuleSpec::from_json(json).map_err(|reason| ResolveError::Unusable { file: "(test)".into(), reason })
        };
        match (name, path) {
            ("std", None) => spec(STD),
            ("kv", _) => spec(KV),
            ("future", _) => spec(r#"{"name": "future", "abi": [2, 0]}"#),
            ("liar", _) => spec(r#"{"name": "other", "abi": [1, 0]}"#),
            ("broken", Some(p)) => Err(ResolveError::Unusable { file: p.into(), reason: "not a module".into() }),
            _ => Err(ResolveError::NotFound),
        }
    }
}

fn opts() -> Options {
    Options { modules: Some(Arc::new(Specs)), ..Options::default() }
}

fn vcl(body: &str) -> String {
    format!("vcl 4.1;\nimport std;\nbackend b {{ .host = \"127.0.0.1\"; }}\n{body}\n")
}

fn error(body: &str) -> String {
    match compile_str("x.vcl", &vcl(body), &opts()) {
        Ok(_) => panic!("compiled, but should not:\n{body}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn call_errors_read_as_vccs() {
    assert_eq!(
        error(r#"sub vcl_recv { set req.http.x = std.strstr("a"); }"#),
        "Argument 's2' missing\n('x.vcl' Line 4 Pos 47)\nsub vcl_recv { set req.http.x = std.strstr(\"a\"); }\n----------------------------------------------#---\n\nWhile compiling function call:\n\n('x.vcl' Line 4 Pos 33) -- (Pos 46)\nsub vcl_recv { set req.http.x = std.strstr(\"a\"); }\n--------------------------------##############----\n\n"
    );
    assert!(error(r#"sub vcl_recv { set req.http.x = std.strstr(s1="a", s3="b"); }"#)
        .starts_with("Unknown argument 's3'\n"));
    assert!(error(r#"sub vcl_recv { set req.http.x = std.strstr(s1="a", s1="b"); }"#)
        .starts_with("Argument 's1' already used\n"));
    assert!(error(r#"sub vcl_recv { set req.http.x = std.strstr("a", "b", "c"); }"#)
        .starts_with("Expected ')' got '\"c\"'\n(program line 670), at\n"));
    assert!(error(r#"sub vcl_recv { set req.http.x = std.log("a"); }"#).starts_with("Function returns VOID:\n"));
    assert!(error(r#"sub vcl_recv { std.nope("a"); }"#).starts_with("Symbol not found: 'std.nope'\nAt: "));
    assert!(error(r#"sub vcl_deliver { set resp.http.x = std.integer(fallback="a"); }"#)
        .starts_with("Expression has type STRING, expected INT\n"));
    assert!(error(r#"sub vcl_recv { std.log("a") }"#).starts_with("Expected ';' got '}'\n(program line 1516), at\n"));
}

#[test]
fn imports_are_checked() {
    let e = |imp: &str| match compile_str(
        "x.vcl",
        &format!("vcl 4.1;\n{imp}\nbackend b {{ .host = \"127.0.0.1\"; }}\n"),
        &opts(),
    ) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    assert!(e("import nosuch;").starts_with("Could not find VMOD nosuch\n('x.vcl' Line 2 Pos 8)"));
    assert!(e("import broken from \"/x/libbroken.so\";")
        .starts_with("Could not open VMOD broken\n\tFile name: /x/libbroken.so\n\tnot a module\n"));
    let future = e("import future from \"/opt/future.so\";");
    assert!(future.starts_with("Incompatible VMOD future\n\tFile name: /opt/future.so\n"), "{future}");
    assert!(future.contains("ABI 2.x") && future.contains("rebuild the module"), "{future}");
    assert!(e("import liar;").starts_with("Wrong file for VMOD liar\n\tContains: other\n"));
    assert_eq!(e("import std; import std;"), "");
}

#[test]
fn objects_methods_and_restrictions() {
    let src = vcl(r#"import kv from "/x/libkv.so";
sub vcl_init { new store = kv.map(); new other = kv.map(task); }
sub vcl_recv { store.set("k", req.url); set req.http.v = store.get("k"); }"#);
    let p = compile_str("x.vcl", &src, &opts()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.instances.len(), 2);
    assert_eq!(p.instances[0].name, "store");
    let ctor = &p.calls[p.instances[1].ctor.unwrap() as usize];
    assert!(
        matches!(&ctor.args[0], Some(lacquer_vcl::program::Expr::Const(lacquer_vcl::program::Const::Str(s))) if s == b"task")
    );

    let bad = vcl(
        r#"import kv; sub vcl_init { new s = kv.map(); } sub vcl_backend_fetch { set bereq.http.v = s.get("k"); }"#,
    );
    let e = compile_str("x.vcl", &bad, &opts()).unwrap_err().to_string();
    assert!(e.contains("Not available in subroutine 'vcl_backend_fetch'."), "{e}");
    let bad = vcl(r#"import kv; sub vcl_init { new s = kv.map(sometimes); }"#);
    let e = compile_str("x.vcl", &bad, &opts()).unwrap_err().to_string();
    assert!(e.starts_with("Wrong enum value.  Expected one of:\n\tshared\n\ttask\n"), "{e}");
    let bad = vcl(r#"import kv; sub vcl_recv { new s = kv.map(); }"#);
    let e = compile_str("x.vcl", &bad, &opts()).unwrap_err().to_string();
    assert!(e.contains("Not a valid action in subroutine 'vcl_recv'."), "{e}");
}

/// A toy host for `kv`: calls reach it with their evaluated arguments.
#[test]
fn calls_reach_the_host_with_arguments() {
    let src = vcl(r#"import kv;
sub vcl_init { new store = kv.map(); }
sub vcl_recv {
    store.set("last", req.url);
    set req.http.seen = store.get("last");
    if (std.fnmatch("/a/*", req.url)) { return (synth(200, std.strstr(req.url, "a"))); }
}"#);
    let p = compile_str("x.vcl", &src, &opts()).unwrap_or_else(|e| panic!("{e}"));
    let store: Rc<RefCell<HashMap<String, String>>> = Rc::default();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let host = |store: Rc<RefCell<HashMap<String, String>>>, log: Rc<RefCell<Vec<String>>>| {
        move |p: &Program, id: u32, args: &[Option<Value<'_>>]| {
            let s = |i: usize| match &args[i] {
                Some(Value::Str(Some(v))) => String::from_utf8_lossy(v).into_owned(),
                other => format!("{other:?}"),
            };
            let site = &p.calls[id as usize];
            let name = match site.target {
                CallTarget::Function { module, func } => {
                    p.imports[module as usize].spec.as_ref().unwrap().functions[func as usize].name.clone()
                }
                CallTarget::Method { method, .. } => ["set", "get"][method as usize].to_string(),
                CallTarget::Constructor { .. } => "new".to_string(),
            };
            log.borrow_mut().push(name.clone());
            Ok(match name.as_str() {
                "new" => Value::Opaque,
                "set" => {
                    store.borrow_mut().insert(s(0), s(1));
                    Value::Opaque
                }
                "get" => Value::Str(store.borrow().get(&s(0)).map(|v| v.clone().into_bytes().into())),
                "fnmatch" => Value::Bool(s(1).starts_with(s(0).trim_end_matches('*'))),
                "strstr" => Value::Str(s(0).find(&s(1)).map(|i| s(0).as_bytes()[i..].to_vec().into())),
                _ => Value::Opaque,
            })
        }
    };
    let mut init = MemContext::new(Method::Init);
    init.on_call = Some(Box::new(host(store.clone(), log.clone())));
    assert_eq!(run(&p, Method::Init, &mut init).unwrap().action, Action::Ok);

    let mut c = MemContext::new(Method::Recv);
    c.on_call = Some(Box::new(host(store.clone(), log.clone())));
    c.set_str(Var::ReqUrl, "/a/b").set_str(Var::ReqMethod, "GET").add_header(Var::ReqHttp, "Host", "h");
    let h = run(&p, Method::Recv, &mut c).unwrap();
    assert_eq!((h.action, h.status), (Action::Synth, Some(200)));
    assert_eq!(h.reason.as_deref(), Some(&b"a/b"[..]));
    assert_eq!(c.hdr(Var::ReqHttp, "seen").as_deref(), Some("/a/b"));
    assert_eq!(*log.borrow(), ["new", "set", "get", "fnmatch", "strstr"]);
}

#[test]
fn without_a_resolver_imports_are_recorded_only() {
    let p = compile_str("x.vcl", &vcl(""), &Options::default()).unwrap();
    assert_eq!(p.imports[0].name, "std");
    assert!(p.imports[0].spec.is_none());
}
