#!/bin/bash
# Every load of a TPM 1.2 savestate is checked (docs/state.md, "Snapshots",
# rule 3), a savestate SET_STATEBLOB restored too. The attack of the review
# of #12 (QEMU holding the control socket, no other privilege): libtpms
# keeps a blob TPMLIB_SetState took in a cache of its own until a load of
# that kind consumes it; TPM 1.2 reads the savestate only at
# TPM_Startup(ST_STATE), and TPM_Startup(ST_CLEAR) deletes the savestate
# *file* but not libtpms' cache. So a fresh savestate blob SET_STATEBLOB
# took outlived the INIT and the guest's extends, and a later
# Startup(ST_STATE) loaded it unchecked: PCR 10 went back to the value
# saved before the extends. Now SET_STATEBLOB only writes the blob
# (instance_save_state), never hands it to libtpms, so that every load goes
# through instance_io_load and its check; the later Startup(ST_STATE)
# resumes the last SaveState (the power-off's), not the old blob.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ -x "$VTPMD" ] || VTPMD=$TOP/build/vtpmd
require_tools swtpm_ioctl od sha1sum
KEYFILE=$T/key
new_key "$KEYFILE"
tpm12() { "$TPMSEND" "$DATA_EP" "$@"; }
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 -v | tr -d ' \n'; }
OK=00c40000000a00000000
STARTUP_CLEAR=00c10000000c000000990001
STARTUP_STATE=00c10000000c000000990002
pcr10() { tpm12 00c10000000e000000150000000a; }
extend10() { tpm12 "00c100000022000000140000000a$(random_hex 20)" >/dev/null; }

attack() { # WHERE: the attack on the TPM at DATA_EP / IOCTL
assert_eq "$(tpm12 "$STARTUP_CLEAR")" "$OK" "TPM_Startup(ST_CLEAR)"
extend10
A=$(pcr10)
note "PCR 10 after the guest's boot: $A"

note "QEMU: GET_STATEBLOB savestate (a snapshot, fresh), STOP, SET_STATEBLOB of it, INIT"
swtpm_ioctl --save savestate "$T/S_A" "${IOCTL[@]}" || fail "--save savestate"
swtpm_ioctl --stop "${IOCTL[@]}" || fail "--stop"
swtpm_ioctl --load savestate "$T/S_A" "${IOCTL[@]}" || fail "--load savestate (fresh: accepted)"
swtpm_ioctl -i "${IOCTL[@]}" || fail "INIT"

note "the guest boots again: Startup(ST_CLEAR), extends PCR 10 (new measurements)"
assert_eq "$(tpm12 "$STARTUP_CLEAR")" "$OK" "TPM_Startup(ST_CLEAR)"
extend10
extend10
B=$(pcr10)
note "PCR 10 now: $B"

note "QEMU: INIT (a power cycle), then TPM_Startup(ST_STATE) on the data channel"
swtpm_ioctl -i "${IOCTL[@]}" || fail "INIT"
rsp=$(tpm12 "$STARTUP_STATE")
C=$(pcr10)
note "Startup(ST_STATE) answered $rsp; PCR 10 now: $C"
[ "$C" != "$A" ] || problems+=("$1: ROLLBACK: PCR 10 back to the value saved before the extends (libtpms' cached savestate loaded unchecked)")
}
problems=()
note "=== a standalone instance (vtpmd instance --tpm 1.2)"
start_tpm tpm12 unix --key-fd 3 --tpm 1.2 --no-startup
attack standalone
note "=== a TPM 1.2 vTPM of vtpmd (vtpmctl create --tpm 1.2)"
start_host_tpm "$T/host"
start_vtpmd svc --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null || fail "policy approve"
"$VTPMCTL" create vm12 --tpm 1.2 >/dev/null || fail "create vm12"
DATA_EP=unix:$T/svc/run/vm12.sock
IOCTL=(--unix "$T/svc/run/vm12.sock.ctrl")
swtpm_ioctl -i "${IOCTL[@]}" || fail "INIT (QEMU's first)"
attack vtpmd
[ "${#problems[@]}" -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"
echo held
