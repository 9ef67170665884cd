//! Counters in shared memory: the file `<workdir>/_.vsc`, its writer
//! ([`Vsc`] and the handles it gives out) and its reader ([`VscReader`])
//! (Varnish's VSC: `cache_vsc.c`/`vsc.c` in the server, `vsc.c` of
//! `libvarnishapi` in `varnishstat`).
//!
//! # File layout
//!
//! All integers are little endian (the host's order; the file never leaves
//! the machine). The file describes itself, so that a reader needs no table
//! of its own: a counter a module registers shows up in `lacquer stat` with
//! its name and description.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "LQVSC\0\0\0"
//!      8     4  layout version (1)
//!     12     4  header size: where the directory starts (4096)
//!     16     8  file size
//!     24     8  ident: a new random value each time the file is made
//!     32     8  generation (atomic): odd while the directory changes,
//!               bumped twice by every segment added or removed
//!     40     4  directory slots (4096)
//!     48     8  where the data area starts
//!   4096  32×n  directory: one slot per segment
//!      …     …  data area: segment blocks
//! ```
//!
//! A directory slot is four u64: the offset of the segment's block in the
//! file (0: the slot is free), the block's length, the segment's serial
//! number (segments are shown in the order they were made) and a spare.
//!
//! A segment block (every part padded to 8 bytes):
//!
//! ```text
//! u16 group length, u16 ident length, u32 number of counters n
//! group (`VBE`), ident (`boot.default`; empty for MAIN)
//! n × { u8 kind ('c' 'g' 'b'), u8 level (0 info, 1 diag, 2 debug),
//!       u8 unit ('i' 'B' 'd' 'b'), u8 0, u16 name length, u16 doc length,
//!       name, doc }
//! n × u64 values (atomic)
//! ```
//!
//! The full name of a counter is `group.ident.name` (`VBE.boot.default.req`),
//! or `group.name` when the ident is empty (`MAIN.cache_hit`), as Varnish
//! names them.
//!
//! # Writer
//!
//! The server holds typed handles into the mapped values: bumping a counter
//! is one relaxed `fetch_add` on the shared u64, no lock, no cache line
//! shared with anything but the counter's neighbours (Varnish sums
//! per-thread copies instead; one atomic add is the simpler trade and
//! measures well below the rest of a request). Adding or removing a segment
//! is rare (a VCL load or discard) and takes a mutex in the writer only.
//!
//! A segment lives as long as its handle: dropping [`Main`], [`Sma`],
//! [`Vbe`] or a module's [`Segment`] removes it from the directory (a
//! backend's counters go with its VCL's discard, as in Varnish).
//!
//! # Readers
//!
//! A reader copies the directory, the blocks it points to and the values
//! between two loads of the generation (a seqlock): if the generation was
//! odd or moved, a segment came or went meanwhile and it reads again. The
//! reader notices a new file (the server restarted) by its inode and ident.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lacquer_defs::counters::{self, CounterDef, Kind, Level, Unit};
use memmap2::{Mmap, MmapMut};

/// The file name of the counters in the working directory (Varnish keeps
/// them in `_.vsm_child/_.Stat.*` files).
pub const FILE_NAME: &str = "_.vsc";
/// The file's magic bytes.
pub const MAGIC: [u8; 8] = *b"LQVSC\0\0\0";
/// The layout version; a reader refuses others.
pub const VERSION: u32 = 1;
/// Where the directory starts.
pub const HEADER_SIZE: usize = 4096;
/// How many segments the directory holds.
pub const DIR_SLOTS: usize = 4096;
/// Bytes of one directory slot.
pub const SLOT_SIZE: usize = 32;
/// The default file size: room for a few thousand backends. The file is
/// sparse: pages never written cost nothing.
pub const DEFAULT_SIZE: usize = 16 << 20;

const OFF_VERSION: usize = 8;
const OFF_HDRSIZE: usize = 12;
const OFF_SIZE: usize = 16;
const OFF_IDENT: usize = 24;
const OFF_GEN: usize = 32;
const OFF_NSLOTS: usize = 40;
const OFF_DATA: usize = 48;
const DATA_START: usize = HEADER_SIZE + DIR_SLOTS * SLOT_SIZE;

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A value that differs between two files made in the same directory.
fn new_ident() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut x = t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32) ^ 0x5653_4300;
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) | 1
}

/// The bytes of a block describing `defs` under `group.ident`, values left
/// out (they follow, zeroed).
fn describe(group: &str, ident: &str, defs: &[CounterDef]) -> io::Result<Vec<u8>> {
    let too_long = |s: &str| s.len() > u16::MAX as usize;
    if group.is_empty() || too_long(group) || too_long(ident) || defs.len() > u32::MAX as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad counter segment name"));
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(group.len() as u16).to_le_bytes());
    b.extend_from_slice(&(ident.len() as u16).to_le_bytes());
    b.extend_from_slice(&(defs.len() as u32).to_le_bytes());
    b.extend_from_slice(group.as_bytes());
    b.extend_from_slice(ident.as_bytes());
    b.resize(pad8(b.len()), 0);
    for d in defs {
        if too_long(d.name) || too_long(d.doc) || d.name.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad counter name {:?}", d.name)));
        }
        b.extend_from_slice(&[d.kind.as_char() as u8, d.level.index(), d.unit.as_char() as u8, 0]);
        b.extend_from_slice(&(d.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&(d.doc.len() as u16).to_le_bytes());
        b.extend_from_slice(d.name.as_bytes());
        b.extend_from_slice(d.doc.as_bytes());
        b.resize(pad8(b.len()), 0);
    }
    Ok(b)
}

/// The writer's side: the mapped file, shared by the whole server. Cheap
/// to clone. Varnish's `VSC_*_New` family.
#[derive(Clone)]
pub struct Vsc {
    inner: Arc<Shared>,
}

struct Shared {
    _map: MmapMut,
    base: *mut u8,
    size: usize,
    path: PathBuf,
    started: Instant,
    alloc: Mutex<Alloc>,
}

/// Free space of the data area; only segment creation and removal touch it.
struct Alloc {
    /// Everything from here to the end of the file is free.
    top: usize,
    /// Freed blocks below `top`: (offset, length), sorted, merged.
    free: Vec<(usize, usize)>,
    /// The serial number of the next segment.
    serial: u64,
}

impl Alloc {
    fn take(&mut self, len: usize, size: usize) -> Option<usize> {
        if let Some(i) = self.free.iter().position(|&(_, l)| l >= len) {
            let (off, l) = self.free[i];
            if l == len {
                self.free.remove(i);
            } else {
                self.free[i] = (off + len, l - len);
            }
            return Some(off);
        }
        if self.top + len > size {
            return None;
        }
        self.top += len;
        Some(self.top - len)
    }

    fn give(&mut self, off: usize, len: usize) {
        let i = self.free.partition_point(|&(o, _)| o < off);
        self.free.insert(i, (off, len));
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.free.len());
        for &(o, l) in &self.free {
            match merged.last_mut() {
                Some((mo, ml)) if *mo + *ml == o => *ml += l,
                _ => merged.push((o, l)),
            }
        }
        if let Some(&(o, l)) = merged.last() {
            if o + l == self.top {
                self.top = o;
                merged.pop();
            }
        }
        self.free = merged;
    }
}

// SAFETY: `base` points into `_map`, which lives as long as `Shared`. Values
// are only touched as atomics; blocks and slots are written under `alloc`'s
// mutex, inside the generation's odd window or before they are published.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`.
unsafe impl Sync for Shared {}

impl Shared {
    fn atomic(&self, off: usize) -> &AtomicU64 {
        assert!(off & 7 == 0 && off + 8 <= self.size);
        // SAFETY: in bounds, 8-aligned (the map is page aligned), and the
        // memory lives as long as `self`.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    fn slot(&self, i: usize, field: usize) -> &AtomicU64 {
        self.atomic(HEADER_SIZE + i * SLOT_SIZE + field * 8)
    }

    /// Opens the generation's odd window.
    fn begin_change(&self) {
        self.atomic(OFF_GEN).fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Closes it: readers that saw the old generation read again.
    fn end_change(&self) {
        self.atomic(OFF_GEN).fetch_add(1, Ordering::Release);
    }

    fn names_taken(&self, group: &str, ident: &str) -> bool {
        // Under the mutex, so the directory is stable and ours to read.
        let Ok(points) = snapshot(self.base, self.size) else { return false };
        points.iter().any(|p| p.group == group && p.ident == ident)
    }

    fn remove(&self, slot: usize, off: usize, len: usize) {
        let mut alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        self.begin_change();
        self.slot(slot, 0).store(0, Ordering::Relaxed);
        self.slot(slot, 1).store(0, Ordering::Relaxed);
        self.end_change();
        alloc.give(off, len);
    }
}

impl Vsc {
    /// Makes a new counters file of [`DEFAULT_SIZE`] in `dir` (replacing any
    /// old one, which readers then see as recreated) and maps it.
    pub fn create(dir: &Path) -> io::Result<Vsc> {
        Vsc::create_sized(dir, DEFAULT_SIZE)
    }

    /// As [`Vsc::create`], with a file of `size` bytes (at least the header
    /// and directory plus 64k).
    ///
    /// The file is built under a temporary name and renamed into place, so a
    /// reader never maps a half-made header.
    pub fn create_sized(dir: &Path, size: usize) -> io::Result<Vsc> {
        let size = pad8(size.max(DATA_START + (64 << 10)));
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp)?;
        file.set_len(size as u64)?;
        // SAFETY: the file was just made by us; other processes only ever
        // map it read-only.
        let mut map = unsafe { MmapMut::map_mut(&file)? };
        map[0..8].copy_from_slice(&MAGIC);
        map[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        map[OFF_HDRSIZE..OFF_HDRSIZE + 4].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        map[OFF_SIZE..OFF_SIZE + 8].copy_from_slice(&(size as u64).to_le_bytes());
        map[OFF_IDENT..OFF_IDENT + 8].copy_from_slice(&new_ident().to_le_bytes());
        map[OFF_NSLOTS..OFF_NSLOTS + 4].copy_from_slice(&(DIR_SLOTS as u32).to_le_bytes());
        map[OFF_DATA..OFF_DATA + 8].copy_from_slice(&(DATA_START as u64).to_le_bytes());
        fs::rename(&tmp, &path)?;
        let base = map.as_mut_ptr();
        Ok(Vsc {
            inner: Arc::new(Shared {
                _map: map,
                base,
                size,
                path,
                started: Instant::now(),
                alloc: Mutex::new(Alloc { top: DATA_START, free: Vec::new(), serial: 1 }),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whole seconds since the file was made: what the server's once-a-second
    /// tick stores in `MAIN.uptime` (Varnish's `VSC_C_main->uptime`).
    pub fn uptime(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Adds a segment `group.ident` with the counters `defs`, all zero
    /// (Varnish's `VRT_VSC_Alloc`, which modules call through their
    /// generated `.vsc` code). The segment is removed when the returned
    /// handle is dropped. A second live segment of the same name is refused
    /// (`AlreadyExists`); a full file is `OutOfMemory`.
    pub fn segment(&self, group: &str, ident: &str, defs: &[CounterDef]) -> io::Result<Segment> {
        if group.contains('.') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a counter group's name has no dot"));
        }
        let sh = &*self.inner;
        let desc = describe(group, ident, defs)?;
        let len = desc.len() + 8 * defs.len();
        let mut alloc = sh.alloc.lock().unwrap_or_else(|e| e.into_inner());
        if sh.names_taken(group, ident) {
            let name = if ident.is_empty() { group.to_string() } else { format!("{group}.{ident}") };
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("counters {name} exist already")));
        }
        let slot = (0..DIR_SLOTS)
            .find(|&i| sh.slot(i, 0).load(Ordering::Relaxed) == 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "no free counter segment slot"))?;
        let off = alloc
            .take(len, sh.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "the counters file is full"))?;
        // SAFETY: [off, off + len) is inside the file and ours alone: no
        // slot points at it, so no reader reads it as a segment and no handle
        // holds its values.
        unsafe {
            std::ptr::copy_nonoverlapping(desc.as_ptr(), sh.base.add(off), desc.len());
            std::ptr::write_bytes(sh.base.add(off + desc.len()), 0, 8 * defs.len());
        }
        let serial = alloc.serial;
        alloc.serial += 1;
        sh.begin_change();
        sh.slot(slot, 1).store(len as u64, Ordering::Relaxed);
        sh.slot(slot, 2).store(serial, Ordering::Relaxed);
        sh.slot(slot, 0).store(off as u64, Ordering::Relaxed);
        sh.end_change();
        drop(alloc);
        let values = off + desc.len();
        let cells = (0..defs.len())
            .map(|i| Cell(NonNull::from(sh.atomic(values + 8 * i))))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Ok(Segment {
            cells,
            kinds: defs.iter().map(|d| d.kind).collect(),
            guard: Guard { vsc: self.inner.clone(), slot, off, len },
        })
    }

    /// The `MAIN` counters. Call once; keep the handle for the server's life.
    pub fn main(&self) -> io::Result<Main> {
        Ok(Main::from_segment(self.segment("MAIN", "", counters::MAIN)?))
    }

    /// The counters of the malloc storage `store` (`SMA.s0`, `SMA.Transient`).
    pub fn sma(&self, store: &str) -> io::Result<Sma> {
        Ok(Sma::from_segment(self.segment("SMA", store, counters::SMA)?))
    }

    /// The counters of backend `backend` of VCL `vcl` (`VBE.boot.default`);
    /// drop the handle at the VCL's discard.
    pub fn vbe(&self, vcl: &str, backend: &str) -> io::Result<Vbe> {
        Ok(Vbe::from_segment(self.segment("VBE", &format!("{vcl}.{backend}"), counters::VBE)?))
    }

    /// Every counter as it is now, as a reader in another process sees it.
    pub fn snapshot(&self) -> io::Result<Vec<Point>> {
        snapshot(self.inner.base, self.inner.size)
    }
}

/// One value in the map. Only reachable by reference through its segment's
/// handle, which keeps the map (and the segment) alive.
struct Cell(NonNull<AtomicU64>);

// SAFETY: the pointee is an atomic in a map that outlives every `Cell`
// (the segment's guard holds the map).
unsafe impl Send for Cell {}
// SAFETY: as for `Send`.
unsafe impl Sync for Cell {}

impl Cell {
    #[inline]
    fn atomic(&self) -> &AtomicU64 {
        // SAFETY: see the `Send` impl.
        unsafe { self.0.as_ref() }
    }
}

/// A counter: only grows (Varnish's `type: counter`). `stats.cache_hit.inc()`.
#[repr(transparent)]
pub struct Counter(Cell);

impl Counter {
    /// Adds one: one relaxed atomic add on the shared value.
    #[inline]
    pub fn inc(&self) {
        self.0.atomic().fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` (bytes, for the `*bytes` counters).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.atomic().fetch_add(n, Ordering::Relaxed);
    }

    /// Stores a value counted elsewhere (`MAIN.uptime` from the tick).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.atomic().store(v, Ordering::Relaxed);
    }

    /// The value now.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.atomic().load(Ordering::Relaxed)
    }
}

/// A gauge: a level that goes up and down (Varnish's `type: gauge`), such
/// as `n_object`. Like Varnish, a decrement below zero wraps; readers show
/// the raw value.
#[repr(transparent)]
pub struct Gauge(Cell);

impl Gauge {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.atomic().fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away.
    #[inline]
    pub fn dec(&self) {
        self.0.atomic().fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.atomic().fetch_add(n, Ordering::Relaxed);
    }

    /// Takes `n` away.
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.atomic().fetch_sub(n, Ordering::Relaxed);
    }

    /// Sets the level.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.atomic().store(v, Ordering::Relaxed);
    }

    /// The value now.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.atomic().load(Ordering::Relaxed)
    }
}

/// A bitmap (Varnish's `type: bitmap`): `VBE.*.happy`, the last 64 probe
/// results, newest in bit 0.
#[repr(transparent)]
pub struct Bitmap(Cell);

impl Bitmap {
    /// Sets all the bits.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.atomic().store(v, Ordering::Relaxed);
    }

    /// Shifts one probe result in at bit 0, as Varnish's prober does. The
    /// prober is the only writer, so load and store need no loop.
    #[inline]
    pub fn push(&self, good: bool) {
        let a = self.0.atomic();
        a.store((a.load(Ordering::Relaxed) << 1) | u64::from(good), Ordering::Relaxed);
    }

    /// The bits now.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.atomic().load(Ordering::Relaxed)
    }
}

/// Removes its segment from the directory when dropped.
struct Guard {
    vsc: Arc<Shared>,
    slot: usize,
    off: usize,
    len: usize,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.vsc.remove(self.slot, self.off, self.len);
    }
}

/// A segment made from a table given at run time: a module's counters
/// (issue 6; Varnish's VMOD `.vsc` files). Counters are found by their
/// index in the table given to [`Vsc::segment`].
pub struct Segment {
    cells: Box<[Cell]>,
    kinds: Box<[Kind]>,
    guard: Guard,
}

impl Segment {
    fn cell(&self, i: usize, kind: Kind) -> &Cell {
        assert_eq!(self.kinds[i], kind, "counter {i} of this segment is a {}", self.kinds[i].as_str());
        &self.cells[i]
    }

    /// Row `i`, a counter. Panics if row `i` is not one.
    pub fn counter(&self, i: usize) -> &Counter {
        let c = self.cell(i, Kind::Counter);
        // SAFETY: `Counter` is a transparent wrapper of `Cell`.
        unsafe { &*(c as *const Cell as *const Counter) }
    }

    /// Row `i`, a gauge. Panics if row `i` is not one.
    pub fn gauge(&self, i: usize) -> &Gauge {
        let c = self.cell(i, Kind::Gauge);
        // SAFETY: `Gauge` is a transparent wrapper of `Cell`.
        unsafe { &*(c as *const Cell as *const Gauge) }
    }

    /// Row `i`, a bitmap. Panics if row `i` is not one.
    pub fn bitmap(&self, i: usize) -> &Bitmap {
        let c = self.cell(i, Kind::Bitmap);
        // SAFETY: `Bitmap` is a transparent wrapper of `Cell`.
        unsafe { &*(c as *const Cell as *const Bitmap) }
    }

    /// How many counters the segment has.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// Expands a table of `lacquer_defs::counters` into a struct with one
/// public handle per row, named as the counter.
macro_rules! typed_segment {
    ($group:literal $ty:ident $slice:ident; $( $name:ident $kind:ident $level:ident $unit:ident $doc:literal; )*) => {
        #[doc = concat!("The `", $group, "` counters, one field per row of `lacquer_defs::counters::",
            stringify!($slice), "` (`stats.cache_hit.inc()`). Dropping it removes the segment.")]
        pub struct $ty {
            $( #[doc = $doc] pub $name: $kind, )*
            _guard: Guard,
        }

        impl $ty {
            fn from_segment(seg: Segment) -> $ty {
                let mut cells = seg.cells.into_vec().into_iter();
                $ty { $( $name: $kind(cells.next().expect("one value per row")), )* _guard: seg.guard }
            }
        }

        // A `Drop` impl forbids moving a handle out of the struct, so that no
        // handle outlives the segment it points into.
        impl Drop for $ty {
            fn drop(&mut self) {}
        }
    };
}

lacquer_defs::vsc_main!(typed_segment);
lacquer_defs::vsc_sma!(typed_segment);
lacquer_defs::vsc_vbe!(typed_segment);

/// One counter as a reader sees it (Varnish's `struct VSC_point`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// The full name: `MAIN.cache_hit`, `VBE.boot.default.req`.
    pub name: String,
    /// The group (`VBE`).
    pub group: String,
    /// The segment's identifier (`boot.default`; empty for MAIN).
    pub ident: String,
    /// The counter's own name (`req`).
    pub field: String,
    /// Counter, gauge or bitmap.
    pub kind: Kind,
    /// Info, diag or debug.
    pub level: Level,
    /// What it counts in.
    pub unit: Unit,
    /// The one-line description.
    pub doc: String,
    /// The value.
    pub value: u64,
    /// The segment's serial number: segments are listed in this order.
    pub serial: u64,
}

/// Reads every segment of the map at `base` (`size` bytes), retrying while
/// the directory changes under it.
fn snapshot(base: *const u8, size: usize) -> io::Result<Vec<Point>> {
    let at = |off: usize| -> &AtomicU64 {
        // SAFETY: callers check `off + 8 <= size`; 8-aligned in a page
        // aligned map that outlives this function.
        unsafe { &*(base.add(off) as *const AtomicU64) }
    };
    let mut tries = 0u32;
    loop {
        let g1 = at(OFF_GEN).load(Ordering::Acquire);
        if g1 & 1 == 0 {
            if let Some(points) = read_dir(base, size, &at) {
                fence(Ordering::Acquire);
                if at(OFF_GEN).load(Ordering::Relaxed) == g1 {
                    return Ok(points);
                }
            } else if at(OFF_GEN).load(Ordering::Relaxed) == g1 {
                return Err(invalid("the counters file is damaged"));
            }
        }
        tries += 1;
        if tries > 100 {
            std::thread::yield_now();
        }
        if tries > 100_000 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the counters never held still"));
        }
    }
}

/// One pass over the directory; `None` if something is out of bounds (the
/// caller then checks whether it raced with a change).
fn read_dir<'a>(base: *const u8, size: usize, at: &dyn Fn(usize) -> &'a AtomicU64) -> Option<Vec<Point>> {
    let mut segs = Vec::new();
    for i in 0..DIR_SLOTS {
        let s = HEADER_SIZE + i * SLOT_SIZE;
        let off = at(s).load(Ordering::Relaxed) as usize;
        if off == 0 {
            continue;
        }
        let len = at(s + 8).load(Ordering::Relaxed) as usize;
        let serial = at(s + 16).load(Ordering::Relaxed);
        if off < DATA_START || off & 7 != 0 || len > size || off > size - len {
            return None;
        }
        segs.push((serial, off, len));
    }
    segs.sort_unstable();
    let mut points = Vec::new();
    for (serial, off, len) in segs {
        let mut b = vec![0u8; len];
        // SAFETY: checked to lie inside the map above. The writer may change
        // these bytes meanwhile only in a generation the caller rejects.
        unsafe { std::ptr::copy_nonoverlapping(base.add(off), b.as_mut_ptr(), len) };
        let glen = rd_u16(&b, 0)? as usize;
        let ilen = rd_u16(&b, 2)? as usize;
        let n = rd_u32(&b, 4)? as usize;
        let group = String::from_utf8_lossy(b.get(8..8 + glen)?).into_owned();
        let ident = String::from_utf8_lossy(b.get(8 + glen..8 + glen + ilen)?).into_owned();
        let mut p = pad8(8 + glen + ilen);
        let mut defs = Vec::with_capacity(n.min(len / 8));
        for _ in 0..n {
            let h = b.get(p..p + 8)?;
            let (kind, level, unit) =
                (Kind::from_char(h[0] as char)?, Level::from_index(h[1])?, Unit::from_char(h[2] as char)?);
            let nlen = rd_u16(&b, p + 4)? as usize;
            let dlen = rd_u16(&b, p + 6)? as usize;
            let field = String::from_utf8_lossy(b.get(p + 8..p + 8 + nlen)?).into_owned();
            let doc = String::from_utf8_lossy(b.get(p + 8 + nlen..p + 8 + nlen + dlen)?).into_owned();
            p = pad8(p + 8 + nlen + dlen);
            defs.push((field, kind, level, unit, doc));
        }
        if p + 8 * n > len {
            return None;
        }
        for (i, (field, kind, level, unit, doc)) in defs.into_iter().enumerate() {
            let value = at(off + p + 8 * i).load(Ordering::Relaxed);
            let name = match ident.is_empty() {
                true => format!("{group}.{field}"),
                false => format!("{group}.{ident}.{field}"),
            };
            points.push(Point {
                name,
                group: group.clone(),
                ident: ident.clone(),
                field,
                kind,
                level,
                unit,
                doc,
                value,
                serial,
            });
        }
    }
    Some(points)
}

/// Reads the counters of a server from another process (the reading half of
/// Varnish's `libvarnishapi` VSC). Maps the file read-only.
pub struct VscReader {
    path: PathBuf,
    map: Mmap,
    inode: (u64, u64),
    ident: u64,
}

impl VscReader {
    /// Opens `<dir>/_.vsc`.
    pub fn open(dir: &Path) -> io::Result<VscReader> {
        let path = dir.join(FILE_NAME);
        let file = fs::File::open(&path)?;
        let md = file.metadata()?;
        // SAFETY: mapped read-only; the writer only ever changes values with
        // atomics and the directory under the generation protocol.
        let map = unsafe { Mmap::map(&file)? };
        if map.len() < DATA_START || map[0..8] != MAGIC {
            return Err(invalid("not a Lacquer counters file"));
        }
        if rd_u32(&map, OFF_VERSION) != Some(VERSION) {
            return Err(invalid("counters file of another layout version"));
        }
        if rd_u32(&map, OFF_HDRSIZE) != Some(HEADER_SIZE as u32)
            || rd_u32(&map, OFF_NSLOTS) != Some(DIR_SLOTS as u32)
            || rd_u64(&map, OFF_SIZE) != Some(map.len() as u64)
        {
            return Err(invalid("the counters file is damaged"));
        }
        let ident = rd_u64(&map, OFF_IDENT).unwrap_or(0);
        Ok(VscReader { path, map, inode: (md.dev(), md.ino()), ident })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the server made a new file since this one was opened.
    pub fn replaced(&self) -> bool {
        match fs::metadata(&self.path) {
            Ok(md) => (md.dev(), md.ino()) != self.inode,
            Err(_) => false,
        }
    }

    /// The generation: it moves whenever a segment is added or removed.
    pub fn generation(&self) -> u64 {
        // SAFETY: the header lies inside the map, 8-aligned.
        unsafe { &*(self.map.as_ptr().add(OFF_GEN) as *const AtomicU64) }.load(Ordering::Acquire)
    }

    /// Every counter as it is now, in segment order then table order. When
    /// the server made a new file, reads that one instead.
    pub fn snapshot(&mut self) -> io::Result<Vec<Point>> {
        if self.replaced() {
            if let Ok(r) = VscReader::open(self.path.parent().unwrap_or(Path::new("."))) {
                if r.ident != self.ident || r.inode != self.inode {
                    *self = r;
                }
            }
        }
        snapshot(self.map.as_ptr(), self.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) struct Tmp(pub PathBuf);

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

    pub(crate) fn tmpdir(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("lacquer-vsc-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    fn value(points: &[Point], name: &str) -> Option<u64> {
        points.iter().find(|p| p.name == name).map(|p| p.value)
    }

    #[test]
    fn layout_of_header_and_first_segment() {
        let d = tmpdir("layout");
        let vsc = Vsc::create_sized(&d, 0).unwrap();
        let defs =
            [CounterDef { name: "hits", kind: Kind::Counter, level: Level::Info, unit: Unit::Count, doc: "Hits" }];
        let kv = vsc.segment("KV", "a", &defs).unwrap();
        kv.counter(0).add(5);
        let b = fs::read(d.join(FILE_NAME)).unwrap();
        assert_eq!(&b[0..8], b"LQVSC\0\0\0");
        assert_eq!(rd_u32(&b, 8), Some(1));
        assert_eq!(rd_u32(&b, 12), Some(4096));
        assert_eq!(rd_u64(&b, 16), Some(b.len() as u64));
        assert_eq!(rd_u64(&b, 32), Some(2)); // one change, closed
        assert_eq!(rd_u32(&b, 40), Some(4096));
        assert_eq!(rd_u64(&b, 48), Some(DATA_START as u64));
        // Slot 0: offset, length, serial.
        assert_eq!(rd_u64(&b, 4096), Some(DATA_START as u64));
        assert_eq!(rd_u64(&b, 4096 + 8), Some(8 + 8 + 8 + 8 + 8));
        assert_eq!(rd_u64(&b, 4096 + 16), Some(1));
        let blk = &b[DATA_START..DATA_START + 40];
        assert_eq!(
            blk,
            b"\x02\x00\x01\x00\x01\x00\x00\x00KVa\0\0\0\0\0c\0i\0\x04\x00\x04\x00hitsHits\x05\0\0\0\0\0\0\0".as_slice()
        );
        let mut r = VscReader::open(&d).unwrap();
        let p = r.snapshot().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "KV.a.hits");
        assert_eq!(
            (p[0].kind, p[0].level, p[0].unit, p[0].doc.as_str(), p[0].value),
            (Kind::Counter, Level::Info, Unit::Count, "Hits", 5)
        );
    }

    #[test]
    fn named_handles_and_full_names() {
        let d = tmpdir("named");
        let vsc = Vsc::create(&d).unwrap();
        let main = vsc.main().unwrap();
        let s0 = vsc.sma("s0").unwrap();
        let be = vsc.vbe("boot", "default").unwrap();
        main.cache_hit.inc();
        main.cache_hit.inc();
        main.n_object.inc();
        main.n_object.inc();
        main.n_object.dec();
        main.s_resp_bodybytes.add(1000);
        s0.g_space.set(1 << 20);
        be.happy.push(true);
        be.happy.push(false);
        be.req.inc();
        let p = VscReader::open(&d).unwrap().snapshot().unwrap();
        assert_eq!(p.len(), counters::MAIN.len() + counters::SMA.len() + counters::VBE.len());
        assert_eq!(p[0].name, "MAIN.uptime");
        assert_eq!(value(&p, "MAIN.cache_hit"), Some(2));
        assert_eq!(value(&p, "MAIN.n_object"), Some(1));
        assert_eq!(value(&p, "MAIN.s_resp_bodybytes"), Some(1000));
        assert_eq!(value(&p, "SMA.s0.g_space"), Some(1 << 20));
        assert_eq!(value(&p, "VBE.boot.default.happy"), Some(0b10));
        assert_eq!(value(&p, "VBE.boot.default.req"), Some(1));
        let req = p.iter().find(|p| p.name == "VBE.boot.default.req").unwrap();
        assert_eq!((req.group.as_str(), req.ident.as_str(), req.field.as_str()), ("VBE", "boot.default", "req"));
        assert_eq!(vsc.main().err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
    }

    #[test]
    fn segments_come_and_go_and_readers_notice() {
        let d = tmpdir("addrm");
        let vsc = Vsc::create(&d).unwrap();
        let main = vsc.main().unwrap();
        let mut r = VscReader::open(&d).unwrap();
        let g0 = r.generation();
        let a = vsc.vbe("v1", "a").unwrap();
        let b = vsc.vbe("v1", "b").unwrap();
        a.req.add(3);
        b.req.add(4);
        assert_eq!(r.generation(), g0 + 4);
        let p = r.snapshot().unwrap();
        assert_eq!(value(&p, "VBE.v1.a.req"), Some(3));
        assert_eq!(value(&p, "VBE.v1.b.req"), Some(4));
        drop(a);
        assert_eq!(r.generation(), g0 + 6);
        let p = r.snapshot().unwrap();
        assert_eq!(value(&p, "VBE.v1.a.req"), None);
        assert_eq!(value(&p, "VBE.v1.b.req"), Some(4));
        // The freed space is reused, zeroed, and the new segment is listed
        // after the older ones.
        let c = vsc.vbe("v2", "a").unwrap();
        assert_eq!(c.req.get(), 0);
        let p = r.snapshot().unwrap();
        let names: Vec<_> = p.iter().filter(|p| p.field == "req").map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["VBE.v1.b.req", "VBE.v2.a.req"]);
        drop((b, c));
        main.cache_miss.inc();
        let p = r.snapshot().unwrap();
        assert_eq!(p.len(), counters::MAIN.len());
        // Everything freed merges back: the next segment starts at the
        // beginning of the free space again.
        let top = vsc.inner.alloc.lock().unwrap().top;
        let e = vsc.vbe("v3", "a").unwrap();
        assert_eq!(e._guard.off, top);
    }

    #[test]
    fn a_new_file_is_noticed() {
        let d = tmpdir("reopen");
        let vsc = Vsc::create(&d).unwrap();
        let m = vsc.main().unwrap();
        m.cache_hit.add(7);
        let mut r = VscReader::open(&d).unwrap();
        assert_eq!(value(&r.snapshot().unwrap(), "MAIN.cache_hit"), Some(7));
        let vsc2 = Vsc::create(&d).unwrap();
        let m2 = vsc2.main().unwrap();
        m2.cache_hit.inc();
        assert!(r.replaced());
        assert_eq!(value(&r.snapshot().unwrap(), "MAIN.cache_hit"), Some(1));
        assert!(!r.replaced());
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let d = tmpdir("threads");
        let vsc = Vsc::create(&d).unwrap();
        let main = Arc::new(vsc.main().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = main.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        m.client_req.inc();
                        m.s_resp_bodybytes.add(3);
                    }
                })
            })
            .collect();
        // Segments come and go meanwhile; readers keep getting whole views.
        let churn = {
            let vsc = vsc.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let b = vsc.vbe("v", &format!("b{i}")).unwrap();
                    b.req.inc();
                }
            })
        };
        let mut r = VscReader::open(&d).unwrap();
        for _ in 0..50 {
            let p = r.snapshot().unwrap();
            assert!(p.len() == counters::MAIN.len() || p.len() == counters::MAIN.len() + counters::VBE.len());
        }
        for t in threads {
            t.join().unwrap();
        }
        churn.join().unwrap();
        let p = r.snapshot().unwrap();
        assert_eq!(value(&p, "MAIN.client_req"), Some(400_000));
        assert_eq!(value(&p, "MAIN.s_resp_bodybytes"), Some(1_200_000));
    }

    #[test]
    fn full_file_and_bad_names_are_errors() {
        let d = tmpdir("full");
        let vsc = Vsc::create_sized(&d, 0).unwrap();
        let mut kept = Vec::new();
        let err = loop {
            match vsc.vbe("v", &format!("backend{}", kept.len())) {
                Ok(b) => kept.push(b),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(kept.len() > 10);
        kept.pop();
        assert!(vsc.vbe("v", "again").is_ok());
        assert_eq!(vsc.segment("A.B", "", &[]).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    }
}
