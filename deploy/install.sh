#!/bin/sh
# NAME
#   install.sh - install the built Sluice, its units, users, directories and
#   configuration (what `make install` runs)
#
# SYNOPSIS
#   make build && make install [PREFIX=/usr/local] [DESTDIR=/stage] [NODE=/usr/bin/node]
#   deploy/install.sh            (same variables, from the environment)
#
# DESCRIPTION
#   Copies what `make build` produced; it never builds, downloads or runs
#   npm install, so it works offline and cannot change node_modules under
#   the other users of a checkout. Layout (PREFIX=/usr/local):
#
#     $PREFIX/lib/sluice/               the application:
#         package.json, packages/*/{package.json,dist}, the addon
#         (packages/native/build/Release/sluice_native.node),
#         packages/protocol/sluice.proto, node_modules/ (production
#         dependencies only; @sluice/* link to ../../packages/*)
#     $PREFIX/bin/sluice                -> ../lib/sluice/packages/cli/dist/main.js
#     $PREFIX/lib/systemd/system/       sluice.target, sluice-*.service, sluice-*.socket
#     $PREFIX/lib/sysusers.d/sluice.conf
#     $PREFIX/lib/tmpfiles.d/sluice.conf
#     $PREFIX/share/sluice/             pristine copies of the /etc files below
#     $PREFIX/share/doc/sluice/         docs/*.md
#     /etc/ssh/sshd_config.d/sluice-drop.conf   only if absent
#     /etc/ssh/sshd_config.d/sluice-uploaders.conf   only if absent
#     /etc/sluice/sluice.json                   only if absent
#
#   Files under /etc are the operator's once installed: they are written
#   only when missing; compare them with $PREFIX/share/sluice/ after an
#   upgrade. Everything else is replaced. The application directory is
#   replaced by a rename, so running daemons keep their mapped files
#   (the native addon above all) until they are restarted.
#
#   The units name $PREFIX/lib/sluice and $NODE; the copies in deploy/
#   name /usr/local/lib/sluice and /usr/bin/node and are rewritten here.
#   PREFIX and NODE must lie under /usr: the units hide /opt, /srv, /home
#   and the like from the stages (ProtectSystem=strict, ProtectHome=; for
#   ingress, an empty root into which /usr, $NODE and $PREFIX/lib/sluice are
#   bound, docs/privsep.md "What ingress sees").
#
#   DESTDIR is prepended to every path written, for staging and packaging.
#   Nothing here creates users or directories on the running system: that
#   is `systemd-sysusers` and `systemd-tmpfiles --create` (docs/operations.md).
#
# DIAGNOSTICS
#   Exits non-zero with a message on the first problem (nothing built,
#   a PREFIX outside /usr, a copy that failed).
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
NODE=${NODE:-$(command -v node || echo /usr/bin/node)}
LIBDIR=$PREFIX/lib/sluice
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
SSHDCONFDIR=${SSHDCONFDIR:-$SYSCONFDIR/ssh/sshd_config.d}
SHAREDIR=$PREFIX/share/sluice
DOCDIR=$PREFIX/share/doc/sluice

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
PACKAGES="native protocol core report transit ingress egress cli"

die() { echo "install.sh: $*" >&2; exit 1; }

case $PREFIX in /usr|/usr/*) ;; *) die "PREFIX=$PREFIX: must be /usr or below (the units hide other trees from the stages)";; esac
case $NODE in /usr/*) ;; *) die "NODE=$NODE: must be an absolute path under /usr (the units hide other trees from the stages)";; esac
[ -x "$NODE" ] || die "NODE=$NODE is not executable"

# built? (never build here: see DESCRIPTION)
[ -f "$top/packages/native/build/Release/sluice_native.node" ] || die "the native addon sluice_native is not built: run 'make build' first"
for p in $PACKAGES; do
  [ -d "$top/packages/$p/dist" ] || die "packages/$p/dist is missing: run 'make build' first"
done

# prod_modules - the production dependency directories, relative to the top (npm's own view of node_modules).
prod_modules() {
  listing=$(cd "$top" && npm ls --omit=dev --all --parseable 2>/dev/null) || die "npm ls --omit=dev failed: node_modules does not match package-lock.json (run 'make build')"
  IFS='
'
  for dir in $listing; do
    case $dir in
      "$top") ;;
      "$top"/node_modules/@sluice/*) ;;           # workspaces: linked below
      "$top"/node_modules/*) echo "${dir#"$top"/}" ;;
      *) die "unexpected dependency location $dir" ;;
    esac
  done
}

# --- the application, staged beside its final place, then renamed in ---
lib=$DESTDIR$LIBDIR
stage=$lib.new.$$
old=$lib.old.$$
rm -rf "$stage"
mkdir -p "$stage/node_modules/@sluice"
trap 'rm -rf "$stage"' EXIT
cp "$top/package.json" "$stage/"
for p in $PACKAGES; do
  mkdir -p "$stage/packages/$p"
  cp "$top/packages/$p/package.json" "$stage/packages/$p/"
  cp -R "$top/packages/$p/dist" "$stage/packages/$p/dist"
  ln -s "../../packages/$p" "$stage/node_modules/@sluice/$p"
done
mkdir -p "$stage/packages/native/build/Release"
cp "$top/packages/native/build/Release/sluice_native.node" "$stage/packages/native/build/Release/"
cp "$top/packages/protocol/sluice.proto" "$stage/packages/protocol/"
modules=$(prod_modules) || exit 1
[ -n "$modules" ] || die "npm ls listed no production dependencies (is node_modules installed?)"
IFS='
'
for m in $modules; do
  mkdir -p "$stage/$(dirname "$m")"
  [ -e "$stage/$m" ] || cp -R "$top/$m" "$stage/$m"
done
unset IFS
# Tests and source maps are not part of the installed application.
find "$stage/packages" \( -name '*.test.js' -o -name '*.test.d.ts' -o -name '*.map' \) -type f -exec rm -f {} +
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/packages/cli/dist/main.js"
# smoke test: the installed tree loads (resolves every import, loads the addon and the ML-DSA signer).
"$NODE" --input-type=module -e "await import('$stage/node_modules/@sluice/core/dist/index.js'); await import('$stage/node_modules/@sluice/report/dist/index.js'); (await import('$stage/node_modules/@sluice/report/dist/_hybrid.js')).loadSigner();" \
  || die "the staged application does not load"
if [ -e "$lib" ]; then mv "$lib" "$old"; fi
mv "$stage" "$lib"
rm -rf "$old"
trap - EXIT

mkdir -p "$DESTDIR$PREFIX/bin"
ln -sfn ../lib/sluice/packages/cli/dist/main.js "$DESTDIR$PREFIX/bin/sluice"

# --- units, users, directories ---
mkdir -p "$DESTDIR$UNITDIR" "$DESTDIR$SYSUSERSDIR" "$DESTDIR$TMPFILESDIR"
for u in sluice.target sluice-ingress.service sluice-transit.service sluice-transit.socket sluice-egress.service sluice-egress.socket; do
  sed -e "s|/usr/local/lib/sluice|$LIBDIR|g" \
      -e "s|/usr/local/share/doc/sluice|$DOCDIR|g" \
      -e "s|/usr/bin/node |$NODE |g" \
      "$here/$u" > "$DESTDIR$UNITDIR/$u"
  chmod 0644 "$DESTDIR$UNITDIR/$u"
done
install -m 0644 "$here/sysusers.d/sluice.conf" "$DESTDIR$SYSUSERSDIR/sluice.conf"
install -m 0644 "$here/tmpfiles.d/sluice.conf" "$DESTDIR$TMPFILESDIR/sluice.conf"

# --- pristine copies and docs ---
mkdir -p "$DESTDIR$SHAREDIR" "$DESTDIR$DOCDIR"
install -m 0644 "$here/sluice.json" "$DESTDIR$SHAREDIR/sluice.json"
for f in sluice-drop.conf sluice-uploaders.conf; do
  install -m 0644 "$here/sshd_config.d/$f" "$DESTDIR$SHAREDIR/$f"
done
for d in "$top"/docs/*.md; do install -m 0644 "$d" "$DESTDIR$DOCDIR/"; done

# --- the operator's files, only when missing ---
mkdir -p "$DESTDIR$SYSCONFDIR/sluice" "$DESTDIR$SSHDCONFDIR"
[ -e "$DESTDIR$SYSCONFDIR/sluice/sluice.json" ] || install -m 0644 "$here/sluice.json" "$DESTDIR$SYSCONFDIR/sluice/sluice.json"
for f in sluice-drop.conf sluice-uploaders.conf; do
  [ -e "$DESTDIR$SSHDCONFDIR/$f" ] || install -m 0644 "$here/sshd_config.d/$f" "$DESTDIR$SSHDCONFDIR/$f"
done

echo "installed Sluice in $DESTDIR$LIBDIR (units in $DESTDIR$UNITDIR); next steps: docs/operations.md"
