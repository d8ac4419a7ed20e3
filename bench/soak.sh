#!/bin/bash
# Load and soak (issue "Trust under attack"): many vTPMs under a steady mix
# of TPM 2.0 commands at once, with zero errors allowed and resources that
# must not grow. `make soak` runs it with the full figures;
# tests/integration/soak.sh (make check) runs a short version.
#
#  1. service: SOAK_N vTPMs (default 100) created through vtpmd (release
#     build; host TPM: a swtpm simulator), each driven by its own thread of
#     build/soak-client over its data socket for SOAK_SECONDS (default 60),
#     all started together; a further thread polls the control API
#     (GET /v1/instances) every 250 ms. Printed: p50/p99 per command,
#     commands/s, and the PSS, descriptors and threads of the workers and
#     of vtpmd at the start, during and at the end. Fails on any error, on
#     a worker that died or restarted, on more descriptors or threads at
#     the end than at the start, on PSS grown by more than SOAK_PSS_KB
#     (default 256) kB per process, or on a warning in vtpmd's log.
#  2. asan: SAN_N standalone instances (default 10) of the ASan/UBSan build
#     (build/san/vtpmd instance) under the same mix for SAN_SECONDS (15),
#     then SIGTERM: each must exit 0 with no sanitizer report (LeakSanitizer
#     runs at that exit; the service's chrooted workers could not run it).
#  3. valgrind: VG_N standalone release instances (default 2,
#     build/vtpmd-instance) under valgrind's memcheck for VG_SECONDS (10),
#     then SIGTERM: exit status 0 required (--error-exitcode: any memory
#     error, or a definitely or indirectly lost block, fails). "Still
#     reachable" blocks (what libraries keep until exit) are shown, not
#     counted. No suppression is used: none has been needed.
#
# SOAK_PARTS (default "service asan valgrind") picks parts. Needs root
# (vtpmd sandboxes its workers). No latency goal is checked: the figures
# move with whatever else the machine runs.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$TOP/tests/lib.sh"
source "$TOP/tests/hosttpm.sh"

SOAK_N=${SOAK_N:-100}
SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_PSS_KB=${SOAK_PSS_KB:-256}
SAN_N=${SAN_N:-10}
SAN_SECONDS=${SAN_SECONDS:-15}
VG_N=${VG_N:-2}
VG_SECONDS=${VG_SECONDS:-10}
SOAK_PARTS=${SOAK_PARTS:-service asan valgrind}
CLIENT=$TOP/build/soak-client
RELEASE_VTPMD=$TOP/build/vtpmd
SAN_VTPMD=$TOP/build/san/vtpmd

[ "$(id -u)" -eq 0 ] || fail "soak needs root (vtpmd sandboxes its workers)"
require_tools swtpm jq valgrind
for f in "$CLIENT" "$RELEASE_VTPMD" "$TOP/build/vtpmd-instance" "$VTPMCTL" "$SAN_VTPMD"; do
	[ -x "$f" ] || fail "$f is missing: run 'make all san'"
done

echo "soak: $(nproc) CPUs, load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" \
	"(other work on the machine shows in the latencies)"

# soak_service: part 1.
soak_service() {
	local i list n pids eps after
	echo
	echo "== service: $SOAK_N vTPMs through vtpmd, $SOAK_SECONDS s"
	VTPMD=$RELEASE_VTPMD
	start_host_tpm "$T/host"
	start_vtpmd svc --root-tcti "$HOST_TCTI"
	"$VTPMCTL" policy approve --current >/dev/null
	for i in $(seq "$SOAK_N"); do
		"$VTPMCTL" create "soak-$i" >/dev/null || fail "vtpmctl create soak-$i"
	done
	list=$("$VTPMCTL" list --json)
	n=$(jq '[.instances[] | select(.state == "running")] | length' <<<"$list")
	assert_eq "$n" "$SOAK_N" "running instances"
	pids=$(jq -r '[.instances[].pid | tostring] | join(",")' <<<"$list")
	mapfile -t eps < <(jq -r '.instances[].tcti | sub("^swtpm:path="; "unix:")' <<<"$list")
	"$CLIENT" -t "$SOAK_SECONDS" -m "$SOAK_PSS_KB" -p "workers=$pids" -p "vtpmd=$VTPMD_PID" \
		-a "unix:$VTPMD_SOCKET" "${eps[@]}" || fail "service soak (above)"

	# Every worker is the one that started: none died or restarted.
	after=$("$VTPMCTL" list --json)
	assert_eq "$(jq -r '[.instances[].pid | tostring] | join(",")' <<<"$after")" "$pids" \
		"worker PIDs after the soak"
	assert_eq "$(jq '[.instances[] | select(.state != "running" or .restarts != 0)] | length' \
		<<<"$after")" 0 "instances not running, or restarted, after the soak"
	for i in $(seq "$SOAK_N"); do
		"$VTPMCTL" stop "soak-$i" >/dev/null || fail "vtpmctl stop soak-$i"
	done
	stop_pid "$VTPMD_PID"
	# (The host TPM here is a simulator, and vtpmd holds the private
	# approval key the soak approves with: vtpmd says so of both.)
	if grep -E -i ': (warn|warning|error)' "$T/svc.log" |
		grep -v -e 'is a simulator' -e 'holds the private approval key' >"$T/svc.warnings"; then
		head -n 20 "$T/svc.warnings" >&2
		fail "vtpmd's log (workers included) has $(wc -l <"$T/svc.warnings") warnings"
	fi
	echo "workers: all $SOAK_N ran through without a restart; vtpmd and its log clean"
}

# sanitizer_report LOG: fails when LOG has a sanitizer's report.
sanitizer_report() {
	if grep -q -E 'Sanitizer|runtime error:' "$1"; then
		cat "$1" >&2
		fail "sanitizer report in $1"
	fi
}

# soak_asan: part 2.
soak_asan() {
	local i pids=() eps=()
	echo
	echo "== ASan/UBSan: $SAN_N standalone instances ($SAN_VTPMD instance), $SAN_SECONDS s"
	VTPMD=$SAN_VTPMD
	KEYFILE=$T/san.key
	new_key "$KEYFILE"
	for i in $(seq "$SAN_N"); do
		start_instance "asan-$i" --state "$T/asan-$i" --data "unix:$T/asan-$i.sock" \
			--ctrl "unix:$T/asan-$i.sock.ctrl" --key-fd 3 --startup clear
		pids+=("$INSTANCE_PID")
		eps+=("unix:$T/asan-$i.sock")
	done
	"$CLIENT" -t "$SAN_SECONDS" "${eps[@]}" || fail "ASan soak (above)"
	for i in "${!pids[@]}"; do
		stop_pid "${pids[$i]}"
		sanitizer_report "$T/asan-$((i + 1)).log"
	done
	echo "ASan/UBSan: $SAN_N instances stopped by SIGTERM, each exit status 0;" \
		"no AddressSanitizer, LeakSanitizer or UBSan report"
}

# vg_leaks LOG: memcheck's leak summary in LOG on one line.
vg_leaks() {
	local kinds='definitely lost|indirectly lost|possibly lost|still reachable|suppressed'
	sed -n -E "s/^==[0-9]+== +($kinds): ([0-9,]+ bytes) in ([0-9,]+) blocks.*/\\1 \\2 (\\3 blocks)/p" \
		"$1" | paste -s -d';' - | sed 's/;/; /g'
}

# soak_valgrind: part 3.
soak_valgrind() {
	local i pids=() eps=() log
	echo
	echo "== valgrind memcheck: $VG_N standalone instances (build/vtpmd-instance), $VG_SECONDS s"
	# spawn_instance runs "$VTPMD instance ARGS": this runs ARGS under valgrind.
	# valgrind lives in the worker's address space, under its RLIMIT_AS of
	# 128 MiB (instance_sandbox.c): its queue of freed blocks (20 MB by
	# default) and their shadow exhausted it after ~60 soak cycles, and
	# libtpms' NV commit then failed for want of memory (TPM_RC_FAILURE).
	# 2 MB of queue still catches a use after free of the latest blocks.
	cat >"$T/vg-instance" <<EOF
#!/bin/sh
shift
exec valgrind --freelist-vol=2000000 --log-file="$T/vg-%p.memcheck" --error-exitcode=99 --leak-check=full \\
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \\
	"$TOP/build/vtpmd-instance" "\$@"
EOF
	chmod +x "$T/vg-instance"
	VTPMD=$T/vg-instance
	KEYFILE=$T/vg.key
	new_key "$KEYFILE"
	for i in $(seq "$VG_N"); do
		start_instance "vg-$i" --state "$T/vg-$i" --data "unix:$T/vg-$i.sock" \
			--ctrl "unix:$T/vg-$i.sock.ctrl" --key-fd 3 --startup clear
		pids+=("$INSTANCE_PID")
		eps+=("unix:$T/vg-$i.sock")
	done
	"$CLIENT" -t "$VG_SECONDS" -w 1 "${eps[@]}" || fail "valgrind soak (above)"
	for i in "${!pids[@]}"; do
		log=$T/vg-${pids[$i]}.memcheck
		kill -TERM "${pids[$i]}"
		wait_status "${pids[$i]}"
		if [ "$STATUS" -ne 0 ] || ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
			cat "$T/vg-$((i + 1)).log" "$log" >&2
			fail "valgrind: instance vg-$((i + 1)) exited with $STATUS (99: memcheck errors)"
		fi
		echo "vg-$((i + 1)): exit status 0, $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log");" \
			"$(vg_leaks "$log")"
	done
	echo "valgrind: $VG_N instances stopped by SIGTERM, each exit status 0: no memory error," \
		"no definitely or indirectly lost block"
}

for part in $SOAK_PARTS; do
	case "$part" in
	service) soak_service ;;
	asan) soak_asan ;;
	valgrind) soak_valgrind ;;
	*) fail "SOAK_PARTS: unknown part $part (service, asan, valgrind)" ;;
	esac
done
echo
echo "soak: passed ($SOAK_PARTS)"
