//! ACL declarations (VCC's `vcc_acl.c`): `acl name [+log] { entries }`.
//!
//! An entry is `[!] "address" [/ bits];` or `[!] ( "address" ) ...` — the
//! parenthesised form is skipped silently when the name does not resolve.
//! Names are resolved at compile time and every address they resolve to
//! becomes an entry.

use std::net::{IpAddr, Ipv4Addr};

use lacquer_defs::VclType;

use crate::aclmatch::{mask, Acl, AclEntry};
use crate::compile::{Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::source::Span;
use crate::symb::SymKind;
use crate::token::{Op, Tok};

impl Vcc<'_> {
    pub(crate) fn parse_acl(&mut self) -> R<()> {
        self.next();
        let nt = self.expect_vid("ACL")?;
        let name = self.text(nt);
        let id = self.acls.len() as AclId;
        let fwd = self.handle_symbol(SymKind::Acl(id), VclType::Acl, nt)?;
        self.next();
        let mut log = false;
        // VCC 7.1 is pedantic unless told `-pedantic`.
        let mut pedantic = true;
        while self.t().is(Op::Plus) || self.t().is(Op::Minus) {
            let on = self.t().is(Op::Plus);
            let sign = self.t().span;
            self.next();
            // The flag's name must follow its sign directly.
            let t = self.t().clone();
            if t.tok != Tok::Id || t.span.start != sign.end {
                let d = Diag::at("Expected a flag at:", sign).text("Valid ACL flags are `log` and `table`:\n");
                return self.fail(d);
            }
            match self.tok_text().as_str() {
                "log" => log = on,
                "pedantic" => pedantic = on,
                "table" => {}
                _ => return self.fail_here("Unknown ACL flag:"),
            }
            self.next();
        }
        self.skip(Op::LBrace, 731)?;
        let mut entries = Vec::new();
        let mut where_from = Vec::new();
        let mut labels = Vec::new();
        while !self.t().is(Op::RBrace) {
            self.acl_entry(&mut entries, &mut where_from, &mut labels, pedantic)?;
            self.skip(Op::Semi, 736)?;
        }
        self.skip(Op::RBrace, 804)?;
        let def = AclDef { name: name.clone(), acl: Acl::new(entries), log, labels };
        match fwd {
            Some(SymKind::Acl(fid)) => self.acls[fid as usize] = def,
            _ => {
                self.acls.push(def);
                self.objects.push(("acl", name, nt, 0));
            }
        }
        Ok(())
    }

    /// One entry: `[!] ["("] [!] "address[/bits]" [/ bits] [")"]`, added
    /// for every address it stands for (VCC's `vcc_acl_entry`).
    /// `where_from` holds the address token of each entry in `out`;
    /// `labels` gets the entry as written, for `+log`.
    fn acl_entry(
        &mut self,
        out: &mut Vec<AclEntry>,
        where_from: &mut Vec<Span>,
        labels: &mut Vec<String>,
        pedantic: bool,
    ) -> R<()> {
        let mut negated = false;
        if self.t().is(Op::Bang) {
            negated = true;
            self.next();
        }
        let paren = self.t().is(Op::LParen);
        if paren {
            self.next();
        }
        if !negated && self.t().is(Op::Bang) {
            negated = true;
            self.next();
        }
        self.expect_tok(Tok::CStr, 414)?;
        let t_addr = self.t().span;
        let dec = String::from_utf8_lossy(&self.t().dec).into_owned();
        self.next();
        let mut host = dec.as_str();
        // The mask and the token to blame for it.
        let mut bits: Option<(u32, Span)> = None;
        if let Some((h, m)) = dec.split_once('/') {
            host = h;
            let Ok(v) = m.parse::<u32>() else {
                return self.fail(Diag::at(".../mask is not numeric.", t_addr));
            };
            bits = Some((v, t_addr));
            if self.t().is(Op::Slash) {
                return self.fail_here("/mask only allowed once.");
            }
        } else if self.t().is(Op::Slash) {
            self.next();
            self.expect_tok(Tok::CNum, 439)?;
            let sp = self.t().span;
            bits = Some((self.tok_text().parse().unwrap_or(u32::MAX), sp));
            self.next();
        }
        // As written: the string token, and a mask given after it.
        let mut written = self.text(t_addr);
        if let Some((_, sp)) = bits.filter(|(_, sp)| *sp != t_addr) {
            written = format!("{written}/{}", self.text(sp));
        }
        if paren {
            self.skip(Op::RParen, 444)?;
        }
        let addrs: Vec<(IpAddr, u32)> = if let Some((a, b)) = net_notation(host) {
            vec![(IpAddr::V4(a), b)]
        } else {
            match crate::backend::resolve(host, "0") {
                Ok(v) => {
                    let mut a: Vec<IpAddr> = v.into_iter().map(|s| s.ip()).collect();
                    a.dedup();
                    a.into_iter().map(|a| (a, if a.is_ipv4() { 32 } else { 128 })).collect()
                }
                Err(reason) => {
                    if paren {
                        // Only a warning, which VCC prints with any error
                        // after it.
                        self.diags.push(Diag::new(vec![Piece::Text(format!(
                            "Warning: {} ignored\n  -- {}\n",
                            host, reason
                        ))]));
                        return Ok(());
                    }
                    let d = Diag::new(vec![
                        Piece::Text(format!("DNS lookup({}): {}\n", host, reason)),
                        Piece::Where(t_addr),
                    ]);
                    return self.fail(d);
                }
            }
        };
        if let Some((b, sp)) = bits {
            if addrs.iter().any(|a| a.0.is_ipv4()) && addrs.iter().any(|a| a.0.is_ipv6()) {
                let d = Diag::new(vec![
                    Piece::Text(format!(
                        "Mask (/{}) specified, but string resolves to both IPv4 and IPv6 addresses.\n",
                        b
                    )),
                    Piece::Where(sp),
                ]);
                return self.fail(d);
            }
        }
        for (a, natural) in addrs {
            let (b, t_mask) = match bits {
                Some((b, sp)) => (b, Some(sp)),
                None => (natural, None),
            };
            let max = if a.is_ipv4() { 32 } else { 128 };
            if b > max {
                let d = Diag::new(vec![
                    Piece::Text(format!("Too wide mask (/{}) for IPv{} address\n", b, if a.is_ipv4() { 4 } else { 6 })),
                    Piece::Where(t_mask.unwrap_or(t_addr)),
                ]);
                return self.fail(d);
            }
            let m = mask(a, b as u8);
            if m != a && pedantic {
                let d = Diag::new(vec![
                    Piece::Text(format!("Non-zero bits in masked part, (maybe use {}/{} ?)\n", m, b)),
                    Piece::Where(t_addr),
                ]);
                return self.fail(d);
            }
            let label = if m == a { written.clone() } else { format!("{written} fixed: {m}/{b}") };
            let e = AclEntry { addr: m, bits: b as u8, negated, label: labels.len() as u32 };
            if let Some(i) = out.iter().position(|o| o.addr == e.addr && o.bits == e.bits) {
                if out[i].negated != negated {
                    let d = Diag::new(vec![
                        Piece::text("Conflicting ACL entries:\n"),
                        Piece::Where(where_from[i]),
                        Piece::text("vs:\n"),
                        Piece::Where(t_addr),
                    ]);
                    return self.fail(d);
                }
                continue;
            }
            out.push(e);
            where_from.push(t_addr);
            labels.push(label);
        }
        Ok(())
    }
}

/// VCC's `vcc_acl_try_netnotation`: `"192.168"` is 192.168.0.0/16, not what
/// `inet_aton` makes of it. One to four decimal parts, each a byte; the
/// natural mask is eight bits a part.
fn net_notation(s: &str) -> Option<(Ipv4Addr, u32)> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut b = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        // sscanf("%u") takes leading blanks and a sign; VCL addresses have neither.
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        b[i] = p.parse::<u8>().ok()?;
    }
    Some((Ipv4Addr::from(b), 8 * parts.len() as u32))
}
