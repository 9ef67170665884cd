#!/usr/bin/env bash
# Static files: Lacquer's `fs` module behind the cache against nginx
# serving the same files directly, in one run (issue target: files first
# served by fs are then served from cache at least as fast as nginx).
#
# Both servers are pinned to CPU 0 and wrk to CPU 1; each gets a warm-up
# (which for Lacquer puts the files in the cache) and then DURATION
# seconds of keep-alive load on a 1 KiB and a 64 KiB file.
#
# Needs a release build (cargo build --release -p lacquer), nginx
# (nginx-light) and wrk. Usage: bench/fs.sh  (DURATION=8 CONNS=50)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
lacquer=$PWD/target/release/lacquer
[ -x "$lacquer" ] || { echo "build first: cargo build --release -p lacquer" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed" >&2; exit 2; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is needed" >&2; exit 2; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$tmp/www"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 > "$tmp/www/1k.txt"
head -c 65536 /dev/urandom | base64 -w 0 | head -c 65536 > "$tmp/www/64k.txt"
chmod -R a+rX "$tmp/www"

nport=$(free_port)
cat > "$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	keepalive_requests 1000000;
	server { listen 127.0.0.1:$nport; root $tmp/www; }
}
EOF
taskset -c 0 "$nginx" -c "$tmp/nginx.conf" -p "$tmp" 2>/dev/null &
pids+=($!)

lport=$(free_port)
cat > "$tmp/fs.vcl" <<EOF
vcl 4.1;
import fs;
backend default none;
sub vcl_init { new site = fs.root("$tmp/www"); }
sub vcl_recv { set req.backend_hint = site.backend(); }
sub vcl_backend_response { set beresp.ttl = 1h; }
EOF
taskset -c 0 "$lacquer" serve -a "127.0.0.1:$lport" -f "$tmp/fs.vcl" -n "$tmp/lacquer" 2>/dev/null &
pids+=($!)
sleep 1

run() { # name url
	taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$2" >/dev/null
	local out rps p99
	out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$2")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	printf '%-28s %12s req/s   p99 %s\n' "$1" "$rps" "$p99"
}

for f in 1k 64k; do
	run "nginx   /$f.txt" "http://127.0.0.1:$nport/$f.txt"
	run "lacquer /$f.txt (fs, cached)" "http://127.0.0.1:$lport/$f.txt"
done
