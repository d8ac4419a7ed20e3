#!/bin/bash
# vtpmd killed at every step of create, start, stop and delete (issue
# "Trust under attack": signals and restarts leave no half-made instance).
# strace attaches to the running vtpmd and sends it SIGKILL at the Nth
# call of one system call S during one operation, for every S of the
# file, write, sync, process and signal calls and N = 1, 2, … until the
# operation completes untouched: every step of the operation, once. After each kill
# a new vtpmd starts and the instance is either absent (no directory left,
# the name can be created again) or whole (it starts, answers a TPM
# command, and deletes); no worker runs that vtpmd does not know of.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools strace tpm2_getrandom
SYSCALLS="openat mkdir rename unlink unlinkat write fsync fdatasync clone clone3 kill chown
	newfstatat"
GETRANDOM=80010000000c0000017b0010

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
DIR=$T/svc/state/instances

# exists NAME: whether vtpmd lists NAME.
exists() {
	"$VTPMCTL" list --json | jq -e --arg n "$1" '.instances | any(.name == $n)' >/dev/null
}

# workers_match: the vtpmd-instance processes are those of the instances
# vtpmd reports running.
workers_match() {
	local want got
	want=$("$VTPMCTL" list --json | jq '[.instances[] | select(.state == "running")] | length')
	got=$({ pgrep -f -- "vtpmd-instance.*$T/svc/" || true; } | wc -l)
	[ "$want" -eq "$got" ] || fail "$1: $got workers run, vtpmd reports $want running"
}

# whole NAME WHAT: NAME starts, answers, stops, and is deleted.
whole() {
	local out
	out=$("$VTPMCTL" start "$1" 2>&1) ||
		fail "$2: $1 is listed but does not start: $out; $(tail -n 5 "$T/svc.log")"
	"$TPMSEND" "unix:$T/svc/run/$1.sock" "$GETRANDOM" >/dev/null ||
		fail "$2: $1 does not answer"
	workers_match "$2"
	"$VTPMCTL" delete "$1" --force >/dev/null || fail "$2: $1 cannot be deleted"
	[ ! -e "$DIR/$1" ] || fail "$2: delete left $DIR/$1"
}

# absent NAME WHAT: nothing of NAME is left, and it can be made again.
absent() {
	[ ! -e "$DIR/$1" ] || fail "$2: $1 is not listed but $DIR/$1 exists"
	"$VTPMCTL" create "$1" >/dev/null || fail "$2: $1 cannot be created again"
	whole "$1" "$2 (made again)"
}

# interrupt S N OP ARGS...: runs vtpmctl OP ARGS with vtpmd killed at its
# Nth call of S. Returns 0 when vtpmd was killed (and restarts it), 1 when
# the operation ran to its end untouched.
interrupt() {
	local sc=$1 n=$2 sp
	shift 2
	: >"$T/strace.err"
	strace -p "$VTPMD_PID" -o /dev/null -e trace="$sc" \
		-e inject="$sc:signal=KILL:when=$n" 2>"$T/strace.err" &
	sp=$!
	until grep -qs attached "$T/strace.err"; do
		kill -0 "$sp" 2>/dev/null || fail "strace did not attach: $(cat "$T/strace.err")"
	done
	"$VTPMCTL" "$@" >/dev/null 2>&1 || true
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	# Detached: a vtpmd that answers now was not killed.
	if "$VTPMCTL" list >/dev/null 2>&1; then
		return 1
	fi
	kill -KILL "$VTPMD_PID" 2>/dev/null || true
	wait "$VTPMD_PID" 2>/dev/null || true
	start_vtpmd svc --root-tcti "$HOST_TCTI"
	return 0
}

# each OP SETUP: for every system call S and N = 1, 2, …: SETUP (a shell
# command), then the operation interrupted at the Nth call of S, then the
# checks. Notes how many steps there were.
each() {
	local op=$1 setup=$2 sc n steps=0 what
	for sc in $SYSCALLS; do
		n=1
		while :; do
			eval "$setup"
			what="$op killed at its call $n of $sc"
			interrupt "$sc" "$n" $op || break
			if exists x; then
				whole x "$what"
			else
				absent x "$what"
			fi
			[ -z "$(find "$DIR" -maxdepth 1 -name '.deleting-*')" ] ||
				fail "$what: an interrupted delete was not finished"
			n=$((n + 1))
		done
		steps=$((steps + n - 1))
		exists x && "$VTPMCTL" delete x --force >/dev/null
	done
	note "$op: killed at each of its $steps steps; never a half-made instance"
	true
}

each "create x --no-start" ":"
each "create x" ":"
each "start x" '"$VTPMCTL" create x --no-start >/dev/null'
each "stop x" '"$VTPMCTL" create x >/dev/null'
each "delete x" '"$VTPMCTL" create x --no-start >/dev/null'
each "delete x --force" '"$VTPMCTL" create x >/dev/null'
workers_match "at the end"
