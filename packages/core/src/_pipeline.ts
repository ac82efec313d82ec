/*
 * NAME
 *   _pipeline - the copy loop: read ahead while one chunk is hashed and the one before is written
 *
 * SYNOPSIS
 *   const { copied, more } = await pipelinedCopy(src, dst, size, (bytes) => hash.update(bytes), { signal, dstDirect });
 *
 * DESCRIPTION
 *   pipelinedCopy copies bytes [0, size) of src to the same offsets of dst
 *   and hands each chunk to `onBytes` before the very same memory is
 *   written, so what onBytes saw is what dst holds. It stops early at the
 *   end of the file (copied < size), or at the first byte it sees at or
 *   past `size` (more); after a full copy it reads the block that holds
 *   offset `size` to look for such a byte. It does not judge either case:
 *   copy.ts refuses them.
 *
 *   With `endCheckedAfter` the caller checks the file's size itself once
 *   the copy has ended (ingress: fstat's size and mtime, under a read
 *   lease), so a byte that appears after the last read cannot pass
 *   unseen. The last chunk's read then asks for the block that holds
 *   offset `size` as well, when its buffer has room (every file smaller
 *   than a chunk: buffers are a block longer than such a chunk), and no
 *   read of its own follows the copy: one threadpool round trip less per
 *   small file.
 *
 *   Reads and writes are positional (pread/pwrite on libuv's threadpool),
 *   so the file offset src may share with another process never moves.
 *   Every read is of whole DIRECT_ALIGN blocks into aligned memory: valid
 *   whether or not src is O_DIRECT, which the holder of a shared open file
 *   can set or clear at any moment. A read that stops short of a block
 *   boundary has met the end of the file.
 *
 *   While chunk k is handed to onBytes, chunk k+1 is being read and chunk
 *   k-1 written, into three buffers that take turns (_copy-buffers.ts); a
 *   wait for the device overlaps the hashing. With `dstDirect` (dst opened
 *   with O_DIRECT) every write is of whole blocks: the last is padded with
 *   zeros, never handed to onBytes, and dst is truncated to `size` after.
 *
 * OWNERSHIP
 *   pipelinedCopy never returns, nor throws, with a read or a write still in
 *   flight: its caller may close src and dst as soon as it settles. It
 *   closes neither.
 */
import * as fs from 'node:fs';
import { COPY_CHUNK, DIRECT_ALIGN, takeBuffers, giveBack } from './_copy-buffers.js';

export interface Copied {
  /** Bytes copied from offset 0; less than `size` when the file ended sooner. */
  copied: number;
  /** A byte at or past `size` was seen: the file is longer than `size`. */
  more: boolean;
}

export interface PipelineOptions {
  /** Checked between chunks; an aborted copy throws the signal's reason. */
  signal?: AbortSignal | undefined;
  /** dst was opened with O_DIRECT: write whole blocks, then truncate to `size`. */
  dstDirect?: boolean | undefined;
  /** The caller checks the file's size after the copy: the last read may look past `size` instead of a read after the copy. */
  endCheckedAfter?: boolean | undefined;
}

/** pread - positional read through the threadpool; resolves with the byte count. */
const pread = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** pwrite - positional write through the threadpool; resolves with the byte count. */
const pwrite = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** roundUp - n rounded up to a multiple of a. */
const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** quiet - a promise awaited later; until then its failure must not count as unhandled. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** pipelinedCopy - copy bytes [0, size) of src to dst, each chunk through onBytes; say where the file ended. */
export async function pipelinedCopy(src: number, dst: number, size: number, onBytes: (bytes: Buffer) => void, opts: PipelineOptions = {}): Promise<Copied> {
  const chunk = Math.min(COPY_CHUNK, roundUp(Math.max(size, 1), DIRECT_ALIGN));
  // endCheckedAfter: one block more than a chunk smaller than COPY_CHUNK, room for the block that holds offset `size`.
  const bytes = opts.endCheckedAfter ? Math.min(COPY_CHUNK, chunk + DIRECT_ALIGN) : chunk;
  const bufs = takeBuffers(bytes, Math.max(1, Math.min(3, Math.ceil(size / chunk))));
  try {
    return await copyThrough(bufs, chunk, src, dst, size, onBytes, opts);
  } finally {
    giveBack(bufs);
  }
}

/** copyThrough - pipelinedCopy's loop, over buffers it owns until it settles. */
async function copyThrough(bufs: Buffer[], chunk: number, src: number, dst: number, size: number, onBytes: (bytes: Buffer) => void, opts: PipelineOptions): Promise<Copied> {
  const want = (pos: number) => Math.min(chunk, size - pos);
  /** Whether the read of the chunk at `pos` into `buf` asks for the block that holds offset `size` too. */
  const pastEnd = (buf: Buffer, pos: number) =>
    opts.endCheckedAfter === true && pos + want(pos) === size && roundUp(want(pos) + 1, DIRECT_ALIGN) <= buf.length;
  const read = (buf: Buffer, pos: number) => quiet(fill(src, buf, pos, want(pos), pastEnd(buf, pos)));
  let reading: Promise<number> | null = size > 0 ? read(bufs[0]!, 0) : null;
  let writing: Promise<void> | null = null;
  /** The last chunk's read asked past `size` and the file ended there. */
  let endSeen = false;
  let pos = 0;
  let k = 0;
  try {
    while (reading) {
      const buf = bufs[k]!;
      const rest = want(pos);
      const n = await reading;
      reading = null;
      opts.signal?.throwIfAborted();
      if (n < rest) return { copied: pos + n, more: false };
      if (n > rest) return { copied: pos + rest, more: true };
      if (pos + n === size) endSeen = pastEnd(buf, pos);
      // The buffer after this one last held chunk k-2, whose write finished before k-1's began.
      if (pos + n < size) reading = read(bufs[(k + 1) % bufs.length]!, pos + n);
      onBytes(buf.subarray(0, n));
      const len = opts.dstDirect ? roundUp(n, DIRECT_ALIGN) : n;
      if (len > n) buf.fill(0, n, len);
      if (writing) await writing;
      writing = quiet(writeAll(dst, buf, len, pos));
      pos += n;
      k = (k + 1) % bufs.length;
    }
    if (writing) await writing;
  } finally {
    await Promise.allSettled([reading, writing]);
  }
  const more = endSeen ? false : await hasByteAt(src, size, bufs[0]!);
  if (!more && opts.dstDirect && size % DIRECT_ALIGN !== 0) fs.ftruncateSync(dst, size);
  return { copied: size, more };
}

/**
 * fill - read whole blocks from `pos` into buf until it holds `rest` bytes or the file ends; may pass `rest` by
 * less than a block, or with `past` (the block that holds byte pos + rest is asked for too) by up to a block.
 */
async function fill(src: number, buf: Buffer, pos: number, rest: number, past: boolean): Promise<number> {
  // <= the buffer: rest is at most a chunk, a chunk is whole blocks, and `past` only where the buffer has a block more.
  const want = roundUp(past ? rest + 1 : rest, DIRECT_ALIGN);
  let n = 0;
  while (n < rest) {
    const got = await pread(src, buf, n, want - n, pos + n);
    n += got;
    if (got === 0 || (n < rest && n % DIRECT_ALIGN !== 0)) break; // the end of the file
  }
  return n;
}

/** writeAll - write len bytes of buf at `at`, however many writes it takes. */
async function writeAll(dst: number, buf: Buffer, len: number, at: number): Promise<void> {
  let done = 0;
  while (done < len) done += await pwrite(dst, buf, done, len - done, at + done);
}

/** hasByteAt - whether the file has a byte at offset `at`, read as the whole block that holds it. */
async function hasByteAt(src: number, at: number, buf: Buffer): Promise<boolean> {
  const from = Math.floor(at / DIRECT_ALIGN) * DIRECT_ALIGN;
  return (await pread(src, buf, 0, DIRECT_ALIGN, from)) > at - from;
}
