//! `kv`: a key-value map shared by every request, as a Lacquer module
//! built outside Lacquer's tree and loaded from its shared library.
//!
//! ```vcl
//! vcl 4.1;
//! import kv from "/path/to/libkv.so";
//!
//! sub vcl_init {
//!     new store = kv.map();
//! }
//! sub vcl_recv {
//!     if (req.method == "PUT") {
//!         store.set(req.url, req.http.value);
//!         return (synth(201));
//!     }
//! }
//! sub vcl_deliver {
//!     set resp.http.value = store.get(req.url);
//! }
//! ```

#[lacquer_module::module]
pub mod kv {
    //! A key-value map shared by every request of the VCL that made it.

    use std::collections::HashMap;
    use std::sync::RwLock;

    /// A map from strings to strings. Every request reads and writes the
    /// same one; it lives as long as the VCL that made it in `vcl_init`.
    pub struct Map {
        entries: RwLock<HashMap<String, String>>,
    }

    impl Map {
        /// Makes an empty map.
        pub fn new() -> Map {
            Map { entries: RwLock::default() }
        }

        /// Stores `value` under `key`, replacing what was there.
        pub fn set(&self, key: &str, value: &str) {
            self.entries.write().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), value.to_string());
        }

        /// The value stored under `key`, or an empty string.
        pub fn get(&self, key: &str) -> String {
            self.entries.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned().unwrap_or_default()
        }
    }
}
