#!/bin/bash
# The chain of trust's throughput (issue "The chain of trust"), on real
# evidence made end to end as tests/integration/ca.sh makes it: vTPM
# instances as host TPM and guest TPM, a throwaway manufacturer CA
# (openssl), vtpm-ca serving both roles, the host CK enrolled, a state key
# sealed under PolicyAuthorize and certified and quoted by the CK
# (build/hostattest-check, vtpmd's host-TPM code), a vEK certificate, guest
# AKs (ECC P-256/ECDSA and RSA-2048/RSASSA, tpm2_createak) enrolled with the
# Privacy CA, and a tpm2_quote by each. Then:
#  - quote verifications per second per core in vtpm-attest verify's
#    library path (attest_verify_quote, build/bench_verify: certificate
#    chain, signature, nonce, PCR digest, policy require-host-config; the
#    replay state on disk is the command's, not the library's, and is left
#    out), against tpm2_checkquote (tpm2-tools, the legacy challenger, a
#    process per check) on the same quote, and vtpm-attest verify as a
#    process per check for reference;
#  - EK certificates issued per second by the Virtualization CA (POST
#    /v1/virtualization/ek-certificate, re-issues of one vEK's certificate,
#    each request with its own nonce and evidence made beforehand,
#    build/bench_caload) with 1 and 2 concurrent clients, and the
#    Privacy CA's challenge + activation + certify round for a guest AK.
# The release builds throughout (build/vtpm-ca, vtpm-attest, vtpmd,
# hostattest-check). vtpm-ca and the vTPMs run on SERVER_CPU, the
# clients on CLIENT_CPU (as bench/run.sh pins). `make bench` runs it.
#
# Environment: SERVER_CPU (1), CLIENT_CPU (0), CHAIN_VERIFY_N (5000),
# CHAIN_PROC_N (300: process-per-check runs), CHAIN_CA_N (300: EK
# certificates per run), CHAIN_PRIVACY_N (100: Privacy CA rounds),
# CHAIN_EVIDENCE (a directory to keep the guest's evidence in).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BENCH_BUILD:-$TOP/build}
export VTPMD=$BUILD/vtpmd
export VTPM_CA=$BUILD/vtpm-ca
CHECK=$BUILD/hostattest-check
ATTEST=$BUILD/vtpm-attest
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
VERIFY_N=${CHAIN_VERIFY_N:-5000}
PROC_N=${CHAIN_PROC_N:-300}
CA_N=${CHAIN_CA_N:-300}
PRIVACY_N=${CHAIN_PRIVACY_N:-100}
source "$TOP/tests/lib.sh"
source "$TOP/tests/calib.sh"
export TSS2_LOG=all+none

require_tools curl jq openssl base64 sha256sum od taskset tpm2_createek tpm2_createak \
	tpm2_print tpm2_startauthsession tpm2_policysecret tpm2_activatecredential tpm2_quote \
	tpm2_checkquote tpm2_evictcontrol tpm2_flushcontext
for t in "$VTPMD" "$VTPM_CA" "$CHECK" "$ATTEST" "$BUILD/bench_verify" "$BUILD/bench_caload"; do
	[ -x "$t" ] || fail "$t is missing; run 'make bench'"
done
if [ "$(nproc)" -le "$SERVER_CPU" ] || [ "$(nproc)" -le "$CLIENT_CPU" ]; then
	fail "needs CPUs $CLIENT_CPU and $SERVER_CPU (set SERVER_CPU, CLIENT_CPU)"
fi

DB=$T/ca/ca.db
W=$T/w
H=$T/h
R=$T/results
mkdir -p "$T/ca" "$W" "$H"
: >"$R"

# ---- the evidence, as tests/integration/ca.sh makes it ----

# post PATH FILE: POSTs the JSON in FILE; the answer in $T/resp.json, which
# must be 200 (WHAT names the step).
post() {
	local http
	http=$(curl -s -o "$T/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$2" "$CA_URL$1") || fail "POST $1: curl failed"
	[ "$http" == 200 ] || fail "$3: HTTP $http: $(cat "$T/resp.json")"
}






# host STEP...: a step of vtpmd's host-TPM module on the host vTPM.
host() {
	"$CHECK" host "$HOST" "$H" "$@" >"$H/out" 2>"$H/err" ||
		fail "hostattest-check $1: $(cat "$H/err")"
}

# point_of PUBPEM: an ECC P-256 public key's X || Y, hex.
point_of() {
	openssl pkey -pubin -in "$1" -outform DER | tail -c 64 | od -An -tx1 -v | tr -d ' \n'
}

# enrol_ak NAME ALG SCHEME HANDLE: a guest AK (tpm2_createak under the vEK)
# enrolled with the Privacy CA through tpm2_activatecredential, persisted
# at HANDLE; $W/NAME.pub, $W/NAME.pem (certificate), $W/NAME.json (the
# challenge request).
enrol_ak() {
	local name=$1 s=$W/session.ctx cid
	export TPM2TOOLS_TCTI=$GUEST
	flushed tpm2_createak -C "$W/vek.ctx" -G "$2" -g sha256 -s "$3" -c "$W/$name.ctx" \
		-u "$W/$name.pub" >/dev/null || fail "tpm2_createak $2"
	challenge_req ak "$W/vek.pem" "$W/vek.pub" "$W/$name.pub" "$W/$name.json"
	post /v1/privacy/challenge "$W/$name.json" "$name: challenge"
	cid=$(jq -r .id "$T/resp.json")
	credential_file "$W/$name.cred"
	tpm2_startauthsession --policy-session -S "$s" >/dev/null || fail "tpm2_startauthsession"
	tpm2_policysecret -S "$s" -c e >/dev/null || fail "tpm2_policysecret"
	flushed tpm2_activatecredential -c "$W/$name.ctx" -C "$W/vek.ctx" -i "$W/$name.cred" \
		-o "$W/$name.secret" -P "session:$s" >/dev/null 2>"$W/activate.err" ||
		fail "tpm2_activatecredential: $(cat "$W/activate.err")"
	certify_req "$cid" "$W/$name.secret" "$W/$name.certify.json"
	post /v1/privacy/certify "$W/$name.certify.json" "$name: certify"
	pem_of certificate "$W/$name.pem"
	openssl x509 -in "$W/$name.pem" -noout -pubkey >"$W/$name.key.pem"
	flushed tpm2_evictcontrol -C o -c "$W/$name.ctx" "$4" >/dev/null ||
		fail "tpm2_evictcontrol $name"
}

echo "chain bench: vtpm-ca, vtpmd's vTPMs on CPU $SERVER_CPU; clients on CPU $CLIENT_CPU;" \
	"load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "chain bench: preparing the evidence (vtpm-ca, host and guest vTPMs, enrolments)..."
"$VTPM_CA" init --db "$DB" --name bench >/dev/null || fail "vtpm-ca init"
"$VTPM_CA" cert --role root --db "$DB" >"$W/root.pem"
"$VTPM_CA" cert --role privacy --db "$DB" >"$W/privacy.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/mfr.key" \
	-out "$T/mfr.pem" -subj "/CN=bench TPM manufacturer root" -days 30 \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	2>/dev/null || fail "openssl req"
"$VTPM_CA" trust add --manufacturer "$T/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
# Nonces that last while the load's evidence is made beforehand.
printf '{"nonce_expiry_seconds": 3600}\n' >"$T/ca.json"
start_vtpm_ca ca --db "$DB" --role both --config "$T/ca.json"
# Both of vtpm-ca's processes: the parent (records, keys) and its network child.
mapfile -t CA_PIDS < <(echo "$CA_PID"; pgrep -P "$CA_PID")
[ "${#CA_PIDS[@]}" -eq 2 ] || fail "vtpm-ca serve: expected a parent and one network child"
for p in "${CA_PIDS[@]}"; do
	taskset -pc "$SERVER_CPU" "$p" >/dev/null
done

# The host TPM: its EK with a manufacturer certificate, its CK enrolled.
start_tpm host unix --plaintext-state
HOST=$TCTI
taskset -pc "$SERVER_CPU" "$INSTANCE_PID" >/dev/null
host ek ecc
host ck
tpm2_print -t TPM2B_PUBLIC -f pem "$H/ek-ecc.pub" >"$W/ek.pem" || fail "tpm2_print EK"
printf 'keyUsage = critical, keyEncipherment, keyAgreement\n' >"$W/ek.ext"
openssl x509 -new -subj "/CN=bench EK" -force_pubkey "$W/ek.pem" -CA "$T/mfr.pem" \
	-CAkey "$T/mfr.key" -days 30 -extfile "$W/ek.ext" -out "$W/ekcert.pem" 2>"$W/openssl.err" ||
	fail "openssl x509 -new: $(cat "$W/openssl.err")"
"$VTPM_CA" host add bench-host --ek-cert "$W/ekcert.pem" --no-approval-key --db "$DB" \
	>/dev/null 2>&1 ||
	fail "vtpm-ca host add"
challenge_req ck "$W/ekcert.pem" "$H/ek-ecc.pub" "$H/ck.pub" "$H/ck.json" bench-host
post /v1/privacy/challenge "$H/ck.json" "CK challenge"
cid=$(jq -r .id "$T/resp.json")
credential_file "$H/cred"
host activate ecc "$H/cred" "$H/secret"
certify_req "$cid" "$H/secret" "$H/certify.json"
post /v1/privacy/certify "$H/certify.json" "CK certify"
pem_of certificate "$H/ck.pem"

# The guest vTPM's vEK; the host's evidence for it; its EK certificate.
start_tpm guest unix --plaintext-state
GUEST=$TCTI
taskset -pc "$SERVER_CPU" "$INSTANCE_PID" >/dev/null
flushed tpm2_createek -G ecc -c "$W/vek.ctx" -u "$W/vek.pub" >/dev/null || fail "tpm2_createek"
UUID=3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23
NONCE64=$(vek_nonce "$CA_URL")
EXTRA=$(vek_qualifying "$NONCE64" "$W/vek.pub" "$UUID")
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$H/approval.pem" 2>/dev/null
openssl pkey -in "$H/approval.pem" -pubout -out "$H/approval.pub.pem"
host seal
n=$((16#$(od -An -tx1 -N2 "$H/sealed.bin" | tr -d ' ')))
head -c $((2 + n)) "$H/sealed.bin" >"$H/sealed.pub"
host certify-sealed "$EXTRA"
host quote "$EXTRA"
PCRS=$(sed -n 's/^pcr \([0-9]*\) \([0-9a-f]*\)$/"\1": "\2"/p' "$H/out" | paste -sd, | sed 's/.*/{&}/')
VALUES=$(sed -n 's/^pcr \([0-9]*\) \([0-9a-f]*\)$/\1=\2/p' "$H/out" | paste -sd,)
"$VTPM_CA" trust add --approval-key "$H/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPM_CA" approve-host-config --db "$DB" --id bench-host-1 --pcrs 0,2,4,7,16 --values "$VALUES" \
	>/dev/null || fail "approve-host-config"
xy=$(point_of "$H/approval.pub.pem")
# ek_req NONCE OUT: the EK certificate request of the evidence in $H.
ek_req() {
	jq -n --rawfile ck "$H/ck.pem" --arg uuid "$UUID" --arg nonce "$1" \
		--arg vek "$(b64 "$W/vek.pub")" --arg sealed "$(b64 "$H/sealed.pub")" \
		--arg ca "$(b64 "$H/sealed.attest")" --arg cs "$(b64 "$H/sealed.sig")" \
		--arg qa "$(b64 "$H/quote.attest")" --arg qs "$(b64 "$H/quote.sig")" \
		--argjson pcrs "$PCRS" --arg x "${xy:0:64}" --arg y "${xy:64:64}" \
		'{ck_certificate: $ck, instance_uuid: $uuid, vek_public: $vek, sealed_public: $sealed,
		  nonce: $nonce, certify: {attest: $ca, signature: $cs},
		  quote: {attest: $qa, signature: $qs, pcrs: $pcrs},
		  approval_key: {x: $x, y: $y}}' >"$2"
}
ek_req "$NONCE64" "$H/ek.json"
post /v1/virtualization/ek-certificate "$H/ek.json" "vEK certificate"
pem_of certificate "$W/vek.pem"

# The guest's AKs, enrolled; a quote by each over PCRs 0-7.
export TPM2TOOLS_TCTI=$GUEST
flushed tpm2_evictcontrol -C o -c "$W/vek.ctx" 0x81010002 >/dev/null || fail "persist the vEK"
enrol_ak akecc ecc ecdsa 0x81000010
enrol_ak akrsa rsa rsassa 0x81000011
NONCE=$(head -c 20 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
for ak in akecc akrsa; do
	flushed tpm2_quote -c "$W/$ak.ctx" -l sha256:0,1,2,3,4,5,6,7 -q "$NONCE" -m "$W/$ak.msg" \
		-s "$W/$ak.sig" -o "$W/$ak.pcrs" -g sha256 >/dev/null || fail "tpm2_quote ($ak)"
	# Both challengers accept it before anything is timed.
	"$ATTEST" verify --ak-cert "$W/$ak.pem" --nonce "$NONCE" --trust "$W/root.pem" \
		--untrusted "$W/privacy.pem" --message "$W/$ak.msg" --signature "$W/$ak.sig" \
		--pcr-file "$W/$ak.pcrs" --state "$W/state-$ak" --no-revocation-check \
		--pcrs "sha256:0=$(printf '0%.0s' {1..64})" \
		--policy require-host-config bench-host-1 >"$W/verdict" 2>&1 ||
		fail "vtpm-attest verify ($ak): $(cat "$W/verdict")"
	tpm2_checkquote -u "$W/$ak.key.pem" -m "$W/$ak.msg" -s "$W/$ak.sig" -f "$W/$ak.pcrs" \
		-g sha256 -q "$NONCE" >"$W/verdict" 2>&1 || fail "tpm2_checkquote ($ak): $(cat "$W/verdict")"
done
echo "chain bench: evidence ready: a vEK certificate for host configuration bench-host-1," \
	"ECC and RSA AKs certified, a quote by each"

# CHAIN_EVIDENCE=DIR keeps a copy of the guest's evidence (certificates,
# quotes, NONCE) for a closer look, e.g. bench_verify under perf.
if [ -n "${CHAIN_EVIDENCE:-}" ]; then
	mkdir -p "$CHAIN_EVIDENCE"
	cp "$W"/*.pem "$W"/ak*.msg "$W"/ak*.sig "$W"/ak*.pcrs "$CHAIN_EVIDENCE"/
	printf '%s\n' "$NONCE" >"$CHAIN_EVIDENCE/NONCE"
fi

# ---- quote verification ----

echo "quote verification: library x$VERIFY_N, processes x$PROC_N each, on CPU $CLIENT_CPU..."
for ak in akecc akrsa; do
	taskset -c "$CLIENT_CPU" "$BUILD/bench_verify" -n "$VERIFY_N" -l "lib.$ak" \
		-a "$W/$ak.pem" -r "$W/root.pem" -u "$W/privacy.pem" -m "$W/$ak.msg" \
		-s "$W/$ak.sig" -f "$W/$ak.pcrs" -q "$NONCE" -p bench-host-1 >>"$R"
	taskset -c "$CLIENT_CPU" "$BUILD/bench_verify" -n "$PROC_N" -l "checkquote.$ak" \
		-x tpm2_checkquote -u "$W/$ak.key.pem" -m "$W/$ak.msg" -s "$W/$ak.sig" \
		-f "$W/$ak.pcrs" -g sha256 -q "$NONCE" >>"$R"
	# The command keeps the last quote's clock per AK; removed before each
	# run so that the same quote is not refused as a replay.
	state=$(echo "$W/state-$ak"/*)
	taskset -c "$CLIENT_CPU" "$BUILD/bench_verify" -n "$PROC_N" -l "process.$ak" -U "$state" \
		-x "$ATTEST" verify --ak-cert "$W/$ak.pem" --nonce "$NONCE" --trust "$W/root.pem" \
		--untrusted "$W/privacy.pem" --message "$W/$ak.msg" --signature "$W/$ak.sig" \
		--pcr-file "$W/$ak.pcrs" --state "$W/state-$ak" --no-revocation-check \
		--pcrs "sha256:0=$(printf '0%.0s' {1..64})" \
		--policy require-host-config bench-host-1 >>"$R"
done

# ---- the CAs ----

echo "Virtualization CA: evidence for $((2 * CA_N + 2)) re-issues (a nonce each), made first..."
mkdir -p "$H/load"
for i in $(seq 1 $((2 * CA_N + 2))); do
	nonce=$(vek_nonce "$CA_URL")
	qd=$(vek_qualifying "$nonce" "$W/vek.pub" "$UUID")
	host certify-sealed "$qd"
	host quote "$qd"
	ek_req "$nonce" "$H/load/$i.json"
done
jq -s '.[:length / 2]' $(seq -f "$H/load/%g.json" 1 $((2 * CA_N + 2))) >"$H/load-c1.json"
jq -s '.[length / 2:]' $(seq -f "$H/load/%g.json" 1 $((2 * CA_N + 2))) >"$H/load-c2.json"
echo "Virtualization CA: $CA_N EK certificates with 1, then 2 clients on CPU $CLIENT_CPU..."
EP=tcp:${CA_URL#http://}
for c in 1 2; do
	taskset -c "$CLIENT_CPU" "$BUILD/bench_caload" -e "$EP" -n "$CA_N" -c "$c" \
		-S "${CA_PIDS[0]}" -S "${CA_PIDS[1]}" -l "ek.c$c" ek "$H/load-c$c.json" >>"$R"
done
echo "Privacy CA: $PRIVACY_N challenge + activation + certify rounds (ECC AK)..."
taskset -c "$CLIENT_CPU" "$BUILD/bench_caload" -e "$EP" -n "$PRIVACY_N" -S "${CA_PIDS[0]}" \
	-S "${CA_PIDS[1]}" -l privacy privacy "$W/akecc.json" "$GUEST" 0x81000010 0x81010002 >>"$R"
issued=$("$VTPM_CA" list --json --db "$DB" | jq '[.[] | select(.kind == "ek")] | length')
[ "$issued" -ge $((2 * CA_N + 3)) ] ||
	fail "the CA's records hold $issued EK certificates, expected at least $((2 * CA_N + 3))"
echo

# ---- the table ----

# val METRIC: a figure from the results.
val() {
	awk -v m="$1" '$1 == "RESULT" && $2 "." $3 == m { v = $5 } END { print v }' "$R"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }

echo "quote verification, per core (CPU $CLIENT_CPU), the same quote each time"
printf '%-44s %12s %12s %8s\n' "figure" "vtpm-attest" "checkquote" "ratio"
printf '%-44s %12s %12s %8s\n' "------" "-----------" "----------" "-----"
for ak in akecc akrsa; do
	case $ak in
	akecc) what="ECC P-256 AK" ;;
	*) what="RSA-2048 AK" ;;
	esac
	lib=$(val "verify.lib.$ak.per_s")
	cq=$(val "verify.checkquote.$ak.per_s")
	proc=$(val "verify.process.$ak.per_s")
	printf '%-44s %12s %12s %8s\n' "$what: library vs tpm2_checkquote (/s)" "$lib" "$cq" \
		"$(ratio "$lib" "$cq")"
	printf '%-44s %12s %12s %8s\n' "$what: process vs tpm2_checkquote (/s)" "$proc" "$cq" \
		"$(ratio "$proc" "$cq")"
	printf '%-44s %12s %12s %8s\n' "$what: CPU per check (us)" \
		"$(awk -v r="$(val "verify.lib.$ak.per_cpu_s")" 'BEGIN { printf "%.1f", 1e6 / r }')" \
		"$(awk -v r="$(val "verify.checkquote.$ak.per_cpu_s")" 'BEGIN { printf "%.1f", 1e6 / r }')" \
		"-"
done
echo
echo "vtpm-ca (parent and network child, on CPU $SERVER_CPU; database on $(df -T "$T" |
	awk 'NR == 2 { print $2 }'); clients on CPU $CLIENT_CPU)"
printf '%-44s %10s %10s %10s %12s\n' "figure" "per s" "median ms" "p99 ms" "CA CPU ms"
printf '%-44s %10s %10s %10s %12s\n' "------" "-----" "---------" "------" "---------"
for c in 1 2; do
	printf '%-44s %10s %10s %10s %12s\n' "EK certificates, $c client(s)" "$(val "ca.ek.c$c.per_s")" \
		"$(val "ca.ek.c$c.median_ms")" "$(val "ca.ek.c$c.p99_ms")" \
		"$(val "ca.ek.c$c.server_cpu_ms")"
done
printf '%-44s %10s %10s %10s %12s\n' "EK certificates, 2 clients / 1 client" \
	"$(awk -v a="$(val ca.ek.c2.per_s)" -v b="$(val ca.ek.c1.per_s)" 'BEGIN { printf "%.2f", a / b }')" \
	- - -
printf '%-44s %10s %10s %10s %12s\n' "AK rounds (challenge+activate+certify)" \
	"$(val ca.privacy.per_s)" "$(val ca.privacy.median_ms)" "$(val ca.privacy.p99_ms)" \
	"$(val ca.privacy.server_cpu_ms)"
printf '%-44s %10s %10s %10s %12s\n' "  the same, the CA's time alone" "$(val ca.privacy.ca_per_s)" \
	- - -
printf '%-44s %10s %10s %10s %12s\n' "  the vTPM's activation (ms per round)" \
	"$(val ca.privacy.tpm_ms)" - - -
cat <<EOF

ratio = vtpm-attest / tpm2_checkquote, checks per second. "library" is
attest_verify_quote() in a loop (build/bench_verify): the AK certificate's
chain to the Privacy CA root, the AK's signature, the nonce, the PCR digest,
the vTPM extension and require-host-config; the replay check against the
last quote recorded on disk (--state) is the command's and is left out.
"process" is \`vtpm-attest verify\` run once per check, as tpm2_checkquote is
(its state file removed before each run; each run also writes it, synced).
tpm2_checkquote checks less: the signature with a bare public key, the nonce
and the PCR digest, no certificate. CPU per check: the process's own (library)
or the children's (processes). EK certificates: each request is checked in
full (CK certificate, certification, quote, policy) and issues a new
certificate recorded in the CA's SQLite database (synchronous FULL); vtpm-ca's
network child parses and checks each request and asks its parent, which
holds the keys and the records, in a few messages; each has one poll loop,
so a second client only overlaps connection set-up and the client's side.
"CA CPU" is both processes'. AK rounds: one client, the vTPM
(a vtpmd instance) activating each credential.
EOF
stop_pid "$CA_PID"
