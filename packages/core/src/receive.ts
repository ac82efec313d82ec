/*
 * NAME
 *   receive - one transfer record in, one sealed private copy out
 *
 * SYNOPSIS
 *   const { rec, copy } = await receiveTransfer(data, fd, decodeIngressTransfer, policy);
 *
 * DESCRIPTION
 *   The whole of invariant 2 for a receiving stage, in order: the record
 *   must decode strictly (ProtocolError -> RefusedTransfer with its reason), it must
 *   have come with exactly one descriptor (the native layer already refused
 *   records with more), and the descriptor must pass inspectDescriptor
 *   against the claimed size before privateCopy reads a byte. Where the copy
 *   goes is policy.place's to say, given the checked size and the record
 *   (default: a sealed memfd).
 *
 *   The received descriptor is closed on every path before this returns or
 *   throws: the caller never holds the sender's descriptor. The returned
 *   copy.fd is a read-only descriptor of the private copy (copy.place says
 *   where it is), owned by the caller, as is whatever policy.place reserved.
 *
 *   Comparing copy.sha256 with the claim is left to the caller, because a
 *   mismatch after a complete copy is a verdict to report (the bytes are
 *   known), not a refusal of the record.
 */
import * as fs from 'node:fs';
import { ProtocolError } from '@sluice/protocol';
import { Refused } from './errors.js';
import { privateCopy, type CopyPlace, type PrivateCopy } from './copy.js';

/** RefusedTransfer - a refusal, with the record when it decoded (so the sender can be answered by id). */
export class RefusedTransfer<T> extends Refused {
  readonly record: T | undefined;
  constructor(reason: string, message: string, record: T | undefined) {
    super(reason, message);
    this.name = 'RefusedTransfer';
    this.record = record;
  }
}

export interface ReceivePolicy<T = unknown> {
  maxBytes: number;
  signal?: AbortSignal;
  /** Where the copy of this checked descriptor goes (default: memory); may wait for room, or throw. */
  place?: (size: number, rec: T) => CopyPlace | Promise<CopyPlace>;
}

/** receiveTransfer - decode, check the descriptor, take the private copy; always closes `fd`. */
export async function receiveTransfer<T extends { size: number }>(
  data: Uint8Array,
  fd: number,
  decode: (buf: Uint8Array) => T,
  policy: ReceivePolicy<T>,
): Promise<{ rec: T; copy: PrivateCopy }> {
  let rec: T | undefined;
  try {
    try {
      rec = decode(data);
    } catch (err) {
      if (err instanceof ProtocolError) throw new RefusedTransfer<T>(err.reason, err.message, undefined);
      throw err;
    }
    if (fd < 0) throw new RefusedTransfer('no-descriptor', 'a transfer record must carry exactly one descriptor', rec);
    const decoded = rec;
    const place = policy.place ? (size: number) => policy.place!(size, decoded) : undefined;
    const copy = await privateCopy(fd, { maxBytes: policy.maxBytes, claimedSize: rec.size }, { signal: policy.signal, place });
    return { rec, copy };
  } catch (err) {
    if (err instanceof Refused && !(err instanceof RefusedTransfer)) throw new RefusedTransfer(err.reason, err.message, rec);
    throw err;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
