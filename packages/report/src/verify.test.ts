/*
 * NAME
 *   verify.test - every way a report can fail to vouch for a file, and its exit code
 *
 * DESCRIPTION
 *   In the spirit of openssh's regress/integrity.sh: flip bytes of the file,
 *   of the report text and of each signature, and check not only that
 *   verification fails but that it fails for the named reason.
 *
 *   Cost: one ML-DSA-65 verify is 1-4 ms on these machines. Every byte of the
 *   report outside the ML-DSA signature is flipped; inside it, every 11th.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTENT_A, CONTENT_B, factsOf, keysA, keysB, makeBody, makeRefusedBody, makeRejectedBody, rawText, replaceAt, signV1 } from '../test/fixtures.js';
import { hybridSign } from './_hybrid.js';
import {
  canonicalBytes,
  EXIT_CODES,
  hashFile,
  parseReport,
  serializeReport,
  signReport,
  verifyReport,
  verifyResultJson,
  type VerifyCode,
  type VerifyResult,
} from './index.js';
import { secretKeyMaterial } from './keys.js';
import { assembleSigned } from './report.js';

const pubA = keysA.public;
const factsA = factsOf(CONTENT_A);
const factsB = factsOf(CONTENT_B);
const reportA = serializeReport(signReport(makeBody(pubA.keyId, CONTENT_A), keysA.secret));
const reportB = serializeReport(signReport(makeBody(pubA.keyId, CONTENT_B, { transfer: 'T0002' }), keysA.secret));
const rejectedA = serializeReport(signReport(makeRejectedBody(pubA.keyId, CONTENT_A), keysA.secret));

const tmp = mkdtempSync(join(tmpdir(), 'sluice-report-verify-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** check - verify against file A (or in report-only mode) and return the result. */
function check(reportText: string | Uint8Array, file: { size: number; sha256hex: string } | 'report-only' = factsA, publicKey = pubA): VerifyResult {
  return file === 'report-only'
    ? verifyReport({ reportText, publicKey, file: undefined, reportOnly: true })
    : verifyReport({ reportText, publicKey, file, reportOnly: false });
}

/** expectCode - the result has `code`, its exit code, and a one-line ASCII reason. */
function expectCode(r: VerifyResult, code: VerifyCode): void {
  expect(r.code, r.reason).toBe(code);
  expect(r.ok).toBe(code === 'ok');
  expect(r.exitCode).toBe(EXIT_CODES[code]);
  expect(r.reason).toMatch(/^[\x20-\x7e]+$/);
}

describe('exit codes', () => {
  it('are fixed and distinct, 0 only for ok, 1 and 2 left to the CLI', () => {
    expect(EXIT_CODES).toEqual({ ok: 0, 'bad-signature': 3, mismatch: 4, rejected: 5, malformed: 6, 'unknown-key': 7 });
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(6);
  });
});

describe('verifyReport', () => {
  it('accepts a valid report for its file', () => {
    const r = check(reportA);
    expectCode(r, 'ok');
    expect(r.report?.sha256).toBe(factsA.sha256hex);
  });

  it('accepts the report given as bytes', () => {
    expectCode(check(Buffer.from(reportA)), 'ok');
  });

  it('refuses the swapped reports of two files (mismatch)', () => {
    expectCode(check(reportB, factsA), 'mismatch');
    expectCode(check(reportA, factsB), 'mismatch');
    expectCode(check(reportB, factsB), 'ok');
  });

  it('refuses a file whose size or any digest digit differs (mismatch)', () => {
    expectCode(check(reportA, { ...factsA, size: factsA.size + 1 }), 'mismatch');
    expectCode(check(reportA, { ...factsA, size: factsA.size - 1 }), 'mismatch');
    for (let i = 0; i < 64; i++) {
      const d = factsA.sha256hex;
      const other = d[i] === '0' ? '1' : '0';
      expectCode(check(reportA, { ...factsA, sha256hex: replaceAt(d, i, other) }), 'mismatch');
    }
  });

  it('refuses every single-byte change of the real file (mismatch)', async () => {
    const path = join(tmp, 'file-a');
    expect(await hashFile((writeFileSync(path, CONTENT_A), path))).toEqual(factsA);
    for (let i = 0; i < CONTENT_A.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const flipped = Buffer.from(CONTENT_A);
        flipped[i]! ^= mask;
        writeFileSync(path, flipped);
        expectCode(check(reportA, await hashFile(path)), 'mismatch');
      }
    }
    writeFileSync(path, Buffer.concat([CONTENT_A, Buffer.from([0])]));
    expectCode(check(reportA, await hashFile(path)), 'mismatch');
    writeFileSync(path, CONTENT_A.subarray(1));
    expectCode(check(reportA, await hashFile(path)), 'mismatch');
  });

  it('refuses a report signed by another key (unknown-key)', () => {
    const byB = serializeReport(signReport(makeBody(keysB.public.keyId, CONTENT_A), keysB.secret));
    const r = check(byB);
    expectCode(r, 'unknown-key');
    expect(r.reason).toContain(keysB.public.keyId);
    expect(r.reason).toContain(pubA.keyId);
    expect(r.report).toBeUndefined();
  });

  it('refuses a report signed by another key that states our key id (bad-signature)', () => {
    // Signed honestly by B over a body that claims A's key id: the signer lies.
    const body = makeBody(pubA.keyId, CONTENT_A);
    const forged = serializeReport(assembleSigned(body, hybridSign(canonicalBytes(body), secretKeyMaterial(keysB.secret).keys, false)));
    const r = check(forged);
    expectCode(r, 'bad-signature');
    expect(r.reason).toMatch(/Ed25519 and ML-DSA-65 signatures do not verify/);
    expect(r.report).toBeUndefined();
    // Signed by B, key id edited to A's afterwards: the body changed.
    const byB = serializeReport(signReport(makeBody(keysB.public.keyId, CONTENT_A), keysB.secret));
    expectCode(check(byB.replace(keysB.public.keyId, pubA.keyId)), 'bad-signature');
  });

  it('refuses a hybrid with one half swapped in from another key (bad-signature, names the half)', () => {
    const body = makeBody(pubA.keyId, CONTENT_A);
    const mine = hybridSign(canonicalBytes(body), secretKeyMaterial(keysA.secret).keys, false);
    const theirs = hybridSign(canonicalBytes(body), secretKeyMaterial(keysB.secret).keys, false);
    const r1 = check(serializeReport(assembleSigned(body, { ed25519: mine.ed25519, mldsa65: theirs.mldsa65 })));
    expectCode(r1, 'bad-signature');
    expect(r1.reason).toMatch(/ML-DSA-65 signature does not verify/);
    const r2 = check(serializeReport(assembleSigned(body, { ed25519: theirs.ed25519, mldsa65: mine.mldsa65 })));
    expectCode(r2, 'bad-signature');
    expect(r2.reason).toMatch(/: Ed25519 signature does not verify/);
  });

  it('never verifies a rejection report as accepted, but does in report-only mode', () => {
    const r = check(rejectedA);
    expectCode(r, 'rejected');
    expect(r.reason).toContain('Eicar-Test-Signature FOUND');
    const only = check(rejectedA, 'report-only');
    expectCode(only, 'ok');
    expect(only.report?.verdict).toBe('rejected');
    expect(only.reason).toMatch(/signature ok: rejected report/);
    // Turning the verdict into "accepted" breaks the signature.
    const edited = rawText({ ...parseReport(rejectedA), verdict: 'accepted', reason: '', checks: [] });
    expectCode(check(edited), 'bad-signature');
  });

  it('checks the digest before the verdict: a rejection report about other bytes is a mismatch', () => {
    expectCode(check(rejectedA, factsB), 'mismatch');
  });

  it('a report of an upload refused at pickup matches no file, not even an empty one (mismatch); report-only says ok', () => {
    const refused = serializeReport(signReport(makeRefusedBody(pubA.keyId, 'too-large: 5000 bytes, over the limit of 4096'), keysA.secret));
    const empty = factsOf(Buffer.alloc(0));
    for (const facts of [empty, factsA, { size: 5000, sha256hex: factsA.sha256hex }]) {
      const r = check(refused, facts);
      expectCode(r, 'mismatch');
      expect(r.reason).toMatch(/refused at pickup and never copied; it vouches for no bytes/);
      expect(r.report?.sha256).toBeNull();
    }
    const only = check(refused, 'report-only');
    expectCode(only, 'ok');
    expect(only.reason).toMatch(/never copied \(refused at pickup, 5000 bytes seen at pickup\), no digest/);
    const unknownSize = serializeReport(signReport(makeRefusedBody(pubA.keyId, 'not-regular: symlink', null), keysA.secret));
    expect(check(unknownSize, 'report-only').reason).toMatch(/never copied \(refused at pickup\), no digest/);
    expectCode(check(unknownSize, empty), 'mismatch');
  });

  it('an empty upload that was copied and rejected is still "rejected" for the empty file', () => {
    const emptyRejected = serializeReport(signReport(makeRejectedBody(pubA.keyId, Buffer.alloc(0)), keysA.secret));
    expectCode(check(emptyRejected, factsOf(Buffer.alloc(0))), 'rejected');
  });

  it('report-only mode still refuses bad signatures and unknown keys', () => {
    expectCode(check(reportA, 'report-only', keysB.public), 'unknown-key');
    const p = reportA.indexOf('"ed25519":"') + 12;
    expectCode(check(replaceAt(reportA, p, reportA[p] === 'A' ? 'B' : 'A'), 'report-only'), 'bad-signature');
  });

  it('returns malformed for duplicate keys, pretty-printing, garbage and empty input', () => {
    expectCode(check(reportA.replace('"verdict":"accepted"', '"verdict":"rejected","verdict":"accepted"')), 'malformed');
    expectCode(check(`${JSON.stringify(JSON.parse(reportA), null, 1)}\n`), 'malformed');
    expectCode(check('not json'), 'malformed');
    expectCode(check(''), 'malformed');
    expectCode(check(new Uint8Array([0xff, 0xfe])), 'malformed');
    const r = check(reportA.replace('"verdict":"accepted"', '"verdict":"accepted","verdict":"accepted"'));
    expect(r.reason).toMatch(/^malformed report: not valid JSON: duplicate key "verdict"/);
  });

  it('throws TypeError when called without file facts outside report-only mode', () => {
    expect(() => verifyReport({ reportText: reportA, publicKey: pubA, file: undefined, reportOnly: false })).toThrow(TypeError);
    expect(() => verifyReport({ reportText: reportA, publicKey: pubA, file: { size: 1, sha256hex: 'A'.repeat(64) }, reportOnly: false })).toThrow(TypeError);
    expect(() => verifyReport({ reportText: reportA, publicKey: pubA, file: { size: -1, sha256hex: 'a'.repeat(64) }, reportOnly: false })).toThrow(TypeError);
  });
});

describe('byte flips in the report text', () => {
  const text = reportA;
  const sigAt = text.indexOf('"signature":');
  const keyAt = text.indexOf(`"key":"${pubA.keyId}"`) + 7;
  const mlAt = text.indexOf('"mldsa65":"', sigAt) + 11;
  const mlEnd = text.indexOf('"', mlAt);
  const edAt = text.indexOf('"ed25519":"', sigAt) + 11;

  /** expected - what a changed text must give: malformed if it does not parse, else by region. */
  function expected(t: string, i: number): VerifyCode {
    try {
      parseReport(t);
    } catch {
      return 'malformed';
    }
    if (i >= keyAt && i < keyAt + 32) return 'unknown-key';
    return 'bad-signature';
  }

  /** flipAll - flip positions with XOR masks; count outcomes, fail on the first wrong code. */
  function flipAll(positions: number[], masks: number[]): Record<string, number> {
    const seen: Record<string, number> = {};
    for (const i of positions) {
      for (const mask of masks) {
        const t = replaceAt(text, i, String.fromCharCode(text.charCodeAt(i) ^ mask));
        const r = check(t);
        const want = expected(t, i);
        if (r.code !== want) expect.fail(`flip 0x${mask.toString(16)} at ${i} (${JSON.stringify(text.slice(i - 5, i + 5))}): got ${r.code}, want ${want}: ${r.reason}`);
        seen[r.code] = (seen[r.code] ?? 0) + 1;
      }
    }
    return seen;
  }

  it('every byte outside the ML-DSA signature, XOR 0x01 and 0x20, fails for the right reason', () => {
    const positions = [...Array(text.length).keys()].filter((i) => i < mlAt || i >= mlEnd);
    const seen = flipAll(positions, [0x01, 0x20]);
    expect(seen.ok).toBeUndefined();
    expect(seen['bad-signature']).toBeGreaterThan(100); // the signature, not only the parser, catches changes
    expect(seen['unknown-key']).toBeGreaterThan(10);
    expect(seen.malformed).toBeGreaterThan(100);
  });

  it('every 11th byte of the ML-DSA signature text, XOR 0x01, fails (bad-signature or malformed)', () => {
    const positions = [...Array(mlEnd - mlAt).keys()].filter((k) => k % 11 === 0).map((k) => mlAt + k);
    const seen = flipAll(positions, [0x01]);
    expect(seen.ok).toBeUndefined();
    expect(seen['bad-signature']).toBeGreaterThan(100);
  });

  it('two bits of every byte of the decoded Ed25519 signature, and sampled bits of the ML-DSA one, fail as bad-signature', () => {
    const report = parseReport(text);
    for (const [field, bytes, step] of [
      ['ed25519', Buffer.from(report.signature.ed25519, 'base64'), 1],
      ['mldsa65', Buffer.from(report.signature.mldsa65, 'base64'), 41],
    ] as const) {
      for (let i = 0; i < bytes.length; i += step) {
        for (const bit of field === 'ed25519' ? [i % 8, 7 - (i % 8)] : [i % 8]) {
          const b = Buffer.from(bytes);
          b[i]! ^= 1 << bit;
          const t = rawText({ ...report, signature: { ...report.signature, [field]: b.toString('base64') } });
          expectCode(check(t), 'bad-signature');
        }
      }
    }
  });

  it('a representative sample of random replacement bytes fails for the right reason', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const seen: Record<string, number> = {};
    for (let k = 0; k < 400; k++) {
      const i = rand(text.length);
      const c = String.fromCharCode(rand(256));
      if (c === text[i]) continue;
      const t = replaceAt(text, i, c);
      const r = check(t);
      expect(r.code, `replace at ${i} with 0x${c.charCodeAt(0).toString(16)}`).toBe(expected(t, i));
      seen[r.code] = (seen[r.code] ?? 0) + 1;
    }
    expect(seen.ok).toBeUndefined();
  });
});

describe('verifyReport on arbitrary input (fast-check)', () => {
  /** neverThrows - verifyReport returns a non-ok result for anything but the original text. */
  function neverThrows(input: string | Uint8Array): boolean {
    let r: VerifyResult;
    try {
      r = check(input);
    } catch {
      return false;
    }
    return r.code === 'malformed' && r.exitCode === 6 && /^malformed report: [\x20-\x7e]+$/.test(r.reason);
  }

  it('returns malformed, never throws, for arbitrary strings (10000 runs)', () => {
    const anyString = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
      fc.json().map((j) => `${j}\n`),
    );
    fc.assert(fc.property(anyString, neverThrows), { numRuns: 10000 });
  });

  it('returns malformed, never throws, for arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), neverThrows), { numRuns: 2000 });
  });

  it('never throws and never says ok for edits of a valid report', () => {
    const edit = fc.record({ at: fc.nat({ max: reportA.length }), cut: fc.nat({ max: 4 }), insert: fc.string({ maxLength: 4 }) });
    fc.assert(
      fc.property(edit, ({ at, cut, insert }) => {
        const t = reportA.slice(0, at) + insert + reportA.slice(at + cut);
        fc.pre(t !== reportA);
        return !check(t).ok;
      }),
      { numRuns: 1000 },
    );
  });
});

describe('verifyResultJson', () => {
  it('is one ASCII line (no LF) with ok, code, exitCode, reason and, when authentic, the body', () => {
    const ok = JSON.parse(verifyResultJson(check(reportA))) as Record<string, unknown>;
    expect(ok).toMatchObject({ ok: true, code: 'ok', exitCode: 0 });
    expect((ok.report as Record<string, unknown>).sha256).toBe(factsA.sha256hex);
    expect((ok.report as Record<string, unknown>).signature).toBeUndefined();
    const bad = verifyResultJson(check(reportA, 'report-only', keysB.public));
    expect(bad).toMatch(/^[\x20-\x7e]+$/);
    expect(JSON.parse(bad)).toEqual({ ok: false, code: 'unknown-key', exitCode: 7, reason: expect.any(String) as string });
  });

  it('keeps hostile names harmless', () => {
    const t = serializeReport(signReport(makeBody(pubA.keyId, CONTENT_A, { name: { original: '\u001b]0;pwned\u0007\u202e', stored: 'x' } }), keysA.secret));
    const out = verifyResultJson(check(t));
    expect(out).toMatch(/^[\x20-\x7e]+$/);
    expect((JSON.parse(out) as { report: { name: { original: string } } }).report.name.original).toBe('\u001b]0;pwned\u0007\u202e');
  });
});

describe('hashFile', () => {
  it('streams size and SHA-256 of a multi-chunk file', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    const path = join(tmp, 'big');
    writeFileSync(path, big);
    expect(await hashFile(path)).toEqual(factsOf(big));
    writeFileSync(path, '');
    expect(await hashFile(path)).toEqual(factsOf(Buffer.alloc(0)));
  });

  it('refuses what is not a regular file', async () => {
    await expect(hashFile(tmp)).rejects.toThrow(/not a regular file/);
    await expect(hashFile(join(tmp, 'missing'))).rejects.toThrow(/ENOENT/);
  });
});

describe('sluice-report/1 reports (issued by earlier versions)', () => {
  const emptyDigest = factsOf(Buffer.alloc(0)).sha256hex;

  it('keep verifying: accepted ok, rejected rejected, and report-only ok', () => {
    const accepted = serializeReport(signV1(makeBody(pubA.keyId, CONTENT_A), keysA.secret));
    expectCode(check(accepted), 'ok');
    expectCode(check(accepted, factsB), 'mismatch');
    const rejected = serializeReport(signV1(makeRejectedBody(pubA.keyId, CONTENT_A), keysA.secret));
    expectCode(check(rejected), 'rejected');
    expectCode(check(rejected, 'report-only'), 'ok');
  });

  it('a pickup refusal (size 0, digest of empty input) no longer matches an empty file: mismatch, not rejected', () => {
    const body = { ...makeRefusedBody(pubA.keyId, 'not-regular: symlink'), size: 0, sha256: emptyDigest };
    const v1 = serializeReport(signV1(body, keysA.secret));
    const r = check(v1, factsOf(Buffer.alloc(0)));
    expectCode(r, 'mismatch');
    expect(r.reason).toMatch(/never copied/);
    const only = check(v1, 'report-only');
    expectCode(only, 'ok');
    expect(only.reason).toMatch(/never copied \(refused at pickup\)/);
  });

  it('a context other than the label is malformed: it is checked, though nothing signs it', () => {
    const v1 = signV1(makeBody(pubA.keyId, CONTENT_A), keysA.secret);
    expectCode(check(rawText({ ...v1, signature: { ...v1.signature, context: 'sluice-report/2' } })), 'malformed');
  });

  it('cannot be passed off as sluice-report/2 (or back): the label is signed', () => {
    const v1 = signV1(makeBody(pubA.keyId, CONTENT_A), keysA.secret);
    const { context: _c, ...sigs } = v1.signature;
    expectCode(check(rawText({ ...v1, format: 'sluice-report/2', signature: sigs })), 'bad-signature');
    const v2 = parseReport(reportA);
    expectCode(check(rawText({ ...v2, format: 'sluice-report/1', signature: { context: 'sluice-report/1', ...v2.signature } })), 'bad-signature');
  });

  it('a sluice-report/2 report with a context member is malformed', () => {
    const v2 = parseReport(reportA);
    const r = check(rawText({ ...v2, signature: { context: 'sluice-report/2', ...v2.signature } }));
    expectCode(r, 'malformed');
    expect(r.reason).toMatch(/signature: unknown member "context"/);
  });
});
