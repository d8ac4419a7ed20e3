# shellcheck shell=bash disable=SC2034 # variables set here are for the tests
# Shared helpers for integration and e2e tests; source it first thing.
# Every test gets a fresh directory ($T) and leaves no process behind.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Tests run the sanitizer build of vtpmd unless VTPMD is set.
VTPMD=${VTPMD:-$TOP/build/san/vtpmd}
TPMSEND=$TOP/build/tpmsend
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$TOP/tests/lsan.supp:print_suppressions=0}

T=$(mktemp -d /tmp/vtpmd-test.XXXXXX)
TEST_PIDS=()

test_cleanup() {
	local pid
	for pid in "${TEST_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	# vtpmd's workers outlive vtpmd by design (their own session): end
	# every process whose command line names this test's directory.
	pkill -KILL -f -- "$T/" 2>/dev/null || true
	rm -rf "$T"
}
trap test_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

note() {
	echo "--- $*"
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	[ "$1" == "$2" ] || fail "$3: expected '$2', got '$1'"
}

# assert_contains HAYSTACK NEEDLE WHAT
assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "$3: expected to contain '$2', got: $1" ;;
	esac
}

# new_key FILE: a fresh 32-byte state key.
new_key() {
	head -c 32 /dev/urandom >"$1"
}

# spawn_instance NAME ARGS...: starts `vtpmd instance ARGS` in the
# background and waits until it is serving (--ready-fd). Returns 0 with
# INSTANCE_PID set, or 1 with INSTANCE_RC set to its exit status when it
# exited (or was killed after 30 s) instead. Its stderr goes to $T/NAME.log.
# Pass the key as "--key-fd 3" and set KEYFILE, or use --plaintext-state.
spawn_instance() {
	local name=$1 line=""
	shift
	rm -f "$T/$name.ready"
	mkfifo "$T/$name.ready"
	if [ -n "${KEYFILE:-}" ]; then
		"$VTPMD" instance --name "$name" --ready-fd 4 "$@" 3<"$KEYFILE" 4>"$T/$name.ready" \
			2>>"$T/$name.log" &
	else
		"$VTPMD" instance --name "$name" --ready-fd 4 "$@" 4>"$T/$name.ready" \
			2>>"$T/$name.log" &
	fi
	INSTANCE_PID=$!
	TEST_PIDS+=("$INSTANCE_PID")
	read -r -t 30 line <"$T/$name.ready" || true
	rm -f "$T/$name.ready"
	[ "$line" == "READY" ] && return 0
	kill -KILL "$INSTANCE_PID" 2>/dev/null || true
	INSTANCE_RC=0
	wait "$INSTANCE_PID" || INSTANCE_RC=$?
	return 1
}

# start_instance NAME ARGS...: spawn_instance, failing the test (with the
# instance's log) unless it becomes ready.
start_instance() {
	local name=$1
	if ! spawn_instance "$@"; then
		cat "$T/$name.log" >&2
		fail "instance $name did not become ready (exit status $INSTANCE_RC)"
	fi
}

# stop_pid PID: SIGTERM and wait; fails if it exits non-zero.
stop_pid() {
	local rc=0
	kill -TERM "$1"
	wait "$1" || rc=$?
	[ "$rc" -eq 0 ] || fail "process $1 exited with $rc"
}

# free_port_pair: prints a port P such that P and P+1 were free just now.
# The caller retries its start if the port was taken in between.
free_port_pair() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null &&
			! (exec 3<>/dev/tcp/127.0.0.1/$((p + 1))) 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# require_tools TOOL...: fails loudly when a tool the test needs is missing.
require_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null ||
			fail "$t is not installed (scripts/install-deps.sh installs the test tools)"
	done
}

# start_tpm NAME unix|tcp ARGS...: an instance with state in $T/NAME and a
# data channel for tpm2-tools, started with Startup(CLEAR) (unless ARGS
# contain --no-startup, which is removed). Sets INSTANCE_PID, DATA_EP and
# CTRL_EP (vtpmd/tpmsend endpoints), IOCTL (swtpm_ioctl's transport
# arguments, an array) and TCTI, and exports TPM2TOOLS_TCTI=$TCTI. TCP ports
# are picked free; a start that loses its port to a race is retried.
start_tpm() {
	local name=$1 transport=$2 port try startup=(--startup clear) args=() a
	shift 2
	for a in "$@"; do
		if [ "$a" == "--no-startup" ]; then startup=(); else args+=("$a"); fi
	done
	case "$transport" in
	unix)
		DATA_EP=unix:$T/$name.sock
		CTRL_EP=unix:$T/$name.sock.ctrl
		IOCTL=(--unix "$T/$name.sock.ctrl")
		TCTI=swtpm:path=$T/$name.sock
		start_instance "$name" --state "$T/$name" --data "$DATA_EP" --ctrl "$CTRL_EP" \
			"${startup[@]}" "${args[@]}"
		;;
	tcp)
		for try in 1 2 3 4 5 6 7 8; do
			port=$(free_port_pair)
			DATA_EP=tcp:127.0.0.1:$port
			CTRL_EP=tcp:127.0.0.1:$((port + 1))
			IOCTL=(--tcp "127.0.0.1:$((port + 1))")
			TCTI=swtpm:host=127.0.0.1,port=$port
			spawn_instance "$name" --state "$T/$name" --data "$DATA_EP" --ctrl "$CTRL_EP" \
				"${startup[@]}" "${args[@]}" && break
			[ "$INSTANCE_RC" -eq 4 ] && [ "$try" -lt 8 ] ||
				{ cat "$T/$name.log" >&2; fail "instance $name did not start on TCP"; }
		done
		;;
	*) fail "start_tpm: transport must be unix or tcp, not $transport" ;;
	esac
	export TPM2TOOLS_TCTI=$TCTI
}

# expect_exit STATUS WHAT CMD...: runs CMD (at most 30 s), which must exit
# with STATUS; its stdout and stderr are left in $T/out.
expect_exit() {
	local want=$1 what=$2 rc=0
	shift 2
	timeout -k 5 30 "$@" >"$T/out" 2>&1 || rc=$?
	[ "$rc" -eq "$want" ] || fail "$what: exit status $rc, expected $want; output: $(cat "$T/out")"
}

# run_instance STATUS WHAT ARGS...: runs `vtpmd instance ARGS` in the
# foreground (the key from KEYFILE on descriptor 3, if set), expecting it to
# exit with STATUS without serving; its output is left in $T/out.
run_instance() {
	local want=$1 what=$2
	shift 2
	if [ -n "${KEYFILE:-}" ]; then
		expect_exit "$want" "$what" "$VTPMD" instance "$@" 3<"$KEYFILE"
	else
		expect_exit "$want" "$what" "$VTPMD" instance "$@"
	fi
}

# wait_status PID: waits for PID (a child of this shell, so not from a
# $(...) subshell) and sets STATUS to its exit status.
wait_status() {
	STATUS=0
	wait "$1" || STATUS=$?
}

# flushed CMD...: runs a tpm2-tools command, then flushes the transient
# objects and sessions it left loaded (there is no resource manager, and
# the TPM has only 3 object slots). Returns CMD's status.
flushed() {
	local rc=0
	"$@" || rc=$?
	tpm2_flushcontext -t >/dev/null 2>&1 || true
	tpm2_flushcontext -s >/dev/null 2>&1 || true
	return "$rc"
}

# hex_of FILE: the file's bytes as lowercase hex on one line.
hex_of() {
	od -An -tx1 -v "$1" | tr -d ' \n'
}

# sha256_of_hex HEX: SHA-256 (hex) of the bytes HEX encodes.
sha256_of_hex() {
	# shellcheck disable=SC2059
	printf "$(sed 's/../\\x&/g' <<<"$1")" | sha256sum | cut -c1-64
}

# pcr_after OLD DIGEST: a sha256 PCR's value after extending OLD with DIGEST.
pcr_after() {
	sha256_of_hex "$1$2"
}

# pcr_value PCR: the sha256 bank's value of PCR, lowercase hex.
pcr_value() {
	tpm2_pcrread "sha256:$1" | sed -n "s/^ *$1 *: 0x//p" | tr 'A-F' 'a-f'
}

# flip_byte FILE OFFSET: inverts the bits of one byte of FILE in place.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "$(printf '\\x%02x' $((b ^ 0xff)))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# proc_mem_kb PID FIELD: a memory figure of a process from /proc/PID/status
# (VmSize, VmRSS, VmHWM...), in KiB.
proc_mem_kb() {
	sed -n "s/^$2:[[:space:]]*\\([0-9]*\\) kB/\\1/p" "/proc/$1/status"
}

# hexcat PART...: the hex strings PART concatenated (to write a raw command
# field by field).
hexcat() {
	printf '%s' "$@"
}

# kill_hard PID: SIGKILL a child of this shell and reap it, without the
# shell's "Killed" notice.
kill_hard() {
	{
		kill -KILL "$1"
		wait "$1"
	} 2>/dev/null || true
}

# wait_http URL PID: polls URL until an HTTP server answers there, while
# PID (the server) lives. Returns 0 when it answered, 1 when PID exited or
# 30 s passed. An https:// URL is polled without checking the server's
# certificate (readiness only: the tests check it with vtpmd's client).
wait_http() {
	local deadline=$((SECONDS + 30))
	until curl -s -k -o /dev/null --max-time 5 "$1"; do
		kill -0 "$2" 2>/dev/null || return 1
		[ "$SECONDS" -lt "$deadline" ] || return 1
	done
}

# tls_root DIR NAME: a throwaway TLS root CA (EC P-256), DIR/NAME.pem and
# DIR/NAME.key.
tls_root() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/$2.key" -out "$1/$2.pem" -subj "/CN=$2" -days 30 \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>"$1/openssl.err" ||
		fail "openssl req (TLS root $2): $(cat "$1/openssl.err")"
}

# tls_server_cert DIR NAME SAN [ROOT]: a TLS server certificate for SAN
# (subjectAltName, e.g. IP:127.0.0.1,DNS:localhost), DIR/NAME.pem and
# DIR/NAME.key, issued by DIR/ROOT.pem (tls_root), or self-signed without
# ROOT. This is the documented way to make one (docs/ca-api.md, "TLS").
tls_server_cert() {
	local issuer=()
	[ -z "${4:-}" ] || issuer=(-CA "$1/$4.pem" -CAkey "$1/$4.key")
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/$2.key" -out "$1/$2.pem" -subj "/CN=$2" -days 30 "${issuer[@]}" \
		-addext "subjectAltName=$3" -addext basicConstraints=critical,CA:FALSE \
		-addext keyUsage=critical,digitalSignature -addext extendedKeyUsage=serverAuth \
		2>"$1/openssl.err" ||
		fail "openssl req (TLS certificate $2): $(cat "$1/openssl.err")"
}

# ca_tls DIR: a TLS root (DIR/tls-root.pem) and vtpm-ca's server
# certificate under it for 127.0.0.1 (DIR/tls.pem, DIR/tls.key); sets
# CA_TLS=(--tls-cert DIR/tls.pem --tls-key DIR/tls.key) for start_vtpm_ca
# and CA_TLS_ROOT.
ca_tls() {
	mkdir -p "$1"
	tls_root "$1" tls-root
	tls_server_cert "$1" tls IP:127.0.0.1,DNS:localhost tls-root
	CA_TLS=(--tls-cert "$1/tls.pem" --tls-key "$1/tls.key")
	CA_TLS_ROOT=$1/tls-root.pem
}

# start_vtpm_ca NAME ARGS...: `vtpm-ca serve ARGS` ($VTPM_CA, default the
# sanitizer build) on a free loopback port, retried when another process
# took the port first; waits until it answers. As root, its network child
# runs as $VTPM_CA_USER (default 40100:40100; ARGS may give --user again).
# Sets CA_URL (https:// when ARGS hold --tls-cert) and CA_PID (the
# parent); its stderr goes to $T/NAME.log.
start_vtpm_ca() {
	local name=$1 port user=() scheme=http
	shift
	case " $* " in *" --tls-cert "*) scheme=https ;; esac
	[ "$(id -u)" -ne 0 ] || user=(--user "${VTPM_CA_USER:-40100:40100}")
	for _ in 1 2 3 4 5 6 7 8; do
		port=$(free_port_pair)
		"${VTPM_CA:-$TOP/build/san/vtpm-ca}" serve --listen "127.0.0.1:$port" "${user[@]}" "$@" \
			2>>"$T/$name.log" &
		CA_PID=$!
		TEST_PIDS+=("$CA_PID")
		if wait_http "$scheme://127.0.0.1:$port/v1/privacy/ca" "$CA_PID"; then
			CA_URL=$scheme://127.0.0.1:$port
			return 0
		fi
		kill_hard "$CA_PID"
		grep -q "Address already in use" "$T/$name.log" ||
			{ cat "$T/$name.log" >&2; fail "vtpm-ca serve ($name) did not start"; }
	done
	fail "vtpm-ca serve ($name): no free port"
}

# Raw commands on an 8-byte owner NV index (NV8_INDEX, hex, set by the
# test) for the crash-safety tests: handles owner and index, then an empty
# password session (TPM_RS_PW). nv_write_cmd VALUE: TPM2_NV_Write (0x137)
# of VALUE at offset 0; WRITE_OK its success; nv_value: TPM2_NV_Read
# (0x14e) of the 8 bytes through $TPMSEND at $DATA_EP, as a number.
nv8_auth() {
	hexcat 40000001 "$NV8_INDEX" 00000009 40000009 0000 00 0000
}
nv_write_cmd() {
	printf '%s%s%s0008%016x0000' 8002 0000002b00000137 "$(nv8_auth)" "$1"
}
WRITE_OK=80020000001300000000000000000000010000
nv_value() {
	local rsp
	rsp=$("$TPMSEND" "$DATA_EP" "$(hexcat 8002 00000023 0000014e "$(nv8_auth)" 0008 0000)")
	[[ "$rsp" =~ ^80020000001d000000000000000a0008([0-9a-f]{16})0000010000$ ]] ||
		fail "NV_Read answered $rsp"
	echo $((16#${BASH_REMATCH[1]}))
}
