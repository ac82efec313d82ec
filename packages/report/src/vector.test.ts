/*
 * NAME
 *   vector.test - the committed test vectors still hold, byte for byte, and docs/ carries them
 *
 * DESCRIPTION
 *   test-vector/vector.json (sluice-report/2): rebuilds keys, key files,
 *   signed bytes, signatures (deterministic ML-DSA) and report files from the
 *   vector's fixed inputs and compares them with the stored values, then
 *   verifies the stored reports. If this fails after a deliberate format
 *   change, bump the format version, run scripts/make-vector.mjs and update
 *   docs/report-format.md.
 *
 *   test-vector/vector-v1.json (sluice-report/1): reports as earlier versions
 *   issued them. Re-signed from the same inputs below this package's API
 *   (this version signs only sluice-report/2), and verified: an archived
 *   report must keep verifying with the same exit code, except that a
 *   refusal at pickup now matches no file.
 *
 *   test-vector/vector-v3.json (sluice-report/3): the inputs of a log of five
 *   reports under two signed tree heads (sizes 3 and 5). logFiles below
 *   rebuilds, from them and the fixed key, the log directory, every report
 *   with its inclusion proof, the leaf and tree head bytes, every leaf hash
 *   and root and the consistency proof 3 -> 5; a naive RFC 9162 tree written
 *   from the RFC's definitions in this file (not merkle.ts) must give the
 *   same hashes and proofs.
 *
 *   docs/report-vector/ holds all vectors as plain files (key files, the
 *   file, report files, signed bytes in hex) for readers without packages/;
 *   every file there must equal the vector's value, and nothing else may be
 *   there but its README.md.
 *
 *   When /usr/bin/python3 has `cryptography`, the independent Python verifier
 *   (scripts/verify_report.py) checks the stored reports too: its JCS and its
 *   Ed25519 must agree with ours, and so must its RFC 9162 inclusion and
 *   consistency verification (sluice-report/3). ML-DSA there needs liboqs,
 *   absent here.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hybridSign } from './_hybrid.js';
import { secretKeyMaterial } from './keys.js';
import {
  assembleLogged,
  auditLog,
  canonicalBytes,
  encodeLeafRecord,
  encodePublicKey,
  generateKeys,
  leafHash,
  LOGGED_REPORT_FORMAT,
  loadSecretKey,
  MerkleTree,
  neverCopied,
  parsePublicKey,
  parseReport,
  parseTreeHead,
  Frontier,
  proveConsistency,
  readLeaves,
  serializeReport,
  serializeTreeHead,
  signReport,
  signTreeHead,
  TREE_HEAD_FORMAT,
  treeHeadBytes,
  verifyConsistency,
  verifyInclusion,
  verifyReport,
  verifyTreeHead,
  writeKeyFiles,
  type ReportBody,
  type VerifyCode,
} from './index.js';

interface VectorCase {
  name: 'accepted' | 'rejected' | 'refused';
  label: string;
  body: ReportBody;
  signedBytesHex: string;
  signedBytesSha256: string;
  signature: { context?: string; ed25519: string; mldsa65: string };
  reportFile: string;
  verify: { file: { size: number; sha256hex: string }; reportOnly: boolean; code: VerifyCode; exitCode: number };
}
interface Vector {
  seeds: { ed25519Hex: string; mldsa65Hex: string };
  keyId: string;
  secretKeyFile: string;
  publicKeyFile: string;
  file: { contentUtf8: string; size: number; sha256: string };
  cases: VectorCase[];
}

/** The inputs of the sluice-report/3 vector (scripts/make-vector.mjs writes them). */
interface VectorV3 {
  leaves: { label: string; body: ReportBody; expect: { code: VerifyCode; exitCode: number } }[];
  heads: { size: number; time: string }[];
  consistency: { from: number; to: number };
}

const readVector = (name: string): Vector => JSON.parse(readFileSync(fileURLToPath(new URL(`../test-vector/${name}`, import.meta.url)), 'utf8')) as Vector;
const vector = readVector('vector.json');
const vectorV1 = readVector('vector-v1.json');
const vectorV3 = JSON.parse(readFileSync(fileURLToPath(new URL('../test-vector/vector-v3.json', import.meta.url)), 'utf8')) as VectorV3;
const keys = generateKeys({ ed25519: Buffer.from(vector.seeds.ed25519Hex, 'hex'), mldsa65: Buffer.from(vector.seeds.mldsa65Hex, 'hex') });
const tmp = mkdtempSync(join(tmpdir(), 'sluice-report-vector-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const EMPTY = { size: 0, sha256hex: sha('') };

describe('test vector: keys', () => {
  it('has the documented seeds and key id', () => {
    expect(vector.seeds.ed25519Hex).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(vector.seeds.mldsa65Hex).toBe('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f');
    expect(keys.public.keyId).toBe(vector.keyId);
    // The same key signed the sluice-report/1 vector: only the reports differ.
    expect([vectorV1.seeds, vectorV1.keyId, vectorV1.publicKeyFile, vectorV1.secretKeyFile, vectorV1.file]).toEqual([vector.seeds, vector.keyId, vector.publicKeyFile, vector.secretKeyFile, vector.file]);
    // RFC 8032 section 7.1 style check: the Ed25519 public key of seed 00..1f.
    expect(Buffer.from(keys.public.ed25519).toString('hex')).toBe('03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8');
  });

  it('key files are byte for byte what writeKeyFiles writes', () => {
    expect(encodePublicKey(keys.public)).toBe(vector.publicKeyFile);
    const w = writeKeyFiles(tmp, { keys, name: 'vector' });
    expect(readFileSync(w.secretPath, 'utf8')).toBe(vector.secretKeyFile);
    expect(readFileSync(w.publicPath, 'utf8')).toBe(vector.publicKeyFile);
    expect(loadSecretKey(w.secretPath).keyId).toBe(vector.keyId);
    expect(parsePublicKey(vector.publicKeyFile)).toEqual(keys.public);
  });
});

describe.each(vector.cases.map((c) => [c.label, c] as const))('test vector: %s', (_label, c) => {
  it('is in the format this version writes', () => {
    expect(c.body.format).toBe('sluice-report/2');
    expect(c.signature).not.toHaveProperty('context');
  });

  const pub = parsePublicKey(vector.publicKeyFile);

  it('signed bytes match the stored hex and digest', () => {
    const bytes = Buffer.from(canonicalBytes(c.body));
    expect(bytes.toString('hex')).toBe(c.signedBytesHex);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(c.signedBytesSha256);
  });

  it('deterministic signing reproduces the stored report file exactly', () => {
    const signed = signReport(c.body, keys.secret, { deterministic: true });
    expect(signed.signature).toEqual(c.signature);
    expect(serializeReport(signed)).toBe(c.reportFile);
  });

  it('the stored report verifies with the stored public key, with the documented code', () => {
    expect(c.verify.file).toEqual({ size: vector.file.size, sha256hex: vector.file.sha256 });
    expect(createHash('sha256').update(vector.file.contentUtf8).digest('hex')).toBe(vector.file.sha256);
    const r = verifyReport({ reportText: c.reportFile, publicKey: pub, file: c.verify.file, reportOnly: false });
    expect([r.code, r.exitCode]).toEqual([c.verify.code, c.verify.exitCode]);
    expect(verifyReport({ reportText: c.reportFile, publicKey: pub, reportOnly: true }).code).toBe('ok');
    expect(parseReport(c.reportFile)).toEqual({ ...c.body, signature: c.signature });
    expect(neverCopied(c.body)).toBe(c.name === 'refused');
  });

  it('hedged (production) signing gives another ML-DSA signature that verifies just the same', () => {
    const signed = signReport(c.body, keys.secret);
    expect(signed.signature.mldsa65).not.toBe(c.signature.mldsa65);
    expect(signed.signature.ed25519).toBe(c.signature.ed25519);
    expect(verifyReport({ reportText: serializeReport(signed), publicKey: pub, reportOnly: true }).code).toBe('ok');
  });
});

describe('test vector: an upload refused at pickup', () => {
  const pub = parsePublicKey(vector.publicKeyFile);
  const refused = vector.cases.filter((c) => c.name === 'refused');
  const v1Refused = vectorV1.cases.filter((c) => c.name === 'refused');

  it('sluice-report/2: no digest, the size ingress saw; matches no file, not even an empty one', () => {
    expect(refused).toHaveLength(1);
    const c = refused[0]!;
    expect([c.body.sha256, c.body.size]).toEqual([null, 5368709120]);
    expect(c.reportFile).toContain('"sha256":null');
    const r = verifyReport({ reportText: c.reportFile, publicKey: pub, file: EMPTY, reportOnly: false });
    expect([r.code, r.exitCode]).toEqual(['mismatch', 4]);
    expect(r.reason).toMatch(/never copied/);
    expect(verifyReport({ reportText: c.reportFile, publicKey: pub, reportOnly: true }).reason).toMatch(/never copied \(refused at pickup, 5368709120 bytes seen at pickup\)/);
  });

  it('sluice-report/1 stated size 0 and the digest of empty input; an empty file is still a mismatch, not a match', () => {
    expect(v1Refused).toHaveLength(1);
    const c = v1Refused[0]!;
    expect([c.body.sha256, c.body.size]).toEqual([EMPTY.sha256hex, 0]);
    const r = verifyReport({ reportText: c.reportFile, publicKey: pub, file: EMPTY, reportOnly: false });
    expect([r.code, r.exitCode]).toEqual(['mismatch', 4]);
    expect(verifyReport({ reportText: c.reportFile, publicKey: pub, reportOnly: true }).code).toBe('ok');
  });
});

describe.each(vectorV1.cases.map((c) => [c.label, c] as const))('test vector sluice-report/1 (as issued): %s', (_label, c) => {
  const pub = parsePublicKey(vectorV1.publicKeyFile);

  it('has the unauthenticated context beside the signatures, equal to the label', () => {
    expect(c.body.format).toBe('sluice-report/1');
    expect(c.signature.context).toBe('sluice-report/1');
  });

  it('signed bytes are the sluice-report/1 label, 0x00 and the JCS body, as stored', () => {
    const bytes = Buffer.from(canonicalBytes(c.body));
    expect(bytes.subarray(0, 16).toString('latin1')).toBe('sluice-report/1\u0000');
    expect(bytes.toString('hex')).toBe(c.signedBytesHex);
    expect(sha(bytes)).toBe(c.signedBytesSha256);
  });

  it('re-signing the same bytes deterministically gives the stored signatures; this version will not sign it as a report', () => {
    const sigs = hybridSign(canonicalBytes(c.body), secretKeyMaterial(keys.secret).keys, true);
    expect({ context: 'sluice-report/1', ed25519: Buffer.from(sigs.ed25519).toString('base64'), mldsa65: Buffer.from(sigs.mldsa65).toString('base64') }).toEqual(c.signature);
    expect(serializeReport({ ...c.body, signature: c.signature })).toBe(c.reportFile);
    expect(() => signReport(c.body, keys.secret, { deterministic: true })).toThrow(/this version signs only "sluice-report\/2"/);
  });

  it('still verifies, with the documented code', () => {
    const r = verifyReport({ reportText: c.reportFile, publicKey: pub, file: c.verify.file, reportOnly: false });
    expect([r.code, r.exitCode]).toEqual([c.verify.code, c.verify.exitCode]);
    expect(verifyReport({ reportText: c.reportFile, publicKey: pub, reportOnly: true }).code).toBe('ok');
    expect(parseReport(c.reportFile)).toEqual({ ...c.body, signature: c.signature });
  });
});

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const docsDir = fileURLToPath(new URL('../../../docs/report-vector/', import.meta.url));

/**
 * logFiles - name -> bytes of every sluice-report/3 file under docs/report-vector/, rebuilt from
 * the vector's inputs the way egress builds them (the same mapping is in scripts/make-vector.mjs):
 * leaf i is report i's signed body, each batch ends with a head over the whole tree, and each
 * report carries the inclusion proof under the head of its batch.
 */
function logFiles(): Record<string, Buffer> {
  const tree = new MerkleTree();
  const leaves = vectorV3.leaves.map((c) => canonicalBytes(c.body));
  for (const leaf of leaves) tree.append(leafHash(leaf));
  const station = vectorV3.leaves[0]!.body.station;
  const heads = vectorV3.heads.map(({ size, time }) =>
    signTreeHead({ format: TREE_HEAD_FORMAT, station, key: keys.public.keyId, size, root: hex(tree.rootHash(size)), time }, keys.secret, { deterministic: true }),
  );
  const files: Record<string, Buffer> = {
    'log/leaves': Buffer.concat(leaves.map((l) => encodeLeafRecord(l))),
    'log/heads': Buffer.from(heads.map((h) => serializeTreeHead(h)).join('')),
  };
  vectorV3.leaves.forEach((c, i) => {
    const head = heads.find((h) => h.size > i)!;
    files[`log-${i}.sluice.json`] = Buffer.from(serializeReport(assembleLogged(c.body, { index: i, proof: tree.inclusionProof(i, head.size), head })));
    files[`log-${i}.leaf.hex`] = Buffer.from(`${hex(leaves[i]!)}\n`);
  });
  for (const h of heads) {
    files[`head-${h.size}.json`] = Buffer.from(serializeTreeHead(h));
    files[`head-${h.size}.signed.hex`] = Buffer.from(`${hex(treeHeadBytes(h))}\n`);
  }
  const roots = Array.from({ length: tree.size + 1 }, (_, n) => hex(tree.rootHash(n)));
  files['log-hashes.json'] = Buffer.from(`${JSON.stringify({ leafHashes: leaves.map((l) => hex(leafHash(l))), roots }, null, 2)}\n`);
  const { from, to } = vectorV3.consistency;
  const toHead = heads.find((h) => h.size === to);
  const prove = { from, to, fromRoot: roots[from], toRoot: roots[to], proof: tree.consistencyProof(from, to).map(hex), ...(toHead ? { head: toHead } : {}) };
  files[`consistency-${from}-${to}.json`] = Buffer.from(`${JSON.stringify(prove)}\n`);
  return files;
}
const v3Files = logFiles();
const docFile = (name: string): Buffer => readFileSync(join(docsDir, name));
const docJson = <T>(name: string): T => JSON.parse(docFile(name).toString('utf8')) as T;

/*
 * A naive RFC 9162 tree over entries (leaf bytes), written from the definitions of section 2.1
 * and independent of merkle.ts: MTH (2.1.1), PATH (2.1.3.1), PROOF and SUBPROOF (2.1.4.1).
 */
const H = (...parts: Uint8Array[]): Buffer => createHash('sha256').update(Buffer.concat(parts)).digest();
/** split - k, the largest power of two smaller than n (n > 1). */
const split = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
const mth = (d: Buffer[]): Buffer =>
  d.length === 0 ? H() : d.length === 1 ? H(Buffer.of(0), d[0]!) : H(Buffer.of(1), mth(d.slice(0, split(d.length))), mth(d.slice(split(d.length))));
const pathOf = (m: number, d: Buffer[]): Buffer[] => {
  if (d.length <= 1) return [];
  const k = split(d.length);
  return m < k ? [...pathOf(m, d.slice(0, k)), mth(d.slice(k))] : [...pathOf(m - k, d.slice(k)), mth(d.slice(0, k))];
};
const subproof = (m: number, d: Buffer[], b: boolean): Buffer[] => {
  if (m === d.length) return b ? [] : [mth(d)];
  const k = split(d.length);
  return m <= k ? [...subproof(m, d.slice(0, k), b), mth(d.slice(k))] : [...subproof(m - k, d.slice(k), false), mth(d.slice(0, k))];
};

describe('test vector sluice-report/3: a log of five reports and two signed tree heads', () => {
  const pub = parsePublicKey(vector.publicKeyFile);
  /** The leaves as the log directory holds them: 4-byte big-endian length, then the leaf. */
  const leaves: Buffer[] = [];
  const leavesFile = docFile('log/leaves');
  for (let at = 0; at < leavesFile.length; ) {
    const len = leavesFile.readUInt32BE(at);
    leaves.push(leavesFile.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  const hashes = docJson<{ leafHashes: string[]; roots: string[] }>('log-hashes.json');
  const headLines = docFile('log/heads').toString('latin1').split('\n').slice(0, -1);
  /** The heads of log/heads, parsed inside each test so that a damaged file fails tests, not the suite. */
  let parsed: ReturnType<typeof parseTreeHead>[] | undefined;
  const headsOf = () => (parsed ??= headLines.map((l) => parseTreeHead(`${l}\n`)));

  it('has the documented shape: five leaves, heads of sizes 3 and 5 (neither a power of two), the same key and file as sluice-report/2', () => {
    const heads = headsOf();
    expect(vectorV3.leaves.map((c) => c.body.format)).toEqual(Array(5).fill(LOGGED_REPORT_FORMAT));
    expect(vectorV3.leaves.every((c) => c.body.key === vector.keyId)).toBe(true);
    expect(vectorV3.heads.map((h) => h.size)).toEqual([3, 5]);
    expect(vectorV3.consistency).toEqual({ from: 3, to: 5 });
    expect(leaves).toHaveLength(5);
    expect(heads.map((h) => [h.size, h.time])).toEqual(vectorV3.heads.map((h) => [h.size, h.time]));
  });

  it('every leaf is the signed body bytes of its report (label sluice-report/3, 0x00, JCS), as in log-N.leaf.hex', () => {
    leaves.forEach((leaf, i) => {
      const { log: _log, ...body } = parseReport(docFile(`log-${i}.sluice.json`).toString('utf8'));
      expect(Buffer.from(canonicalBytes(body)).equals(leaf), `leaf ${i}`).toBe(true);
      expect(leaf.subarray(0, 16).toString('latin1')).toBe('sluice-report/3\u0000');
      expect(docFile(`log-${i}.leaf.hex`).toString('utf8')).toBe(`${leaf.toString('hex')}\n`);
    });
    // Leaf 4's name is raw UTF-8 in the leaf and \u-escaped in the report file.
    expect(leaves[4]!.toString('utf8')).toContain('"original":"r\u00e9sum\u00e9');
    expect(docFile('log-4.sluice.json').toString('utf8')).toContain('"original":"r\\u00e9sum\\u00e9');
  });

  it('leaf hashes and the root of every size are those of a naive RFC 9162 tree', () => {
    const heads = headsOf();
    expect(hashes.leafHashes).toEqual(leaves.map((l) => hex(H(Buffer.of(0), l))));
    expect(hashes.roots).toEqual(Array.from({ length: 6 }, (_, n) => hex(mth(leaves.slice(0, n)))));
    expect(hashes.roots[0]).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(heads.map((h) => h.root)).toEqual([hashes.roots[3], hashes.roots[5]]);
  });

  it('each tree head: signed bytes are "sluice-treehead/1", 0x00 and the JCS of its members without signature; both signatures verify', () => {
    const heads = headsOf();
    for (const h of heads) {
      const { signature: _s, ...members } = h;
      const expected = Buffer.concat([Buffer.from('sluice-treehead/1\u0000'), Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(members).sort(([a], [b]) => (a < b ? -1 : 1)))))]);
      expect(docFile(`head-${h.size}.signed.hex`).toString('utf8')).toBe(`${expected.toString('hex')}\n`);
      expect(Buffer.from(treeHeadBytes(h)).equals(expected)).toBe(true);
      expect(verifyTreeHead(h, pub)).toBeNull();
      expect(docFile(`head-${h.size}.json`).toString('latin1')).toBe(`${headLines[heads.indexOf(h)]}\n`);
    }
  });

  it.each(vectorV3.leaves.map((c, i) => [i, c.label, c] as const))('log-%i.sluice.json (%s): the proof is the naive PATH under the head of its batch, and it verifies with the documented code', (i, _label, c) => {
    const heads = headsOf();
    const text = docFile(`log-${i}.sluice.json`).toString('utf8');
    const r = parseReport(text);
    const size = i < 3 ? 3 : 5;
    expect(r.log).toEqual({ index: i, proof: pathOf(i, leaves.slice(0, size)).map(hex), head: heads.find((h) => h.size === size) });
    expect(verifyInclusion(H(Buffer.of(0), leaves[i]!), i, size, r.log!.proof.map((p) => Buffer.from(p, 'hex')), Buffer.from(r.log!.head.root, 'hex'))).toBe(true);
    const res = verifyReport({ reportText: text, publicKey: pub, file: { size: vector.file.size, sha256hex: vector.file.sha256 }, reportOnly: false });
    expect([res.code, res.exitCode]).toEqual([c.expect.code, c.expect.exitCode]);
    expect(verifyReport({ reportText: text, publicKey: pub, reportOnly: true }).code).toBe('ok');
  });

  it('consistency-3-5.json is the naive PROOF(3, D[0:5]) between the two heads\' roots, and it verifies', () => {
    const heads = headsOf();
    const c = docJson<{ from: number; to: number; fromRoot: string; toRoot: string; proof: string[]; head: unknown }>('consistency-3-5.json');
    expect(c.proof).toEqual(subproof(3, leaves, true).map(hex));
    expect([c.from, c.to, c.fromRoot, c.toRoot]).toEqual([3, 5, heads[0]!.root, heads[1]!.root]);
    expect(c.head).toEqual(heads[1]);
    const proof = c.proof.map((p) => Buffer.from(p, 'hex'));
    expect(verifyConsistency(3, 5, Buffer.from(c.fromRoot, 'hex'), Buffer.from(c.toRoot, 'hex'), proof)).toBe(true);
    // Any one hash changed, or the roots swapped, and it no longer does.
    for (let j = 0; j < proof.length; j++) {
      const bad = proof.map((p, k) => (k === j ? H(p) : p));
      expect(verifyConsistency(3, 5, Buffer.from(c.fromRoot, 'hex'), Buffer.from(c.toRoot, 'hex'), bad), `proof[${j}]`).toBe(false);
    }
    expect(verifyConsistency(3, 5, Buffer.from(c.toRoot, 'hex'), Buffer.from(c.fromRoot, 'hex'), proof)).toBe(false);
  });

  it('the log directory audits clean: 5 leaves, 2 heads, nothing unpublished; the readers see the same tree', () => {
    expect(auditLog(join(docsDir, 'log'), pub)).toEqual({ ok: true, leaves: 5, heads: 2, unpublished: 0 });
    const fd = openSync(join(docsDir, 'log', 'leaves'), 'r');
    const tree = Frontier.empty();
    try {
      for (const leaf of readLeaves(fd)) tree.append(leafHash(leaf));
    } finally {
      closeSync(fd);
    }
    expect([tree.size, hex(tree.root())]).toEqual([5, hashes.roots[5]]);
    expect(proveConsistency(join(docsDir, 'log'), 3, 5)).toEqual(docJson('consistency-3-5.json'));
  });
});

describe('test vector: docs/report-vector/ holds the same bytes', () => {
  const dir = docsDir;
  /** Every generated file, name -> content; the same mapping is in scripts/make-vector.mjs. */
  const expected: Record<string, Buffer> = {
    'vector.key': Buffer.from(vector.secretKeyFile),
    'vector.pub': Buffer.from(vector.publicKeyFile),
    'hello.txt': Buffer.from(vector.file.contentUtf8),
    ...v3Files,
  };
  for (const [prefix, v] of [['', vector], ['v1-', vectorV1]] as const) {
    for (const c of v.cases) {
      expected[`${prefix}${c.name}.sluice.json`] = Buffer.from(c.reportFile, 'utf8');
      expected[`${prefix}${c.name}.signed.hex`] = Buffer.from(`${c.signedBytesHex}\n`);
    }
  }

  it('has exactly the vector files (and its README)', () => {
    const present = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f !== 'log');
    expect(present.sort()).toEqual([...Object.keys(expected), 'README.md'].sort());
  });

  it.each(Object.keys(expected).sort())('%s equals the vector byte for byte', (name) => {
    expect(readFileSync(join(dir, name)).equals(expected[name]!)).toBe(true);
  });

  it('the README names every case with its exit code', () => {
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    for (const [prefix, v] of [['', vector], ['v1-', vectorV1]] as const) {
      for (const c of v.cases) expect(readme).toMatch(new RegExp(`${prefix}${c.name}\\.sluice\\.json.*\\b${c.verify.exitCode}\\b`));
    }
    vectorV3.leaves.forEach((c, i) => expect(readme).toMatch(new RegExp(`log-${i}\\.sluice\\.json.*\\b${c.expect.exitCode}\\b`)));
  });
});

describe('test vector: docs/report-format.md quotes it correctly', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/report-format.md', import.meta.url)), 'utf8');

  it('states the key id, the public key and the file digest', () => {
    expect(doc).toContain(vector.keyId);
    expect(doc).toContain(Buffer.from(keys.public.ed25519).toString('hex'));
    expect(doc).toContain(sha(keys.public.mldsa65));
    expect(doc).toContain(vector.file.sha256);
  });

  it.each(vector.cases.map((c) => [c.label, c] as const))('states signed-bytes digest and signatures of %s', (_label, c) => {
    expect(doc).toContain(c.signedBytesSha256);
    expect(doc).toContain(c.signature.ed25519);
    expect(doc).toContain(sha(Buffer.from(c.signature.mldsa65, 'base64')));
    expect(doc).toContain(`${Buffer.from(c.signedBytesHex, 'hex').length} bytes`);
  });

  it('shows the rejected case body exactly as signed', () => {
    const rejected = vector.cases.find((c) => c.verify.code === 'rejected')!;
    expect(doc).toContain(Buffer.from(rejected.signedBytesHex, 'hex').subarray(16).toString('utf8'));
    // "starting 736c...3100 7b22636865636b73...": the label, its 0x00, then the first bytes of the JCS body.
    expect(doc).toContain(`starting\n\`${rejected.signedBytesHex.slice(0, 32)} ${rejected.signedBytesHex.slice(32, 48)}…\``);
  });

  it('shows the accepted case\'s name member exactly as the report file spells it', () => {
    const accepted = vector.cases.find((c) => c.verify.code === 'ok')!;
    const quoted = /^"name":\{"original".*$/m.exec(doc);
    expect(quoted).not.toBeNull();
    expect(accepted.reportFile).toContain(quoted![0]);
    // The signed bytes have the same member as raw UTF-8, with only the escapes JCS requires.
    const raw = JSON.stringify({ name: accepted.body.name }).slice(1, -1);
    expect(Buffer.from(accepted.signedBytesHex, 'hex').toString('utf8')).toContain(raw);
    expect(raw).not.toBe(quoted![0]);
  });
});

describe('test vector sluice-report/3: docs/report-format.md section 8 quotes it correctly', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/report-format.md', import.meta.url)), 'utf8');
  const section = doc.slice(doc.indexOf('## 8. '));
  const hashes = docJson<{ leafHashes: string[]; roots: string[] }>('log-hashes.json');
  const head5 = () => parseTreeHead(docFile('head-5.json').toString('latin1'));

  it('states leaf 3, its record length, its leaf hash and inclusion proof, the roots of sizes 3 and 5', () => {
    const leaf3 = Buffer.from(docFile('log-3.leaf.hex').toString('utf8').trim(), 'hex');
    expect(section).toContain(`Leaf 3 (\`log-3.leaf.hex\`): ${leaf3.length} bytes, starting \`${leaf3.subarray(0, 16).toString('hex')}\``);
    expect(section).toContain(`length \`${leaf3.length.toString(16).padStart(8, '0')}\``);
    expect(section).toContain(hashes.leafHashes[3]);
    expect(section).toContain(`size 3 \`${hashes.roots[3]}\``);
    expect(section).toContain(`size 5 \`${hashes.roots[5]}\``);
    const proof = parseReport(docFile('log-3.sluice.json').toString('utf8')).log!.proof;
    expect([proof[0], proof[2]]).toEqual([hashes.leafHashes[2], hashes.leafHashes[4]]);
    expect(proof[1]).toBe(hashes.roots[2]);
    const quoted = section.slice(section.indexOf('Inclusion proof of leaf 3'), section.indexOf('- Head of size 5')).replace(/\s+/g, ' ');
    expect(quoted).toContain(proof.map((h, i) => `\`${h.slice(0, 8)}…\` (${['leaf hash 2', '`MTH(D[0:2])`', 'leaf hash 4'][i]})`).join(', '));
  });

  it('states the size-5 head\'s signed bytes, their digest and its signatures', () => {
    const h5 = head5();
    const bytes = Buffer.from(treeHeadBytes(h5));
    expect(section).toContain(`signed bytes (${bytes.length} bytes)`);
    expect(section).toContain(bytes.toString('latin1').replace('\u0000', '<0x00>'));
    expect(section).toContain(sha(bytes));
    expect(section).toContain(h5.signature.ed25519);
    expect(section).toContain(sha(Buffer.from(h5.signature.mldsa65, 'base64')));
  });

  it('states the consistency proof 3 -> 5, every hash in full', () => {
    for (const h of docJson<{ proof: string[] }>('consistency-3-5.json').proof) expect(section).toContain(`\`${h}\``);
  });

  it.skipIf(!existsSync('/usr/bin/python3'))(`its Python sketches of RFC 9162 inclusion and consistency verification accept the vector and refuse a changed proof${existsSync('/usr/bin/python3') ? '' : ' [skipped: no /usr/bin/python3]'}`, () => {
    const sketches = [...section.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(sketches).toHaveLength(2);
    const r = parseReport(docFile('log-3.sluice.json').toString('utf8'));
    const c = docJson<{ fromRoot: string; toRoot: string; proof: string[] }>('consistency-3-5.json');
    const program = [
      ...sketches,
      'import json, sys',
      'a = json.load(sys.stdin); b = bytes.fromhex',
      'out = []',
      'for flip in (False, True):',
      '    f = (lambda p: p[:-1] + bytes([p[-1] ^ 1])) if flip else (lambda p: p)',
      '    out.append(verify_inclusion(b(a["leafHash"]), 3, 5, [f(b(h)) for h in a["inclusion"]], b(a["root5"])))',
      '    out.append(verify_consistency(3, 5, b(a["fromRoot"]), b(a["toRoot"]), [f(b(h)) for h in a["consistency"]]))',
      'print(json.dumps(out))',
    ].join('\n');
    const input = JSON.stringify({ leafHash: hashes.leafHashes[3], inclusion: r.log!.proof, root5: hashes.roots[5], fromRoot: c.fromRoot, toRoot: c.toRoot, consistency: c.proof });
    const res = spawnSync('/usr/bin/python3', ['-c', program], { input, encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(JSON.parse(res.stdout)).toEqual([true, true, false, false]);
  });
});

const python = '/usr/bin/python3';
const hasPythonCryptography = spawnSync(python, ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasPythonCryptography)(`test vector: independent Python verifier (JCS + Ed25519 only)${hasPythonCryptography ? '' : ' [skipped: python3 cannot import cryptography (Debian python3-cryptography)]'}`, () => {
  const script = fileURLToPath(new URL('../scripts/verify_report.py', import.meta.url));
  const pubPath = join(tmp, 'py.pub');
  const filePath = join(tmp, 'py.file');
  const emptyPath = join(tmp, 'py.empty');
  writeFileSync(pubPath, vector.publicKeyFile);
  writeFileSync(filePath, vector.file.contentUtf8);
  writeFileSync(emptyPath, '');
  const all = [...vector.cases, ...vectorV1.cases];

  /** run - the Python verifier's exit status for a report text and a file. */
  const run = (reportText: string, file = filePath): number | null => {
    const reportPath = join(tmp, `py-${Math.random().toString(16).slice(2)}.json`);
    writeFileSync(reportPath, reportText);
    return spawnSync(python, [script, reportPath, pubPath, file, '--skip-mldsa'], { encoding: 'utf8' }).status;
  };

  it('agrees on every stored report of both versions (10 = Ed25519 ok, ML-DSA skipped; else the exit code)', () => {
    expect(all.map((c) => run(c.reportFile))).toEqual(all.map((c) => (c.verify.code === 'ok' ? 10 : c.verify.exitCode)));
  });

  it('agrees that an empty file does not match a report of an upload refused at pickup, in either version', () => {
    const refused = all.filter((c) => c.name === 'refused');
    expect(refused.map((c) => c.body.format).sort()).toEqual(['sluice-report/1', 'sluice-report/2']);
    expect(refused.map((c) => run(c.reportFile, emptyPath))).toEqual([4, 4]);
  });

  it('agrees that a changed report has a bad signature', () => {
    const c = vector.cases[0]!;
    expect(run(c.reportFile.replace('"station":"vector-station"', '"station":"vector-statioN"'))).toBe(3);
  });

  /** py - the Python verifier's exit status and output for these arguments. */
  const py = (...args: string[]) => spawnSync(python, [script, ...args], { encoding: 'utf8' });
  const doc = (name: string) => join(docsDir, name);

  it('sluice-report/3: agrees on every stored log-N report (inclusion proof and head Ed25519 checked)', () => {
    const got = vectorV3.leaves.map((_c, i) => py(doc(`log-${i}.sluice.json`), doc('vector.pub'), doc('hello.txt'), '--skip-mldsa').status);
    expect(got).toEqual(vectorV3.leaves.map((c) => (c.expect.code === 'ok' ? 10 : c.expect.exitCode)));
  });

  it('sluice-report/3: a report whose proof or head root changed, or whose proof hash is upper case, is refused', () => {
    const text = docFile('log-3.sluice.json').toString('utf8');
    const r = parseReport(text);
    const proof0 = r.log!.proof[0]!;
    const flipped = proof0.slice(0, 10) + (proof0[10] === '0' ? '1' : '0') + proof0.slice(11);
    expect(run(text.replace(proof0, flipped))).toBe(3);
    expect(run(text.replace(r.log!.head.root, hashes0()))).toBe(3);
    const upper = /[a-f]/.exec(proof0)!;
    expect(run(text.replace(proof0, proof0.slice(0, upper.index) + upper[0].toUpperCase() + proof0.slice(upper.index + 1)))).toBe(6);
  });
  const hashes0 = () => docJson<{ roots: string[] }>('log-hashes.json').roots[4]!;

  it('--consistency: the vector\'s proof from head-3 to the size-5 head verifies; a wrong old head, a changed or missing proof hash do not', () => {
    const ok = py('--consistency', doc('consistency-3-5.json'), doc('vector.pub'), doc('head-3.json'), '--skip-mldsa');
    expect([ok.status, ok.stdout.trim()]).toEqual([10, 'consistent, Ed25519 ok; ML-DSA-65 NOT checked (--skip-mldsa)']);
    expect(py('--consistency', doc('consistency-3-5.json'), doc('vector.pub'), doc('head-5.json'), '--skip-mldsa').status).toBe(3);
    const c = docFile('consistency-3-5.json').toString('utf8');
    const p = JSON.parse(c) as { proof: string[] };
    const write = (name: string, text: string) => {
      writeFileSync(join(tmp, name), text);
      return join(tmp, name);
    };
    for (const [j, h] of p.proof.entries()) {
      const changed = write(`c${j}.json`, c.replace(h, h.slice(0, 63) + (h[63] === '0' ? '1' : '0')));
      expect(py('--consistency', changed, doc('vector.pub'), doc('head-3.json'), '--skip-mldsa').status, `proof[${j}]`).toBe(3);
    }
    const dropped = write('dropped.json', c.replace(`"${p.proof[1]}",`, ''));
    expect(py('--consistency', dropped, doc('vector.pub'), doc('head-3.json'), '--skip-mldsa').status).toBe(3);
    const noHead = write('nohead.json', `${JSON.stringify({ ...JSON.parse(c), head: undefined })}\n`);
    expect(py('--consistency', noHead, doc('vector.pub'), doc('head-3.json'), '--skip-mldsa').status).toBe(6);
  });

  it('its RFC 9162 verify_inclusion and verify_consistency agree with the naive tree for every 0 <= m <= n <= 17, and refuse every proof with one hash changed or dropped', () => {
    const entries = Array.from({ length: 17 }, (_, i) => Buffer.from(`entry ${i}`));
    const cases: { kind: string; args: unknown[]; want: boolean }[] = [];
    const x = (hs: Buffer[]) => hs.map(hex);
    for (let n = 1; n <= 17; n++) {
      const d = entries.slice(0, n);
      const root = hex(mth(d));
      for (let m = 0; m <= n; m++) {
        const proof = m > 0 && m < n ? subproof(m, d, true) : [];
        cases.push({ kind: 'consistency', args: [m, n, hex(mth(d.slice(0, m))), root, x(proof)], want: true });
        for (let j = 0; j < proof.length; j++) {
          cases.push({ kind: 'consistency', args: [m, n, hex(mth(d.slice(0, m))), root, x(proof.map((p, k) => (k === j ? H(p) : p)))], want: false });
          cases.push({ kind: 'consistency', args: [m, n, hex(mth(d.slice(0, m))), root, x(proof.filter((_p, k) => k !== j))], want: false });
        }
        if (m < n) {
          const path = pathOf(m, d);
          cases.push({ kind: 'inclusion', args: [hex(H(Buffer.of(0), d[m]!)), m, n, x(path), root], want: true });
          for (let j = 0; j < path.length; j++) {
            cases.push({ kind: 'inclusion', args: [hex(H(Buffer.of(0), d[m]!)), m, n, x(path.map((p, k) => (k === j ? H(p) : p))), root], want: false });
            cases.push({ kind: 'inclusion', args: [hex(H(Buffer.of(0), d[m]!)), m, n, x(path.filter((_p, k) => k !== j)), root], want: false });
          }
        }
      }
    }
    const program = [
      'import importlib.util, json, sys',
      'spec = importlib.util.spec_from_file_location("verify_report", sys.argv[1])',
      'v = importlib.util.module_from_spec(spec); spec.loader.exec_module(v)',
      'b = bytes.fromhex',
      'out = []',
      'for c in json.load(sys.stdin):',
      '    a = c["args"]',
      '    if c["kind"] == "consistency": out.append(v.verify_consistency(a[0], a[1], b(a[2]), b(a[3]), [b(h) for h in a[4]]))',
      '    else: out.append(v.verify_inclusion(b(a[0]), a[1], a[2], [b(h) for h in a[3]], b(a[4])))',
      'print(json.dumps(out))',
    ].join('\n');
    const res = spawnSync(python, ['-c', program, script], { input: JSON.stringify(cases), encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(cases.length).toBeGreaterThan(1000);
    expect(JSON.parse(res.stdout)).toEqual(cases.map((c) => c.want));
  });
});
