/*
 * NAME
 *   tlog - egress's append-only transparency log: leaves, batched signed tree heads, recovery
 *
 * SYNOPSIS
 *   const tlog = TransparencyLog.open({ dir, station, publicKey, batchMs, batchMax, sign, log });
 *   const { index, head, proof } = await tlog.append(leafBytes);   // durable when it resolves
 *   const { inclusion, durable } = await tlog.appendSigned(leafBytes);   // head signed and written;
 *   await durable;                                                 //   durable once this resolves
 *   await tlog.close();
 *
 * DESCRIPTION
 *   The log is the directory format of @sluice/report's logfile.ts: `leaves`
 *   (length-prefixed leaf records) and `heads` (one signed tree head per
 *   line), both only ever appended to.
 *
 *   append() queues a leaf. Leaves are flushed in batches, a group commit:
 *   when no flush is running, the leaves that wait are flushed `batchMs`
 *   after the first of them arrived (0, the default: at once); while a
 *   flush runs, the next batch gathers and is flushed as soon as it ends;
 *   `batchMax` waiting leaves start a flush at once. So a lone report waits
 *   for one flush (plus batchMs), and under load one head covers every
 *   report that became ready while the one before was signed and synced.
 *   A flush, in order:
 *     1. writes the batch's leaf records to `leaves` and fdatasyncs;
 *     2. computes the RFC 9162 root of the whole tree and has `sign` sign a
 *        tree head (station, size, root, time); `sign` answers only with a
 *        head whose fresh signatures the independent implementation
 *        checked (SignerPool: pqclean signs, noble verifies, _hybrid.ts);
 *     3. checks that the head's signed bytes are those of the body it
 *        asked for (the size and root it will prove against);
 *     4. appends the head's line to `heads`;
 *     5. answers every appendSigned of the batch with its index, the head
 *        and its inclusion proof against that head, and a promise that
 *        settles with step 6;
 *     6. fdatasyncs `heads`; then every append() of the batch resolves.
 *   So a head is never written before its leaves are durable, and an
 *   append() resolves only once its leaf and the head that covers it are
 *   durable. appendSigned lets a caller prepare what depends on the head
 *   (egress writes and fsyncs the report into an unnamed file) while the
 *   head is being flushed, as long as it waits for `durable` before it
 *   shows anyone the result (the report is linked only after it): one
 *   flush less on every report's way out. A failed step 6 rejects
 *   `durable`, and the delivery fails (RETRY) as for any other step.
 *
 *   Recovery (open) reads only the end of the log, so a log of any length
 *   starts in about the same time:
 *     - a partial line at the end of `heads` or a partial record at the
 *       end of `leaves` was never published (nobody was answered before
 *       its fdatasync), so it is cut off; nothing else is ever changed, and
 *       a tail longer than one head line or one leaf record is not a torn
 *       write: open() refuses to start rather than cut it;
 *     - the last tree head must parse, be signed by the station's key and
 *       name this station;
 *     - the tree's right edge (a Frontier, merkle.ts) is restored from the
 *       cache file `frontier`, which records it and the byte offset in
 *       `leaves` at the size of some earlier head, with the length and
 *       leaf hash of the record that ends there (read back: a cache whose
 *       offset is not that record's end is not used), and the leaves after
 *       that offset are read and appended; the root at the last head's
 *       size must be that head's root, or open() refuses to start: a log
 *       that no longer matches its own last head was changed by someone
 *       else, and appending to it would hide that. A missing, torn or
 *       stale cache only costs time: the edge is then rebuilt from the
 *       first leaf, in one streaming pass.
 *   Leaves after the last head (written, head not yet written) are kept and
 *   published by a head at once. The whole history is checked by
 *   `sluice log verify` (logfile.ts auditLog), not at every start.
 *
 *   The cache is rewritten (a new file renamed over the old, not synced)
 *   after a published head once CHECKPOINT_BYTES of leaves were written
 *   since it was last, and at close: a start after a crash replays at most
 *   that much. It is egress's own: readers ignore it.
 *
 *   A failed write (ENOSPC, EIO) fails the whole batch: a partial leaf
 *   write is cut back to the last whole record; leaves written whose head
 *   was not are published by the next head. A delivery retried after a
 *   failure appends its report again, so the log may hold the same leaf
 *   twice; both leaves are the same signed body, and neither is rewritten.
 *
 * BOUNDS
 *   `batchMax` leaves per head (egress.logBatchMax); callers wait in a
 *   queue bounded by their own admission (egress.maxInFlight). In memory:
 *   the tree's right edge (at most 53 hashes of 32 bytes), and during a
 *   flush the batch's leaves and proofs (O(batchMax log batchMax) hashes).
 *   Opening reads at most 2 x MAX_TREE_HEAD_BYTES of `heads` and the
 *   leaves written since the cached edge: at most CHECKPOINT_BYTES plus
 *   one batch and what failed flushes left, or, when there is no usable
 *   cache, every leaf (one streaming pass, 1 MiB chunks).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { fsyncDir, type Logger } from '@sluice/core';
import {
  checkedTreeHead,
  encodeLeafRecord,
  Frontier,
  inclusionProofs,
  lastHead,
  leafHash,
  readLeaves,
  rootBytes,
  serializeTreeHead,
  treeHeadBytes,
  verifyTreeHead,
  LEAF_HEADER_BYTES,
  LOG_FILES,
  MAX_LEAF_BYTES,
  TREE_HEAD_FORMAT,
  type PublicKey,
  type Scan,
  type SignedTreeHead,
  type TreeHeadBody,
} from '@sluice/report';

const writev = promisify(fs.writev);
const write = promisify(fs.write);
const fdatasync = promisify(fs.fdatasync);

export interface TlogOptions {
  dir: string;
  station: string;
  publicKey: PublicKey;
  /** Wait, in ms, from a leaf's arrival at an idle log to the start of its batch's flush (0: at once). */
  batchMs: number;
  /** Most leaves under one tree head. */
  batchMax: number;
  /** Sign a tree head body, checked by the independent implementation (SignerPool.signTreeHead in egress). */
  sign: (body: TreeHeadBody) => Promise<SignedTreeHead>;
  log: Logger;
  /** The head's time; tests fix it. */
  now?: () => Date;
}

/** Inclusion - what a report carries about its leaf. */
export interface Inclusion {
  index: number;
  head: SignedTreeHead;
  proof: Buffer[];
}

/** Signed - appendSigned's answer: the inclusion, final, and when the head that makes it true is durable. */
export interface Signed {
  inclusion: Inclusion;
  /** Resolves once the head is durable, rejects if its flush failed; already marked handled. */
  durable: Promise<void>;
}

interface Waiter {
  /** The leaf's record in `leaves` (encodeLeafRecord), made once when it was queued. */
  record: Buffer;
  resolve: (signed: Signed) => void;
  reject: (err: Error) => void;
}

/** Bytes of leaves written between two rewrites of the `frontier` cache (what a start may replay). */
export const CHECKPOINT_BYTES = 4 * 1024 * 1024;

/** Largest `frontier` cache file read (53 hashes in hex and two numbers fit in 4 KiB). */
const MAX_FRONTIER_FILE_BYTES = 8 * 1024;

/** Checkpoint - the tree's right edge at some head's size, and where its leaves end in `leaves`. */
interface Checkpoint {
  frontier: Frontier;
  leavesEnd: number;
  /** The record that ends at leavesEnd (none for an empty log): its bytes and its leaf's hash, which prove leavesEnd is that boundary. */
  last?: LastRecord;
}

/** LastRecord - the last whole leaf record: its length with its header, and its leaf hash. */
interface LastRecord {
  bytes: number;
  hash: Buffer;
}

/** TransparencyLog - one writer of one log directory. */
export class TransparencyLog {
  private pending: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Where the leaves ended when the cache was last written. */
  private cachedAt: number;

  private constructor(
    private readonly o: TlogOptions,
    private readonly tree: Frontier,
    private readonly leavesFd: number,
    private readonly headsFd: number,
    private leavesEnd: number,
    private published: SignedTreeHead | undefined,
    cachedAt: number,
    private lastRecord: LastRecord | undefined,
  ) {
    this.cachedAt = cachedAt;
  }

  /** open - recover the directory (DESCRIPTION) and return its writer; throws if the log does not match its last head. */
  static open(o: TlogOptions): TransparencyLog {
    if (!Number.isInteger(o.batchMax) || o.batchMax < 1) throw new RangeError('egress.logBatchMax must be an integer >= 1');
    if (!Number.isFinite(o.batchMs) || o.batchMs < 0) throw new RangeError('egress.logBatchMs must be >= 0');
    logDirectory(o.dir);
    const leavesPath = path.join(o.dir, LOG_FILES.leaves);
    const headsPath = path.join(o.dir, LOG_FILES.heads);
    const created = !fs.existsSync(leavesPath) || !fs.existsSync(headsPath);
    const flags = fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;
    const leavesFd = fs.openSync(leavesPath, flags, 0o640);
    const headsFd = fs.openSync(headsPath, flags, 0o640);
    try {
      // Readable by the directory's group (the consumers who audit it), whatever egress's umask.
      for (const fd of [leavesFd, headsFd]) fs.fchmodSync(fd, 0o640);
      if (created) fsyncDir(o.dir);
      const where = `transparency log ${o.dir}`;
      const tail = lastHead(headsFd);
      if (tail.last?.problem) throw new Error(`${where}: last tree head: ${tail.last.problem}`);
      if (tail.end !== tail.bytes) {
        o.log.warn({ event: 'tlog-torn-head', bytes: tail.bytes - tail.end }, 'cutting off a partial tree head never published');
        fs.ftruncateSync(headsFd, tail.end);
        fs.fsyncSync(headsFd);
      }
      const last = tail.last?.head;
      if (last) {
        if (last.key !== o.publicKey.keyId) {
          throw new Error(
            `${where}: its last tree head is signed by key ${last.key}, not by this station's key ${o.publicKey.keyId}: ` +
              'a log is signed by one key; after a key rotation keep the old log with its public key and start a new one (docs/operations.md)',
          );
        }
        const problem = verifyTreeHead(last, o.publicKey);
        if (problem) throw new Error(`${where}: last tree head: ${problem}`);
        if (last.station !== o.station) throw new Error(`${where}: last tree head is of station ${JSON.stringify(last.station)}, not ${JSON.stringify(o.station)}`);
      }
      const cached = readCheckpoint(o.dir, last, leavesFd);
      // The edge from the cache on; a cache that does not lead to a log that checks out is rebuilt from the first leaf.
      const recover = (from: Checkpoint) => {
        const edge = replay(leavesFd, from, last, where);
        const torn = fs.fstatSync(leavesFd).size - edge.scan.end;
        if (torn > LEAF_HEADER_BYTES + MAX_LEAF_BYTES) {
          throw new Error(`${where}: ${torn} bytes after leaf ${edge.tree.size - 1} are not leaf records, more than one torn write leaves: not cutting them`);
        }
        return { ...edge, torn, cachedAt: from.leavesEnd };
      };
      const empty: Checkpoint = { frontier: Frontier.empty(), leavesEnd: 0 };
      let edge: ReturnType<typeof recover>;
      try {
        edge = recover(cached ?? empty);
      } catch (err) {
        if (!cached) throw err;
        o.log.warn({ event: 'tlog-frontier-rebuilt', reason: (err as Error).message }, 'the cached edge of the tree did not lead to the last head: rebuilding it from the first leaf');
        edge = recover(empty);
      }
      const torn = edge.torn;
      if (torn > 0) {
        o.log.warn({ event: 'tlog-torn-leaf', bytes: torn }, 'cutting off a partial leaf record never published');
        fs.ftruncateSync(leavesFd, edge.scan.end);
        fs.fsyncSync(leavesFd);
      }
      const t = new TransparencyLog(o, edge.tree, leavesFd, headsFd, edge.scan.end, last, edge.cachedAt, edge.lastRecord);
      if (edge.tree.size > (last?.size ?? 0)) {
        o.log.info({ event: 'tlog-unpublished', leaves: edge.tree.size - (last?.size ?? 0) }, 'publishing leaves written before the last stop');
        t.kick();
      }
      return t;
    } catch (err) {
      fs.closeSync(leavesFd);
      fs.closeSync(headsFd);
      throw err;
    }
  }

  /** size - leaves written (published or not). */
  get size(): number {
    return this.tree.size;
  }

  /** head - the last published tree head, if any. */
  get head(): SignedTreeHead | undefined {
    return this.published;
  }

  /** append - queue one leaf; resolves once it and a head covering it are durable. */
  async append(leaf: Uint8Array): Promise<Inclusion> {
    const { inclusion, durable } = await this.appendSigned(leaf);
    await durable;
    return inclusion;
  }

  /** appendSigned - queue one leaf; resolves once a head covering it is signed and written, with `durable` for its flush (header). */
  appendSigned(leaf: Uint8Array): Promise<Signed> {
    if (this.closed) return Promise.reject(new Error('transparency log closed'));
    const record = encodeLeafRecord(leaf); // size check now, not in the batch
    return new Promise<Signed>((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (this.pending.length >= this.o.batchMax) this.kick();
      else this.timer ??= setTimeout(() => this.kick(), this.o.batchMs);
    });
  }

  /** close - flush what is queued, then close the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.kick();
    await this.flushing;
    if (this.published?.size === this.tree.size && this.cachedAt !== this.leavesEnd) this.checkpoint();
    fs.closeSync(this.leavesFd);
    fs.closeSync(this.headsFd);
  }

  /** checkpoint - cache the tree's edge at the last published head (every leaf written is published). */
  private checkpoint(): void {
    if (writeCheckpoint(this.o, { frontier: this.tree, leavesEnd: this.leavesEnd, last: this.lastRecord })) this.cachedAt = this.leavesEnd;
  }

  /** kick - start draining unless a drain is running (it picks up what is queued). */
  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushing) return;
    // Cleared in .finally, which always runs after this assignment: a drain that finds nothing
    // to do and returns at once must not leave `flushing` set for ever.
    this.flushing = this.drain().finally(() => {
      this.flushing = undefined;
      if (this.pending.length >= this.o.batchMax) this.kick(); // filled up after the drain's last look; no timer for it
    });
  }

  /** drain - flush batches until the queue is empty. */
  private async drain(): Promise<void> {
    do {
      const batch = this.pending.splice(0, this.o.batchMax);
      if (batch.length === 0 && this.tree.size === (this.published?.size ?? 0)) return; // nothing to publish
      try {
        await this.flushBatch(batch);
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        this.o.log.error({ event: 'tlog-flush-failed', leaves: batch.length, reason: e.message }, 'transparency log batch failed');
        for (const w of batch) w.reject(e);
      }
    } while (this.pending.length > 0);
  }

  /** flushBatch - steps 1-5 of DESCRIPTION for one batch (possibly empty: publish leaves already written). */
  private async flushBatch(batch: Waiter[]): Promise<void> {
    const before = this.tree.clone();
    const hashes = batch.map((w) => leafHash(w.record.subarray(LEAF_HEADER_BYTES))); // the bytes written, copied at append()
    if (batch.length > 0) {
      const records = batch.map((w) => w.record);
      const total = records.reduce((n, r) => n + r.length, 0);
      try {
        const { bytesWritten: written } = await writev(this.leavesFd, records);
        if (written !== total) throw new Error(`short write to the leaves file (${written} of ${total} bytes)`);
        await fdatasync(this.leavesFd);
      } catch (err) {
        fs.ftruncateSync(this.leavesFd, this.leavesEnd); // no partial record stays behind a later append
        throw err;
      }
      this.leavesEnd += total;
      for (const h of hashes) this.tree.append(h);
      this.lastRecord = { bytes: records[records.length - 1]!.length, hash: hashes[hashes.length - 1]! };
    }
    const size = this.tree.size;
    const body: TreeHeadBody = {
      format: TREE_HEAD_FORMAT,
      station: this.o.station,
      key: this.o.publicKey.keyId,
      size,
      root: this.tree.root().toString('hex'),
      time: (this.o.now ?? (() => new Date()))().toISOString(),
    };
    // Validated and frozen once here: every report of the batch refers to this one object (checkedTreeHead).
    const head = checkedTreeHead(await this.o.sign(body));
    if (!Buffer.from(treeHeadBytes(head)).equals(treeHeadBytes(body))) throw new Error('the signed tree head is not the one asked for; not published');
    const line = Buffer.from(serializeTreeHead(head), 'latin1');
    const written = await write(this.headsFd, line);
    if (written.bytesWritten !== line.length) throw new Error('short write to the heads file');
    const durable = fdatasync(this.headsFd);
    durable.catch(() => {}); // whoever awaits it gets the error; a caller that gave up must not stop egress
    // Leaves published by this head but written before the batch (an earlier failed flush) have no waiter.
    const proofs = inclusionProofs(before, hashes);
    batch.forEach((w, i) => w.resolve({ inclusion: { index: before.size + i, head, proof: proofs[i]! }, durable }));
    await durable; // a failure is the batch's (drain logs it; its waiters learn it through `durable`)
    this.published = head;
    if (this.leavesEnd - this.cachedAt >= CHECKPOINT_BYTES) this.checkpoint();
  }
}

/** logDirectory - create the log directory (0750), or insist the existing one is ours and writable by nobody else. */
function logDirectory(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (st.uid !== process.getuid!()) throw new Error(`${dir} is owned by uid ${st.uid}, not by egress (uid ${process.getuid!()})`);
  if ((st.mode & 0o022) !== 0) throw new Error(`${dir} is writable by its group or others (mode ${(st.mode & 0o7777).toString(8)})`);
}

/**
 * replay - the tree's edge after every whole leaf record, from a checkpoint on; the root at the
 * last head's size must be its root. Throws naming the mismatch.
 */
function replay(leavesFd: number, from: Checkpoint, last: SignedTreeHead | undefined, where: string): { tree: Frontier; scan: Scan; lastRecord?: LastRecord } {
  const tree = from.frontier.clone();
  let lastRecord = from.last;
  const scan: Scan = { end: from.leavesEnd, count: 0 };
  const check = () => {
    if (last && tree.size === last.size && !rootBytes(last).equals(tree.root())) {
      throw new Error(`${where}: the leaves do not have the root of the last tree head (size ${last.size}): a published leaf changed or was removed`);
    }
  };
  check();
  for (const leaf of readLeaves(leavesFd, from.leavesEnd, scan)) {
    lastRecord = { bytes: LEAF_HEADER_BYTES + leaf.length, hash: leafHash(leaf) };
    tree.append(lastRecord.hash);
    check();
  }
  if (last && tree.size < last.size) throw new Error(`${where}: the last tree head covers ${last.size} leaves, the log holds ${tree.size} (leaves removed?)`);
  return { tree, scan, lastRecord };
}

/** readCheckpoint - the cached edge, if it is whole and no larger than the last head; undefined otherwise. */
function readCheckpoint(dir: string, last: SignedTreeHead | undefined, leavesFd: number): Checkpoint | undefined {
  let text: string;
  try {
    const fd = fs.openSync(path.join(dir, LOG_FILES.frontier), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const buf = Buffer.alloc(MAX_FRONTIER_FILE_BYTES);
      text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
    } finally {
      fs.closeSync(fd);
    }
    const c = JSON.parse(text) as { size?: unknown; leavesEnd?: unknown; hashes?: unknown; lastBytes?: unknown; lastHash?: unknown };
    const hex = (h: unknown) => (typeof h === 'string' && /^[0-9a-f]{64}$/.test(h) ? Buffer.from(h, 'hex') : Buffer.alloc(0));
    if (!Number.isSafeInteger(c.size) || !Number.isSafeInteger(c.leavesEnd) || !Array.isArray(c.hashes)) return undefined;
    const size = c.size as number;
    const leavesEnd = c.leavesEnd as number;
    if (size > (last?.size ?? 0) || leavesEnd > fs.fstatSync(leavesFd).size) return undefined;
    const frontier = Frontier.restore(size, c.hashes.map(hex));
    if (size === 0) return leavesEnd === 0 ? { frontier, leavesEnd } : undefined;
    // leavesEnd must end the record of the last leaf: read it back and compare its hash.
    const bytes = c.lastBytes as number;
    if (!Number.isSafeInteger(bytes) || bytes <= LEAF_HEADER_BYTES || bytes > LEAF_HEADER_BYTES + MAX_LEAF_BYTES || bytes > leavesEnd) return undefined;
    const record = Buffer.alloc(bytes);
    if (fs.readSync(leavesFd, record, 0, bytes, leavesEnd - bytes) !== bytes || record.readUInt32BE(0) !== bytes - LEAF_HEADER_BYTES) return undefined;
    const hash = leafHash(record.subarray(LEAF_HEADER_BYTES));
    if (!hash.equals(hex(c.lastHash))) return undefined;
    return { frontier, leavesEnd, last: { bytes, hash } };
  } catch {
    return undefined; // missing, torn or not ours: rebuilt from the leaves
  }
}

/** writeCheckpoint - replace the cached edge (a new file renamed over the old; not synced: only a cache); false if it could not. */
function writeCheckpoint(o: TlogOptions, c: Checkpoint): boolean {
  const file = path.join(o.dir, LOG_FILES.frontier);
  const text = `${JSON.stringify({
    size: c.frontier.size,
    leavesEnd: c.leavesEnd,
    hashes: c.frontier.hashes.map((h) => h.toString('hex')),
    ...(c.last ? { lastBytes: c.last.bytes, lastHash: c.last.hash.toString('hex') } : {}),
  })}\n`;
  try {
    const fd = fs.openSync(`${file}.tmp`, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o640);
    try {
      fs.writeSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(`${file}.tmp`, file);
    return true;
  } catch (err) {
    o.log.warn({ event: 'tlog-frontier-unsaved', reason: (err as Error).message }, 'could not cache the edge of the tree; the next start rebuilds it');
    return false;
  }
}
