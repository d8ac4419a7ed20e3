#!/bin/bash
# The chain of trust through vtpmd (docs/api.md "host enroll", "create"):
#  - a simulated host TPM with a manufacturer EK certificate in NV;
#  - vtpm-ca trusting that manufacturer, vtpmd's approval key and the
#    host's approved PCR values;
#  - `vtpmctl host enroll --ca-root`: CK certificate from the Privacy CA
#    (openssl verify), BK certified by the CK (checked with evidence-check);
#    without a root to check it against, the enrolment is refused;
#  - `vtpmctl create`: vEKs persisted at the TCG handles, EK certificates
#    in NV 0x01c00002 / 0x01c0000a read back with tpm2_nvread, the
#    Virtualization CA's chain from 0x01c00100, `info --json` listing them,
#    `--ek` choosing the types;
#  - the guest side with tpm2-tools: an AK enrolled with `vtpm-attest
#    enroll`, and one with plain tpm2_activatecredential between
#    `vtpm-attest challenge` and `certify`; a quote verified by the
#    vTPM-aware challenger and by the legacy one (openssl verify,
#    tpm2_checkquote);
#  - refusals with nothing created: --ek before enrolment, the CA down,
#    the CK revoked, a host configuration the CA has not approved; an
#    enrolment refused (untrusted manufacturer) keeps the previous one.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
ATTEST=$TOP/build/san/vtpm-attest
EVCHECK=$TOP/build/san/evidence-check
[ "$(id -u)" -eq 0 ] || fail "the chain test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createek tpm2_createak tpm2_evictcontrol tpm2_nvread \
	tpm2_readpublic tpm2_quote tpm2_checkquote tpm2_activatecredential tpm2_startauthsession \
	tpm2_policysecret tpm2_flushcontext tpm2_print
for t in "$CA" "$ATTEST" "$EVCHECK"; do
	[ -x "$t" ] || fail "$t is missing (make san)"
done
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db

note "host TPM: a simulator with its manufacturer's EK certificate"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"

note "vtpm-ca: both roles, trusting the manufacturer"
"$CA" init --db "$DB" --name chain-test >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both
cat "$T/ca/ca-root.pem" >"$W/root.pem"

note "vtpmd, its approval key trusted and the present host configuration approved by the CA"
start_vtpmd svc --root-tcti "$HOST_TCTI"
admit_host "$DB" rack1
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "approval public key"
"$CA" trust add --approval-key "$W/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json | jq -c .current.values >"$W/values.json"
pcrs=$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')
"$CA" approve-host-config --db "$DB" --id rack1-approved --pcrs "$pcrs" \
	--values "$W/values.json" >/dev/null || fail "approve-host-config"

note "refused before enrolment: --ek; a plain create still works, without EKs"
expect_exit 1 "create --ek before enrolment" "$VTPMCTL" create early --ek rsa2048
assert_contains "$(cat "$T/out")" "vtpmctl host enroll" "refusal says how to enrol"
"$VTPMCTL" create plain --no-start --json >"$W/plain.json" || fail "create plain"
[ "$(jq -r '.endorsement // "none"' "$W/plain.json")" == none ] || fail "EKs without enrolment"
"$VTPMCTL" host >"$T/out"
assert_contains "$(cat "$T/out")" "enrolment:     none" "host before enrolment"

note "bad input: enrol without a CA, with a bad URL, --ek of an unknown type"
expect_exit 2 "host enroll without --ca" "$VTPMCTL" host enroll
expect_exit 1 "host enroll ftp://" "$VTPMCTL" host enroll --ca ftp://example
assert_contains "$(cat "$T/out")" "http://HOST" "bad URL"
expect_exit 2 "create --ek dsa" "$VTPMCTL" create x --ek dsa
expect_exit 2 "create --ek ''" "$VTPMCTL" create x --ek ,

note "enrolment refused by a CA that does not trust the manufacturer"
mkdir -p "$T/ca2"
"$CA" init --db "$T/ca2/ca.db" --name other >/dev/null || fail "vtpm-ca init (other)"
good_url=$CA_URL
good_pid=$CA_PID
start_vtpm_ca ca2 --db "$T/ca2/ca.db" --role both
other_url=$CA_URL
expect_exit 1 "enrol with an untrusted manufacturer" "$VTPMCTL" host enroll --ca "$other_url" \
	--ca-root "$W/root.pem" --name rack1
assert_contains "$(cat "$T/out")" "manufacturer" "untrusted manufacturer refusal"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == false' >/dev/null ||
	fail "a refused enrolment left a record"

note "refused: an enrolment without a root to check the CK certificate against"
CA_URL=$good_url
expect_exit 1 "enrol without a CA root" "$VTPMCTL" host enroll --ca "$CA_URL" --name rack1
assert_contains "$(cat "$T/out")" "no Privacy CA root" "enrolment without a root"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == false' >/dev/null ||
	fail "an enrolment without a root left a record"

note "vtpmctl host enroll: CK certificate, BK certified by the CK"
"$VTPMCTL" host enroll --ca "$CA_URL" --ca-root "$W/root.pem" --name rack1 >"$T/out" ||
	fail "host enroll: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" 'enrolled:      as "rack1"' "enrolled"
assert_contains "$(cat "$T/out")" "BK:            0x81000003" "BK shown"
"$VTPMCTL" host --json >"$W/host.json"
jq -j .enrolment.ck.certificate "$W/host.json" >"$W/ck-chain.pem"
openssl x509 -in "$W/ck-chain.pem" -out "$W/ck.pem"
out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/ck-chain.pem" "$W/ck.pem" 2>&1) ||
	fail "openssl verify of the CK certificate: $out"
assert_contains "$(openssl x509 -in "$W/ck.pem" -noout -subject)" "rack1" "CK subject"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_readpublic -c 0x81000002 -o "$W/ck.pub" >/dev/null ||
	fail "tpm2_readpublic CK"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/ck.pub" >"$W/ck.key.pem"
cmp -s "$W/ck.key.pem" <(openssl x509 -in "$W/ck.pem" -noout -pubkey) ||
	fail "the CK certificate is not the host TPM's CK"
for f in public certify_attest certify_signature; do
	jq -r ".enrolment.bk.$f" "$W/host.json" | base64 -d >"$W/bk.$f" || fail "bk.$f"
done
"$EVCHECK" certify "$W/ck.pub" "$W/bk.certify_attest" "$W/bk.certify_signature" "$W/bk.public" \
	"$(sha256sum "$W/bk.public" | cut -c1-64)" >/dev/null || fail "BK certification by the CK"
"$EVCHECK" public "$W/bk.public" >"$W/bk.txt"
assert_contains "$(cat "$W/bk.txt")" "scheme=0x0017" "BK is an RSA-OAEP decryption key"
[ $(($(sed -n 's/^attributes=//p' "$W/bk.txt") & 0x20000)) -ne 0 ] || fail "BK cannot decrypt"

note "vtpmctl create: vEKs and their certificates in the vTPM's NV"
"$VTPMCTL" create vm-a >"$T/out" || fail "create vm-a: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" "ek:         rsa2048 at 0x81010001, certificate in NV 0x01c00002" \
	"info shows the RSA EK"
assert_contains "$(cat "$T/out")" "ek:         ecc-p256 at 0x81010002, certificate in NV 0x01c0000a" \
	"info shows the ECC EK"
"$VTPMCTL" info vm-a --json >"$W/a.json"
tcti=$(jfield "$(cat "$W/a.json")" .tcti)
assert_eq "$(jq -r '.endorsement.eks | length' "$W/a.json")" 2 "two EKs"
jq -j '.endorsement.chain[0]' "$W/a.json" >"$W/virt.pem"
for kind in rsa2048:0x01c00002:0x81010001 ecc-p256:0x01c0000a:0x81010002; do
	IFS=: read -r type index handle <<<"$kind"
	jq -j ".endorsement.eks[] | select(.type == \"$type\") | .certificate" "$W/a.json" \
		>"$W/ek-$type.pem"
	TPM2TOOLS_TCTI=$tcti tpm2_nvread "$index" -C o -o "$W/ek-$type.der" 2>/dev/null ||
		fail "tpm2_nvread $index"
	cmp -s "$W/ek-$type.der" <(openssl x509 -in "$W/ek-$type.pem" -outform DER) ||
		fail "NV $index does not hold the $type EK certificate"
	out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/virt.pem" "$W/ek-$type.der" 2>&1) ||
		out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/virt.pem" \
			"$W/ek-$type.pem" 2>&1) || fail "openssl verify of the $type EK certificate: $out"
	TPM2TOOLS_TCTI=$tcti tpm2_readpublic -c "$handle" -f pem -o "$W/vek-$type.pem" >/dev/null ||
		fail "tpm2_readpublic $handle"
	cmp -s "$W/vek-$type.pem" <(openssl x509 -in "$W/ek-$type.pem" -noout -pubkey) ||
		fail "the $type EK certificate is not for the persisted EK"
	openssl x509 -in "$W/ek-$type.pem" -noout -text >"$W/ek-$type.txt"
	assert_contains "$(cat "$W/ek-$type.txt")" "2.23.133.8.1" "$type EK certificate EKU"
done
TPM2TOOLS_TCTI=$tcti tpm2_nvread 0x01c00100 -C o -o "$W/chain0.der" 2>/dev/null ||
	fail "chain index"
cmp -s "$W/chain0.der" <(openssl x509 -in "$W/virt.pem" -outform DER) ||
	fail "NV 0x01c00100 is not the Virtualization CA"
rc=0
TPM2TOOLS_TCTI=$tcti tpm2_nvwrite 0x01c00002 -C o -i "$W/chain0.der" >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "the guest owner overwrote the EK certificate"
"$VTPMCTL" create vm-ecc --ek ecc-p256 --json >"$W/ecc.json" || fail "create --ek ecc-p256"
assert_eq "$(jq -r '[.endorsement.eks[].type] | join(",")' "$W/ecc.json")" ecc-p256 "--ek ecc-p256"
"$VTPMCTL" create vm-none --ek none --json >"$W/none.json" || fail "create --ek none"
[ "$(jq -r '.endorsement // "none"' "$W/none.json")" == none ] || fail "--ek none made EKs"
expect_exit 1 "create --ek for a TPM 1.2" "$VTPMCTL" create old --tpm 1.2 --ek rsa2048
assert_contains "$(cat "$T/out")" "TPM 2.0 only" "TPM 1.2 refusal"

note "EK certificates kept across a vtpmd restart and an instance restart"
kill -TERM "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" restart vm-a >/dev/null || fail "restart vm-a"
TPM2TOOLS_TCTI=$tcti tpm2_nvread 0x01c0000a -C o -o "$W/after.der" 2>/dev/null ||
	fail "nvread after restart"
cmp -s "$W/after.der" "$W/ek-ecc-p256.der" || fail "the ECC EK certificate changed"
"$VTPMCTL" host --json | jq -e '.enrolment.host == "rack1"' >/dev/null ||
	fail "enrolment not reloaded"

note "guest: tpm2-tools AK, enrolled with vtpm-attest enroll"
export TPM2TOOLS_TCTI=$tcti
flushed tpm2_createek -G ecc -c 0x81010002 -u "$W/gek.pub" >/dev/null 2>&1 ||
	flushed tpm2_readpublic -c 0x81010002 -o "$W/gek.pub" >/dev/null || fail "guest EK"
flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak"
flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
"$ATTEST" enroll --ca "$CA_URL" --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak.pem" \
	>"$T/out" 2>&1 || fail "vtpm-attest enroll: $(cat "$T/out")"
curl -s "$CA_URL/v1/privacy/ca" | jq -j .certificate >"$W/privacy.pem"
out=$(openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$W/ak.pem" 2>&1) ||
	fail "openssl verify of the AK certificate: $out"

note "guest: an RSA AK through plain tpm2_activatecredential"
flushed tpm2_createak -C 0x81010001 -G rsa -g sha256 -s rsassa -c "$W/ak2.ctx" -u "$W/ak2.pub" \
	-n "$W/ak2.name" >/dev/null || fail "tpm2_createak rsa"
flushed tpm2_readpublic -c 0x81010001 -o "$W/gekrsa.pub" >/dev/null || fail "readpublic EK"
id=$("$ATTEST" challenge --ca "$CA_URL" --ek-cert "$W/ek-rsa2048.der" --ek-public "$W/gekrsa.pub" \
	--ak-public "$W/ak2.pub" --out-credential "$W/cred.bin" 2>"$T/out") ||
	fail "vtpm-attest challenge: $(cat "$T/out")"
tpm2_startauthsession --policy-session -S "$W/s.ctx" || fail "startauthsession"
tpm2_policysecret -S "$W/s.ctx" -c e >/dev/null || fail "policysecret"
flushed tpm2_activatecredential -c "$W/ak2.ctx" -C 0x81010001 -i "$W/cred.bin" \
	-o "$W/secret.bin" -P "session:$W/s.ctx" >/dev/null || fail "tpm2_activatecredential"
"$ATTEST" certify --ca "$CA_URL" --id "$id" --secret "$W/secret.bin" --out "$W/ak2.pem" \
	>"$T/out" 2>&1 || fail "vtpm-attest certify: $(cat "$T/out")"
openssl verify -CAfile "$W/root.pem" -untrusted "$W/privacy.pem" "$W/ak2.pem" >/dev/null ||
	fail "openssl verify of the RSA AK certificate"

note "refused: a CK that is not in the host EK's TPM (activation fails, nothing issued)"
# rogue_req KEYPUB: a CK challenge request with the host's EK certificate and
# EK (admitted as rack1) and KEYPUB as the CK, answered into $W/rogue.resp.
rogue_req() {
	jq -n --rawfile cert <(openssl x509 -inform DER -in "$T/mfr/ek-cert.der") \
		--arg ek "$(base64 -w0 "$T/mfr/ek.pub")" --arg key "$(base64 -w0 "$1")" \
		'{kind: "ck", ek_certificate: $cert, ek_public: $ek, key_public: $key,
		  host: "rack1"}' >"$W/rogue.json"
	curl -s -o "$W/rogue.resp" -H 'Content-Type: application/json' \
		--data-binary "@$W/rogue.json" "$CA_URL/v1/privacy/challenge" || fail "rogue challenge"
}
# vm-a's AK presented as the CK: not the CK vtpmd makes (userWithAuth, no
# approval policy), refused before any challenge.
rogue_req "$W/ak.pub"
assert_contains "$(jq -r .error "$W/rogue.resp")" "the CK has userWithAuth" "vm-a's AK as CK"
# The host's own CK public area (public: any enrolment shows it), presented
# by vm-a: the key's holder is the host TPM, and vm-a cannot open a
# credential made for the host EK.
rogue_req "$W/ck.pub"
rid=$(jq -er .id "$W/rogue.resp") || fail "no challenge for the rogue CK: $(cat "$W/rogue.resp")"
{
	printf '\xba\xdc\xc0\xde\x00\x00\x00\x01'
	jq -r .credential_blob "$W/rogue.resp" | base64 -d
	jq -r .encrypted_secret "$W/rogue.resp" | base64 -d
} >"$W/rogue.cred"
tpm2_startauthsession --policy-session -S "$W/s2.ctx" || fail "startauthsession"
tpm2_policysecret -S "$W/s2.ctx" -c e >/dev/null || fail "policysecret"
rc=0
flushed tpm2_activatecredential -c 0x81000010 -C 0x81010001 -i "$W/rogue.cred" \
	-o "$W/rogue.secret" -P "session:$W/s2.ctx" >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a vTPM opened a credential made for the host EK"
head -c 32 /dev/urandom >"$W/guess"
jq -n --arg id "$rid" --arg s "$(base64 -w0 "$W/guess")" '{id: $id, secret: $s}' >"$W/guess.json"
http=$(curl -s -o "$W/guess.resp" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary "@$W/guess.json" "$CA_URL/v1/privacy/certify")
assert_eq "$http" 403 "certify with a guessed secret"
assert_contains "$(jq -r .error "$W/guess.resp")" "wrong secret" "guessed secret refusal"
[ "$(jq -r '.certificate // ""' "$W/guess.resp")" == "" ] || fail "a certificate was issued"

note "challenger: a quote, verified vTPM-aware and legacy"
nonce=$(openssl rand -hex 16)
# PCR 16 of a vTPM nothing has extended: all zeros, what the challenger expects.
expect16="sha256:16=$(printf '0%.0s' {1..64})"
flushed tpm2_quote -c 0x81000010 -l sha256:0,16 -q "$nonce" -m "$W/q.msg" -s "$W/q.sig" \
	-o "$W/q.pcrs" -g sha256 >/dev/null || fail "tpm2_quote"
unset TPM2TOOLS_TCTI
"$ATTEST" verify --ak-cert "$W/ak.pem" --message "$W/q.msg" --signature "$W/q.sig" \
	--pcr-file "$W/q.pcrs" --nonce "$nonce" --trust "$W/root.pem" --untrusted "$W/privacy.pem" \
	--ca "$CA_URL" --pcrs "$expect16" --policy require-host-config rack1-approved --state "$W/st" \
	>"$T/out" 2>&1 || fail "vtpm-attest verify: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" "virtual TPM on host rack1 (CK" "verdict names the host"
assert_contains "$(cat "$T/out")" "rack1-approved" "verdict names the configuration"
expect_exit 1 "reject-virtual" "$ATTEST" verify --ak-cert "$W/ak.pem" --message "$W/q.msg" \
	--signature "$W/q.sig" --pcr-file "$W/q.pcrs" --nonce "$nonce" --trust "$W/root.pem" \
	--untrusted "$W/privacy.pem" --policy reject-virtual --state "$W/st2"
assert_contains "$(cat "$T/out")" "virtual" "reject-virtual names the cause"
expect_exit 1 "a replayed quote" "$ATTEST" verify --ak-cert "$W/ak.pem" --message "$W/q.msg" \
	--signature "$W/q.sig" --pcr-file "$W/q.pcrs" --nonce "$nonce" --trust "$W/root.pem" \
	--untrusted "$W/privacy.pem" --state "$W/st"
openssl x509 -in "$W/ak.pem" -noout -pubkey >"$W/ak.key.pem"
out=$(tpm2_checkquote -u "$W/ak.key.pem" -m "$W/q.msg" -s "$W/q.sig" -f "$W/q.pcrs" -g sha256 \
	-q "$nonce" 2>&1) || fail "tpm2_checkquote: $out"

note "refused, nothing created: the CA down"
kill_hard "$good_pid"
expect_exit 1 "create with the CA down" "$VTPMCTL" create vm-x
assert_contains "$(cat "$T/out")" "CA at" "CA down: names the CA"
"$VTPMCTL" info vm-x >/dev/null 2>&1 && fail "a failed create left vm-x"
[ ! -e "$T/svc/state/instances/vm-x" ] || fail "a failed create left its directory"
start_vtpm_ca ca --db "$DB" --role both
"$VTPMCTL" host enroll --ca "$CA_URL" --ca-root "$W/root.pem" --name rack1 >/dev/null ||
	fail "enrol again"

note "refused, nothing created: a host configuration the CA has not approved"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_pcrextend 7:sha256=$(openssl rand -hex 32) || fail "extend host PCR 7"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve (new PCR 7)"
expect_exit 1 "create on an unapproved host configuration" "$VTPMCTL" create vm-y
assert_contains "$(cat "$T/out")" "not an approved host configuration" "unapproved config"
[ ! -e "$T/svc/state/instances/vm-y" ] || fail "a refused create left its directory"

note "refused, nothing created: the CK certificate revoked"
"$VTPMCTL" policy --json | jq -c .current.values >"$W/values2.json"
"$CA" approve-host-config --db "$DB" --id rack1-pcr7 --pcrs "$pcrs" --values "$W/values2.json" \
	>/dev/null || fail "approve-host-config (new PCR 7)"
"$VTPMCTL" create vm-z --ek ecc-p256 >/dev/null || fail "create on the newly approved config"
serial=$("$VTPMCTL" host --json | jq -r .enrolment.ck.serial)
"$CA" revoke --db "$DB" --serial "$serial" --reason "host decommissioned" >/dev/null ||
	fail "revoke the CK"
expect_exit 1 "create with a revoked CK" "$VTPMCTL" create vm-w
assert_contains "$(cat "$T/out")" "revoked" "revoked CK"
[ ! -e "$T/svc/state/instances/vm-w" ] || fail "a refused create left its directory"
"$VTPMCTL" list >/dev/null || fail "vtpmd does not answer after the refusals"
