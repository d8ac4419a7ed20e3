#!/bin/sh
# make analyze: three static analysers over FILE... (the programs' sources,
# the test tools, the benchmarks), each with the build's own flags, and a
# failure when any of them reports anything:
#   cppcheck     suppressions in tests/cppcheck.supp (each with its reason),
#                library macros in tests/cppcheck.cfg;
#   clang-tidy   .clang-tidy (every disabled check says why);
#   scan-build   the Clang Static Analyzer on `make analyze-objs`, which
#                compiles into build/analyze/obj (never build/obj).
# The Makefile passes ANALYZE_CFLAGS (its WARN list and pkg-config's flags)
# and ANALYZE_JOBS (parallelism, 2 by default). Output: findings as
# FILE:LINE: lines, then one verdict line per analyser; scan-build's HTML
# reports stay in build/analyze/scan for a closer look.
# Usage: ANALYZE_CFLAGS='...' scripts/analyze.sh FILE...
set -eu

: "${ANALYZE_CFLAGS:?analyze: set ANALYZE_CFLAGS (make analyze does)}"
jobs=${ANALYZE_JOBS:-2}
out=build/analyze
[ $# -gt 0 ] || { echo "usage: analyze.sh FILE..." >&2; exit 2; }

for tool in cppcheck clang-tidy scan-build clang; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "analyze: $tool is not installed: run 'sudo make deps' and retry" >&2
		exit 1
	fi
done

rm -rf "$out"
mkdir -p "$out"
scripts/compile-commands.sh "$out/compile_commands.json" "$@"
failed=""
now() { date +%s; }

# -- cppcheck -----------------------------------------------------------------
# The include and define flags only: cppcheck reads no system header
# (tests/cppcheck.cfg describes the library macros it must understand).
cppflags=""
for f in $ANALYZE_CFLAGS; do
	case "$f" in -I* | -D*) cppflags="$cppflags $f" ;; esac
done
t0=$(now)
# shellcheck disable=SC2086 # one argument per flag
if cppcheck -j "$jobs" --quiet --error-exitcode=1 --std=c11 $cppflags \
    --enable=warning,style,performance,portability,information \
    --library=posix --library=gnu --library=openssl --library=tests/cppcheck.cfg \
    --suppressions-list=tests/cppcheck.supp \
    --template='{file}:{line}:{column}: {severity}: {message} [cppcheck:{id}]' \
    "$@" 2>"$out/cppcheck.txt"; then
	echo "analyze: cppcheck: no findings ($(($(now) - t0))s)"
else
	cat "$out/cppcheck.txt"
	echo "analyze: cppcheck: FAILED, $(grep -c '\[cppcheck:' "$out/cppcheck.txt") findings ($(($(now) - t0))s)" >&2
	failed="$failed cppcheck"
fi

# -- clang-tidy ---------------------------------------------------------------
# One process per file (clang-tidy 14 can crash when given several), $jobs at
# a time; WarningsAsErrors makes each finding a non-zero exit.
t0=$(now)
if printf '%s\n' "$@" |
    xargs -P "$jobs" -n 1 clang-tidy -p "$out" --quiet >"$out/clang-tidy.txt" \
        2>"$out/clang-tidy.err"; then
	echo "analyze: clang-tidy: no findings ($(($(now) - t0))s)"
else
	cat "$out/clang-tidy.txt"
	grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed |^Use -header-filter' \
	    "$out/clang-tidy.err" || true
	# (A finding in a header is counted once, not once per includer.)
	echo "analyze: clang-tidy: FAILED, $(grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error): ' \
	    "$out/clang-tidy.txt" | sort -u | wc -l) findings ($(($(now) - t0))s)" >&2
	failed="$failed clang-tidy"
fi

# -- scan-build ---------------------------------------------------------------
# Its own make of every file into build/analyze/obj (fresh, so nothing is
# skipped as up to date), with clang as the compiler it wraps. The checkers
# are scan-build's defaults plus those for va_list, unbounded string copies
# and POSIX API misuse. A make started by make inherits its flags and job
# server; this one is on its own (and scan-build needs a bare `make` to set CC).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
t0=$(now)
if scan-build --status-bugs --use-cc=clang -o "$out/scan" \
    -enable-checker valist.CopyToSelf -enable-checker valist.Uninitialized \
    -enable-checker valist.Unterminated -enable-checker security.insecureAPI.strcpy \
    -enable-checker optin.portability.UnixAPI \
    make -s -j "$jobs" analyze-objs ANALYZE_SRC="$*" >"$out/scan-build.txt" 2>&1; then
	echo "analyze: scan-build: no findings ($(($(now) - t0))s)"
else
	# One line per report, from the metadata scan-build writes into each.
	find "$out/scan" -name 'report-*.html' -exec awk -v top="$(pwd)/" '
	    /^<!-- BUGFILE / { file = $3 } /^<!-- BUGLINE / { line = $3 }
	    /^<!-- BUGCOLUMN / { col = $3 } /^<!-- BUGTYPE / { type = $0 }
	    /^<!-- BUGDESC / { desc = $0 }
	    END {
		sub(/^<!-- BUGTYPE /, "", type); sub(/ -->$/, "", type)
		sub(/^<!-- BUGDESC /, "", desc); sub(/ -->$/, "", desc)
		if (index(file, top) == 1) file = substr(file, length(top) + 1)
		printf "%s:%s:%s: warning: %s [scan-build: %s]\n", file, line, col, desc, type
	    }' {} \; 2>/dev/null | sort
	n=$(find "$out/scan" -name 'report-*.html' 2>/dev/null | wc -l)
	if [ "$n" -eq 0 ]; then # the build itself failed
		tail -n 30 "$out/scan-build.txt" >&2
	fi
	echo "analyze: scan-build: FAILED, $n findings ($(($(now) - t0))s); reports in $out/scan" >&2
	failed="$failed scan-build"
fi

if [ -n "$failed" ]; then
	echo "analyze: FAILED:$failed (fix the code; a false positive is suppressed only with a reason: .clang-tidy, tests/cppcheck.supp)" >&2
	exit 1
fi
echo "analyze: ok (cppcheck, clang-tidy, scan-build)"
