#!/usr/bin/env bash
# A clean Debian 12 (bookworm) amd64 minbase root filesystem with Debian's Python 3.11, for the package and
# container tests: packaging/bookworm-rootfs.sh DIR [EXTRA_PACKAGE,...]. Needs root, debootstrap and
# deb.debian.org. DIR is created whole or not at all (built beside it, then renamed).
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
    echo "usage: $0 DIR [EXTRA_PACKAGE,...]" >&2
    exit 2
fi
target="$1"
include="python3${2:+,$2}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
[ ! -e "$target" ] || { echo "$target exists" >&2; exit 1; }
partial="$target.partial.$$"
trap 'rm -rf "$partial"' EXIT
debootstrap --variant=minbase --arch=amd64 --include="$include" bookworm "$partial" "$mirror"
# apt's lists and downloaded packages are not part of a clean image
rm -rf "$partial"/var/cache/apt/archives/*.deb "$partial"/var/lib/apt/lists/*
mv "$partial" "$target"
trap - EXIT
