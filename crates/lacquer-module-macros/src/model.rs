//! Stage one: the `mod` as functions, objects and arguments.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{Attribute, Error, FnArg, Ident, ImplItem, Item, ItemMod, Lit, Pat, ReturnType, Type, Visibility};

/// The module.
pub struct Module {
    pub name: String,
    pub doc: String,
    pub functions: Vec<Func>,
    pub objects: Vec<Object>,
}

/// An object class.
pub struct Object {
    pub ty: Ident,
    pub name: String,
    pub doc: String,
    pub ctor: Func,
    pub methods: Vec<Func>,
}

/// A function, method or constructor.
pub struct Func {
    pub ident: Ident,
    pub name: String,
    pub doc: String,
    pub restrict: Vec<String>,
    pub params: Vec<Param>,
    /// The VCL type of the result (`VOID` for none).
    pub ret: String,
    /// Returns `Result<…>` (used for constructors).
    pub fallible: bool,
    /// `#[event]`: the module's VCL event function, not callable from VCL.
    pub event: bool,
    /// `#[request_raw]`: called with each request's head before VCL,
    /// not callable from VCL.
    pub request_raw: bool,
}

/// One Rust parameter.
pub struct Param {
    pub ty: Type,
    pub kind: Kind,
}

/// What a parameter is to VCL.
pub enum Kind {
    /// `ctx: &mut Ctx`: not in the spec.
    Ctx,
    /// Private state: `PRIV_TASK` …; shared or exclusive.
    Priv { scope: &'static str, shared: bool },
    /// A VCL argument.
    Value { vcl: String, name: String, optional: bool, positional: bool, default: Option<Lit>, values: Vec<String> },
}

pub fn module_name(attr: TokenStream, m: &ItemMod) -> syn::Result<String> {
    if attr.is_empty() {
        return Ok(m.ident.to_string());
    }
    let nv: syn::MetaNameValue = syn::parse2(attr)?;
    if !nv.path.is_ident("name") {
        return Err(Error::new(nv.path.span(), "expected `name = \"…\"`"));
    }
    match nv.value {
        syn::Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Ok(s.value()),
        e => Err(Error::new(e.span(), "expected a string")),
    }
}

fn doc(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let syn::Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) = &nv.value {
                let v = s.value();
                lines.push(v.strip_prefix(' ').unwrap_or(&v).trim_end().to_string());
            }
        }
    }
    lines.join("\n").trim().to_string()
}

fn is_pub(v: &Visibility) -> bool {
    matches!(v, Visibility::Public(_))
}

fn snake(s: &str) -> String {
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                o.push('_');
            }
            o.extend(c.to_lowercase());
        } else {
            o.push(c);
        }
    }
    o
}

fn last_ident(ty: &Type) -> Option<(&syn::PathSegment, &syn::Path)> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| (s, &p.path)),
        Type::Reference(r) => last_ident(&r.elem),
        Type::Group(g) => last_ident(&g.elem),
        Type::Paren(p) => last_ident(&p.elem),
        _ => None,
    }
}

fn first_generic(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// The VCL type a Rust type stands for.
fn vcl_type(ty: &Type) -> Option<String> {
    if let Type::Tuple(t) = ty {
        return t.elems.is_empty().then(|| "VOID".into());
    }
    if let Type::Reference(r) = ty {
        if let Type::Slice(s) = &*r.elem {
            return last_ident(&s.elem).filter(|(s, _)| s.ident == "u8").map(|_| "STRING".into());
        }
    }
    let (seg, _) = last_ident(ty)?;
    let t = match seg.ident.to_string().as_str() {
        "i64" => "INT",
        "f64" => "REAL",
        "bool" => "BOOL",
        "str" | "String" | "NullStr" => "STRING",
        "Vec" => {
            return first_generic(seg).and_then(last_ident).filter(|(s, _)| s.ident == "u8").map(|_| "STRING".into())
        }
        "Duration" => "DURATION",
        "Time" => "TIME",
        "Bytes" => "BYTES",
        "Strands" | "StrandsBuf" => "STRANDS",
        "Stevedore" => "STEVEDORE",
        "SocketAddr" => "IP",
        "Header" => "HEADER",
        "Http" => "HTTP",
        "Backend" => "BACKEND",
        "Blob" | "BlobRef" => "BLOB",
        "Regex" => "REGEX",
        "Probe" => "PROBE",
        "Acl" => "ACL",
        "Sub" => "SUB",
        _ => return None,
    };
    Some(t.into())
}

fn is_named(ty: &Type, name: &str) -> Option<Type> {
    let (seg, _) = last_ident(ty)?;
    if seg.ident == name {
        first_generic(seg).cloned().or(Some(Type::Verbatim(TokenStream::new())))
    } else {
        None
    }
}

struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

fn take_attrs(attrs: &mut Vec<Attribute>, names: &[&str]) -> Vec<Attribute> {
    let (ours, rest): (Vec<_>, Vec<_>) = attrs.drain(..).partition(|a| names.iter().any(|n| a.path().is_ident(n)));
    *attrs = rest;
    ours
}

fn read_fn(errs: &mut Errors, sig: &mut syn::Signature, attrs: &mut Vec<Attribute>, is_ctor: bool) -> Option<Func> {
    let mut restrict = Vec::new();
    for a in take_attrs(attrs, &["restrict"]) {
        let r = a.parse_args_with(syn::punctuated::Punctuated::<Ident, syn::Token![,]>::parse_terminated);
        match r {
            Ok(ids) => restrict.extend(ids.iter().map(|i| i.to_string())),
            Err(e) => errs.push(e),
        }
    }
    let doc = doc(attrs);
    let mut params = Vec::new();
    let mut ok = true;
    let mut seen_scopes: Vec<&str> = Vec::new();
    for input in sig.inputs.iter_mut() {
        let pt = match input {
            FnArg::Receiver(_) => continue,
            FnArg::Typed(pt) => pt,
        };
        let ours = take_attrs(&mut pt.attrs, &["default", "enum_values", "positional"]);
        let ty = (*pt.ty).clone();
        let pname = match &*pt.pat {
            Pat::Ident(i) => i.ident.to_string(),
            p => {
                errs.push(Error::new(p.span(), "module arguments must be plain names"));
                ok = false;
                continue;
            }
        };
        let scope = ["PrivTask", "PrivTop", "PrivSess", "PrivCall", "PrivVcl"]
            .iter()
            .find(|n| last_ident(&ty).is_some_and(|(s, _)| s.ident == **n));
        if let Some(n) = scope {
            let (scope, shared) = match *n {
                "PrivTask" => ("PRIV_TASK", false),
                "PrivTop" => ("PRIV_TOP", false),
                "PrivSess" => ("PRIV_SESS", false),
                "PrivCall" => ("PRIV_CALL", true),
                _ => ("PRIV_VCL", true),
            };
            if seen_scopes.contains(&scope) {
                errs.push(Error::new(ty.span(), format!("{scope} may be asked for once per function")));
                ok = false;
            }
            seen_scopes.push(scope);
            params.push(Param { ty, kind: Kind::Priv { scope, shared } });
            continue;
        }
        if last_ident(&ty).is_some_and(|(s, _)| s.ident == "Ctx") {
            params.push(Param { ty, kind: Kind::Ctx });
            continue;
        }
        if last_ident(&ty).is_some_and(|(s, _)| s.ident == "Event") {
            let values = EVENTS.iter().map(|e| e.to_string()).collect();
            let name = pname.strip_prefix("r#").unwrap_or(&pname).to_string();
            let kind =
                Kind::Value { vcl: "ENUM".into(), name, optional: false, positional: false, default: None, values };
            params.push(Param { ty, kind });
            continue;
        }
        let (inner, optional) = match is_named(&ty, "Option") {
            Some(t) => (t, true),
            None => (ty.clone(), false),
        };
        let mut default = None;
        let mut values = Vec::new();
        let mut positional = false;
        for a in ours {
            if a.path().is_ident("default") {
                match a.parse_args::<Lit>() {
                    Ok(l) => default = Some(l),
                    Err(e) => errs.push(e),
                }
            } else if a.path().is_ident("enum_values") {
                match a.parse_args_with(syn::punctuated::Punctuated::<syn::LitStr, syn::Token![,]>::parse_terminated) {
                    Ok(v) => values = v.iter().map(|s| s.value()).collect(),
                    Err(e) => errs.push(e),
                }
            } else {
                positional = true;
            }
        }
        let vcl = if !values.is_empty() {
            "ENUM".to_string()
        } else {
            match vcl_type(&inner) {
                Some(t) if t != "VOID" => t,
                _ => {
                    errs.push(Error::new(ty.span(), "not a type a module argument can have"));
                    ok = false;
                    continue;
                }
            }
        };
        if let (Some(Lit::Str(s)), false) = (&default, values.is_empty()) {
            if !values.contains(&s.value()) {
                errs.push(Error::new(s.span(), "the default is not one of the enum_values"));
            }
        }
        let name = pname.strip_prefix("r#").unwrap_or(&pname).to_string();
        params.push(Param { ty, kind: Kind::Value { vcl, name, optional, positional, default, values } });
    }
    let (ret, fallible) = match &sig.output {
        ReturnType::Default => ("VOID".to_string(), false),
        ReturnType::Type(_, t) => {
            let (t, fallible) = match is_named(t, "Result") {
                Some(inner) => (inner, true),
                None => ((**t).clone(), false),
            };
            if is_ctor {
                ("VOID".into(), fallible)
            } else {
                let t = is_named(&t, "Option").unwrap_or(t);
                match vcl_type(&t) {
                    Some(v) => (v, fallible),
                    None => {
                        errs.push(Error::new(t.span(), "not a type a module function can return"));
                        return None;
                    }
                }
            }
        }
    };
    let ident = sig.ident.clone();
    let name = ident.to_string();
    ok.then_some(Func {
        name: name.strip_prefix("r#").unwrap_or(&name).to_string(),
        ident,
        doc,
        restrict,
        params,
        ret,
        fallible,
        event: false,
        request_raw: false,
    })
}

/// The values of an `Event` argument, as the server sends them.
const EVENTS: [&str; 4] = ["load", "warm", "cold", "discard"];

/// Checks the `#[event]` function's shape: one `Event` argument besides
/// `ctx` and `PRIV_VCL`, nothing returned but a possible error.
fn check_event(errs: &mut Errors, f: &Func, span: proc_macro2::Span) {
    let values: Vec<_> = f.params.iter().filter(|p| matches!(p.kind, Kind::Value { .. })).collect();
    let one_event = values.len() == 1
        && matches!(&values[0].kind, Kind::Value { vcl, values, .. } if vcl == "ENUM" && values.len() == EVENTS.len());
    let privs_ok = f.params.iter().all(|p| !matches!(p.kind, Kind::Priv { scope, .. } if scope != "PRIV_VCL"));
    if !one_event || !privs_ok || f.ret != "VOID" {
        errs.push(Error::new(
            span,
            "an #[event] function takes `e: Event` (and optionally `ctx: &mut Ctx` and a `PrivVcl`) and returns () or Result<(), Failure>",
        ));
    }
}

/// Checks the `#[request_raw]` function's shape: the head as its one
/// STRING argument besides `ctx` and `PRIV_VCL`, nothing returned but a
/// possible error.
fn check_request_raw(errs: &mut Errors, f: &Func, span: proc_macro2::Span) {
    let values: Vec<_> = f.params.iter().filter(|p| matches!(p.kind, Kind::Value { .. })).collect();
    let one_head = values.len() == 1 && matches!(&values[0].kind, Kind::Value { vcl, .. } if vcl == "STRING");
    let privs_ok = f.params.iter().all(|p| !matches!(p.kind, Kind::Priv { scope, .. } if scope != "PRIV_VCL"));
    if !one_head || !privs_ok || f.ret != "VOID" {
        errs.push(Error::new(
            span,
            "a #[request_raw] function takes the head as a STRING (`head: NullStr`, and optionally `ctx: &mut Ctx` and a `PrivVcl`) and returns () or Result<(), Failure>",
        ));
    }
}

impl Module {
    pub fn read(name: String, m: &mut ItemMod) -> syn::Result<Module> {
        let mut errs = Errors(None);
        let Some((_, items)) = &mut m.content else {
            return Err(Error::new(m.span(), "#[module] needs the module's body inline"));
        };
        let mut functions = Vec::new();
        let mut objects = Vec::new();
        let mut type_docs = Vec::new();
        for item in items.iter_mut() {
            match item {
                Item::Fn(f) if is_pub(&f.vis) => {
                    let event = !take_attrs(&mut f.attrs, &["event"]).is_empty();
                    let raw = !take_attrs(&mut f.attrs, &["request_raw"]).is_empty();
                    if let Some(mut func) = read_fn(&mut errs, &mut f.sig, &mut f.attrs, false) {
                        if event {
                            check_event(&mut errs, &func, f.sig.ident.span());
                            if functions.iter().any(|g: &Func| g.event) {
                                errs.push(Error::new(f.sig.ident.span(), "a module has one #[event] function"));
                            }
                        }
                        if raw {
                            check_request_raw(&mut errs, &func, f.sig.ident.span());
                            if event || functions.iter().any(|g: &Func| g.request_raw) {
                                errs.push(Error::new(
                                    f.sig.ident.span(),
                                    "a module has one #[request_raw] function, and it is not its #[event] one",
                                ));
                            }
                        }
                        func.event = event;
                        func.request_raw = raw;
                        functions.push(func);
                    }
                }
                Item::Struct(s) => type_docs.push((s.ident.clone(), doc(&s.attrs))),
                Item::Enum(s) => type_docs.push((s.ident.clone(), doc(&s.attrs))),
                _ => {}
            }
        }
        for item in items.iter_mut() {
            let Item::Impl(imp) = item else { continue };
            if imp.trait_.is_some() {
                continue;
            }
            let Type::Path(tp) = &*imp.self_ty else { continue };
            let Some(ty) = tp.path.get_ident().cloned() else { continue };
            let mut ctor = None;
            let mut methods = Vec::new();
            for ii in imp.items.iter_mut() {
                let ImplItem::Fn(f) = ii else { continue };
                if !is_pub(&f.vis) {
                    continue;
                }
                let has_self = matches!(f.sig.inputs.first(), Some(FnArg::Receiver(_)));
                if f.sig.ident == "new" && !has_self {
                    ctor = read_fn(&mut errs, &mut f.sig, &mut f.attrs, true);
                } else if has_self {
                    if let Some(FnArg::Receiver(r)) = f.sig.inputs.first() {
                        if r.mutability.is_some() || r.reference.is_none() {
                            errs.push(Error::new(r.span(), "methods take &self: every task may call them at once"));
                        }
                    }
                    if let Some(func) = read_fn(&mut errs, &mut f.sig, &mut f.attrs, false) {
                        methods.push(func);
                    }
                } else {
                    errs.push(Error::new(f.sig.ident.span(), "a public associated function other than `new` is not part of the VCL interface; make it private or a method"));
                }
            }
            match ctor {
                Some(ctor) => {
                    let doc = type_docs.iter().find(|(i, _)| *i == ty).map(|(_, d)| d.clone()).unwrap_or_default();
                    objects.push(Object { name: snake(&ty.to_string()), ty, doc, ctor, methods });
                }
                None if !methods.is_empty() => {
                    errs.push(Error::new(imp.self_ty.span(), "an object class needs `pub fn new(…) -> Self`"))
                }
                None => {}
            }
        }
        if let Some(e) = errs.0 {
            return Err(e);
        }
        Ok(Module { name, doc: doc(&m.attrs), functions, objects })
    }
}
