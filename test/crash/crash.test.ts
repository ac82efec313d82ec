// Crash injection: stream files through `sluice dev` while killing a random
// stage with SIGKILL at random moments. At the end every input must be
// delivered exactly once with identical bytes and a valid report, or rejected
// exactly once, nothing partial may be visible, and the transparency log
// (DIR/log) audits clean with every leaf published (tlog.test.ts beside it
// aims its kills at egress's batching).
//
//   default (CI):  300 files, at least 15 kills
//   longer:        make crash-long (SLUICE_CRASH_FILES=3000 SLUICE_CRASH_KILLS=150; not in CI)
//
// recovery.test.ts beside it makes the same recoveries happen deterministically.
import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../../packages/cli/src/dev.js';
import { auditLog, loadPublicKey, verifyReport } from '../../packages/report/src/index.js';
import { journalStates } from '../support/journal.js';
import { Pipeline } from '../support/pipeline.js';

const FILES = Number(process.env.SLUICE_CRASH_FILES ?? 300);
const KILLS = Number(process.env.SLUICE_CRASH_KILLS ?? 15);
const STAGES = ['ingress', 'transit', 'egress'] as const;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let p: Pipeline | undefined;
afterAll(async () => {
  await p?.stop();
});

/** input - a text file (accepted) or, one in eight, an ELF executable (rejected). */
function input(i: number): { name: string; bytes: Buffer; verdict: 'accepted' | 'rejected' } {
  const name = `crash-${String(i).padStart(5, '0')}.txt`;
  if (i % 8 === 7) {
    return { name, bytes: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(randomInt(64, 8192))]), verdict: 'rejected' };
  }
  const size = [1, 100, 4096, 65_536, 300_000][i % 5]!;
  return { name, bytes: Buffer.from(randomBytes(Math.ceil(size / 2)).toString('hex').slice(0, size)), verdict: 'accepted' };
}

describe('crash injection', () => {
  it(`${FILES} files, ${KILLS}+ SIGKILLs of random stages: lost=0 duplicated=0 corrupt=0`, async () => {
    p = await Pipeline.start((dir) =>
      devConfig(dir, { ingress: { retryDelayMs: 200, ackTimeoutMs: 20_000, rescanIntervalMs: 2_000 }, transit: { ackTimeoutMs: 20_000 } }),
    );
    const pipeline = p;
    const inputs = Array.from({ length: FILES }, (_, i) => input(i));

    // The killer: a random stage, at a random moment, until enough kills and every file is dropped.
    let dropping = true;
    let kills = 0;
    const killed: string[] = [];
    const killer = (async () => {
      while (dropping || kills < KILLS) {
        await sleep(randomInt(100, 700));
        const stage = STAGES[randomInt(STAGES.length)]!;
        const started = pipeline.events('stage-started').filter((l) => l.which === stage).pop();
        const pid = Number(started?.childPid);
        try {
          process.kill(pid, 'SIGKILL');
          kills++;
          killed.push(stage);
        } catch {
          /* between death and restart: try another moment */
        }
      }
    })();

    for (let i = 0; i < inputs.length; i += 10) {
      for (const f of inputs.slice(i, i + 10)) pipeline.drop(f.name, f.bytes);
      await sleep(randomInt(20, 120));
    }
    dropping = false;
    await killer;

    // Everything settles: one report per input (or a timeout that shows what is missing).
    const names = new Set(inputs.map((f) => f.name));
    await pipeline.waitFor(
      () => new Set(pipeline.reports().map((r) => r.report.name.original).filter((n) => names.has(n))).size === inputs.length,
      240_000,
      'a report for every input',
    );
    await sleep(1_500); // a duplicate, if any, would land now

    const publicKey = loadPublicKey(pipeline.publicKey);
    const byName = new Map<string, ReturnType<Pipeline['reports']>>();
    for (const r of pipeline.reports()) byName.set(r.report.name.original, [...(byName.get(r.report.name.original) ?? []), r]);
    let lost = 0;
    let duplicated = 0;
    let corrupt = 0;
    const problems: string[] = [];
    for (const f of inputs) {
      const rs = byName.get(f.name) ?? [];
      if (rs.length === 0) {
        lost++;
        problems.push(`${f.name}: no report`);
        continue;
      }
      if (rs.length > 1) {
        duplicated += rs.length - 1;
        problems.push(`${f.name}: ${rs.length} reports`);
      }
      const r = rs[0]!;
      const reportText = fs.readFileSync(r.reportPath, 'utf8');
      let ok: boolean;
      if (r.place === 'outbox') {
        const out = fs.readFileSync(path.join(pipeline.outbox, r.report.name.stored));
        ok = out.equals(f.bytes) && verifyReport({ reportText, publicKey, file: { size: out.length, sha256hex: sha(out) }, reportOnly: false }).ok;
      } else {
        ok = r.report.sha256 === sha(f.bytes) && verifyReport({ reportText, publicKey, reportOnly: true }).ok;
      }
      if (!ok || r.report.verdict !== f.verdict) {
        corrupt++;
        problems.push(`${f.name}: ${r.place} ${r.report.verdict}, expected ${f.verdict}; bytes/report check ${ok ? 'ok' : 'FAILED'}`);
      }
    }
    // Nothing partial: every outbox file has its report, every report its file; no leftovers anywhere.
    const outbox = fs.readdirSync(pipeline.outbox);
    for (const f of outbox) {
      const partner = f.endsWith('.sluice.json') ? f.slice(0, -'.sluice.json'.length) : `${f}.sluice.json`;
      if (!outbox.includes(partner)) {
        corrupt++;
        problems.push(`outbox/${f} without ${partner}`);
      }
    }
    await pipeline.waitFor(() => fs.readdirSync(path.join(pipeline.dir, 'ingress')).filter((n) => n !== 'held').length === 0, 30_000, 'an empty spool');
    expect(fs.readdirSync(pipeline.inbox).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(fs.existsSync(path.join(pipeline.dir, 'ingress', 'held')) ? fs.readdirSync(path.join(pipeline.dir, 'ingress', 'held')) : []).toEqual([]);
    // Every delivery egress journalled was finished: no intent is left, and one completed entry per input.
    const journal = [...journalStates(pipeline.dir).values()];
    expect(journal.filter((s) => s !== 'done')).toEqual([]);
    expect(journal).toHaveLength(FILES);
    // The transparency log came through every kill whole: it audits clean, every leaf published.
    const audit = auditLog(path.join(pipeline.dir, 'log'), publicKey);
    expect(audit).toMatchObject({ ok: true, unpublished: 0 });
    expect(audit.partialBytes).toBeUndefined(); // recovery cut any torn record

    const counts = STAGES.map((s) => `${s}=${killed.filter((k) => k === s).length}`).join(' ');
    process.stdout.write(`crash injection: files=${FILES} kills=${kills} (${counts}) lost=${lost} duplicated=${duplicated} corrupt=${corrupt}\n`);
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    // `sluice dev` noticed every death and restarted the stage, as systemd would.
    expect(pipeline.events('stage-exited').length).toBeGreaterThanOrEqual(kills);
    expect(problems).toEqual([]);
    expect({ lost, duplicated, corrupt }).toEqual({ lost: 0, duplicated: 0, corrupt: 0 });
  }, 600_000);
});
