// forward: ingress sends each spool entry to transit in a record encoded under the configured
// limits (wireLimits), the same transit decodes with. A spooled file over 4 GiB with
// limits.maxFileBytes above it is sent, its size carried as a 64-bit integer; an entry no record
// can carry is held for an operator at once, never retried, and leaves room for the next pickup.
// The connection to transit is a fake that records what would go on the wire.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { parseConfig, wireLimits, type Config, type Connection } from '@sluice/core';
import { decodeIngressTransfer } from '@sluice/protocol';
import { Forwarder } from './forward.js';
import { Spool, type SpoolMeta } from './spool.js';

const GiB = 1024 ** 3;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

let root: string;
let spool: Spool;
let lines: Record<string, unknown>[];

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-forward-'));
  fs.mkdirSync(path.join(root, 'spool'), { mode: 0o700 });
  spool = new Spool(path.join(root, 'spool'));
  lines = [];
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const log = () => pino({ level: 'debug', base: { stage: 'ingress' } }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });

/** config - ingress's configuration with these limits; a short retry delay, so a retry loop would show quickly. */
const config = (limits: Partial<Config['limits']>): Config => parseConfig({ limits, ingress: { retryDelayMs: 20, ackTimeoutMs: 5_000 } });

/** FakeTransit - a connection that keeps every record sent on it and the size of the descriptor that came with it. */
class FakeConnection {
  readonly peer = { pid: 1, uid: 2, gid: 3 };
  readonly sent: { record: Uint8Array; fdSize: number; fdMode: number }[] = [];
  send(record: Uint8Array, fd = -1): Promise<void> {
    const st = fs.fstatSync(fd);
    this.sent.push({ record, fdSize: st.size, fdMode: st.mode });
    return Promise.resolve();
  }
}

/** spooled - a committed spool entry of `size` bytes (a sparse file: the size costs no disk). */
async function spooled(id: string, size: number, name = `${id}.bin`): Promise<SpoolMeta> {
  const tmp = spool.tmpPath(id);
  fs.writeFileSync(tmp, '', { mode: 0o600 });
  fs.truncateSync(tmp, size);
  const meta: SpoolMeta = {
    id,
    name,
    rawName: Buffer.from(name).toString('base64'),
    size,
    // The digest of the sparse file is not computed here: the forwarder only carries it.
    sha256: EMPTY_SHA256,
    receivedAt: new Date().toISOString(),
    refusal: '',
    source: null,
  };
  const fd = fs.openSync(tmp, 'r');
  try {
    await spool.commit(meta, tmp, fd);
  } finally {
    fs.closeSync(fd);
  }
  return meta;
}

const until = async (pred: () => boolean, what: string): Promise<void> => {
  const end = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; log: ${JSON.stringify(lines.slice(-5))}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('Forwarder: records under the configured limits', () => {
  it('a spooled file of 5 GiB + 1 byte with limits.maxFileBytes 6 GiB is sent with its exact size, and forgotten on DELIVERED', async () => {
    const cfg = config({ maxFileBytes: 6 * GiB });
    const conn = new FakeConnection();
    let room = 0;
    const fwd = new Forwarder({ cfg, log: log(), spool, connection: () => conn as unknown as Connection, onDelivered: () => room++, onForgotten: () => {} });
    const size = 5 * GiB + 1;
    const meta = await spooled('big-1', size);
    fwd.enqueue(meta);
    await until(() => conn.sent.length === 1, 'the record');
    // What transit decodes, with the limits it is configured with.
    const t = decodeIngressTransfer(conn.sent[0]!.record, wireLimits(cfg));
    expect(t).toMatchObject({ id: 'big-1', name: 'big-1.bin', size, refusal: '' });
    expect(Buffer.from(t.sha256).toString('hex')).toBe(EMPTY_SHA256);
    expect(conn.sent[0]!.fdSize).toBe(size);
    expect(lines.filter((l) => l.event === 'retry')).toEqual([]);

    fwd.onAck(conn as unknown as Connection, { id: 'big-1', sha256: t.sha256, status: 'delivered', reason: 'accepted' });
    await until(() => fwd.size === 0, 'the entry forgotten');
    expect(room).toBe(1);
    expect(fs.existsSync(spool.dataPath('big-1'))).toBe(false);
    expect(lines.some((l) => l.event === 'done' && l.id === 'big-1')).toBe(true);
  });

  it('an entry no record can carry is held at once with one `held` event, never retried, and leaves room for the next pickup', async () => {
    // Spooled under a larger limit; the limit was lowered before it was sent.
    const cfg = config({ maxFileBytes: 4 * GiB });
    const conn = new FakeConnection();
    let room = 0;
    const fwd = new Forwarder({ cfg, log: log(), spool, connection: () => conn as unknown as Connection, onDelivered: () => room++, onForgotten: () => {} });
    // As many as ingress's queue holds (4 x maxInFlight): unsendable entries used to fill it and stop every pickup.
    const n = cfg.ingress.maxInFlight * 4;
    for (let i = 0; i < n; i++) fwd.enqueue(await spooled(`over-${i}`, 4 * GiB + 1));
    await until(() => fwd.size === 0, 'every entry out of the queue');
    expect(room).toBe(n);
    expect(conn.sent).toEqual([]);
    const held = lines.filter((l) => l.event === 'held');
    expect(held).toHaveLength(n);
    for (const l of held) {
      expect(l).toMatchObject({ level: 50, reason: 'unencodable' });
      expect(String(l.detail)).toContain('policy allows at most 4294967296');
    }
    for (let i = 0; i < n; i++) {
      expect(fs.existsSync(path.join(spool.heldDir, `over-${i}.data`))).toBe(true);
      expect(fs.readFileSync(path.join(spool.heldDir, `over-${i}.reason`), 'utf8')).toMatch(/^unencodable: /);
    }
    // Not sent again later: the retry delay passes many times over and nothing more happens.
    await new Promise((r) => setTimeout(r, cfg.ingress.retryDelayMs * 10));
    expect(conn.sent).toEqual([]);
    expect(lines.filter((l) => l.event === 'retry')).toEqual([]);
    expect(lines.filter((l) => l.event === 'held')).toHaveLength(n);

    // And an honest entry after them goes through.
    fwd.enqueue(await spooled('honest', 12));
    await until(() => conn.sent.length === 1, 'the honest record');
    expect(decodeIngressTransfer(conn.sent[0]!.record, wireLimits(cfg)).id).toBe('honest');
  });
});
