#!/bin/bash
# Each VM reaches only its own vTPM. Two VMs' QEMU processes run as two
# users (made for the test, removed at exit); vtpmd runs with a
# socket-group that both belong to, as it would for libvirt. Without an
# owner, an instance's sockets are the group's: one VM's QEMU reaches the
# other's vTPM (what socket-group gives, and why owners exist). With
# `vtpmctl create NAME --owner USER[:GROUP]`, each instance's sockets are
# its owner's only (0600, or 0660 with the owner's own group): each QEMU
# user reaches its own vTPM, not the other's, across a restart of the
# worker and an adoption by a new vtpmd. Bad owners are refused.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (useradd, sandboxed workers)"
require_tools useradd userdel groupadd groupdel setpriv stat

SHARED=vtpmd-ow-$$
USER_A=vtpmd-qa-$$
USER_B=vtpmd-qb-$$
groupadd "$SHARED" || fail "groupadd $SHARED"
trap 'test_cleanup; userdel "$USER_A" 2>/dev/null; userdel "$USER_B" 2>/dev/null;
	groupdel "$SHARED" 2>/dev/null || true' EXIT
useradd --system --no-create-home --user-group -G "$SHARED" "$USER_A" || fail "useradd $USER_A"
useradd --system --no-create-home --user-group -G "$SHARED" "$USER_B" || fail "useradd $USER_B"
GETRANDOM=80010000000c0000017b0010
RANDOM_OK='^80010000001c000000000010[0-9a-f]{32}$'
chmod 0711 "$T"
install -m 0755 "$TPMSEND" "$T/tpmsend"

# as USER CMD...: runs CMD as USER with its groups (as QEMU under libvirt).
as() {
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$user" --init-groups "$@"
}

# reaches USER NAME: USER gets TPM answers on NAME's data and control sockets.
reaches() {
	local rsp
	rsp=$(as "$1" "$T/tpmsend" "unix:$T/svc/run/$2.sock" "$GETRANDOM" 2>&1) ||
		fail "$1 got no answer from $2: $rsp"
	[[ "$rsp" =~ $RANDOM_OK ]] || fail "GetRandom on $2 answered $rsp"
	rsp=$(as "$1" "$T/tpmsend" --raw --wait 200 "unix:$T/svc/run/$2.sock.ctrl" 00000001 2>&1) ||
		fail "$1 got no answer on $2's control socket: $rsp"
}

# kept_out USER NAME: USER is refused on both of NAME's sockets.
kept_out() {
	for sock in "$T/svc/run/$2.sock" "$T/svc/run/$2.sock.ctrl"; do
		if as "$1" "$T/tpmsend" "unix:$sock" "$GETRANDOM" >"$T/out" 2>&1; then
			fail "$1 reached $sock: $(cat "$T/out")"
		fi
		assert_contains "$(cat "$T/out")" "Permission denied" "$1 refused on $sock"
	done
}

start_host_tpm "$T/host"
mkdir -p "$T/svc"
printf 'socket-group = %s\n' "$SHARED" >"$T/svc/vtpmd.conf"
start_vtpmd svc --root-tcti "$HOST_TCTI" --config "$T/svc/vtpmd.conf"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"

note "without an owner, socket-group lets one VM's QEMU into another's vTPM"
"$VTPMCTL" create shared >/dev/null || fail "create shared"
reaches "$USER_A" shared
reaches "$USER_B" shared
"$VTPMCTL" delete shared --force >/dev/null

note "with owners, each QEMU user reaches its own vTPM only"
"$VTPMCTL" create vm-a --owner "$USER_A" >/dev/null || fail "create vm-a --owner"
"$VTPMCTL" create vm-b --owner "$USER_B:$USER_B" >/dev/null || fail "create vm-b --owner"
uid_a=$(id -u "$USER_A")
uid_b=$(id -u "$USER_B")
gid_b=$(id -g "$USER_B")
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .owner)" "$uid_a" "vm-a's owner"
assert_eq "$(jfield "$("$VTPMCTL" info vm-b --json)" .owner)" "$uid_b:$gid_b" "vm-b's owner"
assert_contains "$("$VTPMCTL" info vm-a)" "owner:      $uid_a" "vtpmctl info names the owner"
assert_eq "$(stat -c '%u %a' "$T/svc/run/vm-a.sock")" "$uid_a 600" "vm-a's socket"
assert_eq "$(stat -c '%u %g %a' "$T/svc/run/vm-b.sock.ctrl")" "$uid_b $gid_b 660" \
	"vm-b's control socket"
check_apart() {
	reaches "$USER_A" vm-a
	reaches "$USER_B" vm-b
	kept_out "$USER_A" vm-b
	kept_out "$USER_B" vm-a
}
check_apart

note "... after a restart of the worker"
"$VTPMCTL" restart vm-a >/dev/null || fail "restart vm-a"
check_apart

note "... and in a new vtpmd, which adopts the workers and keeps the owners"
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
start_vtpmd svc --root-tcti "$HOST_TCTI" --config "$T/svc/vtpmd.conf"
assert_eq "$(jfield "$("$VTPMCTL" info vm-b --json)" .owner)" "$uid_b:$gid_b" "vm-b's owner kept"
"$VTPMCTL" stop vm-b >/dev/null
"$VTPMCTL" start vm-b >/dev/null || fail "start vm-b in the new vtpmd"
check_apart

note "bad owners are refused, and nothing is made"
for bad in "0" "1:0" "x1" "1:" ":1" "-5" "4294967295" "12345678901"; do
	code=$(curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$VTPMD_SOCKET" \
		-X POST -d "{\"name\": \"bad\", \"owner\": \"$bad\"}" http://vtpmd/v1/instances)
	assert_eq "$code" 400 "owner '$bad'"
	assert_contains "$(jq -r .error "$T/api.out")" "owner must be" "owner '$bad': the reason"
done
[ ! -e "$T/svc/state/instances/bad" ] || fail "a refused create left an instance"
if "$VTPMCTL" create bad --owner no-such-user-$$ >"$T/out" 2>&1; then
	fail "an unknown user was accepted"
fi
assert_contains "$(cat "$T/out")" "no such user" "vtpmctl names the unknown user"
"$VTPMCTL" delete vm-a --force >/dev/null
"$VTPMCTL" delete vm-b --force >/dev/null
echo ok
