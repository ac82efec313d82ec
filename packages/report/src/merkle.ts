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
    const proof: Buffer[] = [];
    this.path(index, 0, size, proof);
    return proof;
  }

  /** consistencyProof - PROOF(m, D[0:n]), RFC 9162 §2.1.4.1; empty when m is 0 or n. */
  consistencyProof(m: number, n: number = this.size): Buffer[] {
    this.checkIndex('n', n, this.size);
    this.checkIndex('m', m, n);
    const proof: Buffer[] = [];
    if (m > 0 && m < n) this.subproof(m, 0, n, true, proof);
    return proof;
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

  /** path - the audit path of leaf m within D[start:end], appended bottom-up to `out`. */
  private path(m: number, start: number, end: number, out: Buffer[]): void {
    const n = end - start;
    if (n === 1) return;
    const k = largestPowerOfTwoBelow(n);
    if (m < k) {
      this.path(m, start, start + k, out);
      out.push(this.subtree(start + k, end));
    } else {
      this.path(m - k, start + k, end, out);
      out.push(this.subtree(start, start + k));
    }
  }

  /** subproof - SUBPROOF(m, D[start:end], b), appended to `out`. */
  private subproof(m: number, start: number, end: number, b: boolean, out: Buffer[]): void {
    const n = end - start;
    if (m === n) {
      if (!b) out.push(this.subtree(start, end));
      return;
    }
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) {
      this.subproof(m, start, start + k, b, out);
      out.push(this.subtree(start + k, end));
    } else {
      this.subproof(m - k, start + k, end, false, out);
      out.push(this.subtree(start, start + k));
    }
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
