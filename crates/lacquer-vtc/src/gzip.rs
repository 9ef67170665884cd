//! gzip as varnishtest does it (`vtc_gzip.c`): `txreq`/`txresp`
//! `-gzipbody`, `-gziplen`, `-gziplevel` and `-gzipresidual`, and the
//! `gunzip` command.
//!
//! varnishtest compresses with zlib (`deflateInit2(level, Z_DEFLATED, 31,
//! 9, Z_DEFAULT_STRATEGY)` and one `Z_FINISH`), and tests depend on its
//! exact output: the lengths they expect, and `-gzipresidual N`, which
//! checks how many bits of the last byte the deflate stream uses (Varnish's
//! gzip splicing cares for each of the eight cases, see e00024.vtc). A
//! different compressor would give other bytes, so this module uses zlib
//! itself: the system's `libz.so.1`, loaded when first needed (building
//! needs no zlib headers; a machine without zlib fails the gzip commands
//! with a message saying so).
//!
//! varnishtest's zlib is Varnish's own copy, which reports where the first
//! block, the last block and the end of the deflate stream are
//! (`startbit`, `lastbit`, `stopbit`, logged after every gzip and gunzip).
//! Stock zlib tells the same through `inflate(Z_BLOCK)`, which stops at
//! every block boundary and says in `data_type` how many bits of the last
//! byte are still unused; `gunzip` walks a stream that way. (One
//! difference: for a stored last block, Varnish's zlib reports the stop bit
//! after the block's length fields, this module after its data; both are
//! on a byte boundary, so the residual agrees.)

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::sync::OnceLock;

const Z_OK: c_int = 0;
const Z_STREAM_END: c_int = 1;
const Z_BUF_ERROR: c_int = -5;
const Z_FINISH: c_int = 4;
const Z_BLOCK: c_int = 5;
const Z_DEFLATED: c_int = 8;
const Z_DEFAULT_STRATEGY: c_int = 0;
/// A gzip wrapper (16) around a 32 KiB window (15).
const GZIP_WINDOW_BITS: c_int = 31;
/// zlib checks only the first character of the version it is given.
const ZLIB_VERSION: &[u8] = b"1.2.11\0";

/// zlib's `z_stream`, for LP64 and ILP32 alike (`uLong` is `c_ulong`).
#[repr(C)]
struct ZStream {
    next_in: *const u8,
    avail_in: c_uint,
    total_in: c_ulong,
    next_out: *mut u8,
    avail_out: c_uint,
    total_out: c_ulong,
    msg: *const c_char,
    state: *mut c_void,
    zalloc: Option<unsafe extern "C" fn(*mut c_void, c_uint, c_uint) -> *mut c_void>,
    zfree: Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>,
    opaque: *mut c_void,
    data_type: c_int,
    adler: c_ulong,
    reserved: c_ulong,
}

impl ZStream {
    /// A stream to initialise: zlib's default allocator, no input yet.
    /// Boxed, because zlib keeps a pointer back to it and checks it.
    fn new() -> Box<ZStream> {
        Box::new(ZStream {
            next_in: std::ptr::null(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null(),
            state: std::ptr::null_mut(),
            zalloc: None,
            zfree: None,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        })
    }

    /// The bytes of input taken so far (`uLong` is 32 bits wide on some
    /// platforms, 64 on this one).
    #[allow(clippy::useless_conversion)]
    fn total_in(&self) -> u64 {
        u64::from(self.total_in)
    }

    /// zlib's message for the last error, if it left one.
    fn msg(&self) -> String {
        if self.msg.is_null() {
            return "no message".into();
        }
        // SAFETY: zlib's messages are static NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(self.msg) }.to_string_lossy().into_owned()
    }
}

type DeflateInit2 =
    unsafe extern "C" fn(*mut ZStream, c_int, c_int, c_int, c_int, c_int, *const c_char, c_int) -> c_int;
type InflateInit2 = unsafe extern "C" fn(*mut ZStream, c_int, *const c_char, c_int) -> c_int;
type Step = unsafe extern "C" fn(*mut ZStream, c_int) -> c_int;
type End = unsafe extern "C" fn(*mut ZStream) -> c_int;

/// The few zlib entry points used.
struct Zlib {
    deflate_init2: DeflateInit2,
    deflate: Step,
    deflate_end: End,
    inflate_init2: InflateInit2,
    inflate: Step,
    inflate_end: End,
    /// Keeps the library mapped.
    _lib: libloading::Library,
}

/// zlib, loaded once for the whole run.
fn zlib() -> Result<&'static Zlib, String> {
    static Z: OnceLock<Result<Zlib, String>> = OnceLock::new();
    Z.get_or_init(|| {
        let err = |e: libloading::Error| format!("gzip needs zlib (libz.so.1), which could not be loaded: {e}");
        // SAFETY: loading zlib runs no initialisation code of consequence,
        // and each symbol is given the type zlib.h declares for it.
        unsafe {
            let lib = libloading::Library::new("libz.so.1").map_err(err)?;
            Ok(Zlib {
                deflate_init2: *lib.get::<DeflateInit2>(b"deflateInit2_\0").map_err(err)?,
                deflate: *lib.get::<Step>(b"deflate\0").map_err(err)?,
                deflate_end: *lib.get::<End>(b"deflateEnd\0").map_err(err)?,
                inflate_init2: *lib.get::<InflateInit2>(b"inflateInit2_\0").map_err(err)?,
                inflate: *lib.get::<Step>(b"inflate\0").map_err(err)?,
                inflate_end: *lib.get::<End>(b"inflateEnd\0").map_err(err)?,
                _lib: lib,
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Where a gzip stream's deflate data starts, where its last block starts
/// and where it ends, in bits from the start of the gzip stream: what
/// varnishtest logs as `startbit`, `lastbit` and `stopbit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits {
    pub start: u64,
    pub last: u64,
    pub stop: u64,
}

impl Bits {
    /// The three log lines varnishtest prints.
    pub fn log(&self) -> String {
        let f = |n: &str, v: u64| format!("{n} = {v} {}/{}\n", v >> 3, v & 7);
        f("startbit", self.start) + &f("lastbit", self.last) + &f("stopbit", self.stop)
    }

    /// How many bits of its last byte the deflate stream uses (0: all of
    /// them): what `-gzipresidual` expects.
    pub fn residual(&self) -> u64 {
        self.stop & 7
    }
}

/// A gunzipped body, with where its blocks were.
pub struct Gunzipped {
    pub body: Vec<u8>,
    pub bits: Bits,
}

/// `vtc_gzip`: compresses `input` into a gzip stream at `level` (0–9), as
/// zlib's `deflate` with a gzip header (no name, no time, OS Unix) does.
pub fn gzip(input: &[u8], level: i32) -> Result<(Vec<u8>, Bits), String> {
    let z = zlib()?;
    let mut s = ZStream::new();
    // SAFETY: `s` is boxed, so it stays where zlib was told it is; the
    // input and output buffers outlive each call that sees them; every
    // successful init is paired with its end.
    let out = unsafe {
        let r = (z.deflate_init2)(
            &mut *s,
            level,
            Z_DEFLATED,
            GZIP_WINDOW_BITS,
            9,
            Z_DEFAULT_STRATEGY,
            ZLIB_VERSION.as_ptr().cast(),
            std::mem::size_of::<ZStream>() as c_int,
        );
        if r != Z_OK {
            return Err(format!("Gzip error = {r} ({}): bad -gziplevel {level}?", s.msg()));
        }
        s.next_in = input.as_ptr();
        s.avail_in = c_uint::try_from(input.len()).map_err(|_| "gzip: body too long".to_string())?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        let r = loop {
            s.next_out = buf.as_mut_ptr();
            s.avail_out = buf.len() as c_uint;
            let r = (z.deflate)(&mut *s, Z_FINISH);
            out.extend_from_slice(&buf[..buf.len() - s.avail_out as usize]);
            // Z_BUF_ERROR with room left in `buf` means no progress is
            // possible; with `buf` full, that more output is coming.
            if r != Z_OK && (r != Z_BUF_ERROR || s.avail_out != 0) {
                break r;
            }
        };
        let msg = s.msg();
        (z.deflate_end)(&mut *s);
        if r != Z_STREAM_END {
            return Err(format!("Gzip error = {r} ({msg})"));
        }
        out
    };
    let bits = gunzip(&out)?.bits;
    Ok((out, bits))
}

/// `vtc_gunzip`: the data of the first gzip member of `body`; an error if
/// `body` is not gzip or is cut short, worded as varnishtest words it.
pub fn gunzip(body: &[u8]) -> Result<Gunzipped, String> {
    if body.len() < 2 || body[0] != 0x1f || body[1] != 0x8b {
        return Err("Gunzip error: body lacks gzip magic".into());
    }
    let z = zlib()?;
    let mut s = ZStream::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    let (mut start, mut boundary, mut last) = (None, 0u64, None);
    // SAFETY: as in `gzip`.
    unsafe {
        let r = (z.inflate_init2)(
            &mut *s,
            GZIP_WINDOW_BITS,
            ZLIB_VERSION.as_ptr().cast(),
            std::mem::size_of::<ZStream>() as c_int,
        );
        if r != Z_OK {
            return Err(format!("Gunzip error = {r} ({})", s.msg()));
        }
        s.next_in = body.as_ptr();
        s.avail_in = c_uint::try_from(body.len()).map_err(|_| "gunzip: body too long".to_string())?;
        let r = loop {
            s.next_out = buf.as_mut_ptr();
            s.avail_out = buf.len() as c_uint;
            // Z_BLOCK stops at the end of the gzip header and after every
            // block, with `data_type` saying where in the last byte.
            let r = (z.inflate)(&mut *s, Z_BLOCK);
            out.extend_from_slice(&buf[..buf.len() - s.avail_out as usize]);
            let at = s.total_in() * 8 - (s.data_type & 63) as u64;
            if s.data_type & 128 != 0 {
                if start.is_none() {
                    start = Some(at);
                }
                if s.data_type & 64 != 0 {
                    // The end of the last block: the end of the stream,
                    // and the boundary before it the last block's start.
                    last.get_or_insert(boundary);
                }
                boundary = at;
            }
            // zlib answers Z_BUF_ERROR, not Z_OK, when it cannot go on:
            // the stream is cut short.
            if r != Z_OK {
                break r;
            }
        };
        let msg = if s.msg.is_null() && r == Z_BUF_ERROR { "gzip data cut short".into() } else { s.msg() };
        (z.inflate_end)(&mut *s);
        if r != Z_STREAM_END {
            return Err(format!("Gunzip error = {r} ({msg})"));
        }
    }
    let start = start.unwrap_or(0);
    let bits = Bits { start, last: last.unwrap_or(start), stop: boundary };
    Ok(Gunzipped { body: out, bits })
}

/// `synth_body(len, random)`: `len` random printable characters, a newline
/// every 64 and at the end, as `-gziplen` compresses.
pub fn random_body(len: usize) -> Vec<u8> {
    use std::time::{SystemTime, UNIX_EPOCH};
    let mut x = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let mut b = Vec::with_capacity(len);
    for j in 0..len {
        if j % 64 == 63 {
            b.push(b'\n');
        } else {
            // xorshift64: varnishtest uses random(), unseeded by the test.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(b' ' + (x % 95) as u8);
        }
    }
    if let Some(l) = b.last_mut() {
        *l = b'\n';
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_zlibs_and_round_trips() {
        // The bytes varnishtest 7.1.1 sends for `-gzipbody FOO` (level 0).
        let (g, bits) = gzip(b"FOO", 0).unwrap();
        assert_eq!(g, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03\x01\x03\x00\xfc\xffFOO\xab'\xd4\x1a\x03\x00\x00\x00");
        // Varnish's zlib puts the stop bit of a stored block after its
        // length fields (120); this is after its data. Both are on a byte.
        assert_eq!(bits, Bits { start: 80, last: 80, stop: 144 });
        assert_eq!(bits.residual(), 0);
        let u = gunzip(&g).unwrap();
        assert_eq!(u.body, b"FOO");
        assert_eq!(u.bits, bits);
    }

    #[test]
    fn residual_bits_are_varnishtests() {
        // e00024.vtc's bodies: at level 9 each ends at its own bit.
        let cases = [
            ("e04c8d0fd604c", 0),
            ("1ea86e6cf31bf4ec3d7a86", 1),
            ("10", 2),
            ("a5e2e2e1c2e2", 3),
            ("71c5d18ec5d5d1", 4),
            ("39886d28a6d2988", 5),
            ("80000", 6),
            ("386811868", 7),
        ];
        for (body, want) in cases {
            let (g, bits) = gzip(body.as_bytes(), 9).unwrap();
            assert_eq!(bits.residual(), want, "{body}");
            assert_eq!(gunzip(&g).unwrap().body, body.as_bytes());
        }
        // `aaa…` (70) at level 9, as varnishtest logs it.
        let (_, bits) = gzip(&[b'a'; 70], 9).unwrap();
        assert_eq!(bits, Bits { start: 80, last: 80, stop: 122 });
    }

    #[test]
    fn bad_input_fails_cleanly() {
        assert_eq!(gunzip(b"notgzip").err().unwrap(), "Gunzip error: body lacks gzip magic");
        let (g, _) = gzip(b"some text to cut short", 6).unwrap();
        assert!(gunzip(&g[..g.len() - 4]).is_err());
        assert!(gunzip(&g[..12]).is_err());
        assert!(gzip(b"x", 12).is_err());
    }

    #[test]
    fn random_bodies_are_printable_lines() {
        let b = random_body(130);
        assert_eq!(b.len(), 130);
        assert_eq!(b[63], b'\n');
        assert_eq!(b[129], b'\n');
        assert!(b.iter().all(|&c| c == b'\n' || (b' '..=b'~').contains(&c)));
    }
}
