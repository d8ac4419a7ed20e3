#!/bin/bash
# Nested vtpmd: a second vtpmd uses a vTPM of the first as its host TPM
# (through the swtpm TCTI), and its own vTPMs work on top of it.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
VTPMD=$TOP/build/vtpmd
[ "$(id -u)" -eq 0 ] || fail "this test needs root (workers are sandboxed)"

start_host_tpm "$T/host"
start_vtpmd outer --root-tcti "$HOST_TCTI"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create root-for-inner >/dev/null
inner_root=$(jfield "$("$VTPMCTL" info root-for-inner --json)" .tcti)
outer_socket=$VTPMD_SOCKET

note "the inner vtpmd roots itself in the outer vTPM"
start_vtpmd inner --root-tcti "$inner_root"
"$VTPMCTL" policy approve --current >/dev/null
"$VTPMCTL" create vm-nested >/dev/null
tcti=$(jfield "$("$VTPMCTL" info vm-nested --json)" .tcti)
TPM2TOOLS_TCTI=$tcti tpm2_nvdefine 0x1500030 -C o -s 8 -a "ownerread|ownerwrite" >/dev/null
printf 'nested!!' | TPM2TOOLS_TCTI=$tcti tpm2_nvwrite -C o 0x1500030 -i -
"$VTPMCTL" restart vm-nested >/dev/null
assert_eq "$(TPM2TOOLS_TCTI=$tcti tpm2_nvread -C o 0x1500030 -s 8)" "nested!!" "nested NV"

note "the inner SRK lives in the outer vTPM"
host=$("$VTPMCTL" host --json)
assert_eq "$(jfield "$host" .tcti)" "$inner_root" "inner root TCTI"
assert_eq "$(jfield "$host" .simulator)" true "a vTPM root is reported as without hardware protection"
export VTPMD_SOCKET=$outer_socket
assert_eq "$(jfield "$("$VTPMCTL" info root-for-inner --json)" .state)" running "outer instance"
echo ok
