// Sparse uploads against transit's memory: a 1-byte write at offset 1.5 GiB
// makes a 1.5 GiB file that uses 4 KiB of disk. Copied into RAM, a few of
// them at once exceed the unit's MemoryMax and transit is OOM-killed over and
// over while ingress resends. With a copy budget, transit takes what its RAM
// budget cannot hold into nameless files in its own directory, and the
// station keeps serving: the same transit process throughout, the sparse
// files on the disk path (its `received` lines say so), honest files in RAM
// and delivered within 30 s meanwhile, and nothing in the outbox without its
// report. Where a memory cgroup can be made (root, a writable cgroup v1
// memory controller or cgroup v2), transit runs in one limited to
// CGROUP_LIMIT, as its unit's MemoryMax= would do, and must never meet the
// OOM killer there. docs/threat-model.md lists this case.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../../packages/cli/src/dev.js';
import { Pipeline, type LogLine } from '../support/pipeline.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const SPARSE = 1.5 * GiB;
const RAM_BUDGET = 64 * MiB;
const SPARSE_FILES = 3;
const CGROUP_LIMIT = 512 * MiB;

let p: Pipeline;
let transitPid: number;
let cgroup: MemoryCgroup | null = null;

/** A memory cgroup of our own, under the one this process is in. */
interface MemoryCgroup {
  dir: string;
  /** OOM kills inside it so far. */
  oomKills(): number;
  /** The most memory it was ever charged. */
  peak(): number;
}

/** memoryCgroup - make a child memory cgroup limited to `limit` and move `pid` into it; null where that cannot be done. */
function memoryCgroup(pid: number, limit: number): MemoryCgroup | null {
  if (process.getuid?.() !== 0) return null;
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = own.find((l) => /^\d+:memory:/.test(l))?.split(':')[2];
  const v2 = own.find((l) => l.startsWith('0::'))?.slice(3);
  const tries =
    v1 !== undefined
      ? { root: `/sys/fs/cgroup/memory${v1}`, limit: 'memory.limit_in_bytes', peak: 'memory.max_usage_in_bytes', oom: 'memory.oom_control' }
      : { root: `/sys/fs/cgroup${v2 ?? '/'}`, limit: 'memory.max', peak: 'memory.peak', oom: 'memory.events' };
  const dir = path.join(tries.root, `sluice-budget-${process.pid}`);
  try {
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, tries.limit), String(limit));
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
  } catch {
    try {
      fs.rmdirSync(dir);
    } catch {
      // never made
    }
    return null;
  }
  return {
    dir,
    oomKills: () => Number(/^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(dir, tries.oom), 'utf8'))?.[1] ?? NaN),
    peak: () => Number(fs.readFileSync(path.join(dir, tries.peak), 'utf8')),
  };
}

beforeAll(async () => {
  p = await Pipeline.start((dir) =>
    devConfig(dir, {
      limits: { maxFileBytes: 2 * GiB },
      // Room on disk for two sparse copies at once: the third waits for one of them.
      transit: { copyMemoryBytes: RAM_BUDGET, copyDiskBytes: 3.5 * GiB, memoryMaxBytes: CGROUP_LIMIT },
      ingress: { retryDelayMs: 500 },
    }),
  );
  transitPid = Number(p.lines.find((l) => l.stage === 'transit' && l.event === 'started')!.pid);
  cgroup = memoryCgroup(transitPid, CGROUP_LIMIT);
}, 60_000);

afterAll(async () => {
  await p?.stop();
  if (cgroup) fs.rmdirSync(cgroup.dir);
});

/** dropSparse - an upload of one byte at the end of a 1.5 GiB hole, renamed into the inbox. */
function dropSparse(name: string): void {
  const tmp = path.join(p.inbox, `.sparse-${randomBytes(4).toString('hex')}.part`);
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, 'x', SPARSE - 1);
  fs.closeSync(fd);
  expect(fs.statSync(tmp).blocks * 512).toBeLessThan(64 * 1024); // it really is sparse
  fs.renameSync(tmp, path.join(p.inbox, name));
}

/** idOf - the transfer id ingress gave the upload `name`. */
const idOf = (name: string): string | undefined => p.lines.find((l) => l.stage === 'ingress' && l.event === 'picked-up' && l.name === name)?.id;

/** transitLines - transit's lines about the upload `name`. */
const transitLines = (name: string, event: string): LogLine[] => p.lines.filter((l) => l.stage === 'transit' && l.event === event && l.id !== undefined && l.id === idOf(name));

describe('sparse uploads larger than the RAM budget', () => {
  it('go through the disk path; transit is never restarted; honest files arrive meanwhile, and nothing is in the outbox without its report', async () => {
    const sparse = Array.from({ length: SPARSE_FILES }, (_, i) => `sparse-${i}.bin`);
    for (const name of sparse) dropSparse(name);

    // While the sparse files are being copied and checked: honest files, small and larger, each within 30 s.
    await p.waitFor(() => sparse.some((n) => transitLines(n, 'received').length > 0 || transitLines(n, 'copy-waiting').length > 0), 120_000, 'transit taking a sparse file');
    const honest = [
      { name: 'honest-small.txt', bytes: Buffer.from(`an honest file ${randomBytes(8).toString('hex')}\n`) },
      { name: 'honest-40m.txt', bytes: Buffer.from(`line of honest text ${randomBytes(8).toString('hex')}\n`.repeat((40 * MiB) / 37)) },
      { name: 'honest-again.txt', bytes: Buffer.from(`another honest file ${randomBytes(8).toString('hex')}\n`) },
    ];
    for (const h of honest) {
      p.drop(h.name, h.bytes);
      const found = await p.reportFor(h.name, 30_000);
      expect(found.report.verdict, `${h.name}: ${found.report.reason}`).toBe('accepted');
      expect(fs.readFileSync(path.join(p.outbox, found.report.name.stored)).equals(h.bytes)).toBe(true);
      expect(transitLines(h.name, 'received').map((l) => l.copy)).toEqual(['memory']); // they fit the RAM budget
    }

    // Every sparse file gets its report, each taken into a private file on disk, never into RAM.
    const zeros = createHash('sha256');
    const block = Buffer.alloc(64 * MiB);
    for (let left = SPARSE - 1; left > 0; left -= Math.min(left, block.length)) zeros.update(block.subarray(0, Math.min(left, block.length)));
    const sha = zeros.update('x').digest('hex');
    for (const name of sparse) {
      const found = await p.reportFor(name, 240_000);
      expect(found.report).toMatchObject({ size: SPARSE, sha256: sha });
      const received = transitLines(name, 'received');
      expect(received.length).toBeGreaterThan(0);
      expect(received.every((l) => l.copy === 'disk')).toBe(true);
    }

    // Transit was never restarted, and nothing complained at error level.
    expect(p.lines.filter((l) => l.event === 'stage-exited')).toEqual([]);
    expect(p.lines.filter((l) => l.stage === 'transit' && l.event === 'started').map((l) => Number(l.pid))).toEqual([transitPid]);
    expect(p.lines.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    // The budget held: nothing larger than the RAM budget was ever copied into RAM.
    const inRam = p.lines.filter((l) => l.stage === 'transit' && l.event === 'received' && l.copy === 'memory');
    expect(inRam.length).toBeGreaterThanOrEqual(honest.length);
    expect(inRam.every((l) => Number(l.size) <= RAM_BUDGET)).toBe(true);
    // Nothing in the outbox without its report, and transit's directory holds no named file.
    const outbox = fs.readdirSync(p.outbox);
    for (const f of outbox.filter((f) => !f.endsWith('.sluice.json'))) expect(outbox, f).toContain(`${f}.sluice.json`);
    expect(fs.readdirSync(path.join(p.dir, 'transit'))).toEqual([]);
    expect(fs.statSync(path.join(p.dir, 'transit')).mode & 0o777).toBe(0o700);
    // Under a MemoryMax-like limit: no OOM kill, ever.
    if (cgroup) {
      expect(cgroup.oomKills()).toBe(0);
      expect(cgroup.peak()).toBeLessThanOrEqual(CGROUP_LIMIT);
      console.log(`transit's memory cgroup: limit ${CGROUP_LIMIT / MiB} MiB, peak ${(cgroup.peak() / MiB).toFixed(0)} MiB, OOM kills ${cgroup.oomKills()}`);
    } else {
      console.log('no memory cgroup could be made here: the budget is checked by its accounting only');
    }
  }, 420_000);
});
