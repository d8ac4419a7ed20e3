#!/bin/bash
# State writes that fail (issue "Trust under attack": faults, with nothing
# lost): the instance's state directory on a small tmpfs (in a private
# mount namespace) that fills up, and an fdatasync that fails with EIO
# (strace fault injection). The guest's command gets a TPM error, never a
# false success (the TPM enters failure mode, as a TPM whose NV fails does);
# the previous state stays readable; once space returns, a power cycle
# (CMD_INIT: a VM reset) brings the last acknowledged state back and the
# instance writes again.
if [ -z "${VTPMD_DISKFULL_NS:-}" ]; then
	exec unshare -m --propagation private env VTPMD_DISKFULL_NS=1 bash "$0" "$@"
fi
source "$(dirname "$0")/../lib.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (a tmpfs mount)"
require_tools strace tpm2_nvdefine swtpm_ioctl
KEYFILE=$T/key
new_key "$KEYFILE"

NV8_INDEX=01500017

mkdir -p "$T/small"
mount -t tmpfs -o size=512k tmpfs "$T/small" || fail "mount tmpfs"
trap 'test_cleanup_small' EXIT
test_cleanup_small() {
	for pid in "${TEST_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	umount -l "$T/small" 2>/dev/null || true
	test_cleanup
}
start_tpm small/tpm unix --key-fd 3
tpm2_nvdefine 0x1500017 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null || fail "nvdefine"
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 1)")" "$WRITE_OK" "first NV write"

note "disk full: the write is refused with a TPM error, not acknowledged"
dd if=/dev/zero of="$T/small/fill" bs=4k 2>/dev/null || true
rsp=$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 2)")
[ "$rsp" != "$WRITE_OK" ] || fail "an NV write was acknowledged on a full disk"
rc=${rsp:12:8}
[ "$rc" != 00000000 ] || fail "a failed NV write answered success: $rsp"
note "  answered TPM_RC 0x$rc"
assert_contains "$(cat "$T/small/tpm.log")" "No space left on device" "the log names the cause"
[ -z "$(find "$T/small/tpm" -name '*.tmp')" ] || fail "a temporary file was left on the full disk"

note "space returns: a power cycle (CMD_INIT, as QEMU sends at a VM reset) and it writes again"
rm -f "$T/small/fill"
rsp=$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 3)")
[ "${rsp:12:8}" != 00000000 ] || fail "a TPM in failure mode acknowledged a write: $rsp"
swtpm_ioctl "${IOCTL[@]}" -i >/dev/null || fail "swtpm_ioctl -i"
"$TPMSEND" "$DATA_EP" 80010000000c000001440000 >/dev/null || fail "Startup"
assert_eq "$(nv_value)" 1 "NV after the power cycle: the last acknowledged value"
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 3)")" "$WRITE_OK" "NV write once space returned"
assert_eq "$(nv_value)" 3 "NV after space returned"
stop_pid "$INSTANCE_PID"
start_tpm small/tpm unix --key-fd 3
assert_eq "$(nv_value)" 3 "NV after a restart"

note "an fdatasync that fails with EIO: a TPM error, and the state before it survives"
: >"$T/strace.err"
strace -p "$INSTANCE_PID" -o /dev/null -e trace=fdatasync,fsync \
	-e inject=fdatasync,fsync:error=EIO:when=1 2>"$T/strace.err" &
sp=$!
TEST_PIDS+=("$sp")
until grep -qs attached "$T/strace.err"; do
	kill -0 "$sp" 2>/dev/null || fail "strace did not attach: $(cat "$T/strace.err")"
done
rsp=$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 4)")
kill -INT "$sp" 2>/dev/null || true
wait "$sp" 2>/dev/null || true
[ "$rsp" != "$WRITE_OK" ] || fail "an NV write whose sync failed was acknowledged"
note "  answered TPM_RC 0x${rsp:12:8}"
swtpm_ioctl "${IOCTL[@]}" -i >/dev/null || fail "swtpm_ioctl -i"
"$TPMSEND" "$DATA_EP" 80010000000c000001440000 >/dev/null || fail "Startup"
v=$(nv_value)
[ "$v" -eq 3 ] || fail "after a failed sync NV holds $v, not the acknowledged 3"
assert_eq "$("$TPMSEND" "$DATA_EP" "$(nv_write_cmd 5)")" "$WRITE_OK" "NV write after the I/O error"
stop_pid "$INSTANCE_PID"
start_tpm small/tpm unix --key-fd 3
assert_eq "$(nv_value)" 5 "NV after a restart"
stop_pid "$INSTANCE_PID"
