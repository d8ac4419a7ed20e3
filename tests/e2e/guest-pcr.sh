#!/bin/bash
# A real guest (Debian cloud kernel, busybox initramfs) under QEMU sees a
# vtpmd instance as a TPM 2.0 through both tpm-tis and tpm-crb: the kernel
# binds its driver, and a PCR extended through /dev/tpm0 reads back as
# sha256(0...0 || digest), both from sysfs and with TPM2_PCR_Read.
VTPMD=${VTPMD:-$(cd "$(dirname "$0")/../.." && pwd)/build/vtpmd}
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"

guest_prepare
KEYFILE=$T/key
new_key "$KEYFILE"

for model in tpm-tis tpm-crb; do
	note "$model: extend PCR 16 in the guest"
	start_instance "$model" --state "$T/$model.state" --ctrl "unix:$T/$model.sock" --key-fd 3
	digest=$(rand_hex 32)
	vm_start "$model" "$T/$model.sock" "$model" "vtpm_test=pcr,extend,pcr vtpm_digest=$digest"
	vm_wait_exit
	note "$model: VM ran $VM_MS ms"
	vm_check_ok
	vm_check_tpm2 "${model/-/_}"
	tr -d '\r' <"$T/$model.console" | grep -q "^VTPM-RESULT pcr16=$ZERO_PCR" ||
		vm_fail "PCR 16 was not all zeros at boot"
	expected=$(pcr_extend "$ZERO_PCR" "$digest")
	assert_eq "$(vm_result pcr16)" "$expected" "$model: PCR 16 (TPM2_PCR_Read) after the extend"
	assert_eq "$(vm_result pcr16-sysfs)" "$expected" "$model: PCR 16 (sysfs) after the extend"
	# QEMU sent SHUTDOWN as it exited: the instance ends by itself
	wait_exit "$INSTANCE_PID" "instance $model"
done
