import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_NAME_BYTES,
  collisionName,
  escapeForLog,
  sanitizeName,
  splitExtension,
} from './names.js';

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

// Characters that must never survive sanitizeName().
const FORBIDDEN =
  /[/\\\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/u;

/** invariants - every property a stored name must have. */
function expectStoredName(out: string): void {
  expect(out.length).toBeGreaterThan(0);
  expect(bytes(out)).toBeLessThanOrEqual(MAX_NAME_BYTES);
  expect(out).not.toMatch(/[/\\\0]/);
  expect(out).not.toMatch(/\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}|\p{Cs}/u);
  expect(out).not.toMatch(FORBIDDEN);
  expect(out).not.toBe('.');
  expect(out).not.toBe('..');
  expect(out.startsWith('.')).toBe(false);
  expect(out.startsWith('-')).toBe(false);
  expect(out.toLowerCase().endsWith('.sluice.json')).toBe(false);
  expect(out).toBe(out.normalize('NFC'));
  expect(out).toBe(out.trim());
}

describe('sanitizeName: named cases', () => {
  const table: Array<[string, string, string]> = [
    ['plain name', 'report.pdf', 'report.pdf'],
    ['newline', 'evil\nname.txt', 'evil_name.txt'],
    ['carriage return and tab', 'a\r\tb', 'a__b'],
    ['right-to-left override hides the real extension', 'invoice\u202Etxt.exe', 'invoicetxt.exe'],
    ['all bidi controls removed', 'a\u202A\u202B\u202C\u202D\u2066\u2067\u2068\u2069\u200E\u200F\u061Cb', 'ab'],
    ['zero width space and BOM removed', '\uFEFFre\u200Bport', 'report'],
    ['path traversal', '../../etc/passwd', '_.._etc_passwd'],
    ['a lone slash', '/', '_'],
    ['backslash path', '..\\..\\boot.ini', '_.._boot.ini'],
    ['NUL', 'a\0b', 'a_b'],
    ['terminal escape', '\u001b[31mred\u001b[0m.txt', '_[31mred_[0m.txt'],
    ['C1 CSI', 'a\u009bb', 'a_b'],
    ['DEL', 'a\u007fb', 'a_b'],
    ['line separator', 'a\u2028b', 'a_b'],
    ['dot', '.', 'unnamed'],
    ['dotdot', '..', 'unnamed'],
    ['dotfile', '.bashrc', 'bashrc'],
    ['leading dots and spaces', ' . ..hidden', 'hidden'],
    ['trailing dots and spaces (Windows would drop them)', 'evil.exe. . ', 'evil.exe'],
    ['leading dash is not an option', '-rf', '_rf'],
    ['empty', '', 'unnamed'],
    ['only invisible characters', '\u200B\u202E\uFEFF', 'unnamed'],
    ['report suffix', 'x.sluice.json', 'x.sluice_json'],
    ['report suffix, other case', 'x.SLUICE.JSON', 'x.SLUICE_JSON'],
    ['report suffix alone', '.sluice.json', 'sluice.json'],
    ['NFC', 'cafe\u0301.txt', 'caf\u00e9.txt'],
    ['NFC after removing a joiner', 'e\u200D\u0301', '\u00e9'],
    ['lone surrogate', 'a\uD800b', 'a_b'],
    ['emoji kept', '\u{1F600}.png', '\u{1F600}.png'],
  ];
  it.each(table)('%s', (_label, input, expected) => {
    const out = sanitizeName(input);
    expect(out).toBe(expected);
    expectStoredName(out);
    expect(sanitizeName(out)).toBe(out);
  });

  // '.sluice.json' alone loses its leading dot first, leaving 'sluice.json',
  // which is a fine name: only the suffix with its dot is reserved.

  it('cuts a 250-byte name to the bound and keeps the extension', () => {
    const name = `${'a'.repeat(246)}.pdf`;
    expect(bytes(name)).toBe(250);
    const out = sanitizeName(name);
    expect(bytes(out)).toBe(MAX_NAME_BYTES);
    expect(out.endsWith('.pdf')).toBe(true);
    expectStoredName(out);
  });

  it('cuts a 10,000-byte multibyte name on a code point boundary', () => {
    const name = `${'\u{1F600}é'.repeat(1667)}.txt`; // 6 bytes per pair
    expect(bytes(name)).toBeGreaterThanOrEqual(10_000);
    const out = sanitizeName(name);
    expect(bytes(out)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(bytes(out)).toBeGreaterThan(MAX_NAME_BYTES - 6);
    expect(out.endsWith('.txt')).toBe(true);
    expect(out).not.toContain('\uFFFD');
    expectStoredName(out);
  });

  it('drops an extension too long to be one, and cuts the whole name', () => {
    const out = sanitizeName(`a.${'x'.repeat(300)}`);
    expect(bytes(out)).toBe(MAX_NAME_BYTES);
    expectStoredName(out);
  });

  it('never makes a report name by cutting', () => {
    // The cut keeps '.json' and could end the stem on '.sluice'.
    const stem = `${'a'.repeat(MAX_NAME_BYTES - '.sluice.json'.length)}.sluice`;
    const out = sanitizeName(`${stem}zzzzzzzzzz.json`);
    expect(out).toBe(`${stem}_json`);
    expect(bytes(out)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expectStoredName(out);
  });
});

describe('collisionName', () => {
  it('gives a.txt a second name, and a third', () => {
    const first = sanitizeName('a.txt');
    expect(first).toBe('a.txt');
    expect(collisionName(first, 2)).toBe('a (2).txt');
    expect(collisionName(first, 3)).toBe('a (3).txt');
    expect(collisionName(first, 2)).not.toBe(first);
  });

  it('keeps names without an extension readable', () => {
    expect(collisionName('unnamed', 2)).toBe('unnamed (2)');
    expect(collisionName('x.sluice_json', 12)).toBe('x (12).sluice_json');
  });

  it('stays within the bound for a maximal name', () => {
    const stored = sanitizeName(`${'é'.repeat(200)}.pdf`);
    const out = collisionName(stored, 123456);
    expect(bytes(out)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    expect(out.endsWith(' (123456).pdf')).toBe(true);
    expectStoredName(out);
  });

  it.each([0, 1, -2, 2.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1])('refuses n = %s', (n) => {
    expect(() => collisionName('a.txt', n)).toThrow(RangeError);
  });
});

describe('splitExtension', () => {
  it.each([
    ['report.pdf', 'report', '.pdf'],
    ['archive.tar.gz', 'archive.tar', '.gz'],
    ['noext', 'noext', ''],
    ['trailingdot.', 'trailingdot.', ''],
    ['.hidden', '.hidden', ''],
    ['a.has space', 'a.has space', ''],
    [`a.${'x'.repeat(30)}`, `a.${'x'.repeat(30)}`, ''],
  ])('%s', (name, stem, ext) => {
    expect(splitExtension(name)).toEqual({ stem, ext });
  });
});

describe('escapeForLog', () => {
  it.each([
    ['newline', 'a\nb', 'a\\u{a}b'],
    ['escape sequence', '\u001b[31m', '\\u{1b}[31m'],
    ['RLO', 'x\u202Ey', 'x\\u{202e}y'],
    ['NUL', '\0', '\\u{0}'],
    ['backslash is escaped so escapes are unambiguous', 'a\\u{a}', 'a\\u{5c}u{a}'],
    ['no-break space', 'a\u00a0b', 'a\\u{a0}b'],
    ['lone surrogate', '\uD800', '\\u{d800}'],
    ['printable unicode kept', 'café \u{1F600}', 'café \u{1F600}'],
    ['DEL', 'a\u007fb', 'a\\u{7f}b'],
    ['C1 control (CSI)', '\u009b31m', '\\u{9b}31m'],
    ['C1 NEL', 'a\u0085b', 'a\\u{85}b'],
    ['tab and carriage return', 'a\tb\rc', 'a\\u{9}b\\u{d}c'],
    ['LRE, RLE, PDF, LRO', '\u202a\u202b\u202c\u202d', '\\u{202a}\\u{202b}\\u{202c}\\u{202d}'],
    ['bidi isolates LRI RLI FSI PDI', '\u2066\u2067\u2068\u2069', '\\u{2066}\\u{2067}\\u{2068}\\u{2069}'],
    ['LRM, RLM, ALM', '\u200e\u200f\u061c', '\\u{200e}\\u{200f}\\u{61c}'],
    ['zero-width space, non-joiner, joiner', 'a\u200bb\u200cc\u200dd', 'a\\u{200b}b\\u{200c}c\\u{200d}d'],
    ['word joiner and BOM', '\u2060\ufeff', '\\u{2060}\\u{feff}'],
    ['line and paragraph separators', '\u2028\u2029', '\\u{2028}\\u{2029}'],
    ['private use', '\ue000', '\\u{e000}'],
    ['ASCII space kept', 'a b', 'a b'],
  ])('%s', (_label, input, expected) => {
    expect(escapeForLog(input)).toBe(expected);
  });

  it.each([
    ['a bound of its own', 'abcdef', 4, 'abcd…'],
    ['never cut inside an escape', 'ab\n', 4, 'ab…'],
    ['never cut inside a surrogate pair', 'abc\u{1F600}', 4, 'abc…'],
    ['exactly at the bound: no ellipsis', 'a\n', 6, 'a\\u{a}'],
  ])('bounded by max: %s', (_label, input, max, expected) => {
    expect(escapeForLog(input, max)).toBe(expected);
  });

  it('is bounded', () => {
    const out = escapeForLog('\n'.repeat(10_000));
    expect(out.length).toBeLessThanOrEqual(513);
    expect(out.endsWith('…')).toBe(true);
    expect(escapeForLog('a'.repeat(512))).toBe('a'.repeat(512));
    expect(escapeForLog('a'.repeat(513))).toBe(`${'a'.repeat(512)}…`);
  });
});

// Generators biased toward the characters the rules are about.
const nasty = fc.constantFrom(
  '/', '\\', '.', '..', ' ', '-', '\0', '\n', '\r', '\t', '\u001b', '\u007f', '\u0085', '\u009b',
  '\u061c', '\u200b', '\u200d', '\u200e', '\u200f', '\u202a', '\u202e', '\u2066', '\u2069', '\u2028',
  '\ufeff', '\ufe0f', '\u3164', '\u0301', 'e', 'é', '\u{1F600}', '\uD800', '\uDC00', '\uFFFE',
  '.sluice.json', '.SLUICE.JSON', '.json', '.sluice', '.pdf', '\u00a0', '\u2000', 'a', 'Z',
);
const nameArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.array(nasty, { maxLength: 40 }).map((parts) => parts.join('')),
  fc
    .tuple(fc.array(nasty, { maxLength: 10 }), fc.integer({ min: 150, max: 400 }), fc.array(nasty, { maxLength: 10 }))
    .map(([a, n, b]) => a.join('') + 'x'.repeat(n) + b.join('')),
  fc
    .tuple(fc.string({ unit: 'binary', minLength: 60, maxLength: 120 }), fc.constantFrom('.json', '.pdf', '.sluice.json', ''))
    .map(([s, ext]) => s.repeat(3) + ext),
);

describe('sanitizeName: properties (10,000 runs)', () => {
  it('produces a safe stored name, deterministically and idempotently', () => {
    fc.assert(
      fc.property(nameArb, (name) => {
        const out = sanitizeName(name);
        expectStoredName(out);
        expect(sanitizeName(name)).toBe(out);
        expect(sanitizeName(out)).toBe(out);
      }),
      { numRuns: 10_000 },
    );
  });

  it('collision names are distinct, bounded stored names', () => {
    fc.assert(
      fc.property(nameArb, fc.integer({ min: 2, max: 1_000_000 }), (name, n) => {
        const stored = sanitizeName(name);
        const alt = collisionName(stored, n);
        expectStoredName(alt);
        expect(sanitizeName(alt)).toBe(alt);
        expect(alt).not.toBe(stored);
      }),
      { numRuns: 10_000 },
    );
  });

  it('escapeForLog output is one bounded line without controls', () => {
    fc.assert(
      fc.property(fc.oneof(nameArb, fc.string({ unit: 'binary', maxLength: 2000 })), (s) => {
        const out = escapeForLog(s);
        expect(out.length).toBeLessThanOrEqual(513);
        expect(out).not.toMatch(/\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}|[\uD800-\uDFFF]/u);
      }),
      { numRuns: 10_000 },
    );
  });
});
