#!/bin/bash
# Admitted hosts (docs/ca-api.md, "Admitted hosts"; docs/threat-model.md, "A
# rogue machine with a genuine TPM"). The Privacy CA certifies a CK only
# for a host EK its operator admitted, under the one name it was admitted
# with:
#  - vtpm-ca host add / list / remove: the EK certificate exported by
#    `vtpmctl host ek-cert` (PEM) or as the manufacturer wrote it (DER); a
#    name twice, or one EK under two names, refused;
#  - a second machine whose simulated TPM has a genuine EK certificate from
#    a trusted manufacturer, not admitted, is refused (403, the reason, no
#    certificate, no challenge kept), under its own name and under an
#    admitted host's; admitted, it is refused another host's name;
#  - enrolling the same EK again rotates its CK: the previous certificate
#    is revoked, reason "superseded" (vtpm-ca list, GET /v1/status);
#  - a removed host enrols no more;
#  - the lab switch (serve --admit-any-manufacturer-ek), off by default,
#    admits an unknown EK at its first enrolment, logged, never under a
#    name another EK has;
#  - a host is admitted with its approval public key: root on an enrolled
#    host who makes a CK of its own (tpm2_createak: userWithAuth, no
#    approval policy) and enrols it directly is refused (403 naming why, no
#    challenge kept, no certificate).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
require_tools curl jq openssl sqlite3 xxd tpm2_createek tpm2_createak tpm2_nvdefine \
	tpm2_nvwrite tpm2_print
for t in "$CA" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done
mkdir -p "$T/ca" "$T/lab"
DB=$T/ca/ca.db

# on HOST ARGS...: vtpmctl against the vtpmd of HOST (rack1 or rogue).
on() {
	local host=$1
	shift
	VTPMD_SOCKET=$T/$host/run/api.sock "$VTPMCTL" "$@"
}

# refused_enrol HOST NAME NEEDLE: `vtpmctl host enroll` on HOST as NAME is
# refused by the Privacy CA (HTTP 403 relayed, naming NEEDLE); no CK
# certificate for NAME, no challenge kept, HOST's enrolment unchanged.
refused_enrol() {
	local host=$1 name=$2 what="$1 enrolling as $2" before rows certs
	before=$(on "$host" host --json | jq -c .enrolment)
	rows=$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges")
	certs=$(issued_to "$name")
	expect_exit 1 "$what" env VTPMD_SOCKET="$T/$host/run/api.sock" "$VTPMCTL" host enroll --ca "$CA_URL" --name "$name"
	note "$what: $(head -n 1 "$T/out")"
	assert_contains "$(cat "$T/out")" "$3" "$what: the reason"
	assert_contains "$(cat "$T/out")" "403" "$what: the CA's status"
	assert_eq "$(on "$host" host --json | jq -c .enrolment)" "$before" "$what: the enrolment"
	assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges")" "$rows" \
		"$what: challenges kept"
	assert_eq "$(issued_to "$name")" "$certs" "$what: CK certificates for $name"
}

# issued_to NAME: CK certificates issued for NAME so far.
issued_to() {
	"$CA" list --json --db "$DB" | jq --arg n "$1" \
		'[.[] | select(.kind == "ck" and .subject == $n)] | length'
}

note "two simulated host TPMs with genuine manufacturer EK certificates: rack1 and a rogue"
start_host_tpm "$T/host-rogue"
host_ek_certificate "$T/mfr-rogue"
ROGUE_TCTI=$HOST_TCTI
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"

note "vtpm-ca trusting both manufacturers; vtpmd on each machine"
"$CA" init --db "$DB" --name admit >/dev/null || fail "vtpm-ca init"
for m in mfr mfr-rogue; do
	"$CA" trust add --manufacturer "$T/$m/mfr.pem" --name "$m" --db "$DB" >/dev/null ||
		fail "trust add $m"
done
printf 'privacy-ca-root = %s\n' "$T/ca/ca-root.pem" >"$T/vtpmd.conf"
start_vtpmd rogue --config "$T/vtpmd.conf" --root-tcti "$ROGUE_TCTI"
start_vtpmd rack1 --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
RACK1_PID=$VTPMD_PID
for h in rogue rack1; do
	on "$h" policy approve --current >/dev/null || fail "policy approve ($h)"
done
start_vtpm_ca ca --db "$DB" --role privacy

note "vtpmctl host ek-cert: the host EK certificate from the host TPM's NV"
on rack1 host ek-cert --out "$T/rack1-ek.pem" || fail "host ek-cert"
openssl x509 -inform DER -in "$T/mfr/ek-cert.der" >"$T/nv-ek.pem"
cmp -s "$T/rack1-ek.pem" "$T/nv-ek.pem" || fail "host ek-cert is not the NV's certificate"
on rack1 host ek-cert --json | jq -e '.kind == "rsa2048" and .nv_index == "0x01c00002"' \
	>/dev/null || fail "host ek-cert --json"
assert_contains "$(on rack1 host ek-cert)" "BEGIN CERTIFICATE" "host ek-cert on stdout"
on rogue host ek-cert --out "$T/rogue-ek.pem" || fail "host ek-cert (rogue)"
VTPMD_SOCKET=$T/rack1/run/api.sock approval_pub_pem "$T/rack1-approval.pem"
VTPMD_SOCKET=$T/rogue/run/api.sock approval_pub_pem "$T/rogue-approval.pem"
expect_exit 2 "host ek-cert with an argument" env VTPMD_SOCKET="$T/rack1/run/api.sock" \
	"$VTPMCTL" host ek-cert extra

note "vtpm-ca host add: a name for one EK, an EK under one name"
expect_exit 2 "host add without --ek-cert" "$CA" host add rack1 \
	--approval-key "$T/rack1-approval.pem" --db "$DB"
expect_exit 2 "host add without --approval-key" "$CA" host add rack1 \
	--ek-cert "$T/rack1-ek.pem" --db "$DB"
assert_contains "$(cat "$T/out")" "needs --approval-key FILE" "the approval key asked for"
expect_exit 1 "host add with an approval key that is no key" "$CA" host add rack1 \
	--ek-cert "$T/rack1-ek.pem" --approval-key "$T/vtpmd.conf" --db "$DB"
assert_contains "$(cat "$T/out")" "not an ECC P-256 approval key" "a bad approval key"
expect_exit 2 "host add without a name" "$CA" host add --ek-cert "$T/rack1-ek.pem" --db "$DB"
expect_exit 2 "host add with a 65-character name" "$CA" host add "$(printf 'x%.0s' {1..65})" \
	--ek-cert "$T/rack1-ek.pem" --db "$DB"
expect_exit 2 "host frobnicate" "$CA" host frobnicate --db "$DB"
expect_exit 1 "host add of a file that is no certificate" "$CA" host add rack1 \
	--ek-cert "$T/vtpmd.conf" --approval-key "$T/rack1-approval.pem" --db "$DB"
assert_contains "$(cat "$T/out")" "not a readable certificate" "not a certificate"
"$CA" host add rack1 --ek-cert "$T/rack1-ek.pem" --approval-key "$T/rack1-approval.pem" \
	--db "$DB" >"$T/out" ||
	fail "host add rack1: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" "admitted host rack1" "host add"
expect_exit 1 "the same name for another EK" "$CA" host add rack1 \
	--ek-cert "$T/rogue-ek.pem" --approval-key "$T/rogue-approval.pem" --db "$DB"
assert_contains "$(cat "$T/out")" "a host of this name is admitted already" "name twice"
expect_exit 1 "one EK under two names (DER)" "$CA" host add rack9 \
	--ek-cert "$T/mfr/ek-cert.der" --approval-key "$T/rack1-approval.pem" --db "$DB"
assert_contains "$(cat "$T/out")" 'admitted already, as host "rack1"' "one EK, two names"
"$CA" host list --db "$DB" >"$T/out" || fail "host list"
assert_contains "$(cat "$T/out")" "rack1" "host list"
assert_eq "$("$CA" host list --json --db "$DB" | jq length)" 1 "hosts admitted"
xy=$(openssl pkey -pubin -in "$T/rack1-approval.pem" -outform DER | tail -c 64 | xxd -p |
	tr -d "\n")
assert_eq "$("$CA" host list --json --db "$DB" | jq -r '.[0].approval_key | .x + .y')" "$xy" \
	"the approval key kept with the host"
"$CA" list audit --db "$DB" >"$T/out"
assert_contains "$(cat "$T/out")" "host add" "host add audited"

note "refused: the rogue machine, not admitted, under its own name and under rack1's"
refused_enrol rogue rogue1 "is not admitted"
refused_enrol rogue rack1 'host name "rack1" belongs to another EK'

note "rack1 enrols; enrolling again rotates its CK: the first certificate is superseded"
on rack1 host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll rack1: $(cat "$T/out")"
first=$(on rack1 host --json | jq -er .enrolment.ck.serial)
on rack1 host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll rack1 again: $(cat "$T/out")"
second=$(on rack1 host --json | jq -er .enrolment.ck.serial)
[ "$first" != "$second" ] || fail "enrolling again kept CK certificate $first"
"$CA" list --json --db "$DB" >"$T/certs.json"
assert_eq "$(jq -r --arg s "$first" '.[] | select(.serial == $s) |
	"\(.revoked) \(.reason)"' "$T/certs.json")" "true superseded" "the first CK in vtpm-ca list"
assert_eq "$(jq -r --arg s "$second" '.[] | select(.serial == $s) | .revoked' \
	"$T/certs.json")" false "the second CK"
curl -s "$CA_URL/v1/status/$first" | jq -e '.revoked and .reason == "superseded"' \
	>/dev/null || fail "GET /v1/status of the superseded CK"
"$CA" list audit --db "$DB" >"$T/out"
assert_contains "$(cat "$T/out")" "serial $first: superseded" "the rotation audited"
refused_enrol rack1 rack2 'admitted as host "rack1", not "rack2"'

note "root on rack1 makes a CK of its own (userWithAuth, no approval policy) and enrols it"
# What root can do in an approved configuration: a restricted signing key
# under the host EK, whose authValue alone would let it sign after a boot
# into an unapproved one. It asks the Privacy CA directly, as rack1, with
# vtpmd stopped (whose sessions would leave tpm2-tools none).
stop_pid "$RACK1_PID"
TPM2TOOLS_TCTI=$HOST_TCTI flushed tpm2_createek -G rsa -c "$T/root-ek.ctx" -u "$T/root-ek.pub" \
	>/dev/null || fail "tpm2_createek (root)"
TPM2TOOLS_TCTI=$HOST_TCTI flushed tpm2_createak -C "$T/root-ek.ctx" -G ecc -g sha256 -s ecdsa \
	-c "$T/root-ck.ctx" -u "$T/root-ck.pub" >/dev/null || fail "tpm2_createak (root)"
jq -n --rawfile cert "$T/rack1-ek.pem" --arg ek "$(base64 -w0 "$T/root-ek.pub")" \
	--arg key "$(base64 -w0 "$T/root-ck.pub")" \
	'{kind: "ck", ek_certificate: $cert, ek_public: $ek, key_public: $key, host: "rack1"}' \
	>"$T/root-ck.json"
rows=$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges")
certs=$(issued_to rack1)
code=$(curl -s -o "$T/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary "@$T/root-ck.json" "$CA_URL/v1/privacy/challenge")
note "root's own CK: $(jq -r .error "$T/resp.json")"
assert_eq "$code" 403 "root's own CK: the status"
assert_contains "$(jq -r .error "$T/resp.json")" "the CK has userWithAuth" "root's own CK: why"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges")" "$rows" "root's CK: challenges"
assert_eq "$(issued_to rack1)" "$certs" "root's CK: CK certificates for rack1"
start_vtpmd rack1 --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"

note "refused: the rogue machine admitted as rogue1, asking for rack1's name"
"$CA" host add rogue1 --ek-cert "$T/rogue-ek.pem" --approval-key "$T/rogue-approval.pem" \
	--db "$DB" >/dev/null ||
	fail "host add rogue1"
refused_enrol rogue rack1 'admitted as host "rogue1", not "rack1"'
on rogue host enroll --ca "$CA_URL" --name rogue1 >"$T/out" 2>&1 ||
	fail "host enroll rogue1 once admitted: $(cat "$T/out")"

note "a removed host enrols no more, and its CK certificate is revoked"
"$CA" host remove rack1 --db "$DB" >"$T/out" || fail "host remove rack1"
assert_contains "$(cat "$T/out")" "its CK certificate $second is revoked (host removed)" \
	"host remove names the CK"
curl -s "$CA_URL/v1/status/$second" | jq -e '.revoked and .reason == "host removed"' \
	>/dev/null || fail "host remove left CK certificate $second valid"
expect_exit 1 "host remove of an unknown host" "$CA" host remove rack1 --db "$DB"
refused_enrol rack1 rack1 "is not admitted"

note "the lab switch: --admit-any-manufacturer-ek admits an unknown EK, logged, never a taken name"
stop_pid "$CA_PID"
start_vtpm_ca lab --db "$DB" --role privacy --admit-any-manufacturer-ek
grep -q "admit-any-manufacturer-ek: a lab switch" "$T/lab.log" ||
	fail "the lab switch is not logged at start"
on rack1 host enroll --ca "$CA_URL" --name lab1 >"$T/out" 2>&1 ||
	fail "enrol with the lab switch: $(cat "$T/out")"
grep -q 'admitting host "lab1"' "$T/lab.log" || fail "the switch's use is not logged"
assert_contains "$("$CA" host list --db "$DB")" "lab1" "admitted by the switch"
"$CA" list audit --db "$DB" >"$T/out"
assert_contains "$(cat "$T/out")" "by --admit-any-manufacturer-ek" "the switch's use audited"
refused_enrol rogue lab1 'admitted as host "rogue1", not "lab1"'
echo "ok"
