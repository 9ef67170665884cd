//! The run-time side of VCL's ACLs: the entries VCC has resolved, put in
//! Varnish's order, and the `client.ip ~ acl` test.
//!
//! Varnish 7.1 sorts an ACL's entries so that of two entries where one
//! contains the other the narrower comes first, and the first entry that
//! contains the address decides: the most specific entry wins, a negated
//! one (`!"10.1.0.0"/16`) meaning "not in the ACL", and an address no entry
//! contains is not in it. The address family is part of the match: IPv4
//! entries match only IPv4 addresses and IPv6 entries only IPv6 ones, so an
//! IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) matches `"::ffff:0:0"/96`
//! but not `"10.0.0.0"/8`. Scope ids play no part.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::BitAnd;

/// One ACL entry as VCC resolved it: an address, already masked to its
/// first `bits` bits, and whether it is negated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// The address, with every bit past `bits` zero.
    pub addr: IpAddr,
    /// The length of the prefix: 0–32 for IPv4, 0–128 for IPv6.
    pub bits: u8,
    /// Whether the entry excludes the addresses it contains (`!`).
    pub negated: bool,
    /// Which of the ACL's labels (`AclDef::labels`) names the entry as
    /// written, for `+log`.
    pub label: u32,
}

impl AclEntry {
    /// The entry's family code in VCC's sort (`AF_INET` before `AF_INET6`),
    /// and its address as the leading bits of a `u128`.
    fn key(&self) -> (u8, u128) {
        match self.addr {
            IpAddr::V4(a) => (2, u128::from(u32::from(a)) << 96),
            IpAddr::V6(a) => (10, u128::from(a)),
        }
    }

    /// Whether `addr` lies in this entry's prefix, negated or not.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => u32::from(a) & mask_v4(self.bits) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(a)) => u128::from(a) & mask_v6(self.bits) == u128::from(net),
            _ => false,
        }
    }
}

/// VCC's order of ACL entries (`vcl_acl_cmp`): by family, then by address
/// over the shorter of the two prefixes, then the longer prefix first.
/// Entries that compare equal are the same prefix.
fn varnish_order(a: &AclEntry, b: &AclEntry) -> Ordering {
    let (fa, xa) = a.key();
    let (fb, xb) = b.key();
    let common = mask_v6(a.bits.min(b.bits));
    fa.cmp(&fb).then((xa & common).cmp(&(xb & common))).then(b.bits.cmp(&a.bits))
}

/// The netmask of a `bits`-long IPv4 prefix; lengths past 32 count as 32.
fn mask_v4(bits: u8) -> u32 {
    match bits {
        0 => 0,
        b if b >= 32 => u32::MAX,
        b => u32::MAX << (32 - b),
    }
}

/// The netmask of a `bits`-long IPv6 prefix; lengths past 128 count as 128.
fn mask_v6(bits: u8) -> u128 {
    match bits {
        0 => 0,
        b if b >= 128 => u128::MAX,
        b => u128::MAX << (128 - b),
    }
}

/// `addr` with every bit past the first `bits` cleared, as VCC fixes an
/// entry such as `"10.1.2.3"/8` (it warns `Address/Netmask mismatch,
/// changed to 10.0.0.0/8`, or refuses it under `+pedantic`).
pub fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(bits))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(bits))),
    }
}

/// The prefixes of one length in one family: the netmask, and each
/// prefix with the index of its entry, sorted by prefix for a binary
/// search.
#[derive(Clone, Debug)]
struct Level<T> {
    mask: T,
    prefixes: Vec<(T, usize)>,
}

/// One family's entries, longest prefixes first.
#[derive(Clone, Debug)]
struct Table<T> {
    levels: Vec<Level<T>>,
}

impl<T: Copy + Ord + BitAnd<Output = T>> Table<T> {
    /// Builds the table from (netmask, prefix length, prefix, entry
    /// index), with no two items of the same length and prefix.
    fn new(mut items: Vec<(T, u8, T, usize)>) -> Table<T> {
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        let mut levels: Vec<Level<T>> = Vec::new();
        let mut last_bits = None;
        for (mask, bits, prefix, index) in items {
            if last_bits != Some(bits) {
                last_bits = Some(bits);
                levels.push(Level { mask, prefixes: Vec::new() });
            }
            if let Some(level) = levels.last_mut() {
                level.prefixes.push((prefix, index));
            }
        }
        Table { levels }
    }

    /// The entry index of the longest prefix that contains `addr`, if any.
    fn lookup(&self, addr: T) -> Option<usize> {
        self.levels.iter().find_map(|level| {
            let key = addr & level.mask;
            level.prefixes.binary_search_by(|probe| probe.0.cmp(&key)).ok().map(|i| level.prefixes[i].1)
        })
    }
}

/// A compiled ACL.
///
/// Matching costs one binary search per distinct prefix length in the
/// address's family, longest first, and allocates nothing.
#[derive(Clone, Debug)]
pub struct Acl {
    /// The entries in Varnish's order, duplicates dropped.
    entries: Vec<AclEntry>,
    /// The IPv4 entries, by prefix length.
    v4: Table<u32>,
    /// The IPv6 entries, by prefix length.
    v6: Table<u128>,
}

impl Acl {
    /// Builds an ACL from its entries in any order.
    ///
    /// Addresses are masked to their prefix and prefix lengths past the
    /// family's width cut to it (VCC has refused or fixed such entries
    /// already). Of two entries with the same prefix only the first is
    /// kept: VCC drops a repeat silently and refuses two that disagree
    /// (`Conflicting ACL entries`), so that check belongs to the compiler.
    pub fn new(entries: Vec<AclEntry>) -> Acl {
        let mut entries: Vec<AclEntry> = entries
            .into_iter()
            .map(|e| {
                let width = if e.addr.is_ipv4() { 32 } else { 128 };
                let bits = e.bits.min(width);
                AclEntry { addr: mask(e.addr, bits), bits, ..e }
            })
            .collect();
        // A stable sort keeps the first of equal entries first.
        entries.sort_by(varnish_order);
        entries.dedup_by(|later, first| varnish_order(later, first) == Ordering::Equal);

        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e.addr {
                IpAddr::V4(a) => v4.push((mask_v4(e.bits), e.bits, u32::from(a), i)),
                IpAddr::V6(a) => v6.push((mask_v6(e.bits), e.bits, u128::from(a), i)),
            }
        }
        Acl { entries, v4: Table::new(v4), v6: Table::new(v6) }
    }

    /// The entries in the order Varnish tries them.
    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// The `~` operator: whether `ip` is in the ACL.
    pub fn matches(&self, ip: IpAddr) -> bool {
        self.lookup(ip).is_some_and(|e| !e.negated)
    }

    /// The entry that decides for `ip`, the first in [`Acl::entries`] that
    /// contains it, for logging (`MATCH` or `NEG_MATCH` in VSL's `Acl`
    /// record); `None` is Varnish's `NO_MATCH`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&AclEntry> {
        let index = match ip {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        };
        index.map(|i| &self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(spec: &str) -> AclEntry {
        let (negated, spec) = match spec.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let (addr, bits) = match spec.split_once('/') {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => {
                let addr: IpAddr = spec.parse().unwrap();
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        AclEntry { addr, bits, negated, label: 0 }
    }

    fn acl(specs: &[&str]) -> Acl {
        Acl::new(specs.iter().map(|s| entry(s)).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Results read off varnishd 7.1.1 for `std.ip(ADDR, "0.0.0.0") ~ acl`
    /// with these ACLs (one column per ACL, in this order).
    #[test]
    fn matches_like_varnishd() {
        let acls = [
            acl(&["10.0.0.0/8", "!10.1.0.0/16", "10.1.2.0/24"]),
            acl(&["0.0.0.0/0"]),
            acl(&["::/0"]),
            acl(&["127.0.0.1"]),
            acl(&["::ffff:127.0.0.1"]),
            acl(&["::ffff:0:0/96"]),
            acl(&["!10.0.0.0/8", "10.0.0.0/7"]),
            acl(&["192.168.0.0/16"]),
            acl(&["fe80::/10", "!fe80::1"]),
            acl(&["!0.0.0.0/0", "11.0.0.0/8"]),
        ];
        let table: &[(&str, &str)] = &[
            ("10.0.0.1", "TT--------"),
            ("10.1.0.1", "-T--------"),
            ("10.1.2.3", "TT--------"),
            ("10.2.0.0", "TT--------"),
            ("11.1.1.1", "-T----T--T"),
            ("9.1.1.1", "-T--------"),
            ("127.0.0.1", "-T-T------"),
            ("::ffff:127.0.0.1", "--T-TT----"),
            ("::ffff:10.1.0.1", "--T--T----"),
            ("::1", "--T-------"),
            ("fe80::1", "--T-------"),
            ("fe80::2", "--T-----T-"),
            ("fec0::1", "--T-------"),
            ("192.168.3.4", "-T-----T--"),
            ("::", "--T-------"),
            ("0.0.0.0", "-T--------"),
            ("::ffff:192.168.1.1", "--T--T----"),
            ("::127.0.0.1", "--T-------"),
            ("2001:db8::ffff:1.2.3.4", "--T-------"),
            ("1:2:3:4:5:6:7:8", "--T-------"),
        ];
        for &(addr, want) in table {
            for (i, (acl, w)) in acls.iter().zip(want.chars()).enumerate() {
                assert_eq!(acl.matches(ip(addr)), w == 'T', "{addr} ~ acl #{i}");
            }
        }
    }

    #[test]
    fn empty_acl_matches_nothing() {
        let empty = Acl::new(Vec::new());
        assert!(!empty.matches(ip("1.2.3.4")));
        assert!(!empty.matches(ip("::1")));
        assert_eq!(empty.lookup(ip("::1")), None);
    }

    #[test]
    fn entries_are_in_varnishs_order() {
        let a = acl(&[
            "::/0",
            "10.0.0.0/8",
            "!10.1.0.0/16",
            "10.1.2.0/24",
            "9.0.0.0/8",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "fe80::/10",
        ]);
        let order: Vec<String> =
            a.entries().iter().map(|e| format!("{}{}/{}", if e.negated { "!" } else { "" }, e.addr, e.bits)).collect();
        assert_eq!(
            order,
            ["9.0.0.0/8", "10.1.2.0/24", "!10.1.0.0/16", "10.0.0.0/8", "0.0.0.0/0", "fe80::/10", "::/0",]
        );
        assert_eq!(a.lookup(ip("10.1.9.9")).map(|e| e.bits), Some(16));
        assert_eq!(a.lookup(ip("10.1.2.9")).map(|e| e.bits), Some(24));
    }

    #[test]
    fn new_masks_and_keeps_the_first_duplicate() {
        let a = Acl::new(vec![
            AclEntry { addr: ip("10.1.2.3"), bits: 8, negated: false, label: 0 },
            AclEntry { addr: ip("10.9.9.9"), bits: 8, negated: true, label: 0 },
            AclEntry { addr: ip("1.2.3.4"), bits: 40, negated: false, label: 0 },
        ]);
        assert_eq!(a.entries().len(), 2);
        assert!(a.matches(ip("10.200.0.1")));
        assert!(a.matches(ip("1.2.3.4")));
        assert!(!a.matches(ip("1.2.3.5")));
    }

    #[test]
    fn mask_clears_host_bits() {
        assert_eq!(mask(ip("10.1.2.3"), 8), ip("10.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("10.1.2.3"), 32), ip("10.1.2.3"));
        assert_eq!(mask(ip("10.1.2.255"), 25), ip("10.1.2.128"));
        assert_eq!(mask(ip("fe80::1:2"), 10), ip("fe80::"));
        assert_eq!(mask(ip("ffff::1"), 1), ip("8000::"));
        assert_eq!(mask(ip("::1"), 128), ip("::1"));
    }

    /// The table lookup must agree with Varnish's plain walk: the first
    /// entry, in Varnish's order, that contains the address.
    #[test]
    fn lookup_agrees_with_first_match_in_order() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let mut entries = Vec::new();
            for _ in 0..(next() % 40) {
                // Few bits vary, so that entries overlap often.
                let x = (next() as u32) & 0xf0f0_0f00;
                let bits = (next() % 33) as u8;
                let v6 = next() % 3 == 0;
                let addr = if v6 {
                    IpAddr::V6(Ipv6Addr::from(u128::from(x) << 96 | 0xffff_0000_0000))
                } else {
                    IpAddr::V4(Ipv4Addr::from(x))
                };
                let bits = if v6 { bits * 4 } else { bits };
                entries.push(AclEntry { addr: mask(addr, bits), bits, negated: next() % 2 == 0, label: 0 });
            }
            let a = Acl::new(entries);
            for _ in 0..200 {
                let x = (next() as u32) & 0xf0f0_0f0f;
                let probe = if next() % 3 == 0 {
                    IpAddr::V6(Ipv6Addr::from(u128::from(x) << 96 | 0xffff_0000_0000))
                } else {
                    IpAddr::V4(Ipv4Addr::from(x))
                };
                let first = a.entries().iter().find(|e| e.contains(probe));
                assert_eq!(a.lookup(probe), first, "round {round}, {probe}");
                assert_eq!(a.matches(probe), first.is_some_and(|e| !e.negated));
            }
        }
    }
}
