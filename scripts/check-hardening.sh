#!/bin/sh
# make hardening: checks from each PROGRAM's ELF (readelf only) that the
# Makefile's HARDEN and LDHARDEN flags took effect:
#   pie       an ET_DYN executable flagged DF_1_PIE
#   relro     full RELRO: a GNU_RELRO segment and immediate binding
#             (DT_BIND_NOW, or DF_NOW / DF_1_NOW)
#   nx-stack  a GNU_STACK segment without execute permission
#   ssp       the stack protector: a reference to __stack_chk_fail
#   fortify   FORTIFY_SOURCE: a reference to a checked libc function
#             (__memcpy_chk, __snprintf_chk ...)
#   needed    the shared libraries it loads (DT_NEEDED) are among those
#             its part of the tree uses (the list below): a CA without
#             tpm2-tss's ESYS and TCTI loader, a worker without JSON, HTTP,
#             SQLite or tpm2-tss, libssl (TLS) only where vtpm-ca's HTTPS is
#             spoken (vtpm-ca, vtpmd's CA requests, vtpm-attest), not vtpmctl
# One line per program and property; any FAIL fails the run (status 1).
# Usage: scripts/check-hardening.sh PROGRAM...
set -eu
export LC_ALL=C

[ $# -gt 0 ] || { echo "usage: check-hardening.sh PROGRAM..." >&2; exit 2; }
if ! command -v readelf >/dev/null 2>&1; then
	echo "check-hardening: readelf is missing (binutils): run 'sudo make deps'" >&2
	exit 1
fi

# The libraries each program may load, by its file name (sonames
# without versions). A program not listed here fails: add it.
needed_allowed() {
	case "$1" in
	# vtpmd: libsystemd for sd_notify (Type=notify readiness) only.
	vtpmd) echo "libc libcrypto libssl libjansson libhttp_parser libseccomp libsystemd libtpms libtss2-esys libtss2-sys libtss2-mu libtss2-rc libtss2-tctildr" ;;
	vtpmd-instance) echo "libc libcrypto libseccomp libtpms" ;;
	vtpmctl) echo "libc libcrypto libjansson libhttp_parser" ;;
	vtpm-ca) echo "libc libcrypto libssl libjansson libhttp_parser libsqlite3 libseccomp libtss2-mu libtss2-rc" ;;
	vtpm-attest) echo "libc libcrypto libssl libjansson libhttp_parser libtss2-esys libtss2-mu libtss2-rc libtss2-tctildr" ;;
	*) echo "?" ;;
	esac
}

fails=0
result() { # PROGRAM PROPERTY OK DETAIL
	if [ "$3" = yes ]; then
		printf 'hardening: %-24s %-9s ok    %s\n' "$1" "$2" "$4"
	else
		printf 'hardening: %-24s %-9s FAIL  %s\n' "$1" "$2" "$4" >&2
		fails=$((fails + 1))
	fi
}

for prog in "$@"; do
	if [ ! -f "$prog" ] || ! header=$(readelf -h "$prog" 2>/dev/null); then
		result "$prog" elf no "not an ELF file (built?)"
		continue
	fi
	dynamic=$(readelf -d "$prog")
	segments=$(readelf -lW "$prog")
	# Undefined dynamic symbols: what the program calls in libc.
	imports=$(readelf --dyn-syms -W "$prog" | awk '$7 == "UND" { sub(/@.*/, "", $8); print $8 }')

	# pie: Type DYN, and FLAGS_1 with PIE (a shared library is DYN too).
	type=$(printf '%s\n' "$header" | awk -F: '$1 ~ /^ *Type$/ { print $2 }' | awk '{ print $1 }')
	flags1=$(printf '%s\n' "$dynamic" | awk '/\(FLAGS_1\)/ { sub(/.*Flags:/, ""); print }')
	flags=$(printf '%s\n' "$dynamic" | awk '/\(FLAGS\)/ { sub(/.*\(FLAGS\) */, ""); print }')
	if [ "$type" = DYN ] && printf '%s\n' "$flags1" | grep -qw PIE; then
		result "$prog" pie yes "ET_DYN, DF_1_PIE"
	else
		result "$prog" pie no "type ${type:-?}, FLAGS_1:${flags1:- none} (want DYN and PIE: -fPIE -pie)"
	fi

	# relro: the segment, and no lazy binding left to write the GOT later.
	relro=no
	printf '%s\n' "$segments" | grep -qw GNU_RELRO && relro=yes
	now=no
	if printf '%s\n' "$dynamic" | grep -q '(BIND_NOW)' ||
	    printf '%s\n' "$flags" | grep -qw BIND_NOW ||
	    printf '%s\n' "$flags1" | grep -qw NOW; then
		now=yes
	fi
	if [ $relro = yes ] && [ $now = yes ]; then
		result "$prog" relro yes "GNU_RELRO, BIND_NOW"
	else
		result "$prog" relro no "GNU_RELRO: $relro, BIND_NOW: $now (want both: -Wl,-z,relro,-z,now)"
	fi

	# nx-stack: GNU_STACK's flags (the column after its sizes) without E.
	stack=$(printf '%s\n' "$segments" | awk '$1 == "GNU_STACK" { f = ""; for (i = 7; i < NF; i++) f = f $i; print f }')
	if [ -z "$stack" ]; then
		result "$prog" nx-stack no "no GNU_STACK segment: the stack is executable (want -z noexecstack)"
	elif printf '%s' "$stack" | grep -q E; then
		result "$prog" nx-stack no "GNU_STACK $stack: the stack is executable (want -z noexecstack)"
	else
		result "$prog" nx-stack yes "GNU_STACK $stack"
	fi

	# ssp
	if printf '%s\n' "$imports" | grep -qx '__stack_chk_fail'; then
		result "$prog" ssp yes "__stack_chk_fail"
	else
		result "$prog" ssp no "no __stack_chk_fail (want -fstack-protector-strong)"
	fi

	# fortify: __*_chk, the checked variants FORTIFY_SOURCE substitutes.
	chk=$(printf '%s\n' "$imports" | grep -E '^__[a-z0-9_]+_chk$' | sort -u)
	if [ -n "$chk" ]; then
		result "$prog" fortify yes "$(printf '%s\n' "$chk" | wc -l) checked: $(printf '%s\n' "$chk" | head -n 3 | tr '\n' ' ')..."
	else
		result "$prog" fortify no "no __*_chk function (want -D_FORTIFY_SOURCE=2 and -O1 or more)"
	fi

	# needed
	allowed=$(needed_allowed "$(basename "$prog")")
	libs=$(printf '%s\n' "$dynamic" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sed 's/\.so.*//' | sort)
	extra=""
	for l in $libs; do
		case " $allowed " in *" $l "*) ;; *) extra="$extra $l" ;; esac
	done
	if [ "$allowed" = "?" ]; then
		result "$prog" needed no "no list of allowed libraries for it in scripts/check-hardening.sh"
	elif [ -z "$extra" ]; then
		result "$prog" needed yes "$(printf '%s' "$libs" | tr '\n' ' ')"
	else
		result "$prog" needed no "loads what it should not:$extra (which module pulls it in? nm -u on its archives)"
	fi
done

if [ $fails -gt 0 ]; then
	echo "check-hardening: FAILED: $fails checks (see FAIL above); the flags are HARDEN and LDHARDEN in the Makefile" >&2
	exit 1
fi
echo "check-hardening: ok ($# programs: PIE, full RELRO, NX stack, stack protector, FORTIFY_SOURCE, libraries)"
