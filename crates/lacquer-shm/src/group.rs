//! Gathering records into transactions and transactions into groups, as
//! `varnishlog -g raw|vxid|request|session` does (libvarnishapi's
//! `vsl_dispatch.c`).
//!
//! A transaction is every record of one vxid, from its `Begin` record
//! (`req 1000 rxreq`: its kind, its parent's vxid, why it began) to its
//! `End`. Parents name their children with `Link` records
//! (`bereq 1002 fetch`). Records of different transactions arrive
//! interleaved, and a child may even arrive whole before its parent (each
//! task flushes its own buffer), so a group is handed out only when its top
//! transaction and every transaction under it have ended — or when they
//! time out, or the input ends, and then as they are.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use lacquer_defs::Tag;

use crate::record::Record;

/// How transactions are grouped (`-g`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Every record alone, non-transactional ones (vxid 0) included.
    Raw,
    /// Each transaction alone (the default).
    Vxid,
    /// A client request with its backend requests and ESI subrequests.
    Request,
    /// A client connection with everything done for it.
    Session,
}

impl Grouping {
    /// Reads a `-g` argument.
    pub fn parse(s: &str) -> Option<Grouping> {
        Some(match s {
            "raw" => Grouping::Raw,
            "vxid" => Grouping::Vxid,
            "request" => Grouping::Request,
            "session" => Grouping::Session,
            _ => return None,
        })
    }
}

/// What a transaction is, from its `Begin` record (`enum VSL_transaction_e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// No `Begin` was seen.
    Unknown,
    /// `sess`: a client connection.
    Session,
    /// `req`: a client request.
    Request,
    /// `bereq`: a backend request.
    BeReq,
    /// One record of `-g raw`.
    Raw,
}

impl TxKind {
    /// The name in varnishlog's transaction header (`VSL_transactions[]`).
    pub fn name(self) -> &'static str {
        match self {
            TxKind::Unknown => "Unknown",
            TxKind::Session => "Session",
            TxKind::Request => "Request",
            TxKind::BeReq => "BeReq",
            TxKind::Raw => "Record",
        }
    }

    fn from_begin(word: &str) -> TxKind {
        match word {
            "sess" => TxKind::Session,
            "req" => TxKind::Request,
            "bereq" => TxKind::BeReq,
            _ => TxKind::Unknown,
        }
    }
}

/// One transaction, as handed out in a group.
#[derive(Clone, Debug)]
pub struct Tx {
    /// Its vxid.
    pub vxid: u32,
    /// Its kind.
    pub kind: TxKind,
    /// The parent's vxid from `Begin` (0 if none).
    pub parent: u32,
    /// Why it began (`rxreq`, `fetch`, `esi`…).
    pub reason: String,
    /// Its depth in the group: 1 for the top, 0 in raw mode.
    pub level: usize,
    /// Whether its `End` was seen.
    pub complete: bool,
    /// Its records, in order.
    pub records: Vec<Record>,
}

/// A group: its transactions in print order (each parent before its
/// children).
pub type Group = Vec<Tx>;

struct Pending {
    tx: Tx,
    links: Vec<u32>,
    born: Instant,
}

/// Turns a stream of records into groups (Varnish's `VSLQ` dispatch).
pub struct Grouper {
    mode: Grouping,
    txs: HashMap<u32, Pending>,
    ready: VecDeque<Group>,
}

/// Splits a `Begin` or `Link` payload: `kind vxid reason`.
fn three_fields(r: &Record) -> (String, u32, String) {
    let s = r.payload_str();
    let mut it = s.split_ascii_whitespace();
    let kind = it.next().unwrap_or("").to_string();
    let vxid = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let reason = it.next().unwrap_or("").to_string();
    (kind, vxid, reason)
}

impl Grouper {
    /// A grouper for `mode`.
    pub fn new(mode: Grouping) -> Grouper {
        Grouper { mode, txs: HashMap::new(), ready: VecDeque::new() }
    }

    /// The grouping mode.
    pub fn mode(&self) -> Grouping {
        self.mode
    }

    /// How many transactions are waiting to be completed.
    pub fn pending(&self) -> usize {
        self.txs.len()
    }

    /// The next finished group, if any.
    pub fn pop(&mut self) -> Option<Group> {
        self.ready.pop_front()
    }

    /// Takes one record.
    pub fn feed(&mut self, rec: Record) {
        if self.mode == Grouping::Raw {
            let tx = Tx {
                vxid: rec.vxid,
                kind: TxKind::Raw,
                parent: 0,
                reason: String::new(),
                level: 0,
                complete: true,
                records: vec![rec],
            };
            self.ready.push_back(vec![tx]);
            return;
        }
        if rec.vxid == 0 {
            return;
        }
        let vxid = rec.vxid;
        let p = self.txs.entry(vxid).or_insert_with(|| Pending {
            tx: Tx {
                vxid,
                kind: TxKind::Unknown,
                parent: 0,
                reason: String::new(),
                level: 1,
                complete: false,
                records: Vec::new(),
            },
            links: Vec::new(),
            born: Instant::now(),
        });
        let tag = rec.tag();
        match tag {
            Some(Tag::Begin) if p.tx.records.is_empty() || p.tx.kind == TxKind::Unknown => {
                let (kind, parent, reason) = three_fields(&rec);
                p.tx.kind = TxKind::from_begin(&kind);
                p.tx.parent = parent;
                p.tx.reason = reason;
            }
            Some(Tag::Link) => {
                let (_, child, _) = three_fields(&rec);
                if child != 0 {
                    p.links.push(child);
                }
            }
            _ => {}
        }
        p.tx.records.push(rec);
        if tag == Some(Tag::End) {
            p.tx.complete = true;
            self.settle(vxid);
        }
    }

    /// The transaction a transaction is grouped under, in this mode.
    fn up(&self, tx: &Tx) -> Option<u32> {
        if tx.parent == 0 {
            return None;
        }
        match (self.mode, tx.kind) {
            (Grouping::Raw | Grouping::Vxid, _) => None,
            (_, TxKind::Unknown | TxKind::Raw | TxKind::Session) => None,
            // A restart continues its request: same group (and level).
            (Grouping::Request, TxKind::Request) if tx.reason != "esi" && tx.reason != "restart" => None,
            _ => Some(tx.parent),
        }
    }

    /// Whether a transaction is shown at all in this mode: sessions are
    /// not, in request grouping.
    fn shown(&self, tx: &Tx) -> bool {
        !(self.mode == Grouping::Request && tx.kind == TxKind::Session)
    }

    /// The vxids grouped directly under `vxid`: linked ones first, in link
    /// order, then any that named it as parent without a link.
    fn children(&self, vxid: u32) -> Vec<u32> {
        if matches!(self.mode, Grouping::Raw | Grouping::Vxid) {
            return Vec::new();
        }
        let mut v: Vec<u32> = match self.txs.get(&vxid) {
            Some(p) => p.links.clone(),
            None => Vec::new(),
        };
        if self.mode == Grouping::Request {
            // A session's links name requests, which are tops of their own.
            if self.txs.get(&vxid).is_some_and(|p| p.tx.kind == TxKind::Session) {
                v.clear();
            }
        }
        v.retain(|c| self.txs.get(c).is_none_or(|p| self.up(&p.tx) == Some(vxid) || p.tx.kind == TxKind::Unknown));
        let mut extra: Vec<u32> = self
            .txs
            .values()
            .filter(|p| self.up(&p.tx) == Some(vxid) && !v.contains(&p.tx.vxid))
            .map(|p| p.tx.vxid)
            .collect();
        extra.sort_unstable();
        v.extend(extra);
        v
    }

    /// The top of the group `vxid` belongs to (stopping at a parent not
    /// seen yet: the group then waits for it).
    fn top(&self, mut vxid: u32) -> Option<u32> {
        for _ in 0..64 {
            let p = self.txs.get(&vxid)?;
            match self.up(&p.tx) {
                Some(up) => vxid = up,
                None => return Some(vxid),
            }
        }
        None
    }

    /// Whether `vxid` and everything under it has ended.
    fn done(&self, vxid: u32, depth: usize) -> bool {
        if depth > 64 {
            return true;
        }
        match self.txs.get(&vxid) {
            Some(p) if p.tx.complete => self.children(vxid).into_iter().all(|c| self.done(c, depth + 1)),
            _ => false,
        }
    }

    /// After `vxid` ended: hands out its group if that is now whole.
    fn settle(&mut self, vxid: u32) {
        let Some(top) = self.top(vxid) else { return };
        if self.txs.get(&top).is_some_and(|p| self.up(&p.tx).is_some()) {
            // Its parent has not been seen yet.
            return;
        }
        if self.done(top, 0) {
            self.emit(top);
        }
    }

    /// Removes the group under `top` and queues it for output.
    fn emit(&mut self, top: u32) {
        let mut group = Vec::new();
        self.collect(top, 1, &mut group, 0);
        let group: Group = group.into_iter().filter(|tx| self.shown(tx)).collect();
        if !group.is_empty() {
            self.ready.push_back(group);
        }
    }

    fn collect(&mut self, vxid: u32, level: usize, out: &mut Vec<Tx>, depth: usize) {
        if depth > 64 {
            return;
        }
        let kids = self.children(vxid);
        let Some(p) = self.txs.remove(&vxid) else { return };
        let mut tx = p.tx;
        tx.level = level;
        out.push(tx);
        for c in kids {
            // "Request restart transactions don't get their level
            // increased" (vsl-query(7)).
            let restart = self.txs.get(&c).is_some_and(|k| k.tx.kind == TxKind::Request && k.tx.reason == "restart");
            self.collect(c, if restart { level } else { level + 1 }, out, depth + 1);
        }
    }

    /// Hands out, incomplete, the groups whose top began more than `age`
    /// ago (varnishlog's `-T`).
    pub fn expire(&mut self, age: Duration) {
        let old: Vec<u32> = self
            .txs
            .values()
            .filter(|p| p.born.elapsed() > age && self.up(&p.tx).is_none_or(|u| !self.txs.contains_key(&u)))
            .map(|p| p.tx.vxid)
            .collect();
        for v in old {
            if self.txs.contains_key(&v) {
                self.emit(v);
            }
        }
    }

    /// Hands out everything still waiting, complete or not (at the end of
    /// `-d` or `-r`), oldest first.
    pub fn flush_all(&mut self) {
        let mut tops: Vec<(Instant, u32)> = self
            .txs
            .values()
            .filter(|p| self.up(&p.tx).is_none_or(|u| !self.txs.contains_key(&u)))
            .map(|p| (p.born, p.tx.vxid))
            .collect();
        tops.sort();
        for (_, v) in tops {
            if self.txs.contains_key(&v) {
                self.emit(v);
            }
        }
        // Whatever is left hangs under a cycle of parents; hand it out alone.
        let rest: Vec<u32> = self.txs.keys().copied().collect();
        for v in rest {
            if self.txs.contains_key(&v) {
                self.emit(v);
            }
        }
    }
}

/// A group's transactions in the order libvarnishapi hands them to a
/// dispatch callback (`vslq_callback`): breadth first — the top, then every
/// transaction one level down, then the next level — each parent's children
/// in the order the group lists them. A [`Group`] itself is in print
/// (depth-first) order; `logexpect` in `lacquer vtc` needs this one, since
/// its scripts count records in the order varnishtest saw them.
/// Transactions whose parent is not in the group come after, as they are.
pub fn breadth_first(group: &[Tx]) -> Vec<&Tx> {
    let mut out: Vec<&Tx> = Vec::with_capacity(group.len());
    let mut taken = vec![false; group.len()];
    let in_group = |v: u32| group.iter().any(|t| t.vxid == v);
    for (k, tx) in group.iter().enumerate() {
        if taken[k] || (tx.parent != 0 && tx.parent != tx.vxid && in_group(tx.parent)) {
            continue;
        }
        taken[k] = true;
        let mut j = out.len();
        out.push(tx);
        while j < out.len() {
            let parent = out[j].vxid;
            for (c, child) in group.iter().enumerate() {
                if !taken[c] && child.parent == parent && child.vxid != parent {
                    taken[c] = true;
                    out.push(child);
                }
            }
            j += 1;
        }
    }
    // Whatever hangs under a cycle of parents.
    out.extend(group.iter().zip(&taken).filter(|(_, t)| !**t).map(|(tx, _)| tx));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Side;

    pub(crate) fn rec(vxid: u32, tag: Tag, text: &str) -> Record {
        let side = match vxid {
            0 => Side::None,
            v if v % 10 == 2 || v % 10 == 4 => Side::Backend,
            _ => Side::Client,
        };
        Record::text(tag, vxid, side, text)
    }

    /// A session 1000 with request 1001, which fetched 1002 and included
    /// ESI 1003 (fetching 1004); records interleaved as they would be.
    pub(crate) fn sample() -> Vec<Record> {
        vec![
            rec(1000, Tag::Begin, "sess 0 HTTP/1"),
            rec(1000, Tag::SessOpen, "127.0.0.1 5000 a0 127.0.0.1 80 1.0 10"),
            rec(1000, Tag::Link, "req 1001 rxreq"),
            rec(0, Tag::CLI, "Rd ping"),
            rec(1001, Tag::Begin, "req 1000 rxreq"),
            rec(1001, Tag::ReqURL, "/index.html"),
            rec(1001, Tag::ReqHeader, "Host: example.com"),
            rec(1001, Tag::Link, "bereq 1002 fetch"),
            rec(1002, Tag::Begin, "bereq 1001 fetch"),
            rec(1002, Tag::BereqURL, "/index.html"),
            rec(1002, Tag::BerespStatus, "200"),
            rec(1002, Tag::End, ""),
            rec(1001, Tag::Link, "req 1003 esi"),
            rec(1004, Tag::Begin, "bereq 1003 fetch"),
            rec(1004, Tag::BerespStatus, "503"),
            rec(1004, Tag::End, ""),
            rec(1003, Tag::Begin, "req 1001 esi"),
            rec(1003, Tag::ReqURL, "/esi"),
            rec(1003, Tag::Link, "bereq 1004 fetch"),
            rec(1003, Tag::Timestamp, "Process: 1.5 0.700 0.600"),
            rec(1003, Tag::End, ""),
            rec(1001, Tag::RespStatus, "200"),
            rec(1001, Tag::Timestamp, "Resp: 2.0 1.000 0.500"),
            rec(1001, Tag::End, ""),
            rec(1000, Tag::SessClose, "REM_CLOSE 0.1"),
            rec(1000, Tag::End, ""),
        ]
    }

    fn run(mode: Grouping, recs: Vec<Record>) -> Vec<Vec<(u32, usize, bool)>> {
        let mut g = Grouper::new(mode);
        for r in recs {
            g.feed(r);
        }
        let mut out = Vec::new();
        while let Some(gr) = g.pop() {
            out.push(gr.iter().map(|t| (t.vxid, t.level, t.complete)).collect());
        }
        g.flush_all();
        while let Some(gr) = g.pop() {
            out.push(gr.iter().map(|t| (t.vxid, t.level, t.complete)).collect());
        }
        out
    }

    #[test]
    fn vxid_grouping_hands_out_each_transaction_at_its_end() {
        let got = run(Grouping::Vxid, sample());
        let order: Vec<u32> = got.iter().map(|g| g[0].0).collect();
        assert_eq!(order, [1002, 1004, 1003, 1001, 1000]);
        assert!(got.iter().all(|g| g.len() == 1 && g[0].1 == 1));
    }

    #[test]
    fn request_grouping_waits_for_children_and_drops_sessions() {
        let got = run(Grouping::Request, sample());
        assert_eq!(got, [vec![(1001, 1, true), (1002, 2, true), (1003, 2, true), (1004, 3, true)]]);
    }

    #[test]
    fn session_grouping_nests_everything() {
        let got = run(Grouping::Session, sample());
        assert_eq!(got, [vec![(1000, 1, true), (1001, 2, true), (1002, 3, true), (1003, 3, true), (1004, 4, true)]]);
    }

    #[test]
    fn raw_keeps_every_record_and_vxid_zero() {
        let got = run(Grouping::Raw, sample());
        assert_eq!(got.len(), sample().len());
        assert!(got.iter().any(|g| g[0].0 == 0));
        assert!(got.iter().all(|g| g[0].1 == 0));
    }

    #[test]
    fn incomplete_groups_come_out_at_the_end() {
        let mut recs = sample();
        recs.retain(|r| !(r.vxid == 1004 && r.tag() == Some(Tag::End)));
        let got = run(Grouping::Request, recs);
        assert_eq!(got, [vec![(1001, 1, true), (1002, 2, true), (1003, 2, true), (1004, 3, false)]]);
    }

    #[test]
    fn child_before_parent_waits_for_parent() {
        // The backend task flushed first; its parent appears later.
        let recs = vec![
            rec(1002, Tag::Begin, "bereq 1001 fetch"),
            rec(1002, Tag::End, ""),
            rec(1001, Tag::Begin, "req 1000 rxreq"),
            rec(1001, Tag::Link, "bereq 1002 fetch"),
            rec(1001, Tag::End, ""),
        ];
        let mut g = Grouper::new(Grouping::Request);
        let mut n = 0;
        for r in recs {
            g.feed(r);
            n += 1;
            if n == 2 {
                assert!(g.pop().is_none());
            }
        }
        let gr = g.pop().unwrap();
        assert_eq!(gr.iter().map(|t| (t.vxid, t.level)).collect::<Vec<_>>(), [(1001, 1), (1002, 2)]);
    }

    #[test]
    fn a_restart_stays_in_its_group_at_the_same_level() {
        let recs = vec![
            rec(1001, Tag::Begin, "req 1000 rxreq"),
            rec(1001, Tag::Link, "req 1003 restart"),
            rec(1001, Tag::End, ""),
            rec(1003, Tag::Begin, "req 1001 restart"),
            rec(1003, Tag::Link, "bereq 1004 fetch"),
            rec(1004, Tag::Begin, "bereq 1003 fetch"),
            rec(1004, Tag::End, ""),
            rec(1003, Tag::End, ""),
        ];
        assert_eq!(run(Grouping::Request, recs), [vec![(1001, 1, true), (1003, 1, true), (1004, 2, true)]]);
    }

    #[test]
    fn expire_hands_out_stale_groups() {
        let mut g = Grouper::new(Grouping::Vxid);
        g.feed(rec(1001, Tag::Begin, "req 1000 rxreq"));
        g.expire(Duration::from_secs(60));
        assert!(g.pop().is_none());
        g.expire(Duration::ZERO);
        let gr = g.pop().unwrap();
        assert!(!gr[0].complete);
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn breadth_first_is_the_dispatch_order() {
        let got = run(Grouping::Session, sample());
        let order: Vec<u32> = got[0].iter().map(|t| t.0).collect();
        assert_eq!(order, [1000, 1001, 1002, 1003, 1004], "print order: depth first");
        let mut g = Grouper::new(Grouping::Session);
        for r in sample() {
            g.feed(r);
        }
        let group = g.pop().unwrap();
        let bfs: Vec<u32> = breadth_first(&group).iter().map(|t| t.vxid).collect();
        // 1002 and 1003 are both 1001's; 1004 is one level further down.
        assert_eq!(bfs, [1000, 1001, 1002, 1003, 1004]);
        // Two requests of one session: their fetches come after both.
        let mut recs = Vec::new();
        recs.push(rec(1000, Tag::Begin, "sess 0 HTTP/1"));
        for (req, be) in [(1001, 1002), (1003, 1004)] {
            recs.push(rec(1000, Tag::Link, &format!("req {req} rxreq")));
            recs.push(rec(be, Tag::Begin, &format!("bereq {req} fetch")));
            recs.push(rec(be, Tag::End, ""));
            recs.push(rec(req, Tag::Begin, "req 1000 rxreq"));
            recs.push(rec(req, Tag::Link, &format!("bereq {be} fetch")));
            recs.push(rec(req, Tag::End, ""));
        }
        recs.push(rec(1000, Tag::End, ""));
        let mut g = Grouper::new(Grouping::Session);
        for r in recs {
            g.feed(r);
        }
        let group = g.pop().unwrap();
        let dfs: Vec<u32> = group.iter().map(|t| t.vxid).collect();
        assert_eq!(dfs, [1000, 1001, 1002, 1003, 1004]);
        let bfs: Vec<u32> = breadth_first(&group).iter().map(|t| t.vxid).collect();
        assert_eq!(bfs, [1000, 1001, 1003, 1002, 1004]);
    }
}
