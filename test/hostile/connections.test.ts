// A compromised upstream stage attacks a listening stage's connections
// rather than its records: it never reads what the stage sends back, or it
// holds more connections open than the stage has descriptors.
//
// 1. A peer that never reads its acks. It connects as the allowed uid and
//    sends valid transfer records without a descriptor in a loop; the
//    stage answers each REFUSED at once, and the answers pile up because
//    the peer reads none. The stage must disconnect it (event
//    `peer-not-reading`) once its outgoing queue reaches its bound
//    (docs/capacity.md), keep its memory under RSS_GROWTH_BOUND above what
//    it used before the attack, stay the same process, and deliver an
//    honest transfer sent during the attack within 30 s. Both hops.
//
// 2. More idle connections than descriptors. The whole pipeline runs under
//    `prlimit --nofile=256`; the attacker opens 300 connections to transit
//    and holds them, idle. The stage must not spin on accept(): its
//    `accept-failed` lines over the whole attack are at most
//    ACCEPT_FAILED_LINES_MAX, its CPU time while the connections are held
//    stays under CPU_SHARE_MAX of the wall time (from /proc/PID/stat), and an
//    honest record from the upstream uid sent after them is delivered within
//    30 s.
//
// Only ceilings are asserted, never how fast anything went. HOSTILE_DEBUG=1
// prints what was measured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { native } from '../../packages/native/src/index.js';
import { Target, type Hop } from './harness.js';
import { fdCount, newId, settledFdCount } from './impersonate.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/**
 * How much a stage's RSS may grow over the attack. A stage's outgoing
 * queues hold at most 2,048 records per connection and 8,192 in all
 * (docs/capacity.md), a few MiB with their promises; the rest is room for
 * the garbage collector's slack and the honest transfer. Without the bound, the queue grows by tens of MiB a
 * second and passes this within seconds.
 */
const RSS_GROWTH_BOUND = 96 * MiB;
/** The attack ends after the stage disconnected the peer this often, or after ATTACK_RECORDS_MAX records. */
const DISCONNECTS_WANTED = 3;
const ATTACK_RECORDS_MAX = 150_000;
/** accept-failed lines allowed over the whole descriptor attack (the event is rate-limited). */
const ACCEPT_FAILED_LINES_MAX = 3;
/** The stage's CPU time while the idle connections are held, as a share of the wall time. */
const CPU_SHARE_MAX = 0.1;
const HONEST_CEILING_MS = 30_000;

/** rss - a process's resident set (VmRSS of /proc/PID/status), in bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** cpuSeconds - a process's user + system CPU time (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** connectRaw - a connection we never read from; retries while the stage's backlog is full. */
async function connectRaw(sock: string): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      return native.connect(sock);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN' || i > 1000) throw err;
      await sleep(5);
    }
  }
}

/** withCeiling - `p`, or a rejection naming `what` once `ms` have passed. */
async function withCeiling<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_r, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each<Hop>(['transit', 'egress'])('a peer that never reads what %s sends back', (hop) => {
  let t: Target;
  beforeAll(async () => {
    t = await Target.start(hop);
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it(
    'is disconnected (peer-not-reading) with its memory bounded, while an honest transfer still gets through',
    async () => {
      const pid = t.pid;
      const fdsBefore = fdCount(pid);
      const rssBefore = rss(pid);
      let rssMax = rssBefore;
      const sampler = setInterval(() => {
        try {
          rssMax = Math.max(rssMax, rss(pid));
        } catch {
          /* the stage died: the pid check below says so */
        }
      }, 50);
      const mark = t.p.lines.length;
      // A valid transfer record without its descriptor: REFUSED (no-descriptor) at once, at both hops.
      const record = t.record({ id: newId('never-reads'), name: 'never-reads.txt', bytes: Buffer.from('x') });

      let sent = 0;
      let disconnects = 0;
      let honest: Promise<void> | null = null;
      let fd = await connectRaw(t.sock);
      try {
        while (disconnects < DISCONNECTS_WANTED && sent < ATTACK_RECORDS_MAX) {
          let n: number;
          try {
            n = native.send(fd, record, -1);
          } catch {
            // EPIPE/ECONNRESET: the stage hung up on us. Come back and do it again.
            disconnects++;
            fs.closeSync(fd);
            fd = await connectRaw(t.sock);
            continue;
          }
          if (n < 0) {
            await sleep(1); // our socket is full: the stage is busy with what we sent
            continue;
          }
          sent++;
          if (sent === 2_000) honest = withCeiling(t.deliverClean('a peer that never reads'), HONEST_CEILING_MS, 'the honest transfer');
          if (sent % 200 === 0) await sleep(0);
        }
      } finally {
        fs.closeSync(fd);
        clearInterval(sampler);
      }
      expect(honest, 'the attack sent 2,000 records').not.toBeNull();
      await honest;

      if (process.env.HOSTILE_DEBUG) console.log(`${hop}: ${sent} records, ${disconnects} disconnects, RSS +${((rssMax - rssBefore) / MiB).toFixed(1)} MiB`);
      const lines = t.linesSince(mark);
      const notReading = lines.filter((l) => l.event === 'peer-not-reading' && (l.peer as { pid?: number } | undefined)?.pid === process.pid);
      expect(disconnects, `disconnects after ${sent} records; RSS grew ${((rssMax - rssBefore) / MiB).toFixed(0)} MiB`).toBe(DISCONNECTS_WANTED);
      expect(notReading.length).toBeGreaterThanOrEqual(DISCONNECTS_WANTED);
      expect(notReading[0]).toMatchObject({ level: 'warn' });
      expect(rssMax - rssBefore, `RSS before ${rssBefore}, at most ${rssMax}`).toBeLessThan(RSS_GROWTH_BOUND);

      const started = t.p.lines.filter((l) => l.stage === hop && l.event === 'started').at(-1);
      expect(Number(started!.pid), `${hop} was restarted`).toBe(pid);
      expect(t.p.lines.slice(mark).filter((l) => l.event === 'stage-exited' || l.level === 'fatal')).toEqual([]);
      expect(await settledFdCount(pid, fdsBefore), 'descriptors after the attack').toBe(fdsBefore);
    },
    180_000,
  );
});

describe('more idle connections than transit has descriptors', () => {
  const NOFILE = 256;
  const CONNECTIONS = 300;
  const HOLD_MS = 5_000;
  let t: Target;
  beforeAll(async () => {
    t = await Target.start('transit', { wrap: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`, '--'] });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it(
    'neither spins nor floods the log, and still takes an honest record from its upstream',
    async () => {
      const pid = t.pid;
      expect(fs.readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(new RegExp(`Max open files\\s+${NOFILE}\\s+${NOFILE}`));
      const mark = t.p.lines.length;
      const fds: number[] = [];
      try {
        const cpu0 = cpuSeconds(pid);
        const wall0 = Date.now();
        for (let i = 0; i < CONNECTIONS; i++) fds.push(await connectRaw(t.sock));
        await sleep(HOLD_MS);
        const cpu = cpuSeconds(pid) - cpu0;
        const wall = (Date.now() - wall0) / 1000;

        const failed = () => t.linesSince(mark).filter((l) => l.event === 'accept-failed');
        if (process.env.HOSTILE_DEBUG) {
          const evicted = t.linesSince(mark).filter((l) => l.event === 'connection-evicted').length;
          console.log(`transit: CPU ${cpu.toFixed(2)} s over ${wall.toFixed(1)} s, ${failed().length} accept-failed, ${evicted} evicted, ${fdCount(pid)} fds`);
        }
        expect(failed().length, `accept-failed lines: ${JSON.stringify(failed().slice(0, 3))}`).toBeLessThanOrEqual(ACCEPT_FAILED_LINES_MAX);
        expect(cpu, `transit CPU ${cpu.toFixed(2)} s over ${wall.toFixed(1)} s with ${CONNECTIONS} idle connections`).toBeLessThan(CPU_SHARE_MAX * wall);

        // The upstream's next connection, while every attacker connection is still held.
        await withCeiling(t.deliverClean('more idle connections than descriptors'), HONEST_CEILING_MS, 'the honest transfer');
        expect(failed().length).toBeLessThanOrEqual(ACCEPT_FAILED_LINES_MAX);
        expect(fdCount(pid), 'descriptors while the attack holds its connections').toBeLessThan(NOFILE);
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
      const started = t.p.lines.filter((l) => l.stage === 'transit' && l.event === 'started').at(-1);
      expect(Number(started!.pid), 'transit was restarted').toBe(pid);
      expect(t.p.lines.slice(mark).filter((l) => l.event === 'stage-exited' || l.level === 'fatal')).toEqual([]);
    },
    180_000,
  );
});
