#!/bin/bash
# Locality on the control channel: swtpm_ioctl -l 5 is refused (by the
# tool, and by the instance when sent raw: TPM_BAD_LOCALITY, connection
# kept), the locality stays unchanged; -l 3 is accepted and the TPM then
# lets a command extend PCR 17 (extendable from localities 2-4 only),
# which -l 0 forbids again (TPM_RC_LOCALITY).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3

# pcr17_extend DIGEST: TPM2_PCR_Extend(PCR 17, sha256 DIGEST) with an empty
# password session, sent raw on the data channel; prints the response.
pcr17_extend() {
	"$TPMSEND" "$DATA_EP" "$(hexcat 8002 00000041 00000182 00000011 \
		00000009 40000009 0000 00 0000 00000001 000b "$1")"
}
OK=80020000001300000000000000000000010000
BAD_LOCALITY=80010000000a00000907
FF=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
d=$(random_hex 32)

note "at locality 0 PCR 17 cannot be extended"
assert_eq "$(pcr17_extend "$d")" "$BAD_LOCALITY" "extend of PCR 17 at locality 0"
assert_eq "$(pcr_value 17)" "$FF" "PCR 17 after the refused extend"

note "swtpm_ioctl -l 5 is refused"
if swtpm_ioctl -l 5 "${IOCTL[@]}" >"$T/out" 2>&1; then
	fail "swtpm_ioctl -l 5 succeeded: $(cat "$T/out")"
fi
note "SET_LOCALITY 5 and 255 sent raw: TPM_BAD_LOCALITY, connection kept"
assert_eq "$("$TPMSEND" --raw --wait 300 "$CTRL_EP" 0000000505)" "$(printf '0000003d\nOPEN')" \
	"raw SET_LOCALITY 5"
assert_eq "$("$TPMSEND" --raw --wait 300 "$CTRL_EP" 00000005ff)" "$(printf '0000003d\nOPEN')" \
	"raw SET_LOCALITY 255"
assert_eq "$(pcr17_extend "$d")" "$BAD_LOCALITY" "extend of PCR 17 after the refused localities"

note "swtpm_ioctl -l 3 is accepted and applies"
swtpm_ioctl -l 3 "${IOCTL[@]}"
assert_eq "$(pcr17_extend "$d")" "$OK" "extend of PCR 17 at locality 3"
assert_eq "$(pcr_value 17)" "$(pcr_after "$FF" "$d")" "PCR 17 after the extend at locality 3"

note "swtpm_ioctl -l 0 forbids it again"
swtpm_ioctl -l 0 "${IOCTL[@]}"
assert_eq "$(pcr17_extend "$d")" "$BAD_LOCALITY" "extend of PCR 17 back at locality 0"
assert_eq "$(pcr_value 17)" "$(pcr_after "$FF" "$d")" "PCR 17 after the second refused extend"
stop_pid "$INSTANCE_PID"
