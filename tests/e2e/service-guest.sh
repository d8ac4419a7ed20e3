#!/bin/bash
# A QEMU guest uses a vTPM that the vtpmd service runs (its state key
# sealed to a simulated host TPM, its worker sandboxed), through the
# socket `vtpmctl info` prints; the guest's NV data survives a VM restart
# (the worker ends with QEMU's SHUTDOWN and vtpmd starts it again).
VTPMD=${VTPMD:-$(cd "$(dirname "$0")/../.." && pwd)/build/vtpmd}
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"

guest_prepare
start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create vm-a >/dev/null
socket=$(jfield "$("$VTPMCTL" info vm-a --json)" .socket)
pid=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
nv=$(rand_hex 16)

note "boot 1: the guest writes an NV index on the service's vTPM"
vm_start boot1 "$socket" tpm-tis "vtpm_test=pcr,nvwrite,nvread vtpm_nv=$nv"
vm_wait_exit
note "boot 1: VM ran $VM_MS ms"
vm_check_ok
vm_check_tpm2 tpm_tis
assert_eq "$(vm_result nv)" "$nv" "boot 1: NV value"

note "vtpmd restarts the worker that ended with the VM"
deadline=$((SECONDS + 30))
until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
	[ "$new" != "$pid" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted after the VM stopped"
done

note "boot 2: the data is still there"
vm_start boot2 "$socket" tpm-tis "vtpm_test=nvread"
vm_wait_exit
vm_check_ok
assert_eq "$(vm_result nv)" "$nv" "boot 2: NV value"
echo ok
