//! The counters of Varnish 7.1 that Lacquer keeps (Varnish's VSC, its
//! `lib/libvcc/*.vsc` files and varnish-counters(7)): one table per group,
//! with Varnish's names, type, level and unit, and a one-line description
//! of our own.
//!
//! Varnish groups counters into segments: `MAIN` exists once, `SMA.<store>`
//! once per malloc storage, `SMF.<store>` once per file storage, `VBE.<vcl>.<backend>` once per backend of each
//! loaded VCL. Each group here is a table; the dynamic groups are
//! instantiated at run time under their identifier (`lacquer-shm`'s `vsc`).
//!
//! A table is a `#[macro_export]` macro that hands its rows to a callback
//! macro, so that each crate expands the one list into what it needs (the
//! [`CounterDef`] slices here, the structs of named handles in
//! `lacquer-shm`), as Varnish includes `tbl/*.h` wherever it needs them:
//!
//! ```text
//! vsc_main! { callback }   // callback! { "MAIN" Main; name Kind Level Unit "doc"; ... }
//! ```
//!
//! Left out, because Lacquer has nothing that could honestly feed them:
//! `MAIN.summs` (per-thread sums; our counters are shared atomics),
//! `MAIN.n_vampireobject` and `MAIN.bans_persisted_*` (persistent storage),
//! `MAIN.hcb_*` (the critbit hash), `MAIN.sess_herd` (Varnish's waiter),
//! `MAIN.shm_cont` (the log takes no lock), `MAIN.exp_mailed` and
//! `MAIN.exp_received` (the expiry thread's mailbox), and the `MGT`, `LCK`
//! and `MEMPOOL` groups (no manager process, no Varnish locks or pools).
//! `MAIN.sess_drop` was removed from Varnish before 7.1.

/// What a counter's value means, which decides how it is shown (Varnish's
/// `type` in the `.vsc` files; the `flag` of `varnishstat -j`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Only ever grows; tools show its rate (`c`).
    Counter,
    /// Goes up and down, a level such as objects in cache (`g`).
    Gauge,
    /// A set of bits, such as a backend's last probe results (`b`).
    Bitmap,
}

impl Kind {
    /// Varnish's one-letter form, as `varnishstat -j` prints it in `flag`.
    pub fn as_char(self) -> char {
        match self {
            Kind::Counter => 'c',
            Kind::Gauge => 'g',
            Kind::Bitmap => 'b',
        }
    }

    /// The kind with Varnish's letter `c`.
    pub fn from_char(c: char) -> Option<Kind> {
        [Kind::Counter, Kind::Gauge, Kind::Bitmap].into_iter().find(|k| k.as_char() == c)
    }

    /// Varnish's word (`counter`, `gauge`, `bitmap`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Bitmap => "bitmap",
        }
    }
}

/// Who a counter is for (Varnish's `level`): `varnishstat`'s live view
/// shows `info` by default and the others on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Of interest to every operator.
    Info,
    /// For diagnosing a problem.
    Diag,
    /// For developers.
    Debug,
}

impl Level {
    /// Varnish's word (`info`, `diag`, `debug`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Diag => "diag",
            Level::Debug => "debug",
        }
    }

    /// The level stored as `n` by [`Level::index`].
    pub fn from_index(n: u8) -> Option<Level> {
        [Level::Info, Level::Diag, Level::Debug].get(n as usize).copied()
    }

    /// 0, 1 or 2: the level as a number.
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// What a counter counts in (Varnish's `format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Things or events (`i`).
    Count,
    /// Bytes (`B`).
    Bytes,
    /// Seconds (`d`, a duration).
    Seconds,
    /// Bits of a bitmap (`b`).
    Bits,
}

impl Unit {
    /// Varnish's one-letter form, as `varnishstat -j` prints it in `format`.
    pub fn as_char(self) -> char {
        match self {
            Unit::Count => 'i',
            Unit::Bytes => 'B',
            Unit::Seconds => 'd',
            Unit::Bits => 'b',
        }
    }

    /// The unit with Varnish's letter `c`.
    pub fn from_char(c: char) -> Option<Unit> {
        [Unit::Count, Unit::Bytes, Unit::Seconds, Unit::Bits].into_iter().find(|u| u.as_char() == c)
    }
}

/// One counter of a group: a row of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterDef {
    /// The name within the group (`cache_hit` of `MAIN.cache_hit`).
    pub name: &'static str,
    /// Counter, gauge or bitmap.
    pub kind: Kind,
    /// Info, diag or debug.
    pub level: Level,
    /// What it counts in.
    pub unit: Unit,
    /// A one-line description.
    pub doc: &'static str,
}

/// Expands a table's rows into `pub static $NAME: &[CounterDef]`.
macro_rules! def_slice {
    ($group:literal $ty:ident $slice:ident; $( $name:ident $kind:ident $level:ident $unit:ident $doc:literal; )*) => {
        #[doc = concat!("The `", $group, "` counters, in Varnish's order.")]
        pub static $slice: &[CounterDef] = &[$(
            CounterDef {
                name: stringify!($name),
                kind: Kind::$kind,
                level: Level::$level,
                unit: Unit::$unit,
                doc: $doc,
            },
        )*];
    };
}

/// The `MAIN` group: the server as a whole (Varnish's `main.vsc`). Hands
/// the rows to `$cb! { "MAIN" Main MAIN; name Kind Level Unit "doc"; ... }`.
#[macro_export]
macro_rules! vsc_main {
    ($cb:ident) => {
        $cb! { "MAIN" Main MAIN;
            uptime Counter Info Seconds "Seconds since the server started";
            sess_conn Counter Info Count "Client connections accepted";
            sess_fail Counter Info Count "Client connections that accept() failed to give";
            sess_fail_econnaborted Counter Info Count "Failed accepts: the client aborted the connection";
            sess_fail_eintr Counter Info Count "Failed accepts: interrupted by a signal";
            sess_fail_emfile Counter Info Count "Failed accepts: out of file descriptors";
            sess_fail_ebadf Counter Info Count "Failed accepts: bad listening descriptor";
            sess_fail_enomem Counter Info Count "Failed accepts: out of memory";
            sess_fail_other Counter Info Count "Failed accepts: any other cause";
            client_req_400 Counter Info Count "Client requests refused as malformed (400)";
            client_req_417 Counter Info Count "Client requests refused for their Expect header (417)";
            client_req Counter Info Count "Well-formed client requests received";
            esi_req Counter Info Count "ESI subrequests made";
            cache_hit Counter Info Count "Lookups that found a fresh object";
            cache_hit_grace Counter Info Count "Lookups that found a stale object within grace";
            cache_hitpass Counter Info Count "Lookups that found a hit-for-pass object";
            cache_hitmiss Counter Info Count "Lookups that found a hit-for-miss object";
            cache_miss Counter Info Count "Lookups that found nothing usable";
            beresp_uncacheable Counter Info Count "Backend responses made uncacheable";
            beresp_shortlived Counter Info Count "Objects too short-lived to go to the main storage";
            backend_conn Counter Info Count "Backend connections opened";
            backend_unhealthy Counter Info Count "Backend connections not tried: the backend was sick";
            backend_busy Counter Info Count "Backend connections not tried: max_connections reached";
            backend_fail Counter Info Count "Backend connections that could not be opened";
            backend_reuse Counter Info Count "Backend requests sent on a pooled connection";
            backend_recycle Counter Info Count "Backend connections put back into the pool";
            backend_retry Counter Info Count "Backend requests retried on a fresh connection";
            fetch_head Counter Info Count "Fetches without a body: HEAD request";
            fetch_length Counter Info Count "Fetches with a Content-Length body";
            fetch_chunked Counter Info Count "Fetches with a chunked body";
            fetch_eof Counter Info Count "Fetches with a body read until the connection closed";
            fetch_bad Counter Info Count "Fetches with a body framing that could not be used";
            fetch_none Counter Info Count "Fetches without a body";
            fetch_1xx Counter Info Count "Fetches without a body: 1xx status";
            fetch_204 Counter Info Count "Fetches without a body: 204 status";
            fetch_304 Counter Info Count "Fetches without a body: 304 status";
            fetch_failed Counter Info Count "Fetches that failed, for any reason";
            fetch_no_thread Counter Info Count "Fetches that failed for want of a worker";
            pools Gauge Info Count "Worker pools";
            threads Gauge Info Count "Worker threads";
            threads_limited Counter Info Count "Times a worker was wanted beyond thread_pool_max";
            threads_created Counter Info Count "Worker threads started";
            threads_destroyed Counter Info Count "Worker threads stopped";
            threads_failed Counter Info Count "Worker threads that could not be started";
            thread_queue_len Gauge Info Count "Tasks waiting for a worker";
            busy_sleep Counter Info Count "Requests parked on a busy object's waiting list";
            busy_wakeup Counter Info Count "Requests woken from a waiting list";
            busy_killed Counter Info Count "Requests dropped from a waiting list";
            sess_queued Counter Info Count "Connections that waited for a worker";
            sess_dropped Counter Info Count "Connections dropped for want of a worker";
            req_dropped Counter Info Count "Requests dropped for want of a worker";
            n_object Gauge Info Count "Objects in the cache";
            n_objectcore Gauge Info Count "Object cores (objects, busy objects, hit-for-pass markers)";
            n_objecthead Gauge Info Count "Object heads: distinct hashes in the cache";
            n_backend Gauge Info Count "Backends defined by loaded VCLs";
            n_expired Counter Info Count "Objects removed because their time ran out";
            n_lru_nuked Counter Info Count "Objects evicted to make room";
            n_lru_moved Counter Diag Count "Objects moved to the fresh end of the LRU list";
            n_lru_limited Counter Info Count "Allocations that gave up at nuke_limit";
            losthdr Counter Info Count "Headers dropped for lack of room";
            s_sess Counter Info Count "Client connections handled";
            n_pipe Gauge Info Count "Pipes open now";
            pipe_limited Counter Info Count "Pipes refused at pipe_sess_max";
            s_pipe Counter Info Count "Requests handled by pipe";
            s_pass Counter Info Count "Requests handled by pass";
            s_handoff Counter Info Count "Requests whose connection was handed to another process";
            s_fetch Counter Info Count "Backend fetches started";
            s_bgfetch Counter Info Count "Backend fetches started in the background (grace)";
            s_synth Counter Info Count "Synthetic responses made";
            s_req_hdrbytes Counter Info Bytes "Bytes of client request headers";
            s_req_bodybytes Counter Info Bytes "Bytes of client request bodies";
            s_resp_hdrbytes Counter Info Bytes "Bytes of response headers sent to clients";
            s_resp_bodybytes Counter Info Bytes "Bytes of response bodies sent to clients";
            s_pipe_hdrbytes Counter Info Bytes "Bytes of request headers sent down pipes";
            s_pipe_in Counter Info Bytes "Bytes piped from clients";
            s_pipe_out Counter Info Bytes "Bytes piped to clients";
            sess_closed Counter Info Count "Client connections closed";
            sess_closed_err Counter Info Count "Client connections closed on an error";
            sess_readahead Counter Info Count "Requests already read with the previous one";
            sc_rem_close Counter Diag Count "Closed: the client closed";
            sc_req_close Counter Diag Count "Closed: the client asked to (Connection: close)";
            sc_req_http10 Counter Diag Count "Closed: HTTP/1.0 without keep-alive";
            sc_rx_bad Counter Diag Count "Closed: unparseable request";
            sc_rx_body Counter Diag Count "Closed: request body could not be read";
            sc_rx_junk Counter Diag Count "Closed: bytes that are not HTTP";
            sc_rx_overflow Counter Diag Count "Closed: request too large";
            sc_rx_timeout Counter Diag Count "Closed: request read timed out";
            sc_rx_close_idle Counter Diag Count "Closed: idle past timeout_idle";
            sc_tx_pipe Counter Diag Count "Closed: pipe finished";
            sc_tx_handoff Counter Diag Count "Closed: connection handed to another process";
            sc_tx_error Counter Diag Count "Closed: error writing the response";
            sc_tx_eof Counter Diag Count "Closed: body delimited by end of connection";
            sc_resp_close Counter Diag Count "Closed: the response asked to";
            sc_overload Counter Diag Count "Closed: out of resources";
            sc_pipe_overflow Counter Diag Count "Closed: pipe buffer overflow";
            sc_range_short Counter Diag Count "Closed: body shorter than the range promised";
            sc_req_http20 Counter Diag Count "Closed: HTTP/2 request without HTTP/2 support";
            sc_vcl_failure Counter Diag Count "Closed: VCL failed";
            client_resp_500 Counter Diag Count "Deliveries failed for lack of workspace";
            ws_backend_overflow Counter Diag Count "Backend workspace overflows";
            ws_client_overflow Counter Diag Count "Client workspace overflows";
            ws_thread_overflow Counter Diag Count "Thread workspace overflows";
            ws_session_overflow Counter Diag Count "Session workspace overflows";
            shm_records Counter Diag Count "Records written to the shared-memory log";
            shm_writes Counter Diag Count "Buffers copied into the shared-memory log";
            shm_flushes Counter Diag Count "Log buffers flushed because they were full";
            shm_cycles Counter Diag Count "Times the shared-memory log wrapped around";
            backend_req Counter Info Count "Requests sent to backends";
            n_vcl Gauge Info Count "VCLs loaded";
            n_vcl_avail Gauge Diag Count "VCLs loaded and usable";
            n_vcl_discard Gauge Diag Count "VCLs discarded but still referenced";
            vcl_fail Counter Info Count "VCL runs that failed";
            bans Gauge Info Count "Bans in the ban list";
            bans_completed Gauge Diag Count "Bans with nothing left to test";
            bans_obj Gauge Diag Count "Bans testing only obj.*";
            bans_req Gauge Diag Count "Bans testing req.*";
            bans_added Counter Diag Count "Bans added";
            bans_deleted Counter Diag Count "Bans removed from the list";
            bans_tested Counter Diag Count "Bans tested against objects at lookup";
            bans_obj_killed Counter Diag Count "Objects banned at lookup";
            bans_lurker_tested Counter Diag Count "Bans tested against objects by the lurker";
            bans_tests_tested Counter Diag Count "Ban conditions evaluated at lookup";
            bans_lurker_tests_tested Counter Diag Count "Ban conditions evaluated by the lurker";
            bans_lurker_obj_killed Counter Diag Count "Objects banned by the lurker";
            bans_lurker_obj_killed_cutoff Counter Diag Count "Objects banned by the lurker at ban_cutoff";
            bans_dups Counter Diag Count "Bans made redundant by a newer identical ban";
            bans_lurker_contention Counter Diag Count "Times the lurker yielded to a lookup";
            n_purges Counter Info Count "Purges done";
            n_obj_purged Counter Info Count "Objects removed by purges";
            esi_errors Counter Diag Count "ESI parse errors";
            esi_warnings Counter Diag Count "ESI parse warnings";
            vmods Gauge Info Count "Modules loaded";
            n_gzip Counter Info Count "Bodies compressed with gzip";
            n_gunzip Counter Info Count "Bodies decompressed";
            n_test_gunzip Counter Info Count "Gzip bodies checked by decompressing";
        }
    };
}

/// The `SMA.<store>` group: one malloc storage (Varnish's `sma.vsc`).
#[macro_export]
macro_rules! vsc_sma {
    ($cb:ident) => {
        $cb! { "SMA" Sma SMA;
            c_req Counter Info Count "Allocations asked of this storage";
            c_fail Counter Info Count "Allocations this storage could not give";
            c_bytes Counter Info Bytes "Bytes ever allocated";
            c_freed Counter Info Bytes "Bytes ever freed";
            g_alloc Gauge Info Count "Allocations held now";
            g_bytes Gauge Info Bytes "Bytes held now";
            g_space Gauge Info Bytes "Bytes still free";
        }
    };
}

/// The `SMF.<store>` group: one file storage (Varnish's `smf.vsc`). The
/// first rows are `SMA`'s, in the same order.
#[macro_export]
macro_rules! vsc_smf {
    ($cb:ident) => {
        $cb! { "SMF" Smf SMF;
            c_req Counter Info Count "Allocations asked of this storage";
            c_fail Counter Info Count "Allocations this storage could not give";
            c_bytes Counter Info Bytes "Bytes ever allocated";
            c_freed Counter Info Bytes "Bytes ever freed";
            g_alloc Gauge Info Count "Allocations held now";
            g_bytes Gauge Info Bytes "Bytes held now";
            g_space Gauge Info Bytes "Bytes still free";
            g_smf Gauge Info Count "Extents of the file, held and free";
            g_smf_frag Gauge Info Count "Free extents of fewer than 128 granules";
            g_smf_large Gauge Info Count "Free extents of 128 granules or more";
        }
    };
}

/// The `VBE.<vcl>.<backend>` group: one backend of one VCL (Varnish's
/// `vbe.vsc`); it appears with the VCL and goes at its discard.
#[macro_export]
macro_rules! vsc_vbe {
    ($cb:ident) => {
        $cb! { "VBE" Vbe VBE;
            happy Bitmap Info Bits "Recent probe results, newest in bit 0 (1: good)";
            bereq_hdrbytes Counter Info Bytes "Bytes of request headers sent";
            bereq_bodybytes Counter Info Bytes "Bytes of request bodies sent";
            beresp_hdrbytes Counter Info Bytes "Bytes of response headers received";
            beresp_bodybytes Counter Info Bytes "Bytes of response bodies received";
            pipe_hdrbytes Counter Info Bytes "Bytes of request headers sent down pipes";
            pipe_out Counter Info Bytes "Bytes piped to the backend";
            pipe_in Counter Info Bytes "Bytes piped from the backend";
            conn Gauge Info Count "Connections in use now";
            req Counter Info Count "Requests sent";
            unhealthy Counter Info Count "Fetches not tried: the backend was sick";
            busy Counter Info Count "Fetches not tried: max_connections reached";
            fail Counter Info Count "Connections that could not be opened";
            fail_eacces Counter Diag Count "Failed connections: EACCES or EPERM";
            fail_eaddrnotavail Counter Diag Count "Failed connections: EADDRNOTAVAIL";
            fail_econnrefused Counter Diag Count "Failed connections: ECONNREFUSED";
            fail_enetunreach Counter Diag Count "Failed connections: ENETUNREACH";
            fail_etimedout Counter Diag Count "Failed connections: ETIMEDOUT";
            fail_other Counter Diag Count "Failed connections: any other error";
            helddown Counter Diag Count "Connections not tried during backend_remote_error_holddown";
        }
    };
}

vsc_main!(def_slice);
vsc_sma!(def_slice);
vsc_smf!(def_slice);
vsc_vbe!(def_slice);

/// Every group with a table: (Varnish's group name, its counters).
pub static GROUPS: &[(&str, &[CounterDef])] = &[("MAIN", MAIN), ("SMA", SMA), ("SMF", SMF), ("VBE", VBE)];

/// The counter `group.name` of the tables (`("VBE", "happy")`).
pub fn lookup(group: &str, name: &str) -> Option<&'static CounterDef> {
    GROUPS.iter().find(|(g, _)| *g == group)?.1.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_docs_are_one_line() {
        for (g, defs) in GROUPS {
            let mut seen = std::collections::HashSet::new();
            for d in *defs {
                assert!(seen.insert(d.name), "{g}.{} twice", d.name);
                assert!(!d.doc.is_empty() && !d.doc.contains('\n') && !d.doc.contains('"'), "{g}.{}", d.name);
                assert_eq!(d.kind == Kind::Bitmap, d.unit == Unit::Bits, "{g}.{}", d.name);
            }
        }
        assert_eq!(MAIN.len(), 135);
        assert_eq!(lookup("MAIN", "uptime").unwrap().unit, Unit::Seconds);
        assert_eq!(lookup("VBE", "happy").unwrap().kind, Kind::Bitmap);
        assert_eq!(lookup("SMA", "g_space").unwrap().kind, Kind::Gauge);
        assert!(lookup("MAIN", "summs").is_none());
        // A file store counts what a malloc store does, and its extents.
        assert_eq!(
            SMF[..SMA.len()].iter().map(|d| d.name).collect::<Vec<_>>(),
            SMA.iter().map(|d| d.name).collect::<Vec<_>>()
        );
        assert_eq!(lookup("SMF", "g_smf_large").unwrap().kind, Kind::Gauge);
    }

    #[test]
    fn letters_round_trip() {
        for k in [Kind::Counter, Kind::Gauge, Kind::Bitmap] {
            assert_eq!(Kind::from_char(k.as_char()), Some(k));
        }
        for u in [Unit::Count, Unit::Bytes, Unit::Seconds, Unit::Bits] {
            assert_eq!(Unit::from_char(u.as_char()), Some(u));
        }
        for l in [Level::Info, Level::Diag, Level::Debug] {
            assert_eq!(Level::from_index(l.index()), Some(l));
        }
    }
}
