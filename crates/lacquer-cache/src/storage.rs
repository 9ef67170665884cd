//! Stevedores: where object bytes live (Varnish's `storage/` directory and
//! `struct stevedore`). The cache sees every kind through [`Storage`]; it
//! asks for room, writes pieces into it, reads them back and gives the
//! room back, and never knows whether the bytes are on the heap or in a
//! mapped file. Making room by eviction is the cache's job, not the
//! store's: a store only says "no".
//!
//! Two kinds, as varnishd's:
//!
//! - [`Malloc`] (`-s malloc[,SIZE]`, `storage_malloc.c`): room is counted,
//!   the bytes are the heap buffers the fetch read them into;
//! - [`File`] (`-s file,PATH[,SIZE[,GRANULARITY[,ADVICE]]]`,
//!   `storage_file.c`): one file mapped into memory, carved into extents in
//!   units of the granularity, first fit, freed extents joined with their
//!   free neighbours. Nothing survives a restart: it is not the persistent
//!   store.
//!
//! The counters are varnishd's for the kind (`SMA.*` and `SMF.*`), in the
//! order of their table in `lacquer_defs::counters`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::lock;

/// Room a store gave: `len` bytes at `off` (where `off` means something
/// only to the store that gave it).
#[derive(Debug, PartialEq, Eq)]
pub struct Space {
    pub off: u64,
    pub len: u64,
}

/// A piece of body as a store keeps it.
#[derive(Clone, Debug)]
pub enum Piece {
    /// Bytes on the heap.
    Mem(Arc<Vec<u8>>),
    /// Bytes inside the store, at an offset of its own.
    At { off: u64, len: usize },
}

/// One storage (a stevedore): named room with a limit, counted.
pub trait Storage: Send + Sync {
    /// `storage.NAME` in VCL, `s0`, `Transient`.
    fn name(&self) -> &str;
    /// The method as `-s` and the `Storage` log record name it
    /// (`malloc`, `file`).
    fn kind(&self) -> &'static str;
    /// The counter group (`SMA`, `SMF`).
    fn group(&self) -> &'static str;
    /// The most bytes it may hold; `None` when unbounded.
    fn limit(&self) -> Option<u64>;
    /// The bytes held now.
    fn used(&self) -> u64;
    /// Room for `size` bytes (maybe rounded up), or `None` when there is
    /// none free. Counts `c_req`, and `c_fail` on `None`.
    fn allocate(&self, size: u64) -> Option<Space>;
    /// Gives room back.
    fn free(&self, space: Space);
    /// Gives back all but the first `keep` bytes of `space` (Varnish's
    /// trimming of an object's last segment once the body is whole).
    fn trim(&self, space: &mut Space, keep: u64);
    /// Puts `bytes` at `at` inside `space`, which must have the room;
    /// answers the piece as readers will ask for it.
    fn write(&self, space: &Space, at: u64, bytes: Vec<u8>) -> Piece;
    /// The bytes of a piece [`Storage::write`] answered.
    fn read(&self, piece: &Piece) -> Arc<Vec<u8>>;
    /// The counter values, in the order of the group's table.
    fn counters(&self) -> Vec<u64>;
}

/// What every kind counts (the rows both `SMA` and `SMF` start with).
#[derive(Default)]
struct Counts {
    c_req: AtomicU64,
    c_fail: AtomicU64,
    c_bytes: AtomicU64,
    c_freed: AtomicU64,
    g_alloc: AtomicU64,
    g_bytes: AtomicU64,
}

impl Counts {
    fn took(&self, n: u64) {
        self.c_bytes.fetch_add(n, Ordering::Relaxed);
        self.g_alloc.fetch_add(1, Ordering::Relaxed);
        self.g_bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn gave(&self, n: u64, whole: bool) {
        self.c_freed.fetch_add(n, Ordering::Relaxed);
        self.g_bytes.fetch_sub(n, Ordering::Relaxed);
        if whole {
            self.g_alloc.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// `c_req … g_bytes, g_space`: the `SMA` table, and the start of `SMF`.
    fn values(&self, limit: Option<u64>) -> Vec<u64> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let used = g(&self.g_bytes);
        vec![
            g(&self.c_req),
            g(&self.c_fail),
            g(&self.c_bytes),
            g(&self.c_freed),
            g(&self.g_alloc),
            used,
            limit.map_or(0, |l| l.saturating_sub(used)),
        ]
    }
}

/// The `malloc` stevedore: the heap, up to an optional limit.
pub struct Malloc {
    name: String,
    limit: Option<u64>,
    counts: Counts,
}

impl Malloc {
    pub fn new(name: &str, limit: Option<u64>) -> Malloc {
        Malloc { name: name.into(), limit, counts: Counts::default() }
    }
}

impl Storage for Malloc {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "malloc"
    }

    fn group(&self) -> &'static str {
        "SMA"
    }

    fn limit(&self) -> Option<u64> {
        self.limit
    }

    fn used(&self) -> u64 {
        self.counts.g_bytes.load(Ordering::Relaxed)
    }

    fn allocate(&self, size: u64) -> Option<Space> {
        self.counts.c_req.fetch_add(1, Ordering::Relaxed);
        let g = &self.counts.g_bytes;
        let mut used = g.load(Ordering::Relaxed);
        loop {
            if self.limit.is_some_and(|l| used + size > l) {
                self.counts.c_fail.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match g.compare_exchange(used, used + size, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        // g_bytes is already taken above, so the others follow by hand.
        self.counts.c_bytes.fetch_add(size, Ordering::Relaxed);
        self.counts.g_alloc.fetch_add(1, Ordering::Relaxed);
        Some(Space { off: 0, len: size })
    }

    fn free(&self, space: Space) {
        self.counts.gave(space.len, true);
    }

    fn trim(&self, space: &mut Space, keep: u64) {
        if keep < space.len {
            self.counts.gave(space.len - keep, false);
            space.len = keep;
        }
    }

    fn write(&self, _: &Space, _: u64, bytes: Vec<u8>) -> Piece {
        Piece::Mem(Arc::new(bytes))
    }

    fn read(&self, piece: &Piece) -> Arc<Vec<u8>> {
        match piece {
            Piece::Mem(b) => b.clone(),
            Piece::At { .. } => unreachable!("malloc pieces are on the heap"),
        }
    }

    fn counters(&self) -> Vec<u64> {
        self.counts.values(self.limit)
    }
}

/// How the kernel is told the mapping will be read (`-s file`'s ADVICE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    Normal,
    Random,
    Sequential,
}

/// Free extents smaller than this many granules are "small"
/// (`SMF.*.g_smf_frag`), the rest "large" (Varnish's `NBUCKET`).
const NBUCKET: u64 = 128;

/// The extents of a file store, in bytes: free ones by offset, and how
/// many are handed out.
struct Extents {
    free: BTreeMap<u64, u64>,
    taken: u64,
}

/// The `file` stevedore: one file mapped into memory.
pub struct File {
    name: String,
    map: memmap2::MmapRaw,
    size: u64,
    granularity: u64,
    extents: Mutex<Extents>,
    counts: Counts,
}

impl File {
    /// Maps `path` (a file, made if missing; in a directory, a new file
    /// unlinked at once) of `size` bytes, rounded down to the granularity.
    pub fn open(name: &str, path: &Path, size: u64, granularity: u64, advice: Advice) -> io::Result<File> {
        let granularity = granularity.max(1);
        let size = size / granularity * granularity;
        if size == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "size smaller than the granularity"));
        }
        let file = if path.is_dir() {
            let tmp = path.join(format!(".lacquer-{name}-{}", std::process::id()));
            let f = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp)?;
            std::fs::remove_file(&tmp)?;
            f
        } else {
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?
        };
        file.set_len(size)?;
        let map = memmap2::MmapOptions::new().len(size as usize).map_raw(&file)?;
        let advice = match advice {
            Advice::Normal => memmap2::Advice::Normal,
            Advice::Random => memmap2::Advice::Random,
            Advice::Sequential => memmap2::Advice::Sequential,
        };
        // Advice is a hint; a kernel that ignores it changes nothing.
        let _ = map.advise(advice);
        Ok(File {
            name: name.into(),
            map,
            size,
            granularity,
            extents: Mutex::new(Extents { free: BTreeMap::from([(0, size)]), taken: 0 }),
            counts: Counts::default(),
        })
    }

    fn round(&self, n: u64) -> u64 {
        n.div_ceil(self.granularity) * self.granularity
    }

    /// Returns `[off, off + len)` to the free extents, joined with free
    /// neighbours.
    fn give_back(&self, ext: &mut Extents, mut off: u64, mut len: u64) {
        if let Some((&prev, &plen)) = ext.free.range(..off).next_back() {
            if prev + plen == off {
                ext.free.remove(&prev);
                off = prev;
                len += plen;
            }
        }
        if let Some(nlen) = ext.free.remove(&(off + len)) {
            len += nlen;
        }
        ext.free.insert(off, len);
    }
}

impl Storage for File {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn group(&self) -> &'static str {
        "SMF"
    }

    fn limit(&self) -> Option<u64> {
        Some(self.size)
    }

    fn used(&self) -> u64 {
        self.counts.g_bytes.load(Ordering::Relaxed)
    }

    fn allocate(&self, size: u64) -> Option<Space> {
        self.counts.c_req.fetch_add(1, Ordering::Relaxed);
        let want = self.round(size.max(1));
        let mut ext = lock(&self.extents);
        let Some((&off, &len)) = ext.free.iter().find(|(_, &len)| len >= want) else {
            self.counts.c_fail.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        ext.free.remove(&off);
        if len > want {
            ext.free.insert(off + want, len - want);
        }
        ext.taken += 1;
        self.counts.took(want);
        Some(Space { off, len: want })
    }

    fn free(&self, space: Space) {
        let mut ext = lock(&self.extents);
        self.give_back(&mut ext, space.off, space.len);
        ext.taken -= 1;
        self.counts.gave(space.len, true);
    }

    fn trim(&self, space: &mut Space, keep: u64) {
        let keep = self.round(keep);
        if keep == 0 || keep >= space.len {
            return;
        }
        let mut ext = lock(&self.extents);
        self.give_back(&mut ext, space.off + keep, space.len - keep);
        self.counts.gave(space.len - keep, false);
        space.len = keep;
    }

    fn write(&self, space: &Space, at: u64, bytes: Vec<u8>) -> Piece {
        assert!(at + bytes.len() as u64 <= space.len, "a write stays inside its space");
        let off = space.off + at;
        // SAFETY: `space` was handed out by this store and not yet freed, so
        // [off, off + len) lies inside the mapping and belongs to the one
        // object that holds `space`; that object writes each byte of it
        // once, before any reader is told the piece exists (the body's
        // lock orders the write before every read).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_mut_ptr().add(off as usize), bytes.len()) };
        Piece::At { off, len: bytes.len() }
    }

    fn read(&self, piece: &Piece) -> Arc<Vec<u8>> {
        match piece {
            Piece::At { off, len } => {
                // SAFETY: the piece was written by `write` into space its
                // object still holds (a reader keeps the object, and so the
                // space, alive), and nothing writes it again.
                let bytes = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(*off as usize), *len) };
                Arc::new(bytes.to_vec())
            }
            Piece::Mem(b) => b.clone(),
        }
    }

    fn counters(&self) -> Vec<u64> {
        let mut v = self.counts.values(Some(self.size));
        let ext = lock(&self.extents);
        let small = ext.free.values().filter(|&&l| l / self.granularity < NBUCKET).count() as u64;
        let large = ext.free.len() as u64 - small;
        v.extend([ext.taken + ext.free.len() as u64, small, large]);
        v
    }
}
