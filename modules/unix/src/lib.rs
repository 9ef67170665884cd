//! Varnish 7.1's vmod_unix for Lacquer: who is at the other end of a
//! client connection that came through a Unix domain socket listener
//! (`-a /path/to.sock`), as the kernel says (`SO_PEERCRED`).
//!
//! The host reads the peer's credentials once, when it accepts the
//! connection ([`Host::peer_cred`](lacquer_module::Host::peer_cred)); the
//! names come from the system's user and group databases
//! (`getpwuid_r(3)`, `getgrgid_r(3)`). As in varnishd, a connection from
//! a TCP listener logs `VCL_Error` and gives -1 or NULL, and the
//! functions fail the VCL in `vcl_init` and `vcl_fini`, where there is no
//! connection.

use std::ffi::CStr;

/// Looks a name up with a `get*id_r` function, growing the buffer while
/// it says `ERANGE`: `None` when there is no such entry.
fn lookup<T>(
    lookup: impl Fn(&mut T, &mut [libc::c_char], &mut *mut T) -> libc::c_int,
    name: impl Fn(&T) -> *const libc::c_char,
) -> Option<Vec<u8>> {
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: the C struct is plain data, all-zero is a valid value.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut found: *mut T = std::ptr::null_mut();
        let rc = lookup(&mut entry, &mut buf, &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        // SAFETY: on success the name points into `buf`, NUL-terminated.
        return Some(unsafe { CStr::from_ptr(name(&entry)) }.to_bytes().to_vec());
    }
}

/// The name of user `uid`.
pub fn user_name(uid: u32) -> Option<Vec<u8>> {
    lookup(
        // SAFETY: the pointers are to live locals and a buffer of the length given.
        |pw: &mut libc::passwd, buf, found| unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), found) },
        |pw| pw.pw_name,
    )
}

/// The name of group `gid`.
pub fn group_name(gid: u32) -> Option<Vec<u8>> {
    lookup(
        // SAFETY: as in user_name.
        |gr: &mut libc::group, buf, found| unsafe { libc::getgrgid_r(gid, gr, buf.as_mut_ptr(), buf.len(), found) },
        |gr| gr.gr_name,
    )
}

#[lacquer_module::module(name = "unix")]
pub mod vmod {
    //! Utilities for Unix domain sockets: the credentials of the peer
    //! process at the other end of a client connection.

    use lacquer_module::{Ctx, Failure, PeerCredError};

    /// The peer's uid and gid; `None` (after logging why) when there are
    /// none, a failure where there is no connection at all.
    fn cred(ctx: &mut Ctx) -> Result<Option<(u32, u32)>, Failure> {
        if matches!(ctx.method(), "vcl_init" | "vcl_fini") {
            return Err(Failure("vmod unix failure: may not be called in vcl_init or vcl_fini".into()));
        }
        match ctx.peer_cred() {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                let why: &[u8] = match e {
                    PeerCredError::NotUnix => b"vmod unix error: not listening on a Unix domain socket",
                    PeerCredError::Unavailable => b"vmod unix error: could not read peer credentials",
                };
                ctx.log_tag("VCL_Error", why);
                Ok(None)
            }
        }
    }

    /// The name of the peer process's user, or NULL.
    pub fn user(ctx: &mut Ctx) -> Result<Option<Vec<u8>>, Failure> {
        Ok(cred(ctx)?.and_then(|(uid, _)| crate::user_name(uid)))
    }

    /// The name of the peer process's group, or NULL.
    pub fn group(ctx: &mut Ctx) -> Result<Option<Vec<u8>>, Failure> {
        Ok(cred(ctx)?.and_then(|(_, gid)| crate::group_name(gid)))
    }

    /// The peer process's user id, or -1.
    pub fn uid(ctx: &mut Ctx) -> Result<i64, Failure> {
        Ok(cred(ctx)?.map_or(-1, |(uid, _)| i64::from(uid)))
    }

    /// The peer process's group id, or -1.
    pub fn gid(ctx: &mut Ctx) -> Result<i64, Failure> {
        Ok(cred(ctx)?.map_or(-1, |(_, gid)| i64::from(gid)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_named() {
        assert_eq!(super::user_name(0).as_deref(), Some(&b"root"[..]));
        assert_eq!(super::group_name(0).as_deref(), Some(&b"root"[..]));
    }
}
