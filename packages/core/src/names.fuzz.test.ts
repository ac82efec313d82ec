/*
 * NAME
 *   names.fuzz.test - the name sanitizer on what hostile peers actually send
 *
 * DESCRIPTION
 *   names.test.ts runs the sanitizer's properties on strings of up to a few
 *   hundred characters. Names reach it by two routes this file covers:
 *
 *   - from the inbox: readdir gives raw bytes, which ingress decodes as
 *     UTF-8 (invalid sequences become U+FFFD); NAME_MAX is 255 bytes;
 *   - from a compromised upstream stage: any well-formed string the
 *     protocol lets through, up to maxNameBytes (at most 4096 bytes), built
 *     from the characters the rules are about and long enough to force the
 *     200-byte cut, up to 10,000 bytes (what the hostile names use).
 *
 *   Properties, 10,000 runs each: sanitizeName never throws and gives a
 *   stored name (non-empty, at most 200 UTF-8 bytes, no separator, control,
 *   format or bidi character, no leading dot or dash, never "." or "..",
 *   never posing as a report, NFC, trimmed, idempotent) that names a file
 *   directly inside the output directory; collisionName keeps all of that;
 *   escapeForLog turns any of these names into one bounded, inert log field.
 */
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { MAX_NAME_BYTES, collisionName, escapeForLog, sanitizeName } from './names.js';

const RUNS = 10_000;
const OUTBOX = '/var/lib/sluice/outbox';

const BAD_CHAR = /[/\\]|\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}|\p{Cs}|\p{Noncharacter_Code_Point}/u;

/**
 * storedName - every property a stored name has (docs/checks.md "Names");
 * throws naming the first one broken. Plain checks, not expect(): this runs
 * 40,000 times and must stay cheap.
 */
function storedName(out: string): void {
  const fail = (what: string) => {
    throw new Error(`${what}: ${JSON.stringify(out)}`);
  };
  if (typeof out !== 'string' || out.length === 0) fail('empty');
  if (Buffer.byteLength(out, 'utf8') > MAX_NAME_BYTES) fail('over 200 bytes');
  if (BAD_CHAR.test(out)) fail('separator, control, format, bidi, surrogate or noncharacter');
  if (out === '.' || out === '..' || out[0] === '.' || out[0] === '-') fail('leading dot or dash');
  if (out.toLowerCase().endsWith('.sluice.json')) fail('poses as a report');
  if (out !== out.normalize('NFC') || out !== out.trim()) fail('not NFC or not trimmed');
  // It names exactly one entry directly inside the output directory.
  const full = path.join(OUTBOX, out);
  if (path.dirname(full) !== OUTBOX || path.basename(full) !== out) fail('escapes the output directory');
  // Room for the report suffix under NAME_MAX (255).
  if (Buffer.byteLength(`${out}.sluice.json`, 'utf8') > 255) fail('no room for the report suffix');
}

/** Pieces a hostile name is built from: separators, dots, controls, bidi, invisible, combining, astral, report suffixes. */
const piece = fc.constantFrom(
  '/', '\\', '.', '..', '../', './', ' ', '-', '~', '\0', '\n', '\r', '\t', '\u001b', '\u001b[2J', '\u001b]0;x\u0007', '\u007f',
  '\u0085', '\u009b', '\u00a0', '\u00ad', '\u061c', '\u115f', '\u180e', '\u200b', '\u200d', '\u200e', '\u200f', '\u2028', '\u2029',
  '\u202a', '\u202e', '\u2066', '\u2069', '\u2060', '\u3000', '\u3164', '\ufeff', '\ufe0f', '\ufff9', '\ufffd', '\uffff', '\u{e0001}',
  '\u{10ffff}', '\u0301', '\u0308', 'e', 'é', '\u{1F600}', 'а', 'a', 'Z', '0', '.txt', '.exe', '.pdf', '.sluice.json', '.SLUICE.JSON',
  '.json', '.sluice', '.tar.gz', 'name', 'invoice',
);

/** rawInboxName - 1..255 raw bytes with no '/' and no NUL (what readdir can return), decoded as ingress does. */
const rawInboxName = fc
  .oneof(
    fc.uint8Array({ minLength: 1, maxLength: 255 }),
    fc.array(piece, { minLength: 1, maxLength: 60 }).map((ps) => Buffer.from(ps.join(''), 'utf8').subarray(0, 255)),
  )
  .map((b) => Buffer.from(Uint8Array.from(b).filter((x) => x !== 0x2f && x !== 0)))
  .filter((b) => b.length > 0)
  .map((b) => b.toString('utf8'));

/** peerName - what a compromised stage can put in a record: well-formed Unicode, up to ~10,000 bytes. */
const peerName = fc.oneof(
  fc.array(piece, { minLength: 1, maxLength: 400 }).map((ps) => ps.join('')),
  fc.tuple(fc.array(piece, { maxLength: 20 }), fc.integer({ min: 150, max: 2500 }), fc.array(piece, { maxLength: 20 })).map(([a, n, b]) => `${a.join('')}${'x'.repeat(n)}${b.join('')}`),
  fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 250 })).map(([s, n]) => s.repeat(n)),
  // Well-formed: a lone surrogate cannot be encoded into a record (the protocol refuses it as bad-utf8).
  fc.string({ unit: 'binary', minLength: 1, maxLength: 3000 }).map((s) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')),
);

describe('sanitizeName on hostile names (10,000 runs each)', () => {
  it('raw inbox names (any bytes readdir can return, decoded as UTF-8)', () => {
    fc.assert(
      fc.property(rawInboxName, (name) => {
        const out = sanitizeName(name);
        storedName(out);
        return sanitizeName(out) === out;
      }),
      { numRuns: RUNS },
    );
  });

  it('names from a compromised stage, up to 10,000 bytes', () => {
    fc.assert(
      fc.property(peerName, (name) => {
        const out = sanitizeName(name);
        storedName(out);
        return sanitizeName(out) === out && sanitizeName(name) === out; // idempotent, deterministic
      }),
      { numRuns: RUNS },
    );
  });

  it('collision names of those stay stored names, distinct from the original', () => {
    fc.assert(
      fc.property(fc.oneof(rawInboxName, peerName), fc.integer({ min: 2, max: 1_000_000_000 }), (name, n) => {
        const stored = sanitizeName(name);
        const alt = collisionName(stored, n);
        storedName(alt);
        return alt !== stored && sanitizeName(alt) === alt;
      }),
      { numRuns: RUNS },
    );
  });

  it('escapeForLog makes any of them one bounded, inert log field', () => {
    fc.assert(
      fc.property(fc.oneof(rawInboxName, peerName), (name) => {
        const out = escapeForLog(name);
        // Bounded, and nothing that ends or forges a line, or reorders the display, survives.
        return out.length <= 513 && !/\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}|\p{Cs}/u.test(out) && !/[\n\r\u2028\u2029]/.test(JSON.stringify({ name: out }));
      }),
      { numRuns: RUNS },
    );
  });
});
