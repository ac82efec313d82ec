/*
 * NAME
 *   merkle - RFC 9162 Merkle tree hashes, inclusion and consistency proofs
 *
 * SYNOPSIS
 *   import { MerkleTree, leafHash, nodeHash, EMPTY_TREE_HASH,
 *            verifyInclusion, verifyConsistency, MERKLE_HASH_BYTES } from '@sluice/report';
 *
 *   leafHash(leaf: Uint8Array): Buffer                 SHA-256(0x00 ‖ leaf)
 *   nodeHash(left, right: Uint8Array): Buffer          SHA-256(0x01 ‖ left ‖ right)
 *   EMPTY_TREE_HASH                                    SHA-256 of no bytes
 *   new MerkleTree()
 *     .append(leafHash): number                        index of the new leaf
 *     .size                                            number of leaves
 *     .leafHashAt(index): Buffer
 *     .rootHash(size = .size): Buffer                  MTH(D[0:size])
 *     .inclusionProof(index, size = .size): Buffer[]   PATH(index, D[0:size])
 *     .consistencyProof(m, n = .size): Buffer[]        PROOF(m, D[0:n])
 *   verifyInclusion(leafHash, index, size, proof, root): boolean
 *   verifyConsistency(m, n, oldRoot, newRoot, proof): boolean
 *
 * DESCRIPTION
 *   The definitions are RFC 9162 (Certificate Transparency 2.0) §2.1:
 *   MTH (§2.1.1) splits n leaves at k, the largest power of two smaller than
 *   n; PATH (§2.1.3.1) and PROOF/SUBPROOF (§2.1.4.1) follow the same split;
 *   the two verifiers are the RFC's algorithms of §2.1.3.2 and §2.1.4.2,
 *   step for step, so that a verifier written from the RFC alone agrees.
 *
 *   The tree keeps, for every height h, the hash of every complete aligned
 *   subtree of 2^h leaves, in one flat buffer per height (64 bytes per leaf
 *   in all). Every left subtree in the RFC's recursion is such a subtree,
 *   so a root or a proof for any size up to .size costs O(log² n) hashes,
 *   not O(n), and a published size never changes its root: appending only
 *   adds subtrees.
 *
 *   Tree sizes and indexes are JavaScript safe integers; the arithmetic
 *   uses division, not 32-bit bit operators.
 *
 * DIAGNOSTICS
 *   The verifiers read hostile proofs and return false for any of them
 *   (wrong length, wrong hash size, index out of range); they never throw.
 *   The tree's own methods throw RangeError, naming the argument, for an
 *   index or size outside the tree: that is a caller's bug.
 */
import { createHash } from 'node:crypto';

/** Bytes of every hash in the tree (SHA-256). */
export const MERKLE_HASH_BYTES = 32;

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** The hash of the empty tree, MTH({}) = SHA-256() (RFC 9162 §2.1.1). */
export const EMPTY_TREE_HASH: Buffer = createHash('sha256').digest();

/** leafHash - SHA-256(0x00 ‖ leaf), the hash of one entry. */
export function leafHash(leaf: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(leaf).digest();
}

/** nodeHash - SHA-256(0x01 ‖ left ‖ right), an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** largestPowerOfTwoBelow - k with k < n ≤ 2k (n ≥ 2). */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** isPowerOfTwo - n = 2^j for some j ≥ 0. */
function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/** log2Exact - j with 2^j = n (n a power of two). */
function log2Exact(n: number): number {
  let j = 0;
  while (2 ** j < n) j += 1;
  return j;
}

/** One height of the tree: `count` hashes of aligned subtrees of equal size, back to back. */
class Level {
  buf = Buffer.alloc(MERKLE_HASH_BYTES * 64);
  count = 0;

  /** push - append one hash, growing the buffer by doubling. */
  push(hash: Uint8Array): void {
    const at = this.count * MERKLE_HASH_BYTES;
    if (at + MERKLE_HASH_BYTES > this.buf.length) {
      const grown = Buffer.alloc(this.buf.length * 2);
      this.buf.copy(grown, 0, 0, at);
      this.buf = grown;
    }
    this.buf.set(hash, at);
    this.count += 1;
  }

  /** at - a copy of the j-th hash (callers may keep or hand it out). */
  at(j: number): Buffer {
    return Buffer.from(this.buf.subarray(j * MERKLE_HASH_BYTES, (j + 1) * MERKLE_HASH_BYTES));
  }
}

/** Range - the leaves D[start:end] of one subtree, as RFC 9162's recursion splits them. */
export type Range = readonly [start: number, end: number];

/** checkSizes - throw a RangeError unless 0 ≤ low ≤ high (safe integers); `name` says which call. */
function checkSizes(name: string, low: number, high: number, lowLimit = 0): void {
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || low < lowLimit || low > high) {
    throw new RangeError(`${name}: ${low} and ${high} are not ${lowLimit} <= ${low} <= ${high}`);
  }
}

/**
 * inclusionRanges - the subtrees whose hashes make PATH(index, D[0:size]) (RFC 9162 §2.1.3.1),
 * bottom-up, the order of the proof.
 */
export function inclusionRanges(index: number, size: number): Range[] {
  checkSizes('inclusionRanges', index, size - 1);
  const out: Range[] = [];
  const path = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n === 1) return;
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      path(m, start, start + k);
      out.push([start + k, end]);
    } else {
      path(m - k, start + k, end);
      out.push([start, start + k]);
    }
  };
  path(index, 0, size);
  return out;
}

/** consistencyRanges - the subtrees whose hashes make PROOF(m, D[0:n]) (RFC 9162 §2.1.4.1); none when m is 0 or n. */
export function consistencyRanges(m: number, n: number): Range[] {
  checkSizes('consistencyRanges', m, n);
  const out: Range[] = [];
  const subproof = (m: number, start: number, end: number, b: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!b) out.push([start, end]);
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      subproof(m, start, start + k, b);
      out.push([start + k, end]);
    } else {
      subproof(m - k, start + k, end, false);
      out.push([start, start + k]);
    }
  };
  if (m > 0 && m < n) subproof(m, 0, n, true);
  return out;
}

/**
 * Frontier - the right edge of a tree: for D[0:size], the hash of each complete aligned subtree
 * of its binary decomposition (one per set bit of size, largest first). That is all a log needs
 * to append a leaf, compute its root, and, with the leaves after it, prove anything about them:
 * every subtree of a proof that ends at or before `size` is one of these (see subtreeHashes).
 * At most 53 hashes, whatever the size.
 */
export class Frontier {
  private constructor(
    private count: number,
    /** Hashes of the decomposition's subtrees, largest (leftmost) first. */
    private readonly edge: Buffer[],
  ) {}

  /** empty - the frontier of the empty tree. */
  static empty(): Frontier {
    return new Frontier(0, []);
  }

  /** restore - the frontier of a tree of `size` leaves from its hashes (as .hashes gave them); throws RangeError if they cannot be. */
  static restore(size: number, hashes: readonly Uint8Array[]): Frontier {
    checkSizes('Frontier.restore', 0, size);
    if (hashes.length !== bitCount(size) || !hashes.every(validHash)) {
      throw new RangeError(`frontier of size ${size}: ${hashes.length} hashes, expected ${bitCount(size)} of ${MERKLE_HASH_BYTES} bytes`);
    }
    return new Frontier(size, hashes.map((h) => Buffer.from(h)));
  }

  /** size - leaves appended. */
  get size(): number {
    return this.count;
  }

  /** hashes - copies of the decomposition's hashes, largest subtree first. */
  get hashes(): Buffer[] {
    return this.edge.map((h) => Buffer.from(h));
  }

  /** clone - an independent copy. */
  clone(): Frontier {
    return new Frontier(this.count, this.hashes);
  }

  /** append - add one leaf hash; returns its index. */
  append(hash: Uint8Array): number {
    if (!validHash(hash)) throw new RangeError(`leaf hash: expected ${MERKLE_HASH_BYTES} bytes`);
    const index = this.count;
    let h: Buffer = Buffer.from(hash);
    // Each trailing 1 bit of the old size is a subtree of the same height as h: merge them.
    for (let c = index; c % 2 === 1; c = half(c)) h = nodeHash(this.edge.pop()!, h);
    this.edge.push(h);
    this.count += 1;
    return index;
  }

  /** root - MTH(D[0:size]): the subtrees folded from the right (RFC 9162 §2.1.1). */
  root(): Buffer {
    if (this.edge.length === 0) return Buffer.from(EMPTY_TREE_HASH);
    let r = this.edge[this.edge.length - 1]!;
    for (let i = this.edge.length - 2; i >= 0; i--) r = nodeHash(this.edge[i]!, r);
    return Buffer.from(r);
  }

  /** subtree - the hash of D[start:end] if it is one of the decomposition's subtrees, else undefined. */
  subtree(start: number, end: number): Buffer | undefined {
    let at = 0;
    for (const h of this.edge) {
      const width = highestPowerOfTwoIn(this.count - at);
      if (at === start && at + width === end) return Buffer.from(h);
      at += width;
    }
    return undefined;
  }
}

/** bitCount - the number of 1 bits of a safe integer. */
function bitCount(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = half(x)) c += x % 2;
  return c;
}

/** highestPowerOfTwoIn - the largest 2^j ≤ n (n ≥ 1). */
function highestPowerOfTwoIn(n: number): number {
  let k = 1;
  while (k * 2 <= n) k *= 2;
  return k;
}

/**
 * subtreeHashes - the hashes of `ranges` (an inclusion or consistency proof's, for leaves at or
 * after m = before.size, or between the sizes m and n) from the frontier `before` and the leaf
 * hashes that follow it, in order, from leaf m on. A range that ends at or before m is one of the
 * frontier's subtrees; one that starts at or after m is hashed from `later`; one that straddles m
 * is split as MTH splits it, into the frontier's subtrees and later leaves (RFC 9162's proofs
 * need no other leaves: see Frontier). `later` is read once, only as far as the last range
 * needs, keeping one frontier per range: a file's leaves can be streamed in.
 * Throws RangeError for a range that needs a leaf before m off the frontier, or after `later`.
 */
export function subtreeHashes(ranges: readonly Range[], before: Frontier, later: Iterable<Uint8Array>): Buffer[] {
  const m = before.size;
  const fed = new Map<string, { start: number; end: number; f: Frontier }>();
  // The hash of D[start:end]: first called to list the later ranges (`done` false), then to compute.
  const hashOf = (start: number, end: number, done: boolean): Buffer | undefined => {
    if (end <= m) {
      const h = before.subtree(start, end);
      if (!h) throw new RangeError(`subtree ${start}..${end} is not on the frontier of size ${m}`);
      return h;
    }
    if (start >= m) {
      const key = `${start}:${end}`;
      if (!done) fed.set(key, { start, end, f: Frontier.empty() });
      return done ? fed.get(key)!.f.root() : undefined;
    }
    const k = largestPowerOfTwoBelow(end - start);
    const left = hashOf(start, start + k, done);
    const right = hashOf(start + k, end, done);
    return done ? nodeHash(left!, right!) : undefined;
  };
  for (const [start, end] of ranges) hashOf(start, end, false);
  const open = [...fed.values()];
  const last = open.reduce((e, r) => Math.max(e, r.end), m);
  let index = m;
  if (index < last) {
    for (const leaf of later) {
      for (const r of open) if (r.start <= index && index < r.end) r.f.append(leaf);
      index += 1;
      if (index === last) break;
    }
  }
  if (index < last) throw new RangeError(`subtreeHashes: leaves end at ${index}, the proof needs ${last}`);
  return ranges.map(([start, end]) => hashOf(start, end, true)!);
}

/**
 * inclusionProofs - PATH(m + i, D[0:n]) for every leaf i of `later`, the leaf hashes appended
 * after the frontier `before` (m = before.size, n = m + later.length): a batch's proofs against
 * the head that covers it. Each subtree among them is hashed once: O(k log k) hashes for k leaves.
 */
export function inclusionProofs(before: Frontier, later: readonly Uint8Array[]): Buffer[][] {
  const m = before.size;
  const n = m + later.length;
  const memo = new Map<string, Buffer>();
  const hashOf = (start: number, end: number): Buffer => {
    if (end <= m) {
      const h = before.subtree(start, end);
      if (!h) throw new RangeError(`subtree ${start}..${end} is not on the frontier of size ${m}`);
      return h;
    }
    if (end - start === 1) return Buffer.from(later[start - m]!);
    const key = `${start}:${end}`;
    let h = memo.get(key);
    if (!h) {
      const k = largestPowerOfTwoBelow(end - start);
      h = nodeHash(hashOf(start, start + k), hashOf(start + k, end));
      memo.set(key, h);
    }
    return h;
  };
  return later.map((_, i) => inclusionRanges(m + i, n).map(([start, end]) => hashOf(start, end)));
}

/** An append-only RFC 9162 tree over leaf hashes. */
export class MerkleTree {
  private readonly levels: Level[] = [new Level()];

  /** Number of leaves. */
  get size(): number {
    return this.levels[0]!.count;
  }

  /** append - add one leaf hash (see leafHash); returns its index. */
  append(hash: Uint8Array): number {
    if (hash.length !== MERKLE_HASH_BYTES) {
      throw new RangeError(`leaf hash: ${hash.length} bytes, expected ${MERKLE_HASH_BYTES}`);
    }
    const index = this.size;
    this.levels[0]!.push(hash);
    // Each time a height holds an even count, its last two hashes complete a subtree one higher.
    for (let h = 0; this.levels[h]!.count % 2 === 0; h += 1) {
      const level = this.levels[h]!;
      if (this.levels[h + 1] === undefined) this.levels.push(new Level());
      this.levels[h + 1]!.push(nodeHash(level.at(level.count - 2), level.at(level.count - 1)));
    }
    return index;
  }

  /** leafHashAt - the hash of leaf `index`. */
  leafHashAt(index: number): Buffer {
    this.checkIndex('index', index, this.size - 1);
    return this.levels[0]!.at(index);
  }

  /** rootHash - MTH(D[0:size]). */
  rootHash(size: number = this.size): Buffer {
    this.checkIndex('size', size, this.size);
    return size === 0 ? Buffer.from(EMPTY_TREE_HASH) : this.subtree(0, size);
  }

  /** inclusionProof - PATH(index, D[0:size]), RFC 9162 §2.1.3.1. */
  inclusionProof(index: number, size: number = this.size): Buffer[] {
    this.checkIndex('size', size, this.size);
    this.checkIndex('index', index, size - 1);
    return inclusionRanges(index, size).map(([start, end]) => this.subtree(start, end));
  }

  /** consistencyProof - PROOF(m, D[0:n]), RFC 9162 §2.1.4.1; empty when m is 0 or n. */
  consistencyProof(m: number, n: number = this.size): Buffer[] {
    this.checkIndex('n', n, this.size);
    this.checkIndex('m', m, n);
    return consistencyRanges(m, n).map(([start, end]) => this.subtree(start, end));
  }

  /** subtree - MTH(D[start:end]) with start aligned as the RFC's recursion leaves it. */
  private subtree(start: number, end: number): Buffer {
    const n = end - start;
    if (isPowerOfTwo(n) && start % n === 0) {
      const h = log2Exact(n);
      return this.levels[h]!.at(start / n);
    }
    const k = largestPowerOfTwoBelow(n);
    return nodeHash(this.subtree(start, start + k), this.subtree(start + k, end));
  }

  /** checkIndex - throw a RangeError unless 0 ≤ value ≤ max and value is a safe integer. */
  private checkIndex(name: string, value: number, max: number): void {
    if (!Number.isSafeInteger(value) || value < 0 || value > max) {
      throw new RangeError(`${name} ${value} outside 0..${max} (tree of ${this.size} leaves)`);
    }
  }
}

/** validHash - a hostile value is a 32-byte Uint8Array. */
function validHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === MERKLE_HASH_BYTES;
}

/** validProof - an array of at most 64 hashes (a safe-integer tree is never deeper). */
function validProof(proof: unknown): proof is Uint8Array[] {
  return Array.isArray(proof) && proof.length <= 64 && proof.every(validHash);
}

/** equal - byte equality of two 32-byte hashes. */
function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** half - fn >> 1 for safe integers beyond 32 bits. */
function half(x: number): number {
  return Math.floor(x / 2);
}

/**
 * verifyInclusion - RFC 9162 §2.1.3.2: does `proof` show leaf `hash` at `index`
 * in the tree of `size` leaves whose root is `root`?
 */
export function verifyInclusion(
  hash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!validHash(hash) || !validHash(root) || !validProof(proof)) return false;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size)) return false;
  if (index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = hash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(r, root);
}

/**
 * verifyConsistency - RFC 9162 §2.1.4.2: does `proof` show that the tree of
 * `m` leaves with root `oldRoot` is a prefix of the tree of `n` leaves with
 * root `newRoot`? For m = n the proof is empty and the roots are equal; for
 * m = 0 the proof is empty (the empty tree is a prefix of every tree).
 */
export function verifyConsistency(
  m: number,
  n: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!validHash(oldRoot) || !validHash(newRoot) || !validProof(proof)) return false;
  if (!Number.isSafeInteger(m) || !Number.isSafeInteger(n) || m < 0 || m > n) return false;
  if (m === 0) return proof.length === 0 && equal(oldRoot, EMPTY_TREE_HASH);
  if (m === n) return proof.length === 0 && equal(oldRoot, newRoot);
  if (proof.length === 0) return false;
  const path: Uint8Array[] = isPowerOfTwo(m) ? [oldRoot, ...proof] : [...proof];
  let fn = m - 1;
  let sn = n - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}
