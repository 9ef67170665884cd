//! Lacquer's tables of facts.
//!
//! Every family of facts Lacquer shares with Varnish — the VCL types, the
//! built-in subroutines and their legal `return()` actions, the VCL variables
//! and where each may be read, set or unset — is kept here exactly once, as
//! data, with its documentation in the rows. The compiler's checks, the
//! runtime's dispatch and the reference docs are all derived from these
//! tables; nothing else in the tree repeats a list of variants.
//!
//! This crate knows nothing about parsing, sockets or execution: it is rows
//! and the few helpers needed to query them.

pub mod counters;
pub mod method;
pub mod params;
pub mod tags;
pub mod types;
pub mod vars;

pub use method::{Action, Method, MethodMask};
pub use params::{params_markdown, ParamDef, ParamError, ParamValues, PARAMS};
pub use tags::Tag;
pub use types::VclType;
pub use vars::{Var, VarDef, VARIABLES};

/// The VCL variable reference, as Markdown, made from [`VARIABLES`].
///
/// `docs/vcl-variables.md` is this text; a test keeps it fresh.
pub fn variables_markdown() -> String {
    fn where_(mask: MethodMask) -> String {
        if mask == 0 {
            return "—".into();
        }
        let groups = [
            (Method::ALL_MASK, "all"),
            (Method::CLIENT | Method::BACKEND, "client, backend"),
            (Method::CLIENT, "client"),
            (Method::BACKEND, "backend"),
            (Method::HOUSEKEEPING, "housekeeping"),
        ];
        if let Some((_, g)) = groups.iter().find(|(m, _)| *m == mask) {
            return (*g).into();
        }
        Method::in_mask(mask).map(|m| m.short()).collect::<Vec<_>>().join(", ")
    }
    let mut s = String::from(
        "# VCL variables\n\nGenerated from `crates/lacquer-defs/src/vars.rs` by \
         `lacquer_defs::variables_markdown()`; do not edit by hand (a test checks it is fresh).\n\n\
         \"client\" is vcl_recv, pipe, pass, hash, purge, miss, hit, deliver and synth; \"backend\" is \
         vcl_backend_fetch, backend_response and backend_error; \"housekeeping\" is vcl_init and vcl_fini.\n\n\
         | variable | type | read | set | unset | VCL | description |\n|---|---|---|---|---|---|---|\n",
    );
    for v in VARIABLES {
        let name = if v.is_family() { format!("{}*", v.name) } else { v.name.to_string() };
        let ver = match (v.vcl_min, v.vcl_max) {
            (40, 41) => "4.0, 4.1".to_string(),
            (lo, hi) if lo == hi => format!("{}.{} only", lo / 10, lo % 10),
            (lo, hi) => format!("{}.{}–{}.{}", lo / 10, lo % 10, hi / 10, hi % 10),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            name,
            v.ty.as_str(),
            where_(v.read),
            where_(v.write),
            where_(v.unset),
            ver,
            v.doc.replace('|', "\\|").replace('\n', " ")
        ));
    }
    s
}

#[cfg(test)]
mod docs_tests {
    #[test]
    fn variables_doc_is_fresh() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/vcl-variables.md");
        let want = super::variables_markdown();
        if std::env::var_os("LACQUER_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/vcl-variables.md is stale: run LACQUER_BLESS=1 cargo test -p lacquer-defs");
    }
}
