#!/bin/bash
# vtpmd the service, with a simulated host TPM: lifecycle through vtpmctl,
# state sealed to the host TPM under an approved PCR policy, worker and
# manager crashes, stolen state, PCR changes and approvals.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot); the sanitizer build is exercised by the instance tests.
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "the service test needs root (workers are sandboxed)"
require_tools strace

nv_write() { # INSTANCE VALUE
	local tcti
	tcti=$(jfield "$("$VTPMCTL" info "$1" --json)" .tcti)
	TPM2TOOLS_TCTI=$tcti tpm2_nvdefine 0x1500020 -s 16 -a "ownerread|ownerwrite" >/dev/null 2>&1 || true
	printf '%-16s' "$2" | TPM2TOOLS_TCTI=$tcti tpm2_nvwrite -C o 0x1500020 -i - ||
		fail "nvwrite on $1"
}
nv_read() { # INSTANCE [TCTI]
	local tcti=${2:-}
	[ -n "$tcti" ] || tcti=$(jfield "$("$VTPMCTL" info "$1" --json)" .tcti)
	TPM2TOOLS_TCTI=$tcti tpm2_nvread -C o 0x1500020 -s 16 | tr -d ' '
}
expect_nv() { # INSTANCE VALUE WHAT [TCTI]
	assert_eq "$(nv_read "$1" "${4:-}")" "$(printf '%-16s' "$2" | tr -d ' ')" "$3"
}
pid_of() { jfield "$("$VTPMCTL" info "$1" --json)" .pid; }
field_of() { jfield "$("$VTPMCTL" info "$1" --json)" "$2"; } # INSTANCE FILTER
# refused WHAT NEEDLE CMD...: CMD must fail, saying NEEDLE; its output is
# left in $T/out.
refused() {
	local what=$1 needle=$2 rc=0
	shift 2
	"$@" >"$T/out" 2>&1 || rc=$?
	[ "$rc" -ne 0 ] || fail "$what: succeeded; output: $(cat "$T/out")"
	assert_contains "$(cat "$T/out")" "$needle" "$what"
}
# api STATUS WHAT METHOD PATH [CURL-ARGS...]: one request to vtpmd's API
# with curl, which must answer STATUS; the body is left in $T/api.out.
api() {
	local want=$1 what=$2 method=$3 path=$4 code
	shift 4
	code=$(curl -s -o "$T/api.out" -w '%{http_code}' --unix-socket "$VTPMD_SOCKET" \
		-X "$method" "$@" "http://vtpmd$path") || fail "$what: curl failed"
	[ "$code" == "$want" ] || fail "$what: HTTP $code, expected $want: $(cat "$T/api.out")"
}
api_error() { jq -r .error "$T/api.out"; }

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
assert_contains "$(cat "$T/svc.log")" "NO hardware protection" "simulator warning"

note "no approved configuration yet: creating and starting is refused, naming the cause"
refused "start without an approved host configuration" \
	"no host configuration over these PCRs has been approved. If this host change is expected, approve it: vtpmctl policy approve --current." \
	"$VTPMCTL" create vm-a
assert_eq "$(field_of vm-a .state)/$(field_of vm-a .desired)" refused/running "vm-a refused"
note "the approval starts the instance that should run, by itself"
api 200 "approve the current configuration" POST /v1/policy/approve -d '{"current": true}'
assert_eq "$(jq -c .started "$T/api.out")" '["vm-a"]' "the approval's answer names vm-a"
assert_eq "$(field_of vm-a .state)" running "vm-a after the approval"
"$VTPMCTL" create vm-b --tpm 2 >/dev/null
"$VTPMCTL" create vm-c --no-start >/dev/null

note "list, info"
list=$("$VTPMCTL" list --json)
assert_eq "$(jq -r '.instances | length' <<<"$list")" 3 "instances listed"
assert_eq "$(jq -r '.instances[] | select(.name=="vm-c") | .state' <<<"$list")" stopped "vm-c state"
info=$("$VTPMCTL" info vm-a --json)
assert_eq "$(jfield "$info" .state)" running "vm-a state"
[ -S "$(jfield "$info" .socket)" ] || fail "QEMU socket missing"
assert_contains "$(jfield "$info" .tcti)" "swtpm:path=" "vm-a's tcti"

note "a TPM 1.2 instance has no tcti: tpm2-tools needs TPM 2.0"
"$VTPMCTL" create vm-12 --tpm 1.2 --no-start >/dev/null
assert_eq "$(jq -c .tcti <<<"$("$VTPMCTL" info vm-12 --json)")" null "vm-12's tcti in JSON"
assert_eq "$("$VTPMCTL" list --json | jq -c '.instances[] | select(.name=="vm-12") | .tcti')" \
	null "vm-12's tcti in the list"
assert_contains "$("$VTPMCTL" info vm-12)" "tpm2-tools needs a TPM 2.0 instance" \
	"vm-12's info"
"$VTPMCTL" delete vm-12 >/dev/null

note "the guest's data lives in the vTPM, and nothing on disk reveals key or data"
nv_write vm-a "secret-vm-a"
expect_nv vm-a secret-vm-a "NV read"
if grep -r -a -q "secret-vm-a" "$T/svc/state"; then fail "NV content in the clear on disk"; fi

note "sandbox: the worker runs confined, under its own uid"
pid=$(pid_of vm-a)
assert_contains "$(grep Seccomp: /proc/"$pid"/status)" "2" "seccomp filter"
uid=$(awk '/^Uid:/ {print $2}' /proc/"$pid"/status)
[ "$uid" -ne 0 ] || fail "worker runs as root"

note "stop and start keep the TPM; the unsealed key crosses the host-TPM link encrypted"
"$VTPMCTL" stop vm-a >/dev/null
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" stopped "stopped"
# The sealed secret is the state key followed by the instance's UUID: in
# the clear, the UUID's 16 bytes would be in what vtpmd reads from the TPM.
: >"$T/strace.err"
strace -p "$VTPMD_PID" -e trace=read,recvfrom -e read=all -xx -s 0 -o "$T/tpm-io.trace" \
	2>"$T/strace.err" &
sp=$!
until grep -qs attached "$T/strace.err"; do kill -0 "$sp" 2>/dev/null || fail "strace"; done
"$VTPMCTL" start vm-a >/dev/null
kill -INT "$sp"
wait "$sp" 2>/dev/null || true
uuid=$(jfield "$("$VTPMCTL" info vm-a --json)" .uuid | tr -d -)
dump=$(grep -E '^ \| [0-9a-f]{5}  ' "$T/tpm-io.trace" | cut -c11-59 | tr -d ' \n')
[ ${#dump} -gt 100 ] || fail "strace saw nothing read from the host TPM"
[[ "$dump" != *"$uuid"* ]] || fail "the sealed secret crossed the host-TPM link in the clear"
expect_nv vm-a secret-vm-a "NV after restart"

note "a killed worker is restarted with its state, others unaffected"
pid=$(pid_of vm-a)
pidb=$(pid_of vm-b)
kill -KILL "$pid"
deadline=$((SECONDS + 30))
until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
	[ "$new" != "$pid" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted"
done
assert_eq "$(pid_of vm-b)" "$pidb" "other worker untouched"
expect_nv vm-a secret-vm-a "NV after crash"
assert_contains "$(cat "$T/svc.log")" "killed by signal 9" "crash logged"

note "a worker killed again and again is restarted with growing back-off"
# A stop resets the back-off; each replacement is killed as soon as it
# serves, so none of them counts as stable.
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" start vm-a >/dev/null
log_from=$(($(stat -c %s "$T/svc.log") + 1))
for _ in 1 2 3 4; do
	pid=$(pid_of vm-a)
	kill -KILL "$pid"
	deadline=$((SECONDS + 30))
	until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
		[ "$new" != "$pid" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted after repeated kills"
	done
	assert_eq "$(pid_of vm-b)" "$pidb" "other worker untouched by vm-a's crashes"
done
delays=$(tail -c "+$log_from" "$T/svc.log" |
	sed -n 's/.*vm-a: worker (pid [0-9]*) killed by signal 9; restarting in \([0-9]*\) ms$/\1/p' |
	tr '\n' ' ')
assert_eq "$delays" "100 200 400 800 " "announced restart delays"
expect_nv vm-a secret-vm-a "NV after repeated crashes"

note "vtpmd killed: the workers keep serving; a new vtpmd adopts them"
pid=$(pid_of vm-a)
tcti=$(jfield "$("$VTPMCTL" info vm-a --json)" .tcti)
kill_hard "$VTPMD_PID"
expect_nv vm-a secret-vm-a "NV while vtpmd is down" "$tcti"
# Meanwhile, vm-c is copied (a restored backup, say) as vm-c2: the copy
# holds vm-c's slot, hence its worker uid, until vtpmd gives it another.
inst=$T/svc/state/instances
slot_c=$(jq -r .slot "$inst/vm-c/instance.json")
cp -a "$inst/vm-c" "$inst/vm-c2"
jq '.name = "vm-c2"' "$inst/vm-c/instance.json" >"$inst/vm-c2/instance.json"
start_vtpmd svc --root-tcti "$HOST_TCTI"
assert_eq "$(pid_of vm-a)" "$pid" "adopted the same worker"
assert_contains "$(cat "$T/svc.log")" "adopted running worker" "adoption logged"

note "a copied instance gets a slot, and a worker uid, of its own"
assert_contains "$(cat "$T/svc.log")" "vm-c2: its slot $slot_c" "duplicate slot logged"
assert_eq "$(jq -r .slot "$inst/vm-c/instance.json")" "$slot_c" "the original keeps its slot"
slot_c2=$(jq -r .slot "$inst/vm-c2/instance.json")
[ "$slot_c2" != "$slot_c" ] || fail "the copy's instance.json still has slot $slot_c"
"$VTPMCTL" start vm-c >/dev/null
# A copy does not start (copies.sh); renewed, it is a vTPM of its own.
refused "start of a copy" "vm-c2 is a copy of vm-c" "$VTPMCTL" start vm-c2
"$VTPMCTL" renew vm-c2 >/dev/null || fail "renew vm-c2"
"$VTPMCTL" start vm-c2 >/dev/null
uid_c=$(ps -o uid= -p "$(pid_of vm-c)" | tr -d ' ')
uid_c2=$(ps -o uid= -p "$(pid_of vm-c2)" | tr -d ' ')
[ "$uid_c" -ne 0 ] || fail "vm-c's worker runs as root"
[ "$uid_c2" -ne 0 ] || fail "vm-c2's worker runs as root"
[ "$uid_c" != "$uid_c2" ] || fail "vm-c and its copy vm-c2 both run as uid $uid_c"
"$VTPMCTL" stop vm-c >/dev/null
"$VTPMCTL" stop vm-c2 >/dev/null
"$VTPMCTL" delete vm-c2 >/dev/null

note "concurrent requests on one instance leave it consistent"
"$VTPMCTL" create vm-d >/dev/null
ops=(start stop restart start restart stop start restart stop restart)
racers=()
for op in "${ops[@]}"; do
	"$VTPMCTL" "$op" vm-c >/dev/null 2>&1 &
	racers+=($!)
done
"$VTPMCTL" delete vm-d --force >/dev/null 2>&1 &
racers+=($!)
"$VTPMCTL" start vm-d >/dev/null 2>&1 &
racers+=($!)
for p in "${racers[@]}"; do wait "$p" || true; done
list=$("$VTPMCTL" list --json)
for vm in vm-c vm-d; do
	listed=$(jq -r --arg n "$vm" '.instances[] | select(.name==$n) | .state' <<<"$list")
	if [ -z "$listed" ]; then
		[ "$vm" == vm-d ] || fail "$vm vanished in the race"
		[ ! -e "$inst/$vm" ] || fail "$vm deleted, but its directory remains"
		refused "info of the deleted $vm" "no such instance" "$VTPMCTL" info "$vm"
		if pgrep -f -- "--name $vm " >/dev/null; then fail "a worker of the deleted $vm runs"; fi
		continue
	fi
	[ -d "$inst/$vm" ] || fail "$vm listed, but it has no directory"
	info=$("$VTPMCTL" info "$vm" --json)
	assert_eq "$(jfield "$info" .state)" "$listed" "$vm: list and info agree"
	case $listed in
	running)
		assert_eq "$(pgrep -f -- "--name $vm " | tr '\n' ' ')" "$(jfield "$info" .pid) " \
			"$vm: exactly its own worker runs"
		TPM2TOOLS_TCTI=$(jfield "$info" .tcti) tpm2_getrandom --hex 8 >/dev/null ||
			fail "$vm running, but its TPM does not answer"
		"$VTPMCTL" stop "$vm" >/dev/null
		;;
	stopped)
		if pgrep -f -- "--name $vm " >/dev/null; then fail "$vm stopped, but a worker runs"; fi
		;;
	*) fail "$vm left in state $listed" ;;
	esac
done
"$VTPMCTL" delete vm-d --force >/dev/null 2>&1 || true
[ ! -e "$inst/vm-d" ] || fail "vm-d's files remain after its delete"

note "a second vtpmd on the same state directory is refused; the first keeps serving"
rc=0
timeout 60 "$VTPMD" --state-dir "$T/svc/state" --run-dir "$T/svc/run" \
	--socket "$VTPMD_SOCKET" --root-tcti "$HOST_TCTI" >"$T/out" 2>&1 || rc=$?
assert_eq "$rc" 4 "second vtpmd's exit status"
assert_contains "$(cat "$T/out")" "another vtpmd manages this state directory" \
	"second vtpmd's error"
kill -0 "$VTPMD_PID" || fail "the first vtpmd died"
assert_eq "$(field_of vm-b .state)" running "the first vtpmd still answers"
expect_nv vm-a secret-vm-a "NV while a second vtpmd was refused"

note "a host PCR change across a host reboot: refused, naming the PCR"
# The reboot: vtpmd and every worker gone; the PCRs measure a new boot.
workers=("$(pid_of vm-a)" "$(pid_of vm-b)")
kill_hard "$VTPMD_PID"
kill -KILL "${workers[@]}"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend \
	7:sha256=0000000000000000000000000000000000000000000000000000000000000007
start_vtpmd svc --root-tcti "$HOST_TCTI"
for vm in vm-a vm-b; do
	assert_eq "$(field_of $vm .state)/$(field_of $vm .desired)" refused/running "$vm refused"
	assert_contains "$(field_of $vm .error)" "PCR 7" "$vm: refusal names the PCR"
done
refused "start after an unapproved PCR change" "PCR 7 is " "$VTPMCTL" start vm-a
assert_contains "$(cat "$T/out")" "If this host change is expected, approve it: vtpmctl policy approve --current." \
	"refusal says how to approve"

note "deleting an instance that should run needs force; the query is parsed"
api 409 "delete of a refused instance that should run" DELETE /v1/instances/vm-b
assert_contains "$(api_error)" "should be running" "delete refused: why"
assert_contains "$(jq -r .hint "$T/api.out")" "vtpmctl stop vm-b" "delete refused: what to do"
api 400 "delete with noforce=1" DELETE '/v1/instances/vm-b?noforce=1'
assert_eq "$(api_error)" "unknown query parameter 'noforce'" "noforce=1 is not force"
api 400 "delete with force=yes" DELETE '/v1/instances/vm-b?force=yes'
assert_eq "$(api_error)" "force=yes: not a valid value" "bad force value"
api 400 "delete with force=1&x=2" DELETE '/v1/instances/vm-b?force=1&x=2'
api 409 "delete with force=0" DELETE '/v1/instances/vm-b?force=0'
[ -e "$inst/vm-b/sealed.key" ] || fail "a refused delete removed vm-b"

note "one approval starts every refused instance that should run, with its data"
"$VTPMCTL" policy approve --current >/dev/null # and no 'vtpmctl start'
for vm in vm-a vm-b; do
	assert_eq "$(field_of $vm .state)" running "$vm after the approval"
	assert_contains "$(cat "$T/svc.log")" \
		"$vm: starting again, under the host configuration just approved" "$vm: start logged"
done
expect_nv vm-a secret-vm-a "NV after approval"

note "a sealed key swapped from another instance is refused"
"$VTPMCTL" stop vm-a >/dev/null
"$VTPMCTL" stop vm-b >/dev/null
cp "$inst/vm-a/sealed.key" "$T/sealed-a"
cp "$inst/vm-b/sealed.key" "$inst/vm-a/sealed.key"
rc=0
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "start with another instance's sealed key succeeded"
assert_contains "$(cat "$T/out")" "another instance" "swap refusal"
cp "$T/sealed-a" "$inst/vm-a/sealed.key"
"$VTPMCTL" start vm-a >/dev/null

note "an instance copied to a vtpmd with another host TPM refuses to start"
"$VTPMCTL" stop vm-a >/dev/null
start_host_tpm "$T/host2"
svc1_socket=$VTPMD_SOCKET
start_vtpmd thief --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
cp -a "$inst/vm-a" "$T/thief/state/instances/vm-a"
kill -TERM "$VTPMD_PID"
wait "$VTPMD_PID" || true
# Its freshness anchor refuses an instance with state it never recorded
# (docs/state.md); with the operator's --reanchor vouching for it, the
# sealed key still refuses.
start_vtpmd thief --root-tcti "$HOST_TCTI"
rc=0
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "stolen instance started on another host's vtpmd"
assert_contains "$(cat "$T/out")" "vm-a has TPM state" "stolen refusal"
kill -TERM "$VTPMD_PID"
wait "$VTPMD_PID" || true
start_vtpmd thief --root-tcti "$HOST_TCTI" --reanchor
rc=0
"$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "stolen instance started on another host TPM"
assert_contains "$(cat "$T/out")" "not sealed by this host's TPM" "stolen refusal"
export VTPMD_SOCKET=$svc1_socket

note "bad input: names, unknown instances, deletes of running instances"
refused "vtpmctl create ../etc" "invalid instance name" "$VTPMCTL" create ../etc
refused "vtpmctl info nosuch" "no such instance" "$VTPMCTL" info nosuch
long=$(printf 'x%.0s' {1..200})
for name in ../x a/b .hidden "$long"; do
	api 400 "create '$name' through the API" POST /v1/instances -d "{\"name\": \"$name\"}"
	assert_eq "$(api_error)" "invalid instance name" "create '$name': error"
	assert_contains "$(jq -r .hint "$T/api.out")" "1-64 characters" "create '$name': hint"
done
for name in .hidden "$long"; do
	api 400 "GET of instance '$name'" GET "/v1/instances/$name"
	assert_eq "$(api_error)" "invalid instance name" "GET '$name': error"
done
[ -z "$(find "$inst" "$T/svc/run" -name x -o -name b -o -name .hidden -o -name "$long")" ] ||
	fail "a bad name made a file"
"$VTPMCTL" delete vm-b >/dev/null || fail "deleting a stopped instance failed"
"$VTPMCTL" start vm-a >/dev/null
refused "delete of a running instance" "--force" "$VTPMCTL" delete vm-a
api 400 "delete of a running instance with noforce=1" DELETE '/v1/instances/vm-a?noforce=1'
assert_eq "$(field_of vm-a .state)" running "noforce=1 deleted nothing"
"$VTPMCTL" delete vm-a --force >/dev/null
[ ! -e "$inst/vm-a" ] || fail "deleted instance's files remain"
api 400 "malformed body" POST /v1/instances -d '{not json'
assert_contains "$(api_error)" "JSON" "malformed body: error"
api 400 "body without a name" POST /v1/instances -d '{"tpm": "2.0"}'
assert_contains "$(jq -r .hint "$T/api.out")" '{"name": "vm-a"}' "missing name: hint"
api 404 "unknown path" GET /v1/nowhere
assert_eq "$(api_error)" "no such endpoint" "unknown path: error"
api 405 "PUT on an instance" PUT /v1/instances/vm-c
api 404 "unknown action" POST /v1/instances/vm-c/frob
api 400 "approve without a body" POST /v1/policy/approve
assert_contains "$(jq -r .hint "$T/api.out")" '{"current": true}' "approve without a body: hint"
# Let an unprivileged user reach the socket, to see the credential check.
chmod 0711 "$T" "$T/svc"
chmod 0666 "$VTPMD_SOCKET"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
	curl -s -w ' %{http_code}' --unix-socket "$VTPMD_SOCKET" http://vtpmd/v1/instances || true)
assert_contains "$out" '"error"' "caller without rights"
assert_contains "$out" ' 403' "caller without rights: status"
"$VTPMCTL" host >/dev/null
echo "ok"
