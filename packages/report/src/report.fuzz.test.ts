/*
 * NAME
 *   report.fuzz.test - the parser behind `sluice verify` on forged reports
 *
 * DESCRIPTION
 *   report.test.ts and verify.test.ts fuzz parseReport and verifyReport with
 *   random strings (10,000 runs) and with character edits of one valid
 *   report. Random strings rarely get past the one-spelling and JSON checks
 *   into the schema; this file attacks the schema and the signature checks
 *   the way a forger would: start from a valid signed report, change the
 *   parsed document (any member, at any depth, set to any JSON value or to
 *   a value built to pass the member's own rule, removed, or joined by a
 *   stranger), and write it back in the canonical spelling, so the parser
 *   has to judge its content.
 *
 *   parseReport, 10,000 runs: returns a report or throws ReportFormatError,
 *   nothing else; what it returns differs from the original exactly when
 *   the text does (the document round-trips).
 *
 *   verifyReport (what `sluice verify` runs, given the text as the CLI reads
 *   it), 10,000 runs of the same forgeries: never throws; its code is one of
 *   the documented ones with the matching exit code and a one-line ASCII
 *   reason; it says ok only for the original text. A forgery that parses
 *   costs an ML-DSA-65 verification (under 1 ms idle, several on a loaded
 *   machine): about 7 s idle, hence its own timeout.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONTENT_A, factsOf, keysA, makeBody, rawText } from '../test/fixtures.js';
import { EXIT_CODES, ReportFormatError, parseReport, serializeReport, signReport, verifyReport } from './index.js';

const signed = signReport(makeBody(keysA.public.keyId, CONTENT_A), keysA.secret);
const original = serializeReport(signed);
const doc = JSON.parse(original) as unknown;

/** paths - every member and array element of the document, containers included. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = at.length > 0 ? [at] : [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}
const PATHS = paths(doc);

/** Values a forger would try: wrong types, boundaries, escapes, other reports' values. */
const forgedValue = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      '', ' ', 'accepted', 'rejected', 'pass', 'fail', 'error', 'sluice-report/1', 'sluice-report/2', 'sluice 0.1.0', 'T0001', '..', '/', 'a/b',
      'x\u202Eexe', '\u001b[2J', '\u0085', '\uD800', '\uDFFF\uD800', '0'.repeat(64), 'f'.repeat(64), 'F'.repeat(64), '0'.repeat(63), '0'.repeat(32),
      '2025-03-04T05:06:07Z', '2025-02-30T05:06:07Z', '2025-03-04T05:06:07+00:00', '2025-03-04T05:06:07.1234567890Z',
      'AAAA', 'AA==', 'AB==', 'x'.repeat(257), 'x'.repeat(4097), 'x'.repeat(131073),
      0, -0, 1, -1, 2 ** 53 - 1, 2 ** 53, 1.5, 1e21, true, false, null, [], {}, [{}], { name: 'x' },
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{60,68}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{32}$/) }, // another key id
  { weight: 1, arbitrary: fc.integer({ min: -10, max: 1_000_000 }) },
);

type Forgery =
  | { kind: 'set'; path: (string | number)[]; value: unknown }
  | { kind: 'remove'; path: (string | number)[] }
  | { kind: 'add'; path: (string | number)[]; key: string; value: unknown };

const forgery: fc.Arbitrary<Forgery> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), path: fc.constantFrom(...PATHS), value: forgedValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), path: fc.constantFrom(...PATHS) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      path: fc.constantFrom([], ...PATHS),
      key: fc.constantFrom('extra', 'verdict', 'signature', '__proto__', 'constructor', ''),
      value: forgedValue,
    }),
  },
);

/** forge - apply 1-3 forgeries to a copy of the document; write it canonically (or, sometimes, not). */
const forged: fc.Arbitrary<string> = fc
  .tuple(fc.array(forgery, { minLength: 1, maxLength: 3 }), fc.constantFrom('canonical', 'canonical', 'canonical', 'json', 'pretty'))
  .map(([fs, spelling]) => {
    const d = structuredClone(doc) as Record<string | number, unknown>;
    for (const f of fs) {
      let o: unknown = d;
      const at = f.kind === 'add' ? f.path : f.path.slice(0, -1);
      for (const k of at) o = o && typeof o === 'object' ? (o as Record<string | number, unknown>)[k] : undefined;
      if (!o || typeof o !== 'object') continue;
      const obj = o as Record<string | number, unknown>;
      // A copy of the value: constantFrom hands out the same object every run, and a shared
      // object set at two paths would make the document cyclic (no text at all).
      const value = structuredClone(f.kind === 'remove' ? undefined : f.value);
      if (f.kind === 'set') obj[f.path[f.path.length - 1]!] = value;
      else if (f.kind === 'remove') {
        if (Array.isArray(obj)) obj.splice(Number(f.path[f.path.length - 1]), 1);
        else delete obj[f.path[f.path.length - 1]!];
      } else if (!Array.isArray(obj)) Object.defineProperty(obj, f.key, { value, enumerable: true, configurable: true, writable: true });
    }
    if (spelling === 'canonical') return rawText(d);
    if (spelling === 'pretty') return `${JSON.stringify(d, null, 2)}\n`;
    return `${JSON.stringify(d)}\n`;
  });

describe('forged reports (structure-aware fuzzing)', () => {
  it('parseReport: a report or ReportFormatError, nothing else; a different text never parses to the original (10,000 runs)', () => {
    fc.assert(
      fc.property(forged, (text) => {
        let parsed;
        try {
          parsed = parseReport(text);
        } catch (err) {
          if (err instanceof ReportFormatError) return true;
          throw err;
        }
        // Accepted text is the canonical spelling of what it parsed to.
        return serializeReport(parsed) === text && (text === original) === (JSON.stringify(parsed) === JSON.stringify(signed));
      }),
      { numRuns: 10_000 },
    );
  });

  it('verifyReport (sluice verify): never throws, documented code and exit code, one ASCII line, ok only for the original (10,000 runs)', { timeout: 180_000 }, () => {
    const file = factsOf(CONTENT_A);
    fc.assert(
      fc.property(forged, fc.boolean(), (text, reportOnly) => {
        const r = reportOnly
          ? verifyReport({ reportText: text, publicKey: keysA.public, reportOnly: true })
          : verifyReport({ reportText: text, publicKey: keysA.public, file, reportOnly: false });
        return (
          Object.hasOwn(EXIT_CODES, r.code) &&
          r.exitCode === EXIT_CODES[r.code] &&
          r.ok === (r.code === 'ok') &&
          /^[\x20-\x7e]+$/.test(r.reason) &&
          (!r.ok || text === original)
        );
      }),
      { numRuns: 10_000 },
    );
  });

  it('the forgeries reach every verdict of the parser and the signature check', () => {
    // A fuzzer that only ever produced "malformed" would prove little: sample and require a spread.
    const codes = new Set<string>();
    for (const text of fc.sample(forged, { numRuns: 1_500, seed: 8 })) {
      codes.add(verifyReport({ reportText: text, publicKey: keysA.public, reportOnly: true }).code);
    }
    for (const code of ['malformed', 'unknown-key', 'bad-signature']) expect([...codes], code).toContain(code);
  });
});
