// Hostile uploaders against ingress: what an uploader can put in the inbox
// (design.md: contents, names, timing, symlinks, hard links, FIFOs, devices)
// must never make ingress read something it should not, hand over bytes
// other than the upload's, lose an upload, or stop. test/pipeline.test.ts
// covers the basics (a symlink to a FIFO, a hard link to a file outside, a
// FIFO, *.part ignored until renamed); these cases extend them: secrets
// behind symlinks and hard links, links swapped in while ingress looks, a
// FIFO whose writer waits for a reader, devices and sockets, files replaced
// or rewritten during and after pickup, and *.part files that are never
// renamed. The flood of 10,000 empty files is flood.test.ts. After every
// case ingress is the same process, has the same number of descriptors, and
// a clean upload still arrives; each refused entry got exactly one
// upload-refused line naming the reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { devConfig } from '../../packages/cli/src/dev.js';
import { Pipeline, type Found } from '../support/pipeline.js';
import { PYTHON, fdTargets, settledFdCount, sha256hex, steadyFdCount } from './impersonate.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const isRoot = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let p: Pipeline;
let ingressPid: number;
let outside: string;
const SECRET = `top secret ${randomBytes(8).toString('hex')}\n`;

beforeAll(async () => {
  p = await Pipeline.start((dir) =>
    devConfig(dir, {
      // Frequent rescans: the *.part case must survive many of them.
      ingress: { rescanIntervalMs: 300, recheckIntervalMs: 50, retryDelayMs: 200 },
    }),
  );
  ingressPid = Number(p.lines.find((l) => l.stage === 'ingress' && l.event === 'started')!.pid);
  outside = fs.mkdtempSync(path.join(p.dir, 'outside-'));
  fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
  await clean('warm-up');
});

afterAll(async () => {
  await p?.stop();
});

let cleanNo = 0;
/** clean - an honest upload arrives, intact, with a valid report (ingress still serves). */
async function clean(tag: string): Promise<void> {
  const name = `clean-${++cleanNo}.txt`;
  const bytes = `clean upload after ${tag}\n`;
  p.drop(name, bytes);
  const found = await p.reportFor(name, 60_000);
  expect(found.report.verdict).toBe('accepted');
  expect(fs.readFileSync(path.join(p.outbox, found.report.name.stored), 'utf8')).toBe(bytes);
  // Settled: the report is in the outbox before ingress has the final ack; only once ingress says `done`
  // (spool copy forgotten) is its descriptor count final, fit to be a baseline.
  await p.waitFor(
    () => {
      const ids = new Set(p.lines.filter((l) => l.stage === 'ingress' && l.event === 'picked-up' && l.name === name).map((l) => l.id));
      return p.lines.some((l) => l.stage === 'ingress' && l.event === 'done' && ids.has(l.id));
    },
    30_000,
    `ingress done with ${name}`,
  );
}


/**
 * guarded - run one case and then hold ingress to the rules: same process,
 * no error lines from any stage, a clean upload arrives, no secret in any
 * output, and its descriptor count is back where it was.
 */
async function guarded(name: string, fn: () => Promise<void>): Promise<void> {
  const before = await steadyFdCount(ingressPid);
  const mark = p.lines.length;
  await fn();
  await clean(name);
  const errors = p.lines.slice(mark).filter((l) => l.level === 'error' || l.level === 'fatal' || l.event === 'stage-exited');
  expect(errors, `${name}: error lines`).toEqual([]);
  expect(Number(p.lines.filter((l) => l.stage === 'ingress' && l.event === 'started').at(-1)!.pid)).toBe(ingressPid);
  for (const f of fs.readdirSync(p.outbox)) {
    if (!f.endsWith('.sluice.json')) expect(fs.readFileSync(path.join(p.outbox, f), 'utf8'), `${name}: ${f}`).not.toContain('top secret');
  }
  const after = await settledFdCount(ingressPid, before);
  expect(after, `${name}: ingress descriptors before ${before}, after ${after}:\n${fdTargets(ingressPid).join('\n')}`).toBe(before);
}

/**
 * refusedOnce - ingress logged exactly one structured event about `name`,
 * an upload-refused naming `reason`, and nothing else at warn or worse.
 * The report can be on disk before the log line has come through ingress's
 * and `sluice dev`'s stdout to this process, so the line is waited for.
 */
async function refusedOnce(name: string, reason: string): Promise<void> {
  const refused = () => p.lines.some((l) => l.stage === 'ingress' && l.name === name && l.event === 'upload-refused');
  await p.waitFor(refused, 30_000, `ingress's upload-refused line for ${name}`);
  const about = p.lines.filter((l) => l.stage === 'ingress' && l.name === name);
  expect(about.filter((l) => l.event === 'upload-refused').map((l) => l.reason), `${name}: upload-refused lines`).toEqual([reason]);
  expect(about.filter((l) => l.level !== 'info' && l.level !== 'debug' && l.event !== 'upload-refused'), `${name}: other complaints`).toEqual([]);
}

/** wchan - where in the kernel process `pid` sleeps ('' once it is gone). */
function wchan(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
}

/** reportsFor - every report whose original name is `name`. */
const reportsFor = (name: string) => p.reports().filter((r) => r.report.name.original === name);

/** uploader - run uploader.py (a racing uploader) to completion. */
async function uploader(...args: string[]): Promise<void> {
  const child = spawn(PYTHON, [path.join(HERE, 'uploader.py'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  expect(code).toBe(0);
}

/** version - what uploader.py writes as version k. */
const version = (k: number) => `version ${String(k).padStart(6, '0')}\n`.repeat(512);
/** whichVersion - the one version these bytes are, or -1 (torn, or not a version at all). */
function whichVersion(bytes: string): number {
  const m = /^version (\d{6})\n/.exec(bytes);
  if (!m) return -1;
  const k = Number(m[1]);
  return bytes === version(k) ? k : -1;
}

/**
 * settledFor - wait until ingress has dealt with every entry under `name`:
 * the inbox entry is gone and every pickup or refusal of it has its report.
 * Ingress takes an entry out of the inbox before it logs the pickup, and its
 * lines reach the test through a pipe: a file dropped after the inbox entry
 * is gone, once its own pickup line is read, shows every line before it was.
 */
async function settledFor(name: string): Promise<Found[]> {
  await p.waitFor(() => !fs.existsSync(path.join(p.inbox, name)), 60_000, `${name} taken from the inbox`);
  const marker = `settled-${name}-${p.lines.length}.txt`;
  p.drop(marker, `after ${name}\n`);
  await p.waitFor(() => p.lines.some((l) => l.stage === 'ingress' && l.event === 'picked-up' && l.name === marker), 60_000, `ingress's pickup of ${marker}`);
  const handled = () => p.lines.filter((l) => l.stage === 'ingress' && (l.event === 'picked-up' || l.event === 'upload-refused') && l.name === name).length;
  await p.waitFor(() => handled() > 0 && reportsFor(name).length === handled(), 60_000, `every version of ${name} reported`);
  return reportsFor(name);
}

describe('links', () => {
  it('symlinks to a secret (absolute, relative, to /etc/shadow, dangling) are refused unopened, with a signed report', async () => {
    await guarded('symlinks', async () => {
      const links: [string, string][] = [
        ['abs-secret.txt', path.join(outside, 'secret.txt')],
        ['rel-secret.txt', `../${path.basename(outside)}/secret.txt`],
        ['shadow.txt', '/etc/shadow'],
        ['dangling.txt', path.join(outside, 'nothing-here')],
        ['self-loop.txt', 'self-loop.txt'],
      ];
      for (const [name, to] of links) fs.symlinkSync(to, path.join(p.inbox, name));
      for (const [name] of links) {
        const found = await p.reportFor(name);
        expect(found.place).toBe('rejected');
        expect(found.report).toMatchObject({ verdict: 'rejected', size: null, sha256: null }); // never copied
        expect(found.report.reason).toMatch(/not-regular: symlink/);
        expect(p.verify(found).ok).toBe(true);
        expect(fs.existsSync(path.join(p.inbox, name))).toBe(false);
        await refusedOnce(name, 'not-regular');
      }
      expect(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe(SECRET);
    });
  });

  it('a symlink to the secret swapped in and out 100 times while ingress looks: never followed', async () => {
    await guarded('swap-link', async () => {
      await uploader('swap-link', p.inbox, 'swap.txt', path.join(outside, 'secret.txt'), '100');
      const found = await settledFor('swap.txt');
      for (const f of found) {
        if (f.report.verdict === 'accepted') {
          // A regular version, whole.
          expect(whichVersion(fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8'))).toBeGreaterThanOrEqual(0);
        } else {
          expect(f.report.reason).toMatch(/not-regular: symlink/);
          expect([f.report.size, f.report.sha256]).toEqual([null, null]);
        }
      }
      // The last version (a regular file) is never lost.
      expect(found.some((f) => f.report.verdict === 'accepted' && fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8') === version(100))).toBe(true);
    });
  });

  it('a hard link to a secret outside the inbox: refused unread, with a signed report; the secret is in no output', async () => {
    await guarded('hard link to a secret', async () => {
      const secret = path.join(outside, `linked-secret-${randomBytes(4).toString('hex')}.txt`);
      fs.writeFileSync(secret, SECRET);
      fs.linkSync(secret, path.join(p.inbox, 'linked.txt'));
      const found = await p.reportFor('linked.txt');
      expect(found.place).toBe('rejected');
      // Refused from lstat's link count, before a byte is read: the report names no digest at all,
      // only the size lstat saw.
      expect(found.report).toMatchObject({ verdict: 'rejected', size: Buffer.byteLength(SECRET), sha256: null });
      expect(found.report.reason).toMatch(/hard-link: \d+ bytes, regular file with 2 links/);
      expect(p.verify(found).ok).toBe(true);
      await refusedOnce('linked.txt', 'hard-link');
      expect(fs.existsSync(path.join(p.inbox, 'linked.txt'))).toBe(false);
      // The secret's own name is untouched (ingress removed only the inbox name).
      expect(fs.readFileSync(secret, 'utf8')).toBe(SECRET);
      expect(fs.statSync(secret).nlink).toBe(1);
    });
  });

  it('two names of one inode in the inbox: refused while the inode has two links; a lone survivor is just an upload', async () => {
    await guarded('hard links', async () => {
      const bytes = `one inode, two names ${randomBytes(4).toString('hex')}\n`;
      fs.writeFileSync(path.join(outside, 'one.txt'), bytes);
      fs.linkSync(path.join(outside, 'one.txt'), path.join(outside, 'two.txt'));
      // Moved in together (a rename keeps the link count: 2).
      fs.renameSync(path.join(outside, 'one.txt'), path.join(p.inbox, 'one.txt'));
      fs.renameSync(path.join(outside, 'two.txt'), path.join(p.inbox, 'two.txt'));
      const found = [await p.reportFor('one.txt'), await p.reportFor('two.txt')];
      // Whichever ingress looks at first is refused, unread, and removed; the other may then be the
      // inode's only name, an ordinary upload of bytes the uploader wrote itself.
      const refused = found.filter((f) => f.report.verdict === 'rejected');
      expect(refused.length).toBeGreaterThanOrEqual(1);
      for (const f of refused) {
        expect([f.report.size, f.report.sha256]).toEqual([bytes.length, null]);
        expect(f.report.reason).toMatch(/hard-link: \d+ bytes, regular file with 2 links/);
      }
      for (const f of found.filter((f) => f.report.verdict === 'accepted')) {
        expect(fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8')).toBe(bytes);
      }
    });
  });
});

describe('special files', () => {
  it('a FIFO, its writer already blocked in open(): refused from lstat alone, never opened for reading', async () => {
    await guarded('fifo', async () => {
      // Made under an ignored (dot) name, so that its writer is blocked on it before ingress can see it.
      const hidden = path.join(p.inbox, `.fifo-${randomBytes(4).toString('hex')}`);
      execFileSync('mkfifo', [hidden]);
      // open(O_WRONLY) without O_NONBLOCK returns only once somebody opens the FIFO for reading.
      const writer = spawn(PYTHON, ['-c', "import os, sys; os.open(sys.argv[1], os.O_WRONLY); print('opened', flush=True)", hidden], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let opened = false;
      writer.stdout.on('data', () => (opened = true));
      try {
        // Blocked in open(): the kernel says so (a condition, not a fixed wait).
        await p.waitFor(() => wchan(writer.pid!) === 'wait_for_partner', 10_000, 'the FIFO writer blocked in open()');
        fs.renameSync(hidden, path.join(p.inbox, 'pipe.txt'));
        const found = await p.reportFor('pipe.txt');
        expect(found.place).toBe('rejected');
        expect(found.report).toMatchObject({ verdict: 'rejected', size: null, sha256: null });
        expect(found.report.reason).toMatch(/not-regular: fifo/);
        expect(p.verify(found).ok).toBe(true);
        await refusedOnce('pipe.txt', 'not-regular');
        expect(fs.existsSync(path.join(p.inbox, 'pipe.txt'))).toBe(false);
        // Still blocked in open() now that ingress is done with it: nobody ever opened it for reading.
        expect(wchan(writer.pid!)).toBe('wait_for_partner');
        expect(opened).toBe(false);
      } finally {
        writer.kill('SIGKILL');
      }
    });
  });

  it('a socket file in the inbox is refused unopened', async () => {
    await guarded('socket', async () => {
      const server = net.createServer();
      const sockPath = path.join(p.inbox, 'listening.sock');
      await new Promise<void>((r) => server.listen(sockPath, r));
      let connected = false;
      server.on('connection', (c) => {
        connected = true;
        c.destroy();
      });
      try {
        const found = await p.reportFor('listening.sock');
        expect(found.report.reason).toMatch(/not-regular: socket/);
        await refusedOnce('listening.sock', 'not-regular');
        expect(connected).toBe(false);
      } finally {
        server.close();
      }
    });
  });

  it.skipIf(!isRoot)(`device nodes are refused unopened${isRoot ? '' : ' [skipped: mknod needs root; CI runs as root]'}`, async () => {
    await guarded('devices', async () => {
      // /dev/zero's and loop0's numbers: were either opened and read, the report would state a size and a digest.
      execFileSync('mknod', [path.join(p.inbox, 'zero.txt'), 'c', '1', '5']);
      execFileSync('mknod', [path.join(p.inbox, 'disk.img'), 'b', '7', '0']);
      const zero = await p.reportFor('zero.txt');
      expect(zero.report).toMatchObject({ verdict: 'rejected', size: null, sha256: null });
      expect(zero.report.reason).toMatch(/not-regular: character device/);
      const disk = await p.reportFor('disk.img');
      expect(disk.report).toMatchObject({ verdict: 'rejected', size: null, sha256: null });
      expect(disk.report.reason).toMatch(/not-regular: block device/);
      expect(p.verify(zero).ok && p.verify(disk).ok).toBe(true);
      await refusedOnce('zero.txt', 'not-regular');
      await refusedOnce('disk.img', 'not-regular');
    });
  });
});

describe('files that change under ingress', () => {
  it('a file replaced 100 times by rename, during and after pickups: every output is one whole version, the last one arrives', async () => {
    await guarded('replace', async () => {
      await uploader('replace', p.inbox, 'replaced.txt', '100');
      const found = await settledFor('replaced.txt');
      const seen = new Set<number>();
      for (const f of found) {
        expect(f.report.verdict).toBe('accepted');
        const k = whichVersion(fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8'));
        expect(k, `${f.report.name.stored} is not one whole version`).toBeGreaterThanOrEqual(0);
        expect(seen.has(k), `version ${k} delivered twice`).toBe(false);
        seen.add(k);
        expect(p.verify(f).ok).toBe(true);
      }
      expect(seen.has(99)).toBe(true);
    });
  });

  it('a file rewritten in place 100 times (same inode): every output is one whole version, never a torn one', async () => {
    await guarded('rewrite', async () => {
      await uploader('rewrite', p.inbox, 'rewritten.txt', '100');
      const found = await settledFor('rewritten.txt');
      for (const f of found) {
        expect(f.report.verdict).toBe('accepted');
        const k = whichVersion(fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8'));
        expect(k, `${f.report.name.stored} is not one whole version`).toBeGreaterThanOrEqual(0);
      }
      expect(found.some((f) => whichVersion(fs.readFileSync(path.join(p.outbox, f.report.name.stored), 'utf8')) === 99)).toBe(true);
    });
  });
});

describe('modes', () => {
  it('an upload with setuid, setgid and sticky bits (07755) arrives with egress.outputMode (0640) exactly, and so does its report', async () => {
    await guarded('modes', async () => {
      const part = path.join(p.inbox, '.setuid.sh.part');
      fs.writeFileSync(part, 'setuid upload\n');
      fs.chmodSync(part, 0o7755);
      expect(fs.statSync(part).mode & 0o7777).toBe(0o7755);
      fs.renameSync(part, path.join(p.inbox, 'setuid.txt'));
      const found = await p.reportFor('setuid.txt');
      expect(found.report.verdict).toBe('accepted');
      const out = path.join(p.outbox, found.report.name.stored);
      expect(fs.readFileSync(out, 'utf8')).toBe('setuid upload\n');
      expect((fs.statSync(out).mode & 0o7777).toString(8)).toBe('640');
      expect((fs.statSync(found.reportPath).mode & 0o7777).toString(8)).toBe('640');
    });
  });
});

describe('floods and leftovers', () => {
  it('*.part files never renamed (one still open, one a symlink to a FIFO) are never touched, across many rescans', async () => {
    await guarded('part', async () => {
      const part = path.join(p.inbox, 'never-renamed.part');
      fs.writeFileSync(part, 'an upload that will never finish\n');
      const open = path.join(p.inbox, 'still-open.part');
      const openFd = fs.openSync(open, 'w');
      fs.writeSync(openFd, 'half');
      // A symlink to a FIFO under an ignored name: opening it would release the writer blocked on the FIFO.
      const fifo = path.join(outside, 'part-trap');
      execFileSync('mkfifo', [fifo]);
      const writer = spawn(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(fifo)}, require('fs').constants.O_WRONLY); console.log('opened')`], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let opened = false;
      writer.stdout.on('data', () => (opened = true));
      fs.symlinkSync(fifo, path.join(p.inbox, 'trap.part'));
      const st = fs.statSync(part);
      try {
        // Ten rescans at the configured 300 ms, with a clean upload passing through meanwhile.
        await clean('parts waiting');
        await sleep(3_000);
        const after = fs.statSync(part);
        expect([after.ino, after.size, after.mtimeMs]).toEqual([st.ino, st.size, st.mtimeMs]);
        expect(fs.readFileSync(part, 'utf8')).toBe('an upload that will never finish\n');
        expect(fs.existsSync(open)).toBe(true);
        expect(fs.lstatSync(path.join(p.inbox, 'trap.part')).isSymbolicLink()).toBe(true);
        expect(opened).toBe(false);
        for (const n of ['never-renamed.part', 'still-open.part', 'trap.part']) {
          expect(p.lines.filter((l) => l.name === n), n).toEqual([]);
          expect(reportsFor(n)).toEqual([]);
        }
      } finally {
        writer.kill('SIGKILL');
        fs.closeSync(openFd);
        for (const n of ['never-renamed.part', 'still-open.part', 'trap.part']) fs.rmSync(path.join(p.inbox, n));
      }
    });
  });
});
