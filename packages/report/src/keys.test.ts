/*
 * NAME
 *   keys.test - key generation, key id, key files (modes, no overwrite, strict readers), no leaks
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { keysA } from '../test/fixtures.js';
import {
  DEFAULT_KEY_NAME,
  encodePublicKey,
  generateKeys,
  jcs,
  KeyFileError,
  keyId,
  keyIdOfSecret,
  loadPublicKey,
  loadSecretKey,
  parsePublicKey,
  writeKeyFiles,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'sluice-report-keys-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (): string => {
  const d = join(tmp, `d${dirCount++}`);
  mkdirSync(d);
  return d;
};

describe('generateKeys and keyId', () => {
  it('gives raw keys of the documented lengths and a 32-hex key id', () => {
    const { secret, public: pub } = generateKeys();
    expect(pub.ed25519.length).toBe(32);
    expect(pub.mldsa65.length).toBe(1952);
    expect(pub.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(secret.keyId).toBe(pub.keyId);
    expect(keyIdOfSecret(secret)).toBe(pub.keyId);
  });

  it('derives the key id as SHA-256(ed25519 || mldsa65)[0..16] in hex', () => {
    const pub = keysA.public;
    const expected = createHash('sha256').update(Buffer.concat([pub.ed25519, pub.mldsa65])).digest('hex').slice(0, 32);
    expect(keyId(pub)).toBe(expected);
  });

  it('is deterministic from seeds and random without them', () => {
    const seeds = { ed25519: new Uint8Array(32).fill(1), mldsa65: new Uint8Array(32).fill(2) };
    expect(generateKeys(seeds).public.keyId).toBe(generateKeys(seeds).public.keyId);
    expect(generateKeys().public.keyId).not.toBe(generateKeys().public.keyId);
  });

  it.each([
    ['ed25519 one byte short', { ed25519: new Uint8Array(31), mldsa65: new Uint8Array(1952) }],
    ['mldsa65 one byte long', { ed25519: new Uint8Array(32), mldsa65: new Uint8Array(1953) }],
    ['ed25519 not bytes', { ed25519: 'x'.repeat(32) as unknown as Uint8Array, mldsa65: new Uint8Array(1952) }],
  ])('keyId refuses %s', (_name, pub) => {
    expect(() => keyId(pub)).toThrow(TypeError);
  });

  it('generateKeys refuses seeds of the wrong length', () => {
    expect(() => generateKeys({ ed25519: new Uint8Array(31), mldsa65: new Uint8Array(32) })).toThrow(TypeError);
  });

  it('never shows secret material: inspect, JSON, String, template', () => {
    const { secret } = generateKeys();
    const shown = [inspect(secret, { showHidden: true, depth: 10 }), JSON.stringify({ secret }), String(secret), `${secret}`, inspect({ secret })];
    for (const s of shown) {
      expect(s).toContain(`[SecretKey ${secret.keyId}]`);
      expect(s.length).toBeLessThan(200);
    }
  });
});

describe('writeKeyFiles', () => {
  it('writes NAME.key 0400 and NAME.pub 0444 that load back to the same key', () => {
    const dir = freshDir();
    const w = writeKeyFiles(dir, { keys: keysA });
    expect(w.secretPath).toBe(join(dir, `${DEFAULT_KEY_NAME}.key`));
    expect(w.publicPath).toBe(join(dir, `${DEFAULT_KEY_NAME}.pub`));
    expect(lstatSync(w.secretPath).mode & 0o7777).toBe(0o400);
    expect(lstatSync(w.publicPath).mode & 0o7777).toBe(0o444);
    expect(w.keyId).toBe(keysA.public.keyId);
    expect(loadSecretKey(w.secretPath).keyId).toBe(keysA.secret.keyId);
    expect(loadPublicKey(w.publicPath)).toEqual(keysA.public);
  });

  it('sets the modes exactly whatever the umask', () => {
    const old = process.umask(0o777);
    try {
      const w = writeKeyFiles(freshDir());
      expect(lstatSync(w.secretPath).mode & 0o7777).toBe(0o400);
      expect(lstatSync(w.publicPath).mode & 0o7777).toBe(0o444);
    } finally {
      process.umask(old);
    }
  });

  it('writes the documented one-line JSON', () => {
    const w = writeKeyFiles(freshDir(), { keys: keysA, name: 'k' });
    const pub = readFileSync(w.publicPath, 'utf8');
    expect(pub).toBe(encodePublicKey(keysA.public));
    expect(pub).toMatch(/^\{"ed25519":"[A-Za-z0-9+/]{43}=","format":"sluice-public-key\/1","key":"[0-9a-f]{32}","mldsa65":"[A-Za-z0-9+/=]{2604}"\}\n$/);
    const sec = readFileSync(w.secretPath, 'utf8');
    expect(sec).toMatch(/^\{"ed25519":"[A-Za-z0-9+/]{43}=","format":"sluice-secret-key\/1","key":"[0-9a-f]{32}","mldsa65":"[A-Za-z0-9+/]{43}="\}\n$/);
  });

  it('refuses to overwrite either file and leaves the existing one untouched', () => {
    const dir = freshDir();
    const first = writeKeyFiles(dir);
    const before = readFileSync(first.secretPath);
    expect(() => writeKeyFiles(dir)).toThrow(/already exists; refusing to overwrite/);
    expect(readFileSync(first.secretPath).equals(before)).toBe(true);

    // Only the .pub exists: the .key created first must be removed again.
    const dir2 = freshDir();
    writeFileSync(join(dir2, 'x.pub'), 'occupied');
    expect(() => writeKeyFiles(dir2, { name: 'x' })).toThrow(KeyFileError);
    expect(() => lstatSync(join(dir2, 'x.key'))).toThrow(/ENOENT/);
    expect(readFileSync(join(dir2, 'x.pub'), 'utf8')).toBe('occupied');
  });

  it('does not write through a symlink planted at the name', () => {
    const dir = freshDir();
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'y.key'));
    expect(() => writeKeyFiles(dir, { name: 'y' })).toThrow(KeyFileError);
    expect(() => lstatSync(join(dir, 'elsewhere'))).toThrow(/ENOENT/);
  });

  it('refuses a missing directory and names with path characters', () => {
    expect(() => writeKeyFiles(join(tmp, 'no-such-dir'))).toThrow(/directory does not exist/);
    for (const name of ['../x', 'a/b', '', '.hidden', 'x'.repeat(65)]) expect(() => writeKeyFiles(freshDir(), { name })).toThrow(TypeError);
  });
});

describe('loadSecretKey', () => {
  const written = writeKeyFiles(freshDir(), { keys: keysA });
  const secretText = readFileSync(written.secretPath, 'utf8');
  const seedB64 = (JSON.parse(secretText) as { ed25519: string; mldsa65: string }).ed25519;
  const seedHex = Buffer.from(seedB64, 'base64').toString('hex');

  /** secretFile - write text as a 0400 secret key file. */
  const secretFile = (text: string, mode = 0o400): string => {
    const p = join(freshDir(), 'k.key');
    writeFileSync(p, text, { mode });
    chmodSync(p, mode);
    return p;
  };

  /** expectRefused - loadSecretKey throws KeyFileError naming the path, matching `message`, with no seed in it. */
  const expectRefused = (path: string, message: RegExp): void => {
    let err: unknown;
    try {
      loadSecretKey(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeyFileError);
    const m = (err as Error).message;
    expect(m.startsWith(`${path}: `)).toBe(true);
    expect(m).toMatch(message);
    expect(m).not.toContain(seedB64);
    expect(m).not.toContain(seedB64.slice(0, 12));
    expect(m).not.toContain(seedHex.slice(0, 12));
  };

  it.each([0o440, 0o404, 0o644, 0o600 | 0o004])('refuses a key file with mode %o (too open)', (mode) => {
    expectRefused(secretFile(secretText, mode), /too open/);
  });

  it('accepts 0600 as well as 0400', () => {
    expect(loadSecretKey(secretFile(secretText, 0o600)).keyId).toBe(keysA.secret.keyId);
  });

  it.each([
    ['not JSON', () => secretText.slice(0, 40), /not valid JSON/],
    ['a public key file', () => readFileSync(written.publicPath, 'utf8'), /this is a public key file|too open/],
    ['a seed one byte short', () => secretText.replace(seedB64, Buffer.alloc(31, 7).toString('base64')), /"ed25519" \(Ed25519 seed\) must be base64 of 32 bytes/],
    ['a seed as hex', () => secretText.replace(seedB64, seedHex), /"ed25519" \(Ed25519 seed\)/],
    ['a changed seed (key id mismatch)', () => secretText.replace(seedB64, Buffer.alloc(32, 9).toString('base64')), /not the id derived from the seeds/],
    ['a duplicated member', () => secretText.replace('{', `{"ed25519":"${seedB64}",`), /duplicate key/],
    ['an extra member', () => secretText.replace('{', '{"comment":"x",'), /unknown member/],
    ['a missing member', () => jcs({ format: 'sluice-secret-key/1', key: keysA.secret.keyId, ed25519: seedB64 }), /missing member "mldsa65"/],
    ['a number where a string belongs', () => secretText.replace(/"key":"[0-9a-f]+"/, '"key":1'), /"key" is not a string/],
    ['an array', () => '[]', /not a JSON object/],
    ['invalid UTF-8', () => '\uFFFD', /./],
  ])('refuses %s without quoting key material', (_name, make, message) => {
    expectRefused(secretFile(make()), message);
  });

  it('refuses a directory, a FIFO-like non-file and a missing file', () => {
    const d = freshDir();
    chmodSync(d, 0o700);
    expectRefused(d, /not a regular file/);
    expectRefused(join(tmp, 'missing.key'), /cannot open \(ENOENT\)/);
  });

  it('refuses a file larger than 64 KiB', () => {
    expectRefused(secretFile(' '.repeat(70000)), /larger than/);
  });
});

describe('parsePublicKey / loadPublicKey', () => {
  const good = encodePublicKey(keysA.public);
  const obj = JSON.parse(good) as Record<string, string>;
  const mk = (over: Record<string, unknown>): string => JSON.stringify({ ...obj, ...over });

  it('accepts any whitespace and member order', () => {
    expect(parsePublicKey(JSON.stringify(obj, null, 4))).toEqual(keysA.public);
    expect(parsePublicKey(JSON.stringify({ mldsa65: obj.mldsa65, key: obj.key, format: obj.format, ed25519: obj.ed25519 }))).toEqual(keysA.public);
  });

  it.each([
    ['ed25519 wrong type', mk({ ed25519: 5 }), /member "ed25519" is not a string/],
    ['ed25519 empty', mk({ ed25519: '' }), /"ed25519" \(Ed25519 public key\) must be base64 of 32 bytes/],
    ['ed25519 one byte short', mk({ ed25519: Buffer.alloc(31).toString('base64') }), /"ed25519"/],
    ['ed25519 as hex', mk({ ed25519: Buffer.from(keysA.public.ed25519).toString('hex') }), /"ed25519"/],
    ['mldsa65 one byte short', mk({ mldsa65: Buffer.from(keysA.public.mldsa65.subarray(1)).toString('base64') }), /"mldsa65" \(ML-DSA-65 public key\)/],
    ['mldsa65 with a line break', mk({ mldsa65: `${obj.mldsa65!.slice(0, 76)}\n${obj.mldsa65!.slice(76)}` }), /"mldsa65"/],
    ['mldsa65 of another key', mk({ mldsa65: Buffer.from(generateKeys().public.mldsa65).toString('base64') }), /not the id of the keys/],
    ['key id wrong', mk({ key: '0'.repeat(32) }), /not the id of the keys/],
    ['key id uppercase', mk({ key: obj.key!.toUpperCase() }), /"key" is not 32 lowercase hex/],
    ['format secret', mk({ format: 'sluice-secret-key/1' }), /SECRET key file/],
    ['format other', mk({ format: 'ssh-ed25519' }), /"format" is not "sluice-public-key\/1"/],
    ['extra member', mk({ comment: 'hi' }), /unknown member/],
    ['missing member', JSON.stringify({ format: obj.format, key: obj.key, ed25519: obj.ed25519 }), /missing member "mldsa65"/],
    ['duplicate member', good.replace('{', `{"key":"${'0'.repeat(32)}",`), /duplicate key/],
    ['not JSON', 'ssh-ed25519 AAAA', /not valid JSON/],
    ['empty', '', /not valid JSON/],
  ])('refuses %s, naming the problem', (_name, text, message) => {
    expect(() => parsePublicKey(text, 'pub.json')).toThrow(KeyFileError);
    expect(() => parsePublicKey(text, 'pub.json')).toThrow(message);
    expect(() => parsePublicKey(text, 'pub.json')).toThrow(/^pub\.json: /);
  });

  it('loadPublicKey names the file in its errors', () => {
    const p = join(freshDir(), 'bad.pub');
    writeFileSync(p, mk({ key: '0'.repeat(32) }));
    expect(() => loadPublicKey(p)).toThrow(new RegExp(`^${p}: `));
    expect(() => loadPublicKey(join(tmp, 'none.pub'))).toThrow(/cannot open \(ENOENT\)/);
  });
});
