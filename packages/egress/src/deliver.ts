/*
 * NAME
 *   deliver - one transfer through egress: verdict, own copy, journal, outputs, ack
 *
 * SYNOPSIS
 *   const deliveries = new Deliveries({ cfg, log, outbox, journal, keyId });
 *   await deliveries.receive(conn, rec, fd)   // from the receive path; never closes fd
 *   await deliveries.settled()                // every delivery in progress, at stop
 *
 * DESCRIPTION
 *   At most egress.maxInFlight transfers at once; a record beyond that is
 *   refused as `overloaded` (answered RETRY), so a flooding transit cannot
 *   make egress hoard descriptors. A transfer sent again while its first
 *   delivery runs waits for it, then finds it in the journal.
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
 *     6. file (accepted only) and signed report linked, the directory
 *        fsynced; for a named uploader, a copy of the report in their
 *        results directory, durable (results.ts); the journal told; then
 *        DELIVERED.
 *   A write error (ENOSPC, EIO) is `delivery-failed` and RETRY: nothing
 *   partial is visible, and the resend finishes the job.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  decide,
  describe,
  errnoCode,
  escapeForLog,
  fsyncDirShared,
  inspectDescriptor,
  reportReason,
  sendAck,
  Refused,
  REPORT_SUFFIX,
  SOFTWARE_VERSION,
  type Config,
  type Connection,
  type CopyResult,
  type Logger,
} from '@sluice/core';
import type { TransitTransfer, Verdict } from '@sluice/protocol';
import { pickupRefusal, REPORT_FORMAT, type ReportBody } from '@sluice/report';
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

export class Deliveries {
  /** Transfers being handled, by id (a resend while the first is in progress waits for it). */
  private readonly busy = new Map<string, Promise<void>>();

  constructor(private readonly o: DeliveryOptions) {}

  /** receive - one transfer, bounded and in order per id; `fd` is read until this settles. */
  async receive(conn: Connection, rec: TransitTransfer, fd: number): Promise<void> {
    if (this.busy.size >= this.o.cfg.egress.maxInFlight && !this.busy.has(rec.id)) {
      throw new Refused('overloaded', 'too many transfers in progress');
    }
    // The first delivery's refusal is its own: the resend is delivered (or refused) on its merits.
    const prior = (this.busy.get(rec.id) ?? Promise.resolve()).catch(() => undefined);
    const run = prior.then(() => this.deliver(conn, rec, fd));
    this.busy.set(rec.id, run);
    try {
      await run;
    } finally {
      if (this.busy.get(rec.id) === run) this.busy.delete(rec.id);
    }
  }

  /** settled - resolves once every delivery in progress has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.busy.values());
  }

  /** deliver - steps 1-6 of the header; a Refused escapes to the receive path, anything else is RETRY. */
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
        sendAck(conn, rec, 'delivered', `already delivered as ${known.entry.stored}`, tlog);
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
      if (entry.place === 'outbox' && !outbox.exists('outbox', entry.stored)) await outbox.link(out, 'outbox', entry.stored);
      if (!outbox.exists(entry.place, entry.stored + REPORT_SUFFIX)) await outbox.writeReport(entry);
      await fsyncDirShared(outbox.dir(entry.place)); // one flush of the directory serves every transfer waiting for it
      await outbox.results.copy(entry, path.join(outbox.dir(entry.place), entry.stored + REPORT_SUFFIX)); // a named uploader's copy
      journal.complete(entry.id); // not flushed: the outputs are durable, and a lost record is read back from the report
      outbox.reserved.delete(`${entry.place}/${entry.stored}`);
      tlog.info(
        { event: 'delivered', verdict: entry.verdict, stored: entry.stored, place: entry.place, ...(rec.uploader ? { uploader: rec.uploader } : {}), size: rec.size, sha256: sha256hex, reason: escapeForLog(entry.verdict === 'rejected' ? (entry.body.reason as string) : '') },
        entry.verdict === 'accepted' ? `delivered to outbox as ${entry.stored}` : `rejected; report in rejected/ as ${entry.stored}${REPORT_SUFFIX}`,
      );
      sendAck(conn, rec, 'delivered', entry.verdict, tlog);
    } catch (err) {
      if (err instanceof Refused) throw err;
      const code = errnoCode(err);
      tlog.error({ event: 'delivery-failed', reason: code ?? describe(err) }, 'could not deliver; transit will be told to retry');
      sendAck(conn, rec, 'retry', code ?? describe(err), tlog);
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
      format: REPORT_FORMAT,
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
