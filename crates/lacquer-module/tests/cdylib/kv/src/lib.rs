//! A module built as a shared library and loaded by lacquer-module's tests.

#[lacquer_module::module]
pub mod kv {
    //! Key-value store, loaded from a file.
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;

    use lacquer_module::{Ctx, Header, PrivCall, PrivTask, Strands};

    static DROPS: AtomicI64 = AtomicI64::new(0);

    /// Greets, and logs it.
    pub fn hello(ctx: &mut Ctx, #[default("world")] who: &str) -> String {
        let msg = format!("hello from {}", ctx.method());
        ctx.log(msg.as_bytes());
        format!("hello, {who}")
    }

    /// Counts the calls in this task.
    pub fn count(n: PrivTask<i64>) -> i64 {
        let mut n = n;
        let c = n.get_or_insert_with(|| 0);
        *c += 1;
        *c
    }

    /// The first value this call site saw.
    pub fn first(p: PrivCall<String>, v: &str) -> Result<String, lacquer_module::Failure> {
        p.get_or_init(|| v.to_string()).cloned()
    }

    /// Copies a header's value to another, upper-cased, with the parts appended.
    pub fn shout(ctx: &mut Ctx, from: Header, to: Header, tail: Strands) -> Result<(), lacquer_module::Failure> {
        let mut v = ctx.header(from.which, from.name, 0).unwrap_or(b"").to_ascii_uppercase();
        v.extend_from_slice(&tail.to_vec());
        ctx.set_header(to.which, to.name, &v)
    }

    /// Fails with the message.
    pub fn fail(msg: &str) -> Result<i64, String> {
        Err(msg.to_string())
    }

    /// Panics (the host must see a failure, not a crash).
    pub fn boom() -> i64 {
        panic!("boom")
    }

    /// How many maps were dropped.
    pub fn drops() -> i64 {
        DROPS.load(Ordering::SeqCst)
    }

    /// A map shared by every task.
    pub struct Map {
        m: Mutex<HashMap<String, String>>,
    }

    impl Map {
        /// Makes a map.
        pub fn new() -> Map {
            Map { m: Mutex::default() }
        }

        /// Stores a value.
        pub fn set(&self, key: &str, value: &str) {
            self.m.lock().unwrap().insert(key.into(), value.into());
        }

        /// The value, or "".
        pub fn get(&self, key: &str) -> String {
            self.m.lock().unwrap().get(key).cloned().unwrap_or_default()
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}
