#!/bin/bash
# State that exists but cannot be read is refused: exit status 3, an error
# naming the file and the reason, and the file left byte for byte as it
# was. Cases: one flipped byte (header fields, payload, tag; permanent and
# volatile state), truncation, trailing bytes, the wrong key, a plaintext
# state given a key (downgrade) and an encrypted one given none, a future
# format version, another TPM version. The untouched state still starts.
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/tpm2tools.sh"
require_tools swtpm_ioctl cmp

KEYFILE=$T/key
new_key "$KEYFILE"
new_key "$T/other-key"

note "an encrypted state with an NV index, and volatile state"
start_tpm enc unix --key-fd 3
tools_nv_define
nv=$(random_hex 32)
tools_nv_write "$nv"
swtpm_ioctl -v "${IOCTL[@]}"
stop_pid "$INSTANCE_PID"
[ -s "$T/enc/permanent.state" ] && [ -s "$T/enc/volatile.state" ] ||
	fail "the instance left no permanent and volatile state"

note "a plaintext state"
KEYFILE='' start_tpm plain unix --plaintext-state
stop_pid "$INSTANCE_PID"

# refused CASE SRC MUTATION REASON ARGS...: copies state directory SRC to
# $T/CASE, applies MUTATION (a command and its arguments, run with the
# copy's directory as last argument), then starts an instance on it with
# ARGS; it must exit with 3, naming the file $MUTATED and REASON, and leave
# every state file unchanged.
refused() {
	local name=$1 src=$2 mutation=$3 reason=$4 dir=$T/$1 f
	shift 4
	rm -rf "$dir" "$dir.orig"
	cp -a "$T/$src" "$dir"
	# shellcheck disable=SC2086 # MUTATION is a command and its arguments.
	$mutation "$dir"
	cp -a "$dir" "$dir.orig"
	run_instance 3 "$name" --state "$dir" --ctrl "unix:$dir.sock.ctrl" --data "unix:$dir.sock" \
		--name "$name" "$@"
	assert_contains "$(cat "$T/out")" "$dir/$MUTATED: $reason" "$name: error message"
	assert_contains "$(cat "$T/out")" "refusing to start" "$name: error message"
	for f in "$dir.orig"/*.state; do
		cmp -s "$f" "$dir/$(basename "$f")" || fail "$name: $(basename "$f") changed by the refusal"
	done
	[ "$(cd "$dir" && ls)" == "$(cd "$dir.orig" && ls)" ] || fail "$name: files added or removed"
	[ ! -e "$dir.sock" ] && [ ! -e "$dir.sock.ctrl" ] || fail "$name: sockets created"
}

# Mutations of $MUTATED in the copied directory DIR.
flip_at() { # OFFSET DIR: inverts one byte (a negative OFFSET counts from the end)
	local f=$2/$MUTATED size
	size=$(stat -c %s "$f")
	flip_byte "$f" $(($1 < 0 ? size + $1 : $1))
}
truncate_to() { truncate -s "$1" "$2/$MUTATED"; } # SIZE DIR
append_byte() { printf x >>"$1/$MUTATED"; }
set_version_2() { printf '\x00\x02' | dd of="$1/$MUTATED" bs=1 seek=8 conv=notrunc status=none; }
no_change() { :; }

AUTH="failed authentication: wrong key, or the file was altered"
MUTATED=permanent.state
size=$(stat -c %s "$T/enc/$MUTATED")
# Offsets: magic, version, kind, protection, TPM version, zero padding,
# generation, length, nonce, payload (first, middle), tag (first, last).
for spec in "0:not a vtpmd state file" "9:written by a newer vtpmd" \
	"10:holds a different kind of state" "11:written by a newer vtpmd" \
	"12:holds the state of a different TPM version" "14:$AUTH" "23:$AUTH" \
	"24:declared payload is larger than any TPM state" "27:file is truncated" "30:$AUTH" \
	"40:$AUTH" "$((size / 2)):$AUTH" "$((size - 16)):$AUTH" "-1:$AUTH"; do
	off=${spec%%:*} reason=${spec#*:}
	note "permanent.state with byte $off flipped"
	refused "flip$off" enc "flip_at $off" "$reason" --key-fd 3
done
for _ in 1 2 3 4 5; do
	off=$((RANDOM % size))
	note "permanent.state with byte $off flipped"
	refused "flip$off" enc "flip_at $off" "" --key-fd 3
done

for n in 0 7 39 $((size / 2)) $((size - 1)); do
	note "permanent.state truncated to $n bytes"
	refused "trunc$n" enc "truncate_to $n" "file is truncated" --key-fd 3
done
note "permanent.state with a byte appended"
refused trailing enc append_byte "has bytes after its end" --key-fd 3
note "a future format version"
refused future enc set_version_2 "written by a newer vtpmd (unknown format version)" --key-fd 3
note "the wrong key"
KEYFILE=$T/other-key refused wrongkey enc no_change "$AUTH" --key-fd 3
note "an encrypted state without a key"
KEYFILE='' refused nokey enc no_change "is encrypted but the instance was given no key" \
	--plaintext-state
note "a plaintext state given a key (downgrade)"
refused downgrade plain no_change "is unprotected but the instance was given a key" --key-fd 3
size=$(stat -c %s "$T/plain/$MUTATED")
for off in 40 -1; do
	note "plaintext permanent.state with byte $off flipped (checksum)"
	KEYFILE='' refused "pflip$off" plain "flip_at $off" "$AUTH" --plaintext-state
done
note "a TPM 2 state started as TPM 1.2"
refused tpm12 enc no_change "holds the state of a different TPM version" --key-fd 3 --tpm 1.2
note "refused in QEMU mode too (no data channel)"
rm -rf "$T/qemu" && cp -a "$T/enc" "$T/qemu"
KEYFILE=$T/other-key run_instance 3 "qemu mode" --state "$T/qemu" --ctrl "unix:$T/qemu.sock" \
	--key-fd 3
assert_contains "$(cat "$T/out")" "$T/qemu/permanent.state: $AUTH" "QEMU mode: error message"

MUTATED=volatile.state
size=$(stat -c %s "$T/enc/$MUTATED")
for off in 0 20 40 $((size / 2)) -1; do
	note "volatile.state with byte $off flipped"
	refused "vflip$off" enc "flip_at $off" "" --key-fd 3
done
note "volatile.state truncated"
refused vtrunc enc "truncate_to $((size - 1))" "file is truncated" --key-fd 3

note "the untouched state still starts, with its NV index"
start_tpm enc unix --key-fd 3
assert_eq "$(tools_nv_read)" "$nv" "NV index"
stop_pid "$INSTANCE_PID"
