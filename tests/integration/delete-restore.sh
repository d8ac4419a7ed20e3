#!/bin/bash
# A deleted vTPM restored from a backup does not start (found by the attack
# review of #12, attack-delete-restore.sh): a delete used to remove the
# instance's manifest entry, so its old directory put back (sealed.key
# included, which still unseals on this host) was recorded as a new
# instance and started with its old state, the guest's NV counter back from
# 3 to 1. Now the delete leaves a tombstone in the manifest (UUID, last
# generation, when), and the restored directory is refused, naming the
# deletion and the way out; the tombstone survives vtpmd's restarts, and
# only the operator removes it (vtpmctl host forget-deleted UUID), after
# which the directory starts with the state it holds.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_nvincrement tpm2_nvread jq od

SVC=$T/svc/state
NV=0x1500040
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; }
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvincrement -C o "$NV" || fail "nvincrement"; }
nv_count() {
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
restart_vtpmd() {
	kill "$VTPMD_PID"
	wait "$VTPMD_PID" 2>/dev/null || true
	start_vtpmd svc --root-tcti "$HOST_TCTI"
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
uuid=$(field_of vm-a .uuid)
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 \
	-a "ownerread|ownerwrite|nt=counter" >/dev/null || fail "nvdefine"
nv_inc
"$VTPMCTL" stop vm-a >/dev/null || fail "stop"
cp -a "$SVC/instances/vm-a" "$T/backup-a"
"$VTPMCTL" start vm-a >/dev/null || fail "start"
nv_inc
nv_inc
assert_eq "$(nv_count)" 3 "the guest's counter"

note "root: delete vm-a, put its old directory back, restart vtpmd"
"$VTPMCTL" delete vm-a --force >/dev/null || fail "delete"
cp -a "$T/backup-a" "$SVC/instances/vm-a"
restart_vtpmd
if "$VTPMCTL" start vm-a >"$T/out" 2>&1; then
	fail "vm-a, deleted and its old directory put back, started: the guest's NV counter" \
		"reads $(nv_count), not 3"
fi
out="$(cat "$T/out") $(field_of vm-a .error)"
assert_contains "$out" "was deleted on" "the refusal"
assert_contains "$out" "$uuid" "the refusal"
assert_contains "$out" "vtpmctl host forget-deleted $uuid" "the refusal's way out"
[ "$(field_of vm-a .state)" != running ] || fail "vm-a runs"
assert_eq "$("$VTPMCTL" host --json | jq -r .freshness.deleted)" 1 "tombstones"

note "the tombstone outlives a delete of the restored copy and vtpmd's restarts"
"$VTPMCTL" delete vm-a --force >/dev/null || fail "delete the restored vm-a"
restart_vtpmd
cp -a "$T/backup-a" "$SVC/instances/vm-a"
restart_vtpmd
if "$VTPMCTL" start vm-a >"$T/out" 2>&1; then fail "vm-a started after a second restore"; fi
assert_contains "$(cat "$T/out") $(field_of vm-a .error)" "was deleted on" "the refusal"

note "the operator's way out: forget the deletion; the directory starts as it is"
"$VTPMCTL" host forget-deleted 00000000-0000-0000-0000-000000000000 >"$T/out" 2>&1 &&
	fail "an unknown UUID forgotten"
assert_contains "$(cat "$T/out")" "no deleted vTPM" "an unknown UUID"
"$VTPMCTL" host forget-deleted "$uuid" >/dev/null || fail "forget-deleted"
assert_contains "$(cat "$T/svc.log")" "forgotten at the operator's request" "the log"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a after forget-deleted: $(field_of vm-a .error)"
assert_eq "$(nv_count)" 1 "the guest's counter (the restored state, as the operator chose)"
assert_eq "$("$VTPMCTL" host --json | jq -r .freshness.deleted)" 0 "tombstones"
echo ok
