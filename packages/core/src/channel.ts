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
 * BOUNDS (docs/capacity.md, "Connections and outgoing queues")
 *   Outgoing queue. A record send() cannot hand to the kernel at once waits
 *   in the connection's queue: at most OUTGOING_QUEUE_RECORDS records and
 *   OUTGOING_QUEUE_RECORD_MULTIPLE x maxRecordBytes bytes; all connections
 *   of the process together OUTGOING_QUEUE_TOTAL_SHARE times that. A send
 *   beyond a connection's bound means its peer is not reading what it is
 *   sent: the connection is closed (event `peer-not-reading`) and every
 *   queued send fails, so the caller's state for them is released. Beyond
 *   the total, the connection with the longest queue is closed so. Reading
 *   from such a peer is not paused instead: an honest peer never gets there
 *   (both stages read all the time, and what they send is bounded by
 *   maxInFlight, at most 1,024), and a reconnect costs an honest upstream
 *   nothing (it resends).
 *
 *   Connections. A Listener holds at most maxConnectionsPerPeer
 *   (MAX_CONNECTIONS_PER_PEER) connections per peer uid and maxConnections
 *   in all (the descriptor limit / CONNECTION_DESCRIPTOR_SHARE). A new
 *   connection beyond either bound is kept and the least recently active
 *   connection (accepted or last sent a record longest ago) is evicted
 *   instead, after what it already sent has been read (event
 *   `connection-evicted`): an upstream that reconnects always gets in,
 *   however many idle connections someone holds. Accepting stops while a
 *   bound is exceeded, and one connection is evicted at a time, each after
 *   the event loop has polled its sockets once more: connections whose
 *   peers already closed them are seen closing (their last records handled
 *   as any others) and are neither counted nor evicted.
 *
 *   Descriptor exhaustion. When accept() fails for want of descriptors or
 *   memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the Listener stops polling its
 *   socket, so the pending connection cannot make it spin; it polls again
 *   when one of its connections closes or after ACCEPT_RETRY_MIN_MS, doubling
 *   to ACCEPT_RETRY_MAX_MS while it keeps failing. Pending connections wait
 *   in the kernel's backlog meanwhile. `accept-failed` is logged at most once
 *   per LOG_INTERVAL_MS, with the number of failures not logged since.
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
  /** Records waiting for the kernel beyond which the peer is disconnected (default OUTGOING_QUEUE_RECORDS). */
  outgoingQueueRecords?: number;
  /** Bytes waiting for the kernel beyond which the peer is disconnected (default OUTGOING_QUEUE_RECORD_MULTIPLE x maxRecordBytes). */
  outgoingQueueBytes?: number;
}

/**
 * Records a connection queues for a peer that does not read: twice the
 * largest maxInFlight (1,024), the most transfers or acks an honest peer
 * can have outstanding on one connection.
 */
export const OUTGOING_QUEUE_RECORDS = 2048;
/** Bytes a connection queues, as a multiple of maxRecordBytes (1 MiB at its 64 KiB default). */
export const OUTGOING_QUEUE_RECORD_MULTIPLE = 16;
/**
 * All connections of a process together queue at most this many times one
 * connection's bounds (8,192 records, 64 x maxRecordBytes bytes); beyond,
 * the connection with the longest queue is disconnected. Without it the
 * bound would grow with the number of connections a peer opens.
 */
export const OUTGOING_QUEUE_TOTAL_SHARE = 4;
/**
 * Connections one peer uid may hold on a Listener. An upstream stage keeps
 * one; the rest is room for a reconnect that overlaps the old connection's
 * close and for tools that open a few at once.
 */
export const MAX_CONNECTIONS_PER_PEER = 64;
/** A Listener's connections may take 1/CONNECTION_DESCRIPTOR_SHARE of the descriptor limit; the rest is for files in flight. */
export const CONNECTION_DESCRIPTOR_SHARE = 4;
/** maxConnections when the descriptor limit cannot be read or is unlimited. */
export const MAX_CONNECTIONS_FALLBACK = 1024;
/** Connections accepted per wakeup, so a connect flood cannot hold the event loop. */
export const ACCEPTS_PER_WAKEUP = 64;
/** First and longest pause of accepting after accept() found no descriptor free. */
export const ACCEPT_RETRY_MIN_MS = 50;
export const ACCEPT_RETRY_MAX_MS = 1000;
/** A rate-limited event is logged at most once per this interval. */
export const LOG_INTERVAL_MS = 10_000;

/** accept() errors that mean "no descriptor or memory now": stop polling, retry later. */
const ACCEPT_EXHAUSTED = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
/** accept() errors about one connection that went away before it was accepted: take the next. */
const ACCEPT_PEER_GONE = new Set(['ECONNABORTED', 'EPROTO', 'EPERM']);

/** afterPoll - run `fn` once the event loop has been through its poll phase once more (an immediate that queues one). */
const afterPoll = (fn: () => void): void => {
  setImmediate(() => setImmediate(fn));
};

/** backlog - what every connection of this process has queued: the connections with a non-empty queue, and the sums. */
const backlog = { conns: new Set<Connection>(), records: 0, bytes: 0 };

/** activity - a clock that orders connections by their last activity (accept or record received). */
let activity = 0;

/** descriptorLimit - this process's soft RLIMIT_NOFILE (LimitNOFILE under systemd), or null if unreadable or unlimited. */
export function descriptorLimit(limits = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = fs.readFileSync(limits, 'utf8');
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return m && m[1] !== 'unlimited' ? Number(m[1]) : null;
}

/** connectionsFor - maxConnections for a descriptor limit: its CONNECTION_DESCRIPTOR_SHARE-th part, at least 1. */
export function connectionsFor(nofile: number | null): number {
  return nofile === null ? MAX_CONNECTIONS_FALLBACK : Math.max(1, Math.floor(nofile / CONNECTION_DESCRIPTOR_SHARE));
}

/**
 * RateLimited - one log line per interval for an event that can recur in a
 * tight loop. The first occurrence is logged at once; later ones within the
 * interval are counted, and one line at the interval's end reports how many
 * there were (`suppressed`) with the latest one's fields.
 */
export class RateLimited {
  private last = -Infinity;
  private suppressed = 0;
  private latest: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly emit: (fields: Record<string, unknown>, suppressed: number) => void,
  ) {}

  /** hit - one occurrence: logged now, or counted for the line at the interval's end. */
  hit(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.last >= this.intervalMs && this.suppressed === 0) {
      this.last = now;
      this.emit(fields, 0);
      return;
    }
    this.suppressed++;
    this.latest = fields;
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.last + this.intervalMs - now));
      this.timer.unref();
    }
  }

  /** flush - log the counted occurrences now, if any (also when the owner closes). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.last = Date.now();
    this.emit(this.latest, n);
  }
}

interface Outgoing {
  data: Uint8Array;
  fd: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** closedError - the error a send on a closed connection fails with (code EPIPE, as the kernel's). */
const closedError = (message: string): Error => Object.assign(new Error(message), { code: 'EPIPE' });

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
  private readonly maxQueueRecords: number;
  private readonly maxQueueBytes: number;
  private readonly poller: Poller;
  private readonly queue: Outgoing[] = [];
  private queuedBytes = 0;
  private active = ++activity;
  private closed = false;
  /** The events the poller was last started for: starting it again for the same ones would cost an epoll_ctl and change nothing. */
  private polling = 0;

  constructor(fd: number, opts: ConnectionOptions) {
    this.fd = fd;
    this.peer = native.peerCred(fd);
    this.log = opts.log;
    this.maxRecordBytes = opts.maxRecordBytes;
    this.maxQueueRecords = opts.outgoingQueueRecords ?? OUTGOING_QUEUE_RECORDS;
    this.maxQueueBytes = opts.outgoingQueueBytes ?? OUTGOING_QUEUE_RECORD_MULTIPLE * opts.maxRecordBytes;
    this.poller = native.poll(fd, (status, events) => this.ready(status, events));
    this.pollFor(C.POLL_READABLE | C.POLL_DISCONNECT);
  }

  /** pollFor - have the poller report `events`; nothing to do when it already does. */
  private pollFor(events: number): void {
    if (this.polling === events) return;
    this.poller.start(events);
    this.polling = events;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** lastActive - when this connection was accepted or last sent us a record, on a clock that only orders. */
  get lastActive(): number {
    return this.active;
  }

  /**
   * send - queue one record, with at most one descriptor; resolves once the kernel has it.
   * A record beyond the outgoing queue's bound closes the connection (peer-not-reading).
   */
  send(data: Uint8Array, fd = -1): Promise<void> {
    if (this.closed) return Promise.reject(closedError('connection closed'));
    if (this.queue.length >= this.maxQueueRecords) return this.notReading('queue-records');
    if (this.queuedBytes + data.length > this.maxQueueBytes) return this.notReading('queue-bytes');
    while (
      backlog.records >= OUTGOING_QUEUE_TOTAL_SHARE * this.maxQueueRecords ||
      backlog.bytes + data.length > OUTGOING_QUEUE_TOTAL_SHARE * this.maxQueueBytes
    ) {
      let longest: Connection | null = null;
      for (const c of backlog.conns) if (!longest || c.queue.length > longest.queue.length) longest = c;
      if (!longest) break; // the sums say full but no queue holds anything: cannot happen; never loop
      const failed = longest.notReading('queue-total');
      if (longest === this) return failed;
      failed.catch(() => {});
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ data, fd, resolve, reject });
      this.queuedBytes += data.length;
      backlog.conns.add(this);
      backlog.records++;
      backlog.bytes += data.length;
      this.flush();
    });
  }

  /** queuedRecords - records waiting for the kernel on this connection. */
  get queuedRecords(): number {
    return this.queue.length;
  }

  /** notReading - the peer does not drain its queue: log, close, and return the failed send. */
  private notReading(reason: 'queue-records' | 'queue-bytes' | 'queue-total'): Promise<void> {
    this.log.warn(
      { event: 'peer-not-reading', peer: this.peer, reason, queued: this.queue.length, queuedBytes: this.queuedBytes },
      'peer does not read what it is sent; disconnecting',
    );
    this.close('connection closed: the peer was not reading');
    return Promise.reject(closedError('connection closed: the peer was not reading'));
  }

  /** dequeue - the first queued record has been sent or has failed: drop it from every count. */
  private dequeue(): Outgoing {
    const out = this.queue.shift()!;
    this.queuedBytes -= out.data.length;
    backlog.records--;
    backlog.bytes -= out.data.length;
    if (this.queue.length === 0) backlog.conns.delete(this);
    return out;
  }

  /** close - stop polling, fail queued sends (with `why`), close the socket. Idempotent. */
  close(why = 'connection closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.close();
    const failed: Outgoing[] = [];
    while (this.queue.length > 0) failed.push(this.dequeue());
    for (const out of failed) out.reject(closedError(why));
    fs.closeSync(this.fd);
    for (const h of this.closeHandlers) h();
  }

  /**
   * evict - make room on a Listener: read what the peer already sent (at most
   * one wakeup's worth; a peer that has gone closes here by itself), then
   * close. Returns true if this call closed it (an eviction), false if it
   * had ended anyway.
   */
  evict(): boolean {
    if (this.closed) return false;
    this.drain(false);
    if (this.closed) return false;
    this.close('connection closed: evicted');
    return true;
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
        this.dequeue();
        out.reject(err as Error);
        this.log.warn({ event: 'send-failed', peer: this.peer, reason: errnoCode(err) ?? describe(err) }, 'send failed');
        this.close();
        return;
      }
      if (sent < 0) {
        this.pollFor(C.POLL_READABLE | C.POLL_WRITABLE | C.POLL_DISCONNECT);
        return;
      }
      this.dequeue();
      out.resolve();
    }
    if (!this.closed) this.pollFor(C.POLL_READABLE | C.POLL_DISCONNECT);
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

  /** drain - read records until the socket is empty; refuse bad ones and keep going; `more`: continue after a full wakeup. */
  private drain(more = true): void {
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
      this.active = ++activity;
      try {
        this.onRecord(rec.data, rec.fd);
      } catch (err) {
        // A handler must own its errors; if one escapes, the record is dropped, not the stage.
        this.log.error({ event: 'handler-error', peer: this.peer, reason: describe(err) }, 'record handler threw');
      }
    }
    // More may be waiting: yield to other connections, then continue.
    if (more) {
      setImmediate(() => {
        if (!this.closed) this.drain();
      });
    }
  }
}

export interface ListenerOptions extends ConnectionOptions {
  /** uids allowed to connect; anyone else is refused before a record is read. */
  allowUids: readonly number[];
  onConnection: (conn: Connection) => void;
  /** Connections one uid may hold (default MAX_CONNECTIONS_PER_PEER). */
  maxConnectionsPerPeer?: number;
  /** Connections in all (default: the descriptor limit / CONNECTION_DESCRIPTOR_SHARE). */
  maxConnections?: number;
}

/** Listener - accepts connections from allowed uids only, within its connection bounds. */
export class Listener {
  readonly fd: number;
  /** The bounds in force (see BOUNDS in the header). */
  readonly maxConnectionsPerPeer: number;
  readonly maxConnections: number;
  private readonly opts: ListenerOptions;
  private readonly poller: Poller;
  private readonly conns = new Set<Connection>();
  private readonly perUid = new Map<number, number>();
  private readonly acceptFailed: RateLimited;
  private paused = false;
  private evicting = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = ACCEPT_RETRY_MIN_MS;
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
    this.maxConnections = opts.maxConnections ?? connectionsFor(descriptorLimit());
    this.maxConnectionsPerPeer = opts.maxConnectionsPerPeer ?? MAX_CONNECTIONS_PER_PEER;
    this.acceptFailed = new RateLimited(LOG_INTERVAL_MS, (fields, suppressed) => {
      const exhausted = ACCEPT_EXHAUSTED.has(String(fields.reason));
      this.opts.log[exhausted ? 'error' : 'warn'](
        { event: 'accept-failed', ...fields, suppressed },
        suppressed > 0 ? `accept failed (${suppressed} more failures since the last line)` : 'accept failed',
      );
    });
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
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.poller.close();
    this.acceptFailed.flush();
    fs.closeSync(this.fd);
    for (const c of [...this.conns]) c.close();
  }

  /** acceptAll - accept pending connections (a wakeup's worth); check each peer's uid before anything else. */
  private acceptAll(status: number): void {
    if (this.closed || this.paused || this.evicting || status < 0) return;
    for (let i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
      let fd: number;
      try {
        fd = native.accept(this.fd);
      } catch (err) {
        const reason = errnoCode(err) ?? describe(err);
        this.acceptFailed.hit({ reason });
        if (ACCEPT_PEER_GONE.has(reason)) continue;
        // Out of descriptors (or anything unforeseen): the connection stays pending and the socket
        // stays readable, so polling on would spin. Pause; a closed connection or the timer resumes.
        this.pause();
        return;
      }
      if (fd < 0) return;
      this.retryMs = ACCEPT_RETRY_MIN_MS;
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
      let conn: Connection;
      try {
        conn = new Connection(fd, this.opts);
      } catch (err) {
        fs.closeSync(fd);
        this.opts.log.warn({ event: 'connection-error', peer, reason: errnoCode(err) ?? describe(err) }, 'connection setup failed');
        continue;
      }
      this.conns.add(conn);
      this.perUid.set(peer.uid, (this.perUid.get(peer.uid) ?? 0) + 1);
      conn.whenClosed(() => {
        this.conns.delete(conn);
        const left = (this.perUid.get(peer.uid) ?? 1) - 1;
        if (left > 0) this.perUid.set(peer.uid, left);
        else this.perUid.delete(peer.uid);
        this.opts.log.info({ event: 'peer-disconnected', peer }, 'peer disconnected');
        this.resume(); // a descriptor was released
      });
      this.opts.log.info({ event: 'peer-connected', peer }, 'peer connected');
      this.opts.onConnection(conn);
      if (this.overBound() !== null) {
        // Accept no more until the bounds hold again. Evict after a whole turn of the event loop
        // (one more poll phase), so that connections whose peers closed them before this one
        // arrived have been seen closing and are not counted, let alone evicted.
        this.evicting = true;
        this.poller.stop();
        afterPoll(() => this.evictStep());
        return;
      }
    }
  }

  /** overBound - the uid over maxConnectionsPerPeer (or -1: the total over maxConnections), or null when the bounds hold. */
  private overBound(): number | null {
    for (const [uid, n] of this.perUid) if (n > this.maxConnectionsPerPeer) return uid;
    return this.conns.size > this.maxConnections ? -1 : null;
  }

  /**
   * evictStep - one eviction per poll of the event loop while a bound is exceeded:
   * the least recently active connection of the uid over its bound (or of
   * anyone, over the total) is read one last time and closed. Then accepting
   * goes on.
   */
  private evictStep(): void {
    if (this.closed) return;
    const over = this.overBound();
    if (over === null) {
      this.evicting = false;
      if (!this.paused) this.poller.start(C.POLL_READABLE);
      return;
    }
    const [reason, limit] = over >= 0 ? ['connections-per-peer', this.maxConnectionsPerPeer] : ['connections-total', this.maxConnections];
    let victim: Connection | null = null;
    for (const c of this.conns) if ((over < 0 || c.peer.uid === over) && (!victim || c.lastActive < victim.lastActive)) victim = c;
    if (!victim) throw new Error('connection counts out of step with the connections held'); // a bug, never input
    const peer = victim.peer;
    if (victim.evict()) {
      this.opts.log.warn({ event: 'connection-evicted', peer, reason, limit }, 'least recently active connection closed to make room');
    }
    afterPoll(() => this.evictStep());
  }

  /** pause - stop polling the listening socket for a while (no descriptor to accept with). */
  private pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.poller.stop();
    this.retryTimer = setTimeout(() => this.resume(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, ACCEPT_RETRY_MAX_MS);
  }

  /** resume - poll the listening socket again (a descriptor was released, or the pause ended). */
  private resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!this.evicting) this.poller.start(C.POLL_READABLE);
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
    const waiter: Promise<A> = this.waiting.has(id)
      ? Promise.reject(new Error(`transfer ${id} is already waiting for an ack`))
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            this.waiting.delete(id);
            reject(Object.assign(new Error(`no ack for ${id} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
          }, timeoutMs);
          this.waiting.set(id, { resolve, reject, timer });
        });
    // The caller waits for the ack only after its record is sent, and not at all when the send
    // fails: a connection that drops meanwhile (failAll) must not be an unhandled rejection,
    // which stops the process. Whoever awaits the returned promise still sees the error.
    waiter.catch(() => undefined);
    return waiter;
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
