#!/bin/bash
# `make demo` itself (scripts/demo.sh), then its evidence directory checked
# as a legacy challenger would, with openssl and tpm2-tools alone: every
# certificate chains to the CA root, each quote verifies with its AK, and a
# tampered quote or a wrong nonce is refused.
source "$(dirname "$0")/../lib.sh"
[ "$(id -u)" -eq 0 ] || fail "the demo needs root"
require_tools openssl tpm2_checkquote
E=$T/evidence
DEMO_EVIDENCE=$E bash "$TOP/scripts/demo.sh" >"$T/demo.out" 2>&1 ||
	fail "make demo failed: $(tail -30 "$T/demo.out")"
out=$(cat "$T/demo.out")
assert_contains "$out" "trusted: virtual TPM on host demo-rack1" "vTPM-aware verdict"
assert_contains "$out" "refused: policy: virtual TPMs are refused" "reject-virtual verdict"
assert_contains "$out" "not revoked: AK, vEK and CK certificates (vtpm-ca at" "revocation (--ca)"
assert_contains "$out" "not revoked: AK, vEK and CK certificates (2 CRLs)" "revocation (--crl)"
assert_contains "$out" "the guest read its ECC EK certificate from NV 0x01c0000a" "guest EK cert"
secs=$(sed -n 's/^== Done in \([0-9]*\) s.*/\1/p' "$T/demo.out")
[ -n "$secs" ] && [ "$secs" -lt 60 ] || fail "the demo took ${secs:-?} s, not well under a minute"
note "demo done in $secs s; checking $E with openssl and tpm2_checkquote"
cd "$E" || fail "no evidence directory"
for f in README ca-root.pem ca-privacy.pem ca-virtualization.pem manufacturer-root.pem host-ek.pem \
	host-ck.pem vm-a/ek-rsa2048.pem vm-a/ek-ecc-p256.pem vm-b/ek-ecc-p256.pem \
	ca-privacy.crl ca-virtualization.crl ca-root.crl ca-privacy-and-root.crl; do
	[ -s "$f" ] || fail "evidence lacks $f"
done
openssl verify -CAfile ca-root.pem -untrusted ca-privacy.pem host-ck.pem vm-a/ak.pem vm-b/ak.pem \
	>/dev/null || fail "openssl verify: CK and AK certificates"
openssl verify -crl_check_all -CAfile ca-root.pem -untrusted ca-privacy.pem \
	-CRLfile ca-privacy-and-root.crl vm-a/ak.pem vm-b/ak.pem >/dev/null ||
	fail "openssl verify -crl_check_all: AK certificates"
openssl verify -CAfile ca-root.pem -untrusted ca-virtualization.pem vm-*/ek-*.pem >/dev/null ||
	fail "openssl verify: EK certificates"
openssl verify -CAfile manufacturer-root.pem host-ek.pem >/dev/null || fail "openssl verify: host EK"
for vm in vm-a vm-b; do
	for f in ak.pem ak.pub.pem quote.msg quote.sig quote.pcrs nonce; do
		[ -s "$vm/$f" ] || fail "evidence lacks $vm/$f"
	done
	tpm2_checkquote -u "$vm/ak.pub.pem" -m "$vm/quote.msg" -s "$vm/quote.sig" -f "$vm/quote.pcrs" \
		-g sha256 -q "$(cat "$vm/nonce")" >/dev/null || fail "tpm2_checkquote $vm"
	rc=0
	tpm2_checkquote -u "$vm/ak.pub.pem" -m "$vm/quote.msg" -s "$vm/quote.sig" \
		-f "$vm/quote.pcrs" -g sha256 -q "00$(cat "$vm/nonce")" >/dev/null 2>&1 || rc=$?
	[ "$rc" -ne 0 ] || fail "tpm2_checkquote accepted a wrong nonce ($vm)"
	cp "$vm/quote.msg" "$T/tampered.msg"
	flip_byte "$T/tampered.msg" 40
	rc=0
	tpm2_checkquote -u "$vm/ak.pub.pem" -m "$T/tampered.msg" -s "$vm/quote.sig" \
		-f "$vm/quote.pcrs" -g sha256 -q "$(cat "$vm/nonce")" >/dev/null 2>&1 || rc=$?
	[ "$rc" -ne 0 ] || fail "tpm2_checkquote accepted a tampered quote ($vm)"
done
