// Backpressure: with downstream unavailable, files wait in the inbox, the
// spool holds a bounded number, nothing is accepted or lost, and the
// memory of the stages stays flat however much waits.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { Pipeline } from './support/pipeline.js';

let p: Pipeline | undefined;
afterAll(async () => {
  await p?.stop();
});

describe('backpressure', () => {
  it('egress unreachable: ingress spools at most 4 × maxInFlight, the rest wait in the inbox, nothing is delivered', async () => {
    p = await Pipeline.start((dir) =>
      devConfig(dir, {
        // Transit looks for egress where nobody listens: every transfer gets RETRY.
        transit: { egressSocket: path.join(dir, 'run', 'nobody-here.sock') },
        ingress: { maxInFlight: 2, retryDelayMs: 100 },
      }),
      { connections: 1 },
    );
    const pl = p;
    for (let i = 0; i < 60; i++) fs.writeFileSync(path.join(pl.inbox, `wait-${i}.txt`), `file ${i}\n`);
    await pl.waitFor(() => pl.events('retry').length >= 10, 30_000, 'transfers being retried');
    const spooled = () => fs.readdirSync(path.join(pl.dir, 'ingress')).filter((n) => n.endsWith('.json')).length;
    const inbox = () => fs.readdirSync(pl.inbox).length;
    // Watch for a while: the bound holds the whole time.
    let maxSpooled = 0;
    for (let t = 0; t < 20; t++) {
      maxSpooled = Math.max(maxSpooled, spooled());
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(maxSpooled).toBeLessThanOrEqual(8);
    expect(spooled() + inbox()).toBe(60); // every file is in exactly one of the two places
    expect(fs.readdirSync(pl.outbox)).toEqual([]);
    expect(fs.readdirSync(pl.rejected)).toEqual([]);
  });

  it('memory stays flat: 128 MiB waiting while egress is unreachable moves into neither ingress nor transit', async () => {
    await p?.stop();
    p = await Pipeline.start(
      (dir) =>
        devConfig(dir, {
          transit: { egressSocket: path.join(dir, 'run', 'nobody-here.sock'), maxInFlight: 2 },
          ingress: { maxInFlight: 2, retryDelayMs: 100 },
        }),
      { connections: 1 },
    );
    const pl = p;
    const pid = (stage: string) => Number(pl.events('stage-started').filter((l) => l.which === stage).at(-1)!.childPid);
    /** rss - resident memory of a stage, in bytes (anonymous and file pages; a memfd counts only when mapped, so its count is checked separately). */
    const rss = (stage: string) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid(stage)}/status`, 'utf8'))![1]) * 1024;
    const memfds = (stage: string) => fs.readdirSync(`/proc/${pid(stage)}/fd`).filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid(stage)}/fd/${fd}`).startsWith('/memfd:');
      } catch {
        return false; // closed meanwhile
      }
    }).length;
    const MiB = 1024 * 1024;
    const base = { ingress: rss('ingress'), transit: rss('transit') };
    const line = Buffer.from(`${'waiting line of text '.repeat(3)}\n`);
    const body = Buffer.concat(Array(Math.ceil(MiB / line.length)).fill(line)).subarray(0, MiB);
    for (let i = 0; i < 128; i++) fs.writeFileSync(path.join(pl.inbox, `big-${i}.txt`), body);
    const retries = () => pl.events('retry').length;
    await pl.waitFor(() => retries() >= 30, 60_000, 'transfers being retried');
    // Sample while the retries cycle: the spool bound, the memfd bound, and resident memory all hold.
    const peak = { ingress: 0, transit: 0 };
    let maxMemfds = 0;
    const until = retries() + 40;
    while (retries() < until) {
      for (const s of ['ingress', 'transit'] as const) peak[s] = Math.max(peak[s], rss(s));
      maxMemfds = Math.max(maxMemfds, memfds('transit'));
      await new Promise((r) => setTimeout(r, 20));
    }
    const spooled = fs.readdirSync(path.join(pl.dir, 'ingress')).filter((n) => n.endsWith('.json')).length;
    const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
    process.stdout.write(`backpressure: spooled=${spooled} memfds<=${maxMemfds} ingress rss ${mib(base.ingress)} -> ${mib(peak.ingress)}, transit rss ${mib(base.transit)} -> ${mib(peak.transit)}\n`);
    expect(spooled).toBeLessThanOrEqual(8);
    expect(spooled + fs.readdirSync(pl.inbox).length).toBe(128);
    expect(maxMemfds).toBeLessThanOrEqual(4); // 2 x transit.maxInFlight
    for (const s of ['ingress', 'transit'] as const) expect(peak[s] - base[s], `${s}: ${(peak[s] / MiB).toFixed(0)} MiB at peak, ${(base[s] / MiB).toFixed(0)} MiB at start`).toBeLessThan(48 * MiB);
    expect(fs.readdirSync(pl.outbox)).toEqual([]);
  });
});
