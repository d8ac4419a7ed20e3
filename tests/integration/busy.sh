#!/bin/bash
# One state directory, one instance: a second instance on the same state
# directory exits with status 4 and a message saying the directory is in
# use, without touching the first one's sockets or state; a second
# instance on the first one's socket path or TCP port also exits with 4,
# leaving no socket of its own behind.
# The first keeps serving; once it stops, the directory can be used again.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools cmp

KEYFILE=$T/key
new_key "$KEYFILE"
start_tpm a unix --key-fd 3
first=$INSTANCE_PID
tools_nv_define
nv=$(random_hex 32)
tools_nv_write "$nv"
cp "$T/a/permanent.state" "$T/perm.before"

note "a second instance on the same state directory"
run_instance 4 "second instance, same directory" --state "$T/a" --ctrl "unix:$T/b.sock.ctrl" \
	--data "unix:$T/b.sock" --key-fd 3
assert_contains "$(cat "$T/out")" "$T/a: state directory in use by another instance" "message"
[ ! -e "$T/b.sock" ] && [ ! -e "$T/b.sock.ctrl" ] || fail "the second instance left sockets"
note "... also with the same socket paths"
run_instance 4 "second instance, same directory and sockets" --state "$T/a" \
	--ctrl "unix:$T/a.sock.ctrl" --data "unix:$T/a.sock" --key-fd 3
assert_contains "$(cat "$T/out")" "state directory in use by another instance" "message"
cmp -s "$T/a/permanent.state" "$T/perm.before" || fail "the refused instance changed the state"

note "another state directory on the same socket path"
run_instance 4 "second instance, same socket" --state "$T/c" --ctrl "unix:$T/a.sock.ctrl" \
	--data "unix:$T/c.sock" --key-fd 3
assert_contains "$(cat "$T/out")" "unix:$T/a.sock.ctrl: address in use" "message"

note "... or on the same data socket path: its own control socket is not left behind"
run_instance 4 "second instance, same data socket" --state "$T/e" --ctrl "unix:$T/e.sock.ctrl" \
	--data "unix:$T/a.sock" --key-fd 3
assert_contains "$(cat "$T/out")" "unix:$T/a.sock: address in use" "message"
[ ! -e "$T/e.sock.ctrl" ] || fail "the refused instance left its control socket"

note "the first instance still serves, on the same sockets"
[ -S "$T/a.sock" ] && [ -S "$T/a.sock.ctrl" ] || fail "the first instance's sockets are gone"
assert_eq "$(tools_nv_read)" "$nv" "NV index of the first instance"
tpm2_getrandom 8 >/dev/null

note "another state directory on a TCP port in use"
start_tpm t tcp --key-fd 3
# (The control channel is set up first, so it is the one to collide.)
run_instance 4 "second instance, same TCP port" --state "$T/d" --ctrl "$DATA_EP" \
	--data "tcp:127.0.0.1:$(free_port_pair)" --key-fd 3
assert_contains "$(cat "$T/out")" "$DATA_EP: address in use" "message"
tpm2_getrandom 8 >/dev/null
stop_pid "$INSTANCE_PID"

note "once the first instance stops, the directory is free again"
stop_pid "$first"
start_tpm a unix --key-fd 3
assert_eq "$(tools_nv_read)" "$nv" "NV index after the restart"
stop_pid "$INSTANCE_PID"
