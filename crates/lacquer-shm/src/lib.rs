//! Lacquer's shared-memory transaction log: Varnish's VSL.
//!
//! The server writes what each transaction does as tagged records (the
//! tags of Varnish 7.1, from [`lacquer_defs::tags`]) into a ring in a
//! memory-mapped file in its working directory; tools in other processes
//! read it without ever slowing the server down (`lacquer log`, later
//! `lacquer ncsa` and `lacquer vtc`'s `logexpect`).
//!
//! - [`record`]: one record's binary layout, the same as Varnish's, also
//!   used by `-w`/`-r` files;
//! - [`ring`]: the file, the lock-free writer ([`Log`], [`VslBuf`]) and the
//!   reader ([`ShmReader`]), with the layout documented there;
//! - [`group`]: records into transactions, transactions into groups
//!   (`-g raw|vxid|request|session`);
//! - [`query`]: the `-q` query language (vsl-query(7));
//! - [`print`]: the `-i -x -I -X -c -b` filters and varnishlog's output;
//! - [`file`]: binary log files (`-w`, `-r`) in varnishlog's format;
//! - [`tool`]: `lacquer log` itself.
//!
//! # Writing, from the server
//!
//! ```no_run
//! use lacquer_shm::{Log, Side, Tag};
//! let log = Log::create(std::path::Path::new("/tmp/inst"), 80 << 20).unwrap();
//! let mut vsl = log.buffer(); // one per worker or task; reuse it
//! vsl.log(Tag::Begin, 1001, Side::Client, format_args!("req {} rxreq", 1000));
//! vsl.log_str(Tag::ReqURL, 1001, Side::Client, "/");
//! vsl.log_str(Tag::End, 1001, Side::Client, ""); // End flushes the buffer
//! ```
//!
//! `log.set_mask_bits(bits)` takes the `vsl_mask` parameter's value (a masked
//! tag then costs one relaxed load), `log.set_reclen(n)` the `vsl_reclen`
//! and `log.set_buffer_size(n)` the `vsl_buffer` one.
//!
//! This crate knows nothing about sockets, HTTP or VCL: it moves records.

pub mod group;
pub mod record;
pub mod ring;

pub use group::{Group, Grouper, Grouping, Tx, TxKind};
pub use lacquer_defs::Tag;
pub use ncsa::{run as run_ncsa, NcsaOptions};
pub use query::{Query, QueryError};
pub use record::{Record, Side};
pub use ring::{Log, ReadEvent, ShmReader, Start, VslBuf};
pub use stat::{prometheus, run as run_stat, StatOptions};
pub use tool::{run as run_log, LogOptions};
pub use vsc::{Point, Vsc, VscReader};
pub mod file;
pub mod ncsa;
pub mod print;
pub mod query;
pub mod stat;
pub mod tool;
pub mod vsc;

/// An I/O error's message as strerror(3) words it, without Rust's
/// ` (os error N)`, for messages worded as the Varnish tools word them.
pub fn os_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The working directory a server uses, and the tools read, when `-n` is
/// not given (varnishd's is `/var/lib/varnish/<host>`; Lacquer runs
/// unprivileged, so it keeps it under the temporary directory).
pub fn default_workdir() -> std::path::PathBuf {
    std::env::temp_dir().join("lacquer")
}
