//! How VCL values are laid out when they cross the ABI.
//!
//! Every value is a [`Value`]: a [`TypeCode`](crate::TypeCode), flags, and
//! a union whose live field the code selects. Nothing here owns memory:
//! pointers point into the caller's memory (arguments) or into the task's
//! workspace (results, allocated with
//! [`HostTable::ws_alloc`](crate::HostTable::ws_alloc)).

use std::ffi::c_void;

use crate::TypeCode;

/// A byte string: STRING, ENUM (its value's name) and BLOB contents.
/// Not NUL-terminated; may hold any bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    /// The first byte; null for VCL's NULL (an unset header, no string).
    pub ptr: *const u8,
    /// The length in bytes.
    pub len: usize,
}

impl Str {
    /// VCL's NULL string.
    pub const NULL: Str = Str { ptr: std::ptr::null(), len: 0 };

    /// Borrows `b` (which must outlive every use of the result).
    pub fn from_bytes(b: &[u8]) -> Str {
        Str { ptr: b.as_ptr(), len: b.len() }
    }

    /// Whether this is VCL's NULL.
    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }

    /// The bytes, or `None` for NULL.
    ///
    /// # Safety
    /// `ptr` must be null or point to `len` readable bytes that stay valid
    /// and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(&self) -> Option<&'a [u8]> {
        if self.ptr.is_null() {
            None
        } else if self.len == 0 {
            Some(&[])
        } else {
            // SAFETY: the caller's promise.
            Some(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
        }
    }
}

/// STRANDS: a string made of parts, not concatenated until someone needs
/// it (VCL's `"a" + req.url + "b"` passed as three parts).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Strands {
    /// The parts; a NULL part counts as empty.
    pub parts: *const Str,
    /// How many parts.
    pub n: usize,
}

/// An IP address with its port (VCL's IP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ip {
    /// 4 or 6; 0 for no address (VCL's NULL IP).
    pub family: u32,
    /// The port, in host byte order.
    pub port: u16,
    /// Reserved; zero.
    pub reserved: u16,
    /// The address in network byte order: the first 4 bytes for IPv4.
    pub addr: [u8; 16],
    /// The IPv6 scope id; zero for IPv4.
    pub scope_id: u32,
    /// The IPv6 flow info; zero for IPv4.
    pub flowinfo: u32,
}

/// The HTTP messages a module can name (VCL's HTTP type, and the message a
/// HEADER belongs to).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Http {
    /// `req`: the client request.
    Req = 1,
    /// `resp`: the response to the client.
    Resp = 2,
    /// `bereq`: the backend request.
    Bereq = 3,
    /// `beresp`: the backend response.
    Beresp = 4,
    /// `obj`: the cached object (read only).
    Obj = 5,
}

impl Http {
    /// Decodes a message code.
    pub fn from_u32(v: u32) -> Option<Http> {
        match v {
            1 => Some(Http::Req),
            2 => Some(Http::Resp),
            3 => Some(Http::Bereq),
            4 => Some(Http::Beresp),
            5 => Some(Http::Obj),
            _ => None,
        }
    }

    /// The name VCL uses (`req`, `beresp` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Http::Req => "req",
            Http::Resp => "resp",
            Http::Bereq => "bereq",
            Http::Beresp => "beresp",
            Http::Obj => "obj",
        }
    }
}

/// A HEADER: a header name in one of the messages (`req.http.foo`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HeaderRef {
    /// The message, an [`Http`] as u32.
    pub which: u32,
    /// The header's name, without the colon.
    pub name: Str,
}

/// The payload of a [`Value`]; [`Value::ty`] says which field is live.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Data {
    /// INT.
    pub int: i64,
    /// REAL, DURATION (seconds), TIME (seconds since the epoch) and BYTES.
    pub real: f64,
    /// BOOL: 0 or 1.
    pub boolean: u32,
    /// STRING, ENUM and BLOB.
    pub str: Str,
    /// STRANDS.
    pub strands: Strands,
    /// IP.
    pub ip: Ip,
    /// HEADER.
    pub header: HeaderRef,
    /// HTTP: an [`Http`] as u32.
    pub http: u32,
    /// BACKEND, PROBE, ACL, SUB: a handle the host gave out and
    /// understands (a backend's or director's id, an ACL's index …).
    pub handle: u64,
    /// The result of a constructor: the new object, which the module
    /// frees in its destructor entry.
    pub object: *mut c_void,
}

/// One VCL value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Value {
    /// A [`TypeCode`] as u32.
    pub ty: u32,
    /// [`Value::ABSENT`] and [`Value::NULL`] bits.
    pub flags: u32,
    /// The payload.
    pub data: Data,
}

impl Value {
    /// Flag: no value at all (an optional argument left out, a private
    /// state argument, a VOID result).
    pub const ABSENT: u32 = 1;
    /// Flag: the value is VCL's NULL (no string, no backend, no IP).
    pub const NULL: u32 = 2;

    /// A value that is not there.
    pub fn absent() -> Value {
        Value { ty: TypeCode::Void as u32, flags: Value::ABSENT, data: Data { int: 0 } }
    }

    /// A value of type `ty` with payload `data`.
    pub fn new(ty: TypeCode, data: Data) -> Value {
        Value { ty: ty as u32, flags: 0, data }
    }

    /// VCL's NULL of type `ty`.
    pub fn null(ty: TypeCode) -> Value {
        Value { ty: ty as u32, flags: Value::NULL, data: Data { int: 0 } }
    }

    /// Whether the ABSENT flag is set.
    pub fn is_absent(&self) -> bool {
        self.flags & Value::ABSENT != 0
    }

    /// Whether the NULL flag is set.
    pub fn is_null(&self) -> bool {
        self.flags & Value::NULL != 0
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value").field("ty", &TypeCode::from_u32(self.ty)).field("flags", &self.flags).finish()
    }
}
