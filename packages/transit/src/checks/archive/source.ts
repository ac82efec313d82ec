/*
 * NAME
 *   source - streams over a borrowed descriptor, read with positional reads
 *
 * SYNOPSIS
 *   import { rangeStream, concatHead } from './source.js';
 *
 *   rangeStream(fd, start, end): Readable        bytes [start, end) of fd
 *   concatHead(head, rest): AsyncIterable         head, then what rest still yields
 *                                                 (rest is not closed: its owner does that)
 *
 * DESCRIPTION
 *   rangeStream() reads READ_CHUNK_BYTES at a time with pread (fs.read at
 *   a position), so it never moves the descriptor's offset and several may
 *   read one descriptor at once, as the checks do (read.ts). A file that
 *   ends before `end` is an error on the stream. The descriptor is never
 *   closed here. Each chunk is a fresh buffer: consumers may keep it.
 */
import { read } from 'node:fs';
import { Readable } from 'node:stream';
import { READ_CHUNK_BYTES } from './limits.js';

/** rangeStream - a Readable of fd's bytes [start, end), read positionally. */
export function rangeStream(fd: number, start: number, end: number): Readable {
  let position = start;
  return new Readable({
    highWaterMark: READ_CHUNK_BYTES,
    read() {
      if (position >= end) {
        this.push(null);
        return;
      }
      const want = Math.min(READ_CHUNK_BYTES, end - position);
      const buf = Buffer.allocUnsafe(want);
      read(fd, buf, 0, want, position, (err, n) => {
        if (this.destroyed) return;
        if (err) return void this.destroy(err);
        if (n === 0) return void this.destroy(new Error(`file ended at byte ${position}, before byte ${end}`));
        position += n;
        this.push(n === want ? buf : buf.subarray(0, n));
      });
    },
  });
}

/** concatHead - an iterable of `head` (when not empty) followed by the rest of an iterator. */
export function concatHead(head: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      if (head.length > 0) yield head;
      for (;;) {
        const r = await rest.next();
        if (r.done) return;
        yield r.value;
      }
    },
  };
}
