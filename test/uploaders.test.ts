// Named uploaders end to end, through `sluice dev --uploaders alice,bob`: who sent a file is in
// its signed report, each uploader gets a copy of their own reports only, one uploader's backlog
// does not hold up another's files, and quotas refuse with a signed report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { loadPublicKey, verifyReport } from '../packages/report/src/index.js';
import { Pipeline, type Found } from './support/pipeline.js';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(120, 1)]);

/** verifiesAlone - the report file verifies (signature only). */
function verifiesAlone(p: Pipeline, reportPath: string): boolean {
  return verifyReport({ reportText: fs.readFileSync(reportPath), publicKey: loadPublicKey(p.publicKey), reportOnly: true }).ok;
}

/** resultFor - the uploader's copy of a report: the same bytes, by the stored name. */
function resultFor(p: Pipeline, uploader: string, found: Found): string {
  return path.join(p.resultsOf(uploader), `${found.report.name.stored}.sluice.json`);
}

describe('sluice dev --uploaders alice,bob', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await Pipeline.start((dir) => devConfig(dir, { limits: { maxFileBytes: 1024 * 1024 }, uploaders: { maxFilesWaiting: 5000 } }), { uploaders: ['alice', 'bob'] });
  });
  afterAll(async () => {
    expect(await p.stop()).toBe(0);
  });

  it('makes the inboxes and results directories', () => {
    for (const u of ['alice', 'bob']) {
      expect(fs.statSync(p.inboxOf(u)).isDirectory()).toBe(true);
      expect(fs.statSync(p.resultsOf(u)).isDirectory()).toBe(true);
    }
  });

  it("a file from inbox/alice: \"uploader\":\"alice\" in its signed body, a verifying copy in results/alice, nothing of alice's in results/bob; rejected files too", async () => {
    p.drop('hello-alice.txt', 'hello from alice\n', p.inboxOf('alice'));
    p.drop('tool-alice', ELF, p.inboxOf('alice'));
    p.drop('hello-bob.txt', 'hello from bob\n', p.inboxOf('bob'));
    const accepted = await p.reportFor('hello-alice.txt');
    const rejected = await p.reportFor('tool-alice');
    const bobs = await p.reportFor('hello-bob.txt');
    expect([accepted.place, rejected.place, bobs.place]).toEqual(['outbox', 'rejected', 'outbox']);
    expect([accepted.report.uploader, rejected.report.uploader, bobs.report.uploader]).toEqual(['alice', 'alice', 'bob']);
    // In the signed bytes: a changed uploader breaks the signature.
    const text = fs.readFileSync(accepted.reportPath, 'utf8');
    expect(text).toContain('"uploader":"alice"');
    const forged = text.replace('"uploader":"alice"', '"uploader":"bobby"');
    expect(verifyReport({ reportText: forged, publicKey: loadPublicKey(p.publicKey), reportOnly: true }).code).toBe('bad-signature');

    for (const [u, found] of [['alice', accepted], ['alice', rejected], ['bob', bobs]] as const) {
      const copy = resultFor(p, u, found);
      await p.waitFor(() => fs.existsSync(copy), 10_000, `results copy ${copy}`);
      expect(fs.readFileSync(copy)).toEqual(fs.readFileSync(found.reportPath)); // a copy of that report
      expect(fs.statSync(copy).mode & 0o777).toBe(0o640);
      expect(verifiesAlone(p, copy)).toBe(true);
    }
    const bytes = fs.readFileSync(path.join(p.outbox, accepted.report.name.stored));
    const withFile = verifyReport({ reportText: fs.readFileSync(resultFor(p, 'alice', accepted)), publicKey: loadPublicKey(p.publicKey), file: { size: bytes.length, sha256hex: sha(bytes) }, reportOnly: false });
    expect(withFile.ok, withFile.reason).toBe(true);
    // Nothing of alice's in bob's results, and the other way round.
    for (const [u, other] of [['bob', 'alice'], ['alice', 'bob']] as const) {
      for (const f of fs.readdirSync(p.resultsOf(u))) {
        expect(JSON.parse(fs.readFileSync(path.join(p.resultsOf(u), f), 'utf8')).uploader, `${u}'s results hold ${f}`).not.toBe(other);
      }
    }
    expect(fs.readdirSync(p.resultsOf('bob'))).not.toContain('hello-alice.txt.sluice.json');
    expect(fs.readdirSync(p.resultsOf('bob'))).not.toContain('tool-alice.sluice.json');
  });

  it('fair turns: alice drops 1,000 files, then bob drops 5; all of bob\'s are delivered before alice\'s 100th-from-last', async () => {
    const before = p.events('delivered').length;
    for (let i = 0; i < 1000; i++) p.drop(`alice-${String(i).padStart(4, '0')}.txt`, `alice's file ${i}\n`, p.inboxOf('alice'));
    for (let i = 0; i < 5; i++) p.drop(`bob-${i}.txt`, `bob's file ${i}\n`, p.inboxOf('bob'));
    const mine = () => p.events('delivered').slice(before).filter((l) => l.stage === 'egress' && /^(alice-\d{4}|bob-\d)\.txt$/.test(String(l.stored)));
    await p.waitFor(() => mine().length >= 1005, 300_000, 'all 1,005 files delivered');
    const order = mine();
    expect(order).toHaveLength(1005);
    const alices = order.map((l, i) => [l, i] as const).filter(([l]) => l.uploader === 'alice');
    const bobs = order.map((l, i) => [l, i] as const).filter(([l]) => l.uploader === 'bob');
    expect([alices.length, bobs.length]).toEqual([1000, 5]);
    const alice100thFromLast = alices[alices.length - 100]![1];
    for (const [l, i] of bobs) expect(i, `${String(l.stored)} delivered at ${i}, alice's 100th-from-last at ${alice100thFromLast}`).toBeLessThan(alice100thFromLast);
  }, 360_000);
});

describe('quotas (uploaders.maxFilesWaiting, maxBytesWaiting)', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await Pipeline.start(
      (dir) => devConfig(dir, { limits: { maxFileBytes: 1024 * 1024 }, uploaders: { maxFilesWaiting: 3, maxBytesWaiting: 4096 } }),
      {
        uploaders: ['alice', 'bob'],
        // Ten of alice's files wait before ingress starts: its first read of her inbox sees them all at once.
        prepare: (dir) => {
          fs.mkdirSync(path.join(dir, 'inbox', 'alice'), { recursive: true, mode: 0o755 });
          for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(dir, 'inbox', 'alice', `queued-${i}.txt`), `queued file ${i}\n`);
        },
      },
    );
  });
  afterAll(async () => {
    expect(await p.stop()).toBe(0);
  });

  it('files beyond maxFilesWaiting are refused with a signed report naming the quota; bob\'s file is delivered', async () => {
    p.drop('bob-meanwhile.txt', 'bob is not affected\n', p.inboxOf('bob'));
    const bob = await p.reportFor('bob-meanwhile.txt');
    expect([bob.report.verdict, bob.report.uploader]).toEqual(['accepted', 'bob']);
    const alice: Found[] = [];
    for (let i = 0; i < 10; i++) alice.push(await p.reportFor(`queued-${i}.txt`));
    const refused = alice.filter((f) => f.report.verdict === 'rejected');
    // 3 are admitted (maxFilesWaiting), the 7 seen while 3 or more waited are refused.
    expect(refused).toHaveLength(7);
    for (const f of refused) {
      expect(f.report.reason).toMatch(/quota-files: \d+ bytes, \d+ files of alice's wait, at most uploaders\.maxFilesWaiting \(3\)/);
      expect(f.report.uploader).toBe('alice');
      expect(f.report.sha256).toBeNull(); // refused at pickup: never copied
      expect(verifiesAlone(p, f.reportPath)).toBe(true);
      expect(fs.readFileSync(resultFor(p, 'alice', f))).toEqual(fs.readFileSync(f.reportPath));
    }
    expect(alice.filter((f) => f.report.verdict === 'accepted')).toHaveLength(3);
    expect(fs.readdirSync(p.inboxOf('alice')).filter((n) => !n.startsWith('.'))).toEqual([]); // refused files are gone, with their report
  });

  it('a file that would pass maxBytesWaiting is refused (quota-bytes) while bob\'s is delivered', async () => {
    p.drop('big-alice.txt', 'x'.repeat(5000) + '\n', p.inboxOf('alice'));
    p.drop('small-bob.txt', 'small\n', p.inboxOf('bob'));
    const big = await p.reportFor('big-alice.txt');
    const small = await p.reportFor('small-bob.txt');
    expect(big.report.verdict).toBe('rejected');
    expect(big.report.reason).toMatch(/quota-bytes: 5001 bytes, \d+ bytes of alice's wait, this file would pass uploaders\.maxBytesWaiting \(4096\)/);
    expect(big.report.size).toBe(5001);
    expect(verifiesAlone(p, big.reportPath)).toBe(true);
    expect([small.report.verdict, small.report.uploader]).toEqual(['accepted', 'bob']);
  });
});

describe('named uploaders beside the anonymous drop (their inboxes outside ingress.inbox, as in production)', () => {
  let p: Pipeline;
  beforeAll(async () => {
    p = await Pipeline.start(
      (dir) =>
        devConfig(dir, {
          uploaders: { enabled: true, inbox: path.join(dir, 'uploaders', '{name}', 'inbox'), results: path.join(dir, 'uploaders', '{name}', 'results') },
        }),
      {
        prepare: (dir) => {
          for (const sub of ['inbox', 'results']) fs.mkdirSync(path.join(dir, 'uploaders', 'carol', sub), { recursive: true, mode: 0o755 });
        },
      },
    );
  });
  afterAll(async () => {
    expect(await p.stop()).toBe(0);
  });

  it("the anonymous inbox is still served: its file's report names no uploader, carol's names carol", async () => {
    p.drop('from-the-drop.txt', 'dropped by the shared account\n');
    p.drop('from-carol.txt', 'sent by carol\n', path.join(p.dir, 'uploaders', 'carol', 'inbox'));
    const anon = await p.reportFor('from-the-drop.txt');
    const carols = await p.reportFor('from-carol.txt');
    expect([anon.place, carols.place]).toEqual(['outbox', 'outbox']);
    expect(anon.report.uploader).toBeUndefined();
    expect(carols.report.uploader).toBe('carol');
    expect(p.verify(anon).ok && p.verify(carols).ok).toBe(true);
    await p.waitFor(() => fs.existsSync(path.join(p.dir, 'uploaders', 'carol', 'results', `${carols.report.name.stored}.sluice.json`)), 10_000, "carol's results copy");
  });
});
