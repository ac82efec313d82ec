/*
 * NAME
 *   setup-host.test - what `make test` does to the host before it builds
 *
 * DESCRIPTION
 *   test/setup-host.sh runs against a fake dpkg-query (which says which
 *   packages are installed) and a fake apt-get (which records its
 *   arguments and what /usr/sbin/policy-rc.d answers while it runs),
 *   placed first on PATH. As another user it must install nothing and say
 *   in one line what is missing and how to install it. As root it runs in
 *   its own mount namespace with a private tmpfs on /usr/sbin, so the
 *   host's policy-rc.d is never touched: there it must install exactly
 *   the missing packages, with policy-rc.d answering 101 during the
 *   install, and leave policy-rc.d as it found it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./setup-host.sh', import.meta.url));
const isRoot = process.getuid?.() === 0;

/** The script's package list, read from its PACKAGES=( ... ) array. */
const PACKAGES = (() => {
  const m = /^PACKAGES=\(([^)]*)\)/m.exec(fs.readFileSync(script, 'utf8'));
  if (!m) throw new Error('no PACKAGES=( ... ) in setup-host.sh');
  return m[1]!.split(/\s+/).filter(Boolean);
})();

// A world-readable copy of the script and the fakes: the non-root run is another user.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-setup-host-'));
fs.chmodSync(tmp, 0o755);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const bin = path.join(tmp, 'bin');
fs.mkdirSync(bin, { mode: 0o755 });
const copy = path.join(tmp, 'setup-host.sh');
fs.copyFileSync(script, copy);
fs.chmodSync(copy, 0o755);
const aptLog = path.join(tmp, 'apt.log');
fs.writeFileSync(
  path.join(bin, 'dpkg-query'),
  // The package is the last argument; FAKE_INSTALLED lists the installed ones.
  '#!/bin/sh\nfor p; do :; done\ncase " $FAKE_INSTALLED " in *" $p "*) printf installed ;; *) printf not-installed ;; esac\n',
  { mode: 0o755 },
);
fs.writeFileSync(
  path.join(bin, 'apt-get'),
  `#!/bin/sh\n{ echo "apt-get $*"; /usr/sbin/policy-rc.d ssh start; echo "policy-rc.d says $?"; } >> '${aptLog}' 2>&1\nexit \${FAKE_APT_STATUS:-0}\n`,
  { mode: 0o755 },
);

interface Run { status: number | null; stdout: string; stderr: string; apt: string[] }

/** run - the script with the fakes first on PATH; argv prefixes it (setpriv, unshare). */
function run(argv: string[], installed: string[], extra: Record<string, string> = {}): Run {
  fs.rmSync(aptLog, { force: true });
  const env = { PATH: `${bin}:/usr/bin:/bin:/usr/sbin:/sbin`, FAKE_INSTALLED: installed.join(' '), ...extra };
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env, cwd: tmp });
  const apt = fs.existsSync(aptLog) ? fs.readFileSync(aptLog, 'utf8').split('\n').filter(Boolean) : [];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, apt };
}

describe('the package list', () => {
  it('has what the tests use, openssh-sftp-server included', () => {
    for (const p of ['python3', 'make', 'g++', 'util-linux', 'strace', 'clamav-daemon', 'yara', 'openssh-server', 'openssh-client', 'openssh-sftp-server', 'systemd', 'systemd-container', 'python3-cryptography']) {
      expect(PACKAGES).toContain(p);
    }
  });
});

const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', copy];
describe('as another user', () => {
  // As root the script runs as nobody through setpriv; otherwise as the user running the tests.
  const argv = isRoot ? asNobody : [copy];

  it('one line names every missing package and the command that installs them; nothing is installed; exit 0', () => {
    const missing = ['clamav-daemon', 'yara', 'openssh-sftp-server'];
    const r = run(argv, PACKAGES.filter((p) => !missing.includes(p)));
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`missing Debian packages ${missing.join(' ')} `);
    expect(lines[0]).toMatch(/install them with: sudo \S*setup-host\.sh$/);
    expect(r.apt).toEqual([]);
  });

  it('says nothing when everything is installed', () => {
    const r = run(argv, PACKAGES);
    expect(r).toMatchObject({ status: 0, stderr: '', apt: [] });
  });
});

// In a private mount namespace with a tmpfs on /usr/sbin: `before` is what
// /usr/sbin/policy-rc.d holds first ('' = absent); prints what it holds after.
const inNamespace = (before: string) => [
  'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
  `mount -t tmpfs tmpfs /usr/sbin && ${before ? `printf '%s' '${before}' > /usr/sbin/policy-rc.d && ` : ''}` +
    `'${copy}'; s=$?; if [ -e /usr/sbin/policy-rc.d ]; then echo "after: $(cat /usr/sbin/policy-rc.d)"; else echo 'after: absent'; fi; exit $s`,
];
const reason = isRoot ? '' : ' [skipped: needs root (a mount namespace over /usr/sbin); CI runs as root]';
describe(`as root${reason}`, () => {
  it.skipIf(!isRoot)('installs exactly the missing packages, with policy-rc.d answering 101 meanwhile, then removes it', () => {
    const missing = ['clamav-daemon', 'openssh-server', 'systemd-container'];
    const r = run(inNamespace(''), PACKAGES.filter((p) => !missing.includes(p)));
    expect(r.status, r.stderr).toBe(0);
    expect(r.apt).toEqual([
      'apt-get update -qq',
      'policy-rc.d says 101',
      `apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends ${missing.join(' ')}`,
      'policy-rc.d says 101',
    ]);
    expect(r.stdout).toBe('after: absent\n');
  });

  it.skipIf(!isRoot)("puts the host's own policy-rc.d back afterwards", () => {
    const theirs = '#!/bin/sh\nexit 0';
    const r = run(inNamespace(theirs), PACKAGES.filter((p) => p !== 'yara'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.apt).toContain('policy-rc.d says 101');
    expect(r.stdout).toBe(`after: ${theirs}\n`);
  });

  it.skipIf(!isRoot)('a failed install fails make test, and still restores policy-rc.d', () => {
    const r = run(inNamespace(''), PACKAGES.filter((p) => p !== 'yara'), { FAKE_APT_STATUS: '100' });
    expect(r.status).not.toBe(0);
    expect(r.apt).toEqual(['apt-get update -qq', 'policy-rc.d says 101']);
    expect(r.stdout).toBe('after: absent\n');
  });

  it.skipIf(!isRoot)('downloads nothing when everything is installed', () => {
    const r = run(inNamespace(''), PACKAGES);
    expect(r.status, r.stderr).toBe(0);
    expect(r.apt).toEqual([]);
  });
});
