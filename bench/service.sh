#!/bin/bash
# The service's figures, against swtpm in the same run (issue figures):
#  - start of one instance, from the API call to the first answered TPM
#    command (unseal through the host TPM included), against swtpm's cold
#    start (exec to first answer), both timed inside one process
#    (bench/svcstart.c); then the same timed from a shell, where vtpmctl's
#    own start-up counts too;
#  - host-TPM commands per start and per create (on hardware each costs ms);
#  - a host PCR read, which vtpmd authenticates (an audit session salted to
#    the SRK, bench/pcrread.c), against TPM2_PCR_Read without a session;
#  - N instances (default 200): time to create and start them all, and the
#    workers' total and per-instance PSS against N swtpm processes.
# Needs root (workers are sandboxed). The host TPM is a swtpm simulator.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VTPMD=$TOP/build/vtpmd
N=${SERVICE_N:-200}
STARTS=${SERVICE_STARTS:-20}
PCR_READS=${SERVICE_PCR_READS:-200}
source "$TOP/tests/lib.sh"
source "$TOP/tests/hosttpm.sh"
GETRANDOM=80010000000c0000017b0010

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pss() { # PID...: total Pss and Pss_Anon in kB
	local p tot=0 anon=0 a b
	for p in "$@"; do
		read -r a b < <(awk '/^Pss:/ {p=$2} /^Pss_Anon:/ {q=$2} END {print p, q}' \
			/proc/"$p"/smaps_rollup)
		tot=$((tot + a))
		anon=$((anon + b))
	done
	echo "$tot $anon"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

start_host_tpm "$T/host"
# Before vtpmd: a second client of the host TPM flushes the sessions it
# finds there (hwtpm_open), vtpmd's kept ones included.
"$TOP/build/bench_pcrread" -n "$PCR_READS" -t "$HOST_TCTI" >"$T/pcrread.out"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
commands() { jfield "$("$VTPMCTL" host --json)" .host_tpm_commands; }

echo "== one instance: API call to first answered TPM command ($STARTS runs each, alternating)"
c0=$(commands)
"$VTPMCTL" create bench-start --no-start >/dev/null
c1=$(commands)
"$VTPMCTL" start bench-start >/dev/null
"$VTPMCTL" stop bench-start >/dev/null
c2=$(commands)
"$VTPMCTL" start bench-start >/dev/null
c3=$(commands)
"$VTPMCTL" stop bench-start >/dev/null
create_cmds=$((c1 - c0))
start_cmds=$((c3 - c2))
sock=unix:$T/svc/run/bench-start.sock

# Timed inside one process (bench/svcstart.c): vtpmd from the API request
# to the answer on the instance's socket, swtpm from its exec to its answer.
head -c 32 /dev/urandom >"$T/swkey"
mkdir -p "$T/svcstart"
S="swtpm=swtpm socket --tpm2 --tpmstate dir=@DIR@/state --server type=unixio,path=@DIR@/data"
S="$S --ctrl type=unixio,path=@DIR@/ctrl --flags not-need-init,startup-clear"
S="$S --key fd=3,mode=aes-256-cbc,format=binary"
"$TOP/build/bench_svcstart" -n "$STARTS" -a "unix:$VTPMD_SOCKET" -i bench-start -d "$sock" \
	-b "$T/svcstart" -k "$T/swkey" -s "$S" >"$T/svcstart.out"
result() { awk -v k="$1" -v n="$2" '$2 == k && $4 == n {print $5}' "$T/svcstart.out"; }
vt=$(result svcstart.median vtpmd)
sw=$(result svcstart.median swtpm)

# The same seen from a shell: vtpmctl's and the client's own process
# start-up counted on vtpmd's side, the client's retries on swtpm's.
: >"$T/vt"
for _ in $(seq "$STARTS"); do
	t0=$(now_ns)
	"$VTPMCTL" start bench-start >/dev/null
	"$TPMSEND" "$sock" "$GETRANDOM" >/dev/null
	t1=$(now_ns)
	echo $(((t1 - t0) / 1000)) >>"$T/vt"
	"$VTPMCTL" stop bench-start >/dev/null
done
: >"$T/sw"
mkdir -p "$T/swtpm-cold"
swtpm_args=(socket --tpm2 --tpmstate "dir=$T/swtpm-cold" --key "file=$T/swkey,mode=aes-256-cbc,format=binary"
	--server "type=unixio,path=$T/swtpm-cold.sock" --ctrl "type=unixio,path=$T/swtpm-cold.ctrl"
	--flags not-need-init,startup-clear)
swtpm "${swtpm_args[@]}" 2>/dev/null & p=$!
until "$TPMSEND" "unix:$T/swtpm-cold.sock" "$GETRANDOM" >/dev/null 2>&1; do :; done
kill "$p"; wait "$p" || true
for _ in $(seq "$STARTS"); do
	t0=$(now_ns)
	swtpm "${swtpm_args[@]}" 2>/dev/null & p=$!
	until "$TPMSEND" "unix:$T/swtpm-cold.sock" "$GETRANDOM" >/dev/null 2>&1; do :; done
	t1=$(now_ns)
	echo $(((t1 - t0) / 1000)) >>"$T/sw"
	kill "$p"; wait "$p" || true
done
vt_sh=$(median <"$T/vt")
sw_sh=$(median <"$T/sw")
printf '%-44s %10s %10s %7s %s\n' figure vtpmd swtpm ratio goal
printf '%-44s %8s µs %8s µs %7s %s\n' "start to first answer (median)" "$vt" "$sw" "$(ratio "$vt" "$sw")" "≤ 1.5"
printf '%-44s %8s µs %8s µs %7s %s\n' "  p90" "$(result svcstart.p90 vtpmd)" \
	"$(result svcstart.p90 swtpm)" "" ""
printf '%-44s %8s µs %8s µs %7s %s\n' "  the same from a shell (median)" "$vt_sh" "$sw_sh" \
	"$(ratio "$vt_sh" "$sw_sh")" "(vtpmctl's start-up included)"
printf '%-44s %10s %10s %7s %s\n' "host-TPM commands per start" "$start_cmds" - - "≤ 8"
printf '%-44s %10s %10s %7s %s\n' "host-TPM commands per create" "$create_cmds" - - "≤ 12"
pcrread() { awk -v k="$1" -v n="$2" '$2 == k && $4 == n {print $5}' "$T/pcrread.out"; }
pr_vt=$(pcrread pcrread.median vtpmd)
pr_es=$(pcrread pcrread.median esys)
printf '%-44s %8s µs %8s µs %7s %s\n' "host PCR read, authenticated (median)" "$pr_vt" "$pr_es" \
	"$(ratio "$pr_vt" "$pr_es")" "(peer: PCR_Read without a session)"
printf '%-44s %10s %10s %7s %s\n' "host-TPM commands per PCR read" \
	"$(pcrread pcrread.commands vtpmd)" "$(pcrread pcrread.commands esys)" - ""
"$VTPMCTL" delete bench-start >/dev/null

echo "== $N instances"
t0=$(now_ns)
for i in $(seq "$N"); do
	"$VTPMCTL" create "bench-$i" >/dev/null
done
t1=$(now_ns)
total_ms=$(((t1 - t0) / 1000000))
for i in $(seq "$N"); do
	"$TPMSEND" "unix:$T/svc/run/bench-$i.sock" "$GETRANDOM" >/dev/null
done
mapfile -t workers < <(pgrep -f -- "--name bench-[0-9]+ ")
[ "${#workers[@]}" -eq "$N" ] || fail "expected $N workers, found ${#workers[@]}"
read -r vt_pss vt_anon < <(pss "${workers[@]}")
read -r mgr_pss _ < <(pss "$VTPMD_PID")

sw_pids=()
for i in $(seq "$N"); do
	d=$T/sw-$i
	mkdir -p "$d"
	swtpm socket --tpm2 --tpmstate "dir=$d" --key "file=$T/swkey,mode=aes-256-cbc,format=binary" \
		--server "type=unixio,path=$d.sock" --ctrl "type=unixio,path=$d.ctrl" \
		--flags not-need-init,startup-clear 2>/dev/null &
	sw_pids+=($!)
	TEST_PIDS+=($!)
done
for i in $(seq "$N"); do
	until "$TPMSEND" "unix:$T/sw-$i.sock" "$GETRANDOM" >/dev/null 2>&1; do :; done
done
read -r sw_pss sw_anon < <(pss "${sw_pids[@]}")
printf '%-44s %10s %10s %7s %s\n' "create + start all (ms)" "$total_ms" - - "(per instance: $((total_ms / N)) ms)"
printf '%-44s %8s kB %8s kB %7s %s\n' "workers' total PSS" "$vt_pss" "$sw_pss" "$(ratio "$vt_pss" "$sw_pss")" "≤ 1.0"
printf '%-44s %8s kB %8s kB %7s %s\n' "per instance PSS" "$((vt_pss / N))" "$((sw_pss / N))" "$(ratio "$vt_pss" "$sw_pss")" "≤ 1.0"
printf '%-44s %8s kB %8s kB %7s\n' "per instance anonymous PSS" "$((vt_anon / N))" "$((sw_anon / N))" "$(ratio "$vt_anon" "$sw_anon")"
printf '%-44s %8s kB\n' "the vtpmd manager itself (PSS)" "$mgr_pss"
