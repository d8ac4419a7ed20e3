#!/bin/bash
# ATTACK (review of issue #11, "Revocation that reaches every leaf"): a
# guest breaks the Privacy CA's published CRL for every challenger.
# The Privacy CA issues a guest any number of AK certificates (a new one,
# new serial, at every enrolment of the same AK: nothing bounds them per
# vEK), and the cascade lists every one of them in the Privacy CA's CRL
# once their CK or vEK certificate is revoked (a host's re-enrolment
# revokes its CK as superseded). Over HTTP a CRL is at most 64 KiB (about
# 1,700 entries), beyond which GET /v1/privacy/crl answers 500: the CRL
# that every certificate's cRLDistributionPoint names, for all hosts and
# vTPMs of this CA, is gone until those AK certificates expire
# (ak_validity_days), and `openssl verify -crl_check_all` with a fetched
# CRL, and any challenger that fetches it, can no longer check anything.
# FAILS today (500); passes once one vEK cannot grow the CRL without
# bound (e.g. a limit of valid AK certificates per vEK and per AK key, a
# re-enrolment of the same AK key revoking or returning the previous
# certificate, and a CRL served from the file `vtpm-ca crl` maintains or
# partitioned CRLs instead of a hard 64 KiB failure).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
ATTEST=$TOP/build/vtpm-attest
N=${N:-2100}
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createek tpm2_createak tpm2_evictcontrol tpm2_readpublic
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db

note "rack1 enrolled, vm-a created with its EK certificates (as in make demo)"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name bloat >/dev/null || fail "vtpm-ca init"
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
"$VTPMCTL" create vm-a --ek ecc-p256 >"$T/out" 2>&1 || fail "create vm-a: $(cat "$T/out")"
tcti=$("$VTPMCTL" info vm-a --json | jq -r .tcti)

note "the guest: one AK, enrolled $N times"
export TPM2TOOLS_TCTI=$tcti
flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak"
flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
start=$SECONDS
for i in $(seq "$N"); do
	if ! "$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 \
		--out "$W/ak-$i.pem" >"$T/out" 2>&1; then
		note "enrolment $i refused: $(cat "$T/out")"
		break
	fi
done
note "$(ls "$W"/ak-*.pem | wc -l) AK certificates in $((SECONDS - start)) s"
note "the host re-enrols (its CK rotates: the old one is revoked, with all beneath it)"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host re-enroll: $(cat "$T/out")"
HTTP=$(curl -s -o "$W/privacy.crl" -w '%{http_code}' "$CA_URL/v1/privacy/crl")
note "GET /v1/privacy/crl: HTTP $HTTP, revoked AK certificates recorded: $(sqlite3 "$DB" "SELECT COUNT(*) FROM revocations r JOIN issued i ON i.serial = r.serial WHERE i.kind = 'ak'")"
[ "$HTTP" == 200 ] ||
	fail "one guest's AK enrolments made the Privacy CA's CRL unavailable to every challenger (HTTP $HTTP): $(grep -i crl "$T/ca.log" | tail -1)"
echo "ok"
