# Helpers for tests that need a host TPM and the vtpmd service; source it
# after tests/lib.sh. The host TPM is a swtpm simulator on loopback.

VTPMCTL=$TOP/build/vtpmctl
export TSS2_LOG=all+none

# start_host_tpm DIR: a swtpm TPM 2.0 on free loopback ports; sets HOST_TCTI.
start_host_tpm() {
	local dir=$1 port deadline pid
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(free_port_pair)
		swtpm socket --tpm2 --tpmstate dir="$dir" \
			--server type=tcp,port="$port",bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--flags not-need-init,startup-clear 2>>"$dir.log" &
		pid=$!
		TEST_PIDS+=("$pid")
		deadline=$((SECONDS + 20))
		until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
			kill -0 "$pid" 2>/dev/null || break
			[ "$SECONDS" -lt "$deadline" ] || fail "swtpm did not listen"
		done
		if kill -0 "$pid" 2>/dev/null; then
			HOST_TCTI="swtpm:host=127.0.0.1,port=$port"
			HOST_TPM_PID=$pid
			return
		fi
	done
	fail "could not start swtpm"
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

# jfield JSON FILTER: one field with jq, failing loudly on a missing field.
jfield() {
	jq -er "$2" <<<"$1" || fail "JSON has no $2: $1"
}
