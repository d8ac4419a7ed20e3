#!/bin/bash
# swtpm_ioctl (Debian swtpm-tools) drives the control channel: capabilities,
# configuration flags, implementation info, tpmEstablished, STOP (the TPM
# stops answering) and INIT (it answers again, NV intact), SET_STATEBLOB
# refused while the TPM runs, the permanent state saved from one instance
# (running, and stopped: wrapped under a key derived from the state key)
# and loaded into fresh ones with the same state key that then hold its NV
# index and EK, also after their own restart, a plaintext instance that
# neither loads nor releases a blob, and SHUTDOWN ending the
# instance with status 0 and its socket files removed.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl cmp

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm a unix --key-fd 3
A_IOCTL=("${IOCTL[@]}") A_TCTI=$TCTI A_PID=$INSTANCE_PID

note "capabilities: what QEMU needs, migration included"
caps=$(swtpm_ioctl -c "${IOCTL[@]}")
caps=${caps##* }
need=$((0x1 | 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000))
(((caps & need) == need)) || fail "capabilities $caps lack some of $(printf 0x%x $need)"

note "configuration flags, info, tpmEstablished, buffer size"
assert_eq "$(swtpm_ioctl -g "${IOCTL[@]}")" "ptm configuration flags: 0x1" "get-config (file key)"
# Each answer must come in one piece: swtpm_ioctl reads it with one read().
for i in $(seq 1 20); do
	info=$(swtpm_ioctl --info 1 "${IOCTL[@]}")
	assert_contains "$info" '"TPMSpecification":{"family":"2.0"' "--info 1, try $i"
done
assert_contains "$(swtpm_ioctl --info 2 "${IOCTL[@]}")" '"TPMAttributes"' "--info 2"
assert_eq "$(swtpm_ioctl -e "${IOCTL[@]}")" "tpmEstablished is 0" "tpmEstablished"
assert_contains "$(swtpm_ioctl -b 0 "${IOCTL[@]}")" "TPM buffersize: 4096" "buffer size"

note "an NV index and the EK of instance a"
tools_nv_define
nv=$(random_hex 32)
tools_nv_write "$nv"
flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-a.pub" -Q

note "STOP: the TPM no longer answers; INIT and Startup bring it back"
swtpm_ioctl --stop "${IOCTL[@]}"
if tpm2_getrandom 8 >/dev/null 2>&1; then fail "getrandom succeeded on a stopped TPM"; fi
swtpm_ioctl -i "${IOCTL[@]}"
tpm2_startup -c
tpm2_getrandom 8 >/dev/null
assert_eq "$(tools_nv_read)" "$nv" "NV index after STOP and INIT"

note "save the permanent state while running; loading it is refused while running"
swtpm_ioctl --save permanent "$T/perm-running.bin" "${IOCTL[@]}"
[ -s "$T/perm-running.bin" ] || fail "saved permanent state is empty"
cp "$T/a/permanent.state" "$T/before-load"
if swtpm_ioctl --load permanent "$T/perm-running.bin" "${IOCTL[@]}" 2>/dev/null; then
	fail "SET_STATEBLOB accepted while the TPM runs"
fi
cmp -s "$T/a/permanent.state" "$T/before-load" || fail "a refused load changed the state file"
tpm2_getrandom 8 >/dev/null

note "save the permanent state while stopped"
swtpm_ioctl --stop "${IOCTL[@]}"
swtpm_ioctl --save permanent "$T/perm-stopped.bin" "${IOCTL[@]}"
[ -s "$T/perm-stopped.bin" ] || fail "saved permanent state is empty"
# Each save wraps the state anew (a fresh nonce): the same header (kind,
# UUID, generation, key id: its first 72 bytes) and length, other bytes.
for i in $(seq 1 10); do
	swtpm_ioctl --save permanent "$T/perm-again.bin" "${IOCTL[@]}"
	cmp -s -n 72 "$T/perm-again.bin" "$T/perm-stopped.bin" ||
		fail "saving the same stopped state twice gave other headers (try $i)"
	assert_eq "$(stat -c %s "$T/perm-again.bin")" "$(stat -c %s "$T/perm-stopped.bin")" \
		"length of the same stopped state saved again (try $i)"
	! cmp -s "$T/perm-again.bin" "$T/perm-stopped.bin" ||
		fail "saving the same state twice gave the same bytes: a nonce reused (try $i)"
done
swtpm_ioctl -i "${IOCTL[@]}"
tpm2_startup -c

# load_into NAME FILE ARGS...: a fresh instance NAME, stopped, given FILE as
# its permanent state, started again; it must hold a's NV index and EK,
# and keep them across its own restart.
load_into() {
	local name=$1 file=$2
	shift 2
	note "load $(basename "$file") into a fresh instance $name"
	start_tpm "$name" unix "$@"
	flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-$name.pub" -Q
	[ "$(hex_of "$T/ek-$name.pub")" != "$(hex_of "$T/ek-a.pub")" ] ||
		fail "fresh instance $name has a's EK before the load"
	swtpm_ioctl --stop "${IOCTL[@]}"
	swtpm_ioctl --load permanent "$file" "${IOCTL[@]}"
	swtpm_ioctl -i "${IOCTL[@]}"
	tpm2_startup -c
	assert_eq "$(tools_nv_read)" "$nv" "$name: NV index after the load"
	flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-$name.pub" -Q
	assert_eq "$(hex_of "$T/ek-$name.pub")" "$(hex_of "$T/ek-a.pub")" "$name: EK after the load"
	note "$name: restart after the load"
	stop_pid "$INSTANCE_PID"
	start_tpm "$name" unix "$@"
	assert_eq "$(tools_nv_read)" "$nv" "$name: NV index after its restart"
	stop_pid "$INSTANCE_PID"
}
load_into b "$T/perm-running.bin" --key-fd 3
load_into c "$T/perm-stopped.bin" --key-fd 3

note "a plaintext instance neither loads a wrapped blob nor releases its state"
KEYFILE='' start_tpm d unix --plaintext-state
flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-d.pub" -Q
swtpm_ioctl --stop "${IOCTL[@]}"
if swtpm_ioctl --load permanent "$T/perm-running.bin" "${IOCTL[@]}" 2>/dev/null; then
	fail "a plaintext instance loaded a wrapped blob"
fi
if swtpm_ioctl --save permanent "$T/perm-d.bin" "${IOCTL[@]}" 2>/dev/null; then
	fail "a plaintext instance released its state"
fi
swtpm_ioctl -i "${IOCTL[@]}"
tpm2_startup -c
flushed tpm2_createek -c "$T/tools/ek.ctx" -G rsa -u "$T/ek-d2.pub" -Q
assert_eq "$(hex_of "$T/ek-d2.pub")" "$(hex_of "$T/ek-d.pub")" "d: its own EK after the refusal"
assert_contains "$(cat "$T/d.log")" "SET_STATEBLOB permanent.state: refused" "d's log"
stop_pid "$INSTANCE_PID"

note "SHUTDOWN: a exits with status 0 and removes its sockets"
export TPM2TOOLS_TCTI=$A_TCTI
assert_eq "$(tools_nv_read)" "$nv" "a: NV index at the end"
swtpm_ioctl -s "${A_IOCTL[@]}"
wait_status "$A_PID"
assert_eq "$STATUS" 0 "exit status after SHUTDOWN"
[ ! -e "$T/a.sock" ] && [ ! -e "$T/a.sock.ctrl" ] || fail "socket files left after SHUTDOWN"
assert_contains "$(cat "$T/a.log")" "stopped" "log after SHUTDOWN"
