#!/bin/bash
# Only an attestation key's certificate vouches for a quote. vtpm-ca's
# CAs issue AK, vEK and host CK certificates under the one root a
# challenger trusts (docs/ca-api.md), so `vtpm-attest verify` requires the
# AK certificate's role (certs_check_ak: tcg-kp-AIKCertificate, CA:FALSE,
# digitalSignature, no EK or host-key marks). Tried: root on an enrolled
# host has the CK quote a challenger's nonce and gives the CK certificate
# as the AK certificate (before: "trusted: hardware TPM", even under
# --policy reject-virtual); a vTPM's EK certificate given as the AK
# certificate. Both refused, naming the role. (Found by the attack review
# of issue #11.)
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
export VTPM_CA=$TOP/build/vtpm-ca
CA=$VTPM_CA
ATTEST=$TOP/build/vtpm-attest
HCHECK=$TOP/build/hostattest-check
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl base64
for t in "$VTPMD" "$CA" "$ATTEST" "$HCHECK"; do
	[ -x "$t" ] || fail "$t is missing (make)"
done
W=$T/w
mkdir -p "$W/hc" "$T/ca"
DB=$T/ca/ca.db

note "a host enrolled with vtpm-ca as in make demo (lab: approval key in vtpmd's state)"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name attack >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both
printf 'privacy-ca-root = %s\n' "$T/ca/ca-root.pem" >"$T/svc.conf"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "the approval key's public half"
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
cp "$T/svc/state/host/ck.pem" "$W/ck.pem"
"$VTPMCTL" create vm-a --no-start --json >"$W/vm-a.json" || fail "create vm-a: $(cat "$W/vm-a.json")"
jq -er '.endorsement.eks[0].certificate' "$W/vm-a.json" >"$W/vek.pem" || fail "vm-a's EK certificate"
"$CA" cert --role virtualization --db "$DB" >"$W/virtualization.pem" ||
	fail "vtpm-ca cert --role virtualization"
"$CA" cert --role privacy --db "$DB" >"$W/privacy.pem" || fail "vtpm-ca cert --role privacy"
stop_pid "$VTPMD_PID"

note "the host's CK quotes a challenger's nonce (root on the host, approved configuration)"
cp "$T/svc/state/approval.pem" "$W/hc/approval.pem"
nonce=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$HCHECK" host "$HOST_TCTI" "$W/hc" quote "$nonce" >"$W/quote.out" 2>&1 ||
	fail "CK quote: $(cat "$W/quote.out")"
pcrs=$(awk '$1 == "pcr" { printf "%s\"%s\": \"%s\"", sep, $2, $3; sep = ", " }' "$W/quote.out")
printf '{"attest": "%s", "signature": "%s", "pcrs": {"sha256": {%s}}}\n' \
	"$(base64 -w0 "$W/hc/quote.attest")" "$(base64 -w0 "$W/hc/quote.sig")" "$pcrs" \
	>"$W/bundle.json"

note "the CK certificate given as the AK certificate"
rc=0
"$ATTEST" verify --ak-cert "$W/ck.pem" --trust "$T/ca/ca-root.pem" \
	--untrusted "$W/privacy.pem" --quote "$W/bundle.json" \
	--nonce "$nonce" --policy reject-virtual --state "$W/state" >"$W/verdict" 2>&1 || rc=$?
note "verdict: $(cat "$W/verdict")"
[ "$rc" -ne 0 ] || fail "a host CK certificate verified as an AK certificate: $(cat "$W/verdict")"
assert_contains "$(cat "$W/verdict")" "a host key's certificate (CK or BK), not an AK certificate" \
	"the refusal names the role"

note "a vTPM's EK certificate given as the AK certificate"
for policy in accept-virtual reject-virtual; do
	rc=0
	"$ATTEST" verify --ak-cert "$W/vek.pem" --trust "$T/ca/ca-root.pem" \
		--untrusted "$W/virtualization.pem" --quote "$W/bundle.json" \
		--nonce "$nonce" --policy "$policy" --state "$W/state" >"$W/verdict" 2>&1 || rc=$?
	[ "$rc" -ne 0 ] || fail "a vEK certificate verified as an AK certificate ($policy)"
	assert_contains "$(cat "$W/verdict")" \
		"an endorsement key's certificate, not an AK certificate" "vEK refused ($policy)"
done
echo "ok"
