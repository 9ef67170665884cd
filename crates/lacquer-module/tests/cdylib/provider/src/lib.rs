//! A module that provides the hook "greeting" for other modules, built as
//! a shared library on its own: nothing links it to `consumer`.

#[lacquer_module::module]
pub mod provider {
    //! Provides the hook "greeting".
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use lacquer_module::{Ctx, Event, Failure};

    static FREED: AtomicI64 = AtomicI64::new(0);

    /// Counts its release: the host frees every provider once.
    struct Counted;

    impl Drop for Counted {
        fn drop(&mut self) {
            FREED.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// On `load`, provides "greeting" with order 100: "hello, ARG", or a
    /// decline for an empty argument.
    #[event]
    pub fn event(ctx: &mut Ctx, e: Event) -> Result<(), Failure> {
        if e == Event::Load {
            let counted = Counted;
            ctx.hook_provide(
                "greeting",
                100,
                Arc::new(move |arg: &[u8]| {
                    let _ = &counted;
                    (!arg.is_empty()).then(|| [&b"hello, "[..], arg].concat())
                }),
            )?;
        }
        Ok(())
    }

    /// How many of its providers the host has released.
    pub fn freed() -> i64 {
        FREED.load(Ordering::SeqCst)
    }

    /// Answers "greeting" for one argument.
    pub struct Answer {
        _private: (),
    }

    impl Answer {
        /// Provides "greeting" with `order`: `reply` when the argument is
        /// `key`, a decline otherwise. Stays registered until the VCL is
        /// discarded (the provider does not need the object).
        pub fn new(ctx: &mut Ctx, key: &str, reply: &str, order: i64) -> Result<Answer, Failure> {
            let (key, reply, counted) = (key.as_bytes().to_vec(), reply.as_bytes().to_vec(), Counted);
            let order = i32::try_from(order).map_err(|_| Failure("order out of range".into()))?;
            ctx.hook_provide(
                "greeting",
                order,
                Arc::new(move |arg: &[u8]| {
                    let _ = &counted;
                    (arg == key).then(|| reply.clone())
                }),
            )?;
            Ok(Answer { _private: () })
        }
    }
}
