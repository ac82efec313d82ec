/*
 * NAME
 *   jcs - RFC 8785 JSON Canonicalization Scheme, and the ASCII file form
 *
 * SYNOPSIS
 *   import { jcs, asciiJson } from '@sluice/report';
 *   jcs(value: unknown): string          // RFC 8785 text (encode as UTF-8 to sign)
 *   asciiJson(canonical: string): string // same JSON, every non-ASCII code unit as \uXXXX
 *
 * DESCRIPTION
 *   jcs serializes null, booleans, finite numbers, strings, arrays and plain
 *   objects as RFC 8785 requires: no whitespace; object members sorted by
 *   their keys compared as arrays of UTF-16 code units (what Array.prototype.sort
 *   does); strings and numbers exactly as ECMAScript JSON.stringify writes
 *   them (RFC 8785 sections 3.2.2.2 and 3.2.2.3 are defined that way).
 *
 *   asciiJson rewrites a JSON text so that it is printable ASCII: every code
 *   unit from U+007F up becomes a lowercase \uXXXX escape (astral characters
 *   as their two surrogate escapes). It changes the spelling, not the value:
 *   any JSON parser reads the same strings back. Report files are written in
 *   this form so that `cat report.json` cannot be steered by bidi overrides or
 *   C1 terminal controls in an uploaded name (docs/report-format.md).
 *
 * DIAGNOSTICS
 *   jcs throws TypeError for what RFC 8785 (I-JSON, RFC 7493) cannot carry:
 *   undefined, functions, symbols, bigints, NaN and infinities, strings with
 *   lone surrogates, objects that are not plain (Date, Map, class instances),
 *   and nesting deeper than 64.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** jcs - the RFC 8785 canonical JSON text of `value`. */
export function jcs(value: unknown): string {
  return canon(value, 0);
}

/** canon - one value, recursively, with a depth bound. */
function canon(value: unknown, depth: number): string {
  if (depth > 64) throw new TypeError('jcs: nesting deeper than 64');
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // ECMAScript Number::toString, -0 written as 0 (RFC 8785 3.2.2.3).
      if (!Number.isFinite(value)) throw new TypeError('jcs: NaN and infinities have no JSON form');
      return JSON.stringify(value);
    case 'string':
      if (LONE_SURROGATE.test(value)) throw new TypeError('jcs: string is not well-formed Unicode (lone surrogate)');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`jcs: a ${typeof value} has no JSON form`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => canon(v, depth + 1)).join(',')}]`;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) throw new TypeError('jcs: only plain objects and arrays');
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort(); // UTF-16 code unit order, as RFC 8785 3.2.3 requires
  const parts: string[] = [];
  for (const k of keys) {
    if (obj[k] === undefined) throw new TypeError('jcs: undefined has no JSON form');
    parts.push(`${canon(k, depth + 1)}:${canon(obj[k], depth + 1)}`);
  }
  return `{${parts.join(',')}}`;
}

/** asciiJson - the same JSON text with every code unit >= U+007F written as \uXXXX. */
export function asciiJson(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
