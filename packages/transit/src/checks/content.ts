/*
 * NAME
 *   content - what a file is, by its bytes; detected once per input
 *
 * SYNOPSIS
 *   import { detectContent, detectContentOf, CONTENT_ENGINE, KNOWN_CONTENT_IDS } from './content.js';
 *
 *   detectContent(input: CheckInput, signal: AbortSignal): Promise<ContentInfo>
 *   detectContentOf(fd: number, size: number, signal: AbortSignal): Promise<ContentInfo>
 *
 * DESCRIPTION
 *   Two passes over transit's sealed copy, both with positional reads:
 *     1. file-type 21 (magic numbers) on the first 64 KiB. file-type's own
 *        default sample is 4100 bytes; 64 KiB also covers signatures that sit
 *        deeper (tar at 257, ISO 9660 at 32 KiB) and the first entries of a
 *        ZIP, where it tells docx/xlsx/epub/jar... from a plain zip. Its
 *        fromFile/fromTokenizer entry points want a path or a stream, not a
 *        descriptor read positionally, so it gets a buffer.
 *     2. TextScanner (text.ts) over the WHOLE file in 256 KiB chunks; it stops
 *        at the first byte that is not clean text, which for a binary format
 *        is almost always within the first few bytes. A file no longer than
 *        the prefix is scanned from the prefix already read (the copy is
 *        transit's own and sealed: a second read would return the same bytes).
 *
 *   The result names the content with extension-like ids:
 *     - a file-type match: its ext ('png', 'jpg', 'pdf', 'zip', 'elf',
 *       'exe', 'xml', ...). If the whole file is also clean text, 'txt' is
 *       added: some signatures are only two printable bytes ("BM" is bmp,
 *       "MZ" is exe), and textual formats (xml, pgp armour, ics, vcf, vtt,
 *       ps, rtf, stl) are text as well. A real binary of those formats is
 *       never clean text.
 *     - no match, clean text: 'json' or 'csv' (then also 'txt'), else 'txt';
 *     - an empty file: 'empty', and also 'txt' (zero bytes are vacuously
 *       clean text);
 *     - anything else: 'unknown', with the reason it is not text.
 *   ContentInfo.ids lists the most specific id first, then the broader ones.
 *
 *   Scripts and markup (active.ts) found by content are listed in
 *   ContentInfo.active with how each was found, and their ids come first
 *   in ids: a .txt that starts with `#!/bin/sh` is ['shell', 'txt'], an SVG
 *   with script ['svg', 'javascript', 'txt']. A file-type match that is
 *   itself such a type (xml, ps, eps, reg) is listed in active too. The
 *   type check refuses a file unless every active type is allowed by name
 *   (file-type.ts); the name's extension adds its own there.
 *
 *   detectContent() memoises per input object (a WeakMap): runChecks hands
 *   the same frozen input to every check, so fileTypeCheck and
 *   extensionMatchCheck read the file once between them. The shared work
 *   runs under its own AbortController, aborted only when every caller that
 *   is still waiting has been aborted: one check's timeout never breaks
 *   another's detection.
 *
 * SECURITY
 *   file-type parses hostile bytes, but only the 64 KiB prefix; an exception
 *   from it (or from a read) rejects the promise, which the check turns into
 *   an error, never a pass. Memory: the prefix, one 256 KiB chunk and its
 *   decoded string, whatever the file size.
 *
 * BUGS
 *   Magic numbers describe the start of a file: a PNG followed by a ZIP
 *   (a polyglot) is a png here. Content scanners (ClamAV, YARA) are the
 *   answer to what hides further in.
 */

import { fileTypeFromBuffer, supportedExtensions } from 'file-type';
import type { CheckInput } from './check.js';
import { preadFully, readChunks } from './read.js';
import { TextScanner, type TextVerdict } from './text.js';
import { ACTIVE_IDS, settleActive, type ActiveFinding } from './active.js';

/** What detection found. */
export interface ContentInfo {
  /** Most specific id: a file-type ext, 'json', 'csv', 'txt', 'empty' or 'unknown'. */
  readonly type: string;
  /** type first, then every broader id this content also counts as (e.g. ['json', 'txt']). */
  readonly ids: readonly string[];
  /** MIME type from file-type, when it matched. */
  readonly mime: string | undefined;
  /** One line on how the type was decided, for reasons. */
  readonly detail: string;
  /** Scripts and markup found by content (active.ts), each with how; their ids are in ids too. */
  readonly active: readonly ActiveFinding[];
}

/** The file-type version this code was written and tested against (package.json pins ~21.3.4). */
export const FILE_TYPE_VERSION = '21.3.4';
/** Engine string of the checks built on detectContent. */
export const CONTENT_ENGINE = `file-type ${FILE_TYPE_VERSION} + sluice text scan`;

/** Ids of our own, besides file-type's extensions. */
export const SLUICE_CONTENT_IDS: readonly string[] = ['txt', 'csv', 'json', 'empty', 'unknown'];
/** Every id detection (or, for scripts and markup, a name's extension) can produce. */
export const KNOWN_CONTENT_IDS: ReadonlySet<string> = new Set([...supportedExtensions, ...SLUICE_CONTENT_IDS, ...ACTIVE_IDS]);

/** How much of a file's start file-type sees. */
export const PREFIX_BYTES = 64 * 1024;
/**
 * Read and scan step. Each step runs synchronously (decode, control scan,
 * JSON/CSV scanners): 256 KiB keeps one step to a few ms of event loop time
 * even for JSON (about 100 MB/s here), so transit keeps serving its sockets.
 */
export const CHUNK_BYTES = 256 * 1024;

/** detectContentOf - detect without memoising (tests, and the memo's worker). */
export async function detectContentOf(fd: number, size: number, signal: AbortSignal): Promise<ContentInfo> {
  signal.throwIfAborted();
  if (size === 0) return { type: 'empty', ids: ['empty', 'txt'], mime: undefined, detail: 'empty file', active: [] };

  const prefixLength = Math.min(size, PREFIX_BYTES);
  const prefix = new Uint8Array(prefixLength);
  const got = await preadFully(fd, prefix, prefixLength, 0);
  if (got !== prefixLength) throw new Error(`file ended at byte ${got}, before its recorded size of ${size} bytes`);
  signal.throwIfAborted();
  const magic = await fileTypeFromBuffer(prefix);

  const scanner = new TextScanner();
  if (size === prefixLength) {
    // The prefix is the whole file (at most PREFIX_BYTES, within one scan step): scan it, not a second read of the same bytes.
    signal.throwIfAborted();
    scanner.push(prefix);
  } else {
    for await (const chunk of readChunks(fd, size, CHUNK_BYTES, signal)) {
      scanner.push(chunk);
      if (scanner.failed) break;
    }
  }
  const text = scanner.end();

  return contentInfoFrom(magic, text);
}

/**
 * contentInfoFrom - what the content is, from file-type's answer on its
 * first 64 KiB and the clean-text verdict on all of it. Shared by
 * detectContentOf (a file) and the archive inspector (a member's streamed
 * bytes), so both name content the same way.
 */
export function contentInfoFrom(magic: { ext: string; mime: string } | undefined, text: TextVerdict): ContentInfo {
  let found: ActiveFinding[] = text.text ? [...text.active] : [];
  if (magic && ACTIVE_IDS.has(magic.ext)) {
    const signature: ActiveFinding = magic.ext === 'xml' ? { type: 'xml', how: 'content: xml signature', weak: true } : { type: magic.ext, how: `content: ${magic.ext} signature` };
    const same = found.find((f) => f.type === magic.ext);
    found = [same !== undefined && !same.weak ? same : signature, ...found.filter((f) => f.type !== magic.ext)];
  }
  found = settleActive(found);
  const activeIds = found.map((f) => f.type);
  if (magic) {
    const ids = [...new Set([magic.ext, ...activeIds])];
    return text.text
      ? { type: magic.ext, ids: [...ids, 'txt'], mime: magic.mime, detail: `${magic.ext} signature; the whole file is clean text`, active: found }
      : { type: magic.ext, ids, mime: magic.mime, detail: `${magic.ext} signature`, active: found };
  }
  if (text.text) {
    const ids = [...activeIds, ...(text.kind === 'txt' ? ['txt'] : [text.kind, 'txt'])];
    return { type: ids[0]!, ids, mime: undefined, detail: text.detail, active: found };
  }
  return { type: 'unknown', ids: ['unknown'], mime: undefined, detail: `binary, not text: ${text.detail}`, active: [] };
}

interface Shared {
  readonly controller: AbortController;
  readonly promise: Promise<ContentInfo>;
  waiting: number;
  settled: boolean;
}

const memo = new WeakMap<CheckInput, Shared>();

/** detectContent - detectContentOf(input.fd, input.size), once per input object. */
export function detectContent(input: CheckInput, signal: AbortSignal): Promise<ContentInfo> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let shared = memo.get(input);
  // An aborted entry was cut short (abort happens only before it settles): start afresh.
  if (shared === undefined || shared.controller.signal.aborted) {
    const controller = new AbortController();
    const promise = detectContentOf(input.fd, input.size, controller.signal);
    const entry: Shared = { controller, promise, waiting: 0, settled: false };
    const done = (): void => {
      entry.settled = true;
    };
    promise.then(done, done); // also keeps a rejection nobody waits for from being unhandled
    memo.set(input, entry);
    shared = entry;
  }
  const s = shared;
  s.waiting++;
  return new Promise<ContentInfo>((resolve, reject) => {
    const onAbort = (): void => {
      s.waiting--;
      if (s.waiting === 0 && !s.settled) s.controller.abort(signal.reason);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    s.promise.then(
      (info) => {
        signal.removeEventListener('abort', onAbort);
        resolve(info);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
