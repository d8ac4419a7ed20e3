#!/bin/bash
# Nobody can hold the manager's loop through a new vTPM's data channel
# (docs/architecture.md, "The manager's loop"). Provisioning (a create
# with EK certificates) sends its TPM commands to the new worker from the
# loop, over the worker's data socket; a worker serves one client at a
# time, others wait in line (its io-timeout, 10 s). With socket-group set,
# every member of that group (the QEMU of every VM) can connect to every
# worker's sockets: one that connects to the new worker's data socket
# before the manager does would hold the manager's commands in line, and
# the whole loop with them, then fail the create. So a worker being
# provisioned keeps its sockets to root; they go to the group once its
# EKs and certificates are written, before the create answers.
#
# A member of the group lies in wait for the data socket of an instance
# being created (tests/tools/stall-client --wait) and holds it once in:
#  - meanwhile `vtpmctl list` answers each time within SLOW_MS (the create's
#    host-TPM commands run in the loop, tens of ms on a busy machine; held
#    in the worker's line, the loop would be away for 10 s);
#  - the create succeeds with its EK certificates;
#  - afterwards the sockets belong to root and the group, mode 0660, and
#    the member got in (after the create).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot).
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
SLOW_MS=1000
[ "$(id -u)" -eq 0 ] || fail "this test needs root (groupadd, sandboxed workers)"
require_tools groupadd groupdel setpriv stat jq openssl tpm2_createek tpm2_nvdefine tpm2_nvwrite \
	tpm2_print
for t in "$CA" "$VTPMD" "$TOP/build/stall-client"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done

GROUP=vtpmd-pc-$$
groupadd "$GROUP" || fail "groupadd $GROUP"
trap 'test_cleanup; groupdel "$GROUP" 2>/dev/null || true' EXIT
GID=$(getent group "$GROUP" | cut -d: -f3)
# The member runs as nobody: the way to the sockets must be open to it
# ($T is made 0700), and its program too, wherever the checkout lies.
chmod 0711 "$T"
install -m 0755 "$TOP/build/stall-client" "$T/stall-client"

note "host TPM, a CA trusting its manufacturer, vtpmd sharing sockets with $GROUP, enrolled"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
mkdir -p "$T/ca"
DB=$T/ca/ca.db
"$CA" init --db "$DB" --name provision-channel >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both
printf 'socket-group = %s\nprivacy-ca-root = %s\n' "$GROUP" "$T/ca/ca-root.pem" >"$T/vtpmd.conf"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
admit_host "$DB" rack1
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$T/approval.pub.pem" 2>/dev/null ||
	fail "approval public key"
"$CA" trust add --approval-key "$T/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json | jq -c .current.values >"$T/values.json"
pcrs=$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')
"$CA" approve-host-config --db "$DB" --id rack1 --pcrs "$pcrs" --values "$T/values.json" \
	>/dev/null || fail "approve-host-config"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"

note "a member of $GROUP lies in wait for b's data socket while b is created"
data=$T/svc/run/b.sock
setpriv --reuid=nobody --regid="$GID" --clear-groups \
	"$T/stall-client" --wait 60000 --hold 60000 "unix:$data" >"$T/lurker.out" 2>&1 &
lurker=$!
TEST_PIDS+=("$lurker")
start=$(date +%s%N)
"$VTPMCTL" create b >"$T/create.out" 2>&1 &
create=$!
TEST_PIDS+=("$create")
n=0
worst=0
while kill -0 "$create" 2>/dev/null; do
	s=$(date +%s%N)
	timeout -k 2 30 "$VTPMCTL" list >/dev/null 2>"$T/list.err" || fail "list: $(cat "$T/list.err")"
	ms=$((($(date +%s%N) - s) / 1000000))
	n=$((n + 1))
	((ms > worst)) && worst=$ms
done
wait_status "$create"
ms=$((($(date +%s%N) - start) / 1000000))
note "create b: $ms ms; vtpmctl list answered $n times meanwhile, the slowest in $worst ms"
[ "$STATUS" -eq 0 ] || fail "create b: exit status $STATUS after $ms ms: $(cat "$T/create.out")"
assert_contains "$(cat "$T/create.out")" "host config rack1" "b's EK certificates"
((worst < SLOW_MS)) || fail "vtpmctl list took $worst ms (limit $SLOW_MS) during the create"

note "b's sockets are the group's now, and the member got in"
for sock in "$data" "$data.ctrl"; do
	assert_eq "$(stat -c '%U %G %a' "$sock")" "root $GROUP 660" "owner, group and mode of $sock"
done
deadline=$((SECONDS + 30))
until grep -q '^connected 1 failed 0$' "$T/lurker.out"; do
	[ "$SECONDS" -lt "$deadline" ] || fail "the member never connected: $(cat "$T/lurker.out")"
	kill -0 "$lurker" 2>/dev/null || fail "the member gave up: $(cat "$T/lurker.out")"
done
kill "$lurker"
wait "$lurker" 2>/dev/null || true
stop_pid "$VTPMD_PID"
echo ok
