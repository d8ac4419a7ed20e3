# Shared helpers for integration and e2e tests; source it first thing.
# Every test gets a fresh directory ($T) and leaves no process behind.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Tests run the sanitizer build of vtpmd unless VTPMD is set.
VTPMD=${VTPMD:-$TOP/build/san/vtpmd}
TPMSEND=$TOP/build/tpmsend
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}

T=$(mktemp -d /tmp/vtpmd-test.XXXXXX)
TEST_PIDS=()

test_cleanup() {
	local pid
	for pid in "${TEST_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap test_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "--- $*"
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	[ "$1" == "$2" ] || fail "$3: expected '$2', got '$1'"
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: expected to contain '$2', got: $1" ;;
	esac
}

# new_key FILE: a fresh 32-byte state key.
new_key() {
	head -c 32 /dev/urandom >"$1"
}

# start_instance NAME ARGS...: starts `vtpmd instance ARGS` in the
# background, waits until it is serving (--ready-fd), and sets
# INSTANCE_PID. Its stderr goes to $T/NAME.log. Fails if it dies first.
# Pass the key as "--key-fd 3" and set KEYFILE, or use --plaintext-state.
start_instance() {
	local name=$1 line=""
	shift
	rm -f "$T/$name.ready"
	mkfifo "$T/$name.ready"
	if [ -n "${KEYFILE:-}" ]; then
		"$VTPMD" instance --name "$name" --ready-fd 4 "$@" 3<"$KEYFILE" 4>"$T/$name.ready" \
			2>>"$T/$name.log" &
	else
		"$VTPMD" instance --name "$name" --ready-fd 4 "$@" 4>"$T/$name.ready" \
			2>>"$T/$name.log" &
	fi
	INSTANCE_PID=$!
	TEST_PIDS+=("$INSTANCE_PID")
	read -r -t 30 line <"$T/$name.ready" || true
	rm -f "$T/$name.ready"
	if [ "$line" != "READY" ]; then
		cat "$T/$name.log" >&2
		fail "instance $name did not become ready"
	fi
}

# stop_pid PID: SIGTERM and wait; fails if it exits non-zero.
stop_pid() {
	local rc=0
	kill -TERM "$1"
	wait "$1" || rc=$?
	[ "$rc" -eq 0 ] || fail "process $1 exited with $rc"
}

# free_port_pair: prints a port P such that P and P+1 were free just now.
# The caller retries its start if the port was taken in between.
free_port_pair() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null &&
			! (exec 3<>/dev/tcp/127.0.0.1/$((p + 1))) 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}
