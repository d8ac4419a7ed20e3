#!/bin/bash
# The commit budget bounds a vTPM's host-TPM counter increments whatever
# makes it write (docs/state.md, "Throttling"; the attack review of #12,
# attack-nv-wear.sh): every permanent-state write costs an increment, and
# the throttle used to apply only to the TPM 2.0 commands it listed.
#  1. the guest: TPM2_Shutdown (0x145, not on that list) in a tight loop:
#     beyond the budget (nv-write-rate 2, bursts of 10) it is answered
#     TPM_RC_NV_RATE, and the increments stay within the rate; a PCR_Extend
#     meanwhile is still answered (PCRs are volatile), and so is the
#     Startup of a power cycle later (firmware needs it);
#  2. its QEMU: SET_STATEBLOB of the vTPM's own current permanent blob,
#     again and again: beyond the budget refused with TPM_RETRY (a
#     control-channel error), logged, the state unchanged, the increments
#     within the rate; once the budget refills, a load is taken again and
#     the TPM serves its NV as before.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd # the sanitizer build when there is one
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools jq swtpm_ioctl tpm2_nvdefine

echo "nv-write-rate = 2" >"$T/vtpmd.conf"
start_host_tpm "$T/host"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
commits() { "$VTPMCTL" host --json | jq -r .freshness.commits; }
ioctl() { swtpm_ioctl "$@" --unix "$T/svc/run/vm-a.sock.ctrl"; }
DATA_EP=unix:$T/svc/run/vm-a.sock
export TPM2TOOLS_TCTI=swtpm:path=$T/svc/run/vm-a.sock
NV8_INDEX=01500044
tpm2_nvdefine 0x1500044 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null || fail "nvdefine"
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 7)")" "$WRITE_OK" "NV write"
SHUTDOWN_CLEAR=80010000000c000001450000
NV_RATE=80010000000a00000920
# PCR_Extend(16, sha256, 32 zero bytes) with an empty password session
PCR_EXTEND=$(hexcat 8002 00000041 00000182 00000010 00000009 40000009 0000 00 0000 \
	00000001 000b "$(printf '%064d' 0)")
problems=()

note "1. the guest: 60 TPM2_Shutdown(CLEAR) in a tight loop, then a PCR_Extend"
before=$(commits)
args=()
for _ in $(seq 1 60); do args+=("$SHUTDOWN_CLEAR"); done
args+=("$PCR_EXTEND")
t0=$SECONDS
"$TPMSEND" "$DATA_EP" "${args[@]}" >"$T/answers" || fail "tpmsend"
secs=$((SECONDS - t0 + 1))
after=$(commits)
ok=$(head -60 "$T/answers" | grep -c '^80010000000a00000000$' || true)
rated=$(head -60 "$T/answers" | grep -c "^$NV_RATE\$" || true)
note "   $ok answered success, $rated TPM_RC_NV_RATE in ${secs}s; host counter increments:" \
	"$((after - before))"
limit=$((10 + 2 * secs + 2))
why="60 TPM2_Shutdown cost $((after - before)) host-TPM counter increments in ${secs}s"
[ $((after - before)) -le "$limit" ] || problems+=("$why (at most $limit at nv-write-rate 2)")
[ "$rated" -ge 30 ] ||
	problems+=("only $rated of 60 TPM2_Shutdown beyond the budget were answered TPM_RC_NV_RATE")
[ $((ok + rated)) -eq 60 ] || problems+=("TPM2_Shutdown answers: $(sort "$T/answers" | uniq -c)")
pcr=$(tail -1 "$T/answers")
[ "${pcr:12:8}" = 00000000 ] ||
	problems+=("a PCR_Extend while the budget was empty was answered $pcr, not success")
assert_contains "$(cat "$T/svc.log")" "answered TPM_RC_NV_RATE" "the log names the throttle"

note "2. its QEMU: SET_STATEBLOB of its own current permanent blob, 30 times"
ioctl --save permanent "$T/perm.blob" || fail "--save permanent"
ioctl --stop || fail "--stop"
before=$(commits)
t0=$SECONDS
loaded=0 refused=0
for _ in $(seq 1 30); do
	if ioctl --load permanent "$T/perm.blob" >"$T/load.out" 2>&1; then
		loaded=$((loaded + 1))
	else
		refused=$((refused + 1))
		# TPM_RETRY (0x800): the control channel's "try again later"
		grep -q "0x800" "$T/load.out" ||
			problems+=("a SET_STATEBLOB beyond the budget failed otherwise: $(cat "$T/load.out")")
	fi
done
secs=$((SECONDS - t0 + 1))
after=$(commits)
note "   $loaded of 30 loads taken, $refused refused, in ${secs}s; host counter increments:" \
	"$((after - before))"
limit=$((10 + 2 * secs + 2))
why="30 SET_STATEBLOB of one blob cost $((after - before)) host-TPM counter increments"
[ $((after - before)) -le "$limit" ] ||
	problems+=("$why in ${secs}s (at most $limit at nv-write-rate 2)")
[ "$refused" -gt 0 ] || problems+=("no SET_STATEBLOB was refused beyond the budget")
assert_contains "$(cat "$T/svc.log")" "SET_STATEBLOB permanent.state: refused for now" \
	"the log names the refusal"

note "   the budget refills: a load is taken again, and the TPM serves its NV"
deadline=$((SECONDS + 10))
until ioctl --load permanent "$T/perm.blob" >/dev/null 2>&1; do
	[ "$SECONDS" -lt "$deadline" ] || fail "SET_STATEBLOB still refused after 10 s"
	sleep 0.2
done
ioctl -i || fail "INIT after the loads"
# Startup, which firmware needs, is never refused for the budget
assert_eq "$("$TPMSEND" "$DATA_EP" 80010000000c000001440000)" 80010000000a00000000 \
	"Startup after the loads"
assert_eq "$(nv_value)" 7 "the NV index after the loads"

[ "${#problems[@]}" -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"
echo ok
