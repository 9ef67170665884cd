#!/usr/bin/env bash
# The conformance gate: every Varnish test listed in passing.txt must pass
# under `lacquer vtc`. The scripts are read from ../shared, never copied.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
suite="$top/../shared/vtc/varnish-7.1.1/tests"
list="$here/passing.txt"

mapfile -t tests < <(grep -v '^\s*#' "$list" | grep -v '^\s*$' || true)
if [ ! -d "$suite" ]; then
    echo "conformance: $suite not found; skipping (${#tests[@]} listed)"
    exit 0
fi
if [ "${#tests[@]}" -eq 0 ]; then
    echo "conformance: no Varnish test listed in passing.txt yet (grow it as lacquer vtc learns more)"
    exit 0
fi
cargo build --release -q -p lacquer
files=()
for t in "${tests[@]}"; do files+=("$suite/$t"); done
exec "$top/target/release/lacquer" vtc -j 2 "${files[@]}"
