//! The stable C ABI between Lacquer and its modules.
//!
//! A module compiled elsewhere is loaded from a shared library and trusted
//! only as far as this crate's types let it be: the first thing Lacquer reads
//! is the [`ModuleDescriptor`] exported under [`DESCRIPTOR_SYMBOL`], whose
//! leading fields (magic, ABI version, API level) are laid out so that they
//! can be read and checked before anything else in the library is touched —
//! they protect the rest.
//!
//! This crate has no dependencies and changes rarely. Its version follows
//! one rule (Varnish's VRT rule): adding something bumps [`ABI_MINOR`];
//! removing or changing anything bumps [`ABI_MAJOR`] and resets the minor.
//!
//! # Changelog
//!
//! - 1.0: the descriptor header, API levels and VCL value type codes. The
//!   host callback table and value layouts arrive with the module system.
//! - 1.1: value layouts ([`Value`] and its parts), the descriptor's entry
//!   table and spec length ([`Entry`], [`ModuleDescriptor::entries`]), the
//!   host callback table ([`HostTable`]) and the call context ([`CallCtx`]).
//! - 1.2: at the end of [`HostTable`]: `log_global`, `vcl_name`, `param`
//!   and `object_name` (host services that reached linked-in modules
//!   only), and the named
//!   hooks between modules, `hook_provide` (with [`Hook`], a provider) and
//!   `hook_call`. A 1.1 module reads the table as before; a 1.2 module
//!   checks [`HostTable::size`] before calling a 1.2 callback
//!   ([`HostTable::has`]).
//! - 1.3: at the end of [`HostTable`]: `ws_op` (the task's workspaces,
//!   [`WsOp`]) and `log_record` (a log record for any transaction); then
//!   `connection` (with [`ConnOut`]), `end_request` and `blocking`, so
//!   that a module loaded from a file can hand a client connection to
//!   another process as the linked-in `handoff` module does; and
//!   `vcl_syntax`. Results may be STRANDS (the list and its parts in the
//!   workspace) and STEVEDORE (the storage's name as a [`Str`], NULL for
//!   none), in the layouts their arguments have. Then `vcl_ref` and
//!   `vcl_unref` (a module's hold on its VCL).
//! - 1.4: at the end of [`HostTable`]: `proxy_tlvs` (the PROXY version 2
//!   header's TLVs, for `proxy`) and `peer_cred` (the Unix domain socket
//!   peer's credentials, for `unix`), and `purge` (for `purge`).
//!
//! # How a call crosses
//!
//! The host finds the [`Entry`] for the call site, builds a [`CallCtx`]
//! (its own opaque pointer plus its [`HostTable`]), lays the arguments out
//! as [`Value`]s in the order of the spec's arguments (private-state
//! arguments and left-out optional ones as [`Value::absent`]) and calls
//! [`Entry::call`]. The module writes its result into `out`; memory the
//! result points to comes from [`HostTable::ws_alloc`] and lives until the
//! host says otherwise (the end of the task). A non-zero return is a
//! failure whose message the module gave to [`HostTable::fail`].

mod host;
mod value;

pub use host::*;
pub use value::*;

/// The ABI major version: a module built against another major is refused.
pub const ABI_MAJOR: u32 = 1;
/// The ABI minor version: a module built against a newer minor is refused.
pub const ABI_MINOR: u32 = 4;

/// The name of the symbol every module library exports.
pub const DESCRIPTOR_SYMBOL: &str = "LACQUER_MODULE_DESCRIPTOR";

/// The first bytes of every descriptor: `b"LCQRMOD1"` as a little-endian u64.
pub const DESCRIPTOR_MAGIC: u64 = u64::from_le_bytes(*b"LCQRMOD1");

/// How much of Lacquer a module depends on (Varnish's "API spaces").
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiLevel {
    /// Only this C ABI: accepted when the major matches and the module's
    /// minor is not newer than the host's.
    Stable = 1,
    /// Also the versioned internal tables (storage, transports), checked the
    /// same way on their own version.
    Package = 2,
    /// Anything: accepted only when the host's build hash matches exactly.
    Source = 3,
}

impl ApiLevel {
    /// Decodes a level read from a descriptor.
    pub fn from_u32(v: u32) -> Option<ApiLevel> {
        match v {
            1 => Some(ApiLevel::Stable),
            2 => Some(ApiLevel::Package),
            3 => Some(ApiLevel::Source),
            _ => None,
        }
    }

    /// The level's name, as module specs and messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiLevel::Stable => "stable",
            ApiLevel::Package => "package",
            ApiLevel::Source => "source",
        }
    }
}

/// The codes of the VCL types as they cross the ABI ([`Value::ty`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum TypeCode {
    Void = 0,
    Acl = 1,
    Backend = 2,
    Blob = 3,
    Body = 4,
    Bool = 5,
    Bytes = 6,
    Duration = 7,
    Enum = 8,
    Header = 9,
    Http = 10,
    Int = 11,
    Ip = 12,
    Probe = 13,
    Real = 14,
    Stevedore = 15,
    String = 16,
    Strands = 17,
    Sub = 18,
    Time = 19,
}

impl TypeCode {
    /// Every code, in numeric order.
    pub const ALL: [TypeCode; 20] = [
        TypeCode::Void,
        TypeCode::Acl,
        TypeCode::Backend,
        TypeCode::Blob,
        TypeCode::Body,
        TypeCode::Bool,
        TypeCode::Bytes,
        TypeCode::Duration,
        TypeCode::Enum,
        TypeCode::Header,
        TypeCode::Http,
        TypeCode::Int,
        TypeCode::Ip,
        TypeCode::Probe,
        TypeCode::Real,
        TypeCode::Stevedore,
        TypeCode::String,
        TypeCode::Strands,
        TypeCode::Sub,
        TypeCode::Time,
    ];

    /// Decodes a code read from a [`Value`].
    pub fn from_u32(v: u32) -> Option<TypeCode> {
        TypeCode::ALL.get(v as usize).copied()
    }
}

/// The fixed head of a module descriptor. Field order is part of the ABI
/// and never changes: magic, then versions, then everything else.
#[repr(C)]
#[derive(Debug)]
pub struct ModuleDescriptor {
    /// [`DESCRIPTOR_MAGIC`].
    pub magic: u64,
    /// The [`ABI_MAJOR`] the module was built against.
    pub abi_major: u32,
    /// The [`ABI_MINOR`] the module was built against.
    pub abi_minor: u32,
    /// An [`ApiLevel`] as u32.
    pub api_level: u32,
    /// Reserved; zero.
    pub reserved: u32,
    /// The module's name, NUL-terminated UTF-8.
    pub name: *const u8,
    /// The module's interface spec (JSON), NUL-terminated UTF-8.
    pub spec: *const u8,
    /// For [`ApiLevel::Source`]: the host build hash it was built against,
    /// NUL-terminated; null at the other levels.
    pub build_hash: *const u8,
    // Since 1.1: everything below is read only after the head was checked.
    /// The length of `spec` in bytes, without its NUL.
    pub spec_len: usize,
    /// The entry points, one per function, constructor, method and
    /// destructor of the spec (see [`Entry`]).
    pub entries: *const Entry,
    /// How many [`Entry`]s `entries` points to.
    pub n_entries: usize,
}

// SAFETY: a descriptor is immutable static data: its pointers point to
// static strings and tables, read by any thread.
unsafe impl Sync for ModuleDescriptor {}

/// Why a descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// Not a Lacquer module descriptor.
    BadMagic,
    /// Built against another ABI major.
    Major { module: u32, host: u32 },
    /// Built against a newer ABI minor than the host has.
    Minor { module: u32, host: u32 },
    /// An API level this host does not know.
    Level(u32),
}

impl std::fmt::Display for VersionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionError::BadMagic => write!(f, "not a Lacquer module (bad descriptor magic)"),
            VersionError::Major { module, host } => write!(
                f,
                "module built for ABI {module}.x, this Lacquer has ABI {host}.{ABI_MINOR}: rebuild the module against this Lacquer"
            ),
            VersionError::Minor { module, host } => write!(
                f,
                "module built for ABI {ABI_MAJOR}.{module}, newer than this Lacquer's {ABI_MAJOR}.{host}: upgrade Lacquer or rebuild the module"
            ),
            VersionError::Level(l) => write!(f, "unknown API level {l}"),
        }
    }
}

/// Checks a descriptor's head against this host's ABI (the stable-level
/// rule; the package and source levels add their own checks on top).
pub fn check_version(magic: u64, major: u32, minor: u32, level: u32) -> Result<ApiLevel, VersionError> {
    if magic != DESCRIPTOR_MAGIC {
        return Err(VersionError::BadMagic);
    }
    if major != ABI_MAJOR {
        return Err(VersionError::Major { module: major, host: ABI_MAJOR });
    }
    if minor > ABI_MINOR {
        return Err(VersionError::Minor { module: minor, host: ABI_MINOR });
    }
    ApiLevel::from_u32(level).ok_or(VersionError::Level(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() {
        assert_eq!(check_version(DESCRIPTOR_MAGIC, ABI_MAJOR, ABI_MINOR, 1), Ok(ApiLevel::Stable));
        assert_eq!(
            check_version(DESCRIPTOR_MAGIC, ABI_MAJOR + 1, 0, 1),
            Err(VersionError::Major { module: ABI_MAJOR + 1, host: ABI_MAJOR })
        );
        assert_eq!(
            check_version(DESCRIPTOR_MAGIC, ABI_MAJOR, ABI_MINOR + 1, 1),
            Err(VersionError::Minor { module: ABI_MINOR + 1, host: ABI_MINOR })
        );
        assert_eq!(check_version(0, ABI_MAJOR, 0, 1), Err(VersionError::BadMagic));
        assert_eq!(check_version(DESCRIPTOR_MAGIC, ABI_MAJOR, 0, 9), Err(VersionError::Level(9)));
    }

    #[test]
    fn descriptor_head_layout_is_fixed() {
        assert_eq!(std::mem::offset_of!(ModuleDescriptor, magic), 0);
        assert_eq!(std::mem::offset_of!(ModuleDescriptor, abi_major), 8);
        assert_eq!(std::mem::offset_of!(ModuleDescriptor, abi_minor), 12);
        assert_eq!(std::mem::offset_of!(ModuleDescriptor, api_level), 16);
        // 1.1's additions come after the 1.0 fields.
        assert!(std::mem::offset_of!(ModuleDescriptor, spec_len) > std::mem::offset_of!(ModuleDescriptor, build_hash));
        assert!(std::mem::offset_of!(ModuleDescriptor, n_entries) > std::mem::offset_of!(ModuleDescriptor, entries));
    }

    #[test]
    fn the_host_table_grows_at_its_end() {
        use std::mem::{offset_of, size_of};
        let ptr = size_of::<usize>();
        // 1.1's table: `size` then nineteen callbacks, in their order.
        assert_eq!(offset_of!(HostTable, size), 0);
        assert_eq!(offset_of!(HostTable, method), ptr);
        assert_eq!(offset_of!(HostTable, ban), 19 * ptr);
        assert_eq!(HostTable::SIZE_1_1, 20 * ptr);
        // 1.2's callbacks come after, and a 1.1 table holds none of them.
        let added = [
            offset_of!(HostTable, log_global),
            offset_of!(HostTable, vcl_name),
            offset_of!(HostTable, param),
            offset_of!(HostTable, object_name),
            offset_of!(HostTable, hook_provide),
            offset_of!(HostTable, hook_call),
        ];
        for (i, off) in added.into_iter().enumerate() {
            assert_eq!(off, HostTable::SIZE_1_1 + i * ptr);
            assert!(!HostTable::has(HostTable::SIZE_1_1, off));
            assert!(HostTable::has(size_of::<HostTable>(), off));
        }
        assert!(HostTable::has(HostTable::SIZE_1_1, offset_of!(HostTable, ban)));
        assert_eq!(HostTable::SIZE_1_2, HostTable::SIZE_1_1 + added.len() * ptr);
        // 1.3's come after 1.2's, and a 1.2 table holds none of them.
        let added_1_3 = [
            offset_of!(HostTable, ws_op),
            offset_of!(HostTable, log_record),
            offset_of!(HostTable, connection),
            offset_of!(HostTable, end_request),
            offset_of!(HostTable, blocking),
            offset_of!(HostTable, vcl_syntax),
            offset_of!(HostTable, vcl_ref),
            offset_of!(HostTable, vcl_unref),
        ];
        for (i, off) in added_1_3.into_iter().enumerate() {
            assert_eq!(off, HostTable::SIZE_1_2 + i * ptr);
            assert!(!HostTable::has(HostTable::SIZE_1_2, off));
            assert!(HostTable::has(size_of::<HostTable>(), off));
        }
        assert_eq!(HostTable::SIZE_1_3, HostTable::SIZE_1_2 + added_1_3.len() * ptr);
        // 1.4's come after 1.3's.
        let added_1_4 =
            [offset_of!(HostTable, proxy_tlvs), offset_of!(HostTable, peer_cred), offset_of!(HostTable, purge)];
        for (i, off) in added_1_4.into_iter().enumerate() {
            assert_eq!(off, HostTable::SIZE_1_3 + i * ptr);
            assert!(!HostTable::has(HostTable::SIZE_1_3, off));
        }
        assert_eq!(size_of::<HostTable>(), HostTable::SIZE_1_3 + added_1_4.len() * ptr);
    }

    #[test]
    fn workspace_codes_round_trip() {
        for w in 0..=4 {
            assert_eq!(WsWhich::from_u32(w).map(|w| w as u32), Some(w));
        }
        for o in 0..=7 {
            assert_eq!(WsOp::from_u32(o).map(|o| o as u32), Some(o));
        }
        assert_eq!(WsWhich::from_u32(5), None);
        assert_eq!(WsOp::from_u32(8), None);
    }

    #[test]
    fn codes_round_trip() {
        for t in TypeCode::ALL {
            assert_eq!(TypeCode::from_u32(t as u32), Some(t));
        }
        for k in 1..=4 {
            assert_eq!(EntryKind::from_u32(k).map(|k| k as u32), Some(k));
        }
        for s in 1..=5 {
            assert_eq!(PrivScope::from_u32(s).map(|s| s as u32), Some(s));
        }
        for h in 1..=5 {
            assert_eq!(Http::from_u32(h).map(|h| h as u32), Some(h));
        }
        assert!(Value::absent().is_absent() && Value::null(TypeCode::String).is_null());
    }
}
