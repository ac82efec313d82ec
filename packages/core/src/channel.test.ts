import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { native } from '@sluice/native';
import {
  Connector,
  Listener,
  OUTGOING_QUEUE_RECORDS,
  OUTGOING_QUEUE_RECORD_MULTIPLE,
  OUTGOING_QUEUE_TOTAL_SHARE,
  PendingAcks,
  RateLimited,
  connectionsFor,
  descriptorLimit,
  type Connection,
} from './channel.js';

const quiet = () => {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) }) };
};
const until = async (pred: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('PendingAcks', () => {
  it('matches acks to transfers by id, refuses strays, and times out', async () => {
    const acks = new PendingAcks<string>();
    const a = acks.wait('a', 10_000);
    expect(acks.settle('nobody-waits', 'x')).toBe(false);
    expect(acks.settle('a', 'ack-a')).toBe(true);
    await expect(a).resolves.toBe('ack-a');
    await expect(acks.wait('b', 20)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    const c = acks.wait('c', 10_000);
    await expect(acks.wait('c', 10_000)).rejects.toThrow(/already waiting/);
    acks.failAll(new Error('gone'));
    await expect(c).rejects.toThrow('gone');
    expect(acks.size).toBe(0);
  });

  it('a connection that drops before the waiter is awaited (its record still being sent, or never sent) is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const acks = new PendingAcks<string>();
      const sending = acks.wait('sending', 10_000);
      acks.wait('never-sent', 10_000); // the send failed: nobody will await it
      acks.failAll(new Error('peer disconnected'));
      await new Promise((r) => setTimeout(r, 50)); // the send "completes" later
      await expect(sending).rejects.toThrow('peer disconnected');
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('Connector', () => {
  it('waits with backoff for a listener that is not there yet, connects, and reconnects after it restarts', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-conn-'));
    const sock = path.join(dir, 's.sock');
    const { log, lines } = quiet();
    let connects = 0;
    let disconnects = 0;
    const received: string[] = [];
    const connector = new Connector({
      path: sock,
      log,
      maxRecordBytes: 1024,
      expectUid: process.getuid!(),
      minBackoffMs: 10,
      maxBackoffMs: 50,
      onConnected: () => connects++,
      onDisconnected: () => disconnects++,
    });
    connector.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(connects).toBe(0);
    expect(lines.some((l) => l.event === 'downstream-unavailable')).toBe(true);

    const serve = () =>
      Listener.open(sock, 0o600, {
        log,
        maxRecordBytes: 1024,
        allowUids: [process.getuid!()],
        onConnection: (conn: Connection) => {
          conn.onRecord = (data) => received.push(data.toString());
        },
      });
    let listener = serve();
    await until(() => connects === 1);
    await connector.connection!.send(Buffer.from('one'));
    await until(() => received.length === 1);

    listener.close(); // the downstream stage dies
    await until(() => disconnects === 1);
    listener = serve(); // and comes back
    await until(() => connects === 2);
    await connector.connection!.send(Buffer.from('two'));
    await until(() => received.length === 2);
    expect(received).toEqual(['one', 'two']);

    connector.stop();
    listener.close();
    fs.rmSync(dir, { recursive: true });
  });

  it('refuses a downstream that runs as an unexpected uid', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-conn-'));
    const sock = path.join(dir, 's.sock');
    const { log, lines } = quiet();
    const listener = Listener.open(sock, 0o600, { log, maxRecordBytes: 1024, allowUids: [process.getuid!()], onConnection: () => {} });
    let connected = false;
    const connector = new Connector({
      path: sock,
      log,
      maxRecordBytes: 1024,
      expectUid: process.getuid!() + 1,
      minBackoffMs: 10,
      maxBackoffMs: 20,
      onConnected: () => (connected = true),
      onDisconnected: () => {},
    });
    connector.start();
    await until(() => lines.some((l) => l.event === 'peer-refused'));
    expect(connected).toBe(false);
    connector.stop();
    listener.close();
    fs.rmSync(dir, { recursive: true });
  });
});

describe('Listener', () => {
  it('serves many connections at once, each with its own peer, and keeps the others when one goes away', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-conn-'));
    const sock = path.join(dir, 's.sock');
    const { log } = quiet();
    const received: string[] = [];
    const listener = Listener.open(sock, 0o600, {
      log,
      maxRecordBytes: 1024,
      allowUids: [process.getuid!()],
      onConnection: (conn: Connection) => {
        conn.onRecord = (data) => {
          received.push(data.toString());
          void conn.send(Buffer.from(`ack ${data.toString()}`));
        };
      },
    });
    const replies = new Map<number, string[]>();
    const connectors = Array.from({ length: 5 }, (_v, i) => {
      replies.set(i, []);
      return new Connector({
        path: sock,
        log,
        maxRecordBytes: 1024,
        onConnected: (conn) => {
          conn.onRecord = (data) => replies.get(i)!.push(data.toString());
        },
        onDisconnected: () => {},
      });
    });
    connectors.forEach((c) => c.start());
    await until(() => connectors.every((c) => c.connection !== null) && listener.connections.size === 5);
    expect(new Set([...listener.connections].map((c) => c.peer.uid))).toEqual(new Set([process.getuid!()]));
    await Promise.all(connectors.map((c, i) => c.connection!.send(Buffer.from(`from ${i}`))));
    await until(() => [...replies.values()].every((r) => r.length === 1));
    expect(received.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `from ${i}`));
    for (const [i, r] of replies) expect(r).toEqual([`ack from ${i}`]); // each answer went back on its own connection

    connectors[0]!.stop();
    await until(() => listener.connections.size === 4);
    await connectors[1]!.connection!.send(Buffer.from('again'));
    await until(() => replies.get(1)!.length === 2);
    connectors.forEach((c) => c.stop());
    listener.close();
    fs.rmSync(dir, { recursive: true });
  });
});

/** listen - a Listener on a fresh socket for this uid, recording connections and records; `extra` overrides options. */
function listen(extra: Partial<Parameters<typeof Listener.open>[2]> = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-conn-'));
  const sock = path.join(dir, 's.sock');
  const { log, lines } = quiet();
  const conns: Connection[] = [];
  const received: string[] = [];
  const listener = Listener.open(sock, 0o600, {
    log,
    maxRecordBytes: 1024,
    allowUids: [process.getuid!()],
    onConnection: (conn) => {
      conns.push(conn);
      conn.onRecord = (data) => received.push(data.toString());
    },
    ...extra,
  });
  const done = () => {
    listener.close();
    fs.rmSync(dir, { recursive: true });
  };
  return { sock, log, lines, conns, received, listener, done };
}

/** eof - has the other end of this raw client socket closed? (reads and drops what is pending) */
function eof(fd: number): boolean {
  for (;;) {
    const rec = native.recv(fd, 1 << 16);
    if (rec === null) return false;
    if (rec.fd >= 0) fs.closeSync(rec.fd);
    if (rec.data.length === 0) return true;
  }
}

describe('Connection: the outgoing queue', () => {
  it.each([
    ['queue-records', 1, OUTGOING_QUEUE_RECORDS],
    ['queue-bytes', 1000, Math.floor((OUTGOING_QUEUE_RECORD_MULTIPLE * 1024) / 1000)],
  ])('disconnects a peer that reads nothing once the queue is full (%s), failing every queued send', async (reason, size, queued) => {
    const l = listen();
    const client = native.connect(l.sock);
    await until(() => l.conns.length === 1);
    const conn = l.conns[0]!;
    const record = Buffer.alloc(size, 0x61);
    const pending: Promise<void>[] = [];
    // Without a bound this would queue all of them; the kernel's buffer holds a few hundred.
    for (let i = 0; i < 100_000 && !conn.isClosed; i++) pending.push(conn.send(record));
    expect(conn.isClosed).toBe(true);
    const outcomes = await Promise.allSettled(pending);
    const failed = outcomes.filter((o) => o.status === 'rejected');
    // The kernel took the first ones; every one after them failed (the one over the bound too) with EPIPE.
    expect(failed.length).toBe(queued + 1);
    expect(outcomes.slice(0, outcomes.length - failed.length).every((o) => o.status === 'fulfilled')).toBe(true);
    for (const f of failed) expect((f as PromiseRejectedResult).reason).toMatchObject({ code: 'EPIPE' });
    const line = l.lines.find((x) => x.event === 'peer-not-reading');
    expect(line).toMatchObject({ level: 40, reason, queued, peer: { pid: process.pid } });
    await until(() => eof(client));
    fs.closeSync(client);
    l.done();
  });

  it('bounds what all connections queue together: beyond it, the longest queue is disconnected (queue-total)', async () => {
    const per = 8; // so the total is OUTGOING_QUEUE_TOTAL_SHARE x 8
    const l = listen({ outgoingQueueRecords: per });
    const clients = Array.from({ length: OUTGOING_QUEUE_TOTAL_SHARE + 1 }, () => native.connect(l.sock));
    await until(() => l.conns.length === clients.length);
    const pending: Promise<void>[] = [];
    /** fill - send until `n` records wait in the connection's own queue (the kernel's buffer fills first). */
    const fill = (conn: Connection, n: number) => {
      for (let i = 0; i < 100_000 && conn.queuedRecords < n && !conn.isClosed; i++) pending.push(conn.send(Buffer.from('x')).catch(() => {}));
    };
    const [last, ...first] = [l.conns.at(-1)!, ...l.conns.slice(0, -1)];
    for (const conn of first) fill(conn, per - 1); // each below its own bound; the total is 4 short of its bound
    expect(first.every((c) => !c.isClosed && c.queuedRecords === per - 1)).toBe(true);
    expect(l.lines.filter((x) => x.event === 'peer-not-reading')).toEqual([]);
    fill(last, 5); // the fifth of these passes the total
    expect(last.isClosed).toBe(false);
    expect(last.queuedRecords).toBe(5);
    expect(first.filter((c) => c.isClosed).length).toBe(1);
    expect(l.lines.filter((x) => x.event === 'peer-not-reading')).toMatchObject([{ reason: 'queue-total', queued: per - 1 }]);
    for (const fd of clients) fs.closeSync(fd);
    l.done();
    await Promise.all(pending);
  });

  it('lets a slow reader catch up: a queue that drains below its bound keeps the connection', async () => {
    const l = listen();
    const client = native.connect(l.sock);
    await until(() => l.conns.length === 1);
    const conn = l.conns[0]!;
    let read = 0;
    const total = OUTGOING_QUEUE_RECORDS * 3;
    // Send in rounds of half the bound, reading everything between rounds: three bounds' worth in all.
    for (let sent = 0; sent < total; ) {
      const round: Promise<void>[] = [];
      for (let i = 0; i < OUTGOING_QUEUE_RECORDS / 2; i++, sent++) round.push(conn.send(Buffer.from('x')));
      while (read < sent) {
        const rec = native.recv(client, 16);
        if (rec === null) await new Promise((r) => setTimeout(r, 1));
        else read++;
      }
      await Promise.all(round);
    }
    expect(conn.isClosed).toBe(false);
    expect(l.lines.filter((x) => x.event === 'peer-not-reading')).toEqual([]);
    fs.closeSync(client);
    l.done();
  });
});

describe('Connection: reading while sending', () => {
  it('reads every record the peer sends, between its own sends and while its queue waits for the kernel', async () => {
    const l = listen();
    const client = native.connect(l.sock);
    await until(() => l.conns.length === 1);
    const conn = l.conns[0]!;
    const drainClient = () => {
      let n = 0;
      while (native.recv(client, 16) !== null) n++;
      return n;
    };
    // Sends that the kernel takes at once, each followed by a record from the peer.
    for (let i = 0; i < 50; i++) {
      await conn.send(Buffer.from('x'));
      expect(native.send(client, Buffer.from(`a${i}`), -1)).toBeGreaterThan(0);
      await until(() => l.received.length === i + 1);
    }
    expect(drainClient()).toBe(50);
    // The kernel's buffer full: records wait in the connection's queue, and the peer's records still arrive.
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 100_000 && conn.queuedRecords === 0; i++) pending.push(conn.send(Buffer.from('y')));
    expect(conn.queuedRecords).toBeGreaterThan(0);
    native.send(client, Buffer.from('while-queued'), -1);
    await until(() => l.received.includes('while-queued'));
    // The peer reads: the queue drains, and reading goes on after it.
    let read = 0;
    await until(() => {
      read += drainClient();
      return conn.queuedRecords === 0 && read === pending.length;
    });
    await Promise.all(pending);
    native.send(client, Buffer.from('after'), -1);
    await until(() => l.received.includes('after'));
    expect(l.received).toEqual([...Array.from({ length: 50 }, (_, i) => `a${i}`), 'while-queued', 'after']);
    expect(conn.isClosed).toBe(false);
    fs.closeSync(client);
    l.done();
  });
});

describe('Listener: connection bounds', () => {
  it('evicts the least recently active connection of a uid beyond maxConnectionsPerPeer, after reading what it sent', async () => {
    const l = listen({ maxConnectionsPerPeer: 3 });
    const c = [native.connect(l.sock)];
    await until(() => l.conns.length === 1);
    c.push(native.connect(l.sock));
    await until(() => l.conns.length === 2);
    c.push(native.connect(l.sock));
    await until(() => l.conns.length === 3);
    native.send(c[0]!, Buffer.from('c0 is active'), -1);
    await until(() => l.received.length === 1);
    // c1 is now the least recently active. A fourth connection arrives and, in the same breath, c1 sends a record:
    // whichever the stage sees first, c1's record is read (before c1 is evicted, or making c2 the one evicted).
    c.push(native.connect(l.sock));
    native.send(c[1]!, Buffer.from('c1 spoke last'), -1);
    await until(() => l.conns.length === 4 && l.listener.connections.size === 3);
    await until(() => l.received.length === 2);
    expect(l.received).toEqual(['c0 is active', 'c1 spoke last']);
    const ended = [1, 2].filter((i) => eof(c[i]!));
    expect(ended.length).toBe(1);
    // l.conns[i] is the stage's end of c[i] (each was accepted before the next connected). The fifth
    // connection evicts whichever is least recently active now.
    const open = [0, 1, 2, 3].filter((i) => !l.conns[i]!.isClosed);
    const lru = open.reduce((a, b) => (l.conns[a]!.lastActive < l.conns[b]!.lastActive ? a : b));
    c.push(native.connect(l.sock));
    await until(() => eof(c[lru]!));
    expect([...open.filter((i) => i !== lru), 4].some((i) => eof(c[i]!))).toBe(false);
    expect(l.listener.connections.size).toBe(3);
    const evicted = l.lines.filter((x) => x.event === 'connection-evicted');
    expect(evicted.length).toBe(2);
    expect(evicted.every((x) => x.reason === 'connections-per-peer' && x.limit === 3 && x.level === 40)).toBe(true);
    for (const fd of c) fs.closeSync(fd);
    l.done();
  });

  it('evicts the least recently active connection of anyone beyond maxConnections', async () => {
    const l = listen({ maxConnections: 2 });
    const a = native.connect(l.sock);
    await until(() => l.conns.length === 1);
    const b = native.connect(l.sock);
    await until(() => l.conns.length === 2);
    const c = native.connect(l.sock);
    await until(() => eof(a));
    expect(eof(b) || eof(c)).toBe(false);
    expect(l.lines.find((x) => x.event === 'connection-evicted')).toMatchObject({ reason: 'connections-total', limit: 2 });
    expect(l.listener.connections.size).toBe(2);
    for (const fd of [a, b, c]) fs.closeSync(fd);
    l.done();
  });

  it('derives maxConnections from the descriptor limit', () => {
    const limit = descriptorLimit();
    expect(limit).toBe(Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))![1]));
    expect(connectionsFor(4096)).toBe(1024);
    expect(connectionsFor(256)).toBe(64);
    expect(connectionsFor(2)).toBe(1);
    expect(connectionsFor(null)).toBe(1024);
    const l = listen();
    expect(l.listener.maxConnections).toBe(connectionsFor(limit));
    l.done();
  });

  it('stops accepting at the descriptor limit instead of spinning, logs it rate-limited, and resumes when descriptors come back', async () => {
    const N = 20;
    const l = listen();
    // A helper that will restore this process's soft RLIMIT_NOFILE: spawned now, because spawning
    // needs descriptors, and at the limit there are none.
    const orig = descriptorLimit()!;
    const helper = spawn('/bin/sh', ['-c', `read x; prlimit --pid ${process.pid} --nofile=${orig}:; echo ok`], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    helper.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    // All synchronous, so the listener accepts nothing before the limit is down: N pending
    // connections, then a soft limit with room for about three accepts.
    const clients = Array.from({ length: N }, () => native.connect(l.sock));
    const inUse = fs.readdirSync('/proc/self/fd').length; // includes the directory's own descriptor
    expect(spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${inUse + 3}:`]).status).toBe(0);
    const cpu0 = process.cpuUsage();
    const wall0 = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    const cpu = process.cpuUsage(cpu0);
    const wall = Date.now() - wall0;
    const accepted = l.conns.length;
    const failedWhileLow = l.lines.filter((x) => x.event === 'accept-failed');
    helper.stdin!.end('\n'); // restore the limit
    await until(() => out === 'ok\n');

    expect(accepted).toBeLessThan(N);
    expect(failedWhileLow.length).toBe(1); // the first failure; the rest are counted for the next line
    expect(failedWhileLow[0]).toMatchObject({ reason: 'EMFILE', level: 50, suppressed: 0 });
    expect((cpu.user + cpu.system) / 1000, `CPU ms over ${wall} ms at the limit`).toBeLessThan(wall * 0.2);
    await until(() => l.conns.length === N); // the pause ended by itself
    l.done(); // closing reports the failures not yet logged
    const failed = l.lines.filter((x) => x.event === 'accept-failed');
    expect(failed.length).toBe(2);
    expect(failed[1]!.suppressed).toBeGreaterThan(0);
    for (const fd of clients) fs.closeSync(fd);
  });
});

describe('RateLimited', () => {
  it('logs the first occurrence at once and the rest as one count at the end of the interval', async () => {
    const lines: [Record<string, unknown>, number][] = [];
    const r = new RateLimited(50, (fields, suppressed) => lines.push([fields, suppressed]));
    for (let i = 0; i < 1000; i++) r.hit({ n: i });
    expect(lines).toEqual([[{ n: 0 }, 0]]);
    await until(() => lines.length === 2);
    expect(lines[1]).toEqual([{ n: 999 }, 999]);
    r.flush(); // nothing counted: nothing logged
    expect(lines.length).toBe(2);
  });
});
