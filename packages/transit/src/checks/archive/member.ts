/*
 * NAME
 *   member - one member of an archive, held to the rules of a file
 *
 * SYNOPSIS
 *   import { inspectMember, countBytes, type Member } from './member.js';
 *
 *   await inspectMember(run, member, bytes)   // resolves, or throws a Refusal
 *
 * DESCRIPTION
 *   A member's bytes arrive as a stream (inflated by zlib, cut out of a tar
 *   by tar-stream) and are looked at once, as they pass:
 *     1. every chunk is counted (Inspection.count: total expanded bytes,
 *        the ratio of the whole upload, the member's own ratio);
 *     2. its first HEAD_BYTES go to file-type, as a file's first 64 KiB do
 *        (content.ts);
 *     3. a zip, tar, gz or tar.gz is itself an archive: it must be allowed
 *        (transit.allowTypes) and its name must match, it is opened one
 *        level deeper (refused past maxDepth), and its own members are held
 *        to these rules; its bytes are not otherwise looked at;
 *     4. any other archive (7z, rar, xz, ...) is refused as not
 *        inspectable unless transit.archives.allowOpaque lists it;
 *     5. everything else goes through the clean-text scanner (text.ts)
 *        and is then judged exactly as a file is: content type on the
 *        allowlist, scripts and markup by name, extension agreeing with
 *        the content (file-type.ts typeDecision, extension.ts
 *        extensionDecision), with the member's last name component as its
 *        name.
 */
import { fileTypeFromBuffer, supportedExtensions } from 'file-type';
import { contentInfoFrom, type ContentInfo } from '../content.js';
import { typeDecision } from '../file-type.js';
import { extensionDecision } from '../extension.js';
import { TextScanner } from '../text.js';
import { HEAD_BYTES, INSPECTED_KINDS, Inspection, Refusal, messageOf, type ArchiveKind } from './limits.js';
import { concatHead } from './source.js';
import { memberBaseName } from './names.js';

/** Archive and compression formats file-type knows that the inspector does not open. */
export const OPAQUE_KINDS: ReadonlySet<string> = new Set(
  ['7z', 'rar', 'xz', 'bz2', 'zst', 'lz', 'lz4', 'lzh', 'lzma', 'Z', 'cab', 'ar', 'deb', 'rpm', 'arj', 'cpio', 'ace', 'alz', 'iso', 'dmg', 'shar', 'squashfs', 'vhd', 'vhdx', 'vmdk', 'asar', 'tar.xz', 'tar.bz2', 'tar.zst']
    .filter((ext) => (supportedExtensions as ReadonlySet<string>).has(ext)),
);

/** A member about to be read. */
export interface Member {
  /** Path of the member: the enclosing members' names, then its own. */
  readonly path: readonly string[];
  /** Its full name in the archive (already past the name rules). */
  readonly name: string;
  /** Level of the archive that holds it (the upload is level 1). */
  readonly level: number;
  /** Compressed bytes behind what it has expanded to so far, when known (the member's ratio). */
  readonly compressed?: () => number | undefined;
  /** Its bytes are part of a stream already counted (a tar's member, when the tar itself was counted). */
  readonly counted?: true;
  /** The content of a gzip: a tar here is the tar of a tar.gz, opened at the gzip's own level. */
  readonly unwrapped?: true;
}

/**
 * countBytes - the bytes of `source`, counted against the Inspection's
 * bounds as they pass. An error from the source (a library that could not
 * decode the data) becomes a Refusal naming the member; aborting stops it.
 */
export async function* countBytes(run: Inspection, m: Member, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  const it = source[Symbol.asyncIterator]();
  const { signal } = run.options;
  let total = 0;
  try {
    for (;;) {
      signal.throwIfAborted();
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (err) {
        if (err instanceof Refusal) throw err;
        signal.throwIfAborted();
        throw new Refusal(m.path, `data does not decode: ${messageOf(err)}`);
      }
      if (r.done) return;
      total += r.value.length;
      if (m.counted !== true) run.count(m.path, r.value.length, total, m.compressed?.());
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

/** readHead - up to HEAD_BYTES from the start of it; fewer only when it ends. */
async function readHead(it: AsyncIterator<Uint8Array>): Promise<{ head: Buffer; carry: Uint8Array; done: boolean }> {
  const parts: Uint8Array[] = [];
  let n = 0;
  while (n < HEAD_BYTES) {
    const r = await it.next();
    if (r.done) return { head: Buffer.concat(parts), carry: new Uint8Array(0), done: true };
    parts.push(r.value);
    n += r.value.length;
  }
  const all = Buffer.concat(parts);
  return { head: all.subarray(0, HEAD_BYTES), carry: all.subarray(HEAD_BYTES), done: false };
}

/** judge - the file rules on a member's content; throws a Refusal naming the one it breaks. */
function judge(run: Inspection, m: Member, info: ContentInfo): void {
  const base = memberBaseName(m.name);
  const type = typeDecision(info, base, run.allowed);
  if (!type.ok) throw new Refusal(m.path, type.reason);
  if (run.options.extensionMatch) {
    const ext = extensionDecision(info, base);
    if (!ext.ok) throw new Refusal(m.path, ext.reason);
  }
}

/** inspectMember - read one member to its end, opening it when it is an archive; throws a Refusal. */
export async function inspectMember(run: Inspection, m: Member, source: AsyncIterable<Uint8Array>): Promise<void> {
  const it = countBytes(run, m, source);
  try {
    const { head, carry, done } = await readHead(it);
    if (head.length === 0 && done) {
      if (m.unwrapped === true) run.member(m.path, false);
      judge(run, m, { type: 'empty', ids: ['empty', 'txt'], mime: undefined, detail: 'empty file', active: [] });
      return;
    }
    let magic: { ext: string; mime: string } | undefined;
    try {
      magic = await fileTypeFromBuffer(head);
    } catch (err) {
      throw new Refusal(m.path, `content not recognised: ${messageOf(err)}`);
    }
    if (m.unwrapped === true && magic?.ext !== 'tar') run.member(m.path, false);
    if (magic && INSPECTED_KINDS.has(magic.ext)) {
      const tarOfTarGz = m.unwrapped === true && magic.ext === 'tar';
      const level = tarOfTarGz ? m.level : m.level + 1;
      if (!tarOfTarGz) judge(run, m, contentInfoFrom(magic, { text: false, detail: 'archive' }));
      if (level > run.limits.maxDepth) {
        throw new Refusal(m.path, `${magic.ext} nested ${level} archives deep, more than ${run.limits.maxDepth} (transit.archives.maxDepth)`);
      }
      if (!tarOfTarGz) run.archives++;
      const rest = concatHead(Buffer.concat([head, carry]), it);
      await run.options.open(run, magic.ext as ArchiveKind, rest, m.path, level);
      // What the nested reader left is counted, and may only be a tar's zero padding.
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        if (r.value.some((b) => b !== 0)) throw new Refusal(m.path, `data after the end of the ${magic.ext} archive`);
      }
    }
    if (magic && OPAQUE_KINDS.has(magic.ext) && !run.opaque.has(magic.ext)) {
      throw new Refusal(m.path, `${magic.ext} archive cannot be inspected (transit.archives.allowOpaque does not list it)`);
    }
    const scanner = new TextScanner();
    scanner.push(head);
    if (carry.length > 0 && !scanner.failed) scanner.push(carry);
    if (!done) {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        if (!scanner.failed) scanner.push(r.value);
      }
    }
    judge(run, m, contentInfoFrom(magic, scanner.end()));
  } finally {
    await it.return();
  }
}
