/*
 * NAME
 *   receive - the one way a stage takes records from a peer
 *
 * SYNOPSIS
 *   import { HOPS, receiver, receiveRecord, sendAck, wireLimits } from '@sluice/core';
 *
 *   conn.onRecord = receiver({ hop: HOPS.ingressToTransit, limits: wireLimits(cfg), log,
 *                              handle, answer, admit });
 *   await receiveRecord(conn, data, fd, options);      // one record, as receiver() does it
 *   sendAck(conn, rec, 'delivered', reason, log, limits); // answer a transfer
 *   answer: ackRefusal(log)                            // answer a refused transfer (REFUSED / RETRY)
 *   settleAck(acks, ack, conn, log);                   // an ack to the transfer waiting for it
 *
 * DESCRIPTION
 *   HOPS is the table of what a stage accepts, like the dispatch table of
 *   OpenSSH's monitor (monitor.c): for each connection a stage reads, the one
 *   message it takes and whether a descriptor must come with it. A record
 *   carries no type tag, so a connection accepts exactly one message; any
 *   record that is not that message, strictly decoded, is refused here:
 *
 *     reason                  when
 *     overloaded              admit() said no; asked before decoding, so a
 *                             flood costs no parsing (and cannot be answered)
 *     a protocol reason       the record does not decode as the hop's message
 *                             (docs/protocol.md)
 *     no-descriptor           a transfer came without its descriptor
 *     unexpected-descriptor   an ack came with one
 *     any Refused reason      thrown by handle(): a descriptor that fails
 *                             inspectDescriptor, bytes that differ from the
 *                             claim, an overloaded or reused transfer, ...
 *
 *   Every refusal is one log line, `record-refused`, with `peer`, `reason`,
 *   `detail` and, when the record decoded, its `id`; the stage keeps
 *   serving. A refused record that decoded is answered through answer() (a
 *   transfer gets an Ack, so its sender learns by id); acks are never
 *   answered. Anything else handle() throws is a bug: `handler-error`, and
 *   the record is dropped, not the stage.
 *
 * OWNERSHIP
 *   The descriptor that came with a record belongs to receiveRecord, which
 *   closes it in one `finally`, exactly once, on every path, after handle()
 *   has settled (docs/architecture.md). handle() may read it until then and
 *   never closes it; a handler that needs the bytes for longer takes its own
 *   copy (sealedCopy) and returns.
 */
import {
  decodeAck,
  decodeIngressTransfer,
  decodeTransitTransfer,
  encodeAck,
  truncateUtf8,
  BOUNDS,
  ProtocolError,
  type Ack,
  type AckStatus,
  type IngressTransfer,
  type Limits,
  type TransitTransfer,
} from '@sluice/protocol';
import type { Connection, PendingAcks } from './channel.js';
import type { Config } from './config.js';
import { closeFd } from './durable.js';
import { Refused, describe } from './errors.js';
import type { Logger } from './log.js';

/** Hop - one row of the table: the message a stage accepts on one connection. */
export interface Hop<T> {
  /** Who sends it to whom, for documentation and messages. */
  readonly route: string;
  /** The protobuf message (packages/protocol/sluice.proto). */
  readonly message: string;
  /** 'one': a transfer, exactly one descriptor; 'none': an ack, no descriptor. */
  readonly descriptor: 'one' | 'none';
  /** The strict decoder; throws ProtocolError. */
  readonly decode: (data: Uint8Array, limits: Limits) => T;
}

/** HOPS - every record a stage accepts, from whom, and whether it carries a descriptor. */
export const HOPS: {
  readonly ingressToTransit: Hop<IngressTransfer>;
  readonly transitToEgress: Hop<TransitTransfer>;
  readonly egressAckToTransit: Hop<Ack>;
  readonly transitAckToIngress: Hop<Ack>;
} = {
  ingressToTransit: { route: 'ingress -> transit', message: 'IngressTransfer', descriptor: 'one', decode: decodeIngressTransfer },
  transitToEgress: { route: 'transit -> egress', message: 'TransitTransfer', descriptor: 'one', decode: decodeTransitTransfer },
  egressAckToTransit: { route: 'egress -> transit', message: 'Ack', descriptor: 'none', decode: decodeAck },
  transitAckToIngress: { route: 'transit -> ingress', message: 'Ack', descriptor: 'none', decode: decodeAck },
};

export interface ReceiveOptions<T extends { id: string }> {
  hop: Hop<T>;
  /** The deployment's wire limits: wireLimits(cfg), the same for decoding and for the answers. */
  limits: Limits;
  log: Logger;
  /** The work on one accepted record; `fd` (-1 on an ack hop) stays open until this settles. Throw Refused to refuse. */
  handle(rec: T, fd: number, conn: Connection): void | Promise<void>;
  /** Tell the sender that a record which decoded was refused (encoding the answer with `limits`). */
  answer?(conn: Connection, rec: T, refusal: Refused, limits: Limits): void;
  /** A bound checked before decoding: false refuses the record as `overloaded`. */
  admit?(): boolean;
  /** How the descriptor is closed (default: closeFd, on the threadpool: the last close of a memfd frees its pages). */
  close?(fd: number): void | Promise<void>;
}

/** receiver - the record handler for a connection: every record goes through receiveRecord. */
export function receiver<T extends { id: string }>(conn: Connection, opts: ReceiveOptions<T>): (data: Buffer, fd: number) => void {
  return (data, fd) => void receiveRecord(conn, data, fd, opts);
}

/** receiveRecord - decode, check the descriptor, hand over or refuse; closes `fd` exactly once. Never rejects. */
export async function receiveRecord<T extends { id: string }>(conn: Connection, data: Uint8Array, fd: number, opts: ReceiveOptions<T>): Promise<void> {
  const { hop, log } = opts;
  let rec: T | undefined;
  try {
    if (opts.admit && !opts.admit()) throw new Refused('overloaded', `too many ${hop.message} records waiting; dropped unread`);
    try {
      rec = hop.decode(data, opts.limits);
    } catch (err) {
      if (err instanceof ProtocolError) throw new Refused(err.reason, err.message);
      throw err;
    }
    if (hop.descriptor === 'one' && fd < 0) throw new Refused('no-descriptor', `${hop.message} records carry exactly one descriptor`);
    if (hop.descriptor === 'none' && fd >= 0) throw new Refused('unexpected-descriptor', `${hop.message} records carry no descriptor`);
    await opts.handle(rec, fd, conn);
  } catch (err) {
    if (err instanceof Refused) {
      (rec ? log.child({ id: rec.id }) : log)[err.level](
        { event: 'record-refused', peer: conn.peer, reason: err.reason, detail: err.message },
        `${hop.message} refused`,
      );
      if (rec) opts.answer?.(conn, rec, err, opts.limits);
    } else {
      log.error({ event: 'handler-error', peer: conn.peer, reason: describe(err) }, `${hop.message} handler failed`);
    }
  } finally {
    if (fd >= 0) await closeQuietly(fd, opts, log);
  }
}

/** closeQuietly - close the record's descriptor; a failing close is logged, never thrown. */
async function closeQuietly(fd: number, opts: { close?(fd: number): void | Promise<void> }, log: Logger): Promise<void> {
  try {
    await (opts.close ?? closeFd)(fd);
  } catch (err) {
    log.error({ event: 'handler-error', reason: describe(err) }, 'closing a received descriptor failed');
  }
}

/**
 * sendAck - answer one transfer; a lost ack is fine: the sender resends and is answered again.
 * Encoded with the deployment's limits; the configuration check makes maxRecordBytes hold the largest Ack.
 */
export function sendAck(conn: Connection, rec: { id: string; sha256: Uint8Array }, status: AckStatus, reason: string, log: Logger, limits: Limits): void {
  conn.send(encodeAck({ id: rec.id, sha256: rec.sha256, status, reason: truncateUtf8(reason, BOUNDS.ackReasonMaxBytes) }, limits)).catch((err) => {
    log.info({ event: 'ack-undelivered', reason: describe(err) }, 'could not send the ack; the sender will resend');
  });
}

/**
 * ackRefusal - answer() for a transfer hop: an Ack carrying the refusal's reason and message;
 * RETRY for `overloaded` (the same record may pass later), REFUSED for anything else.
 */
export function ackRefusal<T extends { id: string; sha256: Uint8Array }>(log: Logger): (conn: Connection, rec: T, refusal: Refused, limits: Limits) => void {
  return (conn, rec, refusal, limits) =>
    sendAck(conn, rec, refusal.reason === 'overloaded' ? 'retry' : 'refused', `${refusal.reason}: ${refusal.message}`, log.child({ id: rec.id }), limits);
}

/** settleAck - hand an ack to the transfer waiting for it; an ack nobody waits for is logged and dropped. */
export function settleAck(acks: PendingAcks<Ack>, ack: Ack, conn: Connection, log: Logger): void {
  if (!acks.settle(ack.id, ack)) {
    log.warn({ event: 'ack-unexpected', id: ack.id, peer: conn.peer, reason: 'no transfer waits for it' }, 'stray ack');
  }
}

/**
 * wireLimits - the protocol's Limits from the configuration: the one source for every encoder
 * and decoder of every stage (the protocol has no defaults of its own; docs/protocol.md).
 */
export function wireLimits(cfg: Config): Limits {
  return { maxRecordBytes: cfg.limits.maxRecordBytes, maxFileSize: cfg.limits.maxFileBytes, maxNameBytes: cfg.limits.maxNameBytes };
}
