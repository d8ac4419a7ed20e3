#!/bin/bash
# The host-TPM link under an interposer (issue #11, item 11). tpmproxy
# (tests/tools/tpmproxy.c) sits on the TCP link between vtpmd and the
# simulated host TPM, as something on a discrete TPM's bus could, and:
#  - swaps TPM2_Load's object for one the attacker made under the SRK with
#    the same (public) approval policy and a state key it knows, then also
#    forges the Name in Load's response: the start is refused, and the
#    attacker's key reaches neither vtpmd's memory nor a worker; the same
#    swap under the CK's certification of a sealed object is refused;
#  - answers ReadPublic of the SRK with a key of its own, the first time
#    only or always: vtpmd refuses to start, naming the SRK pin, and no
#    session is ever salted to that key;
#  - flips bytes of responses (Load's Name, Unseal's encrypted key and
#    HMAC, a salted session's nonce, the SRK's public area): each is
#    refused with a clear error;
#  - flips a byte of PCR_Read's answers (the last value: PCR 7's), to
#    choose what vtpmd reports as the host's configuration and so what an
#    administrator approves: `vtpmctl policy` and `policy approve
#    --current` (with vtpmd's key or the administrator's --key) are
#    refused naming the link, and no approval is recorded; through the
#    unchanged link the host's true values are reported and approved.
# Without the proxy: a sealed.key replaced on disk by the attacker's
# object is refused before the host TPM sees it (the Name recorded in
# instance.json), and a record without the Name learns it.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# The release build: memscan cannot read the sanitizers' shadow memory.
VTPMD=${VTPMD_RELEASE:-$TOP/build/vtpmd}
PROXY=$TOP/build/tpmproxy
MEMSCAN=$TOP/build/memscan
HCHECK=$TOP/build/san/hostattest-check
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed, memscan reads them)"
require_tools tpm2_create tpm2_pcrextend tpm2_pcrread jq dd od sha256sum pgrep cmp
for tool in "$PROXY" "$MEMSCAN" "$HCHECK"; do
	[ -x "$tool" ] || fail "$tool is not built (make all san)"
done

# start_proxy NAME ARGS...: tpmproxy before the host TPM with ARGS; sets
# PROXY_PID and PROXY_TCTI; it reports to $T/NAME.proxy.
start_proxy() {
	local name=$1 port=""
	shift
	rm -f "$T/proxy.ready"
	mkfifo "$T/proxy.ready"
	"$PROXY" --upstream "$HOST_TPM_PORT" --ready-fd 4 "$@" 4>"$T/proxy.ready" \
		2>"$T/$name.proxy" &
	PROXY_PID=$!
	TEST_PIDS+=("$PROXY_PID")
	read -r -t 30 port <"$T/proxy.ready" || true
	rm -f "$T/proxy.ready"
	[ -n "$port" ] || fail "tpmproxy $name did not start: $(cat "$T/$name.proxy")"
	PROXY_TCTI="swtpm:host=127.0.0.1,port=$port"
	PROXY_LOG=$T/$name.proxy
}

stop_vtpmd() {
	stop_pid "$VTPMD_PID"
}

# vtpmd_refuses WHAT TCTI: vtpmd on the state of "svc" must exit with
# status 1 before it serves; its stderr is left in $T/refused.err.
vtpmd_refuses() {
	local what=$1 pid deadline
	export VTPMD_SOCKET=$T/svc/run/api.sock
	"$VTPMD" --state-dir "$T/svc/state" --run-dir "$T/svc/run" --socket "$VTPMD_SOCKET" \
		--root-tcti "$2" 2>"$T/refused.err" &
	pid=$!
	TEST_PIDS+=("$pid")
	deadline=$((SECONDS + 60))
	while kill -0 "$pid" 2>/dev/null; do
		"$VTPMCTL" host >/dev/null 2>&1 &&
			fail "$what: vtpmd started and serves; its log: $(cat "$T/refused.err")"
		[ "$SECONDS" -lt "$deadline" ] || fail "$what: vtpmd neither served nor exited"
	done
	wait_status "$pid"
	assert_eq "$STATUS" 1 "$what: vtpmd's exit status"
}

# no_key_anywhere WHAT HEX: the bytes HEX are in no memory of vtpmd
# (when it runs) or of any worker.
no_key_anywhere() {
	local pid hits
	for pid in ${VTPMD_PID:-} $(pgrep -f -- "$T/svc/state/instances/" || true); do
		kill -0 "$pid" 2>/dev/null || continue
		if ! hits=$("$MEMSCAN" "$pid" find "$2"); then
			kill -0 "$pid" 2>/dev/null && fail "$1: memscan of process $pid failed"
			continue # it ended meanwhile
		fi
		[ -z "$hits" ] || fail "$1: the attacker's key is in process $pid ($(tr '\0' ' ' \
			<"/proc/$pid/cmdline")): $hits"
	done
}

# attacker_object PUB SECRET DIR: what the attacker makes with nothing but
# access to the host TPM: a sealed object under the SRK holding SECRET,
# with the authPolicy of the sealed object PUB (a public area; the
# approval key's policy is no secret), DIR/attacker.pub and .priv.
attacker_object() {
	local dir=$3
	[ "$(od -An -tx1 -j 10 -N 2 "$1" | tr -d ' ')" == "0020" ] ||
		fail "$1: no SHA-256 authPolicy at offset 10"
	dd if="$1" of="$dir/policy.bin" bs=1 skip=12 count=32 status=none
	TPM2TOOLS_TCTI=$HOST_TCTI tpm2_create -C 0x81000001 -g sha256 \
		-a "fixedtpm|fixedparent|noda" -L "$dir/policy.bin" -i "$2" \
		-u "$dir/attacker.pub" -r "$dir/attacker.priv" >/dev/null ||
		fail "tpm2_create of the attacker's object"
}

start_host_tpm "$T/host"
mkdir "$T/attacker"

note "set-up, straight to the host TPM: an approval, vm-a never started, vm-b running"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a --no-start >/dev/null || fail "create vm-a"
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
stop_vtpmd
uuid=$(jq -er .uuid "$T/svc/state/instances/vm-a/instance.json" | tr -d '-')
head -c 32 /dev/urandom >"$T/attacker/key.bin"
akey=$(hex_of "$T/attacker/key.bin")
# shellcheck disable=SC2059,SC2001 # the format is the bytes
printf "$(sed 's/../\\x&/g' <<<"$uuid")" | cat "$T/attacker/key.bin" - >"$T/attacker/secret.bin"
attacker_object "$T/svc/state/instances/vm-a/sealed.key" "$T/attacker/secret.bin" "$T/attacker"

note "through the proxy passing everything: vtpmd starts and so does vm-b"
start_proxy pass
start_vtpmd svc --root-tcti "$PROXY_TCTI"
"$VTPMCTL" restart vm-b >/dev/null || fail "restart vm-b through a proxy that changes nothing"
stop_vtpmd
kill_hard "$PROXY_PID"

note "TPM2_Load's object swapped for the attacker's: refused, its key accepted nowhere"
start_proxy swap --swap-load "$T/attacker/attacker.pub" "$T/attacker/attacker.priv"
start_vtpmd svc --root-tcti "$PROXY_TCTI"
rc=0
timeout -k 5 30 "$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
assert_contains "$(cat "$PROXY_LOG")" "swapped TPM2_Load's object" "the proxy swapped the object"
no_key_anywhere "Load swapped" "$akey"
[ "$rc" -ne 0 ] || fail "vm-a started with the object the proxy swapped in"
assert_contains "$(cat "$T/out")" "the host TPM link returned another object's Name" \
	"refusal of a swapped object"
assert_eq "$(jfield "$("$VTPMCTL" info vm-a --json)" .state)" failed "vm-a's state"
stop_vtpmd
kill_hard "$PROXY_PID"

note "... and the Name in Load's response forged: the TPM refuses the Unseal's HMAC"
start_proxy forge --swap-load "$T/attacker/attacker.pub" "$T/attacker/attacker.priv" --forge-name
start_vtpmd svc --root-tcti "$PROXY_TCTI"
rc=0
timeout -k 5 30 "$VTPMCTL" start vm-a >"$T/out" 2>&1 || rc=$?
assert_contains "$(cat "$PROXY_LOG")" "forged the Name" "the proxy forged the Name"
no_key_anywhere "Load swapped, Name forged" "$akey"
[ "$rc" -ne 0 ] || fail "vm-a started with the object the proxy swapped in, Name forged"
assert_contains "$(cat "$T/out")" "refused the Unseal's authorization" \
	"refusal of a swapped object under a forged Name"
stop_vtpmd
kill_hard "$PROXY_PID"

note "the same swaps under the CK's certification of a sealed object"
mkdir "$T/hc"
"$HCHECK" host "$HOST_TCTI" "$T/hc" seal >/dev/null || fail "hostattest-check seal"
"$HCHECK" host "$HOST_TCTI" "$T/hc" ck >/dev/null || fail "hostattest-check ck"
attacker_object "$T/hc/sealed.bin" "$T/attacker/secret.bin" "$T/hc"
start_proxy certify --swap-load "$T/hc/attacker.pub" "$T/hc/attacker.priv"
rc=0
"$HCHECK" host "$PROXY_TCTI" "$T/hc" certify-sealed 00 >/dev/null 2>"$T/out" || rc=$?
[ "$rc" -ne 0 ] || fail "the CK certified the object the proxy swapped in"
assert_contains "$(cat "$T/out")" "the host TPM link returned another object's Name" \
	"refusal to certify a swapped object"
kill_hard "$PROXY_PID"
start_proxy certify-forge --swap-load "$T/hc/attacker.pub" "$T/hc/attacker.priv" --forge-name
rc=0
"$HCHECK" host "$PROXY_TCTI" "$T/hc" certify-sealed 00 >/dev/null 2>"$T/out" || rc=$?
[ "$rc" -ne 0 ] || fail "the CK certified the object the proxy swapped in under a forged Name"
assert_contains "$(cat "$PROXY_LOG")" "forged the Name" "the proxy forged the Name (certify)"
# The CK's policy session is salted: its HMAC covers the command's cpHash,
# which names the object vtpmd sent, so the host TPM itself refuses the
# certification of another object before vtpmd's check of the attestation
# (which says "the CK certified another object") has anything to check;
# vtpmd says what the refusal means.
assert_contains "$(cat "$T/out")" "certify with the CK: the host TPM refused the authorization \
of TPM2_Certify by the CK" "refusal of a certification of a swapped object"
assert_contains "$(cat "$T/out")" "an object or Name changed on the host TPM link" \
	"refusal of a certification of a swapped object"
[ ! -e "$T/hc/sealed.attest" ] || fail "a certification of the swapped object was written"
kill_hard "$PROXY_PID"

pin="$T/svc/state/srk.name"
for when in first always; do
	note "the SRK's public area substituted ($when): vtpmd refuses to start, nothing salted to it"
	start_proxy "srk-$when" --srk-public "$when"
	vtpmd_refuses "SRK substituted ($when)" "$PROXY_TCTI"
	assert_contains "$(cat "$PROXY_LOG")" "answered ReadPublic of the SRK with the substitute" \
		"the proxy substituted the SRK"
	if grep -q "salted to the substitute" "$PROXY_LOG"; then
		fail "SRK substituted ($when): a session was salted to the proxy's key: $(cat "$PROXY_LOG")"
	fi
	assert_contains "$(cat "$T/refused.err")" "$pin" "the refusal names the pin"
	kill_hard "$PROXY_PID"
done

# refused_start WHAT PROXY-ARGS... -- MESSAGE: vm-b's start through the
# proxy fails with MESSAGE, and vm-b does not run.
refused_start() {
	local what=$1 msg rc=0
	shift
	start_proxy flip "${@:1:$#-2}"
	msg=${*: -1}
	start_vtpmd svc --root-tcti "$PROXY_TCTI"
	"$VTPMCTL" stop vm-b >/dev/null || fail "$what: stop vm-b"
	timeout -k 5 30 "$VTPMCTL" start vm-b >"$T/out" 2>&1 || rc=$?
	assert_contains "$(cat "$PROXY_LOG")" "flipped byte" "$what: the proxy flipped a byte"
	[ "$rc" -ne 0 ] || fail "$what: vm-b started"
	assert_contains "$(cat "$T/out")" "$msg" "$what: the refusal"
	[ "$(jfield "$("$VTPMCTL" info vm-b --json)" .state)" != running ] ||
		fail "$what: vm-b runs"
	stop_vtpmd
	kill_hard "$PROXY_PID"
}
note "bytes flipped in responses: each start is refused"
refused_start "Load's Name" --flip 157:25 -- "the host TPM link returned another object's Name"
refused_start "Unseal's encrypted key" --flip 15e:16 -- "does not authenticate"
refused_start "Unseal's response HMAC" --flip 15e:-1 -- "does not authenticate"
# The first salted session a start makes is its PCR read's: the TPM checks
# its HMAC, made with the key vtpmd derived from the flipped nonce (the
# Unseal's under a forged Name is refused by the TPM above).
refused_start "a salted session's nonceTPM" --flip 176:20 -- \
	"the host TPM refused the session HMAC of TPM2_PCR_Read"
note "a byte of the SRK's public area flipped: vtpmd refuses to start"
start_proxy srk-flip --flip 173:-80
vtpmd_refuses "SRK public area flipped" "$PROXY_TCTI"
assert_contains "$(cat "$T/refused.err")" "$pin" "the refusal names the pin"
kill_hard "$PROXY_PID"

note "sealed.key replaced by the attacker's object (its writer alone): refused before the TPM"
inst=$T/svc/state/instances
cp "$inst/vm-a/sealed.key" "$T/sealed-a"
cat "$T/attacker/attacker.pub" "$T/attacker/attacker.priv" >"$inst/vm-a/sealed.key"
start_vtpmd svc --root-tcti "$HOST_TCTI"
# (policy show reads the host PCRs, which the start then takes as read)
"$VTPMCTL" policy show >/dev/null || fail "policy show"
before=$(jfield "$("$VTPMCTL" host --json)" .host_tpm_commands)
expect_exit 1 "start vm-a with the attacker's object as its sealed.key" "$VTPMCTL" start vm-a
assert_contains "$(cat "$T/out")" "is not the object sealed for vm-a at create" 	"refusal of a sealed.key swapped on disk"
after=$(jfield "$("$VTPMCTL" host --json)" .host_tpm_commands)
assert_eq "$after" "$before" "host-TPM commands for a swapped sealed.key"
no_key_anywhere "sealed.key swapped" "$akey"
cp "$T/sealed-a" "$inst/vm-a/sealed.key"

note "straight to the host TPM again: vm-a and vm-b start with their own keys"
"$VTPMCTL" start vm-a >/dev/null || fail "start vm-a after the attacks"
"$VTPMCTL" restart vm-b >/dev/null || fail "restart vm-b after the attacks"
no_key_anywhere "after the attacks" "$akey"

# sealed_name FILE: the Name of the object in a sealed.key, from its
# public area: 000b || SHA-256(TPMT_PUBLIC).
sealed_name() {
	local size
	size=$((16#$(od -An -tx1 -N 2 "$1" | tr -d ' ')))
	printf '000b%s' "$(dd if="$1" bs=1 skip=2 count="$size" status=none | sha256sum | cut -c1-64)"
}
note "the Name recorded at create is the sealed object's; a record without it learns it"
assert_eq "$(jq -r .sealed_name "$inst/vm-a/instance.json")" "$(sealed_name "$inst/vm-a/sealed.key")" \
	"vm-a's recorded Name"
stop_vtpmd
jq 'del(.sealed_name)' "$inst/vm-b/instance.json" >"$T/old.json"
cp "$T/old.json" "$inst/vm-b/instance.json"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" restart vm-b >/dev/null || fail "restart vm-b with a record from before Names"
assert_eq "$(jq -r .sealed_name "$inst/vm-b/instance.json")" "$(sealed_name "$inst/vm-b/sealed.key")" \
	"vm-b's learnt Name"

note "an approval's ticket altered on the link (VerifySignature's answer): made again"
# The host TPM refuses the ticket at PolicyAuthorize; vtpmd verifies the
# approval again rather than take the refusal for an unapproved host.
stop_vtpmd
start_proxy ticket --flip 177:-1:once
start_vtpmd svc --root-tcti "$PROXY_TCTI"
"$VTPMCTL" restart vm-b >"$T/out" 2>&1 ||
	fail "ticket: vm-b did not restart after its approval's ticket was altered: $(cat "$T/out")"
assert_contains "$(cat "$PROXY_LOG")" "flipped byte" "ticket: the proxy flipped the ticket"
assert_contains "$(cat "$T/svc.log")" "was refused; verifying the approval again" \
	"ticket: vtpmd verified the approval again"
stop_vtpmd
kill_hard "$PROXY_PID"
start_vtpmd svc --root-tcti "$HOST_TCTI"

note "PCR_Read's answers altered (PCR 7's last byte): nothing reported, nothing approved"
stop_vtpmd
approvals=$T/svc/state/approvals.json
cp "$approvals" "$T/approvals.before"
# The host changes (PCR 7 extended): the administrator is about to approve.
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend "7:sha256=$(printf 'update' | sha256sum | cut -c1-64)" ||
	fail "extend the host's PCR 7"
truth=$(TPM2TOOLS_TCTI=$HOST_TCTI pcr_value 7)
start_proxy pcr --flip-param 17e:-1
start_vtpmd svc --root-tcti "$PROXY_TCTI"
link="the host TPM's response to TPM2_PCR_Read does not authenticate (its session HMAC fails): \
altered on the host TPM link"
expect_exit 1 "vtpmctl policy through an interposer" "$VTPMCTL" policy --json
assert_contains "$(cat "$T/out")" "$link" "vtpmctl policy's refusal"
assert_contains "$(cat "$T/out")" "HTTP 503" "vtpmctl policy's refusal"
expect_exit 1 "approve --current through an interposer" "$VTPMCTL" policy approve --current
assert_contains "$(cat "$T/out")" "$link" "approve --current's refusal"
# The production flow: the administrator signs what vtpmd reports.
expect_exit 1 "approve --current --key through an interposer" "$VTPMCTL" policy approve \
	--current --key "$T/svc/state/approval.pem"
assert_contains "$(cat "$T/out")" "$link" "approve --current --key's refusal"
assert_contains "$(cat "$PROXY_LOG")" "flipped byte" "the proxy flipped PCR_Read's answers"
cmp -s "$approvals" "$T/approvals.before" || fail "an approval was recorded through the interposer"
stop_vtpmd
kill_hard "$PROXY_PID"

note "... through the unchanged link, the host's values are reported and approved"
start_proxy pcr-pass
start_vtpmd svc --root-tcti "$PROXY_TCTI"
out=$("$VTPMCTL" policy --json) || fail "vtpmctl policy through a proxy that changes nothing"
assert_eq "$(jq -r '.current.values["7"]' <<<"$out")" "$truth" "PCR 7 as vtpmd reports it"
assert_eq "$(jq -r .current.approved <<<"$out")" false "the new configuration's approval"
"$VTPMCTL" policy approve --current --key "$T/svc/state/approval.pem" >/dev/null ||
	fail "approve --current --key through a proxy that changes nothing"
assert_eq "$(jq -r '.approvals[-1].values["7"]' "$approvals")" "$truth" "PCR 7 approved"
"$VTPMCTL" restart vm-b >/dev/null || fail "restart vm-b in the approved configuration"
stop_vtpmd
kill_hard "$PROXY_PID"

echo ok
