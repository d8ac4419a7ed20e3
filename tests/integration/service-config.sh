#!/bin/bash
# vtpmd's configuration and start-up: `vtpmd -n` reports every problem as
# FILE:LINE; a host TPM that does not answer is a clear error at start; an
# approval key whose private half stays with the administrator; desired
# state survives a host reboot (vtpmd and every worker gone).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"

note "vtpmd -n: a valid file, and one with a problem on each of three lines"
cat >"$T/good.conf" <<CONF
# a comment
tcti = swtpm:host=127.0.0.1,port=2321
pcrs = 0, 2, 4, 7
state-dir = /var/lib/vtpmd
worker-uid-base = 300000
CONF
assert_contains "$("$VTPMD" -n --config "$T/good.conf")" "configuration OK" "valid file"
cat >"$T/bad.conf" <<CONF
tcti = device:/dev/tpmrm0
pcrs = 0,2,99
no equals sign here
state-dir = relative/path
CONF
rc=0
"$VTPMD" -n --config "$T/bad.conf" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status for an invalid file"
assert_contains "$(cat "$T/out")" "bad.conf:2: pcrs" "PCR list problem located"
assert_contains "$(cat "$T/out")" "bad.conf:3: expected 'key = value'" "syntax problem located"
assert_contains "$(cat "$T/out")" "bad.conf:4: state-dir: must be an absolute path" "path problem located"

note "a host TPM that does not answer is a clear error at start"
port=$(free_port_pair)
rc=0
"$VTPMD" --root-tcti "swtpm:host=127.0.0.1,port=$port" --state-dir "$T/none/state" \
	--run-dir "$T/none/run" --socket "$T/none/api.sock" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status without a host TPM"
assert_contains "$(cat "$T/out")" "host TPM swtpm:host=127.0.0.1,port=$port" "error names the TCTI"

note "the approval key's private half stays with the administrator"
start_host_tpm "$T/host"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/admin.pem" 2>/dev/null
openssl ec -in "$T/admin.pem" -pubout -out "$T/admin.pub" 2>/dev/null
cat >"$T/svc.conf" <<CONF
approval-public-key = $T/admin.pub
CONF
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
rc=0
"$VTPMCTL" policy approve --current >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "vtpmd signed an approval without the private key"
assert_contains "$(cat "$T/out")" "--key" "refusal says to sign with --key"
[ ! -e "$T/svc/state/approval.pem" ] || fail "vtpmd created a private approval key"
"$VTPMCTL" policy approve --current --key "$T/admin.pem" >/dev/null
"$VTPMCTL" create vm-a >/dev/null
"$VTPMCTL" create vm-b --no-start >/dev/null
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" running "started under the admin's approval"

note "a host reboot: vtpmd and its workers gone; the new vtpmd starts what should run"
pid=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
kill -KILL "$VTPMD_PID" "$pid"
wait "$VTPMD_PID" 2>/dev/null || true
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
info=$("$VTPMCTL" info vm-a --json)
assert_eq "$(jfield "$info" .state)" running "vm-a after the reboot"
[ "$(jfield "$info" .pid)" != "$pid" ] || fail "vm-a was not started anew"
assert_eq "$(jfield "$("$VTPMCTL" info vm-b --json)" .state)" stopped "vm-b stays stopped"
echo ok
