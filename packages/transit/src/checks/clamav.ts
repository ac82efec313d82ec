/*
 * NAME
 *   clamav - the ClamAV check: transit's sealed copy scanned by a running clamd
 *
 * SYNOPSIS
 *   import { clamavCheck, interpretScanReply, interpretVersionReply } from './clamav.js';
 *
 *   const check = clamavCheck({ socket, timeoutMs, maxConcurrent, maxBytes });
 *   const check = clamavCheck({ host, port, timeoutMs, maxConcurrent, maxBytes });
 *   check.run(input, signal): Promise<CheckRun>        the Check interface
 *   check.waitUntilUp(log, signal): Promise<boolean>   at start: wait, with backoff, for clamd
 *   check.where                                        "unix:/run/clamav/clamd.ctl" or "tcp:host:3310"
 *
 * DESCRIPTION
 *   Each scan asks clamd for its VERSION, then scans the file, each on a
 *   new connection (clamd's simple protocol: one z-command, one reply ended
 *   by NUL). The VERSION reply, "ClamAV 1.4.6/27500/Tue Jan 14 09:30:00
 *   2025" (engine/signature database version/database date), becomes the
 *   result's engine, so every report names the engine and database that
 *   judged the file. With only unofficial signatures clamd reports no
 *   database version ("ClamAV 1.4.6").
 *
 *   Local clamd (the default): zFILDES, then one byte carrying the sealed
 *   copy's read-only descriptor in SCM_RIGHTS, over clamd's SOCK_STREAM
 *   socket (native.connectStream; Node's net module cannot pass a
 *   descriptor). clamd reads the memfd itself: no path, no copy, no
 *   permission on any of transit's files. The memfd is sealed, so clamd
 *   (or anyone it hands it to) cannot change it.
 *
 *   Remote clamd (host set): zINSTREAM over TCP, the bytes read from the
 *   sealed copy with positional reads in 64 KiB chunks, each prefixed with
 *   its length (4 bytes, network order), ended by a zero length.
 *
 *   Replies and outcomes:
 *     "fd[N]: OK", "stream: OK"              pass
 *     "...: <signature> FOUND"               fail, reason "infected: <signature>"
 *     "...: Heuristics.Limits.Exceeded.* FOUND"
 *                                            error: clamd stopped scanning at one
 *                                            of its limits (with AlertExceedsMax);
 *                                            the file was not fully scanned
 *     "...: <message> ERROR", "INSTREAM size limit exceeded. ERROR"
 *                                            error, reason "scan error: <message>"
 *     anything else                          error, "unexpected reply from clamd"
 *   An error is a rejection the report keeps apart from an infection
 *   (outcome error, not fail).
 *
 *   Held for retry (CheckUnavailable), never passed: clamd not reachable
 *   (ENOENT, ECONNREFUSED, EACCES, ...), no answer within timeoutMs, the
 *   connection closed without an answer, a VERSION reply that is not
 *   clamd's, a command clamd says it does not offer (FILDES disabled), or
 *   no free scan slot within timeoutMs (at most maxConcurrent scans run at
 *   once).
 *
 *   A scan that clamd does not finish within timeoutMs is not simply held:
 *   a file whose scan always takes longer would come back for ever and
 *   take a scan slot for timeoutMs each time. So clamd is asked VERSION
 *   once more (within PROBE_MS at most): if it answers, it is up and this
 *   file is what it could not finish, an error (rejected, never passed);
 *   if it does not, clamd is unavailable and the file is held. Either way
 *   the scan's connection is closed and its slot given back before run()
 *   settles. runChecks' own timeout for this check is 2 x timeoutMs +
 *   PROBE_MS + 5 s (the slot wait, the scan, the probe), so this check's
 *   own deadlines always fire first.
 *
 *   A file larger than maxBytes is not sent: error "not scanned". clamd
 *   silently skips what exceeds its MaxFileSize/MaxScanSize unless
 *   AlertExceedsMax is on, and over TCP refuses streams longer than
 *   StreamMaxLength, so maxBytes must stay within those (docs/scanners.md).
 *
 *   waitUntilUp() is started once at transit start, in the background:
 *   it asks VERSION with exponential backoff (0.2 s to 10 s) until clamd
 *   answers, logging scanner-waiting (first and every 10th attempt) and
 *   scanner-ready. Transit does not exit while clamd is not up; files
 *   that arrive meanwhile are held (RETRY) like any other unavailability.
 *
 * SECURITY
 *   FILDES hands clamd a descriptor sharing transit's open file
 *   description, so clamd's reads move its file offset: harmless, because
 *   every reader in Sluice (checks, the copy into egress) uses positional
 *   reads only.
 *
 *   clamd is trusted to scan, not to be well-behaved: replies are bounded
 *   (4 KiB), a descriptor sent back is closed, and nothing it says can
 *   produce a pass except exactly "OK". Over TCP the file's bytes travel
 *   unencrypted and clamd does not authenticate its clients: use TCP only
 *   on a trusted network (docs/scanners.md).
 *
 * BUGS
 *   Over TCP, clamd closes a stream longer than StreamMaxLength and its
 *   reply is often lost to the reset (facts.md). When the connection
 *   breaks without a reply, VERSION is asked again: if clamd answers, it
 *   refused this file (error, rejected); if not, clamd went away (held).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as native from '@sluice/native';
import { errnoCode, describe } from '@sluice/core';
import { CheckUnavailable, type Check, type CheckInput, type CheckRun } from './check.js';
import { preadFully } from './read.js';
import { Slots } from './slots.js';

export interface ClamavConfig {
  /** clamd's local socket (FILDES). Used when host is empty. */
  socket?: string;
  /** A remote clamd (INSTREAM over TCP); overrides socket when non-empty. */
  host?: string;
  /** With host. Default 3310. */
  port?: number;
  /** Per-scan timeout (VERSION + scan), and the longest wait for a free slot. */
  timeoutMs: number;
  /** Scans at once. */
  maxConcurrent: number;
  /** Largest file sent to clamd. */
  maxBytes: number;
}

/** The little of a logger this file needs (pino's Logger has it). */
export interface ScannerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ClamavCheck extends Check {
  readonly where: string;
  waitUntilUp(log: ScannerLog, signal: AbortSignal): Promise<boolean>;
}

/** Replies longer than this are refused: clamd's are one short line. */
const REPLY_MAX = 4096;
/** INSTREAM chunk size. */
const CHUNK = 64 * 1024;
/** Longest wait for the VERSION asked after a scan timed out (at most timeoutMs too). */
const PROBE_MS = 5_000;
/** Engine named when clamd was never asked (file too large) or the answer is unknown. */
const ENGINE_UNKNOWN = 'ClamAV (clamd, version not known)';

/** What a scan reply means. */
export type ScanReply =
  | { kind: 'clean' }
  | { kind: 'infected'; signature: string }
  | { kind: 'limit'; signature: string }
  | { kind: 'error'; message: string }
  | { kind: 'unsupported'; message: string }
  | { kind: 'unexpected'; reply: string };

/**
 * interpretScanReply - one FILDES/INSTREAM reply (without its NUL). Only
 * exactly "OK" after the "fd[N]: " or "stream: " prefix is clean.
 */
export function interpretScanReply(reply: string): ScanReply {
  const m = /^(?:fd\[\d+\]|stream): (.*)$/s.exec(reply);
  if (!m) {
    // Replies without the per-file prefix: the command itself was refused.
    if (reply === 'UNKNOWN COMMAND' || reply === 'COMMAND UNAVAILABLE') return { kind: 'unsupported', message: reply };
    const err = /^(.+) ERROR$/s.exec(reply);
    if (err) return { kind: 'error', message: err[1]!.trim() };
    return { kind: 'unexpected', reply };
  }
  const body = m[1]!;
  if (body === 'OK') return { kind: 'clean' };
  const found = /^(\S.*) FOUND$/s.exec(body);
  if (found) {
    const signature = found[1]!;
    return signature.startsWith('Heuristics.Limits.Exceeded') ? { kind: 'limit', signature } : { kind: 'infected', signature };
  }
  const err = /^(.*) ERROR$/s.exec(body);
  if (err) return { kind: 'error', message: err[1]!.trim() || '(no message)' };
  return { kind: 'unexpected', reply };
}

/**
 * interpretVersionReply - the engine string from a VERSION reply, or null
 * when the reply is not clamd's. "COMMAND UNAVAILABLE" (EnableVersionCommand
 * no) is clamd declining to say, not a stranger.
 */
export function interpretVersionReply(reply: string): string | null {
  if (reply === 'COMMAND UNAVAILABLE') return 'ClamAV (clamd, VERSION disabled in clamd.conf)';
  if (/^ClamAV \d[^\s/]*(\/\d+\/[^\0]+)?$/.test(reply) && reply.length <= 200) return reply;
  return null;
}

/** A piece of a request: bytes, and optionally one descriptor to travel with them. */
interface Part {
  data: Uint8Array;
  fd: number;
}

/** A way to talk to clamd: one request per connection, one reply back. */
interface Transport {
  readonly where: string;
  command(name: string, signal: AbortSignal): Promise<string>;
  scan(input: CheckInput, signal: AbortSignal): Promise<string>;
}

/** codeOf - an errno code, or else a one-line description of what was thrown. */
const codeOf = (err: unknown): string => errnoCode(err) ?? describe(err);

const BROKEN = new Set(['EPIPE', 'ECONNRESET']);

/** Reply - clamd's answer as it arrives: complete at its NUL, refused past REPLY_MAX bytes. */
class Reply {
  private readonly parts: Buffer[] = [];
  private bytes = 0;

  /** add - one chunk received; the answer once it is complete, else null. Throws past REPLY_MAX bytes. */
  add(chunk: Buffer): string | null {
    this.parts.push(chunk);
    this.bytes += chunk.length;
    const text = this.text();
    if (text === null && this.bytes > REPLY_MAX) throw new Error(`clamd's reply exceeds ${REPLY_MAX} bytes`);
    return text;
  }

  /** started - has any of the answer arrived? */
  get started(): boolean {
    return this.bytes > 0;
  }

  /** text - the answer up to its NUL, or null while it is incomplete. */
  text(): string | null {
    const all = Buffer.concat(this.parts);
    const nul = all.indexOf(0);
    return nul >= 0 ? all.subarray(0, nul).toString('utf8') : null;
  }
}

/** ConnectionBroken - the connection ended before a complete reply: for run() to tell refusal from absence. */
class ConnectionBroken extends CheckUnavailable {}

/**
 * unixExchange - one request on clamd's local socket: send the parts (the
 * descriptor travels with its part's first byte), then read the reply up to
 * its NUL. Never blocks: readiness comes from native.poll on the event loop.
 */
function unixExchange(path: string, parts: readonly Part[], signal: AbortSignal): Promise<string> {
  signal.throwIfAborted();
  let fd: number;
  try {
    fd = native.connectStream(path);
  } catch (err) {
    return Promise.reject(new CheckUnavailable(`cannot connect to clamd at ${path}: ${codeOf(err)}`));
  }
  return new Promise<string>((resolve, reject) => {
    const queue = parts.map((p) => ({ ...p }));
    const reply = new Reply();
    let done = false;
    let poller: native.Poller | undefined;

    const finish = (err: unknown, reply?: string) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      poller?.close(); // before the fd is closed (one Poller per fd, libuv)
      fs.closeSync(fd);
      if (err === null) resolve(reply!);
      else reject(err);
    };
    const onAbort = () => finish(signal.reason);
    const ended = () => {
      // EOF: clamd may close right after a reply; a reply cut short is no reply.
      const text = reply.text();
      if (text !== null) finish(null, text);
      else finish(new ConnectionBroken(`clamd at ${path} closed the connection without a complete answer`));
    };

    const pump = () => {
      try {
        while (queue.length > 0) {
          const head = queue[0]!;
          let n: number;
          try {
            n = native.send(fd, head.data, head.fd);
          } catch (err) {
            // clamd closed early (it refused the request): its reply may still be there.
            if (!BROKEN.has(codeOf(err))) throw err;
            queue.length = 0;
            break;
          }
          if (n < 0) {
            poller!.start(native.constants.POLL_WRITABLE);
            return;
          }
          if (n >= head.data.length) queue.shift();
          else queue[0] = { data: head.data.subarray(n), fd: -1 };
        }
        for (;;) {
          let r: native.Received | null;
          try {
            r = native.recv(fd, REPLY_MAX);
          } catch (err) {
            if (BROKEN.has(codeOf(err))) return ended();
            throw err;
          }
          if (r === null) {
            poller!.start(native.constants.POLL_READABLE | native.constants.POLL_DISCONNECT);
            return;
          }
          if (r.fd >= 0) fs.closeSync(r.fd); // clamd never sends one; do not keep it
          if (r.data.length === 0) return ended();
          const text = reply.add(r.data);
          if (text !== null) return finish(null, text);
        }
      } catch (err) {
        finish(new CheckUnavailable(`talking to clamd at ${path}: ${codeOf(err)}`));
      }
    };

    try {
      poller = native.poll(fd, (status) => {
        if (status < 0) finish(new CheckUnavailable(`waiting for clamd at ${path}: poll status ${status}`));
        else pump();
      });
    } catch (err) {
      finish(err);
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    pump();
  });
}

/** unixTransport - FILDES over clamd's local socket. */
function unixTransport(path: string): Transport {
  return {
    where: `unix:${path}`,
    command: (name, signal) => unixExchange(path, [{ data: Buffer.from(`z${name}\0`), fd: -1 }], signal),
    scan: (input, signal) =>
      unixExchange(
        path,
        [
          { data: Buffer.from('zFILDES\0'), fd: -1 },
          // One dummy byte carries the descriptor, as clamdscan does it.
          { data: Buffer.from([0]), fd: input.fd },
        ],
        signal,
      ),
  };
}

/**
 * tcpExchange - one request to a remote clamd: the command, then (for
 * INSTREAM) the body in length-prefixed chunks; the reply up to its NUL.
 * Stops sending as soon as any reply arrives (clamd only answers early to
 * refuse).
 */
function tcpExchange(host: string, port: number, command: string, body: CheckInput | null, signal: AbortSignal): Promise<string> {
  signal.throwIfAborted();
  return new Promise<string>((resolve, reject) => {
    const where = `${host}:${port}`;
    const reply = new Reply();
    let connected = false;
    let done = false;
    const sock = net.connect({ host, port, noDelay: true });

    const finish = (err: unknown, reply?: string) => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err === null) resolve(reply!);
      else reject(err);
    };
    const onAbort = () => finish(signal.reason);

    sock.on('data', (d: Buffer) => {
      try {
        const text = reply.add(d);
        if (text !== null) finish(null, text);
      } catch (err) {
        finish(err);
      }
    });
    sock.on('error', (err) => {
      if (!connected) finish(new CheckUnavailable(`cannot connect to clamd at ${where}: ${codeOf(err)}`));
      else {
        const text = reply.text();
        if (text !== null) finish(null, text);
        else finish(new ConnectionBroken(`clamd at ${where} broke the connection (${codeOf(err)}) without a complete answer`));
      }
    });
    sock.on('close', () => {
      const text = reply.text();
      if (text !== null) finish(null, text);
      else finish(new ConnectionBroken(`clamd at ${where} closed the connection without a complete answer`));
    });
    sock.on('connect', () => {
      connected = true;
      sock.write(`z${command}\0`);
      if (body === null) return;
      void stream(body).catch((err: unknown) => finish(err));
    });
    signal.addEventListener('abort', onAbort, { once: true });

    /** stream - the sealed copy in length-prefixed chunks, with backpressure. */
    async function stream(input: CheckInput): Promise<void> {
      const buf = Buffer.alloc(Math.max(1, Math.min(CHUNK, input.size)));
      let position = 0;
      while (position < input.size) {
        if (done || reply.started) return; // finished, or clamd answered early: stop sending
        const want = Math.min(buf.length, input.size - position);
        const got = await preadFully(input.fd, buf, want, position);
        if (got < want) throw new Error(`file ended at byte ${position + got}, before its recorded size of ${input.size} bytes`);
        const frame = Buffer.alloc(4 + got);
        frame.writeUInt32BE(got, 0);
        buf.copy(frame, 4, 0, got);
        position += got;
        if (done) return;
        if (!sock.write(frame)) await new Promise<void>((r) => {
          sock.once('drain', r);
          sock.once('close', r);
        });
      }
      if (!done && !reply.started) sock.write(Buffer.alloc(4)); // zero length: end of stream
    }
  });
}

/** tcpTransport - INSTREAM to a remote clamd. */
function tcpTransport(host: string, port: number): Transport {
  return {
    where: `tcp:${host.includes(':') ? `[${host}]` : host}:${port}`,
    command: (name, signal) => tcpExchange(host, port, name, null, signal),
    scan: (input, signal) => tcpExchange(host, port, 'INSTREAM', input, signal),
  };
}

/**
 * deadlineOf - a signal that aborts with `signal` or after ms. Not
 * AbortSignal.any([signal, AbortSignal.timeout(ms)]): Node holds a timeout
 * signal only weakly, and one referenced from nowhere else can be collected
 * before it fires (the scan then waits for runChecks' backstop instead).
 */
function deadlineOf(signal: AbortSignal, ms: number): { deadline: AbortSignal; clear: () => void } {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  const timer = setTimeout(() => ac.abort(new Error(`deadline of ${ms} ms passed`)), ms);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    deadline: ac.signal,
    clear: () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    },
  };
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** clamavCheck - the check, for a local (socket) or remote (host) clamd. */
export function clamavCheck(config: ClamavConfig): ClamavCheck {
  const { timeoutMs, maxConcurrent, maxBytes } = config;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new TypeError(`clamavCheck: timeoutMs must be a positive integer, got ${String(timeoutMs)}`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError(`clamavCheck: maxBytes must be a non-negative integer, got ${String(maxBytes)}`);
  const host = config.host ?? '';
  let transport: Transport;
  if (host !== '') {
    if (net.isIP(host) === 0 && !HOSTNAME.test(host)) throw new TypeError(`clamavCheck: host ${JSON.stringify(host)} is neither an IP address nor a host name`);
    const port = config.port ?? 3310;
    if (!Number.isSafeInteger(port) || port < 1 || port > 65535) throw new TypeError(`clamavCheck: port must be 1..65535, got ${String(port)}`);
    transport = tcpTransport(host, port);
  } else {
    if (typeof config.socket !== 'string' || !config.socket.startsWith('/')) {
      throw new TypeError(`clamavCheck: socket must be an absolute path, got ${JSON.stringify(config.socket)}`);
    }
    transport = unixTransport(config.socket);
  }
  const slots = new Slots(maxConcurrent, 'clamd');
  const where = transport.where;

  /** version - VERSION, as the engine string; a stranger at the socket is "unavailable". */
  async function version(signal: AbortSignal): Promise<string> {
    const reply = await transport.command('VERSION', signal);
    const engine = interpretVersionReply(reply);
    if (engine === null) throw new CheckUnavailable(`${where} does not answer VERSION like clamd: ${JSON.stringify(reply.slice(0, 80))}`);
    return engine;
  }

  /** scanOnce - VERSION and the scan, under one deadline; the outcome for the report. */
  async function scanOnce(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
    const { deadline, clear } = deadlineOf(signal, timeoutMs);
    let engine: string | null = null;
    try {
      engine = await version(deadline);
      let reply: string;
      try {
        reply = await transport.scan(input, deadline);
      } catch (err) {
        if (!(err instanceof ConnectionBroken)) throw err;
        // Did clamd refuse this file, or go away? Ask it (see BUGS).
        await version(deadline);
        const hint = host === '' ? '' : ' (longer than its StreamMaxLength?)';
        return { outcome: 'error', reason: `scan error: ${err.message}; clamd is up, so it refused this file${hint}`, engine };
      }
      const r = interpretScanReply(reply);
      switch (r.kind) {
        case 'clean':
          return { outcome: 'pass', reason: 'no signature matched', engine };
        case 'infected':
          return { outcome: 'fail', reason: `infected: ${r.signature}`, engine };
        case 'limit':
          return { outcome: 'error', reason: `scan error: clamd stopped at a limit (${r.signature}); the file was not fully scanned`, engine };
        case 'error':
          return { outcome: 'error', reason: `scan error: ${r.message}`, engine };
        case 'unsupported':
          throw new CheckUnavailable(`clamd at ${where} does not offer ${host === '' ? 'FILDES' : 'INSTREAM'}: ${r.message}`);
        case 'unexpected':
          return { outcome: 'error', reason: `scan error: unexpected reply from clamd: ${JSON.stringify(r.reply.slice(0, 200))}`, engine };
      }
    } catch (err) {
      if (!deadline.aborted || signal.aborted) throw err;
      // The deadline passed. Before the scan (no VERSION yet): clamd is not answering. During the
      // scan: clamd answered VERSION a moment ago; if it still does, it is this file it cannot finish.
      if (engine === null || !(await answers(signal))) throw new CheckUnavailable(`clamd at ${where} did not answer within ${timeoutMs} ms`);
      return { outcome: 'error', reason: `scan error: clamd did not finish scanning the file within ${timeoutMs} ms, though it answers`, engine };
    } finally {
      clear();
    }
  }

  /** answers - whether clamd answers VERSION within PROBE_MS (or timeoutMs, if shorter). */
  async function answers(signal: AbortSignal): Promise<boolean> {
    const { deadline, clear } = deadlineOf(signal, Math.min(PROBE_MS, timeoutMs));
    try {
      await version(deadline);
      return true;
    } catch {
      return false;
    } finally {
      clear();
    }
  }

  return {
    name: 'clamav',
    // Backstop only: the slot wait and the scan each end by timeoutMs, the probe after a scan
    // timeout by PROBE_MS.
    timeoutMs: Math.min(2 * timeoutMs + PROBE_MS + 5_000, 2_147_483_647),
    engine: ENGINE_UNKNOWN,
    where,
    async run(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
      if (input.size > maxBytes) {
        return { outcome: 'error', reason: `not scanned: ${input.size} bytes is more than transit.clamav.maxBytes (${maxBytes})`, engine: ENGINE_UNKNOWN };
      }
      const release = await slots.acquire(timeoutMs, signal);
      try {
        return await scanOnce(input, signal);
      } finally {
        release();
      }
    },
    async waitUntilUp(log: ScannerLog, signal: AbortSignal): Promise<boolean> {
      let delay = 200;
      for (let attempt = 1; !signal.aborted; attempt++) {
        const { deadline, clear } = deadlineOf(signal, timeoutMs);
        try {
          const engine = await version(deadline);
          log.info({ event: 'scanner-ready', scanner: 'clamav', where, engine }, `clamd at ${where} is up: ${engine}`);
          return true;
        } catch (err) {
          if (signal.aborted) break;
          if (attempt === 1 || attempt % 10 === 0) {
            const reason = err instanceof Error ? err.message : String(err);
            log.warn(
              { event: 'scanner-waiting', scanner: 'clamav', where, attempt, retryInMs: delay, reason },
              `clamd is not up yet; files are held until it is (attempt ${attempt})`,
            );
          }
        } finally {
          clear();
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, delay);
          function done() {
            clearTimeout(t);
            signal.removeEventListener('abort', done);
            resolve();
          }
          signal.addEventListener('abort', done, { once: true });
        });
        delay = Math.min(delay * 2, 10_000);
      }
      return false;
    },
  };
}
