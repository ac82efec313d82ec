/*
 * NAME
 *   _hybrid - the one place that calls ML-DSA-65 (pqclean to sign, @noble/post-quantum for the
 *   rest) and Ed25519 (node:crypto)
 *
 * SYNOPSIS
 *   import { deriveHybrid, hybridSign, hybridVerify, loadSigner, signerFaulted, LENGTHS } from './_hybrid.js';
 *   deriveHybrid(seeds: HybridSeeds): HybridKeys
 *   hybridSign(message: Uint8Array, keys: HybridKeys, deterministic: boolean): HybridSignatures
 *   hybridVerify(message: Uint8Array, sigs: HybridSignatures, pub: HybridPublic): { ed25519: boolean; mldsa65: boolean }
 *   loadSigner(): void          load the ML-DSA signer now (hybridSign otherwise loads it on first use)
 *   signerFaulted(): boolean    a signing call failed in this thread; hybridSign now refuses to sign
 *
 * DESCRIPTION
 *   Both algorithms sign the same message: the Sluice signed bytes
 *   (label || 0x00 || JCS body, see canonicalBytes in report.ts). The
 *   domain-separation label is inside the message, and ML-DSA is called with
 *   the EMPTY FIPS 204 context, because liboqs-based verifiers expose no
 *   context parameter (shared/facts.md). Ed25519 is pure Ed25519 (RFC 8032,
 *   no prehash, no context).
 *
 *   Who does what with ML-DSA-65:
 *     hedged signing (production)   pqclean 0.8.1, its WebAssembly build of
 *                                   PQClean's ml-dsa-65 "clean" code
 *     deterministic signing         @noble/post-quantum (extraEntropy: false);
 *                                   only the test vector and tests ask for it,
 *                                   because pqclean has no deterministic mode
 *     key generation, verification  @noble/post-quantum, pinned to 0.7.x (its
 *                                   keygen(seed) and verify(sig, msg, publicKey,
 *                                   opts) order)
 *   pqclean takes noble's 4032-byte expanded secret key as it is. Its
 *   WebAssembly backend is loaded by path (pqclean/wasm/index.js), never
 *   through pqclean's own index.js: that one picks a backend from a file
 *   its install script writes, and the root package.json denies that script
 *   (allowScripts), so no native build runs at `npm ci`. Why WebAssembly
 *   and not pqclean's native addon: docs/performance.md, "ML-DSA signing:
 *   pqclean" (as fast here, no compile at install, and its randomness fails
 *   closed; see SECURITY).
 *
 *   Keys come from two 32-byte seeds: the Ed25519 private key (RFC 8032) and the
 *   ML-DSA-65 key-generation seed xi (FIPS 204 Algorithm 6, ML-DSA.KeyGen_internal).
 *
 *   ML-DSA signing is hedged (fresh randomness per signature) unless
 *   `deterministic` is set: a deterministic signature is as valid, but
 *   hedged signing resists fault and side-channel attacks better (FIPS 204
 *   section 3.4).
 *
 * SECURITY
 *   hybridSign verifies both fresh signatures before returning them. A
 *   hedged ML-DSA signature is made by pqclean and checked by noble, so a
 *   bug or a fault in either yields an error, never a bad report.
 *
 *   Randomness: pqclean's WebAssembly code draws its 32 bytes of rnd from
 *   node:crypto's randomFillSync (OpenSSL's CSPRNG), which throws if it
 *   cannot deliver; the throw propagates out of the sign call and nothing is
 *   signed. (pqclean's native addon instead ignores a failed getrandom()
 *   and signs with zeroed rnd, i.e. deterministically: one more reason it is
 *   not used.) An exception that unwinds through WebAssembly leaves the
 *   instance's shadow stack pointer lowered and its SHAKE allocations
 *   leaked, so after any failed pqclean call this thread's signer is
 *   treated as broken: every later hedged hybridSign throws, and
 *   signer-worker.ts retires the worker so that SignerPool starts a fresh
 *   one with a fresh instance.
 *
 *   pqclean copies the secret key into WebAssembly memory for each call and
 *   zeroes that copy afterwards; PQClean's unpacked key (s1, s2, t0) stays
 *   on the WebAssembly stack until overwritten, as noble leaves it on the
 *   heap. Errors thrown here never contain key bytes.
 */
import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

/** Byte lengths of everything the format stores. */
export const LENGTHS = {
  seed: 32,
  ed25519Public: 32,
  ed25519Signature: 64,
  mldsa65Public: 1952,
  mldsa65Secret: 4032,
  mldsa65Signature: 3309,
} as const;

/** The signature members of a report or a tree head, with their byte lengths. */
export const SIGNATURE_FIELDS = [
  ['ed25519', LENGTHS.ed25519Signature],
  ['mldsa65', LENGTHS.mldsa65Signature],
] as const;

/** HybridSeeds - the whole secret: two 32-byte seeds. */
export interface HybridSeeds {
  ed25519: Uint8Array;
  mldsa65: Uint8Array;
}

/** HybridPublic - the two raw public keys. */
export interface HybridPublic {
  ed25519: Uint8Array;
  mldsa65: Uint8Array;
}

/** HybridKeys - expanded keys ready to sign, plus their public halves. */
export interface HybridKeys {
  edPrivate: KeyObject;
  mldsaSecret: Uint8Array;
  public: HybridPublic;
}

/** HybridSignatures - raw signature bytes. */
export interface HybridSignatures {
  ed25519: Uint8Array;
  mldsa65: Uint8Array;
}

// RFC 8410 DER wrappers around a raw Ed25519 seed / public key.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const EMPTY_CONTEXT = new Uint8Array(0);

/** The part of pqclean's classic API used here (pqclean ships no type declarations). */
interface PqcleanSign {
  readonly privateKeySize: number;
  readonly signatureSize: number;
  /** Synchronous without a callback: the ML-DSA signature (empty context) as a Uint8Array. */
  sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array;
}
interface PqcleanBackend {
  Sign: new (algorithm: string) => PqcleanSign;
}

let signer: PqcleanSign | undefined;
let fault: string | undefined;

/** loadSigner - instantiate pqclean's WebAssembly ML-DSA-65 for this thread, once; throws if it cannot. */
export function loadSigner(): void {
  if (signer) return;
  const pq = createRequire(import.meta.url)('pqclean/wasm/index.js') as PqcleanBackend;
  const s = new pq.Sign('ml-dsa-65');
  if (s.privateKeySize !== LENGTHS.mldsa65Secret || s.signatureSize !== LENGTHS.mldsa65Signature) {
    throw new Error(`pqclean ml-dsa-65 has a ${s.privateKeySize}-byte secret key and ${s.signatureSize}-byte signature, not ML-DSA-65's`);
  }
  signer = s;
}

/** signerFaulted - whether a pqclean call failed in this thread (hybridSign then refuses hedged signing). */
export function signerFaulted(): boolean {
  return fault !== undefined;
}

/** pqcleanSign - one hedged ML-DSA-65 signature; any failure marks this thread's signer broken. */
function pqcleanSign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (fault !== undefined) throw new Error(`ML-DSA-65 signer unusable after an earlier failure (${fault}); nothing signed`);
  loadSigner();
  try {
    return new Uint8Array(signer!.sign(secretKey, message));
  } catch (err) {
    fault = (err instanceof Error ? err.message : String(err)).slice(0, 120);
    throw new Error(`ML-DSA-65 signing failed (pqclean: ${fault}); nothing signed`);
  }
}

/** deriveHybrid - expand both seeds into signing keys and raw public keys. */
export function deriveHybrid(seeds: HybridSeeds): HybridKeys {
  if (seeds.ed25519.length !== LENGTHS.seed) throw new TypeError(`ed25519 seed must be ${LENGTHS.seed} bytes`);
  if (seeds.mldsa65.length !== LENGTHS.seed) throw new TypeError(`ML-DSA-65 seed must be ${LENGTHS.seed} bytes`);
  const der = Buffer.concat([PKCS8_ED25519, seeds.ed25519]);
  const edPrivate = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  const edPublic = new Uint8Array(
    createPublicKey(edPrivate).export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519.length),
  );
  // noble 0.7.x keygen(seed) is FIPS 204 KeyGen_internal(xi); it neither keeps nor wipes a given seed.
  const { secretKey, publicKey } = ml_dsa65.keygen(seeds.mldsa65);
  return { edPrivate, mldsaSecret: secretKey, public: { ed25519: edPublic, mldsa65: publicKey } };
}

/** ed25519PublicKey - a node KeyObject for a raw 32-byte Ed25519 public key. */
function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

/** hybridSign - sign `message` with both keys and check both signatures before returning. */
export function hybridSign(message: Uint8Array, keys: HybridKeys, deterministic: boolean): HybridSignatures {
  if (keys.mldsaSecret.length !== LENGTHS.mldsa65Secret) throw new RangeError(`ML-DSA-65 secret key must be ${LENGTHS.mldsa65Secret} bytes`);
  const ed25519 = new Uint8Array(edSign(null, message, keys.edPrivate));
  // Empty context on purpose (see DESCRIPTION); pqclean's classic sign() has no other.
  const mldsa65 = deterministic
    ? ml_dsa65.sign(message, keys.mldsaSecret, { context: EMPTY_CONTEXT, extraEntropy: false })
    : pqcleanSign(message, keys.mldsaSecret);
  const check = hybridVerify(message, { ed25519, mldsa65 }, keys.public);
  if (!check.ed25519 || !check.mldsa65) throw new Error('fresh signature does not verify (signing fault); report not signed');
  return { ed25519, mldsa65 };
}

/** hybridVerify - check each signature on its own; malformed inputs verify as false, never throw. */
export function hybridVerify(
  message: Uint8Array,
  sigs: HybridSignatures,
  pub: HybridPublic,
): { ed25519: boolean; mldsa65: boolean } {
  let ed25519 = false;
  let mldsa65 = false;
  if (sigs.ed25519.length === LENGTHS.ed25519Signature && pub.ed25519.length === LENGTHS.ed25519Public) {
    try {
      ed25519 = edVerify(null, message, ed25519PublicKey(pub.ed25519), sigs.ed25519);
    } catch {
      ed25519 = false;
    }
  }
  if (sigs.mldsa65.length === LENGTHS.mldsa65Signature && pub.mldsa65.length === LENGTHS.mldsa65Public) {
    try {
      mldsa65 = ml_dsa65.verify(sigs.mldsa65, message, pub.mldsa65, { context: EMPTY_CONTEXT });
    } catch {
      mldsa65 = false;
    }
  }
  return { ed25519, mldsa65 };
}
