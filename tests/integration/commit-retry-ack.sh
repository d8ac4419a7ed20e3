#!/bin/bash
# A write is acknowledged only once the host TPM's counter covers it, even
# across a failed commit (found by the attack review of #12): a report's
# generation is recorded in the in-memory manifest before the commit, and
# when the commit failed (the host TPM gone, its driver unbound, NV_RATE
# past the back-off) the retry found every report "covered already" and
# acknowledged it, so a guest was told its NV increment was done while the
# counter never moved, and a backup of the state directory at that counter
# value then rolled the guest's counter back from 3 to 1 undetected. Now a
# failed commit leaves the manifest dirty and the retry commits it
# (fresh.c, fresh_commit): the guest's increment is held while the host
# TPM is away.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd # the sanitizer build when there is one
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_nvincrement tpm2_nvread jq od timeout

SVC=$T/svc/state
NV=0x1500040
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of vm-a) timeout 20 tpm2_nvincrement -C o "$NV"; }
nv_count() {
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 \
	-a "ownerread|ownerwrite|nt=counter" >/dev/null || fail "nvdefine"
nv_inc || fail "nvincrement"
assert_eq "$(nv_count)" 1 "the guest's counter"
counter=$("$VTPMCTL" host --json | jq -r .freshness.counter)

note "root's backup of the state directory (host counter $counter)"
cp -a "$SVC" "$T/backup"

note "the host TPM goes away (root kills it, or unbinds its driver)"
kill_hard "$HOST_TPM_PID"
acked=0
if nv_inc; then acked=$((acked + 1)); fi
if [ "$acked" -eq 1 ] && nv_inc; then acked=$((acked + 1)); fi
if [ "$acked" -eq 0 ]; then
	note "the write was held while the host TPM was away (not acknowledged)"
	echo ok
	exit 0
fi
note "$acked NV increments acknowledged while the host TPM's counter could not move"
got_before=$(nv_count)

note "root: vtpmd and the worker killed, the backup put back, the host TPM back"
pid=$("$VTPMCTL" info vm-a --json | jq -r ".pid // empty")
kill_hard "$VTPMD_PID"
if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
deadline=$((SECONDS + 10))
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do # until the worker is gone
	[ "$SECONDS" -lt "$deadline" ] || fail "worker $pid outlived SIGKILL"
	sleep 0.05
done
rm -rf "$SVC"
cp -a "$T/backup" "$SVC"
restart_host_tpm
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || true
for _ in $(seq 1 300); do # until the start settles
	st=$("$VTPMCTL" info vm-a --json | jq -r .state)
	case $st in running | refused | failed | stopped) break ;; esac
	sleep 0.1
done
if [ "$st" = running ]; then
	got=$(nv_count)
	fail "the guest was told its counter reached $got_before (acknowledged), yet after" \
		"root restored a backup taken at host counter $counter vm-a starts and reads $got:" \
		"writes were acknowledged without a counter increment (fresh_flush after a failed commit)"
fi
note "vm-a refused: $(cat "$T/out")"
echo ok
