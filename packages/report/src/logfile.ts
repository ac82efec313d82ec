/*
 * NAME
 *   logfile - the on-disk transparency log of a station: streaming reads, the audit, consistency proofs
 *
 * SYNOPSIS
 *   import { LOG_FILES, encodeLeafRecord, checkLeaf, readLeaves, readHeads, lastHead,
 *            auditLog, proveConsistency } from '@sluice/report';
 *   encodeLeafRecord(leaf: Uint8Array): Buffer
 *   checkLeaf(leaf: Uint8Array): string | null        null = a report's signed body bytes
 *   readLeaves(fd, from?, scan?): Iterable<Buffer>     whole leaf records from byte `from`
 *   readHeads(fd, scan?): Iterable<HeadLine>           whole lines of `heads`, parsed
 *   lastHead(fd): LastHead                             the last whole line only, read from the end
 *   auditLog(dir: string, pub: PublicKey): LogAudit
 *   proveConsistency(dir: string, m: number, n: number): ConsistencyProof
 *
 * DESCRIPTION
 *   A log directory holds two append-only files (docs/report-format.md,
 *   "Transparency log"):
 *     leaves   one record per leaf: a 4-byte big-endian length, then the
 *              leaf: a report's signed body bytes (label || 0x00 || JCS body)
 *     heads    one signed tree head per line (treehead.ts file spelling)
 *   and egress's cache of its tree's right edge, `frontier` (tlog.ts),
 *   which no reader here needs or trusts. Egress writes leaves and makes
 *   them durable before it writes the head that covers them, so after a
 *   crash the files may end in a partial record or line (never covered by
 *   a head; egress's recovery cuts it off) and leaves may follow the last
 *   head (not yet published).
 *
 *   auditLog reads both files once, in step, and names the first
 *   inconsistency: every leaf record a head covers is whole and each leaf is a report's
 *   canonical signed body; every head parses, is signed by `pub` (both
 *   algorithms), names the same station as the one before, covers no more
 *   leaves than the file holds, never shrinks, its root is the RFC 9162
 *   root of the first `size` leaves, and the RFC 9162 consistency proof
 *   from the head before to it, made from the leaves, verifies. It may run
 *   while egress appends: a head is read before the leaves it covers, which
 *   egress made durable before it wrote the head; a partial record after
 *   the last whole one is no head's, and is counted (partialBytes), not
 *   an inconsistency.
 *
 *   proveConsistency makes PROOF(m, D[0:n]) from the leaves, with both
 *   roots and the first head of size n, if there is one.
 *
 * BOUNDS
 *   A log of any length is read in one pass with READ_CHUNK_BYTES (1 MiB)
 *   plus one leaf (at most MAX_LEAF_BYTES) or one head line (at most
 *   MAX_TREE_HEAD_BYTES) in memory, and a few frontiers (merkle.ts: at most
 *   53 hashes each). Time is linear in the log's bytes.
 *
 * DIAGNOSTICS
 *   The readers throw the fs error of an unreadable file (ENOENT for a
 *   missing one). auditLog returns { ok: false, problem } for any content;
 *   proveConsistency throws RangeError when the log holds fewer than n leaves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReportFormatError } from './errors.js';
import { JsonError, parseStrictJson } from './_json.js';
import type { PublicKey } from './keys.js';
import { Frontier, consistencyRanges, leafHash, subtreeHashes, verifyConsistency } from './merkle.js';
import { canonicalBytes, MAX_REPORT_BYTES, validateReportBody } from './report.js';
import { MAX_TREE_HEAD_BYTES, parseTreeHead, rootBytes, verifyTreeHead, type SignedTreeHead } from './treehead.js';

/** The files of a log directory: the two a consumer audits, and egress's cache beside them. */
export const LOG_FILES = { leaves: 'leaves', heads: 'heads', frontier: 'frontier' } as const;
/** Largest leaf a record may hold. */
export const MAX_LEAF_BYTES = MAX_REPORT_BYTES;
/** Bytes of a leaf record's length prefix. */
export const LEAF_HEADER_BYTES = 4;
/** Bytes read from a log file at a time. */
export const READ_CHUNK_BYTES = 1024 * 1024;

/** Scan - how far a reader got: the byte offset just after its last whole record or line. */
export interface Scan {
  end: number;
  /** Records (leaves) or lines (heads) read whole. */
  count: number;
}

/** HeadLine - one whole line of `heads`: its tree head, or why it is none. */
export type HeadLine = { line: number; head: SignedTreeHead; problem?: undefined } | { line: number; head?: undefined; problem: string };

/** LastHead - the last whole line of `heads`, read from the end, and where whole lines end. */
export interface LastHead {
  /** Absent for a file without a whole line. */
  last?: HeadLine;
  /** Bytes of whole lines (anything after is a partial line). */
  end: number;
  bytes: number;
}

/** LogAudit - auditLog's answer. */
export interface LogAudit {
  ok: boolean;
  /** The first inconsistency, one line; absent when ok. */
  problem?: string;
  leaves: number;
  heads: number;
  /** Leaves after the last head (not yet published). */
  unpublished: number;
  /** Bytes after the last whole leaf record (a write in progress, or torn by a crash); absent when none. */
  partialBytes?: number;
}

/** ConsistencyProof - proveConsistency's answer (hashes in lowercase hex). */
export interface ConsistencyProof {
  from: number;
  to: number;
  fromRoot: string;
  toRoot: string;
  proof: string[];
  head?: SignedTreeHead;
}

/** encodeLeafRecord - length prefix and leaf, as appended to `leaves`. */
export function encodeLeafRecord(leaf: Uint8Array): Buffer {
  if (leaf.length === 0 || leaf.length > MAX_LEAF_BYTES) throw new RangeError(`leaf of ${leaf.length} bytes outside 1..${MAX_LEAF_BYTES}`);
  const rec = Buffer.allocUnsafe(LEAF_HEADER_BYTES + leaf.length);
  rec.writeUInt32BE(leaf.length, 0);
  rec.set(leaf, LEAF_HEADER_BYTES);
  return rec;
}

/** checkLeaf - null when `leaf` is label || 0x00 || JCS(body) of a valid report body whose format is the label. */
export function checkLeaf(leaf: Uint8Array): string | null {
  const zero = leaf.indexOf(0);
  if (zero < 1) return 'no label before a 0x00 byte';
  const text = Buffer.from(leaf.subarray(zero + 1)).toString('utf8');
  try {
    const body = validateReportBody(parseStrictJson(text, 8));
    if (!Buffer.from(canonicalBytes(body)).equals(leaf)) return 'not the canonical signed bytes of its report body';
    return null;
  } catch (err) {
    if (err instanceof ReportFormatError || err instanceof JsonError) return `not a report body: ${err.message}`;
    throw err;
  }
}

/** chunks - the bytes of `fd` from `from` on, READ_CHUNK_BYTES at a time. */
function* chunks(fd: number, from: number): Generator<Buffer> {
  const buf = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  for (let at = from; ; ) {
    const got = fs.readSync(fd, buf, 0, buf.length, at);
    if (got === 0) return;
    at += got;
    yield buf.subarray(0, got);
  }
}

/**
 * readLeaves - each whole leaf record of the leaves file `fd` from byte `from` (a record's start),
 * in order; `scan` follows the end of the last whole one. Stops at the end of the file or at the
 * first record that is not whole (a length of 0 or over MAX_LEAF_BYTES, or cut short).
 */
export function* readLeaves(fd: number, from = 0, scan: Scan = { end: from, count: 0 }): Generator<Buffer> {
  scan.end = from;
  let pending: Buffer = Buffer.alloc(0);
  for (const chunk of chunks(fd, from)) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (at + LEAF_HEADER_BYTES <= pending.length) {
      const len = pending.readUInt32BE(at);
      if (len === 0 || len > MAX_LEAF_BYTES) return;
      if (at + LEAF_HEADER_BYTES + len > pending.length) break;
      const leaf = Buffer.from(pending.subarray(at + LEAF_HEADER_BYTES, at + LEAF_HEADER_BYTES + len));
      at += LEAF_HEADER_BYTES + len;
      scan.end += LEAF_HEADER_BYTES + len;
      scan.count += 1;
      yield leaf;
    }
    pending = Buffer.from(pending.subarray(at)); // the chunk buffer is reused: keep a copy of the rest
  }
}

/** headLine - parse one line of `heads` (without its LF). */
function headLine(line: number, text: string): HeadLine {
  try {
    return { line, head: parseTreeHead(`${text}\n`) };
  } catch (err) {
    if (!(err instanceof ReportFormatError)) throw err;
    return { line, problem: err.message };
  }
}

/**
 * readHeads - each whole line of the heads file `fd`, parsed, in order; `scan` follows the end of
 * the last whole line. A line longer than MAX_TREE_HEAD_BYTES is a problem line, and the last.
 */
export function* readHeads(fd: number, scan: Scan = { end: 0, count: 0 }): Generator<HeadLine> {
  scan.end = 0;
  let pending: Buffer = Buffer.alloc(0);
  for (const chunk of chunks(fd, 0)) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    for (let lf = pending.indexOf(10, at); lf >= 0; lf = pending.indexOf(10, at)) {
      const text = pending.subarray(at, lf).toString('latin1');
      at = lf + 1;
      scan.end += text.length + 1;
      scan.count += 1;
      yield text.length + 1 > MAX_TREE_HEAD_BYTES ? { line: scan.count - 1, problem: `longer than ${MAX_TREE_HEAD_BYTES} bytes` } : headLine(scan.count - 1, text);
    }
    pending = Buffer.from(pending.subarray(at));
    if (pending.length > MAX_TREE_HEAD_BYTES) {
      yield { line: scan.count, problem: `longer than ${MAX_TREE_HEAD_BYTES} bytes` };
      return;
    }
  }
}

/** lastHead - the last whole line of the heads file `fd`, reading at most 2 * MAX_TREE_HEAD_BYTES from its end. */
export function lastHead(fd: number): LastHead {
  const bytes = fs.fstatSync(fd).size;
  const span = Math.min(bytes, 2 * MAX_TREE_HEAD_BYTES);
  const tail = Buffer.alloc(span);
  const got = fs.readSync(fd, tail, 0, span, bytes - span);
  const text = tail.subarray(0, got);
  const lastLf = text.lastIndexOf(10);
  if (lastLf < 0) {
    return span < bytes ? { end: bytes, bytes, last: { line: -1, problem: `no line end in the last ${span} bytes` } } : { end: 0, bytes };
  }
  const end = bytes - span + lastLf + 1;
  const startLf = text.lastIndexOf(10, lastLf - 1);
  if (startLf < 0 && span < bytes) return { end, bytes, last: { line: -1, problem: `the last line is longer than ${MAX_TREE_HEAD_BYTES} bytes` } };
  return { end, bytes, last: headLine(-1, text.subarray(startLf + 1, lastLf).toString('latin1')) };
}

/** A problem found by the audit: its message is the answer. */
class Inconsistent extends Error {}

/** withFiles - run `f` with both files of `dir` open for reading. */
function withFiles<T>(dir: string, f: (leavesFd: number, headsFd: number) => T): T {
  const leavesFd = fs.openSync(path.join(dir, LOG_FILES.leaves), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const headsFd = fs.openSync(path.join(dir, LOG_FILES.heads), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      return f(leavesFd, headsFd);
    } finally {
      fs.closeSync(headsFd);
    }
  } finally {
    fs.closeSync(leavesFd);
  }
}

/** auditLog - every check of DESCRIPTION, in one pass; the first failure is the problem. */
export function auditLog(dir: string, pub: PublicKey): LogAudit {
  return withFiles(dir, (leavesFd, headsFd) => {
    const leafScan: Scan = { end: 0, count: 0 };
    const headScan: Scan = { end: 0, count: 0 };
    const leaves = readLeaves(leavesFd, 0, leafScan);
    const tree = Frontier.empty();
    // The next leaf, checked and added to the tree; undefined at the end of the whole records.
    const nextLeaf = (): Buffer | undefined => {
      const offset = leafScan.end;
      const r = leaves.next();
      if (r.done) return undefined;
      const problem = checkLeaf(r.value);
      if (problem) throw new Inconsistent(`leaf ${tree.size} (offset ${offset}): ${problem}`);
      const h = leafHash(r.value);
      tree.append(h);
      return h;
    };
    function* upTo(size: number): Generator<Buffer> {
      while (tree.size < size) {
        const h = nextLeaf();
        if (!h) return;
        yield h;
      }
    }
    let prev: SignedTreeHead | undefined;
    try {
      for (const h of readHeads(headsFd, headScan)) {
        if (!h.head) throw new Inconsistent(`heads line ${h.line + 1}: ${h.problem}`);
        const head = h.head;
        const where = `tree head ${h.line + 1} (size ${head.size})`;
        const sig = verifyTreeHead(head, pub);
        if (sig) throw new Inconsistent(`${where}: ${sig}`);
        if (prev && head.station !== prev.station) throw new Inconsistent(`${where}: station changed from the head before`);
        if (prev && head.size < prev.size) throw new Inconsistent(`${where}: smaller than tree head ${h.line} (size ${prev.size})`);
        const before = tree.clone();
        let proof: Buffer[] = [];
        try {
          proof = subtreeHashes(prev ? consistencyRanges(prev.size, head.size) : [], before, upTo(head.size));
        } catch (err) {
          if (!(err instanceof RangeError)) throw err;
        }
        for (const _ of upTo(head.size)); // the leaves the proof did not need
        if (tree.size < head.size) {
          throw new Inconsistent(`${where}: covers ${head.size} leaves, the log holds ${tree.size} (leaves removed?)`);
        }
        if (!rootBytes(head).equals(tree.root())) {
          throw new Inconsistent(`${where}: root ${head.root} is not the root of leaves 0..${head.size - 1} (a leaf changed or removed)`);
        }
        if (prev && !verifyConsistency(prev.size, head.size, rootBytes(prev), rootBytes(head), proof)) {
          throw new Inconsistent(`${where}: not consistent with tree head ${h.line} (size ${prev.size})`);
        }
        prev = head;
      }
      for (const _ of upTo(Number.MAX_SAFE_INTEGER)); // leaves not yet published: checked all the same
      if (headScan.end !== fs.fstatSync(headsFd).size) throw new Inconsistent(`heads: the last line (offset ${headScan.end}) has no newline`);
    } catch (err) {
      if (!(err instanceof Inconsistent)) throw err;
      return { ok: false, problem: err.message, leaves: tree.size, heads: headScan.count, unpublished: 0 };
    }
    // Bytes after the last whole record are a batch being written, or one a crash tore (egress cuts
    // it at its next start): no head covers them, so they are not part of what was published.
    const partialBytes = fs.fstatSync(leavesFd).size - leafScan.end;
    return { ok: true, leaves: tree.size, heads: headScan.count, unpublished: tree.size - (prev?.size ?? 0), ...(partialBytes > 0 ? { partialBytes } : {}) };
  });
}

/** proveConsistency - PROOF(m, D[0:n]) of the log in `dir`, its two roots, and the first head of size n. */
export function proveConsistency(dir: string, m: number, n: number): ConsistencyProof {
  return withFiles(dir, (leavesFd, headsFd) => {
    const scan: Scan = { end: 0, count: 0 };
    const leaves = readLeaves(leavesFd, 0, scan);
    const tree = Frontier.empty();
    function* upTo(size: number): Generator<Buffer> {
      while (tree.size < size) {
        const r = leaves.next();
        if (r.done) throw new RangeError(`the log holds ${tree.size} leaves, fewer than ${size}`);
        const h = leafHash(r.value);
        tree.append(h);
        yield h;
      }
    }
    for (const _ of upTo(m));
    const fromRoot = tree.root();
    const proof = subtreeHashes(consistencyRanges(m, n), tree.clone(), upTo(n));
    for (const _ of upTo(n));
    let head: SignedTreeHead | undefined;
    for (const h of readHeads(headsFd)) {
      if (h.head?.size === n) {
        head = h.head;
        break;
      }
    }
    const hex = (b: Buffer) => b.toString('hex');
    return { from: m, to: n, fromRoot: hex(fromRoot), toRoot: hex(tree.root()), proof: proof.map(hex), ...(head ? { head } : {}) };
  });
}
