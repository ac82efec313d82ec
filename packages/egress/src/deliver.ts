/*
 * NAME
 *   deliver - one transfer through egress: verdict, own copy, journal, outputs, ack
 *
 * SYNOPSIS
 *   const deliveries = new Deliveries({ cfg, log, outbox, journal, keyId });
 *   receiver(conn, { ..., handle: (rec, fd) => deliveries.receive(conn, rec, fd),
 *                    close: (fd) => deliveries.close(fd), answer: answerRefusal(log) });
 *   await deliveries.settled()                // every delivery in progress, at stop
 *
 * DESCRIPTION
 *   Admission, before any work and without waiting:
 *     - a transfer whose id is being delivered is refused at once
 *       (`id-in-flight`, answered RETRY); it takes no slot and its
 *       descriptor is closed by the receive path straight away. An honest
 *       transit sends an id again only after it gave up waiting for the
 *       first delivery's ack; RETRY (not REFUSED, which ingress holds for
 *       an operator) brings it back later, when the journal acks it;
 *     - beyond egress.maxInFlight deliveries, a record is refused as
 *       `overloaded` (answered RETRY).
 *   A delivery holds its slot from admission until the receive path has
 *   closed its descriptor (close()), so the descriptors egress holds for
 *   deliveries are bounded by maxInFlight x DESCRIPTORS_PER_DELIVERY.
 *   A refused record's descriptor is closed synchronously, so a flood of
 *   refusals holds no more than one read batch of the connection at once.
 *   At start egress checks that this bound, with DESCRIPTOR_RESERVE for
 *   everything else it holds, fits its descriptor limit (RLIMIT_NOFILE,
 *   the unit's LimitNOFILE), and does not start otherwise.
 *
 *   For one transfer, in order:
 *     1. journal: the same id with other bytes is refused (`id-reused`, at
 *        error level: transit reused an id); the descriptor must pass
 *        inspectDescriptor against the claimed size;
 *     2. already delivered: acked DELIVERED again, nothing written;
 *     3. the verdict: core's decide() on transit's check results, with
 *        transit's verdict, so nothing transit did not accept is delivered;
 *        a delivery the journal already holds keeps its verdict;
 *     4. egress's own bytes: accepted -> copied into an unnamed file in the
 *        outbox, rejected -> hashed only; either way hashed by egress, and
 *        the digest must equal transit's claim (else `digest-mismatch`);
 *     5. the name and the report body are journalled (durable) before any
 *        link; a delivery the journal already holds is finished under its
 *        name;
 *     6. the report's signed body appended to the transparency log; once
 *        its leaf is durable and a signed tree head covering it written
 *        (tlog.ts), the report (sluice-report/3: body, leaf index, head,
 *        inclusion proof) written and fsynced, unnamed, while that head is
 *        flushed; nothing goes on until both flushes are done;
 *     7. file (accepted only) and report linked back to back (outbox.ts:
 *        no file is left without its report), the directory fsynced; for a
 *        named uploader, a copy of the report in their results directory,
 *        durable (results.ts); the journal told; then DELIVERED.
 *   A write error (ENOSPC, EIO, EMFILE) is `delivery-failed` and RETRY:
 *   nothing partial is visible, and the resend finishes the job.
 *
 * BOUNDS
 *   DESCRIPTORS_PER_DELIVERY: what one delivery holds at most at once: the
 *   received descriptor, egress's unnamed copy (accepted) or /dev/null to
 *   hash into (rejected), and the unnamed report. Shared by all
 *   deliveries, in DESCRIPTOR_RESERVE: one directory fsync per directory
 *   at a time, the journal (and its rewrite), the listener and
 *   connections, Node's own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ackRefusal,
  closeFd,
  decide,
  describe,
  errnoCode,
  escapeForLog,
  fsyncDirShared,
  inspectDescriptor,
  reportReason,
  sendAck,
  wireLimits,
  Refused,
  REPORT_SUFFIX,
  SOFTWARE_VERSION,
  station,
  type Config,
  type Connection,
  type CopyResult,
  type Logger,
} from '@sluice/core';
import type { Limits, TransitTransfer, Verdict } from '@sluice/protocol';
import { pickupRefusal, LOGGED_REPORT_FORMAT, type ReportBody } from '@sluice/report';
import type { Journal, JournalEntry } from './journal.js';
import { hashOnly, type Outbox } from './outbox.js';

export interface DeliveryOptions {
  cfg: Config;
  log: Logger;
  outbox: Outbox;
  journal: Journal;
  /** The signing key's id, as reports name it. */
  keyId: string;
}

/** The most descriptors one delivery holds at once (header, BOUNDS). */
export const DESCRIPTORS_PER_DELIVERY = 3;
/** Descriptors egress keeps beside its deliveries' (header, BOUNDS; docs/capacity.md). */
export const DESCRIPTOR_RESERVE = 128;

/** Refusals a later resend of the same record may pass: answered RETRY, not REFUSED. */
const RETRY_REASONS = new Set(['overloaded', 'id-in-flight']);

/** answerRefusal - answer() for egress's receive path: RETRY for RETRY_REASONS, else as core's ackRefusal. */
export function answerRefusal(log: Logger): (conn: Connection, rec: TransitTransfer, refusal: Refused, limits: Limits) => void {
  const refuse = ackRefusal<TransitTransfer>(log);
  return (conn, rec, refusal, limits) => {
    if (RETRY_REASONS.has(refusal.reason)) sendAck(conn, rec, 'retry', `${refusal.reason}: ${refusal.message}`, log.child({ id: rec.id }), limits);
    else refuse(conn, rec, refusal, limits);
  };
}

/**
 * checkDescriptorBudget - throw, naming the keys, if maxInFlight deliveries and the reserve do not fit
 * the descriptor limit; `limit` is the soft RLIMIT_NOFILE (null: unknown, nothing to check).
 */
export function checkDescriptorBudget(maxInFlight: number, limit: number | null): void {
  const need = maxInFlight * DESCRIPTORS_PER_DELIVERY + DESCRIPTOR_RESERVE;
  if (limit !== null && need > limit) {
    throw new Error(
      `egress.maxInFlight ${maxInFlight} needs ${need} descriptors (${DESCRIPTORS_PER_DELIVERY} per delivery and ${DESCRIPTOR_RESERVE} more), ` +
        `over the descriptor limit ${limit} (LimitNOFILE): lower egress.maxInFlight to at most ${Math.max(0, Math.floor((limit - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_DELIVERY))} or raise LimitNOFILE`,
    );
  }
}

/** openFileLimit - this process's soft RLIMIT_NOFILE, from /proc/self/limits (null if unlimited or unreadable). */
export function openFileLimit(): number | null {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft && /^\d+$/.test(soft) ? Number(soft) : null;
  } catch {
    return null;
  }
}

export class Deliveries {
  /** Transfers being delivered, by id: another record with one of these ids is refused (`id-in-flight`). */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Received descriptors of admitted deliveries, until the receive path has closed them. */
  private readonly held = new Set<number>();
  /** Slots taken: admitted deliveries whose descriptor is not closed yet (at most maxInFlight). */
  private slots = 0;

  constructor(private readonly o: DeliveryOptions) {}

  /** active - transfers being delivered now. */
  get active(): number {
    return this.inFlight.size;
  }

  /** receive - admit one transfer (header) and deliver it; `fd` is read until this settles, and closed by close(). */
  async receive(conn: Connection, rec: TransitTransfer, fd: number): Promise<void> {
    if (this.inFlight.has(rec.id)) throw new Refused('id-in-flight', 'a transfer with this id is being delivered; send it again after its ack');
    if (this.slots >= this.o.cfg.egress.maxInFlight) throw new Refused('overloaded', 'too many transfers in progress');
    this.slots++;
    this.held.add(fd);
    const run = this.deliver(conn, rec, fd);
    this.inFlight.set(rec.id, run);
    try {
      await run;
    } finally {
      this.inFlight.delete(rec.id);
    }
  }

  /**
   * close - the receive path's close(fd). A delivery's descriptor may hold the last reference to
   * transit's copy (freeing its pages takes a while), so it is closed on the threadpool and its slot
   * given back once it is closed; a refused record's is closed at once.
   */
  async close(fd: number): Promise<void> {
    if (!this.held.delete(fd)) {
      fs.closeSync(fd);
      return;
    }
    try {
      await closeFd(fd);
    } finally {
      this.slots--;
    }
  }

  /** settled - resolves once every delivery in progress has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.inFlight.values());
  }

  /** deliver - steps 1-7 of the header; a Refused escapes to the receive path, anything else is RETRY. */
  private async deliver(conn: Connection, rec: TransitTransfer, fd: number): Promise<void> {
    const { outbox, journal, cfg } = this.o;
    const tlog = this.o.log.child({ id: rec.id });
    const sha256hex = Buffer.from(rec.sha256).toString('hex');
    let out = -1;
    try {
      const known = journal.get(rec.id);
      if (known && known.entry.sha256 !== sha256hex) throw new Refused('id-reused', 'this id was delivered with a different digest', 'error');
      inspectDescriptor(fd, { maxBytes: cfg.limits.maxFileBytes, claimedSize: rec.size });
      if (known?.complete) {
        tlog.info({ event: 'duplicate-acked', stored: known.entry.stored }, 'already delivered; acking again');
        station.file('duplicate');
        sendAck(conn, rec, 'delivered', `already delivered as ${known.entry.stored}`, tlog, wireLimits(cfg));
        return;
      }
      const verdict = known?.entry.verdict ?? decide(rec.checks, rec.verdict).verdict;

      // Our own copy (accepted) or our own digest (rejected): the report states bytes egress hashed itself.
      let copied: CopyResult;
      if (verdict === 'accepted') ({ fd: out, copied } = await outbox.copyIn(fd, rec.size));
      else copied = await hashOnly(fd, rec.size);
      if (!copied.sha256.equals(Buffer.from(rec.sha256))) {
        throw new Refused('digest-mismatch', `bytes hash to ${copied.sha256.toString('hex')}, transit claimed ${sha256hex}`);
      }

      const entry = known ? known.entry : this.newEntry(rec, verdict, sha256hex);
      if (known && !known.durable) await journal.intend(entry); // its first flush failed: record it again before linking
      if (!known) await this.intend(entry);
      // Everything that needs a descriptor, space or a signer is done before the first link (outbox.ts).
      // A name chosen just now (not journalled before) was free as file and as report, and is reserved
      // since: nothing of this delivery can be in place yet, so neither output is looked for.
      const fresh = !known;
      const report = !fresh && outbox.exists(entry.place, entry.stored + REPORT_SUFFIX) ? -1 : await outbox.signReport(entry);
      try {
        await outbox.publish(entry, out, report, { fresh });
      } finally {
        if (report >= 0) fs.closeSync(report);
      }
      await fsyncDirShared(outbox.dir(entry.place)); // one flush of the directory serves every transfer waiting for it
      await outbox.results.copy(entry, path.join(outbox.dir(entry.place), entry.stored + REPORT_SUFFIX)); // a named uploader's copy
      journal.complete(entry.id); // not flushed: the outputs are durable, and a lost record is read back from the report
      outbox.reserved.delete(`${entry.place}/${entry.stored}`);
      tlog.info(
        { event: 'delivered', verdict: entry.verdict, stored: entry.stored, place: entry.place, ...(rec.uploader ? { uploader: rec.uploader } : {}), size: rec.size, sha256: sha256hex, reason: escapeForLog(entry.verdict === 'rejected' ? (entry.body.reason as string) : '') },
        entry.verdict === 'accepted' ? `delivered to outbox as ${entry.stored}` : `rejected; report in rejected/ as ${entry.stored}${REPORT_SUFFIX}`,
      );
      station.file(entry.verdict, entry.verdict === 'accepted' ? rec.size : undefined);
      station.delivered(entry.verdict, rec.receivedAt, entry.stored);
      sendAck(conn, rec, 'delivered', entry.verdict, tlog, wireLimits(cfg));
    } catch (err) {
      if (err instanceof Refused) throw err;
      const code = errnoCode(err);
      tlog.error({ event: 'delivery-failed', reason: code ?? describe(err) }, 'could not deliver; transit will be told to retry');
      station.file('failed');
      sendAck(conn, rec, 'retry', code ?? describe(err), tlog, wireLimits(cfg));
    } finally {
      if (out >= 0) fs.closeSync(out);
    }
  }

  /** newEntry - a delivery not seen before: its place, a free name, and the report body to sign. */
  private newEntry(rec: TransitTransfer, verdict: Verdict, sha256hex: string): JournalEntry {
    const place = verdict === 'accepted' ? 'outbox' : 'rejected';
    const stored = this.o.outbox.chooseName(place, rec.name);
    return { id: rec.id, sha256: sha256hex, size: rec.size, verdict, place, stored, body: this.reportBody(rec, verdict, stored) };
  }

  /** intend - reserve the entry's name and journal it; a name not journalled (e.g. ENOSPC) is promised to nobody. */
  private async intend(entry: JournalEntry): Promise<void> {
    const key = `${entry.place}/${entry.stored}`;
    this.o.outbox.reserved.add(key);
    try {
      await this.o.journal.intend(entry);
    } catch (err) {
      if (this.o.journal.get(entry.id) === null) this.o.outbox.reserved.delete(key); // the retry chooses again
      throw err;
    }
  }

  /** reportBody - everything the report states, before signing. */
  private reportBody(rec: TransitTransfer, verdict: Verdict, stored: string): ReportBody {
    const checks = rec.checks.map((k) => ({ name: k.name, result: k.outcome, reason: k.reason, engine: k.engine }));
    // Refused at pickup: ingress copied nothing (egress got an empty file), so the report vouches for
    // no bytes: no digest, and the size ingress saw. A non-empty file always gets its own digest.
    const refused = verdict === 'rejected' && rec.size === 0 ? pickupRefusal(checks) : null;
    return {
      format: LOGGED_REPORT_FORMAT,
      station: this.o.cfg.station,
      software: `sluice ${SOFTWARE_VERSION}`,
      key: this.o.keyId,
      transfer: rec.id,
      name: { original: rec.name, stored },
      size: refused ? refused.sizeSeen : rec.size,
      sha256: refused ? null : Buffer.from(rec.sha256).toString('hex'),
      verdict,
      reason: reportReason(rec.checks, verdict),
      checks,
      times: { received: rec.receivedAt, checked: rec.checkedAt, reported: new Date().toISOString() },
      // Only for a named uploader: a report of the anonymous drop keeps exactly its former members.
      ...(rec.uploader ? { uploader: rec.uploader } : {}),
    };
  }
}
