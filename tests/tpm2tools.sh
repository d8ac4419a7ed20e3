# shellcheck shell=bash
# The tpm2-tools scenarios the integration tests run against an instance
# (tools.sh over a unix socket, tcp.sh over TCP); source it after
# tests/lib.sh and start the instance with start_tpm, which sets
# TPM2TOOLS_TCTI. Work files go to $T/tools.

require_tools tpm2_getrandom tpm2_pcrextend tpm2_pcrread tpm2_createprimary tpm2_create \
	tpm2_load tpm2_sign tpm2_verifysignature tpm2_nvdefine tpm2_nvwrite tpm2_nvread \
	tpm2_createek tpm2_createak tpm2_quote tpm2_checkquote tpm2_flushcontext \
	tpm2_startup tpm2_getcap sha256sum od

TOOLS_NV=0x1500016
mkdir -p "$T/tools"

# random_hex N: N random bytes as hex.
random_hex() {
	head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'
}

# tools_random: TPM2_GetRandom answers with fresh bytes.
tools_random() {
	local r1 r2
	note "getrandom"
	r1=$(tpm2_getrandom 16 --hex)
	r2=$(tpm2_getrandom 16 --hex)
	[[ "$r1" =~ ^[0-9a-f]{32}$ ]] || fail "getrandom: not 16 bytes of hex: $r1"
	[ "$r1" != "$r2" ] || fail "getrandom returned the same 16 bytes twice"
}

# tools_pcr PCR: two extends of PCR give what the host computes.
tools_pcr() {
	local pcr=$1 old d1 d2
	note "pcrextend and pcrread of PCR $pcr"
	old=$(pcr_value "$pcr")
	[[ "$old" =~ ^[0-9a-f]{64}$ ]] || fail "pcrread: no sha256 value for PCR $pcr: $old"
	d1=$(random_hex 32)
	d2=$(random_hex 32)
	tpm2_pcrextend "$pcr:sha256=$d1"
	assert_eq "$(pcr_value "$pcr")" "$(pcr_after "$old" "$d1")" "PCR $pcr after one extend"
	tpm2_pcrextend "$pcr:sha256=$d2"
	assert_eq "$(pcr_value "$pcr")" "$(pcr_after "$(pcr_after "$old" "$d1")" "$d2")" \
		"PCR $pcr after two extends"
}

# tools_key_create: an ECC signing key under the owner's primary key, left
# in $T/tools/key.pub and key.priv.
tools_key_create() {
	local w=$T/tools
	note "createprimary, create"
	flushed tpm2_createprimary -C o -c "$w/primary.ctx" -Q
	flushed tpm2_create -C "$w/primary.ctx" -G ecc -u "$w/key.pub" -r "$w/key.priv" -Q
}

# tools_key_load: recreates the primary key and loads the key under it.
tools_key_load() {
	local w=$T/tools
	note "createprimary, load"
	flushed tpm2_createprimary -C o -c "$w/primary.ctx" -Q
	flushed tpm2_load -C "$w/primary.ctx" -u "$w/key.pub" -r "$w/key.priv" -c "$w/key.ctx" -Q
}

# tools_sign NAME: signs a fresh message $T/tools/NAME.msg into NAME.sig.
tools_sign() {
	local w=$T/tools
	note "sign $1"
	random_hex 64 >"$w/$1.msg"
	flushed tpm2_sign -c "$w/key.ctx" -g sha256 -o "$w/$1.sig" "$w/$1.msg"
}

# tools_verify NAME: NAME.sig verifies over NAME.msg, not over another message.
tools_verify() {
	local w=$T/tools
	note "verifysignature $1"
	flushed tpm2_verifysignature -c "$w/key.ctx" -g sha256 -m "$w/$1.msg" -s "$w/$1.sig" ||
		fail "signature $1 does not verify"
	echo tampered >"$w/tampered.msg"
	if flushed tpm2_verifysignature -c "$w/key.ctx" -g sha256 -m "$w/tampered.msg" \
		-s "$w/$1.sig" 2>/dev/null; then
		fail "signature $1 verifies over another message"
	fi
}

# tools_nv_define: an owner NV index of 32 bytes.
tools_nv_define() {
	note "nvdefine"
	tpm2_nvdefine "$TOOLS_NV" -C o -s 32 -a "ownerread|ownerwrite" >/dev/null
}

# tools_nv_write HEX: writes 32 bytes to the index.
tools_nv_write() {
	# shellcheck disable=SC2059
	printf "$(sed 's/../\\x&/g' <<<"$1")" >"$T/tools/nv.in"
	tpm2_nvwrite "$TOOLS_NV" -C o -i "$T/tools/nv.in"
}

# tools_nv_read: the index's 32 bytes as hex.
tools_nv_read() {
	tpm2_nvread "$TOOLS_NV" -C o -s 32 -o "$T/tools/nv.out" >/dev/null
	hex_of "$T/tools/nv.out"
}

# tools_quote PCRS: an attestation key under the EK quotes PCRS (e.g.
# "0,16") with a fresh nonce; tpm2_checkquote accepts it with that nonce
# and the PCR values the TPM reported, and refuses it with another nonce.
tools_quote() {
	local w=$T/tools nonce
	note "createek, createak, quote, checkquote"
	nonce=$(random_hex 16)
	flushed tpm2_createek -c "$w/ek.ctx" -G rsa -u "$w/ek.pub" -Q
	flushed tpm2_createak -C "$w/ek.ctx" -c "$w/ak.ctx" -G ecc -g sha256 -s ecdsa \
		-u "$w/ak.pem" -f pem -Q
	flushed tpm2_quote -c "$w/ak.ctx" -l "sha256:$1" -q "$nonce" -m "$w/quote.msg" \
		-s "$w/quote.sig" -o "$w/quote.pcrs" -g sha256 >/dev/null
	tpm2_checkquote -u "$w/ak.pem" -m "$w/quote.msg" -s "$w/quote.sig" -f "$w/quote.pcrs" \
		-g sha256 -q "$nonce" >/dev/null || fail "checkquote refused the quote"
	if tpm2_checkquote -u "$w/ak.pem" -m "$w/quote.msg" -s "$w/quote.sig" \
		-f "$w/quote.pcrs" -g sha256 -q "$(random_hex 16)" >/dev/null 2>&1; then
		fail "checkquote accepted the quote with another nonce"
	fi
}

# tools_all: every scenario once, on a running, started TPM.
tools_all() {
	local v
	tools_random
	tools_pcr 16
	tools_key_create
	tools_key_load
	tools_sign one
	tools_verify one
	tools_nv_define
	v=$(random_hex 32)
	note "nvwrite, nvread"
	tools_nv_write "$v"
	assert_eq "$(tools_nv_read)" "$v" "NV index read back"
	tools_quote 0,16
}
