/*
 * NAME
 *   signer-worker - worker thread of SignerPool: signs report bytes with both keys
 *
 * SYNOPSIS
 *   new Worker(new URL('./signer-worker.js', import.meta.url), { workerData: { ed25519, mldsa65 } })
 *
 * DESCRIPTION
 *   Started only by SignerPool (signer-pool.ts), from the compiled dist/ file.
 *   workerData holds the two 32-byte seeds; the worker expands them once,
 *   wipes its copy of the seeds, loads the ML-DSA signer (pqclean's
 *   WebAssembly module, so that a missing or broken one fails the pool at
 *   ready(), not at the first report), and posts {type:'ready', keyId}.
 *
 *   Then, for each {id, message: Uint8Array, deterministic: boolean} it
 *   posts {id, ed25519, mldsa65} (raw signatures, already verified by
 *   hybridSign) or {id, error, retire} with a short message that holds no
 *   key bytes. `retire` is true when the signer itself failed
 *   (_hybrid.ts, SECURITY): the worker then stops serving and exits, and
 *   SignerPool starts a fresh one.
 *
 *   The worker trusts its parent (the same process); it checks message shape
 *   only so that a bug shows up as an error reply, not a hang.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { deriveHybrid, hybridSign, loadSigner, signerFaulted } from './_hybrid.js';
import { keyId } from './keys.js';

/** start - expand keys, announce readiness, serve sign requests. */
function start(): void {
  const port = parentPort;
  if (!port) throw new Error('signer-worker: must run as a worker thread');
  const data = workerData as { ed25519: Uint8Array; mldsa65: Uint8Array };
  const keys = deriveHybrid({ ed25519: data.ed25519, mldsa65: data.mldsa65 });
  data.ed25519.fill(0);
  data.mldsa65.fill(0);
  loadSigner();
  port.on('message', (msg: { id: unknown; message: unknown; deterministic: unknown }) => {
    const id = msg.id;
    try {
      if (typeof id !== 'number' || !(msg.message instanceof Uint8Array)) throw new Error('bad sign request');
      const sigs = hybridSign(msg.message, keys, msg.deterministic === true);
      port.postMessage({ id, ed25519: sigs.ed25519, mldsa65: sigs.mldsa65 });
    } catch (err) {
      const retire = signerFaulted();
      port.postMessage({ id, error: err instanceof Error ? err.message.slice(0, 200) : 'signing failed', retire });
      if (retire) port.close();
    }
  });
  port.postMessage({ type: 'ready', keyId: keyId(keys.public) });
}

start();
