//! A host made of a few maps, for the tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use lacquer_module::*;

#[derive(Default)]
pub struct FakeHost {
    pub method: String,
    pub log: Vec<String>,
    pub headers: Vec<(Http, String, String)>,
    pub client: Option<SocketAddr>,
    pub task: HashMap<PrivScope, PrivSlot>,
    pub shared: HashMap<PrivScope, Arc<SharedSlot>>,
    pub healthy: HashMap<u64, bool>,
    pub bans: Vec<String>,
}

impl FakeHost {
    pub fn new(method: &str) -> FakeHost {
        FakeHost { method: method.into(), ..FakeHost::default() }
    }

    /// Ends the task: its private state is released.
    #[allow(dead_code)]
    pub fn end_task(&mut self) {
        self.task.clear();
    }
}

impl Host for FakeHost {
    fn method(&self) -> &str {
        &self.method
    }
    fn log(&mut self, msg: &[u8]) {
        self.log.push(String::from_utf8_lossy(msg).into_owned());
    }
    fn header(&self, which: Http, name: &[u8], nth: usize) -> Option<&[u8]> {
        self.headers
            .iter()
            .filter(|(w, n, _)| *w == which && n.as_bytes().eq_ignore_ascii_case(name))
            .nth(nth)
            .map(|(_, _, v)| v.as_bytes())
    }
    fn set_header(&mut self, which: Http, name: &[u8], value: &[u8]) -> Result<(), Failure> {
        self.unset_header(which, name)?;
        self.headers.push((
            which,
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        Ok(())
    }
    fn unset_header(&mut self, which: Http, name: &[u8]) -> Result<(), Failure> {
        self.headers.retain(|(w, n, _)| !(*w == which && n.as_bytes().eq_ignore_ascii_case(name)));
        Ok(())
    }
    fn ip(&self, kind: IpKind) -> Option<SocketAddr> {
        match kind {
            IpKind::Client => self.client,
            _ => None,
        }
    }
    fn take_priv(&mut self, scope: PrivScope) -> Option<PrivSlot> {
        if scope == PrivScope::Sess && self.method == "vcl_init" {
            return None;
        }
        Some(self.task.remove(&scope).flatten())
    }
    fn put_priv(&mut self, scope: PrivScope, slot: PrivSlot) {
        self.task.insert(scope, slot);
    }
    fn shared_priv(&self, scope: PrivScope) -> Option<Arc<SharedSlot>> {
        self.shared.get(&scope).cloned()
    }
    fn backend_healthy(&self, be: Backend) -> Option<bool> {
        self.healthy.get(&be.0?).copied()
    }
    fn ban(&mut self, expr: &[u8]) -> Result<(), String> {
        let e = String::from_utf8_lossy(expr).into_owned();
        if e.contains("==") || e.contains('~') {
            self.bans.push(e);
            Ok(())
        } else {
            Err(format!("Expected comparison operator in {e}"))
        }
    }
}
