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
 *   docs/report-vector/ holds both vectors as plain files (key files, the
 *   file, report files, signed bytes in hex) for readers without packages/;
 *   every file there must equal the vector's value, and nothing else may be
 *   there but its README.md.
 *
 *   When /usr/bin/python3 has `cryptography`, the independent Python verifier
 *   (scripts/verify_report.py) checks the stored reports too: its JCS and its
 *   Ed25519 must agree with ours. ML-DSA there needs liboqs, absent here.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { hybridSign } from './_hybrid.js';
import { secretKeyMaterial } from './keys.js';
import {
  canonicalBytes,
  encodePublicKey,
  generateKeys,
  loadSecretKey,
  neverCopied,
  parsePublicKey,
  parseReport,
  serializeReport,
  signReport,
  verifyReport,
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

const readVector = (name: string): Vector => JSON.parse(readFileSync(fileURLToPath(new URL(`../test-vector/${name}`, import.meta.url)), 'utf8')) as Vector;
const vector = readVector('vector.json');
const vectorV1 = readVector('vector-v1.json');
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

describe('test vector: docs/report-vector/ holds the same bytes', () => {
  const dir = fileURLToPath(new URL('../../../docs/report-vector/', import.meta.url));
  /** Every generated file, name -> content; the same mapping is in scripts/make-vector.mjs. */
  const expected: Record<string, string> = { 'vector.key': vector.secretKeyFile, 'vector.pub': vector.publicKeyFile, 'hello.txt': vector.file.contentUtf8 };
  for (const [prefix, v] of [['', vector], ['v1-', vectorV1]] as const) {
    for (const c of v.cases) {
      expected[`${prefix}${c.name}.sluice.json`] = c.reportFile;
      expected[`${prefix}${c.name}.signed.hex`] = `${c.signedBytesHex}\n`;
    }
  }

  it('has exactly the vector files (and its README)', () => {
    expect(readdirSync(dir).sort()).toEqual([...Object.keys(expected), 'README.md'].sort());
  });

  it.each(Object.keys(expected).sort())('%s equals the vector byte for byte', (name) => {
    expect(readFileSync(join(dir, name)).equals(Buffer.from(expected[name]!, 'utf8'))).toBe(true);
  });

  it('the README names every case with its exit code', () => {
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    for (const [prefix, v] of [['', vector], ['v1-', vectorV1]] as const) {
      for (const c of v.cases) expect(readme).toMatch(new RegExp(`${prefix}${c.name}\\.sluice\\.json.*\\b${c.verify.exitCode}\\b`));
    }
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
});
