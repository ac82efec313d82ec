/*
 * NAME
 *   _json - a small strict JSON parser (RFC 8259) that refuses what JSON.parse lets by
 *
 * SYNOPSIS
 *   import { parseStrictJson, JsonError } from './_json.js';
 *   parseStrictJson(text: string, maxDepth?: number): unknown
 *
 * DESCRIPTION
 *   JSON.parse keeps the last of two equal keys without a word, so
 *   {"verdict":"rejected","verdict":"accepted"} reads as "accepted" to one tool
 *   and "rejected" to another. This parser refuses duplicate keys, strings that
 *   are not well-formed Unicode (lone surrogates, written raw or as \u escapes),
 *   raw control characters in strings, numbers outside the double range, and
 *   nesting deeper than maxDepth (so hostile input cannot exhaust the stack).
 *   Everything else is RFC 8259: whitespace is space, tab, LF, CR; no comments,
 *   no trailing commas, no leading zeros, no BOM.
 *
 *   Objects come back with a null prototype, so a key "__proto__" is an
 *   ordinary key and nothing reaches Object.prototype.
 *
 * DIAGNOSTICS
 *   Throws JsonError with `offset` (UTF-16 index), `kind` (a fixed phrase that
 *   never contains input text, safe for secret files) and `message` (kind,
 *   offset and, for duplicate keys, the escaped key).
 */
import { quote } from './errors.js';

/** JsonError - a syntax or strictness violation at `offset`; `kind` quotes no input. */
export class JsonError extends Error {
  readonly offset: number;
  readonly kind: string;
  constructor(kind: string, offset: number, detail = '') {
    super(`${kind}${detail} at offset ${offset}`);
    this.name = 'JsonError';
    this.kind = kind;
    this.offset = offset;
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** parseStrictJson - parse one JSON text strictly; throws JsonError. */
export function parseStrictJson(text: string, maxDepth = 16): unknown {
  const p = new Parser(text, maxDepth);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.pos !== text.length) throw new JsonError('unexpected text after the JSON value', p.pos);
  return value;
}

/** Parser - recursive descent over a string; depth is bounded by maxDepth. */
class Parser {
  pos = 0;
  constructor(
    readonly text: string,
    readonly maxDepth: number,
  ) {}

  /** ws - skip RFC 8259 whitespace. */
  ws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  /** value - one JSON value starting at pos. */
  value(depth: number): unknown {
    const t = this.text;
    if (this.pos >= t.length) throw new JsonError('unexpected end of input', this.pos);
    const c = t[this.pos];
    if (c === '{') return this.object(depth + 1);
    if (c === '[') return this.array(depth + 1);
    if (c === '"') return this.string();
    if (c === 't') return this.literal('true', true);
    if (c === 'f') return this.literal('false', false);
    if (c === 'n') return this.literal('null', null);
    return this.number();
  }

  /** literal - true, false or null. */
  literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) throw new JsonError('invalid literal', this.pos);
    this.pos += word.length;
    return value;
  }

  /** number - RFC 8259 number grammar; refuses values that overflow a double. */
  number(): number {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m || m[0].length === 0 || m[0] === '-') throw new JsonError('unexpected character', this.pos);
    const n = Number(m[0]);
    if (!Number.isFinite(n)) throw new JsonError('number out of range', this.pos);
    this.pos += m[0].length;
    return n;
  }

  /** string - a JSON string; refuses raw control characters and lone surrogates. */
  string(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let run = this.pos;
    for (;;) {
      if (this.pos >= t.length) throw new JsonError('unterminated string', start);
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(run, this.pos);
        this.pos++;
        break;
      }
      if (c < 0x20) throw new JsonError('control character in string', this.pos);
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += t.slice(run, this.pos);
      const e = t[this.pos + 1];
      if (e === 'u') {
        const hex = t.slice(this.pos + 2, this.pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new JsonError('invalid \\u escape', this.pos);
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 6;
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        this.pos += 2;
      } else {
        throw new JsonError('invalid escape', this.pos);
      }
      run = this.pos;
    }
    if (LONE_SURROGATE.test(out)) throw new JsonError('string is not well-formed Unicode (lone surrogate)', start);
    return out;
  }

  /** array - '[' values ']'. */
  array(depth: number): unknown[] {
    if (depth > this.maxDepth) throw new JsonError('nesting too deep', this.pos);
    this.pos++;
    const out: unknown[] = [];
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === ']') return out;
      if (c !== ',') throw new JsonError("expected ',' or ']'", this.pos - 1);
    }
  }

  /** object - '{' members '}'; a repeated key is an error, not an overwrite. */
  object(depth: number): Record<string, unknown> {
    if (depth > this.maxDepth) throw new JsonError('nesting too deep', this.pos);
    this.pos++;
    const out = Object.create(null) as Record<string, unknown>;
    const seen = new Set<string>();
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') throw new JsonError('expected a string key', this.pos);
      const at = this.pos;
      const key = this.string();
      if (seen.has(key)) throw new JsonError('duplicate key', at, ` ${quote(key, 40)}`);
      seen.add(key);
      this.ws();
      if (this.text[this.pos] !== ':') throw new JsonError("expected ':'", this.pos);
      this.pos++;
      this.ws();
      out[key] = this.value(depth);
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === '}') return out;
      if (c !== ',') throw new JsonError("expected ',' or '}'", this.pos - 1);
    }
  }
}
