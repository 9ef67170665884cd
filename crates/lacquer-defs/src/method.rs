//! The built-in subroutines (VCC calls them methods) and the `return()`
//! actions each may take.
//!
//! The action sets below were read off Varnish 7.1.1's VCC by compiling
//! `return (X)` in every built-in subroutine.

/// A set of methods, one bit per [`Method`].
pub type MethodMask = u16;

macro_rules! actions {
    ($( $id:ident = $name:literal : $doc:literal ;)*) => {
        /// A `return()` action.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $( #[doc = $doc] $id, )* }

        impl Action {
            /// Every action, in table order.
            pub const ALL: &'static [Action] = &[ $( Action::$id, )* ];

            /// The action's keyword.
            pub const fn as_str(self) -> &'static str {
                match self { $( Action::$id => $name, )* }
            }

            /// Looks an action up by its keyword.
            pub fn from_name(s: &str) -> Option<Action> {
                match s { $( $name => Some(Action::$id), )* _ => None }
            }

            /// This action's bit in an action set.
            pub const fn bit(self) -> u32 { 1 << (self as u32) }
        }
    };
}

actions! {
    Abandon = "abandon": "Give up the backend fetch.";
    Deliver = "deliver": "Deliver the object or response.";
    Error = "error": "Make a backend error response (takes an optional status and reason).";
    Fail = "fail": "Fail the transaction: a 503 on the client side.";
    Fetch = "fetch": "Fetch from the backend.";
    Hash = "hash": "Look the request up in the cache.";
    Lookup = "lookup": "Continue the lookup after vcl_hash.";
    Ok = "ok": "Finish vcl_init or vcl_fini normally.";
    Pass = "pass": "Pass the request to the backend without caching (an optional DURATION makes hit-for-pass).";
    Pipe = "pipe": "Switch to a byte tunnel between client and backend.";
    Purge = "purge": "Purge the object and its variants.";
    Restart = "restart": "Restart the request from vcl_recv.";
    Retry = "retry": "Retry the backend fetch.";
    Synth = "synth": "Make a synthetic response (takes a status and an optional reason).";
    Vcl = "vcl": "Switch to the VCL with the given label.";
}

/// Which side of the house a method runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// Runs in a client request task.
    Client,
    /// Runs in a backend fetch task.
    Backend,
    /// Runs when a VCL is loaded or discarded.
    Housekeeping,
}

macro_rules! methods {
    ($( $id:ident = $name:literal, $kind:ident, [$($act:ident),*] : $doc:literal ;)*) => {
        /// A built-in subroutine.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Method { $( #[doc = $doc] $id, )* }

        impl Method {
            /// Every method, in table order (which is also Varnish's order).
            pub const ALL: &'static [Method] = &[ $( Method::$id, )* ];

            /// The subroutine's name, `vcl_recv` …
            pub const fn as_str(self) -> &'static str {
                match self { $( Method::$id => $name, )* }
            }

            /// The name without its `vcl_` prefix, as VCC uses in messages.
            pub fn short(self) -> &'static str {
                &self.as_str()[4..]
            }

            /// Looks a method up by its full name.
            pub fn from_name(s: &str) -> Option<Method> {
                match s { $( $name => Some(Method::$id), )* _ => None }
            }

            /// Where this method runs.
            pub const fn kind(self) -> MethodKind {
                match self { $( Method::$id => MethodKind::$kind, )* }
            }

            /// The legal `return()` actions, as a set of [`Action::bit`]s.
            pub const fn actions(self) -> u32 {
                match self { $( Method::$id => 0 $(| Action::$act.bit())*, )* }
            }

            /// One line of documentation.
            pub const fn doc(self) -> &'static str {
                match self { $( Method::$id => $doc, )* }
            }
        }
    };
}

methods! {
    Recv = "vcl_recv", Client, [Fail, Hash, Pass, Pipe, Purge, Restart, Synth, Vcl]:
        "Called when a request has been received and parsed.";
    Pipe = "vcl_pipe", Client, [Fail, Pipe, Synth]:
        "Called when the request is about to be piped.";
    Pass = "vcl_pass", Client, [Fail, Fetch, Restart, Synth]:
        "Called when the request is about to be passed.";
    Hash = "vcl_hash", Client, [Fail, Lookup]:
        "Called to compute the hash key of the request.";
    Purge = "vcl_purge", Client, [Fail, Restart, Synth]:
        "Called after a purge has been executed.";
    Miss = "vcl_miss", Client, [Fail, Fetch, Pass, Restart, Synth]:
        "Called when the object was not found in the cache.";
    Hit = "vcl_hit", Client, [Deliver, Fail, Pass, Restart, Synth]:
        "Called when a cache lookup found an object.";
    Deliver = "vcl_deliver", Client, [Deliver, Fail, Restart, Synth]:
        "Called before a response is delivered to the client.";
    Synth = "vcl_synth", Client, [Deliver, Fail, Restart]:
        "Called to make a synthetic response.";
    BackendFetch = "vcl_backend_fetch", Backend, [Abandon, Error, Fail, Fetch]:
        "Called before a backend request is sent.";
    BackendResponse = "vcl_backend_response", Backend, [Abandon, Deliver, Error, Fail, Pass, Retry]:
        "Called after the response headers have been received from a backend.";
    BackendError = "vcl_backend_error", Backend, [Abandon, Deliver, Fail, Retry]:
        "Called when a backend fetch failed or after max_retries.";
    Init = "vcl_init", Housekeeping, [Fail, Ok]:
        "Called when the VCL is loaded, before any request passes through it.";
    Fini = "vcl_fini", Housekeeping, [Ok]:
        "Called when the VCL is discarded, after all requests have left it.";
}

impl Method {
    /// This method's bit in a [`MethodMask`].
    pub const fn bit(self) -> MethodMask {
        1 << (self as u16)
    }

    /// The methods of one kind, as a mask.
    pub const fn mask_of(kind: MethodKind) -> MethodMask {
        let mut m = 0;
        let mut i = 0;
        while i < Method::ALL.len() {
            let k = Method::ALL[i].kind();
            if k as u8 == kind as u8 {
                m |= Method::ALL[i].bit();
            }
            i += 1;
        }
        m
    }

    /// Every method, as a mask.
    pub const ALL_MASK: MethodMask = (1 << Method::ALL.len() as u16) - 1;

    /// The client-side methods.
    pub const CLIENT: MethodMask = Method::mask_of(MethodKind::Client);
    /// The backend-side methods.
    pub const BACKEND: MethodMask = Method::mask_of(MethodKind::Backend);
    /// `vcl_init` and `vcl_fini`.
    pub const HOUSEKEEPING: MethodMask = Method::mask_of(MethodKind::Housekeeping);

    /// The methods in a mask, in table order.
    pub fn in_mask(mask: MethodMask) -> impl Iterator<Item = Method> {
        Method::ALL.iter().copied().filter(move |m| mask & m.bit() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_partition_the_methods() {
        assert_eq!(Method::CLIENT | Method::BACKEND | Method::HOUSEKEEPING, Method::ALL_MASK);
        assert_eq!(Method::CLIENT & Method::BACKEND, 0);
        assert_eq!(Method::in_mask(Method::BACKEND).count(), 3);
    }

    #[test]
    fn return_tables() {
        assert!(Method::Recv.actions() & Action::Pipe.bit() != 0);
        assert!(Method::Hash.actions() & Action::Pass.bit() == 0);
        assert_eq!(Method::from_name("vcl_backend_error"), Some(Method::BackendError));
        assert_eq!(Method::BackendError.short(), "backend_error");
    }
}
