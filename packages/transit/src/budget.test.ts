// The copy budget: bytes in RAM and on disk never above their bounds, a
// place for every file that fits one, a bounded, fair wait for the others,
// and every reservation given back exactly once.
import { describe, expect, it } from 'vitest';
import { Refused } from '@sluice/core';
import { BudgetBusy, CopyBudget, PAGE, type Reservation } from './budget.js';

const MiB = 1 << 20;
const budget = (o: Partial<ConstructorParameters<typeof CopyBudget>[0]> = {}) =>
  new CopyBudget({ memoryBytes: 64 * MiB, diskBytes: 256 * MiB, dir: '/nonexistent', maxWaiting: 4, waitMs: 60_000, ...o });

/** settled - whether a promise has settled, after the microtasks run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('CopyBudget', () => {
  it('puts a file in RAM while it fits, on disk when it does not, and counts whole pages', async () => {
    const b = budget();
    const small = await b.reserve(1);
    expect([small.place, small.bytes]).toEqual(['memory', PAGE]);
    const big = await b.reserve(100 * MiB); // larger than the whole RAM budget
    expect(big.place).toBe('disk');
    const fill = await b.reserve(64 * MiB - PAGE);
    expect(fill.place).toBe('memory');
    const next = await b.reserve(10);
    expect(next.place).toBe('disk'); // RAM is full: the next small file goes to disk
    expect(b.usage()).toEqual({ memoryUsed: 64 * MiB, diskUsed: 100 * MiB + PAGE, waiting: 0 });
    for (const r of [small, big, fill, next]) r.release();
    expect(b.usage()).toEqual({ memoryUsed: 0, diskUsed: 0, waiting: 0 });
  });

  it('gives a reservation back exactly once, however often release is called', async () => {
    const b = budget();
    const r = await b.reserve(10 * MiB);
    const s = await b.reserve(10 * MiB);
    r.release();
    r.release();
    r.release();
    expect(b.usage().memoryUsed).toBe(10 * MiB);
    s.release();
    expect(b.usage().memoryUsed).toBe(0);
  });

  it('makes a file that fits nowhere now wait, and hands it the room a release frees', async () => {
    const b = budget({ memoryBytes: 8 * MiB, diskBytes: 16 * MiB });
    const disk = await b.reserve(16 * MiB);
    const mem = await b.reserve(8 * MiB);
    let waited = 0;
    const waiting = b.reserve(4 * MiB, () => waited++);
    expect(await settled(waiting)).toBe(false);
    expect([waited, b.usage().waiting]).toEqual([1, 1]);
    mem.release();
    const got = await waiting;
    expect(got.place).toBe('memory');
    expect(b.usage()).toEqual({ memoryUsed: 4 * MiB, diskUsed: 16 * MiB, waiting: 0 });
    got.release();
    disk.release();
  });

  it('answers BudgetBusy when the wait would exceed its bound, and when too many wait', async () => {
    const b = budget({ memoryBytes: 4 * MiB, diskBytes: 4 * MiB, maxWaiting: 2, waitMs: 50 });
    const a = await b.reserve(4 * MiB);
    const c = await b.reserve(4 * MiB);
    const w1 = b.reserve(MiB);
    const w2 = b.reserve(MiB);
    await expect(b.reserve(MiB)).rejects.toMatchObject({ name: 'BudgetBusy', reason: 'copy-queue-full' });
    await expect(w1).rejects.toBeInstanceOf(BudgetBusy);
    await expect(w2).rejects.toMatchObject({ reason: 'copy-wait-expired' });
    expect(b.usage()).toEqual({ memoryUsed: 4 * MiB, diskUsed: 4 * MiB, waiting: 0 });
    a.release();
    c.release();
  });

  it('refuses a file larger than both budgets at once: it could never be held', async () => {
    const b = budget({ memoryBytes: 4 * MiB, diskBytes: 8 * MiB });
    await expect(b.reserve(8 * MiB + 1)).rejects.toBeInstanceOf(Refused);
    await expect(b.reserve(8 * MiB + 1)).rejects.toMatchObject({ reason: 'over-budget' });
    expect(b.usage()).toEqual({ memoryUsed: 0, diskUsed: 0, waiting: 0 });
  });

  it('lets small files take RAM past a large file waiting for disk, but never the disk it waits for', async () => {
    const b = budget({ memoryBytes: 8 * MiB, diskBytes: 32 * MiB });
    const d1 = await b.reserve(20 * MiB);
    const large = b.reserve(20 * MiB); // needs disk; 12 MiB free there
    expect(await settled(large)).toBe(false);
    const small = await b.reserve(2 * MiB); // RAM has room: granted past the large one
    expect(small.place).toBe('memory');
    const fill = await b.reserve(6 * MiB);
    expect(fill.place).toBe('memory');
    const behind = b.reserve(MiB); // RAM full; disk has room, but the large file waits for it
    expect(await settled(behind)).toBe(false);
    d1.release();
    expect((await large).place).toBe('disk');
    expect((await behind).place).toBe('disk');
  });

  it('never reserves more than either bound, whatever the sizes and the order of releases', async () => {
    const memoryBytes = 64 * MiB;
    const diskBytes = 200 * MiB;
    const b = budget({ memoryBytes, diskBytes, maxWaiting: 1000 });
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const held: Reservation[] = [];
    const pending = new Set<Promise<void>>();
    let peakMemory = 0;
    let granted = 0;
    for (let i = 0; i < 2000; i++) {
      if (rand() < 0.55) {
        // Sizes from empty to 1.5 × the RAM budget, a few pages, or one byte.
        const size = [0, 1, Math.floor(rand() * 3 * PAGE), Math.floor(rand() * 1.5 * memoryBytes)][Math.floor(rand() * 4)]!;
        const p: Promise<void> = b.reserve(size).then((r) => {
          held.push(r);
          granted++;
          pending.delete(p);
        });
        pending.add(p);
      } else if (held.length > 0) {
        held.splice(Math.floor(rand() * held.length), 1)[0]!.release();
      }
      await new Promise((r) => setImmediate(r));
      const u = b.usage();
      peakMemory = Math.max(peakMemory, u.memoryUsed);
      expect(u.memoryUsed).toBeLessThanOrEqual(memoryBytes);
      expect(u.diskUsed).toBeLessThanOrEqual(diskBytes);
      expect(u.memoryUsed).toBe(held.filter((r) => r.place === 'memory').reduce((n, r) => n + r.bytes, 0));
    }
    while (held.length > 0 || pending.size > 0) {
      held.pop()?.release();
      await new Promise((r) => setImmediate(r));
    }
    expect(b.usage()).toEqual({ memoryUsed: 0, diskUsed: 0, waiting: 0 });
    expect(granted).toBeGreaterThan(500);
    expect(peakMemory).toBeGreaterThan(memoryBytes / 2); // the bound was actually reached for
  });
});
