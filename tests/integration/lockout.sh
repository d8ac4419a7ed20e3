#!/bin/bash
# Abrupt resets do not count as dictionary attacks: after a DA-protected
# authorization (an NV index's own password), the TPM is reset many times
# without the client sending TPM2_Shutdown: swtpm_ioctl -i, STOP then INIT,
# QEMU's reset sequence (STOP, SET_BUFFERSIZE, INIT with flags 0) and
# SIGTERM restarts. TPM2_PT_LOCKOUT_COUNTER stays 0 and the TPM never goes
# into lockout. A SIGKILL (a real crash) does count, which shows the check
# can see a non-orderly reset.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3
DA_NV=0x1500017
NL=$'\n'
tpm2_nvdefine "$DA_NV" -C o -s 8 -a "authread|authwrite" >/dev/null

# da_use: an authorization with the index's own (empty) password, which is
# DA-protected; it fails while the TPM is in lockout.
da_use() {
	printf '%08d' "$1" | tpm2_nvwrite "$DA_NV" -C "$DA_NV" -i - ||
		fail "DA-protected NV write refused (lockout?)"
}
# lockout_is COUNTER WHAT: the TPM's lockout counter is COUNTER.
lockout_is() {
	local props
	props=$(tpm2_getcap properties-variable)
	assert_contains "$props" "TPM2_PT_LOCKOUT_COUNTER: $1" "$2: lockout counter"
	assert_contains "$props" "inLockout:                 0" "$2: not in lockout"
}
da_use 0
lockout_is 0x0 "before any reset"

for i in 1 2 3 4 5; do
	note "INIT $i (swtpm_ioctl -i) without a TPM2_Shutdown"
	swtpm_ioctl -i "${IOCTL[@]}"
	tpm2_startup -c
	lockout_is 0x0 "after INIT $i"
	da_use "$i"
done
note "INITs back to back, without a TPM2_Startup in between"
for i in 1 2 3; do
	swtpm_ioctl -i "${IOCTL[@]}"
done
tpm2_startup -c
lockout_is 0x0 "after INITs back to back"
da_use 9
for i in 1 2 3; do
	note "STOP and INIT $i"
	swtpm_ioctl --stop "${IOCTL[@]}"
	swtpm_ioctl -i "${IOCTL[@]}"
	tpm2_startup -c
	lockout_is 0x0 "after STOP and INIT $i"
	da_use "$i"
done
for i in 1 2 3; do
	note "QEMU's reset sequence $i"
	out=$("$TPMSEND" --raw --wait 300 "$CTRL_EP" \
		"$(hexcat 0000000e 00000011 00000000 0000000e 00000011 00001000 00000002 00000000)")
	[[ "$out" =~ ^00000000(00000000[0-9a-f]{24})00000000(00000000[0-9a-f]{24})00000000"$NL"OPEN$ ]] ||
		fail "QEMU's reset sequence answered: $out"
	tpm2_startup -c
	lockout_is 0x0 "after QEMU's reset $i"
	da_use "$i"
done
for i in 1 2 3; do
	note "SIGTERM restart $i"
	stop_pid "$INSTANCE_PID"
	start_tpm tpm unix --key-fd 3
	lockout_is 0x0 "after SIGTERM restart $i"
	da_use "$i"
done

note "control: a SIGKILL after DA use is a non-orderly reset, and counts"
kill_hard "$INSTANCE_PID"
start_tpm tpm unix --key-fd 3
lockout_is 0x1 "after a SIGKILL"
stop_pid "$INSTANCE_PID"
