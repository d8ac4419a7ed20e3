#!/bin/bash
# A fuzzing campaign: runs every libFuzzer target tests/fuzz/fuzz_NAME.c for
# FUZZ_SECONDS (default 60) seconds each, then prints, per target, the CPU
# seconds it used, the inputs it executed, its coverage at the end (libFuzzer's
# cov: edges and ft: features) and the crashes it found.
#
# Each target starts from its corpus (tests/fuzz/corpus/NAME/) and its
# regression inputs (tests/fuzz/regressions/NAME/); what it discovers is kept
# in build/fuzz/work/NAME/ for the next campaign, not in the repository. An
# input that crashes the target (a sanitizer report, a broken invariant, a
# timeout of more than 10 s or running out of memory) is copied to
# tests/fuzz/regressions/NAME/, which `make fuzz-replay` replays from then on,
# and the target goes on fuzzing for the rest of its time.
#
# Usage: tests/fuzz/campaign.sh [NAME...]   (default: every target)
# Exit status: 0 when no target crashed, 1 otherwise.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# tpm2-tss' unmarshalling warnings on every malformed input fill the logs.
export TSS2_LOG=${TSS2_LOG:-all+none}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || {
	echo "FUZZ_SECONDS must be a number of seconds, not '$seconds'" >&2
	exit 2
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for src in "$here"/fuzz_*.c; do
		[ -e "$src" ] || continue
		name=${src##*/fuzz_}
		names+=("${name%.c}")
	done
fi

# children_cpu: sets CPU to the CPU time (user + system) of this shell's
# finished children so far, in milliseconds. (`times` runs in this shell:
# in a $(...) subshell it would count that subshell's children only.)
times_file=$(mktemp)
trap 'rm -f "$times_file"' EXIT
children_cpu() {
	times >"$times_file"
	CPU=$(tail -n 1 "$times_file" | awk '{ n = 0
		for (i = 1; i <= 2; i++) {
			split($i, p, "m"); sub("s", "", p[2]); n += p[1] * 60 + p[2]
		}
		printf "%d\n", n * 1000 }')
}

rows=() total_crashes=0
for name in "${names[@]}"; do
	bin=$top/build/fuzz/fuzz_$name
	work=$top/build/fuzz/work/$name
	art=$top/build/fuzz/artifacts/$name
	reg=$here/regressions/$name
	if ! make -s -C "$top" "build/fuzz/fuzz_$name" >/dev/null; then
		echo "fuzz_$name: does not build (needs clang and libclang-rt-14-dev: make deps)" >&2
		rows+=("$(printf '%-12s %8s %12s %7s %8s %8s' "$name" - - - - "no build")")
		total_crashes=$((total_crashes + 1))
		continue
	fi
	mkdir -p "$work" "$art"
	seeds=("$here/corpus/$name")
	[ -d "$reg" ] && seeds+=("$reg")
	log=$top/build/fuzz/$name.campaign.log
	: >"$log"
	execs=0 crashes=0 cov=- ft=- runs=0
	children_cpu
	cpu0=$CPU
	end=$((SECONDS + seconds))
	# A crash ends a libFuzzer run: save the input, then fuzz on for the
	# time left (at most 20 runs, so that shallow crashes cannot spin).
	while [ "$SECONDS" -lt "$end" ] && [ "$runs" -lt 20 ]; do
		runs=$((runs + 1))
		"$bin" -max_total_time=$((end - SECONDS)) -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="$art/" "$work" "${seeds[@]}" \
			>>"$log" 2>&1
		rc=$?
		n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		sed -i 's/^stat::number_of_executed_units:/stat::counted_units:/' "$log"
		execs=$((execs + ${n:-0}))
		line=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
		if [[ "$line" =~ cov:\ ([0-9]+)\ ft:\ ([0-9]+) ]]; then
			cov=${BASH_REMATCH[1]} ft=${BASH_REMATCH[2]}
		fi
		[ "$rc" -eq 0 ] && break
		# The input becomes a regression input, named by libFuzzer after
		# its kind and content (crash-, timeout-, oom-, leak-SHA1); the
		# working corpus loses its copy, if it kept one, so that the next
		# run does not start by crashing on it.
		saved=0 known=0
		for f in "$art"/*; do
			[ -f "$f" ] || continue
			base=${f##*/}
			rm -f "$work/${base#*-}"
			saved=1
			crashes=$((crashes + 1))
			if [ -e "$reg/$base" ]; then
				known=1
				rm -f "$f"
				echo "fuzz_$name: regression input $base still crashes; fix it first" \
					"(make fuzz-replay shows it)" >&2
				continue
			fi
			mkdir -p "$reg"
			mv -f "$f" "$reg/"
			echo "fuzz_$name: crash input saved as tests/fuzz/regressions/$name/$base" >&2
		done
		if [ "$saved" -eq 0 ]; then
			echo "fuzz_$name: exited with status $rc without a crash input; see $log" >&2
			crashes=$((crashes + 1))
			break
		fi
		[ "$known" -eq 0 ] || break
	done
	children_cpu
	cpu=$((CPU - cpu0))
	total_crashes=$((total_crashes + crashes))
	rows+=("$(printf '%-12s %8d.%01d %12d %7s %8s %8d' "$name" $((cpu / 1000)) \
		$((cpu % 1000 / 100)) "$execs" "$cov" "$ft" "$crashes")")
done

printf '%-12s %10s %12s %7s %8s %8s\n' target "CPU s" execs cov ft crashes
printf '%s\n' "${rows[@]}"
echo "fuzz campaign: ${#names[@]} targets, ${seconds} s each, $total_crashes crashes" \
	"(logs: build/fuzz/NAME.campaign.log)"
[ "$total_crashes" -eq 0 ]
