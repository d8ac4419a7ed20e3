#!/bin/bash
# The control channel's HASH_START, HASH_DATA, HASH_END (and
# RESET_TPMESTABLISHED) retire a snapshot's mark (docs/state.md,
# "Snapshots", rule 2), and answer only once vtpmd has recorded the
# retirement, as a data-channel command does (instance_ctrl.c:
# ctrl_result_recorded). The attack of the review of #12: with vtpmd
# stopped (SIGSTOP, as root), the DRTM hash sequence, which extends PCR 17,
# was answered at once, its retirement unrecorded. Now swtpm_ioctl -h waits
# like the data channel.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root"
require_tools swtpm_ioctl tpm2_getrandom jq
start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
ioctl() { swtpm_ioctl "$@" --unix "$T/svc/run/vm-a.sock.ctrl"; }
export TPM2TOOLS_TCTI=swtpm:path=$T/svc/run/vm-a.sock
ST=$T/svc/state/instances/vm-a/state
gen() { od -An -tu1 -j16 -N8 "$ST/permanent.state" | awk '{v=0; for (i=1;i<=NF;i++) v=v*256+$i; print v}'; }
ioctl --save volatile "$T/v" || fail "--save volatile (the mark)"
note "marked, recorded: generation $(gen)"
kill -STOP "$VTPMD_PID"
rc=0
timeout 3 swtpm_ioctl -h "measured launch" --unix "$T/svc/run/vm-a.sock.ctrl" || rc=$?
note "HASH_START/DATA/END with vtpmd stopped: exit $rc; on disk: generation $(gen) (unrecorded)"
rc2=0
timeout 3 tpm2_getrandom 4 >/dev/null 2>&1 || rc2=$?
note "a data-channel command meanwhile: exit $rc2 (124: held for vtpmd's record)"
kill -CONT "$VTPMD_PID"
[ "$rc" -eq 124 ] || fail "the hash sequence (PCR 17) was answered (exit $rc) before vtpmd recorded the retirement of the snapshot"
[ "$rc2" -eq 124 ] || fail "the data-channel command was answered (exit $rc2) with vtpmd stopped"
echo held
