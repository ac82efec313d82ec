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
 *   transit's claim. The verdict is decided again from the check results:
 *   "accepted" needs transit's verdict *and* every check passed.
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
 *   linked last).
 *
 * SECURITY
 *   Runs as sluice-egress, no capabilities, no network. Refuses to start
 *   without a readable signing key (fail closed). Makes itself non-dumpable
 *   (prctl(PR_SET_DUMPABLE, 0)) before it reads the key, and does not start
 *   if it cannot: no core dump holds the key's seeds, and no other process
 *   of its uid can read its memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  runDaemon,
  Listener,
  inspectDescriptor,
  copyAndHash,
  copyAndHashDirect,
  DIRECT_MIN_BYTES,
  type CopyResult,
  ensureDir,
  fsyncFd,
  fsyncDirShared,
  describe,
  errnoCode,
  resolveUid,
  sanitizeName,
  collisionName,
  Refused,
  SOFTWARE_VERSION,
  closeFd,
  openFd,
  type Connection,
  type Logger,
} from '@sluice/core';
import { native, constants as C } from '@sluice/native';
import {
  decodeTransitTransfer,
  encodeAck,
  ProtocolError,
  truncateUtf8,
  BOUNDS,
  type AckStatus,
  type TransitTransfer,
} from '@sluice/protocol';
import { loadSecretKey, keyIdOfSecret, SignerPool, type ReportBody } from '@sluice/report';
import { Journal, type JournalEntry } from './journal.js';

const REPORT_SUFFIX = '.sluice.json';

runDaemon('egress', async ({ cfg, log, onStop, listenFd }) => {
  const c = cfg.egress;
  // Before the key is read: no core dump of it, and no other process of this uid reads this
  // one's memory (ptrace, /proc/PID/mem). Fail closed: a prctl that fails stops egress here.
  native.setDumpable(0);
  if (native.getDumpable() !== 0) throw new Error('prctl(PR_SET_DUMPABLE, 0) did not take effect');
  // Fail closed: no key, no start. The key is never logged.
  const secret = loadSecretKey(c.signingKey);
  const keyId = keyIdOfSecret(secret);
  const signer = new SignerPool(secret, c.signers);
  await signer.ready(); // workers that cannot sign stop egress here, not at the first file
  const limits = { maxRecordBytes: cfg.limits.maxRecordBytes, maxFileSize: cfg.limits.maxFileBytes, maxNameBytes: cfg.limits.maxNameBytes };

  ensureDir(c.state, 0o700);
  for (const d of [c.outbox, c.rejected]) {
    if (!fs.statSync(d).isDirectory()) throw new Error(`${d} is not a directory`);
  }
  const dirOf = (place: JournalEntry['place']) => (place === 'outbox' ? c.outbox : c.rejected);

  /** exists - does a name exist in a directory (without following links)? */
  const exists = (dir: string, name: string) => {
    try {
      fs.lstatSync(path.join(dir, name));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  };

  // A delivery whose outputs are both in place is done, even if a power cut took its done record
  // (that record is not flushed). Both are checked: without the directory's fsync a power cut may
  // keep one link and lose the other, and then the resend must finish the delivery, not ack it.
  const outputsInPlace = (e: JournalEntry) =>
    exists(dirOf(e.place), e.stored + REPORT_SUFFIX) && (e.place !== 'outbox' || exists(dirOf(e.place), e.stored));
  const journal = new Journal(c.state, { retentionDays: c.journalDays, isDelivered: outputsInPlace, log });
  /** "place/name" promised to unfinished deliveries (two transfers must never pick the same one). */
  const reserved = journal.reservedNames();
  /** Transfers being handled (a resend while the first is in progress waits for it). */
  const busy = new Map<string, Promise<void>>();

  /** chooseName - a stored name free in the target directory, for the file and its report alike. */
  function chooseName(place: JournalEntry['place'], original: string): string {
    const dir = dirOf(place);
    const base = sanitizeName(original);
    for (let n = 1; ; n++) {
      const name = n === 1 ? base : collisionName(base, n);
      if (!reserved.has(`${place}/${name}`) && !exists(dir, name) && !exists(dir, name + REPORT_SUFFIX)) return name;
    }
  }

  /** linkTmp - write nothing new: give an fsynced O_TMPFILE its final name; never overwrite. */
  async function linkTmp(fd: number, dir: string, name: string): Promise<void> {
    await fsyncFd(fd); // on the threadpool: other transfers' flushes run at the same time
    native.linkFd(fd, path.join(dir, name));
  }

  /** openTmp - an unnamed file in `dir`, mode outputMode exactly (the unit's UMask=0077 would narrow it to 0600, unreadable to sluice-out). */
  const openTmp = async (dir: string, flags = 0) => {
    // On the threadpool: allocating the inode can take milliseconds (ext4 without a journal steps over recently freed ones).
    const fd = await openFd(dir, C.O_TMPFILE | fs.constants.O_RDWR | flags, c.outputMode);
    try {
      fs.fchmodSync(fd, c.outputMode);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return fd;
  };

  /**
   * copyIntoOutbox - egress's own copy, unnamed in the outbox, hashed as it is written.
   *
   * Files of DIRECT_MIN_BYTES and more are written with O_DIRECT: the disk takes the bytes from
   * an aligned buffer, and the copy into the page cache, half of a buffered copy's CPU, goes
   * (docs/performance.md). A filesystem that refuses O_DIRECT (EINVAL) gets a buffered copy.
   */
  async function copyIntoOutbox(src: number, size: number): Promise<{ fd: number; copied: CopyResult }> {
    const direct = size >= DIRECT_MIN_BYTES ? await openDirect() : -1;
    const fd = direct >= 0 ? direct : await openTmp(c.outbox);
    try {
      return { fd, copied: await (direct >= 0 ? copyAndHashDirect : copyAndHash)(src, fd, size) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** openDirect - an O_DIRECT unnamed file in the outbox, or -1 once the filesystem has refused O_DIRECT. */
  let directOk = true;
  async function openDirect(): Promise<number> {
    if (!directOk) return -1;
    try {
      return await openTmp(c.outbox, fs.constants.O_DIRECT);
    } catch (err) {
      if (errnoCode(err) !== 'EINVAL') throw err;
      directOk = false;
      log.info({ event: 'direct-io-unavailable', reason: 'EINVAL' }, 'the outbox filesystem refuses O_DIRECT; buffered copies');
      return -1;
    }
  }

  /** writeReport - sign the body, write it unnamed, link it as <stored>.sluice.json. */
  async function writeReport(entry: JournalEntry): Promise<void> {
    const dir = dirOf(entry.place);
    const text = await signer.signAndSerialize(entry.body as unknown as ReportBody);
    const fd = await openTmp(dir);
    try {
      fs.writeFileSync(fd, text);
      await linkTmp(fd, dir, entry.stored + REPORT_SUFFIX);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** ack - answer transit; a lost ack is fine: the transfer comes again and is acked again. */
  function ack(conn: Connection, rec: TransitTransfer, status: AckStatus, reason: string, tlog: Logger): void {
    conn.send(encodeAck({ id: rec.id, sha256: rec.sha256, status, reason: truncateUtf8(reason, BOUNDS.ackReasonMaxBytes) })).catch((err) => {
      tlog.info({ event: 'ack-undelivered', reason: describe(err) }, 'could not ack transit');
    });
  }

  function onTransfer(conn: Connection, data: Buffer, fd: number): void {
    let rec: TransitTransfer;
    try {
      rec = decodeTransitTransfer(data, limits);
    } catch (err) {
      if (fd >= 0) fs.closeSync(fd);
      log.warn({ event: 'record-refused', peer: conn.peer, reason: err instanceof ProtocolError ? err.reason : describe(err) }, 'bad record from transit');
      return;
    }
    const tlog = log.child({ id: rec.id });
    if (fd < 0) {
      tlog.warn({ event: 'record-refused', peer: conn.peer, reason: 'no-descriptor' }, 'transfer record without a descriptor');
      ack(conn, rec, 'refused', 'no-descriptor', tlog);
      return;
    }
    // A flooding peer must not make egress hoard descriptors: beyond the bound, refuse at once (retry).
    if (busy.size >= c.maxInFlight && !busy.has(rec.id)) {
      fs.closeSync(fd);
      tlog.warn({ event: 'record-refused', peer: conn.peer, reason: 'overloaded' }, 'too many transfers in progress; record refused');
      ack(conn, rec, 'retry', 'overloaded', tlog);
      return;
    }
    const prior = busy.get(rec.id) ?? Promise.resolve();
    const run = prior.then(() => handle(conn, rec, fd, tlog));
    busy.set(rec.id, run);
    void run.finally(() => {
      if (busy.get(rec.id) === run) busy.delete(rec.id);
    });
  }

  /** handle - one transfer, start to ack. Owns `fd`. */
  async function handle(conn: Connection, rec: TransitTransfer, fd: number, tlog: Logger): Promise<void> {
    let out = -1;
    const sha256hex = Buffer.from(rec.sha256).toString('hex');
    try {
      const known = journal.get(rec.id);
      if (known && known.entry.sha256 !== sha256hex) {
        tlog.error({ event: 'record-refused', peer: conn.peer, reason: 'id-reused' }, 'transfer id seen before with other bytes');
        ack(conn, rec, 'refused', 'id-reused: this id was delivered with a different digest', tlog);
        return;
      }
      inspectDescriptor(fd, { maxBytes: cfg.limits.maxFileBytes, claimedSize: rec.size });

      if (known?.complete) {
        tlog.info({ event: 'duplicate-acked', stored: known.entry.stored }, 'already delivered; acking again');
        ack(conn, rec, 'delivered', `already delivered as ${known.entry.stored}`, tlog);
        return;
      }

      // Defence in depth: accepted needs transit's verdict and every check passed.
      const allPass = rec.checks.length > 0 && rec.checks.every((k) => k.outcome === 'pass');
      const verdict = known?.entry.verdict ?? (rec.verdict === 'accepted' && allPass ? 'accepted' : 'rejected');

      // Our own copy (accepted) or our own digest (rejected): the report states bytes egress hashed itself.
      let copied;
      if (verdict === 'accepted') {
        ({ fd: out, copied } = await copyIntoOutbox(fd, rec.size));
      } else {
        copied = await hashOnly(fd, rec.size);
      }
      if (!copied.sha256.equals(Buffer.from(rec.sha256))) {
        throw new Refused('digest-mismatch', `bytes hash to ${copied.sha256.toString('hex')}, transit claimed ${sha256hex}`);
      }

      // A delivery interrupted by a crash is finished under the name it journalled.
      let entry: JournalEntry;
      if (known) {
        entry = known.entry;
        if (!known.durable) await journal.intend(entry); // its first flush failed: record it again before linking
      } else {
        const place = verdict === 'accepted' ? 'outbox' : 'rejected';
        const stored = chooseName(place, rec.name);
        entry = { id: rec.id, sha256: sha256hex, size: rec.size, verdict, place, stored, body: reportBody(rec, verdict, stored) };
        reserved.add(`${place}/${stored}`);
        try {
          await journal.intend(entry);
        } catch (err) {
          // Not journalled (e.g. ENOSPC): the name was promised to nobody; the retry chooses again.
          if (journal.get(entry.id) === null) reserved.delete(`${place}/${stored}`);
          throw err;
        }
      }
      const dir = dirOf(entry.place);
      if (entry.place === 'outbox' && !exists(dir, entry.stored)) await linkTmp(out, dir, entry.stored);
      if (!exists(dir, entry.stored + REPORT_SUFFIX)) await writeReport(entry);
      await fsyncDirShared(dir); // one flush of the directory serves every transfer waiting for it
      journal.complete(entry.id); // not flushed: the outputs are durable, and a lost record is read back from the report
      reserved.delete(`${entry.place}/${entry.stored}`);
      tlog.info(
        { event: 'delivered', verdict: entry.verdict, stored: entry.stored, place: entry.place, size: rec.size, sha256: sha256hex, reason: entry.verdict === 'rejected' ? (entry.body.reason as string) : '' },
        entry.verdict === 'accepted' ? `delivered to outbox as ${entry.stored}` : `rejected; report in rejected/ as ${entry.stored}${REPORT_SUFFIX}`,
      );
      ack(conn, rec, 'delivered', entry.verdict, tlog);
    } catch (err) {
      if (err instanceof Refused) {
        tlog.warn({ event: 'descriptor-refused', peer: conn.peer, reason: err.reason, detail: err.message }, 'transfer refused');
        ack(conn, rec, 'refused', `${err.reason}: ${err.message}`, tlog);
        return;
      }
      const code = errnoCode(err);
      tlog.error({ event: 'delivery-failed', reason: code ?? describe(err) }, 'could not deliver; transit will be told to retry');
      ack(conn, rec, 'retry', code ?? describe(err), tlog);
    } finally {
      // Often the last reference to transit's memfd: the close frees its pages (47 ms per 256 MiB), so on the threadpool.
      await closeFd(fd);
      if (out >= 0) fs.closeSync(out);
    }
  }

  /** reportBody - everything the report states, before signing. */
  function reportBody(rec: TransitTransfer, verdict: 'accepted' | 'rejected', stored: string): ReportBody {
    const failing = rec.checks.filter((k) => k.outcome !== 'pass');
    let reason = failing.map((k) => `${k.name}: ${k.reason}`).join('; ');
    if (verdict === 'rejected' && !reason) reason = rec.checks.length === 0 ? 'no checks ran' : 'transit rejected the file';
    return {
      format: 'sluice-report/1',
      station: cfg.station,
      software: `sluice ${SOFTWARE_VERSION}`,
      key: keyId,
      transfer: rec.id,
      name: { original: rec.name, stored },
      size: rec.size,
      sha256: Buffer.from(rec.sha256).toString('hex'),
      verdict,
      reason,
      checks: rec.checks.map((k) => ({ name: k.name, result: k.outcome, reason: k.reason, engine: k.engine })),
      times: { received: rec.receivedAt, checked: rec.checkedAt, reported: new Date().toISOString() },
    };
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
  log.info({ event: 'listening', socket: inherited === null ? c.socket : `fd ${inherited}`, key: keyId }, 'egress listening');

  onStop(async () => {
    listener.close();
    await Promise.allSettled(busy.values());
    await signer.close();
    await journal.close();
  });
});

/** hashOnly - SHA-256 of exactly `size` bytes of a descriptor, by positional reads, into nowhere. */
async function hashOnly(fd: number, size: number) {
  const sink = fs.openSync('/dev/null', 'w');
  try {
    return await copyAndHash(fd, sink, size);
  } finally {
    fs.closeSync(sink);
  }
}
