/*
 * NAME
 *   active - scripts and markup: types an operator must allow by name
 *
 * SYNOPSIS
 *   import { ACTIVE_TYPES, ACTIVE_IDS, ActiveScanner, activeTypeOfExtension } from './active.js';
 *
 *   const a = new ActiveScanner();
 *   for (const text of decodedChunks) a.push(text);
 *   const found: ActiveFinding[] = a.end();   // by content
 *   activeTypeOfExtension('bat')              // 'batch' (by name), or undefined
 *
 * DESCRIPTION
 *   Clean text is not harmless text when something runs it: a shell or
 *   Windows script, a .desktop launcher, an HTML application, a web page or
 *   an SVG with script in it. Such files are given a type of their own
 *   (ACTIVE_TYPES), decided two ways, and a file is of every type either
 *   way finds:
 *
 *     by name     the extension of the stored name (Windows, desktops and
 *                 browsers run or render a file by its extension);
 *     by content  markers in the whole text (the kernel runs a `#!` file by
 *                 its first line, browsers sniff markup, a .desktop file is
 *                 a launcher under any name): see CONTENT_MARKERS and
 *                 docs/checks.md, "Scripts and markup".
 *
 *   ActiveScanner looks for the content markers in decoded text pushed in
 *   chunks of any size; a marker split between two chunks is still found
 *   (the seam, TAIL characters either side, is scanned too). It keeps only
 *   that tail and the first line: constant memory.
 *
 *   Markers are matched without regard to case. Event-handler attributes
 *   (`onload=`) and `javascript:` URLs count as javascript only in a file
 *   that also has markup (html, svg, xml, hta): in prose they are words.
 *
 * BUGS
 *   Only clean text is scanned (text.ts): markup that also holds a NUL or
 *   invalid UTF-8 is 'unknown' content, which the default allowlist refuses
 *   anyway. Content markers for PowerShell and VBScript do not exist that
 *   prose cannot contain; those are recognised by name only (which is how
 *   Windows decides to run them).
 */

/** One active type. */
export interface ActiveType {
  /** The id an operator lists in transit.allowTypes to allow it. */
  readonly id: string;
  readonly kind: 'script' | 'markup' | 'program';
  /** What it is, for docs and reasons. */
  readonly what: string;
  /** Name extensions (lowercase, no dot) that make a file this type. */
  readonly extensions: readonly string[];
}

export const ACTIVE_TYPES: readonly ActiveType[] = [
  { id: 'shell', kind: 'script', what: 'Unix shell script, or any file starting with a #! interpreter line', extensions: ['sh', 'bash', 'zsh', 'ksh', 'csh', 'tcsh', 'fish', 'command'] },
  { id: 'batch', kind: 'script', what: 'Windows batch file', extensions: ['bat', 'cmd'] },
  { id: 'powershell', kind: 'script', what: 'PowerShell script or module', extensions: ['ps1', 'psm1', 'psd1', 'ps1xml', 'psc1', 'pssc'] },
  { id: 'vbscript', kind: 'script', what: 'VBScript (Windows Script Host)', extensions: ['vbs', 'vbe'] },
  { id: 'javascript', kind: 'script', what: 'JavaScript: a script file (Windows Script Host runs .js), or script inside markup', extensions: ['js', 'jse', 'mjs', 'cjs'] },
  { id: 'wsh', kind: 'script', what: 'Windows Script Host file or scriptlet', extensions: ['wsf', 'wsh', 'wsc', 'sct'] },
  { id: 'hta', kind: 'script', what: 'HTML application (mshta runs it with full rights)', extensions: ['hta'] },
  { id: 'desktop', kind: 'script', what: 'desktop entry (a launcher: Exec= runs a command)', extensions: ['desktop'] },
  { id: 'python', kind: 'script', what: 'Python script', extensions: ['py', 'pyw'] },
  { id: 'perl', kind: 'script', what: 'Perl script', extensions: ['pl', 'pm'] },
  { id: 'ruby', kind: 'script', what: 'Ruby script', extensions: ['rb'] },
  { id: 'php', kind: 'script', what: 'PHP script', extensions: ['php', 'phtml', 'php3', 'php4', 'php5', 'php7', 'phps'] },
  { id: 'html', kind: 'markup', what: 'HTML page (a browser renders it and runs its scripts)', extensions: ['html', 'htm', 'xhtml', 'xht', 'shtml', 'mht', 'mhtml'] },
  { id: 'svg', kind: 'markup', what: 'SVG image (XML a browser renders; it may carry script)', extensions: ['svg', 'svgz'] },
  { id: 'xml', kind: 'markup', what: 'XML (entities and stylesheets are processed by its readers)', extensions: ['xml', 'xsl', 'xslt'] },
  { id: 'ps', kind: 'program', what: 'PostScript (a programming language its viewers run)', extensions: ['ps'] },
  { id: 'eps', kind: 'program', what: 'Encapsulated PostScript', extensions: ['eps'] },
  { id: 'reg', kind: 'program', what: 'Windows registry file (opening it imports it)', extensions: ['reg'] },
];

/** Every active type id. */
export const ACTIVE_IDS: ReadonlySet<string> = new Set(ACTIVE_TYPES.map((t) => t.id));

const BY_EXTENSION: ReadonlyMap<string, string> = new Map(ACTIVE_TYPES.flatMap((t) => t.extensions.map((e) => [e, t.id] as const)));

/** activeTypeOfExtension - the active type a (lowercase, dotless) name extension makes a file, if any. */
export function activeTypeOfExtension(ext: string): string | undefined {
  return BY_EXTENSION.get(ext);
}

/** One reason a file is of an active type. */
export interface ActiveFinding {
  readonly type: string;
  /** How it was found, e.g. 'content: "<script"', 'extension .bat'. */
  readonly how: string;
  /**
   * Only an XML declaration (or file-type's xml signature): it does not
   * count when the file is also svg, html or hta, which are XML-shaped
   * themselves (settleActive). An `<!ENTITY` always counts.
   */
  readonly weak?: true;
}

/** Types an XML declaration is part of. */
const XML_SHAPED: ReadonlySet<string> = new Set(['svg', 'html', 'hta']);

/** settleActive - the findings that count: a weak xml one is dropped when the file is svg, html or hta. */
export function settleActive(findings: readonly ActiveFinding[]): ActiveFinding[] {
  const shaped = findings.some((f) => XML_SHAPED.has(f.type));
  return findings.filter((f) => !(f.weak && f.type === 'xml' && shaped));
}

/**
 * The content markers, matched case-insensitively on decoded text, as four
 * regular expressions (each starts with a literal or a small class, so
 * V8 scans for it quickly; one alternation of them all, with look-behinds,
 * ran at a tenth of the speed). A tag counts when its name is followed by
 * white space, '>' or '/' (so `<svgfoo>` does not); a line marker when it
 * fills its line (up to 16 blanks around it). Every marker, with the
 * characters around it that decide it, fits in TAIL.
 */
const TAG_RE = /<(?:(hta:application|svg|!doctype\s{1,16}html|html|head|body|iframe|frame|frameset|object|embed|form|script|!entity|\?php)(?=[\s>/])|(\?xml)(?=[\s-]))/gi;
const LINE_RE = /\n[ \t]{0,16}(\[desktop entry\]|@echo[ \t]{1,16}off)(?=[ \t]{0,16}\r?\n)/gi;
/** These count only in a file that also has markup (MARKUP): in prose they are words. */
const EVENT_RE = /[\s"'/]on[a-z]{2,32}[ \t\r\n]{0,8}=/gi;
const URL_RE = /(?:java|vb)script[ \t]{0,8}:/gi;

/** tagType - the active type a matched tag name (TAG_RE's group) stands for. */
function tagType(name: string): { type: string; weak?: true } {
  const n = name.toLowerCase();
  if (n === 'hta:application') return { type: 'hta' };
  if (n === 'svg') return { type: 'svg' };
  if (n === 'script') return { type: 'javascript' };
  if (n === '?php') return { type: 'php' };
  if (n === '?xml') return { type: 'xml', weak: true };
  if (n === '!entity') return { type: 'xml' };
  return { type: 'html' }; // <!doctype html and the html tags
}

/** Characters of each chunk scanned again with the next: longer than any marker can be. */
const TAIL = 64;
/** The first line is looked at for `#!` up to this many characters. */
const FIRST_LINE = 256;
const MARKUP: ReadonlySet<string> = new Set(['html', 'svg', 'xml', 'hta']);

/** The type a `#!` interpreter line makes a file: by the interpreter's name (after env). */
function shebangType(line: string): string {
  const words = line.slice(2).trim().split(/[ \t]+/);
  let prog = (words[0] ?? '').split('/').pop() ?? '';
  if (prog === 'env') prog = words.slice(1).find((w) => !w.startsWith('-') && !w.includes('=')) ?? '';
  if (/^python/.test(prog)) return 'python';
  if (/^perl/.test(prog)) return 'perl';
  if (/^ruby/.test(prog)) return 'ruby';
  if (/^php/.test(prog)) return 'php';
  if (/^(node|nodejs|deno|bun)$/.test(prog)) return 'javascript';
  if (/^pwsh/.test(prog)) return 'powershell';
  return 'shell';
}

/** quoteMarker - a found marker for a reason: printable, one line, short. */
const quoteMarker = (s: string): string => JSON.stringify(s.trim().replace(/\s+/g, ' ').slice(0, 40));

/** ActiveScanner - content markers of active types in streamed text. */
export class ActiveScanner {
  /** Text scanned again with the next chunk: starts as a newline, so that line markers match on the first line. */
  private tail = '\n';
  private firstLine = '';
  private firstLineDone = false;
  /** type -> how it was first found (a strong marker replaces a weak one). */
  private readonly found = new Map<string, { how: string; weak: boolean }>();
  /** Markers that count only in markup: type -> how. */
  private readonly inMarkup = new Map<string, { how: string; weak: boolean }>();
  private ended = false;

  /** push - the next decoded text of the file. */
  push(s: string): void {
    if (this.ended) throw new Error('ActiveScanner: push after end');
    if (s.length === 0) return;
    if (!this.firstLineDone) this.takeFirstLine(s);
    this.scan(s);
  }

  /**
   * scan - look for markers in s, and across the seam with the previous
   * text (its last TAIL characters and s's first TAIL). The seam is a small
   * string of its own: scanning tail + s as one string made V8 flatten a
   * quarter-megabyte concatenation per chunk, at a third of the speed.
   */
  private scan(s: string): void {
    this.scanIn(s);
    this.scanIn(this.tail + s.slice(0, TAIL));
    this.tail = s.length >= TAIL ? s.slice(-TAIL) : (this.tail + s).slice(-TAIL);
  }

  private scanIn(text: string): void {
    for (const m of text.matchAll(TAG_RE)) {
      const { type, weak } = tagType(m[1] ?? m[2] ?? '');
      this.note(this.found, type, m[0], weak === true);
    }
    for (const m of text.matchAll(LINE_RE)) this.note(this.found, m[1]!.startsWith('@') ? 'batch' : 'desktop', m[0], false);
    for (const m of text.matchAll(EVENT_RE)) this.note(this.inMarkup, 'javascript', m[0], false);
    for (const m of text.matchAll(URL_RE)) this.note(this.inMarkup, 'javascript', m[0], false);
  }

  /** note - remember the first way a type was found (a strong marker replaces a weak one). */
  private note(into: Map<string, { how: string; weak: boolean }>, type: string, marker: string, weak: boolean): void {
    const before = into.get(type);
    if (before === undefined || (before.weak && !weak)) into.set(type, { how: `content: ${quoteMarker(marker)}`, weak });
  }

  /** takeFirstLine - collect the first line (after a BOM) until it is known whether it is a `#!` line. */
  private takeFirstLine(s: string): void {
    this.firstLine += s.slice(0, FIRST_LINE + 1 - this.firstLine.length);
    const line = this.firstLine.replace(/^\uFEFF/, '');
    if (line.includes('\n') || this.firstLine.length > FIRST_LINE || (line.length >= 2 && !line.startsWith('#!'))) {
      this.firstLineDone = true;
      this.judgeFirstLine();
    }
  }

  /** judgeFirstLine - a `#!` first line makes the file a script of its interpreter's type. */
  private judgeFirstLine(): void {
    const line = (this.firstLine.replace(/^\uFEFF/, '').split('\n')[0] ?? '').replace(/\r$/, '');
    if (line.startsWith('#!') && !this.found.has(shebangType(line))) this.found.set(shebangType(line), { how: `content: #! line ${quoteMarker(line)}`, weak: false });
  }

  /** end - every active type the content showed, each with how it was first found (not yet settled: settleActive). */
  end(): ActiveFinding[] {
    if (this.ended) throw new Error('ActiveScanner: end called twice');
    this.ended = true;
    if (!this.firstLineDone) this.judgeFirstLine();
    this.scan('\n'); // closes the last line: a line marker there counts without a final newline
    if ([...this.found.keys()].some((t) => MARKUP.has(t))) {
      for (const [type, how] of this.inMarkup) if (!this.found.has(type)) this.found.set(type, how);
    }
    return [...this.found].map(([type, { how, weak }]) => (weak ? { type, how, weak } : { type, how }));
  }
}
