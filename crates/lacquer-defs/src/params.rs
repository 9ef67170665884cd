//! The run-time parameters of Varnish 7.1 (`-p name=value`, `param.set`):
//! one row each, with its kind, default, bounds, units and flags, plus the
//! reading and showing of values exactly as `varnishd` 7.1.1 does them.
//!
//! The rows were taken from `varnishd -x parameter` of Varnish 7.1.1 (a test
//! compares them with it whenever `varnishd` is on `PATH`); the descriptions
//! are our own. A row marked `honoured` is one Lacquer acts on today; every
//! other parameter is accepted, checked and kept, so that it can be shown.
//!
//! How varnishd reads values
//! =========================
//!
//! What `param.set` (and `-p`) of varnishd 7.1.1 does, found by asking it;
//! the parsers below reproduce it, quirks included:
//!
//! - Whole numbers are C's `strtoul(text, 0)`: leading white space, a sign,
//!   `0x` hex and leading-zero octal are accepted, a minus wraps around
//!   (`-1` is 4294967295, shown as `unlimited`, as is the word `unlimited`),
//!   and anything left over is "Not a number (text)". An empty value of a
//!   parameter with a minimum gets "Illegal Min: 0", a C slip we keep.
//! - Seconds and plain decimals read up to 12 digits, a point and up to three
//!   more digits, and *ignore whatever follows*: 7.1.1 has no duration units
//!   here, so `2m` is two seconds and `1500ms` is 1500 seconds (later Varnish
//!   releases read units; 7.1.1 does not).
//! - Bytes take a unit `b k m g t p` in either case, with an optional `b`
//!   after it, powers of 1024; a fraction needs a unit that is not `b`.
//!   Parameters held in 32 bits keep the low 32 bits of what was given
//!   (`http_req_size=1p` is 0), after the bounds were checked.
//! - Booleans are `on off true false yes no enable disable`, any case.
//! - Bit sets are comma or space separated `+name`/`-name` lists, names in
//!   any case; `none` clears all of `debug`, `experimental` and `feature`;
//!   `default` restores a default that is not `none` (`feature`,
//!   `vsl_mask`); an empty value changes nothing. For `vsl_mask` a `+`
//!   *unmasks* a tag (lets it be logged) and `-` masks it.
//! - Some bounds are other parameters: `thread_pool_min` ≤
//!   `thread_pool_max`, `thread_pool_reserve` ≤ 95% of `thread_pool_min`,
//!   `vsl_reclen` + 12 ≤ `vsl_buffer`. They are checked against the values
//!   set so far, in the order given, as varnishd does.
//!
//! A failed set answers with the message varnishd gives, then an empty line,
//! then `(attempting to set param 'NAME' to 'VALUE')`; an unknown name is
//! `Unknown parameter "NAME".`

use std::fmt;

/// What a parameter's value is, which decides how its text is read and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A 32-bit whole number (`unlimited` is the largest).
    Uint,
    /// Seconds, shown with three decimals.
    Duration,
    /// A plain decimal number, shown like C's `%g`.
    Double,
    /// A size in bytes, held in 64 bits.
    Bytes,
    /// A size in bytes, held in 32 bits.
    BytesU,
    /// On or off.
    Bool,
    /// Free text.
    String,
    /// The name of a storage backend (`Transient` or one given with `-s`).
    Storage,
    /// Three numbers for a memory pool: `min_pool,max_pool,max_age`.
    Pool,
    /// A set of named bits, changed with `+name` and `-name`.
    Bits(&'static BitSet),
}

impl Kind {
    /// The kind's name, for the reference.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Uint => "uint",
            Kind::Duration => "duration",
            Kind::Double => "double",
            Kind::Bytes | Kind::BytesU => "bytes",
            Kind::Bool => "bool",
            Kind::String => "string",
            Kind::Storage => "storage",
            Kind::Pool => "pool",
            Kind::Bits(_) => "bits",
        }
    }
}

/// The named bits of a bit-set parameter.
#[derive(Debug, PartialEq, Eq)]
pub struct BitSet {
    /// What one bit is called in error messages ("feature bit").
    pub noun: &'static str,
    /// The sign that sets a bit: `+`, or `-` for `vsl_mask`.
    pub sign: char,
    /// The bit names in bit order, which is the order they are shown in.
    pub names: &'static [&'static str],
    /// One line on each bit (empty for the VSL tags).
    pub docs: &'static [&'static str],
}

/// A bound on a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// No bound.
    Unbounded,
    /// A fixed bound, written as varnishd writes it.
    Fixed(&'static str),
    /// A bound that follows another parameter (or the platform); the text is
    /// what `varnishd -x parameter` says instead of a number.
    Dynamic(&'static str),
}

impl Bound {
    /// The bound as the reference shows it, if there is one.
    pub fn text(self) -> Option<&'static str> {
        match self {
            Bound::Unbounded => None,
            Bound::Fixed(t) | Bound::Dynamic(t) => Some(t),
        }
    }
}

/// The parameter is experimental.
pub const EXPERIMENTAL: u16 = 1 << 0;
/// A new value takes effect only some time after it is set.
pub const DELAYED: u16 = 1 << 1;
/// A new value takes effect when the worker process restarts.
pub const MUST_RESTART: u16 = 1 << 2;
/// A new value takes effect when VCL is next loaded.
pub const MUST_RELOAD: u16 = 1 << 3;
/// Only for those who know the code well.
pub const WIZARD: u16 = 1 << 4;
/// Only honoured when varnishd runs as root.
pub const ONLY_ROOT: u16 = 1 << 5;
/// Kept for old command lines; has no effect.
pub const OBSOLETE: u16 = 1 << 6;
/// The value is copied into each object when it is made.
pub const OBJ_STICKY: u16 = 1 << 7;
/// The feature behind the parameter exists on some platforms only.
pub const PLATFORM: u16 = 1 << 8;
/// The default depends on how Varnish was built.
pub const BUILD: u16 = 1 << 9;
/// The feature is missing on this platform: the parameter cannot be set.
pub const UNAVAILABLE: u16 = 1 << 10;

/// The flags `varnishd -x parameter` lists, by name, in its order.
pub const FLAG_NAMES: &[(u16, &str)] = &[
    (OBSOLETE, "obsolete"),
    (DELAYED, "delayed"),
    (EXPERIMENTAL, "experimental"),
    (MUST_RESTART, "must_restart"),
    (MUST_RELOAD, "must_reload"),
    (WIZARD, "wizard"),
    (ONLY_ROOT, "only_root"),
    (OBJ_STICKY, "obj_sticky"),
];

/// One parameter.
#[derive(Debug, PartialEq)]
pub struct ParamDef {
    /// The name, as given to `-p`.
    pub name: &'static str,
    /// What the value is.
    pub kind: Kind,
    /// The default, written as `param.show` shows it.
    pub default: &'static str,
    /// What `varnishd -x parameter` says of the default, when that is not
    /// the value itself ("platform dependent").
    pub default_note: Option<&'static str>,
    /// The smallest value allowed.
    pub min: Bound,
    /// The largest value allowed.
    pub max: Bound,
    /// The unit shown after the value, or "".
    pub units: &'static str,
    /// [`EXPERIMENTAL`], [`DELAYED`] and the other flags.
    pub flags: u16,
    /// Whether Lacquer acts on the value today.
    pub honoured: bool,
    /// One line on what the parameter does.
    pub doc: &'static str,
}

impl ParamDef {
    /// The names of the row's flags that varnishd lists, comma separated.
    pub fn flag_names(&self) -> String {
        FLAG_NAMES.iter().filter(|(f, _)| self.flags & f != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// The `debug` bits.
pub static DEBUG_BITS: BitSet = BitSet {
    noun: "debug bit",
    sign: '+',
    names: &[
        "req_state",
        "workspace",
        "waitinglist",
        "syncvsl",
        "hashedge",
        "vclrel",
        "lurker",
        "esi_chop",
        "flush_head",
        "vtc_mode",
        "witness",
        "vsm_keep",
        "slow_acceptor",
        "h2_nocheck",
        "vmod_so_keep",
        "processors",
        "protocol",
        "vcl_keep",
        "lck",
    ],
    docs: &[
        "log the request state engine's steps",
        "log workspace operations",
        "log waiting-list events",
        "write log records at once instead of buffering them",
        "exercise edge cases in hashing",
        "release discarded VCLs quickly",
        "log the ban lurker's work",
        "hand ESI parsing the body in tiny pieces",
        "flush after sending an HTTP/1 head",
        "behave as varnishtest expects",
        "log lock-order records",
        "keep the shared-memory file over restarts",
        "slow the acceptor down",
        "skip some HTTP/2 checks",
        "keep the copied VMOD libraries",
        "log fetch and delivery processors",
        "log protocol details",
        "keep the compiled VCL's C and shared object",
        "count more lock statistics",
    ],
};

/// The `experimental` bits.
pub static EXPERIMENTAL_BITS: BitSet =
    BitSet { noun: "experimental bit", sign: '+', names: &["drop_pools"], docs: &["allow thread pools to be removed"] };

/// The `feature` bits.
pub static FEATURE_BITS: BitSet = BitSet {
    noun: "feature bit",
    sign: '+',
    names: &[
        "http2",
        "short_panic",
        "no_coredump",
        "https_scheme",
        "http_date_postel",
        "esi_ignore_https",
        "esi_disable_xml_check",
        "esi_ignore_other_elements",
        "esi_remove_bom",
        "esi_include_onerror",
        "wait_silo",
        "validate_headers",
        "busy_stats_rate",
    ],
    docs: &[
        "speak HTTP/2",
        "keep panic messages short",
        "do not dump core (set it before the worker starts)",
        "take the host from an absolute https:// request target too",
        "accept dates in headers that do not follow the RFC",
        "treat https:// in ESI includes as http://",
        "run ESI on bodies that do not look like XML",
        "ignore XML errors in ESI bodies",
        "skip a UTF-8 byte-order mark in ESI bodies",
        "obey the onerror attribute of ESI includes",
        "wait for persistent storage to load before serving",
        "check every header VCL sets against RFC 7230",
        "make busy workers publish statistics at thread_stats_rate",
    ],
};

/// The VSL tags of Varnish 7.1, in tag order: the bits of `vsl_mask`
/// (bit `i` is tag number `i + 1`), from the one table in [`crate::tags`].
pub static VSL_TAGS: BitSet = BitSet { noun: "VSL tag", sign: '-', names: crate::tags::NAMES, docs: &[] };

use Bound::{Dynamic as D, Fixed as F, Unbounded as N};

macro_rules! params {
    ($( $name:ident : $kind:expr, $default:literal $(($note:literal))?, min $min:expr, max $max:expr,
        $units:literal, $flags:expr, $honoured:literal; $doc:literal; )*) => {
        /// Every parameter of Varnish 7.1, in name order.
        pub static PARAMS: &[ParamDef] = &[
            $( ParamDef {
                name: stringify!($name),
                kind: $kind,
                default: $default,
                default_note: params!(@note $($note)?),
                min: $min,
                max: $max,
                units: $units,
                flags: $flags,
                honoured: $honoured,
                doc: $doc,
            }, )*
        ];
    };
    (@note) => { None };
    (@note $note:literal) => { Some($note) };
}

params! {
    accept_filter: Kind::Bool, "on" ("on (if your platform supports accept filters)"), min N, max N,
        "bool", PLATFORM | UNAVAILABLE, false;
        "Let the kernel hold connections back until a request has arrived (not on Linux).";
    acceptor_sleep_decay: Kind::Double, "0.9", min F("0"), max F("1"), "", EXPERIMENTAL, false;
        "Factor the acceptor's back-off sleep is multiplied by after each successful accept.";
    acceptor_sleep_incr: Kind::Duration, "0.000", min F("0.000"), max F("1.000"), "seconds", EXPERIMENTAL, false;
        "How much longer the acceptor sleeps after each failed accept.";
    acceptor_sleep_max: Kind::Duration, "0.050", min F("0.000"), max F("10.000"), "seconds", EXPERIMENTAL, false;
        "The longest the acceptor sleeps between failed accepts.";
    auto_restart: Kind::Bool, "on", min N, max N, "bool", 0, false;
        "Start a new worker process when the old one dies.";
    backend_idle_timeout: Kind::Duration, "60.000", min F("1.000"), max N, "seconds", 0, false;
        "How long an unused backend connection is kept open for reuse.";
    backend_local_error_holddown: Kind::Duration, "10.000", min F("0.000"), max N, "seconds", EXPERIMENTAL, false;
        "How long to stop connecting to a backend after a local resource error.";
    backend_remote_error_holddown: Kind::Duration, "0.250", min F("0.000"), max N, "seconds", EXPERIMENTAL, false;
        "How long to stop connecting to a backend that refused or was unreachable.";
    ban_cutoff: Kind::Uint, "0", min F("0"), max N, "bans", EXPERIMENTAL, true;
        "Past this many bans the lurker evicts the objects it reaches; 0 turns this off.";
    ban_dups: Kind::Bool, "on", min N, max N, "bool", 0, true;
        "Mark older identical bans as completed when a new ban is added.";
    ban_lurker_age: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", 0, true;
        "The lurker only works on bans at least this old.";
    ban_lurker_batch: Kind::Uint, "1000", min F("1"), max N, "", 0, true;
        "How many objects the lurker tests before it sleeps.";
    ban_lurker_holdoff: Kind::Duration, "0.010", min F("0.000"), max N, "seconds", EXPERIMENTAL, false;
        "How long the lurker waits when lookups hold the ban lock.";
    ban_lurker_sleep: Kind::Duration, "0.010", min F("0.000"), max N, "seconds", 0, true;
        "How long the lurker sleeps between batches; 0 stops the lurker.";
    between_bytes_timeout: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", 0, true;
        "Default time to wait between two reads of a backend response body.";
    cc_command: Kind::String, "exec $CC $CFLAGS %w -shared -o %o %s", min N, max N, "", MUST_RELOAD | BUILD, false;
        "The command that compiles generated C into a shared object.";
    cc_warnings: Kind::String, "-Wall -Werror", min N, max N, "", MUST_RELOAD | BUILD, false;
        "The warning options passed to the C compiler.";
    cli_limit: Kind::BytesU, "48k", min F("128b"), max F("99999999b"), "bytes", 0, true;
        "The longest CLI answer; longer ones are cut short.";
    cli_timeout: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", 0, false;
        "How long the manager waits for the worker to answer a CLI command.";
    clock_skew: Kind::Uint, "10", min F("0"), max N, "seconds", 0, true;
        "How far the worker's clock may drift from the manager's before it is noted.";
    clock_step: Kind::Duration, "1.000", min F("0.000"), max N, "seconds", 0, false;
        "How far the clock may jump before it is reported.";
    connect_timeout: Kind::Duration, "3.500", min F("0.000"), max N, "seconds", 0, true;
        "Default time to open a backend connection.";
    critbit_cooloff: Kind::Duration, "180.000", min F("60.000"), max F("254.000"), "seconds", WIZARD, false;
        "How long the critbit hasher keeps deleted nodes before freeing them.";
    debug: Kind::Bits(&DEBUG_BITS), "none", min N, max N, "", 0, false;
        "Debugging switches.";
    default_grace: Kind::Duration, "10.000", min F("0.000"), max N, "seconds", OBJ_STICKY, true;
        "Grace given to new objects unless VCL says otherwise.";
    default_keep: Kind::Duration, "0.000", min F("0.000"), max N, "seconds", OBJ_STICKY, true;
        "Keep time given to new objects unless VCL says otherwise.";
    default_ttl: Kind::Duration, "120.000", min F("0.000"), max N, "seconds", OBJ_STICKY, true;
        "TTL given to responses that carry no caching headers of their own.";
    experimental: Kind::Bits(&EXPERIMENTAL_BITS), "none", min N, max N, "", 0, false;
        "Switches for experimental features.";
    feature: Kind::Bits(&FEATURE_BITS), "+validate_headers", min N, max N, "", 0, true;
        "Switches for minor features.";
    fetch_chunksize: Kind::Bytes, "16k", min F("4k"), max N, "bytes", EXPERIMENTAL, false;
        "The storage asked for at a time when the body length is unknown.";
    fetch_maxchunksize: Kind::Bytes, "0.25G", min F("64k"), max N, "bytes", EXPERIMENTAL, false;
        "The largest piece of storage asked for in one go while fetching.";
    first_byte_timeout: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", 0, true;
        "Default time to wait for the first byte of a backend response.";
    gzip_buffer: Kind::BytesU, "32k", min F("2k"), max N, "bytes", EXPERIMENTAL, false;
        "The buffer size for gzip and gunzip work.";
    gzip_level: Kind::Uint, "6", min F("0"), max F("9"), "", 0, true;
        "The gzip compression level.";
    gzip_memlevel: Kind::Uint, "8", min F("1"), max F("9"), "", 0, false;
        "How much memory zlib may use while compressing.";
    h2_header_table_size: Kind::BytesU, "4k", min F("0b"), max N, "bytes", 0, false;
        "The HTTP/2 header table size we announce for decoding.";
    h2_initial_window_size: Kind::BytesU, "65535b", min F("65535b"), max F("2147483647b"), "bytes", 0, false;
        "The HTTP/2 flow-control window each new stream starts with.";
    h2_max_concurrent_streams: Kind::Uint, "100", min F("0"), max N, "streams", 0, false;
        "The most HTTP/2 streams a client may have open on one connection.";
    h2_max_frame_size: Kind::BytesU, "16k", min F("16k"), max F("16777215b"), "bytes", 0, false;
        "The largest HTTP/2 frame payload we accept.";
    h2_max_header_list_size: Kind::BytesU, "2147483647b", min F("0b"), max N, "bytes", 0, false;
        "The largest HTTP/2 header list we announce we accept.";
    h2_rx_window_increment: Kind::BytesU, "1M", min F("1M"), max F("1G"), "bytes", WIZARD, false;
        "How much HTTP/2 receive window is granted at a time.";
    h2_rx_window_low_water: Kind::BytesU, "10M", min F("65535b"), max F("1G"), "bytes", WIZARD, false;
        "When the HTTP/2 receive window falls below this, more is granted.";
    h2_rxbuf_storage: Kind::Storage, "Transient", min N, max N, "", MUST_RESTART, false;
        "The storage HTTP/2 request bodies are buffered in.";
    http1_iovs: Kind::Uint, "64", min F("5"), max F("1024"), "struct iovec (=16 bytes)", WIZARD, false;
        "How many pieces one HTTP/1 write may gather.";
    http_gzip_support: Kind::Bool, "on", min N, max N, "bool", 0, true;
        "Handle gzip: ask backends for it and unzip for clients that cannot take it.";
    http_max_hdr: Kind::Uint, "64", min F("32"), max F("65535"), "header lines", 0, true;
        "The most header lines in a head, the first line counting as five.";
    http_range_support: Kind::Bool, "on", min N, max N, "bool", 0, true;
        "Answer range requests.";
    http_req_hdr_len: Kind::BytesU, "8k", min F("40b"), max N, "bytes", 0, true;
        "The longest client request header line.";
    http_req_size: Kind::BytesU, "32k", min F("0.25k"), max N, "bytes", 0, true;
        "The largest client request head.";
    http_resp_hdr_len: Kind::BytesU, "8k", min F("40b"), max N, "bytes", 0, true;
        "The longest backend response header line.";
    http_resp_size: Kind::BytesU, "32k", min F("0.25k"), max N, "bytes", 0, true;
        "The largest backend response head.";
    idle_send_timeout: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", DELAYED, true;
        "How long one write to a client may make no progress.";
    listen_depth: Kind::Uint, "1024", min F("0"), max N, "connections", MUST_RESTART, false;
        "The listen queue length asked of the kernel.";
    lru_interval: Kind::Duration, "2.000", min F("0.000"), max N, "seconds", EXPERIMENTAL, false;
        "How long after a move an object may be moved to the front of the LRU list again.";
    max_esi_depth: Kind::Uint, "5", min F("0"), max N, "levels", 0, true;
        "How deep ESI includes may nest.";
    max_restarts: Kind::Uint, "4", min F("0"), max N, "restarts", 0, true;
        "How many times a request may restart before it fails.";
    max_retries: Kind::Uint, "4", min F("0"), max N, "retries", 0, true;
        "How many times a backend fetch may be retried before it fails.";
    max_vcl: Kind::Uint, "100", min F("0"), max N, "", 0, true;
        "How many VCLs may be loaded before max_vcl_handling applies.";
    max_vcl_handling: Kind::Uint, "1", min F("0"), max F("2"), "", 0, true;
        "What to do past max_vcl: 0 nothing, 1 warn, 2 refuse.";
    nuke_limit: Kind::Uint, "50", min F("0"), max N, "allocations", EXPERIMENTAL, false;
        "How many objects one allocation may evict before it gives up.";
    pcre2_depth_limit: Kind::Uint, "20", min F("1"), max N, "", 0, false;
        "The backtracking depth limit of a regular-expression match.";
    pcre2_jit_compilation: Kind::Bool, "on", min N, max N, "bool", 0, false;
        "Compile regular expressions to machine code where possible.";
    pcre2_match_limit: Kind::Uint, "10000", min F("1"), max N, "", 0, false;
        "The limit on matching steps of a regular-expression match.";
    ping_interval: Kind::Uint, "3", min F("0"), max N, "seconds", MUST_RESTART, false;
        "How often the manager pings the worker; 0 turns pinging off.";
    pipe_sess_max: Kind::Uint, "0", min F("0"), max N, "connections", 0, false;
        "The most piped connections at once; 0 means no limit.";
    pipe_timeout: Kind::Duration, "60.000", min F("0.000"), max N, "seconds", 0, true;
        "How long a piped connection may be idle.";
    pool_req: Kind::Pool, "10,100,10", min N, max N, "", 0, false;
        "Sizes and age of each pool's free list of request memory.";
    pool_sess: Kind::Pool, "10,100,10", min N, max N, "", 0, false;
        "Sizes and age of each pool's free list of session memory.";
    pool_vbo: Kind::Pool, "10,100,10", min N, max N, "", 0, false;
        "Sizes and age of each pool's free list of backend-fetch memory.";
    prefer_ipv6: Kind::Bool, "off", min N, max N, "bool", 0, false;
        "Connect to a backend's IPv6 address when it has both.";
    rush_exponent: Kind::Uint, "3", min F("2"), max N, "requests per request", EXPERIMENTAL, false;
        "How many waiting requests each finished request wakes up.";
    send_timeout: Kind::Duration, "600.000", min F("0.000"), max N, "seconds", DELAYED, true;
        "The longest a response may take to send to the client.";
    shortlived: Kind::Duration, "10.000", min F("0.000"), max N, "seconds", 0, true;
        "Objects with a TTL this short or shorter go to Transient storage.";
    sigsegv_handler: Kind::Bool, "on", min N, max N, "bool", MUST_RESTART, false;
        "Catch segmentation faults and report them as panics.";
    syslog_cli_traffic: Kind::Bool, "on", min N, max N, "bool", 0, false;
        "Write CLI traffic to syslog.";
    tcp_fastopen: Kind::Bool, "off", min N, max N, "bool", MUST_RESTART | PLATFORM, false;
        "Enable TCP Fast Open on listening sockets.";
    tcp_keepalive_intvl: Kind::Duration, "75.000" ("platform dependent"), min F("1.000"), max F("100.000"),
        "seconds", EXPERIMENTAL | PLATFORM, false;
        "The time between TCP keep-alive probes.";
    tcp_keepalive_probes: Kind::Uint, "9" ("platform dependent"), min F("1"), max F("100"), "probes",
        EXPERIMENTAL | PLATFORM, false;
        "How many unanswered TCP keep-alive probes close a connection.";
    tcp_keepalive_time: Kind::Duration, "7200.000" ("platform dependent"), min F("1.000"), max F("7200.000"),
        "seconds", EXPERIMENTAL | PLATFORM, false;
        "How long a connection is idle before TCP keep-alive probes start.";
    thread_pool_add_delay: Kind::Duration, "0.000", min F("0.000"), max N, "seconds", EXPERIMENTAL, false;
        "How long to wait after starting a thread before starting another.";
    thread_pool_destroy_delay: Kind::Duration, "1.000", min F("0.010"), max N, "seconds", DELAYED | EXPERIMENTAL,
        false;
        "How long to wait after stopping an idle thread before stopping another.";
    thread_pool_fail_delay: Kind::Duration, "0.200", min F("0.010"), max N, "seconds", EXPERIMENTAL, false;
        "How long to wait after a thread failed to start before trying again.";
    thread_pool_max: Kind::Uint, "5000", min D("thread_pool_min"), max N, "threads", DELAYED, false;
        "The most worker threads in each pool.";
    thread_pool_min: Kind::Uint, "100", min F("5"), max D("thread_pool_max"), "threads", DELAYED, false;
        "The fewest worker threads kept in each pool.";
    thread_pool_reserve: Kind::Uint, "0" ("0 (auto-tune: 5% of thread_pool_min)"), min N,
        max D("95% of thread_pool_min"), "threads", DELAYED, false;
        "Threads in each pool kept for work that others wait on; 0 picks a share of thread_pool_min.";
    thread_pool_stack: Kind::Bytes, "80k", min D("sysconf(_SC_THREAD_STACK_MIN)"), max N, "bytes", DELAYED, false;
        "The stack size of each worker thread.";
    thread_pool_timeout: Kind::Duration, "300.000", min F("10.000"), max N, "seconds", DELAYED | EXPERIMENTAL, false;
        "How long a thread above thread_pool_min may idle before it is stopped.";
    thread_pool_watchdog: Kind::Duration, "60.000", min F("0.100"), max N, "seconds", EXPERIMENTAL, false;
        "How long a pool's queue may not move before the worker panics.";
    thread_pools: Kind::Uint, "2", min F("1"), max F("32"), "pools", DELAYED | EXPERIMENTAL, false;
        "How many thread pools there are.";
    thread_queue_limit: Kind::Uint, "20", min F("0"), max N, "requests", EXPERIMENTAL, false;
        "How many requests may queue for a thread in each pool before more are refused.";
    thread_stats_rate: Kind::Uint, "10", min F("0"), max N, "requests", EXPERIMENTAL, false;
        "How many jobs a worker does before it adds its counters to the totals.";
    timeout_idle: Kind::Duration, "5.000", min F("0.000"), max N, "seconds", 0, true;
        "How long a client connection may wait for (the rest of) a request head.";
    timeout_linger: Kind::Duration, "0.050", min F("0.000"), max N, "seconds", EXPERIMENTAL, true;
        "How long a worker waits on an idle connection before handing it to the waiter.";
    vary_notice: Kind::Uint, "10", min F("1"), max N, "variants", 0, false;
        "How many variants of one object are found before a notice is logged.";
    vcc_allow_inline_c: Kind::Bool, "off", min N, max N, "bool", 0, false;
        "Allow C code inside VCL.";
    vcc_err_unref: Kind::Bool, "on", min N, max N, "bool", 0, true;
        "Make an unused VCL object an error rather than a warning.";
    vcc_unsafe_path: Kind::Bool, "on", min N, max N, "bool", 0, true;
        "Allow absolute paths in include and import.";
    vcl_cooldown: Kind::Duration, "600.000", min F("1.000"), max N, "seconds", 0, true;
        "How long an unused VCL stays warm before it goes cold.";
    vcl_path: Kind::String, "${sysconfdir}/varnish:${datadir}/varnish/vcl", min N, max N, "", BUILD, true;
        "Directories searched for VCL files given by relative name.";
    vmod_path: Kind::String, "${libdir}/varnish/vmods", min N, max N, "", BUILD, false;
        "Directories searched for VMODs.";
    vsl_buffer: Kind::BytesU, "16k", min D("vsl_reclen + 12 bytes"), max N, "bytes", 0, true;
        "The workspace each task uses to buffer log records.";
    vsl_mask: Kind::Bits(&VSL_TAGS),
        "-Debug,-ObjProtocol,-ObjStatus,-ObjReason,-ObjHeader,-VCL_trace,-ExpKill,-WorkThread,-Hash,-VfpAcct,\
         -H2RxHdr,-H2RxBody,-H2TxHdr,-H2TxBody,-VdpAcct", min N, max N, "", 0, false;
        "The log tags not written (a - masks a tag, a + lets it through).";
    vsl_reclen: Kind::BytesU, "255b", min F("16b"), max D("vsl_buffer - 12 bytes"), "bytes", 0, false;
        "The longest log record; longer ones are cut.";
    vsl_space: Kind::Bytes, "80M", min F("1M"), max F("4G"), "bytes", MUST_RESTART, false;
        "The size of the shared-memory log.";
    vsm_free_cooldown: Kind::Duration, "60.000", min F("10.000"), max F("600.000"), "seconds", 0, false;
        "How long freed shared-memory segments stay readable before reuse.";
    workspace_backend: Kind::BytesU, "96k", min F("1k"), max N, "bytes", DELAYED, true;
        "The workspace of each backend fetch.";
    workspace_client: Kind::BytesU, "96k", min F("9k"), max N, "bytes", DELAYED, true;
        "The workspace of each client request.";
    workspace_session: Kind::BytesU, "0.75k", min F("384b"), max N, "bytes", DELAYED, true;
        "The workspace of each session, for its addresses and first bytes.";
    workspace_thread: Kind::BytesU, "2k", min F("0.25k"), max F("8k"), "bytes", DELAYED, true;
        "The workspace of each worker thread, for delivery's scratch space.";
}

/// The row of the parameter called `name`.
pub fn lookup(name: &str) -> Option<&'static ParamDef> {
    PARAMS.iter().find(|p| p.name == name)
}

/// A memory pool's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolParam {
    /// The fewest free elements kept.
    pub min_pool: u32,
    /// The most free elements kept.
    pub max_pool: u32,
    /// How long a free element is kept, in seconds.
    pub max_age: f64,
}

/// A parameter's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// [`Kind::Uint`].
    Uint(u32),
    /// [`Kind::Duration`] and [`Kind::Double`].
    Number(f64),
    /// [`Kind::Bytes`] and [`Kind::BytesU`].
    Bytes(u64),
    /// [`Kind::Bool`].
    Bool(bool),
    /// [`Kind::String`] and [`Kind::Storage`].
    Text(String),
    /// [`Kind::Pool`].
    Pool(PoolParam),
    /// [`Kind::Bits`]: bit `i` is name `i` of the set.
    Bits(u128),
}

impl Value {
    /// The value as a number (booleans are 0 or 1), for the typed fields
    /// the server reads; text, pools and bit sets have none.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Uint(u) => Some(u as f64),
            Value::Number(n) => Some(n),
            Value::Bytes(b) => Some(b as f64),
            Value::Bool(b) => Some(b as u8 as f64),
            _ => None,
        }
    }
}

/// A parameter that could not be set: varnishd's CLI status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The CLI status: 106 for a bad name or value, 300 for a parameter
    /// this platform lacks.
    pub status: u16,
    /// The text varnishd answers with.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

/// The values of all parameters, one per row of [`PARAMS`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParamValues {
    values: Vec<Value>,
}

impl Default for ParamValues {
    fn default() -> ParamValues {
        let mut v = ParamValues { values: Vec::with_capacity(PARAMS.len()) };
        for p in PARAMS {
            let mut bits = 0;
            let value = parse(p, p.default, &Bounds::default(), &mut bits)
                .unwrap_or_else(|e| panic!("default of {}: {e}", p.name));
            v.values.push(value);
        }
        v
    }
}

/// Bounds resolved to text, with the reason a dynamic one gives.
#[derive(Default)]
struct Bounds {
    min: Option<(String, Option<&'static str>)>,
    max: Option<(String, Option<&'static str>)>,
}

impl ParamValues {
    /// The value of the parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        PARAMS.iter().position(|p| p.name == name).map(|i| &self.values[i])
    }

    /// Sets the parameter called `name` from text, as `param.set` does.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), ParamError> {
        let Some(i) = PARAMS.iter().position(|p| p.name == name) else {
            return Err(ParamError { status: 106, message: format!("Unknown parameter \"{name}\".") });
        };
        let p = &PARAMS[i];
        if p.flags & UNAVAILABLE != 0 {
            let message = format!("parameter \"{name}\" is not available on this platform.");
            return Err(ParamError { status: 300, message });
        }
        let bounds = Bounds { min: self.bound(p, p.min), max: self.bound(p, p.max) };
        let mut bits = match self.values[i] {
            Value::Bits(b) => b,
            _ => 0,
        };
        match parse(p, text, &bounds, &mut bits) {
            Ok(v) => {
                self.values[i] = v;
                Ok(())
            }
            Err(msg) => Err(ParamError {
                status: 106,
                message: format!("{msg}\n(attempting to set param '{name}' to '{text}')"),
            }),
        }
    }

    /// The value of `name` as `param.show` writes it (without the units).
    pub fn show(&self, name: &str) -> Option<String> {
        let i = PARAMS.iter().position(|p| p.name == name)?;
        Some(render(&PARAMS[i], &self.values[i]))
    }

    fn uint(&self, name: &str) -> u32 {
        match self.get(name) {
            Some(Value::Uint(u)) => *u,
            Some(Value::Bytes(b)) => *b as u32,
            _ => 0,
        }
    }

    /// A bound as text; dynamic ones are worked out from the other values.
    fn bound(&self, p: &ParamDef, b: Bound) -> Option<(String, Option<&'static str>)> {
        match b {
            Bound::Unbounded => None,
            Bound::Fixed(t) => Some((t.to_string(), None)),
            Bound::Dynamic(reason) => Some(match p.name {
                "thread_pool_max" => (self.uint("thread_pool_min").to_string(), Some(reason)),
                "thread_pool_min" => (self.uint("thread_pool_max").to_string(), Some(reason)),
                "thread_pool_reserve" => ((self.uint("thread_pool_min") as u64 * 950 / 1000).to_string(), Some(reason)),
                // glibc's PTHREAD_STACK_MIN on x86-64.
                "thread_pool_stack" => ("16k".to_string(), None),
                "vsl_buffer" => (self.uint("vsl_reclen").wrapping_add(12).to_string(), None),
                "vsl_reclen" => (format!("{}b", self.uint("vsl_buffer").wrapping_sub(12)), None),
                other => unreachable!("no rule for the dynamic bound of {other}"),
            }),
        }
    }
}

/// Reads `text` as a value of `p`, checking it against `bounds`; `bits` is
/// the current value of a bit set, which `+name`/`-name` change. The error
/// is varnishd's message, ending in a newline where varnishd's does.
fn parse(p: &ParamDef, text: &str, bounds: &Bounds, bits: &mut u128) -> Result<Value, String> {
    let min = bounds.min.as_ref();
    let max = bounds.max.as_ref();
    match p.kind {
        Kind::Uint => uint_in(text, min, max).map(Value::Uint),
        Kind::Duration | Kind::Double => {
            let v = decimal(text).map_err(|e| format!("{e} ({text})\n"))?;
            if let Some((m, _)) = min {
                if v < decimal(m).unwrap_or(f64::MIN) {
                    return Err(format!("Must be greater or equal to {m}\n"));
                }
            }
            if let Some((m, _)) = max {
                if v > decimal(m).unwrap_or(f64::MAX) {
                    return Err(format!("Must be less than or equal to {m}\n"));
                }
            }
            Ok(Value::Number(v))
        }
        Kind::Bytes | Kind::BytesU => {
            let r = bytes(text)
                .map_err(|e| format!("Could not convert to bytes.\n{e}\n  Try something like '80k' or '120M'\n"))?;
            if r > i64::MAX as u64 {
                return Err(format!("{} is too large for this architecture.\n", fmt_bytes(r)));
            }
            if let Some((m, _)) = max {
                if r > bytes(m).unwrap_or(u64::MAX) {
                    return Err(format!("Must be no more than {m}\n\n"));
                }
            }
            if let Some((m, _)) = min {
                if r < bytes(m).unwrap_or(0) {
                    return Err(format!("Must be at least {m}\n"));
                }
            }
            Ok(Value::Bytes(if p.kind == Kind::BytesU { r as u32 as u64 } else { r }))
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "off" | "disable" | "no" | "false" => Ok(Value::Bool(false)),
            "on" | "enable" | "yes" | "true" => Ok(Value::Bool(true)),
            _ => Err("use \"on\" or \"off\"\n".to_string()),
        },
        Kind::String | Kind::Storage => Ok(Value::Text(text.to_string())),
        Kind::Pool => {
            let av = split_args(text).map_err(|e| format!("Parse error: {e}"))?;
            if av.len() < 3 {
                return Err("Three fields required: min_pool, max_pool and max_age\n".to_string());
            }
            let min_pool = uint_in(&av[0], min, max)?;
            let max_pool = uint_in(&av[1], min, max)?;
            let max_age = decimal(&av[2]).map_err(|e| format!("{e} ({})\n", av[2]))?;
            if max_age < 0.0 {
                return Err("Must be greater or equal to 0\n".to_string());
            }
            if max_age > 1_000_000.0 {
                return Err("Must be less than or equal to 1000000\n".to_string());
            }
            if min_pool > max_pool {
                return Err("min_pool cannot be larger than max_pool\n".to_string());
            }
            Ok(Value::Pool(PoolParam { min_pool, max_pool, max_age }))
        }
        Kind::Bits(set) => {
            let mut b = *bits;
            if text == "default" && p.default != "none" {
                b = 0;
                bit_tweak(set, p.default, &mut b)?;
            } else if set.sign == '+' && text == "none" {
                b = 0;
            } else {
                bit_tweak(set, text, &mut b)?;
            }
            *bits = b;
            Ok(Value::Bits(b))
        }
    }
}

/// Applies a `+name,-name` list to `bits`.
fn bit_tweak(set: &BitSet, text: &str, bits: &mut u128) -> Result<(), String> {
    for s in split_args(text).map_err(|e| format!("Cannot parse: {e}\n"))? {
        let Some(name) = s.strip_prefix(['+', '-']) else {
            return Err(format!("Missing '+' or '-' ({s})\n"));
        };
        let Some(j) = set.names.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
            return Err(format!("Unknown {} ({s})\n", set.noun));
        };
        if s.starts_with(set.sign) {
            *bits |= 1 << j;
        } else {
            *bits &= !(1 << j);
        }
    }
    Ok(())
}

/// Splits a list at white space and commas, as varnishd's `VAV_Parse` does:
/// double quotes group, a backslash escapes.
fn split_args(text: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut it = text.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_ascii_whitespace() || c == ',' {
            it.next();
            continue;
        }
        let quoted = c == '"';
        if quoted {
            it.next();
        }
        let mut arg = String::new();
        loop {
            match it.next() {
                None if quoted => return Err("Missing '\"'"),
                None => break,
                Some('"') if quoted => break,
                Some(c) if !quoted && (c.is_ascii_whitespace() || c == ',') => break,
                Some('\\') => match it.next() {
                    Some('\\') => arg.push('\\'),
                    Some('"') => arg.push('"'),
                    Some('n') => arg.push('\n'),
                    Some('r') => arg.push('\r'),
                    Some('t') => arg.push('\t'),
                    _ => return Err("Invalid backslash sequence"),
                },
                Some(c) => arg.push(c),
            }
        }
        out.push(arg);
    }
    Ok(out)
}

/// C's `strtoul(s, &end, 0)`: the value (wrapped as C wraps it) and whether
/// the whole text was used; an empty or digitless text uses nothing.
fn strtoul(s: &str) -> (u64, bool) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let neg = i < b.len() && b[i] == b'-';
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let mut radix = 10;
    if b.get(i) == Some(&b'0') {
        if matches!(b.get(i + 1), Some(b'x' | b'X')) && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit()) {
            radix = 16;
            i += 2;
        } else {
            radix = 8;
        }
    }
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        match v.checked_mul(radix as u64).and_then(|v| v.checked_add(d as u64)) {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, false);
    }
    let v = if overflow {
        u64::MAX
    } else if neg {
        v.wrapping_neg()
    } else {
        v
    };
    (v, i == b.len())
}

/// varnishd's reading of a whole-number parameter against its bounds.
fn uint_in(
    text: &str,
    min: Option<&(String, Option<&str>)>,
    max: Option<&(String, Option<&str>)>,
) -> Result<u32, String> {
    let mut minv = 0;
    let mut maxv = 0;
    if let Some((m, _)) = min {
        let (v, whole) = strtoul(m);
        if text.is_empty() || !whole {
            return Err(format!("Illegal Min: {m}\n"));
        }
        minv = v as u32;
    }
    if let Some((m, _)) = max {
        let (v, whole) = strtoul(m);
        if text.is_empty() || !whole {
            return Err(format!("Illegal Max: {m}\n"));
        }
        maxv = v as u32;
    }
    let u = if text.eq_ignore_ascii_case("unlimited") {
        u32::MAX
    } else {
        match strtoul(text) {
            (v, true) => v as u32,
            _ => return Err(format!("Not a number ({text})\n")),
        }
    };
    let reason = |r: &Option<&str>| r.map(|r| format!(" ({r})")).unwrap_or_default();
    if let Some((m, r)) = min {
        if u < minv {
            return Err(format!("Must be at least {m}{}\n", reason(r)));
        }
    }
    if let Some((m, r)) = max {
        if u > maxv {
            return Err(format!("Must be no more than {m}{}\n", reason(r)));
        }
    }
    Ok(u)
}

/// Reads a decimal the way varnishd 7.1.1 reads seconds and ratios: white
/// space, a minus, up to 12 digits, white space, a point and up to 3 digits that count
/// (more are skipped); anything after that is ignored.
pub fn decimal(text: &str) -> Result<f64, &'static str> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    let sign = if b.get(i) == Some(&b'-') {
        i += 1;
        -1.0
    } else {
        1.0
    };
    let mut v = 0.0;
    let mut ndig = 0;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        ndig += 1;
        if ndig > 12 {
            return Err("Too many digits");
        }
        v = v * 10.0 + (c - b'0') as f64;
        i += 1;
    }
    if ndig > 0 {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
    }
    if b.get(i) != Some(&b'.') {
        return if ndig == 0 { Err("Invalid number") } else { Ok(sign * v) };
    }
    if ndig == 0 && !b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        return Err("Invalid number");
    }
    i += 1;
    let mut scale = 1.0;
    for _ in 0..3 {
        scale *= 0.1;
        let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) else { break };
        v += scale * (c - b'0') as f64;
        i += 1;
    }
    Ok(sign * v)
}

/// Reads a size in bytes as varnishd does (`VNUM_2bytes`).
pub fn bytes(text: &str) -> Result<u64, &'static str> {
    const INVALID: &str = "Invalid number";
    const UNIT: &str = "Unknown BYTES unit of measurement ([KMGTP][B])";
    const FRACTION: &str = "Fractional BYTES not allowed";
    let ows = |b: &[u8], mut i: usize| {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    let b = text.as_bytes();
    let mut i = ows(b, 0);
    let neg = b.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let mut r = 0.0;
    let mut ndig = 0;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        ndig += 1;
        if ndig > 15 {
            return Err("Too many digits");
        }
        r = r * 10.0 + (c - b'0') as f64;
        i += 1;
    }
    if ndig == 0 {
        return Err(INVALID);
    }
    i = ows(b, i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 1.0;
        let mut nfrac = 0;
        while nfrac < 3 {
            let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) else { break };
            scale *= 0.1;
            r += scale * (c - b'0') as f64;
            nfrac += 1;
            i += 1;
        }
        if nfrac == 0 {
            return Err(INVALID);
        }
        if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            return Err("Too many digits");
        }
        i = ows(b, i);
    }
    if neg && r != 0.0 {
        return Err(INVALID);
    }
    let space = |b: &[u8], mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    i = space(b, i);
    let Some(&u) = b.get(i) else {
        return if r.fract() != 0.0 { Err(FRACTION) } else { Ok(r as u64) };
    };
    let scale = match u.to_ascii_lowercase() {
        b'k' => 1u64 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        b'p' => 1 << 50,
        b'b' if r.fract() != 0.0 => return Err(FRACTION),
        b'b' => 1,
        _ => return Err(UNIT),
    };
    i += 1;
    if scale != 1 && matches!(b.get(i), Some(b'b' | b'B')) {
        i += 1;
    }
    if space(b, i) < b.len() {
        return Err(UNIT);
    }
    Ok((r * scale as f64).trunc().round() as u64)
}

/// A size as varnishd shows it: `512b`, `16k`, `0.25G`.
pub fn fmt_bytes(mut t: u64) -> String {
    if t == 0 || t & 0xff != 0 {
        return format!("{t}b");
    }
    for u in ['k', 'M', 'G', 'T', 'P', 'E'] {
        if t & 0x300 != 0 {
            return format!("{:.2}{u}", t as f64 / 1024.0);
        }
        t /= 1024;
        if t & 0xff != 0 {
            return format!("{t}{u}");
        }
    }
    "(bogus number)".to_string()
}

/// A number as C's `%g` writes it: six significant digits, no trailing zeros.
pub fn fmt_g(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let e = format!("{v:.5e}");
    let (mant, exp) = e.split_once('e').expect("an exponent");
    let exp: i32 = exp.parse().expect("a number");
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if (-4..6).contains(&exp) {
        trim(format!("{v:.*}", (5 - exp) as usize))
    } else {
        format!("{}e{}{:02}", trim(mant.to_string()), if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// Free text as varnishd shows it: as it is, unless it holds quotes,
/// backslashes or unprintable bytes, in which case quoted and escaped.
fn quote(s: &str) -> String {
    if s.bytes().all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\') {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.bytes() {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\{c:03o}")),
        }
    }
    out.push('"');
    out
}

/// A value as `param.show` writes it.
pub fn render(p: &ParamDef, v: &Value) -> String {
    match (p.kind, v) {
        (_, Value::Uint(u32::MAX)) => "unlimited".into(),
        (_, Value::Uint(u)) => u.to_string(),
        (Kind::Double, Value::Number(n)) => fmt_g(*n),
        (_, Value::Number(n)) => format!("{n:.3}"),
        (_, Value::Bytes(b)) => fmt_bytes(*b),
        (_, Value::Bool(b)) => if *b { "on" } else { "off" }.into(),
        (_, Value::Text(s)) => quote(s),
        (_, Value::Pool(pp)) => format!("{},{},{}", pp.min_pool, pp.max_pool, fmt_g(pp.max_age)),
        (Kind::Bits(set), Value::Bits(bits)) => {
            let on: Vec<String> = (0..set.names.len())
                .filter(|j| bits & (1 << j) != 0)
                .map(|j| format!("{}{}", set.sign, set.names[j]))
                .collect();
            match (on.is_empty(), set.sign) {
                (false, _) => on.join(","),
                (true, '+') => "none".into(),
                (true, _) => "all".into(),
            }
        }
        (_, Value::Bits(_)) => unreachable!("bits of a parameter that is not a bit set"),
    }
}

/// The parameter reference, as Markdown, made from [`PARAMS`].
///
/// `docs/params.md` is this text; a test keeps it fresh.
pub fn params_markdown() -> String {
    let mut s = String::from(
        "# Parameters\n\nGenerated from `crates/lacquer-defs/src/params.rs` by \
         `lacquer_defs::params_markdown()`; do not edit by hand (a test checks it is fresh).\n\n\
         The run-time parameters of Varnish 7.1, set with `lacquer serve -p name=value`. Every one is \
         accepted and checked as varnishd 7.1.1 checks it; \"yes\" in the Lacquer column marks those \
         Lacquer acts on today. Durations are seconds (7.1.1 reads no units after them), sizes take \
         `b k m g t p` (powers of 1024).\n\n\
         | parameter | kind | default | min | max | units | flags | Lacquer | description |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let cell = |t: &str| t.replace('|', "\\|");
    for p in PARAMS {
        let mut flags = p.flag_names();
        for (f, n) in [(PLATFORM, "platform"), (BUILD, "build"), (UNAVAILABLE, "unavailable")] {
            if p.flags & f != 0 {
                flags = if flags.is_empty() { n.to_string() } else { format!("{flags}, {n}") };
            }
        }
        s.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} | {} | {} | {} |\n",
            p.name,
            p.kind.as_str(),
            cell(p.default_note.unwrap_or(p.default)),
            p.min.text().map(cell).unwrap_or_else(|| "—".into()),
            p.max.text().map(cell).unwrap_or_else(|| "—".into()),
            if p.units.is_empty() { "—" } else { p.units },
            if flags.is_empty() { "—".into() } else { flags },
            if p.honoured { "yes" } else { "no" },
            cell(p.doc),
        ));
    }
    for (name, set) in [("debug", &DEBUG_BITS), ("experimental", &EXPERIMENTAL_BITS), ("feature", &FEATURE_BITS)] {
        s.push_str(&format!("\n## `{name}` bits\n\n| bit | description |\n|---|---|\n"));
        for (n, d) in set.names.iter().zip(set.docs) {
            s.push_str(&format!("| `{n}` | {d} |\n"));
        }
    }
    s.push_str("\n## `vsl_mask` tags\n\n");
    s.push_str(&VSL_TAGS.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, value: &str) -> String {
        ParamValues::default().set(name, value).unwrap_err().message
    }

    fn shown(name: &str, value: &str) -> String {
        let mut v = ParamValues::default();
        v.set(name, value).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        v.show(name).unwrap()
    }

    #[test]
    fn names_are_sorted_and_unique() {
        for w in PARAMS.windows(2) {
            assert!(w[0].name < w[1].name, "{} then {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn defaults_read_back_as_written() {
        let v = ParamValues::default();
        for p in PARAMS {
            assert_eq!(v.show(p.name).unwrap(), p.default, "{}", p.name);
        }
    }

    #[test]
    fn dynamic_bounds_have_rules() {
        let v = ParamValues::default();
        for p in PARAMS {
            for b in [p.min, p.max] {
                if let Bound::Dynamic(_) = b {
                    assert!(v.bound(p, b).is_some(), "{}", p.name);
                }
            }
        }
    }

    #[test]
    fn honoured_ones_are_those_the_server_reads() {
        let honoured: Vec<_> = PARAMS.iter().filter(|p| p.honoured).map(|p| p.name).collect();
        assert_eq!(
            honoured,
            [
                "ban_cutoff",
                "ban_dups",
                "ban_lurker_age",
                "ban_lurker_batch",
                "ban_lurker_sleep",
                "between_bytes_timeout",
                "cli_limit",
                "clock_skew",
                "connect_timeout",
                "default_grace",
                "default_keep",
                "default_ttl",
                "feature",
                "first_byte_timeout",
                "gzip_level",
                "http_gzip_support",
                "http_max_hdr",
                "http_range_support",
                "http_req_hdr_len",
                "http_req_size",
                "http_resp_hdr_len",
                "http_resp_size",
                "idle_send_timeout",
                "max_esi_depth",
                "max_restarts",
                "max_retries",
                "max_vcl",
                "max_vcl_handling",
                "pipe_timeout",
                "send_timeout",
                "shortlived",
                "timeout_idle",
                "timeout_linger",
                "vcc_err_unref",
                "vcc_unsafe_path",
                "vcl_cooldown",
                "vcl_path",
                "vsl_buffer",
                "workspace_backend",
                "workspace_client",
                "workspace_session",
                "workspace_thread",
            ]
        );
    }

    #[test]
    fn whole_numbers_read_like_strtoul() {
        assert_eq!(shown("max_restarts", "0x10"), "16");
        assert_eq!(shown("max_restarts", "010"), "8");
        assert_eq!(shown("max_restarts", " +5"), "5");
        assert_eq!(shown("max_restarts", "-1"), "unlimited");
        assert_eq!(shown("max_restarts", "UNLIMITED"), "unlimited");
        assert_eq!(shown("max_restarts", "-5"), "4294967291");
        assert_eq!(shown("max_restarts", "4294967296"), "0");
        assert_eq!(
            err("max_restarts", "lots"),
            "Not a number (lots)\n\n(attempting to set param 'max_restarts' to 'lots')"
        );
        assert!(err("max_restarts", "1.5").starts_with("Not a number (1.5)\n"));
        assert!(err("max_restarts", "5 ").starts_with("Not a number (5 )\n"));
        assert!(err("max_restarts", "").starts_with("Illegal Min: 0\n"));
        assert!(err("http_max_hdr", "8").starts_with("Must be at least 32\n\n("));
        assert!(err("http_max_hdr", "70000").starts_with("Must be no more than 65535\n\n("));
        assert!(err("clock_skew", "1.5").starts_with("Not a number (1.5)"));
    }

    #[test]
    fn decimals_ignore_what_follows_the_number() {
        assert_eq!(shown("timeout_idle", "1.5ms"), "1.500");
        assert_eq!(shown("timeout_idle", "2m"), "2.000");
        assert_eq!(shown("timeout_idle", " .5"), "0.500");
        assert_eq!(shown("timeout_idle", "5."), "5.000");
        assert_eq!(shown("timeout_idle", "1 .5"), "1.500");
        assert!(err("timeout_idle", "- 1").starts_with("Invalid number (- 1)\n"));
        assert_eq!(shown("timeout_idle", "1.1239"), "1.123");
        assert_eq!(shown("timeout_idle", "0x10"), "0.000");
        assert_eq!(shown("timeout_idle", "-0"), "-0.000");
        assert_eq!(shown("timeout_idle", "123456789012"), "123456789012.000");
        assert!(err("timeout_idle", "1234567890123").starts_with("Too many digits (1234567890123)\n\n"));
        assert!(err("timeout_idle", "+1").starts_with("Invalid number (+1)\n\n"));
        assert!(err("timeout_idle", "").starts_with("Invalid number ()\n\n"));
        assert!(err("timeout_idle", ".").starts_with("Invalid number (.)\n\n"));
        assert!(err("timeout_idle", "-1").starts_with("Must be greater or equal to 0.000\n\n"));
        assert!(err("acceptor_sleep_incr", "2").starts_with("Must be less than or equal to 1.000\n\n"));
        assert_eq!(shown("acceptor_sleep_decay", "0.12345"), "0.123");
        assert_eq!(shown("acceptor_sleep_decay", "1."), "1");
        assert!(err("acceptor_sleep_decay", "-.5").starts_with("Must be greater or equal to 0\n"));
    }

    #[test]
    fn bytes_take_units_in_powers_of_1024() {
        assert_eq!(bytes("1K"), Ok(1024));
        assert_eq!(bytes("1kb"), Ok(1024));
        assert_eq!(bytes("1 KB "), Ok(1024));
        assert_eq!(bytes("1.3kB"), Ok(1331));
        assert_eq!(bytes("1 .5k"), Ok(1536));
        assert_eq!(bytes("-0"), Ok(0));
        assert_eq!(bytes("1.7g"), Ok(1825361100));
        assert_eq!(bytes("100B"), Ok(100));
        assert_eq!(bytes("1t"), Ok(1 << 40));
        assert_eq!(bytes("1P"), Ok(1 << 50));
        assert_eq!(bytes("-1"), Err("Invalid number"));
        assert_eq!(bytes(""), Err("Invalid number"));
        assert_eq!(bytes("m"), Err("Invalid number"));
        assert_eq!(bytes("1.5"), Err("Fractional BYTES not allowed"));
        assert_eq!(bytes("1.5b"), Err("Fractional BYTES not allowed"));
        assert_eq!(bytes("1.1234k"), Err("Too many digits"));
        assert_eq!(bytes("1x"), Err("Unknown BYTES unit of measurement ([KMGTP][B])"));
        assert_eq!(bytes("1kbb"), Err("Unknown BYTES unit of measurement ([KMGTP][B])"));
        assert_eq!(shown("http_req_size", "1.5k"), "1.50k");
        assert_eq!(shown("http_req_size", "100000B"), "100000b");
        assert_eq!(shown("http_req_size", "1p"), "0b", "32-bit parameters keep the low bits");
        assert_eq!(shown("fetch_chunksize", "1p"), "1P");
        assert_eq!(
            err("http_req_size", "1x"),
            "Could not convert to bytes.\nUnknown BYTES unit of measurement ([KMGTP][B])\n  Try something like \
             '80k' or '120M'\n\n(attempting to set param 'http_req_size' to '1x')"
        );
        assert!(err("http_req_size", "100").starts_with("Must be at least 0.25k\n\n("));
        assert!(err("workspace_thread", "9k").starts_with("Must be no more than 8k\n\n\n("));
        assert_eq!(fmt_bytes(268435456), "0.25G");
        assert_eq!(fmt_bytes(768), "0.75k");
        assert_eq!(fmt_bytes(65535), "65535b");
    }

    #[test]
    fn booleans_strings_and_pools() {
        assert_eq!(shown("prefer_ipv6", "Yes"), "on");
        assert_eq!(shown("auto_restart", "disable"), "off");
        assert!(err("auto_restart", "1").starts_with("use \"on\" or \"off\"\n\n("));
        assert!(err("auto_restart", " on").starts_with("use \"on\" or \"off\""));
        assert_eq!(shown("cc_command", "foo bar"), "foo bar");
        assert_eq!(shown("cc_command", "say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(shown("pool_req", "1 2 3.5,4"), "1,2,3.5");
        assert_eq!(shown("pool_req", "1,20,3x"), "1,20,3");
        assert!(err("pool_req", "1,2").starts_with("Three fields required: min_pool, max_pool and max_age\n\n"));
        assert!(err("pool_req", "3,2,1").starts_with("min_pool cannot be larger than max_pool\n\n"));
        assert!(err("pool_req", "10,a,10").starts_with("Not a number (a)\n\n"));
        assert!(err("pool_req", "1,2,2000000").starts_with("Must be less than or equal to 1000000\n\n"));
        let e = ParamValues::default().set("accept_filter", "off").unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (300, "parameter \"accept_filter\" is not available on this platform.")
        );
        let e = ParamValues::default().set("no_such", "1").unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (106, "Unknown parameter \"no_such\"."));
    }

    #[test]
    fn bit_sets_add_and_remove_names() {
        assert_eq!(shown("feature", "+http2"), "+http2,+validate_headers");
        assert_eq!(shown("feature", "+HTTP2, -validate_headers"), "+http2");
        assert_eq!(shown("feature", "none"), "none");
        assert_eq!(shown("feature", ""), "+validate_headers");
        assert_eq!(shown("debug", "+syncvsl"), "+syncvsl");
        assert_eq!(shown("experimental", "+drop_pools"), "+drop_pools");
        assert!(shown("vsl_mask", "+Hash").starts_with("-Debug,-ObjProtocol,"));
        assert!(!shown("vsl_mask", "+Hash").contains("Hash"));
        assert!(shown("vsl_mask", "-requrl").starts_with("-Debug,-ReqURL,-ObjProtocol"));
        let mut v = ParamValues::default();
        v.set("feature", "+http2,-validate_headers").unwrap();
        v.set("feature", "default").unwrap();
        assert_eq!(v.show("feature").unwrap(), "+validate_headers");
        v.set("vsl_mask", "+Debug,+Hash").unwrap();
        v.set("vsl_mask", "default").unwrap();
        assert_eq!(v.show("vsl_mask").unwrap(), PARAMS.iter().find(|p| p.name == "vsl_mask").unwrap().default);
        assert!(err("feature", "http2").starts_with("Missing '+' or '-' (http2)\n\n"));
        assert!(err("feature", "+nope").starts_with("Unknown feature bit (+nope)\n\n"));
        assert!(err("debug", "default").starts_with("Missing '+' or '-' (default)\n\n"));
        assert!(err("vsl_mask", "none").starts_with("Missing '+' or '-' (none)\n\n"));
        assert!(err("vsl_mask", "+Hash,-Foo").starts_with("Unknown VSL tag (-Foo)\n\n"));
        assert!(err("feature", "+http2,\"x").starts_with("Cannot parse: Missing '\"'\n\n"));
    }

    #[test]
    fn some_bounds_are_other_parameters() {
        let mut v = ParamValues::default();
        assert!(v.set("thread_pool_max", "50").unwrap_err().message.starts_with(
            "Must be at least 100 (thread_pool_min)\n\n(attempting to set param 'thread_pool_max' to '50')"
        ));
        assert!(v
            .set("thread_pool_min", "6000")
            .unwrap_err()
            .message
            .starts_with("Must be no more than 5000 (thread_pool_max)\n\n"));
        assert!(v
            .set("thread_pool_reserve", "96")
            .unwrap_err()
            .message
            .starts_with("Must be no more than 95 (95% of thread_pool_min)\n\n"));
        v.set("thread_pool_min", "10").unwrap();
        v.set("thread_pool_max", "50").unwrap();
        assert!(v.set("thread_pool_min", "51").is_err());
        v.set("thread_pool_max", "unlimited").unwrap();
        assert!(err("thread_pool_min", "4").starts_with("Must be at least 5\n\n"));
        assert!(err("thread_pool_stack", "1k").starts_with("Must be at least 16k\n\n"));
        assert!(err("vsl_reclen", "16k").starts_with("Must be no more than 16372b\n\n\n"));
        assert!(err("vsl_buffer", "100").starts_with("Must be at least 267\n\n"));
    }

    #[test]
    fn g_format_is_c_s() {
        for (v, s) in
            [(0.9, "0.9"), (1.0, "1"), (1000000.0, "1e+06"), (123456789012.0, "1.23457e+11"), (0.0001, "0.0001")]
        {
            assert_eq!(fmt_g(v), s);
        }
        assert_eq!(fmt_g(0.00001), "1e-05");
    }

    #[test]
    fn params_doc_is_fresh() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/params.md");
        let want = params_markdown();
        if std::env::var_os("LACQUER_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/params.md is stale: run LACQUER_BLESS=1 cargo test -p lacquer-defs");
    }

    /// Runs `varnishd` with `args`, if it is installed.
    fn varnishd(args: &[&str]) -> Option<std::process::Output> {
        std::process::Command::new("varnishd").args(args).output().ok()
    }

    #[test]
    fn rows_agree_with_varnishd() {
        let Some(out) = varnishd(&["-x", "parameter"]) else {
            println!("skipped: varnishd is not on PATH");
            return;
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let mut seen = Vec::new();
        for block in text.split("\n.. _ref_param_").skip(1) {
            let mut lines = block.lines().skip(2);
            let name = lines.next().unwrap().trim();
            let attr =
                |key: &str| block.lines().find_map(|l| l.strip_prefix(&format!("\t* {key}: ")).map(str::to_string));
            let p = lookup(name).unwrap_or_else(|| panic!("varnishd has {name}, the table has not"));
            let units = (!p.units.is_empty()).then(|| p.units.to_string());
            assert_eq!(attr("Units"), units, "units of {name}");
            assert_eq!(attr("Default").as_deref(), Some(p.default_note.unwrap_or(p.default)), "default of {name}");
            assert_eq!(attr("Minimum").as_deref(), p.min.text(), "minimum of {name}");
            assert_eq!(attr("Maximum").as_deref(), p.max.text(), "maximum of {name}");
            let flags = p.flag_names();
            assert_eq!(attr("Flags").unwrap_or_default(), flags, "flags of {name}");
            let platform = block.contains("NB: This parameter depends on a feature which is not available");
            assert_eq!(platform, p.flags & PLATFORM != 0, "platform note of {name}");
            let build = block.contains("NB: The actual default value for this parameter depends on the Varnish build");
            assert_eq!(build, p.flags & BUILD != 0, "build note of {name}");
            seen.push(name.to_string());
        }
        let ours: Vec<_> = PARAMS.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(seen, ours, "the same parameters, in the same order");
    }

    #[test]
    fn errors_agree_with_varnishd() {
        let dir = std::env::temp_dir().join(format!("lacquer-params-{}", std::process::id()));
        let cases: &[&[&str]] = &[
            &["no_such=1"],
            &["max_restarts=lots"],
            &["http_max_hdr=8"],
            &["timeout_idle=-1"],
            &["timeout_idle=+1"],
            &["http_req_size=1x"],
            &["http_req_size=-1"],
            &["workspace_thread=9k"],
            &["feature=http2"],
            &["feature=+http2,+nope"],
            &["debug=default"],
            &["vsl_mask=+Hash,-Foo"],
            &["auto_restart=maybe"],
            &["pool_req=3,2,1"],
            &["thread_pool_max=50"],
            &["thread_pool_min=10", "thread_pool_max=5"],
            &["thread_pool_min=6000"],
            &["vsl_reclen=16k"],
            &["accept_filter=on"],
        ];
        for ps in cases {
            let mut args = vec!["-C", "-b", "127.0.0.1:9", "-n", dir.to_str().unwrap()];
            for p in *ps {
                args.extend(["-p", p]);
            }
            let Some(out) = varnishd(&args) else {
                println!("skipped: varnishd is not on PATH");
                return;
            };
            let mut ours = ParamValues::default();
            let mut message = String::new();
            for p in *ps {
                let (name, value) = p.split_once('=').unwrap();
                if let Err(e) = ours.set(name, value) {
                    message = format!("Error:\n{e}\n");
                    break;
                }
            }
            assert_eq!(out.status.code(), Some(2), "{ps:?}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{ps:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
