/*
 * NAME
 *   sluice-transit - take a sealed private copy, check it, pass on a verdict
 *
 * SYNOPSIS
 *   node packages/transit/dist/main.js --config FILE
 *
 * DESCRIPTION
 *   Receives: IngressTransfer records with one descriptor each, on
 *   transit.sock, from the ingress user only (SO_PEERCRED). It assumes
 *   ingress is compromised: the record may lie, the descriptor may be
 *   writable, a FIFO, a directory, or change while being read.
 *   Trusts: nothing it did not check itself. Before a byte is read the
 *   descriptor must be read-only, a regular file of the claimed size within
 *   policy. Then it copies the bytes into a memfd, hashing them, and seals
 *   it. Every check runs on that sealed copy; size and digest are compared
 *   with ingress's claim (a mismatch is a rejection, reported).
 *   Forwards: a read-only descriptor of its own sealed copy, never the one
 *   it received, with the verdict and every check's result, to egress.
 *   Acks: it acks ingress only after egress acked (DELIVERED), so a crash
 *   anywhere leaves the file in ingress's spool. A check that cannot run
 *   (a scanner down) yields RETRY: the file stays queued upstream, never
 *   passes. A record or descriptor it refuses yields REFUSED.
 *
 *   Records come in through core's receive path (HOPS.ingressToTransit and
 *   HOPS.egressAckToTransit); transfer.ts takes a transfer from there to the
 *   verdict, forward.ts to egress and back.
 *
 * SECURITY
 *   Runs as sluice-transit, no capabilities, no network unless a TCP clamd is
 *   configured. Holds file bytes only in sealed memfds, never on disk.
 *
 * DIAGNOSTICS
 *   JSON lines on stdout; docs/logging.md lists the events.
 */
import {
  runDaemon,
  Connector,
  PendingAcks,
  HOPS,
  ackRefusal,
  receiver,
  resolveUid,
  settleAck,
  station,
  wireLimits,
  type Connection,
} from '@sluice/core';
import type { Ack } from '@sluice/protocol';
import { buildChecks } from './build-checks.js';
import { Transfers } from './transfer.js';
import { openCopyBudget } from './budget.js';

runDaemon('transit', async ({ cfg, log, onStop, listen }) => {
  const c = cfg.transit;
  const limits = wireLimits(cfg);
  // Compiles YARA rules and starts waiting for clamd; throws (startup-failed) when a scanner cannot be set up.
  const { checks, stop: stopChecks } = await buildChecks(cfg, log);
  const egressAcks = new PendingAcks<Ack>();

  const egress = new Connector({
    path: c.egressSocket,
    log,
    maxRecordBytes: cfg.limits.maxRecordBytes,
    expectUid: c.egressUser === null ? undefined : resolveUid(c.egressUser),
    onConnected: (conn) => {
      conn.onRecord = receiver(conn, {
        hop: HOPS.egressAckToTransit,
        limits,
        log,
        handle: (ack) => settleAck(egressAcks, ack, conn, log),
      });
    },
    onDisconnected: () => egressAcks.failAll(Object.assign(new Error('egress disconnected'), { code: 'EPIPE' })),
  });
  const budget = openCopyBudget(cfg, log);
  const transfers = new Transfers({ cfg, log, checks, egress, egressAcks, budget });

  const { listener, where } = listen(c, (conn: Connection) => {
    conn.onRecord = receiver(conn, {
      hop: HOPS.ingressToTransit,
      limits,
      log,
      admit: () => transfers.admit(),
      handle: (rec, fd) => transfers.receive(conn, rec, fd),
      answer: ackRefusal(log),
    });
  });
  station.queue('in_flight', () => transfers.inFlight);
  egress.start();
  log.info({ event: 'listening', socket: where, checks: checks.map((k) => k.name) }, 'transit listening');

  onStop(() => {
    listener.close();
    egress.stop();
    stopChecks();
  });
});
