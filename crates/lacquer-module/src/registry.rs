//! Modules as the server sees them: linked-in ones (a [`ModuleDef`] the
//! macro made) and, with the `loader` feature, ones loaded from shared
//! libraries, behind one [`Module`] type and a [`Registry`] by name.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::host::Ctx;
use crate::types::{Arg, Failure, Instance, Value};

/// What a call calls, in the spec's numbering.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Function `n` of the spec's `functions`.
    Function(u32),
    /// The constructor of object class `n` (the spec's `objects`): the
    /// result is a [`Value::Object`] to keep and drop at VCL discard.
    Constructor(u32),
    /// Method `method` of object class `object`, on `this`.
    Method { object: u32, method: u32, this: &'a Instance },
}

/// The Rust-level dispatcher the macro writes for a module.
pub type CallFn = for<'c, 'h, 't, 'a> fn(&'c mut Ctx<'h>, Target<'t>, &[Arg<'a>]) -> Result<Value, Failure>;

/// A linked-in module: what `#[module]` emits as `MODULE`.
#[derive(Debug)]
pub struct ModuleDef {
    /// The module's name (`import NAME;`).
    pub name: &'static str,
    /// Its interface spec, as `lacquer_vcl::ModuleSpec::from_json` reads it.
    pub spec: &'static str,
    /// Calls a function, constructor or method.
    pub call: CallFn,
}

/// A module ready to be called. Cloning is cheap: a loaded module's clones
/// share its library.
#[derive(Debug, Clone)]
pub enum Module {
    /// Compiled into this program.
    Linked(&'static ModuleDef),
    /// Loaded from a shared library.
    #[cfg(feature = "loader")]
    Loaded(crate::loader::LoadedModule),
}

impl Module {
    /// The module's name.
    pub fn name(&self) -> &str {
        match self {
            Module::Linked(d) => d.name,
            #[cfg(feature = "loader")]
            Module::Loaded(m) => m.name(),
        }
    }

    /// The interface spec (JSON).
    pub fn spec(&self) -> &str {
        match self {
            Module::Linked(d) => d.spec,
            #[cfg(feature = "loader")]
            Module::Loaded(m) => m.spec(),
        }
    }

    /// Calls `target` with `args`, aligned with the spec's arguments
    /// ([`Arg::Absent`] for private state and left-out optional ones).
    /// A panic in the module becomes a failure of the task.
    pub fn call(&self, ctx: &mut Ctx<'_>, target: Target<'_>, args: &[Arg<'_>]) -> Result<Value, Failure> {
        match self {
            Module::Linked(d) => match catch_unwind(AssertUnwindSafe(|| (d.call)(ctx, target, args))) {
                Ok(r) => r,
                Err(p) => Err(panic_failure(d.name, p)),
            },
            #[cfg(feature = "loader")]
            Module::Loaded(m) => m.call(ctx, target, args),
        }
    }
}

pub(crate) fn panic_failure(module: &str, p: Box<dyn std::any::Any + Send>) -> Failure {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    Failure(format!("module {module} panicked: {what}"))
}

/// The modules a server knows, by name.
#[derive(Debug, Default)]
pub struct Registry {
    modules: Vec<Module>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a linked-in module (replacing one of the same name).
    pub fn link(&mut self, def: &'static ModuleDef) -> &mut Registry {
        self.add(Module::Linked(def))
    }

    /// Adds a module (replacing one of the same name).
    pub fn add(&mut self, m: Module) -> &mut Registry {
        self.modules.retain(|o| o.name() != m.name());
        self.modules.push(m);
        self
    }

    /// A module by name.
    pub fn get(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name() == name)
    }

    /// Every module, in the order added.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
}
