#!/bin/bash
# The host TPM's side of the chain of trust (src/hwtpm/hwtpm_attest.c) and the
# provisioning of a vTPM's EK and certificates (src/manager/guesttpm.c), through
# build/san/hostattest-check, checked with tpm2-tools and openssl:
#  - a host TPM provisioned like a manufacturer's (swtpm_setup: EK and EK
#    certificate in NV): vtpmd's RSA EK is the certified key, its ECC EK is
#    made from the TCG template (as tpm2_createek makes it);
#  - the CK recovers a credential made offline by tpm2_makecredential and
#    by credential_make (the secret encrypted on the bus), and nothing made
#    for another key or altered;
#  - the CK's quote verifies with tpm2_checkquote, its certifications of
#    the BK and of a sealed state-key object name those objects;
#  - a sealed object still unseals only with its policy;
#  - a foreign key at the CK's handle is refused, not used or replaced;
#  - a vTPM (vtpmd instance) gets its EK persisted and its EK certificate
#    and chain in the TCG NV indices, readable and write-locked;
#  - the host-TPM commands of each operation, printed and bounded.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
CHECK=$TOP/build/san/hostattest-check
MAKECRED=$TOP/build/san/makecred
EVIDENCE=$TOP/build/san/evidence-check
PCRS=0,2,4,7,16

require_tools swtpm swtpm_setup swtpm_localca tpm2_makecredential tpm2_checkquote tpm2_print \
	tpm2_nvread tpm2_nvwrite tpm2_nvreadpublic tpm2_readpublic tpm2_createek tpm2_pcrread \
	tpm2_pcrextend tpm2_load tpm2_unseal tpm2_getcap tpm2_flushcontext openssl sha256sum
for t in "$CHECK" "$MAKECRED" "$EVIDENCE"; do
	[ -x "$t" ] || fail "$t is missing (make san)"
done

# host CMD...: a tpm2-tools command against the host TPM, flushed after.
host() {
	TPM2TOOLS_TCTI=$HOST_TCTI flushed "$@"
}

# vtpm CMD...: a tpm2-tools command against the vTPM, flushed after.
vtpm() {
	TPM2TOOLS_TCTI=$VTPM_TCTI flushed "$@"
}

# commands OUTPUT: the "commands N" line of a hostattest-check step.
commands() {
	sed -n 's/^commands //p' <<<"$1"
}

# certify_fields FILE: reads a TPMS_ATTEST of type CERTIFY byte by byte
# (tpm2_print cannot print one) into A_EXTRA and A_NAME (hex).
certify_fields() {
	local h off n
	h=$(hex_of "$1")
	assert_eq "${h:0:8}" ff544347 "$1: magic (TPM_GENERATED)"
	assert_eq "${h:8:4}" 8017 "$1: type (TPM_ST_ATTEST_CERTIFY)"
	off=12
	n=$((16#${h:off:4}))
	off=$((off + 4 + 2 * n)) # qualifiedSigner
	n=$((16#${h:off:4}))
	A_EXTRA=${h:off+4:2*n}
	off=$((off + 4 + 2 * n))
	off=$((off + 2 * 17 + 2 * 8)) # clockInfo, firmwareVersion
	n=$((16#${h:off:4}))
	A_NAME=${h:off+4:2*n}
}

# split_sealed FILE OUT: the TPM2B_PUBLIC at the start of FILE (a sealed
# blob: TPM2B_PUBLIC || TPM2B_PRIVATE) into OUT, the rest into OUT.priv.
split_sealed() {
	local n
	n=$((16#$(od -An -tx1 -N2 "$1" | tr -d ' ')))
	head -c $((2 + n)) "$1" >"$2"
	tail -c +$((3 + n)) "$1" >"$2.priv"
}

note "provision the host TPM as a manufacturer would (swtpm_setup, local CA)"
mkdir -p "$T/ca" "$T/host" "$T/certs" "$T/w"
cat >"$T/localca.conf" <<EOF
statedir = $T/ca
signingkey = $T/ca/signkey.pem
issuercert = $T/ca/issuercert.pem
certserial = $T/ca/certserial
EOF
cat >"$T/localca.options" <<EOF
--platform-manufacturer vtpmd-test
--platform-version 1.0
--platform-model host
EOF
cat >"$T/setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $T/localca.conf
create_certs_tool_options = $T/localca.options
active_pcr_banks = sha256
EOF
swtpm_setup --tpm2 --tpm-state "$T/host" --create-ek-cert --create-platform-cert \
	--config "$T/setup.conf" --write-ek-cert-files "$T/certs" >"$T/setup.log" 2>&1 ||
	{ cat "$T/setup.log" >&2; fail "swtpm_setup"; }
start_host_tpm "$T/host"
W=$T/w

note "host RSA EK: the key of its manufacturer's certificate, at 0x81010001"
out=$("$CHECK" host "$HOST_TCTI" "$W" ek rsa)
assert_contains "$out" "certificate yes" "the host TPM's RSA EK certificate is found"
cmp -s "$W/ek-rsa.crt" "$T/certs/ek-rsa2048.crt" || fail "EK certificate differs from swtpm_setup's"
tpm2_print -t TPM2B_PUBLIC -f pem "$W/ek-rsa.pub" >"$W/ek-rsa.pem" || fail "tpm2_print EK"
openssl x509 -inform DER -in "$W/ek-rsa.crt" -noout -pubkey >"$W/ek-rsa-cert.pem"
cmp -s "$W/ek-rsa.pem" "$W/ek-rsa-cert.pem" || fail "the EK is not the certificate's key"
host tpm2_readpublic -c 0x81010001 -o "$W/ek-rsa.tpm.pub" >/dev/null
cmp -s "$W/ek-rsa.pub" "$W/ek-rsa.tpm.pub" || fail "RSA EK differs from 0x81010001"
host tpm2_createek -G rsa -c "$W/tek.ctx" -u "$W/tek-rsa.pub" >/dev/null
cmp -s "$W/ek-rsa.pub" "$W/tek-rsa.pub" || fail "RSA EK differs from tpm2_createek's"
# The certificate of the P-384 EK swtpm_setup makes is not the P-256 one's.
openssl x509 -inform DER -in "$T/certs/ek-secp384r1.crt" -noout -pubkey >"$W/ek-384.pem"
cmp -s "$W/ek-rsa.pem" "$W/ek-384.pem" && fail "the key comparison cannot fail"

note "host ECC EK: created from the TCG template at 0x81010002 (no certificate here)"
out=$("$CHECK" host "$HOST_TCTI" "$W" ek ecc)
assert_contains "$out" "certificate no" "ECC P-256 EK certificate"
host tpm2_createek -G ecc -c "$W/tek.ctx" -u "$W/tek-ecc.pub" >/dev/null
cmp -s "$W/ek-ecc.pub" "$W/tek-ecc.pub" || fail "ECC EK differs from tpm2_createek's"
host tpm2_readpublic -c 0x81010002 -o "$W/ek-ecc.tpm.pub" >/dev/null
cmp -s "$W/ek-ecc.pub" "$W/ek-ecc.tpm.pub" || fail "ECC EK was not persisted at 0x81010002"
p=$(tpm2_print -t TPM2B_PUBLIC "$W/ek-ecc.pub")
assert_contains "$p" "raw: 0x300b2" "EK attributes"
assert_contains "$p" 837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa "PolicyA"
out=$("$CHECK" host "$HOST_TCTI" "$W" ek ecc)
[ "$(commands "$out")" -le 3 ] || fail "finding the ECC EK took $(commands "$out") commands"

note "CK: a restricted ECC signing key under the SRK, persistent at 0x81000002"
out=$("$CHECK" host "$HOST_TCTI" "$W" ck)
ckname=$(sed -n 's/^name //p' <<<"$out")
host tpm2_readpublic -c 0x81000002 -o "$W/ck.tpm.pub" -n "$W/ck.name" >/dev/null
cmp -s "$W/ck.pub" "$W/ck.tpm.pub" || fail "CK differs from 0x81000002"
assert_eq "$ckname" "$(hex_of "$W/ck.name")" "CK Name"
p=$(tpm2_print -t TPM2B_PUBLIC "$W/ck.pub")
assert_contains "$p" "fixedtpm|fixedparent|sensitivedataorigin|noda|restricted|sign" \
	"CK attributes"
assert_contains "$p" "value: ecdsa" "CK scheme"
out=$("$CHECK" host "$HOST_TCTI" "$W" ck)
assert_eq "$(sed -n 's/^name //p' <<<"$out")" "$ckname" "CK found again"
assert_eq "$(commands "$out")" 2 "commands to find and check the CK"

note "ActivateCredential: offline tpm2_makecredential and credential_make, both EKs"
for k in rsa ecc; do
	head -c 32 /dev/urandom >"$W/secret-$k"
	tpm2_makecredential -T none -u "$W/ek-$k.pub" -s "$W/secret-$k" -n "$ckname" \
		-o "$W/cred-$k" >/dev/null 2>&1 || fail "$k: tpm2_makecredential"
	"$CHECK" host "$HOST_TCTI" "$W" activate "$k" "$W/cred-$k" "$W/out-$k" >/dev/null
	cmp -s "$W/out-$k" "$W/secret-$k" || fail "$k: tpm2_makecredential's secret differs"
	"$MAKECRED" make "$W/ek-$k.pub" "$W/ck.name" "$W/secret-$k" "$W/mcred-$k"
	"$CHECK" host "$HOST_TCTI" "$W" activate "$k" "$W/mcred-$k" "$W/mout-$k" >/dev/null
	cmp -s "$W/mout-$k" "$W/secret-$k" || fail "$k: credential_make's secret differs"
done
note "ActivateCredential: the recovered secret does not cross the bus in the clear"
# tpm2-tss's pcap TCTI records every command and response.
TCTI_PCAP_FILE=$W/bus.pcap "$CHECK" host "pcap:$HOST_TCTI" "$W" activate rsa "$W/cred-rsa" \
	"$W/out-pcap" >/dev/null
cmp -s "$W/out-pcap" "$W/secret-rsa" || fail "activation through the pcap TCTI"
bus=$(hex_of "$W/bus.pcap")
cred=$(hex_of "$W/cred-rsa")
assert_contains "$bus" "${cred:20:64}" "the capture holds the credential sent"
case "$bus" in *"$(hex_of "$W/secret-rsa")"*) fail "the secret crossed the bus in the clear" ;; esac
note "ActivateCredential refuses a credential for another key, altered, or for the other EK"
host tpm2_readpublic -c 0x81010001 -n "$W/ek.name" >/dev/null
"$MAKECRED" make "$W/ek-rsa.pub" "$W/ek.name" "$W/secret-rsa" "$W/cred-other"
expect_exit 1 "credential for another key" "$CHECK" host "$HOST_TCTI" "$W" activate rsa \
	"$W/cred-other" "$W/bad"
assert_contains "$(cat "$T/out")" "activate the credential" "refusal message"
cp "$W/cred-ecc" "$W/cred-altered"
flip_byte "$W/cred-altered" 44
expect_exit 1 "altered credential" "$CHECK" host "$HOST_TCTI" "$W" activate ecc \
	"$W/cred-altered" "$W/bad"
expect_exit 1 "credential for the other EK" "$CHECK" host "$HOST_TCTI" "$W" activate ecc \
	"$W/cred-rsa" "$W/bad"

note "BK: an RSA-2048 OAEP decryption key certified by the CK"
"$CHECK" host "$HOST_TCTI" "$W" bk >/dev/null
host tpm2_readpublic -c 0x81000003 -o "$W/bk.tpm.pub" -n "$W/bk.name" >/dev/null
cmp -s "$W/bk.pub" "$W/bk.tpm.pub" || fail "BK differs from 0x81000003"
p=$(tpm2_print -t TPM2B_PUBLIC "$W/bk.pub")
assert_contains "$p" "fixedtpm|fixedparent|sensitivedataorigin|noda|decrypt" \
	"BK attributes"
assert_contains "$p" "value: oaep" "BK scheme"
certify_fields "$W/bk.attest"
assert_eq "$A_EXTRA" "$(sha256sum "$W/bk.pub" | cut -c1-64)" "BK certification: qualifyingData"
assert_eq "$A_NAME" "$(hex_of "$W/bk.name")" "BK certification: certified Name"
tpm2_checkquote -u "$W/ck.pub" -m "$W/bk.attest" -s "$W/bk.sig" -g sha256 -q "$A_EXTRA" \
	>/dev/null 2>&1 || fail "BK certification signature (tpm2_checkquote)"
"$EVIDENCE" certify "$W/ck.pub" "$W/bk.attest" "$W/bk.sig" "$W/bk.pub" "$A_EXTRA" >/dev/null ||
	fail "BK certification (evidence.c)"

note "vTPM: EK persisted from the TCG template"
mkdir "$T/v"
start_tpm vtpm unix --plaintext-state
VTPM_TCTI=$TCTI
VTPM_PID=$INSTANCE_PID
for k in ecc rsa; do
	"$CHECK" vtpm "$DATA_EP" "$W" ek "$k"
	cp "$W/vek-$k.pub" "$T/v/vek-$k.first"
	"$CHECK" vtpm "$DATA_EP" "$W" ek "$k"
	cmp -s "$W/vek-$k.pub" "$T/v/vek-$k.first" || fail "$k: the vEK changed when found again"
	vtpm tpm2_createek -G "$k" -c "$T/v/ek.ctx" -u "$T/v/tek-$k.pub" >/dev/null
	cmp -s "$W/vek-$k.pub" "$T/v/tek-$k.pub" || fail "$k: vEK differs from tpm2_createek's"
done
vtpm tpm2_readpublic -c 0x81010002 -o "$T/v/p.pub" >/dev/null
cmp -s "$W/vek-ecc.pub" "$T/v/p.pub" || fail "vEK not persisted at 0x81010002"

note "vTPM: EK certificate at 0x01c0000a, platform-written, readable, write-locked"
# An RSA-4096 certificate is larger than one NV write (1024 bytes in libtpms).
openssl req -x509 -newkey rsa:4096 -nodes -keyout "$T/v/k.pem" -subj /CN=vek -days 1 \
	-outform DER -out "$T/v/big.der" 2>/dev/null
[ "$(stat -c %s "$T/v/big.der")" -gt 1024 ] || fail "test certificate too small"
"$CHECK" vtpm "$DATA_EP" "$W" cert ecc "$T/v/big.der"
vtpm tpm2_nvread 0x01c0000a -o "$T/v/got" 2>/dev/null || fail "tpm2_nvread 0x01c0000a"
cmp -s "$T/v/got" "$T/v/big.der" || fail "EK certificate read back differs"
p=$(vtpm tpm2_nvreadpublic 0x01c0000a)
for a in ppwrite writelocked writedefine ppread ownerread authread no_da written platformcreate; do
	assert_contains "$p" "$a" "EK certificate index attribute $a"
done
for a in ownerwrite authwrite policywrite policy_delete; do
	case "$p" in *"$a"*) fail "EK certificate index has $a" ;; esac
done
for h in p o; do
	if vtpm tpm2_nvwrite 0x01c0000a -C "$h" -i "$T/v/big.der" >/dev/null 2>&1; then
		fail "the EK certificate index is writable (-C $h)"
	fi
done
"$CHECK" vtpm "$DATA_EP" "$W" read 1c0000a "$T/v/read"
cmp -s "$T/v/read" "$T/v/big.der" || fail "guesttpm_read_nv differs"
note "vTPM: the platform replaces its certificate"
"$CHECK" vtpm "$DATA_EP" "$W" cert ecc "$W/ek-rsa.crt"
vtpm tpm2_nvread 0x01c0000a -o "$T/v/got" 2>/dev/null
cmp -s "$T/v/got" "$W/ek-rsa.crt" || fail "replaced EK certificate differs"
"$CHECK" vtpm "$DATA_EP" "$W" cert rsa "$T/v/big.der"
vtpm tpm2_nvread 0x01c00002 -o "$T/v/got" 2>/dev/null
cmp -s "$T/v/got" "$T/v/big.der" || fail "RSA EK certificate differs"

note "vTPM: the EK certificate chain from 0x01c00100, a shorter one replaces a longer"
openssl x509 -in "$T/ca/issuercert.pem" -outform DER -out "$T/v/ca.der"
openssl x509 -in "$T/ca/swtpm-localca-rootca-cert.pem" -outform DER -out "$T/v/root.der"
"$CHECK" vtpm "$DATA_EP" "$W" chain "$T/v/ca.der" "$T/v/root.der" "$T/v/big.der"
i=0
for c in ca root big; do
	vtpm tpm2_nvread "0x01c0010$i" -o "$T/v/got" 2>/dev/null || fail "chain index $i"
	cmp -s "$T/v/got" "$T/v/$c.der" || fail "chain index $i differs"
	assert_contains "$(vtpm tpm2_nvreadpublic "0x01c0010$i")" writelocked "chain index $i locked"
	i=$((i + 1))
done
"$CHECK" vtpm "$DATA_EP" "$W" chain "$T/v/ca.der" "$T/v/root.der"
idx=$(vtpm tpm2_getcap handles-nv-index | tr 'A-F' 'a-f')
assert_contains "$idx" 0x1c00101 "chain index 1 after a shorter chain"
case "$idx" in *0x1c00102*) fail "a stale chain index is left: $idx" ;; esac
assert_eq "$(vtpm tpm2_getcap handles-transient)" "" "transient handles left in the vTPM"

note "sealed state-key object: certified by the CK for the vEK"
"$CHECK" host "$HOST_TCTI" "$W" seal >/dev/null
qd=$(sha256sum "$W/vek-ecc.pub" | cut -c1-64)
out=$("$CHECK" host "$HOST_TCTI" "$W" certify-sealed "$qd")
split_sealed "$W/sealed.bin" "$W/sealed.pub"
host tpm2_load -C 0x81000001 -u "$W/sealed.pub" -r "$W/sealed.pub.priv" -c "$W/sealed.ctx" \
	-n "$W/sealed.name" >/dev/null || fail "tpm2_load of the sealed object"
certify_fields "$W/sealed.attest"
assert_eq "$A_NAME" "$(hex_of "$W/sealed.name")" "certification names the sealed object"
assert_eq "$A_EXTRA" "$qd" "certification carries SHA-256(vEK public)"
tpm2_checkquote -u "$W/ck.pub" -m "$W/sealed.attest" -s "$W/sealed.sig" -g sha256 -q "$qd" \
	>/dev/null 2>&1 || fail "sealed certification signature (tpm2_checkquote)"
"$EVIDENCE" certify "$W/ck.pub" "$W/sealed.attest" "$W/sealed.sig" "$W/sealed.pub" "$qd" \
	>/dev/null || fail "sealed certification (evidence.c)"
if "$EVIDENCE" certify "$W/ck.pub" "$W/sealed.attest" "$W/sealed.sig" "$W/bk.pub" "$qd" \
	>/dev/null 2>&1; then
	fail "the certification of the sealed object also names the BK"
fi
p=$(tpm2_print -t TPM2B_PUBLIC "$W/sealed.pub")
case "$p" in *adminwithpolicy* | *userwithauth*) fail "sealed object attributes: $p" ;; esac
note "the CK and BK have the sealed object's authPolicy (the approval key's), no userWithAuth"
policy=$(sed -n 's/^authorization policy: //p' <<<"$p")
[ -n "$policy" ] || fail "the sealed object has no authPolicy"
for k in ck bk; do
	assert_eq "$(tpm2_print -t TPM2B_PUBLIC "$W/$k.pub" | sed -n 's/^authorization policy: //p')" \
		"$policy" "the $k's authPolicy"
done
note "a sealed object still does not unseal without its policy"
host tpm2_load -C 0x81000001 -u "$W/sealed.pub" -r "$W/sealed.pub.priv" -c "$W/sealed.ctx" \
	>/dev/null
if host tpm2_unseal -c "$W/sealed.ctx" >/dev/null 2>&1; then
	fail "the sealed object unsealed with its (empty) authValue"
fi
note "an object sealed with adminWithPolicy (the old template) is refused, not half-certified"
mkdir "$T/old"
head -c 32 /dev/zero >"$T/old/policy"
head -c 32 /dev/urandom >"$T/old/secret"
host tpm2_create -C 0x81000001 -i "$T/old/secret" -L "$T/old/policy" \
	-a 'fixedtpm|fixedparent|adminwithpolicy|noda' -u "$T/old/o.pub" -r "$T/old/o.priv" \
	>/dev/null || fail "tpm2_create"
cat "$T/old/o.pub" "$T/old/o.priv" >"$T/old/sealed.bin"
expect_exit 1 "certify an adminWithPolicy object" "$CHECK" host "$HOST_TCTI" "$T/old" \
	certify-sealed "$qd"
assert_contains "$(cat "$T/out")" "seal its key again" "refusal message"

note "quote of the host PCRs by the CK"
host tpm2_pcrextend "16:sha256=$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')"
nonce=$(head -c 20 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
out=$("$CHECK" host "$HOST_TCTI" "$W" quote "$nonce")
concat=""
for i in ${PCRS//,/ }; do
	v=$(sed -n "s/^pcr $i //p" <<<"$out")
	assert_eq "$v" "$(TPM2TOOLS_TCTI=$HOST_TCTI pcr_value "$i")" "PCR $i value returned"
	concat=$concat$v
done
# The values returned, as tpm2_pcrread -o writes them, check the quote.
# shellcheck disable=SC2059,SC2001
printf "$(sed 's/../\\x&/g' <<<"$concat")" >"$W/pcrs.bin"
tpm2_checkquote -u "$W/ck.pub" -m "$W/quote.attest" -s "$W/quote.sig" -g sha256 -q "$nonce" \
	-F values -l "sha256:$PCRS" -f "$W/pcrs.bin" >"$T/cq" 2>&1 ||
	fail "tpm2_checkquote of the quote with the PCR values returned: $(cat "$T/cq")"
host tpm2_pcrread "sha256:$PCRS" -o "$W/pcrs.tpm" >/dev/null
cmp -s "$W/pcrs.bin" "$W/pcrs.tpm" || fail "PCR values returned differ from tpm2_pcrread's"
# Another nonce: the last byte changed, whatever it was (00 <-> ff).
other=${nonce%??}00
[ "$other" != "$nonce" ] || other=${nonce%??}ff
if tpm2_checkquote -u "$W/ck.pub" -m "$W/quote.attest" -s "$W/quote.sig" -g sha256 \
	-q "$other" >/dev/null 2>&1; then
	fail "tpm2_checkquote accepted another nonce"
fi
head -c 32 /dev/zero >>"$W/pcrs.bin"
if tpm2_checkquote -u "$W/ck.pub" -m "$W/quote.attest" -s "$W/quote.sig" -g sha256 \
	-q "$nonce" -F values -l "sha256:$PCRS,23" -f "$W/pcrs.bin" >/dev/null 2>&1; then
	fail "tpm2_checkquote accepted other PCR values"
fi
assert_contains "$(tpm2_print -t TPMS_ATTEST "$W/quote.attest")" \
	"$(sha256_of_hex "$concat")" "the quote's PCR digest is that of the values returned"

note "a foreign key at the CK's handle is refused and left in place"
HOST1=$HOST_TCTI
start_host_tpm "$T/host2"
host tpm2_createprimary -C o -G ecc -c "$T/other.ctx" >/dev/null
host tpm2_evictcontrol -C o -c "$T/other.ctx" 0x81000002 >/dev/null
host tpm2_readpublic -c 0x81000002 -o "$T/other.pub" >/dev/null
mkdir "$T/w2"
expect_exit 1 "a foreign key at 0x81000002" "$CHECK" host "$HOST_TCTI" "$T/w2" ck
assert_contains "$(cat "$T/out")" "not the one vtpmd expects" "refusal message"
host tpm2_readpublic -c 0x81000002 -o "$T/other2.pub" >/dev/null
cmp -s "$T/other.pub" "$T/other2.pub" || fail "the foreign key was replaced"
HOST_TCTI=$HOST1

note "host-TPM commands per operation (first call in a connection, then the next)"
out=$("$CHECK" host "$HOST_TCTI" "$W" counts)
sed -n 's/^count /    /p' <<<"$out"
count() {
	sed -n "s/^count $1 //p" <<<"$out" | cut -d' ' -f"$2"
}
[ "$(count ck 2)" -eq 0 ] || fail "a known CK costs $(count ck 2) commands"
# Every use of the CK adds its policy session: StartAuthSession (salted),
# PolicyPCR, PolicyAuthorize (the approval's ticket is got once).
[ "$(count bk 2)" -le 4 ] || fail "certifying a known BK costs $(count bk 2) commands"
[ "$(count certify-sealed 2)" -le 6 ] || fail "certify-sealed: $(count certify-sealed 2)"
[ "$(count quote 2)" -le 5 ] || fail "quote: $(count quote 2) commands"
[ "$(count ek-ecc 2)" -le 1 ] || fail "a known ECC EK without certificate: $(count ek-ecc 2)"
# The first activation in a connection starts ESYS's salted session (kept
# for the connection; hwtpm_esys_session), which a connection no longer
# starts by itself.
[ "$(count activate-rsa 1)" -le 4 ] || fail "activation: $(count activate-rsa 1) commands"

note "nothing left loaded in the host TPM"
assert_eq "$(TPM2TOOLS_TCTI=$HOST_TCTI tpm2_getcap handles-transient)" "" "transient handles"
assert_eq "$(TPM2TOOLS_TCTI=$HOST_TCTI tpm2_getcap handles-loaded-session)" "" "sessions"
stop_pid "$VTPM_PID"
echo "ok"
