#!/usr/bin/env bash
# Pass-through throughput and latency, Lacquer against varnishd, one run:
# nginx serves a 1 KiB file on loopback; both proxies pass every request
# to it (no cache involved); wrk loads each in turn, pinned to its own CPU.
# Usage: bench/pass.sh      env: DURATION=10 CONNS=50
# Needs: nginx-light wrk varnish (apt-get install -y nginx-light wrk varnish)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}; CONNS=${CONNS:-50}
for b in nginx wrk varnishd taskset; do command -v "$b" >/dev/null || { echo "needs $b" >&2; exit 1; }; done
cargo build --release -q -p lacquer --manifest-path "$top/Cargo.toml"

work=$(mktemp -d); chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(port); LQ=$(port); VA=$(port)
mkdir -p "$work/www"; head -c 1024 /dev/zero | tr '\0' x > "$work/www/1k.bin"
cat > "$work/nginx.conf" <<NGX
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$ORIGIN; root $work/www; } }
NGX
taskset -c 0 nginx -c "$work/nginx.conf" & pids+=($!)
cat > "$work/pass.vcl" <<VCL
vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "$ORIGIN"; }
sub vcl_recv { return (pass); }
VCL
taskset -c 0 "$top/target/release/lacquer" serve -a "127.0.0.1:$LQ" -f "$work/pass.vcl" 2>"$work/lacquer.err" & pids+=($!)
taskset -c 0 varnishd -F -n "$work/v" -a "127.0.0.1:$VA" -f "$work/pass.vcl" -s malloc,64m >"$work/varnish.log" 2>&1 & pids+=($!)
for p in $LQ $VA; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/1k.bin" >/dev/null && break; sleep 0.1; done
done
run() {
    echo "== $1"
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$2/1k.bin" >/dev/null
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/1k.bin" | grep -E 'Requests/sec|99%|50%|Non-2xx'
}
run "varnishd 7.1 (pass)" "$VA"
run "lacquer (pass)" "$LQ"
