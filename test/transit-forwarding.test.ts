// Transit's two bounds (issue 9): while egress is slow, transit keeps checking
// the next files instead of holding its check slots through egress's round
// trip, yet never holds more than transit.maxInFlight + transit.maxForwarding sealed copies.
// Egress is stopped with SIGSTOP (its socket still accepts records), so the
// state is reached deterministically, then held, then released.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { devConfig } from '../packages/cli/src/dev.js';
import { Pipeline } from './support/pipeline.js';

let p: Pipeline | undefined;
let stopped: number | undefined;
afterAll(async () => {
  if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
  await p?.stop();
});

/** sealedCopies - memfds transit holds open right now (its private copies). */
function sealedCopies(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('/memfd:')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

describe('transit forwarding', () => {
  it('checks the next files while egress is stopped, up to maxInFlight + maxForwarding sealed copies, and delivers all once it resumes', async () => {
    p = await Pipeline.start((dir) => devConfig(dir, { transit: { maxInFlight: 2, maxForwarding: 2 }, ingress: { maxInFlight: 8 } }));
    const pl = p;
    const pidOf = (stage: string) => pl.lines.find((l) => l.stage === stage && l.event === 'started')!.pid as number;
    const egress = pidOf('egress');
    const transit = pidOf('transit');
    process.kill(egress, 'SIGSTOP');
    stopped = egress;
    for (let i = 0; i < 8; i++) pl.drop(`f-${i}.txt`, `file ${i}\n`);
    const checked = () => pl.lines.filter((l) => l.stage === 'transit' && l.event === 'checked').length;
    // 2 forwarded (waiting for egress's ack) + 2 checked (waiting for a forwarding slot).
    await pl.waitFor(() => checked() >= 4, 30_000, 'four files checked while egress is stopped');
    // Held: the fifth file must not be copied while four sealed copies wait. A pause, then the
    // same state: the bound is what is tested, not a time.
    await new Promise((r) => setTimeout(r, 1000));
    expect(checked()).toBe(4);
    expect(pl.lines.filter((l) => l.stage === 'transit' && l.event === 'received').length).toBe(4);
    expect(sealedCopies(transit)).toBeLessThanOrEqual(4);
    expect(fs.readdirSync(pl.outbox)).toEqual([]);

    process.kill(egress, 'SIGCONT');
    stopped = undefined;
    for (let i = 0; i < 8; i++) expect((await pl.reportFor(`f-${i}.txt`)).report.verdict).toBe('accepted');
  });
});
