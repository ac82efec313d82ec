/*
 * merkle.test - the RFC 9162 tree against a naive reference written from the
 * RFC's recursive definitions (slices, no caching), the published
 * Certificate Transparency test data, and every single-byte corruption.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_TREE_HASH,
  Frontier,
  MerkleTree,
  consistencyRanges,
  inclusionProofs,
  inclusionRanges,
  subtreeHashes,
  leafHash,
  nodeHash,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

// ---- the naive reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 read literally ----

const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const refLeaf = (d: Uint8Array): Buffer => sha(Uint8Array.of(0), d);
const refK = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);

function refMth(d: Uint8Array[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return refLeaf(d[0]!);
  const k = refK(d.length);
  return sha(Uint8Array.of(1), refMth(d.slice(0, k)), refMth(d.slice(k)));
}

function refPath(m: number, d: Uint8Array[]): Buffer[] {
  if (d.length === 1) return [];
  const k = refK(d.length);
  return m < k
    ? [...refPath(m, d.slice(0, k)), refMth(d.slice(k))]
    : [...refPath(m - k, d.slice(k)), refMth(d.slice(0, k))];
}

function refSubproof(m: number, d: Uint8Array[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [refMth(d)];
  const k = refK(d.length);
  return m <= k
    ? [...refSubproof(m, d.slice(0, k), b), refMth(d.slice(k))]
    : [...refSubproof(m - k, d.slice(k), false), refMth(d.slice(0, k))];
}

// ---- helpers ----

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

function entries(n: number, seed = 0): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => Buffer.from(`entry ${seed}/${i}`));
}

function treeOf(d: Uint8Array[]): MerkleTree {
  const t = new MerkleTree();
  for (const e of d) t.append(leafHash(e));
  return t;
}

/** flipped - a copy of `hashes` with one bit of byte `at` of hash `which` flipped. */
function flipped(hashes: readonly Uint8Array[], which: number, at: number): Buffer[] {
  return hashes.map((h, i) => {
    const c = Buffer.from(h);
    if (i === which) c[at] = c[at]! ^ 0x01;
    return c;
  });
}

function flip(h: Uint8Array, at: number): Buffer {
  return flipped([h], 0, at)[0]!;
}

// Certificate Transparency's test data (RFC 6962 reference implementation,
// shared by every CT log library): 8 entries, the roots of sizes 1..8, and
// two audit paths in the tree of 8.
const CT_ENTRIES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(unhex);
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_PATHS: { index: number; proof: string[] }[] = [
  {
    index: 0,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

describe('known answers', () => {
  it('the empty tree hashes to SHA-256 of no bytes', () => {
    expect(hex(EMPTY_TREE_HASH)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(new MerkleTree().rootHash())).toBe(hex(EMPTY_TREE_HASH));
  });

  it('leaf and node hashes carry the 0x00 and 0x01 prefixes', () => {
    const a = Buffer.from('a');
    const b = Buffer.from('b');
    expect(hex(leafHash(a))).toBe(hex(sha(Uint8Array.of(0), a)));
    expect(hex(nodeHash(a, b))).toBe(hex(sha(Uint8Array.of(1), a, b)));
  });

  it('matches the Certificate Transparency roots for sizes 1..8 and the reference', () => {
    const t = treeOf(CT_ENTRIES);
    for (let n = 1; n <= 8; n += 1) {
      expect(hex(t.rootHash(n)), `size ${n}`).toBe(CT_ROOTS[n - 1]);
      expect(hex(refMth(CT_ENTRIES.slice(0, n))), `reference, size ${n}`).toBe(CT_ROOTS[n - 1]);
    }
  });

  it('matches the Certificate Transparency audit paths in the tree of 8', () => {
    const t = treeOf(CT_ENTRIES);
    for (const { index, proof } of CT_PATHS) {
      expect(t.inclusionProof(index, 8).map(hex)).toEqual(proof);
      expect(verifyInclusion(leafHash(CT_ENTRIES[index]!), index, 8, proof.map(unhex), unhex(CT_ROOTS[7]!))).toBe(
        true,
      );
    }
  });

  it('agrees with the reference for every size, index and prefix up to 40 leaves', () => {
    const d = entries(40);
    const t = treeOf(d);
    for (let n = 1; n <= 40; n += 1) {
      const slice = d.slice(0, n);
      expect(hex(t.rootHash(n))).toBe(hex(refMth(slice)));
      for (let m = 0; m < n; m += 1) {
        expect(t.inclusionProof(m, n).map(hex), `PATH(${m}, D[${n}])`).toEqual(refPath(m, slice).map(hex));
      }
      for (let m = 1; m < n; m += 1) {
        expect(t.consistencyProof(m, n).map(hex), `PROOF(${m}, D[${n}])`).toEqual(
          refSubproof(m, slice, true).map(hex),
        );
      }
    }
  });
});

describe('inclusion proofs (sizes 1..300)', () => {
  const d = entries(300, 7);
  const t = treeOf(d);

  it('every proof the tree makes verifies and equals the reference path', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        ([n, m]) => {
          const proof = t.inclusionProof(m, n);
          expect(proof.map(hex)).toEqual(refPath(m, d.slice(0, n)).map(hex));
          expect(verifyInclusion(leafHash(d[m]!), m, n, proof, t.rootHash(n))).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('any flipped byte of the leaf, the proof or the root, or another index, fails', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        fc.nat(),
        fc.integer({ min: 0, max: 31 }),
        ([n, m], pick, at) => {
          const leaf = leafHash(d[m]!);
          const root = t.rootHash(n);
          const proof = t.inclusionProof(m, n);
          expect(verifyInclusion(flip(leaf, at), m, n, proof, root)).toBe(false);
          expect(verifyInclusion(leaf, m, n, proof, flip(root, at))).toBe(false);
          if (proof.length > 0) {
            expect(verifyInclusion(leaf, m, n, flipped(proof, pick % proof.length, at), root)).toBe(false);
            expect(verifyInclusion(leaf, m, n, proof.slice(1), root)).toBe(false);
          }
          expect(verifyInclusion(leaf, m, n, [...proof, root], root)).toBe(false);
          const other = (m + 1 + (pick % n)) % n;
          if (other !== m) expect(verifyInclusion(leaf, other, n, proof, root)).toBe(false);
          expect(verifyInclusion(leaf, n, n, proof, root)).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('consistency proofs (sizes 1..300)', () => {
  const d = entries(300, 11);
  const t = treeOf(d);
  const pair = fc
    .integer({ min: 2, max: 300 })
    .chain((n) => fc.tuple(fc.integer({ min: 1, max: n - 1 }), fc.constant(n)));

  it('every proof for m < n verifies and equals the reference', () => {
    fc.assert(
      fc.property(pair, ([m, n]) => {
        const proof = t.consistencyProof(m, n);
        expect(proof.map(hex)).toEqual(refSubproof(m, d.slice(0, n), true).map(hex));
        expect(verifyConsistency(m, n, t.rootHash(m), t.rootHash(n), proof)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('any flipped byte of either root or the proof, or another old size, fails', () => {
    fc.assert(
      fc.property(pair, fc.nat(), fc.integer({ min: 0, max: 31 }), ([m, n], pick, at) => {
        const a = t.rootHash(m);
        const b = t.rootHash(n);
        const proof = t.consistencyProof(m, n);
        expect(verifyConsistency(m, n, flip(a, at), b, proof)).toBe(false);
        expect(verifyConsistency(m, n, a, flip(b, at), proof)).toBe(false);
        expect(verifyConsistency(m, n, a, b, flipped(proof, pick % proof.length, at))).toBe(false);
        expect(verifyConsistency(m, n, a, b, proof.slice(0, -1))).toBe(false);
        expect(verifyConsistency(m, n, a, b, [])).toBe(false);
        if (m + 1 < n) expect(verifyConsistency(m + 1, n, a, b, proof)).toBe(false);
        if (m > 1) expect(verifyConsistency(m - 1, n, a, b, proof)).toBe(false);
      }),
      { numRuns: 400 },
    );
  });

  it('a tree whose prefix was rewritten is not consistent with the old head', () => {
    fc.assert(
      fc.property(pair, fc.nat(), ([m, n], pick) => {
        const changed = [...d.slice(0, n)];
        changed[pick % m] = Buffer.from('rewritten');
        const forged = treeOf(changed);
        expect(verifyConsistency(m, n, t.rootHash(m), forged.rootHash(n), forged.consistencyProof(m, n))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('equal sizes need an empty proof and equal roots; size 0 is the empty tree', () => {
    const r = t.rootHash(5);
    expect(t.consistencyProof(5, 5)).toEqual([]);
    expect(verifyConsistency(5, 5, r, r, [])).toBe(true);
    expect(verifyConsistency(5, 5, r, t.rootHash(6), [])).toBe(false);
    expect(verifyConsistency(5, 5, r, r, [r])).toBe(false);
    expect(verifyConsistency(0, 5, EMPTY_TREE_HASH, r, [])).toBe(true);
    expect(verifyConsistency(0, 5, r, r, [])).toBe(false);
  });
});

describe('bad input', () => {
  const t = treeOf(entries(10));
  const root = t.rootHash();
  const proof = t.inclusionProof(3);

  it('the verifiers return false, never throw, for hostile values', () => {
    const leaf = t.leafHashAt(3);
    const bad: unknown[] = [undefined, null, 'ab', 3, {}, new Uint8Array(31), new Uint8Array(33)];
    for (const v of bad) {
      expect(verifyInclusion(v as Uint8Array, 3, 10, proof, root)).toBe(false);
      expect(verifyInclusion(leaf, 3, 10, proof, v as Uint8Array)).toBe(false);
      expect(verifyInclusion(leaf, 3, 10, [v as Uint8Array], root)).toBe(false);
      expect(verifyConsistency(4, 10, v as Uint8Array, root, t.consistencyProof(4))).toBe(false);
    }
    for (const i of [-1, 1.5, Number.NaN, 2 ** 53, Infinity]) {
      expect(verifyInclusion(leaf, i, 10, proof, root)).toBe(false);
      expect(verifyInclusion(leaf, 3, i, proof, root)).toBe(false);
      expect(verifyConsistency(i, 10, root, root, [])).toBe(false);
    }
    expect(verifyInclusion(leaf, 3, 10, 'proof' as unknown as Uint8Array[], root)).toBe(false);
    expect(verifyInclusion(leaf, 3, 10, Array(65).fill(root), root)).toBe(false);
  });

  it('the tree refuses sizes and indexes outside itself, naming them', () => {
    expect(() => t.rootHash(11)).toThrow(/size 11 outside 0\.\.10/);
    expect(() => t.inclusionProof(10)).toThrow(/index 10 outside 0\.\.9/);
    expect(() => t.inclusionProof(0, 0)).toThrow(/index 0 outside/);
    expect(() => t.consistencyProof(6, 5)).toThrow(/m 6 outside 0\.\.5/);
    expect(() => t.leafHashAt(-1)).toThrow(/index -1/);
    expect(() => t.append(new Uint8Array(31))).toThrow(/leaf hash: 31 bytes, expected 32/);
  });

  it('a published root never changes as the tree grows', () => {
    const g = treeOf(entries(5));
    const r5 = g.rootHash();
    for (const e of entries(20, 3)) g.append(leafHash(e));
    expect(hex(g.rootHash(5))).toBe(hex(r5));
  });
});

describe('the frontier: a bounded right edge proves what the whole tree proves (sizes 0..300)', () => {
  const frontierOf = (d: Uint8Array[]): Frontier => {
    const f = Frontier.empty();
    for (const e of d) f.append(leafHash(e));
    return f;
  };

  it('its root is the reference root for every size, and it keeps one hash per set bit of the size', () => {
    const d = entries(300, 3);
    const f = Frontier.empty();
    expect(hex(f.root())).toBe(hex(EMPTY_TREE_HASH));
    for (let n = 1; n <= 300; n++) {
      f.append(leafHash(d[n - 1]!));
      expect(hex(f.root()), `size ${n}`).toBe(hex(refMth(d.slice(0, n))));
      expect(f.hashes.length).toBe(n.toString(2).split('').filter((b) => b === '1').length);
    }
  });

  it('restored from its size and hashes, it goes on as the original (and refuses hashes that cannot be)', () => {
    const d = entries(77, 4);
    const f = frontierOf(d.slice(0, 45));
    const g = Frontier.restore(45, f.hashes);
    for (const e of d.slice(45)) {
      f.append(leafHash(e));
      g.append(leafHash(e));
    }
    expect(hex(g.root())).toBe(hex(refMth(d)));
    expect(() => Frontier.restore(45, f.hashes.slice(1))).toThrow(/frontier of size 45: 3 hashes, expected 4/);
    expect(() => Frontier.restore(-1, [])).toThrow(RangeError);
  });

  it("a batch's inclusion proofs from the frontier before it equal the reference paths (any split, any batch)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 70 }), (m, k) => {
        const d = entries(m + k, m);
        const proofs = inclusionProofs(frontierOf(d.slice(0, m)), d.slice(m).map(leafHash));
        const root = refMth(d);
        return proofs.every(
          (p, i) => p.map(hex).join() === refPath(m + i, d).map(hex).join() && verifyInclusion(leafHash(d[m + i]!), m + i, m + k, p, root),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('streamed leaves after a frontier give the reference consistency proof and inclusion proofs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.nat(), (m, extra, pick) => {
        const n = m + extra;
        const d = entries(n, n);
        const before = frontierOf(d.slice(0, m));
        const later = d.slice(m).map(leafHash);
        const proof = subtreeHashes(consistencyRanges(m, n), before, later);
        if (proof.map(hex).join() !== refSubproof(m, d, true).map(hex).join() && m < n) return false;
        if (!verifyConsistency(m, n, refMth(d.slice(0, m)), refMth(d), proof)) return false;
        if (extra === 0) return true;
        const index = m + (pick % extra);
        return subtreeHashes(inclusionRanges(index, n), before, later).map(hex).join() === refPath(index, d).map(hex).join();
      }),
      { numRuns: 400 },
    );
  });

  it('refuses a proof it cannot make from what it was given, naming why', () => {
    const d = entries(10, 9);
    const before = frontierOf(d.slice(0, 6));
    // Leaf 2 lies under the frontier's subtree 0..4: its path needs leaves the frontier no longer has.
    expect(() => subtreeHashes(inclusionRanges(2, 10), before, d.slice(6).map(leafHash))).toThrow(/not on the frontier of size 6/);
    expect(() => subtreeHashes(consistencyRanges(6, 10), before, d.slice(6, 8).map(leafHash))).toThrow(/leaves end at 8, the proof needs 10/);
    expect(() => consistencyRanges(5, 4)).toThrow(RangeError);
  });
});
