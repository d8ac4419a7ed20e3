#!/bin/sh
# mandoc -Tlint on the given pages (make man-lint, in make check): any
# message fails, but for the two that judge this machine's manual database
# rather than a page: a cross-reference to one of the pages given (not
# installed yet), and an outdated mandoc.db.
set -eu
[ $# -gt 0 ] || { echo "usage: man-lint.sh PAGE..." >&2; exit 2; }
command -v mandoc >/dev/null 2>&1 ||
	{ echo "man-lint: mandoc is missing: run 'sudo make deps'" >&2; exit 1; }
ours=""
for page in "$@"; do
	base=${page##*/}
	ours="$ours|Xr ${base%.*} ${base##*.}"
done
out=$(mandoc -Tlint "$@" 2>&1 || true)
problems=$(printf '%s\n' "$out" | grep -v '^$' |
	grep -Ev "referenced manual not found: (${ours#|})( \([0-9]+ times\))?\$" |
	grep -Ev '^mandoc: outdated mandoc.db lacks .* entry, run makewhatis' || true)
if [ -n "$problems" ]; then
	printf '%s\n' "$problems" >&2
	echo "man-lint: mandoc -Tlint found the problems above" >&2
	exit 1
fi
echo "man-lint: ok ($# pages)"
