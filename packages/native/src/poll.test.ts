// poll(): readiness on the Node event loop via uv_poll. In this process for the
// callbacks; in child processes for "does a stopped/closed/collected Poller
// let the process exit by itself", which only a real process can answer.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { child, HELPERS, tempDir, waitFor } from '../test-helpers/harness.mjs';

const { constants: C } = native;
const R = C.POLL_READABLE;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let fds: number[] = [];
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => {
  fds.forEach((fd) => fs.closeSync(fd));
  fds = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

// pair - [client, server] of a fresh connection, closed after the test.
function pair(): [number, number] {
  const lfd = native.listen(path.join(dir, `p${fds.length}`), 0o600, 1);
  const c = native.connect(path.join(dir, `p${fds.length}`));
  const s = native.accept(lfd);
  fds.push(lfd, c, s);
  return [c, s];
}

// recorder - a poll callback that records each call.
function recorder() {
  const calls: Array<[number, number]> = [];
  return { calls, cb: (status: number, events: number) => void calls.push([status, events]) };
}

describe('poll in this process', () => {
  it('calls back when the socket becomes readable', async () => {
    const [c, s] = pair();
    const got = waitFor(s);
    await sleep(20);
    native.send(c, Buffer.from('wake'), -1);
    expect((await got) & R).toBe(R);
    expect(native.recv(s, 16)!.data.toString()).toBe('wake');
  });

  it('reports writable at once on a connected socket', async () => {
    const [c] = pair();
    expect((await waitFor(c, C.POLL_WRITABLE)) & C.POLL_WRITABLE).toBe(C.POLL_WRITABLE);
  });

  it('reports POLL_DISCONNECT when the peer goes away', async () => {
    const [c, s] = pair();
    const got = waitFor(s, R | C.POLL_DISCONNECT);
    fs.closeSync(c);
    fds = fds.filter((fd) => fd !== c);
    expect((await got) & C.POLL_DISCONNECT).toBe(C.POLL_DISCONNECT);
  });

  it('stop() silences it, start() resumes it, close() ends it for good', async () => {
    const [c, s] = pair();
    const { calls, cb } = recorder();
    const p = native.poll(s, cb);
    p.start(R);
    p.stop();
    native.send(c, Buffer.from('x'), -1);
    await sleep(50);
    expect(calls).toEqual([]);
    p.start(R);
    await sleep(50);
    expect(calls.length).toBeGreaterThan(0); // level-triggered: the record is still there
    expect(calls[0]).toEqual([0, R]);
    p.close();
    const n = calls.length;
    await sleep(50);
    expect(calls.length).toBe(n);
    p.close(); // idempotent
    p.stop(); // harmless after close
    expect(() => p.start(R)).toThrow(expect.objectContaining({ code: 'ERR_POLLER_CLOSED' }));
  });

  it('the descriptor is free for a new Poller once the old one is closed', async () => {
    const [c, s] = pair();
    const first = native.poll(s, () => {});
    first.start(R);
    expect(() => native.poll(s, () => {}).start(R)).toThrow(); // libuv: one watcher per fd
    first.close();
    const got = waitFor(s);
    native.send(c, Buffer.from('y'), -1);
    expect((await got) & R).toBe(R);
  });

  it('refuses descriptors epoll cannot watch (a regular file: EPERM)', () => {
    const fd = native.memfdCreate('not-pollable');
    fds.push(fd);
    expect(() => native.poll(fd, () => {})).toThrow(
      expect.objectContaining({ code: 'EPERM', syscall: 'uv_poll_init', errno: -1 }),
    );
  });

  it('a Poller keeps its callback private and cannot be forged', () => {
    const [, s] = pair();
    const p = native.poll(s, () => {});
    expect(Object.keys(p)).toEqual([]);
    const Poller = Object.getPrototypeOf(p).constructor;
    expect(() => new Poller()).toThrow(TypeError);
    expect(() => p.start.call({}, R)).toThrow(TypeError);
    expect(() => p.stop.call(undefined)).toThrow(TypeError);
    expect(() => Object.getPrototypeOf(p).close()).toThrow(TypeError);
    p.close();
  });
});

describe('a process with a Poller exits by itself unless the Poller is active', () => {
  // run - poll-exit.mjs MODE; the events it printed and how it ended.
  async function run(mode: string, { gc = false, killAfter = 0 } = {}) {
    const args = [...(gc ? ['--expose-gc'] : []), path.join(HELPERS, 'poll-exit.mjs'), dir, mode];
    const c = child([process.execPath, ...args]);
    const timer = setTimeout(() => c.proc.kill('SIGKILL'), killAfter || 10_000);
    const res = await c.done;
    clearTimeout(timer);
    const events = res.stdout.trim().split('\n').filter(Boolean).map((l: string) => JSON.parse(l));
    return { ...res, events, names: events.map((e: any) => e.event) };
  }

  it.each(['never-started', 'stopped', 'closed'])('%s: exits, no callback', async (mode) => {
    const r = await run(mode);
    expect(r.code, r.stderr).toBe(0);
    expect(r.names).not.toContain('callback');
    expect(r.names[r.names.length - 1]).toBe('exit');
  });

  it('active (the control case): calls back and keeps the process alive', async () => {
    const r = await run('active', { killAfter: 1500 });
    expect(r.signal).toBe('SIGKILL');
    expect(r.events).toContainEqual({ event: 'callback', data: 'ping' });
    expect(r.names).not.toContain('exit');
  });

  it.each(['close-in-cb', 'stop-in-cb'])('%s: one callback, then exits', async (mode) => {
    const r = await run(mode);
    expect(r.code, r.stderr).toBe(0);
    expect(r.names).toEqual(['callback', 'exit']);
    expect(r.events[0]).toEqual({ event: 'callback', status: 0, events: R, data: 'ping' });
  });

  it('gc-active: an active Poller nobody references is not collected and still calls back', async () => {
    const r = await run('gc-active', { gc: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.names).toEqual(['callback', 'exit']);
  });

  it('gc-stopped: a stopped, unreferenced Poller is collected, its handle released, and the process exits', async () => {
    const r = await run('gc-stopped', { gc: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.names).toEqual(['collected', 'exit']);
  });

  it('throw-in-cb: an exception from the callback surfaces as uncaughtException', async () => {
    const r = await run('throw-in-cb');
    expect(r.code, r.stderr).toBe(0);
    expect(r.events).toContainEqual({ event: 'uncaught', message: 'boom from callback' });
  });

  it('worker threads that exit or are terminated (even mid-callback) with live Pollers tear down cleanly', async () => {
    // Without the async cleanup hook, a close callback queued at teardown ran
    // after the worker had unloaded the addon: SIGSEGV.
    const r = await child([process.execPath, path.join(HELPERS, 'poll-worker.mjs'), dir]).done;
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l: string) => JSON.parse(l));
    expect(lines.pop()).toEqual({ done: true });
    expect(lines.map((l: any) => l.mode)).toEqual(['exit', 'terminate', 'terminate-in-cb', 'exit', 'terminate']);
    for (const l of lines) expect(l.callbacks).toBe(1);
  });
});
