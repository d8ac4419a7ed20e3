#!/bin/bash
# No denial by flood from many addresses (docs/ca-api.md, "Virtualization
# CA"; docs/threat-model.md, "A network attacker"): the Virtualization CA's
# vEK evidence nonces are stateless, an HMAC under a key of the parent over
# their expiry and random bytes, and only redeemed ones are recorded, so
# there is no table of open nonces for any number of addresses to fill.
# (The attack review of #11 found 157 addresses, 64 nonces each, filling
# the 10,000 open nonces then allowed, after which every host's
# provisioning got 503.)
# Here 127.0.1.1 .. 127.0.1.157 play the attacker's addresses and ask 64
# nonces each; then 127.0.0.1 (a legitimate vtpmd) asks one and gets it,
# and the database holds no nonce.
source "$(dirname "$0")/../lib.sh"
# The release build: what is measured is whether a flood fills anything,
# which the sanitizer build would only slow.
VTPM_CA=${VTPM_CA:-$TOP/build/vtpm-ca}
CA=$VTPM_CA
ADDRS=${ADDRS:-157}
PER=64
require_tools curl jq sqlite3
[ -x "$CA" ] || fail "$CA is missing (make all)"
mkdir -p "$T/ca" "$T/w"
W=$T/w
DB=$T/ca/ca.db
"$CA" init --db "$DB" --name spread >/dev/null || fail "vtpm-ca init"
# A longer nonce lifetime only so that this shared test machine need not
# ask 10000 nonces within the default 60 s.
printf '{"nonce_expiry_seconds": 900}\n' >"$T/virt.json"
start_vtpm_ca virt --db "$DB" --role virtualization --config "$T/virt.json"
echo '{}' >"$W/nonce.json"
for _ in $(seq "$PER"); do
	printf 'url = "%s/v1/virtualization/nonce"\noutput = "/dev/null"\n' "$CA_URL"
done >"$W/nonces.curl"
note "$ADDRS attacker addresses ask $PER nonces each"
start=$SECONDS
for i in $(seq "$ADDRS"); do
	curl -s --no-progress-meter -Z --parallel-max 16 --interface "127.0.1.$i" \
		-H 'Content-Type: application/json' --data-binary "@$W/nonce.json" \
		-w '%{http_code}\n' -K "$W/nonces.curl" >>"$W/codes" || true
done
note "done in $((SECONDS - start)) s: $(sort "$W/codes" | uniq -c | tr '\n' ' ')"
assert_eq "$(grep -c '^200$' "$W/codes")" $((ADDRS * PER)) "nonces handed out to the flood"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ek_nonces")" 0 "nonce rows after the flood"
assert_eq "$(sqlite3 "$DB" "SELECT COUNT(*) FROM audit WHERE action = 'virtualization/nonce'")" \
	0 "audit rows of nonces handed out"

note "a legitimate host (127.0.0.1) asks one nonce"
HTTP=$(curl -s -o "$W/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary '{}' "$CA_URL/v1/virtualization/nonce")
[ "$HTTP" == 200 ] ||
	fail "one attacker with $ADDRS addresses refused every other host a nonce: HTTP $HTTP $(cat "$W/resp.json")"
assert_eq "$(jq -r .nonce "$W/resp.json" | base64 -d | wc -c)" 32 "the nonce's length"
assert_eq "$(jq -r .expires_in "$W/resp.json")" 900 "its lifetime"
kill -0 "$CA_PID" || fail "vtpm-ca serve died"
grep -q "child ended" "$T/virt.log" && fail "the network child ended: $(grep 'child ended' "$T/virt.log")"
echo "ok"
