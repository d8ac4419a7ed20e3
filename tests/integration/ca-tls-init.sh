#!/bin/bash
# `vtpm-ca init --tls-name` (docs/ca-api.md, "TLS"): a lab CA that speaks
# HTTPS without openssl commands of its own. Shown:
#  - the files: ca-tls.pem (for every name, DNS or IP, serverAuth, CA:FALSE)
#    under ca-tls-root.pem (CA:TRUE), ca-tls.key 0600; openssl verify
#    accepts the pair, for each name;
#  - the root's private key is written nowhere: the only private keys in
#    the directory are the three CA keys and the server's;
#  - the printed pin is the server key's SubjectPublicKeyInfo hash (curl
#    --pinnedpubkey accepts the server by it);
#  - `serve` with the printed flags answers over TLS 1.3 at 127.0.0.1 and
#    at localhost, checked against ca-tls-root.pem;
#  - refused: a wildcard or a malformed name (exit 2, nothing created), a
#    ninth name, and init where a TLS file exists already (nothing
#    overwritten).
source "$(dirname "$0")/../lib.sh"
CA=$TOP/build/san/vtpm-ca
require_tools curl openssl
[ -x "$CA" ] || fail "$CA is missing (make san)"
D=$T/ca
mkdir -p "$D"

note "refused names: nothing is created"
for bad in '*.example.org' 'a b' '-x' 'host,name' ''; do
	expect_exit 2 "init --tls-name '$bad'" "$CA" init --db "$D/ca.db" --tls-name "$bad"
	assert_contains "$(cat "$T/out")" "--tls-name" "the reason names the option"
	[ -z "$(ls -A "$D")" ] || fail "init --tls-name '$bad' left files: $(ls "$D")"
done
nine=()
for i in 1 2 3 4 5 6 7 8 9; do nine+=(--tls-name "h$i.example.org"); done
expect_exit 2 "init with nine names" "$CA" init --db "$D/ca.db" "${nine[@]}"
assert_contains "$(cat "$T/out")" "at most 8" "the reason"

note "init --tls-name 127.0.0.1 --tls-name localhost --tls-name ::1"
"$CA" init --db "$D/ca.db" --name lab --tls-name 127.0.0.1 --tls-name localhost \
	--tls-name ::1 >"$T/init.out" 2>&1 || fail "init: $(cat "$T/init.out")"
assert_eq "$(stat -c %a "$D/ca-tls.key")" 600 "ca-tls.key mode"
for n in 127.0.0.1 localhost ::1; do
	case $n in *[a-z]*) flag=(-verify_hostname "$n") ;; *) flag=(-verify_ip "$n") ;; esac
	openssl verify -CAfile "$D/ca-tls-root.pem" -purpose sslserver "${flag[@]}" \
		"$D/ca-tls.pem" >"$T/v.out" 2>&1 || fail "openssl verify for $n: $(cat "$T/v.out")"
done
expect_exit 2 "openssl verify for another name" openssl verify -CAfile "$D/ca-tls-root.pem" \
	-verify_hostname other.example.org "$D/ca-tls.pem"
openssl x509 -in "$D/ca-tls.pem" -noout -ext basicConstraints,extendedKeyUsage >"$T/ext" ||
	fail "openssl x509"
assert_contains "$(cat "$T/ext")" "CA:FALSE" "server certificate basicConstraints"
assert_contains "$(cat "$T/ext")" "TLS Web Server Authentication" "server certificate EKU"
openssl x509 -in "$D/ca-tls-root.pem" -noout -ext basicConstraints >"$T/ext" || fail "openssl x509"
assert_contains "$(cat "$T/ext")" "CA:TRUE" "root basicConstraints"

note "the TLS root's private key is written nowhere"
root_pub=$(openssl x509 -in "$D/ca-tls-root.pem" -noout -pubkey)
keys=0
for f in "$D"/*; do
	grep -q "PRIVATE KEY" "$f" 2>/dev/null || continue
	keys=$((keys + 1))
	pub=$(openssl pkey -in "$f" -pubout) || fail "openssl pkey $f"
	[ "$pub" != "$root_pub" ] || fail "$f holds the TLS root's private key"
done
assert_eq "$keys" 4 "private keys in the CA directory (root, privacy, virtualization, TLS)"
cmp -s <(openssl pkey -in "$D/ca-tls.key" -pubout) \
	<(openssl x509 -in "$D/ca-tls.pem" -noout -pubkey) || fail "ca-tls.key is not ca-tls.pem's"

note "the printed pin is the server key's SPKI hash"
pin=$(sed -n 's/^TLS pin *sha256:\([0-9a-f]\{64\}\)$/\1/p' "$T/init.out")
[ -n "$pin" ] || fail "no pin printed: $(cat "$T/init.out")"
spki=$(openssl x509 -in "$D/ca-tls.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)
assert_eq "$pin" "$spki" "pin"

note "serve with the printed flags: TLS 1.3 checked against the root, or by the pin"
read -r -a flags <<<"$(sed -n 's/^serve with *//p' "$T/init.out")"
assert_eq "${flags[0]}" --tls-cert "serve flags printed"
start_vtpm_ca ca --db "$D/ca.db" --role both "${flags[@]}"
port=${CA_URL##*:}
for host in 127.0.0.1 localhost; do
	curl -sS --fail --tlsv1.3 --cacert "$D/ca-tls-root.pem" --resolve "localhost:$port:127.0.0.1" \
		-o "$T/ca.pem" "https://$host:$port/v1/privacy/ca" 2>"$T/curl.err" ||
		fail "curl https://$host:$port with ca-tls-root.pem: $(cat "$T/curl.err")"
	assert_contains "$(cat "$T/ca.pem")" "BEGIN CERTIFICATE" "the Privacy CA's certificate via $host"
done
b64=$(openssl x509 -in "$D/ca-tls.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -binary | base64)
curl -sS --fail -k --pinnedpubkey "sha256//$b64" -o /dev/null "$CA_URL/v1/privacy/ca" \
	2>"$T/curl.err" || fail "curl by the printed pin: $(cat "$T/curl.err")"
expect_exit 90 "curl by another pin" curl -sS -k -o /dev/null \
	--pinnedpubkey "sha256//$(head -c 32 /dev/zero | base64)" "$CA_URL/v1/privacy/ca"

note "init over an existing TLS certificate: refused, nothing overwritten"
mkdir -p "$T/ca2"
cp "$D/ca-tls.pem" "$T/ca2/ca-tls.pem"
expect_exit 1 "init over ca-tls.pem" "$CA" init --db "$T/ca2/ca.db" --tls-name localhost
assert_contains "$(cat "$T/out")" "ca-tls.pem exists already" "the refusal names the file"
cmp -s "$D/ca-tls.pem" "$T/ca2/ca-tls.pem" || fail "ca-tls.pem was overwritten"
assert_eq "$(ls "$T/ca2")" ca-tls.pem "files in the refused directory"
note "ok"
