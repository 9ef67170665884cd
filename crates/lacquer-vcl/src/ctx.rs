//! The runtime side of the contract: what a compiled program needs from
//! whoever runs it (the server, a test, a benchmark).
//!
//! The compiler knows nothing about sockets or caches: a program reads and
//! writes variables and headers through [`VclContext`], and says what to do
//! next through the [`Handling`] it returns.

use std::borrow::Cow;
use std::net::SocketAddr;

use lacquer_defs::{Action, Method, Var};

use crate::program::{BackendId, CallId, Header, Program};

/// A value at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A string; `None` is VCL's NULL (an unset header).
    Str(Option<Cow<'a, [u8]>>),
    Int(i64),
    Real(f64),
    Duration(f64),
    Time(f64),
    Bytes(f64),
    Bool(bool),
    Ip(Option<SocketAddr>),
    /// A backend of the program (by index), or none.
    Backend(Option<BackendId>),
    /// STRANDS: the parts of a string, each possibly NULL.
    Strands(Vec<Option<Cow<'a, [u8]>>>),
    /// An ACL of the program (by index), or NULL (a module's result).
    Acl(Option<crate::program::AclId>),
    /// A value of a type the context does not expose (`req` as HTTP …).
    Opaque,
}

impl Value<'_> {
    /// Detaches the value from what it borrows.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(s.map(|c| Cow::Owned(c.into_owned()))),
            Value::Int(v) => Value::Int(v),
            Value::Real(v) => Value::Real(v),
            Value::Duration(v) => Value::Duration(v),
            Value::Time(v) => Value::Time(v),
            Value::Bytes(v) => Value::Bytes(v),
            Value::Bool(v) => Value::Bool(v),
            Value::Ip(v) => Value::Ip(v),
            Value::Backend(v) => Value::Backend(v),
            Value::Strands(v) => Value::Strands(v.into_iter().map(|s| s.map(|c| Cow::Owned(c.into_owned()))).collect()),
            Value::Acl(v) => Value::Acl(v),
            Value::Opaque => Value::Opaque,
        }
    }
}

/// A VCL failure (`VRT_fail`): the transaction ends as `return (fail)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure(pub String);

/// What the program decided: the action and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Handling {
    pub action: Action,
    /// `synth(status, ...)` / `error(status, ...)`.
    pub status: Option<i64>,
    pub reason: Option<Vec<u8>>,
    /// `pass(DURATION)`.
    pub pass_ttl: Option<f64>,
    /// `vcl(label)`.
    pub label: Option<String>,
}

impl Handling {
    /// An action without arguments.
    pub fn plain(action: Action) -> Handling {
        Handling { action, status: None, reason: None, pass_ttl: None, label: None }
    }
}

/// What a running program may ask of its host.
///
/// Variables are read with [`get`](VclContext::get) and written with
/// [`set`](VclContext::set); the compiler has already checked that each
/// access is legal in the method being run, so an implementation only
/// handles the variables that exist where it runs.
pub trait VclContext {
    /// The method being run.
    fn method(&self) -> Method;
    /// Reads a variable.
    fn get(&self, var: Var) -> Value<'_>;
    /// Reads a variable as an expression does: the same as
    /// [`get`](VclContext::get), except where reading may fail the task
    /// (a BLOB that does not fit in the workspace).
    fn read(&self, var: Var) -> Result<Value<'_>, Failure> {
        Ok(self.get(var))
    }
    /// Writes a variable.
    fn set(&mut self, var: Var, value: Value<'_>) -> Result<(), Failure>;
    /// Unsets a variable (`unset req.body`, …).
    fn unset(&mut self, var: Var) -> Result<(), Failure>;
    /// Reads a header of the message `family` (`Var::ReqHttp` …).
    fn header(&self, family: Var, name: &Header) -> Option<&[u8]>;
    /// Sets a header, replacing every existing one of that name; fails
    /// when the server refuses the value (Varnish's `validate_headers`).
    fn set_header(&mut self, family: Var, name: &Header, value: &[u8]) -> Result<(), Failure>;
    /// Removes every header of that name.
    fn unset_header(&mut self, family: Var, name: &Header);
    /// `hash_data()`.
    fn hash_data(&mut self, _data: &[u8]) {}
    /// `synthetic()`: appends to the body being made.
    fn synthetic(&mut self, _body: &[u8]) {}
    /// `ban()`: an invalid expression is logged, not a failure; `None` is
    /// VCL's NULL string (an unset header).
    fn ban(&mut self, _expr: Option<&[u8]>) {}
    /// Calls module code: `program.calls[call]` says what, `args` are
    /// aligned with the spec's arguments (`None` where the module gets
    /// private state or an optional argument was left out). A context
    /// without modules refuses.
    fn call(&self, program: &Program, call: CallId, args: &[Option<Value<'_>>]) -> Result<Value<'static>, Failure> {
        let _ = (program, args);
        Err(Failure(format!("call {call}: no module system in this context")))
    }
    /// A call made as a statement, which may change the task (set
    /// headers, log): the same as [`VclContext::call`] unless the context
    /// lets modules act on it.
    fn call_mut(
        &mut self,
        program: &Program,
        call: CallId,
        args: &[Option<Value<'static>>],
    ) -> Result<Value<'static>, Failure> {
        self.call(program, call, args)
    }
    /// Logs a `+log` ACL's verdict (a `VCL_acl` record), in order with
    /// the rest of the task's log.
    fn log_acl(&self, _line: &str) {}
    /// The name of a backend, for conversions to STRING.
    fn backend_name(&self, _b: BackendId) -> Option<&str> {
        None
    }
    /// `storage.NAME.free_space`, `.used_space` (BYTES) and `.happy`
    /// (BOOL): the cache's figures, which only the server knows. Without
    /// a cache, a store is empty and happy.
    fn stevedore(&self, _name: &str, method: crate::program::TypeMethod) -> Value<'static> {
        match method {
            crate::program::TypeMethod::Happy => Value::Bool(true),
            _ => Value::Bytes(0.0),
        }
    }

    /// Charges a string of `len` bytes the program built (a conversion,
    /// a `regsub()`, a concatenation kept as a value) to the task's
    /// workspace, as Varnish allocates it there. `false` when it did not
    /// fit: the workspace is then overflowed and the task fails where
    /// Varnish's would; the value is still made, so evaluation goes on.
    fn ws_charge(&self, _len: usize) -> bool {
        true
    }

    /// The backend a director picks now, for `BACKEND.resolve()`; a
    /// backend is its own pick. `None` when it picks none.
    fn resolve_backend(&self, b: BackendId) -> Option<BackendId> {
        Some(b)
    }
}
