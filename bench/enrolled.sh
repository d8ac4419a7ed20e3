# shellcheck shell=bash
# An enrolled host for the provisioning benches, as in make demo: source it
# after tests/lib.sh and tests/hosttpm.sh.
#   bench_ca:    a simulated host TPM with a manufacturer EK certificate,
#                vtpm-ca serving both roles over HTTPS; writes $T/vtpmd.conf
#                (ca-tls-root) for the vtpmd the caller starts.
#   bench_enrol: with that vtpmd serving: the host admitted, its
#                configuration approved (by vtpmd and by the CA), enrolled.

bench_ca() {
	start_host_tpm "$T/host"
	host_ek_certificate "$T/mfr"
	mkdir -p "$T/ca"
	"$VTPM_CA" init --db "$T/ca/ca.db" --name bench >/dev/null
	"$VTPM_CA" trust add --manufacturer "$T/mfr/mfr.pem" --db "$T/ca/ca.db" >/dev/null
	ca_tls "$T/tls"
	start_vtpm_ca ca --db "$T/ca/ca.db" --role both "${CA_TLS[@]}"
	echo "ca-tls-root = $CA_TLS_ROOT" >"$T/vtpmd.conf"
}

bench_enrol() {
	admit_host "$T/ca/ca.db" bench
	"$VTPMCTL" policy approve --current >/dev/null
	openssl pkey -in "$T/svc/state/approval.pem" -pubout -out "$T/approval.pub.pem" 2>/dev/null
	"$VTPM_CA" trust add --approval-key "$T/approval.pub.pem" --db "$T/ca/ca.db" >/dev/null
	"$VTPMCTL" policy --json | jq -c .current.values >"$T/values.json"
	"$VTPM_CA" approve-host-config --db "$T/ca/ca.db" --id bench \
		--pcrs "$("$VTPMCTL" policy --json | jq -r '.pcrs | map(tostring) | join(",")')" \
		--values "$T/values.json" >/dev/null
	"$VTPMCTL" host enroll --ca "$CA_URL" --ca-root "$T/ca/ca-root.pem" --name bench >/dev/null
}
