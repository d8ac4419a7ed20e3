#!/bin/bash
# A worker's log and limits. Every line a worker writes reaches vtpmd's log
# through the manager, under the worker's own tag: a worker taken over
# (here, a vtpmd-instance beside vtpmd that writes what it likes on its
# stderr before it becomes the real worker) cannot write a line that looks
# like vtpmd's or like another instance's, nor escape sequences, nor flood
# the log; the channel survives a restart of vtpmd (the adopted worker's
# lines are relayed by the new vtpmd). A running worker has the documented
# resource limits (docs/architecture.md, "A worker's limits").
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build, as service.sh explains; it is
# also the build that has the address-space limit.
VTPMD=$T/bin/vtpmd
[ "$(id -u)" -eq 0 ] || fail "the worker-log test needs root (workers are sandboxed)"
require_tools swtpm_ioctl

mkdir -p "$T/bin"
cp "$TOP/build/vtpmd" "$T/bin/vtpmd"
# The worker vtpmd spawns: on its first start, it says what a taken-over
# worker would, then runs as the real one.
cat >"$T/bin/vtpmd-instance" <<EOF
#!/bin/bash
if [ ! -e "$T/said" ]; then
	: >"$T/said"
	printf 'vtpmd: error: forged line of the manager\n' >&2
	printf 'instance[vm-b]: error: forged line of another instance\n' >&2
	printf 'an escape \033[2J and a carriage return\r and a tab\tinside\n' >&2
	head -c 3000 /dev/zero | tr '\0' x >&2
	printf '\n' >&2
	for i in \$(seq 1 1500); do printf 'flood %d\n' "\$i"; done >&2
fi
exec -a vtpmd-instance "$TOP/build/vtpmd-instance" "\$@"
EOF
chmod 755 "$T/bin/vtpmd-instance"

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI" --log-level debug
"$VTPMCTL" policy approve --current >/dev/null || fail "approval"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a: $(tail -5 "$T/svc.log")"
wait_state vm-a running
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
wait_state vm-b running
log=$T/svc.log

note "every line of a worker comes out under its own tag"
# A control command logs a line (debug); once one second has passed since
# the flood began, the next line comes with the count of what was dropped.
deadline=$((SECONDS + 20))
until grep -q "instance\[vm-a\]: vtpmd: [0-9]* lines of this worker's log dropped" "$log"; do
	[ "$SECONDS" -lt "$deadline" ] || fail "no note of dropped lines: $(tail -5 "$log")"
	swtpm_ioctl --unix "$T/svc/run/vm-a.sock.ctrl" -c >/dev/null || fail "swtpm_ioctl -c vm-a"
	sleep 0.05
done
grep -q '^vtpmd: error: forged' "$log" &&
	fail "a worker wrote a line as vtpmd: $(grep -a forged "$log")"
grep -q '^instance\[vm-b\]: error: forged' "$log" &&
	fail "a worker wrote a line as another instance"
assert_contains "$(cat "$log")" "instance[vm-a]: vtpmd: error: forged line of the manager" \
	"the forged manager line, under vm-a's tag"
assert_contains "$(cat "$log")" "instance[vm-a]: instance[vm-b]: error: forged" \
	"the forged instance line, under vm-a's tag"
assert_contains "$(cat "$log")" 'an escape \x1b[2J and a carriage return\x0d and a tab\x09inside' \
	"control bytes escaped"
grep -q $'\033' "$log" && fail "an escape byte reached the log"
long=$(grep -c '^instance\[vm-a\]: x\{1,1024\}$' "$log" || true)
assert_eq "$long" 3 "a 3000-byte line, relayed as three tagged pieces"
grep -qv -e '^instance\[' -e '^vtpmd: ' "$log" &&
	fail "an untagged line: $(grep -v -e '^instance\[' -e '^vtpmd: ' "$log" | head -3)"

note "a flood is cut at 500 lines a second, and the cut is said"
relayed=$(grep -c '^instance\[vm-a\]: flood ' "$log" || true)
pattern="s/^instance\[vm-a\]: vtpmd: \([0-9]*\) lines of this worker's log dropped.*/\1/p"
dropped=$(sed -n "$pattern" "$log" | head -1)
[ "$relayed" -le 494 ] || fail "$relayed flood lines relayed in one second (6 lines came first)"
[ "$((relayed + dropped))" -ge 1500 ] || fail "$relayed relayed and $dropped dropped of 1500"
note "$relayed flood lines relayed, $dropped lines dropped"

note "the channel survives vtpmd: the adopted worker's lines come through the new vtpmd"
pid=$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
: >"$T/svc.log"
start_vtpmd svc --root-tcti "$HOST_TCTI" --log-level debug
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .pid)" "$pid" "vm-a adopted"
swtpm_ioctl --unix "$T/svc/run/vm-a.sock.ctrl" -c >/dev/null || fail "swtpm_ioctl -c after"
deadline=$((SECONDS + 10))
until grep -q '^instance\[vm-a\]: debug: ctrl GET_CAPABILITY' "$log"; do
	[ "$SECONDS" -lt "$deadline" ] || fail "the adopted worker's line was not relayed: $(cat "$log")"
	sleep 0.05
done

note "a worker's resource limits"
limits=$(cat /proc/"$pid"/limits)
assert_contains "$(grep 'Max address space' <<<"$limits")" "134217728" "address space"
assert_contains "$(grep 'Max file size' <<<"$limits")" "4194304" "file size"
assert_contains "$(grep 'Max open files' <<<"$limits")" "64" "open files"
assert_contains "$(grep 'Max processes' <<<"$limits")" " 0 " "processes"
assert_contains "$(grep 'Max core file size' <<<"$limits")" " 0 " "core size"
# Under them, the guest's TPM works as before: a key made and used.
tcti=$(jfield "$("$VTPMCTL" info vm-a --json)" .tcti)
TPM2TOOLS_TCTI=$tcti tpm2_createprimary -C o -G rsa3072 -c "$T/p.ctx" >/dev/null ||
	fail "an RSA-3072 primary under the limits"

note "a deleted instance's channel goes with it"
[ -p "$T/svc/run/vm-b.log" ] || fail "vm-b's log channel is not a FIFO in the run directory"
"$VTPMCTL" delete vm-b --force >/dev/null || fail "delete vm-b"
[ ! -e "$T/svc/run/vm-b.log" ] || fail "vm-b's log channel left after its delete"
stop_pid "$VTPMD_PID"
"$VTPMCTL" >/dev/null 2>&1 || true
