// Backpressure: with downstream unavailable, files wait in the inbox, the
// spool holds a bounded number, and nothing is accepted or lost.
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
});
