//! Golden VCC diagnostics.
//!
//! Every `tests/errors/NAME.vcl` is compiled with `lacquer_vcl::compile_path`
//! and the outcome is compared with what Varnish 7.1's VCC does with the same
//! file (`tests/errors/regen.sh` records that):
//!
//! * `NAME.err` — the compile must fail, and the error's `Display` text must be
//!   exactly VCC's message (the text between "Message from VCC-compiler:" and
//!   "Running VCC-compiler failed"), compared after trimming trailing
//!   whitespace of the whole text.
//! * `NAME.ok`  — the compile must succeed (`ok-*.vcl` cases).
//!
//! VCC prints source names as it was given them; regen.sh ran varnishd with
//! absolute paths and removed this directory's prefix, so here the absolute
//! prefix is removed from Lacquer's text the same way: the main file then
//! reads `NAME.vcl`, an included `./x.inc` reads `x.inc`, and VCC's built-in
//! VCL stays `<builtin>`.
//!
//! Cases named in `tests/errors/KNOWN_FAILING` (one name a line, reason after
//! `#`) may fail; they are reported but do not fail the test. A listed case
//! that passes fails the test until it is removed from the list, so the list
//! only shrinks.
//!
//! Imports are resolved from `tests/errors/modules/NAME.json`: the
//! interfaces of Varnish 7.1's `std` and `directors` vmods, converted from
//! the specs embedded in the installed vmods. They are test data, so that
//! VCC's messages about module calls can be compared before Lacquer's own
//! `std` and `directors` exist. `import x from "PATH"` with a PATH that
//! does not exist fails as a failed `dlopen` does.
//!
//! `LACQUER_ERRORS_FILTER=substr` runs only the cases whose name contains
//! `substr` (the KNOWN_FAILING bookkeeping is then limited to those cases).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lacquer_vcl::{compile_path, ModuleResolver, ModuleSpec, Options, ResolveError};

/// Finds module interfaces among the test's fixtures.
#[derive(Debug)]
struct Fixtures(PathBuf);

impl ModuleResolver for Fixtures {
    fn resolve(&self, name: &str, path: Option<&str>) -> Result<ModuleSpec, ResolveError> {
        if let Some(p) = path {
            if !Path::new(p).exists() {
                let reason = format!("dlerror: {p}: cannot open shared object file: No such file or directory");
                return Err(ResolveError::Unusable { file: p.to_string(), reason });
            }
        }
        let file = self.0.join(format!("{name}.json"));
        let text = fs::read_to_string(&file).map_err(|_| ResolveError::NotFound)?;
        ModuleSpec::from_json(&text)
            .map_err(|reason| ResolveError::Unusable { file: file.display().to_string(), reason })
    }
}

enum Expect {
    Compiles,
    Fails(String),
}

enum Outcome {
    Compiled,
    Failed(String),
    Panicked(String),
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("errors")
}

/// `KNOWN_FAILING`: case name -> reason.
fn known_failing(dir: &Path) -> BTreeMap<String, String> {
    let mut known = BTreeMap::new();
    let Ok(text) = fs::read_to_string(dir.join("KNOWN_FAILING")) else {
        return known;
    };
    for line in text.lines() {
        let (name, reason) = match line.split_once('#') {
            Some((name, reason)) => (name.trim(), reason.trim()),
            None => (line.trim(), ""),
        };
        if name.is_empty() {
            continue;
        }
        let name = name.strip_suffix(".vcl").unwrap_or(name);
        known.insert(name.to_string(), reason.to_string());
    }
    known
}

fn compile_case(dir: &Path, file_name: &str) -> Outcome {
    let path = dir.join(file_name);
    let opts = Options { modules: Some(std::sync::Arc::new(Fixtures(dir.join("modules")))), ..Options::default() };
    let result =
        panic::catch_unwind(AssertUnwindSafe(|| compile_path(&path, &opts).map(|_| ()).map_err(|e| e.to_string())));
    match result {
        Ok(Ok(())) => Outcome::Compiled,
        Ok(Err(text)) => {
            // The name VCC would print for this file, then anything else
            // (included files) under this directory.
            let text = text.replace(&path.display().to_string(), file_name);
            let text = text.replace(&format!("{}/", dir.display()), "");
            Outcome::Failed(text)
        }
        Err(payload) => {
            let msg = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_string()
            };
            Outcome::Panicked(msg)
        }
    }
}

/// A readable account of how `got` differs from `want`.
fn describe_diff(want: &str, got: &str) -> String {
    let mut out = String::new();
    let want_lines: Vec<&str> = want.lines().collect();
    let got_lines: Vec<&str> = got.lines().collect();
    let first =
        (0..want_lines.len().max(got_lines.len())).find(|&i| want_lines.get(i) != got_lines.get(i)).unwrap_or(0);
    let show = |line: Option<&&str>| match line {
        Some(l) => format!("{l:?}"),
        None => "(no such line)".to_string(),
    };
    let _ = writeln!(out, "    first difference at line {}:", first + 1);
    let _ = writeln!(out, "      expected: {}", show(want_lines.get(first)));
    let _ = writeln!(out, "      got:      {}", show(got_lines.get(first)));
    let _ = writeln!(out, "    --- expected (VCC)");
    for l in &want_lines {
        let _ = writeln!(out, "    | {l}");
    }
    let _ = writeln!(out, "    --- got (lacquer)");
    for l in &got_lines {
        let _ = writeln!(out, "    | {l}");
    }
    out
}

/// `None` when the outcome matches the expectation, else why not.
fn check(expect: &Expect, outcome: &Outcome) -> Option<String> {
    match (expect, outcome) {
        (_, Outcome::Panicked(msg)) => Some(format!("    compiler panicked: {msg}\n")),
        (Expect::Compiles, Outcome::Compiled) => None,
        (Expect::Compiles, Outcome::Failed(got)) => Some(format!(
            "    VCC compiles this, lacquer rejects it:\n{}",
            got.lines().map(|l| format!("    | {l}\n")).collect::<String>()
        )),
        (Expect::Fails(want), Outcome::Compiled) => Some(format!(
            "    VCC rejects this, lacquer compiles it; VCC says:\n{}",
            want.lines().map(|l| format!("    | {l}\n")).collect::<String>()
        )),
        (Expect::Fails(want), Outcome::Failed(got)) => {
            if want.trim_end() == got.trim_end() {
                None
            } else {
                Some(describe_diff(want.trim_end(), got.trim_end()))
            }
        }
    }
}

#[test]
fn golden_vcc_errors() {
    let dir = cases_dir();
    let filter = std::env::var("LACQUER_ERRORS_FILTER").unwrap_or_default();

    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let base = name.strip_suffix(".vcl")?;
            Some(base.to_string())
        })
        .filter(|base| base.contains(filter.as_str()))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no .vcl cases in {}", dir.display());

    let known = known_failing(&dir);
    let mut problems: Vec<String> = Vec::new();
    for name in known.keys() {
        if !dir.join(format!("{name}.vcl")).exists() {
            problems.push(format!("KNOWN_FAILING lists {name}, which is not a case"));
        }
    }

    let mut report = String::new();
    let mut differ = 0usize;
    let mut known_failed = 0usize;
    let mut passed = 0usize;
    for base in &names {
        let file_name = format!("{base}.vcl");
        let err_file = dir.join(format!("{base}.err"));
        let ok_file = dir.join(format!("{base}.ok"));
        let expect = if ok_file.exists() {
            Expect::Compiles
        } else if let Ok(text) = fs::read_to_string(&err_file) {
            Expect::Fails(text)
        } else {
            problems.push(format!("{file_name} has neither {base}.err nor {base}.ok (run tests/errors/regen.sh)"));
            continue;
        };

        let outcome = compile_case(&dir, &file_name);
        let mismatch = check(&expect, &outcome);
        match (mismatch, known.get(base)) {
            (None, None) => passed += 1,
            (None, Some(_)) => {
                passed += 1;
                problems.push(format!("{base} passes now: remove {base} from KNOWN_FAILING"));
            }
            (Some(why), None) => {
                differ += 1;
                let _ = write!(report, "\n=== {file_name}: differs\n{why}");
            }
            (Some(why), Some(reason)) => {
                known_failed += 1;
                let _ = write!(report, "\n=== {file_name}: known failing ({reason})\n{why}");
            }
        }
    }

    let total = names.len();
    eprintln!("{report}");
    eprintln!(
        "golden VCC errors: {total} cases, {passed} pass, {differ} differ, \
         {known_failed} known failing"
    );
    for p in &problems {
        eprintln!("{p}");
    }
    if differ > 0 || !problems.is_empty() {
        let mut msg = format!("{differ} of {total} cases differ");
        for p in &problems {
            msg.push_str("; ");
            msg.push_str(p);
        }
        panic!("{msg}");
    }
}
