/*
 * NAME
 *   sluice-egress - make the output durable, sign the report, ack
 *
 * SYNOPSIS
 *   node packages/egress/dist/main.js --config FILE
 *
 * DESCRIPTION
 *   Receives: TransitTransfer records with one descriptor each, on
 *   egress.sock, from the transit user only (SO_PEERCRED). It assumes transit
 *   is compromised: the descriptor must be read-only, regular and exactly
 *   the claimed size, and egress copies it into an unnamed file of the
 *   outbox (O_TMPFILE), hashing as it copies; the digest must equal
 *   transit's claim. The verdict is decided again from the check results,
 *   by the same rule transit uses (core's decide()): "accepted" needs
 *   transit's verdict *and* every check passed.
 *   Logs: each report's signed body as a leaf of the station's transparency
 *   log (egress.log, tlog.ts); reports that become ready within
 *   egress.logBatchMs share one signed tree head, and each report carries
 *   its leaf index, that head and its inclusion proof (sluice-report/3).
 *   Writes: accepted -> outbox/<stored-name> and outbox/<stored-name>.sluice.json;
 *   rejected -> rejected/<stored-name>.sluice.json only. Each file is fsynced
 *   unnamed, then linked into place (linkat never overwrites), then the
 *   directory is fsynced. Only then it acks DELIVERED.
 *   Holds: the signing key. Nobody else does.
 *
 *   Exactly once: before linking, egress journals the name it will use
 *   (journal.ts). A transfer seen again is finished or acked again, never
 *   delivered twice.
 *
 *   Consumers: a file is complete when its report exists (the report is
 *   linked last, right after the file; a file is never left without it).
 *
 *   Bounds: at most egress.maxInFlight deliveries, each holding at most
 *   DESCRIPTORS_PER_DELIVERY descriptors; a transfer whose id is being
 *   delivered is refused at once (`id-in-flight`, RETRY). egress does not
 *   start if that does not fit its descriptor limit (deliver.ts).
 *
 *   Records come in through core's receive path (HOPS.transitToEgress);
 *   deliver.ts takes a transfer from there to its ack, outbox.ts makes the
 *   files.
 *
 * SECURITY
 *   Runs as sluice-egress, no capabilities, no network. Refuses to start
 *   without a readable signing key (fail closed). Makes itself non-dumpable
 *   (prctl(PR_SET_DUMPABLE, 0)) before it reads the key, and does not start
 *   if it cannot: no core dump holds the key's seeds, and no other process
 *   of its uid can read its memory.
 *
 * DIAGNOSTICS
 *   JSON lines on stdout; docs/logging.md lists the events.
 */
import { runDaemon, ensureDir, HOPS, receiver, station, wireLimits, type Connection } from '@sluice/core';
import { native } from '@sluice/native';
import { loadSecretKey, keyIdOfSecret, SignerPool } from '@sluice/report';
import { Journal } from './journal.js';
import { Outbox } from './outbox.js';
import { TransparencyLog } from './tlog.js';
import { Deliveries, answerRefusal, checkDescriptorBudget, openFileLimit } from './deliver.js';

runDaemon('egress', async ({ cfg, log, onStop, listen }) => {
  const c = cfg.egress;
  checkDescriptorBudget(c.maxInFlight, openFileLimit()); // fail closed: a delivery must never meet EMFILE
  // Before the key is read: no core dump of it, and no other process of this uid reads this
  // one's memory (ptrace, /proc/PID/mem). Fail closed: a prctl that fails stops egress here.
  native.setDumpable(0);
  if (native.getDumpable() !== 0) throw new Error('prctl(PR_SET_DUMPABLE, 0) did not take effect');
  // Fail closed: no key, no start. The key is never logged.
  const secret = loadSecretKey(c.signingKey);
  const keyId = keyIdOfSecret(secret);
  const signer = new SignerPool(secret, c.signers);
  await signer.ready(); // workers that cannot sign stop egress here, not at the first file

  ensureDir(c.state, 0o700);
  const tlog = TransparencyLog.open({
    dir: c.log,
    station: cfg.station,
    publicKey: secret.publicKey,
    batchMs: c.logBatchMs,
    batchMax: c.logBatchMax,
    sign: (body) => signer.signTreeHead(body),
    log,
  }); // a log that no longer matches its own heads stops egress here (tlog.ts)
  const outbox = new Outbox({ cfg, log, tlog });
  const journal = new Journal(c.state, {
    retentionDays: c.journalDays,
    maxDeliveries: c.journalMaxDeliveries,
    maxUnfinished: c.journalMaxUnfinished,
    isDelivered: (e) => outbox.inPlace(e),
    log,
  });
  outbox.reserved = journal.reservedNames();
  const deliveries = new Deliveries({ cfg, log, outbox, journal, keyId });
  outbox.results.start(); // named uploaders: results older than uploaders.resultsDays go

  const { listener, where } = listen(c, (conn: Connection) => {
    conn.onRecord = receiver(conn, {
      hop: HOPS.transitToEgress,
      limits: wireLimits(cfg),
      log,
      handle: (rec, fd) => deliveries.receive(conn, rec, fd),
      close: (fd) => deliveries.close(fd),
      answer: answerRefusal(log),
    });
  });
  station.keyId(keyId);
  station.queue('in_flight', () => deliveries.active);
  log.info({ event: 'listening', socket: where, key: keyId }, 'egress listening');

  onStop(async () => {
    listener.close();
    outbox.results.stop();
    await deliveries.settled();
    await tlog.close();
    await signer.close();
    await journal.close();
  });
});
