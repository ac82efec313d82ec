/*
 * NAME
 *   units-verify.test - every unit in deploy/ passes `systemd-analyze verify`
 *   whatever documentation the host has installed
 *
 * DESCRIPTION
 *   `systemd-analyze verify` runs man(1) for each `man:` link in a unit's
 *   Documentation= and fails the unit when the page is missing, so a man:
 *   link makes verification depend on the host (openssh-server's pages,
 *   man-db). Here verify runs with a PATH whose first `man` records that it
 *   was called and fails: every unit must still verify, and that `man` must
 *   never have run. A probe unit with a man: link shows that this `man` is
 *   the one verify calls, so the test would catch such a link coming back.
 *   Why the units have no man: links: docs/operations.md, "Unit
 *   documentation links".
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const deploy = fileURLToPath(new URL('../deploy', import.meta.url));
const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0;
const UNITS = fs.readdirSync(deploy).filter((f) => /\.(service|socket|target|timer|path|mount|slice)$/.test(f)).sort();

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-units-verify-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A man(1) that fails, as it does for a page that is not installed, and
// leaves a line in its log for every call.
const bin = path.join(tmp, 'bin');
const manLog = path.join(tmp, 'man.log');
fs.mkdirSync(bin);
fs.writeFileSync(path.join(bin, 'man'), `#!/bin/sh\necho "man $*" >> '${manLog}'\nexit 16\n`, { mode: 0o755 });
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };

/** verify - `systemd-analyze verify` on unit files, with the failing man first on PATH. */
function verify(files: string[]) {
  fs.rmSync(manLog, { force: true });
  const r = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8', cwd: os.tmpdir(), env });
  const manCalls = fs.existsSync(manLog) ? fs.readFileSync(manLog, 'utf8').split('\n').filter(Boolean) : [];
  return { status: r.status, stderr: r.stderr, manCalls };
}

describe('unit documentation links', () => {
  it('deploy/ has the units this test is about', () => {
    expect(UNITS).toEqual(expect.arrayContaining(['sluice-ingress.service', 'sluice-transit.service', 'sluice-egress.service', 'sluice-transit.socket', 'sluice-egress.socket', 'sluice.target']));
  });

  it.each(UNITS)('%s: Documentation= names no man: page', (name) => {
    const docs = fs
      .readFileSync(path.join(deploy, name), 'utf8')
      .split('\n')
      .filter((l) => /^Documentation=/.test(l.trim()))
      .flatMap((l) => l.trim().slice('Documentation='.length).split(/\s+/).filter(Boolean));
    expect(docs.length, `${name} has a Documentation= line`).toBeGreaterThan(0);
    expect(docs.filter((d) => d.startsWith('man:'))).toEqual([]);
  });
});

describe(`systemd-analyze verify with a man(1) that fails${hasAnalyze ? '' : ' [skipped: systemd-analyze is not installed (Debian package systemd)]'}`, () => {
  it.skipIf(!hasAnalyze)('a unit with a man: link fails with this man, which verify did call (the probe)', () => {
    const probe = path.join(tmp, 'sluice-probe.service');
    fs.writeFileSync(probe, '[Unit]\nDescription=probe\nDocumentation=man:sluice-probe(1)\n\n[Service]\nExecStart=/bin/true\n');
    const r = verify([probe]);
    expect(r.manCalls).toHaveLength(1); // systemd calls it as `man 1 sluice-probe`
    expect(r.manCalls[0]).toMatch(/^man .*\bsluice-probe\b/);
    expect(r.stderr).toContain("Command 'man sluice-probe(1)' failed");
    expect(r.status).not.toBe(0);
  });

  it.skipIf(!hasAnalyze).each(UNITS)('%s passes, and man is never run', (name) => {
    const r = verify([path.join(deploy, name)]);
    expect(r.manCalls).toEqual([]);
    // verify also loads units the system has; only complaints about ours count.
    expect(r.stderr.split('\n').filter((l) => l.includes('sluice')), r.stderr).toEqual([]);
    expect(r.status, r.stderr).toBe(0);
  });
});
