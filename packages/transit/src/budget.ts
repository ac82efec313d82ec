/*
 * NAME
 *   budget - how many bytes of private copies transit holds, in RAM and on disk
 *
 * SYNOPSIS
 *   const budget = openCopyBudget(cfg, log);            // at start: the directory, the bounds
 *   const held = budget.holder(log);                    // one per transfer
 *   receiveTransfer(data, fd, decode, { maxBytes, place: held.place });
 *   ... finally { await closeFd(copy.fd); held.release(); }
 *
 *   const b = new CopyBudget({ memoryBytes, diskBytes, dir, maxWaiting, waitMs });
 *   const r = await b.reserve(size, onWait);            // r.place: 'memory' | 'disk'
 *   r.release();
 *
 * DESCRIPTION
 *   Every copy transit takes is reserved here, in bytes, before a byte of
 *   it is copied: its size as fstat gave it (already checked against
 *   limits.maxFileBytes and the sender's claim), rounded up to whole 4 KiB
 *   pages or blocks. The reservation is released once, when the copy's
 *   last descriptor is closed: after egress's ack, after a refusal, after
 *   a failure, on every path (the holder's release does nothing a second
 *   time).
 *
 *   Where a copy goes:
 *   - RAM (a sealed memfd) when it fits in what is left of
 *     transit.copyMemoryBytes;
 *   - otherwise disk (a nameless 0600 file in transit.state, 0700) when it
 *     fits in what is left of transit.copyDiskBytes;
 *   - otherwise it waits, first come first served, for a release. A file
 *     too large for the whole RAM budget waits for disk only, and smaller
 *     files behind it may still take RAM; a waiter that could use a place
 *     keeps everyone behind it from taking that place, so a large file is
 *     never starved by a stream of small ones. A transfer waits at most
 *     transit.copyWaitMs; then, or when maxWaiting transfers already wait,
 *     it is answered RETRY (BudgetBusy) and ingress sends it again later.
 *   A file larger than both budgets could never be held: it is refused
 *   (`over-budget`). The configuration check makes that impossible for a
 *   file within limits.maxFileBytes (core/config.ts, budgetProblems).
 *
 *   So the bytes transit holds in RAM never exceed transit.copyMemoryBytes,
 *   whatever the uploads' sizes (a sparse 1-byte upload of 1.5 GiB counts
 *   as 1.5 GiB), and docs/capacity.md adds up the rest of its memory.
 *
 * DIAGNOSTICS
 *   `copy-budget` at start (the bounds); `copy-waiting` when a transfer
 *   must wait for room; BudgetBusy for the caller to answer RETRY.
 *
 * SECURITY
 *   The sizes reserved are those fstat said of a descriptor that passed
 *   inspectDescriptor, never the sender's claim alone; a copy can never
 *   grow past them (copy.ts refuses growth).
 */
import * as fs from 'node:fs';
import { Refused, ensureDir, openUnlinked, type Config, type CopyPlace, type Logger } from '@sluice/core';
import type { IngressTransfer } from '@sluice/protocol';

/** The unit reservations are made in: a memfd's page, a filesystem's block. */
export const PAGE = 4096;

/** A transfer that found no room in time, or a full queue: to be answered RETRY, never a crash. */
export class BudgetBusy extends Error {
  readonly reason: 'copy-wait-expired' | 'copy-queue-full';
  /** The record whose copy found no room, once the holder knows it. */
  record: IngressTransfer | undefined;
  constructor(reason: BudgetBusy['reason'], message: string) {
    super(message);
    this.name = 'BudgetBusy';
    this.reason = reason;
  }
}

export interface Reservation {
  readonly place: 'memory' | 'disk';
  /** Bytes reserved: the size rounded up to whole pages. */
  readonly bytes: number;
  /** Give the bytes back; only the first call counts. */
  release(): void;
}

export interface BudgetOptions {
  memoryBytes: number;
  diskBytes: number;
  /** The directory of the disk copies (transit.state). */
  dir: string;
  /** Transfers that may wait for room at once; one more is BudgetBusy at once. */
  maxWaiting: number;
  /** How long one transfer waits for room. */
  waitMs: number;
}

interface Waiter {
  bytes: number;
  canMemory: boolean;
  canDisk: boolean;
  grant: (r: Reservation) => void;
  timer: NodeJS.Timeout | null;
}

/** CopyBudget - bytes of copies held in RAM and on disk, each within its bound; a bounded queue of waiters. */
export class CopyBudget {
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly dir: string;
  private readonly maxWaiting: number;
  private readonly waitMs: number;
  private memUsed = 0;
  private diskUsed = 0;
  private readonly queue: Waiter[] = [];

  constructor(o: BudgetOptions) {
    this.memoryBytes = o.memoryBytes;
    this.diskBytes = o.diskBytes;
    this.dir = o.dir;
    this.maxWaiting = o.maxWaiting;
    this.waitMs = o.waitMs;
  }

  /** usage - bytes reserved now, and transfers waiting. */
  usage(): { memoryUsed: number; diskUsed: number; waiting: number } {
    return { memoryUsed: this.memUsed, diskUsed: this.diskUsed, waiting: this.queue.length };
  }

  /** reserve - room for a copy of `size` bytes: at once, after a wait (onWait is told), or BudgetBusy / Refused. */
  reserve(size: number, onWait?: () => void): Promise<Reservation> {
    const bytes = Math.ceil(size / PAGE) * PAGE;
    const canMemory = bytes <= this.memoryBytes;
    const canDisk = bytes <= this.diskBytes;
    if (!canMemory && !canDisk) {
      return Promise.reject(new Refused('over-budget', `a copy of ${size} bytes fits neither transit's RAM budget (${this.memoryBytes}) nor its disk budget (${this.diskBytes})`));
    }
    if (this.queue.length >= this.maxWaiting) {
      return Promise.reject(new BudgetBusy('copy-queue-full', `${this.queue.length} transfers already wait for room for their copies`));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const w: Waiter = { bytes, canMemory, canDisk, grant: resolve, timer: null };
      this.queue.push(w);
      this.grant();
      if (!this.queue.includes(w)) return;
      onWait?.();
      w.timer = setTimeout(() => {
        this.queue.splice(this.queue.indexOf(w), 1);
        reject(new BudgetBusy('copy-wait-expired', `no room for a copy of ${size} bytes within ${this.waitMs} ms`));
        this.grant(); // it may have held back others
      }, this.waitMs);
      w.timer.unref();
    });
  }

  /** grant - hand room to waiters in order; one that cannot have it keeps the places it could use from those behind it. */
  private grant(): void {
    let memoryOpen = true;
    let diskOpen = true;
    for (let i = 0; i < this.queue.length && (memoryOpen || diskOpen); ) {
      const w = this.queue[i]!;
      const place =
        memoryOpen && w.canMemory && this.memUsed + w.bytes <= this.memoryBytes ? 'memory'
        : diskOpen && w.canDisk && this.diskUsed + w.bytes <= this.diskBytes ? 'disk'
        : null;
      if (place === null) {
        if (w.canMemory) memoryOpen = false;
        if (w.canDisk) diskOpen = false;
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      if (w.timer) clearTimeout(w.timer);
      w.grant(this.take(place, w.bytes));
    }
  }

  /** take - count `bytes` in `place`; the reservation gives them back once. */
  private take(place: 'memory' | 'disk', bytes: number): Reservation {
    if (place === 'memory') this.memUsed += bytes;
    else this.diskUsed += bytes;
    let held = true;
    return {
      place,
      bytes,
      release: () => {
        if (!held) return;
        held = false;
        if (place === 'memory') this.memUsed -= bytes;
        else this.diskUsed -= bytes;
        this.grant();
      },
    };
  }

  /** holder - one transfer's use of the budget: `place` for receiveTransfer, `release` for its finally, the `record` it placed. */
  holder(log: Logger): { place: (size: number, rec: IngressTransfer) => Promise<CopyPlace>; release: () => void; readonly record: IngressTransfer | undefined } {
    let r: Reservation | null = null;
    let record: IngressTransfer | undefined;
    return {
      get record() {
        return record;
      },
      place: async (size, rec) => {
        record = rec;
        try {
          r = await this.reserve(size, () =>
            log.child({ id: rec.id }).info({ event: 'copy-waiting', size, ...this.usage() }, 'no room for the copy yet; waiting for a release'),
          );
        } catch (err) {
          if (err instanceof BudgetBusy) err.record = rec;
          throw err;
        }
        return r.place === 'memory' ? 'memory' : { dir: this.dir };
      },
      release: () => {
        r?.release();
        r = null;
      },
    };
  }
}

/** openCopyBudget - transit's budget from its configuration: its private directory made (0700) and proven to take nameless files. */
export function openCopyBudget(cfg: Config, log: Logger): CopyBudget {
  const t = cfg.transit;
  if (t.copyDiskBytes > 0) {
    ensureDir(t.state, 0o700);
    try {
      fs.closeSync(openUnlinked(t.state, 0).fd);
    } catch (err) {
      throw new Error(`transit.state ${t.state} cannot hold nameless files (O_TMPFILE): ${(err as Error).message}`);
    }
  }
  const budget = new CopyBudget({ memoryBytes: t.copyMemoryBytes, diskBytes: t.copyDiskBytes, dir: t.state, maxWaiting: t.maxInFlight, waitMs: t.copyWaitMs });
  log.info({ event: 'copy-budget', memoryBytes: t.copyMemoryBytes, diskBytes: t.copyDiskBytes, dir: t.state, memoryMaxBytes: t.memoryMaxBytes }, 'copy budget set');
  return budget;
}
