#!/bin/sh
# Writes a compilation database (compile_commands.json) for the analysers:
# one entry per FILE, compiled from the top directory with the flags in
# $ANALYZE_CFLAGS (the Makefile passes the build's own, pkg-config's
# include flags among them).
# Usage: ANALYZE_CFLAGS='...' scripts/compile-commands.sh OUT.json FILE...
set -eu

[ $# -ge 2 ] || { echo "usage: compile-commands.sh OUT.json FILE..." >&2; exit 2; }
: "${ANALYZE_CFLAGS:?compile-commands: set ANALYZE_CFLAGS (make analyze does)}"
out=$1
shift
dir=$(pwd)

# A JSON string: backslashes and double quotes escaped (no flag or path
# here holds a control character).
json() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

mkdir -p "$(dirname "$out")"
tmp="$out.tmp"
{
	printf '[\n'
	sep=""
	for f in "$@"; do
		args=$(json clang) # what the analysers see, whatever $(CC) builds with
		# shellcheck disable=SC2086 # one argument per flag, as make passes them
		for a in $ANALYZE_CFLAGS -c -o /dev/null "$f"; do
			args="$args, $(json "$a")"
		done
		printf '%s  { "directory": %s, "file": %s, "arguments": [%s] }' \
		    "$sep" "$(json "$dir")" "$(json "$f")" "$args"
		sep=",
"
	done
	printf '\n]\n'
} >"$tmp"
mv "$tmp" "$out"
