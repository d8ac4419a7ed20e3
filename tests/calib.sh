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

# vek_type PUB: rsa2048 or ecc-p256, the type of a TPM2B_PUBLIC file.
vek_type() {
	case $(od -An -tx1 -j2 -N2 "$1" | tr -d ' \n') in
	0001) printf rsa2048 ;;
	0023) printf ecc-p256 ;;
	*) fail "$1 is neither an RSA nor an ECC public area" ;;
	esac
}

# vek_set_digest PUB...: the digest of a vTPM's vEK set (docs/ca-api.md),
# hex: SHA-256 of the label and its NUL, then the RSA-2048 vEK's
# TPM2B_PUBLIC (or 0000 for none) and the ECC P-256 one's (idem).
vek_set_digest() {
	local rsa="" ecc="" f
	for f in "$@"; do
		case $(vek_type "$f") in
		rsa2048) rsa=$f ;;
		ecc-p256) ecc=$f ;;
		esac
	done
	{
		printf 'vtpmd vEK set v1\0'
		if [ -n "$rsa" ]; then cat "$rsa"; else printf '\0\0'; fi
		if [ -n "$ecc" ]; then cat "$ecc"; else printf '\0\0'; fi
	} | sha256sum | cut -c1-64
}

# vek_qualifying NONCE VEKPUB UUID [OTHERPUB...]: the qualifyingData of a
# vEK's evidence (docs/ca-api.md), hex: SHA-256 of the label and its NUL,
# the nonce (base64 here), the vEK's TPMT_PUBLIC (its TPM2B_PUBLIC file
# without the size), the UUID's 36 characters and the digest of the vEK
# set: VEKPUB and the OTHERPUBs (the vTPM's other vEKs, sent as other_veks).
vek_qualifying() {
	local nonce=$1 vek=$2 uuid=$3 set
	shift 3
	set=$(vek_set_digest "$vek" "$@")
	{
		printf 'vtpmd vEK evidence v2\0'
		base64 -d <<<"$nonce"
		tail -c +3 "$vek"
		printf '%s' "$uuid"
		printf '%s' "$set" | sed 's/../\\x&/g' | xargs -0 printf
	} | sha256sum | cut -c1-64
}
