/*
 * NAME
 *   names - the rules a member's name must follow
 *
 * SYNOPSIS
 *   import { memberNameProblem, memberBaseName } from './names.js';
 *
 *   memberNameProblem(name, maxNameBytes): string | undefined   the broken rule, or undefined
 *   memberBaseName(name): string                                the last component
 *
 * DESCRIPTION
 *   A member's name is a path that whoever unpacks the archive will use.
 *   It is refused, not repaired (docs/checks.md, "Archives"), when it:
 *     - is empty, or longer than maxNameBytes UTF-8 bytes;
 *     - is absolute: starts with "/", or with a drive letter ("C:");
 *     - has a ".." component (the traversal "../../x");
 *     - has a backslash: a separator to Windows, a name character to
 *       Unix; either reading is a surprise for the other;
 *     - has a control character (C0, DEL, C1), a line or paragraph
 *       separator, or a format character (bidi controls, zero-width
 *       characters: the characters core's sanitizeName removes or
 *       replaces);
 *     - could not be decoded (U+FFFD: invalid UTF-8 in the archive).
 *   "." components and a trailing "/" (a directory) are allowed: tar
 *   writes "./a.txt" for `tar -C dir .`.
 *
 *   The member's extension, for the extension rule, is that of its last
 *   component as egress would store it (extension.ts' nameExtension).
 */

const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** memberNameProblem - the rule a member name breaks, or undefined when it follows them all. */
export function memberNameProblem(name: string, maxNameBytes: number): string | undefined {
  if (name === '') return 'empty name';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxNameBytes) return `name of ${bytes} bytes is longer than ${maxNameBytes} (transit.archives.maxNameBytes)`;
  if (name.includes('\uFFFD')) return 'name is not valid UTF-8';
  const control = CONTROL_OR_FORMAT.exec(name);
  if (control) return `name has a control, bidi or invisible character (U+${control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
  if (name.includes('\\')) return 'name has a backslash';
  if (name.startsWith('/')) return 'absolute name';
  if (/^[A-Za-z]:/.test(name)) return 'absolute name (drive letter)';
  if (name.split('/').includes('..')) return 'path traversal (a ".." component)';
  return undefined;
}

/** memberBaseName - the last component of a member name ("a/b.txt" -> "b.txt"; "a/" -> "a"). */
export function memberBaseName(name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  return parts.length === 0 ? name : parts[parts.length - 1]!;
}
