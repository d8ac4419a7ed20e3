#!/bin/bash
# vtpmd's configuration and start-up: `vtpmd -n` reports every problem as
# FILE:LINE, syntax and what syntax cannot show (TCTI module, approval key,
# path lengths, missing parents); a host TPM that does not answer is a clear
# error at start; an approval key whose private half stays with the
# administrator (and a private one refused); desired state survives a host
# reboot (vtpmd and every worker gone); vtpmd not root refuses to run
# unsandboxed workers unless told to.
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

note "vtpmd -n: what syntax cannot show, each value refused at its line"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/admin.pem" 2>/dev/null
openssl ec -in "$T/admin.pem" -pubout -out "$T/admin.pub" 2>/dev/null
# bad_value NAME KEY VALUE REASON: `vtpmd -n` refuses a file whose line 3
# sets KEY = VALUE, with exit status 2 and "FILE:3: KEY: REASON".
bad_value() {
	local name=$1 key=$2 value=$3 reason=$4 rc=0
	printf '# %s\ntcti = swtpm:host=127.0.0.1,port=2321\n%s = %s\n' "$name" "$key" "$value" \
		>"$T/$name.conf"
	"$VTPMD" -n --config "$T/$name.conf" >"$T/out" 2>&1 || rc=$?
	assert_eq "$rc" 2 "$name: exit status"
	assert_contains "$(cat "$T/out")" "$T/$name.conf:3: $key: $reason" "$name: message"
}
bad_value tcti tcti nosuch:x "cannot load the TCTI module 'nosuch'"
bad_value private-key approval-public-key "$T/admin.pem" "$T/admin.pem holds a PRIVATE key"
bad_value missing-key approval-public-key "$T/missing.pub" "cannot read $T/missing.pub"
bad_value not-a-key approval-public-key "$T/good.conf" "$T/good.conf is not an ECC P-256 public key"
bad_value long-socket socket "/tmp/$(printf 's%.0s' {1..110})" "115 bytes, too long for a unix socket (at most 107)"
bad_value long-run-dir run-dir "/tmp/$(printf 'r%.0s' {1..100})" "105 bytes leaves no room for an instance's socket"
bad_value state-parent state-dir "$T/nowhere/state" "its parent directory $T/nowhere does not exist"
bad_value run-parent run-dir "$T/nowhere/run" "its parent directory $T/nowhere does not exist"
printf 'approval-public-key = %s\nstate-dir = %s/state\n' "$T/admin.pub" "$T" >"$T/pub.conf"
assert_contains "$("$VTPMD" -n --config "$T/pub.conf")" "configuration OK" "a public approval key"
rc=0
"$VTPMD" -n --config "$T/good.conf" --root-tcti nosuch:x >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status for a bad --root-tcti"
assert_contains "$(cat "$T/out")" "command line: tcti: cannot load the TCTI module" "origin named"

note "a private approval key is refused at start too: vtpmd must not hold it"
expect_exit 2 "start with a private approval key" "$VTPMD" --config "$T/private-key.conf" \
	--state-dir "$T/pk/state" --run-dir "$T/pk/run" --socket "$T/pk/api.sock"
assert_contains "$(cat "$T/out")" "private-key.conf:3: approval-public-key: $T/admin.pem holds a PRIVATE key" \
	"private key refused at start"
[ ! -e "$T/pk" ] || fail "vtpmd went on starting with a private approval key"

note "a host TPM that does not answer is a clear error at start"
port=$(free_port_pair)
rc=0
"$VTPMD" --root-tcti "swtpm:host=127.0.0.1,port=$port" --state-dir "$T/none/state" \
	--run-dir "$T/none/run" --socket "$T/none/api.sock" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status without a host TPM"
assert_contains "$(cat "$T/out")" "host TPM swtpm:host=127.0.0.1,port=$port" "error names the TCTI"

note "the approval key's private half stays with the administrator"
start_host_tpm "$T/host"
cat >"$T/svc.conf" <<CONF
approval-public-key = $T/admin.pub
CONF
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
rc=0
"$VTPMCTL" policy approve --current >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "vtpmd signed an approval without the private key"
assert_contains "$(cat "$T/out")" "--key" "refusal says to sign with --key"
[ ! -e "$T/svc/state/approval.pem" ] || fail "vtpmd created a private approval key"
case "$(cat "$T/svc.log")" in
*"holds the private approval key"*) fail "vtpmd with the public key alone warns it holds the private one" ;;
esac
"$VTPMCTL" policy approve --current --key "$T/admin.pem" >/dev/null
"$VTPMCTL" create vm-a >/dev/null
"$VTPMCTL" create vm-b --no-start >/dev/null
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" running "started under the admin's approval"

note "a host change: the refusal names the administrator's key; the signed approval starts vm-a"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend \
	7:sha256=0000000000000000000000000000000000000000000000000000000000000007
rc=0
"$VTPMCTL" restart vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "restart after an unapproved PCR change succeeded"
assert_contains "$(cat "$T/out")" "PCR 7 is " "refusal names the PCR"
assert_contains "$(cat "$T/out")" \
	"approve it: vtpmctl policy approve --current --key FILE (the administrator's private key)." \
	"refusal names the key"
assert_contains "$(cat "$T/out")" \
	"hint: approve the host configuration if the change is expected, with the administrator's private key: vtpmctl policy approve --current --key FILE" \
	"hint names the key"
"$VTPMCTL" policy approve --current --key "$T/admin.pem" >/dev/null # no 'vtpmctl start'
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" running "vm-a after the signed approval"

note "a host reboot: vtpmd and its workers gone; the new vtpmd starts what should run"
pid=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
kill -KILL "$VTPMD_PID" "$pid"
wait "$VTPMD_PID" 2>/dev/null || true
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
wait_state vm-a running
info=$("$VTPMCTL" info vm-a --json)
[ "$(jfield "$info" .pid)" != "$pid" ] || fail "vm-a was not started anew"
assert_eq "$(jfield "$("$VTPMCTL" info vm-b --json)" .state)" stopped "vm-b stays stopped"
stop_pid "$VTPMD_PID"

note "vtpmd not root: its workers cannot be sandboxed, so it refuses to start"
start_host_tpm "$T/host-unpriv"
chmod 0711 "$T"
mkdir "$T/unpriv"
chown nobody:nogroup "$T/unpriv"
printf '#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups %s "$@"\n' \
	"$VTPMD" >"$T/vtpmd-nobody"
chmod 0755 "$T/vtpmd-nobody"
expect_exit 2 "start as a non-root user" "$T/vtpmd-nobody" --root-tcti "$HOST_TCTI" \
	--state-dir "$T/unpriv/state" --run-dir "$T/unpriv/run" --socket "$T/unpriv/api.sock"
assert_contains "$(cat "$T/out")" \
	"run vtpmd as root, or set worker-uid-base = 0 to run workers unconfined" "says what to do"
[ ! -e "$T/unpriv/state" ] || fail "vtpmd made its state directory before refusing"

note "... unless worker-uid-base = 0 says to run them unconfined (logged)"
printf 'worker-uid-base = 0\n' >"$T/unconfined.conf"
chmod 0644 "$T/unconfined.conf"
VTPMD=$T/vtpmd-nobody start_vtpmd unpriv --config "$T/unconfined.conf" --root-tcti "$HOST_TCTI"
assert_contains "$(cat "$T/unpriv.log")" \
	"workers run without a sandbox (worker-uid-base = 0, and vtpmd is not root)" "warning logged"
# A vtpmd holding the private approval key (the default) says at start what
# that means for whoever reads its state directory.
assert_contains "$(cat "$T/unpriv.log")" "vtpmd holds the private approval key" \
	"the private approval key on the host is logged"
assert_contains "$(cat "$T/unpriv.log")" "can approve any host configuration" \
	"... and what that allows"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create vm-u >/dev/null
assert_eq "$(ps -o uid= -p "$(jfield "$("$VTPMCTL" info vm-u --json)" .pid)" | tr -d ' ')" \
	"$(id -u nobody)" "unconfined worker runs as vtpmd's user"
stop_pid "$VTPMD_PID"
echo ok
