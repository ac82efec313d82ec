/*
 * NAME
 *   text - streaming detection of clean text, JSON and CSV
 *
 * SYNOPSIS
 *   import { TextScanner, JsonScanner, CsvScanner } from './text.js';
 *
 *   const t = new TextScanner();
 *   for (const chunk of chunks) { t.push(chunk); if (t.failed) break; }
 *   const verdict: TextVerdict = t.end();
 *
 * DESCRIPTION
 *   "Clean text" is the whole file, not a prefix:
 *     - valid UTF-8 (ASCII included): no invalid or overlong sequences, no
 *       surrogates, nothing above U+10FFFF, no sequence cut at the end;
 *     - no C0 control character other than TAB, LF, CR and FF; no DEL; no C1
 *       control (U+0080-U+009F). In particular no NUL, and no ESC: escape
 *       sequences in "text" are an attack on whoever cats the file
 *       (terminal title, clipboard and hyperlink sequences, hidden output).
 *   A UTF-8 BOM is allowed. Bidi controls are allowed (they are ordinary in
 *   right-to-left text); see docs/checks.md.
 *
 *   Chunks may split a multi-byte character anywhere: the decoder runs in
 *   streaming mode (TextDecoder fatal, stream: true) and the final end()
 *   rejects a sequence cut by the end of the file.
 *
 *   On clean text two sub-kinds are tried, both streaming, both on the whole
 *   text, without building anything in memory:
 *     json - JsonScanner accepts exactly what JSON.parse accepts (RFC 8259,
 *            any top-level value, no BOM, no trailing garbage), up to a
 *            nesting depth of 100,000;
 *     csv  - CsvScanner, a light check: at least two records, one of ",",
 *            ";" or TAB occurs the same number of times (>= 1) outside
 *            double quotes in every record, quotes are balanced (a quoted
 *            field may span lines), blank lines only at the end, a leading
 *            BOM is ignored. JSON wins over CSV; otherwise the kind is txt.
 *
 *   The same clean text is also searched for the content markers of
 *   scripts and markup (active.ts: a `#!` first line, `<script`, `<svg`,
 *   `[Desktop Entry]`, ...); a text verdict lists what was found in
 *   `active`. Such a file is still text, but not plain text: the type
 *   check (file-type.ts) allows it only if each of those types is allowed
 *   by name.
 *
 * BUGS
 *   The CSV rule toggles on every double quote, so a stray quote inside an
 *   unquoted field (5" disk) makes a real CSV plain txt; two lines of prose
 *   with one comma each count as CSV. Both are still text; the rule decides
 *   only between txt and its sub-kind.
 */

import { ActiveScanner, type ActiveFinding } from './active.js';

/** Verdict of a TextScanner. */
export type TextVerdict =
  | { text: true; kind: 'txt' | 'csv' | 'json'; detail: string; active: ActiveFinding[] }
  | { text: false; detail: string };

// C0 controls other than TAB (09), LF (0A), FF (0C), CR (0D); DEL; C1.
const FORBIDDEN = /[\u0000-\u0008\u000B\u000E-\u001F\u007F-\u009F]/;

/** describeControl - a named control character for a reason. */
function describeControl(cp: number, at: number): string {
  const hex = cp.toString(16).padStart(2, '0');
  if (cp === 0) return `NUL byte at byte ${at}`;
  if (cp === 0x1b) return `escape character (ESC, 0x1b) at byte ${at}`;
  if (cp === 0x7f) return `DEL character (0x7f) at byte ${at}`;
  if (cp >= 0x80) return `C1 control character U+00${hex.toUpperCase()} at byte ${at}`;
  return `control character 0x${hex} at byte ${at}`;
}

/** TextScanner - whole-file clean-text check with JSON and CSV sub-kinds. */
export class TextScanner {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private readonly json = new JsonScanner();
  private readonly csv = new CsvScanner();
  private readonly active = new ActiveScanner();
  /** Bytes pushed so far. */
  private fed = 0;
  /** UTF-8 bytes of all text decoded so far (lags `fed` by a split character). */
  private decodedBytes = 0;
  private failure: string | undefined;
  private ended = false;

  /** failed - true once the file is known not to be clean text (stop reading). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** push - the next bytes of the file. */
  push(bytes: Uint8Array): void {
    if (this.ended) throw new Error('TextScanner: push after end');
    if (this.failure !== undefined) return;
    let s: string;
    try {
      s = this.decoder.decode(bytes, { stream: true });
    } catch {
      this.failure = `invalid UTF-8 in bytes ${this.fed} to ${this.fed + bytes.length - 1}`;
      return;
    }
    this.fed += bytes.length;
    this.scan(s);
  }

  /** scan - check decoded text for forbidden controls, then feed the sub-kind scanners. */
  private scan(s: string): void {
    if (s.length === 0) return;
    const m = FORBIDDEN.exec(s);
    if (m) {
      const at = this.decodedBytes + Buffer.byteLength(s.slice(0, m.index), 'utf8');
      this.failure = describeControl(s.charCodeAt(m.index), at);
      return;
    }
    this.decodedBytes += Buffer.byteLength(s, 'utf8');
    this.json.push(s);
    this.csv.push(s);
    this.active.push(s);
  }

  /** end - the verdict; the scanner cannot be used afterwards. */
  end(): TextVerdict {
    if (this.ended) throw new Error('TextScanner: end called twice');
    this.ended = true;
    if (this.failure === undefined) {
      try {
        this.scan(this.decoder.decode());
      } catch {
        this.failure = `invalid UTF-8: a sequence is cut off at the end (byte ${this.decodedBytes})`;
      }
    }
    if (this.failure !== undefined) return { text: false, detail: this.failure };
    const active = this.active.end();
    if (this.json.end()) return { text: true, kind: 'json', detail: 'JSON text', active };
    const csv = this.csv.end();
    if (csv) {
      const name = csv.delimiter === '\t' ? 'TAB' : `"${csv.delimiter}"`;
      return { text: true, kind: 'csv', detail: `CSV, ${csv.records} records of ${csv.fields} fields separated by ${name}`, active };
    }
    return { text: true, kind: 'txt', detail: active.length === 0 ? 'plain text' : 'text', active };
  }
}

// JsonScanner states. A const enum, so that switch cases are literals
// (V8 then compiles the hot switch into a jump table).
const enum J {
  VALUE = 0, // a value is required (top level, after ':', after ',' in an array)
  ARRAY_FIRST = 1, // after '[': a value or ']'
  OBJECT_FIRST = 2, // after '{': a key or '}'
  KEY = 3, // after ',' in an object: a key
  COLON = 4, // after a key
  AFTER = 5, // after a value: ',' or a closer, or only white space at top level
  STRING = 6,
  ESCAPE = 7,
  UNICODE = 8, // inside \uXXXX
  LITERAL = 9, // inside true/false/null
  NUM_MINUS = 10,
  NUM_ZERO = 11,
  NUM_INT = 12,
  NUM_DOT = 13,
  NUM_FRAC = 14,
  NUM_E = 15,
  NUM_ESIGN = 16,
  NUM_EXP = 17,
  DEAD = 18,
}

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const MAX_DEPTH = 100_000;

const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const isNumberEnd = (state: number): boolean =>
  state === J.NUM_ZERO || state === J.NUM_INT || state === J.NUM_FRAC || state === J.NUM_EXP;

/**
 * JsonScanner - a streaming JSON syntax check (no values built), agreeing
 * with JSON.parse; feed strings with push(), then end() says whether the
 * whole text was one JSON value.
 */
export class JsonScanner {
  private state = J.VALUE;
  private readonly stack: number[] = [];
  private inKey = false;
  private hexLeft = 0;
  private literal = '';
  private literalPos = 0;

  /** dead - true once the text cannot be JSON. */
  get dead(): boolean {
    return this.state === J.DEAD;
  }

  push(s: string): void {
    // The state lives in a local while the loop runs (a hot loop: it sees
    // every character of a JSON file); every exit writes it back.
    let state = this.state;
    if (state === J.DEAD) return;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      switch (state) {
        case J.STRING:
          // Fast path: skip ordinary string characters.
          while (c !== 0x22 && c !== 0x5c && c >= 0x20) {
            if (++i === n) {
              this.state = state;
              return;
            }
            c = s.charCodeAt(i);
          }
          if (c === 0x22) state = this.inKey ? J.COLON : J.AFTER;
          else if (c === 0x5c) state = J.ESCAPE;
          else return this.die();
          break;
        case J.ESCAPE:
          if (c === 0x75) {
            state = J.UNICODE;
            this.hexLeft = 4;
          } else if (c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74) {
            state = J.STRING;
          } else return this.die();
          break;
        case J.UNICODE:
          if (!isHex(c)) return this.die();
          if (--this.hexLeft === 0) state = J.STRING;
          break;
        case J.LITERAL:
          if (c !== this.literal.charCodeAt(this.literalPos)) return this.die();
          if (++this.literalPos === this.literal.length) state = J.AFTER;
          break;
        case J.NUM_MINUS:
          if (c === 0x30) state = J.NUM_ZERO;
          else if (isDigit(c)) state = J.NUM_INT;
          else return this.die();
          break;
        case J.NUM_ZERO:
        case J.NUM_INT:
        case J.NUM_FRAC:
        case J.NUM_EXP:
          if (isDigit(c) && state !== J.NUM_ZERO) break;
          if (c === 0x2e && (state === J.NUM_ZERO || state === J.NUM_INT)) state = J.NUM_DOT;
          else if ((c === 0x65 || c === 0x45) && state !== J.NUM_EXP) state = J.NUM_E;
          else {
            // The number ended; this character belongs to what follows.
            state = J.AFTER;
            i--;
          }
          break;
        case J.NUM_DOT:
          if (!isDigit(c)) return this.die();
          state = J.NUM_FRAC;
          break;
        case J.NUM_E:
          if (c === 0x2b || c === 0x2d) state = J.NUM_ESIGN;
          else if (isDigit(c)) state = J.NUM_EXP;
          else return this.die();
          break;
        case J.NUM_ESIGN:
          if (!isDigit(c)) return this.die();
          state = J.NUM_EXP;
          break;
        case J.VALUE:
        case J.ARRAY_FIRST:
          if (isWs(c)) break;
          if (c === 0x5d && state === J.ARRAY_FIRST) {
            this.stack.pop();
            state = J.AFTER;
          } else {
            state = this.beginValue(c);
            if (state === J.DEAD) return this.die();
          }
          break;
        case J.OBJECT_FIRST:
        case J.KEY:
          if (isWs(c)) break;
          if (c === 0x22) {
            this.inKey = true;
            state = J.STRING;
          } else if (c === 0x7d && state === J.OBJECT_FIRST) {
            this.stack.pop();
            state = J.AFTER;
          } else return this.die();
          break;
        case J.COLON:
          if (isWs(c)) break;
          if (c !== 0x3a) return this.die();
          state = J.VALUE;
          break;
        case J.AFTER: {
          if (isWs(c)) break;
          const top = this.stack[this.stack.length - 1];
          if (top === undefined) return this.die(); // trailing garbage after the top-level value
          if (c === 0x2c) state = top === OPEN_OBJECT ? J.KEY : J.VALUE;
          else if ((c === 0x7d && top === OPEN_OBJECT) || (c === 0x5d && top === OPEN_ARRAY)) this.stack.pop();
          else return this.die();
          break;
        }
        default:
          return this.die();
      }
    }
    this.state = state;
  }

  /** beginValue - the state after the first character of a value; J.DEAD if no value starts so. */
  private beginValue(c: number): J {
    switch (c) {
      case OPEN_OBJECT:
        if (this.stack.length >= MAX_DEPTH) return J.DEAD;
        this.stack.push(c);
        return J.OBJECT_FIRST;
      case OPEN_ARRAY:
        if (this.stack.length >= MAX_DEPTH) return J.DEAD;
        this.stack.push(c);
        return J.ARRAY_FIRST;
      case 0x22:
        this.inKey = false;
        return J.STRING;
      case 0x74:
        return this.beginLiteral('true');
      case 0x66:
        return this.beginLiteral('false');
      case 0x6e:
        return this.beginLiteral('null');
      case 0x2d:
        return J.NUM_MINUS;
      case 0x30:
        return J.NUM_ZERO;
      default:
        return isDigit(c) ? J.NUM_INT : J.DEAD;
    }
  }

  private beginLiteral(word: string): J {
    this.literal = word;
    this.literalPos = 1;
    return J.LITERAL;
  }

  private die(): void {
    this.state = J.DEAD;
    this.stack.length = 0;
  }

  /** end - whether everything pushed was exactly one JSON value. */
  end(): boolean {
    return this.stack.length === 0 && (this.state === J.AFTER || isNumberEnd(this.state));
  }
}

const DELIMITERS = [',', ';', '\t'] as const; // counted in this order by push()

/** CsvScanner - the light CSV rule (see the header); streaming, constant memory. */
export class CsvScanner {
  private readonly counts = [0, 0, 0];
  private readonly expected = [-1, -1, -1];
  private readonly alive = [true, true, true];
  private inQuotes = false;
  private recordChars = 0;
  private records = 0;
  private blankSeen = false;
  private started = false;
  private isDead = false;

  get dead(): boolean {
    return this.isDead;
  }

  push(s: string): void {
    if (this.isDead) return;
    let i = 0;
    if (!this.started && s.length > 0) {
      this.started = true;
      if (s.charCodeAt(0) === 0xfeff) i = 1; // a BOM, as spreadsheet programs write it
    }
    const n = s.length;
    const counts = this.counts;
    let inQuotes = this.inQuotes;
    let recordChars = this.recordChars;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        inQuotes = !inQuotes;
        recordChars++;
      } else if (inQuotes) {
        recordChars++;
      } else if (c === 0x0a) {
        this.recordChars = recordChars;
        this.endRecord();
        recordChars = 0;
        if (this.isDead) return;
      } else if (c !== 0x0d) {
        recordChars++;
        if (c === 0x2c) counts[0] = (counts[0] ?? 0) + 1;
        else if (c === 0x3b) counts[1] = (counts[1] ?? 0) + 1;
        else if (c === 0x09) counts[2] = (counts[2] ?? 0) + 1;
      }
    }
    this.inQuotes = inQuotes;
    this.recordChars = recordChars;
  }

  private endRecord(): void {
    if (this.recordChars === 0) {
      this.blankSeen = true; // fine at the end of the file, fatal before another record
      return;
    }
    if (this.blankSeen) {
      this.isDead = true;
      return;
    }
    let anyAlive = false;
    for (let d = 0; d < DELIMITERS.length; d++) {
      const count = this.counts[d] ?? 0;
      if (this.alive[d]) {
        if (this.expected[d] === -1) this.expected[d] = count;
        if (count === 0 || count !== this.expected[d]) this.alive[d] = false;
        else anyAlive = true;
      }
      this.counts[d] = 0;
    }
    this.records++;
    this.recordChars = 0;
    if (!anyAlive) this.isDead = true;
  }

  /** end - the delimiter and shape if everything pushed was CSV, else undefined. */
  end(): { delimiter: string; records: number; fields: number } | undefined {
    if (this.isDead || this.inQuotes) return undefined;
    if (this.recordChars > 0) this.endRecord();
    if (this.isDead || this.records < 2) return undefined;
    for (let d = 0; d < DELIMITERS.length; d++) {
      const delimiter = DELIMITERS[d];
      if (this.alive[d] && delimiter !== undefined) {
        return { delimiter, records: this.records, fields: (this.expected[d] ?? 0) + 1 };
      }
    }
    return undefined;
  }
}
