/*
 * NAME
 *   validate - the value checks shared by every decoder and encoder
 *
 * SYNOPSIS
 *   import { checkId, checkName, checkSize, checkSha256, checkText,
 *            checkTimestamp, isTimestamp, truncateUtf8, ID_PATTERN } from './validate.js';
 *
 * DESCRIPTION
 *   Each check either returns or throws a ProtocolError naming the message
 *   and field (`where`, e.g. 'IngressTransfer.sha256'). Decoders run them on
 *   what protobufjs produced after the wire walk; encoders run the same
 *   checks on the caller's object, so an encoder never emits a record that
 *   the matching decoder would refuse.
 *
 *   A JS value of the wrong type (a number where a string belongs, ...) can
 *   only come from a caller's bug, never from the wire: that throws a
 *   TypeError, not a ProtocolError.
 *
 *   Messages name fields and lengths, never the field's content: content is
 *   hostile and would end up in logs.
 */
import { ProtocolError } from './errors.js';

/** ID_PATTERN - a transfer id: 1-64 characters of [A-Za-z0-9_-]. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Any lone UTF-16 surrogate (a well-formed pair matches as one non-Cs code point under /u). */
const LONE_SURROGATE = /\p{Cs}/u;

/** expect - refuse a caller's value of the wrong JS type (a bug, hence TypeError). */
export function expect(value: unknown, type: 'string' | 'number', where: string): void {
  if (typeof value !== type) throw new TypeError(`${where}: expected a ${type}, got ${typeof value}`);
}

/** field - the part of `where` after the message name, for ProtocolError.field. */
function field(where: string): string {
  const dot = where.indexOf('.');
  return dot < 0 ? where : where.slice(dot + 1);
}

/** checkId - a required transfer id. */
export function checkId(value: unknown, where: string): void {
  expect(value, 'string', where);
  const s = value as string;
  if (s === '') throw new ProtocolError('missing-field', `${where}: missing or empty`, field(where));
  if (!ID_PATTERN.test(s)) {
    throw new ProtocolError('bad-id', `${where}: must be 1-64 characters of [A-Za-z0-9_-] (got ${s.length} chars)`, field(where));
  }
}

/** checkText - a string of at most maxBytes UTF-8 bytes; required means non-empty. */
export function checkText(value: unknown, where: string, maxBytes: number, required: boolean): void {
  expect(value, 'string', where);
  const s = value as string;
  if (s === '') {
    if (required) throw new ProtocolError('missing-field', `${where}: missing or empty`, field(where));
    return;
  }
  // A lone surrogate cannot be encoded as UTF-8; protobufjs would emit bytes our own decoder refuses.
  if (LONE_SURROGATE.test(s)) throw new ProtocolError('bad-utf8', `${where}: contains a lone UTF-16 surrogate`, field(where));
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > maxBytes) {
    throw new ProtocolError('string-too-long', `${where}: ${bytes} bytes, at most ${maxBytes}`, field(where));
  }
}

/** checkSize - a file size in bytes: a safe integer within policy. 0 (an empty file) is valid. */
export function checkSize(value: unknown, where: string, maxFileSize: number): void {
  expect(value, 'number', where);
  const n = value as number;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${where}: must be a non-negative integer`);
  if (n > maxFileSize || !Number.isSafeInteger(n)) {
    throw new ProtocolError('size-over-policy', `${where}: ${n} bytes, policy allows at most ${maxFileSize}`, field(where));
  }
}

/** checkSha256 - a required SHA-256 digest: exactly 32 bytes. */
export function checkSha256(value: unknown, where: string): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${where}: expected a Uint8Array`);
  if (value.length === 0) throw new ProtocolError('missing-field', `${where}: missing or empty`, field(where));
  if (value.length !== 32) {
    throw new ProtocolError('bad-sha256-length', `${where}: ${value.length} bytes, expected 32`, field(where));
  }
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * isTimestamp - strict ISO 8601 UTC: YYYY-MM-DDTHH:MM:SS, an optional
 * fraction of 1-9 digits, and 'Z'; a real calendar date; no leap second
 * (JS Date cannot represent one). `new Date().toISOString()` qualifies.
 */
export function isTimestamp(s: string): boolean {
  const m = TIMESTAMP.exec(s);
  if (m === null) return false;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = mo === 2 && leap ? 29 : DAYS[mo - 1]!;
  return d <= days;
}

/** checkTimestamp - a required ISO 8601 UTC timestamp. */
export function checkTimestamp(value: unknown, where: string): void {
  expect(value, 'string', where);
  const s = value as string;
  if (s === '') throw new ProtocolError('missing-field', `${where}: missing or empty`, field(where));
  if (!isTimestamp(s)) {
    throw new ProtocolError('bad-timestamp', `${where}: not an ISO 8601 UTC timestamp like 2026-11-22T06:21:32.123Z`, field(where));
  }
}

/**
 * truncateUtf8 - the longest prefix of `s` (cut between code points) that
 * fits in maxBytes of UTF-8, with lone surrogates replaced by U+FFFD, so the
 * result always passes checkText. For building reasons from tool output.
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  const clean = LONE_SURROGATE.test(s) ? s.replace(/\p{Cs}/gu, '\uFFFD') : s;
  if (Buffer.byteLength(clean, 'utf8') <= maxBytes) return clean;
  let bytes = 0;
  let end = 0;
  for (const ch of clean) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return clean.slice(0, end);
}
