//! ACL declarations (VCC's `vcc_acl.c`): `acl name [+log] { entries }`.
//!
//! An entry is `[!] "address" [/ bits];` or `[!] ( "address" ) ...` — the
//! parenthesised form is skipped silently when the name does not resolve.
//! Names are resolved at compile time and every address they resolve to
//! becomes an entry.

use std::net::IpAddr;

use lacquer_defs::VclType;

use crate::aclmatch::{mask, Acl, AclEntry};
use crate::compile::{Vcc, R};
use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::symb::{Sym, SymKind};
use crate::token::{Op, Tok};

impl Vcc<'_> {
    pub(crate) fn parse_acl(&mut self) -> R<()> {
        self.next();
        self.expect_tok(Tok::Id, 760)?;
        let nt = self.t().span;
        let name = self.text(nt);
        self.next();
        if let Some(prev) = self.syms.get(&name) {
            let mut d = Diag::new(vec![Piece::Text(format!("Acl '{}' redefined.\n", name)), Piece::Where(nt)]);
            if let Some(def) = prev.def {
                d.push(Piece::text("First definition:\n"));
                d.push(Piece::Where(def));
            }
            return self.fail(d);
        }
        let mut log = false;
        let mut pedantic = false;
        while self.t().is(Op::Plus) || self.t().is(Op::Minus) {
            let on = self.t().is(Op::Plus);
            self.next();
            self.expect_tok(Tok::Id, 780)?;
            match self.tok_text().as_str() {
                "log" => log = on,
                "pedantic" => pedantic = on,
                "table" => {}
                _ => return self.fail_here("Unknown ACL flag:"),
            }
            self.next();
        }
        self.skip(Op::LBrace, 795)?;
        let mut entries = Vec::new();
        while !self.t().is(Op::RBrace) {
            self.acl_entry(&mut entries, pedantic)?;
            self.skip(Op::Semi, 801)?;
        }
        self.skip(Op::RBrace, 804)?;
        let id = self.acls.len() as AclId;
        self.syms.insert(name.clone(), Sym { kind: SymKind::Acl(id), def: Some(nt), ty: VclType::Acl });
        self.acls.push(AclDef { name: name.clone(), acl: Acl::new(entries), log });
        self.objects.push(("acl", name, nt, 0));
        Ok(())
    }

    fn acl_entry(&mut self, out: &mut Vec<AclEntry>, pedantic: bool) -> R<()> {
        let negated = if self.t().is(Op::Bang) {
            self.next();
            true
        } else {
            false
        };
        let paren = if self.t().is(Op::LParen) {
            self.next();
            true
        } else {
            false
        };
        self.expect_tok(Tok::CStr, 680)?;
        let at = self.t().clone();
        let host = String::from_utf8_lossy(&at.dec).into_owned();
        self.next();
        if paren {
            self.skip(Op::RParen, 690)?;
        }
        let mut bits: Option<(u8, crate::source::Span)> = None;
        if self.t().is(Op::Slash) {
            self.next();
            self.expect_tok(Tok::CNum, 698)?;
            let sp = self.t().span;
            let v: u32 = self.tok_text().parse().unwrap_or(u32::MAX);
            bits = Some((v.min(255) as u8, sp));
            self.next();
        }
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(a) => vec![a],
            Err(_) => match crate::backend::resolve(&host, "80") {
                Ok(v) => {
                    let mut a: Vec<IpAddr> = v.into_iter().map(|s| s.ip()).collect();
                    a.dedup();
                    a
                }
                Err(reason) => {
                    if paren {
                        return Ok(());
                    }
                    let d = Diag::new(vec![
                        Piece::Text(format!("DNS lookup({}): {}\n", host, reason)),
                        Piece::Where(at.span),
                    ]);
                    return self.fail(d);
                }
            },
        };
        for a in addrs {
            let max = if a.is_ipv4() { 32 } else { 128 };
            let b = match bits {
                Some((b, sp)) if b > max => {
                    let d = Diag::new(vec![
                        Piece::Text(format!("Too wide mask ({}) for IPv{}\n", b, if a.is_ipv4() { 4 } else { 6 })),
                        Piece::Where(sp),
                    ]);
                    return self.fail(d);
                }
                Some((b, _)) => b,
                None => max,
            };
            let m = mask(a, b);
            if m != a && pedantic {
                let d = Diag::new(vec![
                    Piece::Text(format!("Address/Netmask mismatch, need be {}/{}\n", m, b)),
                    Piece::Where(at.span),
                ]);
                return self.fail(d);
            }
            out.push(AclEntry { addr: m, bits: b, negated });
        }
        Ok(())
    }
}
