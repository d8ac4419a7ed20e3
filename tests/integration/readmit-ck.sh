#!/bin/bash
# A renamed or re-admitted host keeps no certificate under its old name
# (review of issue #11, finding 1; threat model: even root cannot "obtain
# a certificate under another host's name"). rack1 enrols; the operator
# renames the machine (`vtpm-ca host remove rack1`, `host add rack2` with
# the same EK) and it enrols again as rack2. Root on the machine, who kept
# rack1's enrolment (CK certificate C1), restores it and asks for a vTPM:
# C1 must be revoked (by `host remove`, and by the next CK issued for that
# EK whatever its name), and the Virtualization CA must refuse an EK
# certificate beneath a CK whose host is not admitted under its name with
# it as its current CK. Then the machine, back on its rack2 enrolment, gets
# its vTPM as before. Fails on a CA that checks only the CK's record
# (issued here, not revoked, in time).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl sqlite3 tpm2_createak tpm2_evictcontrol tpm2_quote
ATTEST=$TOP/build/vtpm-attest
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db

note "rack1 enrolled (as in make demo)"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name readmit >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both
printf 'privacy-ca-root = %s\n' "$T/ca/ca-root.pem" >"$T/svc.conf"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "approval public key"
"$CA" trust add --approval-key "$W/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json >"$W/policy.json"
jq -c .current.values "$W/policy.json" >"$W/values.json"
"$CA" approve-host-config --db "$DB" --id rack1-1 \
	--pcrs "$(jq -r '.pcrs | map(tostring) | join(",")' "$W/policy.json")" \
	--values "$W/values.json" >/dev/null || fail "approve-host-config"
admit_host "$DB" rack1
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
cp -a "$T/svc/state/host" "$W/host-as-rack1"   # root on the host keeps a copy
c1=$(openssl x509 -in "$T/svc/state/host/ck.pem" -noout -serial | cut -d= -f2)
note "rack1's CK certificate: $c1"

note "the operator renames the machine rack2: host remove rack1, host add rack2, enrol again"
"$CA" host remove rack1 --db "$DB" >/dev/null || fail "host remove"
"$CA" host add rack2 --ek-cert "$T/host-ek-rack1.pem" \
	--approval-key "$T/host-approval-rack1.pem" --db "$DB" >/dev/null || fail "host add rack2"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack2 >"$T/out" 2>&1 ||
	fail "host enroll as rack2: $(cat "$T/out")"
c2=$(openssl x509 -in "$T/svc/state/host/ck.pem" -noout -serial | cut -d= -f2)
cp -a "$T/svc/state/host" "$W/host-as-rack2"
note "rack2's CK certificate: $c2; hosts: $("$CA" host list --db "$DB" | tr '\n' ' ')"
curl -s "$CA_URL/v1/status/$c1" >"$W/status.json"
note "GET /v1/status/$c1: $(cat "$W/status.json")"

note "root on the machine restores its old enrolment (CN=rack1) and provisions a vTPM"
stop_pid "$VTPMD_PID"
rm -rf "$T/svc/state/host"
cp -a "$W/host-as-rack1" "$T/svc/state/host"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
rc=0
"$VTPMCTL" create vm-x --json >"$W/vm-x.json" 2>"$T/out" || rc=$?
if [ "$rc" -eq 0 ]; then
	jq -j '.endorsement.eks[0].certificate' "$W/vm-x.json" >"$W/ek.pem"
	note "vm-x's EK certificate: $(openssl x509 -in "$W/ek.pem" -noout -serial) host: $(jq -r '.endorsement.host // empty' "$W/vm-x.json")"
	detail=$(sqlite3 "$DB" "SELECT detail FROM audit WHERE action = 'virtualization/ek-certificate' AND outcome = 'issued' ORDER BY id DESC LIMIT 1")
	note "the CA's audit row: $detail"
	openssl x509 -in "$W/ek.pem" -noout -text | grep -aq rack1 ||
		fail "the EK certificate does not name rack1 (expected it to, today)"
	note "its guest enrols an AK; a challenger verifies a quote with --ca and require-host-config"
	tcti=$(jq -r .tcti "$W/vm-x.json")
	export TPM2TOOLS_TCTI=$tcti
	flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" \
		-u "$W/ak.pub" >/dev/null || fail "tpm2_createak"
	flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
	"$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak.pem" \
		>"$T/out" 2>&1 || fail "vtpm-attest enroll: $(cat "$T/out")"
	nonce=$(openssl rand -hex 16)
	flushed tpm2_quote -c 0x81000010 -l sha256:0,16 -q "$nonce" -m "$W/q.msg" -s "$W/q.sig" \
		-o "$W/q.pcrs" -g sha256 >/dev/null || fail "tpm2_quote"
	unset TPM2TOOLS_TCTI
	curl -s "$CA_URL/v1/privacy/ca" | jq -j .certificate >"$W/privacy.pem"
	"$ATTEST" verify --ak-cert "$W/ak.pem" --message "$W/q.msg" --signature "$W/q.sig" \
		--pcr-file "$W/q.pcrs" --nonce "$nonce" --trust "$T/ca/ca-root.pem" \
		--untrusted "$W/privacy.pem" --ca "$CA_URL" \
		--pcrs "sha256:16=$(printf '0%.0s' {1..64})" --policy require-host-config rack1-1 \
		--state "$W/st" >"$W/verdict" 2>&1 || true
	note "verdict: $(cat "$W/verdict")"
	fail "a machine no longer admitted as rack1 (hosts: $("$CA" host list --db "$DB" | awk "{print \$1}" | tr "\n" " ")) got a vTPM EK certificate on host rack1 (CK certificate $c1, not revoked) and the verdict: $(tail -1 "$W/verdict")"
fi
note "refused: $(cat "$T/out")"
jq -e '.revoked == true' "$W/status.json" >/dev/null ||
	fail "rack1's CK certificate $c1 was not revoked by host remove and re-enrolment"
grep -qi "$c1" "$T/out" || fail "the refusal does not name CK certificate $c1: $(cat "$T/out")"
"$VTPMCTL" info vm-x >/dev/null 2>&1 && fail "a vTPM vm-x was left behind by the refused create"

note "back on its rack2 enrolment, the machine gets its vTPM, on host rack2"
stop_pid "$VTPMD_PID"
rm -rf "$T/svc/state/host"
cp -a "$W/host-as-rack2" "$T/svc/state/host"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" create vm-y --json >"$W/vm-y.json" 2>"$T/out" || fail "create vm-y: $(cat "$T/out")"
jq -j '.endorsement.eks[0].certificate' "$W/vm-y.json" | openssl x509 -noout -text |
	grep -aq rack2 || fail "vm-y's EK certificate does not name rack2"
echo "ok"
