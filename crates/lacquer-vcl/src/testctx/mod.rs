//! A plain in-memory [`VclContext`], for tests and benchmarks: variables in a
//! map, headers in ordered lists, effects recorded.

use std::borrow::Cow;
use std::net::SocketAddr;

use lacquer_defs::{Method, Var, VARIABLES};

use crate::ctx::{Failure, Value, VclContext};
use crate::program::{BackendId, CallId, Header, Program};

/// A context that keeps everything in memory.
/// The hook that answers module calls.
pub type CallHook = Box<dyn Fn(&Program, CallId, &[Option<Value<'_>>]) -> Result<Value<'static>, Failure>>;

#[derive(Default)]
pub struct MemContext {
    pub method: Option<Method>,
    /// Variable values, indexed by `Var as usize`.
    pub vars: Vec<Option<Value<'static>>>,
    /// Headers per family (indexed by `Var as usize`), in order, names as set.
    pub headers: Vec<Vec<(String, Vec<u8>)>>,
    pub hashed: Vec<Vec<u8>>,
    pub body: Vec<u8>,
    pub bans: Vec<Vec<u8>>,
    pub backend_names: Vec<String>,
    /// Answers calls of module code; without it they fail.
    pub on_call: Option<CallHook>,
}

impl MemContext {
    /// A context for running `m`.
    pub fn new(m: Method) -> MemContext {
        MemContext {
            method: Some(m),
            vars: vec![None; VARIABLES.len()],
            headers: vec![Vec::new(); VARIABLES.len()],
            ..Default::default()
        }
    }

    /// Sets any variable.
    pub fn set_var(&mut self, v: Var, value: Value<'static>) -> &mut Self {
        self.vars[v as usize] = Some(value);
        self
    }

    /// A variable's value.
    pub fn var(&self, v: Var) -> Option<&Value<'static>> {
        self.vars[v as usize].as_ref()
    }

    /// Adds a header to a message.
    pub fn add_header(&mut self, fam: Var, name: &str, value: &str) -> &mut Self {
        self.headers[fam as usize].push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets a string variable.
    pub fn set_str(&mut self, v: Var, s: &str) -> &mut Self {
        self.set_var(v, Value::Str(Some(Cow::Owned(s.as_bytes().to_vec()))))
    }

    /// Sets an IP variable.
    pub fn set_ip(&mut self, v: Var, a: SocketAddr) -> &mut Self {
        self.set_var(v, Value::Ip(Some(a)))
    }

    /// A header's value as text, for assertions.
    pub fn hdr(&self, fam: Var, name: &str) -> Option<String> {
        self.headers[fam as usize]
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// A variable's value as text, for assertions.
    pub fn str_var(&self, v: Var) -> Option<String> {
        match self.var(v)? {
            Value::Str(Some(s)) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

impl VclContext for MemContext {
    fn method(&self) -> Method {
        self.method.unwrap_or(Method::Recv)
    }

    fn get(&self, var: Var) -> Value<'_> {
        match self.var(var) {
            Some(Value::Str(Some(s))) => Value::Str(Some(Cow::Borrowed(&s[..]))),
            Some(v) => v.clone(),
            None => match var.def().ty {
                lacquer_defs::VclType::Int => Value::Int(0),
                lacquer_defs::VclType::Bool => Value::Bool(false),
                lacquer_defs::VclType::Duration => Value::Duration(0.0),
                lacquer_defs::VclType::Real => Value::Real(0.0),
                lacquer_defs::VclType::Time => Value::Time(0.0),
                lacquer_defs::VclType::Ip => Value::Ip(None),
                lacquer_defs::VclType::Backend => Value::Backend(None),
                _ => Value::Str(None),
            },
        }
    }

    fn set(&mut self, var: Var, value: Value<'_>) -> Result<(), Failure> {
        self.vars[var as usize] = Some(value.into_owned());
        Ok(())
    }

    fn unset(&mut self, var: Var) -> Result<(), Failure> {
        self.vars[var as usize] = None;
        Ok(())
    }

    fn header(&self, family: Var, name: &Header) -> Option<&[u8]> {
        self.headers[family as usize].iter().find(|(n, _)| n.eq_ignore_ascii_case(&name.lower)).map(|(_, v)| &v[..])
    }

    fn set_header(&mut self, family: Var, name: &Header, value: &[u8]) {
        let list = &mut self.headers[family as usize];
        match list.iter().position(|(n, _)| n.eq_ignore_ascii_case(&name.lower)) {
            Some(i) => {
                // Replace the first in place, drop any others.
                let v = &mut list[i].1;
                v.clear();
                v.extend_from_slice(value);
                let mut j = i + 1;
                while j < list.len() {
                    if list[j].0.eq_ignore_ascii_case(&name.lower) {
                        list.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => list.push((name.name.clone(), value.to_vec())),
        }
    }

    fn unset_header(&mut self, family: Var, name: &Header) {
        let list = &mut self.headers[family as usize];
        if list.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name.lower)) {
            list.retain(|(n, _)| !n.eq_ignore_ascii_case(&name.lower));
        }
    }

    fn hash_data(&mut self, data: &[u8]) {
        self.hashed.push(data.to_vec());
    }

    fn synthetic(&mut self, body: &[u8]) {
        self.body.extend_from_slice(body);
    }

    fn ban(&mut self, expr: Option<&[u8]>) {
        self.bans.push(expr.unwrap_or_default().to_vec());
    }

    fn call(&self, program: &Program, call: CallId, args: &[Option<Value<'_>>]) -> Result<Value<'static>, Failure> {
        match &self.on_call {
            Some(f) => f(program, call, args),
            None => Err(Failure(format!("call {call}: no module answers"))),
        }
    }

    fn backend_name(&self, b: BackendId) -> Option<&str> {
        self.backend_names.get(b as usize).map(String::as_str)
    }
}
