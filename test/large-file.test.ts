// End to end: with limits.maxFileBytes above 4 GiB, an upload over 4 GiB leaves the station
// (`sluice dev`, three real daemons): every stage encodes and decodes its records with the
// configured limits (wireLimits), its size travels as a 64-bit integer, and it is delivered with
// a signed report of its exact size and digest. A small upload after it is delivered too.
//
// The upload is a sparse file (a PDF header, then zeros), so the inbox costs no disk; but ingress
// spools a full copy, transit (its RAM budget far smaller than the file) copies it into a nameless
// file in its own directory, and egress writes one to the outbox, so the test needs about four
// times the file's size on disk, and runs only where there is room, saying so otherwise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { loadPublicKey, verifyReport } from '../packages/report/src/index.js';
import { Pipeline } from './support/pipeline.js';

const GiB = 1024 ** 3;
const SIZE = 4 * GiB + 4096 + 1;
const HEADER = Buffer.from('%PDF-1.4\n');

/** diskFree - bytes free for an unprivileged user under the temporary directory. */
function diskFree(): number {
  const s = fs.statfsSync(os.tmpdir());
  return s.bavail * s.bsize;
}

const SKIP_REASON =
  diskFree() < 4 * SIZE ? `needs ${(4 * SIZE / GiB).toFixed(0)} GiB free under ${os.tmpdir()} for the spool, transit's copy and the outbox, has ${(diskFree() / GiB).toFixed(1)}` : '';
const SKIPPED = SKIP_REASON ? ` [skipped: ${SKIP_REASON}]` : '';

/** sha256OfFile - the digest of a file, read in 8 MiB pieces. */
function sha256OfFile(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.alloc(8 * 1024 * 1024);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

describe.skipIf(!!SKIP_REASON)(`an upload over 4 GiB, through sluice dev${SKIPPED}`, () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await Pipeline.start((dir) =>
      devConfig(dir, {
        limits: { maxFileBytes: 6 * GiB },
        // One copy in transit at a time: the test's disk is one file per stage.
        transit: { maxInFlight: 1 },
      }),
    );
  });
  afterAll(async () => {
    expect(await p?.stop()).toBe(0);
  });

  it(`${SIZE} bytes (4 GiB + 4097) with limits.maxFileBytes 6 GiB: accepted, delivered whole, report of its exact size`, async () => {
    const scratch = path.join(p.dir, 'scratch-big.pdf');
    fs.writeFileSync(scratch, HEADER);
    fs.truncateSync(scratch, SIZE);
    const want = sha256OfFile(scratch);
    fs.renameSync(scratch, path.join(p.inbox, 'big.pdf'));

    const found = await p.reportFor('big.pdf', 20 * 60_000);
    expect(found.report.verdict, found.report.reason).toBe('accepted');
    expect(found.report.size).toBe(SIZE);
    expect(found.report.sha256).toBe(want);
    const out = path.join(p.outbox, found.report.name.stored);
    expect(fs.statSync(out).size).toBe(SIZE);
    expect(sha256OfFile(out)).toBe(want);
    const verdict = verifyReport({
      reportText: fs.readFileSync(found.reportPath, 'utf8'),
      publicKey: loadPublicKey(p.publicKey),
      file: { size: SIZE, sha256hex: want },
      reportOnly: false,
    });
    expect(verdict).toMatchObject({ ok: true });

    // Sent once, never retried or held on the way; every stage logged its size exactly.
    const id = p.lines.find((l) => l.event === 'picked-up' && l.name === 'big.pdf')!.id;
    const about = p.lines.filter((l) => l.id === id);
    expect(about.filter((l) => ['retry', 'held', 'unencodable', 'record-refused', 'transfer-failed'].includes(String(l.event)))).toEqual([]);
    for (const event of ['picked-up', 'sent', 'received', 'delivered']) {
      expect(about.find((l) => l.event === event)?.size, event).toBe(SIZE);
    }
    // Larger than transit's RAM budget: its copy went to disk.
    expect(about.find((l) => l.event === 'received')?.copy).toBe('disk');
    fs.rmSync(out);

    // And the station serves on.
    p.drop('after.txt', 'a small file after the big one\n');
    expect((await p.reportFor('after.txt')).report.verdict).toBe('accepted');
  }, 25 * 60_000); // three copies of 4 GiB written to disk, one per stage (the report is waited for 20 minutes)
});
