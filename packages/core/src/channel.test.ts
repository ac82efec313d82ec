import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { Connector, Listener, PendingAcks, type Connection } from './channel.js';

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
