/*
 * NAME
 *   names - turn an untrusted uploaded name into a stored name
 *
 * SYNOPSIS
 *   import { sanitizeName, collisionName, escapeForLog, splitExtension,
 *            MAX_NAME_BYTES, REPORT_SUFFIX } from '@sluice/core';
 *
 *   sanitizeName(original: string): string
 *   collisionName(stored: string, n: number): string
 *   escapeForLog(s: string, max = 512): string
 *   logSafe(s: string, max = 512): string
 *   splitExtension(name: string): { stem: string; ext: string }
 *
 * DESCRIPTION
 *   Design invariant 8: names are data. The uploader picks the name and may
 *   fill it with separators, "..", control characters, bidi overrides,
 *   invisible characters or 10,000 bytes. sanitizeName() returns a name that
 *   is safe to use as a single path component in the outbox and to show to a
 *   person; it never fails, and an unusable name becomes "unnamed".
 *
 *   The rules, in order (docs/checks.md, "Names"):
 *     1. lone UTF-16 surrogates become "_";
 *     2. Unicode NFC;
 *     3. "/" and "\", C0 and C1 controls, DEL, line and paragraph separators
 *        and noncharacters become "_";
 *     4. format characters (category Cf: bidi controls U+202A-U+202E,
 *        U+2066-U+2069, U+200E, U+200F, U+061C, zero-width characters, BOM,
 *        soft hyphen, tag characters) and the other default-ignorable code
 *        points (variation selectors, Hangul fillers, ...) are removed: they
 *        are invisible, so removing them keeps what a person sees;
 *     5. NFC again (a removal may have joined a base and a combining mark);
 *     6. leading dots and white space are removed (no dotfiles, no "." or
 *        ".."), and a leading "-" becomes "_" (a name is never an option to
 *        a consumer's `rm *`); trailing dots and white space are removed
 *        (Windows consumers would silently drop them, changing the name);
 *     7. the name is cut to MAX_NAME_BYTES UTF-8 bytes on a code point
 *        boundary, keeping a short extension;
 *     8. a name ending in ".sluice.json" (any case) ends in ".sluice_json"
 *        instead, so an upload can never pose as a report;
 *     9. an empty result is "unnamed".
 *   The function is deterministic and idempotent: a stored name sanitizes to
 *   itself (property-tested in names.test.ts).
 *
 *   MAX_NAME_BYTES is 200, which leaves room under NAME_MAX (255) for a
 *   collision suffix and REPORT_SUFFIX.
 *
 *   collisionName() gives the n-th alternative for a name already taken:
 *   "report.pdf", 2 -> "report (2).pdf", still within MAX_NAME_BYTES and still
 *   a fixed point of sanitizeName(). Egress picks the n (a remembered next n,
 *   else a galloping search: packages/egress/src/outbox.ts, chooseName); an
 *   output never overwrites another.
 *
 *   escapeForLog() is the one escaper for untrusted text on its way into a
 *   log line, a terminal or a check's reason: C0 and C1 controls, DEL,
 *   format characters (bidi controls, zero-width characters, BOM), line and
 *   paragraph separators, white space other than the ASCII space,
 *   unassigned, private-use and other invisible code points, lone
 *   surrogates and "\" itself (so that every \u{…} in the output is ours)
 *   are written as \u{hex}; the result is at most `max` characters (512 by
 *   default) plus "…", never cut inside an escape or a surrogate pair.
 *   logSafe() is escapeForLog() for the logger's own net (log.ts): it leaves
 *   a string alone unless it holds something escapeForLog would escape
 *   other than "\", so text escaped once is never escaped twice.
 *
 * SECURITY
 *   These functions only compute strings; they never touch the file system.
 *   Uniqueness (no overwrite) is egress's job: it links with a name that must
 *   not exist (linkat fails with EEXIST) and retries with collisionName().
 *
 * BUGS
 *   Unicode classes come from the ICU inside Node: a Node upgrade with a newer
 *   Unicode version may classify a few new code points differently. Within
 *   one running version the functions are deterministic.
 *   Confusables (Cyrillic "а" for Latin "a") are kept: they are visible, and
 *   the report carries the SHA-256, not the name, as the identity.
 */

/** Upper bound of a stored name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 200;

/** The suffix of a report beside its file; no stored name may end with it. */
export const REPORT_SUFFIX = '.sluice.json';

/** The name used when nothing usable is left. */
export const UNNAMED = 'unnamed';

/** An extension (with its dot) longer than this is treated as part of the stem. */
const MAX_EXT_BYTES = 24;

/** Default bound of escapeForLog() output, in UTF-16 code units, before the ellipsis. */
export const MAX_LOG_CHARS = 512;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// Replaced by "_": separators, controls (C0, DEL, C1), line/paragraph separators, noncharacters.
const REPLACED = /[/\\\p{Cc}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}]/gu;
// Removed: format characters (bidi controls, zero-width, BOM, tags) and other default-ignorables.
const REMOVED = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
const LEADING = /^[\s.]+/u;
const TRAILING = /[\s.]+$/u;
const REPORT_SUFFIX_RE = /\.sluice\.json$/i;

/** utf8Length - the UTF-8 byte length of a well-formed string. */
function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** cutToBytes - the longest prefix of s, ending on a code point boundary, of at most max UTF-8 bytes. */
function cutToBytes(s: string, max: number): string {
  if (utf8Length(s) <= max) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * splitExtension - split a name into stem and extension (with its dot).
 *
 * The extension is the part from the last "." when the stem before it is not
 * empty and the extension has no white space and at most 24 UTF-8 bytes;
 * otherwise the whole name is the stem and ext is ''.
 */
export function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) return { stem: name, ext: '' };
  const ext = name.slice(dot);
  if (/\s/u.test(ext) || utf8Length(ext) > MAX_EXT_BYTES) return { stem: name, ext: '' };
  return { stem: name.slice(0, dot), ext };
}

/** trimEnds - rule 6: no leading dots/space, no leading "-", no trailing dots/space. */
function trimEnds(s: string): string {
  let t = s.replace(LEADING, '').replace(TRAILING, '');
  if (t.startsWith('-')) t = `_${t.slice(1)}`;
  return t;
}

/** fitBytes - rule 7: cut to max bytes, keeping the extension when there is one. */
function fitBytes(s: string, max: number): string {
  if (utf8Length(s) <= max) return s;
  const { stem, ext } = splitExtension(s);
  const cutStem = cutToBytes(stem, max - utf8Length(ext)).replace(TRAILING, '');
  // The stem starts with a visible character (rule 6) and keeps at least
  // max - MAX_EXT_BYTES bytes, so it cannot become empty here.
  return cutStem + ext;
}

/** notReport - rule 8: never end in ".sluice.json" (same length, so the bound still holds). */
function notReport(s: string): string {
  return REPORT_SUFFIX_RE.test(s) ? `${s.slice(0, -'.json'.length)}_${s.slice(-'json'.length)}` : s;
}

/** sanitizeName - the stored name for an uploaded name (rules in the header). */
export function sanitizeName(original: string): string {
  let s = String(original).replace(LONE_SURROGATE, '_');
  s = s.normalize('NFC');
  s = s.replace(REPLACED, '_').replace(REMOVED, '');
  s = s.normalize('NFC');
  s = trimEnds(s);
  if (s === '') return UNNAMED;
  s = fitBytes(s, MAX_NAME_BYTES);
  s = notReport(s);
  return s === '' ? UNNAMED : s;
}

/**
 * collisionName - the n-th alternative (n >= 2) for a stored name that is taken:
 * "report.pdf", 2 -> "report (2).pdf". The stem is shortened when needed so
 * the result stays within MAX_NAME_BYTES; the result is its own sanitizeName().
 */
export function collisionName(stored: string, n: number): string {
  if (!Number.isSafeInteger(n) || n < 2) {
    throw new RangeError(`collisionName: n must be an integer >= 2, got ${String(n)}`);
  }
  const { stem, ext } = splitExtension(sanitizeName(stored));
  const suffix = ` (${n})`;
  const room = MAX_NAME_BYTES - utf8Length(suffix) - utf8Length(ext);
  const cutStem = cutToBytes(stem, room).replace(TRAILING, '');
  return notReport(cutStem + suffix + ext);
}

// Escaped by escapeForLog: anything invisible, line-breaking, unassigned or
// ambiguous, plus "\" so that an escape in the output is always ours.
const LOG_UNSAFE =
  /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cn}\p{Co}\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]|[^\S ]|[\uD800-\uDFFF]/u;

/** escapeForLog - a one-line, terminal-safe rendering of an untrusted string, at most `max` characters plus "…". */
export function escapeForLog(s: string, max: number = MAX_LOG_CHARS): string {
  let out = '';
  // Iterating a string yields code points, and a lone surrogate on its own.
  for (const ch of String(s)) {
    const piece = LOG_UNSAFE.test(ch) ? `\\u{${(ch.codePointAt(0) ?? 0).toString(16)}}` : ch;
    if (out.length + piece.length > max) return `${out}…`;
    out += piece;
  }
  return out;
}

/**
 * logSafe - `s` unchanged when escapeForLog would change nothing in it but
 * "\" (plain text, or text escapeForLog already made), else escapeForLog(s, max).
 * The logger's last line of defence (log.ts): idempotent over escapeForLog's output.
 */
export function logSafe(s: string, max: number = MAX_LOG_CHARS): string {
  for (const ch of s) if (ch !== '\\' && LOG_UNSAFE.test(ch)) return escapeForLog(s, max);
  return s;
}
