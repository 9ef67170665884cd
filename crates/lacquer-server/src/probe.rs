//! Backend health probes (Varnish's `cache_backend_probe.c`): one task per
//! probed backend polls it every `.interval` and sets its health, which
//! every fetch then reads without a lock ([`crate::vbe::Backend::healthy`]).
//!
//! A poll ("poke" in Varnish) opens a new connection, sends `.request`
//! (each line with CRLF after it, then an empty line) or, without one,
//! `GET <.url> HTTP/1.1`, the backend's `Host` and `Connection: close`, and
//! reads the answer **until the backend closes the connection**, all within
//! `.timeout`: like Varnish 7.1, a backend that answers but keeps the
//! connection open past the timeout fails the poll. The poll is good iff
//! the status line parses as `HTTP/<version> <status>` and the status is
//! `.expected_response`.
//!
//! Results go into a shift register of bits, newest lowest, as Varnish's
//! `happy` word; the backend is healthy iff the good bits among the newest
//! `.window` reach `.threshold`. `.initial` good bits (by default
//! `.threshold - 1`, at most `.threshold`) are put in before the first
//! poll, so by default a probed backend starts sick and turns healthy with
//! its first good poll, which is sent as soon as the server starts.

use std::sync::Arc;

use lacquer_vcl::program::ProbeDef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::MissedTickBehavior;

use crate::fetch::secs;
use crate::vbe::Backend;
use crate::vcl::Vcl;

/// How much of the answer a poll keeps to find the status line in
/// (Varnish's `resp_buf`); the rest is read and thrown away.
const RESP_BUF: usize = 128;

/// Sets each probed backend of `vcl` to its starting health and starts
/// its probe task; the handles stop them when the VCL goes cold. A task
/// holds its backend, not the VCL, so probes do not make a VCL busy.
pub(crate) fn start(vcl: &Vcl) -> Vec<tokio::task::AbortHandle> {
    let dynamic = vcl.dynamic.live().map(|(_, b)| b);
    vcl.backends.iter().chain(dynamic).filter_map(|be| start_one(vcl, be)).collect()
}

/// Starts the probe of one backend, if it has one.
pub(crate) fn start_one(vcl: &Vcl, be: &Arc<Backend>) -> Option<tokio::task::AbortHandle> {
    let def = be.def.probe.and_then(|p| vcl.program.probes.get(p as usize))?;
    let target = Target::new(def, be);
    be.set_healthy(target.healthy());
    be.set_history(target.hist.clone());
    Some(tokio::spawn(run(be.clone(), target)).abort_handle())
}

/// A probe bound to its backend (Varnish's `struct vbp_target`): what to
/// send, the limits, and the history of results.
struct Target {
    /// The bytes of one poll's request.
    request: Vec<u8>,
    expected: u16,
    timeout: f64,
    interval: f64,
    /// What the polls did, shared with the backend for `backend.list -p`.
    hist: History,
}

/// A probe's record (Varnish's bitmaps in `struct vbp_target`): one bit a
/// poll in each map, newest lowest, set when that step of the poll went
/// right (or wrong, for the `err_` maps); `happy` holds the verdicts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct History {
    pub good_ipv4: u64,
    pub good_ipv6: u64,
    pub good_unix: u64,
    pub err_xmit: u64,
    pub good_xmit: u64,
    pub err_recv: u64,
    pub good_recv: u64,
    pub happy: u64,
    /// The average response time of good polls, over the last few.
    pub avg: f64,
    /// How many polls `avg` averages, up to [`AVG_RATE`].
    rate: u32,
    pub window: u32,
    pub threshold: u32,
}

/// How many good polls the average response time is smoothed over.
const AVG_RATE: u32 = 4;

impl History {
    /// A new poll: every map moves up one place.
    fn shift(&mut self) {
        for m in [
            &mut self.good_ipv4,
            &mut self.good_ipv6,
            &mut self.good_unix,
            &mut self.err_xmit,
            &mut self.good_xmit,
            &mut self.err_recv,
            &mut self.good_recv,
            &mut self.happy,
        ] {
            *m <<= 1;
        }
    }

    /// How many of the newest `.window` polls were good.
    pub fn good(&self) -> u32 {
        let mask = if self.window >= 64 { u64::MAX } else { (1u64 << self.window) - 1 };
        (self.happy & mask).count_ones()
    }

    /// A good poll took `secs`: into the running average.
    fn took(&mut self, secs: f64) {
        if self.rate < AVG_RATE {
            self.rate += 1;
        }
        self.avg += (secs - self.avg) / f64::from(self.rate);
    }

    /// The history as `backend.list -p` shows it: the counts, then one
    /// line a map that has a bit set (and always `Happy`), oldest poll
    /// first, a character for a set bit and `-` for a clear one.
    pub fn report(&self) -> String {
        let mut out = format!(
            " Current states  good: {:2} threshold: {:2} window: {:2}\n  Average response time of good probes: {:.6}\n  \
             Oldest ================================================== Newest\n",
            self.good(),
            self.threshold,
            self.window,
            self.avg
        );
        let maps = [
            (self.good_ipv4, '4', "Good IPv4"),
            (self.good_ipv6, '6', "Good IPv6"),
            (self.good_unix, 'U', "Good UNIX"),
            (self.err_xmit, 'x', "Error Xmit"),
            (self.good_xmit, 'X', "Good Xmit"),
            (self.err_recv, 'r', "Error Recv"),
            (self.good_recv, 'R', "Good Recv"),
        ];
        for (map, c, label) in maps.into_iter().chain([(self.happy, 'H', "Happy")]) {
            if map == 0 && label != "Happy" {
                continue;
            }
            out.push_str("  ");
            out.extend((0..64).rev().map(|bit| if map >> bit & 1 == 1 { c } else { '-' }));
            out.push(' ');
            out.push_str(label);
            out.push('\n');
        }
        out
    }
}

impl Target {
    /// The probe `def` for `be`, with Varnish's defaults for the values
    /// left at zero (`vbp_set_defaults`) and `.initial` good polls counted.
    fn new(def: &ProbeDef, be: &Backend) -> Target {
        let or = |v: f64, d: f64| if v == 0.0 { d } else { v };
        let threshold = if def.threshold == 0 { 3 } else { def.threshold };
        let window = if def.window == 0 { 8 } else { def.window.min(64) };
        let mut t = Target {
            request: request(def, be.host_header()),
            expected: if def.expected_response == 0 { 200 } else { def.expected_response },
            timeout: or(def.timeout, 2.0),
            interval: or(def.interval, 5.0),
            hist: History { window, threshold, ..History::default() },
        };
        let initial = def.initial.unwrap_or(threshold.saturating_sub(1)).min(threshold);
        for _ in 0..initial {
            t.record(true);
        }
        t
    }

    /// Shifts one poll's verdict into the history (the `.initial` polls,
    /// and the tests; a real poll fills in every map, see [`poke`]).
    fn record(&mut self, good: bool) {
        self.hist.shift();
        self.hist.happy |= u64::from(good);
    }

    fn good(&self) -> u32 {
        self.hist.good()
    }

    /// Healthy iff enough of the window was good.
    fn healthy(&self) -> bool {
        self.good() >= self.hist.threshold
    }
}

/// The bytes a poll sends (Varnish's `vbp_build_req`).
fn request(def: &ProbeDef, host: Option<&str>) -> Vec<u8> {
    let mut out = String::new();
    if let Some(lines) = &def.request {
        for l in lines {
            out.push_str(l);
            out.push_str("\r\n");
        }
    } else {
        out.push_str(&format!("GET {} HTTP/1.1\r\n", def.url.as_deref().unwrap_or("/")));
        if let Some(h) = host {
            out.push_str(&format!("Host: {h}\r\n"));
        }
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Polls the backend forever. The first poll goes out at once; the
/// next is due one `.interval` after the last started, and a poll still
/// running when the next is due makes that one be skipped, as Varnish does.
async fn run(be: Arc<Backend>, mut t: Target) {
    let mut tick = tokio::time::interval(secs(t.interval));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        t.hist.shift();
        be.set_history(t.hist.clone());
        let started = std::time::Instant::now();
        let status = poke(&be, &mut t).await;
        if status == Some(t.expected) {
            t.hist.happy |= 1;
            t.hist.took(started.elapsed().as_secs_f64());
        }
        be.set_healthy(t.healthy());
        be.set_history(t.hist.clone());
    }
}

/// How far a poll got, for its marks in the history.
#[derive(Clone, Copy)]
enum Step {
    Connecting,
    Sending,
    Receiving,
}

/// One poll (Varnish's `vbp_poke`): the status of the answer, or `None` if
/// connecting, writing or reading failed, the backend did not close the
/// connection within `.timeout`, or the status line does not parse. Each
/// step's outcome is marked in the history as it happens, so that
/// `backend.list -p` shows a poll in progress as varnishd does.
async fn poke(be: &Backend, t: &mut Target) -> Option<u16> {
    let timeout = t.timeout;
    let mut step = Step::Connecting;
    let attempt = async {
        let mut io = be.open(timeout).await.ok()?;
        let family = match (&be.def.path, be.def.addrs.first()) {
            (Some(_), _) => Some(&mut t.hist.good_unix),
            (None, Some(a)) if a.is_ipv6() => Some(&mut t.hist.good_ipv6),
            (None, Some(_)) => Some(&mut t.hist.good_ipv4),
            (None, None) => None,
        };
        if let Some(map) = family {
            *map |= 1;
        }
        step = Step::Sending;
        be.set_history(t.hist.clone());
        if io.write_all(&t.request).await.is_err() || io.flush().await.is_err() {
            return None;
        }
        t.hist.good_xmit |= 1;
        step = Step::Receiving;
        be.set_history(t.hist.clone());
        let mut head = Vec::with_capacity(RESP_BUF);
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await.ok()? {
                0 => break,
                n => {
                    let room = RESP_BUF.saturating_sub(head.len()).min(n);
                    head.extend_from_slice(&buf[..room]);
                }
            }
        }
        if !head.is_empty() {
            t.hist.good_recv |= 1;
        }
        status_of(&head)
    };
    let got = tokio::time::timeout(secs(timeout), attempt).await.ok().flatten();
    if got.is_none() {
        match step {
            Step::Connecting => {}
            Step::Sending => t.hist.err_xmit |= 1,
            Step::Receiving if t.hist.good_recv & 1 == 0 => t.hist.err_recv |= 1,
            Step::Receiving => {}
        }
    }
    got
}

/// The status of a status line as Varnish reads it: the first line,
/// matched against `HTTP/%*f %u`.
fn status_of(resp: &[u8]) -> Option<u16> {
    let end = resp.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(resp.len());
    let line = std::str::from_utf8(&resp[..end]).ok()?;
    let rest = line.strip_prefix("HTTP/")?;
    let vlen = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..vlen].parse::<f64>().ok()?;
    let rest = rest[vlen..].trim_start();
    let slen = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..slen].parse::<u16>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacquer_vcl::program::BackendDef;

    fn target(def: ProbeDef) -> Target {
        Target::new(&def, &Backend::new(BackendDef { host: Some("origin".into()), ..BackendDef::default() }))
    }

    #[test]
    fn initial_defaults_to_one_below_threshold_so_a_backend_starts_sick() {
        let t = target(ProbeDef { threshold: 3, window: 4, ..ProbeDef::default() });
        assert_eq!((t.good(), t.healthy()), (2, false));
        let t = target(ProbeDef { threshold: 3, window: 4, initial: Some(3), ..ProbeDef::default() });
        assert!(t.healthy());
        // More than the threshold is cut to it.
        let t = target(ProbeDef { threshold: 2, window: 3, initial: Some(5), ..ProbeDef::default() });
        assert_eq!(t.good(), 2);
    }

    #[test]
    fn only_the_window_counts() {
        let mut t = target(ProbeDef { threshold: 2, window: 3, initial: Some(0), ..ProbeDef::default() });
        for good in [true, true] {
            t.record(good);
        }
        assert!(t.healthy());
        t.record(false);
        assert!(t.healthy(), "two of the last three");
        t.record(false);
        assert!(!t.healthy(), "the oldest good poll left the window");
        let mut t = target(ProbeDef { threshold: 64, window: 64, initial: Some(64), ..ProbeDef::default() });
        assert!(t.healthy());
        t.record(false);
        assert!(!t.healthy());
    }

    #[test]
    fn the_report_shows_each_map_oldest_first() {
        let mut h = History { window: 8, threshold: 3, ..History::default() };
        for (connected, sent, happy) in [(true, true, true), (true, true, false), (false, false, false)] {
            h.shift();
            h.good_ipv4 |= u64::from(connected);
            h.good_xmit |= u64::from(sent);
            h.happy |= u64::from(happy);
        }
        let r = h.report();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], " Current states  good:  1 threshold:  3 window:  8");
        assert_eq!(lines[3], format!("  {}44- Good IPv4", "-".repeat(61)));
        assert_eq!(lines[4], format!("  {}XX- Good Xmit", "-".repeat(61)));
        assert_eq!(lines[5], format!("  {}H-- Happy", "-".repeat(61)));
        assert_eq!(lines.len(), 6, "maps with no bit set are left out, but for Happy:\n{r}");
    }

    #[test]
    fn requests_as_varnish_builds_them() {
        let def = ProbeDef { url: Some("/health".into()), ..ProbeDef::default() };
        assert_eq!(
            request(&def, Some("origin")),
            b"GET /health HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n".to_vec()
        );
        assert_eq!(request(&ProbeDef::default(), None), b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec());
        let def = ProbeDef { request: Some(vec!["OPTIONS * HTTP/1.1".into(), "X-A: b".into()]), ..ProbeDef::default() };
        assert_eq!(request(&def, Some("origin")), b"OPTIONS * HTTP/1.1\r\nX-A: b\r\n\r\n".to_vec());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 204\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.1 200 \r\n"), Some(200));
        assert_eq!(status_of(b"FROBOZ 200 OK\r\n"), None);
        assert_eq!(status_of(b"HTTP/x 200 OK\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
