#!/bin/bash
# vtpm-attest (build/san/vtpm-attest) against a vTPM (a vtpmd instance):
# AK certificates issued by a throwaway Privacy CA (build/attest-ca: a
# vEK certificate with the virtual marker, AK certificates copying it, one
# for a "hardware" AK without it, one by an untrusted CA); quotes made by
# `vtpm-attest quote` (the bundle) and by plain tpm2_quote (its three
# files) are trusted, with the vTPM-aware verdict; every refusal is for its
# reason: wrong nonce, tampered attestation, PCR values that differ,
# another AK's signature, an untrusted CA, a replayed quote, resetCount
# going backwards, reject-virtual, require-host-config mismatch.
#
# ATTEST_CORPUS=DIR writes the bundles and PCR files into DIR as seeds for
# tests/fuzz/fuzz_attest.c.
source "$(dirname "$0")/../lib.sh"
ATTEST=$TOP/build/san/vtpm-attest
ACA=$TOP/build/attest-ca
export TSS2_LOG=all+none

require_tools tpm2_createek tpm2_createak tpm2_quote tpm2_evictcontrol tpm2_pcrextend \
	tpm2_flushcontext tpm2_shutdown tpm2_startup tpm2_getcap swtpm_ioctl od sed
[ -x "$ATTEST" ] || fail "$ATTEST is missing (make san)"
[ -x "$ACA" ] || fail "$ACA is missing (make all)"

W=$T/w
CA=$T/ca
mkdir -p "$W" "$CA"
AK=0x81010010
AK2=0x81010011
CONFIG=host-config-7
UUID=5b0c7d2e-9f14-4c3a-8e61-2d7b9a0c4f18

rand_hex() {
	head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'
}

# trusted WHAT STATE ARGS...: vtpm-attest verify ARGS (with the trusted
# root, the Privacy CA as intermediate and state directory $T/STATE) exits
# 0; its output is left in $T/out.
trusted() {
	local what=$1 state=$2
	shift 2
	expect_exit 0 "$what" "$ATTEST" verify --trust "$CA/root.pem" \
		--untrusted "$CA/privacy.pem" --state "$T/$state" "$@"
}

# refused WHAT REASON STATE ARGS...: the same exits 1 and says REASON.
refused() {
	local what=$1 reason=$2 state=$3
	shift 3
	expect_exit 1 "$what" "$ATTEST" verify --trust "$CA/root.pem" \
		--untrusted "$CA/privacy.pem" --state "$T/$state" "$@"
	assert_contains "$(cat "$T/out")" "$reason" "$what"
}

# vquote NAME HANDLE [SEL]: vtpm-attest quote into $W/NAME.json, nonce in
# $W/NAME.nonce.
vquote() {
	local nonce
	nonce=$(rand_hex 20)
	echo "$nonce" >"$W/$1.nonce"
	"$ATTEST" quote --tcti "$TCTI" --ak-handle "$2" --pcrs "${3:-sha256:0,1,16}" \
		--nonce "$nonce" --out "$W/$1.json" || fail "vtpm-attest quote $1"
}

# tquote NAME HANDLE: tpm2_quote into $W/NAME.{msg,sig,pcrs}.
tquote() {
	local nonce
	nonce=$(rand_hex 16)
	echo "$nonce" >"$W/$1.nonce"
	flushed tpm2_quote -c "$2" -l sha256:0,1,16+sha1:16 -q "$nonce" -m "$W/$1.msg" \
		-s "$W/$1.sig" -o "$W/$1.pcrs" -g sha256 >/dev/null || fail "tpm2_quote $1"
}

# bundle NAME / files NAME: verify's arguments for a quote.
bundle() {
	echo --quote "$W/$1.json" --nonce "$(cat "$W/$1.nonce")"
}
files() {
	echo --message "$W/$1.msg" --signature "$W/$1.sig" --pcr-file "$W/$1.pcrs" \
		--nonce "$(cat "$W/$1.nonce")"
}

seed() {
	[ -n "${ATTEST_CORPUS:-}" ] || return 0
	mkdir -p "$ATTEST_CORPUS"
	cat "$2" >"$ATTEST_CORPUS/$1"
}

start_tpm s unix --plaintext-state
PID=$INSTANCE_PID

note "an EK, two ECC attestation keys made persistent ($AK, $AK2), and their certificates"
flushed tpm2_createek -c "$W/ek.ctx" -G rsa -u "$W/ek.pub" >/dev/null || fail "tpm2_createek"
for k in "ak $AK" "ak2 $AK2"; do
	read -r name handle <<<"$k"
	flushed tpm2_createak -C "$W/ek.ctx" -c "$W/$name.ctx" -G ecc -g sha256 -s ecdsa \
		-u "$W/$name.pub" >/dev/null || fail "tpm2_createak $name"
	flushed tpm2_evictcontrol -C o -c "$W/$name.ctx" "$handle" >/dev/null ||
		fail "tpm2_evictcontrol $name"
done
"$ACA" init "$CA" || fail "attest-ca init"
"$ACA" ek "$CA" "$W/ek.pub" "$W/vek.pem" "$CONFIG" "$UUID" || fail "vEK certificate"
"$ACA" ak "$CA" privacy "$W/ak.pub" "$W/vek.pem" "$W/ak.pem" || fail "AK certificate"
"$ACA" ak "$CA" other "$W/ak.pub" "$W/vek.pem" "$W/ak-other.pem" || fail "untrusted AK cert"
"$ACA" ak "$CA" privacy "$W/ak.pub" hardware "$W/ak-hw.pem" || fail "hardware AK certificate"
tpm2_pcrextend "16:sha256=$(rand_hex 32),sha1=$(rand_hex 20)"

note "usage errors exit 2"
expect_exit 2 "no arguments" "$ATTEST" verify
expect_exit 2 "bundle and files" "$ATTEST" verify --trust x --ak-cert "$W/ak.pem" --quote x --message y --nonce 00
expect_exit 2 "bad nonce" "$ATTEST" verify --trust x --ak-cert "$W/ak.pem" --quote x --nonce xyz
expect_exit 2 "bad policy" "$ATTEST" verify --trust x --ak-cert "$W/ak.pem" --quote x --nonce 00 --policy maybe
expect_exit 0 "help" "$ATTEST" verify --help

note "a vtpm-attest quote is trusted, with the vTPM-aware verdict"
vquote q1 "$AK"
# shellcheck disable=SC2046
trusted "bundle" s --ak-cert "$W/ak.pem" $(bundle q1)
assert_contains "$(cat "$T/out")" \
	"virtual TPM on host CK c7c7c7c7c7c7c7c7 in approved configuration $CONFIG (instance $UUID)" \
	"verdict"
assert_contains "$(cat "$T/out")" "revocation not checked" "no --ca"
seed bundle-q1 "$W/q1.json"

note "a plain tpm2_quote over two banks is trusted, from its three files"
tquote t1 "$AK"
# shellcheck disable=SC2046
trusted "tpm2_quote files" s --ak-cert "$W/ak.pem" $(files t1) --json
assert_contains "$(cat "$T/out")" '"trusted": true' "JSON verdict"
assert_contains "$(cat "$T/out")" "\"host_config\": \"$CONFIG\"" "JSON host configuration"
seed pcrfile-t1 "$W/t1.pcrs"

note "--pcrs: the values required must be the ones quoted"
vquote q2 "$AK"
v16=$(pcr_value 16)
# shellcheck disable=SC2046
refused "a PCR required with another value" "PCR sha256:16 differs from the value required" \
	s --ak-cert "$W/ak.pem" $(bundle q2) --pcrs "sha256:16=$(rand_hex 32)"
# shellcheck disable=SC2046
refused "a PCR required but not quoted" "PCR sha256:17 is required but not quoted" \
	s --ak-cert "$W/ak.pem" $(bundle q2) --pcrs "sha256:17=$v16"
# shellcheck disable=SC2046
trusted "the PCR value required" s --ak-cert "$W/ak.pem" $(bundle q2) --pcrs "sha256:16=$v16"

note "a replayed quote (the same clockInfo) is refused"
# shellcheck disable=SC2046
refused "bundle replayed" "replayed quote" s --ak-cert "$W/ak.pem" $(bundle q2)
# shellcheck disable=SC2046
refused "tpm2_quote replayed" "clock: went backwards" s --ak-cert "$W/ak.pem" $(files t1)

note "a wrong nonce is refused"
vquote q3 "$AK"
tquote t3 "$AK"
# shellcheck disable=SC2046
refused "bundle, wrong nonce" "extraData" s --ak-cert "$W/ak.pem" --quote "$W/q3.json" \
	--nonce "$(rand_hex 20)"
refused "tpm2_quote, wrong nonce" "extraData" s --ak-cert "$W/ak.pem" --message "$W/t3.msg" \
	--signature "$W/t3.sig" --pcr-file "$W/t3.pcrs" --nonce "$(rand_hex 16)"

note "a tampered attestation is refused"
cp "$W/t3.msg" "$W/t.msg"
flip_byte "$W/t.msg" 60
refused "tampered attest" "not signed by the certified AK" s --ak-cert "$W/ak.pem" \
	--message "$W/t.msg" --signature "$W/t3.sig" --pcr-file "$W/t3.pcrs" \
	--nonce "$(cat "$W/t3.nonce")"

note "PCR values that differ from the quoted digest are refused"
cp "$W/t3.pcrs" "$W/t.pcrs"
flip_byte "$W/t.pcrs" 305
refused "altered PCR file" "PCR digest" s --ak-cert "$W/ak.pem" --message "$W/t3.msg" \
	--signature "$W/t3.sig" --pcr-file "$W/t.pcrs" --nonce "$(cat "$W/t3.nonce")"
sed "s/$v16/$(rand_hex 32)/" "$W/q3.json" >"$W/t.json"
! cmp -s "$W/q3.json" "$W/t.json" || fail "the bundle holds PCR 16's value"
# shellcheck disable=SC2046
refused "altered bundle PCR" "PCR digest" s --ak-cert "$W/ak.pem" --quote "$W/t.json" \
	--nonce "$(cat "$W/q3.nonce")"

note "a quote signed by another AK is refused"
vquote o1 "$AK2"
tquote o2 "$AK2"
# shellcheck disable=SC2046
refused "another AK's bundle" "AK public area: not the key the AK certificate certifies" \
	s --ak-cert "$W/ak.pem" $(bundle o1)
# shellcheck disable=SC2046
refused "another AK's tpm2_quote" "not signed by the certified AK" s --ak-cert "$W/ak.pem" \
	$(files o2)

note "an AK certificate from an untrusted CA is refused"
# shellcheck disable=SC2046
refused "untrusted CA" "AK certificate: untrusted" s --ak-cert "$W/ak-other.pem" \
	--untrusted "$CA/other.pem" $(bundle q3)

note "the state survives: q3, t3 are still fresh, and accepted in order"
# shellcheck disable=SC2046
trusted "q3" s --ak-cert "$W/ak.pem" $(bundle q3)
# shellcheck disable=SC2046
trusted "t3" s --ak-cert "$W/ak.pem" $(files t3)

note "resetCount going backwards is refused: a quote from before a TPM Reset, after one"
vquote r1 "$AK"
tpm2_shutdown -c
swtpm_ioctl "${IOCTL[@]}" -i >/dev/null
tpm2_startup -c
vquote r2 "$AK"
# shellcheck disable=SC2046
trusted "after the reset" s --ak-cert "$W/ak.pem" $(bundle r2)
# shellcheck disable=SC2046
refused "before the reset" "resetCount went backwards" s --ak-cert "$W/ak.pem" $(bundle r1)

note "policies: reject-virtual, require-host-config"
vquote p1 "$AK"
# shellcheck disable=SC2046
refused "reject-virtual" "virtual TPMs are refused" p1 --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy reject-virtual
# shellcheck disable=SC2046
refused "require-host-config mismatch" "host configuration other-config required" p1 \
	--ak-cert "$W/ak.pem" $(bundle p1) --policy require-host-config other-config \
	--no-revocation-check --any-pcrs
# "Trusted in approved configuration" only with the checks that make it true
# (revocation, PCR expectations), or with them waived by name (usage error 2
# otherwise), and the verdict says what was waived.
# shellcheck disable=SC2046
expect_exit 2 "require-host-config without --ca" "$ATTEST" verify --trust "$CA/root.pem" \
	--untrusted "$CA/privacy.pem" --state "$T/p1" --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy require-host-config "$CONFIG" --any-pcrs
assert_contains "$(cat "$T/out")" "needs revocation checked" "no revocation check"
# shellcheck disable=SC2046
expect_exit 2 "require-host-config without --pcrs" "$ATTEST" verify --trust "$CA/root.pem" \
	--untrusted "$CA/privacy.pem" --state "$T/p1" --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy require-host-config "$CONFIG" --no-revocation-check
assert_contains "$(cat "$T/out")" "needs the PCR values expected" "no PCR expectations"
# shellcheck disable=SC2046
expect_exit 2 "--pcrs with --any-pcrs" "$ATTEST" verify --trust "$CA/root.pem" \
	--untrusted "$CA/privacy.pem" --state "$T/p1" --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy require-host-config "$CONFIG" --no-revocation-check --any-pcrs \
	--pcrs "sha256:16=$(pcr_value 16)"
# shellcheck disable=SC2046
trusted "require-host-config match, both waived" p1 --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy require-host-config "$CONFIG" --no-revocation-check --any-pcrs
assert_contains "$(cat "$T/out")" "revocation NOT checked (waived: --no-revocation-check)" \
	"waived revocation said"
assert_contains "$(cat "$T/out")" "PCR values NOT compared" "waived PCRs said"
# shellcheck disable=SC2046
trusted "require-host-config match, PCR 16 expected" p1b --ak-cert "$W/ak.pem" $(bundle p1) \
	--policy require-host-config "$CONFIG" --no-revocation-check \
	--pcrs "sha256:16=$(pcr_value 16)" --json
[ "$(jq -r '.waived | join(",")' "$T/out")" = "revocation-check" ] ||
	fail "--json does not list the waived check: $(cat "$T/out")"
# shellcheck disable=SC2046
refused "require-host-config, PCR 16 unexpected" "PCR sha256:16 differs" p1c \
	--ak-cert "$W/ak.pem" $(bundle p1) --policy require-host-config "$CONFIG" \
	--no-revocation-check --pcrs "sha256:16=$(printf '%064d' 0 | tr 0 1)"

note "an AK certificate without the virtual marker: hardware TPM"
vquote h1 "$AK"
# shellcheck disable=SC2046
refused "hardware, require-host-config" "is a hardware TPM's" h1 --ak-cert "$W/ak-hw.pem" \
	$(bundle h1) --policy require-host-config "$CONFIG" --no-revocation-check --any-pcrs
# shellcheck disable=SC2046
trusted "hardware, reject-virtual" h1 --ak-cert "$W/ak-hw.pem" $(bundle h1) \
	--policy reject-virtual
assert_contains "$(cat "$T/out")" "trusted: hardware TPM" "hardware verdict"

note "no transient object or session left in the vTPM"
assert_eq "$(tpm2_getcap handles-transient)" "" "transient handles"
assert_eq "$(tpm2_getcap handles-loaded-session)" "" "loaded sessions"
stop_pid "$PID"
echo "ok"
