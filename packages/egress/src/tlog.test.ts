// tlog: the transparency log egress appends to. Batches share a head; every answer's inclusion
// proof verifies against its head; what a crash leaves (partial record, partial head line, leaves
// without a head, kill -9 at any instant) is recovered without changing a published byte; a log
// that someone edited stops egress.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  auditLog,
  canonicalBytes,
  generateKeys,
  leafHash,
  REPORT_FORMAT,
  rootBytes,
  signTreeHead,
  verifyInclusion,
  verifyTreeHead,
  writeKeyFiles,
  LOG_FILES,
  type ReportBody,
  type TreeHeadBody,
} from '@sluice/report';
import { CHECKPOINT_BYTES, TransparencyLog, type TlogOptions } from './tlog.js';
import { headsOf, leavesOf } from '../../../test/support/log-files.js';

const keys = generateKeys();
let dir: string;
beforeEach(() => {
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-tlog-')), 'log');
});
afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

const events: Record<string, unknown>[] = [];
const log = {
  info: (o: Record<string, unknown>) => events.push(o),
  warn: (o: Record<string, unknown>) => events.push(o),
  error: (o: Record<string, unknown>) => events.push(o),
} as unknown as TlogOptions['log'];

let signed = 0;
const sign = async (body: TreeHeadBody) => {
  signed++;
  return signTreeHead(body, keys.secret);
};
const open = (over: Partial<TlogOptions> = {}) =>
  TransparencyLog.open({ dir, station: 'test-station', publicKey: keys.public, batchMs: 5, batchMax: 256, sign, log, ...over });

/** leaf - the signed body bytes of a distinct valid report. */
function leaf(i: number): Uint8Array {
  const body: ReportBody = {
    format: REPORT_FORMAT,
    station: 'test-station',
    software: 'sluice 0.1.0',
    key: keys.public.keyId,
    transfer: `t-${i}`,
    name: { original: `file-${i}.txt`, stored: `file-${i}.txt` },
    size: 3,
    sha256: 'ab'.repeat(32),
    verdict: 'accepted',
    reason: '',
    checks: [],
    times: { received: '2026-12-05T10:00:00Z', checked: '2026-12-05T10:00:01Z', reported: '2026-12-05T10:00:02Z' },
  };
  return canonicalBytes(body);
}

describe('appending', () => {
  it('a burst shares tree heads, and every answer proves its leaf under a head signed by the key', async () => {
    const t = open();
    signed = 0;
    const answers = await Promise.all(Array.from({ length: 600 }, (_, i) => t.append(leaf(i))));
    await t.close();
    expect(answers.map((a) => a.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 600 }, (_, i) => i));
    for (const [i, a] of answers.entries()) {
      expect(verifyTreeHead(a.head, keys.public)).toBeNull();
      expect(verifyInclusion(leafHash(leaf(i)), a.index, a.head.size, a.proof, rootBytes(a.head))).toBe(true);
    }
    expect(signed).toBeGreaterThanOrEqual(3); // 600 leaves, at most 256 under one head
    expect(signed).toBeLessThan(600 / 10);
    const audit = auditLog(dir, keys.public);
    expect(audit).toEqual({ ok: true, leaves: 600, heads: signed, unpublished: 0 });
  });

  it('logs a leaf as it was when append() was called: a caller changing its buffer later changes neither the leaf nor its proof', async () => {
    const t = open({ batchMs: 20 });
    const mine = leaf(7);
    const pending = t.append(mine);
    mine.fill(0x41); // before the batch is flushed
    const a = await pending;
    await t.close();
    expect(leavesOf(dir)).toEqual([Buffer.from(leaf(7))]);
    expect(verifyInclusion(leafHash(leaf(7)), a.index, a.head.size, a.proof, rootBytes(a.head))).toBe(true);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 1 });
  });

  it('hands every report of a batch the one tree head, frozen: none can change what another carries', async () => {
    const t = open({ batchMs: 20 });
    const answers = await Promise.all([0, 1, 2].map((i) => t.append(leaf(i))));
    await t.close();
    expect(answers[1]!.head).toBe(answers[0]!.head);
    expect(answers[2]!.head).toBe(answers[0]!.head);
    expect(Object.isFrozen(answers[0]!.head) && Object.isFrozen(answers[0]!.head.signature)).toBe(true);
    expect(headsOf(dir)).toEqual([answers[0]!.head]);
  });

  it('appendSigned answers once the head is signed and written, with one `durable` for the batch that resolves once it is flushed', async () => {
    const t = open({ batchMs: 20 });
    const answers = await Promise.all([0, 1, 2].map((i) => t.appendSigned(leaf(i))));
    // The head line is in `heads` when the batch is answered: written before its flush, never before its leaves.
    expect(headsOf(dir)).toEqual([answers[0]!.inclusion.head]);
    expect(leavesOf(dir)).toEqual([0, 1, 2].map((i) => Buffer.from(leaf(i))));
    expect(answers[1]!.durable).toBe(answers[0]!.durable);
    expect(answers[2]!.durable).toBe(answers[0]!.durable);
    await expect(answers[0]!.durable).resolves.toBeUndefined();
    for (const [i, a] of answers.entries()) {
      expect(a.inclusion.index).toBe(i);
      expect(verifyInclusion(leafHash(leaf(i)), i, a.inclusion.head.size, a.inclusion.proof, rootBytes(a.inclusion.head))).toBe(true);
    }
    // append() is appendSigned and its flush: the same answer, once durable.
    const later = await t.append(leaf(3));
    await t.close();
    expect(later.index).toBe(3);
    expect(headsOf(dir).at(-1)).toEqual(later.head);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 4, heads: 2 });
  });

  it('a reopened log goes on from where it stopped, consistent with its old heads', async () => {
    let t = open();
    await Promise.all([0, 1, 2].map((i) => t.append(leaf(i))));
    const before = t.head!;
    await t.close();
    t = open();
    expect(t.size).toBe(3);
    const a = await t.append(leaf(3));
    await t.close();
    expect(a.index).toBe(3);
    expect(a.head.size).toBe(4);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 4, heads: 2 });
    expect(headsOf(dir)[0]).toEqual(before);
  });

  it('a failed signature fails its batch only; the leaves it wrote are published by the next head', async () => {
    let fail = true;
    const t = open({
      sign: async (b) => {
        if (fail) throw new Error('signer down');
        return signTreeHead(b, keys.secret);
      },
    });
    await expect(t.append(leaf(0))).rejects.toThrow(/signer down/);
    fail = false;
    const a = await t.append(leaf(1));
    await t.close();
    expect(a).toMatchObject({ index: 1 });
    expect(a.head.size).toBe(2);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 2, heads: 1, unpublished: 0 });
    expect(events.some((e) => e.event === 'tlog-flush-failed')).toBe(true);
  });

  it('a batch timer that fires after a running flush took its leaves does not stop later batches', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const t = open({
      batchMs: 200,
      sign: async (b) => {
        if (calls++ === 0) await gate; // the first head waits until b is queued with its own timer
        return signTreeHead(b, keys.secret);
      },
    });
    const a = t.append(leaf(0));
    await new Promise((r) => setTimeout(r, 300)); // a's timer fired; its flush is waiting in sign
    const b = t.append(leaf(1)); // queued during the flush: its timer is set
    release();
    await Promise.all([a, b]); // the running drain took b before its timer fired
    await new Promise((r) => setTimeout(r, 300)); // b's timer fires meanwhile, on an empty queue
    const c = await t.append(leaf(2)); // a wedged log never answers: the test times out
    await t.close();
    expect(c.index).toBe(2);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 3 });
  }, 10_000);

  it('refuses a head signed by another key before anyone hears of it', async () => {
    const other = generateKeys();
    const t = open({ sign: async (b) => signTreeHead({ ...b, key: other.public.keyId }, other.secret) });
    await expect(t.append(leaf(0))).rejects.toThrow(/is not the one asked for/);
    await t.close();
    expect(headsOf(dir)).toEqual([]);
  });
});

describe('recovery', () => {
  it('cuts off a partial leaf record and a partial head line, nothing else', async () => {
    const t = open();
    await t.append(leaf(0));
    await t.close();
    const leaves = path.join(dir, LOG_FILES.leaves);
    const heads = path.join(dir, LOG_FILES.heads);
    const whole = { leaves: fs.readFileSync(leaves), heads: fs.readFileSync(heads) };
    fs.appendFileSync(leaves, Buffer.from([0, 0, 1, 0, 7, 7]));
    fs.appendFileSync(heads, '{"format":"sluice-tree');
    expect(auditLog(dir, keys.public).ok).toBe(false);
    const r = open();
    await r.close();
    expect(fs.readFileSync(leaves).equals(whole.leaves)).toBe(true);
    expect(fs.readFileSync(heads).equals(whole.heads)).toBe(true);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 1, heads: 1 });
  });

  it('publishes leaves that were written before a crash but have no head', async () => {
    const t = open();
    await t.append(leaf(0));
    await t.close();
    const { encodeLeafRecord } = await import('@sluice/report');
    fs.appendFileSync(path.join(dir, LOG_FILES.leaves), Buffer.concat([encodeLeafRecord(leaf(1)), encodeLeafRecord(leaf(2))]));
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, unpublished: 2 });
    const r = open();
    await r.close();
    expect(r.head!.size).toBe(3);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: 3, heads: 2, unpublished: 0 });
  });

  it('refuses to start on a log whose leaves no longer match its last head (read from the first leaf without the cached edge)', async () => {
    const t = open();
    await Promise.all([0, 1, 2].map((i) => t.append(leaf(i))));
    await t.close();
    const leaves = path.join(dir, LOG_FILES.leaves);
    const bytes = fs.readFileSync(leaves);
    bytes[bytes.length - 5] ^= 0x01;
    fs.writeFileSync(leaves, bytes);
    // The cached edge proves where it ends by the last record's hash: a changed last leaf is read
    // back, the cache is dropped, and the rebuilt tree does not have the last head's root.
    expect(() => open()).toThrow(/do not have the root of the last tree head \(size 3\)/);
    fs.rmSync(path.join(dir, LOG_FILES.frontier));
    expect(() => open()).toThrow(/do not have the root of the last tree head \(size 3\)/);
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: false, problem: expect.stringMatching(/leaf 2 .*not a report body|root .* is not the root/) });
    fs.writeFileSync(leaves, bytes.subarray(0, bytes.length - 60));
    expect(() => open()).toThrow(/bytes after leaf 1 are not leaf records|covers 3 leaves, the log holds 2/);
  });
});

describe('the cached edge of the tree', () => {
  const frontierFile = () => path.join(dir, LOG_FILES.frontier);

  it('is written at close (and every CHECKPOINT_BYTES of leaves), holds one hash per level, and a start reads only the leaves after it', async () => {
    const t = open({ batchMax: 4 });
    await Promise.all(Array.from({ length: 11 }, (_, i) => t.append(leaf(i))));
    await t.close();
    const cached = JSON.parse(fs.readFileSync(frontierFile(), 'utf8')) as { size: number; leavesEnd: number; hashes: string[] };
    expect(cached).toMatchObject({ size: 11, leavesEnd: fs.statSync(path.join(dir, LOG_FILES.leaves)).size });
    expect(cached.hashes).toHaveLength(3); // 11 = 8 + 2 + 1
    // An early published leaf, changed behind egress's back: a start from the cache does not read it...
    const leaves = path.join(dir, LOG_FILES.leaves);
    const bytes = fs.readFileSync(leaves);
    bytes[20] ^= 0x01;
    fs.writeFileSync(leaves, bytes);
    const again = open();
    expect(again.size).toBe(11);
    await again.close();
    // ...and `sluice log verify` (auditLog) names it.
    expect(auditLog(dir, keys.public)).toMatchObject({ ok: false, problem: expect.stringMatching(/^leaf 0 /) });
  });

  it('is rewritten while egress runs, once CHECKPOINT_BYTES of leaves were written since: a crash replays no more', async () => {
    const t = open();
    let written = 0;
    let n = 0;
    while (written <= CHECKPOINT_BYTES) {
      const batch = Array.from({ length: 256 }, () => leaf(n++));
      written += batch.reduce((sum, l) => sum + l.length + 4, 0);
      await Promise.all(batch.map((l) => t.append(l)));
    }
    // No close: what a kill -9 would find.
    const cached = JSON.parse(fs.readFileSync(frontierFile(), 'utf8')) as { size: number; leavesEnd: number };
    expect(cached.leavesEnd).toBeGreaterThanOrEqual(CHECKPOINT_BYTES);
    expect(fs.statSync(path.join(dir, LOG_FILES.leaves)).size - cached.leavesEnd).toBeLessThan(CHECKPOINT_BYTES);
    await t.close();
  }, 60_000);

  it('a stale, torn or wrong cache only costs a rebuild from the first leaf', async () => {
    let t = open();
    await Promise.all([0, 1, 2].map((i) => t.append(leaf(i))));
    await t.close();
    const stale = fs.readFileSync(frontierFile());
    t = open();
    await Promise.all([3, 4].map((i) => t.append(leaf(i))));
    await t.close();
    const check = async (n: number) => {
      t = open();
      expect(t.size).toBe(n);
      const a = await t.append(leaf(n));
      await t.close();
      expect(a).toMatchObject({ index: n, head: { size: n + 1 } });
      expect(verifyInclusion(leafHash(leaf(n)), n, n + 1, a.proof, rootBytes(a.head))).toBe(true);
      expect(auditLog(dir, keys.public)).toMatchObject({ ok: true, leaves: n + 1, unpublished: 0 });
    };
    fs.writeFileSync(frontierFile(), stale); // an older head's edge: the leaves after it are replayed
    await check(5);
    fs.writeFileSync(frontierFile(), '{"size":6,"leavesE'); // torn
    await check(6);
    const wrong = JSON.parse(fs.readFileSync(frontierFile(), 'utf8')) as { hashes: string[] };
    wrong.hashes[0] = 'ab'.repeat(32);
    fs.writeFileSync(frontierFile(), JSON.stringify(wrong));
    events.length = 0;
    await check(7);
    expect(events).toContainEqual(expect.objectContaining({ event: 'tlog-frontier-rebuilt' }));
    const shifted = JSON.parse(fs.readFileSync(frontierFile(), 'utf8')) as { leavesEnd: number };
    shifted.leavesEnd -= 7; // the right edge, but an offset inside a record: not the last record's end
    fs.writeFileSync(frontierFile(), JSON.stringify(shifted));
    await check(8); // never cuts a published record
    fs.rmSync(frontierFile());
    await check(9);
  });
});

describe('crash', () => {
  // A child appends in bursts and prints "index:i" once an append resolved (what egress acks); it
  // is killed with SIGKILL at a random instant. The log must then recover and verify, and keep
  // every acked leaf at its index.
  const egressDist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'tlog.js');
  const reportDist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'report', 'dist', 'index.js');
  const child = `
    const { loadSecretKey, signTreeHead, canonicalBytes } = await import(${JSON.stringify(reportDist)});
    const { TransparencyLog } = await import(${JSON.stringify(egressDist)});
    const [dir, keyPath, template] = process.argv.slice(2);
    const secret = loadSecretKey(keyPath);
    const log = { info() {}, warn() {}, error() {} };
    const t = TransparencyLog.open({ dir, station: 'test-station', publicKey: secret.publicKey, batchMs: 2, batchMax: 8,
      sign: async (b) => signTreeHead(b, secret), log });
    let n = t.size;
    for (;;) {
      const burst = [];
      for (let k = 0; k < 5; k++) {
        const i = n++;
        const b = JSON.parse(template);
        b.transfer = 't-' + i;
        b.name = { original: 'file-' + i + '.txt', stored: 'file-' + i + '.txt' };
        burst.push(t.append(canonicalBytes(b)).then((a) => process.stdout.write(a.index + ':' + i + '\\n'), () => {}));
      }
      await Promise.all(burst);
    }
  `;

  it('kill -9 during batching leaves a log that verifies and keeps every acked leaf', async () => {
    const work = path.dirname(dir);
    const keyDir = path.join(work, 'keys');
    fs.mkdirSync(keyDir, { mode: 0o700 });
    const files = writeKeyFiles(keyDir, { keys });
    const first = Buffer.from(leaf(0)).toString('utf8');
    const template = first.slice(first.indexOf('\0') + 1);
    const script = path.join(work, 'child.mjs');
    fs.writeFileSync(script, child);
    let acks = 0;
    for (let round = 0; round < 4; round++) {
      const acked = await new Promise<string>((resolve) => {
        const p = spawn(process.execPath, [script, dir, files.secretPath, template], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        // Killed at a random instant once it is appending (its start-up time varies with the load).
        let killer: NodeJS.Timeout | undefined;
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          killer ??= setTimeout(() => p.kill('SIGKILL'), Math.floor(Math.random() * 400));
        });
        const late = setTimeout(() => p.kill('SIGKILL'), 30_000);
        p.on('exit', () => {
          clearTimeout(late);
          resolve(out);
        });
      });
      const t = open(); // recovery
      const size = t.size;
      await t.close();
      const audit = auditLog(dir, keys.public);
      expect(audit, JSON.stringify(audit)).toMatchObject({ ok: true, unpublished: 0 });
      const leaves = leavesOf(dir);
      for (const l of acked.split('\n').filter((x) => /^\d+:\d+$/.test(x))) {
        const [index, i] = l.split(':').map(Number) as [number, number];
        expect(index).toBeLessThan(size);
        expect(leafHash(leaves[index]!).equals(leafHash(leaf(i)))).toBe(true);
        acks++;
      }
    }
    expect(acks).toBeGreaterThan(0); // the child got far enough to ack something
  }, 60_000);
});
