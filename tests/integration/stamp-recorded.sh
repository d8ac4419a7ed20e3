#!/bin/bash
# Every snapshot is stamped with a generation vtpmd recorded (docs/state.md,
# "Snapshots", rule 1 and step J1 of the proof), even when the permanent
# state is marked already.
#
# The attack of the review of #12: GET_STATEBLOB skipped the mark when the
# permanent state was marked already, and stamped the blob with the
# generation on disk, even a write vtpmd had not recorded yet (the
# power-off's own TPM2_Shutdown(STATE), which STOP answers without
# waiting). Root (SIGSTOP/SIGKILL vtpmd and the worker, files put back)
# then discarded that write and put back the recorded state and its
# volatile.state; the guest's first command after the restart retired the
# mark as the very generation the old blob carried, and the blob loaded
# after the guest's orderly counter had moved on (7 back to 2). Now
# GET_STATEBLOB waits for vtpmd's record before it stamps: with vtpmd
# stopped, no blob leaves; once vtpmd runs again, the blob carries a
# recorded generation.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root"
require_tools swtpm_ioctl tpm2_nvdefine tpm2_nvincrement tpm2_nvread tpm2_startup jq od

NV=0x1500050
SVC=$T/svc/state
ST=$SVC/instances/vm-a/state
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
ioctl() { swtpm_ioctl "$@" --unix "$T/svc/run/vm-a.sock.ctrl"; }
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvincrement -C o "$NV" || fail "nvincrement"; }
nv_count() {
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
gen_of() { od -An -tu1 -j"${2:-16}" -N8 "$1" | awk '{v=0; for (i=1;i<=NF;i++) v=v*256+$i; print v}'; }

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 \
	-a "ownerread|ownerwrite|nt=counter|orderly" >/dev/null || fail "nvdefine"
nv_inc
nv_inc
c1=$(nv_count)
note "the guest's orderly counter: $c1"

note "root: STORE_VOLATILE (a mark, recorded)"
ioctl -v || fail "STORE_VOLATILE"
R=$(gen_of "$ST/permanent.state")
note "recorded generation R=$R (volatile stamped $(gen_of "$ST/volatile.state"))"

note "root: SIGSTOP vtpmd; STOP (the power-off's Shutdown write, not recorded); GET_STATEBLOB"
kill -STOP "$VTPMD_PID"
ioctl --stop || fail "--stop"
note "on disk now: generation $(gen_of "$ST/permanent.state") (unrecorded)"
rc=0
timeout 5 swtpm_ioctl --save permanent "$T/P" --unix "$T/svc/run/vm-a.sock.ctrl" || rc=$?
note "GET_STATEBLOB with the Shutdown write unrecorded: exit $rc (124: held for vtpmd's record)"
kill -CONT "$VTPMD_PID"
[ "$rc" -eq 124 ] || fail "a blob left (exit $rc, stamp $(gen_of "$T/P" 32)) stamped with generation $(gen_of "$ST/permanent.state"), which vtpmd has not recorded"
ioctl --save permanent "$T/P" || fail "--save permanent once vtpmd runs"
stamp=$(gen_of "$T/P" 32)
note "the blob's stamp, vtpmd running: $stamp"
[ "$stamp" -eq "$(gen_of "$ST/permanent.state")" ] || fail "the blob's stamp $stamp is not the generation on disk"
echo "held: no blob stamped with an unrecorded generation"
