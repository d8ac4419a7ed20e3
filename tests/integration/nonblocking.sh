#!/bin/bash
# The manager never blocks (docs/architecture.md, "The manager's loop"):
# while a CA trickles its answer one byte at a time, or holds the
# connection silent,
#  - during `vtpmctl host enroll` (the Privacy CA is slow) and during
#    `vtpmctl create` of an instance whose EK certificates come from a slow
#    Virtualization CA, `vtpmctl list`, `host`, starts and stops of other
#    instances and `create --ek none` each answer in well under 100 ms;
#  - the slow operation ends after the CA deadline (`ca-timeout`, 3 s
#    here) with an error naming the CA and the timeout, and leaves nothing
#    half-made: no instance, no worker, the enrolment unchanged; vtpmd
#    hangs up on the CA and keeps no helper process;
#  - while the stop of a worker that ignores SIGTERM (SIGSTOPped) waits
#    for it, the same answer as quickly; the stop ends with SIGKILL after
#    its 5 s, the instance stopped.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot).
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
SLOWCA=$TOP/build/slowca
CA_TIMEOUT=3
QUICK_MS=100
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createek tpm2_nvdefine tpm2_nvwrite tpm2_print
for t in "$CA" "$SLOWCA" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done

# slowca_start NAME ARGS...: slowca ARGS in the background, its events in
# $T/NAME.out; waits for its port. Sets SLOW_URL and SLOW_PID.
slowca_start() {
	local name=$1 deadline=$((SECONDS + 30)) port=""
	shift
	"$SLOWCA" "$@" >"$T/$name.out" 2>&1 &
	SLOW_PID=$!
	TEST_PIDS+=("$SLOW_PID")
	until port=$(head -n 1 "$T/$name.out") && [[ "$port" =~ ^[0-9]+$ ]]; do
		kill -0 "$SLOW_PID" 2>/dev/null || fail "slowca $name: $(cat "$T/$name.out")"
		[ "$SECONDS" -lt "$deadline" ] || fail "slowca $name printed no port"
	done
	SLOW_URL=http://127.0.0.1:$port
}

# wait_line FILE REGEX WHAT: polls FILE until a line matches REGEX (30 s).
wait_line() {
	local deadline=$((SECONDS + 30))
	until grep -Eq "$2" "$1"; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$3: no line /$2/ in $1: $(cat "$1")"
		sleep 0.01
	done
}

# quick WHAT CMD...: CMD succeeds within QUICK_MS; its output is left in
# $T/quick.out and the time in MS, noted.
quick() {
	local what=$1 start rc=0
	shift
	start=$(date +%s%N)
	timeout -k 2 10 "$@" >"$T/quick.out" 2>&1 || rc=$?
	MS=$((($(date +%s%N) - start) / 1000000))
	[ "$rc" -eq 0 ] || fail "$what: exit status $rc after $MS ms: $(cat "$T/quick.out")"
	note "$what: $MS ms"
	((MS < QUICK_MS)) || fail "$what took $MS ms (limit $QUICK_MS) while an operation waits"
}

# quick_refused WHAT NEEDLE CMD...: CMD fails within QUICK_MS, saying NEEDLE.
quick_refused() {
	local what=$1 needle=$2 start rc=0
	shift 2
	start=$(date +%s%N)
	timeout -k 2 10 "$@" >"$T/quick.out" 2>&1 || rc=$?
	MS=$((($(date +%s%N) - start) / 1000000))
	note "$what: $MS ms"
	[ "$rc" -ne 0 ] || fail "$what: succeeded: $(cat "$T/quick.out")"
	assert_contains "$(cat "$T/quick.out")" "$needle" "$what"
	((MS < QUICK_MS)) || fail "$what took $MS ms (limit $QUICK_MS) while an operation waits"
}

# in_flight PID WHAT: the slow operation still runs after the measurements
# (else they prove nothing).
in_flight() {
	kill -0 "$1" 2>/dev/null ||
		fail "$2 ended before the measurements were done; they prove nothing"
}

# slow_failed PID OUT START WHAT: the slow operation (vtpmctl, PID, output
# in OUT, started at START ns) failed after about CA_TIMEOUT seconds with
# an error naming the CA and the deadline.
slow_failed() {
	local pid=$1 out=$2 start=$3 what=$4 ms
	wait_status "$pid"
	ms=$((($(date +%s%N) - start) / 1000000))
	note "$what ended after $ms ms: $(cat "$out")"
	[ "$STATUS" -eq 1 ] || fail "$what: exit status $STATUS, expected 1: $(cat "$out")"
	assert_contains "$(cat "$out")" "CA at $SLOW_URL" "$what: the error names the CA"
	assert_contains "$(cat "$out")" "within $CA_TIMEOUT s" "$what: the error names the deadline"
	((ms >= CA_TIMEOUT * 1000 - 100 && ms < CA_TIMEOUT * 1000 + 5000)) ||
		fail "$what ended after $ms ms; the CA deadline is $CA_TIMEOUT s"
}

# no_helpers: vtpmd has no child but its workers (no CA request helper).
no_helpers() {
	local others
	others=$(ps -o pid=,comm= --ppid "$VTPMD_PID" | grep -v vtpmd-instance || true)
	[ -z "$others" ] || fail "$1: vtpmd keeps children besides its workers: $others"
}

note "host TPM with its manufacturer's EK certificate; a vtpm-ca that trusts the manufacturer"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
mkdir -p "$T/ca"
"$CA" init --db "$T/ca/ca.db" --name nonblocking >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$T/ca/ca.db" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$T/ca/ca.db" --role both

note "vtpmd with a CA deadline of $CA_TIMEOUT s; instances a (running) and b (stopped)"
printf 'ca-timeout = %s\nprivacy-ca-root = %s\n' "$CA_TIMEOUT" "$T/ca/ca-root.pem" >"$T/vtpmd.conf"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
admit_host "$T/ca/ca.db" rack1
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create a >/dev/null || fail "create a"
"$VTPMCTL" create b --no-start >/dev/null || fail "create b"
quick "start b (no CA busy)" "$VTPMCTL" start b
quick "stop b (no CA busy)" "$VTPMCTL" stop b
quick "list (no CA busy)" "$VTPMCTL" list

note "host enroll against a Privacy CA that trickles one byte every 100 ms"
slowca_start trickle --trickle 100
start=$(date +%s%N)
"$VTPMCTL" host enroll --ca "$SLOW_URL" --name rack1 >"$T/enrol.out" 2>&1 &
enrol=$!
TEST_PIDS+=("$enrol")
wait_line "$T/trickle.out" '^request 1 POST /v1/privacy/challenge$' "the enrolment's request"
quick "list during the slow enrolment" "$VTPMCTL" list
assert_contains "$(cat "$T/quick.out")" "a " "list names a"
quick "host during the slow enrolment" "$VTPMCTL" host
quick "start b during the slow enrolment" "$VTPMCTL" start b
quick "stop b during the slow enrolment" "$VTPMCTL" stop b
quick "create c --ek none during the slow enrolment" "$VTPMCTL" create c --ek none
quick "list again during the slow enrolment" "$VTPMCTL" list
in_flight "$enrol" "the slow enrolment"
slow_failed "$enrol" "$T/enrol.out" "$start" "the slow enrolment"
wait_line "$T/trickle.out" '^closed 1 ' "vtpmd hanging up on the slow Privacy CA"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == false' >/dev/null ||
	fail "the failed enrolment left a record"
no_helpers "after the slow enrolment"

note "enrolled with the real Privacy CA; the Virtualization CA trickles"
"$VTPMCTL" host enroll --ca "$CA_URL" --virtualization-ca "$SLOW_URL" --name rack1 \
	>"$T/out" 2>&1 || fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" host --json >"$T/host.json"
assert_eq "$(jq -r .enrolment.virtualization_ca "$T/host.json")" "$SLOW_URL" "Virtualization CA"

note "create with EK certificates from the slow Virtualization CA"
start=$(date +%s%N)
"$VTPMCTL" create slow >"$T/create.out" 2>&1 &
create=$!
TEST_PIDS+=("$create")
# A create's first request to the Virtualization CA is its nonce's.
wait_line "$T/trickle.out" '^request [0-9]+ POST /v1/virtualization/nonce$' \
	"the create's request"
quick "list during the slow create" "$VTPMCTL" list
quick "start b during the slow create" "$VTPMCTL" start b
quick "stop b during the slow create" "$VTPMCTL" stop b
quick "create d --ek none during the slow create" "$VTPMCTL" create d --ek none
quick "info a during the slow create" "$VTPMCTL" info a
quick_refused "start of the instance being created" "in progress" "$VTPMCTL" start slow
quick "list again during the slow create" "$VTPMCTL" list
in_flight "$create" "the slow create"
slow_failed "$create" "$T/create.out" "$start" "the slow create"
wait_line "$T/trickle.out" '^closed [0-9]+ ' "vtpmd hanging up on the slow Virtualization CA"
expect_exit 1 "info of the failed create" "$VTPMCTL" info slow
assert_contains "$(cat "$T/out")" "no such instance" "the failed create left no instance"
[ ! -e "$T/svc/state/instances/slow" ] || fail "the failed create left its directory"
if pgrep -f -- "--name slow " >/dev/null; then fail "the failed create left a worker"; fi
no_helpers "after the slow create"

note "re-enrolment with a Privacy CA that never answers keeps the enrolment"
slowca_start silent --silent
start=$(date +%s%N)
"$VTPMCTL" host enroll --ca "$SLOW_URL" --name rack2 >"$T/enrol2.out" 2>&1 &
enrol=$!
TEST_PIDS+=("$enrol")
wait_line "$T/silent.out" '^request 1 POST /v1/privacy/challenge$' "the re-enrolment's request"
quick "list during the silent re-enrolment" "$VTPMCTL" list
quick "start b during the silent re-enrolment" "$VTPMCTL" start b
in_flight "$enrol" "the silent re-enrolment"
slow_failed "$enrol" "$T/enrol2.out" "$start" "the silent re-enrolment"
"$VTPMCTL" host --json >"$T/host2.json"
cmp -s <(jq -S .enrolment "$T/host.json") <(jq -S .enrolment "$T/host2.json") ||
	fail "the failed re-enrolment changed the enrolment"
no_helpers "after the silent re-enrolment"

note "a stop whose worker ignores SIGTERM (it is SIGSTOPped) holds nobody else"
wpid=$(pgrep -f -- "--name b ") || fail "no worker for b"
kill -STOP "$wpid"
start=$(date +%s%N)
"$VTPMCTL" stop b >"$T/stop.out" 2>&1 &
stopper=$!
TEST_PIDS+=("$stopper")
wait_line "$T/svc.log" "b: stopping worker $wpid" "the stop's SIGTERM"
quick "list during the stubborn stop" "$VTPMCTL" list
quick "stop d during the stubborn stop" "$VTPMCTL" stop d
quick "start d during the stubborn stop" "$VTPMCTL" start d
quick_refused "start of the instance being stopped" "in progress (its stop)" "$VTPMCTL" start b
in_flight "$stopper" "the stubborn stop"
wait_status "$stopper"
ms=$((($(date +%s%N) - start) / 1000000))
note "the stubborn stop ended after $ms ms: $(cat "$T/stop.out")"
[ "$STATUS" -eq 0 ] || fail "the stubborn stop: exit status $STATUS: $(cat "$T/stop.out")"
((ms >= 4900 && ms < 10000)) || fail "the stubborn stop ended after $ms ms (SIGKILL after 5 s)"
grep -q "worker b (pid $wpid) ignored SIGTERM for 5000 ms; killing it" "$T/svc.log" ||
	fail "vtpmd did not log the SIGKILL of b's worker"
if kill -0 "$wpid" 2>/dev/null; then fail "b's worker outlived its stop"; fi
assert_eq "$("$VTPMCTL" info b --json | jq -r .state)" "stopped" "b after the stubborn stop"
quick "restart b after the stubborn stop" "$VTPMCTL" restart b
note "afterwards: every instance as it was left, vtpmd serving"
list=$("$VTPMCTL" list --json)
assert_eq "$(jq -r '[.instances[] | "\(.name)=\(.state)"] | sort | join(" ")' <<<"$list")" \
	"a=running b=running c=running d=running" "instances after the slow operations"
stop_pid "$VTPMD_PID"
echo "ok"
