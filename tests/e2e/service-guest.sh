#!/bin/bash
# A QEMU guest uses a vTPM that the vtpmd service runs (its state key
# sealed to a simulated host TPM, its worker sandboxed), through the
# socket `vtpmctl info` prints; the guest's NV data survives a VM restart
# (the worker ends with QEMU's SHUTDOWN and vtpmd starts it again); vtpmd
# SIGKILLed while a guest runs: the guest's TPM keeps answering, with no
# vtpmd and then under a new one, which adopts the worker (same pid).
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

# worker_restarted OLD: waits until vtpmd runs vm-a's worker again, in a
# process other than OLD (which ended with the VM); sets pid to the new one.
worker_restarted() {
	local deadline=$((SECONDS + 30)) new
	until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
		[ "$new" != "$1" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted after the VM stopped"
		sleep 0.05
	done
	pid=$new
}

# loop_marks: how many VTPM-LOOP lines (10 TPM commands each) the guest
# has printed. wait_loop_marks N: waits until there are at least N.
loop_marks() {
	tr -d '\r' <"$T/$VM_NAME.console" | grep -c '^VTPM-LOOP ' || true
}
wait_loop_marks() {
	local deadline=$((SECONDS + 60))
	until [ "$(loop_marks)" -ge "$1" ]; do
		kill -0 "$VM_PID" 2>/dev/null || vm_fail "exited while looping on its TPM"
		[ "$SECONDS" -lt "$deadline" ] || vm_fail "no TPM loop mark $1 within 60 s"
		sleep 0.05
	done
}

note "vtpmd restarts the worker that ended with the VM"
worker_restarted "$pid"

note "boot 2: the data is still there"
vm_start boot2 "$socket" tpm-tis "vtpm_test=nvread"
vm_wait_exit
vm_check_ok
assert_eq "$(vm_result nv)" "$nv" "boot 2: NV value"
worker_restarted "$pid"

note "boot 3: the guest extends PCR 16 over and over; vtpmd is SIGKILLed meanwhile"
digest=$(rand_hex 32)
vm_start boot3 "$socket" tpm-tis "vtpm_test=loop,pcr vtpm_digest=$digest"
wait_loop_marks 1
kill_hard "$VTPMD_PID"
marks=$(loop_marks)
wait_loop_marks $((marks + 1))
note "boot 3: the guest's TPM answers with no vtpmd; a new vtpmd starts"
logged=$(wc -l <"$T/svc.log")
start_vtpmd svc --root-tcti "$HOST_TCTI"
info=$("$VTPMCTL" info vm-a --json)
assert_eq "$(jfield "$info" .state)" running "boot 3: vm-a's state under the new vtpmd"
assert_eq "$(jfield "$info" .pid)" "$pid" "boot 3: vm-a's worker (adopted, not restarted)"
tail -n +$((logged + 1)) "$T/svc.log" | grep -q "vm-a: adopted running worker $pid" ||
	fail "the new vtpmd did not log that it adopted worker $pid: $(tail -n 5 "$T/svc.log")"
marks=$(loop_marks)
wait_loop_marks $((marks + 1))
vm_send stop
vm_wait_exit
note "boot 3: VM ran $VM_MS ms"
vm_check_ok
loops=$(vm_result loops)
[ "${loops:-0}" -ge 30 ] || vm_fail "only ${loops:-no} commands in the loop"
note "boot 3: $loops extends answered, none refused, across the SIGKILL and the adoption"
expected=$ZERO_PCR
for ((i = 0; i < loops; i++)); do
	expected=$(pcr_extend "$expected" "$digest")
done
assert_eq "$(vm_result pcr16)" "$expected" "boot 3: PCR 16 after $loops extends"
echo ok
