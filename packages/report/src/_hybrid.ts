/*
 * NAME
 *   _hybrid - the one place that calls ML-DSA-65 (@sluice/native to sign, @noble/post-quantum for
 *   the rest) and Ed25519 (node:crypto)
 *
 * SYNOPSIS
 *   import { deriveHybrid, hybridSign, hybridVerify, LENGTHS } from './_hybrid.js';
 *   deriveHybrid(seeds: HybridSeeds): HybridKeys
 *   hybridSign(message: Uint8Array, keys: HybridKeys, deterministic: boolean): HybridSignatures
 *   hybridVerify(message: Uint8Array, sigs: HybridSignatures, pub: HybridPublic): { ed25519: boolean; mldsa65: boolean }
 *
 * DESCRIPTION
 *   Both algorithms sign the same message: the Sluice signed bytes
 *   (label || 0x00 || JCS body, see canonicalBytes in report.ts). The
 *   domain-separation label is inside the message, and ML-DSA is called with
 *   the EMPTY FIPS 204 context, because liboqs-based verifiers expose no
 *   context parameter (shared/facts.md). Ed25519 is pure Ed25519 (RFC 8032,
 *   no prehash, no context).
 *
 *   ML-DSA signatures are made in C (@sluice/native's mldsa65.sign: PQClean's
 *   reference implementation, about 0.7 ms here against 11 ms for
 *   @noble/post-quantum's sign; issue 9). Key generation and every
 *   verification stay with @noble/post-quantum, which is pinned to 0.7.x
 *   (its verify(sig, msg, publicKey, opts) order). The two give the same
 *   bytes for a deterministic signature (_hybrid.test.ts), and the
 *   self-check below uses noble, so a bug in either implementation stops a
 *   report instead of shipping a signature the other cannot verify.
 *
 *   Keys come from two 32-byte seeds: the Ed25519 private key (RFC 8032) and the
 *   ML-DSA-65 key-generation seed xi (FIPS 204 Algorithm 6, ML-DSA.KeyGen_internal).
 *
 *   ML-DSA signing is hedged (fresh randomness per signature) unless
 *   `deterministic` is set, which only the test vector uses: a deterministic
 *   signature is as valid, but hedged signing resists fault and side-channel
 *   attacks better (FIPS 204 section 3.4).
 *
 * SECURITY
 *   hybridSign verifies both fresh signatures before returning them, with
 *   an implementation other than the one that signed (ML-DSA: signed in C,
 *   verified by noble), so a fault or a bug during signing yields an error,
 *   never a bad report. Errors
 *   thrown here never contain key bytes.
 */
import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { mldsa65 as nativeMldsa65 } from '@sluice/native';

/** Byte lengths of everything the format stores. */
export const LENGTHS = {
  seed: 32,
  ed25519Public: 32,
  ed25519Signature: 64,
  mldsa65Public: 1952,
  mldsa65Secret: 4032,
  mldsa65Signature: 3309,
} as const;

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
  const ed25519 = new Uint8Array(edSign(null, message, keys.edPrivate));
  // Empty context on purpose (see DESCRIPTION); the C side has no other.
  const mldsa65 = new Uint8Array(nativeMldsa65.sign(keys.mldsaSecret, message, deterministic));
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
