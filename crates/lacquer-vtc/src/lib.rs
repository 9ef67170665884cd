//! A varnishtest-compatible runner: `lacquer vtc`.
//!
//! VTC scripts are how Varnish tests itself and how its users test their
//! VCL; Lacquer runs them as they are. This crate owns the VTC language (its
//! syntax, macros and commands) and the running of scripts: one temporary
//! directory per test, a per-test timeout, parallel runs, and a verdict
//! per script with the log of what happened.
//!
//! It drives Lacquer only as a process — through `lacquer check` for VCL
//! compilation, `lacquer serve` and its sockets, and the shared-memory log
//! the server writes (read with `lacquer-shm`'s reader, as `lacquer log`
//! reads it, for `logexpect`) — never by linking the server in, so a test
//! exercises exactly what a user runs.
//!
//! The rule that keeps it honest: a script that needs something this runner
//! or Lacquer does not do yet FAILS, naming what was missing. It never
//! passes by skipping a command.

pub mod barrier;
pub mod cli;
pub mod counters;
pub mod ctx;
pub mod gzip;
pub mod http;
pub mod json;
pub mod logexp;
pub mod mgr;
pub mod net;
pub mod parse;
pub mod process;
pub mod run;
pub mod screen;
pub mod server;
pub mod tunnel;
pub mod varnish;
pub mod vsl;

pub use run::{run_file, Outcome, RunOptions, Verdict};
