#!/bin/bash
# Malformed input on both channels gets an error answer or a closed
# connection, and the instance keeps serving (tpm2_getrandom, and a new
# control connection, work after each group):
#   control: unknown commands (TPM_BAD_ORDINAL, then closed); SET_STATEBLOB
#   or HASH_DATA declaring a huge length (refused before any allocation,
#   closed); truncated requests, then the client closes (nothing executed);
#   data: frames declaring a size below 10 or above 4096 (TPM_RC_COMMAND_SIZE,
#   closed); well-framed garbage (TPM error answers); random bytes; a
#   truncated command; two commands in one write (two answers).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3
TPM2_PID=$INSTANCE_PID

# raw ENDPOINT HEX: what the instance answers (hex, then EOF or OPEN).
raw() { "$TPMSEND" --raw --wait 100 "$1" "$2"; }
# serving WHAT: the instance is alive and answers on both channels.
serving() {
	kill -0 "$INSTANCE_PID" 2>/dev/null || fail "$1: the instance died"
	[[ "$(tpm2_getrandom 8 --hex)" =~ ^[0-9a-f]{16}$ ]] || fail "$1: getrandom failed"
	assert_contains "$(swtpm_ioctl -c "${IOCTL[@]}")" "ptm capability" "$1: control channel"
}
NL=$'\n'
closed_with() { # ANSWER -> what raw prints for ANSWER then a close
	printf '%s\nEOF' "$1"
}

note "control: unknown commands"
for cmd in 00000000 000000ff 00000014 7fffffff ffffffff; do
	assert_eq "$(raw "$CTRL_EP" "$cmd")" "$(closed_with 0000000a)" "unknown command $cmd"
	assert_eq "$(raw "$CTRL_EP" "${cmd}0102030405060708")" "$(closed_with 0000000a)" \
		"unknown command $cmd with payload"
done
serving "after unknown commands"

note "control: huge declared lengths are refused without allocating"
vm_before=$(proc_mem_kb "$INSTANCE_PID" VmSize)
swtpm_ioctl --stop "${IOCTL[@]}"
for len in ffffffff 80000000 00400001; do
	assert_eq "$(raw "$CTRL_EP" "0000000d0000000000000001${len}00")" "$(closed_with 00000003)" \
		"SET_STATEBLOB of length 0x$len"
	assert_eq "$(raw "$CTRL_EP" "00000007${len}00")" "$(closed_with 00000003)" \
		"HASH_DATA of length 0x$len"
done
vm_after=$(proc_mem_kb "$INSTANCE_PID" VmSize)
((vm_after - vm_before < 16384)) ||
	fail "the instance's memory grew by $((vm_after - vm_before)) KiB on refused lengths"
swtpm_ioctl -i "${IOCTL[@]}"
tpm2_startup -c
serving "after huge declared lengths"

note "control: truncated requests, then the client closes"
for req in 00 000002 0000000200 000000020000 0000000d00000000 0000000d000000000000000100000010aabb \
	0000000c0000000100000001 00000012000000000000; do
	assert_eq "$(raw "$CTRL_EP" "$req")" "$(printf '\nOPEN')" "truncated request $req"
done
# Had the truncated INIT run, the TPM would now need a TPM2_Startup.
serving "after truncated requests"

note "data: declared sizes outside 10..4096"
for size in 00000000 00000005 00000009 00001001 00010000 ffffffff; do
	assert_eq "$(raw "$DATA_EP" "8001${size}0000017b0008")" "$(closed_with 80010000000a00000142)" \
		"command size 0x$size"
done
serving "after bad sizes"

note "data: well-framed garbage gets TPM error answers"
for i in $(seq 1 20); do
	body=$(random_hex $((RANDOM % 64)))
	size=$((10 + ${#body} / 2))
	tag=$(random_hex 2)
	out=$("$TPMSEND" "$DATA_EP" "$tag$(printf '%08x' "$size")4$(random_hex 4 | cut -c2-)$body")
	[[ "$out" =~ ^(80010000000a|00c40000000a)([0-9a-f]{8})$ ]] ||
		fail "garbage frame $i answered: $out"
	[ "${BASH_REMATCH[2]}" != 00000000 ] || fail "garbage frame $i succeeded"
done
serving "after garbage frames"

note "data: random bytes"
for i in $(seq 1 10); do
	out=$(raw "$DATA_EP" "$(random_hex $((1 + RANDOM % 100)))")
	case "$out" in
	*OPEN | *EOF) ;;
	*) fail "random bytes $i: $out" ;;
	esac
done
serving "after random bytes"

note "data: a truncated command, then the client closes"
assert_eq "$(raw "$DATA_EP" 8001000000140000017b0008)" "$(printf '\nOPEN')" "truncated command"
serving "after a truncated command"

note "data: two commands in one write get two answers"
out=$(raw "$DATA_EP" 80010000000c0000017b000480010000000c0000017b0004)
[[ "$out" =~ ^(800100000010000000000004[0-9a-f]{8}){2}"$NL"OPEN$ ]] ||
	fail "two GetRandom in one write answered: $out"

note "a TPM 1.2 instance answers a bad size in TPM 1.2 framing"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2
assert_eq "$(raw "$DATA_EP" 00c1000000050000)" "$(printf '\nOPEN')" "8 bytes: an incomplete header"
assert_eq "$(raw "$DATA_EP" 00c100000005000000000000)" "$(closed_with 00c40000000a00000019)" \
	"TPM 1.2 command size 5"
assert_eq "$(raw "$DATA_EP" 00c100001001000000000000)" "$(closed_with 00c40000000a00000019)" \
	"TPM 1.2 command size 4097"
stop_pid "$INSTANCE_PID"
stop_pid "$TPM2_PID"
