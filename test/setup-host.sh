#!/usr/bin/env bash
# NAME
#   setup-host.sh - the Debian packages the tests need, installed by `make test`
#
# SYNOPSIS
#   test/setup-host.sh            (the first step of `make test`)
#
# DESCRIPTION
#   The one list of host packages the test suite uses; `.ci/run` and the
#   README's `make test` both come through here.
#
#   As root: every package that is not installed is installed with
#   `apt-get update` and `apt-get install --no-install-recommends`. While
#   apt runs, /usr/sbin/policy-rc.d answers 101 ("action forbidden"), so
#   nothing installed starts by itself (clamd, freshclam, sshd): the tests
#   start their own, in the foreground, with their own configuration. The
#   host's previous policy-rc.d, if it had one, is put back afterwards.
#   Nothing is downloaded when everything is already installed.
#
#   As any other user: nothing is installed. One line on stderr names the
#   missing packages and the command that installs them, and the script
#   exits 0 so that `make test` runs what it can; each test that needs a
#   missing package is skipped with the reason in its name, and the run
#   ends with the list of skips (test/support/skip-reporter.ts).
#
# DIAGNOSTICS
#   Exit 0 when everything is installed, or when not root. Exit 1 when
#   root and apt-get fails: `make test` stops rather than run a suite whose
#   scanner and deployment tests would all be skipped.
#
# SEE ALSO
#   README.md, .ci/run, Makefile (target test)
set -euo pipefail

# Each package, and what needs it:
#   python3 make g++    node-gyp builds the native addon; tests compile C helpers (cc)
#   util-linux          setpriv, unshare, mount, nsenter
#   strace              the native addon's listen race test (bind() before chmod)
#   clamav-daemon yara  transit's scanners, real clamd and yara end to end
#   openssh-server openssh-client openssh-sftp-server
#                       the real scp/sftp drop: sshd with the drop-in, scp, sftp, sftp-server
#   systemd             systemd-analyze verify and security, sysusers, tmpfiles
#   systemd-container   systemd-nspawn boots the installed units under a real systemd
#   python3-cryptography  the independent Python verifier of the report test vector
#   prometheus-node-exporter  scrapes the stages' metrics files (textfile collector) over HTTP
#   dpkg-dev            `make deb`: dpkg-shlibdeps, dpkg-gencontrol, dpkg-parsechangelog (dpkg-deb
#                       --root-owner-group makes the archive root-owned: no fakeroot)
#   lintian             checks the built package (test/deploy/deb.test.ts)
PACKAGES=(
  python3 make g++ util-linux strace
  clamav-daemon yara
  openssh-server openssh-client openssh-sftp-server
  systemd systemd-container
  python3-cryptography
  prometheus-node-exporter
  dpkg-dev lintian
)
POLICY=/usr/sbin/policy-rc.d

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-host: not a Debian system (no dpkg-query): install the equivalents of ${PACKAGES[*]} yourself; tests that need what is missing will be skipped" >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup-host: missing Debian packages ${missing[*]} (their tests will be skipped); install them with: sudo $0" >&2
  exit 0
fi

# restore_policy - put back the host's policy-rc.d as it was before the install.
saved=''
restore_policy() {
  if [ -n "$saved" ]; then mv -f "$saved" "$POLICY"; else rm -f "$POLICY"; fi
}
if [ -e "$POLICY" ] || [ -L "$POLICY" ]; then
  saved=$(mktemp "$POLICY.setup-host.XXXXXX")
  cp -a "$POLICY" "$saved"
fi
trap restore_policy EXIT
printf '#!/bin/sh\n# Written by sluice test/setup-host.sh while it installs packages: start nothing.\nexit 101\n' > "$POLICY"
chmod 755 "$POLICY"

echo "setup-host: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}"
