//! The compiler driver (VCC's `vcc_compile.c`): reads the sources, splices
//! includes, walks the top level, runs the cross-reference checks and
//! assembles the [`Program`].
//!
//! Like VCC, the compiler parses, type-checks and lowers in one pass, and
//! stops at the first error: the error text a Varnish user sees depends on
//! that order, so it is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lacquer_defs::{Method, VclType};

use crate::diag::{Diag, Piece};
use crate::program::*;
use crate::source::{Sources, Span, SrcId};
use crate::symb::{Sym, SymKind, Symbols};
use crate::token::{lex, Op, Tok, Token};

/// The built-in VCL, appended to every program as the source `<builtin>`.
pub const BUILTIN_VCL: &str = include_str!("builtin.vcl");

/// Compiler settings. `Default` is what varnishd does by default.
#[derive(Debug, Clone)]
pub struct Options {
    /// Unused subroutines, ACLs and probes are errors (`vcc_err_unref`).
    pub err_unref: bool,
    /// Allow `C{ }C` (never supported by Lacquer; refused either way).
    pub allow_inline_c: bool,
    /// The storage backends `storage.NAME` refers to.
    pub stevedores: Vec<String>,
    /// Where `include "x";` looks for relative paths that are not found next
    /// to the including file (Varnish's `vcl_path`).
    pub vcl_path: Vec<PathBuf>,
    /// Whether `include` may name a file by a path (with a `/`) rather
    /// than only by a name found in `vcl_path` (`vcc_unsafe_path`).
    pub unsafe_path: bool,
    /// The VCL labels that exist where the VCL is loaded, which
    /// `return (vcl(LABEL))` may name.
    pub labels: Vec<String>,
    /// Finds the interface of imported modules. Without one, `import` is
    /// recorded but calling into a module is an error.
    pub modules: Option<std::sync::Arc<dyn crate::module::ModuleResolver>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            err_unref: true,
            allow_inline_c: false,
            stevedores: vec!["s0".into(), "Transient".into()],
            vcl_path: Vec::new(),
            unsafe_path: true,
            labels: Vec::new(),
            modules: None,
        }
    }
}

/// A failed compilation: the diagnostics and their rendering in VCC's format.
#[derive(Debug)]
pub struct CompileError {
    pub diags: Vec<Diag>,
    text: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for CompileError {}

/// Compiles VCL text; `name` is the source name used in messages.
pub fn compile_str(name: &str, source: &str, opts: &Options) -> Result<Program, CompileError> {
    compile_bytes(name, source.as_bytes().to_vec(), None, opts)
}

/// Compiles a VCL file; includes are found relative to it.
pub fn compile_path(path: &Path, opts: &Options) -> Result<Program, CompileError> {
    let text = std::fs::read(path).map_err(|e| CompileError {
        diags: Vec::new(),
        text: format!("Cannot read file '{}' ({})\n", path.display(), io_reason(&e)),
    })?;
    compile_bytes(&path.display().to_string(), text, path.parent().map(Path::to_path_buf), opts)
}

fn compile_bytes(name: &str, text: Vec<u8>, dir: Option<PathBuf>, opts: &Options) -> Result<Program, CompileError> {
    let mut srcs = Sources::default();
    let main = srcs.add(name, text);
    let mut dirs = vec![dir];
    let mut vcc = Vcc::new(opts, srcs);
    let r = vcc.run(&mut dirs, main);
    match r {
        Ok(mut p) => {
            if !vcc.diags.is_empty() {
                p.warnings = crate::render::render_all(&vcc.diags, &vcc.srcs);
            }
            Ok(p)
        }
        Err(Stop) => {
            let text = crate::render::render_all(&vcc.diags, &vcc.srcs);
            Err(CompileError { diags: vcc.diags, text })
        }
    }
}

/// "An error has been recorded in `Vcc::diags`; unwind."
#[derive(Debug, Clone, Copy)]
pub struct Stop;

/// The result of a compiler step.
pub type R<T> = Result<T, Stop>;

/// What a subroutine does that the cross-reference checks need to see.
#[derive(Debug, Default)]
pub(crate) struct ProcInfo {
    /// Where it was (first) defined.
    pub def: Option<Span>,
    /// Where it was first referenced.
    pub first_ref: Option<Span>,
    pub nref: u32,
    /// `call`s: callee and the name token.
    pub calls: Vec<(SubId, Span)>,
    /// `return`s: the action's bit and its token.
    pub returns: Vec<(lacquer_defs::Action, Span)>,
    /// Variable accesses: the methods they are allowed in, the message kind
    /// and the token range.
    pub uses: Vec<Use>,
    /// The method it implements, if it is one.
    pub method: Option<Method>,
}

/// One restricted access, checked against every method that reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Use {
    pub mask: lacquer_defs::MethodMask,
    /// What is refused, as VCC says it: "Cannot be set", "Not available" …
    pub what: &'static str,
    pub first: Span,
    pub last: Span,
    /// For a `set`: the methods the variable can be read in, which decide
    /// how VCC words a write to a read-only variable.
    pub write_of: Option<lacquer_defs::MethodMask>,
}

/// The compiler's state: VCC's `struct vcc`.
pub struct Vcc<'o> {
    pub(crate) opts: &'o Options,
    pub(crate) diags: Vec<Diag>,
    pub(crate) toks: Vec<Token>,
    pub(crate) i: usize,
    pub(crate) syntax: u8,
    pub(crate) syms: Symbols,
    pub(crate) subs: Vec<Sub>,
    pub(crate) procs: Vec<ProcInfo>,
    /// The subroutine being compiled.
    pub(crate) cur: Option<SubId>,
    pub(crate) headers: Vec<Header>,
    pub(crate) header_ids: HashMap<String, HdrId>,
    pub(crate) regexes: Vec<crate::regex::Regex>,
    pub(crate) acls: Vec<AclDef>,
    pub(crate) backends: Vec<BackendDef>,
    pub(crate) probes: Vec<ProbeDef>,
    pub(crate) imports: Vec<Import>,
    pub(crate) calls: Vec<CallSite>,
    pub(crate) instances: Vec<Instance>,
    /// The labels `return (vcl(…))` names, each once.
    pub(crate) vcl_labels: Vec<String>,
    pub(crate) main_syntax: u8,
    /// Whether `backend default` has been declared.
    pub(crate) default_backend: bool,
    /// The entry in `objects` of the first backend while it stands in for
    /// the default one (VCC does not require it to be used).
    pub(crate) first_backend: Option<usize>,
    /// The first backend declared, the default unless one is called `default`.
    pub(crate) first_declared: Option<BackendId>,
    /// The probe named `default`, once declared.
    pub(crate) default_probe: Option<ProbeId>,
    /// Every named ACL, probe and backend: (kind word, name, definition, refs).
    pub(crate) objects: Vec<(&'static str, String, Span, u32)>,
    /// The entries of `objects` that were referenced before they were
    /// declared, and not declared since; their span is the first reference.
    pub(crate) undefined: Vec<usize>,
    /// Every source read so far: the user's files, then `<builtin>`.
    pub(crate) srcs: Sources,
}

impl<'o> Vcc<'o> {
    fn new(opts: &'o Options, srcs: Sources) -> Vcc<'o> {
        Vcc {
            opts,
            diags: Vec::new(),
            toks: Vec::new(),
            i: 0,
            syntax: 0,
            syms: Symbols::new(opts),
            subs: Vec::new(),
            procs: Vec::new(),
            cur: None,
            headers: Vec::new(),
            header_ids: HashMap::new(),
            regexes: Vec::new(),
            acls: Vec::new(),
            backends: Vec::new(),
            probes: Vec::new(),
            imports: Vec::new(),
            calls: Vec::new(),
            instances: Vec::new(),
            vcl_labels: Vec::new(),
            main_syntax: 41,
            default_backend: false,
            first_backend: None,
            default_probe: None,
            first_declared: None,
            objects: Vec::new(),
            undefined: Vec::new(),
            srcs,
        }
    }

    // ----- errors -----

    /// Records a diagnostic; the caller unwinds with the `Stop`.
    pub(crate) fn stop(&mut self, d: Diag) -> Stop {
        self.diags.push(d);
        Stop
    }

    /// Records a diagnostic and returns `Stop`.
    pub(crate) fn fail<T>(&mut self, d: Diag) -> R<T> {
        self.diags.push(d);
        Err(Stop)
    }

    /// "MESSAGE" then the current token.
    pub(crate) fn fail_here<T>(&mut self, msg: &str) -> R<T> {
        let sp = self.head(self.t());
        self.fail(Diag::at(msg, sp))
    }

    /// The part of a token that VCC's lexer would make a token of: VCC
    /// ends an identifier at a `.` (and reads `req.url` as three tokens),
    /// so a message about "the token here" names only the first part.
    pub(crate) fn head(&self, t: &Token) -> Span {
        if t.tok != Tok::Id {
            return t.span;
        }
        let text = self.srcs.bytes(t.span);
        match text.iter().position(|&c| c == b'.') {
            Some(n) if n > 0 => Span { end: t.span.start + n as u32, ..t.span },
            _ => t.span,
        }
    }

    /// The dotted name starting here, as VCC's symbol lookup reads it: the
    /// identifier and every `. identifier` after it, spaces or not; and
    /// its last token.
    pub(crate) fn joined_name(&self) -> (String, Span) {
        let mut name = self.text(self.t().span);
        let mut last = self.t().span;
        let mut j = self.i + 1;
        while let (Some(dot), Some(id)) = (self.toks.get(j), self.toks.get(j + 1)) {
            if !dot.is(Op::Dot) || id.tok != Tok::Id || id.span.src != last.src {
                break;
            }
            name.push('.');
            name.push_str(&self.text(id.span));
            last = id.span;
            j += 2;
        }
        (name, last)
    }

    /// Cuts the identifier here at its first dot into a name, a `.` and
    /// the rest, as VCC's lexer would have read it, where only the first
    /// part is a name.
    pub(crate) fn split_at_dot(&mut self) {
        let t = self.t().clone();
        let head = self.head(&t);
        if t.tok != Tok::Id || head.end == t.span.end {
            return;
        }
        let dot = Span { start: head.end, end: head.end + 1, ..t.span };
        let rest = Span { start: head.end + 1, ..t.span };
        let mk = |tok, span| Token { tok, span, dec: Vec::new() };
        self.toks.splice(self.i..=self.i, [mk(Tok::Id, head), mk(Tok::Op(Op::Dot), dot), mk(Tok::Id, rest)]);
    }

    /// How VCC names a token in messages.
    pub(crate) fn tok_desc(&self, t: &Token) -> String {
        match t.tok {
            Tok::Eoi => "end of input".into(),
            Tok::CSrc => "C{ ... }C".into(),
            _ => format!("'{}'", self.text(self.head(t))),
        }
    }

    /// VCC's `ExpectErr`: `line` is the line of VCC's source that makes the
    /// check, which VCC prints.
    pub(crate) fn expect_err<T>(&mut self, want: &str, line: u32) -> R<T> {
        let t = self.t().clone();
        let d = Diag::new(vec![
            Piece::Text(format!("Expected {} got {}\n(program line {}), at\n", want, self.tok_desc(&t), line)),
            Piece::Where(self.head(&t)),
        ]);
        self.fail(d)
    }

    /// VCC's `vcc_ExpectVid`: the name of a new `what` here, which must be
    /// one identifier without dots. Returns its span; does not consume it.
    pub(crate) fn expect_vid(&mut self, what: &str) -> R<Span> {
        self.expect_tok(Tok::Id, 349)?;
        let t = self.t().clone();
        let (mut name, mut last) = self.joined_name();
        // A dot with no name after it counts too.
        let after = self.toks.iter().skip(self.i).position(|k| k.span == last).map_or(self.i, |k| self.i + k + 1);
        if self.toks.get(after).is_some_and(|d| d.is(Op::Dot)) {
            name.push('.');
            last = self.toks[after].span;
        }
        if !name.contains('.') {
            return Ok(t.span);
        }
        let d = Diag::new(vec![
            Piece::Text(format!("Name of {}, '{}', contains illegal character '.'\n", what, name)),
            Piece::Where2(t.span, last),
        ]);
        self.fail(d)
    }

    /// The backend `default` stands for: the one of that name, else the
    /// first one declared.
    pub(crate) fn default_backend_id(&self) -> BackendId {
        match self.backends.iter().position(|b| b.name == "default") {
            Some(i) => i as BackendId,
            None => self.first_declared.unwrap_or(0),
        }
    }

    /// VCC's refusal of `default` anywhere but where a BACKEND is wanted:
    /// `sp` is the name, read as a call.
    pub(crate) fn reserved_word(&self, sp: Span) -> Diag {
        Diag::new(vec![
            Piece::Text(format!("Symbol '{}' is a reserved word.\n", self.text(sp))),
            Piece::Where(sp),
            Piece::text("While compiling function call:\n\n"),
            Piece::Where2(sp, sp),
        ])
    }

    /// Whether a lookup for one kind of symbol sees symbols of other kinds:
    /// under VCL 4.0, VCC skips them (all but `default`) and reports the
    /// name as not found rather than of the wrong type.
    pub(crate) fn other_kinds_visible(&self, name: &str) -> bool {
        self.syntax >= 41 || name == "default"
    }

    /// The symbol `name` as a declaration in the current VCL version sees
    /// it: VCL 4.0 has no symbols for the top-level keywords.
    pub(crate) fn sym_in_version(&self, name: &str) -> Option<Sym> {
        self.syms.get(name).filter(|s| self.syntax >= 41 || !matches!(s.kind, SymKind::Reserved)).cloned()
    }

    /// VCC's complaint about a symbol `name` (spanning `sp`) of the wrong
    /// kind where a `expected` is wanted.
    pub(crate) fn wrong_type(&self, name: &str, sym: &Sym, expected: &str, sp: Span) -> Diag {
        let what = match sym.kind {
            SymKind::HdrFamily(_) => "none",
            ref k => k.word(),
        };
        let mut d = Diag::new(vec![
            Piece::Text(format!("Symbol '{}' has wrong type ({}), expected {}:\nAt: ", name, what, expected)),
            Piece::Where2(sp, sp),
        ]);
        // A symbol only referenced so far was "declared" by that reference.
        let declared = self
            .undefined
            .iter()
            .map(|&k| &self.objects[k])
            .find(|o| o.1 == name && o.0 == sym.kind.word())
            .map(|o| o.2);
        match (sym.def, declared) {
            (Some(def), _) => {
                d.push(Piece::text("Symbol was defined here: "));
                d.push(Piece::Where(def));
            }
            (None, Some(r)) => {
                d.push(Piece::text("Symbol was declared here: "));
                d.push(Piece::Where(r));
            }
            (None, None) => {
                d.push(Piece::text("Symbol was builtin\n"));
            }
        }
        d
    }

    /// VCC's `VCC_HandleSymbol`: declares the name at `t` as a new `kind`,
    /// refusing one that is taken. A name referenced before as this kind
    /// is declared now: its symbol is returned, to be filled in.
    pub(crate) fn handle_symbol(&mut self, kind: SymKind, ty: VclType, t: Span) -> R<Option<SymKind>> {
        let name = self.text(t);
        let word = kind.word();
        if let Some(k) = self.objects.iter().position(|o| o.0 == word && o.1 == name) {
            if let Some(u) = self.undefined.iter().position(|&x| x == k) {
                self.undefined.remove(u);
                self.objects[k].2 = t;
                self.syms.set_def(&name, t);
                return Ok(self.syms.get(&name).map(|s| s.kind.clone()));
            }
        }
        if let Some(prev) = self.sym_in_version(&name) {
            let mut d = match prev.def {
                Some(_) if prev.kind.word() == word => {
                    let mut c = word.chars();
                    let cap: String = c.next().map(|f| f.to_ascii_uppercase()).into_iter().chain(c).collect();
                    Diag::at(format!("{} '{}' redefined.", cap, name), t)
                }
                Some(_) => Diag::at(format!("Name '{}' already defined.", name), t),
                None => Diag::at(format!("Name {} must have type '{}'.", name, prev.kind.word()), t),
            };
            if let Some(def) = prev.def {
                d.push(Piece::text("First definition:\n"));
                d.push(Piece::Where(def));
            }
            return self.fail(d);
        }
        if self.syntax >= 41 && name.starts_with("vcl_") {
            let d = Diag::new(vec![Piece::text("Symbols named 'vcl_*' are reserved.\nAt:"), Piece::Where(t)]);
            return self.fail(d);
        }
        self.syms.insert(name, Sym { kind, def: Some(t), ty });
        Ok(None)
    }

    /// A reference to a not yet declared ACL or backend, which VCC allows:
    /// the symbol is made now, with a placeholder until the declaration.
    pub(crate) fn forward_ref(&mut self, kind: VclType, t: Span) -> R<Expr> {
        let name = self.text(t);
        if self.syntax >= 41 && name.starts_with("vcl_") {
            let d = Diag::new(vec![Piece::text("Symbols named 'vcl_*' are reserved.\nAt:"), Piece::Where(t)]);
            return self.fail(d);
        }
        let (word, sk, e) = if kind == VclType::Acl {
            let id = self.acls.len() as AclId;
            self.acls.push(AclDef {
                name: name.clone(),
                acl: crate::aclmatch::Acl::new(Vec::new()),
                log: false,
                labels: Vec::new(),
            });
            ("acl", SymKind::Acl(id), Expr::Acl(id))
        } else {
            let id = self.backends.len() as BackendId;
            self.backends.push(BackendDef { name: name.clone(), none: true, ..Default::default() });
            ("backend", SymKind::Backend(id), Expr::Backend(id))
        };
        self.syms.insert(name.clone(), Sym { kind: sk, def: None, ty: kind });
        self.undefined.push(self.objects.len());
        self.objects.push((word, name, t, 1));
        Ok(e)
    }

    /// Requires the operator `op` here, without consuming it.
    pub(crate) fn expect_op(&mut self, op: Op, line: u32) -> R<()> {
        if self.t().is(op) {
            Ok(())
        } else {
            self.expect_err(&format!("'{}'", op.as_str()), line)
        }
    }

    /// Requires and consumes the operator `op` (VCC's `SkipToken`).
    pub(crate) fn skip(&mut self, op: Op, line: u32) -> R<()> {
        self.expect_op(op, line)?;
        self.next();
        Ok(())
    }

    /// Requires a token kind here.
    pub(crate) fn expect_tok(&mut self, tok: Tok, line: u32) -> R<()> {
        if self.t().tok == tok {
            return Ok(());
        }
        let what = match tok {
            Tok::Id => "ID",
            Tok::CStr => "CSTR",
            Tok::CNum => "CNUM",
            Tok::FNum => "FNUM",
            _ => "token",
        };
        self.expect_err(what, line)
    }

    // ----- tokens -----

    pub(crate) fn t(&self) -> &Token {
        &self.toks[self.i]
    }

    pub(crate) fn prev_span(&self) -> Span {
        self.toks[self.i.saturating_sub(1)].span
    }

    pub(crate) fn next(&mut self) {
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
    }

    pub(crate) fn text(&self, sp: Span) -> String {
        self.srcs.text(sp).into_owned()
    }

    pub(crate) fn tok_text(&self) -> String {
        self.text(self.t().span)
    }

    /// Whether the current token is the identifier `s`.
    pub(crate) fn is_id(&self, s: &str) -> bool {
        let t = self.t();
        t.tok == Tok::Id && self.srcs.bytes(t.span) == s.as_bytes()
    }

    // ----- the driver -----

    fn run(&mut self, dirs: &mut Vec<Option<PathBuf>>, main: SrcId) -> R<Program> {
        let toks = self.lex_source(main)?;
        let mut stack = vec![(main, None)];
        let toks = self.resolve_includes(dirs, toks, &mut stack)?;
        let builtin = self.srcs.add("<builtin>", BUILTIN_VCL);
        let mut btoks = self.lex_source(builtin)?;
        // One token stream: the user's sources, then the built-in VCL.
        let mut all: Vec<Token> = toks.into_iter().filter(|t| t.tok != Tok::Eoi).collect();
        let eoi = btoks.pop().expect("eoi");
        all.extend(btoks);
        all.push(eoi);
        self.toks = all;

        // The methods are symbols from the start, as in VCC.
        for m in Method::ALL {
            self.new_sub(m.as_str());
        }
        self.parse_version_first()?;
        self.main_syntax = self.syntax;
        self.parse_toplevel()?;

        crate::xref::check(self)?;
        if self.backends.is_empty() {
            return self.fail(Diag::new(vec![Piece::text(
                "No backends or directors found in VCL program, at least one is necessary.\n",
            )]));
        }

        let methods = Method::ALL
            .iter()
            .map(|m| match self.syms.get(m.as_str()).map(|s| &s.kind) {
                Some(SymKind::Sub(id)) => *id,
                _ => unreachable!("the built-in VCL defines every method"),
            })
            .collect();
        // Before the backends are moved out: it looks for `default`.
        let default_backend = Some(self.default_backend_id());
        Ok(Program {
            syntax: self.main_syntax,
            subs: std::mem::take(&mut self.subs),
            methods,
            headers: std::mem::take(&mut self.headers),
            regexes: std::mem::take(&mut self.regexes),
            acls: std::mem::take(&mut self.acls),
            backends: std::mem::take(&mut self.backends),
            probes: std::mem::take(&mut self.probes),
            imports: std::mem::take(&mut self.imports),
            calls: std::mem::take(&mut self.calls),
            instances: std::mem::take(&mut self.instances),
            vcl_labels: std::mem::take(&mut self.vcl_labels),
            default_backend,
            warnings: String::new(),
        })
    }

    fn lex_source(&mut self, id: SrcId) -> R<Vec<Token>> {
        match lex(id, &self.srcs.get(id).text) {
            Ok(t) => Ok(t),
            Err(d) => self.fail(d),
        }
    }

    /// Replaces every `include "file";` with the tokens of that file,
    /// recursively (VCC's `vcc_resolve_includes`).
    fn resolve_includes(
        &mut self,
        dirs: &mut Vec<Option<PathBuf>>,
        toks: Vec<Token>,
        stack: &mut Vec<(SrcId, Option<Span>)>,
    ) -> R<Vec<Token>> {
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            let is_include = t.tok == Tok::Id && self.srcs.bytes(t.span) == b"include";
            if !is_include {
                out.push(t.clone());
                i += 1;
                continue;
            }
            let kw = t.span;
            // `include +glob "pattern";` includes every file that matches.
            let mut at = i + 1;
            let mut glob = false;
            if toks.get(at).is_some_and(|t| t.is(Op::Plus)) {
                match toks.get(at + 1).filter(|t| t.tok == Tok::Id) {
                    Some(f) if self.srcs.bytes(f.span) == b"glob" => glob = true,
                    Some(f) => return self.fail(Diag::at("Unknown include flag:", f.span)),
                    None => {}
                }
                at += 2;
            }
            let Some(name_tok) = toks.get(at).filter(|t| t.tok == Tok::CStr) else {
                let got = toks.get(at).unwrap_or(t).clone();
                let d =
                    Diag::new(vec![Piece::text("include not followed by string constant.\n"), Piece::Where(got.span)]);
                return self.fail(d);
            };
            let fname = String::from_utf8_lossy(&name_tok.dec).into_owned();
            let name_span = name_tok.span;
            if !toks.get(at + 1).is_some_and(|t| t.is(Op::Semi)) {
                let d = Diag::new(vec![
                    Piece::text("include <string> not followed by semicolon.\n"),
                    Piece::Where(name_span),
                ]);
                return self.fail(d);
            }
            if !self.opts.unsafe_path && fname.contains('/') {
                return self.fail(Diag::at(format!("VCL filename '{fname}' is unsafe."), name_span));
            }
            if fname.starts_with("./") && !self.srcs.get(kw.src).name.starts_with('/') {
                let d = Diag::at("include \"./xxxxx\"; needs absolute filename of including file.", name_span);
                return self.fail(d);
            }
            let here = dirs[kw.src as usize].clone();
            let path = self.find_include(&fname, here.as_deref());
            let paths = if glob { glob_files(&path) } else { vec![path] };
            if paths.is_empty() {
                return self.fail(Diag::at("glob pattern matched no files.", name_span));
            }
            for path in paths {
                self.include_file(dirs, &path, name_span, stack, &mut out)?;
            }
            i = at + 2;
        }
        Ok(out)
    }

    /// Reads, lexes and splices one included file (its own includes too).
    fn include_file(
        &mut self,
        dirs: &mut Vec<Option<PathBuf>>,
        path: &Path,
        name_span: Span,
        stack: &mut Vec<(SrcId, Option<Span>)>,
        out: &mut Vec<Token>,
    ) -> R<()> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) => {
                let d = Diag::new(vec![
                    Piece::Text(format!("Cannot read file '{}' ({})\n", path.display(), io_reason(&e))),
                    Piece::Where(name_span),
                ]);
                return self.fail(d);
            }
        };
        let shown = path.display().to_string();
        // Like VCC, compare with the includer's ancestors only (so a file
        // that includes itself is read twice before it is refused).
        let ancestors = &stack[..stack.len() - 1];
        if ancestors.iter().any(|&(s, _)| self.srcs.get(s).name == shown) {
            // VCC lists every include on the way, innermost first.
            let mut d = Diag::new(vec![Piece::Text(format!("Recursive use of file \"{}\"\n\n", shown))]);
            d.push(Piece::Where(name_span));
            for &(_, via) in stack.iter().rev() {
                if let Some(via) = via {
                    d.push(Piece::Where(via));
                }
            }
            return self.fail(d);
        }
        let id = self.srcs.add(shown, text);
        dirs.push(path.parent().map(Path::to_path_buf));
        let sub = self.lex_source(id)?;
        stack.push((id, Some(name_span)));
        let sub = self.resolve_includes(dirs, sub, stack)?;
        stack.pop();
        out.extend(sub.into_iter().filter(|t| t.tok != Tok::Eoi));
        Ok(())
    }

    fn find_include(&self, name: &str, here: Option<&Path>) -> PathBuf {
        // VCC resolves `./x` as the including file's directory plus `/x`.
        let p = Path::new(name.strip_prefix("./").unwrap_or(name));
        if p.is_absolute() {
            return p.to_path_buf();
        }
        if let Some(d) = here {
            let c = d.join(p);
            if c.exists() {
                return c;
            }
        }
        for d in &self.opts.vcl_path {
            let c = d.join(p);
            if c.exists() {
                return c;
            }
        }
        here.map_or_else(|| p.to_path_buf(), |d| d.join(p))
    }

    /// The main source must open with `vcl 4.0;` or `vcl 4.1;`.
    fn parse_version_first(&mut self) -> R<()> {
        if !self.is_id("vcl") {
            return self.fail_here(
                "VCL version declaration missing\nUpdate your VCL to Version 4 syntax, and add\n\tvcl 4.1;\non the first line of the VCL files.\n",
            );
        }
        self.parse_vcl_version()
    }

    /// `vcl X.Y;`
    pub(crate) fn parse_vcl_version(&mut self) -> R<()> {
        let kw = self.t().span;
        self.next();
        // VCC reports a missing FNUM and goes on to the digit check.
        let _ = self.expect_tok(Tok::FNum, 302);
        let v = self.text(self.head(self.t()));
        let b = v.as_bytes();
        if b.len() != 3 || b[1] != b'.' {
            let sp = self.head(self.t());
            return self.fail(Diag::at("Don't play silly buggers with VCL version numbers", sp));
        }
        let ver = (i32::from(b[0]) - i32::from(b'0')) * 10 + (i32::from(b[2]) - i32::from(b'0'));
        let vt = self.t().span;
        self.next();
        if ver != 40 && ver != 41 {
            let d = Diag::new(vec![Piece::Text(format!("VCL version {} not supported.\n", v)), Piece::Where2(kw, vt)]);
            return self.fail(d);
        }
        if !self.t().is(Op::Semi) {
            // Not the usual "Expected ';'": the next token may be the
            // built-in VCL's `vcl`.
            let d = Diag::new(vec![Piece::text("Expected 'vcl N.N;' found no semi-colon\n"), Piece::Where2(kw, vt)]);
            return self.fail(d);
        }
        self.syntax = ver as u8;
        self.next();
        Ok(())
    }

    fn parse_toplevel(&mut self) -> R<()> {
        loop {
            let t = self.t().clone();
            match t.tok {
                Tok::Eoi => return Ok(()),
                Tok::CSrc => {
                    return self.fail(Diag::at("Inline-C not allowed", t.span));
                }
                Tok::Id => {
                    let w = self.tok_text();
                    match w.as_str() {
                        "acl" => self.parse_acl()?,
                        "sub" => self.parse_sub()?,
                        "backend" => self.parse_backend()?,
                        "probe" => self.parse_probe_decl()?,
                        "import" => self.parse_import()?,
                        "vcl" => self.parse_vcl_version()?,
                        _ => return self.toplevel_error(),
                    }
                }
                _ => return self.toplevel_error(),
            }
        }
    }

    fn toplevel_error(&mut self) -> R<()> {
        let t = self.t().clone();
        let msg = format!(
            "Expected one of\n\t'acl', 'sub', 'backend', 'probe', 'import',  or 'vcl'\nFound: {} at\n",
            self.tok_desc(&t)
        );
        let sp = self.head(&t);
        self.fail(Diag::new(vec![Piece::Text(msg), Piece::Where(sp)]))
    }

    /// `import name [as alias] [from "path"];`: the module's functions and
    /// objects become `alias.member` (`name.member` without an alias).
    fn parse_import(&mut self) -> R<()> {
        self.next();
        self.expect_tok(Tok::Id, 354)?;
        let mt = self.t().clone();
        let module = self.text(mt.span);
        self.next();
        let nt = if self.is_id("as") {
            self.next();
            self.expect_tok(Tok::Id, 354)?;
            let at = self.t().clone();
            self.next();
            at
        } else {
            mt
        };
        let name = self.text(nt.span);
        let again = match self.syms.get(&name).cloned() {
            // Importing the same module twice is harmless, as in VCC.
            Some(Sym { kind: SymKind::Module(_), .. }) => true,
            Some(prev) => {
                let d = self.wrong_type(&name, &prev, "vmod", nt.span);
                return self.fail(d);
            }
            None => false,
        };
        let mut path = None;
        if !self.t().is(Op::Semi) {
            if !self.is_id("from") {
                return self.fail_here("Expected 'from path ...'");
            }
            self.next();
            self.expect_tok(Tok::CStr, 383)?;
            path = Some(String::from_utf8_lossy(&self.t().dec).into_owned());
            self.next();
        }
        self.skip(Op::Semi, 394)?;
        if again {
            return Ok(());
        }
        // A module imported before under another name is the same module
        // (one set of private state); the new name only adds symbols.
        if let Some(idx) = self.imports.iter().position(|i| i.name == module && i.path == path) {
            let idx = idx as u32;
            self.syms.insert(name.clone(), Sym { kind: SymKind::Module(idx), def: Some(nt.span), ty: VclType::Void });
            self.enter_module_symbols(idx, &name, nt.span);
            return Ok(());
        }
        let idx = self.imports.len() as u32;
        self.imports.push(Import { name: module.clone(), path: path.clone(), spec: None });
        self.syms.insert(name.clone(), Sym { kind: SymKind::Module(idx), def: Some(nt.span), ty: VclType::Void });
        self.import_module(idx, &module, &name, path.as_deref(), nt.span)
    }

    /// Interns a header name for the program.
    pub(crate) fn header_id(&mut self, name: &str) -> R<HdrId> {
        // Varnish keeps a header's name and colon in 128 bytes at most.
        if name.len() >= 127 {
            let shown: String = name.chars().take(20).collect();
            let d = Diag::new(vec![Piece::Text(format!("HTTP header ({}..) is too long.\n", shown))]);
            return self.fail(d);
        }
        let lower = name.to_ascii_lowercase();
        if let Some(&id) = self.header_ids.get(&lower) {
            return Ok(id);
        }
        let id = self.headers.len() as HdrId;
        self.headers.push(Header { name: name.to_string(), lower: lower.clone() });
        self.header_ids.insert(lower, id);
        Ok(id)
    }

    /// Records that the current subroutine accesses something allowed only in `mask`.
    pub(crate) fn add_use(&mut self, what: &'static str, mask: lacquer_defs::MethodMask, first: Span, last: Span) {
        if let Some(c) = self.cur {
            self.procs[c as usize].uses.push(Use { mask, what, first, last, write_of: None });
        }
    }

    /// Records a `set` of a variable settable in `mask` and readable in `read`.
    pub(crate) fn add_write_use(&mut self, mask: lacquer_defs::MethodMask, read: lacquer_defs::MethodMask, at: Span) {
        if let Some(c) = self.cur {
            let u = Use { mask, what: "Cannot be set", first: at, last: at, write_of: Some(read) };
            self.procs[c as usize].uses.push(u);
        }
    }

    /// Looks up or creates a subroutine symbol, counting a reference.
    pub(crate) fn sub_ref(&mut self, name: &str, at: Span) -> R<SubId> {
        match self.syms.get(name).map(|s| s.kind.clone()) {
            Some(SymKind::Sub(id)) => {
                let p = &mut self.procs[id as usize];
                p.nref += 1;
                p.first_ref.get_or_insert(at);
                Ok(id)
            }
            Some(k) => {
                let d = Diag::new(vec![
                    Piece::Text(format!("Symbol '{}' has wrong type ({}), expected sub:\n", name, k.word())),
                    Piece::Where(at),
                ]);
                self.fail(d)
            }
            None => {
                let id = self.new_sub(name);
                let p = &mut self.procs[id as usize];
                p.nref = 1;
                p.first_ref = Some(at);
                Ok(id)
            }
        }
    }

    pub(crate) fn new_sub(&mut self, name: &str) -> SubId {
        let id = self.subs.len() as SubId;
        self.subs.push(Sub { name: name.to_string(), body: Vec::new() });
        self.procs.push(ProcInfo { method: Method::from_name(name), ..Default::default() });
        self.syms.insert(name.to_string(), Sym { kind: SymKind::Sub(id), def: None, ty: VclType::Sub });
        id
    }
}

/// The files a `+glob` include names, sorted: the wildcards `*` and `?`
/// may appear in the last part of the path.
fn glob_files(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(pat)) = (pattern.parent(), pattern.file_name().and_then(|f| f.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(pat.as_bytes(), n.as_bytes())))
        .map(|e| dir.join(e.file_name()))
        .collect();
    found.sort();
    found
}

/// Shell-style matching of `name` against `pat` with `*` and `?`.
fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|k| wildcard(rest, &name[k..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}
