#!/bin/bash
# vtpm-ca's certificates (src/tpm/certs.c, written by tests/tools/certs-demo)
# checked with the openssl command, as a challenger that knows nothing of
# vtpmd would check them: every chain verifies (also under -x509_strict) and
# the wrong ones do not; the TCG EK Credential Profile fields are where the
# profile puts them, down to the DER of the subjectAltName's directoryName;
# and the vtpmd extension holds what the CA was asked to put there.
source "$(dirname "$0")/../lib.sh"
DEMO=$TOP/build/certs-demo
OID_VTPMD=2.25.179198627876174750707956299711527616042

[ -x "$DEMO" ] || fail "$DEMO is missing (make all)"
command -v openssl >/dev/null || fail "the openssl command is missing"

# value KEY: what certs-demo printed for KEY.
value() {
	sed -n "s/^$1=//p" "$T/demo.out"
}

# ext_offset FILE NAME: the offset of the OCTET STRING holding the value of
# FILE's extension NAME (as asn1parse names it), for -strparse.
ext_offset() {
	openssl asn1parse -in "$1" | awk -v name="$2" '
		/ OBJECT / && index($0, ":" name) == length($0) - length(name) { found = 1; next }
		found && / OCTET STRING / { sub(/:.*/, "", $1); print $1; exit }'
}

# ext_dump FILE NAME: asn1parse of that extension's value.
ext_dump() {
	local off
	off=$(ext_offset "$1" "$2")
	[ -n "$off" ] || fail "$1 has no extension $2"
	openssl asn1parse -in "$1" -strparse "$off"
}

# attrs DUMP: "OID=VALUE" for each OBJECT followed by a UTF8STRING.
attrs() {
	awk '/ OBJECT / { sub(/.*OBJECT +:/, ""); oid = $0; next }
		/ UTF8STRING / && oid != "" { sub(/.*UTF8STRING +:/, ""); printf "%s=%s\n", oid, $0; oid = "" }' <<<"$1"
}

# after TEXT HEADER: the line after HEADER in openssl x509 -text output.
after() {
	awk -v h="$2" 'found { sub(/^ +/, ""); print; exit } index($0, h) { found = 1 }' <<<"$1"
}

cd "$T"
note "issue a root, the Privacy and Virtualization CAs, a CK, two vEKs and an AK"
"$DEMO" "$T" >"$T/demo.out" || fail "certs-demo failed"
assert_eq "$(stat -c %a root.key)" 600 "root key file mode"
assert_eq "$(stat -c %a virt.key)" 600 "Virtualization CA key file mode"

note "openssl verify accepts every chain"
for c in ek-rsa ek-ecc; do
	for strict in "" -x509_strict; do
		out=$(openssl verify $strict -CAfile root.pem -untrusted virt.pem "$c.pem" 2>&1) ||
			fail "openssl verify $strict $c: $out"
		assert_eq "$out" "$c.pem: OK" "openssl verify $strict $c"
	done
done
for c in ak ck; do
	out=$(openssl verify -x509_strict -CAfile root.pem -untrusted privacy.pem "$c.pem" 2>&1) ||
		fail "openssl verify $c: $out"
	assert_eq "$out" "$c.pem: OK" "openssl verify $c"
done
out=$(openssl verify -CAfile single.pem ek-single.pem 2>&1) || fail "single CA: $out"
assert_eq "$out" "ek-single.pem: OK" "openssl verify under a self-signed Virtualization CA"

note "and refuses the wrong chains"
# refuse WHY EXPECTED-ERROR ARGS...: openssl verify ARGS must fail so.
refuse() {
	local why=$1 want=$2 out
	shift 2
	if out=$(openssl verify "$@" 2>&1); then
		fail "openssl verify accepted $why: $out"
	fi
	assert_contains "$out" "$want" "$why"
}
refuse "a vEK without its intermediate" "unable to get local issuer certificate" \
	-CAfile root.pem ek-rsa.pem
refuse "a vEK through the Privacy CA" "unable to get local issuer certificate" \
	-CAfile root.pem -untrusted privacy.pem ek-rsa.pem
refuse "a vEK under another root" "unable to get local issuer certificate" \
	-CAfile single.pem -untrusted virt.pem ek-rsa.pem
refuse "a vEK after its CAs expired" "certificate has expired" \
	-attime $(($(date +%s) + 21 * 365 * 24 * 3600)) -CAfile root.pem -untrusted virt.pem ek-rsa.pem
refuse "an AK certificate used as a CA" "unable to get local issuer certificate" \
	-CAfile root.pem -untrusted ak.pem ek-rsa.pem

note "x509 -text shows the TCG fields of the RSA vEK"
text=$(openssl x509 -in ek-rsa.pem -noout -text)
assert_eq "$(openssl x509 -in ek-rsa.pem -noout -subject)" "subject=" "vEK subject (empty)"
assert_contains "$text" "Issuer: O = vtpmd, CN = vtpmd Virtualization CA" "vEK issuer"
assert_contains "$text" "X509v3 Subject Alternative Name: critical" "SAN critical"
assert_eq "$(after "$text" "X509v3 Subject Alternative Name")" \
	"DirName:/2.23.133.2.1=id:49424D00/2.23.133.2.2=vtpmd-vTPM/2.23.133.2.3=id:20191023" \
	"SAN directoryName"
assert_eq "$(after "$text" "X509v3 Extended Key Usage")" "2.23.133.8.1" "EKU tcg-kp-EKCertificate"
assert_contains "$text" "X509v3 Key Usage: critical" "keyUsage critical"
assert_eq "$(after "$text" "X509v3 Key Usage")" "Key Encipherment" "RSA EK keyUsage"
assert_contains "$text" "X509v3 Basic Constraints: critical" "basicConstraints critical"
assert_eq "$(after "$text" "X509v3 Basic Constraints")" "CA:FALSE" "basicConstraints"
assert_contains "$text" "X509v3 Subject Directory Attributes:" "subjectDirectoryAttributes"
assert_contains "$text" "X509v3 Authority Key Identifier:" "AKI"
assert_eq "$(after "$text" "X509v3 Certificate Policies")" "Policy: $OID_VTPMD.3" "vEK policy"
assert_contains "$text" "$OID_VTPMD.1: "$'\n' "vtpmd extension, not critical"
text=$(openssl x509 -in ek-ecc.pem -noout -text)
assert_eq "$(after "$text" "X509v3 Key Usage")" "Key Agreement" "ECC EK keyUsage"
assert_contains "$text" "ASN1 OID: prime256v1" "ECC EK curve"

note "asn1parse: the SAN's directoryName holds the three TCG attributes"
san=$(ext_dump ek-rsa.pem "X509v3 Subject Alternative Name")
assert_contains "$san" "cont [ 4 ]" "SAN is a directoryName"
assert_eq "$(grep -c ' SET ' <<<"$san")" 3 "one RDN per attribute"
assert_eq "$(attrs "$san" | tr '\n' ' ')" \
	"2.23.133.2.1=id:49424D00 2.23.133.2.2=vtpmd-vTPM 2.23.133.2.3=id:20191023 " \
	"tpmManufacturer, tpmModel, tpmVersion as UTF8Strings"
sda=$(ext_dump ek-rsa.pem "X509v3 Subject Directory Attributes")
assert_contains "$sda" ":2.23.133.2.16" "tcg-at-tpmSpecification"
assert_eq "$(awk '/UTF8STRING|INTEGER/ { sub(/.*:/, ""); printf "%s ", $0 }' <<<"$sda")" \
	"2.0 00 A4 " "TPMSpecification family 2.0, level 0, revision 164"

note "asn1parse: the vtpmd extension holds what the CA put there"
vext=$(ext_dump ek-rsa.pem "$OID_VTPMD.1")
assert_eq "$(value virtual)" yes "certs_parse_virtual: virtual"
want_ck=$(value ck_digest | tr a-f A-F)
want_uuid=$(value instance_uuid | tr -d - | tr a-f A-F)
assert_eq "$(awk '/INTEGER|BOOLEAN|UTF8STRING|OCTET STRING/ { sub(/.*:/, ""); printf "%s ", $0 }' \
	<<<"$vext")" "01 255 $want_ck $(value host_config) $want_uuid " \
	"VtpmdVirtualTPM { version, virtual, hostCkDigest, hostConfigId, instanceUuid }"
ck_key=$(openssl x509 -in ck.pem -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -r | cut -d' ' -f1)
assert_eq "$(value ck_digest)" "$ck_key" "hostCkDigest is SHA-256 of the CK's SubjectPublicKeyInfo"
assert_eq "$(value manufacturer) $(value model) $(value version) $(value spec)" \
	"id:49424D00 vtpmd-vTPM id:20191023 2.0 0 164" "certs_ek_info"

note "the AK certificate carries the vEK's TPM attributes and vtpmd extension"
text=$(openssl x509 -in ak.pem -noout -text)
assert_contains "$text" "Subject: CN = vm-a attestation key" "AK subject"
assert_eq "$(after "$text" "X509v3 Extended Key Usage")" "2.23.133.8.3" "EKU tcg-kp-AIKCertificate"
assert_eq "$(after "$text" "X509v3 Key Usage: critical")" "Digital Signature" "AK keyUsage"
assert_contains "$text" "X509v3 Subject Alternative Name: "$'\n' "AK SAN, not critical"
assert_eq "$(ext_dump ak.pem "$OID_VTPMD.1")" "$vext" "vtpmd extension copied unchanged"
assert_eq "$(attrs "$(ext_dump ak.pem "X509v3 Subject Alternative Name")")" "$(attrs "$san")" \
	"AK SAN copied"

note "the CK certificate names its host and policy"
text=$(openssl x509 -in ck.pem -noout -text)
assert_contains "$text" "Subject: CN = host-a.example" "CK subject"
assert_eq "$(after "$text" "X509v3 Certificate Policies")" "Policy: $OID_VTPMD.4" "CK policy"
assert_eq "$(after "$text" "X509v3 Key Usage: critical")" "Digital Signature" "CK keyUsage"
