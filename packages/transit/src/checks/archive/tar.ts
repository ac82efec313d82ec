/*
 * NAME
 *   tar - a tar's members, read with tar-stream
 *
 * SYNOPSIS
 *   import { inspectTarStream } from './tar.js';
 *
 *   await inspectTarStream(run, bytes, path, level, counted)   // resolves, or throws a Refusal
 *
 * DESCRIPTION
 *   tar-stream (pinned ~3.1) parses the headers (ustar, pax, GNU long
 *   names), checks each header's checksum and hands over each member's
 *   bytes as a stream, one member at a time: nothing is held whole, and
 *   the tar is read as it streams in (from the sealed copy, from gunzip,
 *   or from an enclosing archive's member).
 *
 *   Only regular files and directories may be members: hard links,
 *   symlinks, devices, FIFOs, contiguous files and GNU sparse or
 *   multi-volume entries are refused by their type. A pax global header
 *   (written by `git archive`) is metadata, not a member. Every member's
 *   name follows the name rules (names.ts) and is unique; a file's bytes
 *   go through inspectMember. tar-stream's own errors (a bad checksum, a
 *   tar cut short) are "malformed tar: ..." refusals.
 *
 *   A tar stores members as they are, so a member has no compressed size
 *   of its own: the per-member ratio does not apply, the upload's overall
 *   ratio and maxExpandedBytes do. When the tar's own bytes were already
 *   counted (a tar.gz's inflated stream, a tar inside another archive),
 *   `counted` is true and its members' bytes are not counted a second
 *   time.
 */
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { Inspection, Refusal, messageOf } from './limits.js';
import { memberNameProblem } from './names.js';
import { inspectMember } from './member.js';

let archiveIds = 0;

const REFUSED_TYPES: Readonly<Record<string, string>> = {
  link: 'hard link',
  symlink: 'symlink',
  'character-device': 'character device',
  'block-device': 'block device',
  fifo: 'FIFO',
  'contiguous-file': 'contiguous file',
};

/** inspectTarStream - every member of the tar that `bytes` yields; throws a Refusal. */
export async function inspectTarStream(run: Inspection, bytes: AsyncIterable<Uint8Array>, tarPath: readonly string[], level: number, counted: boolean): Promise<void> {
  const archiveKey = `tar${++archiveIds}`;
  const extract = tarStream.extract();
  const source = Readable.from(bytes, { objectMode: false, highWaterMark: 1 });
  source.on('error', (err) => extract.destroy(err));
  extract.on('error', () => {}); // delivered to the iterator below as well
  source.pipe(extract as unknown as NodeJS.WritableStream);
  const entries = (extract as unknown as AsyncIterable<tarStream.Entry>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      run.options.signal.throwIfAborted();
      let r: IteratorResult<tarStream.Entry>;
      try {
        r = await entries.next();
      } catch (err) {
        if (err instanceof Refusal) throw err;
        run.options.signal.throwIfAborted();
        throw new Refusal(tarPath, `malformed tar: ${messageOf(err)}`);
      }
      if (r.done) return;
      const entry = r.value;
      const h = entry.header;
      if (h.type === 'pax-global-header') {
        entry.resume();
        continue;
      }
      const name = h.name;
      const path = [...tarPath, name];
      const problem = memberNameProblem(name, run.limits.maxNameBytes);
      if (problem !== undefined) throw new Refusal(path, problem);
      const refused = h.type === null || h.type === undefined ? 'entry of an unknown type' : REFUSED_TYPES[h.type];
      if (refused !== undefined) throw new Refusal(path, `${refused}${h.linkname ? ` (to "${h.linkname}")` : ''}: only regular files and directories may be members`);
      if (h.type !== 'file' && h.type !== 'directory') throw new Refusal(path, `${h.type} entry: only regular files and directories may be members`);
      run.uniqueName(path, archiveKey, name);
      run.member(path, h.type === 'directory');
      if (h.type === 'directory') {
        if ((h.size ?? 0) !== 0) throw new Refusal(path, 'directory with data');
        entry.resume();
        continue;
      }
      await inspectMember(run, counted ? { path, name, level, counted } : { path, name, level }, entry as unknown as AsyncIterable<Uint8Array>);
    }
  } finally {
    source.unpipe();
    source.destroy();
    extract.destroy();
  }
}
