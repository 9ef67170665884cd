//! A varnishtest-compatible runner: `lacquer vtc`.
//!
//! VTC scripts are how Varnish tests itself and how its users test their
//! VCL; Lacquer runs them as they are. This crate owns the VTC language (its
//! syntax, macros and commands) and the running of scripts: one temporary
//! directory per test, a per-test timeout, parallel runs, and a verdict
//! per script with the log of what happened.
//!
//! It drives Lacquer only as a process, the way varnishtest drives
//! varnishd (`mgr.rs`): `lacquer serve -d` calling the runner's admin CLI
//! back (`-M`), VCLs loaded with `vcl.inline` and `vcl.use`, `start` and
//! `stop`, its sockets, and the shared memory the server writes — counters
//! for `-expect`, the log for `logexpect` (read with `lacquer-shm`'s
//! readers, as `lacquer stat` and `lacquer log` read them) — never by
//! linking the server in, so a test exercises exactly what a user runs.
//! With `--varnishd` the very same flow drives the real varnishd, which
//! tells a runner bug from a Lacquer bug.
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
pub mod vsl;

pub use run::{run_file, Outcome, RunOptions, Verdict};
