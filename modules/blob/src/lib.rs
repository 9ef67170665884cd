//! Varnish 7.1's vmod_blob for Lacquer: BLOBs (binary data) made from
//! strings in an encoding, written back to strings in another, compared
//! and cut, written with `lacquer-module` the way an outside author would.
//!
//! The encodings are IDENTITY (the bytes as they are), BASE64,
//! BASE64URL, BASE64URLNOPAD, BASE64CF (base64 with `-`, `~` and `_` for
//! `+`, `/` and `=`), HEX and URL (percent-encoding, RFC 3986's unreserved
//! characters left as they are). Decoding and encoding follow varnishd's
//! code byte for byte (see `codec`), and so do the errors, which fail the
//! task with varnishd's `vmod blob error: …` text. A decoding that yields
//! nothing gives an empty BLOB, not a NULL one; encoding a NULL BLOB gives
//! a NULL STRING.
//!
//! `blob.same()` tells whether two BLOBs are the same bytes in memory, as
//! varnishd's compares pointers: it is true of the same object's `.get()`
//! only where the host hands the module the object's own bytes.
//!
//! Left out: varnishd's `out of space` errors, which come from its
//! fixed-size workspace (Lacquer's values are not held in one).

mod codec;

pub use codec::{Encoding, Illegal};

#[lacquer_module::module(name = "blob")]
pub mod vmod {
    //! Utilities for the VCL blob type: encoding and decoding, comparison
    //! and cutting.

    use lacquer_module::{BlobRef, Bytes, Ctx, Failure, Strands};

    use crate::codec::Encoding;

    fn enc(s: &str) -> Encoding {
        Encoding::parse(s).unwrap_or(Encoding::Identity)
    }

    fn err(msg: impl std::fmt::Display) -> Failure {
        Failure(format!("vmod blob error: {msg}"))
    }

    /// What varnishd's `struct vrt_blob` takes from the workspace, besides
    /// the bytes.
    const VRT_BLOB: usize = 24;

    /// The free bytes of the task's workspace, where it has one: varnishd
    /// decodes and encodes in the workspace, so what does not fit there
    /// fails the call.
    fn room(ctx: &Ctx) -> Option<usize> {
        let ws = ctx.task_workspace()?;
        let free = ws.reserve(None);
        ws.release(0);
        Some(free)
    }

    /// Fails unless a BLOB of `len` bytes made by `what` fits.
    fn blob_fits(ctx: &Ctx, what: &str, len: usize) -> Result<(), Failure> {
        match room(ctx) {
            Some(free) if len.next_multiple_of(8) + VRT_BLOB > free => {
                Err(Failure(format!("Workspace overflow ({what})")))
            }
            _ => Ok(()),
        }
    }

    /// varnishd requires case DEFAULT of every encoding without hex digits.
    fn check_case(encoding: &str, case: &str) -> Result<bool, Failure> {
        if !enc(encoding).has_case() && case != "DEFAULT" {
            return Err(err(format_args!("case {case} is illegal with encoding {encoding}")));
        }
        Ok(case == "UPPER")
    }

    /// The first part of the input, as varnishd names it in errors.
    fn first(s: &Strands) -> String {
        match s.0.first() {
            Some(Some(p)) => String::from_utf8_lossy(p).into_owned(),
            _ => "(null)".into(),
        }
    }

    fn limit(length: i64) -> Option<usize> {
        (length > 0).then_some(length as usize)
    }

    fn total(s: &Strands) -> usize {
        s.parts().map(|p| p.iter().position(|&c| c == 0).unwrap_or(p.len())).sum()
    }

    /// Returns the BLOB decoded from *encoded* in the *decoding*, reading
    /// at most *length* characters of it when *length* is above 0.
    pub fn decode(
        ctx: &mut Ctx,
        #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
        #[default("IDENTITY")]
        decoding: &str,
        #[default(0)] length: i64,
        encoded: Strands,
    ) -> Result<lacquer_module::Blob, Failure> {
        let bytes = enc(decoding)
            .decode(encoded.0, limit(length))
            .map_err(|_| err(format_args!("cannot decode, illegal encoding beginning with \"{}\"", first(&encoded))))?;
        if !bytes.is_empty() {
            if room(ctx).is_some_and(|free| bytes.len() > free) {
                return Err(err("cannot decode, out of space"));
            }
            blob_fits(ctx, "blob.decode", bytes.len())?;
        }
        Ok(lacquer_module::Blob(bytes))
    }

    /// Returns *blob* as a string in the *encoding*; *case* picks the case
    /// of hex digits (HEX and URL only). A NULL *blob* gives NULL.
    pub fn encode(
        ctx: &mut Ctx,
        #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
        #[default("IDENTITY")]
        encoding: &str,
        #[enum_values("LOWER", "UPPER", "DEFAULT")]
        #[default("DEFAULT")]
        case: &str,
        blob: BlobRef,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let upper = check_case(encoding, case)?;
        let Some(b) = blob.0 else { return Ok(None) };
        let s = enc(encoding).encode(b, upper);
        if room(ctx).is_some_and(|free| s.len() + 1 > free) {
            return Err(err("cannot encode, out of space"));
        }
        Ok(Some(s))
    }

    /// Decodes *encoded* in the *decoding* and returns it encoded in the
    /// *encoding*: `decode()` and `encode()` in one call.
    pub fn transcode(
        #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
        #[default("IDENTITY")]
        decoding: &str,
        #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
        #[default("IDENTITY")]
        encoding: &str,
        #[enum_values("LOWER", "UPPER", "DEFAULT")]
        #[default("DEFAULT")]
        case: &str,
        #[default(0)] length: i64,
        encoded: Strands,
    ) -> Result<Vec<u8>, Failure> {
        let upper = check_case(encoding, case)?;
        let (dec, enc) = (enc(decoding), enc(encoding));
        // varnishd sizes its buffer first, and an input too short for a
        // byte is the empty string, legal or not.
        if dec.decoded_room(total(&encoded)) == 0 {
            return Ok(Vec::new());
        }
        let bytes = dec
            .decode(encoded.0, limit(length))
            .map_err(|_| err(format_args!("cannot decode, illegal encoding beginning with \"{}\"", first(&encoded))))?;
        // The same encoding both ways gives the input back as it was
        // written (only where the case cannot differ).
        if length <= 0 && enc == dec && !enc.has_case() {
            let mut s = Vec::new();
            for p in encoded.parts() {
                s.extend_from_slice(p.split(|&c| c == 0).next().unwrap_or(b""));
            }
            return Ok(s);
        }
        Ok(enc.encode(&bytes, upper))
    }

    /// Whether *b1* and *b2* are the same BLOB: the same bytes in the same
    /// place (two NULL BLOBs are the same too).
    pub fn same(b1: BlobRef, b2: BlobRef) -> bool {
        match (b1.0, b2.0) {
            (None, None) => true,
            (Some(a), Some(b)) => a.len() == b.len() && std::ptr::eq(a.as_ptr(), b.as_ptr()),
            _ => false,
        }
    }

    /// Whether *b1* and *b2* hold the same bytes.
    pub fn equal(b1: BlobRef, b2: BlobRef) -> bool {
        b1.0 == b2.0
    }

    /// The length of *blob* in bytes (0 for NULL).
    pub fn length(blob: BlobRef) -> i64 {
        blob.0.map_or(0, |b| b.len() as i64)
    }

    /// Returns *length* bytes of *blob* from *offset* on.
    pub fn sub(
        ctx: &mut Ctx,
        blob: BlobRef,
        length: Bytes,
        #[default(0)] offset: Bytes,
    ) -> Result<lacquer_module::Blob, Failure> {
        let b = match blob.0 {
            Some(b) if !b.is_empty() => b,
            _ => return Err(err("blob is empty in blob.sub()")),
        };
        // VCL_BYTES is an integer in varnishd.
        let (n, off) = (length.0 as i64, offset.0 as i64);
        if n < 0 || off < 0 {
            return Err(err("size or offset negative in blob.sub()"));
        }
        let len = b.len() as i64;
        if off > len || n > len || off + n > len {
            return Err(err(format_args!(
                "size {n} from offset {off} requires more bytes than blob length {len} in blob.sub()"
            )));
        }
        // varnishd's sub-blob points into the blob: only its struct is new.
        if room(ctx).is_some_and(|free| free < VRT_BLOB) {
            return Err(Failure("Workspace overflow (blob.sub)".into()));
        }
        Ok(lacquer_module::Blob(b[off as usize..(off + n) as usize].to_vec()))
    }

    /// A BLOB made once, in `vcl_init`, from *encoded* in the *decoding*
    /// (`new x = blob.blob(…)`), whose encodings `x.encode()` writes.
    pub struct Blob {
        bytes: Vec<u8>,
    }

    impl Blob {
        /// Makes a BLOB object from *encoded* in the *decoding*; illegal
        /// input refuses the VCL.
        pub fn new(
            ctx: &mut Ctx,
            #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
            #[default("IDENTITY")]
            decoding: &str,
            encoded: Strands,
        ) -> Result<Blob, Failure> {
            let dec = enc(decoding);
            if dec.decoded_room(total(&encoded)) == 0 {
                return Ok(Blob { bytes: Vec::new() });
            }
            match dec.decode(encoded.0, None) {
                Ok(bytes) => Ok(Blob { bytes }),
                Err(_) => Err(err(format_args!(
                    "cannot create blob {}, illegal encoding beginning with \"{}\"",
                    ctx.object_name().unwrap_or(""),
                    first(&encoded)
                ))),
            }
        }

        /// Returns the BLOB.
        pub fn get(&self) -> lacquer_module::Blob {
            lacquer_module::Blob(self.bytes.clone())
        }

        /// Returns the BLOB as a string in the *encoding*; *case* picks the
        /// case of hex digits (HEX and URL only).
        pub fn encode(
            &self,
            #[enum_values("IDENTITY", "BASE64", "BASE64URL", "BASE64URLNOPAD", "BASE64CF", "HEX", "URL")]
            #[default("IDENTITY")]
            encoding: &str,
            #[enum_values("LOWER", "UPPER", "DEFAULT")]
            #[default("DEFAULT")]
            case: &str,
        ) -> Result<Vec<u8>, Failure> {
            let upper = check_case(encoding, case)?;
            Ok(enc(encoding).encode(&self.bytes, upper))
        }
    }
}
