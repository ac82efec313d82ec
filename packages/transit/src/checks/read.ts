/*
 * NAME
 *   read - bounded positional reads of transit's sealed copy
 *
 * SYNOPSIS
 *   import { preadFully, readChunks } from './read.js';
 *
 *   preadFully(fd, buf, length, position): Promise<number>
 *   readChunks(fd, size, chunkBytes, signal): AsyncGenerator<Uint8Array>
 *
 * DESCRIPTION
 *   Checks share one descriptor and may run at the same time, so nothing
 *   here uses or moves the file offset: every read is pread(2) at an explicit
 *   position (fs.read with a position). Nothing reads more than one chunk
 *   into the JS heap; files can be many GiB.
 *
 *   preadFully() fills buf[0, length) from position, looping over short
 *   reads, and returns how many bytes it got (fewer only at end of file).
 *
 *   readChunks() walks [0, size) in chunks of chunkBytes. It yields views of
 *   ONE reused buffer: the consumer must be done with a chunk before asking
 *   for the next. It checks the AbortSignal before every read, and throws
 *   when the file ends before `size` (the copy is sealed, so that would be a
 *   bug or a lie, never a race). Bytes past `size` are never read.
 *
 * SECURITY
 *   The descriptor is borrowed, never closed here.
 */

import { read } from 'node:fs';

/** pread - one positional read (fs.read with a position never moves the offset). */
function pread(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** preadFully - fill buf[0, length) from position; fewer bytes only at end of file. */
export async function preadFully(fd: number, buf: Uint8Array, length: number, position: number): Promise<number> {
  if (length > buf.length) throw new RangeError(`preadFully: length ${length} exceeds buffer of ${buf.length}`);
  let got = 0;
  while (got < length) {
    const n = await pread(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** readChunks - the bytes [0, size) of fd in chunks (views of one reused buffer). */
export async function* readChunks(
  fd: number,
  size: number,
  chunkBytes: number,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  const buf = new Uint8Array(Math.max(1, Math.min(chunkBytes, size)));
  let position = 0;
  while (position < size) {
    signal.throwIfAborted();
    const want = Math.min(buf.length, size - position);
    const got = await preadFully(fd, buf, want, position);
    if (got < want) {
      throw new Error(`file ended at byte ${position + got}, before its recorded size of ${size} bytes`);
    }
    position += got;
    yield buf.subarray(0, got);
  }
}
