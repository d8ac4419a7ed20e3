#!/bin/bash
# The worker sandbox (src/instance/sandbox.c). First the probe: like a worker, it
# opens its state directory and a listener, enters the real sandbox and
# checks that its own files and listener still work while another
# instance's state (by path and by ../), the host TPM, new sockets,
# connecting to another instance, exec and root are out of reach. Then a
# real `vtpmd instance --sandbox-uid/--sandbox-gid` (release and sanitizer
# builds) serves tpm2-tools with the filter active, keeps its NV across a
# restart, reads its state only once confined, and refuses to start on a
# state directory it could not write.
source "$(dirname "$0")/../lib.sh"
PROBE=$TOP/build/sandbox-probe
RELEASE_VTPMD=${RELEASE_VTPMD:-$TOP/build/vtpmd}
SB_UID=40001
SB_GID=40001

[ "$(id -u)" -eq 0 ] || fail "must run as root (CI does): the sandbox needs chroot and setuid"
export TSS2_LOG=all+none

# The sandbox, not file permissions, must be what stops the probe: every
# target below is reachable by uid $SB_UID without it (the probe checks
# that first, as "pre-" lines).
chmod 755 "$T"

note "another instance, whose state and socket the probe must not reach"
mkdir "$T/other"
start_instance other --state "$T/other" --data "unix:$T/other.sock" \
	--ctrl "unix:$T/other.sock.ctrl" --plaintext-state --startup clear
OTHER_PID=$INSTANCE_PID
[ -f "$T/other/permanent.state" ] || fail "the other instance wrote no state"
chmod 755 "$T/other"
chmod 644 "$T/other/permanent.state"
chmod 666 "$T/other.sock.ctrl"

note "stand-ins for the host TPM, openable by anyone outside the sandbox"
mkdir "$T/dev"
: >"$T/dev/tpmrm0"
: >"$T/dev/tpm0"
chmod 666 "$T/dev/tpmrm0" "$T/dev/tpm0"

note "the probe enters the sandbox"
mkdir "$T/own"
chown "$SB_UID:$SB_GID" "$T/own"
rc=0
"$PROBE" "$SB_UID" "$SB_GID" "$T/own" "$T/own.sock" "$T/other/permanent.state" \
	"$T/other.sock.ctrl" "$T/dev/tpmrm0" "$T/dev/tpm0" >"$T/probe.out" 2>"$T/probe.err" || rc=$?
cat "$T/probe.out"
[ "$rc" -eq 0 ] ||
	fail "sandbox-probe exited with $rc: $(grep FAIL "$T/probe.out"; cat "$T/probe.err")"
for c in pre-other-state-absolute pre-other-state-dotdot "pre-open $T/dev/tpmrm0" \
	pre-connect-other-socket refuses-uid-0 refuses-outside-directory kill-exec-memory \
	kill-unlisted-syscall sandbox-enter own-dir-write own-dir-read own-file-owner \
	accept-own-listener other-state-absolute other-state-dotdot "open $T/dev/tpmrm0" \
	"open $T/dev/tpm0" "open /dev/tpmrm0" "open /dev/tpm0" socket-unix socket-inet \
	connect-other-socket execve execveat-preopened setuid-0; do
	grep -q "^ok $c\( (.*)\)\?\$" "$T/probe.out" || fail "probe check missing or failed: $c"
done
assert_eq "$(tail -n1 "$T/probe.out")" "0 failed" "probe summary"
assert_eq "$(ls "$T/own")" "" "what the probe left in its directory"
stop_pid "$OTHER_PID"

# status_field PID NAME: one field of /proc/PID/status, whitespace squeezed.
status_field() {
	sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr -s '[:space:]' ' ' | sed 's/ $//'
}

# serve BUILD: a sandboxed instance of that build serves tpm2-tools.
serve() {
	local build=$1 st=$T/st-$1 sock=$T/$1.sock pid
	export TPM2TOOLS_TCTI="swtpm:path=$sock"
	mkdir "$st"
	chown "$SB_UID:$SB_GID" "$st" # what the manager does for its workers
	set -- --state "$st" --data "unix:$sock" --ctrl "unix:$sock.ctrl" --plaintext-state \
		--startup clear --sandbox-uid "$SB_UID" --sandbox-gid "$SB_GID"

	note "$build: a sandboxed instance serves tpm2-tools"
	start_instance "$build" "$@"
	pid=$INSTANCE_PID
	assert_eq "$(status_field "$pid" Seccomp)" 2 "$build: seccomp mode (2: filter)"
	assert_eq "$(status_field "$pid" NoNewPrivs)" 1 "$build: no_new_privs"
	assert_eq "$(status_field "$pid" Uid)" "$SB_UID $SB_UID $SB_UID $SB_UID" "$build: uids"
	assert_eq "$(status_field "$pid" Gid)" "$SB_GID $SB_GID $SB_GID $SB_GID" "$build: gids"
	assert_eq "$(status_field "$pid" Groups)" "" "$build: supplementary groups"
	assert_eq "$(status_field "$pid" CapEff)" 0000000000000000 "$build: capabilities"
	assert_eq "$(readlink "/proc/$pid/root")" "$st" "$build: root directory"
	[ "$(tpm2_getrandom --hex 16 | tr -d '\n' | wc -c)" -eq 32 ] ||
		fail "$build: tpm2_getrandom"
	tpm2_nvdefine 0x1500016 -C o -s 32 -a "ownerread|ownerwrite" >/dev/null ||
		fail "$build: tpm2_nvdefine"
	echo -n "kept across restarts" | tpm2_nvwrite 0x1500016 -C o -i - ||
		fail "$build: tpm2_nvwrite"
	assert_eq "$(tpm2_nvread 0x1500016 -C o -s 20)" "kept across restarts" "$build: nvread"
	stop_pid "$pid"
	assert_eq "$(stat -c %u "$st/permanent.state")" "$SB_UID" "$build: state file owner"
	# Its sockets are out of its reach once sandboxed: the starter removes them.
	[ -S "$sock" ] || fail "$build: socket file already gone"
	[ -S "$sock.ctrl" ] || fail "$build: control socket file already gone"
	rm -f "$sock" "$sock.ctrl"

	note "$build: restarted, the sandboxed instance still has its NV index"
	start_instance "$build" "$@"
	pid=$INSTANCE_PID
	assert_eq "$(status_field "$pid" Seccomp)" 2 "$build: seccomp mode after restart"
	assert_eq "$(tpm2_nvread 0x1500016 -C o -s 20)" "kept across restarts" \
		"$build: nvread after restart"
	stop_pid "$pid"
	rm -f "$sock" "$sock.ctrl"
}

VTPMD=$RELEASE_VTPMD serve release
serve san # lib.sh's $VTPMD: the sanitizer build

note "the state is input too: read only once the sandbox is in force"
# A worker taken over could write a state file that its next start parses
# (it holds the key): the parse must not happen as root, unconfined. A
# state file with one byte changed is refused from inside the sandbox.
cp -a "$T/st-release" "$T/st-tampered"
rm -f "$T/st-tampered/volatile.state"
printf '\xff' | dd of="$T/st-tampered/permanent.state" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0
strace -f -o "$T/order.trace" -e trace=openat,seccomp,setresuid \
	"$RELEASE_VTPMD" instance --state "$T/st-tampered" --data "unix:$T/t.sock" \
	--ctrl "unix:$T/t.sock.ctrl" --plaintext-state --startup clear \
	--sandbox-uid "$SB_UID" --sandbox-gid "$SB_GID" 2>"$T/t.err" || rc=$?
assert_eq "$rc" 3 "exit status for tampered state read in the sandbox"
assert_contains "$(cat "$T/t.err")" "refusing to start" "tampered state message"
filter=$(grep -n 'seccomp(SECCOMP_SET_MODE_FILTER.* = 0$' "$T/order.trace" | head -n1 | cut -d: -f1)
first_read=$(grep -n 'openat(.*"permanent.state", O_RDONLY' "$T/order.trace" | head -n1 | cut -d: -f1)
[ -n "$filter" ] || fail "no seccomp filter installed: $(cat "$T/order.trace")"
[ -n "$first_read" ] || fail "the state was never opened: $(cat "$T/order.trace")"
[ "$first_read" -gt "$filter" ] ||
	fail "permanent.state read (trace line $first_read) before the seccomp filter (line $filter)"
rm -f "$T/t.sock" "$T/t.sock.ctrl"

note "a state directory the sandbox uid cannot write is refused, clearly"
mkdir "$T/rootowned"
rc=0
"$VTPMD" instance --state "$T/rootowned" --data "unix:$T/r.sock" --ctrl "unix:$T/r.sock.ctrl" \
	--plaintext-state --sandbox-uid "$SB_UID" --sandbox-gid "$SB_GID" 2>"$T/r.err" || rc=$?
assert_eq "$rc" 1 "exit status on an unwritable state directory"
assert_contains "$(cat "$T/r.err")" "is not writable by uid $SB_UID" "refusal message"
assert_contains "$(cat "$T/r.err")" "owned by that uid" "refusal hint"

note "bad sandbox options are usage errors"
for args in "--sandbox-uid $SB_UID" "--sandbox-gid $SB_GID" "--sandbox-uid 0 --sandbox-gid 1" \
	"--sandbox-uid x --sandbox-gid 1"; do
	rc=0
	# shellcheck disable=SC2086 # the options are split on purpose
	"$VTPMD" instance --state "$T/u" --ctrl "unix:$T/u.sock" --plaintext-state $args \
		2>/dev/null || rc=$?
	assert_eq "$rc" 2 "exit status for $args"
done

note "no process of this test is left"
if pgrep -f "$T/" >/dev/null; then
	pgrep -af "$T/" >&2
	fail "processes left behind"
fi
