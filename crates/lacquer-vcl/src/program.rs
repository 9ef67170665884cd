//! The compiled program: what the compiler hands to the runtime.
//!
//! A [`Program`] is a typed tree, resolved at compile time: variables are
//! [`Var`] ids, header names are interned, regular expressions and ACLs are
//! compiled once and referred to by index, subroutines are referred to by
//! index. [`crate::exec`] walks it against a [`crate::ctx::VclContext`].

use lacquer_defs::{Action, Method, Var, VclType};

use crate::aclmatch::Acl;
use crate::regex::Regex;

/// Index of a subroutine in [`Program::subs`].
pub type SubId = u32;
/// Index of a header name in [`Program::headers`].
pub type HdrId = u32;
/// Index of a regex in [`Program::regexes`].
pub type ReId = u32;
/// Index of an ACL in [`Program::acls`].
pub type AclId = u32;
/// Index of a backend in [`Program::backends`].
pub type BackendId = u32;
/// Index of a probe in [`Program::probes`].
pub type ProbeId = u32;

/// A compiled VCL.
#[derive(Debug)]
pub struct Program {
    /// The VCL version of the main source: 40 or 41.
    pub syntax: u8,
    /// Every subroutine; the built-in methods' bodies include the built-in VCL's.
    pub subs: Vec<Sub>,
    /// The subroutine run for each method, indexed by `Method as usize`.
    pub methods: Vec<SubId>,
    /// Header names, as written in the first place they were used.
    pub headers: Vec<Header>,
    pub regexes: Vec<Regex>,
    pub acls: Vec<AclDef>,
    pub backends: Vec<BackendDef>,
    pub probes: Vec<ProbeDef>,
    /// `import` statements, in order.
    pub imports: Vec<Import>,
    /// Every call of a module function, method or constructor.
    pub calls: Vec<CallSite>,
    /// Objects made with `new`, in order.
    pub instances: Vec<Instance>,
    /// The VCL labels `return (vcl(LABEL))` names, each once.
    pub vcl_labels: Vec<String>,
    /// The backend used when VCL sets none: the first one defined.
    pub default_backend: Option<BackendId>,
    /// What VCC warned about, rendered as its errors are (each ends
    /// "(That was just a warning)"); empty when it had nothing to say.
    pub warnings: String,
}

impl Program {
    /// The subroutine that implements a method.
    pub fn method(&self, m: Method) -> &Sub {
        &self.subs[self.methods[m as usize] as usize]
    }
}

/// A subroutine.
#[derive(Debug)]
pub struct Sub {
    pub name: String,
    pub body: Vec<Stmt>,
}

/// A header name (the part after `req.http.`).
#[derive(Debug, Clone)]
pub struct Header {
    /// As first written.
    pub name: String,
    /// Lowercased, for case-insensitive comparison.
    pub lower: String,
}

/// An ACL: its name and compiled entries.
#[derive(Debug)]
pub struct AclDef {
    pub name: String,
    pub acl: Acl,
    /// `+log`: log each match.
    pub log: bool,
    /// Each entry as written (`"10.0.0.1"/8`, with ` fixed: 10.0.0.0/8`
    /// when VCC masked it), what `+log` names a match by.
    pub labels: Vec<String>,
}

/// A backend declaration.
#[derive(Debug, Clone, Default)]
pub struct BackendDef {
    pub name: String,
    /// `backend x none;`: a backend that never answers.
    pub none: bool,
    pub host: Option<String>,
    pub port: Option<String>,
    /// The addresses `.host` resolved to at compile time.
    pub addrs: Vec<std::net::SocketAddr>,
    pub path: Option<String>,
    pub host_header: Option<String>,
    pub connect_timeout: Option<f64>,
    pub first_byte_timeout: Option<f64>,
    pub between_bytes_timeout: Option<f64>,
    pub max_connections: Option<u32>,
    pub proxy_header: Option<u8>,
    /// `.preamble`: bytes sent first on every new connection.
    pub preamble: Option<Vec<u8>>,
    pub probe: Option<ProbeId>,
}

/// A health probe.
#[derive(Debug, Clone)]
pub struct ProbeDef {
    /// The name, or `vgc_probe__N` for an inline probe.
    pub name: String,
    pub url: Option<String>,
    /// The whole request, when given with `.request` instead of `.url`.
    pub request: Option<Vec<String>>,
    pub expected_response: u16,
    pub timeout: f64,
    pub interval: f64,
    pub initial: Option<u32>,
    pub window: u32,
    pub threshold: u32,
}

impl Default for ProbeDef {
    fn default() -> ProbeDef {
        ProbeDef {
            name: String::new(),
            url: None,
            request: None,
            expected_response: 200,
            timeout: 2.0,
            interval: 5.0,
            initial: None,
            window: 8,
            threshold: 3,
        }
    }
}

/// `import name [from "path"];`
#[derive(Debug, Clone)]
pub struct Import {
    pub name: String,
    pub path: Option<String>,
    /// The module's interface, when a resolver found it.
    pub spec: Option<crate::module::ModuleSpec>,
}

/// Index of a call site in [`Program::calls`].
pub type CallId = u32;

/// What a call site calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTarget {
    /// Function `func` of import `module`.
    Function { module: u32, func: u32 },
    /// Method `method` of an instance.
    Method { instance: u32, method: u32 },
    /// The constructor of an instance (`new`).
    Constructor { instance: u32 },
}

/// One call of module code, with its arguments aligned with the spec's:
/// `None` for private-state arguments and optional ones left out.
#[derive(Debug)]
pub struct CallSite {
    pub target: CallTarget,
    pub args: Vec<Option<Expr>>,
    pub ret: VclType,
}

/// An object made with `new name = module.class(...)`.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    /// Index in [`Program::imports`].
    pub module: u32,
    /// Index in the module spec's objects.
    pub object: u32,
    /// The constructor call.
    pub ctor: Option<CallId>,
}

/// A statement.
#[derive(Debug)]
pub enum Stmt {
    /// `set target op value;` — `op` is one of `=`, `+=`, `-=`, `*=`, `/=`;
    /// the compound forms are lowered to `=` with an arithmetic value.
    Set(Place, Expr),
    /// `unset target;`
    Unset(Place),
    Call(SubId),
    Return(Return),
    /// `return;` in a subroutine that is not a method: leaves it.
    Leave,
    If(Vec<(Expr, Vec<Stmt>)>, Vec<Stmt>),
    Synthetic(Expr),
    HashData(Expr),
    Ban(Expr),
    /// An expression evaluated for its effect (a module's VOID function).
    Eval(Expr),
    /// `new`: construct the instance (vcl_init only).
    New(u32),
}

/// What `set` and `unset` act on.
#[derive(Debug, Clone, Copy)]
pub enum Place {
    Var(Var),
    /// A header of a message: the family (`Var::ReqHttp` …) and the name.
    Header(Var, HdrId),
}

/// A `return()`.
#[derive(Debug)]
pub enum Return {
    /// An action with no argument.
    Plain(Action),
    /// `return (synth(status [, reason]))`; also `error(...)` on the backend side.
    Synth(Action, Expr, Option<Expr>),
    /// `return (pass(DURATION))`.
    PassFor(Expr),
    /// `return (vcl(label))`.
    Vcl(String),
    /// `return (fail(STRING))`: fails with that message, as `VRT_fail`.
    FailWith(Expr),
}

/// Binary arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Regsub,
    Regsuball,
}

/// A type method (`req.http.host.lower()`, `storage.s0.free_space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeMethod {
    Lower,
    Upper,
    Resolve,
    FreeSpace,
    UsedSpace,
    Happy,
}

/// A typed expression; [`Expr::ty`] gives its VCL type.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A constant of its type.
    Const(Const),
    Var(Var, VclType),
    Header(Var, HdrId),
    /// Strings concatenated (the parts are already STRING).
    Concat(Vec<Expr>),
    /// A STRANDS argument: its STRING parts, kept apart (as VCC passes
    /// `"a" + req.http.b` to a module: two strands).
    Strands(Vec<Expr>),
    /// Conversion of a non-string value to STRING.
    ToString(Box<Expr>),
    /// Truthiness of a non-BOOL value in a BOOL context.
    ToBool(Box<Expr>),
    /// INT promoted to REAL.
    ToReal(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>, VclType),
    Neg(Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Match(Box<Expr>, ReId, bool),
    AclMatch(Box<Expr>, AclId, bool),
    /// `ip ~ f()`, where a module's call gives the ACL (or NULL, which
    /// fails the task).
    AclMatchDyn(Box<Expr>, Box<Expr>, bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Builtin(Builtin, Vec<Expr>, ReId),
    Method(TypeMethod, Box<Expr>),
    Backend(BackendId),
    Acl(AclId),
    Probe(ProbeId),
    /// `storage.NAME`.
    Stevedore(String),
    /// A call of module code, returning the given type.
    Call(CallId, VclType),
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Const {
    Str(Vec<u8>),
    Int(i64),
    Real(f64),
    Duration(f64),
    Bytes(f64),
    Bool(bool),
    Time(f64),
    /// The NULL backend (`default` with no backends, or `backend x none`).
    NoBackend,
    /// An IP constant: a string literal where an IP is wanted, resolved
    /// when the VCL is compiled.
    Ip(std::net::SocketAddr),
}

impl Expr {
    /// The expression's VCL type.
    pub fn ty(&self) -> VclType {
        match self {
            Expr::Const(c) => match c {
                Const::Str(_) => VclType::String,
                Const::Int(_) => VclType::Int,
                Const::Real(_) => VclType::Real,
                Const::Duration(_) => VclType::Duration,
                Const::Bytes(_) => VclType::Bytes,
                Const::Bool(_) => VclType::Bool,
                Const::Time(_) => VclType::Time,
                Const::NoBackend => VclType::Backend,
                Const::Ip(_) => VclType::Ip,
            },
            Expr::Var(_, t) => *t,
            Expr::Header(..) => VclType::Header,
            Expr::Concat(_) | Expr::ToString(_) | Expr::Builtin(..) => VclType::String,
            Expr::Strands(_) => VclType::Strands,
            Expr::ToBool(_)
            | Expr::Cmp(..)
            | Expr::Match(..)
            | Expr::AclMatch(..)
            | Expr::AclMatchDyn(..)
            | Expr::And(_)
            | Expr::Or(_)
            | Expr::Not(_) => VclType::Bool,
            Expr::ToReal(_) => VclType::Real,
            Expr::Arith(_, _, _, t) => *t,
            Expr::Neg(e) => e.ty(),
            Expr::Method(m, _) => match m {
                TypeMethod::Lower | TypeMethod::Upper => VclType::String,
                TypeMethod::Resolve => VclType::Backend,
                TypeMethod::FreeSpace | TypeMethod::UsedSpace => VclType::Bytes,
                TypeMethod::Happy => VclType::Bool,
            },
            Expr::Backend(_) => VclType::Backend,
            Expr::Acl(_) => VclType::Acl,
            Expr::Probe(_) => VclType::Probe,
            Expr::Stevedore(_) => VclType::Stevedore,
            Expr::Call(_, t) => *t,
        }
    }
}
