#!/bin/bash
# The freshness anchor cannot be reset behind vtpmd's back (found by the
# attack review of #12, attack-counter-reset.sh): root undefines vtpmd's
# counter (NV 0x01300001) with the owner's authorization (empty on most
# hosts), removes STATE/freshness.key and freshness.manifest and puts old
# state back; vtpmd used to take that for a first setup and started the
# rolled-back vTPM (the guest's NV counter back from 3 to 1). Now:
# - the key removed while the counter is there: refused, never a setup;
# - counter, key and manifest all gone while instances have state: a first
#   setup is refused, naming --reanchor;
# - the operator's --reanchor sets the anchor up again (logged, instance by
#   instance); an instance hidden meanwhile and put back is refused: its
#   binding (freshness.bind) names the old anchor;
# - another writer of the counter (root incrementing it with the owner's
#   authorization) is caught when vtpmd reads the counter back after its
#   own increment: every instance is refused (docs/state.md).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_nvincrement tpm2_nvread tpm2_nvundefine jq od

SVC=$T/svc/state
NV=0x1500040
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; }
nv_inc() {
	TPM2TOOLS_TCTI=$(tcti_of vm-a) timeout 30 tpm2_nvincrement -C o "$NV" ||
		fail "nvincrement: $(tail -5 "$T/svc.log")"
}
nv_count() {
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
stop_vtpmd() {
	kill "$VTPMD_PID"
	wait "$VTPMD_PID" 2>/dev/null || true
}
# refused NAME WHAT...: a start of NAME fails, and its error holds each WHAT
refused() {
	local name=$1 out
	shift
	if "$VTPMCTL" start "$name" >"$T/out" 2>&1; then fail "$name started: $(cat "$T/out")"; fi
	out="$(cat "$T/out") $(field_of "$name" .error)"
	for w in "$@"; do assert_contains "$out" "$w" "the refusal of $name"; done
	[ "$(field_of "$name" .state)" != running ] || fail "$name runs"
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 \
	-a "ownerread|ownerwrite|nt=counter" >/dev/null || fail "nvdefine"
nv_inc
"$VTPMCTL" stop vm-a >/dev/null || fail "stop"
cp -a "$SVC/instances/vm-a/state" "$T/backup-a"
"$VTPMCTL" start vm-a >/dev/null || fail "start"
nv_inc
nv_inc
assert_eq "$(nv_count)" 3 "the guest's counter"
"$VTPMCTL" stop vm-a >/dev/null || fail "stop"
"$VTPMCTL" stop vm-b >/dev/null || fail "stop"
stop_vtpmd

note "root: the counter undefined with the (empty) owner auth, the files removed, old state back"
tpm2_nvundefine -T "$HOST_TCTI" -C o 0x01300001 || fail "nvundefine of vtpmd's counter"
rm -f "$SVC/freshness.key" "$SVC/freshness.manifest"
rm -rf "$SVC/instances/vm-a/state"
cp -a "$T/backup-a" "$SVC/instances/vm-a/state"
mv "$SVC/instances/vm-b" "$T/hidden-b" # hidden from the operator's --reanchor below
start_vtpmd svc --root-tcti "$HOST_TCTI"
if "$VTPMCTL" start vm-a >"$T/out" 2>&1; then
	fail "vm-a started with its old state: the guest's NV counter reads $(nv_count), not 3" \
		"(counter undefined, freshness.key and manifest removed: taken for a first setup)"
fi
refused vm-a "freshness.key is missing" "vm-a has TPM state" "--reanchor"
[ ! -e "$SVC/freshness.key" ] || fail "a new freshness key was made"
stop_vtpmd

note "the operator's way out: vtpmd --reanchor takes the state on disk, and says so"
start_vtpmd svc --root-tcti "$HOST_TCTI" --reanchor
"$VTPMCTL" start vm-a >/dev/null 2>&1 || true
wait_state vm-a running
assert_contains "$(cat "$T/svc.log")" "vm-a: its state on disk recorded as its latest" "the log"
assert_eq "$(nv_count)" 1 "the guest's counter after the operator's --reanchor"
[ -s "$SVC/instances/vm-a/freshness.bind" ] || fail "vm-a has no binding to the anchor"
"$VTPMCTL" stop vm-a >/dev/null || fail "stop"
stop_vtpmd

note "an instance hidden during --reanchor and put back: refused (bound to the old anchor)"
mv "$T/hidden-b" "$SVC/instances/vm-b"
start_vtpmd svc --root-tcti "$HOST_TCTI"
refused vm-b "never recorded under this host's freshness anchor"
stop_vtpmd

note "root removes freshness.key and the manifest, the counter left: refused, not a setup"
mv "$SVC/freshness.key" "$SVC/freshness.manifest" "$T/"
start_vtpmd svc --root-tcti "$HOST_TCTI"
refused vm-a "freshness.key is missing" "holds vtpmd's freshness counter" "--reanchor"
[ ! -e "$SVC/freshness.key" ] || fail "a new freshness key was made"
stop_vtpmd
mv "$T/freshness.key" "$T/freshness.manifest" "$SVC/"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a with the anchor's files back"

note "another writer of the counter (root, with the owner's authorization): caught"
nv_inc # recorded; vtpmd reads the counter back right after its answer
tpm2_nvincrement -T "$HOST_TCTI" -C o 0x01300001 || fail "nvincrement of vtpmd's counter"
# The alarm comes from that read-back, or from the next commit's: then the
# guest's write is answered before it (held, if the alarm came first).
TPM2TOOLS_TCTI=$(tcti_of vm-a) timeout 10 tpm2_nvincrement -C o "$NV" || true
deadline=$((SECONDS + 10))
until grep -q "another program increments it" "$T/svc.log"; do
	[ "$SECONDS" -lt "$deadline" ] || fail "no alarm after another writer's increment"
	sleep 0.05
done
assert_eq "$("$VTPMCTL" host --json | jq -r .freshness.ready)" false "the anchor's state"
"$VTPMCTL" stop vm-a >/dev/null || fail "stop"
refused vm-a "another program increments it"
echo ok
