#!/bin/bash
# What vtpmd accepts from a CA (issue #11, "vtpmd checks every certificate
# before it keeps or writes it"; src/manager/cacheck.c). A CA impostor on
# the plain-HTTP link (tests/tools/impostorca) answers in the CA's place:
#  (c) at enrolment, with another host's genuine CK certificate (the right
#      Privacy CA, another key): refused, no enrolment kept;
#  (a) at create, with another vTPM's genuine EK certificate (the right
#      Virtualization CA, another key);
#  (b) at create, with an EK certificate for the right key by another CA
#      (a second vtpm-ca's Virtualization CA, another root);
#  (d) at create, with an EK certificate for the right key by the right CA
#      that lacks part of the TCG EK profile (subjectAltName, extKeyUsage,
#      tpmSpecification) or the vtpmd virtual marker;
# each refused with HTTP 502 naming the CA and the reason, the instance
# deleted and nothing written to its NV (vtpmd logs every NV write; the
# unit test test_cacheck checks the vTPM is never written). The controls:
# the same impostor issuing with the right CA's key and nothing missing is
# accepted (the refusals are for what they say), and so is a genuine
# answer. Also: roots in the configuration (vtpmd -n names a bad one by
# FILE:LINE), and a request may not bring other roots.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot).
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
IMPOSTOR=$TOP/build/impostorca
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createek tpm2_nvdefine tpm2_nvwrite tpm2_print
for t in "$CA" "$IMPOSTOR" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done
W=$T/w
mkdir -p "$W"

# impostor_start NAME ARGS...: impostorca ARGS in the background, its
# requests in $T/NAME.out; waits for its port. Sets IMP_URL.
impostor_start() {
	local name=$1 deadline=$((SECONDS + 30)) port="" pid
	shift
	: >"$T/$name.out"
	"$IMPOSTOR" "$@" >>"$T/$name.out" 2>&1 &
	pid=$!
	TEST_PIDS+=("$pid")
	until port=$(head -n 1 "$T/$name.out") && [[ "$port" =~ ^[0-9]+$ ]]; do
		kill -0 "$pid" 2>/dev/null || fail "impostorca $name: $(cat "$T/$name.out")"
		[ "$SECONDS" -lt "$deadline" ] || fail "impostorca $name printed no port"
	done
	IMP_URL=http://127.0.0.1:$port
}

# enrol_with_virt URL: enrols again with the real Privacy CA, EK
# certificates to come from URL.
enrol_with_virt() {
	"$VTPMCTL" host enroll --ca "$CA_URL" --virtualization-ca "$1" --name rack1 >"$T/out" 2>&1 ||
		fail "host enroll (Virtualization CA $1): $(cat "$T/out")"
}

# refused_create NAME WHAT NEEDLE...: `vtpmctl create NAME` fails with HTTP
# 502 naming the impostor (IMP_URL) and each NEEDLE; nothing of NAME is
# left, and vtpmd wrote nothing into its NV.
refused_create() {
	local name=$1 what=$2 n
	shift 2
	expect_exit 1 "$what" "$VTPMCTL" create "$name"
	note "$what: $(head -n 1 "$T/out")"
	assert_contains "$(cat "$T/out")" "Virtualization CA at $IMP_URL" "$what: names the CA"
	assert_contains "$(cat "$T/out")" "HTTP 502" "$what: status"
	for n in "$@"; do
		assert_contains "$(cat "$T/out")" "$n" "$what: the reason"
	done
	"$VTPMCTL" info "$name" >/dev/null 2>&1 && fail "$what: $name is left"
	[ ! -e "$T/svc/state/instances/$name" ] || fail "$what: its directory is left"
	if grep -q "$name: EK .* written to NV" "$T/svc.log"; then
		fail "$what: vtpmd wrote to $name's NV: $(grep "$name: EK" "$T/svc.log")"
	fi
}

note "two simulated host TPMs with their manufacturers' EK certificates"
start_host_tpm "$T/host2"
host_ek_certificate "$T/mfr2"
HOST2_TCTI=$HOST_TCTI
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"

note "vtpm-ca (both roles) trusting both manufacturers; a second vtpm-ca, another root"
mkdir -p "$T/ca" "$T/ca2"
"$CA" init --db "$T/ca/ca.db" --name ca-answers >/dev/null || fail "vtpm-ca init"
for m in mfr mfr2; do
	"$CA" trust add --manufacturer "$T/$m/mfr.pem" --name "$m" --db "$T/ca/ca.db" >/dev/null ||
		fail "trust add $m"
done
start_vtpm_ca ca --db "$T/ca/ca.db" --role both
"$CA" init --db "$T/ca2/ca.db" --name other >/dev/null || fail "vtpm-ca init (other)"

note "vtpmd -n: the CA roots are checked, a bad one named by FILE:LINE"
printf 'privacy-ca-root = %s\nvirtualization-ca-root = %s\n' "$T/ca/ca-root.pem" \
	"$T/ca/ca-root.pem" >"$T/vtpmd.conf"
"$VTPMD" -n --config "$T/vtpmd.conf" >"$T/out" 2>&1 || fail "vtpmd -n: $(cat "$T/out")"
printf 'privacy-ca-root = %s\nvirtualization-ca-root = %s\n' "$T/ca/ca-root.pem" \
	"$T/ca/ca-virtualization.pem" >"$T/bad.conf"
expect_exit 2 "vtpmd -n with an issuing CA as a root" "$VTPMD" -n --config "$T/bad.conf"
assert_contains "$(cat "$T/out")" "$T/bad.conf:2: virtualization-ca-root:" "FILE:LINE"
assert_contains "$(cat "$T/out")" "not self-signed" "the reason"
printf 'privacy-ca-root = %s\n' "$T/nothing.pem" >"$T/bad.conf"
expect_exit 2 "vtpmd -n with a root file missing" "$VTPMD" -n --config "$T/bad.conf"
assert_contains "$(cat "$T/out")" "$T/bad.conf:1: privacy-ca-root: cannot read" "missing file"

note "another host (rack2) enrolled with the real Privacy CA: its genuine CK certificate"
start_vtpmd other --config "$T/vtpmd.conf" --root-tcti "$HOST2_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve (rack2)"
admit_host "$T/ca/ca.db" rack2
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack2 >"$T/out" 2>&1 ||
	fail "host enroll rack2: $(cat "$T/out")"
"$VTPMCTL" host --json | jq -j .enrolment.ck.certificate >"$W/rack2-ck.pem"
jq -Rs '[splits("(?<=-----END CERTIFICATE-----\n)") | select(length > 0)] |
	{certificate: .[0], chain: .[1:], serial: "01"}' "$W/rack2-ck.pem" >"$W/rack2-ck.json"
[ "$(jq '.chain | length' "$W/rack2-ck.json")" -eq 2 ] || fail "rack2's CK chain: $(cat "$W/rack2-ck.json")"
stop_pid "$VTPMD_PID"

note "vtpmd on this host (rack1), the CA roots configured; the CA knows its approval key"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
admit_host "$T/ca/ca.db" rack1
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "approval public key"
"$CA" trust add --approval-key "$W/approval.pub.pem" --db "$T/ca/ca.db" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json | jq -c .current.values >"$W/values.json"
"$CA" approve-host-config --db "$T/ca/ca.db" --id rack1-approved \
	--pcrs "$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')" \
	--values "$W/values.json" >/dev/null || fail "approve-host-config"

note "a request may not bring roots when the configuration names them"
expect_exit 1 "enrol with --ca-root over the configured one" "$VTPMCTL" host enroll \
	--ca "$CA_URL" --ca-root "$T/ca2/ca-root.pem" --name rack1
assert_contains "$(cat "$T/out")" "privacy-ca-root = $T/ca/ca-root.pem" "names the configured root"
assert_contains "$(cat "$T/out")" "HTTP 400" "status"

note "(c) enrolment: the impostor relays the challenge, answers with rack2's CK certificate"
impostor_start imp-ck --upstream "$CA_URL" --answer "/v1/privacy/certify=$W/rack2-ck.json"
expect_exit 1 "another host's CK certificate" "$VTPMCTL" host enroll --ca "$IMP_URL" --name rack1
note "(c): $(head -n 1 "$T/out")"
assert_contains "$(cat "$T/out")" "Privacy CA at $IMP_URL: CK certificate refused" "names the CA"
assert_contains "$(cat "$T/out")" "certifies another key" "the reason"
assert_contains "$(cat "$T/out")" "HTTP 502" "status"
grep -q '^request 2 POST /v1/privacy/certify answered$' "$T/imp-ck.out" ||
	fail "the impostor did not answer the certify request: $(cat "$T/imp-ck.out")"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == false' >/dev/null ||
	fail "the refused CK certificate was kept"
[ ! -e "$T/svc/state/host/ck.pem" ] || fail "the refused enrolment wrote ck.pem"

note "the genuine enrolment, and a vTPM provisioned by the real Virtualization CA (vm-a)"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" host --json >"$W/host.json"
assert_contains "$(jq -r .enrolment.privacy_ca_root "$W/host.json")" "CN=ca-answers" \
	"the root kept with the enrolment"
"$VTPMCTL" create vm-a --json >"$W/vm-a.json" || fail "create vm-a: $(cat "$W/vm-a.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-a.json")" 2 "vm-a's EKs"
grep -q "vm-a: EK ecc-p256 certificate written to NV 0x01c0000a" "$T/svc.log" ||
	fail "vtpmd did not log vm-a's NV writes"
jq '.endorsement.chain as $chain | {eks: [.endorsement.eks[] | {type, certificate,
	chain: $chain, serial: "01", host_config: "rack1-approved"}], host_config: "rack1-approved"}' \
	"$W/vm-a.json" >"$W/vm-a-ek.json"

note "(a) create: the impostor answers with vm-a's genuine EK certificates"
# The impostors of a create relay its nonce requests to the real CA.
impostor_start imp-ek --upstream "$CA_URL" \
	--answer "/v1/virtualization/ek-certificate=$W/vm-a-ek.json"
enrol_with_virt "$IMP_URL"
refused_create vm-b "another vTPM's EK certificate" "rsa2048 EK certificate refused" \
	"certifies another key" "not this vTPM's rsa2048 EK"

note "(b) create: an EK certificate for the right key, by another CA (another root)"
cat "$T/ca2/ca-virtualization.pem" "$T/ca2/ca-root.pem" >"$W/ca2-chain.pem"
impostor_start imp-root --upstream "$CA_URL" --issue /v1/virtualization/ek-certificate \
	--ca-key "$T/ca2/ca-virtualization.key" --ca-cert "$T/ca2/ca-virtualization.pem" \
	--ca-chain "$W/ca2-chain.pem"
enrol_with_virt "$IMP_URL"
refused_create vm-c "another CA's EK certificate" "does not chain to the Virtualization CA root" \
	"CN=ca-answers"

note "control: the same impostor with the real Virtualization CA's key is accepted"
cat "$T/ca/ca-virtualization.pem" "$T/ca/ca-root.pem" >"$W/ca-chain.pem"
impostor_start imp-real --upstream "$CA_URL" --issue /v1/virtualization/ek-certificate \
	--ca-key "$T/ca/ca-virtualization.key" --ca-cert "$T/ca/ca-virtualization.pem" \
	--ca-chain "$W/ca-chain.pem"
enrol_with_virt "$IMP_URL"
"$VTPMCTL" create vm-ok --json >"$W/vm-ok.json" || fail "create vm-ok: $(cat "$W/vm-ok.json")"
assert_eq "$(jq -r '.endorsement.eks[0].host_config' "$W/vm-ok.json")" impostor-config \
	"the impostor's certificate was the one accepted"

note "(d) create: the right key and CA, part of the EK profile or the marker missing"
for drop in san:subjectAltName eku:tcg-kp-EKCertificate spec:tpmSpecification \
	marker:"no vtpmd virtual marker"; do
	part=${drop%%:*}
	impostor_start "imp-$part" --upstream "$CA_URL" --issue /v1/virtualization/ek-certificate \
		--ca-key "$T/ca/ca-virtualization.key" --ca-cert "$T/ca/ca-virtualization.pem" \
		--ca-chain "$W/ca-chain.pem" --drop "$part"
	enrol_with_virt "$IMP_URL"
	refused_create "vm-$part" "an EK certificate without its $part" "${drop#*:}"
done

note "afterwards: vtpmd serves, only the accepted instances exist"
assert_eq "$("$VTPMCTL" list --json | jq -r '[.instances[].name] | sort | join(" ")')" \
	"vm-a vm-ok" "instances"
stop_pid "$VTPMD_PID"
echo "ok"
