/*
 * NAME
 *   impersonate - a compromised upstream stage, for the hostile-peer tests
 *
 * SYNOPSIS
 *   import { Peer, ingressRecord, transitRecord, rawField, openKind, sendFds, Mutator } from './impersonate.js';
 *
 *   const peer = Peer.connect(`${dir}/run/transit.sock`);   // as ingress would
 *   await peer.send(ingressRecord({ name: 'x.txt', bytes }), fd);
 *   const ack = await peer.ack();                            // decoded Ack, or null
 *   peer.close();
 *
 *   const peer = Peer.connect(`${dir}/run/egress.sock`);    // as transit would
 *   await peer.send(transitRecord({ name: 'x.txt', bytes, verdict: 'accepted' }), fd);
 *
 *   const pid = await sendFds(sock, record, [pathA, pathB]); // two descriptors (Python)
 *   const m = Mutator.start('flip', file, a, b);             // rewrites a file in a loop
 *
 * DESCRIPTION
 *   design.md assumes every stage is compromised by the one before it: any
 *   bytes, any descriptors, lies in metadata, files rewritten while held,
 *   floods. This module is that compromised stage. It speaks the stage
 *   protocol through the same native addon the daemons use (connect, send
 *   with one SCM_RIGHTS descriptor, recv, poll), builds records with the
 *   real encoders when it wants them valid and with rawField when it does
 *   not, and hands over whatever descriptor an attack needs (openKind).
 *
 *   What the addon deliberately cannot do — put two descriptors in one
 *   record — goes through /usr/bin/python3 (socket.send_fds), as in
 *   packages/native/test-helpers/hostile_peer.py. Files that change while
 *   a stage copies them are changed by a separate Python process
 *   (mutator.py), so the rewriting runs truly in parallel with the stage.
 *
 *   Nothing here decides whether an attack succeeded; the tests do, from
 *   the stage's acks, log lines, outputs and /proc/PID/fd.
 *
 * SECURITY
 *   Test code. It connects only to sockets of a `sluice dev` pipeline the
 *   test started, under a temporary directory, as the user running it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { native, constants as C, type Poller, type Received } from '../../packages/native/src/index.js';
import {
  decodeAck,
  encodeIngressTransfer,
  encodeTransitTransfer,
  type Ack,
  type CheckResult,
  type Verdict,
} from '../../packages/protocol/src/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PYTHON = '/usr/bin/python3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
export const sha256hex = (b: Uint8Array): string => sha256(b).toString('hex');

/** newId - a transfer id the attacker picks (valid: [A-Za-z0-9_-]{1,64}). */
export const newId = (tag: string): string => `${tag.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}-${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------------------
// The connection

/** Peer - one SEQPACKET connection to a stage's socket, as the upstream stage would hold it. */
export class Peer {
  readonly fd: number;
  private readonly poller: Poller;
  private readonly records: Received[] = [];
  private readonly waiters: (() => void)[] = [];
  private eof = false;
  private closed = false;

  /** connect - connect to a stage's socket; retries while the listen backlog is full (EAGAIN). */
  static async connect(sock: string): Promise<Peer> {
    for (let i = 0; ; i++) {
      try {
        return new Peer(native.connect(sock));
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN' || i > 500) throw err;
        await sleep(5);
      }
    }
  }

  private constructor(fd: number) {
    this.fd = fd;
    this.poller = native.poll(fd, () => this.drain());
    this.poller.start(C.POLL_READABLE | C.POLL_DISCONNECT);
  }

  /** send - one record with at most one descriptor (which stays ours); waits while the socket is full. */
  async send(data: Uint8Array, passFd = -1): Promise<void> {
    while (native.send(this.fd, data, passFd) < 0) await sleep(2);
  }

  /** next - the next record the stage sends back, or null at EOF or after timeoutMs. */
  async next(timeoutMs = 30_000): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs;
    while (this.records.length === 0 && !this.eof && Date.now() < end) {
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(Math.max(1, end - Date.now()))]);
    }
    const rec = this.records.shift();
    if (!rec) return null;
    // A stage never sends us a descriptor; if one came, it is not ours to keep.
    if (rec.fd >= 0) fs.closeSync(rec.fd);
    return rec.data;
  }

  /** ack - the next record, decoded as an Ack (throws on anything else), or null. */
  async ack(timeoutMs = 30_000): Promise<Ack | null> {
    const data = await this.next(timeoutMs);
    return data === null ? null : decodeAck(data, ATTACKER_LIMITS);
  }

  /** ended - true once the stage has closed its end (EOF seen). */
  get ended(): boolean {
    return this.eof;
  }

  /** waitEnded - resolve true when the stage closes the connection, false after timeoutMs. */
  async waitEnded(timeoutMs = 10_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.eof && Date.now() < end) await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(50)]);
    return this.eof;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
    fs.closeSync(this.fd);
    for (const r of this.records.splice(0)) if (r.fd >= 0) fs.closeSync(r.fd);
  }

  private drain(): void {
    for (;;) {
      let rec: Received | null;
      try {
        rec = native.recv(this.fd, 1 << 20);
      } catch {
        this.eof = true;
        break;
      }
      if (rec === null) break;
      if (rec.data.length === 0 && rec.fd < 0) {
        this.eof = true;
        break;
      }
      this.records.push(rec);
    }
    if (this.eof) this.poller.stop();
    for (const w of this.waiters.splice(0)) w();
  }
}

// ---------------------------------------------------------------------------
// Records

export interface Claim {
  id?: string;
  name?: string;
  /** The bytes the claim describes (size and digest are computed from them unless given). */
  bytes?: Uint8Array;
  size?: number;
  sha256?: Uint8Array;
  receivedAt?: string;
}

/** claimed - fill a claim's size and digest from its bytes. */
function claimed(c: Claim) {
  const bytes = c.bytes ?? new Uint8Array();
  return {
    id: c.id ?? newId('hostile'),
    name: c.name ?? 'hostile.txt',
    size: c.size ?? bytes.length,
    sha256: c.sha256 ?? sha256(bytes),
    receivedAt: c.receivedAt ?? new Date().toISOString(),
  };
}

/**
 * The encoders' limits for the attacker: far above any stage's, so a record
 * can be made that only the stage's own policy refuses (a 10,000-byte name).
 */
const ATTACKER_LIMITS = { maxRecordBytes: 1 << 20, maxNameBytes: 1 << 20, maxFileSize: Number.MAX_SAFE_INTEGER };

/** ingressRecord - a valid IngressTransfer (what transit expects from ingress), claiming whatever it is told. */
export function ingressRecord(c: Claim & { refusal?: string }, limits = ATTACKER_LIMITS): Uint8Array {
  return encodeIngressTransfer({ ...claimed(c), refusal: c.refusal ?? '' }, limits);
}

/** PASSING - the check results a forged "accepted" verdict comes with. */
export const PASSING: CheckResult[] = [
  { name: 'file-type', outcome: 'pass', reason: 'forged', engine: 'hostile' },
  { name: 'extension-match', outcome: 'pass', reason: 'forged', engine: 'hostile' },
];

/** transitRecord - a valid TransitTransfer (what egress expects from transit); by default a forged acceptance. */
export function transitRecord(c: Claim & { verdict?: Verdict; checks?: CheckResult[] }, limits = ATTACKER_LIMITS): Uint8Array {
  return encodeTransitTransfer(
    { ...claimed(c), verdict: c.verdict ?? 'accepted', checks: c.checks ?? PASSING, checkedAt: new Date().toISOString() },
    limits,
  );
}

/** varint - protobuf base-128 varint, for hand-made records. */
export function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return Buffer.from(out);
}

/** rawField - one protobuf field (varint or length-delimited) with no validation at all. */
export function rawField(no: number, value: number | bigint | string | Uint8Array): Buffer {
  if (typeof value === 'number' || typeof value === 'bigint') return Buffer.concat([varint(no << 3), varint(value)]);
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([varint((no << 3) | 2), varint(b.length), b]);
}

// ---------------------------------------------------------------------------
// Descriptors

export type FdKind = 'rdonly' | 'rdwr' | 'wronly' | 'o-path' | 'o-direct' | 'fifo' | 'dev-zero' | 'directory' | 'socket' | 'proc-file';

/**
 * openKind - a descriptor of the kind an attack hands over. `file` is used by
 * the file kinds; the others make their own object under `scratch`. The caller
 * owns the returned descriptors (`fds`, all to be closed; `fd` is the one to send).
 */
export function openKind(kind: FdKind, file: string, scratch: string): { fd: number; fds: number[] } {
  const one = (fd: number) => ({ fd, fds: [fd] });
  switch (kind) {
    case 'rdonly':
      return one(fs.openSync(file, fs.constants.O_RDONLY));
    case 'rdwr':
      return one(fs.openSync(file, fs.constants.O_RDWR));
    case 'wronly':
      return one(fs.openSync(file, fs.constants.O_WRONLY));
    case 'o-path':
      return one(fs.openSync(file, C.O_PATH));
    case 'o-direct':
      // Read-only, regular, truthful, but reads need aligned buffers: a copy would fail midway.
      return one(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    case 'fifo': {
      const fifo = path.join(scratch, `fifo-${randomBytes(4).toString('hex')}`);
      spawnSyncOk('mkfifo', [fifo]);
      // Read-only and non-blocking, so it opens without a writer: a valid O_RDONLY descriptor of a FIFO.
      return one(fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
    }
    case 'dev-zero':
      return one(fs.openSync('/dev/zero', fs.constants.O_RDONLY));
    case 'directory':
      return one(fs.openSync(scratch, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
    case 'socket': {
      // A listening socket of our own: a socket descriptor, opened read-write by nature.
      const sock = path.join(scratch, `s-${randomBytes(4).toString('hex')}.sock`);
      return one(native.listen(sock, 0o600, 1));
    }
    case 'proc-file':
      // procfs: a "regular file" whose fstat size (0) says nothing about its contents.
      return one(fs.openSync('/proc/self/status', fs.constants.O_RDONLY));
  }
}

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'inherit' }).status;
  if (r !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r}`);
}

// ---------------------------------------------------------------------------
// Python helpers: several descriptors in one record, files rewritten in parallel

/**
 * pythonPeer - connect with Python and send one record carrying a read-only
 * descriptor of each path in one SCM_RIGHTS message (socket.send_fds), or,
 * with record null, send nothing; then wait up to waitMs for the stage's
 * answer or EOF and exit. With waitMs 'held' it waits (for an answer or
 * EOF) until `release()` is called instead, however long that takes.
 * `pid` is the peer pid the stage logs; `done` resolves with what Python
 * read back (hex, "eof" or "none").
 */
export function pythonPeer(
  sock: string,
  record: Uint8Array | null,
  paths: string[],
  waitMs: number | 'held' = 2_000,
): { pid: number; done: Promise<string>; release: () => void } {
  const hex = record === null ? '-' : Buffer.from(record).toString('hex');
  const held = waitMs === 'held';
  const child = spawn(PYTHON, [path.join(HERE, 'send_fds.py'), sock, hex, held ? 'stdin' : String(waitMs), ...paths], {
    stdio: [held ? 'pipe' : 'ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<string>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`send_fds.py exited ${code}: ${out}`)))),
  );
  return { pid: child.pid!, done, release: () => child.stdin?.end() };
}

/** sendFds - pythonPeer, waited for: one record with several descriptors. */
export async function sendFds(sock: string, record: Uint8Array, paths: string[], waitMs = 2_000): Promise<{ pid: number; reply: string }> {
  const { pid, done } = pythonPeer(sock, record, paths, waitMs);
  return { pid, reply: await done };
}

export type MutatorMode = 'flip' | 'grow' | 'shrink';

/**
 * Mutator - a Python process (mutator.py) rewriting a file behind the
 * stage's back through its own writable descriptor:
 *   flip   FILE A B   A, B, A, B, ... in a loop (same length) until stopped
 *   grow   FILE A     go(): 3 ms later, 64 KiB appended; reset(): back to A
 *   shrink FILE A     go(): 3 ms later, cut to half; reset(): whole again
 * In grow and shrink the bytes up to the file's current length are A's.
 */
export class Mutator {
  private readonly acks: (() => void)[] = [];

  private constructor(private readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        if (buf.slice(0, i) === 'ok') this.acks.shift()?.();
        buf = buf.slice(i + 1);
      }
    });
  }

  static async start(mode: MutatorMode, file: string, a: string, b?: string): Promise<Mutator> {
    const child = spawn(PYTHON, [path.join(HERE, 'mutator.py'), mode, file, a, ...(b ? [b] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
    const m = new Mutator(child);
    await m.command(null); // its first "ok": ready
    return m;
  }

  /** go - start the change (it lands 3 ms later); resolves once it has. */
  go(): Promise<void> {
    return this.command('go');
  }

  /** reset - put the file back to A's full length. */
  reset(): Promise<void> {
    return this.command('reset');
  }

  /** command - send one command (null: none) and wait for its "ok"; rejects if the mutator dies. */
  private command(cmd: string | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const died = () => reject(new Error('mutator.py exited'));
      this.child.once('exit', died);
      this.acks.push(() => {
        this.child.off('exit', died);
        resolve();
      });
      if (cmd !== null) this.child.stdin!.write(`${cmd}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------
// Watching a stage from outside

/** fdCount - how many descriptors process `pid` has open (/proc/PID/fd; same uid). */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** fdTargets - what each of a process's descriptors points at (for a leak's error message). */
export function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(`${n} -> ${fs.readlinkSync(`/proc/${pid}/fd/${n}`)}`);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/**
 * steadyFdCount - a process's descriptor count once it has stayed the same for 300 ms: a baseline
 * that no descriptor open for a moment inflates (a flush or a close on the threadpool, a status
 * file being rewritten), which a later count that must equal it could never match.
 */
export async function steadyFdCount(pid: number): Promise<number> {
  let n = fdCount(pid);
  for (let same = 0; same < 6; ) {
    await new Promise((r) => setTimeout(r, 50));
    const m = fdCount(pid);
    same = m === n ? same + 1 : 0;
    n = m;
  }
  return n;
}

/**
 * settledFdCount - wait until a process's descriptor count equals `expected`
 * (a stage closes a connection's descriptors asynchronously, after our close);
 * returns the last count seen, so the caller's assertion shows it.
 */
export async function settledFdCount(pid: number, expected: number, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let n = fdCount(pid);
  while (n !== expected && Date.now() < end) {
    await sleep(50);
    n = fdCount(pid);
  }
  return n;
}
