/*
 * NAME
 *   tlog - egress's append-only transparency log: leaves, batched signed tree heads, recovery
 *
 * SYNOPSIS
 *   const tlog = TransparencyLog.open({ dir, station, publicKey, batchMs, batchMax, sign, log });
 *   const { index, head, proof } = await tlog.append(leafBytes);   // durable when it resolves
 *   await tlog.close();
 *
 * DESCRIPTION
 *   The log is the directory format of @sluice/report's logfile.ts: `leaves`
 *   (length-prefixed leaf records) and `heads` (one signed tree head per
 *   line), both only ever appended to.
 *
 *   append() queues a leaf. A batch is flushed when `batchMax` leaves wait
 *   or `batchMs` after the first one arrived, whichever is first; while a
 *   batch is being flushed, the next one gathers. A flush, in order:
 *     1. writes the batch's leaf records to `leaves` and fdatasyncs;
 *     2. computes the RFC 9162 root of the whole tree and has `sign` sign a
 *        tree head (station, size, root, time);
 *     3. verifies that head against the public key in this thread (the
 *        independent check: the signer workers sign with pqclean and check
 *        with noble; this checks again before any report refers to it);
 *     4. appends the head's line to `heads` and fdatasyncs;
 *     5. resolves every append of the batch with its index, the head and
 *        its inclusion proof against that head.
 *   So a leaf and the head that covers it are durable before any caller
 *   hears of them, and a head is never written before its leaves.
 *
 *   Recovery (open): a partial record at the end of `leaves` or a partial
 *   line at the end of `heads` was never published (nobody was answered
 *   before its fdatasync), so it is cut off; nothing else is ever changed.
 *   open() then checks every head against the leaves (root of its size,
 *   sizes never shrink, same station) and the last head's signatures, and
 *   refuses to start on any mismatch: a log that no longer matches its own
 *   heads was changed by someone else, and appending to it would hide that.
 *   Leaves after the last head (written, head not yet written) are kept
 *   and published by a head at once.
 *
 *   A failed write (ENOSPC, EIO) fails the whole batch: a partial leaf
 *   write is cut back to the last whole record; leaves written whose head
 *   was not are published by the next head. A delivery retried after a
 *   failure appends its report again, so the log may hold the same leaf
 *   twice; both leaves are the same signed body, and neither is rewritten.
 *
 * BOUNDS
 *   `batchMax` leaves per head (egress.logBatchMax); callers wait in a
 *   queue bounded by their own admission (egress.maxInFlight). The tree
 *   keeps 64 bytes per leaf in memory (merkle.ts); leaves themselves are
 *   not kept after they are written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ensureDir, fsyncDir, type Logger } from '@sluice/core';
import {
  encodeLeafRecord,
  leafHash,
  readLog,
  rootBytes,
  serializeTreeHead,
  verifyTreeHead,
  LOG_FILES,
  TREE_HEAD_FORMAT,
  type MerkleTree,
  type PublicKey,
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
  /** Longest wait, in ms, between a leaf's arrival and the start of its batch's flush. */
  batchMs: number;
  /** Most leaves under one tree head. */
  batchMax: number;
  /** Sign a tree head body (SignerPool.signTreeHead in egress). */
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

interface Waiter {
  leaf: Uint8Array;
  resolve: (inc: Inclusion) => void;
  reject: (err: Error) => void;
}

/** TransparencyLog - one writer of one log directory. */
export class TransparencyLog {
  private pending: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private published: SignedTreeHead | undefined;

  private constructor(
    private readonly o: TlogOptions,
    private readonly tree: MerkleTree,
    private readonly leavesFd: number,
    private readonly headsFd: number,
    private leavesEnd: number,
    last: SignedTreeHead | undefined,
  ) {
    this.published = last;
  }

  /** open - recover the directory (DESCRIPTION) and return its writer; throws if the log does not match its heads. */
  static open(o: TlogOptions): TransparencyLog {
    if (!Number.isInteger(o.batchMax) || o.batchMax < 1) throw new RangeError('egress.logBatchMax must be an integer >= 1');
    if (!Number.isFinite(o.batchMs) || o.batchMs < 0) throw new RangeError('egress.logBatchMs must be >= 0');
    ensureDir(o.dir, 0o750); // consumers audit it (sluice log verify); nothing in it is secret
    const leavesPath = path.join(o.dir, LOG_FILES.leaves);
    const headsPath = path.join(o.dir, LOG_FILES.heads);
    const created = !fs.existsSync(leavesPath) || !fs.existsSync(headsPath);
    const leavesFd = fs.openSync(leavesPath, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o640);
    const headsFd = fs.openSync(headsPath, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o640);
    try {
      if (created) fsyncDir(o.dir);
      const c = readLog(o.dir);
      if (c.leavesEnd !== c.leavesBytes) {
        o.log.warn({ event: 'tlog-torn-leaf', bytes: c.leavesBytes - c.leavesEnd }, 'cutting off a partial leaf record never published');
        fs.ftruncateSync(leavesFd, c.leavesEnd);
        fs.fsyncSync(leavesFd);
      }
      if (c.headsEnd !== c.headsBytes) {
        o.log.warn({ event: 'tlog-torn-head', bytes: c.headsBytes - c.headsEnd }, 'cutting off a partial tree head never published');
        fs.ftruncateSync(headsFd, c.headsEnd);
        fs.fsyncSync(headsFd);
      }
      const bad = c.badHeads[0];
      if (bad) throw new Error(`transparency log ${o.dir}: heads line ${bad.line + 1}: ${bad.problem}`);
      let prev: SignedTreeHead | undefined;
      for (const [i, head] of c.heads.entries()) {
        const where = `transparency log ${o.dir}: tree head ${i + 1} (size ${head.size})`;
        if (head.size > c.tree.size) throw new Error(`${where} covers more leaves than the log holds (${c.tree.size})`);
        if (!rootBytes(head).equals(c.tree.rootHash(head.size))) throw new Error(`${where}: root does not match the leaves`);
        if (prev && head.size < prev.size) throw new Error(`${where} is smaller than the head before`);
        if (head.station !== o.station) throw new Error(`${where} is of station ${JSON.stringify(head.station)}, not ${JSON.stringify(o.station)}`);
        prev = head;
      }
      if (prev) {
        const problem = verifyTreeHead(prev, o.publicKey);
        if (problem) throw new Error(`transparency log ${o.dir}: last tree head: ${problem}`);
      }
      const t = new TransparencyLog(o, c.tree, leavesFd, headsFd, c.leavesEnd, prev);
      if (c.tree.size > (prev?.size ?? 0)) {
        o.log.info({ event: 'tlog-unpublished', leaves: c.tree.size - (prev?.size ?? 0) }, 'publishing leaves written before the last stop');
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
  append(leaf: Uint8Array): Promise<Inclusion> {
    if (this.closed) return Promise.reject(new Error('transparency log closed'));
    encodeLeafRecord(leaf); // size check now, not in the batch
    return new Promise<Inclusion>((resolve, reject) => {
      this.pending.push({ leaf, resolve, reject });
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
    fs.closeSync(this.leavesFd);
    fs.closeSync(this.headsFd);
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
    const first = this.tree.size;
    if (batch.length > 0) {
      const records = batch.map((w) => encodeLeafRecord(w.leaf));
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
      for (const w of batch) this.tree.append(leafHash(w.leaf));
    }
    const size = this.tree.size;
    const body: TreeHeadBody = {
      format: TREE_HEAD_FORMAT,
      station: this.o.station,
      key: this.o.publicKey.keyId,
      size,
      root: this.tree.rootHash(size).toString('hex'),
      time: (this.o.now ?? (() => new Date()))().toISOString(),
    };
    const head = await this.o.sign(body);
    const problem = verifyTreeHead(head, this.o.publicKey);
    if (problem || head.size !== size || head.root !== body.root) throw new Error(`signed tree head does not check out (${problem ?? 'other size or root'}); not published`);
    const line = Buffer.from(serializeTreeHead(head), 'latin1');
    const written = await write(this.headsFd, line);
    if (written.bytesWritten !== line.length) throw new Error('short write to the heads file');
    await fdatasync(this.headsFd);
    this.published = head;
    batch.forEach((w, i) => w.resolve({ index: first + i, head, proof: this.tree.inclusionProof(first + i, size) }));
  }
}
