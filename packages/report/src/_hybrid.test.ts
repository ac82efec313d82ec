// ML-DSA-65 signing moved to C (@sluice/native mldsa65.sign, PQClean; issue 9). These tests hold it
// to @noble/post-quantum, which still verifies every signature: the same bytes for a deterministic
// signature, hedged signatures that noble accepts and that differ each time, and arguments refused
// by name. The committed test vector (vector.test.ts) checks the same through hybridSign.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { mldsa65 } from '@sluice/native';
import { describe, expect, it } from 'vitest';
import { deriveHybrid, hybridSign, hybridVerify } from './_hybrid.js';

const EMPTY = new Uint8Array(0);
const keysOf = (seed: Uint8Array) => ml_dsa65.keygen(seed);

describe('mldsa65.sign (C) against @noble/post-quantum', () => {
  it('gives exactly noble’s deterministic signature, for messages of 0 bytes to 100 KiB and several keys', () => {
    const sizes = [0, 1, 63, 64, 135, 136, 137, 1000, 4096, 100 * 1024];
    for (let k = 0; k < 3; k++) {
      const { secretKey } = keysOf(randomBytes(32));
      for (const n of sizes) {
        const msg = randomBytes(n);
        const ours = mldsa65.sign(secretKey, msg, true);
        const theirs = ml_dsa65.sign(msg, secretKey, { context: EMPTY, extraEntropy: false });
        expect(ours.length).toBe(3309);
        expect(Buffer.from(ours).equals(Buffer.from(theirs)), `key ${k}, ${n} bytes`).toBe(true);
      }
    }
  });

  it('signs hedged by default: noble verifies each signature, two of one message differ, neither equals the deterministic one', () => {
    const { secretKey, publicKey } = keysOf(randomBytes(32));
    const other = keysOf(randomBytes(32));
    const msg = randomBytes(700);
    const det = Buffer.from(mldsa65.sign(secretKey, msg, true));
    const a = Buffer.from(mldsa65.sign(secretKey, msg, false));
    const b = Buffer.from(mldsa65.sign(secretKey, msg, false));
    expect(ml_dsa65.verify(a, msg, publicKey, { context: EMPTY })).toBe(true);
    expect(ml_dsa65.verify(b, msg, publicKey, { context: EMPTY })).toBe(true);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(det)).toBe(false);
    // The deterministic flag is per call: the next hedged call is hedged again.
    expect(Buffer.from(mldsa65.sign(secretKey, msg, false)).equals(det)).toBe(false);
    // Bound to its key and message.
    expect(ml_dsa65.verify(a, msg, other.publicKey, { context: EMPTY })).toBe(false);
    const flipped = Buffer.from(msg);
    flipped[0]! ^= 1;
    expect(ml_dsa65.verify(a, flipped, publicKey, { context: EMPTY })).toBe(false);
  });

  it('reads a key and a message that sit at an offset inside a larger buffer', () => {
    const { secretKey } = keysOf(randomBytes(32));
    const msg = randomBytes(300);
    const big = Buffer.concat([randomBytes(17), secretKey, randomBytes(5), msg, randomBytes(9)]);
    const sk = big.subarray(17, 17 + secretKey.length);
    const m = big.subarray(17 + secretKey.length + 5, 17 + secretKey.length + 5 + msg.length);
    expect(Buffer.from(mldsa65.sign(sk, m, true)).equals(Buffer.from(mldsa65.sign(secretKey, msg, true)))).toBe(true);
  });

  it('refuses bad arguments by name, before signing anything', () => {
    const { secretKey } = keysOf(randomBytes(32));
    const msg = randomBytes(10);
    const sign = mldsa65.sign as (...args: unknown[]) => Uint8Array;
    expect(() => sign(secretKey.subarray(1), msg, false)).toThrow(/argument 'secretKey' must be 4032 bytes/);
    expect(() => sign(new Uint8Array(4033), msg, false)).toThrow(RangeError);
    expect(() => sign('key', msg, false)).toThrow(/argument 'secretKey' must be a Uint8Array/);
    expect(() => sign(new Uint16Array(2016), msg, false)).toThrow(TypeError);
    expect(() => sign(secretKey, 'message', false)).toThrow(/argument 'message' must be a Uint8Array/);
    expect(() => sign(secretKey, msg, 1)).toThrow(/argument 'deterministic' must be a boolean/);
    expect(() => sign(secretKey, msg)).toThrow(/expects \(secretKey, message, deterministic\)/);
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
  });
});

// Hedged signing needs fresh randomness. If getrandom() fails, the C signer must throw, never hand
// back a signature made with missing (zeroed) randomness. A preloaded shim makes getrandom() fail
// with EIO in a child process; deterministic signing, which needs no randomness, still works there.
describe('mldsa65.sign when getrandom() fails', () => {
  it('throws an Error naming getrandom and EIO for a hedged signature; deterministic signing is unaffected', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-getrandom-'));
    try {
      const shim = path.join(dir, 'shim.c');
      fs.writeFileSync(
        shim,
        '#include <errno.h>\n#include <stddef.h>\n#include <sys/types.h>\n' +
          'ssize_t getrandom(void *b, size_t n, unsigned f) { (void) b; (void) n; (void) f; errno = EIO; return -1; }\n',
      );
      execFileSync('cc', ['-shared', '-fPIC', '-o', path.join(dir, 'shim.so'), shim]);
      const native = fileURLToPath(new URL('../../native/dist/index.js', import.meta.url));
      const script = `
        const { mldsa65 } = await import(${JSON.stringify(native)});
        const sk = new Uint8Array(4032).fill(1);
        const det = mldsa65.sign(sk, new Uint8Array(3), true);
        let hedged;
        try { mldsa65.sign(sk, new Uint8Array(3), false); hedged = 'signed'; }
        catch (e) { hedged = { code: e.code, syscall: e.syscall, message: e.message }; }
        console.log(JSON.stringify({ det: det.length, hedged }));`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, LD_PRELOAD: path.join(dir, 'shim.so') },
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.det).toBe(3309);
      expect(out.hedged).toEqual({ code: 'EIO', syscall: 'getrandom', message: 'getrandom failed; nothing signed' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
