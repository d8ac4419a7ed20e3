#!/bin/bash
# The Debian packages (issue #14): make deb builds vtpmd, vtpm-ca and
# vtpm-attest from the tree; lintian passes them; installed on this machine
# they make no key, enable their units (which systemd-analyze verify
# passes) and start nothing; the installed vtpmd, run by hand (systemd is
# not PID 1 here) on a simulated host TPM, runs the installed worker and
# serves tpm2-tools; a purge keeps /var/lib/vtpmd while it holds a vTPM and
# removes everything the package and its service made once it holds none;
# vtpm-ca's purge removes its user and keeps a CA. Whatever happens, the
# machine is left as it was: the trap purges the packages and removes what
# they made (the test refuses to start where any of it exists already).
source "$(dirname "$0")/../lib.sh"
source "$TOP/tests/hosttpm.sh"
[ "$(id -u)" -eq 0 ] || fail "this test needs root (it installs packages)"
require_tools dpkg apt-get dpkg-buildpackage dh lintian systemd-analyze swtpm tpm2_getrandom jq

PACKAGES=(vtpmd vtpm-ca vtpm-attest)
MADE=(/var/lib/vtpmd /var/lib/vtpm-ca /etc/vtpmd /etc/vtpm-ca /usr/share/doc/vtpmd
	/etc/systemd/system/multi-user.target.wants/vtpmd.service
	/etc/systemd/system/multi-user.target.wants/vtpm-ca.service)
APT=(apt-get -y -qq -o DPkg::Lock::Timeout=300)

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" != "" ] &&
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$1")" != "not-installed" ]
}

for p in "${PACKAGES[@]}"; do
	installed "$p" && fail "package $p is installed on this machine: the test would replace it"
done
for f in "${MADE[@]}"; do
	[ ! -e "$f" ] || fail "$f exists on this machine: the test would remove it"
done
getent passwd vtpm-ca >/dev/null && fail "user vtpm-ca exists on this machine"
getent group vtpm-ca >/dev/null && fail "group vtpm-ca exists on this machine"

# Leaves the machine as it was, whatever failed: processes first (the
# workers of /var/lib/vtpmd's instances run with sockets under $T), then the
# packages, then what they made.
package_cleanup() {
	local p
	test_cleanup_processes
	for p in "${PACKAGES[@]}"; do
		if installed "$p"; then
			DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge "$p" >/dev/null 2>&1 ||
				dpkg --purge --force-all "$p" >/dev/null 2>&1 || true
		fi
	done
	rm -rf "${MADE[@]}"
	getent passwd vtpm-ca >/dev/null && deluser --system --quiet vtpm-ca
	getent group vtpm-ca >/dev/null && delgroup --system --quiet vtpm-ca
	test_cleanup
}
test_cleanup_processes() {
	local pid
	for pid in "${TEST_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pkill -KILL -f -- "$T/" 2>/dev/null || true
}
trap package_cleanup EXIT

note "make deb"
start=$(date +%s%N)
make -C "$TOP" deb >"$T/deb.log" 2>&1 || { tail -40 "$T/deb.log" >&2; fail "make deb"; }
note "make deb took $((($(date +%s%N) - start) / 1000000)) ms"
DEBS=()
for p in "${PACKAGES[@]}"; do
	deb=$(ls "$TOP"/build/deb/"${p}"_*.deb)
	[ -f "$deb" ] || fail "make deb made no $p package"
	DEBS+=("$deb")
done
assert_contains "$(dpkg-deb -f "${DEBS[0]}" Depends)" "libtpms0" "vtpmd's shlibs:Depends"
assert_contains "$(dpkg-deb -f "${DEBS[1]}" Depends)" "adduser" "vtpm-ca's Depends"

note "lintian"
lintian --fail-on error,warning "${DEBS[@]}" >"$T/lintian.out" 2>&1 ||
	{ cat "$T/lintian.out" >&2; fail "lintian"; }
grep -v '^running with root privileges' "$T/lintian.out" >"$T/lintian.tags" || true
[ ! -s "$T/lintian.tags" ] || fail "lintian: $(cat "$T/lintian.tags")"

note "install: no key made, units enabled, nothing started"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "${DEBS[@]}" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log" >&2; fail "apt-get install ./*.deb"; }
[ ! -e /var/lib/vtpmd ] || fail "installing made /var/lib/vtpmd: $(ls -la /var/lib/vtpmd)"
[ ! -e /var/lib/vtpm-ca ] || fail "installing made /var/lib/vtpm-ca"
secrets=$(find /etc/vtpmd -type f \( -name '*.pem' -o -name '*.key' -o ! -perm -004 \))
[ -z "$secrets" ] || fail "installing made key files: $secrets"
[ -L /etc/systemd/system/multi-user.target.wants/vtpmd.service ] || fail "vtpmd.service not enabled"
[ -L /etc/systemd/system/multi-user.target.wants/vtpm-ca.service ] ||
	fail "vtpm-ca.service not enabled"
getent passwd vtpm-ca >/dev/null || fail "vtpm-ca's postinst made no vtpm-ca user"

note "systemd-analyze verify and security on both units"
systemd-analyze verify /lib/systemd/system/vtpmd.service /lib/systemd/system/vtpm-ca.service \
	>"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "systemd-analyze verify"; }
[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify: $(cat "$T/verify.out")"
for unit in vtpmd vtpm-ca; do
	score=$(systemd-analyze security --offline=true "/lib/systemd/system/$unit.service" 2>&1 |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	[ -n "$score" ] || fail "systemd-analyze security gave no score for $unit.service"
	note "$unit.service: exposure $score"
done

note "without a host TPM (or a CA) the units are skipped, not started and restarted"
# systemd-analyze condition evaluates the units' own Condition lines here.
conditions() {
	local c=()
	mapfile -t c < <(grep '^Condition' "/lib/systemd/system/$1.service")
	[ "${#c[@]}" -gt 0 ] || fail "$1.service has no conditions"
	systemd-analyze condition "${c[@]}" >"$T/cond.out" 2>&1
}
if [ -e /dev/tpmrm0 ]; then
	conditions vtpmd || fail "vtpmd.service skipped on a host with /dev/tpmrm0"
else
	conditions vtpmd && fail "vtpmd.service would start on a host without /dev/tpmrm0"
	assert_contains "$(cat "$T/cond.out")" "ConditionPathExists=/dev/tpmrm0 failed" \
		"vtpmd.service's condition"
fi
conditions vtpm-ca && fail "vtpm-ca.service would start before its CA exists"
grep -Eq 'ConditionPathExists=(/var/lib/vtpm-ca/ca.db|/etc/vtpm-ca/serve.json) failed' \
	"$T/cond.out" || fail "vtpm-ca.service's condition: $(cat "$T/cond.out")"

note "the installed vtpmd on a simulated host TPM"
start_host_tpm "$T/host"
mkdir -p "$T/run"
export VTPMD_SOCKET=$T/run/api.sock
# start_vtpmd_installed: /usr/sbin/vtpmd with the packaged configuration and
# the default state directory; its sockets under $T (so that the workers end
# with the test). Waits until its API answers.
start_vtpmd_installed() {
	local deadline=$((SECONDS + 60))
	/usr/sbin/vtpmd --config /etc/vtpmd/vtpmd.conf --root-tcti "$HOST_TCTI" \
		--run-dir "$T/run" --socket "$VTPMD_SOCKET" 2>>"$T/svc.log" &
	VTPMD_PID=$!
	TEST_PIDS+=("$VTPMD_PID")
	until vtpmctl host >/dev/null 2>&1; do
		kill -0 "$VTPMD_PID" 2>/dev/null || { cat "$T/svc.log" >&2; fail "vtpmd exited"; }
		[ "$SECONDS" -lt "$deadline" ] || fail "vtpmd did not answer"
	done
}
stop_vtpmd_installed() {
	kill -TERM "$VTPMD_PID"
	wait "$VTPMD_PID" || fail "vtpmd exited with $?"
}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
assert_eq "$(command -v vtpmctl)" /usr/bin/vtpmctl "the packaged vtpmctl"
start_vtpmd_installed
vtpmctl policy approve --current >/dev/null || fail "policy approve"
vtpmctl create vm-a >/dev/null || fail "create vm-a"
info=$(vtpmctl info vm-a --json)
TPM2TOOLS_TCTI=$(jfield "$info" .tcti) tpm2_getrandom 8 >/dev/null || fail "tpm2_getrandom"
assert_eq "$(readlink "/proc/$(jfield "$info" .pid)/exe")" /usr/libexec/vtpmd/vtpmd-instance \
	"vm-a's worker"
vtpmctl stop vm-a >/dev/null || fail "stop vm-a"
stop_vtpmd_installed

note "purge with a vTPM: /var/lib/vtpmd stays, and the purge says so"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge vtpmd >"$T/purge1.log" 2>&1 ||
	{ cat "$T/purge1.log" >&2; fail "purge vtpmd"; }
assert_contains "$(cat "$T/purge1.log")" "/var/lib/vtpmd holds vTPMs" "the purge's message"
[ -d /var/lib/vtpmd/instances/vm-a ] || fail "the purge removed vm-a's state"
[ ! -e /usr/sbin/vtpmd ] && [ ! -e /etc/vtpmd ] || fail "the purge left vtpmd's files"

note "installed again, the vTPM is there; deleted, a purge removes everything"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" install "${DEBS[0]}" >"$T/install2.log" 2>&1 ||
	{ cat "$T/install2.log" >&2; fail "install vtpmd again"; }
start_vtpmd_installed
vtpmctl list | grep -q '^vm-a ' || fail "vm-a is gone after reinstalling: $(vtpmctl list)"
vtpmctl delete vm-a >/dev/null || fail "delete vm-a"
stop_vtpmd_installed
DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge vtpmd >"$T/purge2.log" 2>&1 ||
	{ cat "$T/purge2.log" >&2; fail "purge vtpmd"; }
[ ! -e /var/lib/vtpmd ] || fail "the purge left /var/lib/vtpmd: $(ls -la /var/lib/vtpmd)"

note "vtpm-ca's purge keeps a CA and removes its user"
install -d -m 0700 /var/lib/vtpm-ca # as the unit's StateDirectory= makes it
vtpm-ca init --db /var/lib/vtpm-ca/ca.db --name pkgtest >/dev/null || fail "vtpm-ca init"
DEBIAN_FRONTEND=noninteractive "${APT[@]}" purge vtpm-ca vtpm-attest >"$T/purge3.log" 2>&1 ||
	{ cat "$T/purge3.log" >&2; fail "purge vtpm-ca"; }
[ -f /var/lib/vtpm-ca/ca.db ] || fail "the purge removed a CA's database"
rm -rf /var/lib/vtpm-ca
getent passwd vtpm-ca >/dev/null && fail "the purge left the vtpm-ca user"

note "nothing the packages made is left"
for p in "${PACKAGES[@]}"; do
	installed "$p" && fail "package $p is still installed"
done
for deb in "${DEBS[@]}"; do
	dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|' | grep -v '/$' >"$T/files"
	while read -r f; do
		[ ! -e "$f" ] || fail "left behind: $f"
	done <"$T/files"
done
for f in "${MADE[@]}"; do
	[ ! -e "$f" ] || fail "left behind: $f"
done
