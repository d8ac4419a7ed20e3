#!/bin/bash
# The host's CK and BK work only in an approved host configuration (issue
# #11, item 3; src/hwtpm/hwtpm_attest.c): their authPolicy is the sealed
# state keys' (PolicyAuthorize by the approval key of a PolicyPCR digest)
# and userWithAuth is clear, so every signature and decryption goes
# through a policy session that only an approved configuration satisfies.
#  - after enrolment the CK and BK carry that policy (tpm2_print), the
#    state keys' very digest;
#  - a simulated reboot into an unapproved host configuration (PCR 7
#    extended, vtpmd started again): root on the host cannot have the CK
#    quote the host PCRs or certify a vTPM's sealed object with tpm2-tools
#    (the empty authValue no longer works); vtpmd refuses to enrol (409) naming
#    the PCR that changed and the command that approves, keeping the
#    previous enrolment, and a new vTPM is refused with nothing left;
#  - once the administrator approves the configuration (vtpmctl policy
#    approve --key, the production flow: vtpmd holds only the public key)
#    and the CA approves it too, the enrolment and the vTPM's EK
#    certificates (the CK's certification and quote) succeed, and the CK
#    still refuses its empty authValue;
#  - a CK made by an older vtpmd (userWithAuth, no policy) is refused for
#    use with a message naming `vtpmctl host enroll`, which replaces it.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
export VTPM_CA=$TOP/build/vtpm-ca
CA=$VTPM_CA
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_pcrextend tpm2_quote tpm2_certify tpm2_load tpm2_print \
	tpm2_readpublic tpm2_flushcontext tpm2_create tpm2_evictcontrol tpm2_getcap
for t in "$VTPMD" "$CA"; do
	[ -x "$t" ] || fail "$t is missing (make)"
done
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db
CK=0x81000002
BK=0x81000003
SRK=0x81000001

# host CMD...: a tpm2-tools command against the host TPM, flushed after.
host() {
	TPM2TOOLS_TCTI=$HOST_TCTI flushed "$@"
}

# ca_approve ID: the CA approves the host's present PCR values (vtpmctl
# policy --json), as its operator would after the administrator.
ca_approve() {
	"$VTPMCTL" policy --json | jq -c .current.values >"$W/values.json"
	"$CA" approve-host-config --db "$DB" --id "$1" \
		--pcrs "$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')" \
		--values "$W/values.json" >/dev/null || fail "approve-host-config $1"
}

# auth_policy FILE: the authPolicy (hex) of a TPM2B_PUBLIC.
auth_policy() {
	tpm2_print -t TPM2B_PUBLIC "$1" | sed -n 's/^authorization policy: //p'
}

# reboot_vtpmd: vtpmd and its workers gone, vtpmd started again on the
# same host TPM (whose PCRs the caller changed).
reboot_vtpmd() {
	local pids
	pids=$(pgrep -P "$VTPMD_PID" || true)
	kill_hard "$VTPMD_PID"
	for p in $pids; do
		kill -KILL "$p" 2>/dev/null || true
	done
	start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
}

# attacker_quote WHAT: root on the host quotes the host PCRs with the CK,
# authorizing it with its empty authValue; must be refused.
attacker_quote() {
	if host tpm2_quote -c "$CK" -l sha256:0,2,4,7 -q 0102030405 -g sha256 \
		-m "$W/q.msg" -s "$W/q.sig" >"$T/out" 2>&1; then
		fail "$1: the CK quoted the host PCRs with its empty authValue"
	fi
}

# attacker_certify WHAT: root on the host has the CK certify vm-a's sealed
# state-key object, with the CK's empty authValue; must be refused.
attacker_certify() {
	local n sealed=$T/svc/state/instances/vm-a/sealed.key
	n=$((16#$(od -An -tx1 -N2 "$sealed" | tr -d ' ')))
	head -c $((2 + n)) "$sealed" >"$W/sealed.pub"
	tail -c +$((3 + n)) "$sealed" >"$W/sealed.priv"
	TPM2TOOLS_TCTI=$HOST_TCTI tpm2_load -C "$SRK" -u "$W/sealed.pub" -r "$W/sealed.priv" \
		-c "$W/sealed.ctx" >"$T/out" 2>&1 || fail "$1: tpm2_load of vm-a's sealed object: $(cat "$T/out")"
	if host tpm2_certify -c "$W/sealed.ctx" -C "$CK" -g sha256 -o "$W/c.attest" \
		-s "$W/c.sig" >"$T/out" 2>&1; then
		fail "$1: the CK certified vm-a's sealed object with its empty authValue"
	fi
}

note "host TPM with its manufacturer's EK certificate; vtpm-ca trusting the manufacturer"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name ck-policy >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both

note "vtpmd with the administrator's public approval key only (production)"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/admin.pem" 2>/dev/null ||
	fail "approval key"
openssl ec -in "$W/admin.pem" -pubout -out "$W/admin.pub" 2>/dev/null || fail "public key"
printf 'approval-public-key = %s\nprivacy-ca-root = %s\nvirtualization-ca-root = %s\n' \
	"$W/admin.pub" "$T/ca/ca-root.pem" "$T/ca/ca-root.pem" >"$T/svc.conf"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
admit_host "$DB" rack1

note "before any approval, the host cannot enrol: its CK and BK would not work"
expect_exit 1 "enrol before any approval" "$VTPMCTL" host enroll --ca "$CA_URL" --name rack1
assert_contains "$(cat "$T/out")" "HTTP 409" "status"
assert_contains "$(cat "$T/out")" "refusing to enrol the host" "what is refused"
assert_contains "$(cat "$T/out")" "no host configuration over these PCRs has been approved" \
	"the reason"
assert_contains "$(cat "$T/out")" "vtpmctl policy approve --current --key FILE" "how to approve"
[ ! -e "$T/svc/state/host/enrolment.json" ] || fail "an enrolment was kept"

note "the configuration approved (administrator, then CA): enrol, create vm-a with EK certificates"
"$VTPMCTL" policy approve --current --key "$W/admin.pem" >/dev/null || fail "policy approve"
"$CA" trust add --approval-key "$W/admin.pub" --db "$DB" >/dev/null || fail "trust approval key"
ca_approve boot-1
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" create vm-a >"$T/out" 2>&1 || fail "create vm-a: $(cat "$T/out")"
assert_eq "$("$VTPMCTL" info vm-a --json | jq '.endorsement.eks | length')" 2 "vm-a's EKs"

note "the CK and BK: no userWithAuth, the state keys' authPolicy"
host tpm2_readpublic -c "$CK" -o "$W/ck.pub" >/dev/null || fail "read the CK"
host tpm2_readpublic -c "$BK" -o "$W/bk.pub" >/dev/null || fail "read the BK"
n=$((16#$(od -An -tx1 -N2 "$T/svc/state/instances/vm-a/sealed.key" | tr -d ' ')))
head -c $((2 + n)) "$T/svc/state/instances/vm-a/sealed.key" >"$W/state.pub"
want=$(auth_policy "$W/state.pub")
[ -n "$want" ] || fail "the sealed state key has no authPolicy"
for k in ck bk; do
	p=$(tpm2_print -t TPM2B_PUBLIC "$W/$k.pub")
	case "$p" in
	*userwithauth*) fail "the $k has userWithAuth: $(grep -m1 'value:' <<<"$p")" ;;
	esac
	assert_eq "$(auth_policy "$W/$k.pub")" "$want" "the $k's authPolicy"
done
cp "$T/svc/state/host/ck.pem" "$W/ck-before.pem"

note "the approved configuration: still no quote or certification with the empty authValue"
attacker_quote "approved configuration"
attacker_certify "approved configuration"

note "a simulated reboot into an unapproved configuration (PCR 7 changes)"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend \
	7:sha256=0000000000000000000000000000000000000000000000000000000000000007 ||
	fail "pcrextend"
reboot_vtpmd
attacker_quote "unapproved configuration"
attacker_certify "unapproved configuration"

note "vtpmd refuses to enrol, naming the PCR and the command that approves; the enrolment is kept"
expect_exit 1 "enrol in an unapproved configuration" "$VTPMCTL" host enroll --ca "$CA_URL" \
	--name rack1
note "refusal: $(head -n 1 "$T/out")"
assert_contains "$(cat "$T/out")" "HTTP 409" "status"
assert_contains "$(cat "$T/out")" "the host's CK and BK work only in an approved host" "reason"
assert_contains "$(cat "$T/out")" "PCR 7 is " "names the PCR"
assert_contains "$(cat "$T/out")" "vtpmctl policy approve --current --key FILE" "how to approve"
cmp -s "$W/ck-before.pem" "$T/svc/state/host/ck.pem" || fail "the enrolment was replaced"

note "a new vTPM is refused in the unapproved configuration, nothing left"
expect_exit 1 "create vm-b in an unapproved configuration" "$VTPMCTL" create vm-b
note "refusal: $(head -n 1 "$T/out")"
assert_contains "$(cat "$T/out")" "approve" "the refusal says to approve"
"$VTPMCTL" info vm-b >/dev/null 2>&1 && fail "vm-b is left"
[ ! -e "$T/svc/state/instances/vm-b" ] || fail "vm-b's directory is left"

note "the administrator and the CA approve the new configuration: all works again"
"$VTPMCTL" policy approve --current --key "$W/admin.pem" >/dev/null || fail "policy approve"
ca_approve boot-2
"$VTPMCTL" create vm-b >"$T/out" 2>&1 || fail "create vm-b after approval: $(cat "$T/out")"
assert_eq "$("$VTPMCTL" info vm-b --json | jq '.endorsement.eks | length')" 2 "vm-b's EKs"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll after approval: $(cat "$T/out")"
attacker_quote "approved again"

note "a CK made by an older vtpmd (userWithAuth, no policy) is refused; enrolling replaces it"
host tpm2_evictcontrol -C o -c "$CK" >/dev/null || fail "evict the CK"
host tpm2_create -C "$SRK" -G ecc256:ecdsa-sha256:null -g sha256 \
	-a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|sign" \
	-u "$W/old.pub" -r "$W/old.priv" >/dev/null || fail "create an old-style CK"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_load -C "$SRK" -u "$W/old.pub" -r "$W/old.priv" \
	-c "$W/old.ctx" >/dev/null || fail "load the old-style CK"
host tpm2_evictcontrol -C o -c "$W/old.ctx" "$CK" >/dev/null || fail "persist the old-style CK"
reboot_vtpmd
expect_exit 1 "create vm-c with an older vtpmd's CK" "$VTPMCTL" create vm-c
note "refusal: $(head -n 1 "$T/out")"
assert_contains "$(cat "$T/out")" "vtpmctl host enroll" "names the command"
[ ! -e "$T/svc/state/instances/vm-c" ] || fail "vm-c's directory is left"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll replacing the old CK: $(cat "$T/out")"
host tpm2_readpublic -c "$CK" -o "$W/ck2.pub" >/dev/null || fail "read the new CK"
assert_eq "$(auth_policy "$W/ck2.pub")" "$want" "the new CK's authPolicy"
"$VTPMCTL" create vm-c >"$T/out" 2>&1 || fail "create vm-c: $(cat "$T/out")"

note "nothing left loaded in the host TPM once vtpmd stopped"
stop_pid "$VTPMD_PID"
assert_eq "$(TPM2TOOLS_TCTI=$HOST_TCTI tpm2_getcap handles-transient)" "" "transient handles"
assert_eq "$(TPM2TOOLS_TCTI=$HOST_TCTI tpm2_getcap handles-loaded-session)" "" "sessions"
echo "ok"
