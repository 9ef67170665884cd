//! A module that calls hooks by name, built as a shared library on its
//! own: it does not know which module, if any, answers.

#[lacquer_module::module]
pub mod consumer {
    //! Calls named hooks.
    use lacquer_module::Ctx;

    /// The answer to hook `name` for `arg`, or `nobody` when nobody
    /// answered.
    pub fn call(ctx: &mut Ctx, name: &str, arg: &str, #[default("(nobody answered)")] nobody: &str) -> String {
        match ctx.hook_call(name, arg.as_bytes()) {
            Some(a) => String::from_utf8_lossy(&a).into_owned(),
            None => nobody.to_string(),
        }
    }

    /// What the host says of itself over ABI 1.2: the VCL's name and a
    /// parameter, logged globally too.
    pub fn whoami(ctx: &mut Ctx, param: &str) -> String {
        let line = format!("{} {}", ctx.vcl_name(), ctx.param(param).unwrap_or_else(|| "-".into()));
        ctx.log_global("Debug", line.as_bytes());
        line
    }
}
