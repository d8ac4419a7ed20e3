#!/bin/bash
# Runs each cmocka unit-test binary given as an argument, shows its output,
# and ends with one summary line, "N passed, N failed", counting individual
# test cases (from cmocka's "[  PASSED  ] N test(s)." and "[  FAILED  ] N
# test(s)" lines). A binary that dies before its summary (a crash, a
# sanitizer report) counts its unfinished test as failed; one that exits
# non-zero without any failed case (a leak found at exit, a missing binary)
# counts as one failed. Exits non-zero when any binary fails.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

log=$(mktemp /tmp/vtpmd-unit.XXXXXX)
trap 'rm -f "$log"' EXIT

passed=0 failed=0 broken=()
for bin in "$@"; do
	echo "=== $bin"
	if [ ! -x "$bin" ]; then
		echo "$bin: not an executable"
		failed=$((failed + 1))
		broken+=("$bin (missing)")
		continue
	fi
	"$bin" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# Counts: p passed, f failed, s skipped (from the group summaries),
	# runs started and oks finished (from the progress lines).
	read -r p f s runs oks < <(awk '
		/^\[  PASSED  \] [0-9]+ test\(s\)/ { p += $4 }
		/^\[  FAILED  \] [0-9]+ test\(s\)/ { f += $4 }
		/^\[  SKIPPED \] [0-9]+ test\(s\)/ { s += $4 }
		/^\[ RUN      \] / { runs++ }
		/^\[       OK \] / { oks++ }
		END { printf "%d %d %d %d %d\n", p, f, s, runs, oks }' "$log")
	# Cases started after the last summary: passed if they printed OK,
	# else they were running when the binary died.
	unfinished=$((runs - p - f - s))
	late_ok=$((oks - p))
	if [ "$unfinished" -gt 0 ]; then
		[ "$late_ok" -gt 0 ] || late_ok=0
		p=$((p + late_ok))
		f=$((f + unfinished - late_ok))
	fi
	if [ "$rc" -ne 0 ]; then
		broken+=("$bin (exit status $rc)")
		[ "$f" -gt 0 ] || f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
for b in "${broken[@]+"${broken[@]}"}"; do
	echo "FAIL $b"
done
echo "$passed passed, $failed failed"
[ "${#broken[@]}" -eq 0 ] && [ "$failed" -eq 0 ]
