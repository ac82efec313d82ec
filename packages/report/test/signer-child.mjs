/*
 * NAME
 *   signer-child - runs the compiled _hybrid.js in a process whose randomness
 *   source the test chooses, for _hybrid.test.ts
 *
 * SYNOPSIS
 *   node signer-child.mjs zero|fail|real   < {"seeds":[{"ed25519":hex,"mldsa65":hex}],"messages":[hex]}
 *
 * DESCRIPTION
 *   pqclean's WebAssembly backend takes its randomness from node:crypto's
 *   randomFillSync, looked up once when pqclean is loaded. Before anything
 *   loads it, this script replaces that function:
 *     zero   fills with zero bytes (as if the source returned nothing random)
 *     fail   throws, as randomFillSync does when OpenSSL cannot deliver
 *     real   leaves it alone (the test may set LD_PRELOAD instead)
 *   then signs every message with every key through hybridSign, hedged, and
 *   once more deterministically, and prints one JSON line:
 *     {"hedged":[[hex|{error}]...], "again":[...], "deterministic":[[hex]...], "faulted":bool}
 *   `again` repeats the hedged signing, so a caller sees two signatures of
 *   each message (or what happened on the second try).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const crypto = require('node:crypto');
const mode = process.argv[2];
if (mode === 'zero') crypto.randomFillSync = (buf, offset = 0, size = buf.byteLength - offset) => new Uint8Array(buf.buffer, buf.byteOffset + offset, size).fill(0) && buf;
else if (mode === 'fail') {
  crypto.randomFillSync = () => {
    throw new Error('randomness source failed (test)');
  };
} else if (mode !== 'real') throw new Error(`signer-child: unknown mode ${mode}`);

const { deriveHybrid, hybridSign, signerFaulted } = await import(new URL('../dist/_hybrid.js', import.meta.url).href);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const keys = input.seeds.map((s) => deriveHybrid({ ed25519: Buffer.from(s.ed25519, 'hex'), mldsa65: Buffer.from(s.mldsa65, 'hex') }));
const messages = input.messages.map((m) => Buffer.from(m, 'hex'));

/** each - sign every message with every key; a failure is recorded, not thrown. */
const each = (deterministic) =>
  keys.map((k) =>
    messages.map((m) => {
      try {
        return Buffer.from(hybridSign(m, k, deterministic).mldsa65).toString('hex');
      } catch (err) {
        return { error: err.message };
      }
    }),
  );

const hedged = each(false);
const again = each(false);
const deterministic = each(true);
console.log(JSON.stringify({ hedged, again, deterministic, faulted: signerFaulted() }));
