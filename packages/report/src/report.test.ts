/*
 * NAME
 *   report.test - the report schema, the signed bytes, the one file spelling, strict parsing
 *
 * DESCRIPTION
 *   One mangler table runs every field through wrong types, empty, too long,
 *   wrong case and out-of-range values; each must be refused by parseReport
 *   with a message naming the field, and by signReport/serializeReport too
 *   (this package never signs what it would refuse to read).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keysA, makeBody, makeRefusedBody, makeRejectedBody, rawText, signV1 } from '../test/fixtures.js';
import {
  asciiJson,
  canonicalBytes,
  jcs,
  LIMITS,
  MAX_REPORT_BYTES,
  neverCopied,
  parseReport,
  pickupRefusal,
  ReportFormatError,
  serializeReport,
  signReport,
  validateReportBody,
  verifyReport,
  type ReportBody,
  type SignedReport,
} from './index.js';

const signed = signReport(makeBody(keysA.public.keyId), keysA.secret);
const text = serializeReport(signed);

/** withField - a deep copy of `obj` with the member at `path` set (or removed when value is REMOVE). */
const REMOVE = Symbol('remove');
function withField(obj: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (value === REMOVE) delete o[last];
  else o[last] = value;
  return copy;
}

describe('canonicalBytes', () => {
  it('is UTF-8 label, one 0x00, then the JCS of the body without its signature', () => {
    const body = makeBody(keysA.public.keyId, undefined, { name: { original: 'caf\u00e9\u202e', stored: 'cafe' } });
    const bytes = Buffer.from(canonicalBytes(body));
    const label = Buffer.from('sluice-report/2');
    expect(bytes.subarray(0, label.length).equals(label)).toBe(true);
    expect(bytes[label.length]).toBe(0);
    expect(bytes.subarray(label.length + 1).toString('utf8')).toBe(jcs(body));
    expect(bytes.includes(Buffer.from('caf\u00e9\u202e', 'utf8'))).toBe(true); // raw UTF-8, not escaped
  });

  it('takes its label from the format: a sluice-report/1 body starts with that label', () => {
    const body = makeBody(keysA.public.keyId, undefined, { format: 'sluice-report/1' });
    const bytes = Buffer.from(canonicalBytes(body));
    expect(bytes.subarray(0, 16).toString('latin1')).toBe('sluice-report/1\u0000');
    expect(bytes.subarray(16).toString('utf8')).toBe(jcs(body));
  });

  it('leaves a signature member out, so body and signed report give the same bytes', () => {
    expect(Buffer.from(canonicalBytes(signed)).equals(Buffer.from(canonicalBytes(makeBody(keysA.public.keyId))))).toBe(true);
  });

  it('does not depend on member order', () => {
    const body = makeBody(keysA.public.keyId);
    const reversed = Object.fromEntries(Object.entries(body).reverse()) as unknown as ReportBody;
    expect(Buffer.from(canonicalBytes(reversed)).equals(Buffer.from(canonicalBytes(body)))).toBe(true);
  });
});

describe('serializeReport / parseReport', () => {
  it('writes one line of printable ASCII ending in LF, and reads it back', () => {
    expect(/^[\x20-\x7e]+\n$/.test(text)).toBe(true);
    expect(parseReport(text)).toEqual(signed);
    expect(parseReport(new Uint8Array(Buffer.from(text)))).toEqual(signed);
  });

  it('states sha256 and verdict at the top level (pinned interface)', () => {
    const plain = JSON.parse(text) as Record<string, unknown>;
    expect(plain.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(plain.verdict).toBe('accepted');
    expect(Object.keys(plain).sort()).toEqual(
      ['checks', 'format', 'key', 'name', 'reason', 'sha256', 'signature', 'size', 'software', 'station', 'times', 'transfer', 'verdict'].sort(),
    );
  });

  it('keeps hostile names harmless in the file: controls, bidi and C1 are escapes', () => {
    const s = signReport(makeBody(keysA.public.keyId, undefined, { name: { original: '\u001b[31mred\u202e\u0085\u0000"', stored: 'red' } }), keysA.secret);
    const t = serializeReport(s);
    expect(/^[\x20-\x7e]+\n$/.test(t)).toBe(true);
    expect(t).toContain('\\u001b[31mred\\u202e\\u0085\\u0000\\"');
    expect(parseReport(t).name.original).toBe('\u001b[31mred\u202e\u0085\u0000"');
  });

  it.each([
    ['pretty-printed', `${JSON.stringify(JSON.parse(text), null, 2)}\n`],
    ['without the final newline', text.slice(0, -1)],
    ['with CRLF', `${text.slice(0, -1)}\r\n`],
    ['with two newlines', `${text}\n`],
    ['with a space after a colon', text.replace('"format":', '"format": ')],
    ['with members out of order', `${rawText(signed).replace(/^\{/, '{"verdict":"accepted",').replace(',"verdict":"accepted"', '')}`],
    ['with an escaped ASCII letter', text.replace('"test-station"', '"test-st\\u0061tion"')],
    ['with an uppercase \\u escape', rawText({ ...signed, name: { ...signed.name, original: '\u00e9' } }).replace('\\u00e9', '\\u00E9')],
    ['with a raw non-ASCII character', rawText(signed).replace('first file.txt', 'first fil\u00e9.txt')],
    ['with a UTF-8 BOM', `\ufeff${text}`],
    ['with size written as 11.0', text.replace(/"size":(\d+)/, '"size":$1.0')],
    ['with size written as 1.1e1', text.replace(/"size":(\d+)/, '"size":1.1e1')],
  ])('refuses a report %s', (_name, t) => {
    expect(() => parseReport(t)).toThrow(ReportFormatError);
  });

  it('refuses a duplicated key, naming it (JSON.parse would silently keep the last)', () => {
    const dup = text.replace('"verdict":"accepted"', '"verdict":"rejected","verdict":"accepted"');
    expect((JSON.parse(dup) as { verdict: string }).verdict).toBe('accepted');
    expect(() => parseReport(dup)).toThrow(/duplicate key "verdict"/);
    const dupNested = text.replace('"stored":', '"stored":"x","stored":');
    expect(() => parseReport(dupNested)).toThrow(/duplicate key "stored"/);
  });

  it('refuses oversize input before parsing', () => {
    expect(() => parseReport(`${' '.repeat(2 * 1024 * 1024)}\n`)).toThrow(/larger than/);
    expect(() => parseReport(new Uint8Array(3 * 1024 * 1024))).toThrow(/larger than/);
  });

  it('refuses non-ASCII bytes given as a buffer, naming the offset', () => {
    const b = Buffer.from(text);
    b[10] = 0xc3;
    expect(() => parseReport(b)).toThrow(/offset 10/);
  });
});

// One row per way to get a field wrong: [field path, bad value, expected message fragment].
const MANGLERS: [string, (string | number)[], unknown, RegExp][] = [
  ['unknown top-level member', ['extra'], 1, /unknown member "extra"/],
  ['missing format', ['format'], REMOVE, /missing member "format"/],
  ['missing verdict', ['verdict'], REMOVE, /missing member "verdict"/],
  ['missing signature', ['signature'], REMOVE, /missing member "signature"/],
  ['format version 4', ['format'], 'sluice-report/4', /^format:/],
  ['format version 1 spelled with a space', ['format'], 'sluice-report/ 1', /^format:/],
  ['station empty', ['station'], '', /^station:/],
  ['station too long', ['station'], 'x'.repeat(257), /^station:/],
  ['station with a lone surrogate', ['station'], 'a\ud800', /^station:|lone surrogate/],
  ['station a number', ['station'], 7, /^station:/],
  ['software not sluice', ['software'], 'keysas 1.0', /^software:/],
  ['key uppercase', ['key'], 'A'.repeat(32), /^key:/],
  ['key one digit short', ['key'], 'a'.repeat(31), /^key:/],
  ['transfer empty', ['transfer'], '', /^transfer:/],
  ['name a string', ['name'], 'x', /^name:/],
  ['name extra member', ['name', 'path'], '/etc/passwd', /^name: unknown member/],
  ['original name a number', ['name', 'original'], 5, /^name.original:/],
  ['original name too long', ['name', 'original'], 'x'.repeat(4097), /^name.original:/],
  ['stored name empty', ['name', 'stored'], '', /^name.stored:/],
  ['stored name with slash', ['name', 'stored'], 'a/b', /^name.stored:/],
  ['stored name ..', ['name', 'stored'], '..', /^name.stored:/],
  ['stored name .', ['name', 'stored'], '.', /^name.stored:/],
  ['stored name with newline', ['name', 'stored'], 'a\nb', /^name.stored:/],
  ['stored name with NUL', ['name', 'stored'], 'a\u0000b', /^name.stored:/],
  ['stored name with C1 CSI', ['name', 'stored'], 'a\u009bb', /^name.stored:/],
  ['stored name with RLO', ['name', 'stored'], 'gpj\u202eexe', /^name.stored:/],
  ['stored name with isolate', ['name', 'stored'], 'a\u2066b', /^name.stored:/],
  ['stored name 256 bytes', ['name', 'stored'], 'x'.repeat(256), /^name.stored:/],
  ['stored name 128 two-byte chars', ['name', 'stored'], '\u00e9'.repeat(128), /^name.stored:/],
  ['size negative', ['size'], -1, /^size:/],
  ['size fractional', ['size'], 1.5, /^size:/],
  ['size 2^53', ['size'], 2 ** 53, /^size:/],
  ['size a string', ['size'], '11', /^size:/],
  ['size null beside a digest', ['size'], null, /^size: may be null only when sha256 is null/],
  ['sha256 uppercase', ['sha256'], 'A'.repeat(64), /^sha256:/],
  ['sha256 63 digits', ['sha256'], 'a'.repeat(63), /^sha256:/],
  ['sha256 65 digits', ['sha256'], 'a'.repeat(65), /^sha256:/],
  ['sha256 not hex', ['sha256'], 'g'.repeat(64), /^sha256:/],
  ['sha256 empty', ['sha256'], '', /^sha256:/],
  ['sha256 null in an accepted report', ['sha256'], null, /^sha256: is null \(never copied\) but the verdict is "accepted"/],
  ['verdict capitalized', ['verdict'], 'Accepted', /^verdict:/],
  ['verdict pass', ['verdict'], 'pass', /^verdict:/],
  ['accepted with a reason', ['reason'], 'but why', /^reason: must be empty/],
  ['reason a number', ['reason'], 0, /^reason:/],
  ['checks an object', ['checks'], {}, /^checks:/],
  ['checks too many', ['checks'], Array.from({ length: 65 }, () => ({ name: 'c', result: 'pass', reason: '', engine: '' })), /^checks:/],
  ['check result ok', ['checks', 0, 'result'], 'ok', /^checks\[0\].result:/],
  ['accepted with a failed check', ['checks', 0, 'result'], 'fail', /^checks\[0\].result: is not "pass"/],
  ['accepted with an errored check', ['checks', 0, 'result'], 'error', /^checks\[0\].result: is not "pass"/],
  ['check without engine', ['checks', 0, 'engine'], REMOVE, /^checks\[0\]: missing member "engine"/],
  ['check with extra member', ['checks', 0, 'verdict'], 'accepted', /^checks\[0\]: unknown member/],
  ['check name empty', ['checks', 0, 'name'], '', /^checks\[0\].name:/],
  ['check engine too long', ['checks', 0, 'engine'], 'x'.repeat(257), /^checks\[0\].engine:/],
  ['check reason too long', ['checks', 0, 'reason'], 'x'.repeat(1025), /^checks\[0\].reason:/],
  ['check name too long', ['checks', 0, 'name'], 'x'.repeat(257), /^checks\[0\].name:/],
  ['check a string', ['checks', 0], 'pass', /^checks\[0\]:/],
  ['time without seconds', ['times', 'received'], '2025-03-04T05:06Z', /^times.received:/],
  ['time with 10 fraction digits', ['times', 'received'], '2025-03-04T05:06:07.0123456789Z', /^times.received:/],
  ['time with lowercase z', ['times', 'received'], '2025-03-04T05:06:07.008z', /^times.received:/],
  ['time with a leap second', ['times', 'received'], '2016-12-31T23:59:60Z', /^times.received:/],
  ['time Feb 29 in 2100', ['times', 'received'], '2100-02-29T00:00:00Z', /^times.received:/],
  ['time with offset', ['times', 'checked'], '2025-03-04T05:06:07.008+01:00', /^times.checked:/],
  ['time month 13', ['times', 'reported'], '2025-13-04T05:06:07.008Z', /^times.reported:/],
  ['time Feb 30', ['times', 'reported'], '2025-02-30T05:06:07.008Z', /^times.reported:/],
  ['times missing one', ['times', 'checked'], REMOVE, /^times: missing member "checked"/],
  ['signature with a context (sluice-report/1 only)', ['signature', 'context'], 'sluice-report/2', /^signature: unknown member "context"/],
  ['signature extra member', ['signature', 'rsa'], 'AAAA', /^signature: unknown member/],
  ['ed25519 one byte short', ['signature', 'ed25519'], Buffer.alloc(63).toString('base64'), /^signature.ed25519:/],
  ['ed25519 as hex', ['signature', 'ed25519'], Buffer.alloc(64).toString('hex'), /^signature.ed25519:/],
  ['ed25519 empty', ['signature', 'ed25519'], '', /^signature.ed25519:/],
  ['ed25519 base64url', ['signature', 'ed25519'], `${'_'.repeat(84)}AA==`, /^signature.ed25519:/],
  ['ed25519 non-canonical padding bits', ['signature', 'ed25519'], `${'A'.repeat(85)}B==`, /^signature.ed25519: is not canonical/],
  ['mldsa65 one byte long', ['signature', 'mldsa65'], Buffer.alloc(3310).toString('base64'), /^signature.mldsa65:/],
  ['mldsa65 a number', ['signature', 'mldsa65'], 0, /^signature.mldsa65:/],
];

describe('schema manglers', () => {
  it.each(MANGLERS)('parseReport refuses %s, naming the field', (_name, path, value, message) => {
    const t = rawText(withField(signed, path, value));
    expect(() => parseReport(t)).toThrow(ReportFormatError);
    expect(() => parseReport(t)).toThrow(message);
  });

  it.each(MANGLERS.filter(([, path]) => path[0] !== 'signature'))('signReport refuses %s', (_name, path, value, message) => {
    const body = withField(makeBody(keysA.public.keyId), path, value) as ReportBody;
    expect(() => signReport(body, keysA.secret)).toThrow(message);
    expect(() => canonicalBytes(body)).toThrow(ReportFormatError);
  });

  it.each(MANGLERS)('serializeReport refuses %s', (_name, path, value) => {
    expect(() => serializeReport(withField(signed, path, value) as SignedReport)).toThrow(ReportFormatError);
  });

  it('refuses a rejected verdict without a reason', () => {
    const body = { ...makeRejectedBody(keysA.public.keyId), reason: '' };
    expect(() => validateReportBody(body)).toThrow(/^reason: must say why/);
  });

  it('refuses a body whose key is not the signing key', () => {
    expect(() => signReport(makeBody('0'.repeat(32)), keysA.secret)).toThrow(/^key: .* is not the id of the signing key/);
  });

  it('accepts the edges: size 0 and 2^53-1, no checks, 255-byte stored name, long original name', () => {
    for (const over of [
      { size: 0 },
      { size: Number.MAX_SAFE_INTEGER },
      { checks: [] },
      { name: { original: '\u0000'.repeat(4096), stored: '\u00e9'.repeat(127) + 'x' } },
    ]) {
      const s = signReport(makeBody(keysA.public.keyId, undefined, over), keysA.secret);
      expect(parseReport(serializeReport(s))).toEqual(s);
    }
  });

  it('accepts everything the stage protocol lets through (a compromised transit cannot stop signing)', () => {
    const s = signReport(
      makeBody(keysA.public.keyId, undefined, {
        station: 'Site A \u2013 gate\tone',
        checks: [{ name: 'scan\u0007 \u202e', result: 'pass', reason: 'ok\nreally', engine: 'x\u0000y' }],
        times: { received: '2024-02-29T23:59:59Z', checked: '2025-03-04T05:06:07.123456789Z', reported: '2025-03-04T05:06:07.1Z' },
      }),
      keysA.secret,
    );
    expect(parseReport(serializeReport(s))).toEqual(s);
  });

  it('keeps the largest valid report, all fields at their limits and escaped 6:1, under MAX_REPORT_BYTES', () => {
    const fill = (n: number): string => '\u{1F4C4}'.repeat(n / 2); // astral: 2 code units, 12 file characters
    const check = { name: fill(LIMITS.checkName), result: 'fail' as const, reason: fill(LIMITS.checkReason), engine: fill(LIMITS.engine) };
    const body = makeBody(keysA.public.keyId, undefined, {
      station: fill(LIMITS.station),
      name: { original: fill(LIMITS.originalName), stored: '\u00e9'.repeat(127) },
      verdict: 'rejected',
      reason: fill(LIMITS.reason),
      checks: Array.from({ length: LIMITS.checks }, () => check),
    });
    const t = serializeReport(signReport(body, keysA.secret));
    expect(t.length).toBeLessThan(MAX_REPORT_BYTES);
    expect(parseReport(t).checks).toHaveLength(LIMITS.checks);
  });

  it('returns fresh objects: later changes to the input do not reach the signed report', () => {
    const body = makeBody(keysA.public.keyId);
    const s = signReport(body, keysA.secret);
    body.checks[0]!.result = 'fail';
    expect(s.checks[0]!.result).toBe('pass');
  });
});

describe('parseReport on arbitrary input (fast-check)', () => {
  /** onlyFormatErrors - parseReport either returns or throws ReportFormatError. */
  function onlyFormatErrors(input: string | Uint8Array): boolean {
    try {
      parseReport(input);
      return true;
    } catch (err) {
      return err instanceof ReportFormatError;
    }
  }

  it('throws nothing but ReportFormatError for any string (10000 runs)', () => {
    const anyString = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
      fc.json().map((j) => `${j}\n`),
      fc.jsonValue().map((v) => `${asciiJson(JSON.stringify(v))}\n`),
    );
    fc.assert(fc.property(anyString, onlyFormatErrors), { numRuns: 10000 });
  });

  it('throws nothing but ReportFormatError for any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), onlyFormatErrors), { numRuns: 2000 });
  });

  it('refuses every edit of a valid report that changes its text', () => {
    const edit = fc.record({ at: fc.nat({ max: text.length }), cut: fc.nat({ max: 8 }), insert: fc.string({ maxLength: 8 }) });
    fc.assert(
      fc.property(edit, ({ at, cut, insert }) => {
        const t = text.slice(0, at) + insert + text.slice(at + cut);
        fc.pre(t !== text);
        let parsed: SignedReport | undefined;
        try {
          parsed = parseReport(t);
        } catch (err) {
          return err instanceof ReportFormatError;
        }
        // Still well-formed: then it must state something else than the original.
        return JSON.stringify(parsed) !== JSON.stringify(signed);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses any member replaced by an arbitrary JSON value, unless the result is still valid', () => {
    const paths: (string | number)[][] = [['size'], ['sha256'], ['verdict'], ['format'], ['name', 'stored'], ['checks', 0], ['times'], ['signature', 'context'], ['key']];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        try {
          parseReport(rawText(withField(signed, path, value)));
          return true;
        } catch (err) {
          return err instanceof ReportFormatError;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('a report of an upload never copied (refused at pickup)', () => {
  const refused = makeRefusedBody(keysA.public.keyId, 'too-large: 5000 bytes, over the limit of 4096');

  it('states no digest and the size ingress saw, and round-trips', () => {
    const s = signReport(refused, keysA.secret);
    const t = serializeReport(s);
    expect(t).toContain('"sha256":null');
    expect(t).toContain('"size":5000');
    expect(parseReport(t)).toEqual(s);
    expect(neverCopied(s)).toBe(true);
  });

  it('may state no size either, when ingress saw no regular file', () => {
    const s = signReport({ ...makeRefusedBody(keysA.public.keyId, 'not-regular: symlink'), size: null }, keysA.secret);
    expect(parseReport(serializeReport(s))).toMatchObject({ size: null, sha256: null });
  });

  it('is only ever a rejection, and only in sluice-report/2', () => {
    expect(() => validateReportBody({ ...refused, verdict: 'accepted', reason: '', checks: [] })).toThrow(/^sha256: is null \(never copied\) but the verdict is "accepted"/);
    expect(() => validateReportBody({ ...refused, format: 'sluice-report/1' })).toThrow(/^sha256: must be 64 lowercase hex digits$/);
    expect(() => validateReportBody({ ...makeRejectedBody(keysA.public.keyId), format: 'sluice-report/1', size: null })).toThrow(/^size:/);
  });

  it('neverCopied: a null digest, or the sluice-report/1 spelling of a pickup refusal; nothing else', () => {
    const key = keysA.public.keyId;
    const emptyDigest = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    const v1Refusal = { ...refused, format: 'sluice-report/1' as const, size: 0, sha256: emptyDigest };
    expect(neverCopied(refused)).toBe(true);
    expect(neverCopied(v1Refusal)).toBe(true);
    // The same facts in sluice-report/2 are an empty file transit had its say on: it has a digest.
    expect(neverCopied({ ...v1Refusal, format: 'sluice-report/2' })).toBe(false);
    expect(neverCopied(makeBody(key))).toBe(false);
    expect(neverCopied(makeRejectedBody(key))).toBe(false);
    expect(neverCopied({ ...makeRejectedBody(key, Buffer.alloc(0)), format: 'sluice-report/1' })).toBe(false); // an empty upload, rejected
    expect(neverCopied({ ...v1Refusal, size: 14 })).toBe(false);
    expect(neverCopied({ ...v1Refusal, checks: [{ ...v1Refusal.checks[0]!, name: 'clamav' }] })).toBe(false);
    expect(neverCopied({ ...v1Refusal, checks: [{ ...v1Refusal.checks[0]!, result: 'error' }] })).toBe(false);
  });

  it.each([
    ['refused at pickup: too-large: 5000 bytes, over the limit of 4096', 5000],
    ['refused at pickup: hard-link: 14 bytes, regular file with 2 links', 14],
    ['refused at pickup: too-large: 0 bytes', 0],
    ['refused at pickup: not-regular: symlink', null],
    ['refused at pickup: not-regular: directory', null],
    ['refused at pickup: too-large: 99999999999999999 bytes, over the limit', null], // not a safe integer
    ['refused at pickup: too-large: -5 bytes', null],
    ['refused at pickup: too-large: 5000 bytesfoo', null],
  ])('pickupRefusal(%j) sees size %j', (reason, size) => {
    expect(pickupRefusal([{ name: 'ingress', result: 'fail', reason, engine: '' }])).toEqual({ sizeSeen: size });
  });

  it.each([
    ['another check name', { name: 'size-limit', result: 'fail' as const, reason: 'refused at pickup: too-large: 5 bytes', engine: '' }],
    ['a passing check', { name: 'ingress', result: 'pass' as const, reason: 'refused at pickup: too-large: 5 bytes', engine: '' }],
    ['another reason', { name: 'ingress', result: 'fail' as const, reason: 'too-large: 5 bytes', engine: '' }],
  ])('pickupRefusal is null for %s', (_what, check) => {
    expect(pickupRefusal([check])).toBeNull();
  });
});

describe('sluice-report/1 (issued by earlier versions: read under its own rules, never written)', () => {
  const v1Body = makeBody(keysA.public.keyId, undefined, { format: 'sluice-report/1' });
  const v1 = signV1(v1Body, keysA.secret);
  const v1Text = serializeReport(v1);

  it('has the unauthenticated context beside the signatures, and reads back to the same text', () => {
    expect(v1.signature.context).toBe('sluice-report/1');
    expect(v1Text).toContain('"signature":{"context":"sluice-report/1","ed25519":');
    expect(parseReport(v1Text)).toEqual(v1);
    expect(serializeReport(parseReport(v1Text))).toBe(v1Text);
  });

  it('must have a context equal to its label, and no other signature member', () => {
    expect(() => parseReport(rawText({ ...v1, signature: { ed25519: v1.signature.ed25519, mldsa65: v1.signature.mldsa65 } }))).toThrow(/^signature: missing member "context"/);
    expect(() => parseReport(rawText({ ...v1, signature: { ...v1.signature, context: 'sluice-report/2' } }))).toThrow(/^signature.context: must be "sluice-report\/1"/);
    expect(() => parseReport(rawText({ ...v1, signature: { ...v1.signature, rsa: 'AAAA' } }))).toThrow(/^signature: unknown member "rsa"/);
  });

  it('is never signed by this version: new reports carry no context', () => {
    expect(() => signReport(v1Body, keysA.secret)).toThrow(/^format: this version signs only "sluice-report\/2"/);
    const current = signReport(makeBody(keysA.public.keyId), keysA.secret);
    expect(Object.keys(current.signature).sort()).toEqual(['ed25519', 'mldsa65']);
    expect(serializeReport(current)).not.toContain('context');
  });
});

describe('uploader (optional member of sluice-report/2)', () => {
  const publicKey = keysA.public;
  const withUploader = signReport(makeBody(keysA.public.keyId, undefined, { uploader: 'alice' }), keysA.secret);
  const textWith = serializeReport(withUploader);

  it('is signed: in the canonical bytes, and the report verifies', () => {
    expect(Buffer.from(canonicalBytes(withUploader)).toString('utf8')).toContain('"uploader":"alice"');
    expect(parseReport(textWith).uploader).toBe('alice');
    expect(verifyReport({ reportText: textWith, publicKey, reportOnly: true }).code).toBe('ok');
  });

  it('a body without it has no such member, and its bytes are what they were', () => {
    const plain = makeBody(keysA.public.keyId);
    expect(Buffer.from(canonicalBytes(plain)).toString('utf8')).not.toContain('uploader');
    const { uploader: _u, signature: _s, ...withoutIt } = withUploader;
    expect(canonicalBytes(withoutIt)).toEqual(canonicalBytes(plain));
    expect(parseReport(text)).not.toHaveProperty('uploader');
  });

  it('cannot be changed, added or removed without breaking the signature', () => {
    const changed = textWith.replace('"uploader":"alice"', '"uploader":"bobby"');
    const removed = textWith.replace(',"uploader":"alice"', '');
    expect(changed).not.toBe(textWith);
    expect(removed).not.toBe(textWith);
    expect(verifyReport({ reportText: changed, publicKey, reportOnly: true }).code).toBe('bad-signature');
    expect(verifyReport({ reportText: removed, publicKey, reportOnly: true }).code).toBe('bad-signature');
    const added = text.replace('"verdict":', '"uploader":"alice","verdict":');
    expect(verifyReport({ reportText: added, publicKey, reportOnly: true }).code).toBe('bad-signature');
  });

  it.each(['', 'Alice', '1x', 'a/b', 'a'.repeat(33), 5, null])('refuses %j, naming the member', (bad) => {
    expect(() => validateReportBody({ ...makeBody(keysA.public.keyId), uploader: bad })).toThrow(/^uploader: /);
    expect(() => signReport({ ...makeBody(keysA.public.keyId), uploader: bad } as ReportBody, keysA.secret)).toThrow(ReportFormatError);
  });

  it('is not a member of sluice-report/1', () => {
    expect(() => validateReportBody({ ...makeBody(keysA.public.keyId), format: 'sluice-report/1', uploader: 'alice' })).toThrow(/^uploader: is not a member/);
  });
});
