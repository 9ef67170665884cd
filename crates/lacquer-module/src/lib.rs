//! Writing Lacquer modules, and running them.
//!
//! A module is a Rust `mod` under [`#[module]`](module). Its public
//! functions are VCL functions, its public types with an `impl` block
//! holding `pub fn new` are VCL object classes (`new x = kv.map();`),
//! their other `pub fn(&self, …)` are methods and their `Drop` is the
//! destructor run at VCL discard. Doc comments are the reference docs.
//!
//! ```ignore
//! #[lacquer_module::module]
//! pub mod kv {
//!     use lacquer_module::{Ctx, PrivTask};
//!
//!     /// Returns `key` upper-cased, or `fallback` when it is empty.
//!     pub fn shout(ctx: &mut Ctx, key: &str, #[default("none")] fallback: &str) -> String {
//!         ctx.log(b"shouting");
//!         if key.is_empty() { fallback.into() } else { key.to_uppercase() }
//!     }
//!
//!     /// Counts calls within one request.
//!     pub fn count(n: PrivTask<i64>) -> i64 { let c = n.get_or_insert_with(|| 0); *c += 1; *c }
//! }
//! ```
//!
//! The argument and result types say the VCL types: `i64` INT, `f64`
//! REAL, `bool` BOOL, `&str`/`String`/`&[u8]`/`Vec<u8>` STRING (NULL reads
//! as empty; [`NullStr`] tells it apart),
//! [`Duration`], [`Time`], [`Bytes`], [`Strands`] (and [`StrandsBuf`] as
//! a result), [`Stevedore`], `SocketAddr` IP,
//! [`Header`], [`Http`], [`Backend`], [`BlobRef`]/[`Blob`] BLOB,
//! [`Probe`], [`Acl`], [`Sub`], [`Regex`] REGEX (the pattern's text), `()` VOID. `Option<T>` arguments are
//! optional; `#[default(literal)]` gives a default, `#[enum_values("a",
//! "b")]` on a `&str` makes an ENUM, `#[positional]` leaves an argument
//! nameless (`std.querysort(url)`); `#[restrict(client, backend)]` on a
//! function limits where VCL may call it. Returning `Result<T, E>` fails
//! the task with `E`'s text when `Err` (`VRT_fail`). Private state comes
//! as typed arguments: [`PrivTask`], [`PrivTop`], [`PrivSess`] (one per
//! request, top request, connection), [`PrivCall`], [`PrivVcl`] (shared).
//! A `ctx: &mut Ctx` first argument reaches the [`Host`].
//!
//! Modules call each other by name, never by symbol: one provides a
//! named hook (`ctx.hook_provide("greeting", 10, f)`, usually from its
//! `load` event), another calls it (`ctx.hook_call("greeting", arg)`) and
//! gets the first provider's answer, or `None` — see [`Hooks`].
//!
//! The macro emits, inside the module, `SPEC` (the JSON interface the VCL
//! compiler reads at `import`, see `lacquer_vcl::module`) and `MODULE`, a
//! [`ModuleDef`] for linking the module into a server's [`Registry`]. With
//! the crate's `cdylib` feature on it also exports the C ABI descriptor
//! `LACQUER_MODULE_DESCRIPTOR` (so two modules linked into one program do
//! not clash): the same crate builds linked-in and as a shared library.
//!
//! The server side: implement [`Host`] for a task, keep a [`Registry`],
//! and call `registry.get(name)?.call(&mut Ctx::new(&mut host), target,
//! &args)`. The `loader` feature adds [`loader::LoadedModule`], which opens
//! a shared library, refuses it unless its ABI version fits, and calls it
//! through the same interface.
//!
//! Architecture invariant: this crate knows nothing about the VCL compiler
//! or the server; the spec is its only contract with the former, [`Host`]
//! with the latter.

mod conv;
mod date;
pub mod ffi;
mod hooks;
mod host;
#[cfg(feature = "loader")]
pub mod loader;
pub mod rand;
mod registry;
mod types;
mod ws;

pub use date::http_date;
pub use hooks::{server as server_events, HookFn, Hooks};
pub use host::{
    BackendSpec, ConnInfo, Connection, Ctx, Exclusive, Host, PeerCredError, PrivCall, PrivSess, PrivSlot, PrivTask,
    PrivTop, PrivVcl, RequestEnd, Shared, SharedSlot, VclRef,
};
pub use lacquer_module_macros::module;
pub use registry::{CallFn, Module, ModuleDef, Registry, Target};
pub use types::*;
pub use ws::{Workspace, WsId, WsSnap};

/// What the `#[module]` macro's output uses; not for module authors.
#[doc(hidden)]
pub mod __private {
    pub use crate::conv::{result_object, FromArg, IntoObject, IntoRet};
    pub use lacquer_abi;
}
