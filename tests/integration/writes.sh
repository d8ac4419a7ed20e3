#!/bin/bash
# Work is not repeated: commands that change no persistent TPM data (PCR
# extends, reads, random numbers, signatures with a loaded key) leave the
# state file untouched — same bytes, same generation — while an NV write
# replaces it once, with the next generation.
source "$(dirname "$0")/../lib.sh"

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3
state=$T/tpm/permanent.state
TPM2TOOLS_TCTI=$TCTI tpm2_nvdefine 0x1500040 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null
generation() { od -An -tu8 --endian=big -j 16 -N 8 "$1" | tr -d ' '; }
before=$(sha256sum <"$state")
gen=$(generation "$state")

note "100 PCR extends, reads and random numbers"
for i in $(seq 100); do
	TPM2TOOLS_TCTI=$TCTI tpm2_pcrextend \
		"16:sha256=$(printf '%064x' "$i")" >/dev/null
done
TPM2TOOLS_TCTI=$TCTI tpm2_pcrread sha256:16 >/dev/null
TPM2TOOLS_TCTI=$TCTI tpm2_getrandom 32 >/dev/null
assert_eq "$(sha256sum <"$state")" "$before" "state file after commands that change no NV data"
assert_eq "$(generation "$state")" "$gen" "generation after commands that change no NV data"

note "one NV write: the state file is replaced once"
printf 'written!' | TPM2TOOLS_TCTI=$TCTI tpm2_nvwrite -C o 0x1500040 -i -
assert_eq "$(generation "$state")" "$((gen + 1))" "generation after one NV write"
[ "$(sha256sum <"$state")" != "$before" ] || fail "the NV write did not reach the state file"
stop_pid "$INSTANCE_PID"
echo ok
