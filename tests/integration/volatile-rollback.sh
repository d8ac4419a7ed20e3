#!/bin/bash
# A snapshot of a vTPM (a volatile or permanent blob of GET_STATEBLOB, a
# volatile.state file) loads only while the TPM has run no command since it
# was taken (docs/state.md, "Snapshots"). The attack of #12's review: a
# guest's NV counter with TPMA_NV_ORDERLY keeps its increments in the TPM's
# volatile state (libtpms writes it to NV every 256 increments, or at an
# orderly Shutdown), so they do not move the permanent generation; QEMU
# saved the volatile state, the guest incremented, QEMU stopped the TPM and
# loaded the old blob, and the counter went back (today's main: from 6 to
# 1). Here:
#  1. QEMU's save and restore with no command between works: the counter
#     and the resumed TPM are as saved;
#  2. the old volatile blob after increments: refused, naming both
#     generations; the counter holds;
#  3. root puts back an old volatile.state (swtpm_ioctl -v) after
#     increments: the start is refused, naming both, files untouched; with
#     the file removed it starts and the counter holds;
#  4. a snapshot kept across a stop and start of the worker, or across
#     its SIGKILL, the counter incremented after: refused too (the mark is
#     durable);
#  5. taking snapshots marks the permanent state once (one write); the
#     first command after retires them (one write); other commands, and
#     commands with no snapshot out, write nothing.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd # the sanitizer build when there is one
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools swtpm_ioctl tpm2_nvdefine tpm2_nvincrement tpm2_nvread tpm2_getrandom tpm2_startup \
	jq od cmp

NV=0x1500050
SVC=$T/svc/state
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
ioctl() { swtpm_ioctl "$@" --unix "$T/svc/run/vm-a.sock.ctrl"; }
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvincrement -C o "$NV" || fail "nvincrement"; }
nv_count() {
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
startup() { TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_startup -c || fail "Startup"; }
# wait_log TEXT: polls vtpmd's log (a worker's lines are relayed through
# it) until it holds TEXT, failing after 10 s.
wait_log() {
	local deadline=$((SECONDS + 10))
	until grep -qF -- "$1" "$T/svc.log"; do
		[ "$SECONDS" -lt "$deadline" ] || fail "the log never said: $1"
		sleep 0.05
	done
}
# refused_load KIND FILE: --load of an older blob fails, and the log says why.
refused_load() {
	: >"$T/svc.log"
	if ioctl --load "$1" "$2" 2>"$T/load.err"; then
		ioctl -i >/dev/null 2>&1 || true
		fail "the old $1 blob was taken (counter now $(nv_count))"
	fi
	wait_log "SET_STATEBLOB $1.state: refused: the blob holds generation"
	wait_log "a command changed it since the blob was saved"
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 \
	-a "ownerread|ownerwrite|nt=counter|orderly" >/dev/null || fail "nvdefine (orderly counter)"
nv_inc
assert_eq "$(nv_count)" 1 "the guest's orderly counter"

note "1. QEMU's save and restore, nothing run between: the TPM resumes as saved"
ioctl --save permanent "$T/p1" || fail "--save permanent"
ioctl --save volatile "$T/v1" || fail "--save volatile"
ioctl --stop || fail "--stop"
ioctl --load permanent "$T/p1" || fail "--load permanent of the same save"
ioctl --load volatile "$T/v1" || fail "--load volatile of the same save"
ioctl -i || fail "INIT"
assert_eq "$(nv_count)" 1 "the guest's orderly counter after the restore"

note "2. the old volatile blob after increments: refused, the counter holds"
ioctl --save volatile "$T/old.vol" || fail "--save volatile"
for _ in 1 2 3 4 5; do nv_inc; done
assert_eq "$(nv_count)" 6 "the guest's orderly counter"
ioctl --stop || fail "--stop"
refused_load volatile "$T/old.vol"
refused_load permanent "$T/p1"
ioctl -i || fail "INIT"
startup
assert_eq "$(nv_count)" 6 "the guest's orderly counter after the refused loads"

note "3. root puts back an old volatile.state: the start is refused, naming both"
ioctl -v || fail "STORE_VOLATILE"
cp -a "$SVC/instances/vm-a/state/volatile.state" "$T/old.state"
stamp=$(od -An -tu1 -j16 -N8 "$T/old.state" | awk '{v=0; for (i=1;i<=NF;i++) v=v*256+$i; print v}')
nv_inc
"$VTPMCTL" stop vm-a >/dev/null || fail "stop vm-a"
cp -a "$T/old.state" "$SVC/instances/vm-a/state/volatile.state"
cp -a "$SVC/instances/vm-a/state" "$T/before-start"
if "$VTPMCTL" start vm-a >"$T/out" 2>&1; then
	fail "vm-a started with an old volatile.state (counter $(nv_count))"
fi
assert_contains "$(cat "$T/out") $(cat "$T/svc.log")" \
	"volatile.state: the volatile state of generation $stamp is older than generation" \
	"the refusal"
cmp -s "$T/before-start/volatile.state" "$SVC/instances/vm-a/state/volatile.state" ||
	fail "the refused volatile.state was changed"
cmp -s "$T/before-start/permanent.state" "$SVC/instances/vm-a/state/permanent.state" ||
	fail "the permanent state was changed by the refused start"
rm "$SVC/instances/vm-a/state/volatile.state"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a without the old volatile.state"
assert_eq "$(nv_count)" 7 "the guest's orderly counter after the refused start"

note "4. a blob kept across the worker's stop and start, increments after: refused"
ioctl --save volatile "$T/kept.vol" || fail "--save volatile"
"$VTPMCTL" stop vm-a >/dev/null || fail "stop vm-a"
"$VTPMCTL" start vm-a >/dev/null || fail "start vm-a"
nv_inc
assert_eq "$(nv_count)" 8 "the guest's orderly counter"
ioctl --stop || fail "--stop"
refused_load volatile "$T/kept.vol"
ioctl -i || fail "INIT"
startup
assert_eq "$(nv_count)" 8 "the guest's orderly counter after the refused load"

note "4b. the same across a SIGKILL of the worker (vtpmd restarts it)"
ioctl --save volatile "$T/killed.vol" || fail "--save volatile"
old=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
kill -KILL "$old"
deadline=$((SECONDS + 30))
until pid=$("$VTPMCTL" info vm-a --json | jq -r .pid) && [ "$pid" != "$old" ] &&
	[ "$("$VTPMCTL" info vm-a --json | jq -r .state)" = running ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vtpmd did not restart vm-a's worker"
	sleep 0.05
done
# After an unorderly end, libtpms moves orderly counters ahead (by its
# MAX_ORDERLY_COUNT), so that they never go back; from there, one more.
c=$(nv_count)
[ "$c" -ge 8 ] || fail "the guest's orderly counter went back to $c after the SIGKILL"
nv_inc
ioctl --stop || fail "--stop"
refused_load volatile "$T/killed.vol"
ioctl -i || fail "INIT"
startup
assert_eq "$(nv_count)" $((c + 1)) "the guest's orderly counter after the refused load"

note "5. a snapshot marks the permanent state once; the first command retires it"
# header() FIELD: the permanent state file's generation, or its mark (the
# top bit of bytes 13..15: src/instance/statefile.c).
header() {
	local f=$SVC/instances/vm-a/state/permanent.state
	case $1 in
	gen) od -An -tu1 -j16 -N8 "$f" | awk '{v=0; for (i=1;i<=NF;i++) v=v*256+$i; print v}' ;;
	mark) echo $(($(od -An -tu1 -j13 -N1 "$f") >> 7)) ;;
	esac
}
random() { TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_getrandom 8 >/dev/null || fail "getrandom"; }
random
g=$(header gen)
assert_eq "$(header mark)" 0 "the mark with no snapshot out"
random
random
assert_eq "$(header gen)" "$g" "the generation after commands with no snapshot out"
ioctl --save volatile "$T/v5" || fail "--save volatile"
ioctl --save permanent "$T/p5" || fail "--save permanent"
assert_eq "$(header mark)" 1 "the mark with a snapshot out"
assert_eq "$(header gen)" $((g + 1)) "the generation after two snapshots"
random
assert_eq "$(header mark)" 0 "the mark after a command"
assert_eq "$(header gen)" $((g + 2)) "the generation after the first command"
random
assert_eq "$(header gen)" $((g + 2)) "the generation after the second command"
assert_eq "$(nv_count)" $((c + 1)) "the guest's orderly counter"
echo ok
