//! `logexpect`: reading an instance's shared-memory log and checking that
//! records come as a script says (varnishtest's `vtc_logexp.c`).
//!
//! ```text
//! logexpect l1 -v v1 [-d 0|1] [-g raw|vxid|request|session] [-q QUERY]
//!         [-i/-x TAGS] [-I/-X [TAGS:]REGEX] [-c] [-b] [-T SECS] [-m] [-err] {
//!     expect SKIP VXID TAG [REGEX]     SKIP: N | * | ?   VXID: N | * | =   TAG: name | * | =
//!     fail add VXID TAG [REGEX]
//!     fail clear
//! } [-start | -wait | -run]
//! ```
//!
//! The script is a list of steps and a cursor on the current one. Each
//! record read (after the `-i`/`-x` filters, in groups that pass `-q`) is
//! first checked against the *fail list* — a match there fails at once —
//! and then against the current step:
//!
//! - it matches when its vxid and tag are the wanted ones (`*` any, `=` the
//!   last matched record's) and, when the step names a tag and has a
//!   regex, the payload (without its final NUL) matches the regex; a step
//!   whose tag is `*` or `=` ignores its regex, as varnishtest does;
//! - a record that does not match is *skipped* while fewer than SKIP
//!   records have been skipped for this step (`*`: any number), else the
//!   logexpect fails;
//! - `?` steps form a block of alternatives matched in any order: a record
//!   is tried against the current one, then against the next alternatives
//!   not yet seen; one matching none of them fails;
//! - `fail add` and `fail clear` steps take effect when the cursor reaches
//!   them, without reading a record.
//!
//! The logexpect is done when the cursor is past the last step and the
//! fail list is empty (so a script with `fail add` must end with `fail
//! clear`). What it does is logged as varnishtest 7.1 logs it (`test |`,
//! `match|`, `err  |`, `cond |`, `done |` …), which is what a failed test
//! shows.
//!
//! The log is read through a [`LogReader`] (`vsl.rs`: Lacquer's log in
//! process, varnishd's through `varnishlog`) and grouped by `lacquer-shm`'s
//! [`Grouper`], as `lacquer log` groups it, whoever wrote the log.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lacquer_shm::group::{breadth_first, Tx};
use lacquer_shm::print::Filter;
use lacquer_shm::{Grouper, Grouping, Query, ReadEvent, Record, Tag};
use pcre2::bytes::Regex;

use crate::ctx::Ctx;
use crate::vsl::LogReader;

/// How a step lets records go by (varnishtest's `skip_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    /// `N`: at most this many records that do not match.
    Max(u32),
    /// `*`: any number.
    Any,
    /// `?`: one of a block of alternatives, not matched yet.
    Alt,
    /// An alternative matched in this run.
    Seen,
    /// `fail add`: goes onto the fail list.
    Fail,
    /// `fail clear`: empties the fail list.
    Clear,
}

/// A wanted vxid or tag: any, the last matched record's, or this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Any,
    Last,
    Is(u32),
}

impl Want {
    fn accepts(self, last: Option<u32>, got: u32) -> bool {
        match self {
            Want::Any => true,
            Want::Last => last == Some(got),
            Want::Is(v) => v == got,
        }
    }
}

/// One line of the script.
struct Step {
    /// The line as varnishtest echoes it (`expect 0 1001 ReqURL ^/$`).
    text: String,
    skip: Skip,
    vxid: Want,
    tag: Want,
    re: Option<Regex>,
}

/// What became of one record against one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Match,
    Skip,
    Fail,
}

/// Where a logexpect stands after some records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still expecting.
    More,
    /// Every step done and the fail list empty.
    Done,
    /// A record failed an expectation or matched the fail list.
    Failed,
}

/// The tag called `name` as `VSL_Name2Tag` finds it: the exact name in
/// any case, else the one tag whose name starts with it.
pub fn tag_by_name(name: &str) -> Option<Tag> {
    if let Some(t) = Tag::from_name(name) {
        return Some(t);
    }
    if name.is_empty() || name.contains('*') {
        return None;
    }
    match lacquer_shm::query::glob(&format!("{name}*")).ok()?.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// A parsed script and its cursor (varnishtest's `struct logexp` minus the
/// reading).
pub struct Matcher {
    steps: Vec<Step>,
    cur: Option<usize>,
    fails: Vec<usize>,
    skipped: u32,
    vxid_last: Option<u32>,
    tag_last: Option<u32>,
    /// `-m`: also log the records skipped.
    pub misses: bool,
    /// What to log, drained by the caller.
    lines: Vec<String>,
}

impl Matcher {
    /// Parses a script whose lines are already split into words (macros
    /// expanded). Errors name the offending line as varnishtest does.
    pub fn parse(lines: &[Vec<String>]) -> Result<Matcher, String> {
        let mut steps = Vec::new();
        for w in lines {
            let Some(cmd) = w.first() else { continue };
            let step = match cmd.as_str() {
                "expect" => {
                    if w.len() < 4 || w.len() > 5 {
                        return Err(format!("{}: Syntax error", w.join(" ")));
                    }
                    let skip = match w[1].as_str() {
                        "*" => Skip::Any,
                        "?" => Skip::Alt,
                        n => Skip::Max(n.parse().map_err(|_| format!("Not a positive integer: '{n}'"))?),
                    };
                    Matcher::step(w, skip)?
                }
                "fail" => match w.get(1).map(String::as_str) {
                    Some("clear") => {
                        Step { text: "fail clear".into(), skip: Skip::Clear, vxid: Want::Any, tag: Want::Any, re: None }
                    }
                    Some("add") if (4..=5).contains(&w.len()) => Matcher::step(w, Skip::Fail)?,
                    Some("add") | None => return Err(format!("{}: Syntax error", w.join(" "))),
                    Some(other) => return Err(format!("Unknown fail argument '{other}'")),
                },
                // varnishtest aborts itself, to debug the log client; here
                // the test fails, leaving the other tests running.
                "abort" => return Err("abort: requested by the script".into()),
                other => return Err(format!("Unknown command: \"{other}\"")),
            };
            steps.push(step);
        }
        Ok(Matcher {
            steps,
            cur: None,
            fails: Vec::new(),
            skipped: 0,
            vxid_last: None,
            tag_last: None,
            misses: false,
            lines: Vec::new(),
        })
    }

    /// An `expect` or `fail add` line from its vxid onwards.
    fn step(w: &[String], skip: Skip) -> Result<Step, String> {
        let vxid = match w[2].as_str() {
            "*" => Want::Any,
            "=" => Want::Last,
            n => Want::Is(n.parse().map_err(|_| format!("Not a positive integer: '{n}'"))?),
        };
        let tag = match w[3].as_str() {
            "*" => Want::Any,
            "=" => Want::Last,
            n => Want::Is(tag_by_name(n).ok_or_else(|| format!("Unknown tag name: '{n}'"))? as u32),
        };
        let re = match w.get(4) {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("Regex error ({e}): '{r}'"))?),
            None => None,
        };
        // As varnishtest 7.1 echoes it: the words, then the regex as is.
        let mut text = format!("{} {} {} {} ", w[0], w[1], w[2], w[3]);
        if let Some(r) = w.get(4) {
            text.push_str(r);
        }
        Ok(Step { text, skip, vxid, tag, re })
    }

    /// Takes the lines logged since the last call.
    pub fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    /// Whether every step is done and the fail list is empty.
    pub fn done(&self) -> bool {
        self.cur.is_none() && self.fails.is_empty()
    }

    /// The step being expected, as written.
    pub fn expecting(&self) -> Option<&str> {
        self.cur.map(|i| self.steps[i].text.as_str())
    }

    /// Places the cursor on the first step (alternatives seen in an earlier
    /// run are expected again, the fail list is emptied).
    pub fn begin(&mut self) {
        for s in &mut self.steps {
            if s.skip == Skip::Seen {
                s.skip = Skip::Alt;
            }
        }
        self.fails.clear();
        self.skipped = 0;
        self.vxid_last = None;
        self.tag_last = None;
        self.cur = (!self.steps.is_empty()).then_some(0);
        self.settle();
    }

    /// After a match: the next step, unless the current one is an
    /// alternative still unseen (another alternative matched), which stays.
    fn advance(&mut self) {
        if let Some(i) = self.cur {
            if self.steps[i].skip != Skip::Alt {
                self.cur = (i + 1 < self.steps.len()).then_some(i + 1);
            }
        }
        self.settle();
    }

    /// Carries out the steps that read no record (`fail …`, alternatives
    /// already seen) until one that expects a record.
    fn settle(&mut self) {
        while let Some(i) = self.cur {
            let next = (i + 1 < self.steps.len()).then_some(i + 1);
            match self.steps[i].skip {
                Skip::Seen => {}
                Skip::Clear => {
                    self.lines.push("cond | fail clear".into());
                    self.fails.clear();
                }
                Skip::Fail => {
                    self.lines.push(format!("cond | {}", self.steps[i].text));
                    self.fails.push(i);
                }
                _ => {
                    self.lines.push(format!("test | {}", self.steps[i].text));
                    return;
                }
            }
            self.cur = next;
        }
    }

    /// One record against step `i` (and, for an alternative, the unseen
    /// alternatives after it); logs the outcome as varnishtest does.
    fn try_step(&mut self, mut i: usize, r: &Record) -> Verdict {
        loop {
            let s = &self.steps[i];
            let mut ok = s.vxid.accepts(self.vxid_last, r.vxid) && s.tag.accepts(self.tag_last, u32::from(r.tag));
            if let (Some(re), Want::Is(t)) = (&s.re, s.tag) {
                if t == u32::from(r.tag) && !re.is_match(r.payload()).unwrap_or(false) {
                    ok = false;
                }
            }
            let alt = s.skip == Skip::Alt;
            let skip = !ok
                && match s.skip {
                    Skip::Any => true,
                    Skip::Max(n) => n > self.skipped,
                    _ => false,
                };
            let legend = match s.skip {
                Skip::Fail if ok => Some("fail"),
                Skip::Fail => self.misses.then_some("fmiss"),
                _ if ok => Some("match"),
                _ if skip => self.misses.then_some("miss"),
                _ if alt => None,
                _ => Some("err"),
            };
            if let Some(l) = legend {
                let side = r.side.letter();
                self.lines.push(format!(
                    "{l:<5}| {:>10} {:<15} {side} {}",
                    r.vxid,
                    r.tag_name(),
                    String::from_utf8_lossy(r.payload())
                ));
            }
            if ok {
                if alt {
                    self.steps[i].skip = Skip::Seen;
                }
                return Verdict::Match;
            }
            if alt {
                let next = (i + 1..self.steps.len()).find(|&k| self.steps[k].skip != Skip::Seen);
                match next {
                    Some(k) if self.steps[k].skip == Skip::Alt => {
                        self.lines.push(format!("alt  | {}", self.steps[k].text));
                        i = k;
                        continue;
                    }
                    _ => return Verdict::Fail,
                }
            }
            return if skip { Verdict::Skip } else { Verdict::Fail };
        }
    }

    /// One record, already through the `-i`/`-x` filters.
    pub fn feed(&mut self, r: &Record) -> Progress {
        if matches!(r.tag(), Some(Tag::Witness)) {
            return Progress::More;
        }
        for k in 0..self.fails.len() {
            let i = self.fails[k];
            if self.try_step(i, r) == Verdict::Match {
                return Progress::Failed;
            }
        }
        let Some(i) = self.cur else { return Progress::More };
        match self.try_step(i, r) {
            Verdict::Fail => Progress::Failed,
            Verdict::Skip => {
                self.skipped += 1;
                Progress::More
            }
            Verdict::Match => {
                self.vxid_last = Some(r.vxid);
                self.tag_last = Some(u32::from(r.tag));
                self.skipped = 0;
                self.advance();
                if self.done() {
                    Progress::Done
                } else {
                    Progress::More
                }
            }
        }
    }

    /// The records of a group, those the filter lets through, transaction
    /// by transaction in the order varnishtest gets them: breadth first
    /// (a session's requests before their fetches), not the depth-first
    /// order `lacquer log` prints.
    pub fn feed_group(&mut self, group: &[Tx], filter: &Filter) -> Progress {
        for r in breadth_first(group).into_iter().flat_map(|t| t.records.iter()) {
            if !filter.matches(r) {
                continue;
            }
            let p = self.feed(r);
            if p != Progress::More {
                return p;
            }
        }
        Progress::More
    }
}

/// The options of a `logexpect` besides its script.
#[derive(Clone, Debug)]
pub struct Options {
    /// `-d 1`: read from the oldest record still in the log.
    pub dump: bool,
    /// `-g`.
    pub grouping: Grouping,
    /// `-q`.
    pub query: Option<String>,
    /// `-i -x -I -X` in the order given, and `-c`/`-b` as `('c', "")`.
    pub filters: Vec<(char, String)>,
    /// `-T`: seconds after which an incomplete transaction is handed out.
    pub tx_timeout: f64,
    /// `-m`.
    pub misses: bool,
    /// `-err`: a failed expectation ends the logexpect successfully.
    pub err: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dump: false,
            grouping: Grouping::Vxid,
            query: None,
            filters: Vec::new(),
            tx_timeout: 120.0,
            misses: false,
            err: false,
        }
    }
}

/// Builds the record filter of `-i -x -I -X -c -b`.
pub fn filter(opts: &Options) -> Result<Filter, String> {
    let mut f = Filter::default();
    for (opt, arg) in &opts.filters {
        match opt {
            'i' => f.include(arg)?,
            'x' => f.exclude(arg)?,
            'I' => f.include_regex(arg)?,
            'X' => f.exclude_regex(arg)?,
            'c' => f.client_only = true,
            'b' => f.backend_only = true,
            _ => return Err(format!("-{opt}: not a log filter option")),
        }
    }
    Ok(f)
}

/// Starts a logexpect on `reader`, placed by the caller (at the head, or at
/// the oldest record with `-d 1`) so that whatever the instance logs after
/// `-start` returns is seen; the matching runs in a thread that ends when
/// the script is done, an expectation fails, or the test is aborted.
///
/// A failure is reported to the test at once (`ctx.fail`), as varnishtest's
/// `vtc_fatal` from the logexpect thread stops the test; the thread's
/// result says the same to `-wait`.
pub fn start(
    ctx: Arc<Ctx>,
    name: &str,
    reader: Box<dyn LogReader>,
    opts: &Options,
    mut m: Matcher,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let filter = filter(opts)?;
    let query = match &opts.query {
        Some(q) => Some(Query::parse(q).map_err(|e| format!("-q: {e}"))?),
        None => None,
    };
    m.misses = opts.misses;
    let (name, opts) = (name.to_string(), opts.clone());
    Ok(std::thread::spawn(move || {
        let mut run = Run { ctx, name, opts, m, filter, query, reader };
        run.main()
    }))
}

/// A running logexpect's state.
struct Run {
    ctx: Arc<Ctx>,
    name: String,
    opts: Options,
    m: Matcher,
    filter: Filter,
    query: Option<Query>,
    reader: Box<dyn LogReader>,
}

impl Run {
    fn say(&mut self, line: &str) {
        self.ctx.say(&self.name, line);
    }

    fn flush(&mut self) {
        for l in self.m.take_lines() {
            self.ctx.say(&self.name, &l);
        }
    }

    fn main(&mut self) -> Result<(), String> {
        self.say("begin|");
        if let Some(q) = self.opts.query.clone() {
            self.say(&format!("qry  | {q}"));
        }
        self.m.begin();
        self.flush();
        let mut grouper = Grouper::new(self.opts.grouping);
        let tx_timeout = Duration::from_secs_f64(self.opts.tx_timeout.max(0.0));
        let mut last_expire = Instant::now();
        let mut progress = if self.m.done() { Progress::Done } else { Progress::More };
        while progress == Progress::More {
            if self.ctx.aborted() {
                // Whoever stopped the test has the verdict; the log shows
                // what was still expected.
                let what = self.m.expecting().unwrap_or("fail list not cleared").to_string();
                self.say(&format!("bad  | outstanding expectations (expecting: {what})"));
                return Err(format!("outstanding expectations (expecting: {what})"));
            }
            let event = match self.reader.next_event() {
                Ok(e) => e,
                Err(e) => {
                    self.ctx.fail(&self.name, &e);
                    return Err(e);
                }
            };
            match event {
                Some(ReadEvent::Records(recs)) => {
                    for r in recs {
                        grouper.feed(r);
                        progress = self.drain(&mut grouper);
                        if progress != Progress::More {
                            break;
                        }
                    }
                }
                Some(ReadEvent::Overrun(lost)) => self.say(&format!("log overrun: about {lost} bytes lost")),
                Some(ReadEvent::Reopened) => self.say("log reacquired (the instance was restarted)"),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
            if progress == Progress::More && last_expire.elapsed() > Duration::from_millis(500) {
                last_expire = Instant::now();
                grouper.expire(tx_timeout);
                progress = self.drain(&mut grouper);
            }
        }
        self.flush();
        match progress {
            Progress::Failed if self.opts.err => {
                self.say("done | failed as expected");
                Ok(())
            }
            Progress::Failed => {
                let what = self.m.expecting().map(|e| format!(" (expecting: {e})")).unwrap_or_default();
                self.ctx.fail(&self.name, &format!("bad  | expectation failed{what}"));
                Err(format!("expectation failed{what}"))
            }
            _ => {
                self.say("done |");
                Ok(())
            }
        }
    }

    /// Hands the finished groups that pass `-q` to the matcher.
    fn drain(&mut self, grouper: &mut Grouper) -> Progress {
        while let Some(g) = grouper.pop() {
            if self.query.as_ref().is_some_and(|q| !q.matches(&g)) {
                continue;
            }
            let p = self.m.feed_group(&g, &self.filter);
            self.flush();
            if p != Progress::More {
                return p;
            }
        }
        Progress::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacquer_shm::Side;

    fn script(text: &str) -> Matcher {
        let lines: Vec<Vec<String>> = crate::parse::tokenize(text).unwrap().into_iter().map(|c| c.tokens).collect();
        Matcher::parse(&lines).unwrap()
    }

    fn rec(vxid: u32, tag: Tag, text: &str) -> Record {
        Record::text(tag, vxid, Side::Client, text)
    }

    /// Feeds records until the matcher is no longer expecting.
    fn run(m: &mut Matcher, recs: &[Record]) -> Progress {
        m.begin();
        for r in recs {
            let p = m.feed(r);
            if p != Progress::More {
                return p;
            }
        }
        Progress::More
    }

    fn sample() -> Vec<Record> {
        vec![
            rec(1001, Tag::Begin, "req 1000 rxreq"),
            rec(1001, Tag::ReqMethod, "GET"),
            rec(1001, Tag::ReqURL, "/foo"),
            rec(1001, Tag::VCL_call, "RECV"),
            rec(1001, Tag::VCL_call, "HASH"),
            rec(1001, Tag::Hit, "1002 119.993 10.000 0.000"),
            rec(1001, Tag::End, ""),
        ]
    }

    #[test]
    fn skips_counts_and_wildcards() {
        let mut m = script("expect 0 1001 Begin \"^req\"\nexpect * = ReqURL ^/foo$\nexpect 2 = Hit\nexpect 0 = End");
        assert_eq!(run(&mut m, &sample()), Progress::Done);
        // Only one record may be skipped before the Hit: two stand between.
        let mut m = script("expect * * ReqURL /foo\nexpect 1 = Hit");
        assert_eq!(run(&mut m, &sample()), Progress::Failed);
        let log = m.take_lines().join("\n");
        assert!(log.contains("err  |       1001 VCL_call        c HASH"), "{log}");
    }

    #[test]
    fn a_step_naming_no_tag_ignores_its_regex() {
        let recs = [rec(7, Tag::ReqHeader, "A: 1"), rec(7, Tag::ReqHeader, "B: 2")];
        let mut m = script("expect 0 7 * nothing-like-this\nexpect 0 = = nothing-like-this");
        assert_eq!(run(&mut m, &recs), Progress::Done);
        assert_eq!((m.vxid_last, m.tag_last), (Some(7), Some(Tag::ReqHeader as u32)));
    }

    #[test]
    fn alternatives_match_in_any_order() {
        let recs = sample();
        let mut m = script("expect * * ReqMethod\nexpect ? = ReqURL\nexpect ? = ReqMethod GET\nexpect 0 = VCL_call");
        // ReqMethod GET is matched by the first step, so the block sees
        // ReqURL then VCL_call: the VCL_call matches no alternative.
        assert_eq!(run(&mut m, &recs), Progress::Failed);
        let mut m = script("expect * * Begin\nexpect ? = ReqURL\nexpect ? = ReqMethod\nexpect 0 = VCL_call RECV");
        assert_eq!(run(&mut m, &recs), Progress::Done);
    }

    #[test]
    fn the_fail_list_fails_and_must_be_cleared() {
        let recs = sample();
        let mut m = script("fail add * Hit\nexpect * * End");
        assert_eq!(run(&mut m, &recs), Progress::Failed);
        assert!(m.take_lines().iter().any(|l| l.starts_with("fail |")));
        let mut m = script("fail add * VCL_Error\nexpect * * End\nfail clear");
        assert_eq!(run(&mut m, &recs), Progress::Done);
        let mut m = script("fail add * VCL_Error\nexpect * * End");
        assert_eq!(run(&mut m, &recs), Progress::More, "not done while the fail list is set");
    }

    #[test]
    fn scripts_are_checked_as_varnishtest_checks_them() {
        let bad = |t: &str| {
            let lines: Vec<Vec<String>> = crate::parse::tokenize(t).unwrap().into_iter().map(|c| c.tokens).collect();
            Matcher::parse(&lines).err().unwrap()
        };
        assert_eq!(bad("expect 0 1001 NoSuchTag"), "Unknown tag name: 'NoSuchTag'");
        assert_eq!(bad("expect x 1001 ReqURL"), "Not a positive integer: 'x'");
        assert_eq!(bad("expect 0 1001"), "expect 0 1001: Syntax error");
        assert_eq!(bad("fail del * ReqURL"), "Unknown fail argument 'del'");
        assert_eq!(tag_by_name("requrl"), Some(Tag::ReqURL));
        assert_eq!(tag_by_name("Beresp"), None, "a prefix of several tags");
        assert_eq!(tag_by_name("SessO"), Some(Tag::SessOpen));
    }
}
