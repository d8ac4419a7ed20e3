#!/bin/bash
# ATTACK (review of issue #11): the Privacy CA keeps issuing AK
# certificates beneath a host CK certificate that has expired.
# A vEK certificate is refused beneath an expired CK (ca_verify.c cv_ck
# checks "in time"), but the AK path checks only revocation: the parent's
# pa_issue_ak (pa_ak_vek, pa_parents_ok) and the child's checks never look
# at the CK certificate's notAfter (nor whether its host is still
# admitted), and vEK certificates never expire (TCG profile). So a host
# that never re-enrolled, six years after its 5-year CK certificate
# expired, still has its vTPMs' AKs certified, each AK certificate valid a
# year from the day it was issued; the challenger (vtpm-attest verify),
# which sees only the CK's serial, says "trusted: virtual TPM on host
# rack1 ...". The CK's expiry, the point where the CA stops vouching for
# the host until it proves its EK again, does not reach the leaves.
# Time is moved with an LD_PRELOAD shim (tests/tools/attack/timeshift.c)
# on `vtpm-ca serve` only.
# FAILS today (the AK is certified); passes once AK issuance refuses a
# lineage whose CK certificate has expired (and clamps an AK
# certificate's notAfter to its CK certificate's).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
ATTEST=$TOP/build/vtpm-attest
SHIFT=$((6 * 365 * 86400))
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl cc tpm2_createak tpm2_evictcontrol
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db
cc -shared -fPIC -o "$W/timeshift.so" "$TOP/tests/tools/attack/timeshift.c" -ldl ||
	fail "build timeshift.so"

note "rack1 enrolled, vm-a created with its EK certificate (as in make demo)"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name expiry >/dev/null || fail "vtpm-ca init"
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
openssl x509 -in "$T/svc/state/host/ck.pem" -out "$W/ck.pem"
"$VTPMCTL" create vm-a --ek ecc-p256 >"$T/out" 2>&1 || fail "create vm-a: $(cat "$T/out")"
tcti=$("$VTPMCTL" info vm-a --json | jq -r .tcti)
note "rack1's CK certificate: $(openssl x509 -in "$W/ck.pem" -noout -serial -enddate | tr '\n' ' ')"

note "six years on: the CA's clock is past the CK certificate's notAfter"
stop_pid "$CA_PID"
LD_PRELOAD=$W/timeshift.so TIMESHIFT_SECONDS=$SHIFT start_vtpm_ca ca-later --db "$DB" --role both
openssl x509 -in "$W/ck.pem" -noout -checkend $((SHIFT - (SECONDS + 3600))) >/dev/null &&
	fail "the CK certificate would still be valid then (test set-up)"

note "the guest enrols an AK"
export TPM2TOOLS_TCTI=$tcti
flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak"
flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
if "$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak.pem" \
	>"$T/out" 2>&1; then
	note "AK certificate: $(openssl x509 -in "$W/ak.pem" -noout -serial -startdate -enddate | tr '\n' ' ')"
	fail "the Privacy CA certified an AK beneath a CK certificate that expired $(openssl x509 -in "$W/ck.pem" -noout -enddate | cut -d= -f2)"
fi
note "refused: $(cat "$T/out")"
echo "ok"
