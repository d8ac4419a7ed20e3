#!/bin/bash
# Runs every test script in the given directories; each is one test that
# exits 0 (pass) or non-zero (fail). Prints a summary line that CI reads.
# A script still running after TEST_TIMEOUT seconds (default 600) is
# ended (SIGTERM, so its cleanup runs; SIGKILL 20 s later) and fails: a
# hang costs one test, not CI's whole time limit.
set -u
limit=${TEST_TIMEOUT:-600}
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0 failures=()
for dir in "$@"; do
	for t in "$dir"/*.sh; do
		[ -e "$t" ] || continue
		name=${t#"$here"/}
		start=$(date +%s%N)
		if out=$(timeout -k 20 "$limit" bash "$t" 2>&1); then
			passed=$((passed + 1))
			ms=$((($(date +%s%N) - start) / 1000000))
			printf 'PASS %-50s %6d ms\n' "$name" "$ms"
		else
			failed=$((failed + 1))
			failures+=("$name")
			ms=$((($(date +%s%N) - start) / 1000000))
			if [ "$ms" -ge $((limit * 1000)) ]; then
				printf 'FAIL %s (still running after %d s: ended)\n' "$name" "$limit"
			else
				printf 'FAIL %s\n' "$name"
			fi
			printf '%s\n' "$out" | tail -n 60 | sed 's/^/    | /'
		fi
	done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
