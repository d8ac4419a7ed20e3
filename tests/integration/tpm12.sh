#!/bin/bash
# A TPM 1.2 instance (--tpm 1.2) through the data channel, raw TPM 1.2
# commands (tag 0x00C1): TPM_Startup(ST_CLEAR), TPM_Extend and TPM_PCRRead
# (checked against the host's SHA-1), TPM_CreateEndorsementKeyPair and
# TPM_ReadPubek (the same key, with a checksum over the caller's nonce);
# after a restart the EK is still there (a second CreateEndorsementKeyPair
# is refused) and the PCRs are reset. The power-off's TPM_SaveState is
# resumed by TPM_Startup(ST_STATE); that savestate.state put back after the
# TPM ran commands is refused, naming both generations (a snapshot,
# docs/state.md). The control channel reports TPM 1.2.
source "$(dirname "$0")/../lib.sh"
require_tools swtpm_ioctl sha1sum od

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup
assert_contains "$(swtpm_ioctl --info 1 "${IOCTL[@]}")" '"family":"1.2"' "--info 1"

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'; }
sha1_of_hex() {
	# shellcheck disable=SC2059
	printf "$(sed 's/../\\x&/g' <<<"$1")" | sha1sum | cut -c1-40
}
tpm12() { "$TPMSEND" "$DATA_EP" "$@"; }
be32() { printf '%08x' "$1"; }
OK=00c40000000a00000000
ZERO20=0000000000000000000000000000000000000000

STARTUP_CLEAR=00c10000000c000000990001
STARTUP_STATE=00c10000000c000000990002
pcr_read() { # PCR -> response
	tpm12 "00c10000000e00000015$(be32 "$1")"
}
extend() { # PCR DIGEST -> response
	tpm12 "00c10000002200000014$(be32 "$1")$2"
}
# TPM_CreateEndorsementKeyPair(antiReplay, RSA 2048 OAEP key parameters).
KEY_PARMS=$(hexcat 00000001 0003 0001 0000000c 00000800 00000002 00000000)
create_ek() { tpm12 "00c10000003600000078$1$KEY_PARMS"; }
read_pubek() { tpm12 "00c10000001e0000007c$1"; }

note "TPM_Startup(ST_CLEAR)"
assert_eq "$(tpm12 "$STARTUP_CLEAR")" "$OK" "TPM_Startup"

note "TPM_Extend, TPM_PCRRead"
assert_eq "$(pcr_read 10)" "00c40000001e00000000$ZERO20" "PCR 10 after startup"
d1=$(random_hex 20) d2=$(random_hex 20)
v1=$(sha1_of_hex "$ZERO20$d1")
assert_eq "$(extend 10 "$d1")" "00c40000001e00000000$v1" "TPM_Extend answer"
v2=$(sha1_of_hex "$v1$d2")
assert_eq "$(extend 10 "$d2")" "00c40000001e00000000$v2" "second TPM_Extend answer"
assert_eq "$(pcr_read 10)" "00c40000001e00000000$v2" "PCR 10 read back"

note "TPM_ReadPubek before any EK: TPM_NO_ENDORSEMENT"
assert_eq "$(read_pubek "$(random_hex 20)")" 00c40000000a00000023 "ReadPubek without EK"

note "TPM_CreateEndorsementKeyPair, TPM_ReadPubek"
nonce=$(random_hex 20)
rsp=$(create_ek "$nonce")
# TPM_PUBKEY: the key parameters, then a 2048-bit modulus; then a checksum.
[[ "$rsp" =~ ^00c40000013a00000000(${KEY_PARMS}00000100[0-9a-f]{512})([0-9a-f]{40})$ ]] ||
	fail "CreateEndorsementKeyPair answered $rsp"
pubek=${BASH_REMATCH[1]}
assert_eq "${BASH_REMATCH[2]}" "$(sha1_of_hex "$pubek$nonce")" "CreateEndorsementKeyPair checksum"
nonce=$(random_hex 20)
assert_eq "$(read_pubek "$nonce")" "00c40000013a00000000$pubek$(sha1_of_hex "$pubek$nonce")" \
	"ReadPubek"

note "restart: EK kept, PCRs reset"
stop_pid "$INSTANCE_PID"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup
assert_eq "$(tpm12 "$STARTUP_CLEAR")" "$OK" "TPM_Startup after the restart"
assert_eq "$(pcr_read 10)" "00c40000001e00000000$ZERO20" "PCR 10 after the restart"
nonce=$(random_hex 20)
assert_eq "$(read_pubek "$nonce")" "00c40000013a00000000$pubek$(sha1_of_hex "$pubek$nonce")" \
	"ReadPubek after the restart"
rsp=$(create_ek "$(random_hex 20)")
[ "$rsp" != "${rsp#00c40000000a}" ] && [ "$rsp" != "$OK" ] ||
	fail "a second CreateEndorsementKeyPair answered $rsp"

note "the power-off's SaveState resumed: TPM_Startup(ST_STATE) brings PCR 10 back"
d3=$(random_hex 20)
v3=$(sha1_of_hex "$ZERO20$d3")
assert_eq "$(extend 10 "$d3")" "00c40000001e00000000$v3" "TPM_Extend answer"
stop_pid "$INSTANCE_PID"
[ -s "$T/tpm12/savestate.state" ] || fail "the power-off wrote no savestate"
cp -a "$T/tpm12/savestate.state" "$T/old.savestate"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup
assert_eq "$(tpm12 "$STARTUP_STATE")" "$OK" "TPM_Startup(ST_STATE)"
assert_eq "$(pcr_read 10)" "00c40000001e00000000$v3" "PCR 10 resumed"

note "the guest's own TPM_SaveState, then a stop: resumed the same way"
d4=$(random_hex 20)
v4=$(sha1_of_hex "$v3$d4")
assert_eq "$(extend 10 "$d4")" "00c40000001e00000000$v4" "TPM_Extend answer"
assert_eq "$(tpm12 00c10000000a00000098)" "$OK" "TPM_SaveState"
stop_pid "$INSTANCE_PID"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup
assert_eq "$(tpm12 "$STARTUP_STATE")" "$OK" "TPM_Startup(ST_STATE) after the guest's SaveState"
assert_eq "$(pcr_read 10)" "00c40000001e00000000$v4" "PCR 10 resumed"

note "an old savestate.state put back after the TPM ran commands: refused, naming both"
stop_pid "$INSTANCE_PID"
cp -a "$T/old.savestate" "$T/tpm12/savestate.state"
run_instance 3 "an instance with an old savestate.state" --state "$T/tpm12" \
	--data "$DATA_EP" --ctrl "$CTRL_EP" --key-fd 3 --tpm 1.2
assert_contains "$(cat "$T/out")" "savestate.state: the saved state of generation" "the refusal"
rm "$T/tpm12/savestate.state"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup

note "--startup clear starts a TPM 1.2 too"
stop_pid "$INSTANCE_PID"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2
assert_eq "$(pcr_read 10)" "00c40000001e00000000$ZERO20" "PCR 10 with --startup clear"
swtpm_ioctl -s "${IOCTL[@]}"
wait_status "$INSTANCE_PID"
assert_eq "$STATUS" 0 "exit status after SHUTDOWN"
