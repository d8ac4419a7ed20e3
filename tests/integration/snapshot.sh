#!/bin/bash
# Snapshots are explicit (issue #12 item 4; docs/state.md, "Operator snapshots and reverts"):
# going back to older state is a rollback, refused unless the operator
# authorised it, once, and every revert is recorded. A guest's NV counter
# is incremented; the instance's files are copied (a VM's storage snapshot)
# and the counter incremented twice more; the copy put back is refused;
# after `vtpmctl allow-revert` it starts once, with the counter back, the
# revert shown by info and logged, the state stored beyond every generation
# recorded; the same copy put back again is refused (the authorisation is
# spent). Then vtpmd's own snapshots: taken while running, listed, refused
# for a running instance, restored to a stopped one (its state kept as a
# snapshot first), an altered snapshot refused. QEMU's loadvm of an older
# blob (SET_STATEBLOB): refused, then taken once after allow-revert, and
# recorded. Bad input gets clear errors.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_nvincrement tpm2_nvread tpm2_startup swtpm_ioctl jq od

SVC=$T/svc/state
NV=0x1500040
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; }
opt_of() { "$VTPMCTL" info "$1" --json | jq -r "$2"; } # null when absent
nv_inc() { TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvincrement -C o "$NV" || fail "nvincrement"; }
nv_count() { # NAME: the counter's value, as a number
	local hex
	hex=$(TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvread -C o "$NV" -s 8 | od -An -tx1 | tr -d ' \n')
	echo $((16#$hex))
}
gen_of() { # FILE: the generation in a state file's header
	echo $((16#$(od -An -tx1 -j16 -N8 "$1" | tr -d ' \n')))
}
vtpmd() { start_vtpmd svc --root-tcti "$HOST_TCTI"; }
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
# rejected WHAT CMD...: vtpmctl CMD fails, and what it says holds WHAT
rejected() {
	local what=$1
	shift
	if "$VTPMCTL" "$@" >"$T/out" 2>&1; then fail "vtpmctl $* succeeded: $(cat "$T/out")"; fi
	assert_contains "$(cat "$T/out")" "$what" "vtpmctl $*"
}
put_back() { # NAME DIR: the instance's state directory replaced by DIR
	rm -rf "$SVC/instances/$1/state"
	cp -a "$2" "$SVC/instances/$1/state"
}

start_host_tpm "$T/host"
vtpmd
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
TPM2TOOLS_TCTI=$(tcti_of vm-a) tpm2_nvdefine "$NV" -s 8 -a "ownerread|ownerwrite|nt=counter" \
	>/dev/null || fail "nvdefine"
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 1 "the guest's counter"

note "a VM's storage snapshot put back without authorisation: refused"
"$VTPMCTL" stop vm-a >/dev/null
cp -a "$SVC/instances/vm-a/state" "$T/snap-a"
old=$(gen_of "$T/snap-a/permanent.state")
"$VTPMCTL" start vm-a >/dev/null
nv_inc vm-a
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 3 "the guest's counter"
"$VTPMCTL" stop vm-a >/dev/null
new=$(gen_of "$SVC/instances/vm-a/state/permanent.state")
cp -a "$SVC/instances/vm-a/state" "$T/pre-a"
put_back vm-a "$T/snap-a"
refused vm-a "generation $old, older than generation $new"

note "bad input: clear errors, nothing authorised"
rejected "not older than generation $new" allow-revert vm-a --generation "$new"
rejected "not older than generation $new" allow-revert vm-a --generation $((new + 5))
rejected "a number from 1" allow-revert vm-a --generation 0
rejected "a number from 1" allow-revert vm-a --generation two
rejected "which generation" allow-revert vm-a
rejected "no such instance" allow-revert vm-x --generation 1
rejected "no such instance" snapshots vm-x
[ "$(opt_of vm-a .revert)" = null ] || fail "a revert authorised by bad input"
refused vm-a "generation $old, older than generation $new"

note "authorised once: it starts, with the counter back, recorded"
"$VTPMCTL" allow-revert vm-a --generation "$old" >"$T/out" || fail "allow-revert: $(cat "$T/out")"
assert_eq "$(field_of vm-a .revert.allowed)" "$old" "the authorisation in info"
assert_contains "$(cat "$T/svc.log")" "notice: vm-a: revert authorised by uid 0" "the log"
note "with a revert authorised, deleted state files are still refused (never a blank TPM)"
rm -rf "$SVC/instances/vm-a/state"
refused vm-a "generation 0, older than generation $new"
put_back vm-a "$T/snap-a"
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || fail "the authorised revert: $(cat "$T/out")"
assert_eq "$(nv_count vm-a)" 1 "the guest's counter after the revert"
assert_eq "$(field_of vm-a .revert.last.from)" "$new" "the revert's from"
assert_eq "$(field_of vm-a .revert.last.to)" "$old" "the revert's to"
assert_eq "$(field_of vm-a .revert.last.generation)" $((new + 1)) "the revert's new generation"
assert_eq "$(field_of vm-a .revert.last.how)" allow-revert "how"
[ "$(opt_of vm-a .revert.allowed)" = null ] || fail "the authorisation is not spent"
assert_contains "$("$VTPMCTL" info vm-a)" "reverted:   from generation $new to $old" "info"
assert_contains "$(cat "$T/svc.log")" \
	"notice: vm-a: REVERTED from generation $new of its TPM state to generation $old" "the log"
"$VTPMCTL" stop vm-a >/dev/null
cur=$(gen_of "$SVC/instances/vm-a/state/permanent.state")
[ "$cur" -gt "$new" ] || fail "the reverted state is generation $cur, not beyond $new"
cp -a "$SVC/instances/vm-a/state" "$T/latest-a"

note "the authorisation is not reusable: the same snapshot put back again is refused"
put_back vm-a "$T/snap-a"
refused vm-a "generation $old, older than generation $cur"
note "nor is the state the revert replaced"
put_back vm-a "$T/pre-a"
refused vm-a "generation $new, older than generation $cur"
restart_vtpmd
assert_eq "$(field_of vm-a .revert.last.to)" "$old" "the record after a restart of vtpmd"
put_back vm-a "$T/latest-a"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a with its latest state"
assert_eq "$(nv_count vm-a)" 1 "the guest's counter"

note "vtpmd's snapshots: taken while running, listed"
"$VTPMCTL" snapshots vm-a >"$T/out" || fail "snapshots"
assert_contains "$(cat "$T/out")" "no snapshots" "an empty list"
"$VTPMCTL" snapshot vm-a --label "before the upgrade" >"$T/out" || fail "snapshot: $(cat "$T/out")"
snap=$(gen_of "$SVC/instances/vm-a/state/permanent.state")
assert_contains "$(cat "$T/out")" "snapshot of generation $snap taken" "snapshot"
rejected "has a snapshot already" snapshot vm-a
rejected "printable" snapshot vm-a --label "$(printf 'two\nlines')"
nv_inc vm-a
nv_inc vm-a
assert_eq "$(nv_count vm-a)" 3 "the guest's counter"
"$VTPMCTL" snapshots vm-a >"$T/out" || fail "snapshots"
assert_contains "$(cat "$T/out")" "before the upgrade" "the list"
assert_eq "$("$VTPMCTL" snapshots vm-a --json | jq -r '.snapshots[0].generation')" "$snap" \
	"the list"

note "restore: refused while running, for an unknown generation, without --yes"
rejected "runs" restore vm-a --generation "$snap" --yes
"$VTPMCTL" stop vm-a >/dev/null
rejected "no snapshot of generation 999" restore vm-a --generation 999 --yes
rejected "confirm with --yes" restore vm-a --generation "$snap" </dev/null
rejected "no such instance" restore vm-x --generation 1 --yes
[ "$(opt_of vm-a .revert.allowed)" = null ] || fail "a revert authorised by a refused restore"

note "an altered snapshot is refused"
cp "$SVC/instances/vm-a/snapshots/$snap.state" "$T/snap.keep"
flip_byte "$SVC/instances/vm-a/snapshots/$snap.state" 100
rejected "not the state its record names" restore vm-a --generation "$snap" --yes
cp "$T/snap.keep" "$SVC/instances/vm-a/snapshots/$snap.state"

note "restore of a stopped instance: its state kept, the snapshot back, recorded"
before=$(gen_of "$SVC/instances/vm-a/state/permanent.state")
"$VTPMCTL" restore vm-a --generation "$snap" --yes >"$T/out" || fail "restore: $(cat "$T/out")"
"$VTPMCTL" snapshots vm-a --json >"$T/list"
assert_eq "$(jq -r ".snapshots[] | select(.generation == $before) | .label" "$T/list")" \
	"before the restore of generation $snap" "the state it held, kept"
assert_eq "$(field_of vm-a .revert.allowed)" "$snap" "the restore's authorisation"
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || fail "start after the restore: $(cat "$T/out")"
assert_eq "$(nv_count vm-a)" 1 "the guest's counter after the restore"
assert_eq "$(field_of vm-a .revert.last.how)" restore "how"
assert_eq "$(field_of vm-a .revert.last.from)" "$before" "the restore's from"
assert_eq "$(field_of vm-a .revert.count)" 2 "reverts recorded"

note "an authorisation does not survive vtpmd"
"$VTPMCTL" stop vm-a >/dev/null
cp -a "$SVC/instances/vm-a/state" "$T/latest2-a"
"$VTPMCTL" restore vm-a --generation "$before" --yes >/dev/null || fail "restore $before"
restart_vtpmd
refused vm-a "older than generation"
put_back vm-a "$T/latest2-a"
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a with its latest state"
assert_eq "$(nv_count vm-a)" 1 "the guest's counter"

note "a snapshot deleted; an unknown one refused"
"$VTPMCTL" snapshots vm-a --delete "$snap" >"$T/out" || fail "delete snapshot: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" "snapshot of generation $snap deleted" "delete"
assert_eq "$("$VTPMCTL" snapshots vm-a --json | jq ".snapshots[] | select(.generation == $snap)")" \
	"" "the list after the delete"
[ ! -e "$SVC/instances/vm-a/snapshots/$snap.state" ] || fail "the snapshot's file is left"
rejected "no snapshot of generation $snap" snapshots vm-a --delete "$snap"
rejected "a generation from 1" snapshots vm-a --delete x

note "QEMU's loadvm (SET_STATEBLOB) of an older blob: refused, then once after allow-revert"
ioctl() { swtpm_ioctl "${@:2}" --unix "$T/svc/run/$1.sock.ctrl"; }
blob_gen() { echo $((16#$(od -An -tx1 -j32 -N8 "$1" | tr -d ' \n'))); } # a blob's generation
power_on() { # NAME: INIT after a STOP, then the guest's Startup
	ioctl "$1" -i || fail "INIT of $1"
	TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_startup -c || fail "Startup of $1"
}
# load NAME BLOB: the TPM stopped, BLOB loaded as its permanent state, on again
load() {
	ioctl "$1" --stop || fail "stop of $1"
	ioctl "$1" --load permanent "$2" || return 1
	power_on "$1"
}
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
TPM2TOOLS_TCTI=$(tcti_of vm-b) tpm2_nvdefine "$NV" -s 8 -a "ownerread|ownerwrite|nt=counter" \
	>/dev/null || fail "nvdefine on vm-b"
nv_inc vm-b
ioctl vm-b --save permanent "$T/old.bin" || fail "save of vm-b"
bgen=$(blob_gen "$T/old.bin")
nv_inc vm-b
nv_inc vm-b
if load vm-b "$T/old.bin" 2>/dev/null; then fail "vm-b loaded its older blob"; fi
power_on vm-b
assert_eq "$(nv_count vm-b)" 3 "vm-b's counter after the refused load"
rejected "no such instance" allow-revert vm-x --generation "$bgen"
"$VTPMCTL" allow-revert vm-b --generation "$bgen" >/dev/null || fail "allow-revert vm-b"
ioctl vm-b --stop || fail "stop of vm-b"
rec=$(gen_of "$SVC/instances/vm-b/state/permanent.state")
ioctl vm-b --load permanent "$T/old.bin" || fail "vm-b refused the authorised revert"
power_on vm-b
assert_eq "$(nv_count vm-b)" 1 "vm-b's counter after the authorised revert"
assert_eq "$(field_of vm-b .revert.last.via)" SET_STATEBLOB "the revert's route"
assert_eq "$(field_of vm-b .revert.last.to)" "$bgen" "the revert's to"
assert_eq "$(field_of vm-b .revert.last.from)" "$rec" "the revert's from"
[ "$(opt_of vm-b .revert.allowed)" = null ] || fail "vm-b's authorisation is not spent"
note "not twice"
nv_inc vm-b
if load vm-b "$T/old.bin" 2>/dev/null; then fail "vm-b loaded the older blob twice"; fi
power_on vm-b
assert_eq "$(nv_count vm-b)" 2 "vm-b's counter after the second load"

echo ok
