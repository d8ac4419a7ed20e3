#!/bin/bash
# NV indices and keys outlive the instance: stopped with SIGTERM and
# started again on the same (encrypted) state directory with the same key,
# the NV index holds its value, the owner's primary key is the same (a key
# created before loads and its old signature verifies), the EK is the same,
# and the PCRs are reset as on a reboot. Twice, to cover a restart of a
# restarted instance. A volatile-state snapshot (swtpm_ioctl -v) is resumed
# only by the start that directly follows it: once the TPM has run another
# command, a restart reboots it (PCRs reset) instead of rolling it back.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl

ZERO=0000000000000000000000000000000000000000000000000000000000000000
KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3

note "before the restart: NV index, key, signature, EK, PCR 16 extended"
tools_nv_define
nv=$(random_hex 32)
tools_nv_write "$nv"
tools_key_create
tools_key_load
tools_sign before
flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-before.pub" -Q
tools_pcr 16
[ "$(pcr_value 16)" != "$ZERO" ] || fail "PCR 16 still zero after extends"

for round in 1 2; do
	note "restart $round: SIGTERM, then start on the same state"
	stop_pid "$INSTANCE_PID"
	assert_contains "$(cat "$T/tpm.log")" "signal 15: saving and stopping" "log of the stop"
	start_tpm tpm unix --key-fd 3
	assert_contains "$(tail -n 2 "$T/tpm.log")" "existing TPM state loaded" "log of the start"

	assert_eq "$(pcr_value 16)" "$ZERO" "PCR 16 after restart $round"
	assert_eq "$(tools_nv_read)" "$nv" "NV index after restart $round"
	tools_key_load
	tools_verify before
	tools_sign "after$round"
	tools_verify "after$round"
	flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-after.pub" -Q
	assert_eq "$(hex_of "$T/ek-after.pub")" "$(hex_of "$T/ek-before.pub")" \
		"EK public key after restart $round"
	tools_pcr 16
	nv=$(random_hex 32)
	tools_nv_write "$nv"
done

note "a volatile snapshot the TPM has moved on from is not resumed by a restart"
swtpm_ioctl -v "${IOCTL[@]}"
[ -e "$T/tpm/volatile.state" ] || fail "swtpm_ioctl -v stored no volatile state"
tools_pcr 16
stop_pid "$INSTANCE_PID"
start_tpm tpm unix --key-fd 3
assert_eq "$(pcr_value 16)" "$ZERO" "PCR 16 after a restart following an old snapshot"
assert_eq "$(tools_nv_read)" "$nv" "NV index after that restart"
[ ! -e "$T/tpm/volatile.state" ] || fail "volatile state left after the start"

note "a snapshot taken right before the stop is resumed (suspend and resume)"
tools_pcr 16
pcr=$(pcr_value 16)
swtpm_ioctl -v "${IOCTL[@]}"
stop_pid "$INSTANCE_PID"
start_tpm tpm unix --key-fd 3
assert_eq "$(pcr_value 16)" "$pcr" "PCR 16 after resuming the snapshot"
[ ! -e "$T/tpm/volatile.state" ] || fail "volatile state left after the resume"
stop_pid "$INSTANCE_PID"
start_tpm tpm unix --key-fd 3
assert_eq "$(pcr_value 16)" "$ZERO" "PCR 16 after the next restart"
stop_pid "$INSTANCE_PID"
