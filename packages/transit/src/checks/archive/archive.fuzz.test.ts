// Fuzzing the archive inspector: valid archives (made here by Python's
// zipfile/tarfile/gzip) with bytes overwritten, cut short or spliced. Every
// run must resolve to a verdict (pass, or a refusal naming member and rule);
// any exception is a bug. Inputs are small so 10,000 runs stay quick.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { inspectArchive, type ArchiveLimits } from '../index.js';

const LIMITS: ArchiveLimits = {
  maxDepth: 3, maxMembers: 100, maxExpandedBytes: 8 * 1024 * 1024, maxRatio: 100, maxMemberRatio: 200, maxNameBytes: 1024, maxSpillBytes: 1024 * 1024, allowOpaque: [],
};
const allowed = new Set(['txt', 'png', 'zip', 'tar', 'gz', 'tar.gz', 'json']);

type Kind = 'zip' | 'tar' | 'gz' | 'tar.gz';
let seeds: { kind: Kind; name: string; bytes: Buffer }[];
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-archive-fuzz-'));
  const out = execFileSync('/usr/bin/python3', ['-c', `
import zipfile, tarfile, io, gzip, base64, json
def z(members, method=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', method) as f:
        for n, d in members: f.writestr(n, d)
    return b.getvalue()
def t(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w', format=tarfile.USTAR_FORMAT) as f:
        for n, d in members:
            ti = tarfile.TarInfo(n); ti.size = len(d); f.addfile(ti, io.BytesIO(d))
    return b.getvalue()
inner = z([('in.txt', b'inner text\\n')])
s = {
  'zip': z([('a.txt', b'hello ' * 20), ('d/', b''), ('d/b.json', b'{"k": 1}'), ('n.zip', inner)]),
  'stored.zip': z([('a.txt', b'stored'), ('b.txt', b'more')], zipfile.ZIP_STORED),
  'tar': t([('a.txt', b'hello\\n'), ('b/c.txt', b'x' * 600)]),
  'tar.gz': gzip.compress(t([('a.txt', b'hello\\n'), ('i.zip', inner)])),
  'gz': gzip.compress(b'plain text\\n' * 30),
}
print(json.dumps({k: base64.b64encode(v).decode() for k, v in s.items()}))
`], { encoding: 'utf8' });
  const parsed = JSON.parse(out) as Record<string, string>;
  seeds = Object.entries(parsed).map(([name, b64]) => ({ kind: (name === 'stored.zip' ? 'zip' : name) as Kind, name: `seed.${name === 'stored.zip' ? 'zip' : name}`, bytes: Buffer.from(b64, 'base64') }));
});

/** verdictOf - inspect bytes as the given kind; resolves to the verdict, or to the exception (a bug). */
async function verdictOf(kind: Kind, name: string, bytes: Uint8Array): Promise<{ ok: boolean; reason: string } | { thrown: unknown }> {
  const file = path.join(dir, 'input');
  fs.writeFileSync(file, bytes);
  const fd = fs.openSync(file, 'r');
  try {
    return await inspectArchive(fd, bytes.length, name, kind, { limits: LIMITS, allowed, extensionMatch: true, spillDir: dir }, new AbortController().signal);
  } catch (thrown) {
    return { thrown };
  } finally {
    fs.closeSync(fd);
  }
}

describe('archive inspector under fuzzing', () => {
  it('mutated, truncated and spliced archives: always a verdict, never an exception (10,000 runs)', async () => {
    const mutation = fc.record({
      seed: fc.nat(),
      writes: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      splice: fc.option(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ maxLength: 40 }) }), { nil: undefined }),
    });
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const seed = seeds[m.seed % seeds.length]!;
        let bytes = Buffer.from(seed.bytes);
        for (const w of m.writes) bytes[w.at % bytes.length] = w.byte;
        if (m.splice) {
          const at = m.splice.at % (bytes.length + 1);
          bytes = Buffer.concat([bytes.subarray(0, at), m.splice.bytes, bytes.subarray(at)]);
        }
        if (m.cut !== undefined) bytes = bytes.subarray(0, m.cut % (bytes.length + 1));
        const v = await verdictOf(seed.kind, seed.name, bytes);
        if ('thrown' in v) throw new Error(`exception on ${seed.name}: ${String((v.thrown as Error)?.stack ?? v.thrown)}`);
        expect(typeof v.reason).toBe('string');
        if (!v.ok) refused++;
      }),
      { numRuns: 10_000 },
    );
    expect(refused).toBeGreaterThan(1000); // the mutations do reach the refusals
  }, 600_000);

  it('the unmutated seeds pass', async () => {
    for (const s of seeds) expect(await verdictOf(s.kind, s.name, s.bytes), s.name).toMatchObject({ ok: true });
  });
});
