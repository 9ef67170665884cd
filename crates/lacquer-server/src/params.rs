//! The run-time parameters (`-p name=value`), backed by the table in
//! `lacquer-defs`.
//!
//! Every parameter of Varnish 7.1 can be set and its value is kept (for
//! `param.show`); the ones the server acts on are also copied into typed
//! fields, durations in seconds and sizes in bytes, which is what the rest
//! of the server reads (`shared.params.timeout_idle`). Which parameters those
//! are is said once, in the `honoured!` list below; a test checks it against the table's
//! `honoured` marks.

use lacquer_defs::params::ParamValues;
pub use lacquer_defs::params::{ParamError, Value};

macro_rules! honoured {
    ($( $field:ident ),* $(,)?) => {
        /// The parameters' values: the typed fields the server reads, and
        /// every parameter's value behind them.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Params {
            $(
                #[doc = concat!("`", stringify!($field), "`, as a number (seconds or bytes).")]
                pub $field: f64,
            )*
            /// Whether `debug` has `+workspace`: workspace snapshots and
            /// resets are logged (`Debug` records).
            pub debug_workspace: bool,
            values: ParamValues,
            /// The parameters `-r` protects from the CLI.
            protected: Vec<&'static str>,
        }

        /// The parameters copied into [`Params`]' typed fields.
        pub const HONOURED: &[&str] = &[$( stringify!($field), )*];

        impl Params {
            /// Copies the honoured parameters' values into the typed fields.
            fn sync(&mut self) {
                $( self.$field = self.number(stringify!($field)); )*
                self.debug_workspace = self.values.show("debug").is_some_and(|d| d.split(',').any(|f| f == "+workspace"));
            }
        }

        impl Default for Params {
            fn default() -> Params {
                let mut p = Params {
                    $( $field: 0.0, )*
                    debug_workspace: false,
                    values: ParamValues::default(),
                    protected: Vec::new(),
                };
                p.sync();
                p
            }
        }
    };
}

honoured! {
    max_restarts,
    max_retries,
    timeout_idle,
    connect_timeout,
    first_byte_timeout,
    between_bytes_timeout,
    http_req_hdr_len,
    http_req_size,
    http_resp_hdr_len,
    http_resp_size,
    http_max_hdr,
    send_timeout,
    idle_send_timeout,
    pipe_timeout,
    timeout_linger,
    default_ttl,
    default_grace,
    default_keep,
    clock_skew,
    http_range_support,
    ban_lurker_sleep,
    ban_lurker_age,
    ban_lurker_batch,
    ban_dups,
    ban_cutoff,
    http_gzip_support,
    gzip_level,
    vcl_cooldown,
    shortlived,
    cli_limit,
    max_vcl,
    max_vcl_handling,
    max_esi_depth,
    workspace_client,
    workspace_backend,
    workspace_session,
    workspace_thread,
    vsl_buffer,
}

/// Honoured parameters that are not numbers: read by name where they are
/// used (`crate::compile_options`).
pub const READ_BY_NAME: &[&str] = &["vcc_err_unref", "vcc_unsafe_path", "vcl_path", "feature"];

impl Params {
    /// Sets a parameter from `name=value` text, as `-p` gives it.
    pub fn apply(&mut self, assignment: &str) -> Result<(), ParamError> {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(ParamError { status: 106, message: "-p lacks '='".to_string() });
        };
        self.set(name, value)
    }

    /// Sets one parameter from its text value, as `param.set` does.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        self.values.set(name, value)?;
        self.sync();
        Ok(())
    }

    /// Protects a parameter from `param.set` and `param.reset` (`-r`);
    /// `-p` still sets it at start.
    pub fn protect(&mut self, name: &str) -> Result<(), ParamError> {
        match lacquer_defs::params::lookup(name) {
            Some(d) => {
                self.protected.push(d.name);
                Ok(())
            }
            None => Err(ParamError { status: 106, message: format!("Unknown parameter \"{name}\" in -r") }),
        }
    }

    fn number(&self, name: &str) -> f64 {
        self.values.get(name).and_then(Value::as_f64).unwrap_or_else(|| panic!("{name} is a number"))
    }

    /// Every parameter's value.
    pub fn values(&self) -> &ParamValues {
        &self.values
    }

    /// A parameter's value as `param.show` writes it.
    pub fn show(&self, name: &str) -> Option<String> {
        self.values.show(name)
    }

    /// Whether bit `name` of the `feature` parameter is set.
    pub fn feature(&self, name: &str) -> bool {
        let bit = lacquer_defs::params::FEATURE_BITS.names.iter().position(|n| *n == name);
        match (self.values.get("feature"), bit) {
            (Some(Value::Bits(bits)), Some(i)) => bits & (1 << i) != 0,
            _ => false,
        }
    }

    /// What the ban list and its lurker work by.
    pub fn bans(&self) -> lacquer_cache::BanParams {
        lacquer_cache::BanParams {
            dups: self.ban_dups != 0.0,
            cutoff: self.ban_cutoff as u64,
            lurker_age: self.ban_lurker_age,
            lurker_sleep: self.ban_lurker_sleep,
            lurker_batch: self.ban_lurker_batch as u64,
        }
    }

    /// The limits a client request head is parsed under.
    pub fn req_limits(&self) -> lacquer_http::Limits {
        lacquer_http::Limits {
            hdr_len: self.http_req_hdr_len as usize,
            size: self.http_req_size as usize,
            max_hdr: self.http_max_hdr as usize,
        }
    }

    /// The limits a backend response head is parsed under.
    pub fn resp_limits(&self) -> lacquer_http::Limits {
        lacquer_http::Limits {
            hdr_len: self.http_resp_hdr_len as usize,
            size: self.http_resp_size as usize,
            max_hdr: self.http_max_hdr as usize,
        }
    }
}

/// The parameters of a running server: each task reads a snapshot when it
/// starts, and `param.set` replaces them whole, so a change applies to the
/// tasks that start after it (as in Varnish, where workers read the
/// parameters anew for each task).
pub struct LiveParams(std::sync::RwLock<std::sync::Arc<Params>>);

impl LiveParams {
    pub fn new(p: Params) -> LiveParams {
        LiveParams(std::sync::RwLock::new(std::sync::Arc::new(p)))
    }

    /// The parameters now.
    pub fn get(&self) -> std::sync::Arc<Params> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets one parameter from its text, as `param.set` does (refused
    /// for one `-r` protects).
    pub fn set(&self, name: &str, value: &str) -> Result<(), ParamError> {
        let mut cur = self.0.write().unwrap_or_else(|e| e.into_inner());
        if cur.protected.contains(&name) {
            return Err(ParamError { status: 107, message: format!("parameter \"{name}\" is protected.") });
        }
        let mut next = Params::clone(&cur);
        next.set(name, value)?;
        *cur = std::sync::Arc::new(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_varnish_s() {
        let p = Params::default();
        assert_eq!(p.max_restarts, 4.0);
        assert_eq!(p.connect_timeout, 3.5);
        assert_eq!(p.send_timeout, 600.0);
        assert_eq!(p.req_limits(), lacquer_http::Limits::REQUEST);
        assert_eq!(p.resp_limits(), lacquer_http::Limits::RESPONSE);
    }

    #[test]
    fn values_are_typed() {
        let mut p = Params::default();
        p.apply("max_restarts=2").unwrap();
        p.apply("timeout_idle=1.5").unwrap();
        p.apply("http_req_size=64k").unwrap();
        p.apply("send_timeout=2").unwrap();
        assert_eq!((p.max_restarts, p.timeout_idle, p.http_req_size, p.send_timeout), (2.0, 1.5, 65536.0, 2.0));
        assert!(p.apply("max_restarts=1.5").is_err());
        assert!(p.apply("timeout_idle=-1").is_err());
        assert!(p.apply("timeout_idle=five").is_err());
        assert!(p.apply("http_max_hdr=8").is_err());
        assert!(p.apply("no_such_thing=1").unwrap_err().message.contains("Unknown parameter"));
        assert!(p.apply("max_restarts").is_err());
        assert_eq!(p.max_restarts, 2.0, "a failed set changes nothing");
    }

    #[test]
    fn every_parameter_can_be_set_and_shown() {
        let mut p = Params::default();
        p.apply("feature=+http2").unwrap();
        p.apply("thread_pool_min=10").unwrap();
        p.apply("vsl_mask=+Hash").unwrap();
        p.apply("debug=+syncvsl").unwrap();
        assert_eq!(p.show("feature").as_deref(), Some("+http2,+validate_headers"));
        assert_eq!(p.show("thread_pool_min").as_deref(), Some("10"));
        assert_eq!(p.show("debug").as_deref(), Some("+syncvsl"));
        assert_eq!(p.values().get("thread_pool_min"), Some(&Value::Uint(10)));
    }

    #[test]
    fn debug_workspace_is_one_flag_among_others() {
        let mut p = Params::default();
        assert!(!p.debug_workspace);
        p.apply("debug=+syncvsl,+workspace").unwrap();
        assert!(p.debug_workspace);
        p.apply("debug=-workspace").unwrap();
        assert!(!p.debug_workspace);
    }

    #[test]
    fn honoured_fields_match_the_table() {
        let mut want: Vec<_> = lacquer_defs::PARAMS.iter().filter(|p| p.honoured).map(|p| p.name).collect::<Vec<_>>();
        let mut have = HONOURED.to_vec();
        have.extend_from_slice(READ_BY_NAME);
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(have, want);
    }
}
