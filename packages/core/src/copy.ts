/*
 * NAME
 *   copy - check a received descriptor, then take a private, sealed copy of it
 *
 * SYNOPSIS
 *   const facts = inspectDescriptor(fd, { maxBytes, claimedSize });
 *   const { size, sha256 } = await copyAndHash(fd, dst, facts.size);
 *   const { fd: ro, size, sha256 } = await sealedCopy(fd, { maxBytes, claimedSize });
 *   const { fd: ro, place } = await privateCopy(fd, policy, { place: async (size) => 'memory' or { dir } });
 *
 * DESCRIPTION
 *   Invariants 1 (own copy) and 2 (check the descriptor before a byte is
 *   copied) of the design, in their order; sealedCopy does all four steps:
 *
 *   1. Check (inspectDescriptor), reading no byte: not O_PATH, access mode
 *      O_RDONLY, not O_DIRECT, fstat says regular file, size within the
 *      policy and equal to the sender's claim. (That it came alone in its
 *      record, native.recv has checked.) A writable descriptor is
 *      refused even when every claim is true: whoever holds it can change
 *      the bytes under us, and we could write into the sender's file.
 *   2. Copy the accepted size while hashing (copyAndHash): exactly `size`
 *      bytes, by positional reads, hashed with node:crypto as they are
 *      written, so the digest describes the copy whatever the sender does
 *      meanwhile. A file that ends sooner is refused ('shrank'), one with
 *      a byte past `size` too ('grew'): never a half-old, half-new copy.
 *   3. Seal: the copy is a memfd sealed with F_SEAL_WRITE|F_SEAL_GROW|
 *      F_SEAL_SHRINK|F_SEAL_SEAL; nobody can change it afterwards, not even
 *      through /proc/PID/fd/N reopened for writing.
 *   4. Hand back a new read-only descriptor of the sealed copy.
 *
 *   privateCopy is the same four steps with a choice of place, asked of
 *   the caller once the descriptor passed step 1 and its size is known
 *   (a stage bounds its copies' bytes: transit's budget.ts): a sealed
 *   memfd ('memory'), or a nameless 0600 file in the stage's own 0700
 *   directory ({ dir }, _unlinked.ts), which cannot be sealed; steps 2 and
 *   4 are the same for both. sealedCopy is privateCopy in memory. In step
 *   2 it looks for a byte past `size` with the copy's last read (which
 *   asks for that block too) and, once the copy is written, with fstat.
 *   (copyAndHash alone reads that block again after the copy instead.)
 *
 *   How the bytes move (read-ahead, pooled aligned buffers, O_DIRECT
 *   destinations) is _pipeline.ts, _copy-buffers.ts, _unlinked.ts and direct.ts.
 *
 * SECURITY
 *   A received descriptor shares its open file description with the
 *   sender: offset and status flags are the sender's as much as ours.
 *   Nothing here changes them: reads are positional (the offset never
 *   moves), and nothing calls fcntl(F_SETFL) on a descriptor we did not
 *   open: a flag we set would be seen, and felt, by the sender. The sender
 *   may still set O_DIRECT after the check; every read is of whole blocks
 *   into aligned memory, valid either way (_pipeline.ts).
 *
 * OWNERSHIP
 *   None of these functions close the descriptor they are given; the caller
 *   that owns it closes it in `finally`. privateCopy owns the memfd or file
 *   it creates and closes it on every path; the caller owns what `place`
 *   reserved, and releases it once it has closed the returned descriptor.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { native, constants as C, ALL_SEALS } from '@sluice/native';
import { pipelinedCopy } from './_pipeline.js';
import { openUnlinked } from './_unlinked.js';
import { Refused } from './errors.js';
import { fileKind } from './fds.js';

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

export interface CopyOptions {
  /** Checked between chunks; an aborted copy throws the signal's reason. */
  signal?: AbortSignal | undefined;
  /** dst was opened with O_DIRECT (direct.ts): whole-block writes, truncated to `size` after. */
  dstDirect?: boolean | undefined;
  /**
   * The caller checks the source's size itself once the copy has returned (ingress: fstat under a read lease),
   * so growth is looked for by the last read rather than by a read after the copy (_pipeline.ts).
   */
  endCheckedAfter?: boolean | undefined;
}

export interface CopyResult {
  size: number;
  /** SHA-256 of exactly the bytes written to the destination. */
  sha256: Buffer;
}

export interface SealedCopy extends CopyResult {
  /** A read-only descriptor of the sealed memfd; the caller owns it. */
  fd: number;
}

/** Where a private copy goes: a sealed memfd, or a nameless file in this directory (the stage's own, 0700). */
export type CopyPlace = 'memory' | { dir: string };

export interface PrivateCopy extends CopyResult {
  /** A read-only descriptor of the copy; the caller owns it. */
  fd: number;
  /** Where the copy is: a sealed memfd, or a nameless 0600 file on disk. */
  place: 'memory' | 'disk';
}

export interface PrivateCopyOptions {
  signal?: AbortSignal | undefined;
  /** Chooses the place for a checked descriptor of `size` bytes (default: memory); may wait for room. */
  place?: ((size: number) => CopyPlace | Promise<CopyPlace>) | undefined;
}

/** inspectDescriptor - refuse a descriptor that is not a read-only regular file of acceptable size; reads no byte. */
export function inspectDescriptor(fd: number, policy: DescriptorPolicy): DescriptorFacts {
  const flags = native.fdFlags(fd);
  if ((flags & C.O_PATH) === C.O_PATH) throw new Refused('fd-o-path', 'descriptor is O_PATH (no access to contents)');
  // Our reads would work (whole aligned blocks), but no stage sends such a descriptor: the sender is off protocol.
  if ((flags & fs.constants.O_DIRECT) !== 0) throw new Refused('fd-o-direct', 'descriptor is O_DIRECT (reads would need aligned buffers)');
  const mode = flags & C.O_ACCMODE;
  if (mode !== C.O_RDONLY) {
    throw new Refused('fd-writable', `descriptor is ${mode === C.O_WRONLY ? 'write-only' : 'read-write'}; only O_RDONLY is accepted`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw new Refused('fd-not-regular', `descriptor is a ${fileKind(st)}, not a regular file`);
  if (st.size > policy.maxBytes) throw new Refused('too-large', `file is ${st.size} bytes, over the limit of ${policy.maxBytes}`);
  if (policy.claimedSize !== undefined && st.size !== policy.claimedSize) {
    throw new Refused('size-mismatch', `file is ${st.size} bytes but ${policy.claimedSize} were claimed`);
  }
  return { size: st.size, dev: st.dev, ino: st.ino };
}

/** copyAndHash - copy exactly `size` bytes from src to dst by positional reads, hashing what is written; refuse growth and shrinkage. */
export async function copyAndHash(src: number, dst: number, size: number, opts: CopyOptions = {}): Promise<CopyResult> {
  const hash = createHash('sha256');
  const { copied, more } = await pipelinedCopy(src, dst, size, (bytes) => hash.update(bytes), opts);
  if (copied < size) throw new Refused('shrank', `file ended at ${copied} bytes, ${size} were expected`);
  if (more) throw new Refused('grew', `file has more than the ${size} bytes expected`);
  return { size, sha256: hash.digest() };
}

/** sealedCopy - check a received descriptor, copy it into a memfd while hashing, seal it, hand back a read-only descriptor. */
export async function sealedCopy(src: number, policy: DescriptorPolicy, opts: { signal?: AbortSignal | undefined } = {}): Promise<SealedCopy> {
  const { fd, size, sha256 } = await privateCopy(src, policy, { signal: opts.signal });
  return { fd, size, sha256 };
}

/** privateCopy - check a received descriptor, ask where its copy goes, copy while hashing (and seal a memfd), hand back a read-only descriptor. */
export async function privateCopy(src: number, policy: DescriptorPolicy, opts: PrivateCopyOptions = {}): Promise<PrivateCopy> {
  const facts = inspectDescriptor(src, policy);
  const place = opts.place ? await opts.place(facts.size) : 'memory';
  const dst = place === 'memory' ? { fd: native.memfdCreate('sluice-copy'), direct: false } : openUnlinked(place.dir, facts.size);
  try {
    if (place === 'memory' && facts.size > 0) fs.ftruncateSync(dst.fd, facts.size);
    // The last read looks for a byte past the size (endCheckedAfter), and fstat after the copy for
    // a file that grew since: what a read of that block after the copy would see, without the read.
    const copied = await copyAndHash(src, dst.fd, facts.size, { signal: opts.signal, dstDirect: dst.direct, endCheckedAfter: true });
    if (fs.fstatSync(src).size > facts.size) throw new Refused('grew', `file has more than the ${facts.size} bytes expected`);
    if (place === 'memory') native.addSeals(dst.fd, ALL_SEALS);
    const ro = fs.openSync(`/proc/self/fd/${dst.fd}`, fs.constants.O_RDONLY); // libuv adds O_CLOEXEC
    return { fd: ro, ...copied, place: place === 'memory' ? 'memory' : 'disk' };
  } finally {
    fs.closeSync(dst.fd);
  }
}
