// A compromised transit goes for egress's bounds, not its integrity: it
// reuses the id of a transfer in progress to get past egress.maxInFlight,
// it drives egress to its descriptor limit (EMFILE) in the middle of a
// delivery, and it makes every delivery pay for a name used 50,000 times.
// Egress is the real compiled daemon of a `sluice dev` pipeline; the
// attacker plays transit on egress.sock (harness.ts, impersonate.ts).
//
// What must hold (docs/threat-model.md): egress stays the same process and
// keeps serving (an honest transfer is delivered within 30 s), its
// descriptors stay within maxInFlight × DESCRIPTORS_PER_DELIVERY plus a
// constant, and nothing in the outbox is ever without its report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { collisionName, REPORT_SUFFIX } from '../../packages/core/src/index.js';
import { DESCRIPTORS_PER_DELIVERY } from '../../packages/egress/src/deliver.js';
import { Target, type AttackLog } from './harness.js';
import { Peer, fdCount, fdTargets, newId, steadyFdCount } from './impersonate.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The records the channel reads per wakeup (core/src/channel.ts): refused ones' descriptors are closed right after. */
const READ_BATCH = 64;
const MAX_IN_FLIGHT = 32; // egress.maxInFlight's default, which the dev pipeline keeps
const HAVE_STRACE = spawnSync('strace', ['-V']).status === 0;
const HAVE_PRLIMIT = spawnSync('prlimit', ['--version']).status === 0;

let t: Target;
beforeAll(async () => {
  t = await Target.start('egress');
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

/** loneFiles - files in the outbox without their report beside them. */
function loneFiles(): string[] {
  const names = new Set(fs.readdirSync(t.p.outbox));
  return [...names].filter((n) => !n.endsWith(REPORT_SUFFIX) && !names.has(n + REPORT_SUFFIX));
}

/** honest - one truthful transfer on a fresh connection, acked DELIVERED within 30 s (its bytes allowed in `a`). */
async function honest(tag: string, a?: AttackLog): Promise<void> {
  const bytes = Buffer.from(`honest ${tag} ${randomBytes(8).toString('hex')}\n`);
  a?.allowed.push(bytes);
  const name = `honest-${tag}.txt`;
  const fd = fs.openSync(t.file(bytes, 'honest'), 'r');
  const peer = await Peer.connect(t.sock);
  try {
    const id = newId('honest');
    await peer.send(t.record({ id, name, bytes }), fd);
    expect(await peer.ack(30_000), `${tag}: the honest transfer is acked within 30 s`).toMatchObject({ id, status: 'delivered', reason: 'accepted' });
    expect(fs.readFileSync(path.join(t.p.outbox, name))).toEqual(bytes);
    expect(fs.existsSync(path.join(t.p.outbox, name + REPORT_SUFFIX))).toBe(true);
  } finally {
    peer.close();
    fs.closeSync(fd);
  }
}

/** sampleFds - the most descriptors egress holds, sampled every few ms until stop() is called. */
function sampleFds(pid: number): { stop: () => Promise<number> } {
  let max = fdCount(pid);
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, fdCount(pid));
      await sleep(1);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return max;
    },
  };
}

describe('egress bounds against a compromised transit', () => {
  it('1,000 resends of a transfer in progress: each refused at once (id-in-flight, RETRY), descriptors within maxInFlight × DESCRIPTORS_PER_DELIVERY, the first delivered with its report, an honest transfer passes meanwhile', async () => {
    const N = 1_000;
    // The first delivery must still run while the resends arrive: 256 MiB (the dev pipeline's
    // file size limit here) takes egress a while to copy, hash and fsync.
    const big = Buffer.alloc(256 * 1024 * 1024);
    randomBytes(1024 * 1024).copy(big); // not all zeros: a real copy, not a sparse one
    const file = t.file(big, 'big');
    const id = newId('inflight');
    let refused = 0;
    let maxFds = 0;
    let baseline = 0;
    await t.attack(
      'same id in flight',
      async (a) => {
        a.allowed.push(big);
        a.ids.add(id);
        const fd = fs.openSync(file, 'r');
        a.fds.push(fd);
        const peer = await t.connect(a);
        baseline = fdCount(t.pid);
        const sampler = sampleFds(t.pid);
        const record = t.record({ id, name: 'inflight.bin', bytes: big });
        // The first, then the same record, with the same descriptor, again and again: what a
        // transit that resends without waiting would do.
        for (let i = 0; i <= N; i++) await peer.send(record, fd);
        // Meanwhile an honest transfer on its own connection passes within 30 s.
        await honest('during-resends', a);
        const acks = [];
        while (acks.length < N + 1) {
          const ack = await peer.ack(60_000);
          if (!ack) break;
          acks.push(ack);
        }
        maxFds = await sampler.stop();
        expect(acks.length).toBe(N + 1);
        expect(acks.every((k) => k.id === id)).toBe(true);
        const retry = acks.filter((k) => k.status === 'retry');
        const delivered = acks.filter((k) => k.status === 'delivered');
        expect(retry.length + delivered.length, `acks other than retry/delivered: ${JSON.stringify(acks.filter((k) => k.status !== 'retry' && k.status !== 'delivered'))}`).toBe(N + 1);
        expect(retry.every((k) => k.reason.startsWith('id-in-flight'))).toBe(true);
        expect(delivered.length, 'the first delivery and any resend after it are acked delivered').toBeGreaterThanOrEqual(1);
        refused = retry.length;
        expect(refused, 'resends that came while the first was in progress were refused').toBeGreaterThan(N / 2);
      },
      { event: 'record-refused', reason: 'id-in-flight', count: () => refused, alsoAllowed: ['duplicate-acked'] },
    );
    const bound = baseline + MAX_IN_FLIGHT * DESCRIPTORS_PER_DELIVERY + READ_BATCH;
    console.log(`same id in flight: ${refused} of ${N} resends refused (id-in-flight), the rest acked as delivered; egress held at most ${maxFds} descriptors (baseline ${baseline}, bound ${bound})`);
    expect(maxFds, `egress held ${maxFds} descriptors (baseline ${baseline}, bound ${bound})`).toBeLessThanOrEqual(bound);
    // Without the refusal every resend would wait with its descriptor: far over the bound.
    expect(N).toBeGreaterThan(bound - baseline);
    expect(fs.readFileSync(path.join(t.p.outbox, 'inflight.bin')).equals(big)).toBe(true);
    expect(fs.existsSync(path.join(t.p.outbox, `inflight.bin${REPORT_SUFFIX}`))).toBe(true);
    expect(fs.existsSync(path.join(t.p.outbox, 'inflight (2).bin'))).toBe(false); // delivered once
    expect(loneFiles()).toEqual([]);
  }, 240_000);

  it.skipIf(!HAVE_STRACE)(
    `a name already used 50,000 times: each delivery of it looks up O(log n) names, not n (stat calls counted with strace)${HAVE_STRACE ? '' : ' (skipped: strace is not installed)'}`,
    async () => {
      const USED = 50_000;
      const M = 20;
      // As a delivery leaves them: each file with its report.
      for (let n = 1; n <= USED; n++) {
        const name = n === 1 ? 'same.txt' : collisionName('same.txt', n);
        fs.writeFileSync(path.join(t.p.outbox, name), '');
        fs.writeFileSync(path.join(t.p.outbox, name + REPORT_SUFFIX), '{}');
      }
      // A name's lookups are lstat(2), which Node makes as statx(2); egress's main thread only.
      const out = path.join(t.scratch, 'strace.txt');
      const strace = spawn('strace', ['-c', '-o', out, '-e', 'trace=statx,newfstatat,lstat,stat', '-p', String(t.pid)], { stdio: 'ignore' });
      const exited = new Promise((r) => strace.once('exit', r));
      await sleep(1_000); // attached
      await t.attack(
        '50,000 uses of one name',
        async (a) => {
          const peer = await t.connect(a);
          for (let i = 0; i < M; i++) {
            const bytes = Buffer.from(`same name, file ${i}\n`);
            a.allowed.push(bytes);
            const fd = fs.openSync(t.file(bytes), 'r');
            a.fds.push(fd);
            const id = newId('same');
            a.ids.add(id);
            await peer.send(t.record({ id, name: 'same.txt', bytes }), fd);
            expect(await peer.ack(30_000)).toMatchObject({ id, status: 'delivered', reason: 'accepted' });
          }
        },
        { event: 'delivered', count: M },
      );
      strace.kill('SIGINT');
      await exited;
      const summary = fs.readFileSync(out, 'utf8');
      const calls = [...summary.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(statx|newfstatat|lstat|stat)\s*$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      expect(calls, `strace summary:\n${summary}`).toBeGreaterThan(0);
      console.log(`50,000 uses of one name: ${calls} stat calls on egress's main thread for ${M} deliveries (${(calls / M).toFixed(1)} each)`);
      // A walk over the taken names would be 2 × 50,000 per delivery; O(log n) is under a hundred.
      expect(calls / M, `stat calls per delivery:\n${summary}`).toBeLessThan(200);
      for (let n = USED + 1; n <= USED + M; n++) expect(fs.existsSync(path.join(t.p.outbox, collisionName('same.txt', n) + REPORT_SUFFIX))).toBe(true);
      expect(loneFiles()).toEqual([]);
    },
    180_000,
  );

  it.skipIf(!HAVE_PRLIMIT)(
    `egress at its descriptor limit in the middle of a delivery (EMFILE at each step): RETRY, no file in the outbox without its report, and the resends are delivered${HAVE_PRLIMIT ? '' : ' (skipped: prlimit is not installed)'}`,
    async () => {
      const pid = t.pid;
      const limits = () => fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!.split(/\s+/).slice(3, 5);
      const [soft] = limits();
      const peer = await Peer.connect(t.sock);
      const ids: { id: string; name: string; bytes: Buffer }[] = [];
      try {
        await honest('before-emfile'); // the connection above is open meanwhile
        /** lowerTo - set egress's soft limit so that exactly `free` descriptor numbers are left. */
        const lowerTo = (free: number) => {
          const open = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
          let limit = 0;
          for (let left = free; left > 0 || open.has(limit); limit++) if (!open.has(limit)) left--;
          execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:`]);
        };
        // free = 1: the received descriptor only (the copy's open fails); 2: and the copy (the
        // report's open fails: before, the file was linked then, alone); 3: enough for one delivery.
        for (const free of [1, 2, 3]) {
          const bytes = Buffer.from(`emfile with ${free} free ${randomBytes(8).toString('hex')}\n`);
          const name = `emfile-${free}.txt`;
          const id = newId(`emfile${free}`);
          ids.push({ id, name, bytes });
          const fd = fs.openSync(t.file(bytes), 'r');
          try {
            await steadyFdCount(pid);
            lowerTo(free);
            await peer.send(t.record({ id, name, bytes }), fd);
            const ack = await peer.ack(30_000);
            expect(ack?.id).toBe(id);
            if (free < 3) expect(ack, `free ${free}`).toMatchObject({ status: 'retry', reason: 'EMFILE' });
            else expect(ack, `free ${free}`).toMatchObject({ status: 'delivered', reason: 'accepted' });
          } finally {
            execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
            fs.closeSync(fd);
          }
          expect(loneFiles(), `after EMFILE with ${free} free`).toEqual([]);
        }
        expect(t.p.lines.filter((l) => l.stage === 'egress' && l.event === 'delivery-failed' && l.reason === 'EMFILE').length).toBe(2);
        // The resends (what ingress does after RETRY) finish the job: each delivered once, with its report.
        for (const [i, { id, name, bytes }] of ids.entries()) {
          const fd = fs.openSync(t.file(bytes), 'r');
          try {
            await peer.send(t.record({ id, name, bytes }), fd);
            const first = i < 2; // the two that met EMFILE are delivered now; the third was already
            expect(await peer.ack(30_000)).toMatchObject({ id, status: 'delivered', reason: first ? 'accepted' : `already delivered as ${name}` });
          } finally {
            fs.closeSync(fd);
          }
          expect(fs.readFileSync(path.join(t.p.outbox, name))).toEqual(bytes);
          expect(fs.existsSync(path.join(t.p.outbox, name + REPORT_SUFFIX))).toBe(true);
        }
        expect(loneFiles()).toEqual([]);
      } finally {
        execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
        peer.close();
      }
      // Same process, still serving, no descriptor kept.
      const started = t.p.lines.filter((l) => l.stage === 'egress' && l.event === 'started').at(-1);
      expect(Number(started!.pid)).toBe(pid);
      await honest('after-emfile');
      expect(fdTargets(pid).length).toBeLessThan(MAX_IN_FLIGHT * DESCRIPTORS_PER_DELIVERY);
    },
    120_000,
  );
});
