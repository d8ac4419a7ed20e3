#!/bin/bash
# The host-TPM module against a simulated host TPM (swtpm): a state key
# sealed under the SRK with PolicyAuthorize unseals only while the host
# PCRs hold approved values, a new approval restores access after a PCR
# change, and another TPM cannot unseal it at all.
source "$(dirname "$0")/../lib.sh"
CHECK=$TOP/build/hwtpm-check
export TSS2_LOG=all+none

# start_host_tpm DIR: a swtpm TPM 2.0 on free loopback ports; sets HOST_TCTI.
start_host_tpm() {
	local dir=$1 port deadline
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(free_port_pair)
		swtpm socket --tpm2 --tpmstate dir="$dir" \
			--server type=tcp,port="$port",bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--flags not-need-init,startup-clear 2>>"$dir.log" &
		TEST_PIDS+=($!)
		deadline=$((SECONDS + 20))
		until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
			kill -0 "$!" 2>/dev/null || break
			[ "$SECONDS" -lt "$deadline" ] || fail "swtpm did not listen"
		done
		if kill -0 "$!" 2>/dev/null; then
			HOST_TCTI="swtpm:host=127.0.0.1,port=$port"
			return
		fi
	done
	fail "could not start swtpm"
}

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
