//! The run-time parameters (`-p name=value`), as one table.
//!
//! Each row is one of Varnish 7.1's parameters with its type, default,
//! bounds and a one-line description; the struct, the parser and the
//! listing are all made from the table. Only the parameters the server
//! honours today are here; the table belongs in `lacquer-defs` once the
//! admin CLI (`param.show`, `param.set`) needs it too.

use std::fmt;

/// The kind of value a parameter takes, which decides how its text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Uint,
    /// Seconds, with an optional unit (`ms`, `s`, `m`, `h`, `d`, `w`, `y`).
    Duration,
    /// Bytes, with an optional unit (`b`, `k`, `m`, `g`, powers of 1024).
    Bytes,
}

/// A parameter that could not be set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError(pub String);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

macro_rules! params {
    ($( $field:ident : $kind:ident = $default:expr, min $min:expr, max $max:expr ; $doc:literal ;)*) => {
        /// The parameters' values. Durations are in seconds, sizes in bytes.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Params {
            $( #[doc = $doc] pub $field: f64, )*
        }

        impl Default for Params {
            fn default() -> Params {
                Params { $( $field: $default as f64, )* }
            }
        }

        /// Every parameter: name, kind, default, minimum, maximum, description.
        pub const TABLE: &[(&str, Kind, f64, f64, f64, &str)] = &[
            $( (stringify!($field), Kind::$kind, $default as f64, $min as f64, $max as f64, $doc), )*
        ];

        impl Params {
            fn slot(&mut self, name: &str) -> Option<&mut f64> {
                match name {
                    $( stringify!($field) => Some(&mut self.$field), )*
                    _ => None,
                }
            }
        }
    };
}

params! {
    max_restarts: Uint = 4, min 0, max u32::MAX;
        "How many times a request may restart before it gets a 503.";
    max_retries: Uint = 4, min 0, max u32::MAX;
        "How many times a backend fetch may be retried before it fails.";
    timeout_idle: Duration = 5, min 0, max 1e9;
        "How long a client connection may wait for (the rest of) a request head.";
    connect_timeout: Duration = 3.5, min 0, max 1e9;
        "Default time to open a backend connection.";
    first_byte_timeout: Duration = 60, min 0, max 1e9;
        "Default time to wait for the first byte of a backend response.";
    between_bytes_timeout: Duration = 60, min 0, max 1e9;
        "Default time to wait between two reads of a backend response.";
    http_req_hdr_len: Bytes = 8192, min 40, max u32::MAX;
        "The longest client request header line.";
    http_req_size: Bytes = 32768, min 256, max u32::MAX;
        "The largest client request head.";
    http_resp_hdr_len: Bytes = 8192, min 40, max u32::MAX;
        "The longest backend response header line.";
    http_resp_size: Bytes = 32768, min 256, max u32::MAX;
        "The largest backend response head.";
    http_max_hdr: Uint = 64, min 32, max 65535;
        "The most header lines in a head, the first line counting as five.";
}

impl Params {
    /// Sets a parameter from `name=value` text, as `-p` gives it.
    pub fn apply(&mut self, assignment: &str) -> Result<(), ParamError> {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(ParamError(format!("parameter '{assignment}': expected name=value")));
        };
        self.set(name.trim(), value.trim())
    }

    /// Sets one parameter from its text value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        let Some(&(_, kind, _, min, max, _)) = TABLE.iter().find(|row| row.0 == name) else {
            return Err(ParamError(format!("unknown parameter \"{name}\"")));
        };
        let v = parse_value(kind, value).ok_or_else(|| ParamError(format!("invalid value for {name}: '{value}'")))?;
        if v < min {
            return Err(ParamError(format!("must be at least {min} for {name}")));
        }
        if v > max {
            return Err(ParamError(format!("must be no more than {max} for {name}")));
        }
        if let Some(slot) = self.slot(name) {
            *slot = v;
        }
        Ok(())
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

/// Reads a number with an optional unit suffix of the parameter's kind.
fn parse_value(kind: Kind, text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() {
        return None;
    }
    let unit = unit.trim();
    match kind {
        Kind::Uint if unit.is_empty() && n.fract() == 0.0 => Some(n),
        Kind::Uint => None,
        Kind::Duration if unit.is_empty() => Some(n),
        Kind::Duration => lacquer_vcl::conv::duration_unit(unit).map(|u| n * u),
        Kind::Bytes if unit.is_empty() => Some(n.trunc()),
        Kind::Bytes => lacquer_vcl::conv::bytes_unit(unit).map(|u| (n * u).trunc()),
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
        assert_eq!(p.req_limits(), lacquer_http::Limits::REQUEST);
        assert_eq!(p.resp_limits(), lacquer_http::Limits::RESPONSE);
    }

    #[test]
    fn values_are_typed() {
        let mut p = Params::default();
        p.apply("max_restarts=2").unwrap();
        p.apply("timeout_idle=1500ms").unwrap();
        p.apply("http_req_size=64k").unwrap();
        assert_eq!((p.max_restarts, p.timeout_idle, p.http_req_size), (2.0, 1.5, 65536.0));
        assert!(p.apply("max_restarts=1.5").is_err());
        assert!(p.apply("max_restarts=-1").is_err());
        assert!(p.apply("timeout_idle=5 parsecs").is_err());
        assert!(p.apply("http_max_hdr=8").is_err());
        assert!(p.apply("no_such_thing=1").unwrap_err().0.contains("unknown parameter"));
        assert!(p.apply("max_restarts").is_err());
    }
}
