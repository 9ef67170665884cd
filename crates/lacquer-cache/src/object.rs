//! A cached object's body (Varnish's storage segments behind `ObjIterate`),
//! readable while it is still being written: the fetch appends pieces as
//! they arrive from the backend and every client delivering the object
//! follows behind it, waking when a piece lands. This is how one backend
//! fetch streams to all the clients that waited for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::storage::{Piece, Space};
use crate::{lock, Store};

/// How much room a body asks for at a time when it can (Varnish's
/// `fetch_chunksize`); what is left unused is given back when the body is
/// whole (`ObjTrimStore`).
pub const CHUNK: u64 = 16 * 1024;

/// How a body ended, or that it has not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    Done,
    Failed,
}

struct BodyState {
    pieces: Vec<Piece>,
    end: End,
}

/// The room an object holds in its store: what the fetch writes into.
struct Room {
    /// The head's, then the body's, in order.
    spaces: Vec<Space>,
    /// How much of the last body space is written.
    fill: u64,
}

/// A cached response: its head (whatever type the server keeps heads in)
/// and its body.
pub struct Object<H> {
    /// The response head as stored.
    pub head: H,
    /// The transaction id of the fetch that made it (`X-Varnish`'s second
    /// number on hits).
    pub xid: u64,
    /// Delivery instructions made from the body (ESI), set before the
    /// object is published and never changed.
    pub(crate) esidata: Option<Arc<Vec<u8>>>,
    body: Mutex<BodyState>,
    /// The plain length of a gzip body, 0 while unknown (varnishd keeps it
    /// in `OA_GZIPBITS`).
    gunzipped_len: AtomicU64,
    /// A fetch filter changed the body's Content-Encoding (varnishd's
    /// `OF_CHGCE`): a revalidation keeps the stored encoding and weakens
    /// the new ETag.
    changed_ce: std::sync::atomic::AtomicBool,
    /// The body is gzip as a fetch filter made or checked it (varnishd's
    /// `OF_GZIPED`).
    gzipped: std::sync::atomic::AtomicBool,
    grew: Notify,
    len: AtomicU64,
    /// The bytes it holds in its store.
    held: AtomicU64,
    /// Taken only by the one fetch writing the body, and at the end.
    room: Mutex<Room>,
    store: Arc<Store>,
}

/// Why a piece could not be added to a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSpace;

impl<H> Object<H> {
    /// An object whose head holds `head` (already taken from `store`).
    pub(crate) fn new(head: H, head_space: Space, xid: u64, store: Arc<Store>) -> Object<H> {
        Object {
            head,
            xid,
            esidata: None,
            gunzipped_len: AtomicU64::new(0),
            changed_ce: std::sync::atomic::AtomicBool::new(false),
            gzipped: std::sync::atomic::AtomicBool::new(false),
            body: Mutex::new(BodyState { pieces: Vec::new(), end: End::Open }),
            grew: Notify::new(),
            len: AtomicU64::new(0),
            held: AtomicU64::new(head_space.len),
            room: Mutex::new(Room { spaces: vec![head_space], fill: 0 }),
            store,
        }
    }

    /// The instructions given with [`crate::Busy::set_esidata`], if any.
    pub fn esidata(&self) -> Option<&Arc<Vec<u8>>> {
        self.esidata.as_ref()
    }

    /// The store it is in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Appends a piece of body and wakes the readers. The piece goes into
    /// the room the last one left; when that is too small, into new room
    /// of at least [`CHUNK`] bytes if the store has it free, else of just
    /// the piece, evicting for it. Fails when the store cannot make room
    /// even by evicting.
    pub fn append(&self, piece: Vec<u8>) -> Result<(), NoSpace> {
        if piece.is_empty() {
            return Ok(());
        }
        let n = piece.len() as u64;
        let imp = self.store.storage();
        // Never held with the body's lock: eviction looks at other objects'
        // bodies, whose writers may be evicting too.
        let mut room = lock(&self.room);
        let left = if room.spaces.len() > 1 { room.spaces.last().map_or(0, |s| s.len - room.fill) } else { 0 };
        if left < n {
            let fill = room.fill;
            if room.spaces.len() > 1 {
                let last = room.spaces.last_mut().expect("a body space");
                let before = last.len;
                imp.trim(last, fill);
                self.held.fetch_sub(before - last.len, Ordering::Relaxed);
            }
            let space = match imp.allocate(n.max(CHUNK)) {
                Some(s) => s,
                None => self.store.allocate(n).ok_or(NoSpace)?,
            };
            self.held.fetch_add(space.len, Ordering::Relaxed);
            room.spaces.push(space);
            room.fill = 0;
        }
        let fill = room.fill;
        let stored = imp.write(room.spaces.last().expect("a body space"), fill, piece);
        room.fill += n;
        drop(room);
        self.len.fetch_add(n, Ordering::Relaxed);
        lock(&self.body).pieces.push(stored);
        self.grew.notify_waiters();
        Ok(())
    }

    /// Records how long a gzip body is once gunzipped; set before
    /// [`Object::finish`].
    pub fn set_gunzipped_len(&self, n: u64) {
        self.gunzipped_len.store(n, Ordering::Relaxed);
    }

    /// How long the gzip body is once gunzipped, when it is complete and
    /// that was counted.
    pub fn gunzipped_len(&self) -> Option<u64> {
        self.complete_len()?;
        Some(self.gunzipped_len.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    /// Records that a fetch filter changed the Content-Encoding.
    pub fn set_changed_ce(&self) {
        self.changed_ce.store(true, Ordering::Relaxed);
    }

    /// Whether a fetch filter changed the Content-Encoding.
    pub fn changed_ce(&self) -> bool {
        self.changed_ce.load(Ordering::Relaxed)
    }

    /// Records that the body is gzip as a fetch filter made or checked it.
    pub fn set_gzipped(&self) {
        self.gzipped.store(true, Ordering::Relaxed);
    }

    /// Whether the body is gzip as a fetch filter made or checked it.
    pub fn gzipped(&self) -> bool {
        self.gzipped.load(Ordering::Relaxed)
    }

    /// Marks the body complete (`ok`) or failed, and wakes the readers.
    /// The room the body did not use goes back to the store.
    pub fn finish(&self, ok: bool) {
        {
            let mut room = lock(&self.room);
            let fill = room.fill;
            if room.spaces.len() > 1 {
                let last = room.spaces.last_mut().expect("a body space");
                let before = last.len;
                self.store.storage().trim(last, fill);
                self.held.fetch_sub(before - last.len, Ordering::Relaxed);
            }
        }
        lock(&self.body).end = if ok { End::Done } else { End::Failed };
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
        let st = lock(&self.body);
        (st.end == End::Done).then(|| self.len())
    }

    /// Whether the body is still being written.
    pub fn is_open(&self) -> bool {
        lock(&self.body).end == End::Open
    }

    /// The bytes this object holds in its store.
    pub fn size(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// A reader from the first byte.
    pub fn reader(self: &Arc<Self>) -> BodyReader<H> {
        BodyReader { obj: self.clone(), next: 0 }
    }
}

impl<H> Drop for Object<H> {
    fn drop(&mut self) {
        let room = self.room.get_mut().unwrap_or_else(|e| e.into_inner());
        for space in room.spaces.drain(..) {
            self.store.storage().free(space);
        }
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
        let p = lock(&self.obj.body).pieces.get(self.next)?.clone();
        self.next += 1;
        Some(self.obj.store.storage().read(&p))
    }

    /// The next piece; `None` at the end of a complete body, `Err` when the
    /// fetch failed before the end.
    pub async fn next(&mut self) -> Option<Result<Arc<Vec<u8>>, ()>> {
        loop {
            // Registered before looking, so a piece appended between the
            // look and the wait still wakes us.
            let grew = self.obj.grew.notified();
            {
                let st = lock(&self.obj.body);
                if let Some(p) = st.pieces.get(self.next).cloned() {
                    drop(st);
                    self.next += 1;
                    return Some(Ok(self.obj.store.storage().read(&p)));
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
