#!/bin/bash
# One vTPM, one identity, fresh evidence (issue #11; docs/ca-api.md,
# "Virtualization CA"; docs/threat-model.md, "Root on the host"). Root on an
# enrolled host takes the host TPM to itself (vtpmd stopped) and has the
# host CK certify a provisioned vTPM's sealed object and quote the host
# PCRs for requests of its own making (build/san/hostattest-check,
# tpm2_quote); the Virtualization CA refuses each with its reason, and
# issues nothing:
#  - evidence without a nonce (the protocol before the nonce:
#    qualifyingData = SHA-256 of a vEK made in software);
#  - a second vEK certified from the vTPM's sealed object (a key made in
#    software, a fresh nonce);
#  - a made-up UUID for that sealed object (a fresh nonce);
#  - the vTPM's vEK under another sealed object (sealed by root with the
#    approval policy) and another UUID;
#  - replayed evidence: the same nonce twice, a nonce the CA never handed
#    out, a nonce past its expiry (twice), the same at another serve;
#  - a vEK of a type the vTPM was created without: vm-c, made with
#    `--ek rsa2048` only, gets no ECC P-256 vEK certificate for a key made
#    in software, whether the request names vm-c's RSA vEK in its set or
#    not (on main before the closed set, it was issued: the type was free);
# while the same vEK's certificate for the same sealed object and UUID is
# issued again with a fresh nonce (re-provisioning after a lost answer),
# vtpmd's own provisioning (an RSA and an ECC vEK from one sealed object
# and UUID) passes, and the refusals are in the audit trail.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
source "$TOP/tests/calib.sh"
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
CHECK=$TOP/build/san/hostattest-check
[ "$(id -u)" -eq 0 ] || fail "vek-identity.sh needs root (vtpmd sandboxes its workers)"
require_tools curl jq openssl base64 sha256sum od tpm2_quote tpm2_createek tpm2_nvdefine \
	tpm2_nvwrite tpm2_print swtpm
for t in "$CA" "$CHECK"; do
	[ -x "$t" ] || fail "$t is missing (make san)"
done
W=$T/w
DB=$T/ca/ca.db
mkdir -p "$W" "$T/ca"

note "an enrolled host; vm-a provisioned with its RSA and ECC vEKs"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr"
"$CA" init --db "$DB" --name vek-identity >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
start_vtpm_ca ca --db "$DB" --role both
MAIN_URL=$CA_URL
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$W/approval.pub.pem" 2>/dev/null ||
	fail "the approval key's public half"
"$CA" trust add --approval-key "$W/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json >"$W/policy.json"
jq -c .current.values "$W/policy.json" >"$W/values.json"
PCRS=$(jq -r '.pcrs | map(tostring) | join(",")' "$W/policy.json")
"$CA" approve-host-config --db "$DB" --id rack1-1 --pcrs "$PCRS" --values "$W/values.json" \
	>/dev/null || fail "approve-host-config"
admit_host "$DB" rack1
"$VTPMCTL" host enroll --ca "$CA_URL" --ca-root "$T/ca/ca-root.pem" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" create vm-a --no-start --json >"$W/vm-a.json" 2>&1 ||
	fail "create vm-a: $(cat "$W/vm-a.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-a.json")" 2 "vm-a's EKs (one sealed object)"
UUID=$(jfield "$(cat "$W/vm-a.json")" .uuid)
jq -r '.endorsement.eks[] | select(.type == "ecc-p256") | .public' "$W/vm-a.json" | base64 -d \
	>"$W/vek.pub"
jq -r '.endorsement.eks[] | select(.type == "rsa2048") | .public' "$W/vm-a.json" | base64 -d \
	>"$W/vekrsa.pub"
cp "$T/svc/state/instances/vm-a/sealed.key" "$W/sealed.bin"
note "vm-c provisioned with its RSA vEK only (vtpmctl create --ek rsa2048)"
"$VTPMCTL" create vm-c --ek rsa2048 --no-start --json >"$W/vm-c.json" 2>&1 ||
	fail "create vm-c: $(cat "$W/vm-c.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-c.json")" 1 "vm-c's EKs"
UUID_C=$(jfield "$(cat "$W/vm-c.json")" .uuid)
mkdir -p "$W/c"
jq -r '.endorsement.eks[0].public' "$W/vm-c.json" | base64 -d >"$W/c/vekrsa.pub"
cp "$T/svc/state/instances/vm-c/sealed.key" "$W/c/sealed.bin"
openssl x509 -in "$T/svc/state/host/ck.pem" -out "$W/ck.pem" || fail "the CK certificate"
note "root stops vtpmd and has the host TPM to itself"
stop_pid "$VTPMD_PID"
# The CK certifies and quotes only under an approval of the present PCRs
# (docs/ca-api.md): root signs its own with the approval key vtpmd keeps in
# its state directory (the lab default), as hostattest-check does with
# DIR/approval.pem.
cp "$T/svc/state/approval.pem" "$W/approval.pem"

# split_sealed DIR: DIR/sealed.pub, the TPM2B_PUBLIC of DIR/sealed.bin.
split_sealed() {
	local n
	n=$((16#$(od -An -tx1 -N2 "$1/sealed.bin" | tr -d ' ')))
	head -c $((2 + n)) "$1/sealed.bin" >"$1/sealed.pub"
}
split_sealed "$W"
split_sealed "$W/c"

# soft_vek OUT: a vEK made in software: vm-a's ECC vEK public area (the
# TCG L-2 template) around a P-256 key openssl made.
soft_vek() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.pem" 2>/dev/null ||
		fail "openssl genpkey"
	{
		head -c -68 "$W/vek.pub"
		openssl pkey -in "$1.pem" -pubout -outform DER | tail -c 64 |
			{ printf '\x00\x20'; head -c 32; printf '\x00\x20'; head -c 32; }
	} >"$1"
}

# forge OUT DIR VEKPUB UUID NONCE [OTHERPUB...]: an EK certificate
# request for VEKPUB and UUID from the host CK's certification of
# DIR/sealed.bin and its quote of the approved PCRs, both with the
# qualifying data of NONCE (base64; "": SHA-256 of VEKPUB, the protocol
# before the nonce) and of the vEK set VEKPUB and OTHERPUBs (other_veks).
forge() {
	local out=$1 dir=$2 vek=$3 uuid=$4 nonce=$5 qd xy others="[]" f
	shift 5
	for f in "$@"; do
		others=$(jq -c --arg k "$(b64 "$f")" '. + [$k]' <<<"$others")
	done
	if [ -n "$nonce" ]; then
		qd=$(vek_qualifying "$nonce" "$vek" "$uuid" "$@")
	else
		qd=$(sha256sum "$vek" | cut -c1-64)
	fi
	# The CK works only under the approval key's policy: root uses the
	# key from vtpmd's state directory (where the lab keeps it; in
	# production, an approval stored on the host serves as well).
	cp "$T/svc/state/approval.pem" "$dir/approval.pem"
	HOSTATTEST_PCRS=$PCRS "$CHECK" host "$HOST_TCTI" "$dir" certify-sealed "$qd" \
		>/dev/null 2>"$T/err" || fail "hostattest-check certify-sealed: $(cat "$T/err")"
	HOSTATTEST_PCRS=$PCRS "$CHECK" host "$HOST_TCTI" "$dir" quote "$qd" >/dev/null 2>"$T/err" ||
		fail "the CK's quote (hostattest-check quote): $(cat "$T/err")"
	xy=$(openssl pkey -pubin -in "$W/approval.pub.pem" -outform DER | tail -c 64 |
		od -An -tx1 -v | tr -d ' \n')
	jq -n --rawfile ck "$W/ck.pem" --arg uuid "$uuid" --arg vek "$(b64 "$vek")" \
		--arg sealed "$(b64 "$dir/sealed.pub")" --arg nonce "$nonce" \
		--arg ca "$(b64 "$dir/sealed.attest")" --arg cs "$(b64 "$dir/sealed.sig")" \
		--arg qa "$(b64 "$dir/quote.attest")" --arg qs "$(b64 "$dir/quote.sig")" \
		--slurpfile pcrs "$W/values.json" --arg x "${xy:0:64}" --arg y "${xy:64:64}" \
		--argjson others "$others" \
		'{ck_certificate: $ck, instance_uuid: $uuid, vek_public: $vek, sealed_public: $sealed,
		  other_veks: $others,
		  certify: {attest: $ca, signature: $cs},
		  quote: {attest: $qa, signature: $qs, pcrs: $pcrs[0]},
		  approval_key: {x: $x, y: $y}} +
		 (if $nonce != "" then {nonce: $nonce} else {} end)' >"$out" || fail "jq: $out"
}

# ek_count: the EK certificates the CA issued.
ek_count() {
	"$CA" list --json --db "$DB" | jq '[.[] | select(.kind == "ek")] | length'
}

# post FILE [URL]: POSTs an EK certificate request; HTTP, $T/resp.json.
post() {
	HTTP=$(curl -s -o "$T/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$1" "${2:-$MAIN_URL}/v1/virtualization/ek-certificate") ||
		fail "POST $1: curl failed"
}

# refused WHAT FILE STATUS TEXT [URL]: the request is refused with STATUS,
# an error containing TEXT and a hint, and no certificate is issued.
refused() {
	local before
	before=$(ek_count)
	post "$2" "${5:-}"
	[ "$HTTP" == "$3" ] || fail "$1: expected HTTP $3, got $HTTP: $(cat "$T/resp.json")"
	assert_contains "$(jq -r .error "$T/resp.json")" "$4" "$1: the reason"
	[ "$(jq -r '.hint // ""' "$T/resp.json")" != "" ] || fail "$1: no hint"
	assert_eq "$(ek_count)" "$before" "$1: EK certificates issued"
	note "  refused ($HTTP): $(jq -r .error "$T/resp.json")"
}

note "no nonce: qualifyingData = SHA-256 of a vEK made in software (the old protocol)"
soft_vek "$W/soft1.pub"
forge "$W/nononce.json" "$W" "$W/soft1.pub" "$UUID" ""
refused "evidence without a nonce" "$W/nononce.json" 400 "nonce is missing"

note "a second vEK (made in software) certified from vm-a's sealed object"
forge "$W/second.json" "$W" "$W/soft1.pub" "$UUID" "$(vek_nonce "$MAIN_URL")" "$W/vekrsa.pub"
refused "a second vEK from one sealed object" "$W/second.json" 403 "another ecc-p256 vEK"

note "a made-up UUID for vm-a's sealed object"
soft_vek "$W/soft2.pub"
forge "$W/uuid.json" "$W" "$W/soft2.pub" 0b5e3f7c-1d2a-4c3b-8e9f-a0b1c2d3e4f5 \
	"$(vek_nonce "$MAIN_URL")"
refused "a made-up UUID" "$W/uuid.json" 403 "belongs to vTPM $UUID"

note "vm-a's vEK under another sealed object (root seals one with the approval policy)"
mkdir -p "$W/other"
cp "$T/svc/state/approval.pem" "$W/other/approval.pem"
"$CHECK" host "$HOST_TCTI" "$W/other" seal >/dev/null 2>"$T/err" ||
	fail "hostattest-check seal: $(cat "$T/err")"
split_sealed "$W/other"
forge "$W/moved.json" "$W/other" "$W/vek.pub" 7d1e0a52-9c3b-4f8e-a1d2-5b6c7d8e9f00 \
	"$(vek_nonce "$MAIN_URL")"
refused "vm-a's vEK under another sealed object" "$W/moved.json" 403 "certified already"

note "the same vEK, sealed object and UUID with a fresh nonce: issued again"
before=$(ek_count)
forge "$W/again.json" "$W" "$W/vek.pub" "$UUID" "$(vek_nonce "$MAIN_URL")" "$W/vekrsa.pub"
post "$W/again.json"
[ "$HTTP" == 200 ] || fail "re-issue: HTTP $HTTP: $(cat "$T/resp.json")"
assert_eq "$(ek_count)" $((before + 1)) "EK certificates after the re-issue"

note "replayed evidence: the same nonce twice"
refused "the same nonce twice" "$W/again.json" 409 "replayed"

note "replayed evidence: a nonce the CA never handed out"
forge "$W/madeup.json" "$W" "$W/vek.pub" "$UUID" "$(head -c 32 /dev/urandom | base64 -w0)" \
	"$W/vekrsa.pub"
refused "a nonce never handed out" "$W/madeup.json" 403 "not handed out"

note "replayed evidence: a nonce past its expiry"
printf '{"nonce_expiry_seconds": 0}\n' >"$W/expire.json"
start_vtpm_ca ca-expire --db "$DB" --role virtualization --config "$W/expire.json"
forge "$W/old.json" "$W" "$W/vek.pub" "$UUID" "$(vek_nonce "$CA_URL")" "$W/vekrsa.pub"
refused "an expired nonce" "$W/old.json" 410 "expired" "$CA_URL"
refused "an expired nonce, replayed" "$W/old.json" 410 "expired" "$CA_URL"
stop_pid "$CA_PID"
# nonces are stateless, made under a key of the serve that handed them out:
# another serve on the same database knows nothing of it
refused "an expired nonce, at another serve" "$W/old.json" 403 "not handed out"

note "vm-c (--ek rsa2048): an ECC P-256 vEK made in software, vm-c's RSA vEK in its set"
soft_vek "$W/soft3.pub"
forge "$W/type.json" "$W/c" "$W/soft3.pub" "$UUID_C" "$(vek_nonce "$MAIN_URL")" "$W/c/vekrsa.pub"
refused "a vEK of a type vm-c was made without" "$W/type.json" 403 "has no ecc-p256 vEK"
note "vm-c: the same key, the set of that key alone"
forge "$W/type1.json" "$W/c" "$W/soft3.pub" "$UUID_C" "$(vek_nonce "$MAIN_URL")"
refused "a vEK of a type vm-c was made without, alone" "$W/type1.json" 403 "has no ecc-p256 vEK"

note "the refusals are in the audit trail"
"$CA" list audit --json --db "$DB" >"$W/audit.json"
for text in "nonce is missing" "another ecc-p256 vEK" "belongs to vTPM" "certified already" \
	"replayed" "not handed out" "expired" "has no ecc-p256 vEK"; do
	jq -e --arg t "$text" 'any(.[]; .outcome == "refused" and (.detail | contains($t)))' \
		"$W/audit.json" >/dev/null || fail "no audit row for the refusal: $text"
done

note "vtpmd, started again, provisions another vTPM"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" create vm-b --no-start --json >"$W/vm-b.json" 2>&1 ||
	fail "create vm-b: $(cat "$W/vm-b.json")"
assert_eq "$(jq '.endorsement.eks | length' "$W/vm-b.json")" 2 "vm-b's EKs"
stop_pid "$VTPMD_PID"
echo "ok"
