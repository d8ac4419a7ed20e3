#!/bin/bash
# make demo: the main job on an embedded default. A simulated host TPM
# (swtpm, with a simulated manufacturer's EK certificate: it protects
# nothing), vtpm-ca as the Privacy CA and the Virtualization CA over HTTPS
# (TLS 1.3, its certificate under a TLS root of its own), the vtpmd
# service rooted in the host TPM and enrolled with the CA, two vTPMs with
# EK certificates, a QEMU guest booting on one of them, an AK enrolled
# against each vTPM, quotes, and both verdicts: vTPM-aware (vtpm-attest)
# and legacy (openssl verify, tpm2_checkquote). Everything runs in a
# temporary directory and is stopped at the end, except the evidence
# directory it names (DEMO_EVIDENCE, default a new /tmp/vtpmd-evidence.*).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
VTPMD=$TOP/build/vtpmd
export VTPM_CA=$TOP/build/vtpm-ca
ATTEST=$TOP/build/vtpm-attest
source "$TOP/tests/lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"
source "$TOP/tests/hosttpm.sh"

say() { printf '\n== %s\n' "$*"; }
step() { printf '$ %s\n' "$*"; "$@"; }
step_quiet() { printf '$ %s\n' "$*"; "$@" >"$T/checkquote.out"; }
[ "$(id -u)" -eq 0 ] || fail "make demo needs root (vtpmd sandboxes its workers); try: sudo make demo"
EVIDENCE=${DEMO_EVIDENCE:-$(mktemp -d /tmp/vtpmd-evidence.XXXXXX)}
mkdir -p "$EVIDENCE"
DEMO_START=$SECONDS

# cert_line FILE: a certificate's subject (or, for the empty subject of
# the TCG profile, its subjectAltName) and issuer.
cert_line() {
	local subject
	subject=$(openssl x509 -in "$1" -noout -subject -nameopt oneline | sed 's/^subject=//')
	if [ -z "${subject// /}" ]; then
		subject="(empty subject) TPM: $(openssl x509 -in "$1" -noout -ext subjectAltName |
			sed -n 's/^ *DirName://p')"
	fi
	printf '%s\n      issued by %s\n' "$subject" \
		"$(openssl x509 -in "$1" -noout -issuer -nameopt oneline | sed 's/^issuer=//')"
}

say "Preparing the guest (Debian cloud kernel + busybox initramfs, cached)"
guest_prepare

say "A simulated host TPM (swtpm) with its manufacturer's EK certificate in NV 0x01c00002"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
cp "$T/mfr/mfr.pem" "$EVIDENCE/manufacturer-root.pem"
openssl x509 -inform DER -in "$T/mfr/ek-cert.der" -out "$EVIDENCE/host-ek.pem"
cert_line "$EVIDENCE/host-ek.pem" | sed 's/^/  host EK: /'

say "vtpm-ca: a root, the Privacy CA and the Virtualization CA; it trusts the manufacturer;"
say "a lab TLS certificate for 127.0.0.1 (production brings its own), under a TLS root whose key"
say "init never keeps"
DB=$T/ca/ca.db
mkdir -p "$T/ca"
step "$VTPM_CA" init --db "$DB" --name demo --tls-name 127.0.0.1
step "$VTPM_CA" trust add --manufacturer "$EVIDENCE/manufacturer-root.pem" --db "$DB"
cp "$T/ca/ca-tls-root.pem" "$EVIDENCE/tls-root.pem"
# The URL where challengers find its CRLs, named in every certificate it
# issues (cRLDistributionPoints); a name here, the demo hands CRLs over.
CRL_BASE=http://vtpm-ca.demo.example
start_vtpm_ca ca --db "$DB" --role both --crl-url "$CRL_BASE" --tls-cert "$T/ca/ca-tls.pem" \
	--tls-key "$T/ca/ca-tls.key"
echo "  serving both roles on $CA_URL (TLS 1.3 only; the TLS key lives in the sandboxed"
echo "  network child, the CA keys in the parent); certificates name CRLs under $CRL_BASE"
cp "$T/ca/ca-root.pem" "$EVIDENCE/ca-root.pem"
cp "$T/ca/ca-privacy.pem" "$EVIDENCE/ca-privacy.pem"
cp "$T/ca/ca-virtualization.pem" "$EVIDENCE/ca-virtualization.pem"

say "The administrator's approval key, kept off the host: vtpmd gets only its public half"
mkdir -p "$T/admin"
step openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/admin/approval.pem"
step openssl pkey -in "$T/admin/approval.pem" -pubout -out "$T/approval.pub.pem"
say "vtpmd's configuration: the approval key's public half, the CA root and the TLS root"
echo "  vtpmd keeps a CK certificate, and writes an EK certificate into a vTPM, only when it"
echo "  chains to this root, certifies the key vtpmd sent and is what vtpm-ca issues for it;"
echo "  it talks to the CA only once its TLS certificate chains to the TLS root"
printf '%s\n' "approval-public-key = $T/approval.pub.pem" \
	"privacy-ca-root = $T/ca/ca-root.pem" "virtualization-ca-root = $T/ca/ca-root.pem" \
	"ca-tls-root = $EVIDENCE/tls-root.pem" >"$T/vtpmd.conf"
sed 's/^/  vtpmd.conf: /' "$T/vtpmd.conf"
step "$VTPMD" -n --config "$T/vtpmd.conf"

say "vtpmd rooted in the host TPM; the administrator approves the present host configuration"
start_vtpmd vtpmd --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
grep -E 'simulator|SRK|serving' "$T/vtpmd.log" | sed 's/^/  log: /'
step "$VTPMCTL" policy approve --current --key "$T/admin/approval.pem" >/dev/null
echo "  ...and tells the Virtualization CA: the approval key and the approved PCR values"
step "$VTPM_CA" trust add --approval-key "$T/approval.pub.pem" --name demo-admin --db "$DB"
"$VTPMCTL" policy --json | jq -c .current.values >"$T/values.json"
step "$VTPM_CA" approve-host-config --db "$DB" --id demo-rack1-baseline \
	--pcrs "$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')" \
	--values "$T/values.json"

say "The CA's operator admits the host: its EK certificate (exported through vtpmd)"
echo "  ...and the administrator's approval public key, which the host's CK policy must name"
step "$VTPMCTL" host ek-cert --out "$T/demo-rack1-ek.pem"
step "$VTPM_CA" host add demo-rack1 --ek-cert "$T/demo-rack1-ek.pem" \
	--approval-key "$T/approval.pub.pem" --db "$DB"

say "The host enrols: CK certificate from the Privacy CA (MakeCredential/ActivateCredential), BK certified by the CK"
step "$VTPMCTL" host enroll --ca "$CA_URL" --name demo-rack1
echo "  ...its CK and BK work only in an approved configuration (the state keys' policy, no userWithAuth):"
TPM2TOOLS_TCTI=$HOST_TCTI tpm2_readpublic -c 0x81000002 -o "$T/ck.pub" >/dev/null
tpm2_print -t TPM2B_PUBLIC "$T/ck.pub" |
	sed -n -e '/^attributes:/{n;s/^  value: /    CK attributes: /p}' \
		-e 's/^authorization policy: /    CK authPolicy:  /p'
"$VTPMCTL" host --json | jq -j .enrolment.ck.certificate | openssl x509 -out "$EVIDENCE/host-ck.pem"

say "Two vTPMs: state keys sealed to the host TPM, EKs certified by the Virtualization CA into NV"
step "$VTPMCTL" create vm-a
step "$VTPMCTL" create vm-b --ek ecc-p256
for vm in vm-a vm-b; do
	mkdir -p "$EVIDENCE/$vm"
	"$VTPMCTL" info "$vm" --json >"$T/$vm.json"
	for type in rsa2048 ecc-p256; do
		jq -j ".endorsement.eks[] | select(.type == \"$type\") | .certificate" "$T/$vm.json" \
			>"$EVIDENCE/$vm/ek-$type.pem"
		[ -s "$EVIDENCE/$vm/ek-$type.pem" ] || rm -f "$EVIDENCE/$vm/ek-$type.pem"
	done
done

say "VM vm-a boots in QEMU on its vTPM (tpm-crb): PCRs, and its EK certificate where hardware keeps it"
socket=$(jfield "$(cat "$T/vm-a.json")" .socket)
digest=$(rand_hex 32)
vm_start vm-a "$socket" tpm-crb "vtpm_test=pcr,extend,pcr,ekcert vtpm_digest=$digest"
vm_wait_exit
vm_check_ok
echo "  the guest saw (its console, $VM_MS ms from QEMU start to power-off):"
tr -d '\r' <"$T/vm-a.console" | grep -E '^VTPM-' | sed 's/^/    /'
[ "$(vm_result pcr16)" = "$(pcr_extend "$ZERO_PCR" "$digest")" ] ||
	fail "PCR 16 in the guest is not sha256(0…0 || digest)"
[ "$(vm_result ekcert-sha256)" = "$(openssl x509 -in "$EVIDENCE/vm-a/ek-ecc-p256.pem" \
	-outform DER | sha256sum | cut -c1-64)" ] || fail "the guest read another EK certificate"
echo "  the guest read its ECC EK certificate from NV 0x01c0000a: the one the CA issued"

say "Each vTPM: an AK made with tpm2-tools, enrolled with the Privacy CA; a quote with a fresh nonce"
for vm in vm-a vm-b; do
	d=$EVIDENCE/$vm
	tcti=$(jfield "$(cat "$T/$vm.json")" .tcti)
	export TPM2TOOLS_TCTI=$tcti
	flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$T/$vm-ak.ctx" \
		-u "$T/$vm-ak.pub" >/dev/null
	flushed tpm2_evictcontrol -c "$T/$vm-ak.ctx" 0x81000010 >/dev/null
	step "$ATTEST" enroll --ca "$CA_URL" --ca-tls-root "$EVIDENCE/tls-root.pem" --tcti "$tcti" \
		--ak-handle 0x81000010 --out "$d/ak.pem"
	openssl x509 -in "$d/ak.pem" -noout -pubkey >"$d/ak.pub.pem"
	# A measurement of the workload into PCR 16, which the challenger expects.
	rand_hex 32 >"$d/measurement"
	flushed tpm2_pcrextend "16:sha256=$(cat "$d/measurement")"
	echo "sha256:16=$(pcr_extend "$ZERO_PCR" "$(cat "$d/measurement")")" >"$d/expected-pcrs"
	openssl rand -hex 20 >"$d/nonce"
	flushed tpm2_quote -c 0x81000010 -l sha256:0,1,2,3,4,5,6,7,16 -q "$(cat "$d/nonce")" \
		-m "$d/quote.msg" -s "$d/quote.sig" -o "$d/quote.pcrs" -g sha256 >/dev/null
	echo "  $vm: PCR 16 extended with a measurement; quote of sha256 PCRs 0-7,16 in" \
		"$d/quote.{msg,sig,pcrs}; the value expected in $d/expected-pcrs"
	unset TPM2TOOLS_TCTI
done

say "The chain (all certificates in $EVIDENCE)"
echo "  root -> Privacy CA -> CK (the host TPM's Certifying Key):"
cert_line "$EVIDENCE/host-ck.pem" | sed 's/^/    /'
echo "  root -> Virtualization CA -> vEK (vm-a's EK, in its NV):"
cert_line "$EVIDENCE/vm-a/ek-ecc-p256.pem" | sed 's/^/    /'
echo "    and, in the vtpmd extension (OID 2.25.179198627876174750707956299711527616042.1):"
echo "    virtual, the host's CK, the approved host configuration, the instance UUID"
echo "  root -> Privacy CA -> vAK (vm-a's attestation key):"
cert_line "$EVIDENCE/vm-a/ak.pem" | sed 's/^/    /'

say "The CAs' CRLs (GET /v1/ROLE/crl; vtpm-ca crl for the root's)"
for role in privacy virtualization; do
	curl -sf --cacert "$EVIDENCE/tls-root.pem" -o "$T/$role.crl.der" "$CA_URL/v1/$role/crl" ||
		fail "GET /v1/$role/crl"
	step openssl crl -inform DER -in "$T/$role.crl.der" -out "$EVIDENCE/ca-$role.crl"
done
step "$VTPM_CA" crl --role root --db "$DB" --out "$EVIDENCE/ca-root.crl"
cat "$EVIDENCE/ca-privacy.crl" "$EVIDENCE/ca-root.crl" >"$EVIDENCE/ca-privacy-and-root.crl"

say "Verdict of a vTPM-aware challenger (vtpm-attest verify): the AK's whole chain not revoked"
echo "  vm-a asking the CA (--ca), vm-b in the CRLs (--crl, read and checked once)"
for vm in vm-a vm-b; do
	d=$EVIDENCE/$vm
	if [ "$vm" == vm-a ]; then
		revocation=(--ca "$CA_URL" --ca-tls-root "$EVIDENCE/tls-root.pem")
	else
		revocation=(--crl "$EVIDENCE/ca-privacy.crl" --crl "$EVIDENCE/ca-virtualization.crl")
	fi
	step "$ATTEST" verify --ak-cert "$d/ak.pem" --message "$d/quote.msg" \
		--signature "$d/quote.sig" --pcr-file "$d/quote.pcrs" --nonce "$(cat "$d/nonce")" \
		--trust "$EVIDENCE/ca-root.pem" --untrusted "$EVIDENCE/ca-privacy.pem" \
		--untrusted "$EVIDENCE/ca-virtualization.pem" "${revocation[@]}" \
		--pcrs "$(cat "$d/expected-pcrs")" \
		--policy require-host-config demo-rack1-baseline --state "$T/attest-state"
done
echo "  the same quote under --policy reject-virtual:"
"$ATTEST" verify --ak-cert "$EVIDENCE/vm-a/ak.pem" --message "$EVIDENCE/vm-a/quote.msg" \
	--signature "$EVIDENCE/vm-a/quote.sig" --pcr-file "$EVIDENCE/vm-a/quote.pcrs" \
	--nonce "$(cat "$EVIDENCE/vm-a/nonce")" --trust "$EVIDENCE/ca-root.pem" \
	--untrusted "$EVIDENCE/ca-privacy.pem" --policy reject-virtual --state "$T/attest-state2" \
	2>&1 | sed 's/^/    /' && fail "reject-virtual accepted a vTPM"

say "Verdict of a legacy challenger that knows nothing of virtualisation (openssl, tpm2_checkquote)"
for vm in vm-a vm-b; do
	d=$EVIDENCE/$vm
	step openssl verify -crl_check_all -CAfile "$EVIDENCE/ca-root.pem" \
		-untrusted "$EVIDENCE/ca-privacy.pem" -CRLfile "$EVIDENCE/ca-privacy-and-root.crl" \
		"$d/ak.pem"
	step_quiet tpm2_checkquote -u "$d/ak.pub.pem" -m "$d/quote.msg" -s "$d/quote.sig" \
		-f "$d/quote.pcrs" -g sha256 -q "$(cat "$d/nonce")"
	echo "  tpm2_checkquote: signature, nonce and PCR digest verified" \
		"($(grep -c ': 0x' "$T/checkquote.out") PCR values)"
done
step openssl verify -CAfile "$EVIDENCE/ca-root.pem" -untrusted "$EVIDENCE/ca-virtualization.pem" \
	"$EVIDENCE/vm-a/ek-rsa2048.pem" "$EVIDENCE/vm-a/ek-ecc-p256.pem" "$EVIDENCE/vm-b/ek-ecc-p256.pem"
step openssl verify -CAfile "$EVIDENCE/ca-root.pem" -untrusted "$EVIDENCE/ca-privacy.pem" \
	"$EVIDENCE/host-ck.pem"

cat >"$EVIDENCE/README" <<EOF
Evidence left by 'make demo' (vtpmd). Check it with standard tools alone:

  openssl verify -CAfile ca-root.pem -untrusted ca-privacy.pem host-ck.pem vm-a/ak.pem vm-b/ak.pem
  openssl verify -crl_check_all -CAfile ca-root.pem -untrusted ca-privacy.pem \
      -CRLfile ca-privacy-and-root.crl vm-a/ak.pem vm-b/ak.pem
  openssl verify -CAfile ca-root.pem -untrusted ca-virtualization.pem vm-*/ek-*.pem
  openssl verify -CAfile manufacturer-root.pem host-ek.pem
  tpm2_checkquote -u vm-a/ak.pub.pem -m vm-a/quote.msg -s vm-a/quote.sig \\
      -f vm-a/quote.pcrs -g sha256 -q \$(cat vm-a/nonce)

ca-root.pem              the CAs' root; ca-privacy.pem and ca-virtualization.pem under it
ca-ROLE.crl              the CAs' CRLs (privacy, virtualization, root), as signed then;
                         ca-privacy-and-root.crl both that openssl -crl_check_all needs
tls-root.pem             the TLS root vtpm-ca's HTTPS certificate chains to (ca-tls-root)
manufacturer-root.pem    the simulated TPM manufacturer; host-ek.pem its certificate of the host EK
host-ck.pem              the host TPM's Certifying Key (Privacy CA)
VM/ek-TYPE.pem           the vTPM's EK certificates (Virtualization CA, marked virtual)
VM/ak.pem, ak.pub.pem    the vTPM's attestation key (Privacy CA) and its public key
VM/quote.msg, .sig       TPMS_ATTEST and TPMT_SIGNATURE of tpm2_quote
VM/quote.pcrs, nonce     the PCR values (tpm2_quote -o) and the nonce (hex)
VM/measurement           what was extended into PCR 16 before the quote
VM/expected-pcrs         the PCR 16 value a challenger expects (vtpm-attest verify --pcrs)
EOF
say "Done in $((SECONDS - DEMO_START)) s. Evidence: $EVIDENCE (see its README)"
echo "vtpmd, its workers, vtpm-ca, the host TPM and the VM are stopped."
