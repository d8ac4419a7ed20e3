#!/bin/bash
# No AK certificate beneath an expired host CK certificate (review of
# issue #11, finding 4). rack1 enrols and creates vm-a; six years later
# (the CA's clock moved by the LD_PRELOAD shim build/timeshift.so, from
# tests/tools/preload/timeshift.c, on `vtpm-ca serve` only) the host's
# 5-year CK certificate has expired: the guest's AK enrolment must be
# refused, naming the expiry, though vEK certificates never expire (TCG
# profile). And before then, an AK certificate may not outlive its CK
# certificate: its notAfter is capped at the CK's (checked with a CA
# clock a few days before the CK's end). Fails on a CA that checks only
# revocation along the AK's lineage.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
ATTEST=$TOP/build/vtpm-attest
SHIFT=$((6 * 365 * 86400))
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createak tpm2_evictcontrol
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db
SHIM=$TOP/build/timeshift.so
[ -f "$SHIM" ] || fail "$SHIM is missing: run make all"

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

ck_end=$(date -d "$(openssl x509 -in "$W/ck.pem" -noout -enddate | cut -d= -f2)" +%s)
export TPM2TOOLS_TCTI=$tcti
flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak"
flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
unset TPM2TOOLS_TCTI

note "ten days before the CK certificate ends: the AK certificate ends with it"
stop_pid "$CA_PID"
LD_PRELOAD=$SHIM TIMESHIFT_SECONDS=$((ck_end - $(date +%s) - 10 * 86400)) \
	start_vtpm_ca ca-near --db "$DB" --role both
"$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak.pem" \
	>"$T/out" 2>&1 || fail "AK enrolment before the CK's end: $(cat "$T/out")"
ak_end=$(date -d "$(openssl x509 -in "$W/ak.pem" -noout -enddate | cut -d= -f2)" +%s)
note "AK certificate ends $(date -u -d "@$ak_end"), CK certificate $(date -u -d "@$ck_end")"
[ "$ak_end" -le "$ck_end" ] || fail "the AK certificate outlives its CK certificate"

note "six years on: the CA's clock is past the CK certificate's notAfter"
stop_pid "$CA_PID"
LD_PRELOAD=$SHIM TIMESHIFT_SECONDS=$SHIFT start_vtpm_ca ca-later --db "$DB" --role both
openssl x509 -in "$W/ck.pem" -noout -checkend $((SHIFT - (SECONDS + 3600))) >/dev/null &&
	fail "the CK certificate would still be valid then (test set-up)"

note "the guest enrols its AK again"
if "$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak2.pem" \
	>"$T/out" 2>&1; then
	note "AK certificate: $(openssl x509 -in "$W/ak2.pem" -noout -serial -startdate -enddate | tr '\n' ' ')"
	fail "the Privacy CA certified an AK beneath a CK certificate that expired $(openssl x509 -in "$W/ck.pem" -noout -enddate | cut -d= -f2)"
fi
note "refused: $(cat "$T/out")"
grep -q "has expired" "$T/out" || fail "the refusal does not say the CK certificate expired"
echo "ok"
