//! A cached object's body (Varnish's storage segments behind `ObjIterate`),
//! readable while it is still being written: the fetch appends pieces as
//! they arrive from the backend and every client delivering the object
//! follows behind it, waking when a piece lands. This is how one backend
//! fetch streams to all the clients that waited for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::Store;

/// How a body ended, or that it has not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    Done,
    Failed,
}

struct BodyState {
    pieces: Vec<Arc<Vec<u8>>>,
    end: End,
}

/// A cached response: its head (whatever type the server keeps heads in)
/// and its body.
pub struct Object<H> {
    /// The response head as stored.
    pub head: H,
    /// The transaction id of the fetch that made it (`X-Varnish`'s second
    /// number on hits).
    pub xid: u64,
    body: Mutex<BodyState>,
    grew: Notify,
    len: AtomicU64,
    /// The bytes charged to the store for the head.
    head_size: u64,
    store: Arc<Store>,
}

/// Why a piece could not be added to a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSpace;

impl<H> Object<H> {
    pub(crate) fn new(head: H, head_size: u64, xid: u64, store: Arc<Store>) -> Object<H> {
        Object {
            head,
            xid,
            body: Mutex::new(BodyState { pieces: Vec::new(), end: End::Open }),
            grew: Notify::new(),
            len: AtomicU64::new(0),
            head_size,
            store,
        }
    }

    /// Appends a piece of body and wakes the readers. Fails when the store
    /// cannot make room even by evicting.
    pub fn append(&self, piece: Vec<u8>) -> Result<(), NoSpace> {
        if piece.is_empty() {
            return Ok(());
        }
        let n = piece.len() as u64;
        if !self.store.charge(n) {
            return Err(NoSpace);
        }
        self.len.fetch_add(n, Ordering::Relaxed);
        self.body.lock().unwrap_or_else(|e| e.into_inner()).pieces.push(Arc::new(piece));
        self.grew.notify_waiters();
        Ok(())
    }

    /// Marks the body complete (`ok`) or failed, and wakes the readers.
    pub fn finish(&self, ok: bool) {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).end = if ok { End::Done } else { End::Failed };
        self.grew.notify_waiters();
    }

    /// The body's length so far.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the body has no bytes so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's length, once it is complete.
    pub fn complete_len(&self) -> Option<u64> {
        let st = self.body.lock().unwrap_or_else(|e| e.into_inner());
        (st.end == End::Done).then(|| self.len())
    }

    /// Whether the body is still being written.
    pub fn is_open(&self) -> bool {
        self.body.lock().unwrap_or_else(|e| e.into_inner()).end == End::Open
    }

    /// The bytes this object holds in its store.
    pub fn size(&self) -> u64 {
        self.head_size + self.len()
    }

    /// A reader from the first byte.
    pub fn reader(self: &Arc<Self>) -> BodyReader<H> {
        BodyReader { obj: self.clone(), next: 0 }
    }
}

impl<H> Drop for Object<H> {
    fn drop(&mut self) {
        self.store.release(self.head_size + self.len());
    }
}

/// Follows an object's body piece by piece, waiting at the end of what is
/// there while the fetch is still writing.
pub struct BodyReader<H> {
    obj: Arc<Object<H>>,
    next: usize,
}

impl<H> BodyReader<H> {
    /// The next piece if it is already there, without waiting (for
    /// gathering several pieces into one write).
    pub fn try_next(&mut self) -> Option<Arc<Vec<u8>>> {
        let st = self.obj.body.lock().unwrap_or_else(|e| e.into_inner());
        let p = st.pieces.get(self.next)?.clone();
        self.next += 1;
        Some(p)
    }

    /// The next piece; `None` at the end of a complete body, `Err` when the
    /// fetch failed before the end.
    pub async fn next(&mut self) -> Option<Result<Arc<Vec<u8>>, ()>> {
        loop {
            // Registered before looking, so a piece appended between the
            // look and the wait still wakes us.
            let grew = self.obj.grew.notified();
            {
                let st = self.obj.body.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = st.pieces.get(self.next) {
                    self.next += 1;
                    return Some(Ok(p.clone()));
                }
                match st.end {
                    End::Done => return None,
                    End::Failed => return Some(Err(())),
                    End::Open => {}
                }
            }
            grew.await;
        }
    }
}
