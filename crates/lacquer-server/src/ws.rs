//! Workspace accounting (Varnish's `cache_ws.c`).
//!
//! Varnish gives each session, client request, backend fetch and worker
//! thread a fixed-size arena, its *workspace*, sized by the
//! `workspace_session`, `workspace_client`, `workspace_backend` and
//! `workspace_thread` parameters. What a task keeps for its duration
//! (request head, headers VCL adds, strings VCL builds, what modules
//! allocate) is carved from it, and a task that runs out is *overflowed*:
//! a client request then gets a 500, a fetch fails. Operators size these
//! parameters to bound the memory per request.
//!
//! Lacquer allocates from the heap, so a [`Ws`] holds no memory: it only
//! counts. Every place that would carve from a Varnish workspace charges
//! the same number of bytes here ([`Ws::alloc`], one add and one compare
//! on two `Cell`s), and the request and fetch state machines fail an
//! overflowed task where Varnish does. The budget is the parameter less
//! what Varnish keeps in the arena before any VCL runs (the task's
//! struct, its header tables, its log buffer: see [`Ws::client`] and
//! [`Ws::backend`]), so `vtc.workspace_free()` answers close to what
//! varnishd answers, and a VCL that overflows there overflows here.
//!
//! Sizes are rounded up to 8 bytes and strings count their terminating
//! NUL, as in Varnish on 64-bit platforms.

use std::cell::{Cell, RefCell};

use lacquer_module::{Workspace, WsSnap};

/// The alignment of every allocation (Varnish's `PRNDUP`).
const ALIGN: usize = 8;

/// What Varnish's `struct req` takes from the client workspace besides
/// its header tables and log buffer (measured on varnishd 7.1, 64-bit).
const REQ_STRUCT: usize = 984;
/// The same for `struct busyobj` and the backend workspace.
const BO_STRUCT: usize = 944;
/// What the session keeps in its workspace before any request: the
/// struct and the four addresses (`workspace_session` 768 leaves 480).
const SESS_STRUCT: usize = 288;
/// What a worker keeps in its thread workspace (2048 leaves 2040).
const THREAD_STRUCT: usize = 8;
/// What a fetch takes from its workspace for the backend connection's
/// state (`struct http_conn`) before sending the request.
pub(crate) const HTC_SIZE: usize = 152;
/// The bytes one header slot of an HTTP message takes (a pointer pair and
/// a flag byte): Varnish sizes each message's table by `http_max_hdr`.
const HDR_SLOT: usize = 17;

/// Rounds up to the alignment.
fn round(n: usize) -> usize {
    n.saturating_add(ALIGN - 1) & !(ALIGN - 1)
}

/// The bytes a string of `len` takes in a workspace, with its NUL.
pub(crate) fn string_size(len: usize) -> usize {
    round(len + 1)
}

/// The bytes a BLOB of `len` takes: its bytes, and varnishd's `struct
/// vrt_blob` (type, length, pointer) that VCL holds.
pub(crate) fn blob_size(len: usize) -> usize {
    round(len) + 24
}

/// The bytes a header `name: value` takes, as `VRT_SetHdr` builds it.
pub(crate) fn header_size(name: usize, value: usize) -> usize {
    string_size(name + 2 + value)
}

/// What varnishd's PROXY parser needs free in the session's workspace
/// beyond what it keeps: measured on varnishd 7.1 (64-bit), where a
/// version 2 header with 89 bytes of TLVs fails with `workspace_session`
/// at 480 and passes at 484.
const PROXY_SCRATCH: usize = 92;
/// The head of the TLV block varnishd keeps (`struct vpx_tlv`).
const VPX_TLV: usize = 8;

/// Charges a PROXY version 2 header's `tlv_len` bytes of TLVs to the
/// session's workspace `ws`, as varnishd keeps them there for the
/// session: `false` (and the workspace overflowed) when they do not fit.
pub(crate) fn proxy_tlvs(ws: &Ws, tlv_len: usize) -> bool {
    if tlv_len == 0 {
        return true;
    }
    let keep = round(VPX_TLV + tlv_len);
    if ws.free() < keep + PROXY_SCRATCH {
        ws.mark_overflow();
        return false;
    }
    ws.alloc(keep)
}

/// One workspace's accounting: its budget, the bytes in use, an open
/// reservation, and whether it overflowed.
#[derive(Debug)]
pub(crate) struct Ws {
    /// Varnish's name for it in log messages (`client`, `backend` …).
    id: &'static str,
    size: Cell<usize>,
    used: Cell<usize>,
    /// Bytes reserved and not yet released.
    reserved: Cell<Option<usize>>,
    overflowed: Cell<bool>,
    /// `Debug` records for snapshots and resets when `debug=+workspace`,
    /// taken by the task's log after each module call.
    trace: Option<RefCell<Vec<String>>>,
}

impl Default for Ws {
    fn default() -> Ws {
        Ws::new("thread", 0, false)
    }
}

impl Ws {
    fn new(id: &'static str, size: usize, debug: bool) -> Ws {
        Ws {
            id,
            size: Cell::new(size),
            used: Cell::new(0),
            reserved: Cell::new(None),
            overflowed: Cell::new(false),
            trace: debug.then(RefCell::default),
        }
    }

    /// A client request's workspace under `p`.
    pub fn client(p: &crate::Params) -> Ws {
        let overhead = p.vsl_buffer as usize + 3 * p.http_max_hdr as usize * HDR_SLOT + REQ_STRUCT;
        Ws::new("client", (p.workspace_client as usize).saturating_sub(overhead), p.debug_workspace)
    }

    /// A backend fetch's workspace under `p`.
    pub fn backend(p: &crate::Params) -> Ws {
        let overhead = p.vsl_buffer as usize + 3 * p.http_max_hdr as usize * HDR_SLOT + BO_STRUCT;
        Ws::new("backend", (p.workspace_backend as usize).saturating_sub(overhead), p.debug_workspace)
    }

    /// A session's workspace under `p`.
    pub fn session(p: &crate::Params) -> Ws {
        Ws::new("session", (p.workspace_session as usize).saturating_sub(SESS_STRUCT), p.debug_workspace)
    }

    /// A worker's thread workspace under `p`. Lacquer's tasks do not own
    /// threads, so each task gets a fresh one: Varnish resets it between
    /// tasks anyway.
    pub fn thread(p: &crate::Params) -> Ws {
        Ws::new("thread", (p.workspace_thread as usize).saturating_sub(THREAD_STRUCT), p.debug_workspace)
    }

    /// The name used in `Error` records (`workspace_client overflow`).
    pub fn overflow_message(&self) -> String {
        format!("workspace_{} overflow", self.id)
    }

    /// Charges a string of `len` bytes (with its NUL).
    pub fn alloc_str(&self, len: usize) -> bool {
        self.alloc(string_size(len))
    }

    /// Takes the `Debug` records written since the last call.
    pub fn take_trace(&self) -> Vec<String> {
        self.trace.as_ref().map(|t| std::mem::take(&mut *t.borrow_mut())).unwrap_or_default()
    }

    fn debug(&self, f: impl FnOnce() -> String) {
        if let Some(t) = &self.trace {
            t.borrow_mut().push(f());
        }
    }

    /// Returns to `snap` and clears the overflow: what Varnish does when a
    /// VCL failure rolls the request back (`WS_Rollback`). Whether the
    /// workspace had overflowed is the answer, for the counters.
    pub fn rollback(&self, snap: usize) -> bool {
        let was = self.overflowed.replace(false);
        self.reserved.set(None);
        self.used.set(snap.min(self.used.get()));
        was
    }

    /// The bytes in use, as a point to [`rollback`](Ws::rollback) to.
    pub fn mark(&self) -> usize {
        self.used.get()
    }
}

impl Workspace for Ws {
    fn alloc(&self, len: usize) -> bool {
        let n = round(len);
        let used = self.used.get();
        if self.reserved.get().is_some() || n > self.size.get() - used {
            self.overflowed.set(true);
            return false;
        }
        self.used.set(used + n);
        true
    }

    fn free(&self) -> usize {
        self.size.get() - self.used.get()
    }

    fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    fn mark_overflow(&self) {
        self.overflowed.set(true);
    }

    fn reserve(&self, len: Option<usize>) -> usize {
        let free = self.free() & !(ALIGN - 1);
        let n = match len {
            None => free,
            Some(l) if round(l) <= free => round(l),
            Some(_) => 0,
        };
        self.debug(|| format!("WS_Reserve({}, {}) = {n}", self.id, len.unwrap_or(free)));
        if n > 0 || len.is_none() {
            self.reserved.set(Some(n));
        }
        n
    }

    fn release(&self, len: usize) {
        if let Some(r) = self.reserved.take() {
            self.used.set(self.used.get() + round(len.min(r)));
        }
        self.debug(|| format!("WS_Release({}, {len})", self.id));
    }

    fn snapshot(&self) -> WsSnap {
        if self.overflowed.get() {
            self.debug(|| format!("WS_Snapshot({}) = overflowed", self.id));
            return WsSnap::Overflowed;
        }
        let at = self.used.get();
        self.debug(|| format!("WS_Snapshot({}) = {at}", self.id));
        WsSnap::At(at)
    }

    fn reset(&self, snap: WsSnap) {
        self.reserved.set(None);
        match snap {
            WsSnap::Overflowed => self.debug(|| format!("WS_Reset({}, overflowed)", self.id)),
            WsSnap::At(at) => {
                self.debug(|| format!("WS_Reset({}, {at})", self.id));
                self.used.set(at.min(self.used.get()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_rounded_and_bounded() {
        let ws = Ws::new("client", 64, false);
        assert!(ws.alloc(1));
        assert_eq!(ws.free(), 56);
        assert!(ws.alloc_str(7));
        assert_eq!(ws.free(), 48);
        assert!(!ws.alloc(49));
        assert!(ws.overflowed());
        // What did not fit was not charged.
        assert_eq!(ws.free(), 48);
    }

    #[test]
    fn a_reservation_blocks_allocations_until_released() {
        let ws = Ws::new("client", 64, false);
        assert_eq!(ws.reserve(None), 64);
        assert!(!ws.alloc(8));
        ws.release(10);
        assert_eq!(ws.free(), 48);
        assert_eq!(ws.reserve(Some(100)), 0);
    }

    #[test]
    fn reset_to_an_overflowed_snapshot_stays_overflowed() {
        let ws = Ws::new("client", 64, true);
        let s = ws.snapshot();
        assert!(ws.alloc(32));
        ws.reset(s);
        assert_eq!(ws.free(), 64);
        ws.mark_overflow();
        let s = ws.snapshot();
        assert_eq!(s, WsSnap::Overflowed);
        ws.reset(s);
        assert!(ws.overflowed());
        assert_eq!(ws.take_trace().last().map(String::as_str), Some("WS_Reset(client, overflowed)"));
        assert!(ws.rollback(0));
        assert!(!ws.overflowed());
    }
}
