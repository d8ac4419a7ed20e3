#!/bin/bash
# A vTPM exists once: an instance directory copied under another name (a
# fork: the same UUID, sealed key, EK and EK certificate) does not start.
# Tried: vm-a's directory copied while it runs, as vm-a2, and vtpmd started
# again (before, both ran and their NV counters diverged); a copy made
# while both are stopped and named to sort first. The refusal names the
# original and the ways out; both ways out work: `vtpmctl renew` (a new
# vTPM of its own under the copy's name: new UUID, EK, empty NV; the
# original untouched) and deleting the original (the copy stands alone).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools tpm2_nvdefine tpm2_createek jq

INST=$T/svc/state/instances
NV=0x1500030
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; }
nv_write() { # NAME VALUE
	TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvdefine "$NV" -s 8 -a "ownerread|ownerwrite" \
		>/dev/null 2>&1 || true
	printf '%-8s' "$2" | TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvwrite -C o "$NV" -i - ||
		fail "nvwrite on $1"
}
nv_read() { TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvread -C o "$NV" -s 8 2>/dev/null; }
ek_of() { # NAME OUT: the RSA EK's public area, as the TCG template makes it
	TPM2TOOLS_TCTI=$(tcti_of "$1") flushed tpm2_createek -c "$T/ek.ctx" -G rsa -u "$2" -Q ||
		fail "createek on $1"
}
# copy_instance FROM TO: FROM's directory copied as TO, its record renamed,
# as a backup restored under another name would be.
copy_instance() {
	cp -a "$INST/$1" "$INST/$2"
	jq --arg n "$2" '.name = $n' "$INST/$1/instance.json" >"$INST/$2/instance.json"
}
restart_vtpmd() {
	kill "$VTPMD_PID"
	wait "$VTPMD_PID" 2>/dev/null || true
	start_vtpmd svc --root-tcti "$HOST_TCTI"
}
# refused_copy NAME ORIGINAL: NAME does not run, and a start is refused
# with 409, naming ORIGINAL and both ways out.
refused_copy() {
	local code
	assert_eq "$(field_of "$1" .copy_of)" "$2" "$1 is a copy of $2"
	[ "$(field_of "$1" .state)" != running ] || fail "$1, a copy of $2, runs"
	code=$(curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$VTPMD_SOCKET" \
		-X POST "http://vtpmd/v1/instances/$1/start")
	assert_eq "$code" 409 "start of the copy $1"
	assert_contains "$(jq -r .error "$T/api.out")" "$1 is a copy of $2" "the refusal"
	assert_contains "$(jq -r .error "$T/api.out")" "vtpmctl renew $1" "the way out"
	if "$VTPMCTL" start "$1" >"$T/out" 2>&1; then fail "vtpmctl start $1 succeeded"; fi
	assert_contains "$(cat "$T/out")" "vtpmctl delete NAME --force" "vtpmctl's refusal"
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
nv_write vm-a one
ek_of vm-a "$T/ek-a.pub"

note "vm-a copied as vm-a2 while it runs; vtpmd started again: the copy does not start"
copy_instance vm-a vm-a2
restart_vtpmd
assert_eq "$(field_of vm-a .state)" running "vm-a, adopted"
refused_copy vm-a2 vm-a
assert_contains "$(cat "$T/svc.log")" "vm-a2 is a copy of vm-a" "the log"
assert_eq "$(pgrep -fc -- "vtpmd-instance.*--name vm-a2 " || true)" 0 "vm-a2's workers"
assert_contains "$("$VTPMCTL" info vm-a2)" "copy of:    vm-a" "vtpmctl info"

note "the way out: renew the copy; a new vTPM of its own, the original untouched"
uuid_a=$(field_of vm-a .uuid)
"$VTPMCTL" renew vm-a2 >/dev/null || fail "renew vm-a2: $(tail -3 "$T/svc.log")"
[ "$(field_of vm-a2 .uuid)" != "$uuid_a" ] || fail "vm-a2 kept vm-a's UUID"
assert_eq "$(jq -r '.copy_of // "none"' <<<"$("$VTPMCTL" info vm-a2 --json)")" none "vm-a2"
assert_eq "$(field_of vm-a2 .state)" running "vm-a2 renewed (it was to run)"
ek_of vm-a2 "$T/ek-a2.pub"
[ "$(hex_of "$T/ek-a2.pub")" != "$(hex_of "$T/ek-a.pub")" ] || fail "vm-a2 has vm-a's EK"
if nv_read vm-a2 >/dev/null; then fail "vm-a2 kept vm-a's NV index"; fi
assert_eq "$(nv_read vm-a | tr -d ' \0')" one "vm-a's NV"
ek_of vm-a "$T/ek-a-after.pub"
assert_eq "$(hex_of "$T/ek-a-after.pub")" "$(hex_of "$T/ek-a.pub")" "vm-a's EK"
if "$VTPMCTL" renew vm-a >"$T/out" 2>&1; then fail "renew of a running vTPM"; fi
assert_contains "$(cat "$T/out")" "stop it first" "renew of a running vTPM"

note "a copy made while both are stopped, named to sort first: the younger directory is the copy"
"$VTPMCTL" stop vm-a >/dev/null
copy_instance vm-a aaa-copy
restart_vtpmd
refused_copy aaa-copy vm-a
"$VTPMCTL" start vm-a >/dev/null || fail "vm-a, the original, starts"

note "the other way out: delete the original; the copy stands alone and starts"
"$VTPMCTL" delete vm-a --force >/dev/null || fail "delete vm-a"
assert_eq "$(jq -r '.copy_of // "none"' <<<"$("$VTPMCTL" info aaa-copy --json)")" none \
	"aaa-copy after the original's delete"
"$VTPMCTL" start aaa-copy >/dev/null || fail "start aaa-copy alone"
assert_eq "$(nv_read aaa-copy | tr -d ' \0')" one "aaa-copy holds vm-a's NV"
echo ok
