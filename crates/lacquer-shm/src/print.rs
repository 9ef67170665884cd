//! Record filters (`-i -x -I -X -c -b`) and varnishlog's output format
//! (libvarnishapi's `VSL_Match`, `VSL_Print`, `VSL_PrintTransactions`).
//!
//! ```text
//! -g raw:      "%10u %-14s %c %s"  vxid, tag, c/b/-, payload
//!
//! grouped:     *   << Request  >> 1001      one header per transaction, the stars
//!              -   ReqURL         /         and dashes its level (*4* beyond 3)
//!              **  << BeReq    >> 1002
//!              --  BerespStatus   200
//!              (an empty line after each group)
//! ```
//!
//! Text payloads are printed as they are; tags flagged unsafe are quoted
//! with every byte outside printable ASCII (the final NUL included) as
//! `%xx`; binary tags are printed in hex.

use std::io::{self, Write};

use lacquer_defs::Tag;
use pcre2::bytes::Regex;

use crate::group::{Tx, TxKind};
use crate::query::{glob, GlobError};
use crate::record::{Record, Side};

type TagSet = [u64; 2];

fn set(s: &mut TagSet, t: Tag, on: bool) {
    let bit = 1u64 << (t as usize % 64);
    if on {
        s[t as usize / 64] |= bit;
    } else {
        s[t as usize / 64] &= !bit;
    }
}

fn has(s: &TagSet, tag: u8) -> bool {
    s[tag as usize / 64] & (1 << (tag % 64)) != 0
}

/// Which records are printed (`VSL_Match`), built from the options in the
/// order they were given.
#[derive(Default)]
pub struct Filter {
    select: TagSet,
    suppress: TagSet,
    select_re: Vec<(Option<TagSet>, Regex)>,
    suppress_re: Vec<(Option<TagSet>, Regex)>,
    seen_include: bool,
    /// `-c`: only client-side records.
    pub client_only: bool,
    /// `-b`: only backend-side records.
    pub backend_only: bool,
    /// `-E`: ESI requests too (with `-c` or `-b`, which leave them out).
    pub esi: bool,
    /// `-C`: the regular expressions of `-I` and `-X` given after it
    /// ignore case.
    pub caseless: bool,
    /// `-v`: each record of a transaction printed with its vxid and side,
    /// as in raw mode.
    pub verbose: bool,
}

/// The tags of a comma-separated list of names and globs, or the error
/// varnishlog gives (`-i: "Foo" matches zero tags`).
pub fn tag_list(opt: char, list: &str) -> Result<Vec<Tag>, String> {
    let mut v = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let tags = glob(name).map_err(|e| match e {
            GlobError::Zero => format!("-{opt}: \"{name}\" matches zero tags"),
            GlobError::Ambiguous => format!("-{opt}: \"{name}\" is ambiguous"),
            GlobError::Syntax => format!("-{opt}: Syntax error in \"{name}\""),
        })?;
        v.extend(tags);
    }
    Ok(v)
}

impl Filter {
    /// The first of `-i` and `-I` hides every tag not asked for.
    fn first_include(&mut self) {
        if !self.seen_include {
            self.seen_include = true;
            self.suppress = [!0, !0];
        }
    }

    /// `-i taglist`: print these tags.
    pub fn include(&mut self, list: &str) -> Result<(), String> {
        let tags = tag_list('i', list)?;
        self.first_include();
        for t in tags {
            set(&mut self.select, t, true);
            set(&mut self.suppress, t, false);
        }
        Ok(())
    }

    /// `-x taglist`: do not print these tags.
    pub fn exclude(&mut self, list: &str) -> Result<(), String> {
        for t in tag_list('x', list)? {
            set(&mut self.suppress, t, true);
            set(&mut self.select, t, false);
        }
        Ok(())
    }

    fn regex(opt: char, arg: &str, caseless: bool) -> Result<(Option<TagSet>, Regex), String> {
        // A tag list is whatever comes before the first ':' if it names tags.
        let (tags, re) = match arg.split_once(':') {
            Some((list, re))
                if !list.is_empty() && list.chars().all(|c| c.is_ascii_alphanumeric() || "_*,.".contains(c)) =>
            {
                let mut s = [0u64; 2];
                for t in tag_list(opt, list)? {
                    set(&mut s, t, true);
                }
                (Some(s), re)
            }
            _ => (None, arg),
        };
        let re = pcre2::bytes::RegexBuilder::new().caseless(caseless).build(re).map_err(|e| {
            let full = e.to_string();
            let msg = full.rsplit_once(": ").map_or(full.as_str(), |(_, m)| m).to_string();
            format!("-{opt}: Regex error at position {} ({msg})", e.offset().unwrap_or(0))
        })?;
        Ok((tags, re))
    }

    /// `-I [taglist:]regex`: print records (of these tags) that match.
    pub fn include_regex(&mut self, arg: &str) -> Result<(), String> {
        let f = Filter::regex('I', arg, self.caseless)?;
        self.first_include();
        self.select_re.push(f);
        Ok(())
    }

    /// `-X [taglist:]regex`: do not print records (of these tags) that match.
    pub fn exclude_regex(&mut self, arg: &str) -> Result<(), String> {
        let f = Filter::regex('X', arg, self.caseless)?;
        self.suppress_re.push(f);
        Ok(())
    }

    fn any_re(list: &[(Option<TagSet>, Regex)], r: &Record) -> bool {
        list.iter()
            .any(|(tags, re)| tags.as_ref().is_none_or(|s| has(s, r.tag)) && re.is_match(r.payload()).unwrap_or(false))
    }

    /// Whether a transaction is printed at all: with `-c` or `-b`, those
    /// of the other side are left out, header included, and so are ESI
    /// requests unless `-E` asks for them.
    pub fn shows_tx(&self, tx: &Tx) -> bool {
        if (self.client_only || self.backend_only) && !self.esi && tx.kind == TxKind::Request && tx.reason == "esi" {
            return false;
        }
        let side = match tx.kind {
            TxKind::BeReq => Side::Backend,
            TxKind::Session | TxKind::Request => Side::Client,
            TxKind::Unknown | TxKind::Raw => tx.records.first().map_or(Side::None, |r| r.side),
        };
        match (self.client_only, self.backend_only) {
            (true, false) => side == Side::Client,
            (false, true) => side == Side::Backend,
            _ => true,
        }
    }

    /// Whether `r` is printed.
    pub fn matches(&self, r: &Record) -> bool {
        let side_ok = match (self.client_only, self.backend_only) {
            (true, false) => r.side == Side::Client,
            (false, true) => r.side == Side::Backend,
            _ => true,
        };
        if !side_ok {
            return false;
        }
        if Filter::any_re(&self.select_re, r) || has(&self.select, r.tag) {
            return true;
        }
        if Filter::any_re(&self.suppress_re, r) || has(&self.suppress, r.tag) {
            return false;
        }
        true
    }
}

/// The payload as varnishlog prints it.
pub fn payload_text(r: &Record) -> String {
    match r.tag() {
        Some(t) if t.is_binary() => r.data.iter().map(|b| format!("{b:02x}")).collect(),
        Some(t) if t.is_unsafe() => {
            let mut s = String::from("\"");
            for &b in &r.data {
                if (b' '..=b'~').contains(&b) {
                    s.push(b as char);
                } else {
                    s.push_str(&format!("%{b:02x}"));
                }
            }
            s.push('"');
            s
        }
        _ => r.payload_str().into_owned(),
    }
}

/// Prints one record of `-g raw`.
pub fn print_raw(out: &mut dyn Write, r: &Record) -> io::Result<()> {
    writeln!(out, "{:>10} {:<14} {} {}", r.vxid, r.tag_name(), r.side.letter(), payload_text(r))
}

/// Prints a group as varnishlog does: each transaction's header and the
/// records the filter lets through, then an empty line. In raw mode, just
/// the records.
pub fn print_group(out: &mut dyn Write, group: &[Tx], filter: &Filter) -> io::Result<()> {
    let mut shown = 0;
    for tx in group.iter().filter(|t| t.level == 0 || filter.shows_tx(t)) {
        shown += 1;
        if tx.level == 0 {
            for r in tx.records.iter().filter(|r| filter.matches(r)) {
                print_raw(out, r)?;
            }
            continue;
        }
        let (star, dash) = if tx.level > 3 {
            (format!("*{}* ", tx.level % 10), format!("-{}- ", tx.level % 10))
        } else {
            (format!("{:<3} ", "*".repeat(tx.level)), format!("{:<3} ", "-".repeat(tx.level)))
        };
        writeln!(out, "{star}{:<14} {:<10}", format!("<< {:<8} >>", tx.kind.name()), tx.vxid)?;
        for r in tx.records.iter().filter(|r| filter.matches(r)) {
            if filter.verbose {
                write!(out, "{dash}")?;
                print_raw(out, r)?;
            } else {
                writeln!(out, "{dash}{:<14} {}", r.tag_name(), payload_text(r))?;
            }
        }
    }
    if shown > 0 && group.first().is_some_and(|t| t.level > 0) {
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::tests::sample;
    use crate::group::{Grouper, Grouping};

    fn render(mode: Grouping, filter: &Filter) -> String {
        let mut g = Grouper::new(mode);
        for r in sample() {
            g.feed(r);
        }
        let mut out = Vec::new();
        while let Some(gr) = g.pop() {
            print_group(&mut out, &gr, filter).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn request_group_prints_as_varnishlog() {
        let mut f = Filter::default();
        f.include("Begin,ReqURL,Beresp*").unwrap();
        assert_eq!(
            render(Grouping::Request, &f),
            "\
*   << Request  >> 1001      
-   Begin          req 1000 rxreq
-   ReqURL         /index.html
**  << BeReq    >> 1002      
--  Begin          bereq 1001 fetch
--  BerespStatus   200
**  << Request  >> 1003      
--  Begin          req 1001 esi
--  ReqURL         /esi
*** << BeReq    >> 1004      
--- Begin          bereq 1003 fetch
--- BerespStatus   503

"
        );
    }

    #[test]
    fn raw_lines() {
        let mut f = Filter::default();
        f.exclude("Begin,End,Link,Req*,Beresp*,Bereq*,Timestamp,Resp*,Sess*").unwrap();
        assert_eq!(render(Grouping::Raw, &f), "         0 CLI            - Rd ping\n");
        let mut out = Vec::new();
        print_raw(&mut out, &Record::text(Tag::End, 1002, Side::Backend, "")).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "      1002 End            b \n");
    }

    #[test]
    fn deep_levels_and_unsafe_payloads() {
        let mut f = Filter::default();
        f.include("Begin").unwrap();
        let s = render(Grouping::Session, &f);
        assert!(s.contains("*4* << BeReq    >> 1004      \n-4- Begin          bereq 1003 fetch\n"), "{s}");
        let r = Record { tag: Tag::Debug as u8, vxid: 1, side: Side::Client, data: b"a\x01\"b\0".to_vec() };
        assert_eq!(payload_text(&r), "\"a%01\"b%00\"");
        let r = Record { tag: Tag::H2RxHdr as u8, vxid: 1, side: Side::Client, data: vec![0, 0xab] };
        assert_eq!(payload_text(&r), "00ab");
    }

    #[test]
    fn include_exclude_and_regex_filters() {
        let rec = |t, s: &str| Record::text(t, 1, Side::Client, s);
        let mut f = Filter::default();
        f.include_regex("ReqHeader:example").unwrap();
        f.include("ReqURL").unwrap();
        assert!(f.matches(&rec(Tag::ReqHeader, "Host: example.com")));
        assert!(!f.matches(&rec(Tag::ReqHeader, "Accept: */*")));
        assert!(f.matches(&rec(Tag::ReqURL, "/")));
        assert!(!f.matches(&rec(Tag::RespStatus, "200")));

        let mut f = Filter::default();
        f.exclude_regex("curl").unwrap();
        f.exclude("Resp*").unwrap();
        assert!(!f.matches(&rec(Tag::ReqHeader, "User-Agent: curl/8")));
        assert!(!f.matches(&rec(Tag::RespStatus, "200")));
        assert!(f.matches(&rec(Tag::ReqURL, "/")));

        let f = Filter { backend_only: true, ..Filter::default() };
        assert!(!f.matches(&rec(Tag::ReqURL, "/")));

        assert_eq!(Filter::default().include("Foo").unwrap_err(), "-i: \"Foo\" matches zero tags");
        assert_eq!(Filter::default().exclude_regex("Req.*:x").unwrap_err(), "-X: \"Req.*\" matches zero tags");
        assert_eq!(
            Filter::default().include_regex("(").unwrap_err(),
            "-I: Regex error at position 1 (missing closing parenthesis)"
        );
    }
}
