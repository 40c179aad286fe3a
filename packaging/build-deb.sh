#!/bin/sh
# SPDX-License-Identifier: MIT
# packaging/build-deb.sh - build the Debian package of this source tree.
#
#   packaging/build-deb.sh OUTDIR [dpkg-buildpackage options...]
#
# The Debian directory lives in packaging/debian so that the source tree has
# no ./debian of its own. This script copies the tree to a temporary
# directory, copies packaging/debian to ./debian there, runs
# `dpkg-buildpackage -us -uc -b -jauto` (plus the options given) and puts
# the .deb, .buildinfo and .changes in OUTDIR; the source tree is left
# untouched and the temporary copy is removed.
#
# From a git checkout the copy holds the files git knows of (committed or
# not, untracked ones too unless ignored): never build products of an
# in-tree build. From a release tarball it holds everything there but the
# _build and _inst directories of `make distcheck`.
#
# Environment: TMPDIR (where the copy goes), DEB_BUILD_OPTIONS (e.g. nocheck).
# Needs dpkg-dev, debhelper and the Build-Depends of packaging/debian/control
# (dpkg-buildpackage checks them and names those missing).
set -eu

prog=build-deb.sh
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
	echo "usage: packaging/build-deb.sh OUTDIR [dpkg-buildpackage options...]" >&2
	exit 64
fi
outdir=$1
shift

top=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$top/packaging/debian/control" ] || {
	echo "$prog: $top/packaging/debian/control: not found" >&2
	exit 1
}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
upstream=${version%-*}

work=$(mktemp -d "${TMPDIR:-/tmp}/recyclerd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
src=$work/recyclerd-$upstream
mkdir "$src"

if git -C "$top" rev-parse --show-toplevel >/dev/null 2>&1 &&
   [ "$(git -C "$top" rev-parse --show-toplevel)" = "$top" ]; then
	# Files deleted in the work tree but not yet in git are skipped.
	# shellcheck disable=SC2016 # $f is expanded by the inner sh
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
		tar --null -T - -cf -) | tar -C "$src" -xf -
else
	# make distcheck builds and installs in _build and _inst of the
	# unpacked tarball (read-only): neither is part of the source.
	tar -C "$top" --exclude=./_build --exclude=./_inst --exclude=./debian \
		-cf - . | tar -C "$src" -xf -
	chmod -R u+w "$src"
	# A tarball configured in place: start from a clean tree.
	if [ -f "$src/Makefile" ]; then
		make -s -C "$src" distclean >/dev/null 2>&1 || true
	fi
fi
rm -rf "$src/debian"
cp -a "$src/packaging/debian" "$src/debian"

echo "$prog: building recyclerd $version in $src"
(cd "$src" && dpkg-buildpackage -us -uc -b -jauto "$@")

found=no
for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
	[ -e "$f" ] || continue
	cp "$f" "$outdir/"
	case $f in *.deb) echo "$prog: $outdir/${f##*/}"; found=yes ;; esac
done
[ "$found" = yes ] || { echo "$prog: dpkg-buildpackage made no .deb" >&2; exit 1; }
