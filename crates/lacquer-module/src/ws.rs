//! Workspaces as a module sees them (Varnish's `WS_*` API): a fixed budget
//! of bytes per task that what the task keeps (headers it adds, strings it
//! builds, what modules allocate) is charged against. A task that runs out
//! is *overflowed*, and the server fails it as Varnish does (a client
//! request gets a 500, a fetch fails). The host keeps the accounting; a
//! module reaches it through [`Host::workspace`](crate::Host::workspace).

/// Which workspace: the argument `vtc.workspace_*` take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsId {
    /// The client request's (`workspace_client`).
    Client,
    /// The backend fetch's (`workspace_backend`).
    Backend,
    /// The client connection's (`workspace_session`), kept across its
    /// requests.
    Session,
    /// The worker's scratch space (`workspace_thread`).
    Thread,
}

impl WsId {
    /// The workspace a VCL enum word names (`client` …).
    pub fn from_word(w: &str) -> Option<WsId> {
        Some(match w {
            "client" => WsId::Client,
            "backend" => WsId::Backend,
            "session" => WsId::Session,
            "thread" => WsId::Thread,
            _ => return None,
        })
    }
}

/// A position in a workspace to come back to ([`Workspace::snapshot`]):
/// the bytes in use then, or the mark of an overflowed workspace, which a
/// reset keeps overflowed (Varnish's `snap_overflowed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsSnap {
    At(usize),
    Overflowed,
}

/// One workspace's accounting. Every method takes `&self`: the host keeps
/// the counts in cells, so VCL expressions evaluated through a shared
/// borrow can still be charged.
pub trait Workspace {
    /// Charges `len` bytes (rounded up to the alignment); `false`, and the
    /// workspace marked overflowed, when they do not fit or a reservation
    /// is open.
    fn alloc(&self, len: usize) -> bool;
    /// The bytes still free.
    fn free(&self) -> usize;
    /// Whether something did not fit since the task began (or the last
    /// rollback).
    fn overflowed(&self) -> bool;
    /// Marks the workspace overflowed, as a failed allocation does.
    fn mark_overflow(&self);
    /// Reserves `len` bytes, or all that is free for `None`: the bytes
    /// reserved (0 when fewer than asked are free). Nothing can be
    /// allocated until [`release`](Workspace::release).
    fn reserve(&self, len: Option<usize>) -> usize;
    /// Ends the reservation, keeping `len` bytes of it.
    fn release(&self, len: usize);
    /// Where the workspace is now.
    fn snapshot(&self) -> WsSnap;
    /// Frees everything allocated since `snap`; an overflowed workspace
    /// stays overflowed.
    fn reset(&self, snap: WsSnap);
}

#[cfg(feature = "loader")]
/// Answers one ABI workspace operation ([`lacquer_abi::WsOp`]) on `ws`,
/// as [`HostTable::ws_op`](lacquer_abi::HostTable::ws_op) documents.
pub(crate) fn apply(ws: &dyn Workspace, op: lacquer_abi::WsOp, arg: i64) -> i64 {
    use lacquer_abi::WsOp;
    let len = usize::try_from(arg).unwrap_or(0);
    match op {
        WsOp::Alloc => i64::from(ws.alloc(len)),
        WsOp::Free => ws.free() as i64,
        WsOp::Overflowed => i64::from(ws.overflowed()),
        WsOp::MarkOverflow => {
            ws.mark_overflow();
            0
        }
        WsOp::Reserve => ws.reserve((arg >= 0).then_some(len)) as i64,
        WsOp::Release => {
            ws.release(len);
            0
        }
        WsOp::Snapshot => match ws.snapshot() {
            WsSnap::At(n) => n as i64,
            WsSnap::Overflowed => SNAP_OVERFLOWED,
        },
        WsOp::Reset => {
            ws.reset(if arg == SNAP_OVERFLOWED { WsSnap::Overflowed } else { WsSnap::At(len) });
            0
        }
    }
}

/// [`WsSnap::Overflowed`] across the ABI.
pub(crate) const SNAP_OVERFLOWED: i64 = -2;

/// A workspace of the host, seen from a loaded module through the
/// callback table.
pub(crate) struct ForeignWs {
    pub host: *mut std::ffi::c_void,
    pub op: unsafe extern "C" fn(*mut std::ffi::c_void, u32, u32, i64) -> i64,
    pub which: lacquer_abi::WsWhich,
}

impl ForeignWs {
    fn call(&self, op: lacquer_abi::WsOp, arg: i64) -> i64 {
        // SAFETY: the table's callback, with the host pointer it gave.
        unsafe { (self.op)(self.host, self.which as u32, op as u32, arg) }
    }
}

impl Workspace for ForeignWs {
    fn alloc(&self, len: usize) -> bool {
        self.call(lacquer_abi::WsOp::Alloc, len as i64) == 1
    }
    fn free(&self) -> usize {
        self.call(lacquer_abi::WsOp::Free, 0).max(0) as usize
    }
    fn overflowed(&self) -> bool {
        self.call(lacquer_abi::WsOp::Overflowed, 0) == 1
    }
    fn mark_overflow(&self) {
        self.call(lacquer_abi::WsOp::MarkOverflow, 0);
    }
    fn reserve(&self, len: Option<usize>) -> usize {
        self.call(lacquer_abi::WsOp::Reserve, len.map_or(-1, |l| l as i64)).max(0) as usize
    }
    fn release(&self, len: usize) {
        self.call(lacquer_abi::WsOp::Release, len as i64);
    }
    fn snapshot(&self) -> WsSnap {
        match self.call(lacquer_abi::WsOp::Snapshot, 0) {
            SNAP_OVERFLOWED => WsSnap::Overflowed,
            n => WsSnap::At(n.max(0) as usize),
        }
    }
    fn reset(&self, snap: WsSnap) {
        let arg = match snap {
            WsSnap::At(n) => n as i64,
            WsSnap::Overflowed => SNAP_OVERFLOWED,
        };
        self.call(lacquer_abi::WsOp::Reset, arg);
    }
}
