/*
 * NAME
 *   jcs.test - RFC 8785 canonical JSON, the ASCII file spelling, and the strict parser
 */
import { describe, expect, it } from 'vitest';
import { JsonError, parseStrictJson } from './_json.js';
import { asciiJson, jcs } from './jcs.js';

describe('jcs (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units (RFC 8785 section 3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // Read the order off the text: JSON.parse would put the integer-like key "1" first.
    const text = jcs(input);
    const order = ['Carriage Return', 'One', 'Control', 'Latin Small', 'Euro', 'Emoji', 'Hebrew'].map((v) => text.indexOf(v));
    expect(order.every((pos, i) => pos > 0 && (i === 0 || pos > order[i - 1]!))).toBe(true);
    expect(text.startsWith('{"\\r":"Carriage Return","1":"One","\u0080":')).toBe(true);
  });

  it('matches the RFC 8785 section 3.2.4 example', () => {
    const input =
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
      ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}';
    expect(jcs(JSON.parse(input))).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it.each([
    [0, '0'],
    [-0, '0'],
    [5e-324, '5e-324'],
    [1.7976931348623157e308, '1.7976931348623157e+308'],
    [9007199254740992, '9007199254740992'],
    [295147905179352830000, '295147905179352830000'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [0.000001, '0.000001'],
    [-1.5, '-1.5'],
  ])('writes the number %s as %s (RFC 8785 appendix B)', (n, text) => {
    expect(jcs(n)).toBe(text);
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['undefined', undefined],
    ['a bigint', 1n],
    ['a function', () => 1],
    ['a symbol', Symbol('x')],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a lone high surrogate', '\ud800'],
    ['a lone low surrogate', 'a\udc00b'],
    ['an undefined member', { a: undefined }],
    ['a lone surrogate key', { '\ud800': 1 }],
  ])('refuses %s', (_name, value) => {
    expect(() => jcs(value)).toThrow(TypeError);
  });

  it('escapes only what ECMAScript escapes, lowercase hex', () => {
    expect(jcs('\u0000\u001f\u007f\u0080\u2028"\\/')).toBe('"\\u0000\\u001f\u007f\u0080\u2028\\"\\\\/"');
  });

  it('refuses nesting deeper than 64', () => {
    let v: unknown = 1;
    for (let i = 0; i < 70; i++) v = [v];
    expect(() => jcs(v)).toThrow(/deeper/);
  });
});

describe('asciiJson', () => {
  it('escapes every code unit from U+007F, surrogates pairwise, and keeps the value', () => {
    const value = { n: 'r\u00e9sum\u00e9\u202e\u007f\u0085\u{1F4C4}' };
    const text = asciiJson(jcs(value));
    expect(text).toBe('{"n":"r\\u00e9sum\\u00e9\\u202e\\u007f\\u0085\\ud83d\\udcc4"}');
    expect(/^[\x20-\x7e]*$/.test(text)).toBe(true);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('parseStrictJson', () => {
  it('parses what JSON.parse parses, for ordinary documents', () => {
    const text = ' {"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"], "b": {}, "c": []} ';
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
  });

  it('gives objects a null prototype, so "__proto__" is only a key', () => {
    const v = parseStrictJson('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(null);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['duplicate key', '{"verdict":"rejected","verdict":"accepted"}', /duplicate key "verdict"/],
    ['duplicate key spelled with an escape', '{"a":1,"\\u0061":2}', /duplicate key/],
    ['nested duplicate', '{"x":{"k":1,"k":1}}', /duplicate key/],
    ['escaped lone surrogate', '"\\ud800"', /lone surrogate/],
    ['raw lone surrogate', '"\ud800"', /lone surrogate/],
    ['reversed surrogate pair', '"\\udc00\\ud800"', /lone surrogate/],
    ['raw control character', '"a\u0001b"', /control character/],
    ['raw newline in a string', '"a\nb"', /control character/],
    ['bad escape', '"\\x41"', /invalid escape/],
    ['short \\u escape', '"\\u41"', /invalid \\u escape/],
    ['leading zero', '01', /unexpected text/],
    ['plus sign', '+1', /unexpected character/],
    ['bare minus', '-', /unexpected character/],
    ['huge number', '1e400', /out of range/],
    ['trailing comma', '[1,]', /unexpected character/],
    ['comment', '{"a":1 /* x */}', /expected/],
    ['single quotes', "{'a':1}", /expected a string key/],
    ['BOM', '\ufeff{}', /unexpected character/],
    ['two values', '{} {}', /unexpected text/],
    ['empty', '', /unexpected end/],
    ['unterminated string', '"abc', /unterminated/],
    ['unterminated object', '{"a":1', /expected/],
    ['NaN', 'NaN', /unexpected character/],
    ['vertical tab as whitespace', '\u000b{}', /unexpected character/],
  ])('refuses %s', (_name, text, message) => {
    expect(() => parseStrictJson(text)).toThrow(JsonError);
    expect(() => parseStrictJson(text)).toThrow(message);
  });

  it('bounds nesting instead of exhausting the stack', () => {
    expect(() => parseStrictJson('['.repeat(100000))).toThrow(/nesting too deep/);
    expect(() => parseStrictJson('{"a":'.repeat(20) + '1' + '}'.repeat(20), 16)).toThrow(/nesting too deep/);
    expect(parseStrictJson('[[[1]]]', 3)).toEqual([[[1]]]);
  });

  it('keeps input out of `kind` (safe to show for secret files)', () => {
    try {
      parseStrictJson('{"SECRETSEED":1,"SECRETSEED":2}');
      expect.unreachable();
    } catch (err) {
      expect((err as JsonError).kind).not.toMatch(/SECRETSEED/);
    }
  });
});
