#!/bin/bash
# One guest cannot grow the Privacy CA's CRL without bound, and a CRL of
# any size is served (docs/ca-api.md, "Revocation"; docs/threat-model.md,
# "A guest"). The attack review of #11 had a guest enrol the same AK 2,100
# times, each a new certificate, which a host re-enrolment's cascade then
# listed in the CRL: past 64 KiB, GET /v1/privacy/crl answered 500 to
# every challenger. Now:
#  - the same AK enrolled again gets its valid certificate back (same
#    serial; one AK certificate recorded however often it enrols);
#  - a vEK certificate has at most ak_certificates_per_vek valid AK
#    certificates (3 here): a fourth AK key is refused (409, naming the
#    setting), nothing issued;
#  - the host re-enrols (its CK rotates; the cascade revokes what was
#    beneath), and the CRL, made larger than one parent-child message by
#    3000 more revoked certificates recorded straight into the database
#    (standing in for many hosts' revocations), is served whole: 200, and
#    openssl reads every entry.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
ATTEST=$TOP/build/vtpm-attest
N=${N:-12}
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl sqlite3 tpm2_createek tpm2_createak tpm2_evictcontrol
for t in "$CA" "$VTPMD" "$ATTEST"; do
	[ -x "$t" ] || fail "$t is missing (make all)"
done
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db

note "rack1 enrolled, vm-a created with its EK certificate (as in make demo)"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name bloat >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
printf '{"ak_certificates_per_vek": 3}\n' >"$T/ca.json"
start_vtpm_ca ca --db "$DB" --role both --config "$T/ca.json"
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
export TPM2TOOLS_TCTI=$tcti

# ak HANDLE: a new ECC AK of the guest, persisted at HANDLE.
ak() {
	flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" \
		-u "$W/ak.pub" >/dev/null || fail "tpm2_createak"
	flushed tpm2_evictcontrol -c "$W/ak.ctx" "$1" >/dev/null || fail "persist the AK at $1"
}
# enrol HANDLE OUT: vtpm-attest enroll of the AK at HANDLE, its certificate to OUT.
enrol() {
	"$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle "$1" --out "$2" >"$T/out" 2>&1
}
serial() {
	openssl x509 -in "$1" -noout -serial | cut -d= -f2
}
ak_rows() {
	sqlite3 "$DB" "SELECT COUNT(*) FROM issued WHERE kind = 'ak'"
}

note "the guest: one AK, enrolled $N times: the same certificate each time"
ak 0x81000010
for i in $(seq "$N"); do
	enrol 0x81000010 "$W/ak-$i.pem" || fail "enrolment $i refused: $(cat "$T/out")"
done
assert_eq "$(for i in $(seq "$N"); do serial "$W/ak-$i.pem"; done | sort -u | wc -l)" 1 \
	"distinct serials of $N enrolments of one AK"
assert_eq "$(ak_rows)" 1 "AK certificates recorded"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM audit WHERE action = 'privacy/certify' \
	AND outcome = 'returned'")" $((N - 1)) "enrolments audited as returned"

note "two more AKs get certificates of their own; a fourth is refused (ak_certificates_per_vek)"
ak 0x81000011
enrol 0x81000011 "$W/ak2.pem" || fail "second AK refused: $(cat "$T/out")"
ak 0x81000012
enrol 0x81000012 "$W/ak3.pem" || fail "third AK refused: $(cat "$T/out")"
ak 0x81000013
enrol 0x81000013 "$W/ak4.pem" && fail "a fourth AK was certified beyond the limit"
assert_contains "$(cat "$T/out")" "409" "the status"
assert_contains "$(cat "$T/out")" \
	"3 valid AK certificates (at most 3: ak_certificates_per_vek)" "the limit named"
assert_eq "$(ak_rows)" 3 "AK certificates recorded"
enrol 0x81000011 "$W/ak2-again.pem" || fail "the second AK again: $(cat "$T/out")"
assert_eq "$(serial "$W/ak2-again.pem")" "$(serial "$W/ak2.pem")" "the second AK's serial"

note "the host re-enrols (its CK rotates: what was beneath is revoked)"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host re-enroll: $(cat "$T/out")"
note "3000 more revoked Privacy CA certificates, recorded straight into the database"
sqlite3 "$DB" "PRAGMA busy_timeout = 5000;
	WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 3000)
	INSERT INTO issued (serial, role, kind, subject, detail, certificate, issued_at, not_after)
	SELECT printf('7f%030x', i), 'privacy', 'ak', 'AK of vTPM bulk', '', '', 0, 253402300799
	FROM k;
	INSERT INTO revocations (serial, revoked_at, reason, foreign_cert)
	SELECT serial, strftime('%s', 'now'), 'bulk', 0 FROM issued WHERE subject = 'AK of vTPM bulk'" \
	>/dev/null ||
	fail "recording the revocations"
HTTP=$(curl -s -o "$W/privacy.crl" -w '%{http_code}' "$CA_URL/v1/privacy/crl")
[ "$HTTP" == 200 ] ||
	fail "the Privacy CA's CRL is not served (HTTP $HTTP): $(grep -i crl "$T/ca.log" | tail -1)"
size=$(stat -c %s "$W/privacy.crl")
[ "$size" -gt 65536 ] || fail "the CRL is $size bytes: not larger than one message"
entries=$(openssl crl -inform DER -in "$W/privacy.crl" -noout -text | grep -c 'Serial Number:')
assert_eq "$entries" $((3000 + 4)) "CRL entries (the bulk, the old CK, three AKs)"
openssl crl -inform DER -in "$W/privacy.crl" -noout -CAfile "$T/ca/ca-privacy.pem" 2>&1 |
	grep -q "verify OK" || fail "the CRL's signature does not verify"
note "CRL: $size bytes, $entries entries"
kill -0 "$CA_PID" || fail "vtpm-ca serve died"
grep -q "child ended" "$T/ca.log" && fail "the network child ended: $(grep 'child ended' "$T/ca.log")"
echo "ok"
