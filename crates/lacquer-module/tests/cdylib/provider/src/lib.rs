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

    /// The server's events seen since `watch_server`: tick, reload, open,
    /// close, done, and the last `request_done` argument.
    static SEEN: std::sync::Mutex<([u64; 5], String)> = std::sync::Mutex::new(([0; 5], String::new()));

    /// Provides every server event (`lacquer.tick` …), counting them: the
    /// server notifies modules through the same registry, across the C ABI.
    pub fn watch_server(ctx: &mut Ctx) -> Result<(), Failure> {
        let names = ["lacquer.tick", "lacquer.reload", "lacquer.conn_open", "lacquer.conn_close", "lacquer.request_done"];
        for (i, name) in names.into_iter().enumerate() {
            ctx.hook_provide(
                name,
                0,
                Arc::new(move |arg: &[u8]| {
                    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
                    seen.0[i] += 1;
                    if i == 4 {
                        seen.1 = String::from_utf8_lossy(arg).into_owned();
                    }
                    None
                }),
            )?;
        }
        Ok(())
    }

    /// What `watch_server` counted: `tick=N reload=N open=N close=N
    /// done=N last=ARG`.
    pub fn server_events() -> String {
        let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        let [tick, reload, open, close, done] = seen.0;
        format!("tick={tick} reload={reload} open={open} close={close} done={done} last={}", seen.1)
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
