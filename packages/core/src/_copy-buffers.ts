/*
 * NAME
 *   _copy-buffers - the aligned chunk buffers a copy reads into, kept for the next copy
 *
 * SYNOPSIS
 *   const bufs = takeBuffers(chunk, count);   // chunk <= COPY_CHUNK
 *   try { ... } finally { giveBack(bufs); }
 *
 * DESCRIPTION
 *   Every buffer is DIRECT_ALIGN-aligned memory from native.alignedBuffer,
 *   so that a read or write of whole blocks is valid whether or not the
 *   descriptor is O_DIRECT. Buffers of a whole COPY_CHUNK are pooled:
 *   memory a process touches for the first time costs more here than
 *   copying into it (docs/performance.md), and a fresh chunk per copy and
 *   per chunk in flight showed up in every stage's CPU. A copy of a chunk
 *   under POOLED_MIN gets a buffer of its own size instead.
 *
 * SECURITY
 *   A buffer only ever holds bytes of this process's own copies, and every
 *   use reads into it before it hashes or writes what it read, so what a
 *   buffer held for one copy never reaches another.
 *
 * BUGS
 *   The pool is per process and unlocked: a buffer must be given back only
 *   once no read or write still uses it (_pipeline.ts guarantees that).
 */
import { native } from '@sluice/native';

/** The copy chunk: large enough to amortise threadpool round trips, small enough to be irrelevant to the heap. */
export const COPY_CHUNK = 4 << 20;

/** The alignment O_DIRECT needs of offsets, lengths and memory here (ext4, 4 KiB blocks). */
export const DIRECT_ALIGN = 4096;

/** Files of this size and more are written with O_DIRECT by the stages that copy into a file (direct.ts). */
export const DIRECT_MIN_BYTES = 1 << 20;

/** At most this many spare buffers are kept (32 MiB): enough for the copies a stage runs at once. */
const SPARE_MAX = 8;

/** Copies of a chunk smaller than this get a buffer of their own size, not a pooled one. */
const POOLED_MIN = 256 << 10;

const spare: Buffer[] = [];

/** takeBuffers - `count` aligned buffers of at least `bytes` (<= COPY_CHUNK) each; spare ones when the chunk is not small. */
export function takeBuffers(bytes: number, count: number): Buffer[] {
  return Array.from({ length: count }, () => takeBuffer(bytes));
}

/** takeBuffer - one aligned buffer of at least `bytes`: a spare one, a new chunk, or a small one of its own. */
function takeBuffer(bytes: number): Buffer {
  if (bytes < POOLED_MIN) return Buffer.from(native.alignedBuffer(Math.ceil(bytes / DIRECT_ALIGN) * DIRECT_ALIGN));
  return spare.pop() ?? Buffer.from(native.alignedBuffer(COPY_CHUNK));
}

/** giveBack - keep a copy's whole-chunk buffers for the next copy, up to SPARE_MAX; no read or write may still use them. */
export function giveBack(bufs: Buffer[]): void {
  for (const b of bufs) if (b.length === COPY_CHUNK && spare.length < SPARE_MAX) spare.push(b);
}
