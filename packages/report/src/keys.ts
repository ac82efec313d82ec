/*
 * NAME
 *   keys - hybrid signing keys: generation, key id, key files
 *
 * SYNOPSIS
 *   import { generateKeys, writeKeyFiles, loadSecretKey, loadPublicKey,
 *            parsePublicKey, encodePublicKey, keyId, SecretKey } from '@sluice/report';
 *   generateKeys(seeds?: { ed25519: Uint8Array; mldsa65: Uint8Array }): KeyPair
 *   writeKeyFiles(dir: string, options?: { keys?: KeyPair; name?: string }): WrittenKeyFiles
 *   loadSecretKey(path: string): SecretKey
 *   loadPublicKey(path: string): PublicKey
 *   parsePublicKey(text: string, source?: string): PublicKey
 *   encodePublicKey(pub: PublicKey): string
 *   keyId(pub: { ed25519: Uint8Array; mldsa65: Uint8Array }): string
 *   keyIdOfSecret(secret: SecretKey): string      // = secret.keyId
 *
 * DESCRIPTION
 *   A Sluice signing key is two 32-byte seeds: an Ed25519 private key
 *   (RFC 8032) and an ML-DSA-65 key-generation seed (FIPS 204 xi). The public
 *   key is the two raw public keys (32 and 1952 bytes). The key id is the
 *   first 16 bytes of SHA-256(ed25519 public || ML-DSA-65 public), in
 *   lowercase hex (32 characters).
 *
 *   Key files are one line of RFC 8785 JSON and a LF (docs/report-format.md):
 *     NAME.key  0400  {"ed25519":<b64 seed>,"format":"sluice-secret-key/1","key":<id>,"mldsa65":<b64 seed>}
 *     NAME.pub  0444  {"ed25519":<b64 32 B>,"format":"sluice-public-key/1","key":<id>,"mldsa65":<b64 1952 B>}
 *   Readers accept any whitespace and member order but refuse duplicate or
 *   unknown members, wrong lengths, non-canonical base64, and a "key" that is
 *   not the id derived from the keys (a corrupted or spliced file).
 *
 * SECURITY
 *   SecretKey keeps its material in private fields: util.inspect, String(),
 *   JSON.stringify and template strings show only "[SecretKey <id>]".
 *   Nothing in this file puts key bytes into an error message.
 *
 *   writeKeyFiles creates both files with O_EXCL (never overwrites, never
 *   follows a symlink planted at the name), fchmods them to 0400/0444
 *   whatever the umask, fsyncs them and the directory. If the second file
 *   cannot be created, the first is removed again.
 *
 *   loadSecretKey refuses a file that is not regular, that group or others
 *   may access in any way (like ssh's "UNPROTECTED PRIVATE KEY FILE"), or
 *   that is larger than 64 KiB.
 *
 * DIAGNOSTICS
 *   KeyFileError "<path>: <what is wrong>" for every refusal.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants as C, fchmodSync, fstatSync, fsyncSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { deriveHybrid, LENGTHS, type HybridKeys, type HybridSeeds } from './_hybrid.js';
import { fromBase64Strict, isLowerHex, toBase64, toHex } from './_codec.js';
import { JsonError, parseStrictJson } from './_json.js';
import { KeyFileError } from './errors.js';
import { jcs } from './jcs.js';

/** Format names written into key files. */
export const SECRET_KEY_FORMAT = 'sluice-secret-key/1';
export const PUBLIC_KEY_FORMAT = 'sluice-public-key/1';
/** Default base name of the key files written by writeKeyFiles: NAME.key and NAME.pub. */
export const DEFAULT_KEY_NAME = 'sluice-report';

const MAX_KEY_FILE = 64 * 1024;

/** PublicKey - the two raw public keys and their key id. */
export interface PublicKey {
  readonly keyId: string;
  /** Raw Ed25519 public key, 32 bytes. */
  readonly ed25519: Uint8Array;
  /** Raw ML-DSA-65 public key, 1952 bytes. */
  readonly mldsa65: Uint8Array;
}

/** KeyPair - what generateKeys returns. */
export interface KeyPair {
  readonly secret: SecretKey;
  readonly public: PublicKey;
}

/** WrittenKeyFiles - where writeKeyFiles put the two files. */
export interface WrittenKeyFiles {
  readonly secretPath: string;
  readonly publicPath: string;
  readonly keyId: string;
}

let material: (key: SecretKey) => { seeds: HybridSeeds; keys: HybridKeys };

/** SecretKey - an opaque signing key; prints as "[SecretKey <id>]" and nothing more. */
export class SecretKey {
  readonly keyId: string;
  readonly publicKey: PublicKey;
  #seeds: HybridSeeds;
  #keys: HybridKeys;

  static {
    material = (key) => ({ seeds: key.#seeds, keys: key.#keys });
  }

  /** constructor - use generateKeys or loadSecretKey; this copies the seeds it is given. */
  constructor(seeds: HybridSeeds) {
    this.#seeds = { ed25519: Uint8Array.from(seeds.ed25519), mldsa65: Uint8Array.from(seeds.mldsa65) };
    this.#keys = deriveHybrid(this.#seeds);
    this.publicKey = Object.freeze({ keyId: keyId(this.#keys.public), ...this.#keys.public });
    this.keyId = this.publicKey.keyId;
    Object.freeze(this);
  }

  toString(): string {
    return `[SecretKey ${this.keyId}]`;
  }
  toJSON(): string {
    return this.toString();
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

/** secretKeyMaterial - package-internal access to seeds and expanded keys (not exported by index.ts). */
export function secretKeyMaterial(key: SecretKey): { seeds: HybridSeeds; keys: HybridKeys } {
  return material(key);
}

/** keyId - first 16 bytes of SHA-256(ed25519 public || ML-DSA-65 public), lowercase hex. */
export function keyId(pub: { ed25519: Uint8Array; mldsa65: Uint8Array }): string {
  if (!(pub.ed25519 instanceof Uint8Array) || pub.ed25519.length !== LENGTHS.ed25519Public) {
    throw new TypeError(`keyId: ed25519 public key must be ${LENGTHS.ed25519Public} bytes`);
  }
  if (!(pub.mldsa65 instanceof Uint8Array) || pub.mldsa65.length !== LENGTHS.mldsa65Public) {
    throw new TypeError(`keyId: ML-DSA-65 public key must be ${LENGTHS.mldsa65Public} bytes`);
  }
  return createHash('sha256').update(pub.ed25519).update(pub.mldsa65).digest().subarray(0, 16).toString('hex');
}

/** keyIdOfSecret - the key id of a secret key (the same as secret.keyId). */
export function keyIdOfSecret(secret: SecretKey): string {
  return secret.keyId;
}

/** generateKeys - a fresh key pair from the system CSPRNG, or a fixed one from given seeds (test vectors). */
export function generateKeys(seeds?: { ed25519: Uint8Array; mldsa65: Uint8Array }): KeyPair {
  const s = seeds ?? { ed25519: randomBytes(LENGTHS.seed), mldsa65: randomBytes(LENGTHS.seed) };
  if (s.ed25519.length !== LENGTHS.seed || s.mldsa65.length !== LENGTHS.seed) {
    throw new TypeError(`generateKeys: seeds must be ${LENGTHS.seed} bytes each`);
  }
  const secret = new SecretKey(s);
  if (!seeds) {
    s.ed25519.fill(0);
    s.mldsa65.fill(0);
  }
  return { secret, public: secret.publicKey };
}

/** encodePublicKey - the public key file text (RFC 8785 JSON and a LF). */
export function encodePublicKey(pub: PublicKey): string {
  return `${jcs({ format: PUBLIC_KEY_FORMAT, key: keyId(pub), ed25519: toBase64(pub.ed25519), mldsa65: toBase64(pub.mldsa65) })}\n`;
}

/** encodeSecretKey - the secret key file text; only writeKeyFiles calls this. */
function encodeSecretKey(key: SecretKey): string {
  const { seeds } = material(key);
  return `${jcs({ format: SECRET_KEY_FORMAT, key: key.keyId, ed25519: toBase64(seeds.ed25519), mldsa65: toBase64(seeds.mldsa65) })}\n`;
}

/** writeKeyFiles - create DIR/NAME.key (0400) and DIR/NAME.pub (0444); never overwrite. */
export function writeKeyFiles(dir: string, options: { keys?: KeyPair; name?: string } = {}): WrittenKeyFiles {
  const name = options.name ?? DEFAULT_KEY_NAME;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new TypeError('writeKeyFiles: name must be 1-64 of [A-Za-z0-9._-], not starting with a dot');
  }
  const keys = options.keys ?? generateKeys();
  const secretPath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  // libuv opens every file close-on-exec; fs.constants has no O_CLOEXEC.
  const flags = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
  const created: string[] = [];
  const fds: number[] = [];
  try {
    for (const [path, mode] of [
      [secretPath, 0o400],
      [publicPath, 0o444],
    ] as const) {
      try {
        fds.push(openSync(path, flags, mode));
      } catch (err) {
        throw new KeyFileError(path, createProblem(err));
      }
      created.push(path);
      fchmodSync(fds[fds.length - 1]!, mode); // the umask may have removed bits; set exactly
    }
    const secretText = Buffer.from(encodeSecretKey(keys.secret));
    try {
      writeAll(fds[0]!, secretText);
    } finally {
      secretText.fill(0);
    }
    // The public half of the secret itself: the pair on disk cannot disagree.
    writeAll(fds[1]!, Buffer.from(encodePublicKey(keys.secret.publicKey)));
    for (const fd of fds) fsyncSync(fd);
  } catch (err) {
    for (const path of created) unlinkSync(path);
    throw err;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const dfd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return { secretPath, publicPath, keyId: keys.secret.keyId };
}

/** createProblem - a short reason for a failed exclusive create. */
function createProblem(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'EEXIST') return 'already exists; refusing to overwrite a key file';
  if (code === 'ELOOP') return 'is a symbolic link; refusing to write through it';
  if (code === 'ENOENT') return 'directory does not exist';
  return `cannot create (${typeof code === 'string' ? code : 'error'})`;
}

/** writeAll - write a whole buffer to fd. */
function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** readKeyFile - read a small regular file; `secret` also refuses group/other access. */
function readKeyFile(path: string, secret: boolean): string {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NONBLOCK);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw new KeyFileError(path, `cannot open (${typeof code === 'string' ? code : 'error'})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyFileError(path, 'is not a regular file');
    if (secret && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyFileError(path, `permissions ${mode} are too open; a secret key file must not be accessible by group or others (chmod 0400)`);
    }
    if (st.size > MAX_KEY_FILE) throw new KeyFileError(path, `is larger than ${MAX_KEY_FILE} bytes`);
    const buf = Buffer.alloc(MAX_KEY_FILE + 1);
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
      if (len > MAX_KEY_FILE) throw new KeyFileError(path, `is larger than ${MAX_KEY_FILE} bytes`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, len));
    } catch {
      throw new KeyFileError(path, 'is not UTF-8 text');
    } finally {
      buf.fill(0);
    }
  } finally {
    closeSync(fd);
  }
}

/** parseKeyObject - strict JSON with exactly the four members; problems name fields only. */
function parseKeyObject(text: string, source: string, format: string): Record<string, string> {
  let value: unknown;
  try {
    value = parseStrictJson(text, 4);
  } catch (err) {
    // JsonError.kind never quotes input: safe for a secret file.
    if (err instanceof JsonError) throw new KeyFileError(source, `not valid JSON: ${err.kind} at offset ${err.offset}`);
    throw err;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KeyFileError(source, 'not a JSON object');
  const obj = value as Record<string, unknown>;
  const expected = ['ed25519', 'format', 'key', 'mldsa65'];
  for (const k of Object.keys(obj)) {
    if (!expected.includes(k)) throw new KeyFileError(source, 'has an unknown member (expected only ed25519, format, key, mldsa65)');
  }
  for (const k of expected) {
    if (!(k in obj)) throw new KeyFileError(source, `missing member "${k}"`);
    if (typeof obj[k] !== 'string') throw new KeyFileError(source, `member "${k}" is not a string`);
  }
  if (obj.format !== format) {
    throw new KeyFileError(source, `"format" is not "${format}"${format === SECRET_KEY_FORMAT && obj.format === PUBLIC_KEY_FORMAT ? ' (this is a public key file)' : ''}${format === PUBLIC_KEY_FORMAT && obj.format === SECRET_KEY_FORMAT ? ' (this is a SECRET key file; do not distribute it)' : ''}`);
  }
  if (!isLowerHex(obj.key, 32)) throw new KeyFileError(source, '"key" is not 32 lowercase hex digits');
  return obj as Record<string, string>;
}

/** decodeField - strict base64 of a fixed length, or a KeyFileError naming the field. */
function decodeField(obj: Record<string, string>, field: 'ed25519' | 'mldsa65', length: number, source: string, what: string): Uint8Array {
  const bytes = fromBase64Strict(obj[field]!, length);
  if (!(bytes instanceof Uint8Array)) throw new KeyFileError(source, `"${field}" (${what}) ${bytes.problem}`);
  return bytes;
}

/** parsePublicKey - a public key file text to a PublicKey; `source` names it in errors. */
export function parsePublicKey(text: string, source = '<public key>'): PublicKey {
  if (text.length > MAX_KEY_FILE) throw new KeyFileError(source, `is larger than ${MAX_KEY_FILE} bytes`);
  const obj = parseKeyObject(text, source, PUBLIC_KEY_FORMAT);
  const ed25519 = decodeField(obj, 'ed25519', LENGTHS.ed25519Public, source, 'Ed25519 public key');
  const mldsa65 = decodeField(obj, 'mldsa65', LENGTHS.mldsa65Public, source, 'ML-DSA-65 public key');
  const id = keyId({ ed25519, mldsa65 });
  if (id !== obj.key) throw new KeyFileError(source, `"key" ${obj.key} is not the id of the keys in the file (${id}); file corrupted or spliced`);
  return Object.freeze({ keyId: id, ed25519, mldsa65 });
}

/** loadPublicKey - read and parse a public key file. */
export function loadPublicKey(path: string): PublicKey {
  return parsePublicKey(readKeyFile(path, false), path);
}

/** loadSecretKey - read and parse a secret key file (0400 or 0600, regular, owner-only). */
export function loadSecretKey(path: string): SecretKey {
  const obj = parseKeyObject(readKeyFile(path, true), path, SECRET_KEY_FORMAT);
  const ed25519 = decodeField(obj, 'ed25519', LENGTHS.seed, path, 'Ed25519 seed');
  const mldsa65 = decodeField(obj, 'mldsa65', LENGTHS.seed, path, 'ML-DSA-65 seed');
  const key = new SecretKey({ ed25519, mldsa65 });
  ed25519.fill(0);
  mldsa65.fill(0);
  if (key.keyId !== obj.key) {
    throw new KeyFileError(path, `"key" ${obj.key} is not the id derived from the seeds (${key.keyId}); file corrupted or spliced`);
  }
  return key;
}
