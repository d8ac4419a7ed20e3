#!/bin/bash
# make demo: the main job on an embedded default. A simulated host TPM
# (swtpm: it protects nothing), the vtpmd service rooted in it, two vTPMs,
# a QEMU guest booting on one of them and tpm2-tools using the other.
# Everything runs in a temporary directory and is stopped at the end.
set -euo pipefail
VTPMD=$(cd "$(dirname "$0")/.." && pwd)/build/vtpmd
source "$(dirname "$0")/../tests/lib.sh"
source "$TOP/tests/e2e/guest/qemu-lib.sh"
source "$TOP/tests/hosttpm.sh"

say() { printf '\n== %s\n' "$*"; }
step() { printf '$ %s\n' "$*"; "$@"; }
[ "$(id -u)" -eq 0 ] || fail "make demo needs root (vtpmd sandboxes its workers); try: sudo make demo"

say "Preparing the guest (Debian cloud kernel + busybox initramfs, cached)"
guest_prepare

say "A simulated host TPM (swtpm) and the vtpmd service rooted in it"
start_host_tpm "$T/host"
start_vtpmd vtpmd --root-tcti "$HOST_TCTI"
grep -E 'simulator|SRK|serving' "$T/vtpmd.log" | sed 's/^/  log: /'

say "The administrator approves the host's present configuration (PCRs 0,2,4,7)"
step "$VTPMCTL" policy approve --current

say "Two vTPMs: each state key sealed to the host TPM, each worker sandboxed"
step "$VTPMCTL" create vm-a
step "$VTPMCTL" create vm-b
step "$VTPMCTL" list
step "$VTPMCTL" info vm-a

say "VM vm-a boots in QEMU on its vTPM (tpm-crb) and uses it through /dev/tpm0"
socket=$(jfield "$("$VTPMCTL" info vm-a --json)" .socket)
digest=$(rand_hex 32)
nv=$(rand_hex 16)
vm_start vm-a "$socket" tpm-crb "vtpm_test=pcr,extend,pcr,nvwrite,nvread vtpm_digest=$digest vtpm_nv=$nv"
vm_wait_exit
vm_check_ok
echo "  the guest saw (its console, $VM_MS ms from QEMU start to power-off):"
tr -d '\r' <"$T/vm-a.console" | grep -E '^VTPM-' | sed 's/^/    /'
[ "$(vm_result pcr16)" = "$(pcr_extend "$ZERO_PCR" "$digest")" ] ||
	fail "PCR 16 in the guest is not sha256(0…0 || digest)"
echo "  PCR 16 = sha256(0…0 || $digest): as expected"

say "vm-b, with no VM attached, serves tpm2-tools through its TCTI"
tcti=$(jfield "$("$VTPMCTL" info vm-b --json)" .tcti)
step env TPM2TOOLS_TCTI="$tcti" tpm2_getrandom 8 --hex
echo
step env TPM2TOOLS_TCTI="$tcti" tpm2_pcrread sha256:0,16

say "The host side"
step "$VTPMCTL" host
echo
echo "On disk: instance records, state keys sealed to the host TPM (sealed.key) and"
echo "AES-256-GCM-encrypted TPM state; no key and no guest data in the clear:"
(cd "$T/vtpmd/state" && find instances -type f ! -name .lock | sort | sed 's/^/  /')
say "Done: vtpmd, its workers, the host TPM and the VM are stopped."
