// Slots: the bound on concurrent scans, FIFO, and a bounded wait that ends
// as CheckUnavailable (hold the file), never as a pass.
import { describe, expect, it } from 'vitest';
import { CheckUnavailable } from './check.js';
import { Slots } from './slots.js';

const never = new AbortController().signal;
const tick = () => new Promise((r) => setImmediate(r));

describe('Slots', () => {
  it('refuses a bound below 1', () => {
    expect(() => new Slots(0, 'x')).toThrow(TypeError);
    expect(() => new Slots(1.5, 'x')).toThrow(TypeError);
  });

  it('runs at most max at once and hands slots over in arrival order', async () => {
    const slots = new Slots(2, 'clamd');
    const a = await slots.acquire(10_000, never);
    const b = await slots.acquire(10_000, never);
    expect(slots.active).toBe(2);
    const order: string[] = [];
    const c = slots.acquire(10_000, never).then((r) => (order.push('c'), r));
    const d = slots.acquire(10_000, never).then((r) => (order.push('d'), r));
    await tick();
    expect(order).toEqual([]);
    expect(slots.waiting).toBe(2);
    a();
    a(); // idempotent: a second release frees nothing more
    await tick();
    expect(order).toEqual(['c']);
    expect(slots.active).toBe(2);
    b();
    await tick();
    expect(order).toEqual(['c', 'd']);
    (await c)();
    (await d)();
    expect(slots.active).toBe(0);
    expect(slots.waiting).toBe(0);
  });

  it('a wait longer than waitMs is CheckUnavailable, and the waiter leaves the queue', async () => {
    const slots = new Slots(1, 'clamd');
    const held = await slots.acquire(10_000, never);
    const err = await slots.acquire(50, never).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CheckUnavailable);
    expect((err as Error).message).toBe('all 1 clamd scan slots stayed busy for 50 ms');
    expect(slots.waiting).toBe(0);
    held();
    expect(slots.active).toBe(0); // the slot was not handed to the waiter that gave up
  });

  it('an aborted waiter rejects with the abort reason and leaves the queue', async () => {
    const slots = new Slots(1, 'yara');
    const held = await slots.acquire(10_000, never);
    const ac = new AbortController();
    const p = slots.acquire(10_000, ac.signal).then(() => null, (e: unknown) => e);
    ac.abort(new Error('runChecks timed out'));
    expect(((await p) as Error).message).toBe('runChecks timed out');
    expect(slots.waiting).toBe(0);
    held();
    expect(slots.active).toBe(0);
    await expect(slots.acquire(10, ac.signal)).rejects.toThrow('runChecks timed out');
  });
});
