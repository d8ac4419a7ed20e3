#!/bin/bash
# tpm2-tools against an instance through the swtpm TCTI on a unix socket:
# getrandom, PCR extend/read (checked against the host's SHA-256), a key
# created, loaded, signing and verifying, an NV index written and read,
# and a quote that tpm2_checkquote accepts only with its nonce.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm tpm unix --key-fd 3
tools_all
stop_pid "$INSTANCE_PID"
