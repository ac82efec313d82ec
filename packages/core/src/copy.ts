/*
 * NAME
 *   copy - check a received descriptor, then take a private copy of it
 *
 * SYNOPSIS
 *   const st = inspectDescriptor(fd, { maxBytes, claimedSize });
 *   const { size, sha256 } = await copyAndHash(fd, dst, st.size);
 *   const sealed = await sealedCopy(fd, { maxBytes, claimedSize });
 *
 * DESCRIPTION
 *   Invariant 1 (own copy) and 2 (check the descriptor before a byte is
 *   copied) of ../../../shared/design.md live here.
 *
 *   inspectDescriptor looks at a descriptor without reading a byte: it must
 *   not be O_PATH, its access mode must be O_RDONLY, fstat must say regular
 *   file, and its size must fit the policy and equal what the sender
 *   claimed. A writable descriptor is refused even when every claim is
 *   true: whoever holds it can change the bytes under us, and a writable
 *   descriptor in our hands would let us write into the sender's file.
 *
 *   copyAndHash copies exactly `size` bytes with positional reads (the
 *   sender's shared file offset never moves: it is a back channel) into a
 *   destination descriptor, hashing with node:crypto as it goes, through one
 *   bounded buffer. The bytes hashed are the bytes written, so the digest
 *   always describes the copy, whatever the sender does meanwhile. A file
 *   that turns out shorter than `size`, or has a byte beyond it, is refused
 *   (Refused 'shrank' / 'grew'): a sender that changes its file during the
 *   copy gets a rejection, never a half-old half-new file with a matching
 *   claim.
 *
 *   sealedCopy puts that copy into a memfd, seals it with
 *   F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL and returns a
 *   read-only descriptor of it: nobody, not even a process that reopens
 *   /proc/PID/fd/N for writing, can change it afterwards.
 *
 * OWNERSHIP
 *   None of these functions close the descriptor they are given; the caller
 *   that owns it closes it in `finally`. sealedCopy owns the memfd it creates
 *   and closes it on every error path.
 *
 * BUGS
 *   Reads and writes go through libuv's threadpool one chunk at a time, so
 *   the event loop is never blocked for more than one chunk's hashing (2-3
 *   ms for 4 MiB); a chunk is hashed while the next is read and the one
 *   before is written, so a copy holds up to three chunk buffers and two
 *   threadpool threads.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { native, constants as C, ALL_SEALS } from '@sluice/native';
import { errnoCode, Refused } from './errors.js';

/** read - positional read through the threadpool; resolves with the byte count. */
const read = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/** write - positional write through the threadpool; resolves with the byte count. */
const write = (fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> =>
  new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));

/**
 * The copy buffer: large enough to amortise threadpool round trips, small enough to be irrelevant to the heap.
 * 4 MiB, not 1 MiB (issue 9, docs/performance.md): the three stages then used 12-23% less CPU for the
 * same 2 GiB and the large-file figure rose 13-25%; a synchronous loop shows no difference between
 * 64 KiB and 4 MiB, so what the larger chunk saves is round trips, not memory bandwidth.
 */
export const COPY_CHUNK = 4 << 20;

export interface DescriptorPolicy {
  /** The largest file this stage accepts. */
  maxBytes: number;
  /** The size the sender claimed, if it made a claim. */
  claimedSize?: number | undefined;
}

export interface DescriptorFacts {
  size: number;
  dev: number;
  ino: number;
}

/** fileKind - a short name for what fstat says a descriptor is. */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSymbolicLink()) return 'symlink';
  return 'unknown';
}

/** inspectDescriptor - refuse a descriptor that is not a read-only regular file of acceptable size; reads no byte. */
export function inspectDescriptor(fd: number, policy: DescriptorPolicy): DescriptorFacts {
  const flags = native.fdFlags(fd);
  if ((flags & C.O_PATH) === C.O_PATH) {
    throw new Refused('fd-o-path', 'descriptor is O_PATH (no access to contents)');
  }
  // The sender set O_DIRECT on the open file we share. Our reads are aligned and would work, but no
  // stage sends such a descriptor: whoever did is not following the protocol (issue 8, test/hostile).
  if ((flags & fs.constants.O_DIRECT) !== 0) {
    throw new Refused('fd-o-direct', 'descriptor is O_DIRECT (reads would need aligned buffers)');
  }
  const mode = flags & C.O_ACCMODE;
  if (mode !== C.O_RDONLY) {
    throw new Refused('fd-writable', `descriptor is ${mode === C.O_WRONLY ? 'write-only' : 'read-write'}; only O_RDONLY is accepted`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    throw new Refused('fd-not-regular', `descriptor is a ${fileKind(st)}, not a regular file`);
  }
  if (st.size > policy.maxBytes) {
    throw new Refused('too-large', `file is ${st.size} bytes, over the limit of ${policy.maxBytes}`);
  }
  if (policy.claimedSize !== undefined && st.size !== policy.claimedSize) {
    throw new Refused('size-mismatch', `file is ${st.size} bytes but ${policy.claimedSize} were claimed`);
  }
  return { size: st.size, dev: st.dev, ino: st.ino };
}

export interface CopyResult {
  size: number;
  /** SHA-256 of exactly the bytes written to the destination. */
  sha256: Buffer;
}

export interface CopyOptions {
  /** Checked between chunks; an aborted copy throws the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** copyAndHash - copy exactly `size` bytes from src to dst by positional I/O, hashing what is written. */
export function copyAndHash(src: number, dst: number, size: number, opts: CopyOptions = {}): Promise<CopyResult> {
  return pipelinedCopy(src, dst, size, opts, { directWrite: false, alignedReads: false });
}

/** The alignment O_DIRECT needs of offsets, lengths and memory here (ext4, 4 KiB blocks). */
export const DIRECT_ALIGN = 4096;

/**
 * Files of this size and more go to and from the disk with O_DIRECT: ingress's spool copy, transit's
 * read of it, egress's outbox copy (docs/performance.md, changes 5 and 9). Smaller files stay in the
 * page cache, where a reader finds them without waiting for the disk.
 */
export const DIRECT_MIN_BYTES = 1 << 20;

/**
 * copyAndHashDirect - copyAndHash into a destination opened with O_DIRECT.
 *
 * The kernel writes to the disk straight from an aligned buffer instead of copying every byte into
 * the page cache first, which is what a buffered write into a file costs (issue 9: about half a
 * stage's CPU per byte). Every write starts at a multiple of the chunk and, but for the last, is a
 * whole chunk; the last is padded with zeros to a block and the file is then truncated to `size`.
 * The hash covers exactly the `size` bytes read, never the padding. The caller fsyncs, as after
 * any write.
 */
export function copyAndHashDirect(src: number, dst: number, size: number, opts: CopyOptions = {}): Promise<CopyResult> {
  return pipelinedCopy(src, dst, size, opts, { directWrite: true, alignedReads: true });
}

interface CopyMode {
  /** dst is O_DIRECT: write whole blocks from aligned memory, pad the last, truncate after. */
  directWrite: boolean;
  /**
   * Read in whole blocks into aligned memory, so that src may be O_DIRECT (or become it, or stop
   * being it, at any moment: the reads are valid either way). The block past `size` that a read
   * may bring in is never hashed or written; a byte in it means the file grew.
   */
  alignedReads: boolean;
}

/**
 * pipelinedCopy - the copy loop: while chunk k is hashed, chunk k+1 is being read and chunk k-1
 * written, both on the threadpool, into three buffers that take turns. A direct read or write waits
 * for the device with the core idle; this way the wait overlaps the hashing. Each chunk is read
 * until full, so a short read never misaligns a direct write. The function never returns, nor
 * throws, with a read or a write still in flight: the caller closes src and dst after it.
 */
async function pipelinedCopy(src: number, dst: number, size: number, opts: CopyOptions, mode: CopyMode): Promise<CopyResult> {
  const chunk = Math.min(COPY_CHUNK, Math.ceil(Math.max(size, 1) / DIRECT_ALIGN) * DIRECT_ALIGN);
  const bufs = Array.from({ length: Math.max(1, Math.min(3, Math.ceil(size / chunk))) }, () => takeBuffer(chunk));
  try {
    return await copyThrough(bufs, src, dst, size, opts, mode, chunk);
  } finally {
    giveBack(bufs);
  }
}

/**
 * Chunk buffers, aligned for O_DIRECT, kept for the next copy. Memory a process touches for the first
 * time costs more here than copying into it (a VM that hands freed memory back to its host: about
 * 1.2 s per GiB; docs/performance.md, change 10), and a 4 MiB buffer per copy and per chunk in
 * flight added up to a quarter of each stage's CPU for 8 MiB files. A buffer only ever holds bytes
 * of this process's own copies; every use reads into it before hashing or writing what it read.
 */
const spare: Buffer[] = [];
/** At most this many spare buffers are kept (32 MiB): enough for the copies a stage runs at once. */
const SPARE_MAX = 8;
/** Copies of a chunk smaller than this get a buffer of their own size, not a pooled one. */
const POOLED_MIN = 256 << 10;

/** takeBuffer - an aligned buffer of at least `bytes` (<= COPY_CHUNK): a spare one when the copy is not small. */
function takeBuffer(bytes: number): Buffer {
  if (bytes < POOLED_MIN) return Buffer.from(native.alignedBuffer(Math.ceil(bytes / DIRECT_ALIGN) * DIRECT_ALIGN));
  return spare.pop() ?? Buffer.from(native.alignedBuffer(COPY_CHUNK));
}

/** giveBack - keep a copy's pooled buffers for the next one; no read or write may still use them. */
function giveBack(bufs: Buffer[]): void {
  for (const b of bufs) if (b.length === COPY_CHUNK && spare.length < SPARE_MAX) spare.push(b);
}

/** copyThrough - pipelinedCopy's loop, over buffers it owns until it settles. */
async function copyThrough(bufs: Buffer[], src: number, dst: number, size: number, opts: CopyOptions, mode: CopyMode, chunk: number): Promise<CopyResult> {
  const hash = createHash('sha256');
  const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;
  const readAlign = mode.alignedReads ? DIRECT_ALIGN : 1;

  /** readChunk - fill `buf` with the file's bytes from `pos`, the chunk's worth or up to `size`. */
  const readChunk = async (buf: Buffer, pos: number): Promise<number> => {
    const rest = Math.min(chunk, size - pos);
    const want = roundUp(rest, readAlign); // <= chunk: size - pos rounds up to at most a chunk
    let n = 0;
    while (n < rest) {
      const got = await read(src, buf, n, want - n, pos + n);
      n += got;
      // A read that stops short of a block boundary has met the end of the file.
      if (got === 0 || (n < rest && n % readAlign !== 0)) {
        throw new Refused('shrank', `file ended at ${pos + n} bytes, ${size} were expected`);
      }
    }
    if (n > rest) throw new Refused('grew', `file has more than the ${size} bytes expected`);
    return n;
  };
  const writeAll = async (buf: Buffer, len: number, at: number): Promise<void> => {
    let done = 0;
    while (done < len) done += await write(dst, buf, done, len - done, at + done);
  };
  /** quiet - a promise awaited later; until then its failure must not count as unhandled. */
  const quiet = <T>(p: Promise<T>): Promise<T> => {
    p.catch(() => {});
    return p;
  };

  let reading: Promise<number> | null = size > 0 ? quiet(readChunk(bufs[0]!, 0)) : null;
  let writing: Promise<void> | null = null;
  let pos = 0;
  let k = 0;
  try {
    while (reading) {
      const buf = bufs[k]!;
      const n = await reading;
      reading = null;
      opts.signal?.throwIfAborted();
      // The buffer after this one last held chunk k-2, whose write finished before k-1's began.
      if (pos + n < size) reading = quiet(readChunk(bufs[(k + 1) % bufs.length]!, pos + n));
      hash.update(buf.subarray(0, n));
      const len = mode.directWrite ? roundUp(n, DIRECT_ALIGN) : n;
      if (len > n) buf.fill(0, n, len);
      if (writing) await writing;
      writing = quiet(writeAll(buf, len, pos));
      pos += n;
      k = (k + 1) % bufs.length;
    }
    if (writing) await writing;
  } finally {
    await Promise.allSettled([reading, writing]);
  }
  // A byte past the end tells a file that grew during the copy. Aligned: read the block that holds
  // offset `size` (or the one after it) and expect exactly the bytes of it that belong to the file.
  const from = Math.floor(size / readAlign) * readAlign;
  const extra = await read(src, bufs[0]!, 0, readAlign, from);
  if (extra > size - from) {
    throw new Refused('grew', `file has more than the ${size} bytes expected`);
  }
  if (mode.directWrite && size % DIRECT_ALIGN !== 0) fs.ftruncateSync(dst, size);
  return { size, sha256: hash.digest() };
}

export interface SealedCopy extends CopyResult {
  /** A read-only descriptor of the sealed memfd; the caller owns it. */
  fd: number;
}

/**
 * sealedCopy - inspect a received descriptor, copy it into a memfd, seal it, return a read-only descriptor.
 *
 * A file of DIRECT_MIN_BYTES and more is read with O_DIRECT (set on the open file we were sent, after
 * inspectDescriptor, which refuses one the sender set): the disk puts the bytes straight into our
 * aligned buffer, and no page cache is filled for a file we read once (docs/performance.md, change
 * 9). Every read, of any file, is of whole blocks into aligned memory, valid with or without
 * O_DIRECT, so a sender that clears or sets the flag during the copy changes only its speed. A
 * filesystem that refuses O_DIRECT gets buffered reads.
 */
export async function sealedCopy(src: number, policy: DescriptorPolicy, opts: CopyOptions = {}): Promise<SealedCopy> {
  const facts = inspectDescriptor(src, policy);
  if (facts.size >= DIRECT_MIN_BYTES) trySetDirect(src);
  const memfd = native.memfdCreate('sluice-copy');
  try {
    if (facts.size > 0) fs.ftruncateSync(memfd, facts.size);
    // Aligned reads whether or not we set O_DIRECT: the sender can set it on the open file we share.
    const result = await pipelinedCopy(src, memfd, facts.size, opts, { directWrite: false, alignedReads: true });
    native.addSeals(memfd, ALL_SEALS);
    const ro = fs.openSync(`/proc/self/fd/${memfd}`, fs.constants.O_RDONLY);
    return { fd: ro, ...result };
  } finally {
    fs.closeSync(memfd);
  }
}

/** trySetDirect - add O_DIRECT to an open file's flags; false where its filesystem refuses it (EINVAL). */
function trySetDirect(fd: number): boolean {
  try {
    native.setFdFlags(fd, native.fdFlags(fd) | fs.constants.O_DIRECT);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EINVAL') return false;
    throw err;
  }
}

/** readOnlyReopen - a new O_RDONLY descriptor of the same open file (e.g. of an O_TMPFILE or spool file). */
export function readOnlyReopen(fd: number): number {
  return fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_RDONLY); // libuv adds O_CLOEXEC
}

/** countOpenFds - how many descriptors this process has open (leak checks in tests and health logs). */
export function countOpenFds(): number {
  return fs.readdirSync('/proc/self/fd').length - 1; // minus the one readdir itself used
}
