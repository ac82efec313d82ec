// _codec: fromBase64Strict accepts exactly one spelling of each byte string, and names the problem
// of every other text. Checked against the rule as the format states it, written out step by step
// here (RFC 4648 pattern, exact length, canonical padding bits), on texts near and far from valid.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fromBase64Strict, toBase64 } from './_codec.js';

/** reference - the rule, each step in turn. */
function reference(text: string, length: number): Uint8Array | { problem: string } {
  if (text.length > 4 * Math.ceil(length / 3) + 4) return { problem: `must be base64 of ${length} bytes, is far longer` };
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    return { problem: `must be base64 of ${length} bytes (RFC 4648 standard alphabet, padded, no line breaks)` };
  }
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length) return { problem: `must be base64 of ${length} bytes, decodes to ${bytes.length}` };
  if (bytes.toString('base64') !== text) return { problem: 'is not canonical base64 (non-zero padding bits)' };
  return new Uint8Array(bytes);
}

const same = (text: string, length: number) => {
  const got = fromBase64Strict(text, length);
  const want = reference(text, length);
  expect(got instanceof Uint8Array ? Buffer.from(got).toString('hex') : got, JSON.stringify(text)).toEqual(want instanceof Uint8Array ? Buffer.from(want).toString('hex') : want);
};

describe('fromBase64Strict', () => {
  it('agrees with the rule on valid encodings and on every one-character change of them (lengths 0-70)', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.';
    for (let n = 0; n <= 70; n++) {
      const text = toBase64(Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff)));
      same(text, n);
      same(text, n + 1);
      if (n > 0) same(text, n - 1);
      for (let i = 0; i < text.length; i++) {
        for (const c of alphabet) same(text.slice(0, i) + c + text.slice(i + 1), n);
        same(text.slice(0, i) + text.slice(i + 1), n);
      }
      same(`${text}=`, n);
      same(`${text}A`, n);
    }
  });

  it('agrees with the rule on arbitrary texts and lengths (10,000 runs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.base64String({ maxLength: 40 }), fc.uint8Array({ maxLength: 30 }).map((b) => toBase64(b))), fc.nat(32), (text, length) => {
        same(text, length);
      }),
      { numRuns: 10_000 },
    );
  });

  it('a 3,309-byte ML-DSA-65 signature decodes; a text whose padding bits are not zero is refused as not canonical', () => {
    const sig = Buffer.alloc(3309, 0xa5);
    const text = toBase64(sig);
    expect(Buffer.from(fromBase64Strict(text, 3309) as Uint8Array).equals(sig)).toBe(true);
    const short = toBase64(sig.subarray(0, 3308)); // 3308 bytes end in one '=': the character before it holds two padding bits
    const bumped = `${short.slice(0, -2)}${String.fromCharCode(short.charCodeAt(short.length - 2) + 1)}=`;
    expect(fromBase64Strict(bumped, 3308)).toEqual({ problem: 'is not canonical base64 (non-zero padding bits)' });
  });
});
