//! The shared-memory ring: the file `<workdir>/_.vsl`, its writers and its
//! readers (Varnish's `cache_shmlog.c` and the reading half of
//! `libvarnishapi`'s `vsl_cursor.c`).
//!
//! # File layout
//!
//! All integers are little endian (the host's order: the file is never
//! moved between machines; `-w` files are for that).
//!
//! ```text
//! offset  size  field
//!      0     8  magic "LQVSL\0\0\0"
//!      8     4  layout version (1)
//!     12     4  header size: where the ring starts (4096)
//!     16     8  ring size in bytes (a multiple of 8 × segments)
//!     24     8  ident: a new random value each time the file is made
//!     32     8  segment size (ring size / segments)
//!     40     4  number of segments (64)
//!     64     8  head: bytes ever reserved in the ring (atomic, only grows)
//!    128   8×64 segment starts: slot k holds the offset of the first chunk
//!               that starts at or after the last segment boundary ≡ k
//!   4096     …  the ring
//! ```
//!
//! Offsets in the ring are *absolute*: byte offset `p` of the log lives at
//! `4096 + p % size`, and a chunk may wrap round the end of the ring (every
//! access is modular). An absolute offset also says which lap it is on, so a
//! reader at `p` has been overrun exactly when `head - p > size`.
//!
//! The ring holds *chunks*, each one flush of a writer's buffer:
//!
//! ```text
//! u64  mark    = !p (the bitwise complement of the chunk's own offset)
//! u64  length  of the whole chunk, a multiple of 8
//!  …   records in Varnish's layout (see [`crate::record`]), zero padded
//! ```
//!
//! The mark is stored last, with release ordering: a reader that loads the
//! mark it expects at `p` (acquire) sees the whole chunk. Stale bytes of an
//! earlier lap never carry the right mark (their offset differs by a
//! multiple of the size), nor do the zeroes of a new file.
//!
//! # Writers
//!
//! Varnish keeps a per-worker buffer (`vsl_buffer`) and copies it into the
//! log under a short mutex. Here a [`VslBuf`] collects records in its own
//! memory and [`VslBuf::flush`] reserves room with one `fetch_add` on the
//! head, copies, and publishes the mark: no lock, no waiting, whatever the
//! readers do. A writer that crosses a segment boundary writes the offset of
//! the chunk after it into that segment's slot; readers use the slots to
//! find a chunk start in old data (`-d`, and resynchronising after an
//! overrun).
//!
//! # Readers
//!
//! [`ShmReader`] maps the file read-only and follows the head. It reports
//! [`ReadEvent::Overrun`] when writers lapped it (it then resynchronises at a
//! segment start a quarter of the ring behind the head) and
//! [`ReadEvent::Reopened`] when the file was made anew (the server
//! restarted), which it notices by the file's identity and ident.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lacquer_defs::Tag;
use memmap2::{Mmap, MmapMut};

use crate::record::{Record, Side, MAX_LEN, OVERHEAD};

/// The file name of the log in the working directory (Varnish keeps it in
/// `_.vsm_child/_.Log.*`).
pub const FILE_NAME: &str = "_.vsl";
/// The file's magic bytes.
pub const MAGIC: [u8; 8] = *b"LQVSL\0\0\0";
/// The layout version; a reader refuses others.
pub const VERSION: u32 = 1;
/// Where the ring starts in the file.
pub const HEADER_SIZE: usize = 4096;
/// How many segments the ring is divided into (Varnish's `VSL_SEGMENTS`).
pub const SEGMENTS: usize = 64;
/// Bytes of a chunk's mark and length.
pub const CHUNK_HEADER: usize = 16;
/// The default ring size: the `vsl_space` parameter's default, 80M.
pub const DEFAULT_SPACE: usize = 80 << 20;
/// The default writer buffer: the `vsl_buffer` parameter's default, 4k.
pub const DEFAULT_BUFFER: usize = 4 << 10;
/// The default longest record: the `vsl_reclen` parameter's default.
pub const DEFAULT_RECLEN: usize = 255;

const OFF_VERSION: usize = 8;
const OFF_HDRSIZE: usize = 12;
const OFF_SIZE: usize = 16;
const OFF_IDENT: usize = 24;
const OFF_SEGSIZE: usize = 32;
const OFF_NSEG: usize = 40;
const OFF_HEAD: usize = 64;
const OFF_SLOTS: usize = 128;

/// The tags `vsl_mask` masks by default (its default value).
pub const DEFAULT_MASKED: &[Tag] = &[
    Tag::Debug,
    Tag::ObjProtocol,
    Tag::ObjStatus,
    Tag::ObjReason,
    Tag::ObjHeader,
    Tag::VCL_trace,
    Tag::ExpKill,
    Tag::WorkThread,
    Tag::Hash,
    Tag::VfpAcct,
    Tag::H2RxHdr,
    Tag::H2RxBody,
    Tag::H2TxHdr,
    Tag::H2TxBody,
    Tag::VdpAcct,
];

fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn rd_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// A value that differs between two files made in the same directory.
fn new_ident() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut x = t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    // splitmix64, so that close times give unrelated idents.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) | 1
}

/// The writer's side of the log, shared by every task of the server
/// (Varnish's `vsl_head` and friends). Cheap to clone.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Shared>,
}

struct Shared {
    _map: MmapMut,
    base: *mut u8,
    size: u64,
    seg: u64,
    /// Bit `t` set: tag `t` is masked (not written).
    mask: [AtomicU64; 2],
    reclen: AtomicU64,
    buffer: AtomicU64,
    /// Every record goes to the ring at once (`debug=+syncvsl`).
    sync: std::sync::atomic::AtomicBool,
}

// SAFETY: `base` points into `_map`, which lives as long as `Shared`; every
// write through it goes to a region its writer reserved alone (by the
// fetch_add on the head) or is an atomic operation.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    fn atomic(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off & 7 == 0 && off + 8 <= HEADER_SIZE + self.size as usize);
        // SAFETY: in bounds, 8-aligned (the map is page aligned), and the
        // memory lives as long as `self`.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    fn head(&self) -> &AtomicU64 {
        self.atomic(OFF_HEAD)
    }

    /// Copies `bytes` into the ring at absolute offset `pos`, wrapping.
    fn copy_in(&self, pos: u64, bytes: &[u8]) {
        let at = (pos % self.size) as usize;
        let first = bytes.len().min(self.size as usize - at);
        // SAFETY: both ranges lie inside the ring, and this writer reserved
        // them alone.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(HEADER_SIZE + at), first);
            if first < bytes.len() {
                std::ptr::copy_nonoverlapping(bytes[first..].as_ptr(), self.base.add(HEADER_SIZE), bytes.len() - first);
            }
        }
    }
}

impl Log {
    /// Makes a new, empty log of `size` bytes in `dir` (replacing any old
    /// one, which readers then see as recreated) and maps it. `size` is
    /// rounded down to a multiple of 8 × [`SEGMENTS`]; at least 4k.
    ///
    /// The file is built under a temporary name and renamed into place, so a
    /// reader never maps a half-made header.
    pub fn create(dir: &Path, size: usize) -> io::Result<Log> {
        let unit = 8 * SEGMENTS;
        let size = (size.max(4096) / unit * unit) as u64;
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        file.set_len(HEADER_SIZE as u64 + size)?;
        // SAFETY: the file was just made by us; other processes only ever
        // map it read-only.
        let mut map = unsafe { MmapMut::map_mut(&file)? };
        map[0..8].copy_from_slice(&MAGIC);
        map[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        map[OFF_HDRSIZE..OFF_HDRSIZE + 4].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        map[OFF_SIZE..OFF_SIZE + 8].copy_from_slice(&size.to_le_bytes());
        map[OFF_IDENT..OFF_IDENT + 8].copy_from_slice(&new_ident().to_le_bytes());
        map[OFF_SEGSIZE..OFF_SEGSIZE + 8].copy_from_slice(&(size / SEGMENTS as u64).to_le_bytes());
        map[OFF_NSEG..OFF_NSEG + 4].copy_from_slice(&(SEGMENTS as u32).to_le_bytes());
        fs::rename(&tmp, &path)?;
        let base = map.as_mut_ptr();
        let log = Log {
            inner: Arc::new(Shared {
                _map: map,
                base,
                size,
                seg: size / SEGMENTS as u64,
                mask: [AtomicU64::new(0), AtomicU64::new(0)],
                reclen: AtomicU64::new(DEFAULT_RECLEN as u64),
                buffer: AtomicU64::new(DEFAULT_BUFFER as u64),
                sync: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        for t in DEFAULT_MASKED {
            log.set_masked(*t, true);
        }
        Ok(log)
    }

    /// The ring's size in bytes.
    pub fn size(&self) -> usize {
        self.inner.size as usize
    }

    /// Masks (`true`) or unmasks one tag, as `vsl_mask=-Tag`/`+Tag` does.
    pub fn set_masked(&self, tag: Tag, masked: bool) {
        let t = tag as usize;
        let bit = 1u64 << (t % 64);
        if masked {
            self.inner.mask[t / 64].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.inner.mask[t / 64].fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Sets the whole mask from the value of the `vsl_mask` parameter
    /// (`lacquer_defs::params::Value::Bits`: bit `i` masks tag `i + 1`).
    pub fn set_mask_bits(&self, bits: u128) {
        let shifted = bits << 1;
        self.inner.mask[0].store(shifted as u64, Ordering::Relaxed);
        self.inner.mask[1].store((shifted >> 64) as u64, Ordering::Relaxed);
    }

    /// Whether records of `tag` are written (Varnish's `VSL_tag_is_masked`
    /// negated): one relaxed load, so a masked tag costs nothing more.
    #[inline]
    pub fn enabled(&self, tag: Tag) -> bool {
        let t = tag as usize;
        self.inner.mask[t / 64].load(Ordering::Relaxed) & (1 << (t % 64)) == 0
    }

    /// Sets the longest payload written (`vsl_reclen`); longer text is cut.
    /// Has every record written to the ring as soon as it is made, not
    /// with the rest of its transaction (`debug=+syncvsl`), so that a
    /// reader sees a transaction still under way.
    pub fn set_sync(&self, sync: bool) {
        self.inner.sync.store(sync, Ordering::Relaxed);
    }

    pub fn set_reclen(&self, n: usize) {
        self.inner.reclen.store(n.clamp(16, MAX_LEN) as u64, Ordering::Relaxed);
    }

    /// Sets the size of buffers made from now on (`vsl_buffer`).
    pub fn set_buffer_size(&self, n: usize) {
        self.inner.buffer.store(n as u64, Ordering::Relaxed);
    }

    /// A new buffer for one task or worker (Varnish's `struct vsl_log`).
    /// This allocates its memory, once; logging into it then never does.
    pub fn buffer(&self) -> VslBuf {
        let reclen = self.inner.reclen.load(Ordering::Relaxed) as usize;
        let want = self.inner.buffer.load(Ordering::Relaxed) as usize;
        // At least one whole record must fit, and a chunk must be small
        // next to the ring (and its segments).
        let cap = want.max(CHUNK_HEADER + OVERHEAD + reclen + 4).min(self.inner.size as usize / 4);
        let cap = cap.div_ceil(8) * 8;
        VslBuf { log: self.clone(), buf: vec![0; cap].into_boxed_slice(), len: CHUNK_HEADER, records: 0 }
    }

    /// Reserves room for `chunk` (whose first 16 bytes are left for the
    /// chunk header), copies it in and publishes it.
    fn append(&self, chunk: &mut [u8]) {
        let sh = &*self.inner;
        let total = chunk.len() as u64;
        debug_assert!(total & 7 == 0 && total <= sh.size);
        let start = sh.head().fetch_add(total, Ordering::AcqRel);
        chunk[8..16].copy_from_slice(&total.to_le_bytes());
        sh.copy_in(start + 8, &chunk[8..]);
        sh.atomic(HEADER_SIZE + (start % sh.size) as usize).store(!start, Ordering::Release);
        // Record the first chunk after each segment boundary we crossed.
        let end = start + total;
        let mut b = (start / sh.seg + 1) * sh.seg;
        while b <= end {
            let slot = (b / sh.seg) as usize % SEGMENTS;
            sh.atomic(OFF_SLOTS + 8 * slot).store(end, Ordering::Release);
            b += sh.seg;
        }
    }
}

/// One task's log buffer (Varnish's `struct vsl_log`, filled by `VSLb`):
/// records collect here and reach the shared ring as one chunk when the
/// buffer fills, on [`VslBuf::flush`], after an `End` record, and on drop.
pub struct VslBuf {
    log: Log,
    buf: Box<[u8]>,
    len: usize,
    records: usize,
}

/// Formats into a byte slice, dropping what does not fit (the record is
/// then truncated, as Varnish truncates at `vsl_reclen`).
struct Cut<'a> {
    out: &'a mut [u8],
    n: usize,
}

impl std::fmt::Write for Cut<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.out.len() - self.n;
        let take = s.len().min(room);
        self.out[self.n..self.n + take].copy_from_slice(&s.as_bytes()[..take]);
        self.n += take;
        Ok(())
    }
}

impl VslBuf {
    /// The log this buffer writes to.
    pub fn log_handle(&self) -> &Log {
        &self.log
    }

    /// The longest payload: `vsl_reclen`, or less if this buffer is smaller.
    fn reclen(&self) -> usize {
        let fits = self.buf.len() - CHUNK_HEADER - OVERHEAD - 8;
        (self.log.inner.reclen.load(Ordering::Relaxed) as usize).min(fits)
    }

    /// Makes sure `need` more bytes fit, flushing if they do not.
    fn room(&mut self, need: usize) {
        if self.len + need > self.buf.len() {
            self.flush();
        }
    }

    fn header(&mut self, tag: Tag, vxid: u32, side: Side, len: usize) {
        let w0 = (u32::from(tag as u8) << 24) | len as u32;
        let w1 = (vxid & crate::record::IDENT_MASK) | side.marker();
        self.buf[self.len..self.len + 4].copy_from_slice(&w0.to_le_bytes());
        self.buf[self.len + 4..self.len + 8].copy_from_slice(&w1.to_le_bytes());
    }

    fn finish(&mut self, tag: Tag, len: usize) {
        let size = crate::record::record_size(len);
        self.buf[self.len + OVERHEAD + len..self.len + size].fill(0);
        self.len += size;
        self.records += 1;
        if tag == Tag::End || self.log.inner.sync.load(Ordering::Relaxed) {
            self.flush();
        }
    }

    /// Logs a text record formatted from `args` (Varnish's `VSLb`). Does
    /// nothing if the tag is masked; text longer than `vsl_reclen` − 1 bytes
    /// is cut. Never allocates.
    pub fn log(&mut self, tag: Tag, vxid: u32, side: Side, args: std::fmt::Arguments<'_>) {
        if !self.log.enabled(tag) {
            return;
        }
        let reclen = self.reclen();
        self.room(OVERHEAD + reclen + 3);
        let start = self.len + OVERHEAD;
        let n = match args.as_str() {
            Some(s) => {
                let n = s.len().min(reclen - 1);
                self.buf[start..start + n].copy_from_slice(&s.as_bytes()[..n]);
                n
            }
            None => {
                let mut cut = Cut { out: &mut self.buf[start..start + reclen - 1], n: 0 };
                let _ = std::fmt::write(&mut cut, args);
                cut.n
            }
        };
        self.buf[start + n] = 0;
        self.header(tag, vxid, side, n + 1);
        self.finish(tag, n + 1);
    }

    /// Logs a text record (Varnish's `VSLbt`/`VSLb` with `"%s"`), copied
    /// as it is: cheaper than [`VslBuf::log`] with `"{}"`.
    pub fn log_str(&mut self, tag: Tag, vxid: u32, side: Side, text: &str) {
        if !self.log.enabled(tag) {
            return;
        }
        let n = text.len().min(self.reclen() - 1);
        self.room(OVERHEAD + n + 4);
        let start = self.len + OVERHEAD;
        self.buf[start..start + n].copy_from_slice(&text.as_bytes()[..n]);
        self.buf[start + n] = 0;
        self.header(tag, vxid, side, n + 1);
        self.finish(tag, n + 1);
    }

    /// Logs a record whose payload is `bytes` as given: no NUL is added
    /// (Varnish's `VSLb_bin`, for tags flagged binary). Cut at `vsl_reclen`.
    pub fn log_bytes(&mut self, tag: Tag, vxid: u32, side: Side, bytes: &[u8]) {
        if !self.log.enabled(tag) {
            return;
        }
        let reclen = self.reclen();
        let n = bytes.len().min(reclen);
        self.room(OVERHEAD + n + 3);
        let start = self.len + OVERHEAD;
        self.buf[start..start + n].copy_from_slice(&bytes[..n]);
        self.header(tag, vxid, side, n);
        self.finish(tag, n);
    }

    /// How many records wait in the buffer.
    pub fn pending(&self) -> usize {
        self.records
    }

    /// Copies the buffered records into the shared ring (Varnish's
    /// `VSL_Flush`). Lock-free: one `fetch_add`, one copy, one store.
    pub fn flush(&mut self) {
        if self.records == 0 {
            return;
        }
        let total = self.len.div_ceil(8) * 8;
        self.buf[self.len..total].fill(0);
        self.log.append(&mut self.buf[..total]);
        self.len = CHUNK_HEADER;
        self.records = 0;
    }
}

impl Drop for VslBuf {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What a [`ShmReader`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEvent {
    /// Records of one chunk, in the order they were logged.
    Records(Vec<Record>),
    /// Writers lapped the reader; about this many bytes were lost.
    Overrun(u64),
    /// The log file was made anew (the server restarted); reading goes on
    /// at the start of the new one.
    Reopened,
}

/// Where a new reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At the head: only what is logged from now on (varnishlog's default).
    Head,
    /// At the oldest chunk still in the ring (`-d`).
    Tail,
}

struct Mapped {
    map: Mmap,
    size: u64,
    seg: u64,
    ident: u64,
    dev_ino: (u64, u64),
}

impl Mapped {
    fn open(path: &Path) -> io::Result<Mapped> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        // SAFETY: read-only map of a file another process writes; we read
        // through atomics and copies, and validate everything we read.
        let map = unsafe { Mmap::map(&file)? };
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {m}", path.display()));
        if map.len() < HEADER_SIZE || map[0..8] != MAGIC {
            return Err(bad("not a Lacquer log"));
        }
        if rd_u32(&map, OFF_VERSION) != VERSION || rd_u32(&map, OFF_HDRSIZE) as usize != HEADER_SIZE {
            return Err(bad("log layout version not understood"));
        }
        let size = rd_u64(&map, OFF_SIZE);
        let seg = rd_u64(&map, OFF_SEGSIZE);
        if size == 0 || map.len() as u64 != HEADER_SIZE as u64 + size || seg * SEGMENTS as u64 != size {
            return Err(bad("log header is inconsistent"));
        }
        let ident = rd_u64(&map, OFF_IDENT);
        Ok(Mapped { map, size, seg, ident, dev_ino: (meta.dev(), meta.ino()) })
    }

    fn atomic(&self, off: usize) -> &AtomicU64 {
        // SAFETY: in bounds and 8-aligned within a page-aligned map that
        // lives as long as `self`; AtomicU64 has the layout of u64.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }

    fn head(&self) -> u64 {
        self.atomic(OFF_HEAD).load(Ordering::Acquire)
    }

    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let at = (pos % self.size) as usize;
        let first = out.len().min(self.size as usize - at);
        let ring = &self.map[HEADER_SIZE..];
        // SAFETY: both ranges are inside the map. Writers may change these
        // bytes while we copy; the caller re-checks the head afterwards and
        // throws the copy away if they could have.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.as_ptr().add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(ring.as_ptr(), out[first..].as_mut_ptr(), out.len() - first);
        }
    }

    /// The oldest chunk start recorded in a segment slot that is at least
    /// `min` and not past `head`; `head` if there is none.
    fn oldest_start(&self, min: u64, head: u64) -> u64 {
        let mut best = head;
        for k in 0..SEGMENTS {
            let v = self.atomic(OFF_SLOTS + 8 * k).load(Ordering::Acquire);
            if v >= min && v < best {
                best = v;
            }
        }
        best
    }
}

/// Follows the log of a running server from another process (the reading
/// side of Varnish's `VSL_CursorVSM`).
pub struct ShmReader {
    path: PathBuf,
    m: Mapped,
    pos: u64,
    waiting_since: Option<Instant>,
    last_check: Instant,
}

impl ShmReader {
    /// Opens `<dir>/_.vsl` read-only and places the cursor per `start`.
    pub fn open(dir: &Path, start: Start) -> io::Result<ShmReader> {
        let path = dir.join(FILE_NAME);
        let m = Mapped::open(&path)?;
        let mut r = ShmReader { path, m, pos: 0, waiting_since: None, last_check: Instant::now() };
        r.pos = match start {
            Start::Head => r.m.head(),
            Start::Tail => r.tail_start(),
        };
        Ok(r)
    }

    /// The path of the file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first chunk still readable: 0 until the ring has wrapped.
    fn tail_start(&self) -> u64 {
        let head = self.m.head();
        if head <= self.m.size {
            return 0;
        }
        // Skip the segment writers may be overwriting right now.
        self.m.oldest_start(head - self.m.size + self.m.seg, head)
    }

    /// The reader's position and the writers' head, as absolute offsets.
    pub fn positions(&self) -> (u64, u64) {
        (self.pos, self.m.head())
    }

    /// Whether the file at the path is no longer the one mapped.
    fn replaced(&self) -> bool {
        match fs::metadata(&self.path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.m.dev_ino,
            Err(_) => false,
        }
    }

    /// The next thing in the log, or `None` if there is nothing new yet.
    /// Never blocks.
    pub fn next_event(&mut self) -> io::Result<Option<ReadEvent>> {
        let head = self.m.head();
        if head == self.pos || (head > self.pos && self.pending_too_young()) {
            if self.last_check.elapsed() >= Duration::from_millis(250) {
                self.last_check = Instant::now();
                if self.replaced() {
                    if let Ok(m) = Mapped::open(&self.path) {
                        if m.ident != self.m.ident || m.dev_ino != self.m.dev_ino {
                            self.m = m;
                            self.pos = 0;
                            self.waiting_since = None;
                            return Ok(Some(ReadEvent::Reopened));
                        }
                    }
                }
            }
            if head == self.pos {
                return Ok(None);
            }
        }
        if head < self.pos {
            // Only a new file can move the head back; resynchronise.
            self.pos = head;
            return Ok(None);
        }
        if head - self.pos > self.m.size {
            return Ok(Some(self.overrun(head)));
        }
        let at = HEADER_SIZE + (self.pos % self.m.size) as usize;
        if self.m.atomic(at).load(Ordering::Acquire) != !self.pos {
            // Reserved but not yet written: a writer is copying. If it
            // never finishes (it died), give up on the chunk after a while.
            let since = *self.waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(2) {
                self.waiting_since = None;
                return Ok(Some(self.overrun(head)));
            }
            return Ok(None);
        }
        self.waiting_since = None;
        let mut len = [0u8; 8];
        self.m.copy_out(self.pos + 8, &mut len);
        let len = u64::from_le_bytes(len);
        if len < CHUNK_HEADER as u64 || len & 7 != 0 || len > self.m.size {
            return Ok(Some(self.overrun(head)));
        }
        let mut body = vec![0u8; len as usize - CHUNK_HEADER];
        self.m.copy_out(self.pos + CHUNK_HEADER as u64, &mut body);
        fence(Ordering::Acquire);
        let head2 = self.m.head();
        if head2 - self.pos > self.m.size {
            return Ok(Some(self.overrun(head2)));
        }
        self.pos += len;
        Ok(Some(ReadEvent::Records(Record::decode_all(&body))))
    }

    /// A chunk is reserved at our position but its writer is still copying;
    /// true while that is recent enough not to bother checking the file.
    fn pending_too_young(&self) -> bool {
        let at = HEADER_SIZE + (self.pos % self.m.size) as usize;
        self.m.atomic(at).load(Ordering::Acquire) != !self.pos
            && self.waiting_since.is_some_and(|s| s.elapsed() < Duration::from_millis(100))
    }

    fn overrun(&mut self, head: u64) -> ReadEvent {
        let min = head.saturating_sub(self.m.size * 3 / 4);
        let new = self.m.oldest_start(min.max(self.pos), head);
        let lost = new - self.pos;
        self.pos = new;
        self.waiting_since = None;
        ReadEvent::Overrun(lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when the test is done.
    struct Tmp(PathBuf);

    impl std::ops::Deref for Tmp {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn tmpdir(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("lacquer-shm-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    fn drain(r: &mut ShmReader) -> Vec<ReadEvent> {
        let mut v = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            v.push(e);
        }
        v
    }

    fn urls(ev: &[ReadEvent]) -> Vec<String> {
        ev.iter()
            .flat_map(|e| match e {
                ReadEvent::Records(rs) => rs.iter().map(|r| r.payload_str().into_owned()).collect(),
                ReadEvent::Overrun(_) => vec!["OVERRUN".into()],
                ReadEvent::Reopened => vec!["REOPENED".into()],
            })
            .collect()
    }

    #[test]
    fn write_then_read_from_tail_and_head() {
        let d = tmpdir("basic");
        let log = Log::create(&d, 64 << 10).unwrap();
        let mut b = log.buffer();
        b.log(Tag::ReqURL, 1001, Side::Client, format_args!("/{}", 1));
        b.log_str(Tag::ReqMethod, 1001, Side::Client, "GET");
        let mut head = ShmReader::open(&d, Start::Head).unwrap();
        assert!(drain(&mut head).is_empty(), "nothing flushed yet");
        b.flush();
        let mut tail = ShmReader::open(&d, Start::Tail).unwrap();
        let ev = drain(&mut tail);
        assert_eq!(urls(&ev), ["/1", "GET"]);
        let ReadEvent::Records(rs) = &ev[0] else { panic!() };
        assert_eq!((rs[0].tag(), rs[0].vxid, rs[0].side), (Some(Tag::ReqURL), 1001, Side::Client));
        assert_eq!(urls(&drain(&mut head)), ["/1", "GET"]);
    }

    #[test]
    fn end_record_flushes_and_masked_tags_cost_nothing() {
        let d = tmpdir("mask");
        let log = Log::create(&d, 64 << 10).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let mut b = log.buffer();
        b.log_str(Tag::Debug, 1, Side::Client, "masked by default");
        assert_eq!(b.pending(), 0);
        log.set_masked(Tag::Debug, false);
        b.log_str(Tag::Debug, 1, Side::Client, "now logged");
        b.log_str(Tag::End, 1, Side::Client, "");
        assert_eq!(b.pending(), 0, "End flushes");
        assert_eq!(urls(&drain(&mut r)), ["now logged", ""]);
        // vsl_mask's bit i is tag i + 1.
        log.set_mask_bits(1 << (Tag::ReqURL as u32 - 1));
        assert!(!log.enabled(Tag::ReqURL));
        assert!(log.enabled(Tag::Debug));
    }

    #[test]
    fn long_records_are_cut_at_reclen() {
        let d = tmpdir("reclen");
        let log = Log::create(&d, 64 << 10).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let mut b = log.buffer();
        let long = "x".repeat(1000);
        b.log(Tag::ReqURL, 1, Side::Client, format_args!("/{long}"));
        log.set_masked(Tag::H2RxHdr, false);
        b.log_bytes(Tag::H2RxHdr, 1, Side::Client, &[0, 1, 2]);
        b.flush();
        let ev = drain(&mut r);
        let ReadEvent::Records(rs) = &ev[0] else { panic!() };
        assert_eq!(rs[0].data.len(), DEFAULT_RECLEN);
        assert_eq!(rs[0].payload().len(), DEFAULT_RECLEN - 1);
        assert_eq!(rs[1].payload(), &[0, 1, 2]);
    }

    #[test]
    fn full_buffer_flushes_itself() {
        let d = tmpdir("full");
        let log = Log::create(&d, 64 << 10).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let mut b = log.buffer();
        for i in 0..500 {
            b.log(Tag::ReqHeader, 7, Side::Client, format_args!("X-N: {i}"));
        }
        drop(b);
        let got = urls(&drain(&mut r));
        assert_eq!(got.len(), 500);
        assert_eq!(got[499], "X-N: 499");
    }

    #[test]
    fn ring_wraps_and_reader_keeps_up() {
        let d = tmpdir("wrap");
        let log = Log::create(&d, 4096).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let mut b = log.buffer();
        let mut want = Vec::new();
        for i in 0..2000 {
            let s = format!("/wrap/{i}");
            b.log_str(Tag::ReqURL, 1, Side::Client, &s);
            want.push(s);
            if i % 3 == 0 {
                b.flush();
            }
            if i % 10 == 0 {
                // Keep up, so nothing is lost across the many wraps.
                b.flush();
                let got = urls(&drain(&mut r));
                assert!(!got.contains(&"OVERRUN".to_string()));
                for g in got {
                    assert_eq!(g, want.remove(0));
                }
            }
        }
        assert!(log.inner.head().load(Ordering::Relaxed) > 10 * 4096);
    }

    #[test]
    fn overrun_is_reported_then_reading_resumes() {
        let d = tmpdir("overrun");
        let log = Log::create(&d, 4096).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let mut b = log.buffer();
        for i in 0..1000 {
            b.log(Tag::ReqURL, 1, Side::Client, format_args!("/lost/{i}"));
            b.flush();
        }
        let ev = drain(&mut r);
        let ReadEvent::Overrun(lost) = ev[0] else { panic!("{ev:?}") };
        assert!(lost > 4096);
        // What follows the overrun is a clean, in-order tail of the log.
        let got = urls(&ev[1..]);
        assert!(!got.is_empty() && got.len() < 1000);
        assert_eq!(got.last().unwrap(), "/lost/999");
        let first: usize = got[0].rsplit('/').next().unwrap().parse().unwrap();
        for (k, g) in got.iter().enumerate() {
            assert_eq!(*g, format!("/lost/{}", first + k));
        }
        // -d on a wrapped ring starts at a whole chunk.
        let mut tail = ShmReader::open(&d, Start::Tail).unwrap();
        let got = urls(&drain(&mut tail));
        assert!(!got.contains(&"OVERRUN".to_string()));
        assert_eq!(got.last().unwrap(), "/lost/999");
    }

    #[test]
    fn recreated_file_is_noticed() {
        let d = tmpdir("reopen");
        let log = Log::create(&d, 4096).unwrap();
        let mut r = ShmReader::open(&d, Start::Tail).unwrap();
        let mut b = log.buffer();
        b.log_str(Tag::ReqURL, 1, Side::Client, "/old");
        b.flush();
        assert_eq!(urls(&drain(&mut r)), ["/old"]);
        drop(b);
        drop(log);
        let log = Log::create(&d, 8192).unwrap();
        let mut b = log.buffer();
        b.log_str(Tag::ReqURL, 1, Side::Client, "/new");
        b.flush();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(urls(&drain(&mut r)), ["REOPENED", "/new"]);
    }

    #[test]
    fn threads_write_concurrently_without_loss() {
        let d = tmpdir("threads");
        let log = Log::create(&d, 1 << 20).unwrap();
        let mut r = ShmReader::open(&d, Start::Head).unwrap();
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut b = log.buffer();
                    for i in 0..2000 {
                        b.log(Tag::ReqURL, 1000 + t, Side::Client, format_args!("/{t}/{i}"));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let mut per = [0usize; 4];
        for e in drain(&mut r) {
            let ReadEvent::Records(rs) = e else { panic!("{e:?}") };
            for rec in rs {
                let t = (rec.vxid - 1000) as usize;
                assert_eq!(rec.payload_str(), format!("/{t}/{}", per[t]));
                per[t] += 1;
            }
        }
        assert_eq!(per, [2000; 4]);
    }
}
