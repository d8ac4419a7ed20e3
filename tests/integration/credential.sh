#!/bin/bash
# Software TPM2_MakeCredential (src/tpm/credential.c, through build/san/makecred)
# against TPM2_ActivateCredential of vTPMs (vtpmd instances, libtpms), driven
# with tpm2-tools, for RSA-2048 and ECC P-256 EKs (TCG default templates):
# the vTPM recovers exactly the secret; the Names computed in software are
# the TPM's; tpm2_makecredential's file has the same layout; a credential
# made for another AK, for another TPM's EK, or altered, does not activate.
source "$(dirname "$0")/../lib.sh"
MAKECRED=$TOP/build/san/makecred
export TSS2_LOG=all+none

require_tools tpm2_createek tpm2_createak tpm2_readpublic tpm2_makecredential \
	tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_flushcontext \
	tpm2_getcap od cmp
[ -x "$MAKECRED" ] || fail "$MAKECRED is missing (make san)"

# keys TCTI DIR ALG: an EK (tpm2_createek: the TCG default template) in
# DIR/ek.{pub,ctx,name} and an AK under it in DIR/ak.{pub,priv,ctx,name}.
# Every step flushes what it loaded (flushed); later steps reload the keys
# from their saved contexts.
keys() {
	local d=$2 alg=$3
	export TPM2TOOLS_TCTI=$1
	mkdir -p "$d"
	flushed tpm2_createek -G "$alg" -c "$d/ek.ctx" -u "$d/ek.pub" >/dev/null ||
		fail "$alg: tpm2_createek"
	flushed tpm2_readpublic -c "$d/ek.ctx" -n "$d/ek.name" >/dev/null ||
		fail "$alg: tpm2_readpublic"
	ak "$1" "$d" ak "$alg"
}

# ak TCTI DIR NAME ALG: one more AK under DIR's EK, in DIR/NAME.*
ak() {
	local d=$2 n=$3 alg=$4 scheme=rsassa
	[ "$alg" == ecc ] && scheme=ecdsa
	export TPM2TOOLS_TCTI=$1
	flushed tpm2_createak -C "$d/ek.ctx" -G "$alg" -g sha256 -s "$scheme" -c "$d/$n.ctx" \
		-u "$d/$n.pub" -n "$d/$n.name" -r "$d/$n.priv" >/dev/null || fail "$alg: tpm2_createak"
}

# activate TCTI DIR AK CRED OUT: TPM2_ActivateCredential of the credential
# file CRED with DIR's EK, authorized by PolicySecret(endorsement) (the EK
# template's policy), and DIR's key AK; the credential goes to OUT and
# tpm2-tools' messages to DIR/activate.err. Returns its exit status.
activate() {
	local d=$2
	export TPM2TOOLS_TCTI=$1
	tpm2_startauthsession --policy-session -S "$d/session.ctx" >/dev/null ||
		fail "tpm2_startauthsession"
	tpm2_policysecret -S "$d/session.ctx" -c e >/dev/null || fail "tpm2_policysecret"
	rm -f "$5"
	flushed tpm2_activatecredential -c "$d/$3.ctx" -C "$d/ek.ctx" -i "$4" -o "$5" \
		-P "session:$d/session.ctx" >/dev/null 2>"$d/activate.err"
}

# refused TCTI DIR AK CRED WHAT REASON: the activation must fail in the TPM
# command itself (not in the tools before it), saying REASON.
refused() {
	if activate "$1" "$2" "$3" "$4" "$2/refused.out"; then
		fail "$5: the vTPM activated it"
	fi
	assert_contains "$(cat "$2/activate.err")" "Esys_ActivateCredential" "$5: TPM error"
	assert_contains "$(cat "$2/activate.err")" "$6" "$5: TPM error"
}

start_tpm tpm1 unix --plaintext-state
TPM1=$TCTI
PID1=$INSTANCE_PID
start_tpm tpm2 unix --plaintext-state
TPM2=$TCTI
PID2=$INSTANCE_PID

for alg in rsa ecc; do
	d=$T/$alg
	note "$alg: EK and two AKs on one vTPM, an EK on another"
	keys "$TPM1" "$d" "$alg"
	ak "$TPM1" "$d" ak2 "$alg"
	keys "$TPM2" "$T/$alg-other" "$alg"

	note "$alg: Names computed in software are the TPM's"
	assert_eq "$("$MAKECRED" name "$d/ak.pub")" "$(hex_of "$d/ak.name")" "$alg AK Name"
	assert_eq "$("$MAKECRED" name "$d/ek.pub")" "$(hex_of "$d/ek.name")" "$alg EK Name"

	note "$alg: the vTPM recovers exactly the secret"
	for n in 32 1 20; do
		head -c "$n" /dev/urandom >"$d/secret$n"
		"$MAKECRED" make "$d/ek.pub" "$d/ak.name" "$d/secret$n" "$d/cred$n"
		activate "$TPM1" "$d" ak "$d/cred$n" "$d/out$n" ||
			fail "$alg: activating a $n-byte credential: $(cat "$d/activate.err")"
		cmp -s "$d/out$n" "$d/secret$n" || fail "$alg: the recovered $n-byte credential differs"
	done

	note "$alg: tpm2_makecredential writes the same layout, and its file activates too"
	tpm2_makecredential -T none -u "$d/ek.pub" -s "$d/secret32" -n "$(hex_of "$d/ak.name")" \
		-o "$d/ref.cred" >/dev/null 2>&1 || fail "$alg: tpm2_makecredential"
	mine=$(hex_of "$d/cred32")
	ref=$(hex_of "$d/ref.cred")
	assert_eq "${mine:0:20}" "${ref:0:20}" \
		"$alg: header and TPM2B_ID_OBJECT size, against tpm2_makecredential"
	activate "$TPM1" "$d" ak "$d/ref.cred" "$d/ref.out" ||
		fail "$alg: activating tpm2_makecredential's credential: $(cat "$d/activate.err")"
	cmp -s "$d/ref.out" "$d/secret32" || fail "$alg: tpm2_makecredential's credential differs"

	note "$alg: a credential made for another AK opens only for that AK"
	"$MAKECRED" make "$d/ek.pub" "$d/ak2.name" "$d/secret32" "$d/cred.ak2"
	refused "$TPM1" "$d" ak "$d/cred.ak2" "$alg: credential for another AK" \
		"integrity check failed"
	activate "$TPM1" "$d" ak2 "$d/cred.ak2" "$d/out.ak2" ||
		fail "$alg: activating for the second AK: $(cat "$d/activate.err")"
	cmp -s "$d/out.ak2" "$d/secret32" || fail "$alg: the second AK's credential differs"

	note "$alg: an altered credential is refused"
	# File header 8 bytes, ID object size 2, HMAC 2 + 32: encIdentity
	# starts at byte 44.
	cp "$d/cred32" "$d/cred.altered"
	flip_byte "$d/cred.altered" 44
	refused "$TPM1" "$d" ak "$d/cred.altered" "$alg: altered credential" "integrity check failed"

	note "$alg: a credential made for another TPM's EK is refused"
	# (RSA: OAEP decoding fails, which libtpms reports as TPM_RC_FAILURE
	# without entering failure mode; ECC: another seed, so the HMAC fails.)
	"$MAKECRED" make "$T/$alg-other/ek.pub" "$d/ak.name" "$d/secret32" "$d/cred.otherek"
	refused "$TPM1" "$d" ak "$d/cred.otherek" "$alg: credential for another TPM's EK" \
		"Unable to run tpm2_activatecredential"
done

note "makecred refuses what credential_make refuses"
head -c 33 /dev/urandom >"$T/secret33"
expect_exit 1 "a 33-byte credential" "$MAKECRED" make "$T/rsa/ek.pub" "$T/rsa/ak.name" \
	"$T/secret33" "$T/cred33"
assert_contains "$(cat "$T/out")" "credential: 33 bytes" "refusal message"
expect_exit 1 "an AK public area given as the EK" "$MAKECRED" make "$T/rsa/ak.pub" \
	"$T/rsa/ak.name" "$T/rsa/secret32" "$T/cred.akek"
assert_contains "$(cat "$T/out")" "not those of a restricted decryption key" "refusal message"

note "no transient object or session left in the vTPMs"
for tcti in "$TPM1" "$TPM2"; do
	assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-transient)" "" "transient handles"
	assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-loaded-session)" "" "loaded sessions"
	assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_getcap handles-saved-session)" "" "saved sessions"
done
stop_pid "$PID1"
stop_pid "$PID2"
echo "ok"
