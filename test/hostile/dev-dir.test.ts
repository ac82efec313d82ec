// A squatted `sluice dev --dir`: another local user creates the directory
// first (or a directory in it, or a symbolic link such as outbox ->
// ~victim/.ssh) and waits for keys, spool or deliveries to land where they
// chose. sluice dev must refuse, name the path and why, start nothing, and
// write nothing through the link. The cases with a second user run as root
// (as CI does) with `nobody` as the squatter; the same-user link cases run as
// anyone. A re-run on a directory an earlier run made must keep working.
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, type LogLine } from '../support/pipeline.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

const cleanup: string[] = [];
afterEach(() => {
  for (const d of cleanup.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** scratch - a fresh directory of ours under the system temporary directory, removed after the test. */
function scratch(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `sluice-${tag}-`));
  cleanup.push(d);
  return d;
}

/** asNobody - run a command as the second user (uid/gid 65534, no groups). */
function asNobody(cmd: string, ...args: string[]): void {
  execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args], { stdio: 'inherit' });
}

/** victim - a private directory of ours standing for ~/.ssh: nothing may ever appear in it. */
function victim(): string {
  const home = scratch('victim');
  fs.chmodSync(home, 0o755); // the squatter must be able to aim a link at it; reading it is not the attack
  const ssh = path.join(home, '.ssh');
  fs.mkdirSync(ssh, { mode: 0o700 });
  return ssh;
}

interface Refusal {
  status: number | null;
  stderr: string;
  lines: LogLine[];
}

/** runDev - `sluice dev --dir dir`; a refusal exits at once (a run that starts is stopped by the timeout's SIGTERM). */
function runDev(dir: string): Refusal {
  const r = spawnSync(process.execPath, [CLI, 'dev', '--dir', dir], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGTERM' });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
  return { status: r.status, stderr: r.stderr, lines };
}

/** expectRefused - exit 1, nothing started, the path named with its reason on stderr and in one dev-refused line. */
function expectRefused(r: Refusal, where: string, why: RegExp): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toContain(`sluice: ${where}: `);
  expect(r.stderr).toMatch(why);
  const refused = r.lines.filter((l) => l.event === 'dev-refused');
  expect(refused).toEqual([expect.objectContaining({ level: 'error', path: where, reason: expect.stringMatching(why) })]);
  expect(r.lines.filter((l) => l.event === 'stage-started' || l.event === 'dev-starting')).toEqual([]);
}

describe.skipIf(!isRoot)('sluice dev refuses a directory another user prepared (root, with nobody as the squatter)', () => {
  it('refuses DIR created by another user with outbox a link into the victim’s ~/.ssh, and writes nothing through it', () => {
    const ssh = victim();
    const dir = path.join(scratch('parent'), 'squat');
    fs.chmodSync(path.dirname(dir), 0o1777); // a /tmp-like parent both users can create in
    asNobody('mkdir', '-m', '0777', dir);
    asNobody('ln', '-s', ssh, path.join(dir, 'outbox'));
    const r = runDev(dir);
    expectRefused(r, dir, /is owned by uid 65534, not by you \(uid 0\)/);
    expect(fs.readdirSync(ssh)).toEqual([]);
    expect(fs.readdirSync(dir).sort()).toEqual(['outbox']); // not even an inbox was made in it
  });

  it('refuses DIR created by another user even when it looks private (0755, nothing in it)', () => {
    const dir = path.join(scratch('parent'), 'squat');
    fs.chmodSync(path.dirname(dir), 0o1777);
    asNobody('mkdir', '-m', '0755', dir);
    expectRefused(runDev(dir), dir, /is owned by uid 65534/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses a DIR of ours that others can write to, where another user planted outbox -> ~/.ssh', () => {
    const ssh = victim();
    const dir = scratch('open');
    fs.chmodSync(dir, 0o777);
    asNobody('ln', '-s', ssh, path.join(dir, 'outbox'));
    expectRefused(runDev(dir), dir, /is writable by group or others \(mode 0777\)/);
    expect(fs.readdirSync(ssh)).toEqual([]);
  });

  it('refuses a directory in DIR that another user made while DIR was open, after DIR was closed again', () => {
    const dir = scratch('closed');
    fs.chmodSync(dir, 0o777);
    asNobody('mkdir', '-m', '0755', path.join(dir, 'outbox'));
    fs.chmodSync(dir, 0o700);
    expectRefused(runDev(dir), path.join(dir, 'outbox'), /is owned by uid 65534, not by you/);
  });

  it('refuses a DIR below a directory another user owns (they could swap it)', () => {
    const parent = path.join(scratch('parent'), 'theirs');
    fs.chmodSync(path.dirname(parent), 0o1777);
    asNobody('mkdir', '-m', '0777', parent);
    const dir = path.join(parent, 'sluice');
    expectRefused(runDev(dir), parent, /is owned by uid 65534, neither you \(uid 0\) nor root/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses a DIR reached through another user’s symbolic link', () => {
    const mine = scratch('mine');
    const link = path.join(scratch('parent'), 'link');
    fs.chmodSync(path.dirname(link), 0o1777);
    asNobody('ln', '-s', mine, link);
    expectRefused(runDev(path.join(link, 'sluice')), link, /is a symbolic link owned by uid 65534/);
    expect(fs.readdirSync(mine)).toEqual([]);
  });
});

describe('sluice dev never follows a symbolic link in its directory (same user)', () => {
  it('refuses outbox -> another directory of the same user, naming the link, and writes nothing there', () => {
    const target = scratch('target');
    const dir = scratch('dev');
    fs.symlinkSync(target, path.join(dir, 'outbox'));
    expectRefused(runDev(dir), path.join(dir, 'outbox'), new RegExp(`is a symbolic link \\(to ${target}\\); sluice dev never follows a link`));
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('refuses keys -> elsewhere before any key is written', () => {
    const target = scratch('target');
    const dir = scratch('dev');
    fs.symlinkSync(target, path.join(dir, 'keys'));
    expectRefused(runDev(dir), path.join(dir, 'keys'), /is a symbolic link/);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('refuses DIR itself being a symbolic link', () => {
    const target = scratch('target');
    const link = path.join(scratch('parent'), 'dev');
    fs.symlinkSync(target, link);
    expectRefused(runDev(link), link, /is a symbolic link/);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('refuses sluice.json being a symbolic link (it would be read, or written through)', () => {
    const target = path.join(scratch('target'), 'sluice.json');
    const dir = scratch('dev');
    fs.symlinkSync(target, path.join(dir, 'sluice.json'));
    expectRefused(runDev(dir), path.join(dir, 'sluice.json'), /is a symbolic link/);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses a directory its sluice.json names when that is a link', () => {
    const target = scratch('target');
    const dir = scratch('dev');
    const elsewhere = path.join(scratch('else'), 'out');
    fs.symlinkSync(target, elsewhere);
    fs.writeFileSync(path.join(dir, 'sluice.json'), JSON.stringify({ egress: { outbox: elsewhere } }));
    expectRefused(runDev(dir), elsewhere, /is a symbolic link/);
    expect(fs.readdirSync(target)).toEqual([]);
  });

  it('refuses a DIR of ours that group or others can write to', () => {
    const dir = scratch('dev');
    fs.chmodSync(dir, 0o770);
    expectRefused(runDev(dir), dir, /is writable by group or others \(mode 0770\)/);
  });
});

describe('sluice dev re-runs on a directory it made', () => {
  /** startStop - run sluice dev until all three stages are up, then SIGTERM; the log lines. */
  async function startStop(dir: string): Promise<LogLine[]> {
    const child = spawn(process.execPath, [CLI, 'dev', '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: LogLine[] = [];
    let buf = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sluice dev did not start: ${JSON.stringify(lines.slice(-5))}`)), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)) as LogLine);
          buf = buf.slice(i + 1);
        }
        if (['ingress', 'transit', 'egress'].every((s) => lines.some((l) => l.stage === s && l.event === 'started'))) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((code) => reject(new Error(`sluice dev exited (${code}): ${JSON.stringify(lines.slice(-5))}`)));
    });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    return lines;
  }

  it('creates a missing DIR, and a second run on it starts again with the same key', async () => {
    const dir = path.join(scratch('parent'), 'a', 'dev'); // missing parents too
    const first = await startStop(dir);
    expect(first.find((l) => l.event === 'dev-starting')).toMatchObject({ newKey: true });
    expect(fs.lstatSync(dir).uid).toBe(process.getuid!());
    expect(fs.lstatSync(dir).mode & 0o022).toBe(0);
    const second = await startStop(dir);
    expect(second.find((l) => l.event === 'dev-starting')).toMatchObject({ newKey: false });
    expect(second.filter((l) => l.event === 'dev-refused')).toEqual([]);
  }, 120_000);
});
