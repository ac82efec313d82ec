/*
 * NAME
 *   pipeline - run `sluice dev` for a benchmark and watch what leaves it
 *
 * SYNOPSIS
 *   import { DevRun } from './pipeline.mjs';
 *   const run = await DevRun.start(dir, { ingress: {...}, transit: {...}, egress: {...} }, { env });
 *   run.pids                         // { ingress, transit, egress }: from the `started` log lines
 *   run.watchOutputs()               // inotify on outbox/ and rejected/: report name -> time seen
 *   await run.waitForReports(names, timeoutMs)
 *   run.count('delivered')           // log events seen so far
 *   DevRun.start(dir, overrides, { logFile })   // also append every log line to logFile
 *   const before = await loadBuild('/path/to/other/checkout');  // another built checkout
 *   DevRun.start(dir, overrides, { build: before })              // run its CLI instead of this one
 *   await run.stop()
 *
 * DESCRIPTION
 *   Drives the compiled CLI (packages/cli/dist/main.js) exactly as an
 *   operator would: `sluice dev --dir DIR`, three daemons as the current
 *   user, JSON logs on stdout. The configuration is devConfig() from the
 *   CLI itself (so the benchmark measures what `sluice dev` runs), with the
 *   given overrides; DIR/sluice.json is written before the start. With
 *   `build` (loadBuild(ROOT): another checkout on which `make build` ran,
 *   for `bench/run.mjs --baseline`), both the CLI and devConfig() come from
 *   ROOT/packages/cli/dist, so each build runs with its own defaults.
 *
 *   "Output visible" is the moment the report name appears in outbox/ (or
 *   rejected/): egress links the report last, so a consumer that waits for
 *   the report sees a complete file. The benchmark process learns it from
 *   inotify (fs.watch), the same signal a consumer would use, and stamps it
 *   with performance.now(), the clock the drops are stamped with.
 *
 *   Log lines are parsed only for what the benchmark needs: the stages'
 *   pids (the `pid` field of each stage's `started` line), event counts, and
 *   any line at level warn or above (printed at the end of a figure, because
 *   a warning during a benchmark usually means the figure is wrong).
 *
 * DIAGNOSTICS
 *   Every wait has a timeout and throws with the last log lines.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { devConfig, devLayout } from '../../packages/cli/dist/dev.js';

export const CLI = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));
export const REPORT_SUFFIX = '.sluice.json';

/** THIS_BUILD - the checkout this benchmark belongs to. */
export const THIS_BUILD = { root: fileURLToPath(new URL('../../', import.meta.url)), cli: CLI, devConfig, devLayout };

/** loadBuild - another built checkout's CLI and devConfig()/devLayout(); throws naming what is missing. */
export async function loadBuild(root) {
  const cli = path.join(root, 'packages/cli/dist/main.js');
  const dev = path.join(root, 'packages/cli/dist/dev.js');
  for (const f of [cli, dev]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`make build\` in ${root}`);
  const m = await import(pathToFileURL(dev).href);
  if (typeof m.devConfig !== 'function' || typeof m.devLayout !== 'function') throw new Error(`${dev} exports no devConfig/devLayout`);
  return { root, cli, devConfig: m.devConfig, devLayout: m.devLayout };
}

/** merge - devConfig() with per-section overrides. */
function configFor(dir, overrides = {}, build = THIS_BUILD) {
  const base = build.devConfig(dir, {});
  const out = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...base[k], ...v } : v;
  }
  return out;
}

export class DevRun {
  /** start - write the configuration, start `sluice dev`, resolve when every stage is up and connected. */
  static async start(dir, overrides = {}, { env = {}, startTimeoutMs = 60_000, logFile = null, build = THIS_BUILD } = {}) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'sluice.json'), `${JSON.stringify(configFor(dir, overrides, build), null, 2)}\n`);
    const child = spawn(process.execPath, [build.cli, 'dev', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    const run = new DevRun(dir, child, logFile, build);
    await run.waitFor(() => ['ingress', 'transit', 'egress'].every((s) => run.pids[s] !== undefined), startTimeoutMs, 'all stages started');
    await run.waitFor(() => run.count('downstream-connected') >= 2, startTimeoutMs, 'stages connected');
    return run;
  }

  constructor(dir, child, logFile = null, build = THIS_BUILD) {
    this.dir = dir;
    this.layout = build.devLayout(dir);
    this.child = child;
    this.pids = {};
    this.counts = new Map();
    this.problems = [];
    this.tail = [];
    this.seen = new Map(); // report file name -> performance.now() when it appeared
    this.watchers = [];
    this.exited = null;
    this.logFd = logFile ? fs.openSync(logFile, 'w') : -1;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.on('exit', (code, signal) => (this.exited = { code, signal }));
  }

  /** onLine - one JSON log line: count its event, remember pids and trouble. */
  onLine(text) {
    if (this.logFd >= 0) fs.writeSync(this.logFd, `${text}\n`);
    let l;
    try {
      l = JSON.parse(text);
    } catch {
      this.problems.push({ event: 'unparsed', text: text.slice(0, 300) });
      return;
    }
    this.tail.push(text);
    if (this.tail.length > 20) this.tail.shift();
    if (l.event) this.counts.set(l.event, (this.counts.get(l.event) ?? 0) + 1);
    if (l.event === 'started' && (l.stage === 'ingress' || l.stage === 'transit' || l.stage === 'egress')) this.pids[l.stage] = l.pid;
    if (l.level === 'warn' || l.level === 'error' || l.level === 'fatal') this.problems.push(l);
  }

  count(event) {
    return this.counts.get(event) ?? 0;
  }

  /** watchOutputs - stamp every report name the moment it is linked into outbox/ or rejected/. */
  watchOutputs() {
    for (const d of [this.layout.outbox, this.layout.rejected]) {
      const w = fs.watch(d, { persistent: false }, (_ev, name) => {
        if (name && name.endsWith(REPORT_SUFFIX) && !this.seen.has(name)) this.seen.set(name, performance.now());
      });
      this.watchers.push(w);
    }
  }

  /** waitForReports - until a report for every stored name has been seen (inotify, then a readdir to be sure). */
  async waitForReports(storedNames, timeoutMs) {
    const want = storedNames.map((n) => n + REPORT_SUFFIX);
    const missing = () => want.filter((n) => !this.seen.has(n));
    await this.waitFor(() => missing().length === 0, timeoutMs, `${want.length} reports`, () => {
      // inotify can overflow under a flood; a readdir is the ground truth (stamped late, so only a fallback).
      for (const d of [this.layout.outbox, this.layout.rejected]) {
        for (const f of fs.readdirSync(d)) if (f.endsWith(REPORT_SUFFIX) && !this.seen.has(f)) this.seen.set(f, performance.now());
      }
    });
    return want.map((n) => this.seen.get(n));
  }

  /** waitFor - poll a predicate every 10 ms; `slow` runs every second as a fallback. */
  async waitFor(pred, timeoutMs, what, slow = () => {}) {
    const end = Date.now() + timeoutMs;
    let nextSlow = Date.now() + 1000;
    while (!pred()) {
      if (this.exited) throw new Error(`sluice dev exited (${JSON.stringify(this.exited)}) while waiting for ${what}\n${this.tail.join('\n')}`);
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last log lines:\n${this.tail.join('\n')}`);
      if (Date.now() > nextSlow) {
        slow();
        nextSlow = Date.now() + 1000;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** reports - parse every report in outbox/ and rejected/ (correctness check after a figure). */
  reports() {
    const out = [];
    for (const [place, d] of [['outbox', this.layout.outbox], ['rejected', this.layout.rejected]]) {
      for (const f of fs.readdirSync(d)) {
        if (f.endsWith(REPORT_SUFFIX)) out.push({ place, file: f, report: JSON.parse(fs.readFileSync(path.join(d, f), 'utf8')) });
      }
    }
    return out;
  }

  /** stop - SIGTERM `sluice dev` (it stops the stages) and wait for it. */
  async stop() {
    for (const w of this.watchers) w.close();
    if (this.exited === null) {
      const done = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await done;
    }
    if (this.logFd >= 0) fs.closeSync(this.logFd);
    this.logFd = -1;
  }
}
