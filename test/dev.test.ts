// `sluice dev` as a supervisor (three separate processes, a dead stage is
// restarted, SIGTERM stops everything cleanly), `npx sluice` from the
// repository root, and `sluice demo`'s summary (what `make demo` runs).
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoSamples } from '../packages/cli/src/demo.js';
import { escapeForLog } from '../packages/core/src/index.js';
import { CLI, Pipeline, type LogLine } from './support/pipeline.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** alive - does a process with this pid exist (not yet reaped)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** current - the pid `sluice dev` last started for each stage. */
function current(lines: LogLine[]): Record<string, number> {
  const pids: Record<string, number> = {};
  for (const l of lines) if (l.stage === 'dev' && l.event === 'stage-started') pids[String(l.which)] = Number(l.childPid);
  return pids;
}

describe('sluice dev', () => {
  it('runs three stage processes under DIR, restarts one that dies, and stops them all cleanly on SIGTERM', async () => {
    const p = await Pipeline.start();
    try {
      for (const d of ['inbox', 'outbox', 'rejected', 'run']) expect(fs.statSync(path.join(p.dir, d)).isDirectory(), d).toBe(true);
      for (const s of ['transit.sock', 'egress.sock']) expect(fs.lstatSync(path.join(p.dir, 'run', s)).isSocket(), s).toBe(true);

      // Three separate OS processes, none of them the supervisor, each logging under its own pid.
      const first = current(p.lines);
      expect(Object.keys(first).sort()).toEqual(['egress', 'ingress', 'transit']);
      expect(new Set(Object.values(first)).size).toBe(3);
      expect(Object.values(first)).not.toContain(p.child.pid);
      for (const [stage, pid] of Object.entries(first)) {
        expect(p.lines.some((l) => l.stage === stage && l.event === 'started' && l.pid === pid), stage).toBe(true);
      }

      // A stage that dies is logged and restarted, and the pipeline works again.
      process.kill(first.transit!, 'SIGKILL');
      await p.waitFor(() => p.events('stage-exited').some((l) => l.which === 'transit' && l.signal === 'SIGKILL'), 30_000, 'transit exit logged');
      await p.waitFor(() => current(p.lines).transit !== first.transit, 30_000, 'transit restarted');
      const restarted = current(p.lines).transit!;
      await p.waitFor(() => p.lines.some((l) => l.stage === 'transit' && l.event === 'started' && l.pid === restarted), 30_000, 'new transit ready');
      expect(alive(first.transit!)).toBe(false);
      expect(current(p.lines).ingress).toBe(first.ingress); // the others were left alone
      expect(current(p.lines).egress).toBe(first.egress);
      p.drop('after-restart.txt', 'still flowing\n');
      const found = await p.reportFor('after-restart.txt');
      expect(found.report.verdict).toBe('accepted');

      // SIGTERM: every stage runs its stop handlers and exits 0, then `sluice dev` exits 0.
      const last = current(p.lines);
      expect(await p.stop(true)).toBe(0);
      for (const [stage, pid] of Object.entries(last)) {
        expect(alive(pid), `${stage} ${pid} still running`).toBe(false);
        expect(p.lines.some((l) => l.stage === stage && l.pid === pid && l.event === 'stopped'), `${stage} logged stopped`).toBe(true);
      }
      expect(p.events('dev-stopped')).toEqual([expect.objectContaining({ reason: 'clean' })]);
    } finally {
      await p.stop();
    }
  }, 120_000);
});

describe('npx sluice', () => {
  it('runs the workspace CLI from the repository root', () => {
    expect(fs.realpathSync(path.join(root, 'node_modules/.bin/sluice'))).toBe(fs.realpathSync(CLI));
    const out = execFileSync('npx', ['--no-install', 'sluice', 'help'], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('sluice dev --dir DIR');
  });
});

describe('sluice demo (make demo)', () => {
  it('prints each sample with its outcome, the reason, and where its output and report are; then stops', () => {
    const r = spawnSync(process.execPath, [CLI, 'demo'], { encoding: 'utf8', timeout: 120_000 });
    const dir = /pipeline running in (\S+)/.exec(r.stdout)?.[1];
    try {
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(dir).toBeDefined();
      const blocks = r.stdout.split(/\n(?= {2}\S)/);
      for (const s of demoSamples()) {
        const block = blocks.find((b) => b.startsWith(`  ${escapeForLog(s.name)} `));
        expect(block, s.name).toBeDefined();
        // The outcome and a reason, for acceptances too.
        expect(block).toMatch(new RegExp(`^ {6}${s.expect.toUpperCase()}: \\S`, 'm'));
        const report = /^ {6}report: (.+\.sluice\.json) \(signatures verified\)$/m.exec(block!)?.[1];
        expect(report, `${s.name}: report line`).toBeDefined();
        expect(path.dirname(report!)).toBe(path.join(dir!, s.expect === 'accepted' ? 'outbox' : 'rejected'));
        expect(fs.existsSync(report!), report).toBe(true);
        const file = /^ {6}file: {3}(.+)$/m.exec(block!)?.[1];
        if (s.expect === 'accepted') {
          expect(fs.readFileSync(file!)).toEqual(s.bytes);
        } else {
          expect(file).toBeUndefined();
        }
      }
      // Stopped: no stage of the demo's pipeline is left behind.
      expect(r.stdout).toContain('Pipeline stopped.');
      const log = fs.readFileSync(path.join(dir!, 'sluice.log'), 'utf8');
      expect(log).toContain('"event":"dev-stopped"');
      const pids = [...log.matchAll(/"event":"stage-started".*?"childPid":(\d+)/g)].map((m) => Number(m[1]));
      expect(pids).toHaveLength(3);
      for (const pid of pids) expect(alive(pid)).toBe(false);
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
