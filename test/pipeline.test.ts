// End to end: `sluice dev` with three real daemon processes, files dropped
// into its inbox the way uploaders do, outcomes read from outbox/ and rejected/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { demoSamples } from '../packages/cli/src/demo.js';
import { auditLog, loadPublicKey, verifyReport } from '../packages/report/src/index.js';
import { Pipeline } from './support/pipeline.js';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

let p: Pipeline;

beforeAll(async () => {
  p = await Pipeline.start((dir) => devConfig(dir, { limits: { maxFileBytes: 1024 * 1024 } }));
});

afterAll(async () => {
  expect(await p.stop()).toBe(0); // SIGTERM stops everything cleanly
});


describe('the demo samples', () => {
  it('each gets the right outcome, and a signed report with the right digest and verdict', async () => {
    const samples = demoSamples();
    for (const s of samples) p.drop(s.name, s.bytes);
    const expected: Record<string, { verdict: string; reason?: RegExp }> = {
      'photo.png': { verdict: 'accepted' },
      'notes.txt': { verdict: 'accepted' },
      tool: { verdict: 'rejected', reason: /content type elf is not allowed/ },
      'big.csv': { verdict: 'rejected', reason: /too-large/ },
      'invoice\u202Efdp.txt\nrm -rf': { verdict: 'accepted' },
    };
    for (const s of samples) {
      const found = await p.reportFor(s.name);
      const want = expected[s.name]!;
      expect(found.report.verdict, s.name).toBe(want.verdict);
      if (want.reason) expect(found.report.reason).toMatch(want.reason);
      expect(found.place).toBe(want.verdict === 'accepted' ? 'outbox' : 'rejected');
      if (want.verdict === 'accepted') {
        expect(found.report.sha256).toBe(sha(s.bytes));
        expect(fs.readFileSync(path.join(p.outbox, found.report.name.stored))).toEqual(s.bytes);
      } else if (s.name === 'tool') {
        expect(found.report.sha256).toBe(sha(s.bytes)); // rejected after checking: the report binds the bytes checked
        expect(fs.existsSync(path.join(p.rejected, found.report.name.stored))).toBe(false); // only the report
      } else if (s.name === 'big.csv') {
        // Refused at pickup, never copied: no digest, and the size ingress saw.
        expect([found.report.sha256, found.report.size]).toEqual([null, s.bytes.length]);
      }
      expect(p.verify(found).ok, `${s.name}: ${p.verify(found).reason}`).toBe(true);
      // Without named uploaders a report has no "uploader"; its place in the log ("log") vouches for it.
      expect(Object.keys(JSON.parse(fs.readFileSync(found.reportPath, 'utf8'))).sort()).toEqual(
        ['checks', 'format', 'key', 'log', 'name', 'reason', 'sha256', 'size', 'software', 'station', 'times', 'transfer', 'verdict'],
      );
    }
    // Nothing left behind in the inbox.
    expect(fs.readdirSync(p.inbox).filter((n) => !n.startsWith('.'))).toEqual([]);
    // Every report is a leaf of the station's log in DIR/log, which audits clean.
    const audit = auditLog(path.join(p.dir, 'log'), loadPublicKey(p.publicKey));
    expect(audit, audit.problem).toMatchObject({ ok: true, unpublished: 0 });
    expect(audit.leaves).toBeGreaterThanOrEqual(samples.length);
  });
});

describe('completeness of uploads', () => {
  it('an uploader that writes half a file, holds it open 3 s, then finishes, is never picked up early', async () => {
    const name = 'slow-upload.txt';
    const half1 = 'first half of the upload\n'.repeat(100);
    const half2 = 'second half, written after a pause\n'.repeat(100);
    // A separate process, like sshd's sftp server: writes, pauses with the file open, writes, closes.
    const script = `
      const fs = require('fs');
      const fd = fs.openSync(process.argv[1], 'w');
      fs.writeSync(fd, process.argv[2]);
      process.stdout.write('half\\n');
      setTimeout(() => { fs.writeSync(fd, process.argv[3]); fs.closeSync(fd); process.stdout.write('closed\\n'); }, 3000);
    `;
    const child = spawn(process.execPath, ['-e', script, path.join(p.inbox, name), half1, half2], { stdio: ['ignore', 'pipe', 'inherit'] });
    let closedAt = 0;
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('closed')) closedAt = Date.now();
    });
    const found = await p.reportFor(name, 30_000);
    expect(closedAt).toBeGreaterThan(0);
    const pickup = p.events('picked-up').find((l) => l.name === name)!;
    expect(Date.parse(String(pickup.time))).toBeGreaterThanOrEqual(closedAt - 50);
    expect(found.report.verdict).toBe('accepted');
    expect(found.report.size).toBe(half1.length + half2.length);
    expect(fs.readFileSync(path.join(p.outbox, found.report.name.stored), 'utf8')).toBe(half1 + half2);
  });

  it('names an uploader writes under (*.part, *.tmp, *.filepart, dotfiles) are ignored until renamed in', async () => {
    for (const n of ['x.part', 'x.tmp', 'x.filepart', '.hidden']) fs.writeFileSync(path.join(p.inbox, n), 'in progress\n');
    await new Promise((r) => setTimeout(r, 1500));
    for (const n of ['x.part', 'x.tmp', 'x.filepart', '.hidden']) expect(fs.existsSync(path.join(p.inbox, n)), n).toBe(true);
    fs.renameSync(path.join(p.inbox, 'x.part'), path.join(p.inbox, 'renamed-in.txt'));
    const found = await p.reportFor('renamed-in.txt');
    expect(found.report.verdict).toBe('accepted');
    for (const n of ['x.tmp', 'x.filepart', '.hidden']) fs.rmSync(path.join(p.inbox, n));
  });
});

describe('volume', () => {
  it('200 files dropped at once all arrive exactly once with identical bytes', async () => {
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 200; i++) files.set(`bulk-${String(i).padStart(3, '0')}.txt`, Buffer.from(`file ${i}\n${randomBytes(64).toString('hex')}\n`));
    for (const [name, bytes] of files) fs.writeFileSync(path.join(p.inbox, name), bytes);
    await p.waitFor(() => p.reports().filter((r) => r.report.name.original.startsWith('bulk-')).length >= 200, 120_000, '200 reports');
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
    const reports = p.reports().filter((r) => r.report.name.original.startsWith('bulk-'));
    expect(reports).toHaveLength(200);
    const seen = new Set<string>();
    for (const r of reports) {
      expect(seen.has(r.report.name.original)).toBe(false);
      seen.add(r.report.name.original);
      expect(r.report.verdict).toBe('accepted');
      expect(r.report.name.stored).toBe(r.report.name.original);
      expect(fs.readFileSync(path.join(p.outbox, r.report.name.stored))).toEqual(files.get(r.report.name.original));
    }
  });
});

describe('hostile names', () => {
  it('newline, U+202E, 250 bytes, a name given twice: sanitized, inside the outbox, nothing overwritten', async () => {
    const long = `${'n'.repeat(246)}.txt`; // 250 bytes
    const names = ['line\nbreak.txt', 'evil\u202Etxt.exe.txt', long, 'tab\tand\u0007bell.txt', '-rf.txt'];
    for (const n of names) p.drop(n, `content of ${JSON.stringify(n)}\n`);
    p.drop('twice.txt', 'first\n');
    await p.reportFor('twice.txt');
    p.drop('twice.txt', 'second\n');
    for (const n of names) {
      const found = await p.reportFor(n);
      const stored = found.report.name.stored;
      expect(found.report.verdict).toBe('accepted');
      expect(stored).not.toMatch(/[/\n\u202E\u0000]/);
      expect(stored.startsWith('.')).toBe(false);
      expect(stored.startsWith('-')).toBe(false);
      expect(Buffer.byteLength(stored)).toBeLessThanOrEqual(200);
      expect(path.dirname(path.join(p.outbox, stored))).toBe(p.outbox);
      expect(fs.readFileSync(path.join(p.outbox, stored), 'utf8')).toBe(`content of ${JSON.stringify(n)}\n`);
    }
    await p.waitFor(() => p.reports().filter((r) => r.report.name.original === 'twice.txt').length === 2, 30_000, 'second twice.txt');
    const twice = p.reports().filter((r) => r.report.name.original === 'twice.txt');
    const stored = twice.map((r) => r.report.name.stored).sort();
    expect(stored).toEqual(['twice (2).txt', 'twice.txt']);
    const contents = stored.map((s) => fs.readFileSync(path.join(p.outbox, s), 'utf8')).sort();
    expect(contents).toEqual(['first\n', 'second\n']);
  });
});

describe('hostile inbox entries', () => {
  it('a symlink, a hard link and a FIFO are refused with a report and never followed or opened for reading', async () => {
    const outside = fs.mkdtempSync(path.join(p.dir, 'outside-'));
    // The symlink points at a FIFO: following it and opening it would release the blocked writer below.
    const trapFifo = path.join(outside, 'trap');
    execFileSync('mkfifo', [trapFifo]);
    const secret = path.join(outside, 'secret.txt');
    fs.writeFileSync(secret, 'top secret\n');
    // The inbox FIFO is made under an ignored name, so its writer is blocked on it before ingress sees it.
    const hiddenFifo = path.join(p.inbox, '.pipe-being-made');
    execFileSync('mkfifo', [hiddenFifo]);
    // Writers that block in open() (no O_CREAT) until somebody opens the FIFO for reading.
    const writers = [trapFifo, hiddenFifo].map((f) =>
      spawn(process.execPath, ['-e', `require('fs').openSync(${JSON.stringify(f)}, require('fs').constants.O_WRONLY); console.log('opened')`], {
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
    const opened = writers.map(() => false);
    writers.forEach((w, i) => w.stdout.on('data', () => (opened[i] = true)));
    await new Promise((r) => setTimeout(r, 500)); // both writers are now blocked in open()
    fs.symlinkSync(trapFifo, path.join(p.inbox, 'link.txt'));
    fs.linkSync(secret, path.join(p.inbox, 'hardlink.txt'));
    fs.renameSync(hiddenFifo, path.join(p.inbox, 'pipe.txt'));

    // Never copied: no digest; the size seen at pickup when it was a regular file.
    const expectations: [string, RegExp, number | null][] = [
      ['link.txt', /not-regular: symlink/, null],
      ['hardlink.txt', /hard-link: 11 bytes, regular file with 2 links/, 'top secret\n'.length],
      ['pipe.txt', /not-regular: fifo/, null],
    ];
    const empty = { size: 0, sha256hex: sha('') };
    for (const [name, reason, size] of expectations) {
      const found = await p.reportFor(name);
      expect(found.place).toBe('rejected');
      expect(found.report.verdict).toBe('rejected');
      expect(found.report.reason).toMatch(reason);
      expect([found.report.sha256, found.report.size]).toEqual([null, size]);
      expect(p.verify(found).ok).toBe(true);
      // No file matches a report about no bytes, not even an empty one.
      const withEmpty = verifyReport({ reportText: fs.readFileSync(found.reportPath, 'utf8'), publicKey: loadPublicKey(p.publicKey), file: empty, reportOnly: false });
      expect([withEmpty.code, withEmpty.exitCode]).toEqual(['mismatch', 4]);
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(opened).toEqual([false, false]); // nobody opened either FIFO for reading
    for (const w of writers) w.kill('SIGKILL');
    // The secret's other link is untouched and no output contains it.
    expect(fs.readFileSync(secret, 'utf8')).toBe('top secret\n');
    for (const f of fs.readdirSync(p.outbox)) {
      expect(fs.readFileSync(path.join(p.outbox, f), 'utf8')).not.toContain('top secret');
    }
    // Refused entries are gone from the inbox (rejected files leave only the report).
    for (const [name] of expectations) expect(fs.existsSync(path.join(p.inbox, name))).toBe(false);
  });
});
