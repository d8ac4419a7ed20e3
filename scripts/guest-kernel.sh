#!/bin/bash
# Builds the guest the e2e tests boot under QEMU: the Debian 12 cloud kernel
# and a busybox initramfs whose /init is tests/e2e/guest/init.
#
# Output (under $TOP/cache/guest, which is gitignored):
#   vmlinuz     the kernel of the package linux-image-cloud-amd64 depends on
#   initrd.gz   busybox-static, /init, and the TPM driver modules the kernel
#               does not have built in (none for Debian 12's 6.1 kernel)
# The .deb is fetched once with `apt-get download` and kept in cache/debs;
# later runs only rebuild the initramfs when one of its inputs changed, and
# otherwise return at once. Delete cache/guest to force a rebuild, and
# cache/ to fetch the newest kernel again.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$TOP/cache
OUT=$CACHE/guest
INIT=$TOP/tests/e2e/guest/init
BUSYBOX=${BUSYBOX:-/bin/busybox}
META_PKG=linux-image-cloud-amd64
# Kernel options the guest needs; the TPM drivers may also be modules.
TPM_DRIVERS="TCG_TPM TCG_TIS_CORE TCG_TIS TCG_CRB"

die() {
	echo "guest-kernel: $*" >&2
	exit 1
}

# apt_retry CMD...: runs an apt command; if it fails, refreshes the package
# lists once (they may be missing or stale) and runs it again.
APT_UPDATED=
apt_retry() {
	if "$@" 2>>"$CACHE/apt.log"; then
		return 0
	fi
	if [ -z "$APT_UPDATED" ]; then
		APT_UPDATED=1
		[ "$(id -u)" -eq 0 ] ||
			die "'$*' failed and refreshing the package lists needs root: run 'sudo apt-get update' (see $CACHE/apt.log)"
		echo "guest-kernel: refreshing the package lists (apt-get update)" >&2
		apt-get update -qq >>"$CACHE/apt.log" 2>&1 ||
			die "apt-get update failed (see $CACHE/apt.log)"
		"$@" 2>>"$CACHE/apt.log" && return 0
	fi
	return 1
}

# kernel_package: sets PKG to the versioned image package the meta-package
# depends on, e.g. linux-image-6.1.0-56-cloud-amd64.
kernel_package() {
	PKG=$(apt-cache depends "$META_PKG" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
	[ -n "$PKG" ]
}

# cached_deb: prints the downloaded .deb of $PKG, if any.
cached_deb() {
	local f
	for f in "$CACHE/debs/${PKG}"_*_amd64.deb; do
		if [ -e "$f" ]; then
			echo "$f"
		fi
	done | tail -n1
}

# fetch_kernel: downloads and unpacks the kernel package once; sets KDIR to
# the unpacked tree and KVER to the kernel release.
fetch_kernel() {
	local deb sandbox=()
	if [ -f "$CACHE/kernel/release" ]; then
		KVER=$(cat "$CACHE/kernel/release")
		KDIR=$CACHE/kernel/root
		[ -f "$KDIR/boot/vmlinuz-$KVER" ] && return 0
	fi
	command -v apt-get >/dev/null || die "apt-get not found: this script needs Debian 12"
	apt_retry kernel_package ||
		die "cannot find the kernel package $META_PKG depends on (see $CACHE/apt.log)"
	mkdir -p "$CACHE/debs"
	deb=$(cached_deb)
	if [ -z "$deb" ]; then
		echo "guest-kernel: downloading $PKG" >&2
		# as root, apt would hand the download to the _apt user, who may
		# not be allowed to write into the cache
		[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
		(cd "$CACHE/debs" && apt_retry apt-get download -q "${sandbox[@]}" "$PKG" >/dev/null) ||
			die "apt-get download $PKG failed (see $CACHE/apt.log)"
		deb=$(cached_deb)
		[ -n "$deb" ] || die "apt-get download $PKG left no .deb in $CACHE/debs"
	fi
	rm -rf "$CACHE/kernel.tmp"
	mkdir -p "$CACHE/kernel.tmp"
	dpkg-deb -x "$deb" "$CACHE/kernel.tmp/root" || die "cannot unpack $deb"
	KVER=${PKG#linux-image-}
	[ -f "$CACHE/kernel.tmp/root/boot/vmlinuz-$KVER" ] || die "$deb has no boot/vmlinuz-$KVER"
	echo "$KVER" >"$CACHE/kernel.tmp/release"
	rm -rf "$CACHE/kernel"
	mv "$CACHE/kernel.tmp" "$CACHE/kernel"
	KDIR=$CACHE/kernel/root
}

# tpm_modules: prints, in load order, the module files (relative to
# lib/modules/KVER) for the TPM drivers that are =m in the kernel config;
# fails if one is not configured at all.
tpm_modules() {
	local config=$KDIR/boot/config-$KVER opt val name dep mods=()
	[ -f "$config" ] || die "no kernel config in the package"
	for opt in $TPM_DRIVERS; do
		val=$(sed -n "s/^CONFIG_$opt=\(.*\)/\1/p" "$config")
		case $val in
		y) ;;
		m)
			case $opt in
			TCG_TPM) name=tpm ;;
			TCG_TIS_CORE) name=tpm_tis_core ;;
			TCG_TIS) name=tpm_tis ;;
			TCG_CRB) name=tpm_crb ;;
			esac
			mods+=("$name")
			;;
		*) die "the guest kernel lacks CONFIG_$opt (TPM support)" ;;
		esac
	done
	[ ${#mods[@]} -eq 0 ] && return 0
	[ -f "$KDIR/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR" "$KVER" ||
		die "depmod failed"
	# modules.dep lists "mod.ko: dep1.ko dep2.ko", the deepest dependency last
	for name in "${mods[@]}"; do
		dep=$(grep -E "/$name\.ko(\.[a-z]+)?:" "$KDIR/lib/modules/$KVER/modules.dep") ||
			die "module $name not found in modules.dep"
		echo "${dep%%:*} ${dep#*:}" | tr ' ' '\n' | grep . | tac
	done | awk '!seen[$0]++'
}

# build_initrd FILE: writes the initramfs.
build_initrd() {
	local out=$1 root=$OUT/root m dst
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,lib/modules}
	cp "$BUSYBOX" "$root/bin/busybox"
	for m in $("$BUSYBOX" --list); do
		[ "$m" = busybox ] || ln -s busybox "$root/bin/$m"
	done
	install -m 0755 "$INIT" "$root/init"
	# /dev/console lets the kernel give /init its stdio; /init also mounts
	# devtmpfs and reopens the console, so this is best effort
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	: >"$root/etc/vtpm-modules"
	for m in $MODULES; do
		dst=$root/lib/modules/$(basename "${m%.ko*}").ko
		case $m in
		*.ko) cp "$KDIR/lib/modules/$KVER/$m" "$dst" ;;
		*.ko.xz) xz -dc "$KDIR/lib/modules/$KVER/$m" >"$dst" ;;
		*.ko.zst) zstd -qdc "$KDIR/lib/modules/$KVER/$m" >"$dst" ;;
		*) die "cannot handle module file $m" ;;
		esac
		basename "$dst" >>"$root/etc/vtpm-modules"
	done
	[ -s "$root/etc/vtpm-modules" ] || rm "$root/etc/vtpm-modules"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --quiet) | gzip -6n >"$out"
	rm -rf "$root"
}

main() {
	local stamp inputs mods
	for tool in "$BUSYBOX" cpio gzip dpkg-deb; do
		command -v "$tool" >/dev/null ||
			die "$tool not found: run 'sudo make deps' (scripts/install-deps.sh)"
	done
	[ -f "$INIT" ] || die "missing $INIT"
	if command -v readelf >/dev/null && LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP; then
		die "$BUSYBOX is dynamically linked: the initramfs needs busybox-static"
	fi
	mkdir -p "$CACHE"
	# one builder at a time; a second caller waits and then finds it built
	exec 9>"$CACHE/guest.lock"
	flock 9

	fetch_kernel
	MODULES=$(tpm_modules)
	mods=${MODULES//$'\n'/ }
	# the initramfs is rebuilt when any of its inputs changes
	inputs=$(cat "${BASH_SOURCE[0]}" "$INIT" "$BUSYBOX" | sha256sum)
	stamp="$KVER ${inputs%% *} $mods"
	if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.gz" ] &&
		[ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	echo "guest-kernel: building the initramfs for $KVER${mods:+ (modules: $mods)}" >&2
	mkdir -p "$OUT"
	rm -f "$OUT/stamp"
	cp "$KDIR/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
	build_initrd "$OUT/initrd.gz.tmp"
	mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
	mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
	echo "$stamp" >"$OUT/stamp"
}

main "$@"
