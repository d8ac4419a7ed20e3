#!/bin/bash
# make install into a fresh DESTDIR (issue #14), then only the installed tree
# on PATH: the installed vtpmd finds its worker under libexec (not beside it,
# not in build/), serves `vtpmctl create` on a simulated host TPM, tpm2-tools
# and a QEMU guest on its vTPMs; it tells a NOTIFY_SOCKET it is ready only
# once its API answers, and no worker inherits that socket; with stderr the
# journal (JOURNAL_STREAM) every line carries its syslog priority, its own
# and its workers'; the man pages open with man -l; the bash completion
# completes commands and instance names; make uninstall leaves nothing.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools make man swtpm tpm2_getrandom jq promtool
[ -f /usr/share/bash-completion/bash_completion ] ||
	fail "bash-completion is not installed (scripts/install-deps.sh installs it)"
[ -x "$TOP/build/notify-recv" ] || fail "build/notify-recv is missing: run make"
guest_prepare

note "make install DESTDIR=…"
make -C "$TOP" install DESTDIR="$T/root" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log" >&2; fail "make install"; }
R=$T/root/usr/local
for f in sbin/vtpmd sbin/vtpm-ca bin/vtpmctl bin/vtpm-attest libexec/vtpmd/vtpmd-instance \
	share/man/man8/vtpmd.8 share/man/man8/vtpmctl.8 share/man/man8/vtpmd-instance.8 \
	share/man/man8/vtpm-ca.8 share/man/man5/vtpmd.conf.5 share/man/man1/vtpm-attest.1 \
	lib/systemd/system/vtpmd.service lib/systemd/system/vtpm-ca.service \
	share/bash-completion/completions/vtpmctl etc/vtpmd/vtpmd.conf \
	share/doc/vtpmd/README.md share/doc/vtpmd/config.md share/doc/vtpmd/examples/vtpmd.conf; do
	[ -e "$R/$f" ] || fail "make install did not install $f"
done
[ ! -e "$R/sbin/vtpmd-instance" ] || fail "vtpmd-instance installed beside vtpmd"
grep -qx "ExecStart=/usr/local/sbin/vtpmd --config /usr/local/etc/vtpmd/vtpmd.conf" \
	"$R/lib/systemd/system/vtpmd.service" || fail "the unit does not start the installed vtpmd"

note "only the installed tree on PATH"
export PATH=$R/sbin:$R/bin:/usr/sbin:/usr/bin:/sbin:/bin
VTPMD=$(command -v vtpmd)
VTPMCTL=$(command -v vtpmctl)
assert_eq "$VTPMD" "$R/sbin/vtpmd" "vtpmd on PATH"
assert_eq "$VTPMCTL" "$R/bin/vtpmctl" "vtpmctl on PATH"
assert_eq "$(command -v vtpm-ca)" "$R/sbin/vtpm-ca" "vtpm-ca on PATH"
assert_eq "$(command -v vtpm-attest)" "$R/bin/vtpm-attest" "vtpm-attest on PATH"
assert_contains "$(vtpmctl --help)" "vtpmctl(8)" "vtpmctl --help names its page"

note "the man pages open with man -l"
for page in "$R"/share/man/man*/*; do
	out=$(MANWIDTH=80 man -l "$page" 2>"$T/man.err") || fail "man -l $page"
	[ ! -s "$T/man.err" ] || fail "man -l $page: $(cat "$T/man.err")"
	name=${page##*/}
	assert_contains "$out" "NAME" "man -l $name"
	assert_contains "$out" "${name%.*}" "man -l $name names its program"
done
assert_contains "$(MANWIDTH=80 man -M "$R/share/man" 5 vtpmd.conf 2>&1)" "worker-uid-base" \
	"man vtpmd.conf from the installed manual path"

note "the installed vtpmd starts, tells NOTIFY_SOCKET it is ready once its API answers"
start_host_tpm "$T/host"
mkdir -p "$T/svc"
: >"$T/svc.log"
mkfifo "$T/notify.bound"
"$TOP/build/notify-recv" "$T/notify" READY=1 60 3 3>"$T/notify.bound" >"$T/notify.out" &
NOTIFY_PID=$!
TEST_PIDS+=("$NOTIFY_PID")
read -r -t 30 bound <"$T/notify.bound" || true
assert_eq "${bound:-}" BOUND "notify-recv bound its socket"
export VTPMD_SOCKET=$T/svc/run/api.sock
# stderr is "the journal": the log file whose device and inode JOURNAL_STREAM names.
NOTIFY_SOCKET=$T/notify JOURNAL_STREAM=$(stat -c '%d:%i' "$T/svc.log") \
	"$VTPMD" --state-dir "$T/svc/state" --run-dir "$T/svc/run" --socket "$VTPMD_SOCKET" \
	--root-tcti "$HOST_TCTI" --log-level debug 2>>"$T/svc.log" &
VTPMD_PID=$!
TEST_PIDS+=("$VTPMD_PID")
wait "$NOTIFY_PID" || { cat "$T/svc.log" >&2; fail "vtpmd never said READY=1"; }
# READY=1 came: the API must answer now, without waiting.
vtpmctl host >/dev/null || fail "vtpmd said READY=1 before its API answered"
assert_contains "$(cat "$T/notify.out")" "READY=1" "the readiness message"
grep -q "debug: workers run .*/usr/local/libexec/vtpmd/vtpmd-instance\$" "$T/svc.log" ||
	fail "vtpmd does not run the installed vtpmd-instance: $(grep 'workers run' "$T/svc.log")"

note "vtpmctl create, tpm2-tools on the vTPM"
vtpmctl policy approve --current >/dev/null || fail "policy approve"
vtpmctl create vm-a >/dev/null || fail "create vm-a"
info=$(vtpmctl info vm-a --json)
TPM2TOOLS_TCTI=$(jfield "$info" .tcti) tpm2_getrandom --hex 8 >"$T/random" ||
	fail "tpm2_getrandom on vm-a"
[ "$(wc -c <"$T/random")" -eq 16 ] || fail "tpm2_getrandom: $(cat "$T/random")"
pid=$(jfield "$info" .pid)
[ -r "/proc/$pid/environ" ] || fail "no environment of worker $pid"
if tr '\0' '\n' <"/proc/$pid/environ" | grep -q '^NOTIFY_SOCKET='; then
	fail "worker $pid inherited NOTIFY_SOCKET"
fi
assert_eq "$(readlink "/proc/$pid/exe")" "$R/libexec/vtpmd/vtpmd-instance" \
	"vm-a's worker is the installed vtpmd-instance"

note "a QEMU guest on a vTPM of the installed service"
vtpmctl create vm-b >/dev/null || fail "create vm-b"
socket=$(jfield "$(vtpmctl info vm-b --json)" .socket)
vm_start guest "$socket" tpm-tis "vtpm_test=pcr"
vm_wait_exit
note "the guest ran $VM_MS ms"
vm_check_ok
vm_check_tpm2 tpm_tis

note "the installed service's metrics (vtpmctl metrics), as promtool checks them"
vtpmctl metrics >"$T/metrics.prom" || fail "vtpmctl metrics"
promtool check metrics <"$T/metrics.prom" >"$T/promtool.out" 2>&1 ||
	fail "promtool check metrics: $(cat "$T/promtool.out")"
awk '$1 == "vtpmd_starts_total" && $2 >= 2 { ok = 1 } END { exit !ok }' "$T/metrics.prom" ||
	fail "the metrics do not count vm-a's and vm-b's starts: $(grep starts "$T/metrics.prom")"

note "the journal's priorities: every line of vtpmd and its workers carries one"
grep -v '^<[3467]>' "$T/svc.log" >"$T/unprefixed" || true
[ ! -s "$T/unprefixed" ] || fail "lines without a priority: $(head -5 "$T/unprefixed")"
grep -q '^<4>vtpmd: warn: host TPM .* is a simulator' "$T/svc.log" ||
	fail "the simulator warning is not at priority 4"
grep -q '^<6>vtpmd: info: serving the API' "$T/svc.log" || fail "no info line at priority 6"
grep -q '^<7>vtpmd: debug: ' "$T/svc.log" || fail "no debug line at priority 7"
grep -q '^<[3467]>instance\[vm-a\]: ' "$T/svc.log" || fail "vm-a's worker lines lack a priority"
note "an error at priority 3; no prefix when stderr is not the journal"
: >"$T/err.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/err.log") "$VTPMD" --log-level nonsense 2>>"$T/err.log" &&
	fail "vtpmd accepted --log-level nonsense"
assert_contains "$(cat "$T/err.log")" "<3>vtpmd: error: --log-level" "a usage error in the journal"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/svc.log") "$VTPMD" --log-level nonsense 2>"$T/plain.log" &&
	fail "vtpmd accepted --log-level nonsense"
[ "$(head -c 1 "$T/plain.log")" != "<" ] || fail "a prefix on a stderr that is not the journal"

note "bash completion: commands and instance names"
complete_words() {
	COMP_LINE=$1 bash -c '
		source /usr/share/bash-completion/bash_completion
		source "$2"
		read -ra COMP_WORDS <<<"$COMP_LINE"
		[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_POINT=${#COMP_LINE}
		_vtpmctl
		printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$1" \
		"$R/share/bash-completion/completions/vtpmctl"
}
assert_eq "$(complete_words "vtpmctl re")" "renew restart restore " "commands completed"
assert_eq "$(complete_words "vtpmctl me")" "metrics " "vtpmctl metrics completed"
assert_eq "$(complete_words "vtpmctl info vm-")" "vm-a vm-b " "instance names completed"
assert_contains "$(complete_words "vtpmctl create x --")" "--owner" "create's options completed"

note "make uninstall leaves nothing installed"
kill -TERM "$VTPMD_PID"
wait "$VTPMD_PID" || fail "vtpmd exited with $?"
make -C "$TOP" uninstall DESTDIR="$T/root" >"$T/uninstall.log" 2>&1 ||
	{ cat "$T/uninstall.log" >&2; fail "make uninstall"; }
left=$(find "$T/root" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
