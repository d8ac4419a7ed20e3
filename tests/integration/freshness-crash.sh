#!/bin/bash
# Crash safety of freshness (docs/state.md): a guest's NV write is
# answered only once vtpmd has recorded its generation under the host
# TPM's counter, and a crash at any point leaves the instance starting with
# the last acknowledged state or the one in flight: never refused as a
# rollback, never older.
# 1. Every step of the commit protocol: strace kills the worker, or vtpmd,
#    at the Nth call of each system call of one NV write (the state file's
#    write, sync and rename, the report, the manifest's write and sync, the
#    host TPM's counter increment, the acknowledgement), N = 1, 2, … until
#    the write completes untouched.
# 2. Many SIGKILLs (FRESH_KILLS, default 30; `make soak-fresh`: 1,000) of the worker, vtpmd or
#    both, at random moments of a stream of NV writes.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools strace tpm2_nvdefine jq

KILLS=${FRESH_KILLS:-30}
BATCH=10
NV8_INDEX=01500016
DATA_EP=unix:$T/svc/run/vm.sock

# alive PID: running (a process killed under strace stays a zombie a while)
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null || true)
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
worker_pid() { pgrep -f -- "vtpmd-instance.*--name vm .*$T/" || true; }
# NV writes as fast as the test sends them (no throttling, docs/state.md)
echo "nv-write-rate = 0" >"$T/vtpmd.conf"
restart_vtpmd() {
	kill -KILL "$VTPMD_PID" 2>/dev/null || true
	wait "$VTPMD_PID" 2>/dev/null || true
	start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
}
# running: vm serves (vtpmd restarts a killed worker by itself), and was
# never refused.
running() {
	local st deadline=$((SECONDS + 30))
	while :; do
		st=$("$VTPMCTL" info vm --json 2>/dev/null | jq -r .state || true)
		[ "$st" != refused ] ||
			fail "$1: vm refused: $("$VTPMCTL" info vm --json | jq -r .error)"
		[ "$st" = running ] && [ -n "$(worker_pid)" ] && [ -S "$T/svc/run/vm.sock" ] && return
		[ "$SECONDS" -lt "$deadline" ] || fail "$1: vm is $st; $(tail -3 "$T/svc.log")"
		sleep 0.05
	done
}
# check WHAT LAST ACKED TOTAL: after a crash, the value is the last
# acknowledged one or (when a write was in flight) the next. Sets LAST.
check() {
	local v
	running "$1"
	v=$(nv_value)
	if [ "$v" -ne $(($2 + $3)) ] && { [ "$3" -ge "$4" ] || [ "$v" -ne $(($2 + $3 + 1)) ]; }; then
		fail "$1: NV holds $v after $3 acknowledged writes from $2"
	fi
	LAST=$v
}

start_host_tpm "$T/host"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm >/dev/null || fail "create vm"
TPM2TOOLS_TCTI="swtpm:path=$T/svc/run/vm.sock" tpm2_nvdefine 0x1500016 -C o -s 8 \
	-a "ownerread|ownerwrite" >/dev/null || fail "nvdefine"
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 0)")" "$WRITE_OK" "first NV write"
LAST=0

# step WHO S N: one NV write with WHO (vtpmd or worker) killed at its Nth
# call of S. Returns 1 when it ran to its end untouched.
step() {
	local who=$1 sc=$2 n=$3 pid sp rsp acked=0
	if [ "$who" = vtpmd ]; then pid=$VTPMD_PID; else pid=$(worker_pid); fi
	: >"$T/strace.err"
	strace -p "$pid" -f -o /dev/null -e trace="$sc" -e inject="$sc:signal=KILL:when=$n" \
		2>"$T/strace.err" &
	sp=$!
	until grep -qs attached "$T/strace.err"; do
		kill -0 "$sp" 2>/dev/null || fail "strace did not attach: $(cat "$T/strace.err")"
	done
	"$TPMSEND" "$DATA_EP" "$(nv_write_cmd $((LAST + 1)))" >"$T/ack" 2>/dev/null &
	local writer=$!
	# the write's end, or the kill of its process (then vtpmd comes back)
	while kill -0 "$writer" 2>/dev/null && alive "$pid"; do sleep 0.01; done
	if ! alive "$pid" && [ "$who" = vtpmd ]; then
		restart_vtpmd
	fi
	wait "$writer" 2>/dev/null || true
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	[ "$(cat "$T/ack")" = "$WRITE_OK" ] && acked=1
	if alive "$pid"; then
		[ "$acked" -eq 1 ] || fail "$who not killed, and the write was not acknowledged: $(cat "$T/ack") $(cat "$T/strace.err"); $(tail -5 "$T/svc.log")"
		LAST=$((LAST + 1))
		return 1
	fi
	check "$who killed at its call $n of $sc" "$LAST" "$acked" 1
	return 0
}

for who in worker vtpmd; do
	if [ "$who" = worker ]; then
		calls="openat write fdatasync rename renameat fsync sendto read"
	else
		calls="read openat write fsync rename sendto recvfrom"
	fi
	steps=0
	for sc in $calls; do
		n=1
		while step "$who" "$sc" "$n"; do n=$((n + 1)); done
		steps=$((steps + n - 1))
	done
	note "$who killed at each of its $steps steps of an NV write; never refused, never older"
done

kept=0 writes=0
for k in $(seq 1 "$KILLS"); do
	args=()
	for i in $(seq 1 "$BATCH"); do args+=("$(nv_write_cmd $((LAST + i)))"); done
	: >"$T/acks" # there before the loop below counts its lines
	"$TPMSEND" "$DATA_EP" "${args[@]}" >"$T/acks" 2>/dev/null &
	writer=$!
	target=$((RANDOM % BATCH))
	while [ "$(wc -l <"$T/acks")" -lt "$target" ] && kill -0 "$writer" 2>/dev/null; do :; done
	case $((k % 3)) in
	0) kill -KILL "$(worker_pid)" ;;
	1) restart_vtpmd ;;
	2) kill -KILL "$(worker_pid)" "$VTPMD_PID"; restart_vtpmd ;;
	esac
	wait "$writer" 2>/dev/null || true
	acked=$(grep -c "^$WRITE_OK\$" "$T/acks" || true)
	[ "$acked" -eq "$(wc -l <"$T/acks")" ] || fail "kill $k: a write failed: $(cat "$T/acks")"
	writes=$((writes + acked))
	before=$LAST
	check "kill $k" "$LAST" "$acked" "$BATCH"
	[ "$LAST" -eq $((before + acked)) ] || kept=$((kept + 1))
done
note "$KILLS kills of the worker, vtpmd or both; $writes acknowledged writes, none lost;" \
	"the write in flight was kept $kept times"
echo ok
