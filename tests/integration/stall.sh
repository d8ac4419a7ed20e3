#!/bin/bash
# Clients that stall, send partial messages or open many connections block
# neither other instances nor the service (docs/instance.md, docs/api.md):
#   data channel: a partial TPM2_PCR_Extend is dropped after --io-timeout
#   without running (the PCR is unchanged), while another instance and this
#   instance's control channel keep answering, and a client that connected
#   meanwhile is served once the staller is gone;
#   a client silent between commands keeps the channel past the timeout;
#   clients that connect while it holds it wait at most the timeout (4 in
#   line), the rest are closed at once;
#   control channel: a partial INIT is dropped after the timeout without
#   running (the TPM needs no new Startup), while the data channel and the
#   other instance answer;
#   the API: 300 stalled connections to vtpmd's socket do not keep
#   `vtpmctl list` from answering at once.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
source "$TOP/tests/hosttpm.sh"
require_tools swtpm_ioctl swtpm

STALL=$TOP/build/stall-client
TIMEOUT_MS=1500
[ -x "$STALL" ] || fail "$STALL is missing (make all)"

# stall_start NAME ARGS...: stall-client ARGS in the background, output in
# $T/NAME.out; waits until its connections are open. Sets STALL_PID.
stall_start() {
	local name=$1 deadline=$((SECONDS + 30))
	shift
	"$STALL" "$@" >"$T/$name.out" 2>&1 &
	STALL_PID=$!
	TEST_PIDS+=("$STALL_PID")
	until grep -q '^connected' "$T/$name.out"; do
		kill -0 "$STALL_PID" 2>/dev/null || fail "stall-client $name: $(cat "$T/$name.out")"
		[ "$SECONDS" -lt "$deadline" ] || fail "stall-client $name did not connect"
		sleep 0.05
	done
}
# stall_result NAME PID: waits for that stall-client to end; sets CLOSED,
# ANSWERED and LAST (ms from "connected" to the peer's last close).
stall_result() {
	local line
	wait "$2" || fail "stall-client $1 failed: $(cat "$T/$1.out")"
	line=$(grep '^closed' "$T/$1.out") || fail "stall-client $1: $(cat "$T/$1.out")"
	read -r _ CLOSED _ ANSWERED _ LAST <<<"$line"
}
# still_stalled NAME PID WHAT: the stalled client is still connected.
still_stalled() {
	kill -0 "$2" 2>/dev/null && ! grep -q '^closed' "$T/$1.out" ||
		fail "$3 took longer than the $TIMEOUT_MS ms timeout; the checks prove nothing"
}

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm b unix --key-fd 3
B_DATA_EP=$DATA_EP B_PID=$INSTANCE_PID
start_tpm a unix --key-fd 3 --io-timeout "$TIMEOUT_MS"
A_TCTI=$TCTI A_PID=$INSTANCE_PID
# answers EP WHAT: TPM2_GetRandom(8) on the data channel at EP succeeds.
getrandom=80010000000c0000017b0008
answers() {
	[[ "$("$TPMSEND" "$1" "$getrandom")" =~ ^800100000014000000000008[0-9a-f]{16}$ ]] ||
		fail "$2: no answer"
}

note "data: a partial PCR_Extend is dropped after ${TIMEOUT_MS} ms; nothing of it ran"
pcr_before=$(pcr_value 16)
# TPM2_PCR_Extend(PCR 16, password session, one sha256 digest): 65 bytes,
# of which the last 8 never come.
extend=$(hexcat 8002 00000041 00000182 00000010 00000009 40000009 0000 00 0000 00000001 000b \
	"$(random_hex 32)")
stall_start partial --send "${extend:0:$((2 * 57))}" "$DATA_EP"
p=$STALL_PID
answers "$B_DATA_EP" "b during a stalled data channel"
assert_contains "$(swtpm_ioctl -c "${IOCTL[@]}")" "ptm capability" "a's control channel meanwhile"
still_stalled partial "$p" "answering on b and a's control channel"
# This client waits in line while the staller holds the channel, and is
# served once the staller is dropped.
[[ "$(tpm2_getrandom 8 --hex)" =~ ^[0-9a-f]{16}$ ]] || fail "a client waiting behind the staller"
stall_result partial "$p"
assert_eq "$CLOSED $ANSWERED" "1 0" "the staller was closed without an answer"
((LAST >= TIMEOUT_MS - 100 && LAST < TIMEOUT_MS + 5000)) ||
	fail "the staller was closed after $LAST ms, expected about $TIMEOUT_MS"
assert_eq "$(pcr_value 16)" "$pcr_before" "PCR 16 after the dropped extend"
assert_contains "$(cat "$T/a.log")" "data channel: request incomplete (57 bytes)" "log line"

note "data: silence between commands is never timed out; others wait at most ${TIMEOUT_MS} ms"
stall_start idle --hold $((3 * TIMEOUT_MS)) "$DATA_EP"
idle=$STALL_PID
stall_start waiting --count 6 --send "$getrandom" --hold 20000 "$DATA_EP"
waiting=$STALL_PID
stall_result waiting "$waiting"
# 4 waited in line for the timeout; 2 more were closed at once.
assert_eq "$CLOSED $ANSWERED" "6 0" "clients behind a silent holder"
((LAST >= TIMEOUT_MS - 100 && LAST < TIMEOUT_MS + 5000)) ||
	fail "waiting clients were closed after $LAST ms, expected about $TIMEOUT_MS"
stall_result idle "$idle"
assert_eq "$CLOSED" 0 "the silent holder was closed"
tpm2_getrandom 8 >/dev/null

note "control: a partial INIT is dropped after ${TIMEOUT_MS} ms; nothing of it ran"
stall_start ctrl --send 000000020000 "$CTRL_EP"
p=$STALL_PID
answers "$B_DATA_EP" "b during a stalled control channel"
answers "$DATA_EP" "a's data channel during a stalled control channel"
still_stalled ctrl "$p" "answering on b and a's data channel"
stall_result ctrl "$p"
assert_eq "$CLOSED $ANSWERED" "1 0" "the control staller was closed without an answer"
((LAST >= TIMEOUT_MS - 100 && LAST < TIMEOUT_MS + 5000)) ||
	fail "the control staller was closed after $LAST ms, expected about $TIMEOUT_MS"
# Had the INIT run, the TPM would need a TPM2_Startup before this.
[[ "$(tpm2_getrandom 8 --hex)" =~ ^[0-9a-f]{16}$ ]] || fail "a after the dropped INIT"
assert_contains "$(swtpm_ioctl -c "${IOCTL[@]}")" "ptm capability" "a's control channel after"
kill -0 "$A_PID" || fail "instance a died"
stop_pid "$A_PID"

note "the API: 300 stalled connections, and vtpmctl list still answers at once"
start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
# Each sends the start of a request (no blank line ending its head).
head=$(printf 'GET /v1/instances HTTP/1.1\r\nHost: vtpmd\r\n' | od -An -tx1 -v | tr -d ' \n')
stall_start api --count 300 --send "$head" --hold 60000 "unix:$VTPMD_SOCKET"
assert_eq "$(head -n 1 "$T/api.out")" "connected 300 failed 0" "300 connections"
start=$(date +%s%N)
timeout 30 "$VTPMCTL" list >"$T/list.out" 2>&1 || fail "vtpmctl list: $(cat "$T/list.out")"
ms=$((($(date +%s%N) - start) / 1000000))
note "vtpmctl list answered in $ms ms"
((ms < 5000)) || fail "vtpmctl list took $ms ms behind 300 stalled connections"
assert_contains "$(cat "$T/list.out")" "no instances" "vtpmctl list"
assert_contains "$(cat "$T/svc.log")" "closing those that stall longest" "log line"
fds=$(find "/proc/$VTPMD_PID/fd" -mindepth 1 | wc -l)
((fds < 100)) || fail "vtpmd holds $fds descriptors"
kill_hard "$STALL_PID"
"$VTPMCTL" list >/dev/null
stop_pid "$VTPMD_PID"
stop_pid "$B_PID"
