#!/bin/bash
# State cannot be rolled back (docs/state.md): vtpmd records every
# instance's latest generation in a manifest bound to a counter in the host
# TPM. Tried as the issue's attacker did: a guest's NV counter incremented,
# the instance's directory copied, incremented twice more, the old copy put
# back: the start is refused, naming both generations (before, it started
# and the counter read its old value); the latest state put back starts.
# Then the whole state directory restored from a backup (manifest and
# sealed keys included): every instance is refused. A rollback under a
# running worker is refused when vtpmd adopts it. A guest writing NV in a
# tight loop gets TPM_RC_NV_RATE beyond its rate (nv-write-rate, here 2 a
# second in bursts of 10), and its writes go on once it slows down.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_nvincrement tpm2_nvread jq

SVC=$T/svc/state
NV=0x1500040
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; }
nv_define() {
	TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvdefine "$NV" -s 8 \
		-a "ownerread|ownerwrite|nt=counter" >/dev/null || fail "nvdefine on $1"
}
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvincrement -C o "$NV" || fail "nvincrement"; }
nv_count() { # NAME: the counter's value, as a number
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
gen_of() { # FILE: the generation in a state file's header
	echo $((16#$(od -An -tx1 -j16 -N8 "$1" | tr -d ' \n')))
}
echo "nv-write-rate = 2" >"$T/vtpmd.conf"
vtpmd() { start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"; }
restart_vtpmd() {
	kill "$VTPMD_PID"
	wait "$VTPMD_PID" 2>/dev/null || true
	vtpmd
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
vtpmd
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
[ -s "$SVC/freshness.manifest" ] || fail "no manifest"
[ -s "$SVC/freshness.key" ] || fail "no sealed freshness key"
nv_define vm-a
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 1 "the guest's counter"

note "NV writes in a tight loop: TPM_RC_NV_RATE beyond the burst, then served again"
NV8_INDEX=01500041
TPM2TOOLS_TCTI=$(tcti_of vm-b) tpm2_nvdefine 0x1500041 -C o -s 8 -a "ownerread|ownerwrite" \
	>/dev/null || fail "nvdefine on vm-b"
DATA_EP=unix:$T/svc/run/vm-b.sock
NV_RATE=80010000000a00000920
args=()
for i in $(seq 1 30); do args+=("$(nv_write_cmd "$i")"); done
"$TPMSEND" "$DATA_EP" "${args[@]}" >"$T/rates"
ok=$(grep -c "^$WRITE_OK\$" "$T/rates" || true)
# the burst of 10 writes, less vm-b's so far (its first power cycle, the
# NV_DefineSpace): served in a row, then TPM_RC_NV_RATE
first_rate=$(grep -n "^$NV_RATE\$" "$T/rates" | head -1 | cut -d: -f1)
[ -n "$first_rate" ] || fail "30 NV writes at once: none answered TPM_RC_NV_RATE"
[ "$first_rate" -ge 6 ] && [ "$(head -n $((first_rate - 1)) "$T/rates" |
	grep -c "^$WRITE_OK\$")" -eq $((first_rate - 1)) ] ||
	fail "the burst was throttled: $(head -n "$first_rate" "$T/rates" | uniq -c)"
[ "$(grep -vc "^$WRITE_OK\$\|^$NV_RATE\$" "$T/rates")" -eq 0 ] || fail "$(sort -u "$T/rates")"
deadline=$((SECONDS + 5))
until [ "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 999)")" = "$WRITE_OK" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "NV writes still refused after 5 s"
done
assert_contains "$(cat "$T/svc.log")" "answered TPM_RC_NV_RATE" "the log"
note "$ok of 30 NV writes at once served, the others answered TPM_RC_NV_RATE"

note "one instance's files from a backup: refused, naming both generations"
"$VTPMCTL" stop vm-a >/dev/null
cp -a "$SVC/instances/vm-a/state" "$T/backup-a"
old=$(gen_of "$T/backup-a/permanent.state")
"$VTPMCTL" start vm-a >/dev/null
nv_inc vm-a
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 3 "the guest's counter"
"$VTPMCTL" stop vm-a >/dev/null
cp -a "$SVC/instances/vm-a/state" "$T/latest-a"
new=$(gen_of "$T/latest-a/permanent.state")
[ "$new" -gt "$old" ] || fail "generation $new after $old"
rm -rf "$SVC/instances/vm-a/state"
cp -a "$T/backup-a" "$SVC/instances/vm-a/state"
refused vm-a "generation $old, older than generation $new" "vtpmctl delete vm-a"
assert_contains "$(cat "$T/svc.log")" "generation $old, older than generation $new" "the log"

note "the same after a restart of vtpmd; vm-b is not affected"
restart_vtpmd
refused vm-a "generation $old, older than generation $new"
assert_eq "$(field_of vm-b .state)" running "vm-b"

note "files replaced under a running worker: refused when vtpmd adopts it"
"$VTPMCTL" stop vm-b >/dev/null
cp -a "$SVC/instances/vm-b/state/permanent.state" "$T/backup-b"
"$VTPMCTL" start vm-b >/dev/null
nv_define vm-b
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
cp "$T/backup-b" "$SVC/instances/vm-b/state/permanent.state"
vtpmd
[ "$(field_of vm-b .state)" != running ] || fail "vm-b runs on older state"
assert_contains "$(field_of vm-b .error)" "older than generation" "vm-b's error"
# its worker was killed (not vtpmd's child: init reaps it)
deadline=$((SECONDS + 5))
while [ "$(pgrep -fc -- "vtpmd-instance.*--name vm-b .*$T/" || true)" -ne 0 ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vm-b's worker still runs on older state"
	sleep 0.05
done
"$VTPMCTL" stop vm-b >/dev/null 2>&1 || true

note "deleted state files are a rollback too (never a blank TPM)"
rm -rf "$SVC/instances/vm-a/state"
refused vm-a "generation 0, older than generation $new"

note "the latest state put back: it starts, and the counter holds"
cp -a "$T/latest-a" "$SVC/instances/vm-a/state"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a with its latest state: $(cat "$T/out")"
assert_eq "$(nv_count vm-a)" 3 "the guest's counter"

note "the whole state directory restored from a backup: every instance refused"
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" stop vm-b >/dev/null
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
cp -a "$SVC" "$T/backup-svc"
vtpmd
"$VTPMCTL" start vm-a >/dev/null || fail "start vm-a"
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 4 "the guest's counter"
"$VTPMCTL" stop vm-a >/dev/null
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
rm -rf "$SVC"
cp -a "$T/backup-svc" "$SVC"
vtpmd
refused vm-a "restored from a backup" "every instance is refused"
refused vm-b "restored from a backup"

echo ok
