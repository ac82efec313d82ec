/*
 * NAME
 *   transfer - one transfer through transit: sealed copy, checks, verdict, on to egress
 *
 * SYNOPSIS
 *   const transfers = new Transfers({ cfg, log, checks, egress, egressAcks });
 *   transfers.admit()                        // false: too many records wait; refuse unread
 *   await transfers.receive(conn, rec, fd)   // resolves once the sealed copy is taken
 *
 * DESCRIPTION
 *   receive() waits for a checking slot, then takes transit's own private
 *   copy of the descriptor ingress sent (core's privateCopy: inspect, copy
 *   while hashing; a sealed memfd while the RAM budget allows, else a
 *   nameless 0600 file in transit.state, else it waits: budget.ts) and
 *   resolves: the receive path then closes
 *   ingress's descriptor, right after the copy. A copy refused (a writable
 *   descriptor, a file that grew, ...) is thrown as Refused, for the
 *   receive path to log and answer REFUSED. The rest runs on its own:
 *
 *     1. the digest of the copy must equal ingress's claim, and a refusal
 *        from pickup can only reject; otherwise every check runs on the
 *        copy (checks/);
 *     2. core's decide() gives the verdict; a check that could not run
 *        (retry) is answered RETRY, never passed;
 *     3. forward.ts hands egress a read-only descriptor of the copy and
 *        relays egress's answer to ingress.
 *
 *   Two bounds (core's Slots): transit.maxInFlight transfers being copied
 *   and checked, and transit.maxForwarding checked transfers handed to
 *   egress and not yet acked (each holds its sealed copy, counted in bytes
 *   by the copy budget). A checked transfer takes a forwarding slot before
 *   it gives its checking slot to the next file, so the scanners take the
 *   next file while egress writes and logs, egress has many reports ready
 *   at once for one tree head, and transit holds at most maxInFlight +
 *   maxForwarding sealed copies however slow egress is. At most 8 x maxInFlight records wait for a checking slot, each with
 *   ingress's descriptor; admit() refuses more before they are decoded, so
 *   a flooding peer cannot make transit hoard descriptors.
 */
import * as fs from 'node:fs';
import {
  closeFd,
  decide,
  describe,
  escapeForLog,
  reportReason,
  privateCopy,
  sendAck,
  Refused,
  Slots,
  station,
  type Config,
  type Connection,
  type Connector,
  type Logger,
  type PendingAcks,
  type PrivateCopy,
  wireLimits,
} from '@sluice/core';
import type { Ack, IngressTransfer } from '@sluice/protocol';
import { runChecks, type Check, type CheckResult } from './checks/index.js';
import { forward } from './forward.js';
import { BudgetBusy, type CopyBudget } from './budget.js';

export interface TransferOptions {
  cfg: Config;
  log: Logger;
  checks: readonly Check[];
  egress: Connector;
  egressAcks: PendingAcks<Ack>;
  /** Where copies may go, in bytes: RAM, disk, or a bounded wait. */
  budget: CopyBudget;
}

/** How many records may wait for a checking slot, per slot. */
const WAITING_PER_SLOT = 8;
/**
 * A copy in memory up to this size is closed on the event loop: freeing a few pages of a memfd
 * takes microseconds, less than a round trip through the threadpool. Larger copies, and copies on
 * disk (freeing blocks can wait for the disk), are closed on the threadpool.
 */
export const INLINE_CLOSE_MAX_BYTES = 64 * 1024;

/** closeCopy - close transit's descriptor of its copy, often the last reference (which frees the copy). */
export async function closeCopy(copy: Pick<PrivateCopy, 'fd' | 'place' | 'size'>): Promise<void> {
  if (copy.place === 'memory' && copy.size <= INLINE_CLOSE_MAX_BYTES) fs.closeSync(copy.fd);
  else await closeFd(copy.fd);
}

export class Transfers {
  private readonly checking: Slots;
  private readonly forwarding: Slots;

  constructor(private readonly o: TransferOptions) {
    this.checking = new Slots(o.cfg.transit.maxInFlight, 'checking');
    this.forwarding = new Slots(o.cfg.transit.maxForwarding, 'forwarding');
  }

  /** inFlight - transfers waiting for or holding a checking slot, or being forwarded. */
  get inFlight(): number {
    return this.checking.active + this.checking.waiting + this.forwarding.active;
  }

  /** admit - may one more record wait for a checking slot? */
  admit(): boolean {
    return this.checking.waiting < this.o.cfg.transit.maxInFlight * WAITING_PER_SLOT;
  }

  /** receive - a checking slot and the private copy; the checks and forwarding then run on without `fd`. */
  async receive(conn: Connection, rec: IngressTransfer, fd: number): Promise<void> {
    const release = await this.checking.acquire();
    const tlog = this.o.log.child({ id: rec.id });
    const held = this.o.budget.holder(this.o.log);
    let copy: PrivateCopy;
    try {
      copy = await privateCopy(fd, { maxBytes: this.o.cfg.limits.maxFileBytes, claimedSize: rec.size }, { place: (size) => held.place(size, rec) });
    } catch (err) {
      held.release();
      release();
      if (err instanceof BudgetBusy) {
        tlog.warn({ event: 'retry', reason: err.reason, detail: err.message }, 'no room for the copy; ingress will resend');
        station.file('retry');
        sendAck(conn, rec, 'retry', err.reason, tlog, wireLimits(this.o.cfg));
        return;
      }
      if (err instanceof Refused) throw err;
      failed(conn, rec, err, tlog, this.o.cfg);
      return;
    }
    void this.run(conn, rec, copy, held.release, release, tlog);
  }

  /** run - check, decide, forward, answer ingress; owns the sealed copy and the checking slot. */
  private async run(conn: Connection, rec: IngressTransfer, copy: PrivateCopy, releaseBudget: () => void, releaseChecking: () => void, tlog: Logger): Promise<void> {
    let release: (() => void) | null = releaseChecking;
    let releaseForwarding: (() => void) | null = null;
    try {
      if (this.o.egressAcks.has(rec.id)) {
        tlog.info({ event: 'duplicate-in-flight' }, 'already handling this transfer; its ack will answer');
        return;
      }
      const sha256hex = copy.sha256.toString('hex');
      tlog.info({ event: 'received', peer: conn.peer, size: copy.size, sha256: sha256hex, name: escapeForLog(rec.name), copy: copy.place }, `private copy taken (${copy.place})`);

      const results = await this.check(rec, copy, sha256hex);
      const { verdict, retry } = decide(results);
      station.scanResults(results);
      if (retry) {
        tlog.warn({ event: 'check-unavailable', reason: results.filter((r) => r.outcome === 'error').map((r) => `${r.name}: ${r.reason}`).join('; ') }, 'a check could not run; held for retry');
        station.file('retry');
        sendAck(conn, rec, 'retry', 'a check could not run', tlog, wireLimits(this.o.cfg));
        return;
      }
      const reason = reportReason(results, verdict);
      tlog.info({ event: 'checked', verdict, reason, checks: results.map((r) => ({ name: r.name, outcome: r.outcome, reason: r.reason })) }, `verdict ${verdict}`);
      station.file(verdict, copy.size);

      // Take a forwarding slot first, then give the checking slot to the next file (see the header).
      releaseForwarding = await this.forwarding.acquire();
      release();
      release = null;
      const answer = await forward(this.o, rec, copy, verdict, results, tlog);
      sendAck(conn, rec, answer.status, answer.reason, tlog, wireLimits(this.o.cfg));
    } catch (err) {
      failed(conn, rec, err, tlog, this.o.cfg);
    } finally {
      await closeCopy(copy);
      releaseBudget();
      releaseForwarding?.();
      release?.();
    }
  }

  /** check - the results the verdict is made of: integrity and pickup first, then every configured check. */
  private async check(rec: IngressTransfer, copy: PrivateCopy, sha256hex: string): Promise<CheckResult[]> {
    if (!copy.sha256.equals(Buffer.from(rec.sha256))) {
      const claimed = Buffer.from(rec.sha256).toString('hex');
      return [{ name: 'integrity', outcome: 'fail', reason: `digest ${sha256hex} differs from the ${claimed} ingress claimed`, engine: '' }];
    }
    if (rec.refusal) return [{ name: 'ingress', outcome: 'fail', reason: `refused at pickup: ${escapeForLog(rec.refusal, 1024)}`, engine: '' }];
    return (await runChecks(this.o.checks, { fd: copy.fd, size: copy.size, sha256hex, name: rec.name })).results;
  }
}

/** failed - an unexpected error: logged, and ingress told to send again. */
function failed(conn: Connection, rec: IngressTransfer, err: unknown, tlog: Logger, cfg: Config): void {
  tlog.error({ event: 'transfer-failed', reason: describe(err) }, 'transfer failed; ingress will resend');
  station.file('failed');
  sendAck(conn, rec, 'retry', describe(err), tlog, wireLimits(cfg));
}
