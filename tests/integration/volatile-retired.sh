#!/bin/bash
# An honest TPM starts again after a snapshot's retirement by the
# control channel. The attack of the review of #12: HASH_START/DATA/END
# (and RESET_TPMESTABLISHED) retired the mark STORE_VOLATILE set, raising
# the client generation, but left the volatile.state it wrote (only a
# data-channel command removed it), older than the state beside it: the
# next start (here after an orderly stop, SIGTERM) or INIT refused the TPM.
# Now instance_snapshot_retire, where every path retires, removes the
# volatile file first, durably (docs/state.md, "Snapshots", rule 2).
source "$(dirname "$0")/../lib.sh"
require_tools swtpm_ioctl
KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm2 unix --key-fd 3
swtpm_ioctl -v "${IOCTL[@]}" || fail "STORE_VOLATILE"
swtpm_ioctl -h "measured launch" "${IOCTL[@]}" || fail "HASH_START/DATA/END"
stop_pid "$INSTANCE_PID"
if ! spawn_instance tpm2 --state "$T/tpm2" --data "$DATA_EP" --ctrl "$CTRL_EP" --key-fd 3 \
	--startup clear; then
	grep -h "older than" "$T/tpm2.log" | tail -1
	fail "the TPM was refused at its start after an orderly stop (exit $INSTANCE_RC): its own volatile.state, left behind by HASH_*"
fi
echo held
