#!/bin/bash
# A worker replaying an old report is ended, and vtpmd's log and CPU stay
# bounded (docs/state.md, "Throttling"). The attack of the review of #12
# (the commit budget): budget_report (src/manager/budget.c) counted a
# violation only for a report that differed from an unacknowledged one; a
# report of a generation older than the one recorded was dropped in
# fresh_flush with a warning, every round, and no violation: a worker taken
# over by its guest held vtpmd in a busy loop (300,000 log lines and 8 s of
# CPU in 10 s) and was never ended. Taken over here as in commit-flood.sh (a
# helper holds fd 5 and stops the real worker), vm-old sends "VTCR |
# generation 1 | zeros" as fast as the socket takes it, reading nothing.
# Now a report older than the recorded generation, or one the worker was
# acknowledged already, counts as a violation, is dropped, and only a
# worker's first is logged: vm-old's worker is ended as in commit-flood.sh.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd
require_tools python3 jq
real_worker=$(dirname "$VTPMD")/vtpmd-instance
[ -x "$real_worker" ] || real_worker=$TOP/build/vtpmd-instance
mkdir -p "$T/bin"
cp "$VTPMD" "$T/bin/vtpmd"
cat >"$T/flood.py" <<'PY'
import os, signal, struct, sys, time
name, top = sys.argv[1], sys.argv[2]
go = os.path.join(top, "go." + name)
while not os.path.exists(go):
    time.sleep(0.05)
os.unlink(go)
os.kill(os.getppid(), signal.SIGSTOP)
msg = (b"VTCR" + struct.pack(">Q", 1) + bytes(32)) * 100
os.set_blocking(5, False)
while True:
    try:
        os.write(5, msg)
    except BlockingIOError:
        time.sleep(0.0005)
    except OSError:
        break
PY
cat >"$T/bin/vtpmd-instance" <<SH
#!/bin/bash
case " \$* " in
*" --name vm-old "*) python3 "$T/flood.py" vm-old "$T" & ;;
esac
exec "$real_worker" "\$@"
SH
chmod +x "$T/bin/vtpmd-instance"
VTPMD=$T/bin/vtpmd

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
for vm in vm-a vm-old; do "$VTPMCTL" create "$vm" >/dev/null || fail "create $vm"; done
cpu() { awk '{print $14 + $15}' "/proc/$VTPMD_PID/stat"; }
lines0=$(wc -l <"$T/svc.log")
cpu0=$(cpu)
touch "$T/go.vm-old"
sleep 10
lines1=$(wc -l <"$T/svc.log")
cpu1=$(cpu)
ended=$(grep -c "vm-old: its worker (pid [0-9]*) sent" "$T/svc.log" || true)
note "in 10 s: vtpmd logged $((lines1 - lines0)) lines, used $(((cpu1 - cpu0)))/100 s of CPU; vm-old's worker ended $ended times"
grep "vm-old" "$T/svc.log" | sort | uniq -c | sort -rn | head -3
problems=()
[ "$ended" -ge 1 ] || problems+=("vm-old's worker was never ended")
[ $((lines1 - lines0)) -le 100 ] || problems+=("vtpmd wrote $((lines1 - lines0)) log lines in 10 s")
[ $((cpu1 - cpu0)) -le 200 ] || problems+=("vtpmd used $(((cpu1 - cpu0) / 100)) s of CPU in 10 s")
[ "${#problems[@]}" -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"
echo held
