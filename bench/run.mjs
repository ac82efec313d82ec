#!/usr/bin/env node
/*
 * NAME
 *   bench/run.mjs - `make bench`: Sluice's throughput, latency and memory as ratios to this machine's bounds
 *
 * SYNOPSIS
 *   node bench/run.mjs [--only large,small,memory,clamd,bomb] [--dir DIR] [--keep]
 *                      [--json FILE] [--cpu-prof DIR] [--logs DIR]
 *                      [--small-files N] [--paced-files N] [--large-files N] [--clamd-files N]
 *   node bench/run.mjs --baseline CHECKOUT [--rounds N] [--only small,large,memory] [...]
 *
 * DESCRIPTION
 *   Runs the compiled pipeline (`sluice dev`, packages/cli/dist; run
 *   `make build` first, which `make bench` does) and prints four figures
 *   (and a fifth, "bomb": archive bombs through the archive check, each in
 *   a fresh process, against 2 s and 64 MiB; bench/lib/bomb.mjs),
 *   each beside the physical bound it is judged against, measured in the
 *   same run (docs/performance.md explains each bound and records results):
 *
 *   large   8 x 256 MiB PNG-shaped files renamed into the inbox at once;
 *           MB/s from the first rename to the last report visible, against
 *           the single-core copy+SHA-256 rate into a memfd. Goal >= 0.6:
 *           three stages each copy and hash every byte, on two cores. Also
 *           printed: the same copy into an O_DIRECT file, the CPU ceiling of
 *           the three stages they imply, and what the disk allows.
 *   small   2,000 x 4 KiB text files renamed in at once; files/s, and the
 *           latency of each file from its rename to its report appearing
 *           (p50, p99), against the one-process floor (one hybrid signature
 *           and two durable 4 KiB writes per file). Goal >= 1.3. Then 200
 *           more arriving evenly at half that rate: the latency of a file
 *           that does not queue behind a burst.
 *   memory  each daemon's peak RSS while one 2 GiB file passes, against its
 *           idle RSS after warm-up. Goal: peak <= idle + 64 MiB.
 *   clamd   64 x 8 MiB PNG-shaped files through the pipeline with the ClamAV
 *           check (a private clamd, one-signature database), MB/s end to
 *           end, against clamd's own FILDES rate on the same files at the
 *           same concurrency (4). Goal >= 0.9. Measured only when transit
 *           has a clamav check and clamd is installed; otherwise printed as
 *           not measured, with the reason.
 *
 *   With --baseline CHECKOUT (another checkout of Sluice on which `make
 *   build` ran, e.g. a worktree of the commit before a change), the figures
 *   are instead ratios against that build, run interleaved: for each chosen
 *   figure (small, large and memory; not the bounds, clamd or bomb), N
 *   rounds of (the build before, then this one), each in a fresh `sluice
 *   dev` with its own build's devConfig(). Each round gives after / before;
 *   the summary prints every round, then the median and range of the
 *   ratios against these goals:
 *     small   CPU per file over the three stages (burst) after / before
 *             <= 1/3; files/s after / before >= 2; p99 rename->report at
 *             half load after - before <= 20 ms (egress.logBatchMs's
 *             default, the transparency log's batch window). "Half load"
 *             is the same for both builds: files arriving evenly at half
 *             the burst rate the build before reached in that round.
 *             Each round also measures the filesystem floor
 *             (lib/bounds.mjs filesystemFloor: the per-file system calls of
 *             the three stages alone, synchronously in one process) and
 *             prints it as a share of the build before's CPU per file, and
 *             the cost of one signature with its independent check; with
 *             the reports per tree head of this build's burst (lines of
 *             DIR/log/heads), it prints what the goal's budget leaves per
 *             file once the floor and the signatures' share are paid.
 *     large   MB/s and CPU per MB after / before: no regression beyond the
 *             noise (the wider spread of either build's own runs).
 *     memory  each stage's growth (peak - idle RSS) after - before, and
 *             after's growth against the 64 MiB goal.
 *   Only the figure itself is timed on both builds; whether the ratio holds
 *   is judged on the median of the rounds (a single round here moves by
 *   tens of percent when other work shares the machine).
 *
 *   Every figure also checks correctness: each input must come out
 *   accepted, in outbox/, with a report stating its SHA-256. A wrong or
 *   missing output makes the run fail (exit 1); a ratio below its goal does
 *   not (these machines are shared and noisy: the figures are for people).
 *
 *   --help          print the usage.
 *   --dir DIR       work under DIR (default: a new directory in $TMPDIR,
 *                   removed at the end unless --keep; under DIR each figure's
 *                   own directory is removed unless --keep). ~5 GB free.
 *   --only LIST     run only these figures.
 *   --json FILE     also write every number as JSON.
 *   --cpu-prof DIR  profile every Node process of `sluice dev` (V8's sampling
 *                   profiler, started by lib/cpu-prof-preload.mjs: Node 20
 *                   refuses --cpu-prof in NODE_OPTIONS), one .cpuprofile per
 *                   process in DIR; read them with bench/profile-summary.mjs.
 *                   The figures are then slower.
 *   --logs DIR      keep every daemon log line, one FIGURE.jsonl per figure.
 *   --small-files N, --large-files N, --clamd-files N
 *                   fewer (or more) files than the standard 2,000, 8 and 64, for
 *                   quick experiments; the standard figures use the defaults.
 *   --paced-files N files at half load after the small burst (200; at most
 *                   --small-files): more makes the p99 steadier.
 *   --baseline CHECKOUT
 *                   compare against that build, interleaved (above); its CLI
 *                   is CHECKOUT/packages/cli/dist/main.js. Default figures:
 *                   small, large, memory. --logs and --cpu-prof then keep one
 *                   file / subdirectory per run (small-before-1, ...).
 *   --rounds N      rounds of (before, after) with --baseline (3).
 *
 * DIAGNOSTICS
 *   Progress on stderr; the summary on stdout. Warnings and errors the
 *   daemons logged during a figure are printed after it (there should be
 *   none).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DevRun, THIS_BUILD, loadBuild } from './lib/pipeline.mjs';
import { writeLargeInput, writeSmallInputs, randomBlock, syncAll } from './lib/inputs.mjs';
import { copyHashRate, copyHashDirectRate, diskMixRate, perFileFloor, filesystemFloor } from './lib/bounds.mjs';
import { memOf, shmem, resetPeak, RssSampler } from './lib/rss.mjs';
import { describeMachine } from './lib/machine.mjs';
import { BenchClamd, HAVE_CLAMD, CLAMD, PYTHON } from './lib/clamd.mjs';
import { cpuSnapshot, cpuSince } from './lib/cpu.mjs';
import { writeBombs, measureBomb } from './lib/bomb.mjs';
import { median, percentile, fmt } from './lib/stats.mjs';

const MiB = 1 << 20;
const GiB = 1 << 30;
/** The figures --baseline runs on both builds. */
const COMPARED = ['small', 'large', 'memory'];
/**
 * Goals against the build before (--baseline): CPU per small file at most a third, small files/s
 * at least twice, p99 at half load at most the batch window (egress.logBatchMs's default) later.
 */
const VS_BEFORE = { smallCpu: 1 / 3, smallRate: 2, pacedP99Ms: 20 };
const GOALS = { large: 0.6, small: 1.3, memoryMiB: 64, clamd: 0.9, bombMs: 2000, bombMiB: 64 };

/** parseArgs - the few options above; anything else is a usage error. */
function parseArgs(argv) {
  const o = { only: null, dir: null, keep: false, json: null, cpuProf: null, logs: null, smallFiles: 2000, pacedFiles: 200, largeFiles: 8, clamdFiles: 64, baseline: null, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const count = (v) => (/^[1-9][0-9]{0,5}$/.test(v) ? Number(v) : usage(`${a} needs a count`));
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--only') o.only = val().split(',');
    else if (a === '--dir') o.dir = path.resolve(val());
    else if (a === '--keep') o.keep = true;
    else if (a === '--json') o.json = path.resolve(val());
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a === '--cpu-prof') o.cpuProf = path.resolve(val());
    else if (a === '--logs') o.logs = path.resolve(val());
    else if (a === '--small-files') o.smallFiles = count(val());
    else if (a === '--large-files') o.largeFiles = count(val());
    else if (a === '--clamd-files') o.clamdFiles = count(val());
    else if (a === '--paced-files') o.pacedFiles = count(val());
    else if (a === '--baseline') o.baseline = path.resolve(val());
    else if (a === '--rounds') o.rounds = count(val());
    else usage(`unknown argument ${a}`);
  }
  o.only ??= o.baseline ? [...COMPARED] : ['large', 'small', 'memory', 'clamd', 'bomb'];
  for (const f of o.only) if (!['large', 'small', 'memory', 'clamd', 'bomb'].includes(f)) usage(`unknown figure ${f}`);
  if (o.baseline) for (const f of o.only) if (!COMPARED.includes(f)) usage(`--baseline compares only ${COMPARED.join(', ')}, not ${f}`);
  return o;
}

const USAGE =
  'usage: node bench/run.mjs [--only large,small,memory,clamd,bomb] [--dir DIR] [--keep] [--json FILE]\n' +
  '                          [--cpu-prof DIR] [--logs DIR] [--small-files N] [--paced-files N] [--large-files N] [--clamd-files N]\n' +
  '       node bench/run.mjs --baseline CHECKOUT [--rounds N] [--only small,large,memory] [other options as above]\n' +
  '(docs/performance.md; the header of bench/run.mjs explains every option)';

function usage(msg) {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

const sumOf = (o) => Object.values(o).reduce((a, b) => a + b, 0);
const say = (msg) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** problemsOf - warnings and errors the daemons logged, one line each (they usually mean a figure is wrong). */
function problemsOf(run) {
  return run.problems.map((l) => `  ${l.stage ?? '?'} ${l.level ?? ''} ${l.event ?? ''} ${l.reason ?? l.text ?? ''}`.trimEnd());
}

/** checkOutputs - every input accepted into outbox/ with a report stating its digest; returns the list of faults. */
function checkOutputs(run, inputs) {
  const byName = new Map(run.reports().map((r) => [r.report.name.original, r]));
  const faults = [];
  for (const f of inputs) {
    const r = byName.get(f.name);
    if (!r) faults.push(`${f.name}: no report`);
    else if (r.place !== 'outbox' || r.report.verdict !== 'accepted') faults.push(`${f.name}: ${r.report.verdict} (${r.report.reason})`);
    else if (r.report.sha256 !== f.sha256 || r.report.size !== f.size) faults.push(`${f.name}: report states other bytes`);
    else if (fs.statSync(path.join(run.layout.outbox, r.report.name.stored)).size !== f.size) faults.push(`${f.name}: output has the wrong size`);
  }
  return faults;
}

/** dropAll - rename every input into the inbox as fast as possible; returns each rename's time. */
function dropAll(run, inputs) {
  const at = [];
  for (const f of inputs) {
    fs.renameSync(f.path, path.join(run.layout.inbox, f.name));
    at.push(performance.now());
  }
  return at;
}

/** dropPaced - rename inputs into the inbox evenly spaced at `perSec`; returns each rename's time. */
async function dropPaced(run, inputs, perSec) {
  const at = [];
  const t0 = performance.now();
  for (let i = 0; i < inputs.length; i++) {
    const due = t0 + (i * 1000) / perSec;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    fs.renameSync(inputs[i].path, path.join(run.layout.inbox, inputs[i].name));
    at.push(performance.now());
  }
  return at;
}

/** devEnv - environment for `sluice dev` (CPU profiles on request, in `sub` of --cpu-prof's DIR if given). */
function devEnv(opts, sub = null) {
  if (!opts.cpuProf) return {};
  const dir = sub ? path.join(opts.cpuProf, sub) : opts.cpuProf;
  fs.mkdirSync(dir, { recursive: true });
  // Node 20 refuses --cpu-prof in NODE_OPTIONS; a preloaded module does the same (lib/cpu-prof-preload.mjs).
  const preload = new URL('./lib/cpu-prof-preload.mjs', import.meta.url).pathname;
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(), SLUICE_CPU_PROF_DIR: dir };
}

const STAGES = ['ingress', 'transit', 'egress'];

/** stagePids - the three daemons' pids. */
const stagePids = (run) => STAGES.map((s) => run.pids[s]);

/** cpuUse - cpuSince() with the pids named by stage. */
function cpuUse(run, c) {
  const byStage = (m) => Object.fromEntries(STAGES.map((s) => [s, m[run.pids[s]]]));
  return { ...c, daemons: byStage(c.daemons), kernel: byStage(c.kernel) };
}

/** cpuLine - two lines on where the CPU and the disk went while a figure ran. */
function cpuLine(c, extra = '') {
  const d = Object.values(c.daemons).reduce((a, b) => a + b, 0);
  const avail = c.cores * c.seconds;
  const per = Object.entries(c.daemons).map(([s, v]) => `${s} ${fmt(v, 1)}`).join(', ');
  const k = Object.values(c.kernel).map((v) => fmt(v, 1)).join(', ');
  const disks = Object.entries(c.disks)
    .map(([n, v]) => `${n} busy ${fmt((100 * v.busy) / c.seconds, 0)}%, ${fmt(v.written / 1e6, 0)} MB written, ${fmt(v.flushes)} flushes`)
    .join('; ');
  return (
    `  CPU while it ran          daemons ${fmt(d, 1)} s (${per}; in the kernel ${k}) of ${fmt(avail, 1)} s available; machine busy ${fmt((100 * c.machine.busy) / avail, 0)}%, iowait ${fmt((100 * c.machine.iowait) / avail, 0)}%${extra}\n` +
    `  disk while it ran        ${disks || 'nothing written'}`
  );
}

/**
 * devOpts - how to start `sluice dev` for one figure: profiling, log capture, which build.
 * With --baseline every run is named (`figure` is then e.g. small-before-2): its log file and its
 * profiles' subdirectory carry that name.
 */
function devOpts(opts, figure, build = THIS_BUILD) {
  if (opts.logs) fs.mkdirSync(opts.logs, { recursive: true });
  return { env: devEnv(opts, opts.baseline ? figure : null), logFile: opts.logs ? path.join(opts.logs, `${figure}.jsonl`) : null, build };
}

/** figureLarge - 8 x 256 MiB end to end vs single-core copy+SHA-256 into a memfd. */
/** writeLargeInputs - `count` PNG-shaped inputs of `size` bytes under `stage`, synced. */
function writeLargeInputs(stage, count, size) {
  const block = randomBlock();
  const inputs = [];
  for (let i = 0; i < count; i++) inputs.push(writeLargeInput(stage, `large-${i}.png`, size, block));
  syncAll();
  return inputs;
}

/** timeLarge - drop `inputs` into a started run at once: seconds from the first rename to the last report, MB/s, CPU, faults. */
async function timeLarge(run, inputs) {
  run.watchOutputs();
  const cpu0 = cpuSnapshot(stagePids(run));
  const at = dropAll(run, inputs);
  const seen = await run.waitForReports(inputs.map((f) => f.name), 240_000);
  const cpu = cpuUse(run, cpuSince(cpu0));
  const seconds = (Math.max(...seen) - at[0]) / 1000;
  const bytes = inputs.reduce((n, f) => n + f.size, 0);
  return { seconds, mbps: bytes / seconds / 1e6, cpu, faults: checkOutputs(run, inputs) };
}

async function figureLarge(root, opts) {
  const dir = path.join(root, 'large');
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  const count = opts.largeFiles;
  const size = 256 * MiB;
  say(`large: writing ${count} x 256 MiB inputs`);
  const inputs = writeLargeInputs(stage, count, size);
  say('large: measuring the bounds (copy+SHA-256 into a memfd; direct copies; the disk)');
  // Three inputs for each bound, taken in turn (with fewer than 8 files, --large-files, they repeat).
  const three = (from, dir = null) => [0, 1, 2].map((k) => inputs[(from + k) % count]).map((f) => (dir ? path.join(dir, f.name) : f.path));
  const copyBefore = copyHashRate(three(0));
  const directCopy = copyHashDirectRate(three(3), stage);
  const diskBefore = await diskMixRate(stage, three(5));
  syncAll();

  say('large: running the pipeline');
  const run = await DevRun.start(path.join(dir, 'dev'), {}, devOpts(opts, 'large'));
  let result;
  try {
    const { seconds, mbps, cpu, faults } = await timeLarge(run, inputs);
    // The bound again, right after, on the outputs (the same bytes, in the page cache like the inputs
    // were): the mean of before and after tracks a machine whose load changes under the figure.
    const copyAfter = copyHashRate(three(0, run.layout.outbox));
    const diskAfter = await diskMixRate(stage, three(5, run.layout.outbox));
    const disk = { mbps: (diskBefore.mbps + diskAfter.mbps) / 2, runs: [diskBefore.mbps, diskAfter.mbps] };
    const copy = { mbps: (copyBefore.mbps + copyAfter.mbps) / 2, before: copyBefore.mbps, after: copyAfter.mbps };
    result = {
      files: count,
      fileBytes: size,
      seconds,
      mbps,
      boundCopyHashMBps: copy.mbps,
      boundCopyHashRuns: [copy.before, copy.after],
      copyHashDirectMBps: directCopy.mbps,
      // Three stages on every core: ingress and egress copy into files with O_DIRECT, transit into a memfd.
      cpuCeilingMBps: os.availableParallelism() / (2 / directCopy.mbps + 1 / copy.mbps),
      boundDiskMBps: disk.mbps,
      diskRuns: disk.runs,
      ratio: mbps / copy.mbps,
      ratioToDiskBound: mbps / disk.mbps,
      cpu,
      goal: GOALS.large,
      faults,
      problems: problemsOf(run),
    };
  } finally {
    await run.stop();
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/** headsIn - signed tree heads in the run's transparency log so far (null: a build without one). */
function headsIn(run) {
  if (!run.layout.log) return null;
  try {
    return fs.readFileSync(path.join(run.layout.log, 'heads'), 'latin1').split('\n').length - 1;
  } catch (err) {
    if (err.code === 'ENOENT') return 0;
    throw err;
  }
}

/**
 * smallPass - one `sluice dev` of `build` through the small-file work: 10 files to warm up, a
 * burst of `count` renamed in at once (files/s, CPU, latency), then `pacedCount` more arriving
 * evenly at `pacedRate` per second (null: half the burst's rate), the latency of a file that does
 * not queue behind a burst. The inputs are written under `dir`, which is removed unless --keep.
 */
async function smallPass(dir, opts, name, build, { count, pacedCount, pacedRate = null }) {
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  const warm = writeSmallInputs(stage, 10, 4096, 'warm');
  const inputs = writeSmallInputs(stage, count, 4096, 's');
  const paced = writeSmallInputs(stage, pacedCount, 4096, 'p');
  syncAll();
  const run = await DevRun.start(path.join(dir, 'dev'), {}, devOpts(opts, name, build));
  try {
    run.watchOutputs();
    // Warm-up: the first files pay for lazy loading and JIT in every stage; not what an operator sees later.
    dropAll(run, warm);
    await run.waitForReports(warm.map((f) => f.name), 60_000);
    const heads0 = headsIn(run);
    const cpu0 = cpuSnapshot(stagePids(run));
    const at = dropAll(run, inputs);
    const seen = await run.waitForReports(inputs.map((f) => f.name), 240_000);
    const cpu = cpuUse(run, cpuSince(cpu0));
    const heads = heads0 === null ? null : headsIn(run) - heads0;
    const seconds = (Math.max(...seen) - at[0]) / 1000;
    const filesPerSec = count / seconds;
    const latencies = seen.map((t, i) => t - at[i]);
    // Latency under a steady load instead of a burst: by default files arriving evenly at half the
    // rate just measured, so what is measured is the pipeline's own latency, not a queue of 2,000.
    const rate = pacedRate ?? filesPerSec / 2;
    const pcpu0 = cpuSnapshot(stagePids(run));
    const pacedAt = await dropPaced(run, paced, rate);
    const pacedSeen = await run.waitForReports(paced.map((f) => f.name), 240_000);
    const pacedCpu = cpuUse(run, cpuSince(pcpu0));
    const pacedLatencies = pacedSeen.map((t, i) => t - pacedAt[i]);
    const faults = checkOutputs(run, [...inputs, ...paced]);
    const dist = (v) => ({ p50: percentile(v, 0.5), p99: percentile(v, 0.99), max: Math.max(...v) });
    return {
      files: count,
      fileBytes: 4096,
      seconds,
      filesPerSec,
      latencyMs: dist(latencies),
      cpu,
      cpuMsPerFile: (1000 * sumOf(cpu.daemons)) / count,
      headsSigned: heads,
      paced: { files: paced.length, filesPerSec: rate, latencyMs: dist(pacedLatencies), cpu: pacedCpu, cpuMsPerFile: (1000 * sumOf(pacedCpu.daemons)) / paced.length },
      faults,
      problems: problemsOf(run),
    };
  } finally {
    await run.stop();
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** figureSmall - 2,000 x 4 KiB end to end (files/s, latency) vs the one-process per-file floor. */
async function figureSmall(root, opts) {
  const dir = path.join(root, 'small');
  fs.mkdirSync(dir, { recursive: true });
  say('small: measuring the one-process floor (sign + two durable 4 KiB writes per file)');
  const floorBefore = await perFileFloor(path.join(dir, 'floor-before'), 300);
  say(`small: running the pipeline (${opts.smallFiles} files)`);
  const pass = await smallPass(path.join(dir, 'pipeline'), opts, 'small', THIS_BUILD, { count: opts.smallFiles, pacedCount: Math.min(opts.pacedFiles, opts.smallFiles) });
  try {
    say('small: the floor again, after the pipeline');
    const floorAfter = await perFileFloor(path.join(dir, 'floor-after'), 300);
    const floor = {
      filesPerSec: (floorBefore.filesPerSec + floorAfter.filesPerSec) / 2,
      msPerFile: (floorBefore.msPerFile + floorAfter.msPerFile) / 2,
      signMsPerFile: (floorBefore.signMsPerFile + floorAfter.signMsPerFile) / 2,
    };
    return {
      ...pass,
      floorFilesPerSec: floor.filesPerSec,
      floorRuns: [floorBefore.filesPerSec, floorAfter.filesPerSec],
      floorMsPerFile: floor.msPerFile,
      floorSignMsPerFile: floor.signMsPerFile,
      ratio: pass.filesPerSec / floor.filesPerSec,
      goal: GOALS.small,
    };
  } finally {
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** figureMemory - peak RSS of each daemon while a 2 GiB file passes vs its idle RSS (`name`: its directory and log, with --baseline e.g. memory-before-1). */
async function figureMemory(root, opts, name = 'memory', build = THIS_BUILD) {
  const dir = path.join(root, name);
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  say('memory: writing a 2 GiB input');
  const big = writeLargeInput(stage, 'big.png', 2 * GiB, randomBlock());
  const warm = [writeLargeInput(stage, 'warm.png', 4 * MiB, randomBlock(MiB)), ...writeSmallInputs(stage, 2, 4096, 'warm')];
  syncAll();

  say('memory: running the pipeline');
  const run = await DevRun.start(path.join(dir, 'dev'), {}, devOpts(opts, name, build));
  let result;
  try {
    run.watchOutputs();
    dropAll(run, warm);
    await run.waitForReports(warm.map((f) => f.name), 60_000);
    await sleep(1000); // let the warm-up's garbage be collected and the stages go idle
    const pids = stagePids(run);
    const idle = Object.fromEntries(STAGES.map((s) => [s, memOf(run.pids[s]).rss]));
    const idleShmem = shmem();
    const reset = pids.every((p) => resetPeak(p));
    const sampler = new RssSampler(pids, 20);
    sampler.start();
    dropAll(run, [big]);
    await run.waitForReports([big.name], 240_000);
    sampler.stop();
    const per = {};
    for (const s of STAGES) {
      const pid = run.pids[s];
      const hwm = memOf(pid).hwm;
      const peak = reset ? Math.max(hwm, sampler.max[pid]) : sampler.max[pid];
      per[s] = { idle: idle[s], peak, growth: peak - idle[s], hwm, sampledMax: sampler.max[pid] };
    }
    const faults = checkOutputs(run, [big]);
    if (run.count('stage-exited') > 0) faults.push('a stage exited during the figure; its RSS is not comparable');
    result = {
      fileBytes: big.size,
      peakFromKernel: reset,
      stages: per,
      shmemGrowth: sampler.maxShmem - idleShmem,
      goalGrowthBytes: GOALS.memoryMiB * MiB,
      faults,
      problems: problemsOf(run),
    };
  } finally {
    await run.stop();
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/**
 * cpuShareCeiling - the clamd figure's ceiling if the cores were its only limit.
 *
 * clamd alone keeps `coresAlone` of the cores busy. Through Sluice every MB costs clamd's CPU (as
 * measured alone) plus the three stages' (as measured in the run); the cores allow at most
 * cores / (both per MB), and that over clamd's own rate is the best ratio any pipeline with that
 * much work per MB could reach here. When clamd alone already uses every core, the ratio can only
 * approach clamd / (clamd + Sluice) per MB.
 */
function cpuShareCeiling(alone, cpu, bytes, clamdMBps) {
  const clamdPerMB = alone.cpu / (alone.bytes / 1e6);
  const sluicePerMB = Object.values(cpu.daemons).reduce((a, b) => a + b, 0) / (bytes / 1e6);
  const mbps = cpu.cores / (clamdPerMB + sluicePerMB);
  return { coresAlone: alone.cpu / alone.seconds, clamdPerMB, sluicePerMB, mbps, ratio: mbps / clamdMBps };
}

/**
 * figureBomb - archive bombs (bench/lib/bomb.mjs) through the archive check,
 * each in a fresh process: time to refusal and RSS growth, against 2 s and
 * 64 MiB (docs/capacity.md, "Archives"). A bomb that is not refused is a fault.
 */
async function figureBomb(root) {
  const dir = path.join(root, 'bombs');
  say('bomb: writing the bombs');
  const files = await writeBombs(dir);
  const rows = [];
  const faults = [];
  for (const f of files) {
    const m = measureBomb(f.path, dir, f.archives);
    rows.push({ name: f.name, what: f.what, bytes: f.bytes, ...m });
    if (m.outcome !== 'fail') faults.push(`${f.name} was not refused: ${m.reason}`);
    say(`bomb: ${f.name} ${m.outcome} in ${fmt(m.ms, 0)} ms, +${fmt(m.growthBytes / MiB, 1)} MiB: ${m.reason}`);
  }
  return { measured: true, rows, goalMs: GOALS.bombMs, goalGrowthBytes: GOALS.bombMiB * MiB, faults };
}

/** figureClamd - end to end with the ClamAV check vs clamd's own FILDES rate on the same files. */
async function figureClamd(root, opts) {
  if (!fs.existsSync(new URL('../packages/transit/dist/checks/clamav.js', import.meta.url))) return { measured: false, why: 'clamd check not available' };
  if (!HAVE_CLAMD) return { measured: false, why: `${CLAMD} or ${PYTHON} missing (apt-get install clamav-daemon python3)` };
  const dir = path.join(root, 'clamd');
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  const count = opts.clamdFiles;
  const size = 8 * MiB; // under transit.clamav.maxBytes (25 MiB by default), as a scanned file must be
  const concurrency = 4; // transit.clamav.maxConcurrent's default, and clamd's MaxThreads here
  say(`clamd: writing ${count} x ${size / MiB} MiB inputs, starting clamd`);
  const block = randomBlock();
  const inputs = [];
  for (let i = 0; i < count; i++) inputs.push(writeLargeInput(stage, `scan-${i}.png`, size, block));
  syncAll();
  const clamd = await BenchClamd.start(path.join(dir, 'clamd'), { threads: concurrency });
  let result;
  try {
    say('clamd: measuring clamd alone (FILDES)');
    // clamd's own CPU while it runs alone: how many cores it keeps busy, and what a MB costs it.
    const alone = { cpu: 0, seconds: 0, bytes: 0 };
    const fildesRate = async (paths) => {
      const s0 = cpuSnapshot([clamd.pid]);
      const r = await clamd.fildesRate(paths, concurrency);
      const c = cpuSince(s0);
      alone.cpu += c.daemons[clamd.pid];
      alone.seconds += c.seconds;
      alone.bytes += r.bytes;
      return r;
    };
    const ownBefore = await fildesRate(inputs.map((f) => f.path));
    say('clamd: running the pipeline with the ClamAV check');
    const run = await DevRun.start(path.join(dir, 'dev'), { transit: { clamav: { enabled: true, socket: clamd.socket, maxConcurrent: concurrency } } }, devOpts(opts, 'clamd'));
    try {
      await run.waitFor(() => run.count('scanner-ready') >= 1, 30_000, 'transit: clamd ready');
      run.watchOutputs();
      const cpu0 = cpuSnapshot([...stagePids(run), clamd.pid]);
      const at = dropAll(run, inputs);
      const seen = await run.waitForReports(inputs.map((f) => f.name), 240_000);
      const c = cpuSince(cpu0);
      const cpu = { ...cpuUse(run, c), clamd: c.daemons[clamd.pid] };
      const seconds = (Math.max(...seen) - at[0]) / 1000;
      const bytes = count * size;
      const faults = checkOutputs(run, inputs);
      // clamd alone again, after, on the outputs (the same bytes): the mean tracks changing load.
      const ownAfter = await fildesRate(inputs.map((f) => path.join(run.layout.outbox, f.name)));
      const own = { mbps: (ownBefore.mbps + ownAfter.mbps) / 2, runs: [ownBefore.mbps, ownAfter.mbps] };
      const scanned = run.reports().filter((r) => r.report.checks.some((k) => k.name === 'clamav' && k.result === 'pass')).length;
      if (scanned !== count) faults.push(`only ${scanned} of ${count} reports show a passing clamav check`);
      result = {
        measured: true,
        files: count,
        fileBytes: size,
        concurrency,
        engine: clamd.version,
        seconds,
        mbps: bytes / seconds / 1e6,
        clamdMBps: own.mbps,
        clamdRuns: own.runs,
        ratio: bytes / seconds / 1e6 / own.mbps,
        goal: GOALS.clamd,
        cpu,
        cpuShare: cpuShareCeiling(alone, cpu, bytes, own.mbps),
        faults,
        problems: problemsOf(run),
      };
    } finally {
      await run.stop();
    }
  } finally {
    await clamd.stop();
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

/** describeBuild - a checkout's commit, for the summary. */
function describeBuild(root) {
  try {
    return execFileSync('git', ['-C', root, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim().slice(0, 90);
  } catch {
    return 'not a git checkout';
  }
}

/** spread - median, min and max of a list. */
const spread = (v) => ({ median: median(v), min: Math.min(...v), max: Math.max(...v) });

/** relSpread - (max - min) / median of one build's own runs: the noise between runs of the same build. */
const relSpread = (v) => (Math.max(...v) - Math.min(...v)) / median(v);

/**
 * largePass - one `sluice dev` of `build` through the large-file work (fresh inputs, written and
 * synced first, as in figureLarge), without the bounds: MB/s end to end and CPU per MB.
 */
async function largePass(dir, opts, name, build) {
  const stage = path.join(dir, 'stage');
  fs.mkdirSync(stage, { recursive: true });
  const count = opts.largeFiles;
  const size = 256 * MiB;
  const inputs = writeLargeInputs(stage, count, size);
  const run = await DevRun.start(path.join(dir, 'dev'), {}, devOpts(opts, name, build));
  try {
    const { seconds, mbps, cpu, faults } = await timeLarge(run, inputs);
    return { files: count, fileBytes: size, seconds, mbps, cpuMsPerMB: (1000 * sumOf(cpu.daemons)) / ((count * size) / 1e6), cpu, faults, problems: problemsOf(run) };
  } finally {
    await run.stop();
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * compareBuilds - --baseline: each chosen figure on the build before and on this one, alternately
 * (before, after, before, after, ...: `opts.rounds` rounds), so that a change in the machine's load
 * hits both builds alike; each round gives a ratio of after to before, and the summary their median
 * and range. The half-load part of the small figure offers both builds the same load: half the
 * burst rate the build before reached in the same round.
 */
async function compareBuilds(root, opts) {
  const builds = { before: await loadBuild(opts.baseline), after: THIS_BUILD };
  const out = { before: { root: builds.before.root, commit: describeBuild(builds.before.root) }, after: { root: THIS_BUILD.root, commit: describeBuild(THIS_BUILD.root) }, rounds: opts.rounds };
  const each = async (figure, pass) => {
    const rows = [];
    for (let r = 1; r <= opts.rounds; r++) {
      const row = { round: r };
      for (const which of ['before', 'after']) {
        say(`${figure}: round ${r} of ${opts.rounds}, the build ${which === 'before' ? 'before' : 'after (this checkout)'}`);
        row[which] = await pass(`${figure}-${which}-${r}`, builds[which], row);
      }
      rows.push(row);
    }
    return rows;
  };
  if (opts.only.includes('small')) {
    const pacedCount = Math.min(opts.pacedFiles, opts.smallFiles);
    out.small = await each('small', async (name, build, row) => {
      const pass = await smallPass(path.join(root, name), opts, name, build, { count: opts.smallFiles, pacedCount, pacedRate: row.before?.paced.filesPerSec ?? null });
      if (row.before) {
        // The floor of the same round: what the filesystem steps alone cost per file, minutes from both passes.
        const dir = path.join(root, `${name}-floor`);
        row.floor = filesystemFloor(dir, 500);
        // One signature with its independent check, as a tree head gets (perFileFloor's signing part).
        row.floor.signMs = (await perFileFloor(path.join(dir, 'sign'), 40)).signMsPerFile;
        if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
      }
      return pass;
    });
  }
  if (opts.only.includes('large')) out.large = await each('large', (name, build) => largePass(path.join(root, name), opts, name, build));
  if (opts.only.includes('memory')) out.memory = await each('memory', (name, build) => figureMemory(root, opts, name, build));
  return out;
}

/** printComparison - --baseline's summary: every round's figures, then the ratios against the goals. */
function printComparison(machine, c) {
  const out = [];
  const mark = (ok) => (ok ? 'meets goal' : 'GOAL NOT MET');
  const range = (s, d, unit = '') => `${fmt(s.median, d)}${unit} (rounds: ${fmt(s.min, d)} to ${fmt(s.max, d)})`;
  out.push('');
  out.push(`Sluice benchmark against the build before — ${new Date().toISOString()}`);
  out.push(`machine: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memory} RAM, Linux ${machine.kernel}, Node ${machine.node}`);
  out.push(`before:  ${c.before.root} (${c.before.commit})`);
  out.push(`after:   ${c.after.root} (${c.after.commit})`);
  out.push(`${c.rounds} rounds, each running the build before, then this one; ratios are after / before within a round`);
  const busy = (cpu) => `${fmt((100 * cpu.machine.busy) / (cpu.cores * cpu.seconds), 0)}%`;
  if (c.small) {
    const x = c.small;
    const f = x[0].before;
    out.push('');
    out.push(`small files  ${fmt(f.files)} x 4 KiB renamed in at once; then ${f.paced.files} arriving evenly at half the build before's burst rate in that round (both builds get that load)`);
    out.push('  round build   files/s  CPU ms/file (ingress, transit, egress)  burst p50/p99 ms  half load: files/s  p50/p99 ms  CPU ms/file  machine busy');
    for (const row of x) {
      for (const w of ['before', 'after']) {
        const r = row[w];
        const per = STAGES.map((s) => fmt((1000 * r.cpu.daemons[s]) / r.files, 2)).join(', ');
        out.push(
          `  ${String(row.round).padEnd(5)} ${w.padEnd(7)} ${fmt(r.filesPerSec, 0).padStart(7)}  ${fmt(r.cpuMsPerFile, 2).padStart(6)} (${per})`.padEnd(72) +
            `${fmt(r.latencyMs.p50, 0)}/${fmt(r.latencyMs.p99, 0)}`.padEnd(18) +
            `${fmt(r.paced.filesPerSec, 0).padStart(18)}  ${`${fmt(r.paced.latencyMs.p50, 1)}/${fmt(r.paced.latencyMs.p99, 1)}`.padEnd(11)} ${fmt(r.paced.cpuMsPerFile, 2).padStart(11)}  ${busy(r.cpu)}`,
        );
      }
    }
    const cpuRatio = spread(x.map((r) => r.after.cpuMsPerFile / r.before.cpuMsPerFile));
    const rateRatio = spread(x.map((r) => r.after.filesPerSec / r.before.filesPerSec));
    const p99Diff = spread(x.map((r) => r.after.paced.latencyMs.p99 - r.before.paced.latencyMs.p99));
    const p50Diff = spread(x.map((r) => r.after.paced.latencyMs.p50 - r.before.paced.latencyMs.p50));
    out.push(`  CPU per file, after/before      ${range(cpuRatio, 3)}  (goal <= ${fmt(VS_BEFORE.smallCpu, 3)}: ${mark(cpuRatio.median <= VS_BEFORE.smallCpu)})`);
    out.push(`  files/s, after/before           ${range(rateRatio, 2)}  (goal >= ${VS_BEFORE.smallRate}: ${mark(rateRatio.median >= VS_BEFORE.smallRate)})`);
    out.push(`  p99 at half load, after-before  ${range(p99Diff, 1, ' ms')}  (goal <= +${VS_BEFORE.pacedP99Ms} ms, the batch window: ${mark(p99Diff.median <= VS_BEFORE.pacedP99Ms)})`);
    out.push(`  p50 at half load, after-before  ${range(p50Diff, 1, ' ms')}`);
    const floor = spread(x.map((r) => r.floor.cpuMsPerFile));
    const floorShare = spread(x.map((r) => r.floor.cpuMsPerFile / r.before.cpuMsPerFile));
    out.push(`  filesystem floor, CPU ms/file   ${range(floor, 2)}  = ${range(floorShare, 3)} of the build before's CPU per file (bounds.mjs filesystemFloor: the stages' filesystem steps alone)`);
    c.smallRatios = { cpuPerFile: cpuRatio, filesPerSec: rateRatio, pacedP99DiffMs: p99Diff, pacedP50DiffMs: p50Diff, filesystemFloorMs: floor, floorOfBefore: floorShare };
    if (x.every((r) => r.after.headsSigned > 0)) {
      // What the goal leaves for everything else: the floor and the signatures' share are paid by any build of this design.
      const perHead = spread(x.map((r) => r.after.files / r.after.headsSigned));
      const signShare = spread(x.map((r) => r.floor.signMs / (r.after.files / r.after.headsSigned)));
      const left = spread(x.map((r) => VS_BEFORE.smallCpu * r.before.cpuMsPerFile - r.floor.cpuMsPerFile - r.floor.signMs / (r.after.files / r.after.headsSigned)));
      out.push(`  reports per tree head (burst)   ${range(perHead, 1)}; one head's signature and check ${range(spread(x.map((r) => r.floor.signMs)), 2, ' ms')}: ${range(signShare, 2, ' ms')} per file`);
      out.push(`  the goal's budget left          ${range(left, 2, ' ms')} per file for everything else the stages do (goal x before - floor - signatures' share)`);
      c.smallRatios.reportsPerHead = perHead;
      c.smallRatios.signMsPerFile = signShare;
      c.smallRatios.budgetLeftMs = left;
    }
  }
  if (c.large) {
    const x = c.large;
    out.push('');
    out.push(`large files  ${x[0].before.files} x ${x[0].before.fileBytes / MiB} MiB renamed in at once, scanners off`);
    for (const row of x) {
      for (const w of ['before', 'after']) {
        const r = row[w];
        out.push(`  ${String(row.round).padEnd(5)} ${w.padEnd(7)} ${fmt(r.mbps, 0).padStart(5)} MB/s (${fmt(r.seconds, 2)} s), CPU ${fmt(r.cpuMsPerMB, 2)} ms per MB, machine busy ${busy(r.cpu)}`);
      }
    }
    const rate = spread(x.map((r) => r.after.mbps / r.before.mbps));
    const cpu = spread(x.map((r) => r.after.cpuMsPerMB / r.before.cpuMsPerMB));
    const noise = Math.max(relSpread(x.map((r) => r.before.mbps)), relSpread(x.map((r) => r.after.mbps)));
    out.push(`  MB/s, after/before              ${range(rate, 3)}  (noise: the widest spread of one build's own runs, ${fmt(100 * noise, 0)}%: ${rate.median >= 1 - noise ? 'no regression beyond noise' : 'REGRESSION beyond noise'})`);
    out.push(`  CPU per MB, after/before        ${range(cpu, 3)}`);
    c.largeRatios = { mbps: rate, cpuPerMB: cpu, noise };
  }
  if (c.memory) {
    const x = c.memory;
    out.push('');
    out.push(`memory       one ${x[0].before.fileBytes / GiB} GiB file; growth = peak RSS - idle RSS (MiB), per stage`);
    for (const row of x) {
      for (const w of ['before', 'after']) {
        const r = row[w];
        out.push(`  ${String(row.round).padEnd(5)} ${w.padEnd(7)} ` + STAGES.map((s) => `${s} idle ${fmt(r.stages[s].idle / MiB, 1)}, growth ${fmt(r.stages[s].growth / MiB, 1)}`).join('; '));
      }
    }
    c.memoryDiffs = {};
    for (const s of STAGES) {
      const growth = spread(x.map((r) => (r.after.stages[s].growth - r.before.stages[s].growth) / MiB));
      const idle = spread(x.map((r) => (r.after.stages[s].idle - r.before.stages[s].idle) / MiB));
      const noise = Math.max(...['before', 'after'].map((w) => Math.max(...x.map((r) => r[w].stages[s].growth)) - Math.min(...x.map((r) => r[w].stages[s].growth)))) / MiB;
      const worst = Math.max(...x.map((r) => r.after.stages[s].growth));
      out.push(
        `  ${s.padEnd(8)} growth after-before ${range(growth, 1, ' MiB')}, idle after-before ${range(idle, 1, ' MiB')}; ` +
          `noise ${fmt(noise, 1)} MiB: ${growth.median <= noise + 1 ? 'no regression beyond noise' : 'REGRESSION beyond noise'}; after's worst growth ${fmt(worst / MiB, 1)} MiB (goal <= ${GOALS.memoryMiB}: ${mark(worst <= GOALS.memoryMiB * MiB)})`,
      );
      c.memoryDiffs[s] = { growthMiB: growth, idleMiB: idle, noiseMiB: noise };
    }
  }
  for (const fig of COMPARED) {
    for (const row of c[fig] ?? []) {
      for (const w of ['before', 'after']) {
        const r = row[w];
        if (r.faults?.length) out.push(`FAULTS in ${fig}, round ${row.round}, ${w}:\n  ${r.faults.slice(0, 20).join('\n  ')}`);
        if (r.problems?.length) out.push(`daemon warnings during ${fig}, round ${row.round}, ${w} (${r.problems.length}):\n${r.problems.slice(0, 10).join('\n')}`);
      }
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** printSummary - the human-readable result. */
function printSummary(machine, r) {
  const out = [];
  const goalMark = (ok) => (ok ? 'meets goal' : 'BELOW GOAL');
  // A bound measured before and after the figure that moved by more than 10% says the machine's
  // speed changed under the figure (a shared host): the ratio is that uncertain, and says so.
  const drift = ([before, after]) => {
    const moved = Math.abs(before - after) / ((before + after) / 2);
    return moved > 0.1 ? `; the bound moved ${fmt(100 * moved, 0)}% between before and after: the machine's speed changed` : '';
  };
  const ratioLine = (x, runs) => `  ratio                    ${fmt(x.ratio, 2)}  (goal >= ${x.goal}: ${goalMark(x.ratio >= x.goal)}${drift(runs)})`;
  out.push('');
  out.push(`Sluice benchmark — ${new Date().toISOString()}`);
  out.push(`machine: ${machine.cpus} CPUs (${machine.cpu}), ${machine.memory} RAM, Linux ${machine.kernel}, Node ${machine.node}`);
  out.push(`disk:    ${machine.disk}`);
  out.push('');
  if (r.large) {
    const x = r.large;
    out.push(`large files  ${x.files} x ${x.fileBytes / MiB} MiB, scanners off`);
    out.push(`  end to end               ${fmt(x.mbps, 0)} MB/s  (${fmt(x.seconds, 2)} s)`);
    out.push(`  bound: copy+SHA-256      ${fmt(x.boundCopyHashMBps, 0)} MB/s  (one core, into a memfd; before ${fmt(x.boundCopyHashRuns[0], 0)}, after ${fmt(x.boundCopyHashRuns[1], 0)})`);
    out.push(ratioLine(x, x.boundCopyHashRuns));
    out.push(`  same, O_DIRECT + fsync   ${fmt(x.copyHashDirectMBps, 0)} MB per CPU-second  (one core, into a file; what ingress and egress do per byte)`);
    out.push(`  CPU ceiling, ${x.cpu.cores} cores     ${fmt(x.cpuCeilingMBps, 0)} MB/s  (= ${x.cpu.cores} / (2/direct + 1/memfd); end to end is ${fmt((100 * x.mbps) / x.cpuCeilingMBps, 0)}% of it)`);
    out.push(`  disk bound               ${fmt(x.boundDiskMBps, 0)} MB/s  (2 direct writes + 1 direct read per byte, 3 at once; before ${fmt(x.diskRuns[0], 0)}, after ${fmt(x.diskRuns[1], 0)}; end to end is ${fmt(100 * x.ratioToDiskBound, 0)}% of it)`);
    out.push(cpuLine(x.cpu));
  }
  if (r.small) {
    const x = r.small;
    out.push(`small files  ${fmt(x.files)} x 4 KiB, all renamed in at once`);
    out.push(`  end to end               ${fmt(x.filesPerSec, 0)} files/s  (${fmt(x.seconds, 2)} s)`);
    out.push(`  latency rename->report   p50 ${fmt(x.latencyMs.p50, 0)} ms, p99 ${fmt(x.latencyMs.p99, 0)} ms (all ${fmt(x.files)} at once: mostly queueing)`);
    out.push(`  latency at half load     p50 ${fmt(x.paced.latencyMs.p50, 0)} ms, p99 ${fmt(x.paced.latencyMs.p99, 0)} ms (${x.paced.files} more files arriving evenly at ${fmt(x.paced.filesPerSec, 0)}/s)`);
    out.push(`  bound: one-process floor ${fmt(x.floorFilesPerSec, 0)} files/s  (before ${fmt(x.floorRuns[0], 0)}, after ${fmt(x.floorRuns[1], 0)}; ${fmt(x.floorMsPerFile, 2)} ms/file, of which signing ${fmt(x.floorSignMsPerFile, 2)})`);
    out.push(ratioLine(x, x.floorRuns));
    out.push(cpuLine(x.cpu));
  }
  if (r.memory) {
    const x = r.memory;
    out.push(`memory       one ${x.fileBytes / GiB} GiB file; peak ${x.peakFromKernel ? 'VmHWM (reset after warm-up)' : 'sampled VmRSS'} vs idle VmRSS`);
    for (const [s, m] of Object.entries(x.stages)) {
      out.push(`  ${s.padEnd(8)} idle ${fmt(m.idle / MiB, 1)} MiB, peak ${fmt(m.peak / MiB, 1)} MiB, growth ${fmt(m.growth / MiB, 1)} MiB  (goal <= ${GOALS.memoryMiB} MiB: ${goalMark(m.growth <= x.goalGrowthBytes)})`);
    }
    out.push(`  shared memory            +${fmt(x.shmemGrowth / MiB, 0)} MiB at most: transit's sealed memfd, RAM by design, not in any RSS`);
  }
  if (r.clamd && !r.clamd.measured) out.push(`clamd        not measured (${r.clamd.why})`);
  else if (r.clamd) {
    const x = r.clamd;
    out.push(`clamd        ${x.files} x ${x.fileBytes / MiB} MiB, ClamAV check on, ${x.concurrency} scans at once (${x.engine}, one-signature database)`);
    out.push(`  end to end               ${fmt(x.mbps, 0)} MB/s  (${fmt(x.seconds, 2)} s)`);
    out.push(`  bound: clamd FILDES      ${fmt(x.clamdMBps, 0)} MB/s  (clamd alone, same files, same concurrency; before ${fmt(x.clamdRuns[0], 0)}, after ${fmt(x.clamdRuns[1], 0)})`);
    out.push(ratioLine(x, x.clamdRuns));
    const sh = x.cpuShare;
    out.push(`  clamd alone              ${fmt(sh.coresAlone, 2)} of ${x.cpu.cores} cores busy; ${fmt(sh.clamdPerMB * 1000, 1)} ms of CPU per MB; Sluice's stages add ${fmt(sh.sluicePerMB * 1000, 1)} ms per MB`);
    out.push(`  CPU ceiling              ${fmt(sh.mbps, 0)} MB/s  (= cores / (clamd + Sluice per MB): ratio at most ${fmt(Math.min(1, sh.ratio), 2)} with this much work per MB)`);
    out.push(cpuLine(x.cpu, `; clamd ${fmt(x.cpu.clamd, 1)} s`));
  }
  if (r.bomb) {
    out.push(`bomb         archive bombs through the archive check, each in a fresh process (bench/lib/bomb.mjs)`);
    for (const b of r.bomb.rows) {
      const ok = b.outcome === 'fail' && b.ms <= r.bomb.goalMs && b.growthBytes <= r.bomb.goalGrowthBytes;
      out.push(`  ${b.name.padEnd(12)} ${String(b.bytes).padStart(8)} B  ${b.outcome === 'fail' ? 'refused' : 'NOT REFUSED'} in ${fmt(b.ms, 0)} ms, RSS +${fmt(b.growthBytes / MiB, 1)} MiB  (goal <= ${r.bomb.goalMs} ms, <= ${GOALS.bombMiB} MiB: ${goalMark(ok)})`);
      out.push(`    ${b.what}: ${b.reason}`);
    }
  }
  for (const [k, x] of Object.entries(r)) {
    if (x?.faults?.length) out.push(`FAULTS in ${k}:\n  ${x.faults.slice(0, 20).join('\n  ')}`);
    if (x?.problems?.length) out.push(`daemon warnings during ${k} (${x.problems.length}):\n${x.problems.slice(0, 10).join('\n')}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(new URL('../packages/cli/dist/main.js', import.meta.url))) usage('packages/cli/dist is missing: run `make build` first');
  if (opts.baseline && !fs.existsSync(path.join(opts.baseline, 'packages/cli/dist/main.js'))) usage(`${opts.baseline}/packages/cli/dist is missing: run \`make build\` in the baseline checkout`);
  const root = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
  fs.mkdirSync(root, { recursive: true });
  const machine = describeMachine(root);
  say(`working in ${root}${opts.keep || opts.dir ? ' (kept)' : ''}`);
  const t0 = performance.now();
  const results = {};
  if (opts.baseline) {
    let cmp;
    try {
      cmp = await compareBuilds(root, opts);
    } finally {
      if (!opts.keep && !opts.dir) fs.rmSync(root, { recursive: true, force: true });
    }
    printComparison(machine, cmp);
    say(`done in ${fmt((performance.now() - t0) / 1000, 0)} s`);
    if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ machine, at: new Date().toISOString(), comparison: cmp }, null, 2)}\n`);
    const faulty = COMPARED.some((f) => (cmp[f] ?? []).some((row) => row.before.faults?.length || row.after.faults?.length));
    process.exitCode = faulty ? 1 : 0;
    return;
  }
  try {
    if (opts.only.includes('large')) results.large = await figureLarge(root, opts);
    if (opts.only.includes('small')) results.small = await figureSmall(root, opts);
    if (opts.only.includes('memory')) results.memory = await figureMemory(root, opts);
    if (opts.only.includes('clamd')) results.clamd = await figureClamd(root, opts);
    if (opts.only.includes('bomb')) results.bomb = await figureBomb(root);
  } finally {
    if (!opts.keep && !opts.dir) fs.rmSync(root, { recursive: true, force: true });
  }
  printSummary(machine, results);
  say(`done in ${fmt((performance.now() - t0) / 1000, 0)} s`);
  if (opts.json) fs.writeFileSync(opts.json, `${JSON.stringify({ machine, at: new Date().toISOString(), results }, null, 2)}\n`);
  const faulty = Object.values(results).some((x) => x?.faults?.length);
  process.exitCode = faulty ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
