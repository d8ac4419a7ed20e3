#!/bin/bash
# A guest's NV index outlives the VM: run 1 defines an owner index and
# writes a random value through /dev/tpm0; the instance exits with QEMU
# (SHUTDOWN) and is started again on the same (encrypted) state directory;
# run 2 reads the same value back, and sees PCR 16 reset to zeros by the
# new boot's TPM2_Startup(CLEAR) even though run 1 had extended it.
VTPMD=${VTPMD:-$(cd "$(dirname "$0")/../.." && pwd)/build/vtpmd}
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"

guest_prepare
KEYFILE=$T/key
new_key "$KEYFILE"
nv=$(rand_hex 16)
digest=$(rand_hex 32)

note "run 1: write NV index 0x01000100 and extend PCR 16"
start_instance tpm --state "$T/state" --ctrl "unix:$T/tpm.sock" --key-fd 3
vm_start run1 "$T/tpm.sock" tpm-crb "vtpm_test=nvwrite,nvread,extend,pcr vtpm_nv=$nv vtpm_digest=$digest"
vm_wait_exit
note "run 1: VM ran $VM_MS ms"
vm_check_ok
vm_check_tpm2 tpm_crb
assert_eq "$(vm_result nv)" "$nv" "run 1: NV value read back"
assert_eq "$(vm_result pcr16)" "$(pcr_extend "$ZERO_PCR" "$digest")" "run 1: PCR 16 after the extend"
wait_exit "$INSTANCE_PID" "instance after run 1"

note "run 2: same state directory, new instance"
start_instance tpm --state "$T/state" --ctrl "unix:$T/tpm.sock" --key-fd 3
vm_start run2 "$T/tpm.sock" tpm-crb "vtpm_test=pcr,nvread"
vm_wait_exit
note "run 2: VM ran $VM_MS ms"
vm_check_ok
vm_check_tpm2 tpm_crb
assert_eq "$(vm_result nv)" "$nv" "run 2: NV value after the restart"
assert_eq "$(vm_result pcr16)" "$ZERO_PCR" "run 2: PCR 16 after the reboot"
assert_eq "$(vm_result pcr16-sysfs)" "$ZERO_PCR" "run 2: PCR 16 (sysfs) after the reboot"
wait_exit "$INSTANCE_PID" "instance after run 2"
