#!/bin/sh
# Installs the Debian 12 packages vtpmd builds and tests with, if missing.
# Idempotent: does nothing when everything is present.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libtpms-dev libtss2-dev libssl-dev libsqlite3-dev libseccomp-dev libcmocka-dev
libjansson-dev libhttp-parser-dev libsystemd-dev
swtpm swtpm-tools swtpm-dev tpm2-tools
qemu-system-x86 libvirt-daemon-driver-qemu libvirt-clients
busybox-static cpio kmod curl jq openssl procps strace valgrind
cppcheck clang-tidy clang-tools
mandoc man-db bash-completion debhelper dpkg-dev lintian adduser
prometheus"

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run 'sudo make deps' (or install them with apt-get) and retry" >&2
	exit 1
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
