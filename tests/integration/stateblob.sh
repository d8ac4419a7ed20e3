#!/bin/bash
# No plaintext state leaves a worker (issue #12 item 3). On a running vTPM
# of the service, `swtpm_ioctl --save permanent` on its control socket (as
# its QEMU can) gives a blob that holds neither a marker the guest wrote to
# NV nor its persisted EK (its public modulus, stored beside the private
# part), and that swtpm and a plaintext instance cannot load. `--load` of
# an older blob of the same vTPM, of another vTPM's blob, and of a blob a
# second vtpmd (its own simulated host TPM) wrapped for its vTPM of the
# same name: each refused, naming why (both generations; both UUIDs;
# another host), and the vTPM keeps its state (the newest marker reads
# back). Its own current blob loads (a QEMU save and restore), and the
# restore is stored as a new generation. Before, each load succeeded and
# the blob held the marker and the EK in the clear.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools swtpm swtpm_ioctl tpm2_nvdefine tpm2_nvwrite tpm2_nvread tpm2_createek \
	tpm2_evictcontrol tpm2_startup jq od

NV=0x1500031
EK_HANDLE=0x81010001
hex() { od -An -tx1 -v "$1" | tr -d ' \n'; }
tcti_of() { jfield "$("$VTPMCTL" info "$1" --json)" .tcti; }
# ioctl SVC NAME ARGS...: swtpm_ioctl on vTPM NAME of the service SVC.
ioctl() {
	local svc=$1 name=$2
	shift 2
	swtpm_ioctl "$@" --unix "$T/$svc/run/$name.sock.ctrl"
}
nv_write() { # NAME HEX (32 bytes)
	local tcti
	tcti=$(tcti_of "$1")
	TPM2TOOLS_TCTI=$tcti tpm2_nvdefine "$NV" -C o -s 32 -a "ownerread|ownerwrite" \
		>/dev/null 2>&1 || true
	# shellcheck disable=SC2059
	printf "$(sed 's/../\\x&/g' <<<"$2")" >"$T/nv.in"
	TPM2TOOLS_TCTI=$tcti tpm2_nvwrite "$NV" -C o -i "$T/nv.in" || fail "nvwrite on $1"
}
nv_read() { # NAME: the index's 32 bytes as hex
	TPM2TOOLS_TCTI=$(tcti_of "$1") tpm2_nvread "$NV" -C o -s 32 -o "$T/nv.out" >/dev/null ||
		fail "nvread on $1"
	hex "$T/nv.out"
}
# restart_tpm SVC NAME: INIT after a STOP, then the guest's Startup.
restart_tpm() {
	ioctl "$1" "$2" -i || fail "INIT of $2"
	TPM2TOOLS_TCTI=$(tcti_of "$2") tpm2_startup -c || fail "Startup of $2"
}
# refused_load NAME BLOB WHY LOGTEXT: loading BLOB into vm-a (stopped)
# fails, vtpmd's log says LOGTEXT, and vm-a still holds marker $m2.
refused_load() {
	note "load of $1 refused ($2)"
	ioctl svc vm-a --stop
	if ioctl svc vm-a --load permanent "$2" 2>/dev/null; then
		fail "vm-a loaded $1"
	fi
	restart_tpm svc vm-a
	assert_eq "$(nv_read vm-a)" "$m2" "vm-a's NV marker after the refused load of $1"
	assert_contains "$(cat "$T/svc.log")" "$3" "vtpmd's log after the load of $1"
}

start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a"
"$VTPMCTL" create vm-b >/dev/null || fail "create vm-b"
uuid_a=$(jfield "$("$VTPMCTL" info vm-a --json)" .uuid)
uuid_b=$(jfield "$("$VTPMCTL" info vm-b --json)" .uuid)

note "vm-a: a marker in NV, its EK persisted"
m1=$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
nv_write vm-a "$m1"
TPM2TOOLS_TCTI=$(tcti_of vm-a) flushed tpm2_createek -c "$EK_HANDLE" -G rsa -u "$T/ek.pub" -Q ||
	fail "createek on vm-a"
# The RSA EK's public area ends with its 256-byte modulus.
ek_modulus=$(hex "$T/ek.pub" | tail -c 512)
[ "${#ek_modulus}" -eq 512 ] || fail "no modulus in the EK's public area"

note "--save permanent of the running vm-a: no marker, no EK"
ioctl svc vm-a --save permanent "$T/old.bin" || fail "save of vm-a"
[ -s "$T/old.bin" ] || fail "the saved blob is empty"
blob=$(hex "$T/old.bin")
[[ "$blob" != *"$m1"* ]] || fail "the saved blob holds the NV marker in the clear"
[[ "$blob" != *"$ek_modulus"* ]] || fail "the saved blob holds the EK in the clear"
assert_eq "$(head -c 7 "$T/old.bin")" "VTPMDBL" "the blob's magic"

note "a newer state: a second marker, saved again"
m2=$(head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n')
nv_write vm-a "$m2"
ioctl svc vm-a --save permanent "$T/new.bin" || fail "save of vm-a"
ioctl svc vm-b --save permanent "$T/b.bin" || fail "save of vm-b"

note "swtpm cannot load the blob"
mkdir -p "$T/swtpm"
port=$(free_port_pair)
swtpm socket --tpm2 --tpmstate dir="$T/swtpm" \
	--server type=tcp,port="$port",bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init \
	2>>"$T/swtpm.log" &
TEST_PIDS+=("$!")
until (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; do
	kill -0 "$!" 2>/dev/null || fail "swtpm did not start: $(cat "$T/swtpm.log")"
done
swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" --stop || fail "swtpm: stop"
if swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" --load permanent "$T/new.bin" 2>/dev/null &&
	swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" -i 2>/dev/null; then
	fail "swtpm loaded and started the blob"
fi

note "a plaintext instance cannot load the blob"
KEYFILE='' start_instance plain --state "$T/plain" --ctrl "unix:$T/plain.ctrl" \
	--plaintext-state
swtpm_ioctl --unix "$T/plain.ctrl" --stop
if swtpm_ioctl --unix "$T/plain.ctrl" --load permanent "$T/new.bin" 2>/dev/null; then
	fail "a plaintext instance loaded the blob"
fi
stop_pid "$INSTANCE_PID"

refused_load "vm-a's older blob" "$T/old.bin" "older than this instance's state"
refused_load "vm-b's blob" "$T/b.bin" "the blob is instance $uuid_b's, not this instance's ($uuid_a)"

note "a second vtpmd, its own host TPM, its own vm-a"
main_socket=$VTPMD_SOCKET
main_pid=$VTPMD_PID
start_host_tpm "$T/host2"
start_vtpmd svc2 --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve on svc2"
"$VTPMCTL" create vm-a >/dev/null || fail "create vm-a on svc2"
ioctl svc2 vm-a --save permanent "$T/host2.bin" || fail "save of svc2's vm-a"
kill "$VTPMD_PID"
wait "$VTPMD_PID" 2>/dev/null || true
export VTPMD_SOCKET=$main_socket
VTPMD_PID=$main_pid
refused_load "another host's blob" "$T/host2.bin" "the blob is wrapped for another host"

note "vm-a's own current blob loads (a save and restore), stored as a new generation"
gen() { od -An -tu8 --endian=big -j 16 -N 8 "$T/svc/state/instances/vm-a/state/permanent.state" |
	tr -d ' '; }
# Each Startup since changed the state: the blob of a save is the one
# taken when the VM stopped, as QEMU takes it.
ioctl svc vm-a --save permanent "$T/current.bin" || fail "save of vm-a"
ioctl svc vm-a --stop
before=$(gen)
ioctl svc vm-a --load permanent "$T/current.bin" || fail "vm-a refused its own current blob"
[ "$(gen)" -gt "$before" ] || fail "the restore was not stored as a new generation"
restart_tpm svc vm-a
assert_eq "$(nv_read vm-a)" "$m2" "vm-a's NV marker after its own blob"
assert_contains "$(cat "$T/svc.log")" "SET_STATEBLOB permanent.state: restored generation" \
	"vtpmd's log of the restore"
echo ok
