// Crash injection into the transparency log's batching: a burst of small
// files goes through `sluice dev` while egress alone is killed with SIGKILL
// at random instants within a batch window and its flush (egress.logBatchMs
// plus signing and the two fdatasyncs). After the last kill the station
// recovers by itself, and then:
//   - every input has exactly one report (none lost, none twice), with the
//     bytes delivered unchanged, and `verifyReport` accepts it;
//   - the log DIR/log passes auditLog (every leaf a report body, every head
//     signed, rooted in the leaves and consistent with the one before, no
//     partial record left behind, nothing unpublished);
//   - each report's leaf is the log's leaf at its log.index, and the tree
//     head it carries is one of the log's heads.
//
//   default (CI):  240 files, 10 kills of egress
//   longer:        make crash-long (SLUICE_CRASH_FILES / SLUICE_CRASH_KILLS)
//   replay:        SLUICE_CRASH_SEED=<seed from the test name> (file sizes,
//                  bursts and kill delays; the processes' timing stays the
//                  machine's own)
//
// `sluice dev` restarts a dead stage after a growing delay (100 ms doubling
// up to 5 s, as the units' RestartSec would); that delay, not the work, is
// most of this test's time.
import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../../packages/cli/src/dev.js';
import {
  auditLog,
  canonicalBytes,
  loadPublicKey,
  parseReport,
  serializeTreeHead,
  verifyReport,
  LOGGED_REPORT_FORMAT,
} from '../../packages/report/src/index.js';
import { journalStates } from '../support/journal.js';
import { headsOf, leavesOf } from '../support/log-files.js';
import { Pipeline, type Found } from '../support/pipeline.js';

const FILES = Number(process.env.SLUICE_CRASH_FILES ?? 240);
const KILLS = Number(process.env.SLUICE_CRASH_KILLS ?? 10);
const SEED = process.env.SLUICE_CRASH_SEED ? Number(process.env.SLUICE_CRASH_SEED) : randomInt(2 ** 31);
/** egress.logBatchMs of this test (the default is 0): a window, so that kills fall inside gathering batches too. */
const BATCH_MS = 20;
/** Latest kill after egress was seen delivering: the batch window, a signature and two fdatasyncs, and a margin. */
const KILL_WITHIN_MS = 3 * BATCH_MS;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32 - a small seeded generator, so a failing run's inputs and delays can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(SEED);
const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

/** input - a small text file (accepted) or, one in eight, a small ELF executable (rejected: its report is logged too). */
function input(i: number): { name: string; bytes: Buffer; verdict: 'accepted' | 'rejected' } {
  const name = `tlog-${String(i).padStart(5, '0')}.txt`;
  const body = Buffer.from(Array.from({ length: between(1, 4096) }, () => 0x61 + between(0, 25)));
  if (i % 8 === 7) return { name, bytes: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), body]), verdict: 'rejected' };
  return { name, bytes: body, verdict: 'accepted' };
}

let p: Pipeline | undefined;
let keep = false;
afterAll(async () => {
  await p?.stop(keep);
});

describe('crash injection into the transparency log', () => {
  it(`seed ${SEED}: ${FILES} small files, ${KILLS} SIGKILLs of egress while it batches: every delivery once, the log audits clean`, async () => {
    p = await Pipeline.start((dir) =>
      devConfig(dir, {
        ingress: { retryDelayMs: 200, ackTimeoutMs: 20_000, rescanIntervalMs: 2_000 },
        transit: { ackTimeoutMs: 20_000 },
        egress: { logBatchMs: BATCH_MS },
      }),
    );
    const pipeline = p;
    const inputs = Array.from({ length: FILES }, (_, i) => input(i));
    const egressPid = () => Number(pipeline.events('stage-started').filter((l) => l.which === 'egress').at(-1)?.childPid);

    // KILLS rounds: drop a burst, wait until the egress now running delivers one file of it (so it is
    // in the middle of a run of batches), then kill it after a random delay within a batch and its flush.
    // The last burst goes in after the last kill, for the recovered station.
    const burst = Math.max(1, Math.floor(FILES / (KILLS + 1)));
    const delays: number[] = [];
    const killed = new Set<number>();
    let next = 0;
    for (let k = 0; k < KILLS; k++) {
      const mark = pipeline.lines.length;
      for (const f of inputs.slice(next, next + burst)) pipeline.drop(f.name, f.bytes);
      next = Math.min(FILES, next + burst);
      let victim = 0;
      await pipeline.waitFor(
        () => {
          const pid = egressPid();
          // A line the last victim wrote before it died may arrive after `mark`: never that pid again.
          victim = !killed.has(pid) && pipeline.lines.slice(mark).some((l) => l.stage === 'egress' && l.event === 'delivered' && l.pid === pid) ? pid : 0;
          return victim !== 0;
        },
        60_000,
        `egress delivering in round ${k + 1} (seed ${SEED})`,
      );
      const delay = between(0, KILL_WITHIN_MS);
      delays.push(delay);
      await sleep(delay);
      process.kill(victim, 'SIGKILL');
      killed.add(victim);
    }
    for (const f of inputs.slice(next)) pipeline.drop(f.name, f.bytes);

    // The station recovers and settles: one report per input.
    const names = new Set(inputs.map((f) => f.name));
    await pipeline.waitFor(
      () => new Set(pipeline.reports().map((r) => r.report.name.original).filter((n) => names.has(n))).size === FILES,
      120_000,
      `a report for every input (seed ${SEED})`,
    );
    await pipeline.waitFor(() => journalStates(pipeline.dir).size >= FILES && [...journalStates(pipeline.dir).values()].every((s) => s === 'done'), 30_000, 'a finished journal');
    await sleep(1_000); // a duplicate, if any, would land now

    keep = true; // a failure below leaves the directory for a look
    const pub = loadPublicKey(pipeline.publicKey);
    const problems: string[] = [];
    const byName = new Map<string, Found[]>();
    for (const r of pipeline.reports()) byName.set(r.report.name.original, [...(byName.get(r.report.name.original) ?? []), r]);

    // Every delivery exactly once, its bytes unchanged, its report accepted by verifyReport.
    const reports: { name: string; text: string }[] = [];
    for (const f of inputs) {
      const rs = byName.get(f.name) ?? [];
      if (rs.length !== 1) {
        problems.push(`${f.name}: ${rs.length} reports`);
        if (rs.length === 0) continue;
      }
      const r = rs[0]!;
      const text = fs.readFileSync(r.reportPath, 'utf8');
      reports.push({ name: f.name, text });
      let res;
      if (r.place === 'outbox') {
        const out = fs.readFileSync(path.join(pipeline.outbox, r.report.name.stored));
        if (!out.equals(f.bytes)) problems.push(`${f.name}: delivered bytes differ`);
        res = verifyReport({ reportText: text, publicKey: pub, file: { size: out.length, sha256hex: sha(out) }, reportOnly: false });
      } else {
        if (r.report.sha256 !== sha(f.bytes)) problems.push(`${f.name}: rejected report names another digest`);
        res = verifyReport({ reportText: text, publicKey: pub, reportOnly: true });
      }
      if (!res.ok) problems.push(`${f.name}: verifyReport: ${JSON.stringify(res)}`);
      if (r.report.verdict !== f.verdict) problems.push(`${f.name}: ${r.report.verdict}, expected ${f.verdict}`);
    }
    // Nothing partial in the outbox: every file has its report and every report its file.
    const outbox = fs.readdirSync(pipeline.outbox);
    for (const f of outbox) {
      const partner = f.endsWith('.sluice.json') ? f.slice(0, -'.sluice.json'.length) : `${f}.sluice.json`;
      if (!outbox.includes(partner)) problems.push(`outbox/${f} without ${partner}`);
    }

    // The log as a consumer audits it.
    const logDir = path.join(pipeline.dir, 'log');
    const audit = auditLog(logDir, pub);
    const leaves = leavesOf(logDir);
    const heads = new Set(headsOf(logDir).map((h) => serializeTreeHead(h)));
    for (const { name, text } of reports) {
      const rep = parseReport(text);
      if (rep.format !== LOGGED_REPORT_FORMAT || !rep.log) {
        problems.push(`${name}: a ${rep.format} report, not ${LOGGED_REPORT_FORMAT}`);
        continue;
      }
      const { index, head } = rep.log;
      const leaf = leaves[index];
      if (leaf === undefined) {
        problems.push(`${name}: log.index ${index} is past the log's ${leaves.length} leaves`);
        continue;
      }
      if (!leaf.equals(Buffer.from(canonicalBytes(rep)))) problems.push(`${name}: the log's leaf ${index} is not this report's body`);
      if (!heads.has(serializeTreeHead(head))) problems.push(`${name}: its tree head (size ${head.size}) is not in the log's heads`);
    }

    const count = (event: string) => pipeline.events(event).length;
    process.stdout.write(
      `tlog crash injection: seed=${SEED} files=${FILES} kills=${delays.length} delays=[${delays.join(',')}]ms ` +
        `leaves=${audit.leaves} heads=${audit.heads} torn-leaf=${count('tlog-torn-leaf')} torn-head=${count('tlog-torn-head')} ` +
        `unpublished-at-start=${count('tlog-unpublished')} problems=${problems.length}\n`,
    );
    expect(delays).toHaveLength(KILLS);
    // `sluice dev` saw every kill, and only egress died.
    const exited = pipeline.events('stage-exited');
    expect(exited.filter((l) => l.which === 'egress')).toHaveLength(KILLS);
    expect(exited.filter((l) => l.which !== 'egress')).toEqual([]);
    expect(problems, `seed ${SEED}, directory ${pipeline.dir}`).toEqual([]);
    expect(audit, `seed ${SEED}, directory ${pipeline.dir}`).toMatchObject({ ok: true, unpublished: 0 });
    expect(audit.partialBytes, `seed ${SEED}: a partial leaf record left after recovery`).toBeUndefined();
    // A retried delivery may append its (identical) leaf again; there is never fewer than one per report.
    expect(audit.leaves).toBeGreaterThanOrEqual(FILES);
    keep = false;
  }, 120_000 + KILLS * 6_000);
});
