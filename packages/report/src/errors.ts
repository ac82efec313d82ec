/*
 * NAME
 *   errors - the two refusals of the report package
 *
 * SYNOPSIS
 *   import { ReportFormatError, KeyFileError } from '@sluice/report';
 *
 * DESCRIPTION
 *   ReportFormatError: a report (text or object) does not match the format of
 *   docs/report-format.md. The message names the field or the offset and what
 *   is wrong with it; it is one line and never quotes more than a short,
 *   escaped piece of the input. A verifier turns it into code 'malformed'.
 *
 *   KeyFileError: a key file cannot be used. The message starts with the
 *   path and says what was wrong. It never contains key material: problems are
 *   described by field name and length, never by value.
 *
 *   Anything else thrown by this package is a bug or a broken environment
 *   (EACCES, ENOSPC, a worker that cannot start).
 */

/** ReportFormatError - a report that does not match the format; `message` names the problem. */
export class ReportFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportFormatError';
  }
}

/** KeyFileError - a key file that is missing, unreadable, too open or not in the format. */
export class KeyFileError extends Error {
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.name = 'KeyFileError';
    this.path = path;
  }
}

/** quote - a short, one-line, ASCII-only rendering of untrusted text for a message. */
export function quote(text: string, max = 80): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text;
  return JSON.stringify(cut).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
