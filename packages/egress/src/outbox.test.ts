// outbox: free names without walking every taken one, and no file left without its report.
//
// chooseName is counted, not timed: every lookup goes through Outbox.exists (an lstat), and the
// tests count those calls. A name used 50,000 times used to cost 100,000 lstats per delivery on
// egress's only thread; now it costs O(log n) the first time and four after that.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collisionName, defaults, REPORT_SUFFIX, type Config, type Logger } from '@sluice/core';
import type { JournalEntry } from './journal.js';
import { createsExactly, NAME_HINTS_MAX, Outbox } from './outbox.js';
import { TransparencyLog } from './tlog.js';
import { generateKeys, signTreeHead, verifyReport, REPORT_FORMAT } from '@sluice/report';

let dir: string;
let outboxDir: string;
const events: Record<string, unknown>[] = [];
const log = {
  info: (o: Record<string, unknown>) => events.push(o),
  warn: (o: Record<string, unknown>) => events.push(o),
  error: (o: Record<string, unknown>) => events.push(o),
} as unknown as Logger;
const keys = generateKeys();
let tlog: TransparencyLog;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-outbox-'));
  outboxDir = path.join(dir, 'outbox');
  fs.mkdirSync(outboxDir);
  fs.mkdirSync(path.join(dir, 'rejected'));
  events.length = 0;
  tlog = TransparencyLog.open({ dir: path.join(dir, 'log'), station: 'test', publicKey: keys.public, batchMs: 1, batchMax: 16, sign: async (b) => signTreeHead(b, keys.secret), log });
});
afterEach(async () => {
  await tlog.close();
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

function newOutbox(outputMode = 0o640): Outbox {
  const cfg: Config = defaults();
  cfg.egress = { ...cfg.egress, outbox: outboxDir, rejected: path.join(dir, 'rejected'), outputMode };
  return new Outbox({ cfg, log, tlog });
}

/** counted - an Outbox whose lookups (exists: one lstat each) are counted. */
function counted(): { out: Outbox; lookups: () => number } {
  const out = newOutbox();
  const spy = vi.spyOn(out, 'exists');
  return { out, lookups: () => spy.mock.calls.length };
}

/** take - what a delivery does with a chosen name: the file and its report appear. */
function take(name: string): void {
  fs.writeFileSync(path.join(outboxDir, name), '');
  fs.writeFileSync(path.join(outboxDir, name + REPORT_SUFFIX), '');
}

/** entryFor - a delivery of "hello" (5 bytes) under `stored`, as the journal records it. */
function entryFor(id: string, stored: string): JournalEntry {
  return {
    id,
    sha256: 'ab'.repeat(32),
    size: 5,
    verdict: 'accepted',
    place: 'outbox',
    stored,
    body: {
      format: REPORT_FORMAT,
      station: 'test',
      software: 'sluice 0.1.0',
      key: keys.public.keyId,
      transfer: id,
      name: { original: stored, stored },
      size: 5,
      sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
      verdict: 'accepted',
      reason: '',
      checks: [],
      times: { received: '2026-12-05T10:00:00Z', checked: '2026-12-05T10:00:01Z', reported: '2026-12-05T10:00:02Z' },
    },
  };
}

/** unnamed - an unnamed file in the outbox holding `text`, as copyIn makes it. */
function unnamed(text: string): number {
  const fd = fs.openSync(outboxDir, 0o20200000 | fs.constants.O_RDWR, 0o640);
  fs.writeSync(fd, text);
  return fd;
}

describe('chooseName', () => {
  it('a free name is the sanitized upload; a taken one gets (2), (3), ... as before', () => {
    const out = newOutbox();
    expect(out.chooseName('outbox', 'report.pdf')).toBe('report.pdf');
    take('report.pdf');
    expect(out.chooseName('outbox', 'report.pdf')).toBe('report (2).pdf');
    take('report (2).pdf');
    expect(out.chooseName('outbox', 'report.pdf')).toBe('report (3).pdf');
    // A lone report (its file taken away by a consumer) still takes the name; so does a reservation.
    fs.writeFileSync(path.join(outboxDir, `report (4).pdf${REPORT_SUFFIX}`), '');
    out.reserved.add('outbox/report (5).pdf');
    take('report (3).pdf');
    expect(out.chooseName('outbox', 'report.pdf')).toBe('report (6).pdf');
  });

  it('50,000 uses of one name already in the outbox: O(log n) lookups to find a free one, then at most four per delivery for 2,000 deliveries', () => {
    const N = 50_000;
    take('same.txt');
    for (let n = 2; n <= N; n++) fs.writeFileSync(path.join(outboxDir, collisionName('same.txt', n)), '');
    const { out, lookups } = counted();

    const first = out.chooseName('outbox', 'same.txt');
    expect(first).toBe(`same (${N + 1}).txt`);
    // Walking 2..N would be 2 × N lookups; galloping and bisecting is about 4 × log2(N) ≈ 63.
    expect(lookups()).toBeLessThanOrEqual(4 * Math.ceil(Math.log2(N)) + 4);
    take(first);

    const before = lookups();
    const seen = new Set([first]);
    for (let i = 0; i < 2_000; i++) {
      const name = out.chooseName('outbox', 'same.txt');
      expect(fs.existsSync(path.join(outboxDir, name)), `${name} was taken`).toBe(false);
      expect(seen.has(name)).toBe(false);
      seen.add(name);
      take(name);
    }
    expect((lookups() - before) / 2_000).toBeLessThanOrEqual(4); // base (file, report), candidate (file, report)
  });

  it('names a consumer freed are never needed, names taken behind its back are never used', () => {
    const { out, lookups } = counted();
    take('x.txt');
    for (let i = 0; i < 100; i++) take(out.chooseName('outbox', 'x.txt'));
    // A consumer removes some; someone (a restore from backup) fills names above the hint.
    for (let n = 10; n < 60; n++) fs.rmSync(path.join(outboxDir, collisionName('x.txt', n)));
    for (let n = 102; n < 1_102; n++) take(collisionName('x.txt', n));
    const before = lookups();
    const name = out.chooseName('outbox', 'x.txt');
    expect(name).toBe('x (1102).txt');
    expect(fs.existsSync(path.join(outboxDir, name))).toBe(false);
    expect(lookups() - before).toBeLessThanOrEqual(4 * Math.ceil(Math.log2(1_000)) + 4);
  });

  it(`more colliding names than NAME_HINTS_MAX (${NAME_HINTS_MAX}): the oldest hint is forgotten, and a forgotten name still costs O(log n), never a walk`, () => {
    const { out, lookups } = counted();
    const USES = 300;
    take('old.txt');
    for (let n = 2; n <= USES; n++) take(collisionName('old.txt', n));
    expect(out.chooseName('outbox', 'old.txt')).toBe(`old (${USES + 1}).txt`);
    take(`old (${USES + 1}).txt`);
    // As many other names colliding once each as there are hints: old.txt's hint goes.
    for (let i = 0; i < NAME_HINTS_MAX; i++) {
      take(`n${i}`);
      out.chooseName('outbox', `n${i}`);
    }
    const before = lookups();
    expect(out.chooseName('outbox', 'old.txt')).toBe(`old (${USES + 2}).txt`);
    expect(lookups() - before).toBeLessThanOrEqual(4 * Math.ceil(Math.log2(USES)) + 4);
  });
});

describe('publish', () => {
  const entry = (stored: string) => entryFor('pub-1', stored);

  it('links the file, then its report', async () => {
    const out = newOutbox();
    const file = unnamed('hello');
    const report = await out.signReport(entry('a.txt'));
    try {
      await out.publish(entry('a.txt'), file, report);
    } finally {
      fs.closeSync(file);
      fs.closeSync(report);
    }
    expect(fs.readFileSync(path.join(outboxDir, 'a.txt'), 'utf8')).toBe('hello');
    const text = fs.readFileSync(path.join(outboxDir, `a.txt${REPORT_SUFFIX}`));
    expect(JSON.parse(text.toString())).toMatchObject({ format: 'sluice-report/3', transfer: 'pub-1', log: { index: 0 } });
    const facts = { size: 5, sha256hex: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' };
    expect(verifyReport({ reportText: text, publicKey: keys.public, file: facts, reportOnly: false })).toMatchObject({ code: 'ok' });
    expect(out.inPlace(entry('a.txt'))).toBe(true);
  });

  it('a report that cannot be linked (its name taken meanwhile: EEXIST) takes the file back: nothing is left without its report, and a second try links both', async () => {
    const out = newOutbox();
    const file = unnamed('hello');
    const report = await out.signReport(entry('b.txt'));
    const blocker = path.join(outboxDir, `b.txt${REPORT_SUFFIX}`);
    fs.writeFileSync(blocker, 'not ours');
    try {
      await expect(out.publish(entry('b.txt'), file, report)).rejects.toMatchObject({ code: 'EEXIST' });
      expect(fs.readdirSync(outboxDir)).toEqual([`b.txt${REPORT_SUFFIX}`]);
      expect(fs.readFileSync(blocker, 'utf8')).toBe('not ours'); // never overwritten
      expect(events).toContainEqual(expect.objectContaining({ event: 'output-unlinked', stored: 'b.txt', reason: 'EEXIST' }));
    } finally {
      fs.closeSync(file);
      fs.closeSync(report);
    }
    // The resend: a fresh copy (an unnamed file that had a name once cannot be linked again).
    fs.rmSync(blocker);
    const again = unnamed('hello');
    const report2 = await out.signReport(entry('b.txt'));
    try {
      await out.publish(entry('b.txt'), again, report2);
    } finally {
      fs.closeSync(again);
      fs.closeSync(report2);
    }
    expect(fs.readdirSync(outboxDir).sort()).toEqual(['b.txt', `b.txt${REPORT_SUFFIX}`]);
    expect(fs.readFileSync(path.join(outboxDir, 'b.txt'), 'utf8')).toBe('hello');
  });

  it('a file already in place (a power cut between the links) gets its report; the file is not linked twice', async () => {
    const out = newOutbox();
    fs.writeFileSync(path.join(outboxDir, 'c.txt'), 'hello');
    const file = unnamed('hello');
    const report = await out.signReport(entry('c.txt'));
    try {
      await out.publish(entry('c.txt'), file, report);
    } finally {
      fs.closeSync(file);
      fs.closeSync(report);
    }
    expect(out.inPlace(entry('c.txt'))).toBe(true);
  });
});

describe('publish of a fresh delivery (a name chosen for it just now)', () => {
  const entry = (stored: string) => entryFor('fresh-1', stored);

  it('links file and report without looking for either first', async () => {
    const { out, lookups } = counted();
    const stored = out.chooseName('outbox', 'f.txt');
    const before = lookups();
    const file = unnamed('hello');
    const report = await out.signReport(entry(stored));
    try {
      await out.publish(entry(stored), file, report, { fresh: true });
    } finally {
      fs.closeSync(file);
      fs.closeSync(report);
    }
    expect(lookups() - before).toBe(0);
    expect(fs.readFileSync(path.join(outboxDir, 'f.txt'), 'utf8')).toBe('hello');
    expect(out.inPlace(entry('f.txt'))).toBe(true);
  });

  it('a file name taken behind its back all the same is never overwritten: EEXIST, no report linked', async () => {
    const out = newOutbox();
    const stored = out.chooseName('outbox', 'g.txt');
    fs.writeFileSync(path.join(outboxDir, stored), 'not ours');
    const file = unnamed('hello');
    const report = await out.signReport(entry(stored));
    try {
      await expect(out.publish(entry(stored), file, report, { fresh: true })).rejects.toMatchObject({ code: 'EEXIST' });
    } finally {
      fs.closeSync(file);
      fs.closeSync(report);
    }
    expect(fs.readdirSync(outboxDir)).toEqual(['g.txt']);
    expect(fs.readFileSync(path.join(outboxDir, 'g.txt'), 'utf8')).toBe('not ours');
  });
});

describe('signReport', () => {
  const entry = (id: string) => entryFor(id, `${id}.txt`);
  const openFds = () => fs.readdirSync('/proc/self/fd').length;

  /** An outbox whose log answers with the real inclusion, and a `durable` the test settles. */
  function heldBack(): { out: Outbox; settle: { resolve: () => void; reject: (e: Error) => void }; asked: Promise<void> } {
    const out = newOutbox();
    const settle = { resolve: () => {}, reject: (_e: Error) => {} };
    let asked!: () => void;
    const askedP = new Promise<void>((r) => (asked = r));
    const real = tlog.appendSigned.bind(tlog);
    vi.spyOn(tlog, 'appendSigned').mockImplementation(async (leafBytes: Uint8Array) => {
      const signed = await real(leafBytes);
      await signed.durable; // the real head is durable; the test decides when the report hears so
      const inclusion = signed.inclusion;
      const durable = new Promise<void>((resolve, reject) => Object.assign(settle, { resolve, reject }));
      durable.catch(() => {}); // as the log's own is (Signed.durable): signReport may not be awaiting it yet
      asked();
      return { inclusion, durable };
    });
    return { out, settle, asked: askedP };
  }

  it('returns the report only once the head is durable: written and fsynced meanwhile, never handed over before', async () => {
    const { out, settle, asked } = heldBack();
    let fd = -1;
    const p = out.signReport(entry('held')).then((r) => (fd = r));
    await asked;
    await new Promise((r) => setTimeout(r, 50));
    expect(fd).toBe(-1); // the report is ready, the head not yet durable: nothing to link
    settle.resolve();
    await p;
    try {
      const text = fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8');
      expect(verifyReport({ reportText: text, publicKey: keys.public, file: { size: 5, sha256hex: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824' }, reportOnly: false })).toMatchObject({ code: 'ok' });
    } finally {
      fs.closeSync(fd);
    }
  });

  it("a head whose flush fails fails the report: the error reaches the delivery, the report's descriptor is closed", async () => {
    const { out, settle, asked } = heldBack();
    const before = openFds();
    const p = out.signReport(entry('failed'));
    await asked;
    settle.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await expect(p).rejects.toThrow(/EIO/);
    expect(openFds()).toBe(before);
    expect(fs.readdirSync(outboxDir)).toEqual([]);
  });
});

describe('the mode of outputs', () => {
  let saved: number;
  beforeEach(() => {
    saved = process.umask();
  });
  afterEach(() => {
    process.umask(saved);
  });

  /** modes - the modes of an accepted copy and a signed report as the Outbox makes them. */
  async function modes(out: Outbox): Promise<number[]> {
    const src = fs.openSync(path.join(dir, 'src'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    fs.writeSync(src, 'hello');
    const { fd } = await out.copyIn(src, 5);
    fs.closeSync(src);
    const report = await out.signReport({
      id: 'mode-1',
      sha256: 'ab'.repeat(32),
      size: 5,
      verdict: 'rejected',
      place: 'rejected',
      stored: 'm.txt',
      body: {
        format: REPORT_FORMAT,
        station: 'test',
        software: 'sluice 0.1.0',
        key: keys.public.keyId,
        transfer: 'mode-1',
        name: { original: 'm.txt', stored: 'm.txt' },
        size: 5,
        sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
        verdict: 'rejected',
        reason: 'x: no',
        checks: [{ name: 'x', result: 'fail', reason: 'no', engine: '' }],
        times: { received: '2026-12-05T10:00:00Z', checked: '2026-12-05T10:00:01Z', reported: '2026-12-05T10:00:02Z' },
      },
    });
    try {
      return [fd, report].map((f) => fs.fstatSync(f).mode & 0o7777);
    } finally {
      fs.closeSync(fd);
      fs.closeSync(report);
    }
  }

  it.each([
    ['0022', '0640', true], // sluice dev, as a shell usually starts it
    ['0077', '0640', false], // the units' UMask=0077
    ['0022', '0660', false],
    ['0000', '0664', true],
  ])('under umask %s, outputMode %s: exactly that mode, whether the directory gives it by itself (%s) or an fchmod does', async (umaskText, modeText, byItself) => {
    const mode = parseInt(modeText, 8);
    process.umask(parseInt(umaskText, 8));
    expect(createsExactly(outboxDir, mode)).toBe(byItself);
    expect(await modes(newOutbox(mode))).toEqual([mode, mode]);
  });

  it('a directory where no unnamed file can be made is not trusted to give the mode: createsExactly is false', () => {
    expect(createsExactly(path.join(dir, 'missing'), 0o640)).toBe(false);
  });
});
