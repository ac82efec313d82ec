// Disk full: a write that fails with ENOSPC loses nothing, shows nothing
// partial, says so in the log, and the transfer goes through by itself once
// space returns: in the outbox, the rejected directory, egress's journal and
// ingress's spool, each on its own small file system in turn. Needs root
// (it mounts small tmpfs file systems); skipped, with the reason in its
// title, otherwise.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { Pipeline } from './support/pipeline.js';
import { journalStates } from './support/journal.js';

const asRoot = process.getuid!() === 0;
const mounts: string[] = [];
let p: Pipeline | undefined;

afterAll(async () => {
  await p?.stop(true);
  for (const m of mounts) execFileSync('umount', [m]);
  if (p) fs.rmSync(p.dir, { recursive: true, force: true });
});

/** smallFs - mount a tmpfs of `size` on dir (created, mode 0700 or as given). */
function smallFs(dir: string, size: string, mode = '0755'): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=${mode}`, 'tmpfs', dir]);
  mounts.push(dir);
}

/** fill - take every free byte of the file system holding dir; returns the filler's path. */
function fill(dir: string): string {
  const filler = path.join(dir, '.filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  // Byte-sized leftovers too, so even a report cannot be written.
  const fd2 = fs.openSync(path.join(dir, '.filler2'), 'w');
  try {
    for (;;) fs.writeSync(fd2, Buffer.alloc(512, 1));
  } catch {
    /* full */
  } finally {
    fs.closeSync(fd2);
  }
  return filler;
}

/** free - give the space back that fill() took. */
function free(dir: string): void {
  fs.rmSync(path.join(dir, '.filler'));
  fs.rmSync(path.join(dir, '.filler2'));
}

describe.runIf(asRoot)(`disk full (ENOSPC)${asRoot ? '' : ' [skipped: needs root to mount small tmpfs file systems; CI runs as root]'}`, () => {
  it('in egress (outbox, rejected, journal) and in the ingress spool: nothing lost, nothing partial, logged, resumed when space returns', async () => {
    p = await Pipeline.start((dir) => {
      smallFs(path.join(dir, 'outbox'), '4m');
      smallFs(path.join(dir, 'rejected'), '1m');
      smallFs(path.join(dir, 'egress'), '1m', '0700');
      smallFs(path.join(dir, 'ingress'), '4m', '0700');
      return devConfig(dir, { ingress: { retryDelayMs: 200 } });
    });
    const failures = (reason: string, event: string) => p!.events(event).filter((l) => l.reason === reason).length;

    // Egress cannot write: the transfer waits in ingress's spool, the outbox shows nothing of it.
    const egressFiller = fill(p.outbox);
    const a = Buffer.from(randomBytes(100_000).toString('hex'));
    p.drop('a.txt', a);
    await p.waitFor(() => p!.events('delivery-failed').some((l) => l.reason === 'ENOSPC'), 30_000, 'delivery-failed ENOSPC');
    expect(fs.readdirSync(p.outbox).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(fs.readdirSync(path.join(p.dir, 'ingress')).some((n) => n.endsWith('.data'))).toBe(true);

    expect(egressFiller).toBe(path.join(p.outbox, '.filler'));
    free(p.outbox);
    const foundA = await p.reportFor('a.txt', 30_000);
    expect(foundA.report.verdict).toBe('accepted');
    expect(fs.readFileSync(path.join(p.outbox, 'a.txt'))).toEqual(a);

    // The rejected directory is full: no rejection report, not even a partial one, until space returns.
    fill(p.rejected);
    let before = failures('ENOSPC', 'delivery-failed');
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(5000)]);
    p.drop('r.txt', elf);
    await p.waitFor(() => failures('ENOSPC', 'delivery-failed') > before, 30_000, 'delivery-failed ENOSPC (rejected/)');
    expect(fs.readdirSync(p.rejected).filter((n) => !n.startsWith('.'))).toEqual([]);
    free(p.rejected);
    const foundR = await p.reportFor('r.txt', 30_000);
    expect(foundR.place).toBe('rejected');
    expect(foundR.report.verdict).toBe('rejected');

    // Egress's journal is full: it cannot promise a name, so it links nothing. The journal is one
    // appended file, and tmpfs gives it whole pages, so the first few records may still fit in its
    // last page's slack: send files one by one until an intent no longer fits.
    fill(path.join(p.dir, 'egress'));
    before = failures('ENOSPC', 'delivery-failed');
    const cs = new Map<string, Buffer>();
    for (let i = 0; failures('ENOSPC', 'delivery-failed') === before; i++) {
      expect(i, 'a journal on a full file system took 16 intents').toBeLessThan(16);
      const name = `c${i}.txt`;
      cs.set(name, Buffer.from(randomBytes(20_000).toString('hex')));
      p.drop(name, cs.get(name)!);
      await p.waitFor(() => failures('ENOSPC', 'delivery-failed') > before || p!.reports().some((r) => r.report.name.original === name), 30_000, `${name} delivered or delivery-failed ENOSPC (journal)`);
    }
    const failedIds = new Set(p.events('delivery-failed').filter((l) => l.reason === 'ENOSPC').slice(before).map((l) => l.id));
    const failedNames = p.events('picked-up').filter((l) => failedIds.has(l.id)).map((l) => l.name as string);
    expect(failedNames.length).toBeGreaterThan(0);
    for (const n of failedNames) expect(fs.existsSync(path.join(p.outbox, n)), `${n} linked without a journal intent`).toBe(false);
    free(path.join(p.dir, 'egress'));
    for (const [name, bytes] of cs) {
      const found = await p.reportFor(name, 30_000);
      expect(found.report.verdict).toBe('accepted');
      expect(found.report.name.stored, JSON.stringify(fs.readdirSync(p.outbox))).toBe(name); // a failed journal write must not leave the name reserved
      expect(fs.readFileSync(path.join(p.outbox, name))).toEqual(bytes);
    }

    // Ingress cannot spool: the upload stays in the inbox, untouched.
    const spoolFiller = fill(path.join(p.dir, 'ingress'));
    const b = Buffer.from(randomBytes(200_000).toString('hex'));
    p.drop('b.txt', b);
    await p.waitFor(() => p!.events('pickup-failed').some((l) => l.reason === 'ENOSPC'), 30_000, 'pickup-failed ENOSPC');
    expect(fs.readFileSync(path.join(p.inbox, 'b.txt'))).toEqual(b);
    // Each failed attempt removes its partial copy. Ingress retries meanwhile, and a retry in the
    // middle of its copy holds one: wait for a moment between attempts (leftovers would never go).
    const spoolTmps = () => fs.readdirSync(path.join(p!.dir, 'ingress')).filter((n) => n.startsWith('.tmp-'));
    await p.waitFor(() => spoolTmps().length === 0, 10_000, `no partial spool copy left (${spoolTmps().join(', ')})`);

    expect(spoolFiller).toBe(path.join(p.dir, 'ingress', '.filler'));
    free(path.join(p.dir, 'ingress'));
    const foundB = await p.reportFor('b.txt', 30_000);
    expect(foundB.report.verdict).toBe('accepted');
    expect(fs.readFileSync(path.join(p.outbox, 'b.txt'))).toEqual(b);
    // Exactly once each, and nothing half-written anywhere.
    const names = ['a.txt', 'b.txt', 'r.txt', ...cs.keys()];
    expect(p.reports().filter((r) => names.includes(r.report.name.original))).toHaveLength(names.length);
    const accepted = ['a.txt', 'b.txt', ...cs.keys()];
    expect(fs.readdirSync(p.outbox).filter((n) => !n.startsWith('.')).sort()).toEqual(accepted.flatMap((n) => [n, `${n}.sluice.json`]).sort());
    expect([...journalStates(p.dir).values()].filter((s) => s !== 'done')).toEqual([]); // no intent left unfinished
  });
});
