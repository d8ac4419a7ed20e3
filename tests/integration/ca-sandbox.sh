#!/bin/bash
# vtpm-ca's privilege separation (docs/ca-api.md, "Processes"): `vtpm-ca serve`
# is a parent that holds the CA keys and the database and a network child
# that parses every request, sandboxed like the worker. Shown from the
# running child's /proc entries and by probing:
#  - the child runs as the --user uid/gid, no groups, no capabilities,
#    no_new_privs, seccomp filter mode 2, its root and working directory an
#    empty directory that no longer has a name; it holds descriptors 0-4
#    only (/dev/null, stderr, its channel to the parent, the listener) and
#    nothing of the CA's directory, open or mapped;
#  - the parent holds the database open and the CA private keys in memory
#    (tests/tools/memscan finds their scalars); the child's memory holds
#    neither (in either byte order); the root key, never loaded by serve,
#    is in neither (release build);
#  - in the child, chroot, the switch of identity and the seccomp filter
#    all come before the first accept4 (strace); the parent never accepts;
#  - requests are still answered over HTTPS (TLS ends in the child, which
#    loads its TLS certificate and key before it is confined: the seccomp
#    list needs nothing more for TLS), and recorded by the parent;
#  - a child killed, or ended for a malformed message on its channel
#    (injected with pidfd_getfd, tests/tools/fdsend), or for an empty
#    record (the end of its channel) while it lives on, is replaced by a
#    new confined child while the parent lives on, and the end is audited;
#  - the probe (tests/tools/ca-sandbox-probe) enters the very confinement
#    the child enters (ca_sandbox_enter) and shows what it can reach: its
#    listener and its channel; and what it cannot: the database and the
#    keys (each readable by the same uid without the sandbox), the parent's
#    memory, new sockets, connect, exec, ptrace, root; system calls off the
#    list kill it.
# Release and sanitizer builds; nothing is left behind.
source "$(dirname "$0")/../lib.sh"
RELEASE_CA=${RELEASE_CA:-$TOP/build/vtpm-ca}
SAN_CA=${VTPM_CA:-$TOP/build/san/vtpm-ca}
MEMSCAN=$TOP/build/memscan
FDSEND=$TOP/build/fdsend
PROBE=$TOP/build/ca-sandbox-probe
SB_UID=40101
SB_GID=40102

[ "$(id -u)" -eq 0 ] || fail "must run as root (CI does): the child needs chroot and setuid"
require_tools curl jq openssl strace pgrep
for t in "$RELEASE_CA" "$SAN_CA" "$MEMSCAN" "$FDSEND"; do
	[ -x "$t" ] || fail "$t is missing (make all san)"
done

DB=$T/ca/ca.db
mkdir -p "$T/ca"
"$RELEASE_CA" init --db "$DB" --name sandbox >/dev/null || fail "vtpm-ca init"
# The sandbox, not file permissions, must be what keeps the child out:
# the database and the keys are readable by its uid without it (the probe
# shows that first, as "pre-" lines).
chmod 755 "$T" "$T/ca"
chmod 644 "$DB" "$T"/ca/*.key
# Served over HTTPS, as in production (tests/lib.sh ca_tls).
ca_tls "$T/tls"
CURL=(curl --cacert "$CA_TLS_ROOT")

# status_field PID NAME: one field of /proc/PID/status, whitespace squeezed.
status_field() {
	sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr -s '[:space:]' ' ' | sed 's/ $//'
}

# scalar NAME [rev]: the private scalar of ca-NAME.key in hex, as written
# (big-endian), or byte-reversed as OpenSSL's BIGNUM limbs hold it on a
# little-endian machine.
scalar() {
	local s
	s=$(openssl pkey -in "$T/ca/ca-$1.key" -noout -text | sed -n '/^priv:/,/^pub:/p' |
		grep -v '^priv:\|^pub:' | tr -d ' :\n')
	s=${s: -64}
	[ "${#s}" -eq 64 ] || fail "could not read the $1 key's scalar"
	if [ "${2:-}" == rev ]; then
		sed 's/../&\n/g' <<<"$s" | tac | tr -d '\n'
	else
		printf '%s' "$s"
	fi
}

# hits PID NAME: occurrences of the NAME key's scalar (both orders) in PID.
hits() {
	{
		"$MEMSCAN" "$1" find "$(scalar "$2")"
		"$MEMSCAN" "$1" find "$(scalar "$2" rev)"
	} | wc -l
}

# the_child PARENT: the one child process of PARENT.
the_child() {
	local kids
	kids=$(pgrep -P "$1" || true)
	[ -n "$kids" ] || fail "vtpm-ca serve ($1) has no network child"
	[ "$(wc -w <<<"$kids")" -eq 1 ] || fail "vtpm-ca serve ($1) has several children: $kids"
	echo "$kids"
}

# confined BUILD CHILD: the child's identity, privileges, root and descriptors.
confined() {
	local b=$1 c=$2 root fd target
	assert_eq "$(status_field "$c" Uid)" "$SB_UID $SB_UID $SB_UID $SB_UID" "$b: child uids"
	assert_eq "$(status_field "$c" Gid)" "$SB_GID $SB_GID $SB_GID $SB_GID" "$b: child gids"
	assert_eq "$(status_field "$c" Groups)" "" "$b: child supplementary groups"
	for cap in CapInh CapPrm CapEff CapAmb; do
		assert_eq "$(status_field "$c" $cap)" 0000000000000000 "$b: child $cap"
	done
	assert_eq "$(status_field "$c" NoNewPrivs)" 1 "$b: child no_new_privs"
	assert_eq "$(status_field "$c" Seccomp)" 2 "$b: child seccomp mode (2: filter)"
	root=$(readlink "/proc/$c/root")
	[[ "$root" == *" (deleted)" ]] || fail "$b: the child's root still has a name: $root"
	assert_eq "$(ls -A "/proc/$c/root/")" "" "$b: what the child's root holds"
	assert_eq "$(stat -Lc %i "/proc/$c/cwd")" "$(stat -Lc %i "/proc/$c/root")" \
		"$b: the child's working directory is its root"
	assert_eq "$(ls "/proc/$c/fd" | sort -n | paste -sd' ')" "0 1 2 3 4" "$b: child descriptors"
	for fd in 0 1; do
		assert_eq "$(readlink "/proc/$c/fd/$fd")" /dev/null "$b: child descriptor $fd"
	done
	for fd in 3 4; do
		target=$(readlink "/proc/$c/fd/$fd")
		[[ "$target" == socket:* ]] || fail "$b: child descriptor $fd is $target, not a socket"
	done
	# Descriptor 4 listens on the CA's port; 3 is a unix SOCK_SEQPACKET.
	target=$(readlink "/proc/$c/fd/4" | tr -dc 0-9)
	awk -v i="$target" '$10 == i && $4 == "0A"' /proc/net/tcp /proc/net/tcp6 | grep -q . ||
		fail "$b: child descriptor 4 is not a listening TCP socket"
	target=$(readlink "/proc/$c/fd/3" | tr -dc 0-9)
	awk -v i="$target" '$7 == i && $5 == "0005"' /proc/net/unix | grep -q . ||
		fail "$b: child descriptor 3 is not a unix SOCK_SEQPACKET socket"
	if grep -F "$T/ca" "/proc/$c/maps"; then
		fail "$b: the child maps a file of the CA's directory"
	fi
}

# refusals: the number of refusals in the audit trail.
refusals() {
	"$RELEASE_CA" list audit --json --db "$DB" | jq '[.[] | select(.outcome == "refused")] | length'
}

# serves BUILD: GETs and a refused POST are answered, the refusal recorded.
serves() {
	local b=$1 http n
	n=$(refusals)
	"${CURL[@]}" -sf "$CA_URL/v1/privacy/ca" | jq -e .certificate >/dev/null ||
		fail "$b: GET /v1/privacy/ca"
	http=$("${CURL[@]}" -s -o "$T/resp.json" -w '%{http_code}' "$CA_URL/v1/status/abc123")
	assert_eq "$http" 404 "$b: status of an unknown serial (asked of the parent)"
	http=$("${CURL[@]}" -s -o "$T/resp.json" -w '%{http_code}' \
		-H 'Content-Type: application/json' \
		--data-binary "{\"kind\": \"ck\", \"host\": \"$b-probe\"}" \
		"$CA_URL/v1/privacy/challenge")
	assert_eq "$http" 400 "$b: a malformed challenge"
	assert_eq "$(refusals)" $((n + 1)) "$b: refusals in the audit trail"
}

# replaced BUILD PARENT OLD WHY: a new confined child serves after OLD
# ended; the parent is the same; the end is audited with WHY.
replaced() {
	local b=$1 p=$2 old=$3 new deadline=$((SECONDS + 30))
	# Connections wait in the listener's queue while the parent backs off:
	# this returns once the new child answers.
	"${CURL[@]}" -sf --max-time 30 "$CA_URL/v1/privacy/ca" >/dev/null ||
		fail "$b: no answer after the child ended ($4)"
	kill -0 "$p" 2>/dev/null || fail "$b: the parent ended with its child ($4)"
	while new=$(pgrep -P "$p" || true); [ -z "$new" ] || [ "$new" == "$old" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$b: no new child ($4)"
	done
	confined "$b" "$new"
	"$RELEASE_CA" list audit --json --db "$DB" |
		jq -e --arg w "$4" 'any(.[]; .action == "serve" and .outcome == "child ended" and
			(.detail | contains($w)))' >/dev/null ||
		fail "$b: the child's end ($4) is not in the audit trail"
}

# run BUILD CA: the checks above on a server of that build.
run() {
	local b=$1 parent child
	note "$b: vtpm-ca serve --user $SB_UID:$SB_GID: a parent and one network child"
	VTPM_CA=$2 start_vtpm_ca "ca-$b" --db "$DB" --role both --user "$SB_UID:$SB_GID" \
		"${CA_TLS[@]}"
	[[ "$CA_URL" == https://* ]] || fail "$b: not served over HTTPS: $CA_URL"
	parent=$CA_PID
	child=$(the_child "$parent")
	assert_eq "$(status_field "$parent" Uid | cut -d' ' -f1)" 0 "$b: the parent's uid"
	ls -l "/proc/$parent/fd" | grep -qF -- "-> $DB" || fail "$b: the parent does not hold $DB"

	note "$b: the child: its identity, privileges, root and descriptors"
	confined "$b" "$child"

	note "$b: requests are answered, and recorded by the parent"
	serves "$b"

	# (The sanitizer build's terabytes of shadow memory are not scanned.)
	[ "$b" == release ] && note "$b: the CA keys are in the parent's memory, not in the child's"
	[ "$b" == release ] && for k in privacy virtualization; do
		[ "$(hits "$parent" "$k")" -ge 1 ] ||
			fail "$b: memscan does not find the $k key in the parent"
		assert_eq "$(hits "$child" "$k")" 0 "$b: the $k key in the child's memory"
	done
	if [ "$b" == release ]; then
		assert_eq "$(hits "$parent" root)" 0 "$b: the root key (never loaded) in the parent"
		assert_eq "$(hits "$child" root)" 0 "$b: the root key (never loaded) in the child"
	fi

	note "$b: a child killed is replaced; the parent lives on"
	kill -KILL "$child"
	replaced "$b" "$parent" "$child" "signal 9"
	child=$(the_child "$parent")

	note "$b: a malformed message from the child ends the child, not the parent"
	# An unknown type, then a known type of the wrong size (TRUST_LIST, 0 bytes).
	for msg in ffff000000000000 0300000000000000; do
		"$FDSEND" "$child" 3 "$msg" || fail "$b: fdsend to the child's channel"
		replaced "$b" "$parent" "$child" "malformed"
		child=$(the_child "$parent")
	done
	note "$b: an empty record from a child that lives on ends that child, not the parent"
	# recv() reads an empty SOCK_SEQPACKET record as the end of the channel:
	# a child that sends one (or half-closes its end) and goes on serving
	# must be ended and replaced, not waited for (nor must the parent stop
	# hearing SIGTERM while it waits).
	"$FDSEND" "$child" 3 "" || fail "$b: fdsend of an empty record"
	replaced "$b" "$parent" "$child" "signal 9"
	child=$(the_child "$parent")
	serves "$b"
	stop_pid "$parent"
	kill -0 "$child" 2>/dev/null && fail "$b: the child outlived its parent"
	return 0
}

run release "$RELEASE_CA"
run san "$SAN_CA"

note "the order in the child: chroot, identity, seccomp, then the first accept"
cat >"$T/traced-ca" <<EOF
#!/bin/sh
exec strace -f -qq -o "$T/order.trace" -e trace=execve,chroot,setresuid,seccomp,accept4 \
	"$RELEASE_CA" "\$@"
EOF
chmod 755 "$T/traced-ca"
VTPM_CA=$T/traced-ca start_vtpm_ca traced --db "$DB" --role both --user "$SB_UID:$SB_GID" \
	"${CA_TLS[@]}"
"${CURL[@]}" -sf "$CA_URL/v1/virtualization/ca" >/dev/null || fail "GET under strace"
parent=$(the_child "$CA_PID") # strace's child is the parent
kill -TERM "$parent"
wait_status "$CA_PID"
assert_eq "$STATUS" 0 "exit status of vtpm-ca serve under strace"
cpid=$(awk '/ chroot\(/ { print $1; exit }' "$T/order.trace")
[ -n "$cpid" ] || fail "no chroot in the trace: $(cat "$T/order.trace")"
[ "$cpid" != "$parent" ] || fail "the parent chrooted itself"
line() { # PATTERN: the number of the first line of the child's trace matching it
	{ grep -n "^$cpid " "$T/order.trace" | grep -E "$1" || true; } | head -n1 | cut -d: -f1
}
c=$(line ' chroot\(.* += 0$')
u=$(line " setresuid\\($SB_UID, $SB_UID, $SB_UID\\) += 0$")
s=$(line ' seccomp\(SECCOMP_SET_MODE_FILTER.* += 0$')
a=$(line ' accept4\(4,')
for v in c u s a; do
	[ -n "${!v}" ] || fail "$v missing from the child's trace: $(grep "^$cpid " "$T/order.trace")"
done
[ "$c" -lt "$u" ] && [ "$u" -lt "$s" ] && [ "$s" -lt "$a" ] ||
	fail "order in the child: chroot line $c, setresuid $u, seccomp $s, first accept4 $a"
if grep "^$parent " "$T/order.trace" | grep -q ' accept4('; then
	fail "the parent accepted a connection"
fi

note "the probe: what the child's confinement lets it reach"
[ -x "$PROBE" ] || fail "$PROBE is missing (make all)"
rc=0
"$PROBE" "$SB_UID" "$SB_GID" "$DB" "$T/ca/ca-privacy.key" "$T/ca/ca-virtualization.key" \
	"$T/ca/ca-root.key" >"$T/probe.out" 2>"$T/probe.err" || rc=$?
cat "$T/probe.out"
[ "$rc" -eq 0 ] ||
	fail "ca-sandbox-probe exited with $rc: $(grep FAIL "$T/probe.out"; cat "$T/probe.err")"
for f in "$DB" "$T/ca/ca-privacy.key" "$T/ca/ca-virtualization.key" "$T/ca/ca-root.key"; do
	for c in "pre-open $f" "open $f" "open-dotdot $f"; do
		grep -q "^ok $c\( (.*)\)\?\$" "$T/probe.out" || fail "probe check missing or failed: $c"
	done
done
for c in refuses-uid-0 sandbox-enter accept-own-listener parent-channel parent-memory \
	parent-root socket-unix socket-inet connect execve ptrace-parent setuid-0 \
	kill-signal-parent kill-process-vm-readv kill-mkdir kill-exec-memory; do
	grep -q "^ok $c\( (.*)\)\?\$" "$T/probe.out" || fail "probe check missing or failed: $c"
done
assert_eq "$(tail -n1 "$T/probe.out")" "0 failed" "probe summary"

note "no process of this test is left"
if pgrep -f "$T/" >/dev/null || pgrep -u "$SB_UID" >/dev/null; then
	pgrep -af "$T/" >&2
	pgrep -au "$SB_UID" >&2
	fail "processes left behind"
fi
echo ok
