#!/usr/bin/env node
/*
 * NAME
 *   bench/profile-summary.mjs - where a daemon's CPU went, from a V8 .cpuprofile
 *
 * SYNOPSIS
 *   node bench/run.mjs --only small --cpu-prof /tmp/prof
 *   node bench/profile-summary.mjs [--top N] [--callers FUNCTION] /tmp/prof/*.cpuprofile
 *
 * DESCRIPTION
 *   For each profile (one per Node process or worker thread of `sluice dev`:
 *   the supervisor, ingress, transit, egress and egress's signer workers),
 *   prints the sampled wall time, how much of it was idle, and the functions
 *   with the most self time, with their file and line, and the same grouped
 *   by file. It reads the profile's sample deltas, so the times are what
 *   V8 sampled, not estimates. With --callers, it shows instead the self
 *   time of one function (e.g. `fsync`, `open`: the native bindings of
 *   synchronous fs calls) split by the call paths that led to it.
 *
 *   Which process a profile belongs to is taken from the scripts it ran
 *   (packages/<stage>/dist/main.js, signer-worker.js, cli/dist/main.js).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** whoseProfile - which Sluice process a profile came from, by the scripts it ran. */
function whoseProfile(nodes) {
  const urls = new Set(nodes.map((n) => n.callFrame.url));
  for (const s of ['ingress', 'transit', 'egress']) if ([...urls].some((u) => u.includes(`/packages/${s}/dist/main.js`))) return s;
  if ([...urls].some((u) => u.includes('signer-worker.js'))) return 'egress signer worker';
  if ([...urls].some((u) => u.includes('/packages/cli/dist/'))) return 'sluice dev (supervisor)';
  return 'unknown';
}

/** shortUrl - a source location relative to the checkout or node_modules. */
function shortUrl(url) {
  if (!url) return '(native)';
  const m = /\/(packages\/.*|node_modules\/.*)$/.exec(url);
  return m ? m[1] : url.replace(/^file:\/\//, '');
}

/** callers - self time of every function named `name`, by its call path (up to 4 callers). */
function callers(prof, byId, self, name, top, title) {
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const paths = new Map();
  for (const [id, us] of self) {
    if (byId.get(id).callFrame.functionName !== name) continue;
    const chain = [];
    for (let p = parent.get(id); p !== undefined && chain.length < 4; p = parent.get(p)) {
      const cf = byId.get(p).callFrame;
      chain.push(`${cf.functionName || '(anonymous)'}@${shortUrl(cf.url).split('/').pop()}:${cf.lineNumber + 1}`);
    }
    const key = chain.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + us);
  }
  const lines = [`${title}: callers of ${name}`];
  for (const [k, us] of [...paths.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  return lines.join('\n');
}

/** summarize - self time per function and per file, in ms. */
function summarize(file, top) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const total = (prof.endTime - prof.startTime) / 1000;
  const fn = new Map();
  const files = new Map();
  let idle = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id).callFrame;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const key = `${cf.functionName || '(anonymous)'} ${shortUrl(cf.url)}:${cf.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const f = cf.url ? shortUrl(cf.url) : cf.functionName;
    files.set(f, (files.get(f) ?? 0) + us);
  }
  const busy = total - idle / 1000;
  if (callersOf) return callers(prof, byId, self, callersOf, top, `${path.basename(file)}: ${whoseProfile(prof.nodes)}`);
  const lines = [`${path.basename(file)}: ${whoseProfile(prof.nodes)}; ${total.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (${((100 * busy) / total).toFixed(0)}%)`];
  const list = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, us] of list(fn)) lines.push(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  lines.push('  by file:');
  for (const [k, us] of list(files)) lines.push(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  return lines.join('\n');
}

const args = process.argv.slice(2);
let top = 15;
let callersOf = null;
const i = args.indexOf('--top');
if (i >= 0) {
  top = Number(args[i + 1]);
  args.splice(i, 2);
}
const j = args.indexOf('--callers');
if (j >= 0) {
  callersOf = args[j + 1];
  args.splice(j, 2);
}
if (args.length === 0 || !Number.isInteger(top) || top < 1) {
  process.stderr.write('usage: node bench/profile-summary.mjs [--top N] [--callers FUNCTION] FILE.cpuprofile...\n');
  process.exit(2);
}
for (const f of args) process.stdout.write(`${summarize(f, top)}\n\n`);
