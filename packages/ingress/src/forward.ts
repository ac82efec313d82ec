/*
 * NAME
 *   forward - send spooled transfers to transit, at most ingress.maxInFlight at a time
 *
 * SYNOPSIS
 *   const fwd = new Forwarder({ cfg, log, spool, connection: () => connector.connection, onDelivered });
 *   fwd.enqueue(meta);            // a committed spool entry
 *   fwd.pump();                   // send what the window allows (after a reconnect)
 *   fwd.onAck(conn, ack);         // an Ack from the receive path
 *   fwd.disconnected();           // every transfer waiting for an ack: send again later
 *
 * DESCRIPTION
 *   A transfer is queued from its spool commit until transit's final ack.
 *   Sending: the IngressTransfer record (name cut to limits.maxNameBytes)
 *   with a fresh read-only descriptor of the spool file, closed as soon as
 *   the kernel has it. Then the final ack, at most ingress.ackTimeoutMs:
 *
 *     DELIVERED   forget the spool entry (the file is durable downstream)
 *     RETRY       send again after ingress.retryDelayMs (a scanner down, egress away)
 *     REFUSED     move the entry to spool/held/ for an operator (never between honest stages)
 *     none        (timeout, disconnect, send error) send again after retryDelayMs
 *
 *   The record is encoded under the configured limits (core's wireLimits,
 *   the same transit decodes with). An entry no record can carry (a size
 *   over limits.maxFileBytes after the limit was lowered, a spool entry
 *   whose metadata is damaged) would fail the same way at every attempt, so
 *   it is not retried: it is moved to spool/held/ (`held`, reason
 *   `unencodable`) and leaves room for the next pickup.
 *
 *   Fair turns: the transfers ready to send wait in one line per uploader
 *   ('' for the anonymous drop), and the lines take turns, one transfer each
 *   (round-robin), so one uploader's backlog delays another's file by at
 *   most one transfer per uploader with files ready. The record carries the
 *   spool entry's uploader. waiting(uploader) counts what each uploader has
 *   spooled and not yet acknowledged (refusals left out: they hold no
 *   bytes), for the quotas (uploaders.maxFilesWaiting, maxBytesWaiting).
 *
 *   An ack must name a transfer that waits and carry its digest; any other
 *   is logged (`ack-unexpected`) and dropped, and the transfer is sent
 *   again when its wait ends.
 */
import * as fs from 'node:fs';
import { PendingAcks, describe, escapeForLog, settleAck, station, wireLimits, type Config, type Connection, type Logger } from '@sluice/core';
import { encodeIngressTransfer, truncateUtf8, type Ack } from '@sluice/protocol';
import type { Spool, SpoolMeta } from './spool.js';

export interface ForwarderOptions {
  cfg: Config;
  log: Logger;
  spool: Spool;
  /** The connection to transit, or null while there is none. */
  connection: () => Connection | null;
  /** A transfer left the queue (delivered, or held for an operator): room again for new pickups. */
  onDelivered: () => void;
  /** An entry left the spool's line (delivered, or held for an operator): its bytes no longer count. */
  onForgotten: (meta: SpoolMeta) => void;
}

export class Forwarder {
  /** Transfers in the spool, not yet acknowledged. */
  private readonly queued = new Map<string, SpoolMeta>();
  /**
   * Ids ready to send now, one line per uploader ('' the anonymous drop). The first line gives the
   * next id and goes to the back: Map insertion order is the round-robin. Empty lines are removed.
   */
  private readonly ready = new Map<string, string[]>();
  /** Per uploader: spooled files (not refusals) and their bytes, not yet acknowledged; no entry at zero. */
  private readonly counts = new Map<string, { files: number; bytes: number }>();
  private readonly inFlight = new Set<string>();
  private readonly acks = new PendingAcks<Ack>();

  constructor(private readonly o: ForwarderOptions) {}

  /** Transfers queued (spooled and not yet acknowledged). */
  get size(): number {
    return this.queued.size;
  }

  /** waiting - an uploader's spooled files and bytes not yet acknowledged (refusals not counted). */
  waiting(uploader: string): { files: number; bytes: number } {
    return this.counts.get(uploader) ?? { files: 0, bytes: 0 };
  }


  /** sending - transfers sent and waiting for their final ack. */
  get sending(): number {
    return this.inFlight.size;
  }

  /** oldest - when the oldest queued transfer was picked up (ms since the epoch), or null. */
  oldest(): number | null {
    let min = Infinity;
    for (const m of this.queued.values()) min = Math.min(min, Date.parse(m.receivedAt));
    return Number.isFinite(min) ? min : null;
  }

  /** enqueue - a committed spool entry joins its uploader's line. */
  enqueue(meta: SpoolMeta): void {
    if (!this.queued.has(meta.id) && !meta.refusal) this.count(meta, 1);
    this.queued.set(meta.id, meta);
    this.makeReady(meta);
    this.pump();
  }

  /** count - add (+1) or remove (-1) a spooled file from its uploader's counts. */
  private count(meta: SpoolMeta, sign: 1 | -1): void {
    const u = meta.uploader ?? '';
    const c = this.counts.get(u) ?? { files: 0, bytes: 0 };
    c.files += sign;
    c.bytes += sign * meta.size;
    if (c.files <= 0) this.counts.delete(u);
    else this.counts.set(u, c);
  }

  /** forget - a transfer leaves the queue (delivered or held). */
  private forget(id: string): void {
    const meta = this.queued.get(id);
    if (!meta) return;
    this.queued.delete(id);
    if (!meta.refusal) this.count(meta, -1);
  }

  /** makeReady - a transfer joins the back of its uploader's line. */
  private makeReady(meta: SpoolMeta): void {
    const u = meta.uploader ?? '';
    const line = this.ready.get(u);
    if (line) line.push(meta.id);
    else this.ready.set(u, [meta.id]);
  }

  /** nextReady - the next id in turn: the first line's first, and that line goes to the back. */
  private nextReady(): string | undefined {
    for (const [u, line] of this.ready) {
      const id = line.shift();
      this.ready.delete(u);
      if (line.length > 0) this.ready.set(u, line);
      return id;
    }
    return undefined;
  }

  /** pump - send ready transfers while the window allows. */
  pump(): void {
    const conn = this.o.connection();
    while (conn && this.ready.size > 0 && this.inFlight.size < this.o.cfg.ingress.maxInFlight) {
      const id = this.nextReady()!;
      const meta = this.queued.get(id);
      if (!meta || this.inFlight.has(id)) continue;
      this.inFlight.add(id);
      void this.send(conn, meta).finally(() => {
        this.inFlight.delete(id);
        this.pump();
      });
    }
  }

  /** onAck - an Ack from transit: for a transfer that waits, with its digest. */
  onAck(conn: Connection, ack: Ack): void {
    const meta = this.queued.get(ack.id);
    if (meta && this.acks.has(ack.id) && Buffer.from(ack.sha256).toString('hex') !== meta.sha256) {
      this.o.log.error({ event: 'ack-unexpected', id: ack.id, peer: conn.peer, reason: 'digest differs' }, 'ack for other bytes');
      return;
    }
    settleAck(this.acks, ack, conn, this.o.log);
  }

  /** disconnected - transit went away: no transfer will get its ack on that connection. */
  disconnected(): void {
    this.acks.failAll(Object.assign(new Error('transit disconnected'), { code: 'EPIPE' }));
  }

  /** later - put a transfer back in line after a delay. */
  private later(id: string): void {
    setTimeout(() => {
      const meta = this.queued.get(id);
      if (meta) {
        this.makeReady(meta);
        this.pump();
      }
    }, this.o.cfg.ingress.retryDelayMs).unref();
  }

  /** send - one transfer: record + read-only spool descriptor, then wait for the final ack. */
  private async send(conn: Connection, meta: SpoolMeta): Promise<void> {
    const { cfg, spool } = this.o;
    const tlog = this.o.log.child({ id: meta.id });
    let fd = -1;
    try {
      let record: Uint8Array;
      try {
        record = ingressRecord(meta, cfg);
      } catch (err) {
        // A pure function of the spool entry and the configuration: another attempt would fail the same way.
        const detail = escapeForLog(describe(err));
        tlog.error({ event: 'held', reason: 'unencodable', detail }, 'no record to transit can carry this transfer; moved to spool/held for an operator');
        spool.hold(meta.id, `unencodable: ${detail}`);
        this.forget(meta.id);
        this.o.onForgotten(meta);
        this.o.onDelivered();
        return;
      }
      fd = fs.openSync(spool.dataPath(meta.id), fs.constants.O_RDONLY);
      const waiting = this.acks.wait(meta.id, cfg.ingress.ackTimeoutMs);
      await conn.send(record, fd);
      fs.closeSync(fd);
      fd = -1;
      tlog.info({ event: 'sent', size: meta.size, sha256: meta.sha256 }, 'sent to transit');
      const ack = await waiting;
      const reason = escapeForLog(ack.reason);
      switch (ack.status) {
        case 'delivered':
          await spool.forget(meta.id);
          this.forget(meta.id);
          this.o.onForgotten(meta);
          tlog.info({ event: 'done', reason }, 'delivered downstream; spool copy removed');
          station.file('done');
          this.o.onDelivered();
          return;
        case 'retry':
          tlog.warn({ event: 'retry', reason }, 'transit asked to retry later');
          station.file('retry');
          this.later(meta.id);
          return;
        case 'refused':
          tlog.error({ event: 'held', reason }, 'transit refused the record; moved to spool/held for an operator');
          spool.hold(meta.id, ack.reason);
          station.file('held');
          this.forget(meta.id);
          this.o.onForgotten(meta); // held entries are an operator's (logged at error), outside the budget
          this.o.onDelivered();
          return;
      }
    } catch (err) {
      tlog.warn({ event: 'retry', reason: describe(err) }, 'no final ack; will send again');
      station.file('retry');
      this.later(meta.id);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
}

/** ingressRecord - the IngressTransfer for one spool entry (name cut to limits.maxNameBytes), under the configured limits; throws when none can carry it. */
export function ingressRecord(meta: SpoolMeta, cfg: Config): Uint8Array {
  return encodeIngressTransfer(
    {
      id: meta.id,
      name: truncateUtf8(meta.name, cfg.limits.maxNameBytes),
      size: meta.size,
      sha256: Buffer.from(meta.sha256, 'hex'),
      receivedAt: meta.receivedAt,
      refusal: meta.refusal,
      ...(meta.uploader ? { uploader: meta.uploader } : {}),
    },
    wireLimits(cfg),
  );
}
