// journal: what egress remembers across a crash, in one append-only log. These
// tests play the states a crash or a power cut leaves in journal.log, and check what the next start
// reads from them: intents stay reserved, done deliveries read as delivered, a cut-short end is
// dropped, anything else unreadable stops egress with the line's number.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaults } from '@sluice/core';
import { Journal, JournalError, JOURNAL_FILE, MAX_DELIVERIES, MAX_LINE_BYTES, MAX_UNFINISHED, type JournalEntry, type JournalOptions } from './journal.js';

let state: string;
beforeEach(() => {
  state = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-journal-'));
});
afterEach(() => fs.rmSync(state, { recursive: true, force: true }));

const entry = (id: string, stored: string): JournalEntry => ({
  id,
  sha256: 'ab'.repeat(32),
  size: 3,
  verdict: 'accepted',
  place: 'outbox',
  stored,
  body: { transfer: id },
});

const events: Record<string, unknown>[] = [];
const log = {
  info: (o: Record<string, unknown>) => events.push(o),
  warn: (o: Record<string, unknown>) => events.push(o),
} as unknown as JournalOptions['log'];
const open = (opts: Partial<JournalOptions> = {}) => new Journal(state, { retentionDays: 30, log, ...opts });
const logFile = () => path.join(state, JOURNAL_FILE);
const records = () =>
  fs
    .readFileSync(logFile(), 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as { op: string; id?: string; entry?: JournalEntry });

beforeEach(() => {
  events.length = 0;
});

describe('Journal', () => {
  it('intend reserves a name across a restart; complete releases it and reads as delivered', async () => {
    const first = open();
    await first.intend(entry('t1', 'a.txt'));
    await first.close();
    const j = open(); // one journal per state directory at a time: egress's
    expect(j.reservedNames()).toEqual(new Set(['outbox/a.txt']));
    expect(j.get('t1')).toMatchObject({ complete: false, durable: true, entry: { stored: 'a.txt' } });
    j.complete('t1');
    await j.close();
    const again = open();
    expect(again.reservedNames()).toEqual(new Set());
    expect(again.get('t1')).toMatchObject({ complete: true, entry: { stored: 'a.txt', sha256: 'ab'.repeat(32) } });
    expect(again.get('nope')).toBeNull();
    expect(fs.statSync(logFile()).mode & 0o777).toBe(0o600);
  });

  it('many intents at once are all durable and read back (they share flushes)', async () => {
    const j = open();
    await Promise.all(Array.from({ length: 50 }, (_, i) => j.intend(entry(`m${i}`, `f${i}.txt`))));
    for (let i = 0; i < 50; i += 2) j.complete(`m${i}`);
    await j.close();
    const again = open();
    expect(again.reservedNames().size).toBe(25);
    expect(again.get('m0')?.complete).toBe(true);
    expect(again.get('m1')?.complete).toBe(false);
  });

  it('a done record a power cut took: the intent whose report is in place reads as delivered, one without stays reserved', async () => {
    const j = open();
    await j.intend(entry('t2', 'b.txt'));
    await j.intend(entry('t3', 'c.txt'));
    await j.close(); // no done records: what a power cut after both deliveries' links leaves
    const after = open({ isDelivered: (e) => e.id === 't2' });
    expect(after.get('t2')?.complete).toBe(true);
    expect(after.get('t3')?.complete).toBe(false);
    expect(after.reservedNames()).toEqual(new Set(['outbox/c.txt']));
    expect(events.find((e) => e.event === 'journal-recovered')).toMatchObject({ resolved: 1, dropped: 0 });
  });

  it('the end of the log cut short by a crash (a partial line, NUL bytes) is dropped, counted, and the log is whole again', async () => {
    const j = open();
    await j.intend(entry('t4', 'd.txt'));
    await j.close();
    fs.appendFileSync(logFile(), Buffer.concat([Buffer.alloc(300), Buffer.from('\n{"op":"intend","entry":{"id":"t5"')]));
    const after = open();
    expect(after.get('t4')?.complete).toBe(false);
    expect(after.get('t5')).toBeNull();
    expect(events.find((e) => e.event === 'journal-recovered')).toMatchObject({ dropped: 2 });
    // Rewritten at start: every line a record, and new records land after them.
    await after.intend(entry('t6', 'e.txt'));
    await after.close();
    expect(records().map((r) => r.entry?.id)).toEqual(['t4', 't6']);
  });

  it('a line in the middle that is not a record stops egress, naming the file and the line', async () => {
    const j = open();
    await j.intend(entry('t7', 'f.txt'));
    await j.close();
    fs.appendFileSync(logFile(), 'not json\n{"op":"done","id":"t7","at":"2026-01-01T00:00:00Z"}\n');
    expect(() => open()).toThrow(JournalError);
    expect(() => open()).toThrow(`${logFile()} line 2: not JSON`);
    fs.writeFileSync(logFile(), '{"op":"done","id":"t8","at":"2026-01-01T00:00:00Z"}\n');
    expect(() => open()).toThrow('line 1: done for t8, which has no intent before it');
    fs.writeFileSync(logFile(), '{"op":"intend","entry":{"id":"../x"}}\n');
    expect(() => open()).toThrow('line 1: an intent without a valid entry');
    fs.writeFileSync(logFile(), '{"op":"drop"}\n');
    expect(() => open()).toThrow('line 1: unknown op "drop"');
  });

  it('compaction keeps what is needed: unfinished intents and deliveries younger than journalDays', async () => {
    const j = open({ compactEvery: 10 });
    for (let i = 0; i < 8; i++) {
      await j.intend(entry(`c${i}`, `c${i}.txt`));
      if (i !== 3) j.complete(`c${i}`);
    }
    await j.close();
    // 15 records were appended; the rewrite after the tenth holds one per transfer.
    expect(records().length).toBeLessThan(15);
    const again = open();
    expect(again.reservedNames()).toEqual(new Set(['outbox/c3.txt']));
    for (let i = 0; i < 8; i++) expect(again.get(`c${i}`)?.complete).toBe(i !== 3);
    await again.close();
    expect(records().map((r) => r.op).sort()).toEqual([...Array(7).fill('delivered'), 'intend']);

    // Forty days later, with journalDays 30: the deliveries are forgotten, the intent is not.
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
    fs.writeFileSync(logFile(), records().map((r) => JSON.stringify(r.op === 'delivered' ? { ...r, at: old } : r) + '\n').join(''));
    const later = open();
    expect(later.get('c0')).toBeNull();
    expect(later.get('c3')?.complete).toBe(false);
  });

  it('intents and completions racing a compaction all survive a restart', async () => {
    const j = open({ compactEvery: 10 });
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        await j.intend(entry(`r${i}`, `r${i}.txt`));
        if (i % 3 !== 0) j.complete(`r${i}`);
      }),
    );
    await j.close();
    const again = open();
    for (let i = 0; i < 60; i++) expect(again.get(`r${i}`)?.complete, `r${i}`).toBe(i % 3 !== 0);
    expect(again.reservedNames().size).toBe(20);
  });

  it('the layout of earlier versions (pending/, delivered/) is imported once and removed', async () => {
    for (const d of ['pending', 'delivered']) fs.mkdirSync(path.join(state, d));
    fs.writeFileSync(path.join(state, 'pending', 'o1.json'), JSON.stringify(entry('o1', 'old1.txt')));
    fs.writeFileSync(path.join(state, 'delivered', 'o2.json'), JSON.stringify(entry('o2', 'old2.txt')));
    // A crash undid a removal from pending/: the delivered copy wins.
    fs.writeFileSync(path.join(state, 'pending', 'o2.json'), JSON.stringify(entry('o2', 'old2.txt')));
    fs.writeFileSync(path.join(state, 'pending', '.tmp-0123456789abcdef'), 'cut short');
    const j = open();
    expect(j.reservedNames()).toEqual(new Set(['outbox/old1.txt']));
    expect(j.get('o2')).toMatchObject({ complete: true, entry: { stored: 'old2.txt' } });
    expect(fs.readdirSync(state)).toEqual([JOURNAL_FILE]);
    await j.close();
    expect(open().get('o1')?.complete).toBe(false);
  });
});

describe('Journal bounds', () => {
  it('beyond maxDeliveries the oldest done deliveries are forgotten, in memory and in the log; one sent again is a new delivery', async () => {
    const j = open({ maxDeliveries: 3, compactEvery: 4 });
    for (let i = 0; i < 10; i++) {
      await j.intend(entry(`k${i}`, `k${i}.txt`));
      j.complete(`k${i}`);
    }
    for (let i = 0; i < 7; i++) expect(j.get(`k${i}`), `k${i}`).toBeNull();
    for (let i = 7; i < 10; i++) expect(j.get(`k${i}`)?.complete, `k${i}`).toBe(true);
    expect(events.filter((e) => e.event === 'journal-forgot').reduce((n, e) => n + (e.forgotten as number), 0)).toBeGreaterThan(0);
    // Forgotten: the same transfer is delivered again, under the name chosen now.
    await j.intend(entry('k0', 'k0-2.txt'));
    expect(j.reservedNames()).toEqual(new Set(['outbox/k0-2.txt']));
    await j.close();
    const again = open({ maxDeliveries: 3 });
    expect(again.get('k0')).toMatchObject({ complete: false, entry: { stored: 'k0-2.txt' } });
    for (let i = 1; i < 7; i++) expect(again.get(`k${i}`), `k${i}`).toBeNull();
    for (let i = 7; i < 10; i++) expect(again.get(`k${i}`)?.complete, `k${i}`).toBe(true);
    await again.close();
    expect(records().map((r) => r.op).sort()).toEqual(['delivered', 'delivered', 'delivered', 'intend']);
  });

  it('a log longer than maxDeliveries is read keeping the newest; an intent sent again after its forgotten delivery is unfinished', async () => {
    const old = new Date(Date.now() - 3_600_000).toISOString();
    const lines = [
      ...Array.from({ length: 6 }, (_, i) => ({ op: 'delivered', id: `f${i}`, sha256: 'ab'.repeat(32), place: 'outbox', stored: `f${i}.txt`, at: old })),
      { op: 'intend', entry: { ...entry('f0', 'f0-2.txt'), sha256: 'cd'.repeat(32) } },
    ];
    fs.writeFileSync(logFile(), lines.map((l) => JSON.stringify(l) + '\n').join(''));
    const j = open({ maxDeliveries: 2 });
    expect(j.get('f0')).toMatchObject({ complete: false, entry: { stored: 'f0-2.txt', sha256: 'cd'.repeat(32) } });
    expect(j.get('f3')).toBeNull();
    expect(j.get('f4')?.complete).toBe(true);
    expect(j.get('f5')?.complete).toBe(true);
    expect(events.find((e) => e.event === 'journal-forgot')).toMatchObject({ forgotten: 4, bound: 2 });
    await j.close();
    // The same intent after its own done record (written again) leaves it done.
    fs.writeFileSync(logFile(), [lines[5], { op: 'intend', entry: entry('f5', 'f5.txt') }].map((l) => JSON.stringify(l) + '\n').join(''));
    expect(open().get('f5')?.complete).toBe(true);
  });

  it('with maxUnfinished unfinished deliveries a new intent is refused (EJOURNALFULL, one journal-full) and reserves nothing; a completion makes room', async () => {
    const j = open({ maxUnfinished: 2 });
    await j.intend(entry('u1', 'u1.txt'));
    await j.intend(entry('u2', 'u2.txt'));
    await expect(j.intend(entry('u3', 'u3.txt'))).rejects.toMatchObject({ code: 'EJOURNALFULL', message: expect.stringContaining('egress.journalMaxUnfinished') });
    await expect(j.intend(entry('u4', 'u4.txt'))).rejects.toMatchObject({ code: 'EJOURNALFULL' });
    expect(j.get('u3')).toBeNull();
    expect(j.reservedNames()).toEqual(new Set(['outbox/u1.txt', 'outbox/u2.txt']));
    expect(events.filter((e) => e.event === 'journal-full')).toEqual([expect.objectContaining({ unfinished: 2, bound: 2 })]);
    await j.intend(entry('u1', 'u1.txt')); // an unfinished one recorded again is not a new one
    j.complete('u1');
    await j.intend(entry('u3', 'u3.txt'));
    await j.close();
    expect(open({ maxUnfinished: 2 }).reservedNames()).toEqual(new Set(['outbox/u2.txt', 'outbox/u3.txt']));
  });

  it('a log with more unfinished deliveries than maxUnfinished: those in place read as delivered; if still too many, egress does not start, naming the key', async () => {
    const j = open();
    for (let i = 0; i < 5; i++) await j.intend(entry(`v${i}`, `v${i}.txt`));
    await j.close();
    fs.appendFileSync(logFile(), `{"op":"done","id":"v1","at":"${new Date().toISOString()}"}\n`); // after v1 was read as delivered
    const inPlace = (e: JournalEntry) => e.id === 'v0' || e.id === 'v1';
    const after = open({ maxUnfinished: 3, isDelivered: inPlace });
    expect(after.reservedNames()).toEqual(new Set(['outbox/v2.txt', 'outbox/v3.txt', 'outbox/v4.txt']));
    expect(after.get('v0')?.complete).toBe(true);
    expect(after.get('v1')?.complete).toBe(true);
    await after.close();
    expect(() => open({ maxUnfinished: 2 })).toThrow(JournalError);
    expect(() => open({ maxUnfinished: 2 })).toThrow(/more than 2 unfinished deliveries, the bound egress\.journalMaxUnfinished.*raise egress\.journalMaxUnfinished/);
    expect(open({ maxUnfinished: 3 }).reservedNames().size).toBe(3); // nothing was lost on the refusal
  });

  it("an unfinished delivery's report body stays in the log and reads back whole, across compactions and restarts", async () => {
    const body = { transfer: 'b1', reason: 'é \u0000 '.repeat(100), checks: [{ name: 'x', reason: 'y' }] };
    const j = open({ compactEvery: 4 });
    await j.intend({ ...entry('b1', 'b1.txt'), body });
    for (let i = 0; i < 30; i++) {
      await j.intend(entry(`o${i}`, `o${i}.txt`));
      j.complete(`o${i}`);
    }
    expect(records().some((r) => r.op === 'delivered')).toBe(true); // rewritten along the way
    expect(j.get('b1')).toMatchObject({ complete: false, durable: true, entry: { body } });
    await j.close();
    expect(open().get('b1')).toMatchObject({ complete: false, entry: { body } });
  });

  it('a line longer than a read is read whole; one over MAX_LINE_BYTES stops egress unless it is never-written blocks', async () => {
    const big = { ...entry('g1', 'g1.txt'), body: { pad: 'z'.repeat(3 * 1024 * 1024 + 7) } };
    const j = open();
    await j.intend(entry('g0', 'g0.txt'));
    await j.intend(big);
    await j.intend(entry('g2', 'g2.txt'));
    await j.close();
    const again = open();
    expect(again.get('g1')).toMatchObject({ entry: { body: big.body } });
    expect(again.reservedNames().size).toBe(3);
    await again.close();
    const whole = fs.readFileSync(logFile());
    fs.writeFileSync(logFile(), Buffer.concat([whole, Buffer.alloc(MAX_LINE_BYTES + 10), Buffer.from('\n'), Buffer.from(JSON.stringify({ op: 'intend', entry: entry('g3', 'g3.txt') }) + '\n')]));
    const zeros = open();
    expect(zeros.reservedNames().size).toBe(4);
    expect(events.find((e) => e.event === 'journal-recovered')).toMatchObject({ dropped: 1 });
    await zeros.close();
    fs.appendFileSync(logFile(), Buffer.concat([Buffer.alloc(MAX_LINE_BYTES + 10, 'x'), Buffer.from('\n')]));
    expect(() => open()).toThrow(`line 5: longer than ${MAX_LINE_BYTES} bytes`);
  });

  it("the bounds' defaults are those of egress.journalMaxDeliveries and egress.journalMaxUnfinished", () => {
    expect(MAX_DELIVERIES).toBe(defaults().egress.journalMaxDeliveries);
    expect(MAX_UNFINISHED).toBe(defaults().egress.journalMaxUnfinished);
  });

  it('the bounds are positive integers', () => {
    expect(() => open({ maxDeliveries: 0 })).toThrow(RangeError);
    expect(() => open({ maxUnfinished: 1.5 })).toThrow(RangeError);
  });
});

const asRoot = process.getuid!() === 0;
describe.runIf(asRoot)(`Journal on a full disk${asRoot ? '' : ' [skipped: needs root to mount a small tmpfs; CI runs as root]'}`, () => {
  it('an append that fails with ENOSPC leaves no partial record and reserves nothing; once space returns it works', async () => {
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-journal-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const j = new Journal(mnt, { retentionDays: 30 });
      await j.intend(entry('f1', 'one.txt'));
      const filler = path.join(mnt, 'filler');
      try {
        for (;;) fs.appendFileSync(filler, Buffer.alloc(1024, 1));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      const size = fs.statSync(path.join(mnt, JOURNAL_FILE)).size;
      const big = { ...entry('f2', 'two.txt'), body: { pad: 'x'.repeat(8000) } };
      await expect(j.intend(big)).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(j.get('f2')).toBeNull();
      expect(fs.statSync(path.join(mnt, JOURNAL_FILE)).size).toBe(size);
      fs.rmSync(filler);
      await j.intend(big);
      j.complete('f1');
      await j.close();
      const again = new Journal(mnt, { retentionDays: 30 });
      expect(again.get('f1')?.complete).toBe(true);
      expect(again.get('f2')?.complete).toBe(false);
      await again.close();
    } finally {
      execFileSync('umount', [mnt]);
      fs.rmdirSync(mnt);
    }
  });
});
