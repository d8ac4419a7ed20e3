#!/bin/bash
# A worker taken over by its guest cannot wear out the host TPM through its
# commit channel, nor hold up vtpmd (docs/state.md, "Throttling"; the
# attack review of #12, attack-commit-flood.sh: vtpmd committed whatever a
# worker reported, one host-TPM counter increment per round of its loop,
# unbounded). The taken-over worker is simulated by a wrapper around
# vtpmd-instance that leaves a helper holding the worker's commit descriptor
# (fd 5) before exec'ing the real worker; once told to, the helper stops
# the real worker (SIGSTOP) and speaks on the channel alone:
#  1. vm-slow reports a new generation (any digest) as soon as the one
#     before is acknowledged: vtpmd acknowledges no faster than the commit
#     budget (nv-write-rate 2, bursts of 10), so the increments stay within
#     it, while vm-a's NV writes and the API are served;
#  2. vm-wild writes reports as fast as it can without waiting: vtpmd reads
#     a few a round, and ends that worker (a clear log line) once it has
#     reported again and again before an acknowledgement; vtpmd and vm-a
#     serve on, and vm-wild's worker is restarted from its state.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd # the sanitizer build when there is one
require_tools python3 timeout jq tpm2_nvdefine tpm2_nvwrite
real_worker=$(dirname "$VTPMD")/vtpmd-instance
[ -x "$real_worker" ] || real_worker=$TOP/build/vtpmd-instance
[ -x "$real_worker" ] || fail "no vtpmd-instance beside $VTPMD"

mkdir -p "$T/bin"
cp "$VTPMD" "$T/bin/vtpmd"
# flood.py NAME MODE: waits for $T/go.NAME (removed, so that a restarted
# worker's helper waits for good), stops the real worker (its parent, after
# the exec), then floods fd 5. MODE patient: N reports, each once the one
# before is acknowledged, then "done ACKS" in $T/done.NAME; wild: as fast as
# the socket takes them, until it is closed.
cat >"$T/flood.py" <<'PY'
import os, select, signal, struct, sys, time
name, mode, top = sys.argv[1], sys.argv[2], sys.argv[3]
go = os.path.join(top, "go." + name)
while not os.path.exists(go):
    time.sleep(0.05)
os.unlink(go)
os.kill(os.getppid(), signal.SIGSTOP)
g = 1 << 20
def report(gen):
    return b"VTCR" + struct.pack(">Q", gen) + os.urandom(32)
if mode == "patient":
    acks = 0
    for i in range(int(sys.argv[4])):
        os.write(5, report(g + i))
        r, _, _ = select.select([5], [], [], 5.0)
        if not r or len(os.read(5, 12)) != 12:
            break
        acks += 1
    with open(os.path.join(top, "done." + name), "w") as f:
        f.write("done %d\n" % acks)
    sys.exit(0)
os.set_blocking(5, False)
while True:
    buf = b"".join(report(g + i) for i in range(100))
    g += 100
    try:
        os.write(5, buf)
    except BlockingIOError:
        time.sleep(0.0005)
    except OSError:
        break
PY
cat >"$T/bin/vtpmd-instance" <<SH
#!/bin/bash
case " \$* " in
*" --name vm-slow "*) python3 "$T/flood.py" vm-slow patient "$T" 30 & ;;
*" --name vm-wild "*) python3 "$T/flood.py" vm-wild wild "$T" & ;;
esac
exec "$real_worker" "\$@"
SH
chmod +x "$T/bin/vtpmd-instance"
VTPMD=$T/bin/vtpmd

start_host_tpm "$T/host"
echo "nv-write-rate = 2" >"$T/vtpmd.conf"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
for vm in vm-a vm-slow vm-wild; do "$VTPMCTL" create "$vm" >/dev/null || fail "create $vm"; done
tcti=$(jfield "$("$VTPMCTL" info vm-a --json)" .tcti)
TPM2TOOLS_TCTI=$tcti tpm2_nvdefine 0x1500040 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null ||
	fail "nvdefine on vm-a"
commits() { "$VTPMCTL" host --json | jq -r .freshness.commits; }
printf 'written!' >"$T/nv.in"
problems=()
# vm_a_served: vm-a's NV write and vtpmd's API answer in time.
vm_a_served() {
	TPM2TOOLS_TCTI=$tcti timeout 15 tpm2_nvwrite 0x1500040 -C o -i "$T/nv.in" ||
		problems+=("$1: vm-a's NV write was not answered within 15 s")
	timeout 10 "$VTPMCTL" host --json >/dev/null 2>&1 ||
		problems+=("$1: vtpmd's API did not answer within 10 s")
}

note "1. vm-slow's worker reports 30 new generations, each once the one before is acknowledged"
c0=$(commits)
t0=$(date +%s%N)
touch "$T/go.vm-slow"
vm_a_served "during vm-slow's reports"
deadline=$((SECONDS + 60))
until [ -s "$T/done.vm-slow" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vm-slow's helper did not finish within 60 s"
	sleep 0.2
done
t1=$(date +%s%N)
c1=$(commits)
acks=$(awk '{ print $2 }' "$T/done.vm-slow")
secs=$(((t1 - t0) / 1000000000 + 1))
note "   $acks acknowledged in ${secs}s; host counter increments: $((c1 - c0))"
limit=$((10 + 2 * secs + 2 + 2)) # the burst, the rate, vtpmd's slack, vm-a's write
why="vm-slow's worker caused $((c1 - c0)) host-TPM counter increments in ${secs}s"
[ $((c1 - c0)) -le "$limit" ] || problems+=("$why (at most $limit at nv-write-rate 2)")
[ "$acks" -eq 30 ] || problems+=("vm-slow's helper got $acks acknowledgements of 30")
why="30 reports were acknowledged in ${secs}s, faster than the budget"
[ "$secs" -ge 8 ] || problems+=("$why (10, then 2 a second)")

note "2. vm-wild's worker floods its channel without waiting for acknowledgements"
c0=$(commits)
touch "$T/go.vm-wild"
deadline=$((SECONDS + 30))
until grep -q "vm-wild: its worker (pid [0-9]*) sent [0-9]* commit reports without" "$T/svc.log"; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vm-wild's worker was not ended within 30 s"
	sleep 0.1
done
c1=$(commits)
note "   $(grep -o "vm-wild: its worker (pid [0-9]*) sent .*" "$T/svc.log" | head -1)"
note "   host counter increments meanwhile: $((c1 - c0))"
[ $((c1 - c0)) -le 2 ] ||
	problems+=("vm-wild's flood caused $((c1 - c0)) host-TPM counter increments")
vm_a_served "after vm-wild's flood"
kill -0 "$VTPMD_PID" || fail "vtpmd ended"
wait_state vm-wild running 30

[ "${#problems[@]}" -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"
echo ok
