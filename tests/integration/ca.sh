#!/bin/bash
# vtpm-ca, the Privacy CA and the Virtualization CA (docs/ca-api.md), end to
# end over HTTP with vTPMs (vtpmd instances) and tpm2-tools:
#  - init (files, modes), trust add, serve on a free loopback port;
#  - Privacy CA, kind "ck": a host TPM's EK (ECC, and RSA) with a
#    "manufacturer" EK certificate (a throwaway CA made with openssl,
#    trusted), a CK made by tpm2_createak, the challenge opened by the real
#    tpm2_activatecredential, a CK certificate that openssl verify accepts;
#    refused: an untrusted EK
#    issuer, an EK public area that is not the certificate's, a key that is
#    not a restricted signing key, a wrong secret (which consumes the
#    challenge), a reused challenge, an expired challenge, a revoked EK;
#  - Virtualization CA: vtpmd's host-TPM code (build/san/hostattest-check)
#    on a vTPM acting as the host: its CK enrolled as above, a state key
#    sealed under PolicyAuthorize(approval key), TPM2_Certify of it and
#    TPM2_Quote of the host PCRs with qualifying data binding a nonce of the
#    CA, the vEK and the vTPM's UUID (vek_qualifying), and a
#    vEK from a second vTPM (the guest, tpm2_createek): an EK certificate
#    marked virtual; refused: an unapproved host configuration, an
#    untrusted approval key, evidence for another vEK, altered PCR values,
#    a bad signature, an AK certificate as CK, a revoked CK;
#  - Privacy CA, kind "ak": the guest's AK (tpm2_createak) enrolled with the
#    vEK certificate; refused with a manufacturer EK certificate and with a
#    revoked vEK; the AK's quote verified by vtpm-attest, which asks the CA
#    for revocation (GET /v1/status) and refuses it once revoked;
#  - revocation that reaches every leaf: AK certificates name their vEK
#    and CK certificates (lineage) and carry a CRL distribution point;
#    the CRLs (vtpm-ca crl, GET /v1/ROLE/crl) let vtpm-attest verify --crl
#    and openssl verify -crl_check_all check them; revoking only the vEK
#    certificate, then the CK: vtpm-attest verify (--ca and --crl) and
#    openssl refuse the AK beneath, naming the revoked link, the Privacy CA
#    issues no new AK beneath (a challenge asked before the revocation
#    and answered after it included), and the audit trail shows the
#    cascade;
#  - the audit trail holds every refusal; no process or object left behind.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/calib.sh"
CA=${VTPM_CA:-$TOP/build/san/vtpm-ca}
CHECK=$TOP/build/san/hostattest-check
ATTEST=$TOP/build/san/vtpm-attest
export TSS2_LOG=all+none

require_tools curl jq openssl base64 sha256sum od tpm2_createek tpm2_createak tpm2_readpublic \
	tpm2_print tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_quote \
	tpm2_flushcontext tpm2_getcap
for t in "$CA" "$CHECK" "$ATTEST"; do
	[ -x "$t" ] || fail "$t is missing (make san)"
done

DB=$T/ca/ca.db
W=$T/w
mkdir -p "$T/ca" "$W"

# post PATH FILE: POSTs the JSON in FILE; sets HTTP (the status) and leaves
# the answer in $T/resp.json.
post() {
	HTTP=$(curl -s -o "$T/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$2" "$CA_URL$1") || fail "POST $1: curl failed"
}

# ok WHAT: the last answer was 200.
ok() {
	[ "$HTTP" == 200 ] || fail "$1: HTTP $HTTP: $(cat "$T/resp.json")"
}

# refused STATUS TEXT WHAT: the last answer was STATUS with an error
# containing TEXT, a hint, and nothing issued.
refused() {
	[ "$HTTP" == "$1" ] || fail "$3: expected HTTP $1, got $HTTP: $(cat "$T/resp.json")"
	assert_contains "$(jq -r .error "$T/resp.json")" "$2" "$3: error"
	[ "$(jq -r '.hint // ""' "$T/resp.json")" != "" ] || fail "$3: no hint"
	[ "$(jq -r '.certificate // ""' "$T/resp.json")" == "" ] || fail "$3: a certificate came"
}





# activate TCTI EKCTX KEYCTX CRED OUT: tpm2_activatecredential with the EK
# (PolicySecret(endorsement)) and the key.
activate() {
	local s=$W/session.ctx
	export TPM2TOOLS_TCTI=$1
	tpm2_startauthsession --policy-session -S "$s" >/dev/null || fail "tpm2_startauthsession"
	tpm2_policysecret -S "$s" -c e >/dev/null || fail "tpm2_policysecret"
	flushed tpm2_activatecredential -c "$3" -C "$2" -i "$4" -o "$5" -P "session:$s" \
		>/dev/null 2>"$W/activate.err" || fail "tpm2_activatecredential: $(cat "$W/activate.err")"
}


# enrol TCTI EKCTX KEYCTX REQ OUT WHAT: challenge, activation, certify; the
# certificate in OUT, its serial in SERIAL.
enrol() {
	post /v1/privacy/challenge "$4"
	ok "$6: challenge"
	local id
	id=$(jq -r .id "$T/resp.json")
	assert_eq "$(jq -r .expires_in "$T/resp.json")" "${EXPIRES:-300}" "$6: expires_in"
	credential_file "$W/cred"
	activate "$1" "$2" "$3" "$W/cred" "$W/secret"
	certify_req "$id" "$W/secret" "$W/certify.json"
	post /v1/privacy/certify "$W/certify.json"
	ok "$6: certify"
	pem_of certificate "$5"
	SERIAL=$(jq -r .serial "$T/resp.json")
}

# status SERIAL: GET /v1/status/SERIAL's "revoked".
status() {
	curl -s "$CA_URL/v1/status/$1" | jq -r .revoked
}

# mfr_cert CA EKPEM OUT: an EK certificate for the key EKPEM by the
# throwaway manufacturer CA named CA.
mfr_cert() {
	printf 'keyUsage = critical, keyEncipherment, keyAgreement\n' >"$W/ek.ext"
	openssl x509 -new -subj "/CN=test EK" -force_pubkey "$2" -CA "$T/$1.pem" \
		-CAkey "$T/$1.key" -days 30 -extfile "$W/ek.ext" -out "$3" 2>"$W/openssl.err" ||
		fail "openssl x509 -new: $(cat "$W/openssl.err")"
}

note "init: database and CA files beside it, keys 0600, nothing overwritten"
"$CA" init --db "$DB" --name test >"$T/out" || fail "vtpm-ca init: $(cat "$T/out")"
for f in root privacy virtualization; do
	assert_eq "$(stat -c %a "$T/ca/ca-$f.key")" 600 "ca-$f.key mode"
	[ -s "$T/ca/ca-$f.pem" ] || fail "ca-$f.pem missing"
done
assert_eq "$(stat -c %a "$DB")" 600 "database mode"
expect_exit 1 "init over an existing CA" "$CA" init --db "$DB"
assert_contains "$(cat "$T/out")" "exists already" "init refusal"
expect_exit 2 "list of something unknown" "$CA" list everything --db "$DB"
"$CA" cert --role root --db "$DB" >"$W/root.pem"
"$CA" cert --role privacy --db "$DB" >"$W/privacy.pem"
"$CA" cert --role virtualization --db "$DB" >"$W/virt.pem"
cmp -s "$W/root.pem" "$T/ca/ca-root.pem" || fail "cert --role root differs from ca-root.pem"
openssl verify -CAfile "$W/root.pem" "$W/privacy.pem" "$W/virt.pem" >/dev/null ||
	fail "the issuing CAs do not verify under the root"

note "trust: a throwaway TPM manufacturer CA (openssl), and an untrusted one"
for ca in mfr rogue; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$ca.key" \
		-out "$T/$ca.pem" -subj "/CN=$ca TPM manufacturer root" -days 30 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
		2>/dev/null || fail "openssl req ($ca)"
done
"$CA" trust add --manufacturer "$T/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
expect_exit 1 "the same root twice" "$CA" trust add --manufacturer "$T/mfr.pem" --db "$DB"
assert_contains "$(cat "$T/out")" "trusted already" "trust add refusal"
expect_exit 1 "an issuing CA without its root" "$CA" trust add --privacy "$W/privacy.pem" \
	--db "$DB"
assert_contains "$(cat "$T/out")" "no self-signed root" "trust add refusal"
expect_exit 2 "trust add without a kind" "$CA" trust add --db "$DB"

CRL_BASE=http://crl.test.invalid
start_vtpm_ca ca --db "$DB" --role both --crl-url "$CRL_BASE"
note "served on $CA_URL"
curl -s "$CA_URL/v1/privacy/ca" | jq -j .certificate >"$W/privacy.got"
cmp -s "$W/privacy.got" "$W/privacy.pem" || fail "GET /v1/privacy/ca"
curl -s "$CA_URL/v1/virtualization/ca" | jq -j '.chain[0]' >"$W/root.got"
cmp -s "$W/root.got" "$W/root.pem" || fail "GET /v1/virtualization/ca: chain"

note "host TPM (a vTPM): EK (tpm2_createek), its manufacturer certificate, a CK (tpm2_createak)"
start_tpm host unix --plaintext-state
HOST=$TCTI
HOST_PID=$INSTANCE_PID
flushed tpm2_createek -G ecc -c "$W/ek.ctx" -u "$W/ek.pub" >/dev/null || fail "tpm2_createek"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/ek.pub" >"$W/ek.pem" || fail "tpm2_print EK"
mfr_cert mfr "$W/ek.pem" "$W/ekcert.pem"
mfr_cert rogue "$W/ek.pem" "$W/ekcert-rogue.pem"
flushed tpm2_createak -C "$W/ek.ctx" -G ecc -g sha256 -s ecdsa -c "$W/ck.ctx" -u "$W/ck.pub" \
	-n "$W/ck.name" >/dev/null || fail "tpm2_createak"

note "Privacy CA, kind ck: challenge, tpm2_activatecredential, CK certificate"
# tpm2-tools make these CKs (no approval policy): admitted without an
# approval key, as a lab would
"$CA" host add host-a --ek-cert "$W/ekcert.pem" --no-approval-key --db "$DB" >/dev/null 2>&1 ||
	fail "host add host-a"
challenge_req ck "$W/ekcert.pem" "$W/ek.pub" "$W/ck.pub" "$W/ck.json" host-a
enrol "$HOST" "$W/ek.ctx" "$W/ck.ctx" "$W/ck.json" "$W/ck.pem" "kind ck"
out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$W/ck.pem" 2>&1) ||
	fail "openssl verify of the CK certificate: $out"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/ck.pub" >"$W/ck.key.pem"
openssl x509 -in "$W/ck.pem" -noout -pubkey >"$W/ck.cert.key.pem"
cmp -s "$W/ck.key.pem" "$W/ck.cert.key.pem" || fail "the CK certificate certifies another key"
assert_contains "$(openssl x509 -in "$W/ck.pem" -noout -subject)" "host-a" "CK subject"
assert_eq "$(status "$SERIAL")" false "status of the CK certificate"
FIRST_CK_SERIAL=$SERIAL
assert_eq "$(jq -r '.chain | length' "$T/resp.json")" 2 "chain: Privacy CA and root"

note "Privacy CA, kind ck: an RSA-2048 EK and an RSA AK"
flushed tpm2_createek -G rsa -c "$W/ekrsa.ctx" -u "$W/ekrsa.pub" >/dev/null ||
	fail "tpm2_createek rsa"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/ekrsa.pub" >"$W/ekrsa.pem" || fail "tpm2_print RSA EK"
mfr_cert mfr "$W/ekrsa.pem" "$W/ekcert-rsa.pem"
flushed tpm2_createak -C "$W/ekrsa.ctx" -G rsa -g sha256 -s rsassa -c "$W/ckrsa.ctx" \
	-u "$W/ckrsa.pub" >/dev/null || fail "tpm2_createak rsa"
"$CA" host add host-rsa --ek-cert "$W/ekcert-rsa.pem" --no-approval-key --db "$DB" \
	>/dev/null 2>&1 ||
	fail "host add host-rsa"
challenge_req ck "$W/ekcert-rsa.pem" "$W/ekrsa.pub" "$W/ckrsa.pub" "$W/ckrsa.json" host-rsa
enrol "$HOST" "$W/ekrsa.ctx" "$W/ckrsa.ctx" "$W/ckrsa.json" "$W/ckrsa.pem" "kind ck, RSA"
openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$W/ckrsa.pem" >/dev/null ||
	fail "openssl verify of the RSA CK certificate"

note "refused: the challenge answered again"
post /v1/privacy/certify "$W/certify.json"
refused 409 "answered before" "reused challenge"

note "refused: an EK certificate from an untrusted manufacturer"
challenge_req ck "$W/ekcert-rogue.pem" "$W/ek.pub" "$W/ck.pub" "$W/rogue.json" host-a
post /v1/privacy/challenge "$W/rogue.json"
refused 403 "does not chain to a trusted manufacturer CA" "untrusted EK issuer"

note "refused: an EK public area that is not the certificate's; a key that cannot sign"
challenge_req ck "$W/ekcert.pem" "$W/ekrsa.pub" "$W/ck.pub" "$W/mismatch.json" host-a
post /v1/privacy/challenge "$W/mismatch.json"
refused 403 "not the key the EK certificate certifies" "EK public area mismatch"
challenge_req ck "$W/ekcert.pem" "$W/ek.pub" "$W/ek.pub" "$W/nosign.json" host-a
post /v1/privacy/challenge "$W/nosign.json"
refused 403 "not a restricted signing key" "an EK as the key"
printf '{"kind": "ck", "ek_public": "!!"}' >"$W/bad.json"
post /v1/privacy/challenge "$W/bad.json"
refused 400 "ek_certificate is missing" "malformed request"
printf 'not json' >"$W/bad.json"
post /v1/privacy/challenge "$W/bad.json"
[ "$HTTP" == 400 ] || fail "a body that is not JSON: HTTP $HTTP"

note "refused: a wrong secret, which consumes the challenge"
post /v1/privacy/challenge "$W/ck.json"
ok "challenge"
id=$(jq -r .id "$T/resp.json")
credential_file "$W/cred2"
head -c 32 /dev/urandom >"$W/wrong"
certify_req "$id" "$W/wrong" "$W/wrong.json"
post /v1/privacy/certify "$W/wrong.json"
refused 403 "wrong secret" "wrong secret"
activate "$HOST" "$W/ek.ctx" "$W/ck.ctx" "$W/cred2" "$W/secret2"
certify_req "$id" "$W/secret2" "$W/right.json"
post /v1/privacy/certify "$W/right.json"
refused 409 "answered before" "the right secret after a wrong one"
certify_req 00112233445566778899aabbccddeeff "$W/secret2" "$W/unknown.json"
post /v1/privacy/certify "$W/unknown.json"
refused 404 "no challenge" "unknown challenge"

note "refused: an expired challenge (a second server, challenges expiring at once)"
printf '{"challenge_expiry_seconds": 0, "role": "privacy"}\n' >"$T/expire.json"
MAIN_URL=$CA_URL
MAIN_PID=$CA_PID
start_vtpm_ca ca-expire --db "$DB" --config "$T/expire.json"
EXPIRE_PID=$CA_PID
post /v1/privacy/challenge "$W/ck.json"
ok "challenge (expiring at once)"
assert_eq "$(jq -r .expires_in "$T/resp.json")" 0 "expires_in"
id=$(jq -r .id "$T/resp.json")
credential_file "$W/cred3"
activate "$HOST" "$W/ek.ctx" "$W/ck.ctx" "$W/cred3" "$W/secret3"
certify_req "$id" "$W/secret3" "$W/expired.json"
post /v1/privacy/certify "$W/expired.json"
refused 410 "expired" "expired challenge"
post /v1/virtualization/ek-certificate "$W/expired.json"
refused 404 "no such route" "the virtualization role, not served"
stop_pid "$EXPIRE_PID"
CA_URL=$MAIN_URL
CA_PID=$MAIN_PID

note "refused: a revoked EK certificate (revoked as a foreign certificate)"
ek_serial=$(openssl x509 -in "$W/ekcert.pem" -noout -serial | cut -d= -f2)
expect_exit 1 "revoke of a serial not issued here" "$CA" revoke --serial "$ek_serial" --db "$DB"
assert_contains "$(cat "$T/out")" "--foreign" "revoke hint"
"$CA" revoke --serial "$ek_serial" --foreign --reason "test: host retired" --db "$DB" \
	>/dev/null || fail "revoke --foreign"
post /v1/privacy/challenge "$W/ck.json"
refused 403 "revoked" "revoked EK certificate"
assert_contains "$(jq -r .error "$T/resp.json")" "host retired" "revocation reason"
assert_eq "$(status "$ek_serial")" true "status of the revoked EK certificate"

# ---- Virtualization CA ----

H=$T/h
mkdir -p "$H"

# host STEP...: a step of vtpmd's host-TPM module on the host vTPM.
host() {
	"$CHECK" host "$HOST" "$H" "$@" >"$H/out" 2>"$H/err" ||
		fail "hostattest-check $1: $(cat "$H/err")"
}

# split_sealed FILE OUT: the TPM2B_PUBLIC at the start of a sealed blob
# (TPM2B_PUBLIC || TPM2B_PRIVATE).
split_sealed() {
	local n
	n=$((16#$(od -An -tx1 -N2 "$1" | tr -d ' ')))
	head -c $((2 + n)) "$1" >"$2"
}

# ek_req OUT CKCERT UUID VEKPUB SEALEDPUB CERTIFY QUOTE PCRS [NONCE]: an EK
# certificate request; CERTIFY and QUOTE name FILE.attest and FILE.sig,
# PCRS is {"0": HEX, …}, NONCE (base64) defaults to $NONCE64; the approval
# key is $H/approval.pub.pem.
ek_req() {
	local xy
	xy=$(point_of "$H/approval.pub.pem")
	jq -n --rawfile ck "$2" --arg uuid "$3" --arg vek "$(b64 "$4")" --arg sealed "$(b64 "$5")" \
		--arg ca "$(b64 "$6.attest")" --arg cs "$(b64 "$6.sig")" \
		--arg qa "$(b64 "$7.attest")" --arg qs "$(b64 "$7.sig")" --argjson pcrs "$8" \
		--arg x "${xy:0:64}" --arg y "${xy:64:64}" --arg nonce "${9:-$NONCE64}" \
		'{ck_certificate: $ck, instance_uuid: $uuid, vek_public: $vek, sealed_public: $sealed,
		  nonce: $nonce, certify: {attest: $ca, signature: $cs},
		  quote: {attest: $qa, signature: $qs, pcrs: $pcrs},
		  approval_key: {x: $x, y: $y}}' >"$1"
}

# point_of PUBPEM: an ECC P-256 public key's X || Y, hex.
point_of() {
	openssl pkey -pubin -in "$1" -outform DER | tail -c 64 | od -An -tx1 -v | tr -d ' \n'
}

# edit IN OUT FILTER: a copy of a request with one field changed (jq).
edit() {
	jq "$3" "$1" >"$2" || fail "jq $3"
}

note "host: vtpmd's host-TPM module on the host vTPM: its EK is the manufacturer-certified one"
host ek ecc
cmp -s "$H/ek-ecc.pub" "$W/ek.pub" || fail "hwtpm's ECC EK is not tpm2_createek's"
# The host administrator's approval key: the CK's policy names it, as the
# state keys' does (hwtpm_attest.c).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$H/approval.pem" 2>/dev/null
openssl pkey -in "$H/approval.pem" -pubout -out "$H/approval.pub.pem"
host ck
mfr_cert mfr "$W/ek.pem" "$W/ekcert2.pem"

note "Privacy CA, kind ck: the host CK (hwtpm), activated by hwtpm_activate_credential"
challenge_req ck "$W/ekcert2.pem" "$H/ek-ecc.pub" "$H/ck.pub" "$H/ck.json" host-a
post /v1/privacy/challenge "$H/ck.json"
ok "challenge for the hwtpm CK"
id=$(jq -r .id "$T/resp.json")
credential_file "$H/cred"
host activate ecc "$H/cred" "$H/secret"
certify_req "$id" "$H/secret" "$H/certify.json"
post /v1/privacy/certify "$H/certify.json"
ok "certify for the hwtpm CK"
pem_of certificate "$H/ck.pem"
CK_SERIAL=$(jq -r .serial "$T/resp.json")
note "the same host EK enrolled again: its first CK certificate is revoked, superseded"
assert_eq "$(status "$FIRST_CK_SERIAL")" true "status of the superseded CK certificate"
assert_eq "$(curl -s "$CA_URL/v1/status/$FIRST_CK_SERIAL" | jq -r .reason)" superseded \
	"the superseded CK's reason"
openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$H/ck.pem" >/dev/null ||
	fail "openssl verify of the hwtpm CK certificate"

note "guest vTPM: its vEK (tpm2_createek)"
start_tpm guest unix --plaintext-state
GUEST=$TCTI
GUEST_PID=$INSTANCE_PID
flushed tpm2_createek -G ecc -c "$W/vek.ctx" -u "$W/vek.pub" >/dev/null || fail "tpm2_createek vEK"
flushed tpm2_createek -G rsa -c "$W/vekrsa.ctx" -u "$W/vekrsa.pub" >/dev/null ||
	fail "tpm2_createek RSA vEK"
UUID=3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23
NONCE64=$(vek_nonce "$CA_URL")
EXTRA=$(vek_qualifying "$NONCE64" "$W/vek.pub" "$UUID")

note "host: PCRs moved, a state key sealed under PolicyAuthorize(approval key), certified, quoted"
export TPM2TOOLS_TCTI=$HOST
tpm2_pcrextend "7:sha256=$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')" ||
	fail "tpm2_pcrextend"
host seal
split_sealed "$H/sealed.bin" "$H/sealed.pub"
host certify-sealed "$EXTRA"
host quote "$EXTRA"
PCRS=$(sed -n 's/^pcr \([0-9]*\) \([0-9a-f]*\)$/"\1": "\2"/p' "$H/out" | paste -sd, | sed 's/.*/{&}/')
VALUES=$(sed -n 's/^pcr \([0-9]*\) \([0-9a-f]*\)$/\1=\2/p' "$H/out" | paste -sd,)
assert_eq "$(jq -r '."7"' <<<"$PCRS")" "$(pcr_value 7)" "quoted PCR 7"
ek_req "$H/ek.json" "$H/ck.pem" "$UUID" "$W/vek.pub" "$H/sealed.pub" "$H/sealed" "$H/quote" \
	"$PCRS"

note "refused: an untrusted approval key, then an unapproved host configuration"
post /v1/virtualization/ek-certificate "$H/ek.json"
refused 403 "approval key is not trusted" "untrusted approval key"
"$CA" trust add --approval-key "$H/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
post /v1/virtualization/ek-certificate "$H/ek.json"
refused 403 "not an approved host configuration" "unapproved host configuration"
expect_exit 2 "values that miss a PCR" "$CA" approve-host-config --db "$DB" --id host-a-1 \
	--pcrs 0,2,4,7,16,23 --values "$VALUES"
assert_contains "$(cat "$T/out")" "disagree on PCR 23" "approve-host-config refusal"
"$CA" approve-host-config --db "$DB" --id host-a-1 --pcrs 0,2,4,7,16 --values "$VALUES" \
	>"$T/out" || fail "approve-host-config: $(cat "$T/out")"
printf '%s\n' "$PCRS" >"$H/values.json"
expect_exit 1 "the same values again (JSON file)" "$CA" approve-host-config --db "$DB" \
	--id host-a-again --pcrs 0,2,4,7,16 --values "$H/values.json"
assert_contains "$(cat "$T/out")" "approved already" "approve-host-config refusal"

note "Virtualization CA: the vEK certificate"
post /v1/virtualization/ek-certificate "$H/ek.json"
ok "ek-certificate"
pem_of certificate "$W/vek.pem"
VEK_SERIAL=$(jq -r .serial "$T/resp.json")
assert_eq "$(jq -r .host_config "$T/resp.json")" host-a-1 "host_config"
out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/virt.pem" "$W/vek.pem" 2>&1) ||
	fail "openssl verify of the vEK certificate: $out"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/vek.pub" >"$W/vek.key.pem"
openssl x509 -in "$W/vek.pem" -noout -pubkey >"$W/vek.cert.key.pem"
cmp -s "$W/vek.key.pem" "$W/vek.cert.key.pem" || fail "the vEK certificate certifies another key"
openssl x509 -in "$W/vek.pem" -outform DER -out "$W/vek.der"
grep -q -a host-a-1 "$W/vek.der" || fail "the vEK certificate does not name the host configuration"
assert_contains "$(openssl x509 -in "$W/vek.pem" -noout -text)" "vtpmd-vTPM" "vEK model"

note "refused: evidence for another vEK, altered PCR values, an altered certification, …"
edit "$H/ek.json" "$H/other.json" ".vek_public = \"$(b64 "$W/vekrsa.pub")\""
post /v1/virtualization/ek-certificate "$H/other.json"
refused 403 "certify" "evidence for another vEK"
edit "$H/ek.json" "$H/pcr.json" ".quote.pcrs.\"7\" = \"$(printf '%064d' 0)\""
post /v1/virtualization/ek-certificate "$H/pcr.json"
refused 403 "quote" "altered PCR values"
cp "$H/sealed.attest" "$H/bad.attest"
cp "$H/sealed.sig" "$H/bad.sig"
flip_byte "$H/bad.attest" 40
ek_req "$H/badsig.json" "$H/ck.pem" "$UUID" "$W/vek.pub" "$H/sealed.pub" "$H/bad" "$H/quote" \
	"$PCRS"
post /v1/virtualization/ek-certificate "$H/badsig.json"
refused 403 "signature does not verify" "altered certification"
ek_req "$H/otherck.json" "$W/ck.pem" "$UUID" "$W/vek.pub" "$H/sealed.pub" "$H/sealed" \
	"$H/quote" "$PCRS"
post /v1/virtualization/ek-certificate "$H/otherck.json"
refused 403 "is revoked: superseded" "another (superseded) CK's certificate"
edit "$H/ek.json" "$H/nouuid.json" '.instance_uuid = "not-a-uuid"'
post /v1/virtualization/ek-certificate "$H/nouuid.json"
refused 400 "instance_uuid" "malformed instance_uuid"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$H/approval2.pem" 2>/dev/null
openssl pkey -in "$H/approval2.pem" -pubout -out "$H/approval2.pub.pem"
"$CA" trust add --approval-key "$H/approval2.pub.pem" --name second --db "$DB" >/dev/null ||
	fail "trust add --approval-key (second)"
xy=$(point_of "$H/approval2.pub.pem")
edit "$H/ek.json" "$H/otherkey.json" ".approval_key = {x: \"${xy:0:64}\", y: \"${xy:64:64}\"}"
post /v1/virtualization/ek-certificate "$H/otherkey.json"
refused 403 "policy is not PolicyAuthorize" "another trusted approval key than the policy's"

note "tpm2-tools: a sealed object under the same PolicyAuthorize (trial session), tpm2_quote"
# Another vTPM: its own nonce, vEK (the RSA one) and UUID.
UUID2=0b5e3f7c-1d2a-4c3b-8e9f-a0b1c2d3e4f5
NONCE2=$(vek_nonce "$CA_URL")
EXTRA=$(vek_qualifying "$NONCE2" "$W/vekrsa.pub" "$UUID2")
# The approval key as the TPM names it (hwtpm_policy_authorize's template).
flushed tpm2_loadexternal -C o -G ecc:ecdsa-sha256:null -a "sign|userwithauth" \
	-u "$H/approval.pub.pem" -c "$H/approval.ctx" -n "$H/approval.name" >/dev/null ||
	fail "tpm2_loadexternal"
tpm2_startauthsession -S "$H/trial.ctx" >/dev/null
printf 'vtpmd approved host configuration' >"$H/policyref"
tpm2_policyauthorize -S "$H/trial.ctx" -L "$H/pa.policy" -n "$H/approval.name" \
	-q "$H/policyref" >/dev/null || fail "tpm2_policyauthorize"
tpm2_flushcontext "$H/trial.ctx"
assert_eq "$(tpm2_print -t TPM2B_PUBLIC "$H/ck.pub" | sed -n 's/^authorization policy: //p')" \
	"$(hex_of "$H/pa.policy")" "the hwtpm CK's authPolicy, as the TPM computes PolicyAuthorize"
head -c 32 /dev/urandom >"$H/key"
for attrs in "fixedtpm|fixedparent|noda" "fixedtpm|fixedparent|noda|userwithauth"; do
	n=${attrs//|/-}
	flushed tpm2_create -C 0x81000001 -L "$H/pa.policy" -a "$attrs" -i "$H/key" \
		-u "$H/$n.pub" -r "$H/$n.priv" >/dev/null || fail "tpm2_create ($attrs)"
	cat "$H/$n.pub" "$H/$n.priv" >"$H/sealed.bin"
	host certify-sealed "$EXTRA"
	mv "$H/sealed.attest" "$H/$n.attest"
	mv "$H/sealed.sig" "$H/$n.sig"
done
edit "$H/ek.json" "$H/othersealed.json" \
	".sealed_public = \"$(b64 "$H/fixedtpm-fixedparent-noda.pub")\""
post /v1/virtualization/ek-certificate "$H/othersealed.json"
refused 403 "certify: the certified Name is not" "a certification of another sealed object"
# The CK quotes only through its policy: PolicyPCR over PCRs 0 and 7 as
# they are, then PolicyAuthorize of that digest, approved with the approval
# key (openssl) and verified by the TPM (a ticket).
tpm2_startauthsession -S "$H/trial.ctx" >/dev/null
tpm2_policypcr -S "$H/trial.ctx" -l sha256:0,7 -L "$H/pcr.policy" >/dev/null ||
	fail "tpm2_policypcr (trial)"
tpm2_flushcontext "$H/trial.ctx"
cat "$H/pcr.policy" "$H/policyref" >"$H/ahash.in"
openssl dgst -sha256 -sign "$H/approval.pem" -out "$H/approval.sig" "$H/ahash.in" ||
	fail "sign the approval"
flushed tpm2_verifysignature -c "$H/approval.ctx" -g sha256 -m "$H/ahash.in" \
	-s "$H/approval.sig" -f ecdsa -t "$H/ticket" >/dev/null || fail "tpm2_verifysignature"
tpm2_startauthsession --policy-session -S "$H/policy.ctx" >/dev/null
tpm2_policypcr -S "$H/policy.ctx" -l sha256:0,7 >/dev/null || fail "tpm2_policypcr"
tpm2_policyauthorize -S "$H/policy.ctx" -i "$H/pcr.policy" -q "$H/policyref" \
	-n "$H/approval.name" -t "$H/ticket" >/dev/null || fail "tpm2_policyauthorize"
flushed tpm2_quote -c 0x81000002 -p "session:$H/policy.ctx" -l sha256:0,7 -q "$EXTRA" \
	-m "$H/tq.attest" -s "$H/tq.sig" -g sha256 >/dev/null || fail "tpm2_quote by the CK"
TPCRS="{\"0\": \"$(pcr_value 0)\", \"7\": \"$(pcr_value 7)\"}"
ek_req "$H/uwa.json" "$H/ck.pem" "$UUID2" "$W/vekrsa.pub" \
	"$H/fixedtpm-fixedparent-noda-userwithauth.pub" "$H/fixedtpm-fixedparent-noda-userwithauth" \
	"$H/tq" "$TPCRS" "$NONCE2"
post /v1/virtualization/ek-certificate "$H/uwa.json"
refused 403 "not sealed data bound" "a sealed object that opens with its password"
ek_req "$H/tools.json" "$H/ck.pem" "$UUID2" "$W/vekrsa.pub" \
	"$H/fixedtpm-fixedparent-noda.pub" "$H/fixedtpm-fixedparent-noda" "$H/tq" "$TPCRS" "$NONCE2"
post /v1/virtualization/ek-certificate "$H/tools.json"
refused 403 "not an approved host configuration" "tpm2_quote of unapproved PCRs"
printf '%s\n' "$TPCRS" >"$H/tvalues.json"
"$CA" approve-host-config --db "$DB" --id host-a-tools --pcrs 0,7 --values "$H/tvalues.json" \
	>/dev/null || fail "approve-host-config (JSON file)"
post /v1/virtualization/ek-certificate "$H/tools.json"
ok "ek-certificate from tpm2-tools evidence"
pem_of certificate "$W/vekrsa.pem"
VEK2_SERIAL=$(jq -r .serial "$T/resp.json")
assert_eq "$(jq -r .host_config "$T/resp.json")" host-a-tools "host_config (tpm2-tools)"

# ---- Privacy CA, kind ak ----

note "guest: an AK (tpm2_createak) enrolled with the vEK certificate"
export TPM2TOOLS_TCTI=$GUEST
flushed tpm2_createak -C "$W/vek.ctx" -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak (guest)"
challenge_req ak "$W/vek.pem" "$W/vek.pub" "$W/ak.pub" "$W/ak.json"
enrol "$GUEST" "$W/vek.ctx" "$W/ak.ctx" "$W/ak.json" "$W/ak.pem" "kind ak"
AK_SERIAL=$SERIAL
out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$W/ak.pem" 2>&1) ||
	fail "openssl verify of the AK certificate: $out"
openssl x509 -in "$W/ak.pem" -outform DER -out "$W/ak.der"
grep -q -a host-a-1 "$W/ak.der" || fail "the AK certificate does not carry the host configuration"

note "refused: kind ak with a manufacturer's EK certificate, an AK certificate, a host name"
challenge_req ak "$W/ekcert2.pem" "$W/ek.pub" "$W/ck.pub" "$W/akhw.json"
post /v1/privacy/challenge "$W/akhw.json"
refused 403 "does not chain to a trusted virtualization CA" "hardware EK for kind ak"
# The AK certificate carries the marker and, through the Privacy CA, chains
# to the same root: only the Virtualization CA's own certificates are vEKs.
challenge_req ak "$W/ak.pem" "$W/ak.pub" "$W/ak.pub" "$W/akak.json"
jq --rawfile p "$W/privacy.pem" '.ek_chain = [$p]' "$W/akak.json" >"$W/akak-chain.json"
post /v1/privacy/challenge "$W/akak-chain.json"
refused 403 "not issued by a trusted virtualization CA itself" "an AK certificate as vEK"
challenge_req ak "$W/vek.pem" "$W/vek.pub" "$W/ak.pub" "$W/akhost.json" host-a
post /v1/privacy/challenge "$W/akhost.json"
refused 400 "host is for kind" "kind ak with a host"

note "refused: an AK certificate in place of a CK certificate"
jq --rawfile ck "$W/ak.pem" '.ck_certificate = $ck' "$H/ek.json" >"$H/akck.json"
post /v1/virtualization/ek-certificate "$H/akck.json"
refused 403 "not a vtpmd CK certificate" "AK certificate as CK"

# ---- revocation that reaches every leaf ----

# guest_ak NAME VEK: a guest AK (tpm2_createak under the vEK $W/VEK.ctx)
# enrolled with the vEK's certificate $W/VEK.pem into $W/NAME.pem (its
# serial in SERIAL), and its quote of the nonce ($W/NAME.msg, .sig, .pcrs).
guest_ak() {
	export TPM2TOOLS_TCTI=$GUEST
	flushed tpm2_createak -C "$W/$2.ctx" -G ecc -g sha256 -s ecdsa -c "$W/$1.ctx" \
		-u "$W/$1.pub" >/dev/null || fail "tpm2_createak ($1)"
	challenge_req ak "$W/$2.pem" "$W/$2.pub" "$W/$1.pub" "$W/$1.json"
	enrol "$GUEST" "$W/$2.ctx" "$W/$1.ctx" "$W/$1.json" "$W/$1.pem" "$1"
	export TPM2TOOLS_TCTI=$GUEST
	flushed tpm2_quote -c "$W/$1.ctx" -l sha256:0,16 -q "$NONCE" -m "$W/$1.msg" -s "$W/$1.sig" \
		-o "$W/$1.pcrs" -g sha256 >/dev/null || fail "tpm2_quote ($1)"
}

# pending NAME VEK: a challenge for a new AK under the vEK $W/VEK.ctx, asked
# and activated now, its certify request in $W/NAME.certify.json (answered
# later).
pending() {
	export TPM2TOOLS_TCTI=$GUEST
	flushed tpm2_createak -C "$W/$2.ctx" -G ecc -g sha256 -s ecdsa -c "$W/$1.ctx" \
		-u "$W/$1.pub" >/dev/null || fail "tpm2_createak ($1)"
	challenge_req ak "$W/$2.pem" "$W/$2.pub" "$W/$1.pub" "$W/$1.json"
	post /v1/privacy/challenge "$W/$1.json"
	ok "$1: challenge"
	local id
	id=$(jq -r .id "$T/resp.json")
	credential_file "$W/$1.cred"
	activate "$GUEST" "$W/$2.ctx" "$W/$1.ctx" "$W/$1.cred" "$W/$1.secret"
	certify_req "$id" "$W/$1.secret" "$W/$1.certify.json"
}

# verify_ak NAME CONFIG STATE ARGS…: vtpm-attest verify of NAME's quote,
# requiring host configuration CONFIG, with revocation checked as ARGS say.
verify_ak() {
	local n=$1 config=$2 st=$3
	shift 3
	"$ATTEST" verify --ak-cert "$W/$n.pem" --nonce "$NONCE" --trust "$W/root.pem" \
		--untrusted "$W/privacy.pem" --untrusted "$W/virt.pem" --message "$W/$n.msg" \
		--signature "$W/$n.sig" --pcr-file "$W/$n.pcrs" --state "$W/state-$st" \
		--pcrs "sha256:16=$(printf '0%.0s' {1..64})" --policy require-host-config "$config" "$@"
}

# crls: the three roles' CRLs signed afresh; $W/legacy.crl holds the
# Privacy CA's and the root's, for openssl verify -crl_check_all.
crls() {
	for role in privacy virtualization root; do
		"$CA" crl --role "$role" --db "$DB" --out "$W/$role.crl" || fail "vtpm-ca crl $role"
	done
	cat "$W/privacy.crl" "$W/root.crl" >"$W/legacy.crl"
}
CRLS=(--crl "$W/privacy.crl" --crl "$W/virtualization.crl")

# legacy NAME: openssl verify -crl_check_all of NAME's certificate.
legacy() {
	openssl verify -crl_check_all -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" \
		-CRLfile "$W/legacy.crl" "$W/$1.pem" 2>&1
}

# refused_by WHAT TEXT CMD…: CMD fails, saying TEXT.
refused_by() {
	local what=$1 text=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		fail "$what: accepted"
	fi
	assert_contains "$out" "$text" "$what"
}

note "the challenger: vtpm-attest verify of the AK's quote checks its whole chain's revocation"
NONCE=$(head -c 16 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
export TPM2TOOLS_TCTI=$GUEST
flushed tpm2_quote -c "$W/ak.ctx" -l sha256:0,16 -q "$NONCE" -m "$W/ak.msg" -s "$W/ak.sig" \
	-o "$W/ak.pcrs" -g sha256 >/dev/null || fail "tpm2_quote (guest)"
guest_ak akv vek
AKV_SERIAL=$SERIAL
guest_ak akc vekrsa
AKC_SERIAL=$SERIAL
crls
out=$(verify_ak ak host-a-1 ca1 --ca "$CA_URL") || fail "vtpm-attest verify --ca: $out"
assert_contains "$out" "host-a-1" "vtpm-attest verdict"
assert_contains "$out" "not revoked: AK, vEK and CK certificates" "the whole chain checked"
out=$(verify_ak akv host-a-1 v-crl "${CRLS[@]}") || fail "vtpm-attest verify --crl: $out"
assert_contains "$out" "not revoked: AK, vEK and CK certificates (2 CRLs)" "checked in CRLs"
out=$(verify_ak akc host-a-tools c-ca --ca "$CA_URL") || fail "verify akc --ca: $out"
out=$(legacy akv) || fail "openssl verify -crl_check_all of a good AK: $out"
out=$(legacy akc) || fail "openssl verify -crl_check_all of a good AK: $out"

note "lineage and CRL distribution points in the certificates; the CRLs over HTTP"
assert_contains "$(openssl x509 -in "$W/akv.pem" -noout -text)" "URI:$CRL_BASE/v1/privacy/crl" \
	"AK certificate's CRL distribution point"
assert_contains "$(openssl x509 -in "$W/vekrsa.pem" -noout -text)" \
	"URI:$CRL_BASE/v1/virtualization/crl" "vEK certificate's CRL distribution point"
for role in privacy virtualization; do
	curl -s -D "$W/$role.hdr" -o "$W/$role.crl.der" "$CA_URL/v1/$role/crl" ||
		fail "GET /v1/$role/crl"
	assert_contains "$(tr -d '\r' <"$W/$role.hdr")" "Content-Type: application/pkix-crl" \
		"$role CRL media type"
	openssl crl -inform DER -in "$W/$role.crl.der" -noout -text >"$W/$role.crl.txt" ||
		fail "the $role CRL over HTTP is no DER CRL"
	assert_contains "$(cat "$W/$role.crl.txt")" "X509v3 CRL Number" "$role CRL number"
	assert_contains "$(cat "$W/$role.crl.txt")" "Next Update" "$role CRL nextUpdate"
done
openssl crl -in "$W/privacy.crl" -CAfile "$W/privacy.pem" -noout 2>&1 | grep -q "verify OK" ||
	fail "the privacy CRL is not signed by the Privacy CA"
openssl crl -in "$W/virtualization.crl" -CAfile "$W/virt.pem" -noout 2>&1 | grep -q "verify OK" ||
	fail "the virtualization CRL is not signed by the Virtualization CA"

note "refused: a quote by a revoked AK (its own certificate revoked)"
"$CA" revoke --serial "$AK_SERIAL" --reason "test: guest compromised" --db "$DB" >/dev/null ||
	fail "revoke the AK certificate"
assert_eq "$(status "$AK_SERIAL")" true "status of the revoked AK certificate"
refused_by "vtpm-attest trusted a quote by a revoked AK" "guest compromised" \
	verify_ak ak host-a-1 ca2 --ca "$CA_URL"

note "refused beneath a revoked vEK certificate: vtpm-attest, openssl, new AKs"
pending akp vek
"$CA" revoke --serial "$VEK_SERIAL" --reason "test: vTPM retired" --db "$DB" >/dev/null ||
	fail "revoke the vEK certificate"
expect_exit 1 "revoke twice" "$CA" revoke --serial "$VEK_SERIAL" --db "$DB"
assert_contains "$(cat "$T/out")" "revoked already" "revoke refusal"
assert_eq "$(status "$AKV_SERIAL")" true "an AK beneath the revoked vEK"
assert_eq "$(curl -s "$CA_URL/v1/status/$AKV_SERIAL" | jq -r .reason)" \
	"vEK certificate $VEK_SERIAL revoked: test: vTPM retired" "the cascade's reason"
refused_by "verify --ca beneath a revoked vEK" "vEK certificate $VEK_SERIAL: revoked" \
	verify_ak akv host-a-1 v-ca2 --ca "$CA_URL"
crls
refused_by "verify --crl beneath a revoked vEK" "vEK certificate $VEK_SERIAL is revoked" \
	verify_ak akv host-a-1 v-crl2 "${CRLS[@]}"
refused_by "openssl -crl_check_all beneath a revoked vEK" "certificate revoked" legacy akv
post /v1/privacy/challenge "$W/ak.json"
refused 403 "revoked" "a new AK beneath a revoked vEK"
post /v1/privacy/certify "$W/akp.certify.json"
refused 403 "revoked" "a challenge asked before the vEK's revocation, answered after"
out=$(verify_ak akc host-a-tools c-ca2 --ca "$CA_URL") ||
	fail "an AK beneath another vEK refused: $out"

note "refused beneath a revoked CK: every vEK and AK beneath it, new AKs"
pending akq vekrsa
"$CA" revoke --serial "$CK_SERIAL" --reason "test: host retired" --db "$DB" >/dev/null ||
	fail "revoke the CK certificate"
assert_eq "$(status "$VEK2_SERIAL")" true "a vEK beneath the revoked CK"
assert_eq "$(status "$AKC_SERIAL")" true "an AK beneath the revoked CK"
assert_eq "$(curl -s "$CA_URL/v1/status/$AKC_SERIAL" | jq -r .reason)" \
	"CK certificate $CK_SERIAL revoked: test: host retired" "the cascade's reason"
refused_by "verify --ca beneath a revoked CK" "CK certificate $CK_SERIAL: revoked" \
	verify_ak akc host-a-tools c-ca3 --ca "$CA_URL"
crls
refused_by "verify --crl beneath a revoked CK" "CK certificate $CK_SERIAL is revoked" \
	verify_ak akc host-a-tools c-crl3 "${CRLS[@]}"
refused_by "openssl -crl_check_all beneath a revoked CK" "certificate revoked" legacy akc
challenge_req ak "$W/vekrsa.pem" "$W/vekrsa.pub" "$W/akq.pub" "$W/akq2.json"
post /v1/privacy/challenge "$W/akq2.json"
refused 403 "revoked" "a new AK beneath a revoked CK"
post /v1/privacy/certify "$W/akq.certify.json"
refused 403 "revoked" "a challenge asked before the CK's revocation, answered after"
post /v1/virtualization/ek-certificate "$H/ek.json"
refused 403 "revoked" "revoked CK"
"$CA" list audit --json --db "$DB" >"$T/audit.json"
for s in "$AKV_SERIAL" "$VEK2_SERIAL" "$AKC_SERIAL"; do
	jq -e --arg s "$s" 'any(.[]; .action == "revoke" and .outcome == "cascaded" and
		(.detail | startswith("serial " + $s)))' "$T/audit.json" >/dev/null ||
		fail "no audit row for the cascade to $s"
done
assert_eq "$(jq '[.[] | select(.outcome == "cascaded")] | length' "$T/audit.json")" 3 \
	"cascaded revocations in the audit trail"

note "records: certificates, host configurations, the audit trail of every refusal"
"$CA" list --json --db "$DB" >"$T/certs.json" || fail "list --json"
assert_eq "$(jq '[.[] | select(.kind == "ck")] | length' "$T/certs.json")" 3 "CK certificates"
assert_eq "$(jq '[.[] | select(.kind == "ek")] | length' "$T/certs.json")" 2 "EK certificates"
assert_eq "$(jq '[.[] | select(.kind == "ak")] | length' "$T/certs.json")" 3 "AK certificates"
# the revocations above with what they cascade to, and host-a's first CK (superseded)
assert_eq "$(jq '[.[] | select(.revoked)] | length' "$T/certs.json")" 7 "revoked certificates"
assert_eq "$(jq -r ".[] | select(.serial == \"$AK_SERIAL\") | .reason" "$T/certs.json")" \
	"test: guest compromised" "revocation reason listed"
"$CA" list host-configs --db "$DB" >"$T/out"
assert_contains "$(cat "$T/out")" "host-a-tools" "list host-configs"
"$CA" list audit --json --db "$DB" >"$T/audit.json"
refusals=$(jq '[.[] | select(.outcome == "refused")] | length' "$T/audit.json")
# Every refusal above but two the server never got to judge: a body that is
# not JSON (refused by the HTTP layer) and a route of a role not served.
assert_eq "$refusals" 30 "refusals in the audit trail"
for text in "wrong secret" "has expired" "answered before" "approval key is not trusted" \
	"not an approved host configuration" "does not chain to a trusted manufacturer CA" \
	"not a vtpmd CK certificate"; do
	jq -e --arg t "$text" 'any(.[]; .outcome == "refused" and (.detail | contains($t)))' \
		"$T/audit.json" >/dev/null || fail "no audit row for a refusal: $text"
done
assert_eq "$(jq '[.[] | select(.outcome == "issued" and .action != "virtualization/nonce")] |
	length' "$T/audit.json")" 8 "certificates issued in the audit trail"
# nonces are stateless: handing one out writes nothing, the audit trail included
assert_eq "$(jq '[.[] | select(.action == "virtualization/nonce")] | length' "$T/audit.json")" 0 \
	"nonces handed out in the audit trail"

note "no transient objects or sessions left; everything stops cleanly"
for tcti in "$HOST" "$GUEST"; do
	assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-transient)" "" "transient handles"
	assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-loaded-session)" "" "loaded sessions"
done
stop_pid "$CA_PID"
stop_pid "$HOST_PID"
stop_pid "$GUEST_PID"

# The requests of this run seed tests/fuzz/corpus/ca (fuzz_ca).
if [ -n "${CA_CORPUS:-}" ]; then
	mkdir -p "$CA_CORPUS"
	cp "$W/ck.json" "$CA_CORPUS/challenge-ck"
	cp "$W/ak.json" "$CA_CORPUS/challenge-ak"
	cp "$W/akhost.json" "$CA_CORPUS/challenge-ak-with-host"
	cp "$W/certify.json" "$CA_CORPUS/certify"
	cp "$H/ek.json" "$CA_CORPUS/ek-certificate"
	cp "$H/tools.json" "$CA_CORPUS/ek-certificate-tools"
	cp "$H/nouuid.json" "$CA_CORPUS/ek-certificate-bad-uuid"
	cp "$H/values.json" "$CA_CORPUS/pcr-values-json"
	printf '%s' "$VALUES" >"$CA_CORPUS/pcr-values-list"
	printf '%s' "$AK_SERIAL" >"$CA_CORPUS/serial"
	jq '.ek_chain = [.ek_certificate]' "$W/ck.json" >"$CA_CORPUS/challenge-ck-chain"
fi
echo "ok"
