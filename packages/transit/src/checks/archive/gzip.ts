/*
 * NAME
 *   gzip - a gzip's one member, inflated by node:zlib as it streams
 *
 * SYNOPSIS
 *   import { inspectGzipStream, gunzippedName } from './gzip.js';
 *
 *   await inspectGzipStream(run, bytes, path, level, name)   // resolves, or throws a Refusal
 *
 * DESCRIPTION
 *   A gzip file holds one member: its inflated bytes, named after the
 *   gzip with ".gz" taken off ("notes.txt.gz" -> "notes.txt", "a.tgz" ->
 *   "a.tar"); the name in the gzip header is ignored. Concatenated gzip
 *   members (RFC 1952, 2.2) are one stream, as gunzip(1) reads them. The
 *   member goes through inspectMember like any other, except that a tar
 *   inside is the tar of a tar.gz: it is opened at the gzip's own level,
 *   so a .tar.gz counts as one archive.
 *
 *   Inflating is streamed (zlib's output in 16 KiB chunks, each counted
 *   against the bounds as it comes); a gzip bomb stops at the first
 *   bound, having held one chunk. Bytes after the end of the last gzip
 *   member, which zlib would skip without a word when they are zeros, are
 *   refused: no data outside the archive's structure.
 */
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { Inspection, Refusal } from './limits.js';
import { inspectMember } from './member.js';

const INFLATE_CHUNK_BYTES = 16 * 1024;

/** gunzippedName - the name of a gzip's content: the gzip's own name without ".gz" (".tgz" -> ".tar"). */
export function gunzippedName(name: string): string {
  const base = name.split('/').pop() ?? name;
  if (/\.tgz$/i.test(base)) return `${base.slice(0, -4)}.tar`;
  if (/\.gz$/i.test(base) && base.length > 3) return base.slice(0, -3);
  return base === '' ? 'unnamed' : base;
}

/** inspectGzipStream - the one member of the gzip that `bytes` yields; throws a Refusal. */
export async function inspectGzipStream(run: Inspection, bytes: AsyncIterable<Uint8Array>, gzPath: readonly string[], level: number, name: string): Promise<void> {
  let fed = 0;
  const counted = (async function* () {
    for await (const chunk of bytes) {
      fed += chunk.length;
      yield chunk;
    }
  })();
  const source = Readable.from(counted, { objectMode: false, highWaterMark: 1 });
  const gunzip = zlib.createGunzip({ chunkSize: INFLATE_CHUNK_BYTES });
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  const member = gunzippedName(name);
  const path = [...gzPath, member];
  try {
    await inspectMember(run, { path, name: member, level, unwrapped: true, compressed: () => gunzip.bytesWritten }, gunzip);
    if (gunzip.bytesWritten !== fed) throw new Refusal(gzPath, `${fed - gunzip.bytesWritten} bytes after the end of the gzip data`);
  } finally {
    source.unpipe();
    source.destroy();
    gunzip.destroy();
  }
}
