#!/bin/bash
# Attestation evidence (src/tpm/evidence.c, through build/san/evidence-check)
# made by a vTPM (a vtpmd instance, libtpms) with tpm2-tools: quotes by ECC
# P-256, ECC P-384, RSA-2048 RSASSA and RSAPSS attestation keys, one over
# two PCR banks, and TPM2_Certify of a sealed object (tpm2_certify, and a
# raw command carrying the qualifyingData the Virtualization CA asks for)
# are accepted; tampered, mismatched, misattributed, mistyped or padded
# evidence is refused, each for its reason; clockInfo going backwards is
# refused across real TPM Restarts, Resets and an unorderly restart, and
# the moves forward are accepted. tpm2_checkquote gives the same verdict
# wherever it can express one (the exceptions are noted where they occur).
#
# EVIDENCE_CORPUS=DIR writes the evidence into DIR as seeds for
# tests/fuzz/fuzz_evidence.c (its input format).
source "$(dirname "$0")/../lib.sh"
CHECK=$TOP/build/san/evidence-check
export TSS2_LOG=all+none

require_tools tpm2_createek tpm2_createak tpm2_quote tpm2_checkquote tpm2_certify \
	tpm2_createprimary tpm2_create tpm2_load tpm2_evictcontrol tpm2_pcrextend tpm2_pcrread \
	tpm2_flushcontext tpm2_shutdown tpm2_startup tpm2_getcap swtpm_ioctl sha256sum od
[ -x "$CHECK" ] || fail "$CHECK is missing (make san)"
[ -x "$TPMSEND" ] || fail "$TPMSEND is missing (make all)"

W=$T/w
mkdir -p "$W"
AK_HANDLE=0x81010002   # the ECC AK, made persistent for the clock checks
SEAL_HANDLE=0x81010003 # the sealed object, persistent for the raw TPM2_Certify

# rand_hex N: N random bytes as hex.
rand_hex() {
	head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'
}

# unhex_to FILE HEX: writes the bytes HEX encodes to FILE.
unhex_to() {
	# shellcheck disable=SC2001,SC2059
	printf "$(sed 's/../\\x&/g' <<<"$2")" >"$1"
}

# bank_value BANK PCR: a PCR's value in one bank, lowercase hex.
bank_value() {
	tpm2_pcrread "$1:$2" | sed -n "s/^ *$2 *: 0x//p" | tr 'A-F' 'a-f'
}

# pcr_spec SEL: the current values of the PCRs of SEL ("sha256:0,16+sha1:16")
# in evidence-check's form ("sha256:0=HEX,16=HEX+sha1:16=HEX").
pcr_spec() {
	local part bank pcr pcrs vals out=""
	for part in ${1//+/ }; do
		bank=${part%%:*}
		vals=""
		IFS=, read -r -a pcrs <<<"${part#*:}"
		for pcr in "${pcrs[@]}"; do
			vals+="${vals:+,}$pcr=$(bank_value "$bank" "$pcr")"
		done
		out+="${out:++}$bank:$vals"
	done
	echo "$out"
}

# accepts WHAT CMD...: CMD exits 0; its output is left in $T/out.
accepts() {
	local what=$1
	shift
	expect_exit 0 "$what" "$@"
}

# refuses WHAT REASON CMD...: CMD exits 1 and says REASON.
refuses() {
	local what=$1 reason=$2
	shift 2
	expect_exit 1 "$what" "$@"
	assert_contains "$(cat "$T/out")" "$reason" "$what"
}

# checkquote accept|refuse WHAT ARGS...: tpm2_checkquote ARGS gives that verdict.
checkquote() {
	local want=$1 what=$2 got=accept
	shift 2
	tpm2_checkquote "$@" >/dev/null 2>&1 || got=refuse
	[ "$got" == "$want" ] || fail "$what: tpm2_checkquote would $got it, evidence-check ${want}s it"
}

# quote KEY SEL NONCE OUT [HASH [SCHEME]]: KEY (a context file or handle)
# quotes the PCRs SEL with NONCE into OUT.msg (TPMS_ATTEST), OUT.sig
# (TPMT_SIGNATURE) and OUT.pcrs (tpm2-tools' PCR file).
quote() {
	local scheme=()
	[ -n "${6:-}" ] && scheme=(--scheme "$6")
	flushed tpm2_quote -c "$1" -l "$2" -q "$3" -m "$4.msg" -s "$4.sig" -o "$4.pcrs" \
		-g "${5:-sha256}" "${scheme[@]}" >/dev/null || fail "tpm2_quote by $1"
}

# clock_of OUT: the clockInfo evidence-check printed ("ok clock=C:R:S:SAFE").
clock_of() {
	sed -n 's/^ok clock=//p' "$1"
}

# seed_raw NAME FILE: with EVIDENCE_CORPUS set, FILE as fuzz input NAME.
seed_raw() {
	[ -n "${EVIDENCE_CORPUS:-}" ] || return 0
	mkdir -p "$EVIDENCE_CORPUS"
	cat "$2" >"$EVIDENCE_CORPUS/$1"
}

# seed NAME FILE...: with EVIDENCE_CORPUS set, writes FILEs (an empty name
# for an empty piece) as the pieces of fuzz input NAME.
seed() {
	local name=$1 f n
	[ -n "${EVIDENCE_CORPUS:-}" ] || return 0
	shift
	mkdir -p "$EVIDENCE_CORPUS"
	: >"$EVIDENCE_CORPUS/$name"
	for f in "$@"; do
		n=0
		[ -n "$f" ] && n=$(stat -c %s "$f")
		# shellcheck disable=SC2059
		printf "$(printf '\\x%02x\\x%02x' $((n >> 8)) $((n & 255)))" >>"$EVIDENCE_CORPUS/$name"
		[ -n "$f" ] && cat "$f" >>"$EVIDENCE_CORPUS/$name"
	done
	return 0
}

start_tpm s unix --plaintext-state
PID=$INSTANCE_PID

note "an EK and attestation keys: ECC P-256 (two), ECC P-384, RSA-2048 RSASSA and RSAPSS"
flushed tpm2_createek -c "$W/ek.ctx" -G rsa -u "$W/ek.pub" >/dev/null || fail "tpm2_createek"
for k in "ecc ecc sha256 ecdsa ecc-p256" "ecc2 ecc sha256 ecdsa ecc-p256" \
	"p384 ecc384 sha384 ecdsa ecc-p384" "rsa rsa sha256 rsassa rsa2048" \
	"pss rsa sha256 rsapss rsa2048"; do
	read -r name alg hash scheme kind <<<"$k"
	flushed tpm2_createak -C "$W/ek.ctx" -c "$W/$name.ctx" -G "$alg" -g "$hash" -s "$scheme" \
		-u "$W/$name.pub" -n "$W/$name.name" >/dev/null || fail "tpm2_createak $name"
	accepts "$name: public area" "$CHECK" public "$W/$name.pub"
	assert_contains "$(cat "$T/out")" "key=$kind" "$name: the kind of key"
	assert_contains "$(cat "$T/out")" "restricted_signing=yes" "$name: an attestation key"
	assert_contains "$(cat "$T/out")" "name=$(hex_of "$W/$name.name")" \
		"$name: the Name the TPM computed"
done
accepts "EK: public area" "$CHECK" public "$W/ek.pub"
assert_contains "$(cat "$T/out")" "restricted_signing=no" "EK: not a signing key"
seed_raw public-ecc-ak "$W/ecc.pub"
seed_raw public-rsa-ek "$W/ek.pub"

note "PCR 16 extended in both banks, so that the quoted values are not all zero"
tpm2_pcrextend "16:sha256=$(rand_hex 32),sha1=$(rand_hex 20)"

note "quotes by every key are accepted, as tpm2_checkquote accepts them"
for k in "ecc sha256" "p384 sha384" "rsa sha256" "pss sha256 rsapss"; do
	read -r name hash scheme <<<"$k"
	nonce=$(rand_hex 16)
	quote "$W/$name.ctx" sha256:0,1,16 "$nonce" "$W/q-$name" "$hash" "${scheme:-}"
	accepts "$name: quote" "$CHECK" quote "$W/$name.pub" "$W/q-$name.msg" "$W/q-$name.sig" \
		"$nonce" "$(pcr_spec sha256:0,1,16)"
	# tpm2_checkquote 5.4 refuses RSAPSS signatures that the vTPM made and
	# that OpenSSL verifies (salt length 32): no comparison for that key.
	[ "$name" == pss ] && continue
	checkquote accept "$name: quote" -u "$W/$name.pub" -m "$W/q-$name.msg" \
		-s "$W/q-$name.sig" -f "$W/q-$name.pcrs" -g "$hash" -q "$nonce"
done
unhex_to "$W/q.values" "$(pcr_spec sha256:0,1,16 | sed 's/sha256:0=//; s/,1=//; s/,16=//')"
for name in ecc p384 rsa pss; do
	nonce=$("$CHECK" attest "$W/q-$name.msg" | sed -n 's/^extra=//p')
	unhex_to "$W/q-$name.nonce" "$nonce"
	seed "quote-$name" "$W/$name.pub" "$W/q-$name.msg" "$W/q-$name.sig" "$W/q-$name.nonce" "" \
		"$W/q.values"
done
seed_raw attest-quote "$W/q-ecc.msg"

note "a quote over two banks: both banks' values are needed"
nonce=$(rand_hex 20)
quote "$W/ecc.ctx" sha256:0,16+sha1:16 "$nonce" "$W/q2"
accepts "two banks" "$CHECK" quote "$W/ecc.pub" "$W/q2.msg" "$W/q2.sig" "$nonce" \
	"$(pcr_spec sha256:0,16+sha1:16)"
checkquote accept "two banks" -u "$W/ecc.pub" -m "$W/q2.msg" -s "$W/q2.sig" -f "$W/q2.pcrs" \
	-g sha256 -q "$nonce"
refuses "two banks, sha256 values only" "selects sha1 PCRs 16" "$CHECK" quote "$W/ecc.pub" \
	"$W/q2.msg" "$W/q2.sig" "$nonce" "$(pcr_spec sha256:0,16)"
refuses "two banks, one PCR more" "the values given are for PCRs 0,1,16" "$CHECK" quote \
	"$W/ecc.pub" "$W/q2.msg" "$W/q2.sig" "$nonce" "$(pcr_spec sha256:0,1,16+sha1:16)"

Q=$W/q-ecc
NONCE=$("$CHECK" attest "$Q.msg" | sed -n 's/^extra=//p')
PCRS=$(pcr_spec sha256:0,1,16)

note "a tampered attestation is refused, wherever the byte is"
size=$(stat -c %s "$Q.msg")
for off in 0 5 8 44 52 60 70 $((size - 1)); do
	cp "$Q.msg" "$W/t.msg"
	flip_byte "$W/t.msg" "$off"
	refuses "byte $off flipped" "does not verify" "$CHECK" quote "$W/ecc.pub" "$W/t.msg" \
		"$Q.sig" "$NONCE" "$PCRS"
	checkquote refuse "byte $off flipped" -u "$W/ecc.pub" -m "$W/t.msg" -s "$Q.sig" \
		-f "$Q.pcrs" -g sha256 -q "$NONCE"
done
cp "$Q.msg" "$W/t.msg"
flip_byte "$W/t.msg" 0
refuses "magic flipped, parsed" "is not TPM_GENERATED_VALUE" "$CHECK" attest "$W/t.msg"
seed_raw attest-bad-magic "$W/t.msg"
cp "$Q.msg" "$W/t.msg"
flip_byte "$W/t.msg" 5
refuses "type flipped, parsed" "is neither CERTIFY (0x8017) nor QUOTE" "$CHECK" attest "$W/t.msg"

note "a wrong nonce is refused"
refuses "wrong nonce" "extraData" "$CHECK" quote "$W/ecc.pub" "$Q.msg" "$Q.sig" \
	"$(rand_hex 16)" "$PCRS"
checkquote refuse "wrong nonce" -u "$W/ecc.pub" -m "$Q.msg" -s "$Q.sig" -f "$Q.pcrs" \
	-g sha256 -q "$(rand_hex 16)"

note "wrong PCR values are refused: one value altered, or the PCRs extended since"
bad=${PCRS%?}$(printf '%x' $(((16#${PCRS: -1} + 1) % 16)))
refuses "PCR 16 altered" "PCR digest" "$CHECK" quote "$W/ecc.pub" "$Q.msg" "$Q.sig" "$NONCE" "$bad"
# tpm2-tools' PCR file: TPML_PCR_SELECTION (132 bytes), a count (4), then
# TPML_DIGEST: a count (4) and TPM2B_DIGESTs of 66 bytes; the third value
# (PCR 16) ends at byte 132 + 4 + 4 + 3 * 66 - 1 - 32 = 305.
assert_eq "$(od -An -tx1 -j 136 -N 4 "$Q.pcrs" | tr -d ' ')" "03000000" \
	"tpm2-tools' PCR file layout: three digests"
cp "$Q.pcrs" "$W/t.pcrs"
flip_byte "$W/t.pcrs" 305
checkquote refuse "PCR 16 altered" -u "$W/ecc.pub" -m "$Q.msg" -s "$Q.sig" -f "$W/t.pcrs" \
	-g sha256 -q "$NONCE"
tpm2_pcrextend "16:sha256=$(rand_hex 32)"
refuses "PCR 16 extended since" "PCR digest" "$CHECK" quote "$W/ecc.pub" "$Q.msg" "$Q.sig" \
	"$NONCE" "$(pcr_spec sha256:0,1,16)"
refuses "fewer PCRs than quoted" "the values given are for PCRs 0,16" "$CHECK" quote \
	"$W/ecc.pub" "$Q.msg" "$Q.sig" "$NONCE" "$(pcr_spec sha256:0,16)"

note "a signature by another key is refused"
nonce2=$(rand_hex 16)
quote "$W/ecc2.ctx" sha256:0,1,16 "$nonce2" "$W/q-ecc2"
refuses "another AK's signature" "does not verify" "$CHECK" quote "$W/ecc.pub" "$Q.msg" \
	"$W/q-ecc2.sig" "$NONCE" "$PCRS"
checkquote refuse "another AK's signature" -u "$W/ecc.pub" -m "$Q.msg" -s "$W/q-ecc2.sig" \
	-f "$Q.pcrs" -g sha256 -q "$NONCE"
refuses "another AK's quote" "does not verify" "$CHECK" quote "$W/ecc.pub" "$W/q-ecc2.msg" \
	"$W/q-ecc2.sig" "$nonce2" "$(pcr_spec sha256:0,1,16)"
checkquote refuse "another AK's quote" -u "$W/ecc.pub" -m "$W/q-ecc2.msg" \
	-s "$W/q-ecc2.sig" -f "$W/q-ecc2.pcrs" -g sha256 -q "$nonce2"
refuses "an RSA signature for an ECC key" "algorithm RSASSA is not ECDSA" "$CHECK" verify \
	"$W/ecc.pub" "$W/q-rsa.msg" "$W/q-rsa.sig"
refuses "an RSAPSS signature for an RSASSA key" "the key's scheme is RSASSA with sha256" \
	"$CHECK" verify "$W/rsa.pub" "$W/q-pss.msg" "$W/q-pss.sig"
refuses "the EK as signer" "not those of a restricted signing key" "$CHECK" verify \
	"$W/ek.pub" "$W/q-rsa.msg" "$W/q-rsa.sig"
seed quote-other-key "$W/ecc.pub" "$Q.msg" "$W/q-ecc2.sig" "$W/q-ecc.nonce"

note "trailing bytes are refused"
cp "$Q.msg" "$W/t.msg"
printf '\0' >>"$W/t.msg"
refuses "a byte after the attestation, parsed" "1 bytes after the TPMS_ATTEST" "$CHECK" attest \
	"$W/t.msg"
refuses "a byte after the attestation" "does not verify" "$CHECK" quote "$W/ecc.pub" \
	"$W/t.msg" "$Q.sig" "$NONCE" "$PCRS"
checkquote refuse "a byte after the attestation" -u "$W/ecc.pub" -m "$W/t.msg" -s "$Q.sig" \
	-f "$Q.pcrs" -g sha256 -q "$NONCE"
seed_raw attest-trailing "$W/t.msg"
cp "$Q.sig" "$W/t.sig"
printf '\0' >>"$W/t.sig"
# (tpm2_checkquote 5.4 ignores bytes after the signature.)
refuses "a byte after the signature" "1 bytes after the TPMT_SIGNATURE" "$CHECK" quote \
	"$W/ecc.pub" "$Q.msg" "$W/t.sig" "$NONCE" "$PCRS"
cp "$W/ecc.pub" "$W/t.pub"
printf '\0' >>"$W/t.pub"
size=$(stat -c %s "$W/ecc.pub")
refuses "a byte after the public area" \
	"TPM2B_PUBLIC declares $((size - 2)) bytes but $((size - 1)) follow" "$CHECK" public "$W/t.pub"

note "TPM2_Certify of a sealed object (tpm2_certify): accepted for that object alone"
head -c 32 /dev/urandom >"$W/secret"
flushed tpm2_createprimary -C o -c "$W/primary.ctx" -Q || fail "tpm2_createprimary"
flushed tpm2_create -C "$W/primary.ctx" -i "$W/secret" -u "$W/seal.pub" -r "$W/seal.priv" -Q ||
	fail "tpm2_create (sealed object)"
flushed tpm2_load -C "$W/primary.ctx" -u "$W/seal.pub" -r "$W/seal.priv" -c "$W/seal.ctx" \
	-n "$W/seal.name" -Q || fail "tpm2_load"
accepts "sealed object: public area" "$CHECK" public "$W/seal.pub"
assert_contains "$(cat "$T/out")" "name=$(hex_of "$W/seal.name")" \
	"sealed object: the Name the TPM computed"
flushed tpm2_certify -c "$W/seal.ctx" -C "$W/ecc.ctx" -g sha256 -o "$W/c.attest" \
	-s "$W/c.sig" >/dev/null || fail "tpm2_certify"
# tpm2_certify 5.x always passes the qualifyingData 00ff55aa.
accepts "certify" "$CHECK" certify "$W/ecc.pub" "$W/c.attest" "$W/c.sig" "$W/seal.pub" 00ff55aa
refuses "certify, other qualifying data" "extraData" "$CHECK" certify "$W/ecc.pub" \
	"$W/c.attest" "$W/c.sig" "$W/seal.pub" "$(rand_hex 32)"
refuses "certify, another object" "certified Name is not the Name" "$CHECK" certify \
	"$W/ecc.pub" "$W/c.attest" "$W/c.sig" "$W/ecc2.pub" 00ff55aa
refuses "a CERTIFY where a QUOTE is expected" "not QUOTE (0x8018)" "$CHECK" quote \
	"$W/ecc.pub" "$W/c.attest" "$W/c.sig" 00ff55aa "$PCRS"
# (Without PCR values, tpm2_checkquote 5.4 accepts a CERTIFY as a quote.)
checkquote refuse "a CERTIFY where a QUOTE is expected" -u "$W/ecc.pub" -m "$W/c.attest" \
	-s "$W/c.sig" -f "$Q.pcrs" -g sha256 -q 00ff55aa
refuses "a QUOTE where a CERTIFY is expected" "not CERTIFY (0x8017)" "$CHECK" certify \
	"$W/ecc.pub" "$Q.msg" "$Q.sig" "$W/seal.pub" "$NONCE"
cp "$W/c.attest" "$W/t.attest"
flip_byte "$W/t.attest" $(($(stat -c %s "$W/c.attest") - 40))
refuses "certify, tampered" "does not verify" "$CHECK" certify "$W/ecc.pub" "$W/t.attest" \
	"$W/c.sig" "$W/seal.pub" 00ff55aa
seed_raw attest-certify "$W/c.attest"
seed_raw public-sealed "$W/seal.pub"
unhex_to "$W/c.extra" 00ff55aa
seed certify-tools "$W/ecc.pub" "$W/c.attest" "$W/c.sig" "$W/c.extra" "$W/seal.pub"

note "the keys made persistent: the AK at $AK_HANDLE, the sealed object at $SEAL_HANDLE"
flushed tpm2_evictcontrol -C o -c "$W/ecc.ctx" "$AK_HANDLE" >/dev/null || fail "evictcontrol AK"
flushed tpm2_evictcontrol -C o -c "$W/seal.ctx" "$SEAL_HANDLE" >/dev/null ||
	fail "evictcontrol sealed object"

note "TPM2_Certify with the qualifyingData the Virtualization CA asks for: SHA-256(vEK public)"
qd=$(sha256sum "$W/ek.pub" | cut -c1-64)
# TPM2_Certify: tag ST_SESSIONS, 76 bytes, TPM_CC_Certify, objectHandle,
# signHandle, two empty password sessions (18 bytes), qualifyingData,
# inScheme TPM_ALG_NULL.
rsp=$("$TPMSEND" "$DATA_EP" "$(hexcat 8002 0000004c 00000148 "${SEAL_HANDLE#0x}" \
	"${AK_HANDLE#0x}" 00000012 40000009 0000 00 0000 40000009 0000 00 0000 0020 "$qd" 0010)")
assert_eq "${rsp:12:8}" 00000000 "TPM2_Certify response code"
params=${rsp:28:$((16#${rsp:20:8} * 2))}
alen=$((16#${params:0:4}))
unhex_to "$W/v.attest" "${params:4:$((alen * 2))}"
unhex_to "$W/v.sig" "${params:$((4 + alen * 2))}"
accepts "certify with qualifyingData" "$CHECK" certify "$W/ecc.pub" "$W/v.attest" "$W/v.sig" \
	"$W/seal.pub" "$qd"
refuses "certify, SHA-256 of another vEK" "extraData" "$CHECK" certify "$W/ecc.pub" \
	"$W/v.attest" "$W/v.sig" "$W/seal.pub" "$(sha256sum "$W/ecc.pub" | cut -c1-64)"
unhex_to "$W/v.extra" "$qd"
seed certify-vek "$W/ecc.pub" "$W/v.attest" "$W/v.sig" "$W/v.extra" "$W/seal.pub"

# quote_clock NAME: a quote by the persistent AK into $W/NAME.*, checked
# (without a previous clockInfo), its nonce and PCR values kept in
# NAME.nonce and NAME.pcrs-spec; sets CLOCK to its clockInfo.
quote_clock() {
	local nonce
	nonce=$(rand_hex 16)
	quote "$AK_HANDLE" sha256:0,1,16 "$nonce" "$W/$1"
	echo "$nonce" >"$W/$1.nonce"
	pcr_spec sha256:0,1,16 >"$W/$1.pcrs-spec"
	accepts "quote $1" "$CHECK" quote "$W/ecc.pub" "$W/$1.msg" "$W/$1.sig" "$nonce" \
		"$(cat "$W/$1.pcrs-spec")"
	CLOCK=$(clock_of "$T/out")
}

# follows NAME PREV: quote NAME is accepted after clockInfo PREV.
follows() {
	accepts "$1 after $2" "$CHECK" quote "$W/ecc.pub" "$W/$1.msg" "$W/$1.sig" \
		"$(cat "$W/$1.nonce")" "$(cat "$W/$1.pcrs-spec")" "$2"
}

# goes_back NAME PREV REASON: quote NAME is refused after clockInfo PREV.
goes_back() {
	refuses "$1 after $2" "$3" "$CHECK" quote "$W/ecc.pub" "$W/$1.msg" "$W/$1.sig" \
		"$(cat "$W/$1.nonce")" "$(cat "$W/$1.pcrs-spec")" "$2"
}

note "clockInfo: forward within one power cycle, and not back"
quote_clock c1
C1=$CLOCK
quote_clock c2
C2=$CLOCK
[ "${C1#*:}" == "${C2#*:}" ] || fail "counters changed between two quotes: $C1, $C2"
[ "${C2%%:*}" -gt "${C1%%:*}" ] || fail "clock did not advance between two quotes: $C1, $C2"
follows c2 "$C1"
follows c2 "$C2"
goes_back c1 "$C2" "clock: went backwards"

note "clockInfo: a TPM Restart (Shutdown(STATE), INIT, Startup(CLEAR)) advances restartCount"
tpm2_shutdown
swtpm_ioctl "${IOCTL[@]}" -i >/dev/null
tpm2_startup -c
quote_clock c3
C3=$CLOCK
IFS=: read -r _ r2 s2 _ <<<"$C2"
IFS=: read -r _ r3 s3 _ <<<"$C3"
if [ "$r3" -ne "$r2" ] || [ "$s3" -ne $((s2 + 1)) ]; then
	fail "not a TPM Restart: $C2, then $C3"
fi
follows c3 "$C2"
goes_back c2 "$C3" "restartCount went backwards"

note "clockInfo: a TPM Reset (Shutdown(CLEAR), INIT, Startup(CLEAR)) advances resetCount"
tpm2_shutdown -c
swtpm_ioctl "${IOCTL[@]}" -i >/dev/null
tpm2_startup -c
quote_clock c4
C4=$CLOCK
IFS=: read -r _ r4 s4 _ <<<"$C4"
if [ "$r4" -ne $((r3 + 1)) ] || [ "$s4" -ne 0 ]; then
	fail "not a TPM Reset: $C3, then $C4"
fi
follows c4 "$C3"
follows c4 "$C1"
goes_back c3 "$C4" "resetCount went backwards"
goes_back c1 "$C4" "resetCount went backwards"

note "clockInfo: after an unorderly restart (SIGKILL) the TPM resets and says clock is unsafe"
quote_clock c5
C5=$CLOCK
kill_hard "$PID"
start_tpm s unix --plaintext-state
PID=$INSTANCE_PID
quote_clock c6
C6=$CLOCK
IFS=: read -r k5 r5 _ _ <<<"$C5"
IFS=: read -r k6 r6 _ safe6 <<<"$C6"
if [ "$r6" -ne $((r5 + 1)) ] || [ "$safe6" -ne 0 ]; then
	fail "not an unorderly TPM Reset: $C5, then $C6"
fi
if [ "$k6" -lt "$k5" ]; then
	note "(clock went back $((k5 - k6)) ms: the TPM resumed from its last saved value)"
fi
follows c6 "$C5"
goes_back c5 "$C6" "resetCount went backwards"
for n in c5 c6; do
	unhex_to "$W/$n.nonce.bin" "$(cat "$W/$n.nonce")"
	unhex_to "$W/$n.values" "$(sed 's/sha256:0=//; s/,1=//; s/,16=//' "$W/$n.pcrs-spec")"
done
IFS=: read -r k r s safe <<<"$C5"
unhex_to "$W/c5.clock" "$(printf '%016x%08x%08x%02x' "$k" "$r" "$s" "$safe")"
IFS=: read -r k r s safe <<<"$C6"
unhex_to "$W/c6.clock" "$(printf '%016x%08x%08x%02x' "$k" "$r" "$s" "$safe")"
seed quote-after-reset "$W/ecc.pub" "$W/c6.msg" "$W/c6.sig" "$W/c6.nonce.bin" "" \
	"$W/c6.values" "$W/c5.clock"
seed quote-before-reset "$W/ecc.pub" "$W/c5.msg" "$W/c5.sig" "$W/c5.nonce.bin" "" \
	"$W/c5.values" "$W/c6.clock"

note "no transient object or session left in the vTPM"
assert_eq "$(tpm2_getcap handles-transient)" "" "transient handles"
assert_eq "$(tpm2_getcap handles-loaded-session)" "" "loaded sessions"
stop_pid "$PID"
echo "ok"
