#!/bin/bash
# Builds every libFuzzer target tests/fuzz/fuzz_NAME.c (make build/fuzz/fuzz_NAME)
# and runs it once over each file of its corpus, tests/fuzz/corpus/NAME/, and
# of the inputs that once crashed it, tests/fuzz/regressions/NAME/ (saved by
# `make fuzz`). A crash, sanitizer report or broken invariant fails the replay.
# Usage: tests/fuzz/replay.sh [NAME...]   (default: every target)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for src in "$here"/fuzz_*.c; do
		[ -e "$src" ] || continue
		name=${src##*/fuzz_}
		names+=("${name%.c}")
	done
fi

passed=0 failed=0
for name in "${names[@]}"; do
	bin=$top/build/fuzz/fuzz_$name
	corpus=$here/corpus/$name
	regressions=$here/regressions/$name
	if ! make -s -C "$top" "build/fuzz/fuzz_$name" >/dev/null; then
		echo "FAIL fuzz_$name: does not build (needs clang and libclang-rt-14-dev: make deps)"
		failed=$((failed + 1))
		continue
	fi
	files=()
	[ -d "$corpus" ] && mapfile -t files < <(find "$corpus" -type f | sort)
	if [ ${#files[@]} -gt 0 ] && [ -d "$regressions" ]; then
		mapfile -t -O ${#files[@]} files < <(find "$regressions" -type f | sort)
	fi
	if [ ${#files[@]} -eq 0 ]; then
		echo "FAIL fuzz_$name: no corpus in ${corpus#"$top"/}"
		failed=$((failed + 1))
		continue
	fi
	# With files as arguments, a libFuzzer binary runs each once and exits.
	if out=$("$bin" "${files[@]}" 2>&1); then
		printf 'PASS fuzz_%-40s %4d inputs\n' "$name" "${#files[@]}"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz_$name"
		printf '%s\n' "$out" | tail -n 40 | sed 's/^/    | /'
		failed=$((failed + 1))
	fi
done
echo "fuzz replay: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
