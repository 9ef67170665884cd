#!/usr/bin/env bash
# Passing a connection on against proxying it: the same application
# (examples/handoff-echo) answers (a) through Lacquer as an ordinary
# backend with `return (pass)`, and (b) handed the client's socket by the
# `handoff` module. Measured for a large generated download and for a
# burst of small server-sent events: throughput, time to first byte, and
# the CPU seconds Lacquer itself used (from /proc, so the client's and the
# application's work are left out).
# Usage: bench/handoff.sh     env: BYTES=100000000 EVENTS=200000 ROUNDS=3
# Needs: curl, taskset.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BYTES=${BYTES:-100000000}; EVENTS=${EVENTS:-200000}; ROUNDS=${ROUNDS:-3}
for b in curl taskset; do command -v "$b" >/dev/null || { echo "needs $b" >&2; exit 1; }; done
cargo build --release -q -p lacquer -p handoff-echo --manifest-path "$top/Cargo.toml"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APP=$(port); LQ=$(port)
taskset -c 1 "$top/target/release/handoff-echo" --socket "$work/app.sock" --http "127.0.0.1:$APP" --interval-ms 0 \
    2>"$work/app.err" & pids+=($!)
cat > "$work/bench.vcl" <<VCL
vcl 4.1;
import handoff;
backend origin { .host = "127.0.0.1"; .port = "$APP"; }
sub vcl_init { new shortcut = handoff.endpoint(path = "$work/app.sock"); }
sub vcl_recv {
    if (req.url ~ "[?&]via=handoff") { shortcut.transfer(); }
    return (pass);
}
VCL
taskset -c 0 "$top/target/release/lacquer" serve -a "127.0.0.1:$LQ" -f "$work/bench.vcl" -n "$work/n" \
    2>"$work/lacquer.err" & lq=$!; pids+=($lq)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$LQ/pid" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$LQ/pid?via=handoff" >/dev/null || { cat "$work/lacquer.err" "$work/app.err" >&2; exit 1; }

# Lacquer's user + system CPU time so far, in seconds.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$lq/stat"; }

# One transfer: curl's total time and time to first byte, the bytes it
# got, and the CPU Lacquer spent meanwhile.
measure() {
    local url=$1 before after out
    before=$(cpu)
    out=$(taskset -c 1 curl -s -o /dev/null -w '%{time_total} %{time_starttransfer} %{size_download}' "$url")
    after=$(cpu)
    echo "$out $(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.3f", a - b }')"
}

report() {
    local what=$1 unit=$2 url=$3
    for r in $(seq "$ROUNDS"); do
        read -r total ttfb size lcpu < <(measure "$url")
        awk -v w="$what" -v r="$r" -v t="$total" -v f="$ttfb" -v s="$size" -v c="$lcpu" -v u="$unit" 'BEGIN {
            rate = (u == "MB") ? s / t / 1e6 : 0
            printf "%-26s round %d: %8.3f s  first byte %6.2f ms  ", w, r, t, f * 1000
            if (u == "MB") printf "%8.1f MB/s", rate
            amount = (u == "MB") ? s / 1e6 : s / 1e3
            printf "  lacquer CPU %.3f s (%.3f ms per %s)\n", c, c * 1000 / amount, u
        }'
    done
}

echo "== ${BYTES}-byte download"
report "pass (proxied)" MB "http://127.0.0.1:$LQ/download?bytes=$BYTES"
report "handoff" MB "http://127.0.0.1:$LQ/download?bytes=$BYTES&via=handoff"
echo "== ${EVENTS} server-sent events, back to back"
report "pass (proxied)" KB "http://127.0.0.1:$LQ/events?count=$EVENTS"
report "handoff" KB "http://127.0.0.1:$LQ/events?count=$EVENTS&via=handoff"
