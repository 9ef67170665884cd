#!/usr/bin/env bash
# Regenerate the golden outputs of the VCC error cases in this directory
# from the real VCL compiler (varnishd 7.1):
#
#   NAME.vcl that VCC rejects  ->  NAME.err  (VCC's message, framing dropped)
#   ok-NAME.vcl                ->  ok-NAME.ok (empty; varnishd must accept it)
#
# NAME.err holds exactly the text varnishd prints between the lines
# "Message from VCC-compiler:" and "Running VCC-compiler failed ...",
# with this directory's absolute path prefix removed from source names,
# so the main file reads 'NAME.vcl' and included files read './x.inc'
# (relative to this directory), the way tests/errors.rs compares them.
#
# Files named *.inc are only ever included by cases, never compiled alone.
# Idempotent: a file is rewritten only when its content changes, and stale
# outputs whose .vcl is gone are removed. Without varnishd it does nothing.
#
# Usage: crates/lacquer-vcl/tests/errors/regen.sh [--check]
#   --check  regenerate nothing; exit 1 if any output would change.
set -euo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
check=0
[[ ${1-} == --check ]] && check=1

if ! command -v varnishd >/dev/null 2>&1; then
	echo "regen.sh: varnishd not found; nothing regenerated" >&2
	exit 0
fi

want_version="varnish-7.1"
if ! varnishd -V 2>&1 | grep -q "$want_version"; then
	echo "regen.sh: varnishd is not $want_version:" >&2
	varnishd -V >&2 || true
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
changed=0

# put CONTENT into FILE unless it already holds exactly that
put() {
	local file=$1
	if [[ -f $file ]] && cmp -s "$file" "$tmp/new"; then
		return
	fi
	changed=$((changed + 1))
	if ((check)); then
		echo "would change: ${file##*/}" >&2
		return
	fi
	cp "$tmp/new" "$file"
	echo "wrote ${file##*/}"
}

shopt -s nullglob
for vcl in "$dir"/*.vcl; do
	name=${vcl##*/}
	base=${name%.vcl}
	rc=0
	varnishd -C -f "$vcl" >/dev/null 2>"$tmp/stderr" || rc=$?
	case $base in
	ok-*)
		rm -f "$dir/$base.err"
		if ((rc != 0)); then
			echo "regen.sh: $name must compile but varnishd rejects it:" >&2
			cat "$tmp/stderr" >&2
			status=1
			continue
		fi
		: >"$tmp/new"
		put "$dir/$base.ok"
		;;
	*)
		rm -f "$dir/$base.ok"
		if ((rc == 0)); then
			echo "regen.sh: $name must fail to compile but varnishd accepts it" >&2
			status=1
			continue
		fi
		if ! grep -q '^Message from VCC-compiler:$' "$tmp/stderr"; then
			echo "regen.sh: $name: varnishd failed without a VCC message:" >&2
			cat "$tmp/stderr" >&2
			status=1
			continue
		fi
		# keep the lines strictly between the framing lines
		awk '
			/^Message from VCC-compiler:$/ { on = 1; next }
			/^Running VCC-compiler failed/ { on = 0 }
			on { print }
		' "$tmp/stderr" >"$tmp/msg"
		# drop this directory from the source names VCC prints
		DIR="$dir/" perl -pe 's/\Q$ENV{DIR}\E//g' "$tmp/msg" >"$tmp/new"
		put "$dir/$base.err"
		;;
	esac
done

for out in "$dir"/*.err "$dir"/*.ok; do
	if [[ ! -f ${out%.*}.vcl ]]; then
		if ((check)); then
			echo "would remove: ${out##*/}" >&2
			changed=$((changed + 1))
		else
			rm -f "$out"
			echo "removed ${out##*/}"
		fi
	fi
done

if ((check && changed)); then
	status=1
fi
exit $status
