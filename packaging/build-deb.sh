#!/usr/bin/env bash
# Build lanai's .deb from this checkout with dh-virtualenv: packaging/build-deb.sh OUTPUT_DIR
# Needs (Debian 12): apt-get install --no-install-recommends dpkg-dev debhelper dh-virtualenv python3-venv
# and network access to PyPI (the venv's wheels). The .deb (lanai_VERSION_ARCH.deb) lands in OUTPUT_DIR.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTPUT_DIR" >&2
    exit 2
fi
out="$(mkdir -p "$1" && cd "$1" && pwd)"
checkout="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$checkout/pyproject.toml" | head -n 1)"
[ -n "$version" ] || { echo "no version in pyproject.toml" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
source_dir="$work/lanai-$version"
mkdir -p "$source_dir"
# The checkout's files as they are now (tracked and new, not ignored), without .git and build leftovers.
(cd "$checkout" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -xf - -C "$source_dir"
cp -r "$checkout/packaging/debian" "$source_dir/debian"
cp "$checkout/deploy/lanai.service" "$source_dir/debian/lanai.service"
cat > "$source_dir/debian/changelog" <<CHANGELOG
lanai ($version) unstable; urgency=medium

  * Built from a checkout by packaging/build-deb.sh.

 -- lanai maintainers <lanai@localhost>  $(date -R)
CHANGELOG

(cd "$source_dir" && dpkg-buildpackage --build=binary --no-sign)
mv "$work"/lanai_"$version"_*.deb "$out"/
ls "$out"/lanai_"$version"_*.deb
