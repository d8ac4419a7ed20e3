#!/bin/bash
# bench/fresh.sh: what freshness (docs/state.md) costs, through the service:
# - NV_Write round trip of a vTPM under vtpmd (the write, its commit: the
#   manifest and one host-TPM counter increment) against swtpm's, and the
#   same minus vtpmd's mean counter increment (#12's goal: <= 2.5x swtpm);
# - host-TPM counter increments per guest NV write: one guest writing in a
#   loop (goal <= 1), ten guests at once (group commit; goal <= 0.2);
# - the throttled rate of one guest writing NV in a tight loop (nv-write-rate
#   20), and the p99 of small commands of another vTPM meanwhile against
#   its idle p99 (goal <= 1.1x).
# The host TPM is a swtpm simulator on loopback (an increment costs far less
# than on hardware, where it takes milliseconds). Needs root (sandboxed
# workers), tpm2-tools and jq; `make bench` builds the tools.
# FRESH_NV_N (300): timed NV_Writes; FRESH_LOOP_N (200): writes per guest in
# the increment counts.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$TOP/build
VTPMD=$BUILD/vtpmd
VTPMCTL=$BUILD/vtpmctl
TPMSEND=$BUILD/tpmsend
SWTPM=${SWTPM:-swtpm}
N=${FRESH_NV_N:-300}
LOOP=${FRESH_LOOP_N:-200}
for tool in "$VTPMD" "$VTPMCTL" "$TPMSEND" "$BUILD/bench_latency"; do
	[ -x "$tool" ] || { echo "bench: $tool missing; run 'make bench'" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (sandboxed workers)" >&2; exit 1; }

B=$(mktemp -d /tmp/vtpmd-bench.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in /proc/[0-9]*; do
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$B/"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	rm -rf "$B"
}
trap cleanup EXIT
export VTPMD_SOCKET=$B/run/api.sock TSS2_LOG=all+none

# the host TPM, on a free loopback port pair
for _ in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 20000))
	mkdir -p "$B/host"
	"$SWTPM" socket --tpm2 --tpmstate dir="$B/host" \
		--server type=tcp,port=$port,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear 2>>"$B/host.log" &
	PIDS+=($!)
	deadline=$((SECONDS + 10)) up=0
	while [ "$SECONDS" -lt "$deadline" ] && kill -0 "${PIDS[-1]}" 2>/dev/null; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
	done
	[ "$up" = 1 ] && break
done
[ "$up" = 1 ] || { echo "bench: the host swtpm did not start" >&2; exit 1; }
TCTI="swtpm:host=127.0.0.1,port=$port"

start_vtpmd() { # CONFIG
	"$VTPMD" --config "$1" --state-dir "$B/state" --run-dir "$B/run" --socket "$VTPMD_SOCKET" \
		--root-tcti "$TCTI" 2>>"$B/vtpmd.log" &
	VTPMD_PID=$!
	PIDS+=("$VTPMD_PID")
	local deadline=$((SECONDS + 30))
	until "$VTPMCTL" host >/dev/null 2>&1; do
		kill -0 "$VTPMD_PID" 2>/dev/null || { tail "$B/vtpmd.log" >&2; exit 1; }
		[ "$SECONDS" -lt "$deadline" ] || { echo "bench: vtpmd did not answer" >&2; exit 1; }
	done
}
fresh() { "$VTPMCTL" host --json | jq -r ".freshness.$1"; }
NV8_INDEX=01500041
nv8_auth() { printf '%s' 40000001 "$NV8_INDEX" 00000009 40000009 0000 00 0000; }
nv_write_cmd() { printf '%s%s%s0008%016x0000' 8002 0000002b00000137 "$(nv8_auth)" "$1"; }
OK=80020000001300000000000000000000010000
RATE=80010000000a00000920
# writes NAME COUNT: COUNT NV writes in a row on NAME's 8-byte index
writes() {
	local args=() i
	for i in $(seq 1 "$2"); do args+=("$(nv_write_cmd "$i")"); done
	"$TPMSEND" "unix:$B/run/$1.sock" "${args[@]}"
}

echo "nv-write-rate = 0" >"$B/unlimited.conf"
: >"$B/default.conf"
start_vtpmd "$B/unlimited.conf"
"$VTPMCTL" policy approve --current >/dev/null
for i in $(seq 0 10); do "$VTPMCTL" create "vm$i" >/dev/null; done
for i in $(seq 0 10); do
	TPM2TOOLS_TCTI="swtpm:path=$B/run/vm$i.sock" tpm2_nvdefine 0x1500041 -C o -s 8 \
		-a "ownerread|ownerwrite" >/dev/null
done
echo "vtpmd freshness bench: 11 vTPMs under $VTPMD; host TPM: swtpm on loopback"

# 1. NV_Write round trip, side by side with swtpm
c0=$(fresh commits) i0=$(fresh increment_us)
S="swtpm=$SWTPM socket --tpm2 --tpmstate dir=@DIR@/state --server type=unixio,path=@DIR@/data"
S="$S --ctrl type=unixio,path=@DIR@/ctrl --flags not-need-init,startup-clear"
S="$S --key fd=3,mode=aes-256-cbc,format=binary"
head -c 32 /dev/urandom >"$B/key"
mkdir "$B/lat"
"$BUILD/bench_latency" -n 200 -m 10 -v "$N" -k "$B/key" -b "$B/lat" \
	-s "vtpmd=unix:$B/run/vm10.sock" -s "$S" >"$B/lat.out" 2>/dev/null
c1=$(fresh commits) i1=$(fresh increment_us)
v=$(awk '$2 == "nv_write.median" && $4 == "vtpmd" { print $5 }' "$B/lat.out")
s=$(awk '$2 == "nv_write.median" && $4 == "swtpm" { print $5 }' "$B/lat.out")
inc=$(awk -v d=$((i1 - i0)) -v n=$((c1 - c0)) 'BEGIN { printf "%.1f", n ? d / n : 0 }')
awk -v v="$v" -v s="$s" -v inc="$inc" 'BEGIN {
	printf "NV_Write median: vtpmd %.0f us (one counter increment %.0f us, the rest %.0f us); " \
	    "swtpm %.0f us\n", v, inc, v - inc, s
	printf "  vtpmd minus one increment / swtpm: %.2fx (goal <= 2.50); whole: %.2fx\n",
	    (v - inc) / s, v / s }'

# 2. counter increments per guest NV write
c0=$(fresh commits)
[ "$(writes vm0 "$LOOP" | grep -c "^$OK\$")" -eq "$LOOP" ] || { echo "bench: a write failed" >&2; exit 1; }
c1=$(fresh commits)
awk -v n="$LOOP" -v c=$((c1 - c0)) 'BEGIN { printf "one guest, %d NV writes in a loop: %d " \
	"increments, %.2f per write (goal <= 1)\n", n, c, c / n }'
c0=$(fresh commits)
writers=()
for i in $(seq 0 9); do
	writes "vm$i" "$LOOP" >"$B/w$i" &
	writers+=($!)
done
wait "${writers[@]}"
c1=$(fresh commits)
for i in $(seq 0 9); do
	[ "$(grep -c "^$OK\$" "$B/w$i")" -eq "$LOOP" ] || { echo "bench: a write failed" >&2; exit 1; }
done
awk -v n=$((LOOP * 10)) -v c=$((c1 - c0)) 'BEGIN { printf "ten guests at once, %d NV writes: " \
	"%d increments, %.2f per write (goal <= 0.2)\n", n, c, c / n }'

# 3. throttling: vm0 restarted under the default nv-write-rate (20 a second)
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
start_vtpmd "$B/default.conf"
"$VTPMCTL" restart vm0 >/dev/null
mkdir "$B/idle" "$B/busy"
"$BUILD/bench_latency" -n 1000 -m 10 -v 10 -b "$B/idle" -s "vtpmd=unix:$B/run/vm1.sock" \
	>"$B/idle.out" 2>/dev/null
t0=$(date +%s%N)
writes vm0 1000 >"$B/loop" &
loop=$!
"$BUILD/bench_latency" -n 1000 -m 10 -v 10 -b "$B/busy" -s "vtpmd=unix:$B/run/vm1.sock" \
	>"$B/busy.out" 2>/dev/null
wait "$loop"
t1=$(date +%s%N)
ok=$(grep -c "^$OK\$" "$B/loop" || true)
rated=$(grep -c "^$RATE\$" "$B/loop" || true)
awk -v ok="$ok" -v r="$rated" -v ns=$((t1 - t0)) 'BEGIN { printf "one guest, 1000 NV writes " \
	"in a tight loop: %d served, %d answered TPM_RC_NV_RATE, in %.1f s: %.1f served a second " \
	"(a burst of 100, then 20 a second)\n", ok, r, ns / 1e9, ok / (ns / 1e9) }'
for m in getrandom pcr_read; do
	a=$(awk -v m="$m.p99" '$2 == m { print $5 }' "$B/idle.out")
	b=$(awk -v m="$m.p99" '$2 == m { print $5 }' "$B/busy.out")
	awk -v m="$m" -v a="$a" -v b="$b" 'BEGIN { printf "  another vTPM'"'"'s %s p99: idle %.0f us, " \
		"during the loop %.0f us: %.2fx (goal <= 1.10)\n", m, a, b, b / a }'
done
