/*
 * NAME
 *   slots - a bound on concurrent scans, with a bounded wait for a free slot
 *
 * SYNOPSIS
 *   import { Slots } from './slots.js';
 *
 *   const slots = new Slots(4, 'clamd');
 *   const release = await slots.acquire(waitMs, signal);   // CheckUnavailable after waitMs
 *   try { ... } finally { release(); }
 *
 * DESCRIPTION
 *   The scanners (clamav.ts, yara.ts) bound how many scans they run at
 *   once: clamd has a fixed number of threads and a queue, and each yara
 *   scan is a process. A scan that finds every slot busy waits its turn in
 *   FIFO order, but only for waitMs: a scanner that stays saturated that
 *   long is "unavailable", so the check throws CheckUnavailable and the file
 *   is held and sent again later, never passed.
 *
 *   release() is idempotent; an aborted or timed-out waiter leaves the
 *   queue, so it can never be handed a slot it would not give back.
 */
import { CheckUnavailable } from './check.js';

type Waiter = { grant: () => void };

export class Slots {
  private running = 0;
  private readonly waiters: Waiter[] = [];

  /** max: scans at once (at least 1); what: the scanner, for messages. */
  constructor(
    readonly max: number,
    private readonly what: string,
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`Slots: max must be a positive integer, got ${String(max)}`);
  }

  /** Scans running now. */
  get active(): number {
    return this.running;
  }

  /** Scans waiting for a slot now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** acquire - a slot, waiting at most waitMs; the returned function gives it back. */
  acquire(waitMs: number, signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.running < this.max && this.waiters.length === 0) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      const leave = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          leave();
          resolve(this.take());
        },
      };
      const onAbort = () => {
        leave();
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        leave();
        reject(new CheckUnavailable(`all ${this.max} ${this.what} scan slots stayed busy for ${waitMs} ms`));
      }, waitMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** take - occupy a slot; the release function frees it once and wakes the next waiter. */
  private take(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.waiters[0]?.grant();
    };
  }
}
