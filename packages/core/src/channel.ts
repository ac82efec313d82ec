/*
 * NAME
 *   channel - SEQPACKET endpoints between stages: listen, connect, records
 *
 * SYNOPSIS
 *   const l = Listener.open({ path, mode, allowUids, log, maxRecordBytes, onConnection });
 *   const l = Listener.adopt(fd, { ... });             // systemd socket activation
 *   const c = new Connector({ path, log, maxRecordBytes, onConnected, onDisconnected });
 *   conn.onRecord = (data, fd) => { ... };              // the handler owns fd
 *   await conn.send(bytes, fd);                         // fd stays the caller's
 *
 * DESCRIPTION
 *   Invariant 4 (know your peer): a Listener reads SO_PEERCRED of every
 *   accepted connection and closes a connection whose uid is not on the
 *   allow list before reading a single record (event `peer-refused`).
 *
 *   One record is one message. Records the native layer refuses (truncated,
 *   over the size cap, with more than one descriptor or a foreign control
 *   message) are logged as `record-refused` with the reason; every
 *   descriptor they carried is already closed; the connection stays up. A
 *   zero-length record is what a closed peer looks like on SEQPACKET; it
 *   ends the connection (the protocol never produces one: every message has
 *   a version field), and is logged as `record-refused` (`empty-record`)
 *   when one more read shows the peer is still there.
 *
 *   Readiness comes from uv_poll on the Node event loop; nothing blocks.
 *
 * OWNERSHIP
 *   A descriptor handed to onRecord belongs to the handler, which must close
 *   it. A descriptor given to send() stays the caller's; it may be closed
 *   once the returned promise settles.
 */
import * as fs from 'node:fs';
import { native, constants as C, type Poller, type PeerCred } from '@sluice/native';
import type { Logger } from './log.js';
import { describe, errnoCode } from './errors.js';

export type Peer = PeerCred;

export interface ConnectionOptions {
  log: Logger;
  /** The largest record accepted; a longer one is refused as truncated. */
  maxRecordBytes: number;
}

interface Outgoing {
  data: Uint8Array;
  fd: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Connection - one connected SEQPACKET socket: a stream of records in, a queue of records out. */
export class Connection {
  readonly fd: number;
  readonly peer: Peer;
  /** Called for every accepted record; the handler owns `fd` (-1 when none). */
  onRecord: (data: Buffer, fd: number) => void = (_d, fd) => {
    if (fd >= 0) fs.closeSync(fd);
  };
  private readonly closeHandlers: (() => void)[] = [];

  private readonly log: Logger;
  private readonly maxRecordBytes: number;
  private readonly poller: Poller;
  private readonly queue: Outgoing[] = [];
  private closed = false;

  constructor(fd: number, opts: ConnectionOptions) {
    this.fd = fd;
    this.peer = native.peerCred(fd);
    this.log = opts.log;
    this.maxRecordBytes = opts.maxRecordBytes;
    this.poller = native.poll(fd, (status, events) => this.ready(status, events));
    this.poller.start(C.POLL_READABLE | C.POLL_DISCONNECT);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** send - queue one record, with at most one descriptor; resolves once the kernel has it. */
  send(data: Uint8Array, fd = -1): Promise<void> {
    if (this.closed) return Promise.reject(Object.assign(new Error('connection closed'), { code: 'EPIPE' }));
    return new Promise((resolve, reject) => {
      this.queue.push({ data, fd, resolve, reject });
      this.flush();
    });
  }

  /** close - stop polling, fail queued sends, close the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
    for (const out of this.queue.splice(0)) {
      out.reject(Object.assign(new Error('connection closed'), { code: 'EPIPE' }));
    }
    fs.closeSync(this.fd);
    for (const h of this.closeHandlers) h();
  }

  /** whenClosed - run `fn` once the connection has ended (at once if it already has). */
  whenClosed(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHandlers.push(fn);
  }

  /** flush - send queued records until the socket would block. */
  private flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const out = this.queue[0]!;
      let sent: number;
      try {
        sent = native.send(this.fd, out.data, out.fd);
      } catch (err) {
        this.queue.shift();
        out.reject(err as Error);
        this.log.warn({ event: 'send-failed', peer: this.peer, reason: errnoCode(err) ?? describe(err) }, 'send failed');
        this.close();
        return;
      }
      if (sent < 0) {
        this.poller.start(C.POLL_READABLE | C.POLL_WRITABLE | C.POLL_DISCONNECT);
        return;
      }
      this.queue.shift();
      out.resolve();
    }
    if (!this.closed) this.poller.start(C.POLL_READABLE | C.POLL_DISCONNECT);
  }

  /** ready - poll callback: drain readable records, flush writable ones. */
  private ready(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      this.log.warn({ event: 'connection-error', peer: this.peer, reason: `poll status ${status}` }, 'poll error');
      this.close();
      return;
    }
    if (events & C.POLL_WRITABLE) this.flush();
    if (events & (C.POLL_READABLE | C.POLL_DISCONNECT)) this.drain();
  }

  /**
   * emptyRecordNotEof - after recv read zero bytes and no descriptor: was that a zero-length record
   * from a peer still connected, rather than its close? EOF on SEQPACKET is sticky (every later
   * recv reads zero again); after an empty record from a live peer the next recv finds nothing
   * (EAGAIN) or the peer's next record, which is dropped with its descriptor. A peer that sends an
   * empty record and closes at once reads as a close: the two cannot be told apart then.
   */
  private emptyRecordNotEof(): boolean {
    let next;
    try {
      next = native.recv(this.fd, this.maxRecordBytes);
    } catch {
      return true; // a refused record (ESLUICE_*) or an error: not a clean EOF either
    }
    if (next === null) return true;
    if (next.fd >= 0) fs.closeSync(next.fd);
    return next.data.length > 0 || next.fd >= 0;
  }

  /** drain - read records until the socket is empty; refuse bad ones and keep going. */
  private drain(): void {
    // Bounded per wakeup so one flooding peer cannot starve the others.
    for (let i = 0; i < 64 && !this.closed; i++) {
      let rec;
      try {
        rec = native.recv(this.fd, this.maxRecordBytes);
      } catch (err) {
        const code = errnoCode(err);
        if (code?.startsWith('ESLUICE_')) {
          this.log.warn({ event: 'record-refused', peer: this.peer, reason: code }, 'record refused by the socket layer');
          continue;
        }
        this.log.info({ event: 'connection-error', peer: this.peer, reason: code ?? describe(err) }, 'connection error');
        this.close();
        return;
      }
      if (rec === null) return;
      if (rec.data.length === 0) {
        if (rec.fd >= 0) {
          // EOF never carries a descriptor: this was a zero-length record, which no protocol message encodes to.
          fs.closeSync(rec.fd);
          this.log.warn({ event: 'record-refused', peer: this.peer, reason: 'empty-record' }, 'zero-length record with a descriptor; closing');
        } else if (this.emptyRecordNotEof()) {
          this.log.warn({ event: 'record-refused', peer: this.peer, reason: 'empty-record' }, 'zero-length record; closing');
        }
        this.close();
        return;
      }
      try {
        this.onRecord(rec.data, rec.fd);
      } catch (err) {
        // A handler must own its errors; if one escapes, the record is dropped, not the stage.
        this.log.error({ event: 'handler-error', peer: this.peer, reason: describe(err) }, 'record handler threw');
      }
    }
    // More may be waiting: yield to other connections, then continue.
    setImmediate(() => {
      if (!this.closed) this.drain();
    });
  }
}

export interface ListenerOptions extends ConnectionOptions {
  /** uids allowed to connect; anyone else is refused before a record is read. */
  allowUids: readonly number[];
  onConnection: (conn: Connection) => void;
}

/** Listener - accepts connections from allowed uids only. */
export class Listener {
  readonly fd: number;
  private readonly opts: ListenerOptions;
  private readonly poller: Poller;
  private readonly conns = new Set<Connection>();
  private closed = false;

  /** open - create the socket file with `mode` (never wider) and listen. A stale socket file is replaced. */
  static open(path: string, mode: number, opts: ListenerOptions): Listener {
    try {
      const st = fs.lstatSync(path);
      if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
      fs.unlinkSync(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    return new Listener(native.listen(path, mode, 128), opts);
  }

  /** adopt - take over an already-listening socket (systemd LISTEN_FDS); refuses anything but a listening AF_UNIX SEQPACKET socket. */
  static adopt(fd: number, opts: ListenerOptions): Listener {
    const info = native.socketInfo(fd);
    if (info.domain !== C.AF_UNIX || info.type !== C.SOCK_SEQPACKET || !info.listening) {
      throw new Error(`inherited descriptor ${fd} is not a listening AF_UNIX SOCK_SEQPACKET socket`);
    }
    native.setNonblockCloexec(fd);
    // Peers read the credentials of whoever last called listen() (systemd, uid 0):
    // listen again so that the upstream stage's SO_PEERCRED check sees this stage's uid.
    native.relisten(fd, 128);
    return new Listener(fd, opts);
  }

  private constructor(fd: number, opts: ListenerOptions) {
    this.fd = fd;
    this.opts = opts;
    this.poller = native.poll(fd, (status) => this.acceptAll(status));
    this.poller.start(C.POLL_READABLE);
  }

  get connections(): ReadonlySet<Connection> {
    return this.conns;
  }

  /** close - stop accepting and close every connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
    fs.closeSync(this.fd);
    for (const c of [...this.conns]) c.close();
  }

  /** acceptAll - accept pending connections; check each peer's uid before anything else. */
  private acceptAll(status: number): void {
    if (this.closed || status < 0) return;
    for (;;) {
      let fd: number;
      try {
        fd = native.accept(this.fd);
      } catch (err) {
        // EMFILE and friends: log, and let the next readiness event retry.
        this.opts.log.error({ event: 'accept-failed', reason: errnoCode(err) ?? describe(err) }, 'accept failed');
        return;
      }
      if (fd < 0) return;
      let peer: Peer;
      try {
        peer = native.peerCred(fd);
      } catch (err) {
        fs.closeSync(fd);
        this.opts.log.warn({ event: 'peer-refused', reason: `no peer credentials: ${errnoCode(err)}` }, 'peer refused');
        continue;
      }
      if (!this.opts.allowUids.includes(peer.uid)) {
        fs.closeSync(fd);
        this.opts.log.warn({ event: 'peer-refused', peer, reason: `uid ${peer.uid} is not allowed` }, 'peer refused');
        continue;
      }
      const conn = new Connection(fd, this.opts);
      this.conns.add(conn);
      conn.whenClosed(() => {
        this.conns.delete(conn);
        this.opts.log.info({ event: 'peer-disconnected', peer }, 'peer disconnected');
      });
      this.opts.log.info({ event: 'peer-connected', peer }, 'peer connected');
      this.opts.onConnection(conn);
    }
  }
}

export interface ConnectorOptions extends ConnectionOptions {
  path: string;
  /** When set, a listener running under another uid is refused (we are about to hand it our files). */
  expectUid?: number | undefined;
  onConnected: (conn: Connection) => void;
  onDisconnected: () => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Connector - keeps one connection to a downstream stage, reconnecting with exponential backoff. */
export class Connector {
  private readonly opts: ConnectorOptions;
  private conn: Connection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private backoff: number;
  private stopped = false;
  private failures = 0;

  constructor(opts: ConnectorOptions) {
    this.opts = opts;
    this.backoff = opts.minBackoffMs ?? 50;
  }

  get connection(): Connection | null {
    return this.conn && !this.conn.isClosed ? this.conn : null;
  }

  start(): void {
    this.attempt();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.conn?.close();
  }

  /** attempt - try to connect once; on failure schedule the next try. */
  private attempt(): void {
    this.timer = null;
    if (this.stopped) return;
    let fd: number;
    try {
      fd = native.connect(this.opts.path);
    } catch (err) {
      this.failures++;
      // The first failure and then every 20th: a stage that waits for its peer says so, without flooding.
      if (this.failures === 1 || this.failures % 20 === 0) {
        this.opts.log.info(
          { event: 'downstream-unavailable', reason: errnoCode(err) ?? describe(err), attempts: this.failures },
          `cannot connect to ${this.opts.path}; retrying`,
        );
      }
      this.schedule();
      return;
    }
    let conn: Connection;
    try {
      conn = new Connection(fd, this.opts);
    } catch (err) {
      fs.closeSync(fd);
      this.opts.log.warn({ event: 'downstream-unavailable', reason: describe(err) }, 'connection setup failed');
      this.schedule();
      return;
    }
    if (this.opts.expectUid !== undefined && conn.peer.uid !== this.opts.expectUid) {
      this.opts.log.error(
        { event: 'peer-refused', peer: conn.peer, reason: `downstream runs as uid ${conn.peer.uid}, expected ${this.opts.expectUid}` },
        'downstream peer refused',
      );
      conn.close();
      this.schedule();
      return;
    }
    this.failures = 0;
    this.backoff = this.opts.minBackoffMs ?? 50;
    this.conn = conn;
    conn.whenClosed(() => {
      this.conn = null;
      this.opts.onDisconnected();
      this.schedule();
    });
    this.opts.log.info({ event: 'downstream-connected', peer: conn.peer }, `connected to ${this.opts.path}`);
    this.opts.onConnected(conn);
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 2000);
    this.timer = setTimeout(() => this.attempt(), delay);
  }
}

/** PendingAcks - transfers sent downstream, waiting for their ack, matched by id, with a timeout. */
export class PendingAcks<A> {
  private readonly waiting = new Map<string, { resolve: (a: A) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  get size(): number {
    return this.waiting.size;
  }

  has(id: string): boolean {
    return this.waiting.has(id);
  }

  /** wait - resolve with the ack for `id`, or reject after timeoutMs or when the connection drops. */
  wait(id: string, timeoutMs: number): Promise<A> {
    if (this.waiting.has(id)) return Promise.reject(new Error(`transfer ${id} is already waiting for an ack`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(Object.assign(new Error(`no ack for ${id} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
    });
  }

  /** settle - deliver an ack; false when nobody waits for that id (a stray or forged ack). */
  settle(id: string, ack: A): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    w.resolve(ack);
    return true;
  }

  /** failAll - reject every waiter (the connection dropped). */
  failAll(err: Error): void {
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      this.waiting.delete(id);
      w.reject(err);
    }
  }
}
