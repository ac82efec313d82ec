/*
 * NAME
 *   forward - hand transit's own copy to egress and bring back egress's answer
 *
 * SYNOPSIS
 *   const { status, reason } = await forward({ egress, egressAcks, cfg }, rec, copy, verdict, results, tlog);
 *
 * DESCRIPTION
 *   Sends one TransitTransfer with a read-only descriptor of the sealed copy
 *   (never the descriptor ingress sent: invariant 3), the verdict and every
 *   check's result, and waits at most transit.ackTimeoutMs for egress's
 *   ack. The answer is what transit tells ingress:
 *
 *     no record can be made        REFUSED (`unencodable`): the record is a pure
 *                                  function of the transfer and the configured
 *                                  limits, so a resend cannot help; ingress
 *                                  holds the file for an operator
 *     egress not connected         RETRY  (`retry`, egress-unavailable)
 *     no ack in time, or a drop    RETRY  (`retry`)
 *     an ack for other bytes       RETRY  (`ack-unexpected`)
 *     egress's ack                 relayed unchanged (`acked`)
 *
 *   A send that fails throws: transit-failed, and RETRY (transfer.ts).
 *   Egress's acks arrive through the receive path (main.ts) into
 *   egressAcks, matched by id.
 */
import { describe, escapeForLog, station, wireLimits, type Config, type Connector, type Logger, type PendingAcks, type PrivateCopy } from '@sluice/core';
import { encodeTransitTransfer, isProtocolError, truncateUtf8, BOUNDS, type Ack, type AckStatus, type IngressTransfer, type Verdict } from '@sluice/protocol';
import type { CheckResult } from './checks/index.js';

export interface Downstream {
  cfg: Config;
  egress: Connector;
  egressAcks: PendingAcks<Ack>;
}

/** forward - one transfer to egress; resolves with the answer for ingress. */
export async function forward(
  d: Downstream,
  rec: IngressTransfer,
  copy: PrivateCopy,
  verdict: Verdict,
  results: readonly CheckResult[],
  tlog: Logger,
): Promise<{ status: AckStatus; reason: string }> {
  let record: Uint8Array;
  try {
    record = transitRecord(d, rec, copy, verdict, results);
  } catch (err) {
    const detail = describe(err);
    tlog.error({ event: 'unencodable', reason: isProtocolError(err) ? err.reason : 'error', detail }, 'no record to egress can carry this transfer; ingress is told REFUSED');
    return { status: 'refused', reason: `unencodable: ${detail}` };
  }
  const down = d.egress.connection;
  if (!down) {
    tlog.warn({ event: 'retry', reason: 'egress-unavailable' }, 'egress is not connected; ingress will resend');
    station.file('retry');
    return { status: 'retry', reason: 'egress unavailable' };
  }
  const waitAck = d.egressAcks.wait(rec.id, d.cfg.transit.ackTimeoutMs);
  try {
    await down.send(record, copy.fd);
  } catch (err) {
    d.egressAcks.settle(rec.id, { id: rec.id, sha256: copy.sha256, status: 'retry', reason: 'send failed' });
    throw err;
  }
  tlog.info({ event: 'forwarded', verdict }, 'forwarded to egress');
  let ack: Ack;
  try {
    ack = await waitAck;
  } catch (err) {
    tlog.warn({ event: 'retry', reason: describe(err) }, 'no ack from egress; ingress will resend');
    station.file('retry');
    return { status: 'retry', reason: 'no ack from egress' };
  }
  if (!Buffer.from(ack.sha256).equals(copy.sha256)) {
    tlog.error({ event: 'ack-unexpected', reason: 'egress acked a different digest' }, 'egress acked other bytes');
    return { status: 'retry', reason: 'egress acked a different digest' };
  }
  tlog.info({ event: 'acked', status: ack.status, reason: escapeForLog(ack.reason) }, `egress: ${ack.status}`);
  return { status: ack.status, reason: ack.reason };
}

/** transitRecord - the TransitTransfer for one checked transfer, under the configured limits; throws when none can carry it. */
function transitRecord(d: Downstream, rec: IngressTransfer, copy: PrivateCopy, verdict: Verdict, results: readonly CheckResult[]): Uint8Array {
  return encodeTransitTransfer(
    {
      id: rec.id,
      name: rec.name,
      size: copy.size,
      sha256: copy.sha256,
      receivedAt: rec.receivedAt,
      verdict,
      checks: results.map((r) => ({
        name: r.name,
        outcome: r.outcome,
        reason: truncateUtf8(r.reason, BOUNDS.checkReasonMaxBytes),
        engine: truncateUtf8(r.engine, BOUNDS.engineMaxBytes),
      })),
      checkedAt: new Date().toISOString(),
      // Ingress's word, passed on as it came: transit never names an uploader of its own.
      ...(rec.uploader ? { uploader: rec.uploader } : {}),
    },
    wireLimits(d.cfg),
  );
}
