/*
 * NAME
 *   sluice-ingress - pick up complete uploads, spool them, hand them to transit
 *
 * SYNOPSIS
 *   node packages/ingress/dist/main.js --config FILE
 *
 * DESCRIPTION
 *   Receives: files in the inbox, written by the drop account (one local
 *   group, sluice-inbox), whose uploader is hostile.
 *   Trusts: neither the names nor the bytes. It never follows a link, never
 *   opens a non-regular file, and takes nothing still open for writing.
 *   Keeps: a private copy of each file in its spool (0700), durable before
 *   the inbox file is removed, until the final ack says egress has made the
 *   output durable.
 *   Forwards: to transit over transit.sock, one IngressTransfer record with
 *   a read-only descriptor of the spool copy, its size and SHA-256.
 *
 *   Acks from transit: DELIVERED -> forget the spool entry; RETRY (e.g. a
 *   scanner is down) or no ack in time -> send again later; REFUSED (transit
 *   found the record itself bad; never happens between honest stages) ->
 *   move the entry to spool/held/ for an operator, loudly.
 *
 * SECURITY
 *   Runs as sluice-ingress, member of sluice-inbox. Needs CAP_LEASE to prove
 *   an upload is complete and CAP_DAC_READ_SEARCH to read 0600 uploads; see
 *   docs/operations.md. Checks that transit's socket is served by the
 *   transit user before handing it a file.
 *
 * DIAGNOSTICS
 *   JSON lines on stdout; docs/logging.md lists the events.
 */
import * as fs from 'node:fs';
import {
  runDaemon,
  ensureDir,
  Connector,
  PendingAcks,
  describe,
  resolveUid,
  type Connection,
} from '@sluice/core';
import { encodeIngressTransfer, decodeAck, ProtocolError, truncateUtf8, type Ack } from '@sluice/protocol';
import { Spool, type SpoolMeta } from './spool.js';
import { Inbox } from './pickup.js';

runDaemon('ingress', async ({ cfg, log, onStop }) => {
  const c = cfg.ingress;
  ensureDir(c.spool, 0o700);
  const spool = new Spool(c.spool);
  const limits = { maxRecordBytes: cfg.limits.maxRecordBytes, maxFileSize: cfg.limits.maxFileBytes, maxNameBytes: cfg.limits.maxNameBytes };

  /** Transfers in the spool, not yet acknowledged. */
  const queued = new Map<string, SpoolMeta>();
  /** Ids ready to send now, in order. */
  const ready: string[] = [];
  const inFlight = new Set<string>();
  const acks = new PendingAcks<Ack>();

  const inbox = new Inbox({
    dir: c.inbox,
    spool,
    log,
    maxFileBytes: cfg.limits.maxFileBytes,
    rescanIntervalMs: c.rescanIntervalMs,
    recheckIntervalMs: c.recheckIntervalMs,
    maxQueuedNames: c.maxQueuedNames,
    onCommitted: (meta) => enqueue(meta),
    // Backpressure: with transit slow or down, uploads wait in the inbox, not in memory.
    canAccept: (copying) => queued.size + copying < c.maxInFlight * 4,
  });

  const recovered = spool.recover();
  for (const meta of recovered.entries) {
    await inbox.forgetRecovered(meta);
    queued.set(meta.id, meta);
    ready.push(meta.id);
  }
  log.info({ event: 'recovered', queued: recovered.entries.length, removed: recovered.removed }, 'spool recovered');

  const connector = new Connector({
    path: c.transitSocket,
    log,
    maxRecordBytes: cfg.limits.maxRecordBytes,
    expectUid: c.transitUser === null ? undefined : resolveUid(c.transitUser),
    onConnected: (conn) => {
      conn.onRecord = (data, fd) => onAck(conn, data, fd);
      pump();
    },
    onDisconnected: () => acks.failAll(Object.assign(new Error('transit disconnected'), { code: 'EPIPE' })),
  });

  function enqueue(meta: SpoolMeta): void {
    queued.set(meta.id, meta);
    ready.push(meta.id);
    pump();
  }

  /** pump - send ready transfers while the window allows. */
  function pump(): void {
    const conn = connector.connection;
    while (conn && ready.length > 0 && inFlight.size < c.maxInFlight) {
      const id = ready.shift()!;
      const meta = queued.get(id);
      if (!meta || inFlight.has(id)) continue;
      inFlight.add(id);
      void send(conn, meta).finally(() => {
        inFlight.delete(id);
        pump();
      });
    }
  }

  /** later - put a transfer back in line after a delay. */
  function later(id: string): void {
    setTimeout(() => {
      if (queued.has(id)) {
        ready.push(id);
        pump();
      }
    }, c.retryDelayMs).unref();
  }

  /** send - one transfer: record + read-only spool descriptor, then wait for the final ack. */
  async function send(conn: Connection, meta: SpoolMeta): Promise<void> {
    const tlog = log.child({ id: meta.id });
    let fd = -1;
    try {
      const record = encodeIngressTransfer({
        id: meta.id,
        name: truncateUtf8(meta.name, cfg.limits.maxNameBytes),
        size: meta.size,
        sha256: Buffer.from(meta.sha256, 'hex'),
        receivedAt: meta.receivedAt,
        refusal: meta.refusal,
      });
      fd = fs.openSync(spool.dataPath(meta.id), fs.constants.O_RDONLY);
      const waiting = acks.wait(meta.id, c.ackTimeoutMs);
      await conn.send(record, fd);
      fs.closeSync(fd);
      fd = -1;
      tlog.info({ event: 'sent', size: meta.size, sha256: meta.sha256 }, 'sent to transit');
      const ack = await waiting;
      switch (ack.status) {
        case 'delivered':
          await spool.forget(meta.id);
          queued.delete(meta.id);
          tlog.info({ event: 'done', reason: ack.reason }, 'delivered downstream; spool copy removed');
          inbox.rescan(); // room again: look at what waited
          return;
        case 'retry':
          tlog.warn({ event: 'retry', reason: ack.reason }, 'transit asked to retry later');
          later(meta.id);
          return;
        case 'refused':
          tlog.error({ event: 'held', reason: ack.reason }, 'transit refused the record; moved to spool/held for an operator');
          spool.hold(meta.id, ack.reason);
          queued.delete(meta.id);
          return;
      }
    } catch (err) {
      tlog.warn({ event: 'retry', reason: describe(err) }, 'no final ack; will send again');
      later(meta.id);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }

  /** onAck - one record from transit: it must be a valid Ack for a transfer we sent, with our digest. */
  function onAck(conn: Connection, data: Buffer, fd: number): void {
    if (fd >= 0) {
      fs.closeSync(fd);
      log.warn({ event: 'record-refused', peer: conn.peer, reason: 'unexpected-descriptor' }, 'an ack carried a descriptor');
      return;
    }
    let ack: Ack;
    try {
      ack = decodeAck(data, limits);
    } catch (err) {
      const reason = err instanceof ProtocolError ? err.reason : describe(err);
      log.warn({ event: 'record-refused', peer: conn.peer, reason }, 'bad ack from transit');
      return;
    }
    const meta = queued.get(ack.id);
    if (!meta || !acks.has(ack.id)) {
      log.warn({ event: 'ack-unexpected', id: ack.id, peer: conn.peer, reason: 'no transfer waits for it' }, 'stray ack');
      return;
    }
    if (Buffer.from(ack.sha256).toString('hex') !== meta.sha256) {
      log.error({ event: 'ack-unexpected', id: ack.id, peer: conn.peer, reason: 'digest differs' }, 'ack for other bytes');
      return;
    }
    acks.settle(ack.id, ack);
  }

  inbox.start();
  connector.start();
  log.info({ event: 'watching', inbox: c.inbox, spool: c.spool }, 'watching the inbox');

  onStop(async () => {
    inbox.stop();
    connector.stop();
  });
});
