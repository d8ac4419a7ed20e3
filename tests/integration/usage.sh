#!/bin/bash
# Usage errors: `vtpmd instance` with a bad command line exits with status
# 2 and a message naming the problem, before creating anything (no state
# directory, no socket). --help prints the usage and the exit statuses.
source "$(dirname "$0")/../lib.sh"

head -c 32 /dev/urandom >"$T/key32"
head -c 31 /dev/urandom >"$T/key31"
head -c 33 /dev/urandom >"$T/key33"
S=$T/state
C=unix:$T/c.sock

# usage MESSAGE ARGS...: `vtpmd instance ARGS` exits with 2, printing MESSAGE.
usage() {
	local msg=$1
	shift
	note "${*:-no arguments}"
	expect_exit 2 "vtpmd instance $*" "$VTPMD" instance "$@"
	assert_contains "$(cat "$T/out")" "$msg" "message for: $*"
	[ ! -e "$S" ] || fail "a usage error created the state directory: $*"
	[ -z "$(find "$T" -type s)" ] || fail "a usage error created a socket: $*"
}

usage "--state and --ctrl are required"
usage "--state and --ctrl are required" --state "$S" --plaintext-state
usage "--state and --ctrl are required" --ctrl "$C" --plaintext-state
usage "unrecognized option '--bogus'" --bogus
usage "unexpected argument: extra" --state "$S" --ctrl "$C" --plaintext-state extra
usage "give exactly one of --key-fd N and --plaintext-state" --state "$S" --ctrl "$C"
usage "give exactly one of --key-fd N and --plaintext-state" --state "$S" --ctrl "$C" \
	--plaintext-state --key-fd 0
usage "--key-fd: not a descriptor number: x" --state "$S" --ctrl "$C" --key-fd x
usage "--key-fd 7: need exactly 32 key bytes" --state "$S" --ctrl "$C" --key-fd 7
usage "--key-fd 0: need exactly 32 key bytes" --state "$S" --ctrl "$C" --key-fd 0 <"$T/key31"
usage "--key-fd 0: need exactly 32 key bytes" --state "$S" --ctrl "$C" --key-fd 0 <"$T/key33"
usage "--state: expected a directory" --state "" --ctrl "$C" --plaintext-state
usage "--ctrl: expected unix:PATH or tcp:HOST:PORT, not bogus" --state "$S" --ctrl bogus \
	--plaintext-state
usage "--ctrl: expected unix:PATH or tcp:HOST:PORT, not unix:" --state "$S" --ctrl unix: \
	--plaintext-state
usage "--ctrl: expected unix:PATH or tcp:HOST:PORT, not tcp:localhost:1" --state "$S" \
	--ctrl tcp:localhost:1 --plaintext-state
usage "--data: expected unix:PATH or tcp:HOST:PORT, not tcp:127.0.0.1:65536" --state "$S" \
	--ctrl "$C" --data tcp:127.0.0.1:65536 --plaintext-state
usage "--data and --ctrl need two different addresses" --state "$S" --ctrl "$C" --data "$C" \
	--plaintext-state
usage "--tpm: expected 2 or 1.2, not 3" --state "$S" --ctrl "$C" --tpm 3 --plaintext-state
usage "--startup: only 'clear' is supported, not warm" --state "$S" --ctrl "$C" \
	--data "unix:$T/d.sock" --startup warm --plaintext-state
usage "--startup needs --data" --state "$S" --ctrl "$C" --startup clear --plaintext-state
usage "--log-level: expected error, warn, info or debug" --state "$S" --ctrl "$C" \
	--log-level loud --plaintext-state
usage "--ready-fd: not a descriptor number: -1" --state "$S" --ctrl "$C" --ready-fd -1 \
	--plaintext-state
usage "give both --sandbox-uid and --sandbox-gid, or neither" --state "$S" --ctrl "$C" \
	--sandbox-uid 5000 --plaintext-state
usage "--sandbox-uid: expected a numeric id other than 0" --state "$S" --ctrl "$C" \
	--sandbox-uid 0 --sandbox-gid 0 --plaintext-state
usage "--nv-rate: expected writes a second, 0 to 100000, not -1" --state "$S" --ctrl "$C" \
	--nv-rate -1 --plaintext-state
usage "--commit-listen: expected unix:PATH (a root-only socket), not tcp:127.0.0.1:1" \
	--state "$S" --ctrl "$C" --commit-listen tcp:127.0.0.1:1 --plaintext-state
usage "--commit-fd: not a descriptor number: x" --state "$S" --ctrl "$C" --commit-fd x \
	--plaintext-state

note "--help"
expect_exit 0 "vtpmd instance --help" "$VTPMD" instance --help
assert_contains "$(cat "$T/out")" "usage: vtpmd instance --state DIR --ctrl ENDPOINT" "--help"
assert_contains "$(cat "$T/out")" "3 unreadable state; 4 state directory or address in use" \
	"--help: exit statuses"
