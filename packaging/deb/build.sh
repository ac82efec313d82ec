#!/bin/sh
# NAME
#   build.sh - build the Debian package sluice_<version>_<arch>.deb (what
#   `make deb` runs)
#
# SYNOPSIS
#   make deb [DEB_OUT=DIR] [SLUICE_DEB_VERSION=VERSION]
#   packaging/deb/build.sh          (same variables, from the environment)
#
# DESCRIPTION
#   Stages `make install PREFIX=/usr NODE=/usr/bin/node` in a scratch
#   directory and packs it with Debian's own tools: dpkg-shlibdeps for the
#   libraries the native addons link, dpkg-gencontrol for DEBIAN/control
#   (from packaging/deb/control and the changelog), dpkg-deb
#   --root-owner-group for the archive. Like `make install`, it copies what
#   `make build` made and downloads nothing.
#
#   The staged tree, beyond what `make install` lays out:
#     - native addons stripped as dh_strip would (--strip-unneeded, no
#       .comment or .note sections);
#     - /usr/share/doc/sluice/copyright (machine-readable, naming every
#       bundled npm module, its version and licence as its package.json
#       states them) and changelog.gz;
#     - /usr/share/lintian/overrides/sluice;
#     - DEBIAN/: control, conffiles (everything under /etc), md5sums and
#       the maintainer scripts postinst, prerm, postrm.
#
#   The version is packaging/deb/changelog's top entry, which must match
#   package.json's version. SLUICE_DEB_VERSION builds another version (a
#   rebuild for an upgrade test, a local revision): a changelog entry for
#   it is added in the staged copy only. The archive is written to DEB_OUT
#   (default: the top of the tree) and its path printed on the last line.
#
# DIAGNOSTICS
#   Exits non-zero with a message on the first problem (nothing built, a
#   tool missing: dpkg-dev provides dpkg-shlibdeps and dpkg-gencontrol,
#   binutils strip; the changelog and package.json disagreeing).
set -eu
umask 022

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "build.sh: $*" >&2; exit 1; }

for tool in dpkg-deb dpkg-gencontrol dpkg-shlibdeps dpkg-parsechangelog strip gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (Debian packages dpkg-dev, binutils; test/setup-host.sh installs them)"
done

pkgver=$(node -p "require('$top/package.json').version") || die "cannot read package.json's version"
logver=$(dpkg-parsechangelog -l"$here/changelog" -SVersion)
[ "$logver" = "$pkgver" ] || die "packaging/deb/changelog's top entry is $logver but package.json says $pkgver: add a changelog entry"
version=${SLUICE_DEB_VERSION:-$pkgver}
arch=$(dpkg --print-architecture)
out=${DEB_OUT:-$top}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$work/debian" "$root"

# --- the application, staged ---
make -s -C "$top" install PREFIX=/usr DESTDIR="$root" NODE=/usr/bin/node >/dev/null
find "$root" -type f -name '*.node' -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +
# As dh_fixperms and lintian want them: shared objects and WebAssembly are
# loaded, not executed; npm's and git's own control files and the
# compiler's declarations and build records are not part of the program.
find "$root" -type f \( -name '*.node' -o -name '*.wasm' \) -exec chmod 0644 {} +
find "$root/usr/lib/sluice" -type f \( -name .npmignore -o -name .gitattributes -o -name .gitignore \) -delete
find "$root/usr/lib/sluice/packages" -type f \( -name '*.d.ts' -o -name .tsbuildinfo \) -delete

# --- the changelog: the versioned one, plus an entry for SLUICE_DEB_VERSION ---
cp "$here/control" "$work/debian/control"
if [ "$version" != "$pkgver" ]; then
  maint=$(sed -n 's/^Maintainer: //p' "$here/control")
  {
    printf 'sluice (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Local rebuild of %s as %s (SLUICE_DEB_VERSION).\n\n' "$pkgver" "$version"
    printf ' -- %s  %s\n\n' "$maint" "$(date -R ${SOURCE_DATE_EPOCH:+-d @$SOURCE_DATE_EPOCH})"
    cat "$here/changelog"
  } > "$work/debian/changelog"
else
  cp "$here/changelog" "$work/debian/changelog"
fi
dpkg-parsechangelog -l"$work/debian/changelog" >/dev/null || die "the changelog does not parse"

doc=$root/usr/share/doc/sluice
gzip -9n < "$work/debian/changelog" > "$doc/changelog.gz"

# --- copyright: ours, and each bundled module's own statement ---
{
  cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sluice
Comment: The npm modules under /usr/lib/sluice/node_modules are bundled as
 pinned by package-lock.json; each keeps its own LICENSE file beside its
 package.json. Their licences as their package.json files state them:
EOF
  (cd "$top" && npm ls --omit=dev --all --parseable 2>/dev/null) | grep '/node_modules/' | grep -v '/node_modules/@sluice/' |
    while read -r d; do
      node -e "const p=require(process.argv[1] + '/package.json'); console.log(' ' + p.name + ' ' + p.version + ': ' + (typeof p.license === 'string' ? p.license : JSON.stringify(p.license)))" "$d"
    done | sort -u
  cat <<'EOF'

Files: *
Copyright: 2026 the Sluice maintainers
License: Apache-2.0

Files: usr/lib/sluice/node_modules/*
Copyright: the authors of each module, as its LICENSE file names them
License: MIT and BSD-3-Clause and ISC and Apache-2.0
 The full text of each module's licence is in its directory
 (usr/lib/sluice/node_modules/<module>/LICENSE); the list above names
 the licence of each. The Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may
 not use this file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
} > "$doc/copyright"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

mkdir -p "$root/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/sluice"

# --- DEBIAN/ ---
mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# dpkg-shlibdeps names the libraries the ELF objects link (libc for the addons).
elves=$(find "$root" -type f -name '*.node' | sort)
[ -n "$elves" ] || die "no native addon staged (is 'make build' done?)"
# shellcheck disable=SC2086 # one argument per object; the paths have no blanks
(cd "$work" && dpkg-shlibdeps --warnings=6 -Tdebian/substvars -e $elves)
grep -q '^shlibs:Depends=' "$work/debian/substvars" || die "dpkg-shlibdeps found no library dependencies"
(cd "$work" && dpkg-gencontrol -psluice -Tdebian/substvars -P"$root")

deb=$out/sluice_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
