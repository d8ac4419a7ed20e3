#!/bin/bash
# A QEMU save/restore (migration to a file) keeps the guest's PCRs: the
# guest extends PCR 16 and waits; the host stops the VM, migrates it to a
# file through QMP and quits that QEMU; a new QEMU with a vtpmd instance on
# a fresh state directory loads the file (so the TPM state travels only in
# the migration stream: GET_STATEBLOB on one side, SET_STATEBLOB on the
# other) and continues the guest, which reads the same PCR 16 value. The
# vTPM's state travels wrapped (docs/instance.md, "State blobs"): the file
# holds the wrapped blobs and not libtpms' plaintext ones (their headers,
# constants of libtpms, are absent; before, both were there).
VTPMD=${VTPMD:-$(cd "$(dirname "$0")/../.." && pwd)/build/vtpmd}
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"

guest_prepare
KEYFILE=$T/key
new_key "$KEYFILE"
digest=$(rand_hex 32)
expected=$(pcr_extend "$ZERO_PCR" "$digest")
append="vtpm_test=extend,pcr,wait,pcr vtpm_digest=$digest"

note "source: boot, extend PCR 16, wait"
start_instance src --state "$T/src.state" --ctrl "unix:$T/src.sock" --key-fd 3
src_pid=$INSTANCE_PID
vm_start src "$T/src.sock" tpm-tis "$append"
qmp_connect
vm_wait_marker VTPM-WAIT
vm_check_tpm2 tpm_tis
assert_eq "$(vm_result pcr16)" "$expected" "PCR 16 before the migration"

note "source: stop and migrate to a file"
start=$(date +%s%N)
qmp '{"execute": "stop"}'
qmp '{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 1073741824}}'
qmp "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > '$T/vm.mig'\"}}"
qmp_wait_migration
qmp '{"execute": "quit"}'
vm_wait_exit
note "source: saved $(stat -c %s "$T/vm.mig") bytes in $((($(date +%s%N) - start) / 1000000)) ms"
wait_exit "$src_pid" "source instance"
note "the saved file: the vTPM's state wrapped, none of it in the clear"
LC_ALL=C grep -qa 'VTPMDBL' "$T/vm.mig" || fail "no wrapped vTPM state in the saved file"
# libtpms' permanent blob starts 00 03 ab 36 47 23 00 03 00 03 c9 ea, its
# volatile blob 00 04 45 63 78 89 00 01.
if LC_ALL=C grep -qaP '\x00\x03\xab\x36\x47\x23\x00\x03\x00\x03\xc9\xea' "$T/vm.mig"; then
	fail "the saved file holds the vTPM's permanent state in the clear"
fi
if LC_ALL=C grep -qaP '\x00\x04\x45\x63\x78\x89\x00\x01' "$T/vm.mig"; then
	fail "the saved file holds the vTPM's volatile state in the clear"
fi

note "destination: fresh state directory, restore, continue"
start_instance dst --state "$T/dst.state" --ctrl "unix:$T/dst.sock" --key-fd 3
dst_pid=$INSTANCE_PID
start=$(date +%s%N)
vm_start dst "$T/dst.sock" tpm-tis "$append" -incoming "exec:cat '$T/vm.mig'" -S
qmp_connect
until qmp '{"execute": "query-status"}'; [[ "$QMP_REPLY" != *'"inmigrate"'* ]]; do
	sleep 0.05
done
assert_contains "$QMP_REPLY" '"paused"' "destination state after loading"
note "destination: loaded in $((($(date +%s%N) - start) / 1000000)) ms"
qmp '{"execute": "cont"}'
vm_send go
vm_wait_exit
vm_check_ok
assert_eq "$(vm_result go)" go "the go-ahead the guest read"
assert_eq "$(vm_result pcr16)" "$expected" "PCR 16 after the migration (TPM2_PCR_Read)"
assert_eq "$(vm_result pcr16-sysfs)" "$expected" "PCR 16 after the migration (sysfs)"
wait_exit "$dst_pid" "destination instance"
assert_contains "$(cat "$T/dst.log")" "SET_STATEBLOB permanent.state: restored generation" \
	"destination instance log"
