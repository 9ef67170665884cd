//! Directors (Varnish's `cache_director.c`, the VDI): what
//! `req.backend_hint` and `bereq.backend` name is a director, which picks
//! the backend a fetch or a pipe actually connects to when it happens
//! (`VDI_Resolve`). A backend is the simplest director: it picks itself.
//! The module system's directors (round-robin, fallback, hashing …) plug in
//! here: a module object's constructor makes one with
//! `Host::add_director`, and it takes the `BackendId` after the VCL's own
//! backends that is its object's (`backends.len() + instance`), so VCL
//! holds it like any backend. Resolving one ([`Vcl::resolve_with`]) asks
//! the module which member to use, for the task at hand, and resolves
//! that in turn (directors nest), at most [`MAX_DEPTH`] deep.

use crate::vbe::Backend;
use crate::vcl::Vcl;

/// Something VCL can send a request to.
pub(crate) trait Director: Send + Sync {
    /// The name VCL and the logs show.
    fn name(&self) -> &str;
    /// Whether it could serve now (`std.healthy()`).
    fn healthy(&self, vcl: &Vcl) -> bool;
}

impl Director for Backend {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn healthy(&self, _vcl: &Vcl) -> bool {
        Backend::healthy(self)
    }
}

/// How deep directors may nest before resolving gives up (a director
/// that has itself among its members would otherwise never end).
pub(crate) const MAX_DEPTH: usize = 16;

/// A director a module made: the object's name, and the module's side.
pub(crate) struct ModDirector {
    pub name: String,
    pub d: std::sync::Arc<dyn lacquer_module::Director>,
}

/// What a module object made for VCL to hold as a BACKEND.
pub(crate) enum ModBackend {
    Director(ModDirector),
    /// A backend that answers itself (see `vbe::native`).
    Native(Box<Backend>),
}

impl Director for ModDirector {
    fn name(&self) -> &str {
        &self.name
    }

    fn healthy(&self, vcl: &Vcl) -> bool {
        self.d.healthy(&|b| vcl.member_healthy(b))
    }
}

/// How many backends modules may make at run time in one VCL.
pub(crate) const MAX_DYNAMIC: usize = 1024;

/// The backends modules make at run time (Varnish's dynamic backends,
/// `VRT_new_backend`). Their `BackendId`s follow the module objects'
/// (`backends.len() + mod_backends.len() + i`). A slot is filled once and
/// never emptied, so a `&Backend` resolved from it lives as long as the
/// VCL; a deleted backend stays for the tasks that hold it but leaves the
/// listing and the count. Hence the fixed capacity: past it, making one
/// fails.
pub(crate) struct Dynamic {
    slots: Box<[std::sync::OnceLock<std::sync::Arc<Backend>>]>,
    gone: Box<[std::sync::atomic::AtomicBool]>,
    next: std::sync::atomic::AtomicUsize,
}

impl Default for Dynamic {
    fn default() -> Dynamic {
        Dynamic {
            slots: (0..MAX_DYNAMIC).map(|_| std::sync::OnceLock::new()).collect(),
            gone: (0..MAX_DYNAMIC).map(|_| Default::default()).collect(),
            next: Default::default(),
        }
    }
}

impl Dynamic {
    /// Adds one; its place, or `None` when all are taken.
    pub(crate) fn add(&self, be: std::sync::Arc<Backend>) -> Option<usize> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.slots.get(i)?.set(be).ok()?;
        Some(i)
    }

    /// The backend at a place, deleted or not.
    pub(crate) fn get(&self, i: usize) -> Option<&std::sync::Arc<Backend>> {
        self.slots.get(i)?.get()
    }

    /// Retires the backend at a place: sick from now on, and gone from
    /// the listing and the count.
    pub(crate) fn delete(&self, i: usize) {
        if let Some(b) = self.get(i) {
            b.retire();
        }
        if let Some(g) = self.gone.get(i) {
            g.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// The backends not deleted, with their places.
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &std::sync::Arc<Backend>)> {
        self.slots
            .iter()
            .enumerate()
            .map_while(|(i, s)| s.get().map(|b| (i, b)))
            .filter(|(i, _)| !self.gone[*i].load(std::sync::atomic::Ordering::Acquire))
    }
}

thread_local! {
    /// How deep the health question being answered on this thread is.
    static HEALTH_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Vcl {
    /// The director a `BackendId` names.
    pub(crate) fn director(&self, id: lacquer_vcl::program::BackendId) -> Option<&dyn Director> {
        if let Some(b) = self.backends.get(id as usize).or_else(|| self.dynamic_backend(id)) {
            return Some(&**b as &dyn Director);
        }
        match self.mod_backend(id)? {
            ModBackend::Director(d) => Some(d as &dyn Director),
            ModBackend::Native(b) => Some(&**b as &dyn Director),
        }
    }

    /// The first `BackendId` of the backends modules make at run time.
    pub(crate) fn dynamic_base(&self) -> usize {
        self.backends.len() + self.mod_backends.len()
    }

    /// What a `BackendId` past the module objects' names.
    pub(crate) fn dynamic_backend(&self, id: lacquer_vcl::program::BackendId) -> Option<&std::sync::Arc<Backend>> {
        self.dynamic.get((id as usize).checked_sub(self.dynamic_base())?)
    }

    /// The backend the director `id` names resolves to, asking each module
    /// director on the way with `ask(instance, director)`, which lends it
    /// the task (see `vmod::resolve`).
    pub(crate) fn resolve_with(
        &self,
        id: lacquer_vcl::program::BackendId,
        ask: &mut dyn FnMut(usize, &dyn lacquer_module::Director) -> Option<lacquer_module::Backend>,
    ) -> Option<&Backend> {
        let mut id = id;
        for _ in 0..MAX_DEPTH {
            if let Some(be) = self.backends.get(id as usize).or_else(|| self.dynamic_backend(id)) {
                return Some(be);
            }
            match self.mod_backend(id)? {
                ModBackend::Director(d) => {
                    let instance = id as usize - self.backends.len();
                    id = u32::try_from(ask(instance, &*d.d)?.0?).ok()?;
                }
                ModBackend::Native(be) => return Some(be),
            }
        }
        None
    }

    /// What a `BackendId` past the VCL's backends names.
    fn mod_backend(&self, id: lacquer_vcl::program::BackendId) -> Option<&ModBackend> {
        self.mod_backends.get((id as usize).checked_sub(self.backends.len())?)?.get()
    }

    /// Whether a member of a module director could serve (`false` for a
    /// BACKEND that names nothing, or past [`MAX_DEPTH`]).
    pub(crate) fn member_healthy(&self, b: lacquer_module::Backend) -> bool {
        let Some(d) = b.0.and_then(|id| u32::try_from(id).ok()).and_then(|id| self.director(id)) else {
            return false;
        };
        let depth = HEALTH_DEPTH.with(|c| c.get());
        if depth >= MAX_DEPTH {
            return false;
        }
        HEALTH_DEPTH.with(|c| c.set(depth + 1));
        let ok = d.healthy(self);
        HEALTH_DEPTH.with(|c| c.set(depth));
        ok
    }

    /// The `BackendId` of a resolved backend: its place among the VCL's
    /// backends, or the id of the module object that made it.
    pub(crate) fn backend_id(&self, be: &Backend) -> Option<lacquer_vcl::program::BackendId> {
        if let Some(i) = self.backend_index(be) {
            return u32::try_from(i).ok();
        }
        let native = self.mod_backends.iter().position(|slot| match slot.get() {
            Some(ModBackend::Native(b)) => std::ptr::eq(&**b, be),
            _ => false,
        });
        if let Some(i) = native {
            return u32::try_from(self.backends.len() + i).ok();
        }
        let i = (0..MAX_DYNAMIC).map_while(|i| self.dynamic.get(i)).position(|b| std::ptr::eq(&**b, be))?;
        u32::try_from(self.dynamic_base() + i).ok()
    }

    /// The index of a resolved backend among the VCL's backends.
    pub(crate) fn backend_index(&self, be: &Backend) -> Option<usize> {
        self.backends.iter().position(|b| std::ptr::eq(&**b, be))
    }
}
