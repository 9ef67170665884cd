//! `lacquer`: one command for everything — serve, check, and (as they land)
//! vtc, log, ncsa, stat, adm, demo, module-doc.
//!
//! This file only parses the command line and hands over to the crate that
//! does the work.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lacquer", version, about = "An HTTP accelerator that runs VCL")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a VCL file and report errors as Varnish's VCC does.
    Check {
        /// The VCL file, or `-` for standard input.
        file: String,
        /// VCL syntax errors for unused subroutines, ACLs and probes
        /// (`vcc_err_unref`); on by default.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        err_unref: bool,
        /// Extra directories to search for included files (`vcl_path`).
        #[arg(long = "vcl-path")]
        vcl_path: Vec<PathBuf>,
    },
    /// Serve the built-in demo site (needs the server, not built yet).
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { file, err_unref, vcl_path } => check(&file, err_unref, vcl_path),
        Cmd::Demo => {
            eprintln!("lacquer demo: not yet — the server lands with the next milestone (see README).");
            eprintln!("Meanwhile, try: lacquer check examples/default.vcl");
            ExitCode::from(2)
        }
    }
}

fn check(file: &str, err_unref: bool, vcl_path: Vec<PathBuf>) -> ExitCode {
    let opts = lacquer_vcl::Options { err_unref, vcl_path, ..Default::default() };
    let result = if file == "-" {
        let mut src = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut src) {
            eprintln!("lacquer check: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        lacquer_vcl::compile_str("<stdin>", &src, &opts)
    } else {
        lacquer_vcl::compile_path(std::path::Path::new(file), &opts)
    };
    match result {
        Ok(p) => {
            let user_subs = p.subs.len();
            println!(
                "{}: VCL {}.{} compiled: {} subroutines, {} backends, {} probes, {} ACLs, {} regexes, {} imports",
                file,
                p.syntax / 10,
                p.syntax % 10,
                user_subs,
                p.backends.len(),
                p.probes.len(),
                p.acls.len(),
                p.regexes.len(),
                p.imports.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Message from VCC-compiler:\n{e}");
            eprintln!("VCL compilation failed");
            ExitCode::from(1)
        }
    }
}
