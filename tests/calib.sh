# Helpers for scripts that speak vtpm-ca's protocol (docs/ca-api.md) with
# curl and jq: tests/integration/ca.sh and bench/chain.sh. Source it after
# tests/lib.sh. The last answer of a POST is $T/resp.json.

# b64 FILE: the file in base64 on one line.
b64() {
	base64 -w0 "$1"
}

# pem_of FIELD OUT: the PEM of FIELD of the last answer, into OUT.
pem_of() {
	jq -ej ".$1" "$T/resp.json" >"$2" || fail "no $1 in the answer"
}

# challenge_req KIND EKCERT EKPUB KEYPUB OUT [HOST]: a challenge request.
challenge_req() {
	jq -n --arg kind "$1" --rawfile cert "$2" --arg ek "$(b64 "$3")" --arg key "$(b64 "$4")" \
		--arg host "${6:-}" \
		'{kind: $kind, ek_certificate: $cert, ek_public: $ek, key_public: $key} +
		 (if $host != "" then {host: $host} else {} end)' >"$5"
}

# credential_file OUT: the last challenge in tpm2_makecredential's layout
# (what tpm2_activatecredential -i reads).
credential_file() {
	{
		printf '\xba\xdc\xc0\xde\x00\x00\x00\x01'
		jq -r .credential_blob "$T/resp.json" | base64 -d
		jq -r .encrypted_secret "$T/resp.json" | base64 -d
	} >"$1"
}

# certify_req ID SECRETFILE OUT: the certify request answering challenge ID.
certify_req() {
	jq -n --arg id "$1" --arg s "$(b64 "$2")" '{id: $id, secret: $s}' >"$3"
}

# vek_nonce URL: a nonce for vEK evidence from the Virtualization CA at URL
# (POST /v1/virtualization/nonce), base64, on stdout; an https:// CA is
# checked against CA_TLS_ROOT (tests/lib.sh ca_tls).
vek_nonce() {
	local n
	n=$(curl -sf ${CA_TLS_ROOT:+--cacert "$CA_TLS_ROOT"} -H 'Content-Type: application/json' \
		--data-binary '{}' \
		"$1/v1/virtualization/nonce" | jq -er .nonce) || fail "no nonce from $1"
	[ "$(base64 -d <<<"$n" | wc -c)" -eq 32 ] || fail "the nonce from $1 is not 32 bytes"
	printf '%s' "$n"
}

# vek_qualifying NONCE VEKPUB UUID: the qualifyingData of a vEK's evidence
# (docs/ca-api.md), hex: SHA-256 of the label and its NUL, the nonce
# (base64 here), the vEK's TPMT_PUBLIC (its TPM2B_PUBLIC file without the
# size) and the UUID's 36 characters.
vek_qualifying() {
	{
		printf 'vtpmd vEK evidence v1\0'
		base64 -d <<<"$1"
		tail -c +3 "$2"
		printf '%s' "$3"
	} | sha256sum | cut -c1-64
}
