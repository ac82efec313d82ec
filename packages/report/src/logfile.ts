/*
 * NAME
 *   logfile - the on-disk transparency log of a station: reading, auditing, consistency proofs
 *
 * SYNOPSIS
 *   import { readLog, auditLog, LOG_FILES, encodeLeafRecord, checkLeaf } from '@sluice/report';
 *   readLog(dir: string): LogContents
 *   auditLog(dir: string, pub: PublicKey): LogAudit
 *   encodeLeafRecord(leaf: Uint8Array): Buffer
 *   checkLeaf(leaf: Uint8Array): string | null        null = a report's signed body bytes
 *
 * DESCRIPTION
 *   A log directory holds two append-only files (docs/report-format.md,
 *   "Transparency log"):
 *     leaves   one record per leaf: a 4-byte big-endian length, then the
 *              leaf: a report's signed body bytes (label || 0x00 || JCS body)
 *     heads    one signed tree head per line (treehead.ts file spelling)
 *   Egress writes leaves and makes them durable before it writes the head
 *   that covers them, so after a crash the files may end in a partial
 *   record or line (never covered by a head; egress's recovery cuts it
 *   off) and leaves may follow the last head (not yet published).
 *
 *   auditLog checks, in order, and names the first inconsistency:
 *     every leaf record is whole and each leaf is a report's canonical
 *     signed body; every head parses, is signed by `pub` (both algorithms),
 *     names the same station as the one before, covers no more leaves than
 *     the file holds, and its root is the RFC 9162 root of the first `size`
 *     leaves; consecutive heads never shrink, and the RFC 9162 consistency
 *     proof from each head to the next verifies.
 *
 * BOUNDS
 *   MAX_LEAF_BYTES per leaf (a report's body is under MAX_REPORT_BYTES).
 *   readLog holds every leaf hash in memory (64 bytes per leaf in the
 *   tree), and reads the leaves file in one pass.
 *
 * DIAGNOSTICS
 *   readLog throws the fs error of an unreadable file (ENOENT for a missing
 *   one). auditLog returns { ok: false, problem } for any content.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReportFormatError } from './errors.js';
import { JsonError, parseStrictJson } from './_json.js';
import type { PublicKey } from './keys.js';
import { MerkleTree, leafHash, verifyConsistency } from './merkle.js';
import { canonicalBytes, MAX_REPORT_BYTES, validateReportBody } from './report.js';
import { parseTreeHead, rootBytes, verifyTreeHead, type SignedTreeHead } from './treehead.js';

/** The two files of a log directory. */
export const LOG_FILES = { leaves: 'leaves', heads: 'heads' } as const;
/** Largest leaf a record may hold. */
export const MAX_LEAF_BYTES = MAX_REPORT_BYTES;
/** Bytes of a leaf record's length prefix. */
export const LEAF_HEADER_BYTES = 4;

/** LogContents - what the files hold, whole records only, and what follows them. */
export interface LogContents {
  tree: MerkleTree;
  /** Each leaf's byte offset of its record in `leaves`. */
  offsets: number[];
  /** Bytes of `leaves` that are whole records; anything after is a partial record. */
  leavesEnd: number;
  leavesBytes: number;
  heads: SignedTreeHead[];
  /** Texts of `heads` lines that do not parse (index in the file, problem). */
  badHeads: { line: number; problem: string }[];
  /** Bytes of `heads` up to the last LF; anything after is a partial line. */
  headsEnd: number;
  headsBytes: number;
  leaves: Buffer;
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

/** readLog - parse both files of `dir` (whole records and lines only). */
export function readLog(dir: string): LogContents {
  const leaves = fs.readFileSync(path.join(dir, LOG_FILES.leaves));
  const headsText = fs.readFileSync(path.join(dir, LOG_FILES.heads)).toString('latin1');
  const tree = new MerkleTree();
  const offsets: number[] = [];
  let at = 0;
  while (at + LEAF_HEADER_BYTES <= leaves.length) {
    const len = leaves.readUInt32BE(at);
    if (len === 0 || len > MAX_LEAF_BYTES || at + LEAF_HEADER_BYTES + len > leaves.length) break;
    offsets.push(at);
    tree.append(leafHash(leaves.subarray(at + LEAF_HEADER_BYTES, at + LEAF_HEADER_BYTES + len)));
    at += LEAF_HEADER_BYTES + len;
  }
  const headsEnd = headsText.lastIndexOf('\n') + 1;
  const heads: SignedTreeHead[] = [];
  const badHeads: { line: number; problem: string }[] = [];
  const lines = headsText.slice(0, headsEnd).split('\n').slice(0, -1);
  lines.forEach((line, i) => {
    try {
      heads.push(parseTreeHead(`${line}\n`));
    } catch (err) {
      if (!(err instanceof ReportFormatError)) throw err;
      badHeads.push({ line: i, problem: err.message });
    }
  });
  return { tree, offsets, leavesEnd: at, leavesBytes: leaves.length, heads, badHeads, headsEnd, headsBytes: headsText.length, leaves };
}

/** auditLog - every check of DESCRIPTION; the first failure is the problem. */
export function auditLog(dir: string, pub: PublicKey): LogAudit {
  const c = readLog(dir);
  const n = c.tree.size;
  const fail = (problem: string): LogAudit => ({ ok: false, problem, leaves: n, heads: c.heads.length, unpublished: 0 });
  if (c.leavesEnd !== c.leavesBytes) {
    return fail(`leaves: ${c.leavesBytes - c.leavesEnd} bytes at offset ${c.leavesEnd} are not a whole leaf record (after leaf ${n - 1})`);
  }
  if (c.headsEnd !== c.headsBytes) return fail(`heads: the last line (offset ${c.headsEnd}) has no newline`);
  const firstBad = c.badHeads[0];
  if (firstBad) return fail(`heads line ${firstBad.line + 1}: ${firstBad.problem}`);
  for (let i = 0; i < n; i++) {
    const off = c.offsets[i]!;
    const len = c.leaves.readUInt32BE(off);
    const problem = checkLeaf(c.leaves.subarray(off + LEAF_HEADER_BYTES, off + LEAF_HEADER_BYTES + len));
    if (problem) return fail(`leaf ${i} (offset ${off}): ${problem}`);
  }
  let prev: SignedTreeHead | undefined;
  for (const [i, head] of c.heads.entries()) {
    const where = `tree head ${i + 1} (size ${head.size})`;
    const sig = verifyTreeHead(head, pub);
    if (sig) return fail(`${where}: ${sig}`);
    if (prev && head.station !== prev.station) return fail(`${where}: station changed from the head before`);
    if (head.size > n) return fail(`${where}: covers ${head.size} leaves, the log holds ${n} (leaves removed?)`);
    if (!rootBytes(head).equals(c.tree.rootHash(head.size))) {
      return fail(`${where}: root ${head.root} is not the root of leaves 0..${head.size - 1} (a leaf changed or removed)`);
    }
    if (prev) {
      if (head.size < prev.size) return fail(`${where}: smaller than tree head ${i} (size ${prev.size})`);
      const proof = c.tree.consistencyProof(prev.size, head.size);
      if (!verifyConsistency(prev.size, head.size, rootBytes(prev), rootBytes(head), proof)) {
        return fail(`${where}: not consistent with tree head ${i} (size ${prev.size})`);
      }
    }
    prev = head;
  }
  return { ok: true, leaves: n, heads: c.heads.length, unpublished: n - (prev?.size ?? 0) };
}
