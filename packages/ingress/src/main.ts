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
 *   Named uploaders (uploaders.enabled): one inbox per uploader instead of
 *   ingress.inbox, the uploader's name (from the directory, never from the
 *   upload) in every spool entry and record, fair turns and per-uploader
 *   quotas (uploaders.ts).
 *
 *   pickup.ts finds and copies the uploads, spool.ts keeps them, forward.ts
 *   sends them and matches the acks, which come in through core's receive
 *   path (HOPS.transitAckToIngress).
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
import * as path from 'node:path';
import { runDaemon, ensureDir, Connector, HOPS, receiver, resolveUid, station, uploadersRoot, wireLimits } from '@sluice/core';
import { countHeld } from './spool.js';
import { Spool } from './spool.js';
import { Inbox, SpoolBytes } from './pickup.js';
import { Forwarder } from './forward.js';
import { Uploaders } from './uploaders.js';

runDaemon('ingress', async ({ cfg, log, onStop }) => {
  const c = cfg.ingress;
  ensureDir(c.spool, 0o700);
  const spool = new Spool(c.spool);

  const connector: Connector = new Connector({
    path: c.transitSocket,
    log,
    maxRecordBytes: cfg.limits.maxRecordBytes,
    expectUid: c.transitUser === null ? undefined : resolveUid(c.transitUser),
    onConnected: (conn) => {
      conn.onRecord = receiver(conn, { hop: HOPS.transitAckToIngress, limits: wireLimits(cfg), log, handle: (ack) => forwarder.onAck(conn, ack) });
      forwarder.pump();
    },
    onDisconnected: () => forwarder.disconnected(),
  });
  const spoolBytes = new SpoolBytes(c.spoolBytes);
  const forwarder = new Forwarder({
    cfg,
    log,
    spool,
    connection: () => connector.connection,
    onDelivered: () => (uploaders ? uploaders.pump() : inbox.rescan()),
    onForgotten: (meta) => spoolBytes.release(meta.size),
  });

  const uploaders = cfg.uploaders.enabled ? new Uploaders({ cfg, log, spool, forwarder, spoolBytes, onCommitted: (meta) => forwarder.enqueue(meta) }) : null;
  uploaders?.discover();
  const inbox = new Inbox({
    dir: c.inbox,
    spool,
    log,
    maxFileBytes: cfg.limits.maxFileBytes,
    rescanIntervalMs: c.rescanIntervalMs,
    recheckIntervalMs: c.recheckIntervalMs,
    maxQueuedNames: c.maxQueuedNames,
    onCommitted: (meta) => forwarder.enqueue(meta),
    // Backpressure: with transit slow or down, uploads wait in the inbox, not in memory.
    canAccept: (copying) => forwarder.size + copying < c.maxInFlight * 4,
    spoolBytes,
  });

  const recovered = spool.recover();
  for (const meta of recovered.entries) {
    if (meta.uploader !== undefined) await uploaders?.forgetRecovered(meta);
    else await inbox.forgetRecovered(meta);
    spoolBytes.add(meta.size);
    forwarder.enqueue(meta);
  }
  log.info({ event: 'recovered', queued: recovered.entries.length, removed: recovered.removed }, 'spool recovered');

  station.queue('inbox', () => inbox.held + (uploaders?.heldNames ?? 0));
  station.queue('spooled', () => forwarder.size);
  station.queue('in_flight', () => forwarder.sending);
  station.queue('held', () => countHeld(spool));
  station.queueAge('spooled', () => forwarder.oldest());
  // The anonymous drop stays served beside named uploaders, unless its inbox is the directory that holds theirs (sluice dev).
  const anonymous = !uploaders || path.resolve(c.inbox) !== path.resolve(uploadersRoot(cfg.uploaders.inbox));
  uploaders?.start();
  if (anonymous) inbox.start();
  connector.start();
  if (uploaders) log.info({ event: 'watching', inbox: cfg.uploaders.inbox, spool: c.spool, uploaders: uploaders.names.length }, 'watching the uploaders\' inboxes');
  if (anonymous) log.info({ event: 'watching', inbox: c.inbox, spool: c.spool }, 'watching the inbox');

  onStop(async () => {
    uploaders?.stop();
    inbox.stop();
    connector.stop();
  });
});
