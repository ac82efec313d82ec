/*
 * NAME
 *   _hybrid.test - ML-DSA-65 signing by pqclean, held to @noble/post-quantum
 *
 * DESCRIPTION
 *   pqclean (WebAssembly) makes the hedged signatures, noble verifies them and
 *   makes the deterministic ones (_hybrid.ts). pqclean has no deterministic
 *   mode, so to hold its bytes to noble's the tests run the compiled
 *   _hybrid.js in a child process whose randomness source fills zeros: FIPS
 *   204's hedged signing with rnd = 0 is exactly the deterministic signature.
 *   The same child shows what a failing randomness source does (throws, and
 *   the thread's signer stays refused) and that a failing getrandom() does
 *   not turn hedged signatures into zero-randomness ones.
 *
 *   The child needs the compiled package (`npx tsc -b packages/report`, which
 *   `make build` does); without it these tests fail, naming the missing file.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { describe, expect, it } from 'vitest';
import { deriveHybrid, hybridSign, hybridVerify, LENGTHS } from './_hybrid.js';

const EMPTY = new Uint8Array(0);
const CHILD = fileURLToPath(new URL('../test/signer-child.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/_hybrid.js', import.meta.url));

type Signed = string | { error: string };
interface ChildResult {
  hedged: Signed[][];
  again: Signed[][];
  deterministic: Signed[][];
  faulted: boolean;
}

/** runChild - sign `messages` with each seed pair in signer-child.mjs under `mode`, with `env` added. */
function runChild(mode: 'zero' | 'fail' | 'real', seeds: Uint8Array[], messages: Uint8Array[], env: NodeJS.ProcessEnv = {}): ChildResult {
  expect(fs.existsSync(DIST), `${DIST} is missing: build the package first (npx tsc -b packages/report)`).toBe(true);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const input = JSON.stringify({ seeds: seeds.map((s) => ({ ed25519: hex(randomBytes(32)), mldsa65: hex(s) })), messages: messages.map(hex) });
  const r = spawnSync(process.execPath, [CHILD, mode], { input, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

/** nobleDeterministic - noble's deterministic (rnd = 0) ML-DSA-65 signature, hex. */
function nobleDeterministic(seed: Uint8Array, msg: Uint8Array): string {
  const { secretKey } = ml_dsa65.keygen(seed);
  return Buffer.from(ml_dsa65.sign(msg, secretKey, { context: EMPTY, extraEntropy: false })).toString('hex');
}

describe('pqclean’s ML-DSA-65 against @noble/post-quantum', () => {
  it('with zero randomness gives exactly noble’s deterministic signature, for messages of 0 bytes to 100 KiB and several keys', () => {
    const seeds = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const messages = [0, 1, 63, 64, 135, 136, 137, 1000, 4096, 100 * 1024].map((n) => randomBytes(n));
    const out = runChild('zero', seeds, messages);
    expect(out.faulted).toBe(false);
    seeds.forEach((seed, k) =>
      messages.forEach((msg, i) => {
        const theirs = nobleDeterministic(seed, msg);
        expect(out.hedged[k]![i], `key ${k}, ${msg.length} bytes`).toBe(theirs);
        // The deterministic path (noble) gives the same bytes: the stored test vector depends on it.
        expect(out.deterministic[k]![i]).toBe(theirs);
      }),
    );
  });

  it('signs hedged by default: noble verifies each signature, two of one message differ, neither equals the deterministic one', () => {
    const keys = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const other = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const msg = randomBytes(700);
    const det = Buffer.from(hybridSign(msg, keys, true).mldsa65);
    const a = Buffer.from(hybridSign(msg, keys, false).mldsa65);
    const b = Buffer.from(hybridSign(msg, keys, false).mldsa65);
    expect(a.length).toBe(LENGTHS.mldsa65Signature);
    expect(ml_dsa65.verify(a, msg, keys.public.mldsa65, { context: EMPTY })).toBe(true);
    expect(ml_dsa65.verify(b, msg, keys.public.mldsa65, { context: EMPTY })).toBe(true);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(det)).toBe(false);
    // The deterministic flag is per call: the next hedged call is hedged again.
    expect(Buffer.from(hybridSign(msg, keys, false).mldsa65).equals(det)).toBe(false);
    // Bound to its key and message.
    expect(ml_dsa65.verify(a, msg, other.public.mldsa65, { context: EMPTY })).toBe(false);
    const flipped = Buffer.from(msg);
    flipped[0]! ^= 1;
    expect(ml_dsa65.verify(a, flipped, keys.public.mldsa65, { context: EMPTY })).toBe(false);
  });

  it('reads a key and a message that sit at an offset inside a larger buffer', () => {
    const keys = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const msg = randomBytes(300);
    const big = Buffer.concat([randomBytes(17), keys.mldsaSecret, randomBytes(5), msg, randomBytes(9)]);
    const sk = big.subarray(17, 17 + keys.mldsaSecret.length);
    const m = big.subarray(17 + sk.length + 5, 17 + sk.length + 5 + msg.length);
    const sigs = hybridSign(m, { ...keys, mldsaSecret: sk }, false);
    expect(ml_dsa65.verify(sigs.mldsa65, msg, keys.public.mldsa65, { context: EMPTY })).toBe(true);
  });

  it('refuses a secret key of the wrong length by name, before signing anything', () => {
    const keys = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    for (const mldsaSecret of [keys.mldsaSecret.subarray(1), new Uint8Array(4033), new Uint8Array(0)]) {
      expect(() => hybridSign(randomBytes(10), { ...keys, mldsaSecret }, false)).toThrow(/ML-DSA-65 secret key must be 4032 bytes/);
    }
    // A refused argument is not a signer fault: the next signature is made.
    const msg = randomBytes(10);
    expect(hybridVerify(msg, hybridSign(msg, keys, false), keys.public)).toEqual({ ed25519: true, mldsa65: true });
  });
});

describe('hybridSign', () => {
  it('signs with both keys; hybridVerify (noble, node:crypto) accepts both and refuses another message', () => {
    const keys = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const msg = randomBytes(512);
    const sigs = hybridSign(msg, keys, false);
    expect(hybridVerify(msg, sigs, keys.public)).toEqual({ ed25519: true, mldsa65: true });
    expect(hybridVerify(randomBytes(512), sigs, keys.public)).toEqual({ ed25519: false, mldsa65: false });
  });

  it('refuses to return a signature its own check does not accept (a key whose halves do not match)', () => {
    const keys = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const other = deriveHybrid({ ed25519: randomBytes(32), mldsa65: randomBytes(32) });
    const mismatched = { ...keys, mldsaSecret: other.mldsaSecret };
    expect(() => hybridSign(randomBytes(64), mismatched, false)).toThrow(/does not verify/);
    expect(() => hybridSign(randomBytes(64), mismatched, true)).toThrow(/does not verify/);
  });
});

// A failed randomness source must never yield a signature made with missing (zeroed) randomness.
describe('hybridSign when randomness fails', () => {
  it('throws when the randomness source throws, nothing signed, and refuses every later hedged signature in that thread', () => {
    const out = runChild('fail', [randomBytes(32)], [randomBytes(3), randomBytes(40)]);
    expect(out.hedged[0]![0]).toEqual({ error: 'ML-DSA-65 signing failed (pqclean: randomness source failed (test)); nothing signed' });
    for (const later of [out.hedged[0]![1], ...out.again[0]!]) {
      expect(later).toEqual({ error: 'ML-DSA-65 signer unusable after an earlier failure (randomness source failed (test)); nothing signed' });
    }
    expect(out.faulted).toBe(true);
    // Deterministic signing needs no randomness (noble, rnd = 0): the vector path still works.
    for (const d of out.deterministic[0]!) expect(typeof d === 'string' && d.length).toBe(2 * LENGTHS.mldsa65Signature);
  });

  // pqclean's native addon fails this test: it ignores a failed getrandom() and signs with rnd = 0.
  it('when getrandom() fails, hedged signatures still carry fresh randomness (never the rnd = 0 signature)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-getrandom-'));
    try {
      const shim = path.join(dir, 'shim.c');
      fs.writeFileSync(
        shim,
        '#include <errno.h>\n#include <stddef.h>\n#include <sys/types.h>\n' +
          'ssize_t getrandom(void *b, size_t n, unsigned f) { (void) b; (void) n; (void) f; errno = EIO; return -1; }\n',
      );
      execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(dir, 'shim.so'), shim]);
      const seed = randomBytes(32);
      const msg = randomBytes(100);
      const out = runChild('real', [seed], [msg], { LD_PRELOAD: path.join(dir, 'shim.so') });
      const [a, b, det] = [out.hedged[0]![0], out.again[0]![0], out.deterministic[0]![0]];
      expect(typeof a, JSON.stringify(a)).toBe('string');
      expect(typeof b, JSON.stringify(b)).toBe('string');
      expect(det).toBe(nobleDeterministic(seed, msg));
      expect(a).not.toBe(det);
      expect(b).not.toBe(det);
      expect(a).not.toBe(b);
      expect(out.faulted).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
