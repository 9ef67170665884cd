//! The `#[module]` attribute (re-exported by `lacquer-module`, which
//! documents it). It runs in three stages, one file each: [`model`] reads
//! the `mod` into functions and objects (collecting every error at its
//! span), [`spec`] writes the JSON interface, [`gen`] writes the Rust
//! dispatcher and the C ABI entry points.

use proc_macro::TokenStream;

mod gen;
mod model;
mod spec;

/// Turns a `mod` into a Lacquer module; see `lacquer_module`.
#[proc_macro_attribute]
pub fn module(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut m = syn::parse_macro_input!(item as syn::ItemMod);
    let name = match model::module_name(attr.into(), &m) {
        Ok(n) => n,
        Err(e) => return e.to_compile_error().into(),
    };
    match model::Module::read(name, &mut m) {
        Ok(model) => {
            let spec = spec::json(&model);
            gen::emit(&model, &spec, m).into()
        }
        Err(e) => e.to_compile_error().into(),
    }
}
