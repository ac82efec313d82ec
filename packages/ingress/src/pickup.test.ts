// pickup: a writer that opens an upload after ingress copied it, while ingress still holds the
// read lease, must not lose the version it then writes (nothing lost; a file
// rewritten after pickup is a new upload). The race is made deterministic: the spool's commit (between the copy and
// the removal from the inbox) starts the writer and waits until the kernel reports the lease break.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { DIRECT_MIN_BYTES } from '@sluice/core';
import { pino } from 'pino';
import { Inbox, SpoolBytes, asideName } from './pickup.js';
import { Spool, type SpoolMeta } from './spool.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let root: string;
let inboxDir: string;
let spool: Spool;
let lines: Record<string, unknown>[];
let inbox: Inbox | null;

const log = () =>
  pino(
    { level: 'debug', base: { stage: 'ingress' } },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-pickup-'));
  inboxDir = path.join(root, 'inbox');
  fs.mkdirSync(inboxDir);
  fs.mkdirSync(path.join(root, 'spool'), { mode: 0o700 });
  spool = new Spool(path.join(root, 'spool'));
  lines = [];
  inbox = null;
});

afterEach(() => {
  inbox?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

function make(
  onCommitted: (m: SpoolMeta) => void,
  rescanIntervalMs = 60_000,
  maxFileBytes = 1 << 20,
  maxQueuedNames = 10_000,
  spoolBytes = new SpoolBytes(Number.MAX_SAFE_INTEGER),
): Inbox {
  return new Inbox({
    dir: inboxDir,
    spool,
    log: log(),
    maxFileBytes,
    rescanIntervalMs,
    recheckIntervalMs: 50,
    maxQueuedNames,
    onCommitted,
    canAccept: () => true,
    spoolBytes,
  });
}

function start(onCommitted: (m: SpoolMeta) => void, rescanIntervalMs?: number, maxFileBytes?: number): Inbox {
  inbox = make(onCommitted, rescanIntervalMs, maxFileBytes);
  inbox.start();
  return inbox;
}

/** breakingLease - does /proc/locks show a lease being broken (a writer waiting in open())? */
const breakingLease = () => /LEASE\s+BREAKING/.test(fs.readFileSync('/proc/locks', 'utf8'));

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('an upload reopened for writing after its copy', () => {
  it('keeps the first version and picks up the second; the inbox file is never unlinked under the writer', async () => {
    const file = path.join(inboxDir, 'report.txt');
    fs.writeFileSync(file, 'version one\n');
    let writer: ReturnType<typeof spawn> | null = null;
    const commit = spool.commit.bind(spool);
    spool.commit = async (meta, tmp, fd) => {
      await commit(meta, tmp, fd);
      if (writer) return;
      // Copy done, lease held, inbox file not yet removed: a writer opens it now (O_TRUNC) ...
      writer = spawn(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(file)}, 'version two\\n')`], { stdio: 'ignore' });
      // ... and takeOut does not run before the kernel reports the break (SIGIO may or may not have
      // reached the event loop by then: takeOut must not depend on it).
      const deadline = Date.now() + 20_000;
      while (!breakingLease() && Date.now() < deadline) {
        /* spin */
      }
    };
    const committed: SpoolMeta[] = [];
    start((m) => committed.push(m));
    await until(() => committed.length >= 2, 'two committed transfers');
    const exited = new Promise((r) => (writer!.exitCode !== null ? r(writer!.exitCode) : writer!.on('exit', r)));
    expect(await exited).toBe(0);

    expect(committed.map((m) => m.sha256)).toEqual([sha('version one\n'), sha('version two\n')]);
    expect(committed.map((m) => fs.readFileSync(spool.dataPath(m.id), 'utf8'))).toEqual(['version one\n', 'version two\n']);
    // The first entry no longer claims the inbox file: a restart must not remove the second version.
    expect(committed[0].source).toBeNull();
    expect(JSON.parse(fs.readFileSync(path.join(spool.dir, `${committed[0].id}.json`), 'utf8')).source).toBeNull();
    const reopened = lines.filter((l) => l.event === 'upload-reopened');
    expect(reopened).toHaveLength(1);
    expect(reopened[0].id).toBe(committed[0].id);
    await until(() => fs.readdirSync(inboxDir).length === 0, 'an empty inbox');
  });

  it('a restart after the file was moved aside: a committed copy removes it, a reopened one puts it back', async () => {
    const id1 = 'aaaa-0000000000000001';
    const id2 = 'aaaa-0000000000000002';
    // Committed and moved aside, crash before the unlink: the aside file is the spooled inode.
    fs.writeFileSync(path.join(inboxDir, asideName(id1).toString()), 'taken\n');
    const st = fs.statSync(path.join(inboxDir, asideName(id1).toString()));
    // Reopened (source cleared), crash before it went back under its name.
    fs.writeFileSync(path.join(inboxDir, asideName(id2).toString()), 'rewritten\n');
    const meta = (id: string, name: string, source: SpoolMeta['source']): SpoolMeta => ({
      id,
      name,
      rawName: Buffer.from(name).toString('base64'),
      size: 0,
      sha256: sha(''),
      receivedAt: new Date().toISOString(),
      refusal: '',
      source,
    });
    const ib = make(() => {}); // not started: nothing picks the restored file up under the test
    await ib.forgetRecovered(meta(id1, 'a.txt', { dev: st.dev, ino: st.ino }));
    await ib.forgetRecovered(meta(id2, 'b.txt', null));
    expect(fs.readdirSync(inboxDir).sort()).toEqual(['b.txt']);
    expect(fs.readFileSync(path.join(inboxDir, 'b.txt'), 'utf8')).toBe('rewritten\n');
  });
});

/**
 * stallThreadpool - occupy every libuv threadpool thread with an open() of a FIFO that has no
 * writer, so nothing of ingress's that runs there (creating the spool copy, reading the upload)
 * moves until release(). What runs on the JS thread (lstat, open, F_SETLEASE, the SIGIO handler)
 * still does.
 */
function stallThreadpool(): { release: () => Promise<void> } {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifo = path.join(root, 'stall.fifo');
  execFileSync('mkfifo', [fifo]);
  const opened = Array.from({ length: threads }, () => new Promise<void>((resolve) => fs.open(fifo, 'r', (err, fd) => (err ? resolve() : fs.close(fd, () => resolve())))));
  return {
    release: async () => {
      // Each open for writing meets one of the blocked readers; the last ones find none left and would block.
      const w = fs.openSync(fifo, fs.constants.O_RDWR); // O_RDWR on a FIFO never blocks, and counts as a writer
      await Promise.all(opened);
      fs.closeSync(w);
    },
  };
}

/** leasesOf - read leases this process holds now, by inode number (/proc/locks). */
function leasesOf(inodes: number[]): number {
  const mine = fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => /\bLEASE\b/.test(l) && l.includes(` ${process.pid} `));
  return mine.filter((l) => inodes.some((ino) => new RegExp(`:${ino} `).test(l))).length;
}

describe('a writer that opens one upload while two are being copied', () => {
  it('only the copy of the file it opened is thrown away (pickup-deferred, writer-opened); the other is committed at its first attempt', async () => {
    const mineFile = path.join(inboxDir, 'mine.txt');
    const theirsFile = path.join(inboxDir, 'theirs.txt');
    fs.writeFileSync(mineFile, 'my upload, version one\n');
    fs.writeFileSync(theirsFile, "another uploader's upload\n");
    const inodes = [fs.statSync(mineFile).ino, fs.statSync(theirsFile).ino];
    const stall = stallThreadpool();
    const committed: SpoolMeta[] = [];
    let writer: ReturnType<typeof spawn> | null = null;
    const sigio = new Promise<void>((resolve) => process.once('SIGIO', () => resolve()));
    try {
      // Both copies start at once (parallel = 2): each takes its lease on the JS thread, then waits
      // for the threadpool to create its spool file.
      start((m) => committed.push(m), 3_600_000);
      await until(() => leasesOf(inodes) === 2, 'both uploads leased');
      expect(fs.readdirSync(spool.dir).filter((n) => n.endsWith('.data'))).toEqual([]); // no copy got further
      // The uploader of mine.txt opens it for writing: its open() waits while the kernel breaks that lease.
      writer = spawn(process.execPath, ['-e', `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(mineFile)}, 'r+'); fs.ftruncateSync(fd, 0); fs.writeSync(fd, 'my upload, version two\\n'); fs.closeSync(fd)`], { stdio: 'ignore' });
      await sigio; // ingress's SIGIO handler was registered first, so it has run
      await until(breakingLease, 'the kernel breaking a lease');
    } finally {
      await stall.release();
    }
    await until(() => committed.some((m) => m.name === 'theirs.txt'), "the other uploader's file committed");
    const exited = new Promise((r) => (writer!.exitCode !== null ? r(writer!.exitCode) : writer!.on('exit', r)));
    expect(await exited).toBe(0);
    await until(() => committed.some((m) => m.name === 'mine.txt'), 'mine.txt picked up once its writer was done');

    const deferred = lines.filter((l) => l.event === 'pickup-deferred');
    expect(deferred.map((l) => [l.name, l.reason])).toEqual([['mine.txt', 'writer-opened']]);
    expect(committed.filter((m) => m.name === 'theirs.txt').map((m) => m.sha256)).toEqual([sha("another uploader's upload\n")]);
    // Nothing lost: what was picked up of mine.txt is the version its writer left.
    expect(committed.filter((m) => m.name === 'mine.txt').map((m) => m.sha256)).toEqual([sha('my upload, version two\n')]);
  });
});

describe('the size limit, checked on the open descriptor too', () => {
  it('a file that grew past maxFileBytes between lstat and open is refused (too-large) with the size fstat reports, not copied', async () => {
    const file = path.join(inboxDir, 'grows.bin');
    fs.writeFileSync(file, 'small at lstat\n');
    const committed: SpoolMeta[] = [];
    const ib = make((m) => committed.push(m), 3_600_000, 1024); // not started: the test plays look()'s part
    const seen = fs.lstatSync(file);
    fs.appendFileSync(file, Buffer.alloc(64 * 1024, 0x41)); // same inode, now over the limit
    await (ib as unknown as { take(name: Buffer, st: fs.Stats): Promise<void> }).take(Buffer.from('grows.bin'), seen);
    expect(committed).toHaveLength(1);
    expect(committed[0]).toMatchObject({ name: 'grows.bin', size: 0, refusal: `too-large: ${64 * 1024 + 15} bytes, over the limit of 1024` });
    expect(fs.statSync(spool.dataPath(committed[0]!.id)).size).toBe(0);
    expect(lines.filter((l) => l.event === 'upload-refused').map((l) => [l.name, l.reason])).toEqual([['grows.bin', 'too-large']]);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('the bound on names held in memory (maxQueuedNames)', () => {
  it('20,000 files in the inbox, a bound of 1,000: never more than 1,000 names held, and every file is picked up exactly once', async () => {
    // On tmpfs: the case is about memory, not about 20,000 fsyncs.
    fs.rmSync(root, { recursive: true, force: true });
    root = fs.mkdtempSync(path.join('/dev/shm', 'sluice-pickup-'));
    inboxDir = path.join(root, 'inbox');
    fs.mkdirSync(inboxDir);
    fs.mkdirSync(path.join(root, 'spool'), { mode: 0o700 });
    spool = new Spool(path.join(root, 'spool'));
    const N = 20_000;
    const BOUND = 1_000;
    const long = 'n'.repeat(200); // long names: what the bound is about
    for (let i = 0; i < N; i++) fs.writeFileSync(path.join(inboxDir, `${long}-${i}`), `${i}\n`);
    const committed = new Map<string, number>();
    // The periodic rescan is an hour away and no inotify event comes for files already there:
    // everything past the first 1,000 must be found by reading the inbox again once there is room.
    inbox = make((m) => committed.set(m.name, (committed.get(m.name) ?? 0) + 1), 3_600_000, 1 << 20, BOUND);
    // Every insertion into either map is measured, not a sample of them.
    const maps = inbox as unknown as { queue: Map<string, Buffer>; waiting: Map<string, Buffer> };
    let most = 0;
    for (const m of [maps.queue, maps.waiting]) {
      const set = m.set.bind(m);
      m.set = (k, v) => {
        const r = set(k, v);
        most = Math.max(most, maps.queue.size + maps.waiting.size);
        return r;
      };
    }
    inbox.start();
    await until(() => committed.size === N, `all ${N} files committed`, 600_000);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(BOUND);
    expect([...committed.values()].filter((n) => n !== 1)).toEqual([]);
    await until(() => fs.readdirSync(inboxDir).length === 0, 'an empty inbox');
    const full = lines.filter((l) => l.event === 'inbox-queue-full');
    expect(full.length).toBeGreaterThanOrEqual(N / BOUND - 1);
    expect(full[0]).toMatchObject({ queued: BOUND, maxQueuedNames: BOUND });
  }, 660_000);
});

describe('the mode of an upload', () => {
  it('setuid, setgid and sticky bits (and every other bit of the upload\'s mode) never reach the spool copy: it is 0600', async () => {
    const modes = [0o4755, 0o2750, 0o1777, 0o7777, 0o6711];
    for (const m of modes) {
      const f = path.join(inboxDir, `.mode-${m.toString(8)}`);
      fs.writeFileSync(f, `mode ${m.toString(8)}\n`);
      fs.chmodSync(f, m);
      expect(fs.statSync(f).mode & 0o7777).toBe(m); // the bits really are there (root or owner may set them)
      fs.renameSync(f, path.join(inboxDir, `mode-${m.toString(8)}`));
    }
    const committed: SpoolMeta[] = [];
    start((m) => committed.push(m), 3_600_000);
    await until(() => committed.length === modes.length, 'every upload spooled');
    for (const m of committed) {
      expect(m.refusal, m.name).toBe('');
      expect(fs.statSync(spool.dataPath(m.id)).mode & 0o7777, m.name).toBe(0o600);
    }
  });
});

// How uploads are found. The periodic rescan is an hour away in the first two tests, so only the
// rescan at start (the first) and inotify (the second) can find anything.
describe('finding uploads', () => {
  const names = (ms: SpoolMeta[]) => ms.map((m) => m.name).sort();

  it('the rescan at start picks up what was already in the inbox, and ignores dotfiles, *.part, *.filepart, *.tmp', async () => {
    for (const n of ['waiting.txt', '.hidden', 'up.part', 'up.filepart', 'up.tmp']) fs.writeFileSync(path.join(inboxDir, n), `${n}\n`);
    const committed: SpoolMeta[] = [];
    start((m) => committed.push(m), 3_600_000);
    await until(() => committed.length >= 1, 'the waiting file');
    await until(() => !fs.existsSync(path.join(inboxDir, 'waiting.txt')), 'waiting.txt removed from the inbox');
    expect(names(committed)).toEqual(['waiting.txt']);
    expect(fs.readdirSync(inboxDir).sort()).toEqual(['.hidden', 'up.filepart', 'up.part', 'up.tmp']);
  });

  it('a rename into place is picked up from inotify alone; the temporary names never are', async () => {
    const committed: SpoolMeta[] = [];
    start((m) => committed.push(m), 3_600_000);
    const temp = ['.upload.txt', 'upload.txt.part', 'upload.txt.filepart', 'upload.txt.tmp'];
    for (const n of temp) fs.writeFileSync(path.join(inboxDir, n), 'in progress\n');
    fs.writeFileSync(path.join(inboxDir, 'marker.txt'), 'written after the temporary names\n');
    await until(() => committed.length >= 1, 'marker.txt'); // inotify saw the events around the temporary names too
    fs.renameSync(path.join(inboxDir, 'upload.txt.part'), path.join(inboxDir, 'upload.txt'));
    await until(() => committed.length >= 2, 'the renamed upload');
    expect(names(committed)).toEqual(['marker.txt', 'upload.txt']);
    expect(fs.readFileSync(spool.dataPath(committed.find((m) => m.name === 'upload.txt')!.id), 'utf8')).toBe('in progress\n');
    expect(fs.readdirSync(inboxDir).sort()).toEqual(['.upload.txt', 'upload.txt.filepart', 'upload.txt.tmp']);
  });

  it('the periodic rescan finds an upload that inotify never reported', async () => {
    const committed: SpoolMeta[] = [];
    const ib = start((m) => committed.push(m), 200);
    // As after an inotify queue overflow: no event will come for what arrives now.
    (ib as unknown as { watcher: fs.FSWatcher }).watcher.close();
    fs.writeFileSync(path.join(inboxDir, 'missed.txt'), 'no event for me\n');
    await until(() => committed.length >= 1, 'the missed upload');
    expect(names(committed)).toEqual(['missed.txt']);
  });
});

describe('the spool copy of a large upload (O_DIRECT from DIRECT_MIN_BYTES on)', () => {
  const bytesOf = (size: number) => {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4093) b[i] = (i * 7) & 0xff;
    b[size - 1] = 0xee;
    return b;
  };
  const sizes = [DIRECT_MIN_BYTES - 1, DIRECT_MIN_BYTES, DIRECT_MIN_BYTES + 4097, (9 << 20) + 123];

  /** spoolAll - drop one upload per size, wait for every commit; return the spool's copies by name. */
  async function spoolAll(): Promise<Map<string, { meta: SpoolMeta; held: Buffer }>> {
    const committed: SpoolMeta[] = [];
    start((m) => committed.push(m), 3_600_000, 16 << 20);
    for (const size of sizes) {
      fs.writeFileSync(path.join(inboxDir, `.up-${size}`), bytesOf(size));
      fs.renameSync(path.join(inboxDir, `.up-${size}`), path.join(inboxDir, `up-${size}`));
    }
    await until(() => committed.length === sizes.length, 'every upload spooled');
    return new Map(committed.map((m) => [m.name, { meta: m, held: fs.readFileSync(spool.dataPath(m.id)) }]));
  }

  it('holds exactly the upload: no padding past the last byte, and the digest is of its bytes', async () => {
    const got = await spoolAll();
    for (const size of sizes) {
      const want = bytesOf(size);
      const { meta, held } = got.get(`up-${size}`)!;
      expect(meta.size).toBe(size);
      expect(held.length).toBe(size);
      expect(held.equals(want)).toBe(true);
      expect(meta.sha256).toBe(createHash('sha256').update(want).digest('hex'));
    }
    expect(lines.some((l) => l.event === 'direct-io-unavailable')).toBe(false);
  });

  const isRoot = process.getuid?.() === 0;
  it.skipIf(!isRoot)(`a spool on a filesystem that refuses O_DIRECT (ramfs): buffered copies, said once in the log, nothing left behind${isRoot ? '' : ' [skipped: mounting ramfs needs root]'}`, async () => {
    execFileSync('mount', ['-t', 'ramfs', '-o', 'mode=0700', 'ramfs', path.join(root, 'spool')]);
    try {
      spool = new Spool(path.join(root, 'spool'));
      const got = await spoolAll();
      for (const size of sizes) expect(got.get(`up-${size}`)!.held.equals(bytesOf(size))).toBe(true);
      expect(lines.filter((l) => l.event === 'direct-io-unavailable')).toHaveLength(1);
      // Each upload was picked up at the first attempt: no failure, no deferral, no warning.
      expect(lines.filter((l) => (l.level as number) >= 40 || l.event === 'pickup-deferred')).toEqual([]);
      expect(lines.filter((l) => l.event === 'picked-up')).toHaveLength(sizes.length);
      // The refused O_DIRECT open had already created its file: it is gone, only committed entries remain.
      const left = fs.readdirSync(path.join(root, 'spool')).filter((n) => !/\.(data|json)$/.test(n) && n !== 'held');
      expect(left).toEqual([]);
    } finally {
      inbox?.stop();
      inbox = null;
      execFileSync('umount', [path.join(root, 'spool')]);
    }
  });
});

describe('the spool is bounded in bytes (ingress.spoolBytes)', () => {
  it('an upload that does not fit waits in the inbox, untouched, until a spooled entry leaves; a sparse file counts its full size', async () => {
    const budget = new SpoolBytes(3 << 20);
    // Two sparse 1.5 MiB files (4 KiB on disk each): they count what fstat says, 3 MiB in all.
    for (const n of ['a.bin', 'b.bin']) {
      const fd = fs.openSync(path.join(inboxDir, n), 'w');
      fs.writeSync(fd, Buffer.from('x'), 0, 1, (3 << 19) - 1);
      fs.closeSync(fd);
    }
    const committed: SpoolMeta[] = [];
    inbox = make((m) => committed.push(m), 60_000, 4 << 20, 10_000, budget);
    inbox.start();
    await until(() => committed.length === 2, 'both sparse files spooled');
    expect(budget.bytes).toBe(3 << 20);
    fs.writeFileSync(path.join(inboxDir, 'c.txt'), 'one byte too many\n');
    await until(() => lines.some((l) => l.event === 'spool-full'), 'spool-full');
    // Several rechecks later it is still waiting, in the inbox, and nothing was copied for it.
    await new Promise((r) => setTimeout(r, 300));
    expect(committed).toHaveLength(2);
    expect(fs.readFileSync(path.join(inboxDir, 'c.txt'), 'utf8')).toBe('one byte too many\n');
    expect(budget.bytes).toBe(3 << 20);
    // A delivered entry leaves the spool: its bytes are given back and the waiting upload is taken.
    budget.release(committed[0].size);
    await until(() => committed.length === 3, 'the waiting upload spooled');
    expect(committed[2].size).toBe(18);
    expect(budget.bytes).toBe((3 << 19) + 18);
    expect(lines.filter((l) => l.event === 'spool-full')).toHaveLength(1);
  });
});
