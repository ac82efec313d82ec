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
 *   it; a copy its RAM budget cannot hold goes to a nameless 0600 file in
 *   its own 0700 directory instead, or waits for room (budget.ts). Every
 *   check runs on that private copy; size and digest are compared
 *   with ingress's claim (a mismatch is a rejection, reported).
 *   Forwards: a read-only descriptor of its own sealed copy, never the one
 *   it received, with the verdict and every check's result, to egress.
 *   Acks: it acks ingress only after egress acked (DELIVERED), so a crash
 *   anywhere leaves the file in ingress's spool. A check that cannot run
 *   (a scanner down) yields RETRY: the file stays queued upstream, never
 *   passes. A record or descriptor it refuses yields REFUSED.
 *
 * SECURITY
 *   Runs as sluice-transit, no capabilities, no network unless a TCP clamd is
 *   configured. Holds file bytes in sealed memfds, and what they cannot
 *   hold in nameless files only it can open (transit.state, 0700).
 */
import * as fs from 'node:fs';
import {
  runDaemon,
  Listener,
  Connector,
  PendingAcks,
  receiveTransfer,
  RefusedTransfer,
  escapeForLog,
  describe,
  resolveUid,
  closeFd,
  type Connection,
  type Logger,
} from '@sluice/core';
import {
  decodeIngressTransfer,
  encodeTransitTransfer,
  encodeAck,
  decodeAck,
  ProtocolError,
  truncateUtf8,
  BOUNDS,
  type Ack,
  type AckStatus,
  type IngressTransfer,
} from '@sluice/protocol';
import { runChecks, type CheckResult } from './checks/index.js';
import { buildChecks } from './build-checks.js';
import { BudgetBusy, openCopyBudget } from './budget.js';

runDaemon('transit', async ({ cfg, log, onStop, listenFd }) => {
  const c = cfg.transit;
  const limits = { maxRecordBytes: cfg.limits.maxRecordBytes, maxFileSize: cfg.limits.maxFileBytes, maxNameBytes: cfg.limits.maxNameBytes };
  // Compiles YARA rules and starts waiting for clamd; throws (startup-failed) when a scanner cannot be set up.
  const { checks, stop: stopChecks } = await buildChecks(cfg, log);
  const budget = openCopyBudget(cfg, log);
  const egressAcks = new PendingAcks<Ack>();
  let active = 0;
  const waiting: (() => void)[] = [];

  /** slot - bound the transfers copied and checked at once. */
  async function slot(): Promise<() => void> {
    if (active >= c.maxInFlight) await new Promise<void>((r) => waiting.push(r));
    active++;
    return () => {
      active--;
      waiting.shift()?.();
    };
  }

  // Checked transfers waiting for egress's ack, each holding its sealed copy: bounded apart from
  // the checks, so the scanners take the next file while egress writes and signs (issue 9).
  let forwarding = 0;
  const forwardQueue: (() => void)[] = [];

  /** forwardSlot - bound the checked transfers handed to egress and not yet acked; a release hands the slot on. */
  async function forwardSlot(): Promise<() => void> {
    if (forwarding < c.maxInFlight) forwarding++;
    else await new Promise<void>((r) => forwardQueue.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = forwardQueue.shift();
      if (next) next();
      else forwarding--;
    };
  }

  const egress = new Connector({
    path: c.egressSocket,
    log,
    maxRecordBytes: cfg.limits.maxRecordBytes,
    expectUid: c.egressUser === null ? undefined : resolveUid(c.egressUser),
    onConnected: (conn) => {
      conn.onRecord = (data, fd) => onEgressAck(conn, data, fd);
    },
    onDisconnected: () => egressAcks.failAll(Object.assign(new Error('egress disconnected'), { code: 'EPIPE' })),
  });

  function onEgressAck(conn: Connection, data: Buffer, fd: number): void {
    if (fd >= 0) {
      fs.closeSync(fd);
      log.warn({ event: 'record-refused', peer: conn.peer, reason: 'unexpected-descriptor' }, 'an ack carried a descriptor');
      return;
    }
    try {
      const ack = decodeAck(data, limits);
      if (!egressAcks.settle(ack.id, ack)) {
        log.warn({ event: 'ack-unexpected', id: ack.id, peer: conn.peer, reason: 'no transfer waits for it' }, 'stray ack');
      }
    } catch (err) {
      log.warn({ event: 'record-refused', peer: conn.peer, reason: err instanceof ProtocolError ? err.reason : describe(err) }, 'bad ack from egress');
    }
  }

  /** reply - ack one transfer to ingress; a dropped connection is fine (ingress resends). */
  function reply(conn: Connection, rec: IngressTransfer, status: AckStatus, reason: string, tlog: Logger): void {
    conn.send(encodeAck({ id: rec.id, sha256: rec.sha256, status, reason: truncateUtf8(reason, BOUNDS.ackReasonMaxBytes) })).catch((err) => {
      tlog.info({ event: 'ack-undelivered', reason: describe(err) }, 'could not ack ingress; it will resend');
    });
  }

  /** onTransfer - one record from ingress. The handler owns `fd`; receiveTransfer closes it on every path. */
  function onTransfer(conn: Connection, data: Buffer, fd: number): void {
    // A flooding peer must not make transit hoard descriptors: beyond the queue bound, refuse at once.
    if (waiting.length >= c.maxInFlight * 8) {
      if (fd >= 0) fs.closeSync(fd);
      log.warn({ event: 'record-refused', peer: conn.peer, reason: 'overloaded' }, 'too many transfers queued; record dropped');
      return;
    }
    void handle(conn, data, fd);
  }

  /** handle - copy, check, forward, relay the ack. */
  async function handle(conn: Connection, data: Buffer, fd: number): Promise<void> {
    let release: (() => void) | null = await slot();
    let releaseForward: (() => void) | null = null;
    let sealed = -1;
    let rec: IngressTransfer | undefined;
    let tlog: Logger = log;
    const held = budget.holder(log);
    try {
      let copy;
      try {
        ({ rec, copy } = await receiveTransfer(data, fd, (b) => decodeIngressTransfer(b, limits), { maxBytes: cfg.limits.maxFileBytes, place: held.place }));
      } catch (err) {
        if (err instanceof BudgetBusy && err.record) {
          log.child({ id: err.record.id }).warn({ event: 'retry', reason: err.reason, detail: err.message }, 'no room for the copy; ingress will resend');
          reply(conn, err.record, 'retry', err.reason, log.child({ id: err.record.id }));
          return;
        }
        if (!(err instanceof RefusedTransfer)) throw err;
        const r = err.record as IngressTransfer | undefined;
        (r ? log.child({ id: r.id }) : log).warn({ event: 'record-refused', peer: conn.peer, reason: err.reason, detail: err.message }, 'transfer refused');
        if (r) reply(conn, r, 'refused', `${err.reason}: ${err.message}`, log.child({ id: r.id }));
        return;
      }
      sealed = copy.fd;
      tlog = log.child({ id: rec.id });
      if (egressAcks.has(rec.id)) {
        tlog.info({ event: 'duplicate-in-flight' }, 'already handling this transfer; its ack will answer');
        return;
      }
      const sha256hex = copy.sha256.toString('hex');
      tlog.info({ event: 'received', peer: conn.peer, size: copy.size, sha256: sha256hex, name: escapeForLog(rec.name), copy: copy.place }, `private copy taken (${copy.place})`);

      let results: Omit<CheckResult, 'retry'>[];
      let retry = false;
      if (!copy.sha256.equals(Buffer.from(rec.sha256))) {
        results = [{ name: 'integrity', outcome: 'fail', reason: `digest ${sha256hex} differs from the ${hex(rec.sha256)} ingress claimed`, engine: '' }];
      } else if (rec.refusal) {
        results = [{ name: 'ingress', outcome: 'fail', reason: `refused at pickup: ${rec.refusal}`, engine: '' }];
      } else {
        const run = await runChecks(checks, { fd: sealed, size: copy.size, sha256hex, name: rec.name });
        results = run.results;
        retry = run.retry;
      }
      if (retry) {
        tlog.warn({ event: 'check-unavailable', reason: results.filter((r) => r.outcome === 'error').map((r) => `${r.name}: ${r.reason}`).join('; ') }, 'a check could not run; held for retry');
        reply(conn, rec, 'retry', 'a check could not run', tlog);
        return;
      }
      const verdict = results.length > 0 && results.every((r) => r.outcome === 'pass') ? 'accepted' : 'rejected';
      const reason = results.filter((r) => r.outcome !== 'pass').map((r) => `${r.name}: ${r.reason}`).join('; ');
      tlog.info({ event: 'checked', verdict, reason, checks: results.map((r) => ({ name: r.name, outcome: r.outcome, reason: r.reason })) }, `verdict ${verdict}`);

      // Checks done: take a forwarding slot, then give the check slot to the next file. Taking
      // first keeps the sealed copies alive at most 2 x maxInFlight, however slow egress is.
      releaseForward = await forwardSlot();
      release();
      release = null;

      const down = egress.connection;
      if (!down) {
        tlog.warn({ event: 'retry', reason: 'egress-unavailable' }, 'egress is not connected; ingress will resend');
        reply(conn, rec, 'retry', 'egress unavailable', tlog);
        return;
      }
      const record = encodeTransitTransfer({
        id: rec.id,
        name: rec.name,
        size: copy.size,
        sha256: copy.sha256,
        receivedAt: rec.receivedAt,
        verdict,
        checks: results.map((r) => ({ ...r, reason: truncateUtf8(r.reason, BOUNDS.checkReasonMaxBytes), engine: truncateUtf8(r.engine, BOUNDS.engineMaxBytes) })),
        checkedAt: new Date().toISOString(),
      });
      const waitAck = egressAcks.wait(rec.id, c.ackTimeoutMs);
      try {
        await down.send(record, sealed);
      } catch (err) {
        egressAcks.settle(rec.id, { id: rec.id, sha256: copy.sha256, status: 'retry', reason: 'send failed' } as Ack);
        throw err;
      }
      tlog.info({ event: 'forwarded', verdict }, 'forwarded to egress');
      let ack: Ack;
      try {
        ack = await waitAck;
      } catch (err) {
        tlog.warn({ event: 'retry', reason: describe(err) }, 'no ack from egress; ingress will resend');
        reply(conn, rec, 'retry', 'no ack from egress', tlog);
        return;
      }
      if (!Buffer.from(ack.sha256).equals(copy.sha256)) {
        tlog.error({ event: 'ack-unexpected', reason: 'egress acked a different digest' }, 'egress acked other bytes');
        reply(conn, rec, 'retry', 'egress acked a different digest', tlog);
        return;
      }
      tlog.info({ event: 'acked', status: ack.status, reason: ack.reason }, `egress: ${ack.status}`);
      reply(conn, rec, ack.status, ack.reason, tlog);
    } catch (err) {
      tlog.error({ event: 'transfer-failed', reason: describe(err) }, 'transfer failed; ingress will resend');
      const r = rec ?? held.record; // the copy itself failed (ENOSPC, EIO): the record decoded all the same
      if (r) reply(conn, r, 'retry', describe(err), tlog);
    } finally {
      // Often the last reference to the memfd: the close frees its pages (47 ms per 256 MiB), so on the threadpool.
      if (sealed >= 0) await closeFd(sealed);
      held.release();
      releaseForward?.();
      release?.();
    }
  }

  const opts = {
    log,
    maxRecordBytes: cfg.limits.maxRecordBytes,
    allowUids: c.allowUsers.map((u) => resolveUid(u)),
    onConnection: (conn: Connection) => {
      conn.onRecord = (data, fd) => onTransfer(conn, data, fd);
    },
  };
  const inherited = listenFd();
  const listener = inherited === null ? Listener.open(c.socket, c.socketMode, opts) : Listener.adopt(inherited, opts);
  egress.start();
  log.info({ event: 'listening', socket: inherited === null ? c.socket : `fd ${inherited}`, checks: checks.map((k) => k.name) }, 'transit listening');

  onStop(() => {
    listener.close();
    egress.stop();
    stopChecks();
  });
});

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
