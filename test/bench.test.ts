// `make bench` must keep working: a shortened run (--large-files 1, --small-files 20,
// --clamd-files 4; the memory figure's 2 GiB is left to `make bench` itself) through the
// compiled pipeline, checking what the benchmark prints and writes, never how fast anything
// was (these machines are shared: no timing assertion). Exit 0 means the benchmark found
// every output accepted, in place, with a report stating its digest; a wrong or missing
// output makes it exit 1. `--large-files 1` used to crash the bounds (they took inputs 3-8).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const haveClamd = fs.existsSync('/usr/sbin/clamd') && fs.existsSync('/usr/bin/python3');

interface Figure {
  ratio: number;
  faults: string[];
  problems: string[];
  [k: string]: unknown;
}

describe(`make bench, shortened${haveClamd ? '' : ' [clamd figure expected as "not measured": /usr/sbin/clamd missing; CI installs it]'}`, () => {
  it('prints every figure with its bound and ratio, writes them as JSON, and exits 0 when every output is right', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-test-'));
    try {
      const json = path.join(dir, 'out.json');
      const r = spawnSync(
        process.execPath,
        ['bench/run.mjs', '--only', 'large,small,clamd', '--large-files', '1', '--small-files', '20', '--clamd-files', '4', '--dir', path.join(dir, 'work'), '--json', json],
        { cwd: root, encoding: 'utf8', timeout: 240_000 },
      );
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const out = r.stdout;
      for (const line of [
        /^large files {2}1 x 256 MiB, scanners off$/m,
        /^ {2}bound: copy\+SHA-256 +[\d,]+ MB\/s/m,
        /^ {2}CPU ceiling, 2 cores|^ {2}CPU ceiling, \d+ cores/m,
        /^ {2}disk bound +[\d,]+ MB\/s/m,
        /^small files {2}20 x 4 KiB, all renamed in at once$/m,
        /^ {2}latency at half load +p50 [\d,]+ ms, p99 [\d,]+ ms/m,
        /^ {2}bound: one-process floor +[\d,]+ files\/s/m,
      ]) {
        expect(out).toMatch(line);
      }
      // A ratio line, and when its bound moved more than 10% between before and after, a word on that.
      const ratios = out.match(/^ {2}ratio +\d+\.\d\d {2}\(goal >= [\d.]+: (meets goal|BELOW GOAL)(; the bound moved \d+% between before and after: the machine's speed changed)?\)$/gm);
      expect(ratios?.length, out).toBe(haveClamd ? 3 : 2);

      const results = (JSON.parse(fs.readFileSync(json, 'utf8')) as { results: Record<string, Figure & { measured?: boolean; why?: string }> }).results;
      for (const k of ['large', 'small']) {
        expect(results[k]!.faults, k).toEqual([]);
        expect(results[k]!.ratio, k).toBeGreaterThan(0);
        expect(Number.isFinite(results[k]!.ratio), k).toBe(true);
      }
      if (haveClamd) {
        const c = results.clamd as Figure & { cpuShare: { coresAlone: number; clamdPerMB: number; sluicePerMB: number; ratio: number } };
        expect(c.faults).toEqual([]);
        expect(out).toMatch(/^ {2}clamd alone +\d+\.\d\d of \d+ cores busy; [\d.]+ ms of CPU per MB; Sluice's stages add [\d.]+ ms per MB$/m);
        expect(out).toMatch(/^ {2}CPU ceiling +[\d,]+ MB\/s {2}\(= cores \/ \(clamd \+ Sluice per MB\): ratio at most \d\.\d\d/m);
        // The ceiling is made of CPU seconds the run measured, for clamd alone and for the stages.
        expect(c.cpuShare.coresAlone).toBeGreaterThan(0);
        expect(c.cpuShare.clamdPerMB).toBeGreaterThan(0);
        expect(c.cpuShare.sluicePerMB).toBeGreaterThan(0);
      } else {
        expect(out).toMatch(/^clamd {8}not measured \(/m);
      }
      // Nothing is left behind in the working directory's figures (each removes its own).
      expect(fs.readdirSync(path.join(dir, 'work'))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('the filesystem floor makes every stage\'s per-file steps: inbox and spool emptied, each file and its report linked in the outbox', async () => {
    const { filesystemFloor } = (await import(path.join(root, 'bench/lib/bounds.mjs'))) as { filesystemFloor: (dir: string, n: number) => { cpuMsPerFile: number; kernelMsPerFile: number; n: number } };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-floor-test-'));
    try {
      const r = filesystemFloor(dir, 30);
      expect(r.n).toBe(30);
      expect(r.cpuMsPerFile).toBeGreaterThan(0);
      expect(r.kernelMsPerFile).toBeLessThanOrEqual(r.cpuMsPerFile);
      expect(fs.readdirSync(path.join(dir, 'inbox'))).toEqual([]);
      expect(fs.readdirSync(path.join(dir, 'spool'))).toEqual([]);
      const out = fs.readdirSync(path.join(dir, 'outbox'));
      expect(out.filter((n) => n.endsWith('.sluice.json'))).toHaveLength(50); // 20 warm-up files and 30 timed
      expect(out).toHaveLength(100);
      expect(fs.statSync(path.join(dir, 'outbox', 'f-0')).size).toBe(4096);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
