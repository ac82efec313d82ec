/*
 * NAME
 *   slots - a counting bound with a FIFO queue of waiters
 *
 * SYNOPSIS
 *   import { Slots } from '@sluice/core';
 *
 *   const slots = new Slots(4, 'check', { busy: (m) => new Error(m) });
 *   const release = await slots.acquire();                 // wait as long as it takes
 *   const release = await slots.acquire(waitMs, signal);   // or at most waitMs, or until aborted
 *   try { ... } finally { release(); }
 *
 * DESCRIPTION
 *   At most `max` holders at once; the others wait their turn in arrival
 *   order. A release hands the slot straight to the first waiter.
 *   `waiting` is the length of the queue, so that a caller can bound it
 *   too (transit refuses a record when too many wait).
 *
 *   With waitMs, a wait that lasts longer rejects with the error busy()
 *   makes of the message (the scanners make it CheckUnavailable: the file
 *   is held and sent again, never passed). An aborted signal rejects with
 *   its reason.
 *
 *   release() is idempotent; a waiter that gave up leaves the queue, so it
 *   is never handed a slot it would not give back.
 */

type Waiter = { grant: () => void };

export interface SlotsOptions {
  /** The error a wait longer than waitMs rejects with. */
  busy?: (message: string) => Error;
}

export class Slots {
  private running = 0;
  private readonly waiters: Waiter[] = [];
  private readonly busy: (message: string) => Error;

  /** max: holders at once (at least 1); what: what is bounded, for messages. */
  constructor(
    readonly max: number,
    private readonly what: string,
    opts: SlotsOptions = {},
  ) {
    if (!Number.isSafeInteger(max) || max < 1) throw new TypeError(`Slots: max must be a positive integer, got ${String(max)}`);
    this.busy = opts.busy ?? ((m) => new Error(m));
  }

  /** Slots held now. */
  get active(): number {
    return this.running;
  }

  /** Callers waiting for a slot now. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** acquire - a slot, waiting at most waitMs when given; the returned function gives it back. */
  acquire(waitMs?: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.running < this.max && this.waiters.length === 0) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      const leave = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        grant: () => {
          leave();
          resolve(this.take());
        },
      };
      const onAbort = () => {
        leave();
        reject(signal!.reason);
      };
      const timer =
        waitMs === undefined
          ? undefined
          : setTimeout(() => {
              leave();
              reject(this.busy(`all ${this.max} ${this.what} slots stayed busy for ${waitMs} ms`));
            }, waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
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
