#!/bin/bash
# vtpmd's benchmarks: its worker (vtpmd-instance, what `vtpmd instance`
# runs as) against Debian's `swtpm socket`,
# side by side in one run, over unix sockets, both with encrypted state,
# servers pinned to one CPU and the client to another. Prints each figure,
# the ratio vtpmd/swtpm and the goal. `make bench` builds and runs it.
#
# Environment: VTPMD (default build/vtpmd-instance), SWTPM (default swtpm),
# SERVER_CPU (1), CLIENT_CPU (0), LAT_N (5000), LAT_SIGN_N (1000),
# LAT_NV_N (300), COLD_N (30), MEM_N (50), BLOB_N (200), SHARED_CPU (1: also measure
# latency with client and servers on SERVER_CPU; 0: skip).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VTPMD=${VTPMD:-$TOP/build/vtpmd-instance}
SWTPM=${SWTPM:-$(command -v swtpm || echo swtpm)}
BUILD=${BENCH_BUILD:-$TOP/build}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
LAT_N=${LAT_N:-5000}
LAT_SIGN_N=${LAT_SIGN_N:-1000}
LAT_NV_N=${LAT_NV_N:-300}
COLD_N=${COLD_N:-30}
MEM_N=${MEM_N:-50}
BLOB_N=${BLOB_N:-200}
SHARED_CPU=${SHARED_CPU:-1}

for tool in "$VTPMD" "$BUILD/bench_latency" "$BUILD/bench_coldstart" "$BUILD/bench_memory" \
	"$BUILD/bench_stateblob"; do
	[ -x "$tool" ] || { echo "bench: $tool missing; run 'make bench'" >&2; exit 1; }
done
command -v "$SWTPM" >/dev/null || { echo "bench: $SWTPM not found; run 'make deps'" >&2; exit 1; }
if [ "$(nproc)" -le "$SERVER_CPU" ] || [ "$(nproc)" -le "$CLIENT_CPU" ]; then
	echo "bench: needs CPUs $CLIENT_CPU and $SERVER_CPU (set SERVER_CPU, CLIENT_CPU)" >&2
	exit 1
fi

B=$(mktemp -d /tmp/vtpmd-bench.XXXXXX)

# Every server runs with a command line naming $B, and dies with the
# benchmark program that started it; anything left is reported and ended.
# After a failure, the servers' logs are shown before $B goes.
bench_cleanup() {
	local status=$? p left="" log
	for p in /proc/[0-9]*; do
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$B/"; then
			left="$left ${p#/proc/}"
		fi
	done
	if [ -n "$left" ]; then
		echo "bench: processes left behind:$left; ending them" >&2
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
	fi
	if [ "$status" -ne 0 ]; then
		find "$B" -name log -newer "$B/key" | while read -r log; do
			echo "--- ${log#"$B"/} (last lines)" >&2
			tail -n 5 "$log" >&2
		done
	fi
	rm -rf "$B"
}
trap bench_cleanup EXIT

head -c 32 /dev/urandom >"$B/key"
chmod 600 "$B/key"

# Both servers: data on unix:@DIR@/data, control on unix:@DIR@/ctrl, state
# in @DIR@/state encrypted with the 32-byte key on descriptor 3, powered on
# with TPM2_Startup(CLEAR) at start.
V="vtpmd=$VTPMD --state @DIR@/state --data unix:@DIR@/data --ctrl unix:@DIR@/ctrl"
V="$V --key-fd 3 --startup clear"
# A second vtpmd, run alongside in the latency and cold-start runs: vtpmd
# against itself (A/A) shows how far ratios move with nothing changed.
V2="vtpmd2=${V#vtpmd=}"
S="swtpm=$SWTPM socket --tpm2 --tpmstate dir=@DIR@/state --server type=unixio,path=@DIR@/data"
S="$S --ctrl type=unixio,path=@DIR@/ctrl --flags not-need-init,startup-clear"
S="$S --key fd=3,mode=aes-256-cbc,format=binary"

R=$B/results
: >"$R"

echo "vtpmd bench: $VTPMD vs $($SWTPM --version 2>&1 | head -n 1 | sed 's/,.*//')"
echo "unix sockets; servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU;" \
	"state encrypted (vtpmd AES-256-GCM, swtpm AES-256-CBC)"
echo "state on $(df -T "$B" | awk 'NR == 2 { print $2 " (" $1 ")" }');" \
	"load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine" \
	"shows in p99)"
echo

echo "latency ($LAT_N runs; Sign $LAT_SIGN_N; NV_Write $LAT_NV_N)..."
mkdir "$B/lat"
taskset -c "$CLIENT_CPU" "$BUILD/bench_latency" -n "$LAT_N" -m "$LAT_SIGN_N" -v "$LAT_NV_N" \
	-c "$SERVER_CPU" -k "$B/key" -b "$B/lat" -s "$V" -s "$S" -s "$V2" >>"$R"

if [ "$SHARED_CPU" = 1 ]; then
	echo "latency, client sharing CPU $SERVER_CPU with the servers..."
	mkdir "$B/lat1"
	taskset -c "$SERVER_CPU" "$BUILD/bench_latency" -n "$LAT_N" -m "$LAT_SIGN_N" \
		-v "$LAT_NV_N" -c "$SERVER_CPU" -k "$B/key" -b "$B/lat1" -s "$V" -s "$S" -s "$V2" |
		sed 's/^RESULT /RESULT shared./' >>"$R"
fi

echo "cold start ($COLD_N starts each, alternating)..."
mkdir "$B/cold"
taskset -c "$CLIENT_CPU" "$BUILD/bench_coldstart" -n "$COLD_N" -c "$SERVER_CPU" -k "$B/key" \
	-b "$B/cold" -s "$V" -s "$S" -s "$V2" >>"$R"

echo "memory ($MEM_N idle instances of each, one group at a time)..."
mkdir "$B/mem"
taskset -c "$CLIENT_CPU" "$BUILD/bench_memory" -n "$MEM_N" -c "$SERVER_CPU" -k "$B/key" \
	-b "$B/mem" -s "$V" -s "$S" >>"$R"

echo "state blobs ($BLOB_N saves, then $BLOB_N restores, each)..."
mkdir "$B/blob"
taskset -c "$CLIENT_CPU" "$BUILD/bench_stateblob" -n "$BLOB_N" -c "$SERVER_CPU" -k "$B/key" \
	-b "$B/blob" -s "$V" -s "$S" >>"$R"
echo

# row METRIC LABEL GOAL: one line of the table. GOAL is "le1" (ratio
# vtpmd/swtpm <= 1.00) or "show". A/A is vtpmd/vtpmd2 where measured; a
# missed goal whose ratio is within the A/A spread is marked so.
row() {
	awk -v m="$1" -v label="$2" -v goal="$3" '
	$1 == "RESULT" && $2 == m && $4 == "vtpmd" { v = $5 }
	$1 == "RESULT" && $2 == m && $4 == "swtpm" { s = $5 }
	$1 == "RESULT" && $2 == m && $4 == "vtpmd2" { v2 = $5 }
	END {
		if (v == "" || s == "") { printf "%-36s %10s\n", label, "missing"; exit }
		r = s > 0 ? v / s : 0
		aa = "-"
		spread = 0
		if (v2 != "" && v2 > 0) {
			aa = sprintf("%.3f", v / v2)
			spread = v / v2 > 1 ? v / v2 - 1 : v2 / v - 1
		}
		if (goal != "le1")
			verdict = "shown"
		else if (r <= 1.0)
			verdict = "<= 1.00  met"
		else if (r - 1 <= spread)
			verdict = "<= 1.00  MISSED, within A/A spread"
		else
			verdict = "<= 1.00  MISSED"
		printf "%-36s %10s %10s %7.3f %7s  %s\n", label, v, s, r, aa, verdict
	}' "$R"
}

printf "%-36s %10s %10s %7s %7s  %s\n" "figure" "vtpmd" "swtpm" "ratio" "A/A" "goal"
printf "%-36s %10s %10s %7s %7s  %s\n" "------" "-----" "-----" "-----" "---" "----"
while read -r metric goal label; do
	row "$metric" "$label" "$goal"
done <<EOF | tee "$B/table"
getrandom.median le1 GetRandom(16) median (us)
getrandom.p99 le1 GetRandom(16) p99 (us)
pcr_extend.median le1 PCR_Extend(sha256) median (us)
pcr_extend.p99 le1 PCR_Extend(sha256) p99 (us)
pcr_read.median le1 PCR_Read median (us)
pcr_read.p99 le1 PCR_Read p99 (us)
sign.median le1 ECDSA P-256 Sign median (us)
sign.p99 le1 ECDSA P-256 Sign p99 (us)
nv_write.median show NV_Write(64) median (us)
nv_write.p99 show NV_Write(64) p99 (us)
getrandom.cpu show GetRandom(16) server CPU/cmd (us)
pcr_extend.cpu show PCR_Extend server CPU/cmd (us)
pcr_read.cpu show PCR_Read server CPU/cmd (us)
sign.cpu show Sign server CPU/cmd (us)
nv_write.cpu show NV_Write server CPU/cmd (us)
coldstart.median le1 cold start median (us)
coldstart.p90 show cold start p90 (us)
coldstart.min show cold start fastest (us)
memory.pss_total le1 $MEM_N idle: Pss total (kB)
memory.pss_per le1 $MEM_N idle: Pss per instance (kB)
memory.pss_anon_total le1 $MEM_N idle: Pss_Anon total (kB)
memory.pss_anon_per le1 $MEM_N idle: Pss_Anon per instance (kB)
memory.rss_per show $MEM_N idle: Rss per instance (kB)
stateblob_get.p50 show GET_STATEBLOB permanent p50 (us)
stateblob_get.p99 show GET_STATEBLOB permanent p99 (us)
stateblob_set.p50 show SET_STATEBLOB permanent p50 (us)
stateblob_set.p99 show SET_STATEBLOB permanent p99 (us)
EOF
echo "goals: $(grep -c ' met$' "$B/table") met, $(grep -c ' MISSED' "$B/table") missed" \
	"($(grep -c 'within A/A' "$B/table") of them within the A/A spread)"
if [ "$SHARED_CPU" = 1 ]; then
	echo
	echo "informational: latency with client and servers all on CPU $SERVER_CPU"
	echo "(no cross-CPU wake-up in the round trip)"
	while read -r metric label; do
		row "shared.$metric.median" "$label median (us)" show
		row "shared.$metric.p99" "$label p99 (us)" show
	done <<EOF
getrandom GetRandom(16)
pcr_extend PCR_Extend(sha256)
pcr_read PCR_Read
sign ECDSA P-256 Sign
nv_write NV_Write(64)
EOF
fi
cat <<EOF

ratio = vtpmd/swtpm. A/A = vtpmd/vtpmd2, a second identical vtpmd measured
alongside: how far a ratio moves by chance in this run. Server CPU/cmd is the
server's own time on a CPU (/proc/PID/schedstat) per command, which load
elsewhere on the machine disturbs much less than wall-clock latency.
NV_Write: vtpmd makes each state write durable (fdatasync of the new file,
rename, fsync of the directory); swtpm 0.7.1 writes and renames without any
fsync, so the difference is the cost of durability.
GET/SET_STATEBLOB: vtpmd wraps (AES-256-GCM) the blob it hands out and
unwraps, checks and durably stores the one it takes; swtpm hands out and
takes the state as it is (without a migration key).
EOF
