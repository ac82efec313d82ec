/*
 * NAME
 *   status.test - `sluice status` and the metrics files on a running `sluice dev`
 *
 * DESCRIPTION
 *   Three files are dropped, two of which pass: `sluice status --dir DIR
 *   --json` says 3 received, 2 accepted, 1 rejected, every stage up, exit 0.
 *   A stage killed (its supervisor stopped, so it is not restarted yet):
 *   exit 2, the stage named. Each DIR/metrics/*.prom parses as Prometheus
 *   text (a strict reader, support/prom.ts) with the counts. A held file
 *   makes it a WARNING. Then a real node_exporter (Debian's
 *   prometheus-node-exporter), its textfile collector pointed at
 *   DIR/metrics, is scraped over HTTP on loopback and shows the same counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { CLI, Pipeline } from './support/pipeline.js';
import { parseProm, value } from './support/prom.js';

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

function status(dir: string, ...extra: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'status', '--dir', dir, ...extra], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function statusJson(dir: string) {
  const r = status(dir, '--json');
  return { code: r.code, doc: JSON.parse(r.out) as Record<string, any> };
}

async function until<T>(f: () => T, ok: (v: T) => boolean, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('sluice status on a running sluice dev', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await Pipeline.start((dir) => devConfig(dir));
  }, 60_000);
  afterAll(async () => {
    process.kill(p.child.pid!, 'SIGCONT');
    await p?.stop();
  });

  it('after three files were dropped and two accepted, --json says so, every stage up, exit 0', async () => {
    p.drop('one.txt', 'first\n');
    p.drop('two.json', '{"n": 2}\n');
    p.drop('three.txt', '\x7fELF\x02\x01\x01\x00'); // an executable named .txt: rejected
    for (const n of ['one.txt', 'two.json', 'three.txt']) await p.reportFor(n);
    const { code, doc } = await until(() => statusJson(p.dir), (r) => r.doc.files.sinceStart.rejected === 1 && r.doc.files.sinceStart.accepted === 2 && r.doc.files.sinceStart.received === 3 && r.doc.files.spooled === 0 && r.doc.files.inFlight === 0, 'status counts'); // each stage's file is rewritten every status.intervalMs
    expect(code).toBe(0);
    expect(doc.status).toBe('OK');
    expect(doc.files.sinceStart).toEqual({ received: 3, accepted: 2, rejected: 1 });
    expect(doc.files.lastHour).toEqual({ received: 3, accepted: 2, rejected: 1 });
    expect(doc.files).toMatchObject({ inbox: 0, spooled: 0, inFlight: 0, held: 0 });
    for (const s of ['ingress', 'transit', 'egress']) expect(doc.stages[s], s).toMatchObject({ up: true, state: 'running' });
    expect(doc.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(['one.txt', 'two.json', 'three.txt']).toContain(doc.lastDelivery.stored);
    expect(doc.problems).toEqual([]);
    // The human form leads with a Nagios status line.
    const human = status(p.dir);
    expect(human.code).toBe(0);
    expect(human.out.split('\n')[0]).toMatch(/^SLUICE OK - all stages up/);
    expect(human.out).toMatch(/received 3, accepted 2, rejected 1/);
  });

  it('writes DIR/metrics/*.prom in the Prometheus text format, with the counts, readable by owner and group only', async () => {
    const prom = (s: string) => parseProm(fs.readFileSync(path.join(p.dir, 'metrics', `${s}.prom`), 'utf8'));
    const egress = await until(() => prom('egress'), (x) => value(x, 'sluice_files_total', { stage: 'egress', outcome: 'accepted' }) === 2, 'egress.prom');
    expect(value(egress, 'sluice_files_total', { stage: 'egress', outcome: 'rejected' })).toBe(1);
    expect(value(egress, 'sluice_transfer_duration_seconds_count', { verdict: 'accepted' })).toBe(2);
    expect(egress.some((s) => s.name === 'sluice_signing_key_info' && s.value === 1)).toBe(true);
    const ingress = await until(() => prom('ingress'), (x) => value(x, 'sluice_files_total', { stage: 'ingress', outcome: 'done' }) === 3, 'ingress.prom');
    expect(value(ingress, 'sluice_files_total', { stage: 'ingress', outcome: 'picked-up' })).toBe(3);
    expect(value(ingress, 'sluice_files_total', { stage: 'ingress', outcome: 'done' })).toBe(3);
    expect(value(ingress, 'sluice_queue_files', { stage: 'ingress', queue: 'spooled' })).toBe(0);
    const transit = await until(() => prom('transit'), (x) => value(x, 'sluice_files_total', { stage: 'transit', outcome: 'rejected' }) === 1, 'transit.prom');
    expect(value(transit, 'sluice_files_total', { stage: 'transit', outcome: 'accepted' })).toBe(2);
    expect(value(transit, 'sluice_files_total', { stage: 'transit', outcome: 'rejected' })).toBe(1);
    for (const s of ['ingress', 'transit', 'egress']) {
      expect(fs.lstatSync(path.join(p.dir, 'metrics', `${s}.prom`)).isSymbolicLink()).toBe(true);
      for (const f of [`${s}.prom`, `${s}.json`]) expect(fs.statSync(path.join(p.dir, 'metrics', s, f)).mode & 0o777, f).toBe(0o640);
      expect(fs.statSync(path.join(p.dir, 'metrics', s)).mode & 0o777).toBe(0o750);
    }
  });

  it('a real node_exporter, its textfile collector on DIR/metrics, serves the counts over HTTP', async (ctx) => {
    if (!fs.existsSync(NODE_EXPORTER)) ctx.skip(`no ${NODE_EXPORTER} (Debian prometheus-node-exporter; test/setup-host.sh installs it as root)`);
    const port = await freePort();
    const ne: ChildProcess = spawn(
      NODE_EXPORTER,
      [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${path.join(p.dir, 'metrics')}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    ne.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const text = await until(
        () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => ''),
        () => true,
        'node_exporter',
      );
      let body = await text;
      const end = Date.now() + 30_000;
      while (!body.includes('sluice_files_total') && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      }
      const samples = parseProm(body);
      expect(value(samples, 'node_textfile_scrape_error'), stderr).toBe(0);
      expect(value(samples, 'sluice_files_total', { stage: 'egress', outcome: 'accepted' })).toBe(2);
      expect(value(samples, 'sluice_files_total', { stage: 'egress', outcome: 'rejected' })).toBe(1);
      expect(value(samples, 'sluice_files_total', { stage: 'ingress', outcome: 'picked-up' })).toBe(3);
      expect(samples.filter((s) => s.name === 'sluice_stage_start_time_seconds').map((s) => s.labels.stage).sort()).toEqual(['egress', 'ingress', 'transit']);
    } finally {
      ne.kill('SIGTERM');
      await new Promise((r) => (ne.exitCode !== null ? r(null) : ne.once('exit', r)));
    }
  });

  it('a file held in the spool makes it a WARNING naming it', async () => {
    const held = path.join(p.dir, 'ingress', 'held');
    fs.mkdirSync(held, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(held, 'fake-held.json'), '{}', { mode: 0o600 });
    try {
      const { code, doc } = await until(() => statusJson(p.dir), (r) => r.doc.files.held === 1, 'held counted');
      expect(code).toBe(1);
      expect(doc.status).toBe('WARNING');
      expect(doc.problems.map((x: { text: string }) => x.text).join('\n')).toMatch(/1 file\(s\) held/);
    } finally {
      fs.rmSync(held, { recursive: true, force: true });
    }
    await until(() => statusJson(p.dir), (r) => r.code === 0, 'OK again');
  });

  it('a stage killed: exit 2 (CRITICAL), naming it', async () => {
    const pid = statusJson(p.dir).doc.stages.transit.pid as number;
    process.kill(p.child.pid!, 'SIGSTOP'); // the supervisor would restart it at once; it may not meanwhile
    try {
      process.kill(pid, 'SIGKILL');
      const { code, doc } = await until(() => statusJson(p.dir), (r) => r.code !== 0, 'transit seen down');
      expect(code).toBe(2);
      expect(doc.status).toBe('CRITICAL');
      expect(doc.stages.transit.up).toBe(false);
      expect(doc.stages.ingress.up).toBe(true);
      expect(doc.problems.map((x: { text: string }) => x.text).join('\n')).toMatch(/^transit down: process \d+ is gone/m);
      const human = status(p.dir);
      expect(human.code).toBe(2);
      expect(human.out.split('\n')[0]).toMatch(/^SLUICE CRITICAL - transit down/);
    } finally {
      process.kill(p.child.pid!, 'SIGCONT');
    }
    // Restarted by sluice dev: up again.
    await until(() => statusJson(p.dir), (r) => r.code === 0 && r.doc.stages.transit.pid !== pid, 'transit up again');
  });
});

describe('sluice status without a station', () => {
  it('a directory with no sluice dev: UNKNOWN (3), saying why', () => {
    const r = status('/nonexistent/sluice-status-test');
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/^SLUICE UNKNOWN - /);
  });
});

/** freePort - a loopback port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
