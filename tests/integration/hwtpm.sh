#!/bin/bash
# The host-TPM module against a simulated host TPM (swtpm): a state key
# sealed under the SRK with PolicyAuthorize unseals only while the host
# PCRs hold approved values, a new approval restores access after a PCR
# change, and another TPM cannot unseal it at all.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
CHECK=$TOP/build/hwtpm-check

start_host_tpm "$T/host1"
mkdir "$T/w"

note "seal a state key under the SRK"
out=$("$CHECK" "$HOST_TCTI" "$T/w" seal)
assert_contains "$out" "commands" "seal reports its host-TPM commands"
key=$(od -An -tx1 -v "$T/w/expected-key.bin" | tr -d ' \n')
sealed=$(od -An -tx1 -v "$T/w/sealed.bin" | tr -d ' \n')
case "$sealed" in *"$key"*) fail "the sealed object contains the key in the clear" ;; esac

note "approve the current PCRs and unseal"
"$CHECK" "$HOST_TCTI" "$T/w" approve >/dev/null
out=$("$CHECK" "$HOST_TCTI" "$T/w" unseal)
assert_eq "$(echo "$out" | head -n1)" "$key" "unsealed key"
n=$(echo "$out" | sed -n 's/^commands //p')
[ "$n" -le 9 ] || fail "unseal took $n host-TPM commands (goal: at most 9 with the approval check)"

note "a PCR change without approval refuses, with the reason"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend \
	16:sha256=0000000000000000000000000000000000000000000000000000000000000001
rc=0
"$CHECK" "$HOST_TCTI" "$T/w" unseal >"$T/out" 2>"$T/err" || rc=$?
assert_eq "$rc" 3 "unseal after an unapproved PCR change"
assert_contains "$(cat "$T/err")" "not in the approved configuration" "refusal message"

note "one new approval restores access"
"$CHECK" "$HOST_TCTI" "$T/w" approve >/dev/null
out=$("$CHECK" "$HOST_TCTI" "$T/w" unseal)
assert_eq "$(echo "$out" | head -n1)" "$key" "unsealed key after approval"

note "another host TPM cannot unseal it"
start_host_tpm "$T/host2"
"$CHECK" "$HOST_TCTI" "$T/w" approve >/dev/null
rc=0
"$CHECK" "$HOST_TCTI" "$T/w" unseal >"$T/out" 2>"$T/err" || rc=$?
assert_eq "$rc" 4 "unseal on a foreign TPM"
assert_contains "$(cat "$T/err")" "does not load under this host's SRK" "foreign refusal message"
echo "ok"
