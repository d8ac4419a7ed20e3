# Helpers for the e2e tests that boot a real guest under QEMU with a vtpmd
# instance as its TPM (-tpmdev emulator). Source it after tests/lib.sh.
# The guest is scripts/guest-kernel.sh's kernel and initramfs; its /init
# (tests/e2e/guest/init) documents the steps and the console markers.
#
# One VM at a time: vm_start sets VM_NAME and VM_PID. Its files in $T:
#   NAME.console   serial console (ttyS0) output, where the markers appear
#   NAME.ser1.*    ttyS1 (fifos): vm_send writes the guest's go-ahead there
#   NAME.qmp.*     QMP monitor (fifos), driven by qmp
#   NAME.qemu.log  QEMU's own output
# shellcheck shell=bash disable=SC2034 # the tests read the variables set here

QEMU=${QEMU:-qemu-system-x86_64}
# Upper bound for one VM run, in seconds (it takes a few under TCG).
VM_TIMEOUT=${VM_TIMEOUT:-90}
VM_PGIDS=()

# Each VM runs under `timeout`, in its own process group; on exit, kill the
# groups still running (the pid in TEST_PIDS is only the timeout process).
vm_cleanup() {
	local pg
	for pg in "${VM_PGIDS[@]}"; do
		kill -KILL -- "-$pg" 2>/dev/null || true
	done
}
trap 'vm_cleanup; test_cleanup' EXIT

# guest_prepare: builds or finds the cached guest; sets GUEST_KERNEL and
# GUEST_INITRD.
guest_prepare() {
	"$TOP/scripts/guest-kernel.sh" || fail "cannot build the guest (scripts/guest-kernel.sh)"
	GUEST_KERNEL=$TOP/cache/guest/vmlinuz
	GUEST_INITRD=$TOP/cache/guest/initrd.gz
	command -v "$QEMU" >/dev/null || fail "$QEMU not found: run 'sudo make deps'"
}

# rand_hex N: N random bytes in hex.
rand_hex() {
	od -An -tx1 -v -N"$1" /dev/urandom | tr -d ' \n'
}

# pcr_extend OLD NEW: the PCR value after extending OLD (hex) with NEW
# (hex): sha256(OLD || NEW).
pcr_extend() {
	# shellcheck disable=SC2059
	printf "$(echo "$1$2" | sed 's/../\\x&/g')" | sha256sum | cut -d' ' -f1
}

ZERO_PCR=$(printf '0%.0s' {1..64})

# vm_start NAME TPM_SOCKET MODEL APPEND [QEMU ARGS...]: boots the guest with
# MODEL (tpm-tis or tpm-crb) backed by the swtpm-protocol control socket
# TPM_SOCKET, APPEND added to the kernel command line.
vm_start() {
	local name=$1 sock=$2 model=$3 append=$4 f
	shift 4
	VM_NAME=$name
	for f in ser1.in ser1.out qmp.in qmp.out; do
		mkfifo "$T/$name.$f"
	done
	# Held open read-write here, so that neither side ever blocks in open()
	# and QEMU's output never fills a pipe nobody drains.
	exec {VM_SER1}<>"$T/$name.ser1.in" {VM_SER1_OUT}<>"$T/$name.ser1.out" \
		{QMP_IN}<>"$T/$name.qmp.in" {QMP_OUT}<>"$T/$name.qmp.out"
	: >"$T/$name.console"
	timeout -k 5 "$VM_TIMEOUT" "$QEMU" -nodefaults -no-user-config \
		-machine pc,accel=tcg -m 128 -smp 1 -display none -no-reboot \
		-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
		-append "console=ttyS0 quiet panic=-1 $append" \
		-chardev "file,id=con,path=$T/$name.console" -serial chardev:con \
		-chardev "pipe,id=ser1,path=$T/$name.ser1" -serial chardev:ser1 \
		-chardev "pipe,id=qmp,path=$T/$name.qmp" -mon chardev=qmp,mode=control \
		-chardev "socket,id=chrtpm,path=$sock" \
		-tpmdev emulator,id=tpm0,chardev=chrtpm -device "$model,tpmdev=tpm0" \
		"$@" </dev/null >"$T/$name.qemu.log" 2>&1 &
	VM_PID=$!
	TEST_PIDS+=("$VM_PID")
	VM_PGIDS+=("$VM_PID")
	VM_START=$(date +%s%N)
}

# vm_dump: shows what the current VM printed (for failures).
vm_dump() {
	echo "--- $VM_NAME console:" >&2
	tr -d '\r' <"$T/$VM_NAME.console" | tail -n 40 >&2
	echo "--- $VM_NAME qemu stderr:" >&2
	cat "$T/$VM_NAME.qemu.log" >&2
}

# vm_fail MESSAGE: fails the test, showing the VM's output.
vm_fail() {
	vm_dump
	fail "$VM_NAME: $*"
}

# vm_wait_marker MARKER: waits until a console line starts with MARKER
# (e.g. VTPM-END, VTPM-WAIT); fails if the VM exits or times out first.
vm_wait_marker() {
	until tr -d '\r' <"$T/$VM_NAME.console" | grep -q "^$1"; do
		kill -0 "$VM_PID" 2>/dev/null || vm_fail "exited before printing $1"
		sleep 0.05
	done
}

# vm_wait_exit: waits for the guest to power off and QEMU to exit 0; sets
# VM_MS to the VM's run time in milliseconds.
vm_wait_exit() {
	local rc=0
	wait "$VM_PID" || rc=$?
	VM_MS=$((($(date +%s%N) - VM_START) / 1000000))
	vm_close
	[ "$rc" -ne 124 ] || vm_fail "did not finish within $VM_TIMEOUT s"
	[ "$rc" -eq 0 ] || vm_fail "QEMU exited with $rc"
}

# vm_close: forgets the current VM's fifos once its QEMU has exited.
vm_close() {
	exec {VM_SER1}>&- {VM_SER1_OUT}>&- {QMP_IN}>&- {QMP_OUT}>&-
	local pg keep=()
	for pg in "${VM_PGIDS[@]}"; do
		[ "$pg" = "$VM_PID" ] || keep+=("$pg")
	done
	VM_PGIDS=("${keep[@]}")
}

# vm_result KEY: the value of the console line "VTPM-RESULT KEY=value"
# (the last one if there are several).
vm_result() {
	tr -d '\r' <"$T/$VM_NAME.console" | sed -n "s/^VTPM-RESULT $1=//p" | tail -n1
}

# vm_check_ok: the guest ended with "VTPM-END ok".
vm_check_ok() {
	tr -d '\r' <"$T/$VM_NAME.console" | grep -q "^VTPM-END ok" ||
		vm_fail "the guest reported a failure"
}

# vm_check_tpm2 DRIVER: the booting guest found a TPM 2.0 at
# /sys/class/tpm/tpm0, bound to DRIVER (tpm_tis or tpm_crb).
vm_check_tpm2() {
	assert_eq "$(vm_result tpm_version_major)" 2 "$VM_NAME: /sys/class/tpm/tpm0/tpm_version_major"
	assert_eq "$(vm_result tpm0)" "$1" "$VM_NAME: driver of /sys/class/tpm/tpm0"
}

# vm_send LINE: writes LINE to the guest's ttyS1.
vm_send() {
	printf '%s\n' "$1" >&"$VM_SER1"
}

# qmp JSON: runs one QMP command on the current VM; sets QMP_REPLY to its
# reply line (events are skipped); fails on an error reply or no reply.
qmp() {
	local line
	printf '%s\n' "$1" >&"$QMP_IN"
	while :; do
		read -r -t 30 -u "$QMP_OUT" line || vm_fail "no QMP reply to $1"
		case "$line" in
		*'"return"'*) break ;;
		*'"error"'*) vm_fail "QMP $1: $line" ;;
		esac
	done
	QMP_REPLY=$line
}

# qmp_connect: reads the QMP greeting and enables commands.
qmp_connect() {
	local line
	read -r -t 30 -u "$QMP_OUT" line || vm_fail "no QMP greeting"
	assert_contains "$line" '"QMP"' "QMP greeting"
	qmp '{"execute": "qmp_capabilities"}'
}

# qmp_wait_migration: polls query-migrate until the migration completed;
# fails if it failed or the VM died.
qmp_wait_migration() {
	while :; do
		qmp '{"execute": "query-migrate"}'
		case "$QMP_REPLY" in
		*'"status": "completed"'*) return 0 ;;
		*'"status": "failed"'* | *'"status": "cancelled"'*) vm_fail "migration: $QMP_REPLY" ;;
		esac
		sleep 0.05
	done
}

# wait_exit PID WHAT: waits (at most 30 s) for PID to exit by itself and
# checks its status is 0.
wait_exit() {
	local deadline=$((SECONDS + 30)) rc=0
	while kill -0 "$1" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$2 did not exit"
		sleep 0.05
	done
	wait "$1" || rc=$?
	[ "$rc" -eq 0 ] || fail "$2 exited with $rc"
}
