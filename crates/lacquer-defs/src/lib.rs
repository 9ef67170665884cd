//! Lacquer's tables of facts.
//!
//! Every family of facts Lacquer shares with Varnish — the VCL types, the
//! built-in subroutines and their legal `return()` actions, the VCL variables
//! and where each may be read, set or unset — is kept here exactly once, as
//! data, with its documentation in the rows. The compiler's checks, the
//! runtime's dispatch and the reference docs are all derived from these
//! tables; nothing else in the tree repeats a list of variants.
//!
//! This crate knows nothing about parsing, sockets or execution: it is rows
//! and the few helpers needed to query them.

pub mod method;
pub mod types;
pub mod vars;

pub use method::{Action, Method, MethodMask};
pub use types::VclType;
pub use vars::{Var, VarDef, VARIABLES};
