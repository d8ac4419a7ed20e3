#!/bin/bash
# vtpmctl against a stand-in API server (build/san/api-stub: the real api.c
# with canned objects from docs/api.md, recording each request): what each
# command sends, what it prints, its exit status (0 ok, 1 refused or
# unreachable, 2 usage), --help everywhere, --json on every listing, and a
# locally signed approval that the server verifies.
source "$(dirname "$0")/../lib.sh"
VTPMCTL=$TOP/build/vtpmctl
STUB=$TOP/build/san/api-stub

# start_stub NAME ARGS...: api-stub on $T/NAME/api.sock, logging requests to
# $T/NAME.req; waits until it listens. Sets STUB_PID and SOCK.
start_stub() {
	local name=$1 line=""
	shift
	mkfifo "$T/$name.ready"
	"$STUB" --socket "$T/$name/api.sock" --log "$T/$name.req" --ready-fd 4 "$@" \
		4>"$T/$name.ready" 2>>"$T/$name.log" &
	STUB_PID=$!
	TEST_PIDS+=("$STUB_PID")
	read -r -t 30 line <"$T/$name.ready" || true
	rm -f "$T/$name.ready"
	[ "$line" == "READY" ] || { cat "$T/$name.log" >&2; fail "api-stub $name did not start"; }
	SOCK=$T/$name/api.sock
	touch "$T/$name.req"
}

# run ARGS...: runs vtpmctl; sets RC, OUT (stdout) and ERR (stderr).
run() {
	RC=0
	"$VTPMCTL" "$@" >"$T/out" 2>"$T/err" || RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# expect RC ARGS...: runs vtpmctl and checks its exit status.
expect() {
	local want=$1
	shift
	run "$@"
	[ "$RC" -eq "$want" ] || fail "vtpmctl $*: exit $RC, expected $want; stderr: $ERR"
}

# requested NAME LINE: the stub recorded exactly this request line.
requested() {
	grep -qxF -- "$2" "$T/$1.req" || fail "request '$2' not seen; got: $(cat "$T/$1.req")"
}

note "help: a short usage summary for vtpmctl and every command, naming the manual"
expect 0 --help
for section in "usage: vtpmctl" "commands:" "options:" "Exit status:" "vtpmctl(8)"; do
	assert_contains "$OUT" "$section" "vtpmctl --help"
done
main_help=$OUT
for cmd in create start stop restart delete list info snapshot snapshots restore allow-revert \
	policy host metrics; do
	assert_contains "$main_help" "    $cmd" "command $cmd in vtpmctl --help"
	expect 0 "$cmd" --help
	assert_contains "$OUT" "usage: vtpmctl $cmd" "vtpmctl $cmd --help names it"
	assert_contains "$OUT" "vtpmctl(8), COMMANDS, $cmd" "vtpmctl $cmd --help names the page"
	assert_eq "$ERR" "" "vtpmctl $cmd --help writes nothing to stderr"
	help=$OUT
	expect 0 help "$cmd"
	assert_eq "$OUT" "$help" "vtpmctl help $cmd"
done

note "usage errors exit 2 and say what to do, before any request"
expect 2
assert_contains "$ERR" "usage: vtpmctl" "no command"
expect 2 frobnicate
assert_contains "$ERR" "unknown command 'frobnicate'" "unknown command"
expect 2 --bogus list
assert_contains "$ERR" "unknown option '--bogus'" "unknown global option"
expect 2 --socket
assert_contains "$ERR" "needs a value" "--socket without a path"
expect 2 create
assert_contains "$ERR" "NAME" "create without a name"
assert_contains "$ERR" "See 'vtpmctl create --help'" "points to the command's help"
expect 2 create 'a/b'
assert_contains "$ERR" "invalid instance name" "bad name"
expect 2 create -- -a
expect 2 create .hidden
expect 2 create "$(printf 'x%.0s' {1..65})"
expect 2 create vm-a --tpm 3
assert_contains "$ERR" "--tpm must be 2 or 1.2" "bad --tpm"
expect 2 start vm-a --force
assert_contains "$ERR" "does not apply" "option of another command"
expect 2 list extra
expect 2 info
expect 2 delete vm-a --nope
expect 2 policy approve
assert_contains "$ERR" "--current" "approve without --current"
expect 2 policy show --current
expect 2 policy frob
expect 2 host extra

note "vtpmd unreachable: exit 1, naming the socket and what to check"
VTPMD_SOCKET=$T/nowhere.sock expect 1 list
assert_contains "$ERR" "cannot connect to vtpmd at $T/nowhere.sock" "names VTPMD_SOCKET"
assert_contains "$ERR" "vtpmd is running" "suggests checking vtpmd"
assert_contains "$ERR" "--socket" "suggests --socket"
expect 1 --socket "$T/other.sock" host
assert_contains "$ERR" "$T/other.sock" "names --socket"
unset VTPMD_SOCKET
if [ ! -e /run/vtpmd/api.sock ]; then # a vtpmd on this host would answer
	expect 1 info vm-a
	assert_contains "$ERR" "cannot connect to vtpmd at /run/vtpmd/api.sock" "default socket"
fi

start_stub main
export VTPMD_SOCKET=$SOCK
[ "$(stat -c %a "$SOCK")" == 600 ] || fail "API socket mode $(stat -c %a "$SOCK")"
[ "$(stat -c %a "$T/main")" == 700 ] || fail "socket directory mode $(stat -c %a "$T/main")"

note "usage errors sent nothing"
assert_eq "$(cat "$T/main.req")" "" "requests before any valid command"

note "create, and the socket for QEMU"
expect 0 create vm-a
requested main 'POST /v1/instances {"name":"vm-a","start":true,"tpm":"2.0"}'
assert_contains "$OUT" "state:      running" "create output"
assert_contains "$OUT" "socket:     /run/vtpmd/vm-a.ctrl" "socket for QEMU"
assert_contains "$OUT" "tcti:       swtpm:path=/run/vtpmd/vm-a.sock" "TCTI for tpm2-tools"
expect 0 create vm-b --tpm 1.2 --no-start
requested main 'POST /v1/instances {"name":"vm-b","start":false,"tpm":"1.2"}'
assert_contains "$OUT" "state:      stopped" "created stopped"
expect 0 create vm-c --tpm=2 --json
assert_eq "$(jq -r .name <<<"$OUT")" vm-c "create --json"

note "--socket wins over VTPMD_SOCKET"
VTPMD_SOCKET=$T/nowhere.sock expect 0 --socket "$SOCK" info vm-a
assert_contains "$OUT" "name:       vm-a" "info through --socket"

note "errors from vtpmd: its message and hint on stderr, exit 1"
expect 1 create vm-a
assert_contains "$ERR" "vtpmctl: an instance with this name exists (HTTP 409)" "conflict"
assert_contains "$ERR" "vtpmctl: hint: choose another name" "conflict hint"
assert_eq "$OUT" "" "nothing on stdout for an error"
expect 1 info vm-zzz
assert_contains "$ERR" "no such instance (HTTP 404)" "unknown instance"
expect 1 create refused-a
assert_contains "$ERR" "(HTTP 422)" "refused by policy"
assert_contains "$ERR" "hint: approve the host configuration" "refusal hint"

note "list: an aligned table, or vtpmd's JSON"
expect 0 list
requested main 'GET /v1/instances -'
head=$(sed -n 1p <<<"$OUT")
assert_eq "$(awk '{print $1, $2, $3, $4, $5, $6, $7}' <<<"$head")" \
	"NAME TPM STATE DESIRED PID RESTARTS SOCKET" "list header"
row=$(awk '$1 == "vm-a"' <<<"$OUT")
assert_eq "$(awk '{print $2, $3, $4, $5, $6, $7}' <<<"$row")" \
	"2.0 running running 4242 0 /run/vtpmd/vm-a.ctrl" "vm-a row"
row=$(awk '$1 == "vm-b"' <<<"$OUT")
assert_eq "$(awk '{print $2, $3, $5}' <<<"$row")" "1.2 stopped -" "vm-b row"
row=$(awk '$1 == "refused-a"' <<<"$OUT")
assert_eq "$(awk '{print $3, $4}' <<<"$row")" "refused running" "refused row"
# Aligned: every row's SOCKET column starts where the header's does.
col=$(awk 'NR == 1 { print index($0, "SOCKET") }' <<<"$OUT")
while read -r line; do
	[ "${line:$((col - 1)):1}" == "/" ] || fail "misaligned row: $line"
done < <(sed 1d <<<"$OUT")
expect 0 list --json
assert_eq "$(jq -r '.instances | length' <<<"$OUT")" 4 "list --json"
assert_eq "$(jq -r '.instances[] | select(.name == "vm-b") | .tpm' <<<"$OUT")" 1.2 "vm-b tpm"

note "info"
expect 0 info vm-a --json
requested main 'GET /v1/instances/vm-a -'
assert_eq "$(jq -r .socket <<<"$OUT")" /run/vtpmd/vm-a.ctrl "info socket"
assert_eq "$(jq -r .tcti <<<"$OUT")" swtpm:path=/run/vtpmd/vm-a.sock "info tcti"
expect 0 info refused-a
assert_contains "$OUT" "state:      refused (vtpmd keeps it running)" "state and desired"
assert_contains "$OUT" "error:      host PCRs 7 differ" "last error"

note "start, stop, restart"
expect 0 start vm-b
requested main 'POST /v1/instances/vm-b/start -'
assert_eq "$OUT" "vm-b: running (pid 4242)" "start output"
expect 0 restart vm-b
requested main 'POST /v1/instances/vm-b/restart -'
expect 0 stop vm-b
requested main 'POST /v1/instances/vm-b/stop -'
assert_eq "$OUT" "vm-b: stopped" "stop output"
expect 0 stop vm-b --json
assert_eq "$(jq -r .restarts <<<"$OUT")" 1 "stop --json"
expect 1 start refused-a
assert_contains "$ERR" "HTTP 422" "start refused"

note "delete: refused while running unless --force"
expect 1 delete vm-a
assert_contains "$ERR" "the instance is running (HTTP 409)" "running"
assert_contains "$ERR" "--force" "hint names --force"
expect 0 delete vm-a --force
requested main 'DELETE /v1/instances/vm-a?force=1 -'
assert_eq "$OUT" "deleted vm-a" "delete output"
expect 0 delete vm-b --json
assert_eq "$(jq -r .deleted <<<"$OUT")" vm-b "delete --json"
expect 1 delete vm-a
assert_contains "$ERR" "no such instance" "already deleted"

note "host"
expect 0 host
requested main 'GET /v1/host -'
assert_contains "$OUT" "host TPM:      swtpm:host=127.0.0.1,port=2321" "host TCTI"
assert_contains "$OUT" "SIMULATOR" "simulator warning"
assert_contains "$OUT" "SRK:           0x81000001" "SRK"
assert_contains "$OUT" "PCR policy:    sha256 PCRs 0 2 4 7" "PCRs"
assert_contains "$OUT" "instances:     2 (1 running)" "counts"
expect 0 host --json
assert_eq "$(jq -r .srk.handle <<<"$OUT")" 0x81000001 "host --json"

note "policy: show, approve with vtpmd's key"
expect 0 policy
requested main 'GET /v1/policy -'
assert_contains "$OUT" "(NOT approved)" "not approved yet"
assert_contains "$OUT" "vtpmctl policy approve --current" "says how to approve"
assert_contains "$OUT" "pcr 7   7777" "PCR values"
expect 0 policy approve --current
requested main 'POST /v1/policy/approve {"current":true}'
assert_contains "$OUT" "approved: 5c1d3e2f" "approve output"
expect 0 policy show --json
assert_eq "$(jq -r .current.approved <<<"$OUT")" true "approved"
assert_eq "$(jq -r '.approvals | length' <<<"$OUT")" 1 "one approval"

note "the API over plain HTTP (curl), and a malformed request"
out=$(curl -sS --unix-socket "$SOCK" http://vtpmd/v1/instances)
assert_eq "$(jq -r '.instances | length' <<<"$out")" 2 "curl list"
code=$(curl -s -o "$T/curl.out" -w '%{http_code}' --unix-socket "$SOCK" \
	"http://vtpmd/v1/instances/%2e%2e/x")
assert_eq "$code" 400 "curl with .. in path"
assert_eq "$(jq -r .error "$T/curl.out")" "'..' in path" "error body"
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X PUT http://vtpmd/v1/instances)
assert_eq "$code" 405 "method not allowed"
out=$(curl -sS --unix-socket "$SOCK" -d '{"name":"vm-d","start":false}' http://vtpmd/v1/instances)
assert_eq "$(jq -r .state <<<"$out")" stopped "curl create"

note "approval signed here with --key; vtpmd holds only the public key"
"$STUB" keygen "$T/approval.pem"
"$STUB" keygen "$T/other.pem"
start_stub signed --approval-key "$T/approval.pem"
export VTPMD_SOCKET=$SOCK
expect 0 policy
assert_contains "$OUT" "public key only" "private key not held"
expect 1 policy approve --current
assert_contains "$ERR" "only the public approval key" "refused without a key"
assert_contains "$ERR" "--key FILE" "hint names --key"
expect 1 policy approve --current --key "$T/other.pem"
assert_contains "$ERR" "is not vtpmd's approval key" "wrong key caught locally"
expect 1 policy approve --current --key "$T/missing.pem"
assert_contains "$ERR" "cannot sign with $T/missing.pem" "missing key"
if grep -q '"signature"' "$T/signed.req"; then fail "a bad key's signature was sent"; fi
expect 0 policy approve --current --key "$T/approval.pem"
assert_contains "$OUT" "approved: 5c1d3e2f" "signed approval accepted (signature verified)"
body=$(grep '^POST /v1/policy/approve ' "$T/signed.req" | tail -n 1 | cut -d' ' -f3-)
assert_eq "$(jq -r .policy <<<"$body")" \
	5c1d3e2f4a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f "signed policy"
assert_eq "$(jq -r '.values["7"]' <<<"$body")" \
	7777777777777777777777777777777777777777777777777777777777777777 "signed values"
assert_eq "$(jq -r '.signature.r | length' <<<"$body")" 64 "signature r"
expect 0 policy --json
assert_eq "$(jq -r .current.approved <<<"$OUT")" true "approved by signature"

note "servers stop cleanly (sanitizers check for leaks) and remove their sockets"
for pid in "${TEST_PIDS[@]}"; do
	stop_pid "$pid"
done
TEST_PIDS=()
[ ! -e "$T/main/api.sock" ] || fail "socket left behind"
for log in "$T"/main.log "$T"/signed.log; do
	[ ! -s "$log" ] || fail "stub wrote to stderr: $(cat "$log")"
done
