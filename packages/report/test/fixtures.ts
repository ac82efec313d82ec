/*
 * NAME
 *   fixtures - shared keys, bodies and helpers for the report package's unit tests
 *
 * DESCRIPTION
 *   Lives outside src/ so that tsc does not compile it into dist/ and vitest
 *   does not collect it as a test file. Keys are random per test run; the
 *   fixed keys live in test-vector/vector.json.
 */
import { createHash } from 'node:crypto';
import { hybridSign } from '../src/_hybrid.js';
import { asciiJson, canonicalBytes, generateKeys, jcs, REPORT_FORMAT, type ReportBody, type SecretKey, type SignedReport } from '../src/index.js';
import { secretKeyMaterial } from '../src/keys.js';

export const keysA = generateKeys();
export const keysB = generateKeys();

export const CONTENT_A = Buffer.from('first file\n');
export const CONTENT_B = Buffer.from('second file, a different one\n');

/** factsOf - size and digest of a buffer, as hashFile reports them. */
export function factsOf(content: Uint8Array): { size: number; sha256hex: string } {
  return { size: content.length, sha256hex: createHash('sha256').update(content).digest('hex') };
}

/** makeBody - a valid accepted body for `content`, signed-to-be by `key`. */
export function makeBody(key: string, content: Uint8Array = CONTENT_A, over: Partial<ReportBody> = {}): ReportBody {
  const facts = factsOf(content);
  return {
    format: REPORT_FORMAT,
    station: 'test-station',
    software: 'sluice 0.1.0',
    key,
    transfer: 'T0001',
    name: { original: 'first file.txt', stored: 'first_file.txt' },
    size: facts.size,
    sha256: facts.sha256hex,
    verdict: 'accepted',
    reason: '',
    checks: [{ name: 'clamav', result: 'pass', reason: 'OK', engine: 'ClamAV 1.4.6/27500' }],
    times: { received: '2025-03-04T05:06:07.008Z', checked: '2025-03-04T05:06:07.109Z', reported: '2025-03-04T05:06:07.210Z' },
    ...over,
  };
}

/** makeRejectedBody - a valid rejected body. */
export function makeRejectedBody(key: string, content: Uint8Array = CONTENT_A): ReportBody {
  return makeBody(key, content, {
    verdict: 'rejected',
    reason: 'clamav: Eicar-Test-Signature FOUND',
    checks: [{ name: 'clamav', result: 'fail', reason: 'Eicar-Test-Signature FOUND', engine: 'ClamAV 1.4.6/27500' }],
  });
}

/** makeRefusedBody - a report of an upload ingress refused at pickup ("<code>: <detail>"): never copied, no digest. */
export function makeRefusedBody(key: string, refusal: string, sizeSeen: number | null = 5000): ReportBody {
  return makeBody(key, CONTENT_A, {
    name: { original: 'huge.iso', stored: 'huge.iso' },
    size: sizeSeen,
    sha256: null,
    verdict: 'rejected',
    reason: `ingress: refused at pickup: ${refusal}`,
    checks: [{ name: 'ingress', result: 'fail', reason: `refused at pickup: ${refusal}`, engine: '' }],
  });
}

/**
 * signV1 - a sluice-report/1 report as earlier versions signed it: label "sluice-report/1", and
 * the unsigned signature.context beside the signatures. This version never signs one itself.
 */
export function signV1(body: ReportBody, secret: SecretKey): SignedReport {
  const v1 = { ...body, format: 'sluice-report/1' as const };
  const sigs = hybridSign(canonicalBytes(v1), secretKeyMaterial(secret).keys, false);
  return { ...v1, signature: { context: 'sluice-report/1', ed25519: Buffer.from(sigs.ed25519).toString('base64'), mldsa65: Buffer.from(sigs.mldsa65).toString('base64') } };
}

/** rawText - the file spelling of any value, without schema validation (to build bad reports). */
export function rawText(value: unknown): string {
  try {
    return `${asciiJson(jcs(value))}\n`;
  } catch {
    // jcs refuses lone surrogates; JSON.stringify writes them as \udXXX escapes, which is what a forger would do.
    const sorted = (v: unknown): unknown =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]))
        : Array.isArray(v) ? v.map(sorted) : v;
    return `${asciiJson(JSON.stringify(sorted(value)))}\n`;
  }
}

/** replaceAt - the text with the character at i replaced by `c`. */
export function replaceAt(text: string, i: number, c: string): string {
  return text.slice(0, i) + c + text.slice(i + 1);
}
