//! The VCL compiler.
//!
//! `lacquer-vcl` turns VCL source (Varnish's 4.0 and 4.1 dialects, as
//! Varnish 7.1 accepts them) into a [`Program`], or into the error text
//! VCC would print for it. It owns the language and nothing else: it knows
//! nothing about sockets, caches or threads. The runtime talks to a program
//! through the [`VclContext`] trait and gets a [`Handling`] back.
//!
//! The pipeline mirrors VCC's, file for file, so that a compatibility bug
//! can be chased with both sources side by side:
//!
//! | here | VCC | what |
//! |---|---|---|
//! | `token.rs` | `vcc_token.c` | bytes to tokens |
//! | `compile.rs` | `vcc_compile.c` | sources, includes, top level, driver |
//! | `symb.rs` | `vcc_symb.c` | the symbol table |
//! | `action.rs` | `vcc_action.c`, `vcc_parse.c` | subroutines and statements |
//! | `expr.rs` | `vcc_expr.c` | typed expressions |
//! | `backend.rs` | `vcc_backend.c` | backends and probes |
//! | `acl.rs` | `vcc_acl.c` | ACLs |
//! | `xref.rs` | `vcc_xref.c` | use, return and recursion checks |
//! | `diag.rs`, `render.rs` | `vcc_ErrWhere` … | error values; VCC's layout |
//!
//! The key design decision: like VCC, one pass parses, type-checks and
//! lowers, and compilation stops at the first error, because the text of
//! that first error is a contract with Varnish's users and test suite.
//! Lowering produces a typed tree ([`program`]) that [`exec`] interprets;
//! variables, headers, regexes and ACLs are all resolved to indexes at
//! compile time, so running `vcl_recv` never looks a name up.

mod acl;
pub mod aclmatch;
mod action;
mod backend;
pub mod compile;
pub mod conv;
pub mod ctx;
pub mod diag;
pub mod exec;
mod expr;
mod json;
pub mod module;
pub mod program;
pub mod regex;
pub mod render;
pub mod source;
pub mod symb;
pub mod testctx;
pub mod token;
mod vmod;
mod xref;

pub use compile::{compile_path, compile_str, CompileError, Options, BUILTIN_VCL};
pub use ctx::{Failure, Handling, Value, VclContext};
pub use module::{ModuleResolver, ModuleSpec, ResolveError};
pub use program::Program;
