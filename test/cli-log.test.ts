// sluice log verify / sluice log prove on a log written by egress's own TransparencyLog: exit 0
// for the log as written; exit 3, naming the first inconsistency, for a changed byte of a leaf or
// of a tree head, and for a removed leaf; prove prints a consistency proof that checks out
// against the two roots (and the signed head of that size).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  canonicalBytes,
  encodeLeafRecord,
  generateKeys,
  LOGGED_REPORT_FORMAT,
  signTreeHead,
  verifyConsistency,
  verifyTreeHead,
  writeKeyFiles,
  LOG_FILES,
} from '../packages/report/src/index.js';
import { TransparencyLog } from '../packages/egress/src/tlog.js';
import { headsOf, leavesOf } from './support/log-files.js';


const CLI = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url));
const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });

const keys = generateKeys();
let work: string;
let logDir: string;
let pubPath: string;
const log = { info() {}, warn() {}, error() {} } as never;

const leaf = (i: number) =>
  canonicalBytes({
    format: LOGGED_REPORT_FORMAT,
    station: 'cli-test',
    software: 'sluice 0.1.0',
    key: keys.public.keyId,
    transfer: `t-${i}`,
    name: { original: `f${i}`, stored: `f${i}` },
    size: 1,
    sha256: '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    verdict: 'accepted',
    reason: '',
    checks: [],
    times: { received: '2026-12-05T10:00:00Z', checked: '2026-12-05T10:00:01Z', reported: '2026-12-05T10:00:02Z' },
  });

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cli-log-'));
  logDir = path.join(work, 'log');
  fs.mkdirSync(path.join(work, 'keys'), { mode: 0o700 });
  pubPath = writeKeyFiles(path.join(work, 'keys'), { keys }).publicPath;
  for (const burst of [3, 10, 1]) {
    const t = TransparencyLog.open({ dir: logDir, station: 'cli-test', publicKey: keys.public, batchMs: 1, batchMax: 4, sign: async (b) => signTreeHead(b, keys.secret), log });
    const base = t.size;
    await Promise.all(Array.from({ length: burst }, (_, k) => t.append(leaf(base + k))));
    await t.close();
  }
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** copyLog - a copy of the log to tamper with. */
function copyLog(): string {
  const d = fs.mkdtempSync(path.join(work, 'copy-'));
  for (const f of Object.values(LOG_FILES)) fs.copyFileSync(path.join(logDir, f), path.join(d, f));
  return d;
}

describe('sluice log verify', () => {
  it('exits 0 for the log as egress wrote it', () => {
    const r = sluice('log', 'verify', logDir, '--pub', pubPath);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok: 14 leaves, \d+ tree heads/);
  });

  it('exits 3 naming the first inconsistency for a changed leaf byte, a changed head byte, a removed leaf', () => {
    const a = copyLog();
    const leaves = fs.readFileSync(path.join(a, LOG_FILES.leaves));
    leaves[leaves.indexOf('t-5') + 2] = '6'.charCodeAt(0);
    fs.writeFileSync(path.join(a, LOG_FILES.leaves), leaves);
    let r = sluice('log', 'verify', a, '--pub', pubPath);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^FAILED: .*: tree head \d+ \(size \d+\): root [0-9a-f]{64} is not the root of leaves/);

    const b = copyLog();
    const heads = fs.readFileSync(path.join(b, LOG_FILES.heads), 'latin1');
    fs.writeFileSync(path.join(b, LOG_FILES.heads), heads.replace(/"time":"(\d{4})/, (_m, y: string) => `"time":"${Number(y) + 1}`));
    r = sluice('log', 'verify', b, '--pub', pubPath);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^FAILED: .*tree head 1 .*signatures? do(es)? not verify/);

    const c = copyLog();
    const records = leavesOf(c);
    fs.writeFileSync(path.join(c, LOG_FILES.leaves), Buffer.concat(records.filter((_, i) => i !== 7).map((l) => encodeLeafRecord(l))));
    r = sluice('log', 'verify', c, '--pub', pubPath);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/^FAILED: .*tree head \d+ \(size \d+\): (root|covers)/);
  });

  it('a missing directory or key is a usage error (2)', () => {
    expect(sluice('log', 'verify', path.join(work, 'nope'), '--pub', pubPath).status).toBe(2);
    expect(sluice('log', 'verify', logDir).status).toBe(2);
  });
});

describe('sluice log prove', () => {
  it('prints a consistency proof between two sizes that checks out, with the signed head of the larger', () => {
    const heads = headsOf(logDir);
    const [older, newer] = [heads[0]!, heads[heads.length - 1]!];
    const r = sluice('log', 'prove', logDir, '--from', String(older.size), '--to', String(newer.size));
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { fromRoot: string; toRoot: string; proof: string[]; head: typeof newer };
    expect(out.fromRoot).toBe(older.root);
    expect(out.toRoot).toBe(newer.root);
    expect(verifyTreeHead(out.head, keys.public)).toBeNull();
    const proof = out.proof.map((h) => Buffer.from(h, 'hex'));
    expect(verifyConsistency(older.size, newer.size, Buffer.from(older.root, 'hex'), Buffer.from(newer.root, 'hex'), proof)).toBe(true);
    expect(sluice('log', 'prove', logDir, '--from', '5', '--to', '99').status).toBe(2);
  });
});
