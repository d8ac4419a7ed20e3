#!/bin/bash
# vtpm-ca over HTTPS (issue #11 item 7; docs/ca-api.md "TLS", docs/config.md
# ca-tls-root): `vtpm-ca serve --tls-cert --tls-key` speaks TLS 1.3 only,
# in its sandboxed network child; vtpmd (ca-tls-root) and vtpm-attest
# (--ca-tls-root, --ca-tls-pin) check the CA's TLS certificate before any
# byte of a request goes out. Shown:
#  - the server: TLS 1.3 is answered and verifies against the TLS root
#    (openssl s_client -tls1_3), TLS 1.2 is refused (-tls1_2); plain HTTP is
#    served on loopback only (vtpm-ca serve --listen 0.0.0.0:P without TLS
#    is refused before it listens);
#  - a CA impostor on the TLS link (tests/tools/impostorca --tls-cert,
#    relaying to the real CA) whose certificate is self-signed, names
#    another host, or comes from another root: vtpmd refuses it at
#    enrolment and at a vEK certificate request, naming the CA and the TLS
#    verification, the impostor never gets a request, no enrolment is kept,
#    no instance is left, nothing is written to a vTPM's NV; vtpm-attest
#    enroll refuses it likewise (root or pin); the same impostor holding
#    the CA's genuine TLS key is accepted (the refusals are the
#    certificate's);
#  - the genuine CA over HTTPS: enrolment, a vTPM with both EK
#    certificates in NV, an AK certificate by root and by pin;
#  - plain http:// to a non-loopback address is refused by vtpmd and
#    vtpm-attest before connecting; on loopback it is warned;
#  - vtpmd with ca-tls-pin instead of a root: the CA's key accepted, an
#    impostor's refused ("is not the pinned one"), nothing left;
#  - vtpmd -n checks ca-tls-root and ca-tls-pin (not both), naming FILE:LINE.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot).
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
ATTEST=$TOP/build/san/vtpm-attest
IMPOSTOR=$TOP/build/impostorca
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools curl jq openssl tpm2_createek tpm2_createak tpm2_evictcontrol tpm2_nvdefine \
	tpm2_nvwrite tpm2_readpublic tpm2_print
for t in "$CA" "$ATTEST" "$IMPOSTOR" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done
W=$T/w
TLS=$T/tls
mkdir -p "$W" "$T/ca"

# impostor_start NAME ARGS...: impostorca ARGS in the background, its
# requests in $T/NAME.out; waits for its port. Sets IMP_URL (https://).
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
	IMP_URL=https://127.0.0.1:$port
}

# impostor_untouched NAME: the impostor read no request (every client
# ended the handshake first).
impostor_untouched() {
	if grep -Eq '^request [0-9]+ (GET|POST)' "$T/$1.out"; then
		fail "impostor $1 got a request: $(cat "$T/$1.out")"
	fi
}

# tls_refused WHAT NEEDLE...: $T/out names TLS verification and each NEEDLE.
tls_refused() {
	local what=$1 n
	shift
	note "$what: $(head -n 1 "$T/out")"
	assert_contains "$(cat "$T/out")" "TLS verification" "$what: names the TLS check"
	for n in "$@"; do
		assert_contains "$(cat "$T/out")" "$n" "$what"
	done
}

note "TLS: the CA's root and server certificate; impostors' certificates"
ca_tls "$TLS"
tls_server_cert "$TLS" self IP:127.0.0.1,DNS:localhost
tls_server_cert "$TLS" wrongname DNS:ca.example.org tls-root
tls_root "$TLS" other-root
tls_server_cert "$TLS" otherroot IP:127.0.0.1,DNS:localhost other-root
declare -A WHY=(
	[self]="self-signed certificate"
	[wrongname]="IP address mismatch"
	[otherroot]="unable to get local issuer certificate"
)

note "host TPM with its manufacturer's EK certificate; vtpm-ca over HTTPS"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$T/ca/ca.db" --name tls-test >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$T/ca/ca.db" >/dev/null ||
	fail "trust add"
start_vtpm_ca ca --db "$T/ca/ca.db" --role both "${CA_TLS[@]}"
[[ "$CA_URL" == https://127.0.0.1:* ]] || fail "CA URL $CA_URL"
hostport=${CA_URL#https://}

note "server: TLS 1.3 answers and verifies, TLS 1.2 is refused"
openssl s_client -connect "$hostport" -tls1_3 -CAfile "$CA_TLS_ROOT" -verify_ip 127.0.0.1 \
	-verify_return_error </dev/null >"$W/s13.out" 2>&1 || fail "TLS 1.3: $(cat "$W/s13.out")"
assert_contains "$(cat "$W/s13.out")" "TLSv1.3" "TLS 1.3 negotiated"
assert_contains "$(cat "$W/s13.out")" "Verify return code: 0 (ok)" "the root verifies the CA"
if openssl s_client -connect "$hostport" -tls1_2 </dev/null >"$W/s12.out" 2>&1; then
	fail "a TLS 1.2 client was answered: $(cat "$W/s12.out")"
fi
assert_contains "$(cat "$W/s12.out")" "protocol version" "TLS 1.2 refused with protocol_version"
curl -sf --cacert "$CA_TLS_ROOT" "$CA_URL/v1/privacy/ca" | jq -e .certificate >/dev/null ||
	fail "GET /v1/privacy/ca over HTTPS"
http=$(curl -s -o /dev/null -w '%{http_code}' "http://$hostport/v1/privacy/ca" || true)
assert_eq "$http" 000 "plain HTTP on the HTTPS port gets no HTTP answer"
kill -0 "$CA_PID" || fail "vtpm-ca ended"

note "server: plain HTTP only on loopback"
port=$(free_port_pair)
SERVE=("$CA" serve --db "$T/ca/ca.db" --role both --user 40100:40100)
expect_exit 2 "serve on 0.0.0.0 without TLS" "${SERVE[@]}" --listen "0.0.0.0:$port"
assert_contains "$(cat "$T/out")" "plain HTTP is served on loopback addresses only" "the reason"
assert_contains "$(cat "$T/out")" "--tls-cert" "says what to give"
expect_exit 2 "--tls-cert without --tls-key" "${SERVE[@]}" --listen "127.0.0.1:$port" \
	--tls-cert "$TLS/tls.pem"
expect_exit 1 "a key that is not the certificate's" "${SERVE[@]}" --listen "127.0.0.1:$port" \
	--tls-cert "$TLS/tls.pem" --tls-key "$TLS/self.key"
assert_contains "$(cat "$T/out")" "does not match" "mismatched key"

note "vtpmd -n: ca-tls-root is checked, a bad one named by FILE:LINE"
printf 'privacy-ca-root = %s\nvirtualization-ca-root = %s\nca-tls-root = %s\n' \
	"$T/ca/ca-root.pem" "$T/ca/ca-root.pem" "$CA_TLS_ROOT" >"$T/vtpmd.conf"
"$VTPMD" -n --config "$T/vtpmd.conf" >"$T/out" 2>&1 || fail "vtpmd -n: $(cat "$T/out")"
echo "not a certificate" >"$W/bad-root.pem"
printf 'ca-tls-root = %s\n' "$W/bad-root.pem" >"$T/bad.conf"
expect_exit 2 "vtpmd -n with a ca-tls-root holding no certificate" "$VTPMD" -n \
	--config "$T/bad.conf"
assert_contains "$(cat "$T/out")" "$T/bad.conf:1: ca-tls-root:" "FILE:LINE"
assert_contains "$(cat "$T/out")" "no PEM certificate" "the reason"

note "vtpmd with ca-tls-root; the CA admits the host and trusts its approval key and configuration"
start_vtpmd svc --config "$T/vtpmd.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
VTPM_CA=$CA admit_host "$T/ca/ca.db" rack1
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "approval public key"
"$CA" trust add --approval-key "$W/approval.pub.pem" --db "$T/ca/ca.db" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json | jq -c .current.values >"$W/values.json"
"$CA" approve-host-config --db "$T/ca/ca.db" --id rack1-approved \
	--pcrs "$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')" \
	--values "$W/values.json" >/dev/null || fail "approve-host-config"

note "enrolment through an impostor on the TLS link: refused, no request reaches it"
for imp in self wrongname otherroot; do
	impostor_start "imp-ck-$imp" --tls-cert "$TLS/$imp.pem" --tls-key "$TLS/$imp.key" \
		--upstream "$CA_URL" --upstream-tls-root "$CA_TLS_ROOT"
	expect_exit 1 "enrol via impostor ($imp)" "$VTPMCTL" host enroll --ca "$IMP_URL" \
		--name rack1
	tls_refused "enrol ($imp)" "Privacy CA at $IMP_URL: TLS verification" "${WHY[$imp]}"
	impostor_untouched "imp-ck-$imp"
	"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == false' >/dev/null ||
		fail "enrol ($imp): an enrolment was kept"
	[ ! -e "$T/svc/state/host/ck.pem" ] || fail "enrol ($imp): ck.pem written"
done

note "control: the impostor with the CA's genuine TLS key relays, and is accepted"
impostor_start imp-genuine --tls-cert "$TLS/tls.pem" --tls-key "$TLS/tls.key" \
	--upstream "$CA_URL" --upstream-tls-root "$CA_TLS_ROOT"
"$VTPMCTL" host enroll --ca "$IMP_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "enrol through the genuine-keyed relay: $(cat "$T/out")"
grep -q '^request 2 POST /v1/privacy/certify forwarded$' "$T/imp-genuine.out" ||
	fail "the relay did not forward: $(cat "$T/imp-genuine.out")"

note "the genuine enrolment over HTTPS"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll over HTTPS: $(cat "$T/out")"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == true' >/dev/null ||
	fail "not enrolled after the genuine enrolment"

note "vEK certificates through an impostor: refused, the instance gone, nothing in NV"
for imp in self wrongname otherroot; do
	impostor_start "imp-ek-$imp" --tls-cert "$TLS/$imp.pem" --tls-key "$TLS/$imp.key" \
		--upstream "$CA_URL" --upstream-tls-root "$CA_TLS_ROOT"
	"$VTPMCTL" host enroll --ca "$CA_URL" --virtualization-ca "$IMP_URL" --name rack1 \
		>"$T/out" 2>&1 || fail "enrol, Virtualization CA $IMP_URL: $(cat "$T/out")"
	expect_exit 1 "create via impostor ($imp)" "$VTPMCTL" create "vm-$imp"
	tls_refused "create ($imp)" "Virtualization CA at $IMP_URL: TLS verification" "${WHY[$imp]}"
	impostor_untouched "imp-ek-$imp"
	"$VTPMCTL" info "vm-$imp" >/dev/null 2>&1 && fail "create ($imp): vm-$imp is left"
	[ ! -e "$T/svc/state/instances/vm-$imp" ] || fail "create ($imp): its directory is left"
	if grep -q "vm-$imp: EK .* written to NV" "$T/svc.log"; then
		fail "create ($imp): vtpmd wrote to NV: $(grep "vm-$imp: EK" "$T/svc.log")"
	fi
done

note "the genuine Virtualization CA over HTTPS: both EK certificates in NV"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" create vm-ok --json >"$W/vm-ok.json" || fail "create vm-ok: $(cat "$W/vm-ok.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-ok.json")" 2 "vm-ok's EKs"
grep -q "vm-ok: EK ecc-p256 certificate written to NV 0x01c0000a" "$T/svc.log" ||
	fail "vtpmd did not write vm-ok's EK certificate"
tcti=$(jfield "$(cat "$W/vm-ok.json")" .tcti)

note "plain http:// to a non-loopback address is refused before connecting"
expect_exit 1 "enrol over plain http to 192.0.2.1" "$VTPMCTL" host enroll \
	--ca http://192.0.2.1:8080 --name rack1
assert_contains "$(cat "$T/out")" "plain http:// is for loopback addresses only" "the reason"
assert_contains "$(cat "$T/out")" "192.0.2.1" "names the host"
"$VTPMCTL" host --json | jq -e '.enrolment.enrolled == true' >/dev/null ||
	fail "the refused enrolment lost the genuine one"

note "guest: an AK in vm-ok for vtpm-attest"
export TPM2TOOLS_TCTI=$tcti
flushed tpm2_readpublic -c 0x81010002 -o "$W/gek.pub" >/dev/null || fail "guest EK"
flushed tpm2_createak -C 0x81010002 -G ecc -g sha256 -s ecdsa -c "$W/ak.ctx" -u "$W/ak.pub" \
	>/dev/null || fail "tpm2_createak"
flushed tpm2_evictcontrol -c "$W/ak.ctx" 0x81000010 >/dev/null || fail "persist the AK"
unset TPM2TOOLS_TCTI
AK_ENROLL=("$ATTEST" enroll --tcti "$tcti" --ak-handle 0x81000010 --out "$W/ak.pem")
spki_pin() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
		sha256sum | cut -d' ' -f1
}

note "vtpm-attest refuses each impostor, by root and by pin"
for imp in self wrongname otherroot; do
	impostor_start "imp-ak-$imp" --tls-cert "$TLS/$imp.pem" --tls-key "$TLS/$imp.key" \
		--upstream "$CA_URL" --upstream-tls-root "$CA_TLS_ROOT"
	expect_exit 1 "vtpm-attest via impostor ($imp), root" "${AK_ENROLL[@]}" --ca "$IMP_URL" \
		--ca-tls-root "$CA_TLS_ROOT"
	tls_refused "vtpm-attest ($imp, root)" "${WHY[$imp]}"
	expect_exit 1 "vtpm-attest via impostor ($imp), pin" "${AK_ENROLL[@]}" --ca "$IMP_URL" \
		--ca-tls-pin "sha256:$(spki_pin "$TLS/tls.pem")"
	tls_refused "vtpm-attest ($imp, pin)" "is not the pinned one"
	impostor_untouched "imp-ak-$imp"
	[ ! -e "$W/ak.pem" ] || fail "vtpm-attest ($imp): an AK certificate was written"
done
expect_exit 2 "vtpm-attest https:// without a root or pin" "${AK_ENROLL[@]}" --ca "$CA_URL"
assert_contains "$(cat "$T/out")" "no TLS root or pin" "the reason"
expect_exit 2 "a malformed pin" "${AK_ENROLL[@]}" --ca "$CA_URL" --ca-tls-pin sha256:abcd
assert_contains "$(cat "$T/out")" "64 hexadecimal digits" "the reason"

note "vtpm-attest and the genuine CA: by root, then by pin"
"${AK_ENROLL[@]}" --ca "$CA_URL" --ca-tls-root "$CA_TLS_ROOT" >"$T/out" 2>&1 ||
	fail "vtpm-attest enroll by root: $(cat "$T/out")"
openssl x509 -in "$W/ak.pem" -noout || fail "the AK certificate"
rm -f "$W/ak.pem"
"${AK_ENROLL[@]}" --ca "$CA_URL" --ca-tls-pin "sha256:$(spki_pin "$TLS/tls.pem")" >"$T/out" 2>&1 ||
	fail "vtpm-attest enroll by pin: $(cat "$T/out")"
openssl x509 -in "$W/ak.pem" -noout || fail "the AK certificate (pin)"

note "vtpm-attest verify --ca: revocation is asked of the genuine CA only"
nonce=$(openssl rand -hex 16)
TPM2TOOLS_TCTI=$tcti flushed tpm2_quote -c 0x81000010 -l sha256:16 -q "$nonce" -m "$W/q.msg" \
	-s "$W/q.sig" -o "$W/q.pcrs" -g sha256 >/dev/null || fail "tpm2_quote"
curl -sf --cacert "$CA_TLS_ROOT" "$CA_URL/v1/privacy/ca" | jq -j .certificate \
	>"$W/privacy.pem" || fail "the Privacy CA certificate"
VERIFY=("$ATTEST" verify --ak-cert "$W/ak.pem" --message "$W/q.msg" --signature "$W/q.sig"
	--pcr-file "$W/q.pcrs" --nonce "$nonce" --trust "$T/ca/ca-root.pem"
	--untrusted "$W/privacy.pem" --any-pcrs --policy require-host-config rack1-approved)
expect_exit 1 "verify, revocation asked of an impostor" "${VERIFY[@]}" --state "$W/st1" \
	--ca "$IMP_URL" --ca-tls-root "$CA_TLS_ROOT"
tls_refused "verify --ca impostor" "revocation unknown" "${WHY[otherroot]}"
"${VERIFY[@]}" --state "$W/st2" --ca "$CA_URL" --ca-tls-root "$CA_TLS_ROOT" >"$T/out" 2>&1 ||
	fail "verify --ca over HTTPS: $(cat "$T/out")"
assert_contains "$(cat "$T/out")" "not revoked: AK, vEK and CK certificates (vtpm-ca at $CA_URL)" "revocation checked over HTTPS"

note "vtpm-attest: plain http:// is refused off loopback, warned on it"
expect_exit 1 "vtpm-attest over plain http to 192.0.2.1" "${AK_ENROLL[@]}" \
	--ca http://192.0.2.1:8080
assert_contains "$(cat "$T/out")" "plain http:// is for loopback addresses only" "the reason"
port=$(free_port_pair)
expect_exit 1 "vtpm-attest over plain http on loopback (nothing there)" "${AK_ENROLL[@]}" \
	--ca "http://127.0.0.1:$port"
assert_contains "$(cat "$T/out")" "plain http://, no TLS" "the warning"

note "afterwards: the CA and vtpmd serve; only vm-ok exists"
kill -0 "$CA_PID" || fail "vtpm-ca ended"
assert_eq "$("$VTPMCTL" list --json | jq -r '[.instances[].name] | join(" ")')" vm-ok "instances"

note "vtpmd with ca-tls-pin instead of ca-tls-root: the CA's key is accepted, an impostor's not"
pin=$(openssl x509 -in "$TLS/tls.pem" -pubkey -noout | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)
printf 'privacy-ca-root = %s\nvirtualization-ca-root = %s\nca-tls-pin = sha256:%s\n' \
	"$T/ca/ca-root.pem" "$T/ca/ca-root.pem" "$pin" >"$T/pin.conf"
"$VTPMD" -n --config "$T/pin.conf" >"$T/out" 2>&1 || fail "vtpmd -n (pin): $(cat "$T/out")"
printf 'ca-tls-pin = sha256:%s\n' "${pin:0:60}" >"$T/bad.conf"
expect_exit 2 "vtpmd -n with a short pin" "$VTPMD" -n --config "$T/bad.conf"
assert_contains "$(cat "$T/out")" "$T/bad.conf:1: ca-tls-pin:" "FILE:LINE"
assert_contains "$(cat "$T/out")" "64 hexadecimal digits" "the reason"
printf 'ca-tls-root = %s\nca-tls-pin = sha256:%s\n' "$CA_TLS_ROOT" "$pin" >"$T/bad.conf"
expect_exit 2 "vtpmd -n with a root and a pin" "$VTPMD" -n --config "$T/bad.conf"
assert_contains "$(cat "$T/out")" "not both" "the reason"
stop_pid "$VTPMD_PID"
start_vtpmd svc --config "$T/pin.conf" --root-tcti "$HOST_TCTI"
impostor_start imp-ek-pin --tls-cert "$TLS/otherroot.pem" --tls-key "$TLS/otherroot.key" \
	--upstream "$CA_URL" --upstream-tls-root "$CA_TLS_ROOT"
"$VTPMCTL" host enroll --ca "$CA_URL" --virtualization-ca "$IMP_URL" --name rack1 \
	>"$T/out" 2>&1 || fail "enrol by pin, Virtualization CA $IMP_URL: $(cat "$T/out")"
expect_exit 1 "create via an impostor, by pin" "$VTPMCTL" create vm-pin-imp
tls_refused "create (pin)" "Virtualization CA at $IMP_URL: TLS verification" "is not the pinned one"
impostor_untouched imp-ek-pin
"$VTPMCTL" info vm-pin-imp >/dev/null 2>&1 && fail "create (pin): vm-pin-imp is left"
"$VTPMCTL" host enroll --ca "$CA_URL" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll by pin: $(cat "$T/out")"
"$VTPMCTL" create vm-pin --json >"$W/vm-pin.json" || fail "create vm-pin: $(cat "$W/vm-pin.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-pin.json")" 2 "vm-pin's EKs (by pin)"
stop_pid "$VTPMD_PID"
echo "ok"
