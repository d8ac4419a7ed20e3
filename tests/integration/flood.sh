#!/bin/bash
# No denial by flood (docs/ca-api.md, "Limits"; docs/threat-model.md, "A
# network attacker"). Open challenges are limited per client network (an
# IPv4 /24, an IPv6 /48) and per EK from one network, so that one source
# cannot refuse the others:
#  - a flood of FLOOD challenge requests from one client (127.0.1.2, many at
#    once with curl --parallel), built from public inputs only: an admitted
#    host's EK certificate, EK and CK public areas (what it presents at every
#    enrolment: the CK must be the one vtpmd makes under the host's
#    approval key, or the CA refuses the request before any challenge);
#  - the flood gets challenges_per_ek challenges, the rest 429 naming the
#    limit and the network 127.0.1.0/24; another address of that /24 is
#    refused alike; the database keeps no more rows than that;
#  - then the host enrols again from its own address (vtpmd, 127.0.0.1)
#    with the same EK and CK, and succeeds;
#  - a request with a field the CA does not know is refused (400 naming
#    it), for each route; nothing of a request but its parsed fields is
#    kept in a challenge row;
#  - vEK evidence nonces are stateless: a flood of them from 127.0.1.2 is
#    answered and leaves no row, and another client still gets one
#    (stateless-nonces.sh floods from many addresses).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
# The release build: what is measured is whether the limits hold under the
# load a flood makes, which the sanitizer build would slow several times.
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
FLOOD=${FLOOD:-2000}
PER_EK=4
NONCE_FLOOD=${NONCE_FLOOD:-200}
require_tools curl jq openssl sqlite3 xxd tpm2_readpublic tpm2_nvdefine tpm2_nvwrite tpm2_print
for t in "$CA" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done
mkdir -p "$T/ca" "$T/w"
W=$T/w
DB=$T/ca/ca.db

note "rack1's host TPM with its manufacturer's EK certificate; a CA that admitted rack1"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name flood >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
printf 'privacy-ca-root = %s\n' "$T/ca/ca-root.pem" >"$T/vtpmd.conf"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
admit_host "$DB" rack1
printf '{"challenges_per_ek": %d}\n' "$PER_EK" >"$T/ca.json"
start_vtpm_ca ca --db "$DB" --role privacy --config "$T/ca.json"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"

note "the flooder's request: rack1's public EK certificate, EK and CK"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_readpublic -c 0x81000002 -o "$W/ck.pub" >/dev/null ||
	fail "tpm2_readpublic of rack1's CK"
jq -n --rawfile cert "$T/host-ek-rack1.pem" --arg ek "$(base64 -w0 "$T/mfr/ek.pub")" \
	--arg key "$(base64 -w0 "$W/ck.pub")" \
	'{kind: "ck", ek_certificate: $cert, ek_public: $ek, key_public: $key, host: "rack1"}' \
	>"$W/flood.json"

note "a field the CA does not know is refused, naming it, on every route"
# post BODY PATH: HTTP status into HTTP, the answer into $W/resp.json.
post() {
	HTTP=$(curl -s -o "$W/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$1" "$CA_URL$2")
}
jq '.padding = "x"' "$W/flood.json" >"$W/unknown.json"
post "$W/unknown.json" /v1/privacy/challenge
assert_eq "$HTTP" 400 "challenge with an unknown field"
assert_contains "$(jq -r .error "$W/resp.json")" 'unknown field "padding"' "the field named"
printf '{"id": "%s", "secret": "AA==", "note": 1}' "$(printf '0%.0s' {1..32})" >"$W/c.json"
post "$W/c.json" /v1/privacy/certify
assert_eq "$HTTP" 400 "certify with an unknown field"
assert_contains "$(jq -r .error "$W/resp.json")" 'unknown field "note"' "the field named"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges WHERE used = 0")" 0 \
	"open challenges after refusals"

note "flood: $FLOOD challenge requests from 127.0.1.2, 32 at a time"
for _ in $(seq "$FLOOD"); do
	printf 'url = "%s/v1/privacy/challenge"\noutput = "/dev/null"\n' "$CA_URL"
done >"$W/flood.cfg"
start=$SECONDS
curl -s --no-progress-meter -Z --parallel-max 32 --interface 127.0.1.2 -H 'Content-Type: application/json' \
	--data-binary "@$W/flood.json" -w '%{http_code}\n' -K "$W/flood.cfg" >"$W/codes" ||
	fail "curl flood: $(tail -3 "$W/codes")"
note "flood answered in $((SECONDS - start)) s: $(sort "$W/codes" | uniq -c | tr '\n' ' ')"
assert_eq "$(wc -l <"$W/codes")" "$FLOOD" "answers to the flood"
assert_eq "$(grep -c '^200$' "$W/codes")" "$PER_EK" "challenges the flood got"
assert_eq "$(grep -c '^429$' "$W/codes")" $((FLOOD - PER_EK)) "429 refusals"
for addr in 127.0.1.2 127.0.1.200; do
	curl -s --interface $addr -H 'Content-Type: application/json' \
		--data-binary "@$W/flood.json" "$CA_URL/v1/privacy/challenge" >"$W/resp.json"
	assert_contains "$(jq -r .error "$W/resp.json")" \
		"challenges for this EK are open from 127.0.1.0/24 (at most $PER_EK: challenges_per_ek)" \
		"the limit named, for $addr"
done
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM challenges WHERE used = 0")" "$PER_EK" \
	"open challenge rows"
assert_eq "$(sqlite3 "$DB" "SELECT DISTINCT client FROM challenges WHERE used = 0")" \
	127.0.1.0/24 "the client network recorded"
# only the parsed fields: the stored request is the flood's, re-encoded
sqlite3 "$DB" "SELECT request FROM challenges LIMIT 1" | jq -e 'keys ==
	["ek_certificate", "ek_public", "host", "key_public", "kind"]' >/dev/null ||
	fail "a challenge row keeps more than the parsed fields"

note "then rack1 enrols again from its own address, with the same EK: it succeeds"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll after the flood: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" 'enrolled:      as "rack1"' "enrolled after the flood"
kill -0 "$CA_PID" || fail "vtpm-ca serve died"
grep -q "child ended" "$T/ca.log" && fail "the network child ended: $(grep 'child ended' "$T/ca.log")"

note "vEK evidence nonces: $NONCE_FLOOD requests from 127.0.1.2 are answered and leave no row"
start_vtpm_ca virt --db "$DB" --role virtualization
echo '{}' >"$W/nonce.json"
for _ in $(seq "$NONCE_FLOOD"); do
	printf 'url = "%s/v1/virtualization/nonce"\noutput = "/dev/null"\n' "$CA_URL"
done >"$W/nonces.curl"
curl -s --no-progress-meter -Z --parallel-max 16 --interface 127.0.1.2 \
	-H 'Content-Type: application/json' --data-binary "@$W/nonce.json" -w '%{http_code}\n' \
	-K "$W/nonces.curl" >"$W/nonce-codes" || fail "curl nonce flood: $(tail -3 "$W/nonce-codes")"
assert_eq "$(grep -c '^200$' "$W/nonce-codes")" "$NONCE_FLOOD" "nonces handed out"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ek_nonces")" 0 "nonce rows"
HTTP=$(curl -s -o "$W/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary '{}' "$CA_URL/v1/virtualization/nonce")
assert_eq "$HTTP" 200 "a nonce for another client (127.0.0.1)"
kill -0 "$CA_PID" || fail "vtpm-ca serve (virtualization) died"
echo "ok"
