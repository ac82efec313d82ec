// 10,000 empty files dropped into the inbox at once, against ingress alone.
//
// The uploader is hostile and may flood the inbox (design.md). What ingress
// must do: take each upload exactly once, hand over a correct record and a
// read-only descriptor for each, keep its descriptors bounded, stay the same
// process, and keep serving (a clean upload after the flood arrives).
//
// Ingress runs as its real compiled daemon; its downstream is FakeTransit
// (sink.ts), which checks every record and descriptor the way transit does
// and acks at once. Why not the whole pipeline: egress signs one ML-DSA-65
// report per file, about 16 ms per file with two signers on this 2-core
// machine, so 10,000 files end to end take several minutes (measured:
// 9,179 in 150 s), and what would be measured is signing, not ingress.
// test/pipeline.test.ts sends 200 files end to end.
//
// The directory is on tmpfs (/dev/shm) when it has room: ingress fsyncs each
// spool entry and the inbox (about five fsyncs per file, ~12 ms on this
// disk), and this case is about ingress's handling of a flood, not about the
// disk; durability under crashes is test/crash's subject.
//
// Found with this case: ingress re-read the whole inbox after every finished
// transfer, O(n^2) for n waiting files (85 s of ingress CPU for the first
// 3,400 of 10,000; this case took 154 s instead of 12 s); rescan() in
// packages/ingress/src/pickup.ts now only pumps its queue while names are
// queued.
import { afterAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { devConfig } from '../../packages/cli/src/dev.js';
import { parseConfig, wireLimits } from '../../packages/core/src/index.js';
import { fdTargets, settledFdCount, steadyFdCount } from './impersonate.js';
import { FakeTransit } from './sink.js';

const INGRESS = fileURLToPath(new URL('../../packages/ingress/dist/main.js', import.meta.url));
const N = Number(process.env.SLUICE_FLOOD_FILES ?? 10_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** base - tmpfs if it has a gigabyte free, else the usual temporary directory. */
function base(): string {
  try {
    const s = fs.statfsSync('/dev/shm');
    if (s.bavail * s.bsize > 1024 ** 3) return '/dev/shm';
  } catch {
    /* no /dev/shm */
  }
  return os.tmpdir();
}

let child: ChildProcess | undefined;
let sink: FakeTransit | undefined;
let dir = '';
afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }
  sink?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it(`${N} empty files at once: each handed over exactly once, correctly; ingress keeps its descriptors and serves on`, async () => {
  dir = fs.mkdtempSync(path.join(base(), 'sluice-flood-'));
  const inbox = path.join(dir, 'inbox');
  fs.mkdirSync(inbox);
  const sock = path.join(dir, 'transit.sock');
  const cfg = devConfig(dir, { ingress: { transitSocket: sock, rescanIntervalMs: 2_000, recheckIntervalMs: 100 } });
  sink = FakeTransit.listen(sock, wireLimits(parseConfig(cfg)));
  fs.writeFileSync(path.join(dir, 'sluice.json'), JSON.stringify(cfg));

  const lines: Record<string, unknown>[] = [];
  child = spawn(process.execPath, [INGRESS, '--config', path.join(dir, 'sluice.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  const waitFor = async (pred: () => boolean, ms: number, what: string) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (child!.exitCode !== null) throw new Error(`ingress exited (${child!.exitCode}) while waiting for ${what}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; sink saw ${sink!.records} records; last lines:\n${lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`);
      await sleep(50);
    }
  };
  const upload = async (name: string) => {
    fs.writeFileSync(path.join(inbox, name), 'warm\n');
    await waitFor(() => sink!.names.has(name) && lines.some((l) => l.event === 'done' && l.id !== undefined && lines.some((m) => m.event === 'picked-up' && m.name === name && m.id === l.id)), 30_000, name);
  };

  await waitFor(() => lines.some((l) => l.event === 'started'), 30_000, 'ingress started');
  // upload() waits for ingress's `done` (spool copy forgotten): its descriptor count is settled.
  await upload('warm-up.txt');
  const pid = child.pid!;
  const before = await steadyFdCount(pid);

  const started = Date.now();
  for (let i = 0; i < N; i++) fs.writeFileSync(path.join(inbox, `empty-${String(i).padStart(5, '0')}.txt`), '');
  const written = Date.now();
  await waitFor(() => lines.filter((l) => l.event === 'done').length >= N + 1, 170_000, `${N} transfers done`);
  const seconds = (Date.now() - started) / 1000;
  console.log(`flood: ${N} empty files written in ${((written - started) / 1000).toFixed(1)} s, all handed over in ${seconds.toFixed(1)} s (${(N / seconds).toFixed(0)}/s) under ${dir}`);

  // Exactly once each, and every record and descriptor as transit requires.
  expect(sink.problems).toEqual([]);
  const flood = [...sink.names].filter(([n]) => n.startsWith('empty-'));
  expect(flood.length).toBe(N);
  expect(flood.filter(([, count]) => count !== 1)).toEqual([]);
  expect(fs.readdirSync(inbox)).toEqual([]);
  // Nothing left in the spool but its directories (every transfer was acked).
  const spoolLeft = fs.readdirSync(path.join(dir, 'ingress')).filter((f) => !fs.statSync(path.join(dir, 'ingress', f)).isDirectory());
  expect(spoolLeft).toEqual([]);
  expect(lines.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);

  // Still serving, same process, same descriptors.
  await upload('after-the-flood.txt');
  expect(child.exitCode).toBeNull();
  const after = await settledFdCount(pid, before);
  expect(after, `ingress descriptors before ${before}, after ${after}:\n${fdTargets(pid).join('\n')}`).toBe(before);
}, 200_000);
