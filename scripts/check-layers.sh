#!/bin/sh
# make layers: checks that the tree keeps the shape docs/architecture.md
# draws, from the sources and the release objects (build/obj):
#   includes  a file of src/D/ includes its own folder's headers, and of
#             another folder E only E's map (E/E.h), and only where the
#             arrow D -> E is allowed below; tpm/tss.h (tpm2-tss types) only
#             from the folders that talk to a TPM through ESYS; nothing
#             anywhere includes a .c file (tests link the archives);
#   calls     what each object takes from another (nm) follows the same
#             arrows, and no files call each other in a circle, inside a
#             folder or across folders (tsort finds the circles).
# One line per finding; any finding fails (status 1).
# Usage: scripts/check-layers.sh   (from the top directory, after `make all`)
set -eu
export LC_ALL=C

# The allowed arrows: folder -> the folders it may use.
uses() {
	case "$1" in
	common) echo "" ;;
	tpm) echo "common" ;;
	instance) echo "common" ;;
	hwtpm) echo "tpm common" ;;
	manager) echo "hwtpm instance tpm common" ;;
	ca | attest | vtpmctl) echo "tpm common" ;;
	*) echo "?" ;;
	esac
}
# The folders whose files may include tpm/tss.h (ESYS users).
tss_users="hwtpm manager attest"

fails=0
finding() {
	echo "layers: $*" >&2
	fails=$((fails + 1))
}
in_list() { # WORD LIST...
	w=$1
	shift
	for x in "$@"; do [ "$x" = "$w" ] && return 0; done
	return 1
}

folders=$(for d in src/*/; do basename "$d"; done)
for d in $folders; do
	[ "$(uses "$d")" = "?" ] && finding "src/$d/: a folder without a rule: add its arrows to scripts/check-layers.sh and docs/architecture.md"
	[ -f "src/$d/$d.h" ] || finding "src/$d/: no map header src/$d/$d.h"
done

# -- includes -----------------------------------------------------------------
for f in src/*/*.c src/*/*.h; do
	d=$(basename "$(dirname "$f")")
	# shellcheck disable=SC2046 # one word per folder
	allowed=$(uses "$d")
	grep -n '^#include "' "$f" | while IFS= read -r line; do
		n=${line%%:*}
		inc=$(printf '%s\n' "$line" | sed 's/^[0-9]*:#include "\(.*\)".*/\1/')
		case "$inc" in
		*.c) echo "$f:$n: includes a source file ($inc)" ;;
		*/*)
			e=${inc%%/*}
			h=${inc#*/}
			if [ "$e" = "$d" ]; then
				echo "$f:$n: includes its own folder as $inc (write \"$h\")"
			elif [ "$inc" = "tpm/tss.h" ]; then
				# shellcheck disable=SC2086
				in_list "$d" $tss_users ||
				    echo "$f:$n: tpm/tss.h (tpm2-tss types) outside the ESYS users ($tss_users)"
			elif [ "$h" != "$e.h" ]; then
				echo "$f:$n: $inc is inside $e/; another folder includes only its map, $e/$e.h"
			else
				# shellcheck disable=SC2086
				in_list "$e" $allowed ||
				    echo "$f:$n: $d may not use $e (allowed: ${allowed:-nothing})"
			fi
			;;
		*)
			[ -f "src/$d/$inc" ] || echo "$f:$n: \"$inc\" is not a header of src/$d/"
			;;
		esac
	done
done >build/layers-includes.txt
while IFS= read -r l; do finding "$l"; done <build/layers-includes.txt
for f in tests/*/*.c tests/*/*.h bench/*.c bench/*.h; do
	[ -f "$f" ] || continue
	grep -n '^#include "[^"]*\.c"' "$f" | while IFS= read -r line; do
		echo "$f:${line%%:*}: includes a source file: link the folder's archive instead"
	done
done >build/layers-tests.txt
while IFS= read -r l; do finding "$l"; done <build/layers-tests.txt

# -- calls --------------------------------------------------------------------
# The objects of today's sources only (a file moved or removed leaves a
# stale object behind in a working tree).
objs=""
for c in src/*/*.c; do
	o=build/obj/${c#src/}
	o=${o%.c}.o
	[ -f "$o" ] && objs="$objs $o"
done
[ -n "$objs" ] || {
	echo "layers: no objects in build/obj: run 'make all' first" >&2
	exit 1
}
defs=build/layers-defs.txt
refs=build/layers-refs.txt
for o in $objs; do
	f=${o#build/obj/}
	f=${f%.o}
	nm --defined-only -g "$o" | awk -v f="$f" 'NF == 3 { print $3, f }'
done | sort >"$defs"
for o in $objs; do
	f=${o#build/obj/}
	f=${f%.o}
	nm -u "$o" | awk -v f="$f" '{ print $2, f }'
done | sort >"$refs"
# "user used": one line per pair of files where the first calls the second.
join "$refs" "$defs" | awk '$2 != $3 { print $2, $3 }' | sort -u >build/layers-edges.txt
while read -r from to; do
	a=${from%%/*}
	b=${to%%/*}
	[ "$a" = "$b" ] && continue
	# shellcheck disable=SC2046
	in_list "$b" $(uses "$a") || finding "src/$from.c calls into src/$to.c: $a may not use $b"
done <build/layers-edges.txt
if ! tsort build/layers-edges.txt >/dev/null 2>build/layers-loops.txt; then
	finding "files that call each other in a circle (each loop's files, as tsort lists them):"
	sed 's/^tsort: /    /' build/layers-loops.txt >&2
fi
# The same between folders.
awk '{ split($1, a, "/"); split($2, b, "/"); if (a[1] != b[1]) print a[1], b[1] }' \
    build/layers-edges.txt | sort -u >build/layers-folders.txt
if ! tsort build/layers-folders.txt >/dev/null 2>build/layers-loops.txt; then
	finding "folders that call each other in a circle:"
	sed 's/^tsort: /    /' build/layers-loops.txt >&2
fi

if [ $fails -gt 0 ]; then
	echo "check-layers: FAILED: $fails findings; the rules are in docs/architecture.md" >&2
	exit 1
fi
echo "check-layers: ok ($(echo "$folders" | wc -w) folders, $(wc -l <build/layers-edges.txt) file-to-file calls, no circles, every arrow allowed)"
