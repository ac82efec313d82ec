// The shared receive path (receive.ts) owns the descriptor that came with a
// record: on every refusal path, and after a handler, it is closed exactly
// once, by receiveRecord and nobody else. Closes are counted through the
// injected close function and checked against /proc/self/fd.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { encodeAck, encodeIngressTransfer, type Ack, type IngressTransfer } from '@sluice/protocol';
import type { Connection } from './channel.js';
import { countOpenFds } from './fds.js';
import { Refused } from './errors.js';
import { defaults } from './config.js';
import { HOPS, receiveRecord, wireLimits, type Hop, type ReceiveOptions } from './receive.js';

const LIMITS = wireLimits(defaults());

let dir: string;
let file: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-receive-path-'));
  file = path.join(dir, 'f.txt');
  fs.writeFileSync(file, 'hello\n');
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const transfer = Buffer.from(
  encodeIngressTransfer({ id: 'rp-1', name: 'f.txt', size: 6, sha256: new Uint8Array(32), receivedAt: '2026-12-05T10:00:00.000Z', refusal: '' }, LIMITS),
);
const ack = Buffer.from(encodeAck({ id: 'rp-1', sha256: new Uint8Array(32), status: 'delivered', reason: '' }, LIMITS));
const garbage = Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]);

/** A connection as the receive path sees it: a peer to name in the log. */
const conn = { peer: { pid: 1, uid: 2, gid: 3 } } as unknown as Connection;

interface Run {
  closes: Map<number, number>;
  lines: Record<string, unknown>[];
  answered: string[];
  handled: number;
}

/** run - one record through receiveRecord, with closes counted; returns what happened. */
async function run<T extends { id: string }>(
  hop: Hop<T>,
  data: Buffer,
  fd: number,
  extra: Partial<ReceiveOptions<T>> = {},
): Promise<Run> {
  const r: Run = { closes: new Map(), lines: [], answered: [], handled: 0 };
  const log = pino({ level: 'debug' }, { write: (s: string) => r.lines.push(JSON.parse(s)) });
  await receiveRecord(conn, data, fd, {
    hop,
    limits: LIMITS,
    log,
    handle: () => {
      r.handled++;
    },
    answer: (_c, _rec, refusal) => r.answered.push(refusal.reason),
    close: (n) => {
      r.closes.set(n, (r.closes.get(n) ?? 0) + 1);
      fs.closeSync(n);
    },
    ...extra,
  });
  return r;
}

const refusedReasons = (r: Run) => r.lines.filter((l) => l.event === 'record-refused').map((l) => l.reason);

describe('the receive path closes every descriptor exactly once', () => {
  const cases: Array<[string, () => Promise<Run>, { reason: string | RegExp | null; answered: boolean; handled: number }]> = [
    ['refused before decoding (admit says no)', () => run(HOPS.ingressToTransit, transfer, open(), { admit: () => false }), { reason: 'overloaded', answered: false, handled: 0 }],
    ['a record that does not decode', () => run(HOPS.ingressToTransit, garbage, open()), { reason: /.+/, answered: false, handled: 0 }],
    ['a record of the wrong hop (an Ack where a transfer belongs)', () => run(HOPS.ingressToTransit, ack, open()), { reason: /.+/, answered: false, handled: 0 }],
    ['an ack that carries a descriptor', () => run<Ack>(HOPS.egressAckToTransit, ack, open()), { reason: 'unexpected-descriptor', answered: true, handled: 0 }],
    [
      'the handler refuses (Refused)',
      () => run<IngressTransfer>(HOPS.ingressToTransit, transfer, open(), { handle: () => Promise.reject(new Refused('fd-writable', 'descriptor is read-write')) }),
      { reason: 'fd-writable', answered: true, handled: 0 },
    ],
    [
      'the handler refuses after an await',
      () =>
        run<IngressTransfer>(HOPS.ingressToTransit, transfer, open(), {
          handle: async () => {
            await new Promise((r) => setImmediate(r));
            throw new Refused('grew', 'file has more bytes');
          },
        }),
      { reason: 'grew', answered: true, handled: 0 },
    ],
    [
      'the handler throws something else (a bug)',
      () =>
        run<IngressTransfer>(HOPS.ingressToTransit, transfer, open(), {
          handle: () => {
            throw new TypeError('bug');
          },
        }),
      { reason: null, answered: false, handled: 0 },
    ],
    ['the handler accepts', () => run(HOPS.ingressToTransit, transfer, open()), { reason: null, answered: false, handled: 1 }],
  ];

  it.each(cases)('%s', async (_label, go, want) => {
    const before = countOpenFds();
    const r = await go();
    expect(countOpenFds()).toBe(before);
    expect([...r.closes.values()]).toEqual([1]);
    const reasons = refusedReasons(r);
    if (want.reason === null) expect(reasons).toEqual([]);
    else {
      expect(reasons).toHaveLength(1);
      expect(String(reasons[0])).toMatch(want.reason);
    }
    expect(r.answered).toEqual(want.answered ? reasons : []);
    expect(r.handled).toBe(want.handled);
    if (want.reason === null && want.handled === 0) expect(r.lines.map((l) => l.event)).toEqual(['handler-error']);
  });

  it('a transfer without a descriptor is refused and answered, and nothing is closed', async () => {
    const before = countOpenFds();
    const r = await run(HOPS.ingressToTransit, transfer, -1);
    expect(countOpenFds()).toBe(before);
    expect(r.closes.size).toBe(0);
    expect(refusedReasons(r)).toEqual(['no-descriptor']);
    expect(r.answered).toEqual(['no-descriptor']);
  });

  it('the handler may read the descriptor until it settles, and never has to close it', async () => {
    const seen: string[] = [];
    let closes = 0;
    const fd = open();
    const log = pino({ level: 'silent' });
    await receiveRecord(conn, transfer, fd, {
      hop: HOPS.ingressToTransit,
      limits: LIMITS,
      log,
      handle: async (_rec, got) => {
        await new Promise((r) => setImmediate(r));
        seen.push(fs.readFileSync(`/proc/self/fd/${got}`, 'utf8'), `closes ${closes}`);
      },
      close: (n) => {
        closes++;
        fs.closeSync(n);
      },
    });
    expect(seen).toEqual(['hello\n', 'closes 0']);
    expect(closes).toBe(1);
  });

  it('a close that fails is logged, not thrown', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const fd = open();
    await expect(
      receiveRecord(conn, garbage, fd, {
        hop: HOPS.ingressToTransit,
        limits: LIMITS,
        log,
        handle: () => {},
        close: () => {
          throw Object.assign(new Error('EIO'), { code: 'EIO' });
        },
      }),
    ).resolves.toBeUndefined();
    fs.closeSync(fd);
    expect(lines.map((l) => l.event)).toEqual(['record-refused', 'handler-error']);
  });
});

/** open - a fresh read-only descriptor of the test file. */
function open(): number {
  return fs.openSync(file, 'r');
}
