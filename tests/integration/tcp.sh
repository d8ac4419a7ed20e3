#!/bin/bash
# The TCP transport (tpm2-tss' swtpm TCTI with host=,port=; control
# channel on port+1): the tpm2-tools scenarios, swtpm_ioctl on the control
# port, a restart that keeps the NV index and resets the PCRs, and
# SHUTDOWN over TCP ending the instance with status 0.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl

ZERO=0000000000000000000000000000000000000000000000000000000000000000
KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm tcp --key-fd 3
assert_contains "$TCTI" "swtpm:host=127.0.0.1,port=" "TCTI string"
tools_all

note "swtpm_ioctl over TCP: capabilities (no SET_DATAFD on TCP), INIT"
caps=$(swtpm_ioctl -c "${IOCTL[@]}")
assert_contains "$caps" "ptm capability is 0x" "capabilities"
(((${caps##* } & 0x1000) == 0)) || fail "SET_DATAFD offered on a TCP control channel: $caps"
swtpm_ioctl -i "${IOCTL[@]}"
tpm2_startup -c
assert_eq "$(tools_nv_read)" "$(hex_of "$T/tools/nv.in")" "NV index after INIT over TCP"

note "restart over TCP"
stop_pid "$INSTANCE_PID"
start_tpm tpm tcp --key-fd 3
assert_eq "$(pcr_value 16)" "$ZERO" "PCR 16 after the restart"
assert_eq "$(tools_nv_read)" "$(hex_of "$T/tools/nv.in")" "NV index after the restart"
tools_key_load
tools_verify one

note "SHUTDOWN over TCP"
swtpm_ioctl -s "${IOCTL[@]}"
wait_status "$INSTANCE_PID"
assert_eq "$STATUS" 0 "exit status after SHUTDOWN"
