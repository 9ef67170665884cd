#!/usr/bin/env bash
# VCL compile time, Lacquer against Varnish, whole processes, with hyperfine:
#   lacquer check FILE     (lex, parse, type-check, lower; no C compiler)
#   varnishd -C -f FILE    (VCC to C, then the C compiler), when installed
# Usage: bench/vcl-compile.sh [file.vcl]   (default: examples/default.vcl)
# Needs: hyperfine (apt-get install -y hyperfine); a release build is made.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
src=$(realpath "${1:-$top/examples/default.vcl}")
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }
cargo build --release -q -p lacquer --manifest-path "$top/Cargo.toml"
cmds=("$top/target/release/lacquer check $src")
if command -v varnishd >/dev/null; then
    work=$(mktemp -d)
    chmod 755 "$work"   # varnishd drops privileges
    trap 'rm -rf "$work"' EXIT
    cmds+=("varnishd -n $work -C -f $src")
fi
hyperfine -N --warmup 3 --runs "${RUNS:-20}" "${cmds[@]}"
