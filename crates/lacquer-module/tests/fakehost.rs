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
    /// The hook registry, shared by every host of one "server".
    pub hooks: Arc<Hooks>,
    /// The VCL this host runs for: the owner of the hooks it registers.
    pub vcl: u64,
    pub vcl_name: String,
    pub params: HashMap<String, String>,
    pub global: Vec<(String, String)>,
    /// The client workspace, when the test gives the task one.
    pub ws: Option<FakeWs>,
    /// Records written with `log_record`: vxid, tag, client side, text.
    pub records: Vec<(u64, String, bool, String)>,
}

/// A workspace that counts bytes against `size`, as the server's does
/// (without its rounding).
#[derive(Default)]
pub struct FakeWs {
    pub size: usize,
    pub used: std::cell::Cell<usize>,
    pub reserved: std::cell::Cell<Option<usize>>,
    pub overflowed: std::cell::Cell<bool>,
}

impl Workspace for FakeWs {
    fn alloc(&self, len: usize) -> bool {
        let fits = self.reserved.get().is_none() && len <= self.free();
        if fits {
            self.used.set(self.used.get() + len);
        } else {
            self.overflowed.set(true);
        }
        fits
    }
    fn free(&self) -> usize {
        self.size - self.used.get()
    }
    fn overflowed(&self) -> bool {
        self.overflowed.get()
    }
    fn mark_overflow(&self) {
        self.overflowed.set(true);
    }
    fn reserve(&self, len: Option<usize>) -> usize {
        let n = len.unwrap_or(self.free());
        let n = if n <= self.free() { n } else { 0 };
        self.reserved.set(Some(n));
        n
    }
    fn release(&self, len: usize) {
        if let Some(r) = self.reserved.take() {
            self.used.set(self.used.get() + len.min(r));
        }
    }
    fn snapshot(&self) -> WsSnap {
        if self.overflowed.get() {
            WsSnap::Overflowed
        } else {
            WsSnap::At(self.used.get())
        }
    }
    fn reset(&self, snap: WsSnap) {
        self.reserved.set(None);
        if let WsSnap::At(n) = snap {
            self.used.set(n);
        }
    }
}

impl FakeHost {
    pub fn new(method: &str) -> FakeHost {
        FakeHost { method: method.into(), ..FakeHost::default() }
    }

    /// A host for VCL `vcl` sharing the hook registry `hooks`.
    #[allow(dead_code)]
    pub fn for_vcl(method: &str, hooks: &Arc<Hooks>, vcl: u64) -> FakeHost {
        FakeHost { hooks: hooks.clone(), vcl, vcl_name: format!("vcl{vcl}"), ..FakeHost::new(method) }
    }

    /// Ends the task: its private state is released.
    #[allow(dead_code)]
    pub fn end_task(&mut self) {
        self.task.clear();
    }
}

impl Host for FakeHost {
    fn workspace(&self, which: WsId) -> Option<&dyn Workspace> {
        self.ws.as_ref().filter(|_| which == WsId::Client).map(|w| w as &dyn Workspace)
    }
    fn task_workspace(&self) -> Option<&dyn Workspace> {
        self.ws.as_ref().map(|w| w as &dyn Workspace)
    }
    fn log_record(&mut self, vxid: u64, tag: &str, client: bool, msg: &[u8]) -> Result<(), Failure> {
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Failure(format!("no such log tag: {tag}")));
        }
        self.records.push((vxid, tag.into(), client, String::from_utf8_lossy(msg).into_owned()));
        Ok(())
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn log(&mut self, msg: &[u8]) {
        self.log.push(String::from_utf8_lossy(msg).into_owned());
    }
    fn log_global(&mut self, tag: &str, msg: &[u8]) {
        self.global.push((tag.into(), String::from_utf8_lossy(msg).into_owned()));
    }
    fn vcl_name(&self) -> &str {
        &self.vcl_name
    }
    fn param(&self, name: &str) -> Option<String> {
        self.params.get(name).cloned()
    }
    fn hook_provide(&mut self, name: &str, order: i32, f: HookFn) -> Result<(), Failure> {
        if self.method != "vcl_init" {
            return Err(Failure(format!("hooks cannot be provided in {}", self.method)));
        }
        self.hooks.provide(self.vcl, name, order, f).map_err(Failure)
    }
    fn hook_call(&self, name: &str, arg: &[u8]) -> Option<Vec<u8>> {
        self.hooks.call(name, arg)
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
    fn ban(&mut self, expr: Option<&[u8]>) -> Result<(), String> {
        let e = String::from_utf8_lossy(expr.ok_or("Null argument")?).into_owned();
        if e.contains("==") || e.contains('~') {
            self.bans.push(e);
            Ok(())
        } else {
            Err(format!("Expected comparison operator in {e}"))
        }
    }
}
