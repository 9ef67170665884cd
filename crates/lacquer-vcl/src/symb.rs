//! The symbol table (VCC's `vcc_symb.c`): every name VCL can mention.
//!
//! Built-in names (variables from `lacquer_defs::vars`, actions, functions,
//! `true`/`false`, stevedores) are entered when the table is made; backends,
//! probes, ACLs, subroutines and imported modules are added as they are
//! declared. A module's functions and objects join the same table at
//! `import`, so they are looked up and type-checked like built-ins.
//!
//! Names are dotted (`req.http.host`, `storage.s0.free_space`): a lookup finds
//! the longest defined prefix, and the rest is the header name of a header
//! family or a type method — VCC's partial lookup.

use std::collections::HashMap;

use lacquer_defs::vars::{VarDef, VARIABLES};
use lacquer_defs::VclType;

use crate::compile::Options;
use crate::program::{AclId, BackendId, Builtin, ProbeId, SubId};
use crate::source::Span;

/// What a name denotes.
#[derive(Debug, Clone)]
pub enum SymKind {
    /// A variable.
    Var(&'static VarDef),
    /// A header family root (`req.http`): a name below it is a header.
    HdrFamily(&'static VarDef),
    /// A statement keyword (`set`, `unset` …).
    Action,
    /// A top-level keyword (`acl`, `sub` …).
    Reserved,
    /// `regsub`, `regsuball`.
    Func(Builtin),
    /// `true` or `false`.
    BoolConst(bool),
    /// `default`: the default backend.
    DefaultBackend,
    Backend(BackendId),
    Probe(ProbeId),
    Acl(AclId),
    Sub(SubId),
    /// An imported module.
    Module(u32),
    /// `storage.NAME`.
    Stevedore(String),
    /// A function of an imported module: (import, function).
    ModFunc(u32, u32),
    /// An object class of an imported module: (import, class).
    ModObject(u32, u32),
    /// An object made with `new`.
    Instance(u32),
    /// A method of an object: (instance, method).
    InstanceMethod(u32, u32),
}

impl SymKind {
    /// VCC's word for the kind, as used in messages.
    pub fn word(&self) -> &'static str {
        match self {
            SymKind::Var(_) | SymKind::HdrFamily(_) => "var",
            SymKind::Action => "action",
            SymKind::Reserved => "reserved",
            SymKind::Func(_) | SymKind::BoolConst(_) | SymKind::DefaultBackend => "func",
            SymKind::Backend(_) => "backend",
            SymKind::Probe(_) => "probe",
            SymKind::Acl(_) => "acl",
            SymKind::Sub(_) => "sub",
            SymKind::Module(_) => "vmod",
            SymKind::Stevedore(_) => "var",
            SymKind::ModFunc(..) | SymKind::InstanceMethod(..) => "func",
            SymKind::ModObject(..) => "object",
            SymKind::Instance(_) => "instance",
        }
    }
}

/// A symbol.
#[derive(Debug, Clone)]
pub struct Sym {
    pub kind: SymKind,
    /// Where it was declared, for user declarations.
    pub def: Option<Span>,
    /// Its value type, where it has one.
    pub ty: VclType,
}

/// What a (possibly partial) lookup found.
#[derive(Debug, Clone)]
pub enum Found {
    Sym(Sym),
    /// A header: its family's row and its name.
    Header(&'static VarDef, String),
}

/// The symbol table.
#[derive(Debug)]
pub struct Symbols {
    map: HashMap<String, Sym>,
}

const ACTIONS: &[&str] = &["ban", "call", "hash_data", "if", "new", "return", "set", "synthetic", "unset"];
const RESERVED: &[&str] = &["acl", "backend", "import", "probe", "sub", "vcl"];

impl Symbols {
    /// A table with every built-in name.
    pub fn new(opts: &Options) -> Symbols {
        let mut map = HashMap::new();
        let mut add = |name: &str, kind: SymKind, ty: VclType| {
            map.insert(name.to_string(), Sym { kind, def: None, ty });
        };
        for v in VARIABLES {
            if v.is_family() {
                if v.ty == VclType::Header {
                    add(v.name.trim_end_matches('.'), SymKind::HdrFamily(v), VclType::Header);
                }
            } else {
                add(v.name, SymKind::Var(v), v.ty);
            }
        }
        for a in ACTIONS {
            add(a, SymKind::Action, VclType::Void);
        }
        for r in RESERVED {
            add(r, SymKind::Reserved, VclType::Void);
        }
        add("regsub", SymKind::Func(Builtin::Regsub), VclType::String);
        add("regsuball", SymKind::Func(Builtin::Regsuball), VclType::String);
        add("true", SymKind::BoolConst(true), VclType::Bool);
        add("false", SymKind::BoolConst(false), VclType::Bool);
        add("default", SymKind::DefaultBackend, VclType::Backend);
        for s in &opts.stevedores {
            add(&format!("storage.{}", s), SymKind::Stevedore(s.clone()), VclType::Stevedore);
        }
        Symbols { map }
    }

    /// The symbol with exactly this name.
    pub fn get(&self, name: &str) -> Option<&Sym> {
        self.map.get(name)
    }

    /// Adds or replaces a symbol.
    pub fn insert(&mut self, name: String, sym: Sym) {
        self.map.insert(name, sym);
    }

    /// Sets where a symbol was defined.
    pub fn set_def(&mut self, name: &str, sp: Span) {
        if let Some(s) = self.map.get_mut(name) {
            s.def = Some(sp);
        }
    }

    /// Like [`Symbols::lookup_partial`], for VCL syntax `syntax` (40 or 41):
    /// variables of the other version are not there.
    pub fn lookup_partial_at(&self, name: &str, syntax: u8) -> Option<(Found, usize)> {
        let mut end = name.len();
        loop {
            let p = &name[..end];
            match self.map.get(p) {
                Some(Sym { kind: SymKind::Var(v), .. }) if !v.in_vcl(syntax) => {}
                // VCC knows the top-level keywords as symbols in VCL 4.1 only.
                Some(Sym { kind: SymKind::Reserved, .. }) if syntax < 41 => {}
                Some(s) => return Some((Found::Sym(s.clone()), end)),
                None => {}
            }
            let dot = p.rfind('.')?;
            if let Some(Sym { kind: SymKind::HdrFamily(v), .. }) = self.map.get(&p[..dot]) {
                if dot + 1 < p.len() {
                    return Some((Found::Header(v, p[dot + 1..].to_string()), end));
                }
            }
            end = dot;
        }
    }

    /// What VCC adds to "Symbol not found: 'name'" when the name is a
    /// variable of the other VCL version.
    pub fn version_note(&self, name: &str, syntax: u8) -> String {
        match self.map.get(name) {
            Some(Sym { kind: SymKind::Reserved, .. }) if syntax < 41 => {
                " (Only available when 4.1 <= VCL syntax <= 4.1)".into()
            }
            Some(Sym { kind: SymKind::Var(v), .. }) if !v.in_vcl(syntax) => {
                let mut note = String::from(" (Only available when");
                if v.vcl_min > 40 {
                    note.push_str(&format!(" {}.{} <=", v.vcl_min / 10, v.vcl_min % 10));
                }
                note.push_str(" VCL syntax");
                if v.vcl_max < 41 {
                    note.push_str(&format!(" <= {}.{}", v.vcl_max / 10, v.vcl_max % 10));
                }
                note.push(')');
                note
            }
            _ => String::new(),
        }
    }

    /// The longest prefix of `name` (cut at dots) that names something:
    /// what it is and how many bytes of `name` it covers. A header family
    /// takes exactly one more component as the header name.
    pub fn lookup_partial(&self, name: &str) -> Option<(Found, usize)> {
        let mut end = name.len();
        loop {
            let p = &name[..end];
            if let Some(s) = self.map.get(p) {
                return Some((Found::Sym(s.clone()), end));
            }
            if let Some(dot) = p.rfind('.') {
                if let Some(Sym { kind: SymKind::HdrFamily(v), .. }) = self.map.get(&p[..dot]) {
                    if dot + 1 < p.len() {
                        return Some((Found::Header(v, p[dot + 1..].to_string()), end));
                    }
                }
                end = dot;
            } else {
                return None;
            }
        }
    }
}
