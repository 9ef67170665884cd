//! Conversions between [`Arg`]/[`Value`] and the Rust types module
//! functions declare. The `#[module]` macro calls these; module authors
//! never do.

use std::borrow::Cow;
use std::fmt::Display;
use std::net::SocketAddr;

use crate::types::*;

/// A Rust argument type: `hold` checks and keeps what the argument needs
/// (a lossily decoded string), `get` lends it to the function.
pub trait FromArg<'a, 'b>: Sized {
    /// What `hold` keeps.
    type Held: 'a;
    /// Checks the argument.
    fn hold(arg: &Arg<'a>) -> Result<Self::Held, String>;
    /// Lends the value.
    fn get(held: &'b Self::Held) -> Self;
}

macro_rules! copy_arg {
    ($t:ty, $pat:pat => $e:expr, $what:literal) => {
        impl<'a, 'b> FromArg<'a, 'b> for $t {
            type Held = $t;
            fn hold(arg: &Arg<'a>) -> Result<$t, String> {
                match *arg {
                    $pat => Ok($e),
                    _ => Err(format!("expected {}, got {:?}", $what, arg)),
                }
            }
            fn get(held: &'b $t) -> $t {
                *held
            }
        }
    };
}

copy_arg!(i64, Arg::Int(v) => v, "INT");

impl<'a, 'b> FromArg<'a, 'b> for Event {
    type Held = Event;
    fn hold(arg: &Arg<'a>) -> Result<Event, String> {
        match *arg {
            Arg::Enum(s) => Event::parse(s).ok_or_else(|| format!("no VCL event is called '{s}'")),
            _ => Err(format!("expected a VCL event, got {arg:?}")),
        }
    }
    fn get(held: &'b Event) -> Event {
        *held
    }
}
copy_arg!(f64, Arg::Real(v) => v, "REAL");
copy_arg!(bool, Arg::Bool(v) => v, "BOOL");
copy_arg!(Duration, Arg::Duration(v) => Duration(v), "DURATION");
copy_arg!(Time, Arg::Time(v) => Time(v), "TIME");
copy_arg!(Bytes, Arg::Bytes(v) => Bytes(v), "BYTES");
copy_arg!(SocketAddr, Arg::Ip(Some(v)) => v, "an IP address");
copy_arg!(Http, Arg::Http(v) => v, "HTTP");
copy_arg!(Backend, Arg::Backend(v) => v, "BACKEND");
copy_arg!(Probe, Arg::Probe(v) => v, "PROBE");
copy_arg!(Acl, Arg::Acl(v) => v, "ACL");
copy_arg!(Sub, Arg::Sub(v) => v, "SUB");

impl<'a: 'b, 'b> FromArg<'a, 'b> for &'b [u8] {
    type Held = &'a [u8];
    fn hold(arg: &Arg<'a>) -> Result<&'a [u8], String> {
        match *arg {
            Arg::Str(s) => Ok(s.unwrap_or(b"")),
            Arg::Enum(s) => Ok(s.as_bytes()),
            _ => Err(format!("expected STRING, got {arg:?}")),
        }
    }
    fn get(held: &'b &'a [u8]) -> &'b [u8] {
        held
    }
}

/// A STRING that is not UTF-8 reaches a `&str` argument decoded lossily;
/// take `&[u8]` to see the bytes. NULL reads as empty.
impl<'a: 'b, 'b> FromArg<'a, 'b> for &'b str {
    type Held = Cow<'a, str>;
    fn hold(arg: &Arg<'a>) -> Result<Cow<'a, str>, String> {
        match *arg {
            Arg::Str(s) => Ok(String::from_utf8_lossy(s.unwrap_or(b""))),
            Arg::Enum(s) => Ok(Cow::Borrowed(s)),
            _ => Err(format!("expected STRING, got {arg:?}")),
        }
    }
    fn get(held: &'b Cow<'a, str>) -> &'b str {
        held
    }
}

impl<'a, 'b> FromArg<'a, 'b> for String {
    type Held = String;
    fn hold(arg: &Arg<'a>) -> Result<String, String> {
        <&str as FromArg>::hold(arg).map(Cow::into_owned)
    }
    fn get(held: &'b String) -> String {
        held.clone()
    }
}

impl<'a: 'b, 'b> FromArg<'a, 'b> for Strands<'b> {
    type Held = Strands<'a>;
    fn hold(arg: &Arg<'a>) -> Result<Strands<'a>, String> {
        match *arg {
            Arg::Strands(s) => Ok(s),
            _ => Err(format!("expected STRANDS, got {arg:?}")),
        }
    }
    fn get(held: &'b Strands<'a>) -> Strands<'b> {
        *held
    }
}

impl<'a: 'b, 'b> FromArg<'a, 'b> for Header<'b> {
    type Held = Header<'a>;
    fn hold(arg: &Arg<'a>) -> Result<Header<'a>, String> {
        match *arg {
            Arg::Header(h) => Ok(h),
            _ => Err(format!("expected HEADER, got {arg:?}")),
        }
    }
    fn get(held: &'b Header<'a>) -> Header<'b> {
        *held
    }
}

impl<'a: 'b, 'b> FromArg<'a, 'b> for NullStr<'b> {
    type Held = NullStr<'a>;
    fn hold(arg: &Arg<'a>) -> Result<NullStr<'a>, String> {
        match *arg {
            Arg::Str(s) => Ok(NullStr(s)),
            _ => Err(format!("expected STRING, got {arg:?}")),
        }
    }
    fn get(held: &'b NullStr<'a>) -> NullStr<'b> {
        *held
    }
}

impl<'a: 'b, 'b> FromArg<'a, 'b> for BlobRef<'b> {
    type Held = BlobRef<'a>;
    fn hold(arg: &Arg<'a>) -> Result<BlobRef<'a>, String> {
        match *arg {
            Arg::Blob(b) => Ok(b),
            _ => Err(format!("expected BLOB, got {arg:?}")),
        }
    }
    fn get(held: &'b BlobRef<'a>) -> BlobRef<'b> {
        *held
    }
}

impl<'a: 'b, 'b> FromArg<'a, 'b> for Regex<'b> {
    type Held = Regex<'a>;
    fn hold(arg: &Arg<'a>) -> Result<Regex<'a>, String> {
        match *arg {
            Arg::Str(s) => Ok(Regex(s.unwrap_or(b""))),
            _ => Err(format!("expected REGEX, got {arg:?}")),
        }
    }
    fn get(held: &'b Regex<'a>) -> Regex<'b> {
        *held
    }
}

/// `Option<T>`: an optional argument, `None` when left out.
impl<'a, 'b, T: FromArg<'a, 'b>> FromArg<'a, 'b> for Option<T> {
    type Held = Option<T::Held>;
    fn hold(arg: &Arg<'a>) -> Result<Option<T::Held>, String> {
        match arg {
            Arg::Absent => Ok(None),
            a => T::hold(a).map(Some),
        }
    }
    fn get(held: &'b Option<T::Held>) -> Option<T> {
        held.as_ref().map(T::get)
    }
}

/// A Rust result type.
pub trait IntoRet {
    /// Converts it; an `Err` fails the task.
    fn into_ret(self) -> Result<Value, Failure>;
}

macro_rules! ret {
    ($t:ty, $v:ident => $e:expr) => {
        impl IntoRet for $t {
            fn into_ret(self) -> Result<Value, Failure> {
                let $v = self;
                Ok($e)
            }
        }
    };
}

ret!((), _v => Value::Void);
ret!(i64, v => Value::Int(v));
ret!(f64, v => Value::Real(v));
ret!(bool, v => Value::Bool(v));
ret!(Duration, v => Value::Duration(v.0));
ret!(Time, v => Value::Time(v.0));
ret!(Bytes, v => Value::Bytes(v.0));
ret!(String, v => Value::Str(Some(v.into_bytes())));
ret!(&'static str, v => Value::Str(Some(v.as_bytes().to_vec())));
ret!(Option<String>, v => Value::Str(v.map(String::into_bytes)));
ret!(Vec<u8>, v => Value::Str(Some(v)));
ret!(Option<Vec<u8>>, v => Value::Str(v));
ret!(SocketAddr, v => Value::Ip(Some(v)));
ret!(Option<SocketAddr>, v => Value::Ip(v));
ret!(Backend, v => Value::Backend(v));
ret!(Probe, v => Value::Probe(v));
ret!(Acl, v => Value::Acl(v));
ret!(Sub, v => Value::Sub(v));
ret!(crate::StrandsBuf, v => Value::Strands(v.0));
ret!(crate::Stevedore, v => Value::Stevedore(v.0));
ret!(Blob, v => Value::Blob(Some(v.0)));
ret!(Option<Blob>, v => Value::Blob(v.map(|b| b.0)));

/// `Result<T, E>`: an `Err` fails the task with `E`'s text (`VRT_fail`).
impl<T: IntoRet, E: Display> IntoRet for Result<T, E> {
    fn into_ret(self) -> Result<Value, Failure> {
        match self {
            Ok(v) => v.into_ret(),
            Err(e) => Err(Failure(e.to_string())),
        }
    }
}

/// What a constructor returns: `Self` or `Result<Self, E>`.
pub trait IntoObject {
    /// Wraps the object; an `Err` fails `vcl_init`.
    fn into_object(self) -> Result<Value, Failure>;
}

impl<T: std::any::Any + Send + Sync> IntoObject for T {
    fn into_object(self) -> Result<Value, Failure> {
        Ok(Value::Object(Instance::new(self)))
    }
}

/// Wraps a `Result` constructor's outcome (the macro picks this one for
/// constructors returning `Result`).
pub fn result_object<T: std::any::Any + Send + Sync, E: Display>(r: Result<T, E>) -> Result<Value, Failure> {
    match r {
        Ok(v) => Ok(Value::Object(Instance::new(v))),
        Err(e) => Err(Failure(e.to_string())),
    }
}
