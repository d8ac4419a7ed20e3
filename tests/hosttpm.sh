# Helpers for tests that need a host TPM and the vtpmd service; source it
# after tests/lib.sh. The host TPM is a swtpm simulator on loopback.

VTPMCTL=$TOP/build/vtpmctl
export TSS2_LOG=all+none

# host_tpm_launch DIR PORT: swtpm on PORT (data) and PORT+1 (control) with
# its state in DIR; sets HOST_TPM_PID. Returns 0 once it listens, 1 when
# it exited (its port taken).
host_tpm_launch() {
	local deadline
	swtpm socket --tpm2 --tpmstate dir="$1" \
		--server type=tcp,port="$2",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$(($2 + 1)),bindaddr=127.0.0.1 \
		--flags not-need-init,startup-clear 2>>"$1.log" &
	HOST_TPM_PID=$!
	TEST_PIDS+=("$HOST_TPM_PID")
	deadline=$((SECONDS + 20))
	until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
		kill -0 "$HOST_TPM_PID" 2>/dev/null || return 1
		[ "$SECONDS" -lt "$deadline" ] || fail "swtpm did not listen on port $2"
	done
}

# start_host_tpm DIR: a swtpm TPM 2.0 on free loopback ports; sets HOST_TCTI.
start_host_tpm() {
	local dir=$1 port
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(free_port_pair)
		if host_tpm_launch "$dir" "$port"; then
			HOST_TCTI="swtpm:host=127.0.0.1,port=$port"
			HOST_TPM_PORT=$port
			HOST_TPM_DIR=$dir
			return
		fi
	done
	fail "could not start swtpm"
}

# restart_host_tpm: the host TPM of start_host_tpm started again on the
# same port and state (after a crash): a host TPM that comes back.
restart_host_tpm() {
	host_tpm_launch "$HOST_TPM_DIR" "$HOST_TPM_PORT" ||
		fail "swtpm did not start again on port $HOST_TPM_PORT: $(tail -3 "$HOST_TPM_DIR.log")"
}

# start_vtpmd NAME ARGS...: starts the service with its state and run
# directories under $T/NAME, waits until its API answers; sets VTPMD_PID and
# exports VTPMD_SOCKET for vtpmctl.
start_vtpmd() {
	local name=$1 deadline
	shift
	export VTPMD_SOCKET=$T/$name/run/api.sock
	"$VTPMD" --state-dir "$T/$name/state" --run-dir "$T/$name/run" \
		--socket "$VTPMD_SOCKET" "$@" 2>>"$T/$name.log" &
	VTPMD_PID=$!
	TEST_PIDS+=("$VTPMD_PID")
	deadline=$((SECONDS + 60))
	until "$VTPMCTL" host >/dev/null 2>&1; do
		if ! kill -0 "$VTPMD_PID" 2>/dev/null; then
			cat "$T/$name.log" >&2
			fail "vtpmd $name exited during start-up"
		fi
		[ "$SECONDS" -lt "$deadline" ] || fail "vtpmd $name did not answer"
	done
}

# wait_state NAME STATE [SECONDS]: polls vtpmctl info until instance NAME
# is in STATE (vtpmd starts what should run while its API already serves),
# failing after SECONDS (30) with the state it was in.
wait_state() {
	local name=$1 want=$2 deadline=$((SECONDS + ${3:-30})) st=""
	while :; do
		st=$("$VTPMCTL" info "$name" --json 2>/dev/null | jq -r .state || true)
		[ "$st" = "$want" ] && return 0
		[ "$SECONDS" -lt "$deadline" ] || fail "$name: state '$st', expected '$want'"
		sleep 0.05
	done
}

# jfield JSON FILTER: one field with jq, failing loudly on a missing field.
jfield() {
	jq -er "$2" <<<"$1" || fail "JSON has no $2: $1"
}

# host_ek_certificate DIR: what a TPM manufacturer provides, for the
# simulated host TPM ($HOST_TCTI): a throwaway manufacturer CA (openssl,
# DIR/mfr.pem and DIR/mfr.key), the RSA-2048 EK (TCG template) persisted at
# 0x81010001 and its certificate by that CA in NV 0x01c00002 (platform
# written, as the TCG EK profile says), DIR/ek-cert.der.
host_ek_certificate() {
	local dir=$1
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/mfr.key" -out "$dir/mfr.pem" -subj "/CN=simulated TPM manufacturer root" \
		-days 30 -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign 2>"$dir/openssl.err" ||
		fail "openssl req: $(cat "$dir/openssl.err")"
	TPM2TOOLS_TCTI=$HOST_TCTI tpm2_createek -G rsa -c 0x81010001 -u "$dir/ek.pub" >/dev/null ||
		fail "tpm2_createek on the host TPM"
	tpm2_print -t TPM2B_PUBLIC -f pem "$dir/ek.pub" >"$dir/ek.pem" || fail "tpm2_print EK"
	printf 'keyUsage = critical, keyEncipherment\n' >"$dir/ek.ext"
	openssl x509 -new -subj "/CN=simulated TPM EK" -force_pubkey "$dir/ek.pem" \
		-CA "$dir/mfr.pem" -CAkey "$dir/mfr.key" -days 30 -extfile "$dir/ek.ext" \
		-outform DER -out "$dir/ek-cert.der" 2>"$dir/openssl.err" ||
		fail "openssl x509 -new: $(cat "$dir/openssl.err")"
	TPM2TOOLS_TCTI=$HOST_TCTI tpm2_nvdefine 0x01c00002 -C p -s "$(stat -c %s "$dir/ek-cert.der")" \
		-a "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate" >/dev/null ||
		fail "tpm2_nvdefine 0x01c00002 on the host TPM"
	TPM2TOOLS_TCTI=$HOST_TCTI tpm2_nvwrite 0x01c00002 -C p -i "$dir/ek-cert.der" ||
		fail "tpm2_nvwrite 0x01c00002 on the host TPM"
}

# approval_pub_pem OUT: the approval public key of vtpmd at $VTPMD_SOCKET
# (vtpmctl policy --json), as a PEM public key: what its administrator
# gives the Privacy CA's operator.
approval_pub_pem() {
	local xy
	xy=$("$VTPMCTL" policy --json | jq -r '.approval_key.x + .approval_key.y') ||
		fail "vtpmctl policy --json"
	# SubjectPublicKeyInfo of an ECC P-256 key, then the uncompressed point
	printf '3059301306072a8648ce3d020106082a8648ce3d03010703420004%s' "$xy" | xxd -r -p |
		openssl pkey -pubin -inform DER -out "$1" || fail "the approval key of vtpmd"
}

# admit_host DB NAME: the Privacy CA's operator admits this host (vtpmd at
# $VTPMD_SOCKET) as NAME: its EK certificate exported from the host TPM by
# `vtpmctl host ek-cert` and vtpmd's approval public key, added with
# `vtpm-ca host add` ($VTPM_CA, default the sanitizer build) to the CA
# database DB.
admit_host() {
	local db=$1 name=$2 ca=${VTPM_CA:-$TOP/build/san/vtpm-ca}
	"$VTPMCTL" host ek-cert --out "$T/host-ek-$name.pem" >"$T/admit.out" 2>&1 ||
		fail "vtpmctl host ek-cert: $(cat "$T/admit.out")"
	approval_pub_pem "$T/host-approval-$name.pem"
	"$ca" host add "$name" --ek-cert "$T/host-ek-$name.pem" \
		--approval-key "$T/host-approval-$name.pem" --db "$db" >"$T/admit.out" 2>&1 ||
		fail "vtpm-ca host add $name: $(cat "$T/admit.out")"
}
