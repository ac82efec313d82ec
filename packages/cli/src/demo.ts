/*
 * NAME
 *   demo - `sluice demo`: a first look at Sluice in half a minute
 *
 * DESCRIPTION
 *   Runs `sluice dev` in a fresh temporary directory (its JSON logs go to
 *   DIR/sluice.log), drops five samples into the inbox the way an uploader
 *   would, waits for every outcome, verifies every report's signatures and
 *   prints a short human summary. Then it stops the pipeline. The directory
 *   is kept so the outputs can be inspected.
 *
 *   The samples: an image and a text file (accepted), an executable (refused
 *   by the content-type allowlist), a file over the demo's 1 MiB limit
 *   (refused at pickup), and a text file whose name carries a newline and a
 *   right-to-left override (accepted under a sanitized name).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, crc32 } from 'node:zlib';
import { loadPublicKey, verifyReport, hashFile } from '@sluice/report';
import { escapeForLog } from '@sluice/core';
import { devConfig, devLayout } from './dev.js';

/** tinyPng - a valid 1x1 PNG, made here rather than committed. */
export function tinyPng(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const t = Buffer.from(type, 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([t, data])) >>> 0);
    return Buffer.concat([len, t, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.from([0, 0x1f, 0x6f, 0xaa]))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

interface Sample {
  name: string;
  what: string;
  bytes: Buffer;
  /** The outcome the demo expects; any other is reported and makes it exit 1. */
  expect: 'accepted' | 'rejected';
}

/** demoSamples - what the demo drops, and why each is interesting. */
export function demoSamples(): Sample[] {
  return [
    { name: 'photo.png', what: 'an image', bytes: tinyPng(), expect: 'accepted' },
    { name: 'notes.txt', what: 'a text file', bytes: Buffer.from('Meeting notes\n- ship the demo\n- sign every report\n'), expect: 'accepted' },
    { name: 'tool', what: 'an executable', bytes: fs.readFileSync('/usr/bin/true'), expect: 'rejected' },
    { name: 'big.csv', what: 'a file over the 1 MiB limit', bytes: Buffer.from('a,b,c\n'.repeat(400_000)), expect: 'rejected' },
    { name: 'invoice\u202Efdp.txt\nrm -rf', what: 'a hostile name (RLO, newline)', bytes: Buffer.from('totally an invoice\n'), expect: 'accepted' },
  ];
}

/** findReport - the report whose original name is `name`, in outbox/ or rejected/. */
function findReport(dirs: { outbox: string; rejected: string }, name: string): { place: 'outbox' | 'rejected'; path: string; report: Record<string, unknown> } | null {
  for (const place of ['outbox', 'rejected'] as const) {
    const dir = dirs[place];
    for (const f of fs.readdirSync(dir)) {
      if (!f.endsWith('.sluice.json')) continue;
      try {
        const report = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
        if ((report.name as { original?: string })?.original === name) return { place, path: path.join(dir, f), report };
      } catch {
        /* being written: look again */
      }
    }
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** outcomeReason - why, in one line: the report's reason for a rejection, the checks that passed for an acceptance. */
export function outcomeReason(report: Record<string, unknown>): string {
  if (typeof report.reason === 'string' && report.reason !== '') return report.reason;
  const checks = Array.isArray(report.checks) ? (report.checks as { name?: unknown; result?: unknown }[]) : [];
  const passed = checks.filter((c) => c.result === 'pass').map((c) => String(c.name));
  return passed.length > 0 && passed.length === checks.length ? `every check passed (${passed.join(', ')})` : 'no reason given';
}

export async function runDemo(): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-demo-'));
  const l = devLayout(dir);
  fs.writeFileSync(l.config, `${JSON.stringify(devConfig(dir, { limits: { maxFileBytes: 1024 * 1024 }, station: 'sluice-demo' }), null, 2)}\n`);
  const logPath = path.join(dir, 'sluice.log');
  const logFd = fs.openSync(logPath, 'a');
  const cli = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'dev', '--dir', dir], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`Sluice demo: pipeline running in ${dir} (logs: ${logPath})`);

  try {
    // Ready when all three stages said "started".
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8') : '';
      const started = new Set([...text.matchAll(/"stage":"(\w+)".*"event":"started"/g)].map((m) => m[1]));
      if (['ingress', 'transit', 'egress'].every((s) => started.has(s))) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the pipeline did not start; see ${logPath}`);
      await sleep(100);
    }

    const samples = demoSamples();
    for (const s of samples) {
      // As an careful uploader would: write under a temporary name, rename in.
      const tmp = path.join(l.inbox, `.${process.pid}.part`);
      fs.writeFileSync(tmp, s.bytes);
      fs.renameSync(tmp, path.join(l.inbox, s.name));
    }
    out(`Dropped ${samples.length} files into ${l.inbox}\n`);

    const pub = loadPublicKey(l.publicKey);
    let failures = 0;
    for (const s of samples) {
      let found = findReport(l, s.name);
      const until = Date.now() + 60_000;
      while (!found && Date.now() < until) {
        await sleep(100);
        found = findReport(l, s.name);
      }
      const shown = escapeForLog(s.name);
      if (!found) {
        out(`  ${shown.padEnd(28)} NO OUTCOME within 60 s (see ${logPath})`);
        failures++;
        continue;
      }
      const r = found.report;
      const stored = (r.name as { stored: string }).stored;
      const reportText = fs.readFileSync(found.path, 'utf8');
      let check;
      if (found.place === 'outbox') {
        check = verifyReport({ reportText, publicKey: pub, file: await hashFile(path.join(l.outbox, stored)), reportOnly: false });
      } else {
        check = verifyReport({ reportText, publicKey: pub, reportOnly: true });
      }
      const verdict = String(r.verdict);
      out(`  ${shown.padEnd(28)} ${s.what}`);
      out(`      ${verdict.toUpperCase()}: ${outcomeReason(r)}`);
      if (verdict !== s.expect) {
        out(`      UNEXPECTED: the demo expected ${s.expect}`);
        failures++;
      }
      if (stored !== s.name) out(`      stored as: ${escapeForLog(stored)}`);
      if (found.place === 'outbox') out(`      file:   ${path.join(l.outbox, stored)}`);
      out(`      report: ${found.path} (signatures ${check.ok ? 'verified' : `NOT verified: ${check.reason}`})`);
      if (!check.ok) failures++;
    }
    out(`\nCheck a delivered file yourself:\n  npx sluice verify ${path.join(l.outbox, 'photo.png')} ${path.join(l.outbox, 'photo.png.sluice.json')} --pub ${l.publicKey}`);
    return failures === 0 ? 0 : 1;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    out(`Pipeline stopped. Outputs are kept in ${dir}; remove it when done.`);
  }
}
