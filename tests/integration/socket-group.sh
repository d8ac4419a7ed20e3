#!/bin/bash
# socket-group: a worker's sockets shared with one group (mode 0660), so
# that QEMU running as an unprivileged user of that group (libvirt's
# `external` TPM backend as libvirt-qemu) can connect, and nobody else can.
# A group made for the test (removed at exit); the client runs as nobody,
# with that group or without it. `vtpmd instance --socket-group GID` alone
# (sanitizer build), then the service (release build: sandboxed workers),
# its `-n` check of the key, a restarted worker and an adopted one.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (groupadd, sandboxed workers)"
require_tools groupadd groupdel setpriv stat

GROUP=vtpmd-sg-$$
groupadd "$GROUP" || fail "groupadd $GROUP"
trap 'test_cleanup; groupdel "$GROUP" 2>/dev/null || true' EXIT
GID=$(getent group "$GROUP" | cut -d: -f3)
GETRANDOM=80010000000c0000017b0010
# TPM2_GetRandom's answer: header (28 bytes, success), 16 random bytes
RANDOM_OK='^80010000001c000000000010[0-9a-f]{32}$'

# The client runs as nobody: the way to its sockets must be open to it
# ($T is made 0700), and its program too, wherever the checkout lies.
chmod 0711 "$T"
install -m 0755 "$TPMSEND" "$T/tpmsend"

# as_group GID CMD...: runs CMD as nobody with GID as its only group.
as_group() {
	local gid=$1
	shift
	setpriv --reuid=nobody --regid="$gid" --clear-groups "$@"
}

# expect_shared PATH: PATH is a socket of root, group $GROUP, mode 660.
expect_shared() {
	[ -S "$1" ] || fail "$1 is not a socket"
	assert_eq "$(stat -c '%U %G %a' "$1")" "root $GROUP 660" "owner, group and mode of $1"
}

# expect_clients DATA CTRL: a member of the group gets answers on both
# sockets; nobody outside it (nogroup) is refused.
expect_clients() {
	local rsp
	rsp=$(as_group "$GID" "$T/tpmsend" "unix:$1" "$GETRANDOM") ||
		fail "a member of $GROUP got no answer on $1"
	[[ "$rsp" =~ $RANDOM_OK ]] || fail "GetRandom on $1 answered $rsp"
	# CMD_GET_CAPABILITY (1), as QEMU sends first: result 0, then the flags
	rsp=$(as_group "$GID" "$T/tpmsend" --raw --wait 200 "unix:$2" 00000001) ||
		fail "a member of $GROUP got no answer on $2"
	assert_contains "$rsp" "00000000" "GET_CAPABILITY on $2"
	for sock in "$1" "$2"; do
		if as_group nogroup "$T/tpmsend" "unix:$sock" "$GETRANDOM" >"$T/out" 2>&1; then
			fail "nobody (nogroup) reached $sock: $(cat "$T/out")"
		fi
		assert_contains "$(cat "$T/out")" "Permission denied" "nobody refused on $sock"
	done
}

note "vtpmd instance --help documents --socket-group"
assert_contains "$("$VTPMD" instance --help)" "--socket-group GID" "--help"
run_instance 2 "--socket-group on tcp" --state "$T/x" --ctrl tcp:127.0.0.1:1 \
	--plaintext-state --socket-group "$GID"
assert_contains "$(cat "$T/out")" "needs unix: addresses" "tcp refused, saying why"
run_instance 2 "--socket-group 0" --state "$T/x" --ctrl "unix:$T/x.ctrl" \
	--plaintext-state --socket-group 0

note "an instance alone: 0600 by default, group-shared with --socket-group"
start_tpm plain unix --plaintext-state
assert_eq "$(stat -c '%U %G %a' "$T/plain.sock")" "root root 600" "default mode"
stop_pid "$INSTANCE_PID"
start_tpm shared unix --plaintext-state --socket-group "$GID"
expect_shared "$T/shared.sock"
expect_shared "$T/shared.sock.ctrl"
expect_clients "$T/shared.sock" "$T/shared.sock.ctrl"
stop_pid "$INSTANCE_PID"

# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot), as in service.sh.
VTPMD=$TOP/build/vtpmd

note "vtpmd -n: a group that does not exist, or root's, is refused with its line"
printf '# sockets for QEMU\nsocket-group = vtpmd-no-such-group-%s\n' "$$" >"$T/bad.conf"
rc=0
"$VTPMD" -n --config "$T/bad.conf" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status for an unknown group"
assert_contains "$(cat "$T/out")" "bad.conf:2: socket-group: no group" "unknown group located"
printf 'socket-group = 0\n' >"$T/root.conf"
rc=0
"$VTPMD" -n --config "$T/root.conf" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status for gid 0"
printf 'socket-group = %s\n' "$GROUP" >"$T/svc.conf"
assert_contains "$("$VTPMD" -n --config "$T/svc.conf")" "configuration OK" "a group by name"
printf 'socket-group = %s\n' "$GID" >"$T/gid.conf"
assert_contains "$("$VTPMD" -n --config "$T/gid.conf")" "configuration OK" "a numeric gid"

note "the service: a sandboxed worker's sockets belong to root and $GROUP, 0660"
start_host_tpm "$T/host"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create vm-a >/dev/null
info=$("$VTPMCTL" info vm-a --json)
ctrl=$(jfield "$info" .socket)
data=$T/svc/run/vm-a.sock
pid=$(jfield "$info" .pid)
[ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" -ne 0 ] || fail "the worker runs as root"
assert_eq "$(stat -c '%a' "$T/svc/run")" 711 "run directory searchable by QEMU's user"
expect_shared "$ctrl"
expect_shared "$data"
expect_clients "$data" "$ctrl"

note "a restarted worker shares its new sockets too"
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" start vm-a >/dev/null
expect_shared "$ctrl"
expect_shared "$data"
expect_clients "$data" "$ctrl"

note "an adopted worker keeps them (vtpmd SIGKILLed and started again)"
pid=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
kill_hard "$VTPMD_PID"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)" "$pid" "worker adopted"
expect_shared "$ctrl"
expect_clients "$data" "$ctrl"
echo ok
