/*
 * NAME
 *   signer-pool - sign reports on worker threads so egress's event loop never waits ~5 ms per report
 *
 * SYNOPSIS
 *   import { SignerPool } from '@sluice/report';
 *   const pool = new SignerPool(secret, { workers?: number, inline?: boolean, workerUrl?: URL } | workers);
 *   await pool.ready();                         // fail at startup, not at the first file
 *   const signed = await pool.sign(body);       // Promise<SignedReport>
 *   const text = await pool.signAndSerialize(body); // Promise<string>: the report file's bytes
 *   const head = await pool.signTreeHead(body);  // Promise<SignedTreeHead> (treehead.ts)
 *   await pool.close();
 *
 * DESCRIPTION
 *   ML-DSA-65 signing costs ~4 ms of CPU; the pool moves it to N worker
 *   threads (default: available parallelism - 1, at least 1) started from
 *   the compiled signer-worker.js beside this file in dist/. The body is
 *   validated and canonicalized here (cheap), the bytes go to the next idle
 *   worker, both signatures come back and are attached.
 *
 *   Under vitest this module runs from src/*.ts, where signer-worker.js does
 *   not exist. The constructor then throws, naming the missing file, unless
 *   the caller passes `inline: true` (sign on the calling thread, for tests
 *   and one-shot tools) or `workerUrl` (tests point it at dist/ after a
 *   build). Production egress uses the default: workers, never inline.
 *
 *   A worker that dies after it was ready fails only its in-flight request
 *   and is replaced; so is one whose ML-DSA signer failed (it says so in
 *   its reply and is sent nothing more; _hybrid.ts, SECURITY). A worker
 *   that dies before ready (cannot load, bad key, no ML-DSA signer) breaks
 *   the pool: ready() and every sign() reject, because restarting would
 *   fail the same way.
 *
 * SECURITY
 *   Each worker receives a copy of the two seeds in workerData and wipes it
 *   after expanding the keys. No seed, key or signature bytes appear in any
 *   error; worker errors are reduced to their first 200 characters.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { hybridSign, type HybridSignatures } from './_hybrid.js';
import { secretKeyMaterial, type SecretKey } from './keys.js';
import { assembleSigned, prepareBody, serializeReport, type ReportBody, type SignedReport } from './report.js';
import { assembleTreeHead, treeHeadBytes, type SignedTreeHead, type TreeHeadBody } from './treehead.js';

export interface SignerPoolOptions {
  /** Number of worker threads; default max(1, availableParallelism() - 1). */
  workers?: number;
  /** Sign on the calling thread instead of workers (tests, one-shot tools). */
  inline?: boolean;
  /** Where the compiled worker is; default new URL('./signer-worker.js', import.meta.url). */
  workerUrl?: URL;
  /** Deterministic ML-DSA signing (test vectors only). */
  deterministic?: boolean;
}

interface Job {
  id: number;
  message: Uint8Array;
  resolve: (sigs: HybridSignatures) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | undefined;
}

type Reply =
  | { type: 'ready'; keyId: string }
  | { id: number; ed25519: Uint8Array; mldsa65: Uint8Array }
  | { id: number; error: string; retire: boolean };

/** SignerPool - N signing workers behind one promise-returning sign(). */
export class SignerPool {
  readonly size: number;
  readonly inline: boolean;
  readonly #secret: SecretKey;
  readonly #url: URL;
  readonly #deterministic: boolean;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  #broken: Error | undefined;
  #readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  /** constructor - `options` may be just the number of workers. */
  constructor(secret: SecretKey, options: SignerPoolOptions | number = {}) {
    if (typeof options === 'number') options = { workers: options };
    this.#secret = secret;
    this.inline = options.inline === true;
    this.#deterministic = options.deterministic === true;
    this.#url = options.workerUrl ?? new URL('./signer-worker.js', import.meta.url);
    const n = options.workers ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError('SignerPool: workers must be an integer 1..64');
    this.size = this.inline ? 0 : n;
    if (this.inline) return;
    if (this.#url.protocol === 'file:' && !existsSync(fileURLToPath(this.#url))) {
      throw new Error(`SignerPool: worker ${fileURLToPath(this.#url)} not found (run the build, or pass inline: true in tests)`);
    }
    for (let i = 0; i < n; i++) this.#spawn();
  }

  /** ready - resolves when every worker has expanded its keys; rejects if the pool is broken. */
  ready(): Promise<void> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#slots.every((s) => s.ready)) return Promise.resolve();
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** sign - validate, canonicalize and sign a report body. */
  async sign(body: ReportBody): Promise<SignedReport> {
    const prepared = prepareBody(body, this.#secret);
    const sigs = await this.#signBytes(prepared.bytes);
    return assembleSigned(prepared.body, sigs);
  }

  /** signAndSerialize - sign a body and return the report file text (serializeReport). */
  async signAndSerialize(body: ReportBody): Promise<string> {
    return serializeReport(await this.sign(body));
  }

  /** signTreeHead - validate and sign a tree head body (its label keeps it apart from reports). */
  async signTreeHead(body: TreeHeadBody): Promise<SignedTreeHead> {
    if (body.key !== this.#secret.keyId) throw new Error(`tree head key ${body.key} is not the id of the signing key (${this.#secret.keyId})`);
    const sigs = await this.#signBytes(treeHeadBytes(body));
    return assembleTreeHead(body, sigs);
  }

  /** close - stop the workers; pending and later sign() calls reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = new Error('SignerPool: closed');
    for (const job of this.#queue.splice(0)) job.reject(err);
    const slots = this.#slots.splice(0);
    for (const s of slots) s.job?.reject(err);
    this.#settleReady(err);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** #signBytes - inline, or queue for the next idle worker. */
  #signBytes(message: Uint8Array): Promise<HybridSignatures> {
    if (this.#closed) return Promise.reject(new Error('SignerPool: closed'));
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.inline) {
      try {
        return Promise.resolve(hybridSign(message, secretKeyMaterial(this.#secret).keys, this.#deterministic));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error('signing failed'));
      }
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, message, resolve, reject });
      this.#pump();
    });
  }

  /** #pump - hand queued jobs to idle, ready workers. */
  #pump(): void {
    for (const slot of this.#slots) {
      if (!slot.ready || slot.job) continue;
      const job = this.#queue.shift();
      if (!job) return;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, message: job.message, deterministic: this.#deterministic });
    }
  }

  /** #spawn - start one worker with a copy of the seeds. */
  #spawn(): void {
    const { seeds } = secretKeyMaterial(this.#secret);
    const workerData = { ed25519: Uint8Array.from(seeds.ed25519), mldsa65: Uint8Array.from(seeds.mldsa65) };
    const worker = new Worker(this.#url, { workerData, transferList: [workerData.ed25519.buffer, workerData.mldsa65.buffer] });
    const slot: Slot = { worker, ready: false, job: undefined };
    this.#slots.push(slot);
    worker.on('message', (reply: Reply) => this.#onReply(slot, reply));
    worker.on('error', (err) => this.#onExit(slot, `signer worker failed: ${String(err.message).slice(0, 200)}`));
    worker.on('exit', (code) => this.#onExit(slot, `signer worker exited with code ${code}`));
  }

  /** #onReply - readiness or a signing result. */
  #onReply(slot: Slot, reply: Reply): void {
    if ('type' in reply) {
      if (reply.keyId !== this.#secret.keyId) {
        this.#break(new Error('SignerPool: worker derived a different key id'));
        return;
      }
      slot.ready = true;
      if (this.#slots.every((s) => s.ready)) this.#settleReady(undefined);
      this.#pump();
      return;
    }
    const job = slot.job;
    if (!job || job.id !== reply.id) return; // not ours (cannot happen with one job per worker)
    slot.job = undefined;
    if ('error' in reply) {
      job.reject(new Error(`SignerPool: ${reply.error}`));
      // Its signer is broken (_hybrid.ts, SECURITY): replace the worker rather than send it more.
      if (reply.retire) {
        this.#onExit(slot, 'signer worker retired after a signing failure');
      }
    } else job.resolve({ ed25519: reply.ed25519, mldsa65: reply.mldsa65 });
    this.#pump();
  }

  /** #onExit - a worker died or retired: fail its job; replace it, or break the pool if it never got ready. */
  #onExit(slot: Slot, why: string): void {
    const i = this.#slots.indexOf(slot);
    if (i < 0) return; // already handled ('error' is followed by 'exit'), or closed
    this.#slots.splice(i, 1);
    const err = new Error(`SignerPool: ${why}`);
    slot.job?.reject(err);
    slot.job = undefined;
    void slot.worker.terminate();
    if (this.#closed) return;
    if (!slot.ready) {
      this.#break(err);
      return;
    }
    this.#spawn();
  }

  /** #break - the pool cannot sign: fail everything now and later. */
  #break(err: Error): void {
    if (this.#broken) return;
    this.#broken = err;
    for (const job of this.#queue.splice(0)) job.reject(err);
    for (const s of this.#slots) {
      s.job?.reject(err);
      s.job = undefined;
    }
    this.#settleReady(err);
    const slots = this.#slots.splice(0);
    for (const s of slots) void s.worker.terminate();
  }

  /** #settleReady - resolve or reject everyone waiting in ready(). */
  #settleReady(err: Error | undefined): void {
    for (const w of this.#readyWaiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }
}
