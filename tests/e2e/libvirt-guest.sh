#!/bin/bash
# A libvirt guest uses a vTPM that the vtpmd service runs, through libvirt's
# `external` TPM backend, unchanged: the domain XML names only the control
# socket `vtpmctl info` prints, and libvirt passes it to QEMU as
# `-tpmdev emulator`. QEMU runs unprivileged, as libvirt-qemu with a group
# made for the test as its group, which vtpmd's `socket-group` gives the
# worker's sockets to (libvirt does not relabel a socket it did not create:
# without socket-group, QEMU is refused). The guest (direct kernel boot,
# TCG) writes and reads an NV index; afterwards the value is read on the
# host through vm-a's own TCTI, and vtpmd has restarted vm-a's worker,
# which ended with the VM.
#
# libvirt runs embedded (the QEMU driver inside virsh, URI
# qemu:///embed?root=$T/embed): no libvirtd, no virtlogd, no port; every
# file of the driver is under $T/embed, its configuration in
# $T/embed/etc/qemu.conf: QEMU as libvirt-qemu:GROUP with libvirt's DAC
# driver and its dynamic ownership (it hands the kernel, initramfs and
# console file, copies under $T, to QEMU's user and back), no AppArmor or
# SELinux driver (security_driver "none": neither is available where the
# tests run), no cgroups, no private /dev, stdio to plain files (no
# virtlogd). $T is opened to others' search (0711) for QEMU's user.
# (virt-qemu-run, made for this, does not exit when the domain stops in
# libvirt 9.0.0: its lifecycle callback never sees the STOPPED event; one
# virsh that creates the domain and then waits for its events does.)
# virsh runs in a mount namespace of its own, where
#  - /run is an empty tmpfs: a privileged libvirt keeps a token and the
#    host-device manager's state under /run/libvirt, left behind otherwise;
#  - /etc/group is a private copy (and /etc/passwd, when the host has no
#    user libvirt-qemu) in which the user and group libvirt-qemu exist and
#    the user is in group kvm, as libvirt-daemon-system makes them (this
#    test needs only libvirt-daemon-driver-qemu and libvirt-clients): QEMU
#    runs as that user, and without group kvm libvirt finds /dev/kvm
#    closed to it and probes QEMU anew again and again (some 40 s) before
#    it starts the domain.
# Nothing is left on the host but the test's group, removed at exit.
VTPMD=${VTPMD:-$(cd "$(dirname "$0")/../.." && pwd)/build/vtpmd}
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"
require_tools virsh unshare mount tpm2_nvread
compgen -G "/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so" >/dev/null ||
	fail "libvirt's QEMU driver is not installed (scripts/install-deps.sh installs libvirt-daemon-driver-qemu)"
DOMAIN=vtpmd-e2e
NV_INDEX=0x01000100
GROUP=vtpmd-lv-$$
groupadd "$GROUP" || fail "groupadd $GROUP"
trap 'vm_cleanup; test_cleanup; groupdel "$GROUP" 2>/dev/null || true' EXIT
GID=$(getent group "$GROUP" | cut -d: -f3)

# lv_fail MESSAGE: fails, showing the guest's console, libvirt's events
# and messages, and its log of the domain (with the QEMU command line).
lv_fail() {
	local f
	for f in "$T/lv.console" "$T/lv.events" "$T/lv.run.log" "$T/embed/log/qemu/$DOMAIN.log"; do
		echo "--- $f:" >&2
		[ -e "$f" ] && tr -d '\r' <"$f" | tail -n 60 >&2
	done
	fail "libvirt guest: $*"
}

# lv_sandbox: the embedded driver's root, configuration and namespace files.
lv_sandbox() {
	mkdir -p "$T/embed/etc" "$T/ns"
	cat >"$T/embed/etc/qemu.conf" <<-EOF
		user = "libvirt-qemu"
		group = "$GROUP"
		dynamic_ownership = 1
		security_driver = "none"
		cgroup_controllers = [ ]
		namespaces = [ ]
		stdio_handler = "file"
	EOF
	QEMU_UID=$(id -u libvirt-qemu 2>/dev/null) || QEMU_UID=64055
	if ! getent passwd libvirt-qemu >/dev/null; then
		{ cat /etc/passwd; echo "libvirt-qemu:x:64055:64055:libvirt (vtpmd test):/nonexistent:/usr/sbin/nologin"; } >"$T/ns/passwd"
	fi
	awk -F: -v OFS=: '
		$1 == "libvirt-qemu" { seen = 1 }
		$1 == "kvm" && ("," $4 ",") !~ /,libvirt-qemu,/ { $4 = $4 ($4 == "" ? "" : ",") "libvirt-qemu" }
		{ print }
		END { if (!seen) print "libvirt-qemu:x:64055:" }' /etc/group >"$T/ns/group"
}

# lv_start XML: has libvirt create the transient domain XML, then waits
# for its lifecycle events (printed to $T/lv.events) in the same virsh,
# whose embedded driver the domain lives in; in the background, bounded by
# VM_TIMEOUT. Sets LV_PID.
lv_start() {
	: >"$T/lv.events"
	# shellcheck disable=SC2016 # expanded by the inner shell
	timeout -k 5 "$VM_TIMEOUT" unshare --mount --propagation private -- bash -c '
		set -e
		for f in passwd group; do
			if [ -e "$1/ns/$f" ]; then mount --bind "$1/ns/$f" "/etc/$f"; fi
		done
		mount -t tmpfs -o mode=0755,size=16m vtpmd-test-run /run
		exec virsh -q -c "qemu:///embed?root=$1/embed" \
			"create $2; event --domain $3 --event lifecycle --loop --timestamp"' \
		_ "$T" "$1" "$DOMAIN" </dev/null >"$T/lv.events" 2>"$T/lv.run.log" &
	LV_PID=$!
	TEST_PIDS+=("$LV_PID")
	VM_PGIDS+=("$LV_PID")
	VM_START=$(date +%s%N)
}

# lv_qemu_ids: waits for the domain's QEMU process (libvirt starts it
# paused, then lets it run) and sets QEMU_IDS to its real uid and gid.
lv_qemu_ids() {
	local qpid
	until qpid=$(pgrep -f -- "-kernel $T/guest/vmlinuz") &&
		QEMU_IDS=$(awk '/^Uid:/ {u = $2} /^Gid:/ {g = $2} END {print u, g}' "/proc/$qpid/status"); do
		kill -0 "$LV_PID" 2>/dev/null || lv_fail "virsh exited before QEMU ran"
		sleep 0.05
	done
}

# lv_wait: polls until libvirt reports the domain stopped (after the guest
# powered off), then ends the event wait (SIGINT) and checks that virsh
# exits 0 and that the domain stopped because the guest shut down; sets
# VM_MS.
lv_wait() {
	local rc=0 vpid
	until grep -q "Stopped" "$T/lv.events"; do
		kill -0 "$LV_PID" 2>/dev/null || lv_fail "virsh exited before the domain stopped"
		sleep 0.1
	done
	VM_MS=$((($(date +%s%N) - VM_START) / 1000000))
	# to virsh itself: `timeout` would pass SIGINT on to its whole process
	# group too, and a second one may kill virsh after its wait ended
	vpid=$(pgrep -P "$LV_PID" -x virsh) || lv_fail "no virsh process under $LV_PID"
	kill -INT "$vpid"
	wait "$LV_PID" || rc=$?
	VM_PGIDS=()
	[ "$rc" -ne 124 ] || lv_fail "did not finish within $VM_TIMEOUT s"
	[ "$rc" -eq 0 ] || lv_fail "virsh exited with $rc"
	grep -q "Shutdown Finished after guest request" "$T/lv.events" ||
		lv_fail "the guest did not power off"
	grep -q "Stopped Shutdown" "$T/lv.events" || lv_fail "the domain did not stop by shutdown"
}

guest_prepare
chmod 0711 "$T"
mkdir -p "$T/guest"
install -m 0644 "$GUEST_KERNEL" "$T/guest/vmlinuz"
install -m 0644 "$GUEST_INITRD" "$T/guest/initrd.gz"
GUEST_KERNEL=$T/guest/vmlinuz
GUEST_INITRD=$T/guest/initrd.gz
start_host_tpm "$T/host"
printf 'socket-group = %s\n' "$GROUP" >"$T/svc.conf"
start_vtpmd svc --config "$T/svc.conf" --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create vm-a >/dev/null
info=$("$VTPMCTL" info vm-a --json)
socket=$(jfield "$info" .socket)
tcti=$(jfield "$info" .tcti)
pid=$(jfield "$info" .pid)
nv=$(rand_hex 16)
assert_eq "$(stat -c '%U %G %a' "$socket")" "root $GROUP 660" "vm-a's socket, for QEMU's group"

lv_sandbox
cat >"$T/lv.xml" <<EOF
<domain type='qemu'>
  <name>$DOMAIN</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$GUEST_KERNEL</kernel>
    <initrd>$GUEST_INITRD</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 vtpm_test=pcr,nvwrite,nvread vtpm_nv=$nv</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v "$QEMU")</emulator>
    <serial type='file'>
      <source path='$T/lv.console'/>
      <target port='0'/>
    </serial>
    <tpm model='tpm-crb'>
      <backend type='external'>
        <source type='unix' mode='connect' path='$socket'/>
      </backend>
    </tpm>
    <memballoon model='none'/>
  </devices>
</domain>
EOF

note "libvirt (embedded QEMU driver) boots the guest with vm-a as its external TPM"
# shellcheck disable=SC2034 # vm_result reads $T/$VM_NAME.console
VM_NAME=lv
lv_start "$T/lv.xml"
lv_qemu_ids
lv_wait
note "libvirt guest ran $VM_MS ms (libvirt start-up included)"
grep -q -- "-tpmdev emulator" "$T/embed/log/qemu/$DOMAIN.log" ||
	lv_fail "libvirt did not give QEMU an emulator TPM"
grep -q -- "path=$socket" "$T/embed/log/qemu/$DOMAIN.log" ||
	lv_fail "libvirt did not connect QEMU to $socket"
assert_eq "$QEMU_IDS" "$QEMU_UID $GID" "QEMU's uid and gid (libvirt-qemu, $GROUP)"
tr -d '\r' <"$T/lv.console" | grep -q "^VTPM-END ok" || lv_fail "the guest reported a failure"
assert_eq "$(vm_result tpm_version_major)" 2 "guest: /sys/class/tpm/tpm0/tpm_version_major"
assert_eq "$(vm_result tpm0)" tpm_crb "guest: driver of /sys/class/tpm/tpm0"
assert_eq "$(vm_result nv)" "$nv" "guest: NV value"

note "vtpmd restarts vm-a's worker, which ended with the VM"
deadline=$((SECONDS + 30))
until new=$("$VTPMCTL" info vm-a --json | jq -er 'select(.state=="running") | .pid') &&
	[ "$new" != "$pid" ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "worker not restarted after the VM stopped"
	sleep 0.05
done

note "the guest's NV index is in vm-a's TPM"
TPM2TOOLS_TCTI=$tcti tpm2_nvread -C o "$NV_INDEX" -s 16 -o "$T/nv.bin" 2>"$T/out" ||
	fail "tpm2_nvread $NV_INDEX on vm-a: $(cat "$T/out")"
assert_eq "$(hex_of "$T/nv.bin")" "$nv" "NV value read on the host through vm-a"
echo ok
