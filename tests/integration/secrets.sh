#!/bin/bash
# Secrets in vtpmd's memory (issue "The service": memory that holds secrets
# is locked and excluded from core dumps, no core files, secrets wiped
# after use). tests/tools/memscan.c reads the process's memory: the
# approval private key and the vTPMs' state keys may appear only in
# locked, non-dumped mappings, and not at all once they have been used.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=${VTPMD_RELEASE:-$TOP/build/vtpmd}
MEMSCAN=$TOP/build/memscan
[ "$(id -u)" -eq 0 ] || fail "this test needs root (it reads vtpmd's memory)"
require_tools openssl

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"

note "no core files"
limits=$(grep "Max core file size" "/proc/$VTPMD_PID/limits")
[[ "$limits" =~ ^Max\ core\ file\ size\ +0\ +0\  ]] || fail "core files allowed: $limits"

"$VTPMCTL" policy approve --current >/dev/null

note "the scanner finds what is there (the instance name, in ordinary memory)"
"$VTPMCTL" create vm-a >/dev/null
name_hex=$(printf 'vm-a' | od -An -tx1 | tr -d ' \n')
"$MEMSCAN" "$VTPMD_PID" find "$name_hex" | grep -q "unlocked,dumped" ||
	fail "memscan does not find the instance name in vtpmd's memory"

# only_locked WHAT HITS: every occurrence is in locked, non-dumped memory.
only_locked() {
	local bad
	bad=$(grep -v " locked,nodump " <<<"$2" || true)
	[ -z "$bad" ] || fail "$1 in ordinary memory of vtpmd: $bad"
}

note "the approval private key: never in ordinary memory"
"$VTPMCTL" policy approve --current >/dev/null # its second use
priv=$(openssl pkey -in "$T/svc/state/approval.pem" -noout -text |
	sed -n '/^priv:/,/^pub:/p' | grep -v '^priv:\|^pub:' | tr -d ' :\n')
priv=${priv: -64}
[ "${#priv}" -eq 64 ] || fail "could not read the approval key's scalar"
only_locked "the approval private key" "$("$MEMSCAN" "$VTPMD_PID" find "$priv")"

note "the state keys: in the workers' locked memory, never in vtpmd's ordinary memory"
"$VTPMCTL" create vm-b >/dev/null
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" start vm-a >/dev/null
checked=0
for vm in vm-a vm-b; do
	pid=$(jfield "$("$VTPMCTL" info "$vm" --json)" .pid)
	keys=$("$MEMSCAN" "$pid" secrets 32)
	[ -n "$keys" ] || fail "$vm: no key in the worker's locked memory"
	for k in $keys; do
		only_locked "a state key of $vm" "$("$MEMSCAN" "$VTPMD_PID" find "$k")"
		checked=$((checked + 1))
	done
done
note "  $checked worker secret(s) looked for in vtpmd"
echo ok
