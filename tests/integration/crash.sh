#!/bin/bash
# Crash safety: an instance is killed with SIGKILL at random moments in a
# stream of TPM2_NV_Write commands (each a new counter value), many times
# over. Every restart must find a readable state (the instance starts; no
# temporary file is left behind) whose NV index holds the value of the last
# write that was acknowledged, or of the one in flight at the kill; never an
# older one. (The instance announces readiness before Startup's own state
# write, so leftovers are looked for once it has answered a command.)
source "$(dirname "$0")/../lib.sh"
require_tools tpm2_nvdefine

CYCLES=${CRASH_CYCLES:-120}
BATCH=30
KEYFILE=$T/key
new_key "$KEYFILE"

NV8_INDEX=01500016

start_tpm crash unix --key-fd 3
tpm2_nvdefine 0x1500016 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 0)")" "$WRITE_OK" "first NV write"
last=0 writes=0 in_flight_kept=0

for cycle in $(seq 1 "$CYCLES"); do
	args=()
	for i in $(seq 1 "$BATCH"); do
		args+=("$(nv_write_cmd $((last + i)))")
	done
	"$TPMSEND" "$DATA_EP" "${args[@]}" >"$T/acks" 2>/dev/null &
	writer=$!
	# Kill after a random number of acknowledgements, at whatever point of
	# the next write the instance is then.
	target=$((RANDOM % BATCH))
	while [ "$(wc -l <"$T/acks")" -lt "$target" ] && kill -0 "$writer" 2>/dev/null; do :; done
	kill_hard "$INSTANCE_PID"
	wait "$writer" 2>/dev/null || true
	acked=$(grep -c "^$WRITE_OK\$" "$T/acks" || true)
	[ "$acked" -eq "$(wc -l <"$T/acks")" ] || fail "cycle $cycle: a write failed: $(cat "$T/acks")"
	writes=$((writes + acked))

	start_tpm crash unix --key-fd 3
	v=$(nv_value)
	# Once it answers, the restarted instance has written what Startup
	# changed: a temporary file now would be one the crash left.
	leftover=$(find "$T/crash" -name '*.tmp')
	[ -z "$leftover" ] || fail "cycle $cycle: temporary file left after the restart: $leftover"
	if [ "$v" -eq $((last + acked + 1)) ] && [ "$acked" -lt "$BATCH" ]; then
		in_flight_kept=$((in_flight_kept + 1))
	elif [ "$v" -ne $((last + acked)) ]; then
		fail "cycle $cycle: NV holds $v after $acked acknowledged writes from $last"
	fi
	last=$v
done
note "$CYCLES kills, $writes acknowledged writes; the write in flight was kept $in_flight_kept times"
stop_pid "$INSTANCE_PID"
