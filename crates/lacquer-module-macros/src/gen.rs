//! Stage three: the Rust dispatcher (`MODULE`), the spec constant (`SPEC`)
//! and, under the crate's `cdylib` feature, the C ABI descriptor.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, ItemMod, Lit};

use crate::model::{Func, Kind, Module};
use crate::spec::ABI;

/// The `Arg` a default literal stands for, for a VCL type.
fn default_arg(vcl: &str, l: &Lit) -> TokenStream {
    let m = quote!(::lacquer_module::Arg);
    let num = |l: &Lit| -> TokenStream {
        match l {
            Lit::Int(i) => {
                let v: f64 = i.base10_parse().unwrap_or(0.0);
                quote!(#v)
            }
            Lit::Float(f) => {
                let v: f64 = f.base10_parse().unwrap_or(0.0);
                quote!(#v)
            }
            _ => quote!(0.0),
        }
    };
    match (vcl, l) {
        ("ENUM", Lit::Str(s)) => quote!(#m::Enum(#s)),
        (_, Lit::Str(s)) => {
            let b = syn::LitByteStr::new(s.value().as_bytes(), s.span());
            quote!(#m::Str(::core::option::Option::Some(#b)))
        }
        (_, Lit::Bool(b)) => quote!(#m::Bool(#b)),
        ("INT", Lit::Int(i)) => {
            let v: i64 = i.base10_parse().unwrap_or(0);
            quote!(#m::Int(#v))
        }
        ("DURATION", l) => {
            let v = num(l);
            quote!(#m::Duration(#v))
        }
        ("BYTES", l) => {
            let v = num(l);
            quote!(#m::Bytes(#v))
        }
        ("TIME", l) => {
            let v = num(l);
            quote!(#m::Time(#v))
        }
        (_, l) => {
            let v = num(l);
            quote!(#m::Real(#v))
        }
    }
}

/// The body of one match arm: convert, fetch private state, call, give
/// private state back, convert the result.
fn call(module: &str, f: &Func, callee: TokenStream, ctor: bool) -> TokenStream {
    let p = quote!(::lacquer_module::__private);
    let mut prep = Vec::new();
    let mut pass = Vec::new();
    let mut after = Vec::new();
    let mut i = 0usize;
    let nargs = f.params.iter().filter(|p| !matches!(p.kind, Kind::Ctx)).count();
    let fname = format!("{module}.{}", f.name);
    for (n, param) in f.params.iter().enumerate() {
        let v = format_ident!("__lq_v{}", n);
        let ty = &param.ty;
        match &param.kind {
            Kind::Ctx => pass.push(quote!(&mut *__lq_ctx)),
            Kind::Priv { scope, shared } => {
                let sc = match *scope {
                    "PRIV_TASK" => quote!(Task),
                    "PRIV_TOP" => quote!(Top),
                    "PRIV_SESS" => quote!(Sess),
                    "PRIV_CALL" => quote!(Call),
                    _ => quote!(Vcl),
                };
                if *shared {
                    prep.push(quote!(let #v = __lq_ctx.__shared_priv(::lacquer_module::PrivScope::#sc)?;));
                    pass.push(quote!(::lacquer_module::Shared::__new(#v)));
                } else {
                    prep.push(quote!(let mut #v = __lq_ctx.__take_priv(::lacquer_module::PrivScope::#sc)?;));
                    pass.push(quote!(::lacquer_module::Exclusive::__new(&mut #v)));
                    after.push(quote!(__lq_ctx.put_priv(::lacquer_module::PrivScope::#sc, #v);));
                }
                i += 1;
            }
            Kind::Value { vcl, name, default, .. } => {
                let arg = match default {
                    Some(l) => {
                        let d = default_arg(vcl, l);
                        quote!(match __lq_args[#i] { ::lacquer_module::Arg::Absent => #d, a => a })
                    }
                    None => quote!(__lq_args[#i]),
                };
                let what = format!("{fname}: argument '{name}'");
                prep.push(quote! {
                    let #v = <#ty as #p::FromArg>::hold(&#arg)
                        .map_err(|e| ::lacquer_module::Failure(format!("{}: {}", #what, e)))?;
                });
                pass.push(quote!(<#ty as #p::FromArg>::get(&#v)));
                i += 1;
            }
        }
    }
    let convert = if ctor && f.fallible {
        quote!(#p::result_object(__lq_r))
    } else if ctor {
        quote!(#p::IntoObject::into_object(__lq_r))
    } else {
        quote!(#p::IntoRet::into_ret(__lq_r))
    };
    let count = format!("{fname}: called with {{}} arguments, takes {nargs}");
    quote! {{
        if __lq_args.len() != #nargs {
            return Err(::lacquer_module::Failure(format!(#count, __lq_args.len())));
        }
        #(#prep)*
        let __lq_r = #callee(#(#pass),*);
        #(#after)*
        #convert
    }}
}

pub fn emit(m: &Module, spec: &str, mut item: ItemMod) -> TokenStream {
    let name = &m.name;
    let mut arms = Vec::new();
    for (i, f) in m.functions.iter().enumerate() {
        let i = i as u32;
        let id = &f.ident;
        let body = call(name, f, quote!(#id), false);
        arms.push(quote!(::lacquer_module::Target::Function(#i) => #body));
    }
    for (o, obj) in m.objects.iter().enumerate() {
        let o = o as u32;
        let ty = &obj.ty;
        let ctor = &obj.ctor.ident;
        let body = call(name, &obj.ctor, quote!(#ty::#ctor), true);
        arms.push(quote!(::lacquer_module::Target::Constructor(#o) => #body));
        for (k, meth) in obj.methods.iter().enumerate() {
            let k = k as u32;
            let id = &meth.ident;
            let body = call(name, meth, quote!(__lq_this.#id), false);
            let wrong = format!("{name}.{}.{}: called on another object", obj.name, meth.name);
            arms.push(quote! {
                ::lacquer_module::Target::Method { object: #o, method: #k, this } => {
                    let __lq_this: &#ty = this.downcast_ref::<#ty>()
                        .ok_or_else(|| ::lacquer_module::Failure(#wrong.to_string()))?;
                    #body
                }
            });
        }
    }
    let unknown = format!("{name}: no such function or method");

    // The C ABI entry table.
    let mut entry_fns = Vec::new();
    let mut rows = Vec::new();
    let mut add = |kind: &str, object: u32, index: u32| {
        let n = rows.len();
        let f = format_ident!("__lq_entry_{}", n);
        let k = Ident::new(kind, Span::call_site());
        let a = quote!(::lacquer_module::__private::lacquer_abi);
        entry_fns.push(quote! {
            unsafe extern "C" fn #f(
                ctx: *const #a::CallCtx, this: *mut ::core::ffi::c_void,
                args: *const #a::Value, nargs: usize, out: *mut #a::Value,
            ) -> i32 {
                // SAFETY: the ABI's contract, passed on.
                unsafe { ::lacquer_module::ffi::enter(&MODULE, #a::EntryKind::#k, #object, #index, ctx, this, args, nargs, out) }
            }
        });
        rows.push(
            quote!(#a::Entry { kind: #a::EntryKind::#k as u32, object: #object, index: #index, reserved: 0, call: #f }),
        );
    };
    for i in 0..m.functions.len() {
        add("Function", 0, i as u32);
    }
    for (o, obj) in m.objects.iter().enumerate() {
        add("Constructor", o as u32, 0);
        for k in 0..obj.methods.len() {
            add("Method", o as u32, k as u32);
        }
        add("Destructor", o as u32, 0);
    }
    let n_entries = rows.len();
    let spec_z = format!("{spec}\0");
    let name_z = format!("{name}\0");
    let (abi_major, abi_minor) = ABI;
    let a = quote!(::lacquer_module::__private::lacquer_abi);

    let generated: TokenStream = quote! {
        /// This module's interface, as the VCL compiler reads it at `import`.
        pub const SPEC: &str = #spec;

        const _: () = assert!(
            #a::ABI_MAJOR == #abi_major && #a::ABI_MINOR == #abi_minor,
            "lacquer-module-macros and lacquer-abi disagree on the ABI version"
        );

        /// This module, for linking into a server's `Registry`.
        pub static MODULE: ::lacquer_module::ModuleDef = ::lacquer_module::ModuleDef {
            name: #name,
            spec: SPEC,
            call: __lq_dispatch,
        };

        #[allow(unused_mut, unused_variables, clippy::all, clippy::pedantic)]
        fn __lq_dispatch(
            __lq_ctx: &mut ::lacquer_module::Ctx<'_>,
            __lq_target: ::lacquer_module::Target<'_>,
            __lq_args: &[::lacquer_module::Arg<'_>],
        ) -> ::core::result::Result<::lacquer_module::Value, ::lacquer_module::Failure> {
            match __lq_target {
                #(#arms)*
                _ => Err(::lacquer_module::Failure(#unknown.to_string())),
            }
        }

        // A crate without a `cdylib` feature gets no export, and no warning.
        #[allow(unexpected_cfgs)]
        mod __lq_abi {
        #[cfg(feature = "cdylib")]
        mod export {
            use super::super::MODULE;
            #(#entry_fns)*

            static ENTRIES: [#a::Entry; #n_entries] = [#(#rows),*];

            /// The C ABI descriptor of this module.
            #[no_mangle]
            pub static LACQUER_MODULE_DESCRIPTOR: #a::ModuleDescriptor = #a::ModuleDescriptor {
                magic: #a::DESCRIPTOR_MAGIC,
                abi_major: #a::ABI_MAJOR,
                abi_minor: #a::ABI_MINOR,
                api_level: #a::ApiLevel::Stable as u32,
                reserved: 0,
                name: #name_z.as_ptr(),
                spec: #spec_z.as_ptr(),
                build_hash: ::core::ptr::null(),
                spec_len: #spec_z.len() - 1,
                entries: ENTRIES.as_ptr(),
                n_entries: #n_entries,
            };
        }
        }
    };
    if let Some((_, items)) = &mut item.content {
        items.push(syn::Item::Verbatim(generated));
    }
    quote!(#item)
}
