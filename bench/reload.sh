#!/usr/bin/env bash
# VCL reloads under load, side by side with varnishd when it is installed:
#
#  1. how long loading and switching to a new VCL takes over the admin CLI
#     (`vcl.inline` + `vcl.use`, timed by the client, as an operator's
#     script sees it), Lacquer against varnishd;
#  2. that switching VCLs while wrk hammers the server loses nothing: wrk's
#     socket errors and non-2xx answers must be zero.
#
# Needs a release build (cargo build --release -p lacquer) and wrk;
# varnishd/varnishadm for the comparison. Usage: bench/reload.sh [SWITCHES]
set -euo pipefail
cd "$(dirname "$0")/.."
switches="${1:-50}"
lacquer=./target/release/lacquer
[ -x "$lacquer" ] || { echo "build first: cargo build --release -p lacquer" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed" >&2; exit 2; }
tmp=$(mktemp -d)
# varnishd reads its files as its own unprivileged user.
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
printf 'secret\n' > "$tmp/secret"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A VCL on one line, without quotes or backslashes: varnishadm sends its
# arguments as they are (so the script quotes the VCL for it), lacquer adm
# quotes each argument itself.
VCL='vcl 4.1; backend default none; sub vcl_recv { return (synth(200)); }'

# One VCL switch over the CLI, timed; prints milliseconds.
switch() { # adm-command name quote
	local adm=$1 name=$2 q=$3 t0 t1
	t0=$(date +%s%N)
	$adm vcl.inline "$name" "$q$VCL$q" >/dev/null
	$adm vcl.use "$name" >/dev/null
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000000 ))
}

# Switches $switches times; prints the median and the worst.
measure() { # adm-command prefix quote
	local adm=$1 prefix=$2 q=${3:-} ms=()
	for i in $(seq 1 "$switches"); do ms+=("$(switch "$adm" "$prefix$i" "$q")"); done
	printf '%s\n' "${ms[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, worst %d ms\n", a[int((NR+1)/2)], a[NR]}'
}

port=$(free_port); cli=$(free_port)
echo "$VCL" > "$tmp/boot.vcl"
$lacquer serve -a "127.0.0.1:$port" -f "$tmp/boot.vcl" -T "127.0.0.1:$cli" -S "$tmp/secret" -n "$tmp/lacquer" 2>/dev/null &
pids+=($!)
sleep 1
ladm="$lacquer adm -T 127.0.0.1:$cli -S $tmp/secret"

echo "== Lacquer: $switches switches (vcl.inline + vcl.use), idle"
measure "$ladm" idle

echo "== Lacquer: $switches switches while wrk -c50 runs"
wrk -t2 -c50 -d30s "http://127.0.0.1:$port/" > "$tmp/wrk.out" &
wrkpid=$!
sleep 1
measure "$ladm" load
# Discarding what was switched away from, under load too.
$ladm vcl.discard 'idle*' >/dev/null
kill -INT "$wrkpid" 2>/dev/null || true
wait "$wrkpid" || true
grep -E "requests in|Socket errors|Non-2xx" "$tmp/wrk.out" || true
if grep -qE "Socket errors|Non-2xx" "$tmp/wrk.out"; then
	echo "FAIL: requests were lost during the switches"
	exit 1
fi
echo "no request lost, no connection dropped"

if command -v varnishd >/dev/null && command -v varnishadm >/dev/null; then
	vport=$(free_port); vcli=$(free_port)
	varnishd -a "127.0.0.1:$vport" -f "$tmp/boot.vcl" -T "127.0.0.1:$vcli" -S "$tmp/secret" \
		-n "$tmp/varnishd" -P "$tmp/varnishd.pid" >/dev/null 2>&1
	sleep 2
	pids+=("$(cat "$tmp/varnishd.pid")")
	vadm="varnishadm -T 127.0.0.1:$vcli -S $tmp/secret"
	echo "== varnishd: $switches switches (vcl.inline + vcl.use), idle"
	measure "$vadm" idle '"'
else
	echo "(varnishd not installed: no comparison)"
fi
