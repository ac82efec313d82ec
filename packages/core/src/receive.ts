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
 *   against the claimed size before sealedCopy reads a byte.
 *
 *   The received descriptor is closed on every path before this returns or
 *   throws: the caller never holds the sender's descriptor. The returned
 *   copy.fd is a read-only descriptor of a sealed memfd, owned by the caller.
 *
 *   Comparing copy.sha256 with the claim is left to the caller, because a
 *   mismatch after a complete copy is a verdict to report (the bytes are
 *   known), not a refusal of the record.
 */
import * as fs from 'node:fs';
import { ProtocolError } from '@sluice/protocol';
import { Refused } from './errors.js';
import { sealedCopy, type SealedCopy } from './copy.js';

/** RefusedTransfer - a refusal, with the record when it decoded (so the sender can be answered by id). */
export class RefusedTransfer<T> extends Refused {
  readonly record: T | undefined;
  constructor(reason: string, message: string, record: T | undefined) {
    super(reason, message);
    this.name = 'RefusedTransfer';
    this.record = record;
  }
}

export interface ReceivePolicy {
  maxBytes: number;
  signal?: AbortSignal;
}

/** receiveTransfer - decode, check the descriptor, copy and seal; always closes `fd`. */
export async function receiveTransfer<T extends { size: number }>(
  data: Uint8Array,
  fd: number,
  decode: (buf: Uint8Array) => T,
  policy: ReceivePolicy,
): Promise<{ rec: T; copy: SealedCopy }> {
  let rec: T | undefined;
  try {
    try {
      rec = decode(data);
    } catch (err) {
      if (err instanceof ProtocolError) throw new RefusedTransfer<T>(err.reason, err.message, undefined);
      throw err;
    }
    if (fd < 0) throw new RefusedTransfer('no-descriptor', 'a transfer record must carry exactly one descriptor', rec);
    const copy = await sealedCopy(fd, { maxBytes: policy.maxBytes, claimedSize: rec.size }, { signal: policy.signal });
    return { rec, copy };
  } catch (err) {
    if (err instanceof Refused && !(err instanceof RefusedTransfer)) throw new RefusedTransfer(err.reason, err.message, rec);
    throw err;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}
