//! Named hooks between modules (Apache EAPI's `ap_hook_register` and
//! `ap_hook_use`): one module provides `name → function`, another calls
//! `name` and gets the first answer, without either knowing the other at
//! link time — they may come from separately built shared libraries.
//!
//! A hook takes bytes and answers bytes, or declines. Providers are asked
//! in their order (lower first; equal orders in the order they were
//! registered) until one answers; when all decline, or there are none,
//! nobody answered. [`Hooks`] is the registry a host keeps: every
//! provider has an *owner* (for a server, the VCL that loaded it), and
//! [`Hooks::remove_owner`] unregisters them all at once when it goes.
//!
//! A provider runs outside any task: it gets only the argument. It may be
//! called from several threads at once, and a panic in it counts as a
//! decline.
//!
//! # Server events
//!
//! The server tells modules of its own events through the same registry,
//! under the names in [`server`]: a module provides `lacquer.tick` (or
//! any other) like any hook, and the server *notifies* it — every
//! provider is called, in order, and answers are ignored
//! ([`Hooks::notify`]). The argument is text, described with each name.
//! Providers run on the server's request path: they must be quick and
//! never block (hand slow work to a thread of their own). With no
//! provider for an event the server pays one atomic load for it.

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

/// The names of the server's events ([`Hooks::notify`]), and what each
/// is told.
pub mod server {
    /// Once a second; the argument is the time, Unix seconds.
    pub const TICK: &str = "lacquer.tick";
    /// The active VCL changed (`vcl.use`, a label's VCL, SIGHUP); the
    /// argument is the name of the VCL now active.
    pub const RELOAD: &str = "lacquer.reload";
    /// A client connection was accepted: `<session vxid> <client ip>
    /// <client port> <listener>`.
    pub const CONN_OPEN: &str = "lacquer.conn_open";
    /// A client connection closed: `<session vxid> <reason>` (the
    /// `SessClose` reason: `REM_CLOSE`, `TX_HANDOFF` …).
    pub const CONN_CLOSE: &str = "lacquer.conn_close";
    /// A client request was answered: `<vxid> <status> <body bytes sent>
    /// <seconds from its start>` (for accounting).
    pub const REQUEST_DONE: &str = "lacquer.request_done";

    /// Every event, in the order of their bits in [`super::Hooks`].
    pub(crate) const ALL: [&str; 5] = [TICK, RELOAD, CONN_OPEN, CONN_CLOSE, REQUEST_DONE];
}

/// A hook provider: the argument in, `Some(answer)` or `None` to decline.
pub type HookFn = Arc<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync>;

struct Provider {
    order: i32,
    /// Registration order, for ties.
    seq: u64,
    owner: u64,
    f: HookFn,
}

#[derive(Default)]
struct Table {
    seq: u64,
    /// Each hook's providers, sorted by (order, seq). A call clones the
    /// `Arc` and asks them with the lock released, so a provider may
    /// register or call hooks itself.
    by_name: HashMap<String, Arc<[Arc<Provider>]>>,
}

/// The registry of named hooks a host keeps (one per server).
#[derive(Default)]
pub struct Hooks {
    table: RwLock<Table>,
    /// One bit per [`server`] event that has a provider, so a server asks
    /// [`Hooks::wanted`] without a lock on its hot paths.
    events: AtomicU32,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut m = f.debug_map();
        for (name, ps) in &t.by_name {
            m.entry(name, &ps.iter().map(|p| (p.order, p.owner)).collect::<Vec<_>>());
        }
        m.finish()
    }
}

impl Hooks {
    /// An empty registry.
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Registers `f` as a provider of hook `name` with `order`, owned by
    /// `owner`. An empty name is refused.
    pub fn provide(&self, owner: u64, name: &str, order: i32, f: HookFn) -> Result<(), String> {
        if name.is_empty() {
            return Err("a hook needs a name".into());
        }
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        t.seq += 1;
        let p = Arc::new(Provider { order, seq: t.seq, owner, f });
        let mut list: Vec<Arc<Provider>> = t.by_name.get(name).map(|l| l.to_vec()).unwrap_or_default();
        let at = list.partition_point(|q| (q.order, q.seq) <= (p.order, p.seq));
        list.insert(at, p);
        t.by_name.insert(name.to_string(), list.into());
        self.events.store(event_bits(&t), Ordering::Release);
        Ok(())
    }

    /// Whether server event `name` (one of [`server`]) has a provider:
    /// one atomic load.
    pub fn wanted(&self, name: &str) -> bool {
        let bits = self.events.load(Ordering::Acquire);
        server::ALL.iter().position(|n| *n == name).is_some_and(|i| bits & (1 << i) != 0)
    }

    /// Tells every provider of hook `name`, in order, ignoring their
    /// answers (the server's events, see [`server`]).
    pub fn notify(&self, name: &str, arg: &[u8]) {
        let Some(list) = self.table.read().unwrap_or_else(|e| e.into_inner()).by_name.get(name).cloned() else {
            return;
        };
        for p in list.iter() {
            let _ = catch_unwind(AssertUnwindSafe(|| (p.f)(arg)));
        }
    }

    /// Calls hook `name`: the first answer of its providers in order, or
    /// `None` when nobody answered.
    pub fn call(&self, name: &str, arg: &[u8]) -> Option<Vec<u8>> {
        let list = self.table.read().unwrap_or_else(|e| e.into_inner()).by_name.get(name).cloned()?;
        list.iter().find_map(|p| catch_unwind(AssertUnwindSafe(|| (p.f)(arg))).unwrap_or(None))
    }

    /// How many providers hook `name` has.
    pub fn providers(&self, name: &str) -> usize {
        self.table.read().unwrap_or_else(|e| e.into_inner()).by_name.get(name).map_or(0, |l| l.len())
    }

    /// Unregisters every provider `owner` registered; how many there were.
    /// A provider is dropped (its state released) once the calls running
    /// it at this moment are over; no call made after this asks it.
    pub fn remove_owner(&self, owner: u64) -> usize {
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        t.by_name.retain(|_, list| {
            let before = list.len();
            if list.iter().any(|p| p.owner == owner) {
                *list = list.iter().filter(|p| p.owner != owner).cloned().collect();
            }
            removed += before - list.len();
            !list.is_empty()
        });
        self.events.store(event_bits(&t), Ordering::Release);
        removed
    }
}

/// The [`server`] events `t` has providers for, a bit each.
fn event_bits(t: &Table) -> u32 {
    server::ALL.iter().enumerate().filter(|(_, n)| t.by_name.contains_key(**n)).fold(0, |b, (i, _)| b | 1 << i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn answer(s: &'static str) -> HookFn {
        Arc::new(move |_| Some(s.as_bytes().to_vec()))
    }

    fn decline() -> HookFn {
        Arc::new(|_| None)
    }

    fn call(h: &Hooks, name: &str, arg: &str) -> Option<String> {
        h.call(name, arg.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn server_events_reach_every_provider_and_are_wanted_only_with_one() {
        let h = Hooks::new();
        assert!(!h.wanted(server::TICK));
        let told = Arc::new(AtomicUsize::new(0));
        for owner in [1, 2] {
            let t = told.clone();
            h.provide(
                owner,
                server::TICK,
                0,
                Arc::new(move |arg| {
                    assert_eq!(arg, b"42");
                    t.fetch_add(1, Ordering::SeqCst);
                    Some(b"ignored".to_vec())
                }),
            )
            .unwrap();
        }
        assert!(h.wanted(server::TICK) && !h.wanted(server::REQUEST_DONE));
        assert!(!h.wanted("greeting"), "only the server's events have a bit");
        h.notify(server::TICK, b"42");
        assert_eq!(told.load(Ordering::SeqCst), 2, "an answer does not stop the others");
        h.remove_owner(1);
        assert!(h.wanted(server::TICK));
        h.remove_owner(2);
        assert!(!h.wanted(server::TICK));
        h.notify(server::TICK, b"42");
        assert_eq!(told.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn nobody_answers_a_hook_without_providers() {
        let h = Hooks::new();
        assert_eq!(call(&h, "greeting", "x"), None);
        h.provide(1, "other", 0, answer("no")).unwrap();
        assert_eq!(call(&h, "greeting", "x"), None);
        assert_eq!(h.provide(1, "", 0, answer("no")), Err("a hook needs a name".into()));
    }

    #[test]
    fn providers_are_asked_lowest_order_first_ties_in_registration_order() {
        let h = Hooks::new();
        h.provide(1, "greeting", 10, answer("ten")).unwrap();
        assert_eq!(call(&h, "greeting", ""), Some("ten".into()));
        h.provide(1, "greeting", 10, answer("ten again")).unwrap();
        assert_eq!(call(&h, "greeting", ""), Some("ten".into()), "a tie goes to the first registered");
        h.provide(1, "greeting", -5, answer("minus five")).unwrap();
        assert_eq!(call(&h, "greeting", ""), Some("minus five".into()));
        h.provide(1, "greeting", -100, decline()).unwrap();
        assert_eq!(call(&h, "greeting", ""), Some("minus five".into()), "a decline asks the next");
        assert_eq!(h.providers("greeting"), 4);
    }

    #[test]
    fn the_argument_reaches_the_provider_and_an_empty_answer_is_an_answer() {
        let h = Hooks::new();
        h.provide(1, "upper", 0, Arc::new(|a: &[u8]| (!a.is_empty()).then(|| a.to_ascii_uppercase()))).unwrap();
        h.provide(1, "upper", 1, answer("")).unwrap();
        assert_eq!(call(&h, "upper", "abc"), Some("ABC".into()));
        assert_eq!(call(&h, "upper", ""), Some("".into()));
    }

    #[test]
    fn a_panicking_provider_declines() {
        let h = Hooks::new();
        h.provide(1, "p", 0, Arc::new(|_| panic!("provider bug"))).unwrap();
        assert_eq!(call(&h, "p", ""), None);
        h.provide(1, "p", 1, answer("next")).unwrap();
        assert_eq!(call(&h, "p", ""), Some("next".into()));
    }

    #[test]
    fn removing_an_owner_unregisters_its_providers_and_releases_them() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let h = Hooks::new();
        let c = Counted(dropped.clone());
        h.provide(1, "greeting", 0, Arc::new(move |_| Some(format!("vcl1 {}", c.0.load(Ordering::SeqCst)).into())))
            .unwrap();
        h.provide(2, "greeting", 5, answer("vcl2")).unwrap();
        h.provide(1, "other", 0, answer("o")).unwrap();
        assert_eq!(call(&h, "greeting", ""), Some("vcl1 0".into()));
        assert_eq!(h.remove_owner(1), 2);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "the provider's state is released");
        assert_eq!(call(&h, "greeting", ""), Some("vcl2".into()));
        assert_eq!(call(&h, "other", ""), None);
        assert_eq!(h.remove_owner(1), 0);
        assert_eq!(h.remove_owner(2), 1);
        assert_eq!(call(&h, "greeting", ""), None);
        assert_eq!(format!("{h:?}"), "{}");
    }

    #[test]
    fn a_provider_may_call_and_register_hooks_itself() {
        let h = Arc::new(Hooks::new());
        h.provide(1, "inner", 0, answer("inner")).unwrap();
        let h2 = h.clone();
        h.provide(
            1,
            "outer",
            0,
            Arc::new(move |_| {
                h2.provide(1, "late", 0, answer("late")).unwrap();
                h2.call("inner", b"")
            }),
        )
        .unwrap();
        assert_eq!(call(&h, "outer", ""), Some("inner".into()));
        assert_eq!(call(&h, "late", ""), Some("late".into()));
    }
}
