#!/bin/bash
# vtpmd the service, with a simulated host TPM: lifecycle through vtpmctl,
# state sealed to the host TPM under an approved PCR policy, worker and
# manager crashes, stolen state, PCR changes and approvals.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot); the sanitizer build is exercised by the instance tests.
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "the service test needs root (workers are sandboxed)"
require_tools strace

nv_write() { # INSTANCE VALUE
	local tcti
	tcti=$(jfield "$("$VTPMCTL" info "$1" --json)" .tcti)
	TPM2TOOLS_TCTI=$tcti tpm2_nvdefine 0x1500020 -s 16 -a "ownerread|ownerwrite" >/dev/null 2>&1 || true
	printf '%-16s' "$2" | TPM2TOOLS_TCTI=$tcti tpm2_nvwrite -C o 0x1500020 -i - ||
		fail "nvwrite on $1"
}
nv_read() { # INSTANCE [TCTI]
	local tcti=${2:-}
	[ -n "$tcti" ] || tcti=$(jfield "$("$VTPMCTL" info "$1" --json)" .tcti)
	TPM2TOOLS_TCTI=$tcti tpm2_nvread -C o 0x1500020 -s 16 | tr -d ' '
}
expect_nv() { # INSTANCE VALUE WHAT [TCTI]
	assert_eq "$(nv_read "$1" "${4:-}")" "$(printf '%-16s' "$2" | tr -d ' ')" "$3"
}
pid_of() { jfield "$("$VTPMCTL" info "$1" --json)" .pid; }

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
assert_contains "$(cat "$T/svc.log")" "NO hardware protection" "simulator warning"

note "no approved configuration yet: creating and starting is refused, naming the cause"
rc=0
"$VTPMCTL" create vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "start without an approved host configuration succeeded"
assert_contains "$(cat "$T/out")" "approve" "refusal says how to approve"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" start vm-a >/dev/null
"$VTPMCTL" create vm-b --tpm 2 >/dev/null
"$VTPMCTL" create vm-c --no-start >/dev/null

note "list, info"
list=$("$VTPMCTL" list --json)
assert_eq "$(jq -r '.instances | length' <<<"$list")" 3 "instances listed"
assert_eq "$(jq -r '.instances[] | select(.name=="vm-c") | .state' <<<"$list")" stopped "vm-c state"
info=$("$VTPMCTL" info vm-a --json)
assert_eq "$(jfield "$info" .state)" running "vm-a state"
[ -S "$(jfield "$info" .socket)" ] || fail "QEMU socket missing"

note "the guest's data lives in the vTPM, and nothing on disk reveals key or data"
nv_write vm-a "secret-vm-a"
expect_nv vm-a secret-vm-a "NV read"
if grep -r -a -q "secret-vm-a" "$T/svc/state"; then fail "NV content in the clear on disk"; fi

note "sandbox: the worker runs confined, under its own uid"
pid=$(pid_of vm-a)
assert_contains "$(grep Seccomp: /proc/"$pid"/status)" "2" "seccomp filter"
uid=$(awk '/^Uid:/ {print $2}' /proc/"$pid"/status)
[ "$uid" -ne 0 ] || fail "worker runs as root"

note "stop and start keep the TPM; the unsealed key crosses the host-TPM link encrypted"
"$VTPMCTL" stop vm-a >/dev/null
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" stopped "stopped"
# The sealed secret is the state key followed by the instance's UUID: in
# the clear, the UUID's 16 bytes would be in what vtpmd reads from the TPM.
: >"$T/strace.err"
strace -p "$VTPMD_PID" -e trace=read,recvfrom -e read=all -xx -s 0 -o "$T/tpm-io.trace" \
	2>"$T/strace.err" &
sp=$!
until grep -qs attached "$T/strace.err"; do kill -0 "$sp" 2>/dev/null || fail "strace"; done
"$VTPMCTL" start vm-a >/dev/null
kill -INT "$sp"
wait "$sp" 2>/dev/null || true
uuid=$(jfield "$("$VTPMCTL" info vm-a --json)" .uuid | tr -d -)
dump=$(grep -E '^ \| [0-9a-f]{5}  ' "$T/tpm-io.trace" | cut -c11-59 | tr -d ' \n')
[ ${#dump} -gt 100 ] || fail "strace saw nothing read from the host TPM"
[[ "$dump" != *"$uuid"* ]] || fail "the sealed secret crossed the host-TPM link in the clear"
expect_nv vm-a secret-vm-a "NV after restart"

note "a killed worker is restarted with its state, others unaffected"
pid=$(pid_of vm-a)
pidb=$(pid_of vm-b)
kill -KILL "$pid"
deadline=$((SECONDS + 30))
until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
	[ "$new" != "$pid" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted"
done
assert_eq "$(pid_of vm-b)" "$pidb" "other worker untouched"
expect_nv vm-a secret-vm-a "NV after crash"
assert_contains "$(cat "$T/svc.log")" "killed by signal 9" "crash logged"

note "vtpmd killed: the workers keep serving; a new vtpmd adopts them"
pid=$(pid_of vm-a)
tcti=$(jfield "$("$VTPMCTL" info vm-a --json)" .tcti)
kill -KILL "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
expect_nv vm-a secret-vm-a "NV while vtpmd is down" "$tcti"
start_vtpmd svc --root-tcti "$HOST_TCTI"
assert_eq "$(pid_of vm-a)" "$pid" "adopted the same worker"
assert_contains "$(cat "$T/svc.log")" "adopted running worker" "adoption logged"

note "a host PCR change is refused, naming the PCR; one approval restores every instance"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend \
	7:sha256=0000000000000000000000000000000000000000000000000000000000000007
rc=0
"$VTPMCTL" restart vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "restart after an unapproved PCR change succeeded"
assert_contains "$(cat "$T/out")" "PCR 7" "refusal names the PCR"
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" refused "state after refusal"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" start vm-a >/dev/null
expect_nv vm-a secret-vm-a "NV after approval"
"$VTPMCTL" restart vm-b >/dev/null

note "a sealed key swapped from another instance is refused"
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" stop vm-b >/dev/null
inst=$T/svc/state/instances
cp "$inst/vm-a/sealed.key" "$T/sealed-a"
cp "$inst/vm-b/sealed.key" "$inst/vm-a/sealed.key"
rc=0
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "start with another instance's sealed key succeeded"
assert_contains "$(cat "$T/out")" "another instance" "swap refusal"
cp "$T/sealed-a" "$inst/vm-a/sealed.key"
"$VTPMCTL" start vm-a >/dev/null

note "an instance copied to a vtpmd with another host TPM refuses to start"
"$VTPMCTL" stop vm-a >/dev/null
start_host_tpm "$T/host2"
svc1_socket=$VTPMD_SOCKET
start_vtpmd thief --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
cp -a "$inst/vm-a" "$T/thief/state/instances/vm-a"
kill -TERM "$VTPMD_PID"
wait "$VTPMD_PID" || true
start_vtpmd thief --root-tcti "$HOST_TCTI"
rc=0
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "stolen instance started on another host TPM"
assert_contains "$(cat "$T/out")" "not sealed by this host's TPM" "stolen refusal"
export VTPMD_SOCKET=$svc1_socket

note "bad input: names, unknown instances, deletes of running instances"
rc=0; "$VTPMCTL" create ../etc >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && assert_contains "$(cat "$T/out")" "invalid instance name" "path name"
rc=0; "$VTPMCTL" info nosuch >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && assert_contains "$(cat "$T/out")" "no such instance" "unknown name"
rc=0; "$VTPMCTL" delete vm-b >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "deleting a stopped instance failed"
"$VTPMCTL" start vm-a >/dev/null
rc=0; "$VTPMCTL" delete vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && assert_contains "$(cat "$T/out")" "--force" "running delete"
"$VTPMCTL" delete vm-a --force >/dev/null
[ ! -e "$inst/vm-a" ] || fail "deleted instance's files remain"
out=$(curl -s --unix-socket "$VTPMD_SOCKET" -X POST -d '{not json' http://vtpmd/v1/instances)
assert_contains "$out" '"error"' "malformed body"
out=$(curl -s --unix-socket "$VTPMD_SOCKET" http://vtpmd/v1/nowhere)
assert_contains "$out" '"error"' "unknown path"
# Let an unprivileged user reach the socket, to see the credential check.
chmod 0711 "$T" "$T/svc"
chmod 0666 "$VTPMD_SOCKET"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
	curl -s -w ' %{http_code}' --unix-socket "$VTPMD_SOCKET" http://vtpmd/v1/instances || true)
assert_contains "$out" '"error"' "caller without rights"
assert_contains "$out" ' 403' "caller without rights: status"
"$VTPMCTL" host >/dev/null
echo "ok"
