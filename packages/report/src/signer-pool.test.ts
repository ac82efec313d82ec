/*
 * NAME
 *   signer-pool.test - signing on worker threads, the inline fallback, worker failures
 *
 * DESCRIPTION
 *   vitest runs src/*.ts, where the compiled signer-worker.js does not exist.
 *   The worker tests therefore point the pool at dist/signer-worker.js and
 *   need a build first (`npx tsc -b packages/report`, which `make test`
 *   does); without one they are skipped, and the test named "needs a build"
 *   fails so the skip cannot go unnoticed.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTENT_A, factsOf, keysA, makeBody } from '../test/fixtures.js';
import { serializeReport, signReport, SignerPool, verifyReport } from './index.js';
import { secretKeyMaterial } from './keys.js';

const distWorker = new URL('../dist/signer-worker.js', import.meta.url);
const built = existsSync(fileURLToPath(distWorker));
const tmp = mkdtempSync(join(tmpdir(), 'sluice-report-pool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const body = makeBody(keysA.public.keyId, CONTENT_A);

/** verifies - the signed report verifies for file A. */
function verifies(signed: Parameters<typeof serializeReport>[0]): boolean {
  return verifyReport({ reportText: serializeReport(signed), publicKey: keysA.public, file: factsOf(CONTENT_A), reportOnly: false }).ok;
}

describe('SignerPool without workers', () => {
  it('refuses to start when the compiled worker is missing, naming the file', () => {
    expect(() => new SignerPool(keysA.secret)).toThrow(/signer-worker\.js not found/);
    expect(() => new SignerPool(keysA.secret, { workerUrl: pathToFileURL(join(tmp, 'nope.js')) })).toThrow(/nope\.js not found/);
  });

  it('signs inline when asked', async () => {
    const pool = new SignerPool(keysA.secret, { inline: true });
    await pool.ready();
    const all = await Promise.all([pool.sign(body), pool.sign(body)]);
    expect(all.every(verifies)).toBe(true);
    await pool.close();
    await expect(pool.sign(body)).rejects.toThrow(/closed/);
  });

  it('validates before signing', async () => {
    const pool = new SignerPool(keysA.secret, { inline: true });
    await expect(pool.sign({ ...body, size: -1 })).rejects.toThrow(/^size:/);
    await expect(pool.sign({ ...body, key: '0'.repeat(32) })).rejects.toThrow(/not the id of the signing key/);
    await pool.close();
  });

  it('refuses silly worker counts', () => {
    for (const workers of [0, -1, 1.5, 65]) expect(() => new SignerPool(keysA.secret, { workers, inline: true })).toThrow(RangeError);
    for (const workers of [0, 65]) expect(() => new SignerPool(keysA.secret, workers)).toThrow(RangeError);
  });
});

describe('SignerPool needs a build', () => {
  it('dist/signer-worker.js exists (run `npx tsc -b packages/report` first)', () => {
    expect(built, 'the worker tests below were skipped: build the package').toBe(true);
  });
});

describe.skipIf(!built)(`SignerPool with workers (dist/)${built ? '' : ' [skipped: packages/report/dist not built: run make build]'}`, () => {
  it('signs concurrently on workers; every report verifies; ML-DSA is hedged', async () => {
    const pool = new SignerPool(keysA.secret, { workers: 2, workerUrl: distWorker });
    try {
      await pool.ready();
      const all = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.sign({ ...body, transfer: `T${i}` })));
      expect(all.every(verifies)).toBe(true);
      expect(all.map((s) => s.transfer)).toEqual(Array.from({ length: 12 }, (_, i) => `T${i}`));
      const again = await pool.sign(body);
      expect(again.signature.mldsa65).not.toBe((await pool.sign(body)).signature.mldsa65);
    } finally {
      await pool.close();
    }
  });

  it('gives the same bytes as signReport when deterministic', async () => {
    const pool = new SignerPool(keysA.secret, { workers: 1, workerUrl: distWorker, deterministic: true });
    try {
      expect(await pool.sign(body)).toEqual(signReport(body, keysA.secret, { deterministic: true }));
      expect(await pool.signAndSerialize(body)).toBe(serializeReport(signReport(body, keysA.secret, { deterministic: true })));
    } finally {
      await pool.close();
    }
  });

  it('rejects pending and later requests on close', async () => {
    const pool = new SignerPool(keysA.secret, { workers: 1, workerUrl: distWorker });
    await pool.ready();
    const pending = Array.from({ length: 5 }, () => pool.sign(body));
    const closing = pool.close();
    const settled = await Promise.allSettled(pending);
    await closing;
    expect(settled.some((s) => s.status === 'rejected' && /closed/.test(String(s.reason)))).toBe(true);
    await expect(pool.sign(body)).rejects.toThrow(/closed/);
  });

  it('breaks, failing ready() and sign(), when a worker cannot start', async () => {
    const bad = join(tmp, 'bad-worker.mjs');
    writeFileSync(bad, "throw new Error('cannot load');\n");
    const pool = new SignerPool(keysA.secret, { workers: 2, workerUrl: pathToFileURL(bad) });
    await expect(pool.ready()).rejects.toThrow(/signer worker failed: cannot load/);
    await expect(pool.sign(body)).rejects.toThrow(/cannot load/);
    await pool.close();
  });

  it('breaks when a worker derives another key', async () => {
    const liar = join(tmp, 'liar-worker.mjs');
    writeFileSync(liar, "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage({ type: 'ready', keyId: '0'.repeat(32) });\n");
    const pool = new SignerPool(keysA.secret, { workers: 1, workerUrl: pathToFileURL(liar) });
    await expect(pool.ready()).rejects.toThrow(/different key id/);
    await pool.close();
  });

  it('fails only the in-flight request when a ready worker dies, and replaces the worker', async () => {
    // A real worker that exits on the first request it gets.
    const dying = join(tmp, 'dying-worker.mjs');
    const real = distWorker.href;
    writeFileSync(
      dying,
      `import { parentPort } from 'node:worker_threads';
parentPort.once('message', (m) => { if (m.id === 1) process.exit(3); });
await import(${JSON.stringify(real)});
`,
    );
    const pool = new SignerPool(keysA.secret, { workers: 1, workerUrl: pathToFileURL(dying) });
    try {
      await pool.ready();
      await expect(pool.sign(body)).rejects.toThrow(/exited with code 3/);
      const next = await pool.sign(body); // id 2, on the replacement worker
      expect(verifies(next)).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('retires a worker whose ML-DSA signer failed: that request fails, the next one is signed by a fresh worker', async () => {
    // The first worker started finds the flag file and gets a randomness source that throws; its replacement does not.
    const flag = join(tmp, 'fail-once');
    writeFileSync(flag, '');
    const faulty = join(tmp, 'faulty-rng-worker.mjs');
    writeFileSync(
      faulty,
      `import { existsSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
if (existsSync(${JSON.stringify(flag)})) {
  unlinkSync(${JSON.stringify(flag)});
  createRequire(import.meta.url)('node:crypto').randomFillSync = () => { throw new Error('randomness source failed (test)'); };
}
await import(${JSON.stringify(distWorker.href)});
`,
    );
    const pool = new SignerPool(keysA.secret, { workers: 1, workerUrl: pathToFileURL(faulty) });
    try {
      await pool.ready();
      await expect(pool.sign(body)).rejects.toThrow(/ML-DSA-65 signing failed \(pqclean: randomness source failed \(test\)\); nothing signed/);
      // Were the broken worker kept, this would fail with "signer unusable after an earlier failure".
      const next = await Promise.all([pool.sign(body), pool.sign({ ...body, transfer: 'T2' })]);
      expect(next.every(verifies)).toBe(true);
      expect(existsSync(flag)).toBe(false);
    } finally {
      await pool.close();
    }
  });

  it('shows no key material when inspected', () => {
    const pool = new SignerPool(keysA.secret, { inline: true });
    const seed = Buffer.from(secretKeyMaterial(keysA.secret).seeds.ed25519).toString('hex');
    const shown = inspect(pool, { showHidden: true, depth: 5 });
    expect(shown).not.toContain(seed.slice(0, 8));
    expect(shown).not.toMatch(/Uint8Array|Buffer/);
    void pool.close();
  });
});
