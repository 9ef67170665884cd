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
