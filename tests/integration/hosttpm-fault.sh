#!/bin/bash
# The host TPM going away and coming back (issue "Trust under attack"):
#  - killed: running vTPMs keep serving their guests; creating and starting
#    fail with a clear error (HTTP 503) and leave nothing behind; vtpmd
#    keeps answering and `vtpmctl host` says the TPM is unavailable;
#  - back: the next operation reconnects and succeeds, NV data intact;
#  - restarted behind vtpmd's back (its sessions lost): the next start
#    recovers by itself;
#  - replaced by another TPM (or something answering in its place with its
#    own storage root key): vtpmd refuses to start, naming the SRK pin.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_getrandom tpm2_nvdefine tpm2_nvwrite tpm2_nvread

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
tcti=$(jfield "$("$VTPMCTL" info vm-a --json)" .tcti)
TPM2TOOLS_TCTI=$tcti tpm2_nvdefine 0x1500030 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null ||
	fail "nvdefine"
printf 'intact!!' | TPM2TOOLS_TCTI=$tcti tpm2_nvwrite 0x1500030 -C o -i - || fail "nvwrite"

note "the host TPM dies: vm-a keeps serving; create and start fail cleanly"
kill_hard "$HOST_TPM_PID"
TPM2TOOLS_TCTI=$tcti tpm2_getrandom 8 >/dev/null || fail "vm-a stopped serving with the host TPM"
expect_exit 1 "create without a host TPM" "$VTPMCTL" create vm-b
assert_contains "$(cat "$T/out")" "host TPM" "create error names the host TPM"
assert_contains "$(cat "$T/out")" "HTTP 503" "create error status"
[ ! -e "$T/svc/state/instances/vm-b" ] || fail "a failed create left its directory"
"$VTPMCTL" stop vm-a >/dev/null || fail "stop vm-a"
expect_exit 1 "start without a host TPM" "$VTPMCTL" start vm-a
assert_contains "$(cat "$T/out")" "host TPM" "start error names the host TPM"
"$VTPMCTL" host >"$T/host.out" || fail "vtpmd stopped answering"
assert_contains "$(cat "$T/host.out")" "UNAVAILABLE" "vtpmctl host reports the host TPM"
"$VTPMCTL" list >/dev/null || fail "list"
kill -0 "$VTPMD_PID" || fail "vtpmd died with the host TPM"
assert_contains "$(cat "$T/svc.log")" "host TPM unavailable" "vtpmd logs the loss"

note "the host TPM is back: start and create succeed, NV data intact"
restart_host_tpm
"$VTPMCTL" start vm-a >/dev/null || fail "start vm-a after the host TPM came back"
assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_nvread 0x1500030 -C o -s 8)" "intact!!" "NV after recovery"
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b after the host TPM came back"
"$VTPMCTL" host --json | jq -e '.available == true' >/dev/null || fail "host TPM not available"

note "the host TPM restarts behind vtpmd's back (sessions lost): the next start recovers"
kill_hard "$HOST_TPM_PID"
restart_host_tpm
"$VTPMCTL" restart vm-b >/dev/null || fail "restart vm-b after a host TPM restart"
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" start vm-a >/dev/null || fail "start vm-a after a host TPM restart"
assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_nvread 0x1500030 -C o -s 8)" "intact!!" "NV after restart"
# The lost policy session is started again in place (hwtpm_policy_arm),
# other losses by reconnecting: either is logged.
grep -qE "host TPM: reconnected|kept policy session was refused" "$T/svc.log" ||
	fail "vtpmd logs neither a reconnection nor a new policy session: $(tail -5 "$T/svc.log")"

note "another TPM in the host TPM's place: vtpmd refuses to salt sessions to its key"
pinned=$(cat "$T/svc/state/srk.name")
[[ "$pinned" =~ ^000b[0-9a-f]{64}$ ]] || fail "SRK pin: expected a SHA-256 Name, got '$pinned'"
kill_hard "$VTPMD_PID"
start_host_tpm "$T/other-host"
rc=0
"$VTPMD" --state-dir "$T/svc/state" --run-dir "$T/svc/run" --socket "$VTPMD_SOCKET" \
	--root-tcti "$HOST_TCTI" 2>"$T/replaced.err" || rc=$?
assert_eq "$rc" 1 "vtpmd's exit status with another host TPM"
assert_contains "$(cat "$T/replaced.err")" "not the one pinned in $T/svc/state/srk.name" \
	"the refusal names the pin"
assert_eq "$(cat "$T/svc/state/srk.name")" "$pinned" "the pin after the refusal"
TPM2TOOLS_TCTI=$tcti tpm2_getrandom 8 >/dev/null || fail "vm-a stopped serving"
echo ok
