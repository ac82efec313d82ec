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
 *   scan is a process. core's Slots, whose wait, when it lasts longer than
 *   waitMs, ends as CheckUnavailable: a scanner that stays saturated that
 *   long is "unavailable", so the file is held and sent again later, never
 *   passed.
 */
import { Slots as CoreSlots } from '@sluice/core';
import { CheckUnavailable } from './check.js';

export class Slots extends CoreSlots {
  /** max: scans at once (at least 1); scanner: its name, for messages. */
  constructor(max: number, scanner: string) {
    super(max, `${scanner} scan`, { busy: (m) => new CheckUnavailable(m) });
  }

  /** acquire - a scan slot, waiting at most waitMs. */
  override acquire(waitMs: number, signal: AbortSignal): Promise<() => void> {
    return super.acquire(waitMs, signal);
  }
}
