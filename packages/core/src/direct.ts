/*
 * NAME
 *   direct - copies into files a stage opened itself with O_DIRECT
 *
 * SYNOPSIS
 *   const out = size >= DIRECT_MIN_BYTES ? open(path, flags | O_DIRECT) : open(path, flags);
 *   const { size, sha256 } = await copyAndHashDirect(src, out, size);
 *
 * DESCRIPTION
 *   Large copies into a file (ingress's spool, egress's outbox) are written
 *   with O_DIRECT: the disk takes the bytes straight from an aligned
 *   buffer instead of a copy of every byte in the page cache first, and no
 *   page cache is filled with a file the next stage reads once
 *   (docs/performance.md). Smaller files stay in the page cache, where a
 *   reader finds them without waiting for the disk.
 *
 *   copyAndHashDirect is copyAndHash (copy.ts), same checks and refusals,
 *   for a destination opened with O_DIRECT: every write starts at a
 *   multiple of the chunk and is of whole blocks; the last is padded with
 *   zeros and the file is truncated to `size` after. The hash covers
 *   exactly the `size` bytes read, never the padding. The caller fsyncs,
 *   as after any write.
 *
 * SECURITY
 *   O_DIRECT is only ever set by opening a file of our own with it. It is
 *   never set on a received descriptor: its open file description, and so
 *   its status flags, are shared with the sender (copy.ts, SECURITY).
 *
 * BUGS
 *   A filesystem that refuses O_DIRECT (EINVAL at open: ramfs, some
 *   others) is the caller's to notice; it then copies with copyAndHash.
 *   (A private copy's unlinked file notices it itself: _unlinked.ts.)
 */
import { copyAndHash, type CopyOptions, type CopyResult } from './copy.js';

export { DIRECT_MIN_BYTES } from './_copy-buffers.js';

/** copyAndHashDirect - copyAndHash into a destination the caller opened with O_DIRECT. */
export function copyAndHashDirect(src: number, dst: number, size: number, opts: CopyOptions = {}): Promise<CopyResult> {
  return copyAndHash(src, dst, size, { ...opts, dstDirect: true });
}
