import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CsvScanner, JsonScanner, TextScanner, type TextVerdict } from './text.js';

/** scanBytes - run a TextScanner over bytes cut at the given offsets. */
function scanBytes(bytes: Uint8Array, cuts: number[] = []): TextVerdict {
  const t = new TextScanner();
  let start = 0;
  for (const cut of [...cuts].sort((a, b) => a - b).concat(bytes.length)) {
    if (cut < start) continue;
    t.push(bytes.subarray(start, cut));
    start = cut;
    if (t.failed) break;
  }
  return t.end();
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** jsonOk - JsonScanner over string pieces. */
function jsonOk(pieces: string[]): boolean {
  const j = new JsonScanner();
  for (const p of pieces) j.push(p);
  return j.end();
}

/** parses - the reference: does JSON.parse accept it? */
function parses(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

/** splitAt - s cut into pieces at the given indices. */
function splitAt(s: string, cuts: number[]): string[] {
  const sorted = [...new Set(cuts.map((c) => Math.min(c, s.length)))].sort((a, b) => a - b);
  const out: string[] = [];
  let start = 0;
  for (const c of sorted) {
    out.push(s.slice(start, c));
    start = c;
  }
  out.push(s.slice(start));
  return out;
}

describe('TextScanner: clean text', () => {
  const table: Array<[string, string, TextVerdict['text'], string]> = [
    ['ASCII', 'hello world\n', true, 'txt'],
    ['tab, CR, LF, FF', 'a\tb\r\nc\fd', true, 'txt'],
    ['multibyte', 'grüße, 日本語, \u{1F600}\n', true, 'txt'],
    ['BOM', '\uFEFFhello', true, 'txt'],
    ['bidi controls are allowed in text', 'abc \u202Eabc\u202C \u2067', true, 'txt'],
    ['NUL', 'abc\0def', false, 'NUL byte at byte 3'],
    ['ESC sequence', 'red: \u001b[31mred\u001b[0m\n', false, 'escape character (ESC, 0x1b) at byte 5'],
    ['BEL', 'a\u0007', false, 'control character 0x07 at byte 1'],
    ['VT', 'a\u000bb', false, 'control character 0x0b at byte 1'],
    ['DEL', 'ab\u007f', false, 'DEL character (0x7f) at byte 2'],
    ['C1 CSI', 'é\u009b2J', false, 'C1 control character U+009B at byte 2'],
  ];
  it.each(table)('%s', (_label, s, text, what) => {
    const v = scanBytes(utf8(s));
    expect(v.text).toBe(text);
    if (v.text) expect(v.kind).toBe(what);
    else expect(v.detail).toBe(what);
  });

  const invalid: Array<[string, number[]]> = [
    ['lone continuation byte', [0x61, 0x80]],
    ['bad continuation', [0x61, 0xc3, 0x28]],
    ['overlong slash', [0xc0, 0xaf]],
    ['overlong 3-byte', [0xe0, 0x80, 0xaf]],
    ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['0xFF', [0xff]],
    ['sequence cut by the end', [0x61, 0x62, 0xe2, 0x82]],
    ['Latin-1 text', [...utf8('caf'), 0xe9, 0x20, 0x61]],
  ];
  it.each(invalid)('refuses invalid UTF-8: %s', (_label, bytes) => {
    const v = scanBytes(Uint8Array.from(bytes));
    expect(v.text).toBe(false);
    expect(v.detail).toMatch(/invalid UTF-8/);
  });

  it('says where a cut-off sequence starts', () => {
    expect(scanBytes(Uint8Array.from([0x61, 0x62, 0xe2, 0x82]))).toEqual({
      text: false,
      detail: 'invalid UTF-8: a sequence is cut off at the end (byte 2)',
    });
  });

  it('counts byte offsets across chunks and multibyte characters', () => {
    const bytes = utf8(`${'é'.repeat(10)}\u{1F600}x\0`); // 20 + 4 + 1 bytes before the NUL
    for (const cuts of [[], [1], [3, 21], [22, 23, 24]]) {
      expect(scanBytes(bytes, cuts)).toEqual({ text: false, detail: 'NUL byte at byte 25' });
    }
  });

  it('accepts every split of a multibyte character', () => {
    const bytes = utf8('a€b\u{1F600}c');
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        expect(scanBytes(bytes, [i, j]).text).toBe(true);
      }
    }
  });

  it('agrees with TextDecoder and the control rule on random bytes and random chunking', () => {
    const forbidden = /[\u0000-\u0008\u000B\u000E-\u001F\u007F-\u009F]/;
    const reference = (bytes: Uint8Array): boolean => {
      try {
        return !forbidden.test(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
      } catch {
        return false;
      }
    };
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ unit: 'binary', maxLength: 40 }).map(utf8),
      fc
        .tuple(fc.string({ unit: 'binary', maxLength: 30 }).map(utf8), fc.uint8Array({ maxLength: 3 }), fc.nat(30))
        .map(([good, junk, at]) => {
          const out = new Uint8Array(good.length + junk.length);
          const k = Math.min(at, good.length);
          out.set(good.subarray(0, k));
          out.set(junk, k);
          out.set(good.subarray(k), k + junk.length);
          return out;
        }),
    );
    fc.assert(
      fc.property(bytesArb, fc.array(fc.nat(64), { maxLength: 6 }), (bytes, cuts) => {
        expect(scanBytes(bytes, cuts).text).toBe(reference(bytes));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('TextScanner: sub-kinds', () => {
  const table: Array<[string, string, string]> = [
    ['JSON object', '{"a": [1, 2.5e-3, true, null], "b": "\\u00e9"}\n', 'json'],
    ['JSON scalar', '42', 'json'],
    ['JSON with BOM is not JSON (JSON.parse refuses it)', '\uFEFF{"a":1}', 'txt'],
    ['JSON with trailing garbage', '{"a":1} x', 'txt'],
    ['CSV', 'name,age\nalice,30\nbob,41\n', 'csv'],
    ['CSV with quotes, CRLF and a quoted newline', 'a,b\r\n"x, y","multi\nline"\r\n"q ""quoted""",2\r\n', 'csv'],
    ['semicolon CSV with BOM', '\uFEFFa;b;c\n1;2;3\n', 'csv'],
    ['TSV', 'a\tb\n1\t2\n', 'csv'],
    ['ragged rows are not CSV', 'a,b,c\n1,2\n', 'txt'],
    ['one record is not CSV', 'a,b,c\n', 'txt'],
    ['unbalanced quote is not CSV', 'a,b\n"1,2\n', 'txt'],
    ['blank line in the middle is not CSV', 'a,b\n\n1,2\n', 'txt'],
    ['trailing blank lines are fine', 'a,b\n1,2\n\n\n', 'csv'],
    ['prose', 'Hello there.\nThis is text.\n', 'txt'],
    ['white space only', ' \n\t\n', 'txt'],
  ];
  it.each(table)('%s', (_label, s, kind) => {
    const v = scanBytes(utf8(s));
    expect(v.text).toBe(true);
    if (v.text) expect(v.kind).toBe(kind);
  });

  it('describes the CSV shape', () => {
    expect(scanBytes(utf8('a;b;c\n1;2;3\n4;5;6'))).toEqual({
      text: true,
      kind: 'csv',
      detail: 'CSV, 3 records of 3 fields separated by ";"',
      active: [],
    });
  });
});

describe('JsonScanner agrees with JSON.parse', () => {
  const cases = [
    '', ' ', '{}', '[]', '[', ']', '{"a"}', '{"a":}', '{"a":1,}', '[1,]', '[,1]', '01', '-0', '-', '1.', '.5', '1e', '1e+',
    '1E-2', '0.0e0', '"\\x"', '"\\u12"', '"\\u12g4"', '"a\tb"', 'tru', 'true ', 'nul', 'null', '[true false]', '{"a":1 "b":2}',
    '"unterminated', '{"a":{"b":[{}]}}', '1 2', '[1]]', '{]', '[}', '"\\/\\b\\f\\n\\r\\t\\"\\\\"', '\u00a01', '+1', 'NaN',
  ];
  it.each(cases)('%j', (s) => {
    expect(jsonOk([s])).toBe(parses(s));
  });

  it('on generated JSON, cut anywhere', () => {
    fc.assert(
      fc.property(fc.json(), fc.array(fc.nat(200), { maxLength: 5 }), (s, cuts) => {
        expect(jsonOk(splitAt(s, cuts))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('on mutated JSON and random strings', () => {
    const mutated = fc
      .tuple(fc.json(), fc.nat(200), fc.nat(3), fc.constantFrom('', '"', ',', ':', '[', ']', '{', '}', '0', '-', 'e', '.', ' ', '\\', 'u', 'x', '\t'))
      .map(([s, at, del, ins]) => {
        const k = Math.min(at, s.length);
        return s.slice(0, k) + ins + s.slice(k + del);
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ maxLength: 30 })), fc.array(fc.nat(60), { maxLength: 4 }), (s, cuts) => {
        expect(jsonOk(splitAt(s, cuts))).toBe(parses(s));
      }),
      { numRuns: 10_000 },
    );
  });

  it('refuses nesting deeper than its bound instead of growing without limit', () => {
    const deep = `${'['.repeat(100_001)}${']'.repeat(100_001)}`;
    expect(jsonOk([deep])).toBe(false);
    const ok = `${'['.repeat(1000)}${']'.repeat(1000)}`;
    expect(jsonOk([ok])).toBe(true);
  });
});

describe('CsvScanner', () => {
  it('gives the same answer however the text is cut', () => {
    const csv = 'id,name\r\n1,"a, b"\r\n2,"line\r\nbreak"\r\n3,""""\r\n';
    const whole = new CsvScanner();
    whole.push(csv);
    const expected = whole.end();
    expect(expected).toEqual({ delimiter: ',', records: 4, fields: 2 });
    for (let i = 0; i <= csv.length; i++) {
      const c = new CsvScanner();
      for (const piece of splitAt(csv, [i, i + 3])) c.push(piece);
      expect(c.end()).toEqual(expected);
    }
  });
});
