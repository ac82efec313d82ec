// journal at scale: a log of a million records (hours of a compromised transit, or a busy week) is
// read back and rewritten by egress in a small heap, keeping at most journalMaxDeliveries done
// deliveries and every unfinished one. The journal runs in a child node with --max-old-space-size,
// compiled (dist/, from `make build`), so the heap it is given is the only one it has.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JOURNAL_FILE } from './journal.js';

const DIST = fileURLToPath(new URL('../dist/journal.js', import.meta.url));
const SRC = fileURLToPath(new URL('./journal.ts', import.meta.url));

/** The heap the child gets (MiB): far less than a million records would take if they were all kept. */
const HEAP_MB = 64;
const EXPIRED = 100_000; // delivered lines older than journalDays
const OLDER = 800_000; // delivered lines within journalDays
const PAIRS = 50_000; // intent + done, the newest deliveries
const UNFINISHED = 20; // intents without a done: their names stay reserved
const KEEP = 60_000; // maxDeliveries
const DAY = 86_400_000;

let state: string;

const hex = (i: number) => i.toString(16).padStart(64, '0');
const num = (i: number) => String(i).padStart(7, '0');

/** writeLog - the million-record log, streamed in batches (about 180 MB). */
async function writeLog(file: string): Promise<void> {
  const out = fs.createWriteStream(file, { mode: 0o600 });
  const now = Date.now();
  const put = (text: string) => new Promise<void>((resolve, reject) => (out.write(text, (err) => (err ? reject(err) : resolve()))));
  const delivered = (id: string, i: number, at: number) =>
    `{"op":"delivered","id":"${id}","sha256":"${hex(i)}","place":"outbox","stored":"file-${id}.txt","at":"${new Date(at).toISOString()}"}\n`;
  const intend = (id: string, i: number) =>
    JSON.stringify({
      op: 'intend',
      entry: { id, sha256: hex(i), size: i, verdict: 'accepted', place: 'outbox', stored: `file-${id}.txt`, body: { transfer: id, name: { original: `file ${id}.txt` }, checks: [{ name: 'type', result: 'pass' }] } },
    }) + '\n';
  const batch = 10_000;
  for (let b = 0; b < EXPIRED; b += batch) {
    let s = '';
    for (let i = b; i < b + batch; i++) s += delivered(`x${num(i)}`, i, now - 10 * DAY + i);
    await put(s);
  }
  for (let b = 0; b < OLDER; b += batch) {
    let s = '';
    for (let i = b; i < b + batch; i++) s += delivered(`d${num(i)}`, i, now - 3 * DAY + i * 100);
    await put(s);
  }
  for (let b = 0; b < PAIRS; b += batch) {
    let s = '';
    for (let i = b; i < b + batch; i++) s += intend(`p${num(i)}`, i) + `{"op":"done","id":"p${num(i)}","at":"${new Date(now - DAY + i * 100).toISOString()}"}\n`;
    await put(s);
  }
  let s = '';
  for (let i = 0; i < UNFINISHED; i++) s += intend(`u${num(i)}`, i);
  await put(s);
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

// The child: open the journal (load, resolve, compact), answer a few lookups, close.
const CHILD = `
import { Journal } from ${JSON.stringify(pathToFileURL(DIST).href)};
const events = [];
const log = { info: (o) => events.push(o), warn: (o) => events.push(o), error: (o) => events.push(o) };
const j = new Journal(process.env.STATE, { retentionDays: 7, maxDeliveries: Number(process.env.KEEP), log });
const ids = ['x0000000', 'd0000000', 'd0789999', 'd0790000', 'd0799999', 'p0000000', 'p0049999', 'u0000007'];
const found = Object.fromEntries(ids.map((id) => [id, j.get(id)]));
const reserved = [...j.reservedNames()].sort();
await j.close();
console.log(JSON.stringify({ found, reserved, events }));
`;

describe('Journal with a million records', () => {
  beforeAll(async () => {
    state = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-journal-large-'));
    await writeLog(path.join(state, JOURNAL_FILE));
  }, 120_000);
  afterAll(() => fs.rmSync(state, { recursive: true, force: true }));

  it(`starts in a ${HEAP_MB} MiB heap, keeps the newest journalMaxDeliveries and every unfinished intent, and compacts to a small log`, () => {
    expect(fs.existsSync(DIST) && fs.statSync(DIST).mtimeMs >= fs.statSync(SRC).mtimeMs, `${DIST} is missing or older than journal.ts: run make build`).toBe(true);
    const before = fs.statSync(path.join(state, JOURNAL_FILE)).size;
    expect(before).toBeGreaterThan(150 * 1024 * 1024);

    const child = spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MB}`, '--input-type=module', '-e', CHILD], {
      env: { ...process.env, STATE: state, KEEP: String(KEEP) },
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    expect(child.status, `child exited ${child.status} (${child.signal}): ${child.stderr.slice(-2000)}`).toBe(0);
    const { found, reserved, events } = JSON.parse(child.stdout) as {
      found: Record<string, { complete: boolean; entry: Record<string, unknown>; durable?: boolean } | null>;
      reserved: string[];
      events: Record<string, unknown>[];
    };

    // Every unfinished delivery keeps its name and its report body (read back from the log).
    expect(reserved).toEqual(Array.from({ length: UNFINISHED }, (_, i) => `outbox/file-u${num(i)}.txt`).sort());
    expect(found['u0000007']).toMatchObject({ complete: false, durable: true, entry: { stored: 'file-u0000007.txt', body: { transfer: 'u0000007' } } });
    // The newest KEEP done deliveries are remembered; older ones are forgotten (a resend is delivered again).
    expect(found['p0049999']).toMatchObject({ complete: true, entry: { stored: 'file-p0049999.txt', sha256: hex(49_999) } });
    expect(found['p0000000']?.complete).toBe(true);
    expect(found['d0799999']?.complete).toBe(true);
    expect(found['d0790000']?.complete).toBe(true);
    expect(found['d0789999']).toBeNull();
    expect(found['d0000000']).toBeNull();
    expect(found['x0000000']).toBeNull(); // older than journalDays
    expect(events.find((e) => e.event === 'journal-forgot')).toMatchObject({ forgotten: OLDER + PAIRS - KEEP, bound: KEEP });

    // The log is rewritten with exactly what is kept.
    const text = fs.readFileSync(path.join(state, JOURNAL_FILE), 'utf8');
    const ops = text.split('\n').filter((l) => l).map((l) => (JSON.parse(l) as { op: string }).op);
    expect(ops.filter((o) => o === 'delivered')).toHaveLength(KEEP);
    expect(ops.filter((o) => o === 'intend')).toHaveLength(UNFINISHED);
    expect(ops).toHaveLength(KEEP + UNFINISHED);
    expect(Buffer.byteLength(text)).toBeLessThan(before / 10);
  }, 120_000);
});
