// End to end: archives through `sluice dev` (three daemon processes), which
// looks inside zip, tar, tar.gz and gz. The archives are made here by
// Python's zipfile (/usr/bin/python3).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { devConfig } from '../packages/cli/src/dev.js';
import { loadPublicKey, verifyReport } from '../packages/report/src/index.js';
import { Pipeline } from './support/pipeline.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** zips - zip files made by Python from [name, member name, 'text' | 'png' | 'elf'] rows. */
function zips(rows: [string, string[]][]): Map<string, Buffer> {
  const out = execFileSync('/usr/bin/python3', ['-c', `
import zipfile, io, json, base64, sys
PNG = bytes.fromhex('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082')
ELF = b'\\x7fELF\\x02\\x01\\x01' + b'\\0' * 200
BODY = {'notes.txt': b'meeting notes\\n' * 20, 'photo.png': PNG, 'tool': ELF, '../../x': b'escaped\\n'}
res = {}
for name, members in json.loads(sys.argv[1]):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:
        for m in members: z.writestr(m, BODY[m])
    res[name] = base64.b64encode(b.getvalue()).decode()
print(json.dumps(res))
`, JSON.stringify(rows)], { encoding: 'utf8' });
  return new Map(Object.entries(JSON.parse(out) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

let p: Pipeline;
beforeAll(async () => {
  p = await Pipeline.start((dir) => devConfig(dir, { limits: { maxFileBytes: 1024 * 1024 } }));
});
afterAll(async () => {
  expect(await p.stop()).toBe(0);
});

describe('archives through sluice dev', () => {
  it('a zip of a text file and a PNG is delivered; with an ELF inside, or a member named ../../x, it is rejected with a report naming the member', async () => {
    const made = zips([
      ['folder.zip', ['notes.txt', 'photo.png']],
      ['with-tool.zip', ['notes.txt', 'photo.png', 'tool']],
      ['escape.zip', ['notes.txt', '../../x']],
    ]);
    for (const [name, bytes] of made) p.drop(name, bytes);

    const ok = await p.reportFor('folder.zip');
    expect(ok.report.verdict).toBe('accepted');
    expect(ok.place).toBe('outbox');
    const delivered = fs.readFileSync(path.join(p.outbox, ok.report.name.stored));
    expect(delivered).toEqual(made.get('folder.zip'));
    const checks = (ok.report as unknown as { checks: { name: string; result: string; reason: string }[] }).checks;
    expect(checks.find((c) => c.name === 'archive')).toMatchObject({ result: 'pass', reason: expect.stringMatching(/^zip: 2 members \(2 files, 0 directories\), \d+ bytes expanded; every member passed$/) });
    const publicKey = loadPublicKey(p.publicKey);
    const reportText = fs.readFileSync(ok.reportPath, 'utf8');
    expect(verifyReport({ reportText, publicKey, file: { size: delivered.length, sha256hex: sha(delivered) }, reportOnly: false }).ok).toBe(true);

    const tool = await p.reportFor('with-tool.zip');
    expect(tool.report.verdict).toBe('rejected');
    expect(tool.place).toBe('rejected');
    expect(tool.report.reason).toMatch(/member "tool": content type elf is not allowed/);
    expect(fs.existsSync(path.join(p.rejected, tool.report.name.stored))).toBe(false);

    const escape = await p.reportFor('escape.zip');
    expect(escape.report.verdict).toBe('rejected');
    expect(escape.report.reason).toMatch(/member "\.\.\/\.\.\/x": path traversal/);
    expect(verifyReport({ reportText: fs.readFileSync(escape.reportPath, 'utf8'), publicKey, reportOnly: true }).ok).toBe(true);
  }, 60_000);
});
