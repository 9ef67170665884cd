//! Directors (Varnish's `cache_director.c`, the VDI): what
//! `req.backend_hint` and `bereq.backend` name is a director, which picks
//! the backend a fetch or a pipe actually connects to when it happens
//! (`VDI_Resolve`). A backend is the simplest director: it picks itself.
//! The module system's directors (round-robin, fallback, hashing …) plug in
//! here by implementing [`Director`] and taking `BackendId`s after the
//! VCL's own backends.

use crate::vbe::Backend;
use crate::vcl::Vcl;

/// Something VCL can send a request to.
pub(crate) trait Director: Send + Sync {
    /// The name VCL and the logs show.
    fn name(&self) -> &str;
    /// Whether it could serve now (`std.healthy()`).
    fn healthy(&self, vcl: &Vcl) -> bool;
    /// The backend a task connects to, or none (then the fetch fails as
    /// Varnish's does with "no backend connection").
    fn resolve<'a>(&'a self, vcl: &'a Vcl) -> Option<&'a Backend>;
}

impl Director for Backend {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn healthy(&self, _vcl: &Vcl) -> bool {
        Backend::healthy(self)
    }

    fn resolve<'a>(&'a self, _vcl: &'a Vcl) -> Option<&'a Backend> {
        Some(self)
    }
}

impl Vcl {
    /// The director a `BackendId` names.
    pub(crate) fn director(&self, id: lacquer_vcl::program::BackendId) -> Option<&dyn Director> {
        self.backends.get(id as usize).map(|b| &**b as &dyn Director)
    }

    /// The index of a resolved backend among the VCL's backends.
    pub(crate) fn backend_index(&self, be: &Backend) -> Option<usize> {
        self.backends.iter().position(|b| std::ptr::eq(&**b, be))
    }
}
