#!/bin/bash
# Where a provisioned create spends its time: the set-up of bench/provision.sh
# (an enrolled vtpmd, vtpm-ca over HTTPS), vtpmd at --log-level debug with
# each log line stamped on arrival ($EPOCHREALTIME), one warm-up create, then
# one timed `vtpmctl create NAME --no-start` whose log lines are printed with
# milliseconds since its start: the seal and the worker, the nonce request
# and the evidence, the one request for the vEK set's certificates, the NV
# writes; and the host-TPM commands it took (vtpmctl host's counter). A
# profile for reading, not a ratio. Needs root (vtpmd sandboxes its workers).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VTPMD=$TOP/build/vtpmd
export VTPM_CA=$TOP/build/vtpm-ca
source "$TOP/tests/lib.sh"
source "$TOP/tests/hosttpm.sh"
source "$TOP/bench/enrolled.sh"
[ "$(id -u)" -eq 0 ] || fail "bench/provision-steps.sh needs root (vtpmd sandboxes its workers)"

bench_ca
export VTPMD_SOCKET=$T/svc/run/api.sock
"$VTPMD" --state-dir "$T/svc/state" --run-dir "$T/svc/run" --socket "$VTPMD_SOCKET" \
	--config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI" --log-level debug \
	2> >(while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done \
		>>"$T/svc.log") &
TEST_PIDS+=($!)
deadline=$((SECONDS + 60))
until "$VTPMCTL" host >/dev/null 2>&1; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vtpmd did not answer: $(tail -5 "$T/svc.log")"
	sleep 0.05
done
bench_enrol
"$VTPMCTL" create warm-up --no-start >/dev/null

c0=$(jfield "$("$VTPMCTL" host --json)" .host_tpm_commands)
t0=$EPOCHREALTIME
"$VTPMCTL" create profiled --no-start >/dev/null
t1=$EPOCHREALTIME
c1=$(jfield "$("$VTPMCTL" host --json)" .host_tpm_commands)
# The last lines (the 201) are written as the answer goes: wait for them.
deadline=$((SECONDS + 10))
until grep -q 'POST /v1/instances -> 201' <(awk -v t="$t0" '$1 >= t' "$T/svc.log"); do
	[ "$SECONDS" -lt "$deadline" ] || fail "the create's last log line never came"
	sleep 0.05
done
echo "vtpmctl create profiled --no-start: $(awk -v a="$t0" -v b="$t1" \
	'BEGIN {printf "%.1f", (b - a) * 1000}') ms, $((c1 - c0)) host-TPM commands; ms since its \
start, vtpmd's log:"
awk -v t="$t0" '$1 >= t { ms = ($1 - t) * 1000; $1 = ""; printf "%7.1f%s\n", ms, substr($0, 1, 150) }' \
	"$T/svc.log"
