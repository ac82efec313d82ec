/*
 * NAME
 *   _codec - strict base64 and hex for the report and key formats
 *
 * SYNOPSIS
 *   import { toBase64, fromBase64Strict, toHex, isLowerHex } from './_codec.js';
 *
 * DESCRIPTION
 *   Node's Buffer.from(s, 'base64') ignores characters it does not know and
 *   accepts missing padding, so two different texts can decode to the same
 *   bytes. Signatures and keys in Sluice files are base64 (RFC 4648 section 4,
 *   standard alphabet, '=' padding, no line breaks) in exactly one spelling:
 *   fromBase64Strict accepts a text only if encoding the decoded bytes gives
 *   the same text back, and only if the length is the expected one.
 *
 * DIAGNOSTICS
 *   fromBase64Strict returns a problem string instead of throwing, so callers
 *   can name the field (and, for secret files, never the value).
 */

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** toBase64 - standard base64 with padding. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** fromBase64Strict - decode canonical base64 of exactly `length` bytes, or return a problem. */
export function fromBase64Strict(text: string, length: number): Uint8Array | { problem: string } {
  if (text.length > 4 * Math.ceil(length / 3) + 4) return { problem: `must be base64 of ${length} bytes, is far longer` };
  const bytes = Buffer.from(text, 'base64');
  // Encoding gives back the very text only for canonical base64, which B64 always matches: such a
  // text is accepted without the pattern test; any other is judged step by step, for its problem.
  if (bytes.length === length && bytes.toString('base64') === text) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!B64.test(text)) return { problem: `must be base64 of ${length} bytes (RFC 4648 standard alphabet, padded, no line breaks)` };
  if (bytes.length !== length) return { problem: `must be base64 of ${length} bytes, decodes to ${bytes.length}` };
  if (bytes.toString('base64') !== text) return { problem: 'is not canonical base64 (non-zero padding bits)' };
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** toHex - lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** isLowerHex - exactly `chars` lowercase hex digits. */
export function isLowerHex(text: unknown, chars: number): text is string {
  return typeof text === 'string' && text.length === chars && /^[0-9a-f]*$/.test(text);
}

/** signatureProblem - the first of `fields` in `s` that is not canonical base64 of its length, as [field, problem]; null if none. */
export function signatureProblem(s: Record<string, unknown>, fields: readonly (readonly [string, number])[]): [string, string] | null {
  for (const [field, len] of fields) {
    const v = s[field];
    if (typeof v !== 'string') return [field, 'must be a string'];
    const bytes = fromBase64Strict(v, len);
    if (!(bytes instanceof Uint8Array)) return [field, bytes.problem];
  }
  return null;
}
