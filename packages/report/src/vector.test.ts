/*
 * NAME
 *   vector.test - the committed test vector (test-vector/vector.json) still holds, byte for byte
 *
 * DESCRIPTION
 *   Rebuilds keys, key files, signed bytes, signatures (deterministic ML-DSA)
 *   and report files from the vector's fixed inputs and compares them with
 *   the stored values, then verifies the stored reports. If this fails after
 *   a deliberate format change, bump the format version, run
 *   scripts/make-vector.mjs and update docs/report-format.md.
 *
 *   When /usr/bin/python3 has `cryptography`, the independent Python verifier
 *   (scripts/verify_report.py) checks the stored reports too: its JCS and its
 *   Ed25519 must agree with ours. ML-DSA there needs liboqs, absent here.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  encodePublicKey,
  generateKeys,
  loadSecretKey,
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
  label: string;
  body: ReportBody;
  signedBytesHex: string;
  signedBytesSha256: string;
  signature: { context: string; ed25519: string; mldsa65: string };
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

const vectorPath = fileURLToPath(new URL('../test-vector/vector.json', import.meta.url));
const vector = JSON.parse(readFileSync(vectorPath, 'utf8')) as Vector;
const keys = generateKeys({ ed25519: Buffer.from(vector.seeds.ed25519Hex, 'hex'), mldsa65: Buffer.from(vector.seeds.mldsa65Hex, 'hex') });
const tmp = mkdtempSync(join(tmpdir(), 'sluice-report-vector-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('test vector: keys', () => {
  it('has the documented seeds and key id', () => {
    expect(vector.seeds.ed25519Hex).toBe('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    expect(vector.seeds.mldsa65Hex).toBe('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f');
    expect(keys.public.keyId).toBe(vector.keyId);
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
  });

  it('hedged (production) signing gives another ML-DSA signature that verifies just the same', () => {
    const signed = signReport(c.body, keys.secret);
    expect(signed.signature.mldsa65).not.toBe(c.signature.mldsa65);
    expect(signed.signature.ed25519).toBe(c.signature.ed25519);
    expect(verifyReport({ reportText: serializeReport(signed), publicKey: pub, reportOnly: true }).code).toBe('ok');
  });
});

describe('test vector: docs/report-format.md quotes it correctly', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/report-format.md', import.meta.url)), 'utf8');
  const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

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

describe.skipIf(!hasPythonCryptography)('test vector: independent Python verifier (JCS + Ed25519 only)', () => {
  const script = fileURLToPath(new URL('../scripts/verify_report.py', import.meta.url));
  const pubPath = join(tmp, 'py.pub');
  const filePath = join(tmp, 'py.file');
  writeFileSync(pubPath, vector.publicKeyFile);
  writeFileSync(filePath, vector.file.contentUtf8);

  /** run - the Python verifier's exit status for a report text. */
  const run = (reportText: string, ...extra: string[]): number | null => {
    const reportPath = join(tmp, `py-${Math.random().toString(16).slice(2)}.json`);
    writeFileSync(reportPath, reportText);
    return spawnSync(python, [script, reportPath, pubPath, filePath, '--skip-mldsa', ...extra], { encoding: 'utf8' }).status;
  };

  it('agrees on every stored report (10 = Ed25519 ok, ML-DSA skipped; 5 = rejected)', () => {
    const codes = vector.cases.map((c) => run(c.reportFile));
    expect(codes).toEqual(vector.cases.map((c) => (c.verify.code === 'ok' ? 10 : 5)));
  });

  it('agrees that a changed report has a bad signature', () => {
    const c = vector.cases[0]!;
    expect(run(c.reportFile.replace('"station":"vector-station"', '"station":"vector-statioN"'))).toBe(3);
  });
});
