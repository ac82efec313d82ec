// forward: transit hands egress a TransitTransfer encoded under the configured limits
// (wireLimits), the same egress decodes with. A sealed copy over 4 GiB with limits.maxFileBytes
// above it goes out with its size as a 64-bit integer; a transfer no record can carry is answered
// REFUSED at once (ingress holds it), never RETRY, which would bring it back for ever.
// The connection to egress is a fake that keeps what would go on the wire.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { PendingAcks, parseConfig, wireLimits, type Config, type Connector, type PrivateCopy } from '@sluice/core';
import { decodeTransitTransfer, type Ack, type IngressTransfer } from '@sluice/protocol';
import type { CheckResult } from './checks/index.js';
import { forward } from './forward.js';

const GiB = 1024 ** 3;
const SHA = Buffer.alloc(32, 7);

let root: string;
let lines: Record<string, unknown>[];
const fds: number[] = [];

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-transit-forward-'));
  lines = [];
});

afterEach(() => {
  for (const fd of fds.splice(0)) fs.closeSync(fd);
  fs.rmSync(root, { recursive: true, force: true });
});

const log = () => pino({ level: 'debug', base: { stage: 'transit' } }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });

/** copyOf - a stand-in for the sealed copy: a read-only descriptor of a sparse file of `size` bytes. */
function copyOf(size: number): PrivateCopy {
  const f = path.join(root, `copy-${size}`);
  fs.writeFileSync(f, '');
  fs.truncateSync(f, size);
  const fd = fs.openSync(f, 'r');
  fds.push(fd);
  return { fd, size, sha256: SHA } as PrivateCopy;
}

/** egressOf - a connector whose connection keeps every record sent and answers it with `answer`. */
function egressOf(acks: PendingAcks<Ack>, answer: (id: string) => Ack) {
  const sent: Uint8Array[] = [];
  const connection = {
    peer: { pid: 1, uid: 2, gid: 3 },
    send(record: Uint8Array) {
      sent.push(record);
      const id = decodeTransitTransfer(record, { maxRecordBytes: 1 << 20, maxNameBytes: 1 << 20, maxFileSize: Number.MAX_SAFE_INTEGER }).id;
      setImmediate(() => acks.settle(id, answer(id)));
      return Promise.resolve();
    },
  };
  return { sent, egress: { connection } as unknown as Connector };
}

const rec = (id: string, size: number): IngressTransfer => ({ id, name: `${id}.bin`, size, sha256: SHA, receivedAt: new Date().toISOString(), refusal: '' });

const PASS: CheckResult[] = [{ name: 'file-type', outcome: 'pass', reason: 'binary allowed', engine: 'sluice' }];

describe('transit forward: records under the configured limits', () => {
  it('a sealed copy of 5 GiB + 1 byte with limits.maxFileBytes 6 GiB reaches egress with its exact size; egress’s answer is relayed', async () => {
    const cfg: Config = parseConfig({ limits: { maxFileBytes: 6 * GiB } });
    const egressAcks = new PendingAcks<Ack>();
    const { sent, egress } = egressOf(egressAcks, (id) => ({ id, sha256: SHA, status: 'delivered', reason: 'accepted' }));
    const size = 5 * GiB + 1;
    const answer = await forward({ cfg, egress, egressAcks }, rec('big-1', size), copyOf(size), 'accepted', PASS, log());
    expect(answer).toEqual({ status: 'delivered', reason: 'accepted' });
    expect(sent).toHaveLength(1);
    // What egress decodes, with the limits it is configured with.
    expect(decodeTransitTransfer(sent[0]!, wireLimits(cfg))).toMatchObject({ id: 'big-1', size, verdict: 'accepted' });
    expect(lines.filter((l) => l.event === 'unencodable' || l.event === 'retry')).toEqual([]);
  });

  it('a transfer no record can carry is REFUSED at once with one `unencodable` event, never sent, never RETRY', async () => {
    // The smallest record cap the configuration allows for its names, and check results that do not fit in it.
    const cfg: Config = parseConfig({ limits: { maxNameBytes: 16, maxRecordBytes: 4096 } });
    const egressAcks = new PendingAcks<Ack>();
    const { sent, egress } = egressOf(egressAcks, (id) => ({ id, sha256: SHA, status: 'delivered', reason: 'accepted' }));
    const results: CheckResult[] = Array.from({ length: 8 }, (_, i) => ({ name: `check-${i}`, outcome: 'fail', reason: 'r'.repeat(1000), engine: 'e' }));
    const answer = await forward({ cfg, egress, egressAcks }, rec('wide-1', 10), copyOf(10), 'rejected', results, log());
    expect(answer.status).toBe('refused');
    expect(answer.reason).toMatch(/^unencodable: .*at most 4096/);
    expect(sent).toEqual([]);
    expect(lines.map((l) => [l.event, l.reason])).toEqual([['unencodable', 'record-too-large']]);
  });
});
