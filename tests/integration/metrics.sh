#!/bin/bash
# GET /metrics of vtpmd (vtpmctl metrics) and of vtpm-ca (issue #14;
# docs/api.md and docs/ca-api.md, "Metrics"): both pass `promtool check
# metrics` (Prometheus's own linter of the text format), and the counters
# move as the events happen:
#  - a start refused (no approved host configuration) counts under
#    vtpmd_start_failures_total{reason="refused"}, the instance under
#    vtpmd_instances{state="refused"};
#  - the approval's start counts in vtpmd_starts_total, its unseal and the
#    host TPM's commands in their histograms, its worker's memory is shown;
#  - a kill of the worker counts as a restart for a crash;
#  - a provisioned create (an enrolled host, a vTPM with its two EKs): the
#    CA requests by kind, the CA's certificates issued by kind (one CK,
#    two EKs), its request times by route; the CA's log lines of the
#    create name the instance (X-Vtpmd-Instance);
#  - a request the CA refuses counts in vtpm_ca_refusals_total by reason;
#  - a create whose CA is gone counts in vtpmd_ca_errors_total{reason=
#    "unreachable"}.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
# Sandboxed workers run the release build (LeakSanitizer cannot work in a
# chroot).
VTPMD=$TOP/build/vtpmd
CA=$TOP/build/san/vtpm-ca
[ "$(id -u)" -eq 0 ] || fail "metrics.sh needs root (vtpmd sandboxes its workers)"
require_tools promtool curl jq openssl swtpm tpm2_createek tpm2_nvdefine tpm2_nvwrite tpm2_print
for t in "$CA" "$VTPMD"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done

# metric FILE SAMPLE: the value of SAMPLE (name and labels, as written) in
# FILE, or 0 when FILE has no such sample.
metric() {
	awk -v s="$2" '$1 == s { v = $2 } END { print (v == "" ? 0 : v) }' "$1"
}

# scrape NAME: vtpmd's metrics into $T/NAME.prom, checked by promtool.
scrape() {
	"$VTPMCTL" metrics >"$T/$1.prom" 2>"$T/out" || fail "vtpmctl metrics: $(cat "$T/out")"
	promtool check metrics <"$T/$1.prom" >"$T/promtool.out" 2>&1 ||
		fail "promtool check metrics ($1): $(cat "$T/promtool.out")"
}

# scrape_ca NAME: the CA's metrics into $T/NAME.prom, checked by promtool.
scrape_ca() {
	curl -sS -f -o "$T/$1.prom" -D "$T/$1.head" "$CA_URL/metrics" 2>"$T/out" ||
		fail "GET $CA_URL/metrics: $(cat "$T/out")"
	grep -qi '^content-type: text/plain; version=0.0.4' "$T/$1.head" ||
		fail "the CA's /metrics content type: $(cat "$T/$1.head")"
	promtool check metrics <"$T/$1.prom" >"$T/promtool.out" 2>&1 ||
		fail "promtool check metrics ($1): $(cat "$T/promtool.out")"
}

# at_least FILE SAMPLE N WHAT
at_least() {
	local v
	v=$(metric "$1" "$2")
	awk -v v="$v" -v n="$3" 'BEGIN { exit !(v >= n) }' ||
		fail "$4: $2 is $v, expected at least $3"
}

note "a fresh vtpmd: its metrics pass promtool, nothing counted yet"
start_host_tpm "$T/host"
host_ek_certificate "$T/mfr" # before vtpmd, the host TPM's only user, takes its sessions
start_vtpmd svc --root-tcti "$HOST_TCTI"
scrape fresh
assert_eq "$(metric "$T/fresh.prom" vtpmd_starts_total)" 0 "starts before any"
assert_eq "$(metric "$T/fresh.prom" 'vtpmd_instances{state="running"}')" 0 "running instances"
assert_eq "$(metric "$T/fresh.prom" vtpmd_host_tpm_available)" 1 "host TPM available"
"$VTPMCTL" metrics --help | grep -q "Prometheus text exposition format" ||
	fail "vtpmctl metrics --help"
expect_exit 2 "vtpmctl metrics with an argument" "$VTPMCTL" metrics extra

note "a start refused: no approved host configuration"
"$VTPMCTL" create vm-a >"$T/out" 2>&1 && fail "create before any approval started vm-a"
wait_state vm-a refused
scrape refused
assert_eq "$(metric "$T/refused.prom" 'vtpmd_start_failures_total{reason="refused"}')" 1 \
	"the refusal counted"
assert_eq "$(metric "$T/refused.prom" 'vtpmd_instances{state="refused"}')" 1 "refused instances"
assert_eq "$(metric "$T/refused.prom" vtpmd_starts_total)" 0 "no start yet"

note "the approval starts vm-a: a start, an unseal, host-TPM commands, its memory"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
wait_state vm-a running
scrape started
assert_eq "$(metric "$T/started.prom" vtpmd_starts_total)" 1 "the start counted"
assert_eq "$(metric "$T/started.prom" 'vtpmd_instances{state="running"}')" 1 "running"
assert_eq "$(metric "$T/started.prom" vtpmd_unseal_duration_seconds_count)" 1 "unseals timed"
at_least "$T/started.prom" vtpmd_host_tpm_command_duration_seconds_count 10 "host-TPM commands"
assert_eq "$(metric "$T/started.prom" vtpmd_host_tpm_command_duration_seconds_count)" \
	"$(metric "$T/started.prom" vtpmd_host_tpm_commands_total)" "every host-TPM command timed"
at_least "$T/started.prom" 'vtpmd_worker_resident_bytes{instance="vm-a"}' 1000000 \
	"vm-a's worker memory"
at_least "$T/started.prom" vtpmd_state_writes_total 1 "vm-a's state writes"
at_least "$T/started.prom" vtpmd_state_commit_duration_seconds_count 1 "freshness commits"

note "a crash of vm-a's worker: a restart for a crash, and a start"
pid=$("$VTPMCTL" info vm-a --json | jq -r .pid)
kill -KILL "$pid"
deadline=$((SECONDS + 30))
until [ "$("$VTPMCTL" info vm-a --json | jq -r .pid)" != "$pid" ] &&
	[ "$("$VTPMCTL" info vm-a --json | jq -r .state)" == running ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "vm-a's worker was not restarted"
	sleep 0.05
done
scrape restarted
assert_eq "$(metric "$T/restarted.prom" 'vtpmd_restarts_total{reason="crash"}')" 1 \
	"the restart counted"
assert_eq "$(metric "$T/restarted.prom" vtpmd_starts_total)" 2 "the restart's start counted"

note "an enrolled host; vm-b provisioned with both EKs"
DB=$T/ca/ca.db
mkdir -p "$T/ca"
"$CA" init --db "$DB" --name metrics >/dev/null || fail "vtpm-ca init"
"$CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$DB" >/dev/null || fail "trust add"
openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$T/approval.pub.pem" 2>/dev/null ||
	fail "the approval key's public half"
"$CA" trust add --approval-key "$T/approval.pub.pem" --db "$DB" >/dev/null ||
	fail "trust add --approval-key"
"$VTPMCTL" policy --json >"$T/policy.json"
jq -c .current.values "$T/policy.json" >"$T/values.json"
"$CA" approve-host-config --db "$DB" --id rack1-1 \
	--pcrs "$(jq -r '.pcrs | map(tostring) | join(",")' "$T/policy.json")" \
	--values "$T/values.json" >/dev/null || fail "approve-host-config"
start_vtpm_ca ca --db "$DB" --role both
scrape_ca ca-fresh
assert_eq "$(metric "$T/ca-fresh.prom" 'vtpm_ca_certificates_issued_total{kind="ck"}')" 0 \
	"CK certificates before any"
assert_eq "$(metric "$T/ca-fresh.prom" vtpm_ca_network_children_started_total)" 1 "children"
admit_host "$DB" rack1
"$VTPMCTL" host enroll --ca "$CA_URL" --ca-root "$T/ca/ca-root.pem" --name rack1 >"$T/out" 2>&1 ||
	fail "host enroll: $(cat "$T/out")"
"$VTPMCTL" create vm-b --json >"$T/vm-b.json" 2>&1 || fail "create vm-b: $(cat "$T/vm-b.json")"
assert_eq "$(jq '.endorsement.eks | length' "$T/vm-b.json")" 2 "vm-b's EKs"
scrape provisioned
assert_eq "$(metric "$T/provisioned.prom" \
	'vtpmd_ca_request_duration_seconds_count{request="challenge"}')" 1 "challenges asked"
assert_eq "$(metric "$T/provisioned.prom" \
	'vtpmd_ca_request_duration_seconds_count{request="certify"}')" 1 "certifies asked"
assert_eq "$(metric "$T/provisioned.prom" \
	'vtpmd_ca_request_duration_seconds_count{request="nonce"}')" 1 "nonces asked"
assert_eq "$(metric "$T/provisioned.prom" \
	'vtpmd_ca_request_duration_seconds_count{request="ek-certificate"}')" 1 \
	"EK certificate requests (one for the set)"
assert_eq "$(metric "$T/provisioned.prom" 'vtpmd_ca_errors_total{reason="unreachable"}')" 0 \
	"CA errors"
scrape_ca ca-issued
assert_eq "$(metric "$T/ca-issued.prom" 'vtpm_ca_certificates_issued_total{kind="ck"}')" 1 \
	"CK certificates issued"
assert_eq "$(metric "$T/ca-issued.prom" 'vtpm_ca_certificates_issued_total{kind="ek"}')" 2 \
	"EK certificates issued"
assert_eq "$(metric "$T/ca-issued.prom" 'vtpm_ca_open_challenges')" 0 "open challenges"
assert_eq "$(metric "$T/ca-issued.prom" \
	'vtpm_ca_request_duration_seconds_count{route="ek-certificate"}')" 1 "EK requests timed"

note "the CA's log lines of vm-b's create name it"
grep -q "virtualization/nonce (for instance vm-b): " "$T/ca.log" ||
	fail "the CA's nonce line does not name vm-b: $(grep nonce "$T/ca.log")"
grep -q "virtualization/ek-certificate (for instance vm-b): issued" "$T/ca.log" ||
	fail "the CA's EK certificate line does not name vm-b: $(grep ek-cert "$T/ca.log")"
code=$(curl -s -o "$T/out" -w '%{http_code}' -H 'X-Vtpmd-Instance: ../etc' \
	-X POST -d '{}' "$CA_URL/v1/virtualization/nonce")
assert_eq "$code" 400 "a request whose X-Vtpmd-Instance is no instance name"
assert_contains "$(cat "$T/out")" "X-Vtpmd-Instance: not an instance name" "its error"

note "a request the CA refuses"
body=$(jq -cn --arg id "$(printf '%032d' 0)" --arg s "$(head -c 32 /dev/zero | base64)" \
	'{id: $id, secret: $s}')
code=$(curl -s -o "$T/out" -w '%{http_code}' -X POST -d "$body" "$CA_URL/v1/privacy/certify")
assert_eq "$code" 404 "a certify of an unknown challenge"
scrape_ca ca-refused
assert_eq "$(metric "$T/ca-refused.prom" 'vtpm_ca_refusals_total{reason="not-found"}')" 1 \
	"the refusal counted"
assert_eq "$(metric "$T/ca-refused.prom" 'vtpm_ca_refusals_total{reason="malformed"}')" 0 \
	"the header's refusal, by the HTTP layer before any route, not counted"

note "the CA gone: a create fails, and counts as a CA error"
kill_hard "$CA_PID"
"$VTPMCTL" create vm-c >"$T/out" 2>&1 && fail "create vm-c without its CA succeeded"
assert_contains "$(cat "$T/out")" "HTTP 502" "create vm-c without its CA"
scrape ca-gone
assert_eq "$(metric "$T/ca-gone.prom" 'vtpmd_ca_errors_total{reason="unreachable"}')" 1 \
	"the CA error counted"
assert_eq "$(metric "$T/ca-gone.prom" \
	'vtpmd_ca_request_duration_seconds_count{request="nonce"}')" 2 "the failed nonce request timed"
echo "metrics.sh: OK"
