// The ClamAV check against a real clamd (Debian's, started by
// test/support/clamd.ts with a one-line database), over its local socket
// (FILDES) and over TCP (INSTREAM), plus fake servers for what a real clamd
// will not do on demand: answer like a stranger, or never answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as native from '@sluice/native';
import { CLAMD, Clamd, EICAR_SIGNATURE, HAVE_CLAMD, eicar, engineFor } from '../../../../test/support/clamd.js';
import { CheckUnavailable, runChecks, type CheckInput } from './check.js';
import { clamavCheck, interpretScanReply, interpretVersionReply } from './clamav.js';

const never = new AbortController().signal;

/** sealed - a CheckInput over a sealed memfd holding bytes, as transit has it. */
function sealed(bytes: Uint8Array, name = 'f.txt'): CheckInput {
  const w = native.memfdCreate('clamav-test');
  fs.writeSync(w, bytes);
  native.addSeals(w, native.ALL_SEALS);
  const fd = fs.openSync(`/proc/self/fd/${w}`, 'r');
  fs.closeSync(w);
  return { fd, size: bytes.length, sha256hex: 'a'.repeat(64), name };
}

/** withInput - run f on a sealed input and close it after. */
async function withInput<T>(bytes: Uint8Array, f: (input: CheckInput) => Promise<T>): Promise<T> {
  const input = sealed(bytes);
  try {
    return await f(input);
  } finally {
    fs.closeSync(input.fd);
  }
}

const openFds = () => fs.readdirSync('/proc/self/fd').length;

describe('interpretScanReply', () => {
  it.each([
    ['fd[10]: OK', { kind: 'clean' }],
    ['stream: OK', { kind: 'clean' }],
    ['fd[10]: Eicar-Test.UNOFFICIAL FOUND', { kind: 'infected', signature: 'Eicar-Test.UNOFFICIAL' }],
    ['stream: Win.Test.EICAR_HDB-1 FOUND', { kind: 'infected', signature: 'Win.Test.EICAR_HDB-1' }],
    ['fd[7]: Heuristics.Limits.Exceeded.MaxFileSize FOUND', { kind: 'limit', signature: 'Heuristics.Limits.Exceeded.MaxFileSize' }],
    ['fd[11]: Not a regular file ERROR', { kind: 'error', message: 'Not a regular file' }],
    ['INSTREAM size limit exceeded. ERROR', { kind: 'error', message: 'INSTREAM size limit exceeded.' }],
    ['UNKNOWN COMMAND', { kind: 'unsupported', message: 'UNKNOWN COMMAND' }],
    ['COMMAND UNAVAILABLE', { kind: 'unsupported', message: 'COMMAND UNAVAILABLE' }],
    // Only exactly OK is clean: near misses are never a pass.
    ['fd[10]: OK ', { kind: 'unexpected', reply: 'fd[10]: OK ' }],
    ['fd[10]: ok', { kind: 'unexpected', reply: 'fd[10]: ok' }],
    ['OK', { kind: 'unexpected', reply: 'OK' }],
    ['fd[10]:OK', { kind: 'unexpected', reply: 'fd[10]:OK' }],
    ['fd[10]: OK\nfd[11]: OK', { kind: 'unexpected', reply: 'fd[10]: OK\nfd[11]: OK' }],
    ['', { kind: 'unexpected', reply: '' }],
    ['fd[10]:  FOUND', { kind: 'unexpected', reply: 'fd[10]:  FOUND' }],
    ['PONG', { kind: 'unexpected', reply: 'PONG' }],
  ])('%j', (reply, want) => {
    expect(interpretScanReply(reply)).toEqual(want);
  });
});

describe('interpretVersionReply', () => {
  it.each([
    ['ClamAV 1.4.6', 'ClamAV 1.4.6'],
    ['ClamAV 1.4.6/27500/Tue Jan 14 09:30:00 2025', 'ClamAV 1.4.6/27500/Tue Jan 14 09:30:00 2025'],
    ['ClamAV 0.103.8', 'ClamAV 0.103.8'],
    ['COMMAND UNAVAILABLE', 'ClamAV (clamd, VERSION disabled in clamd.conf)'],
    ['PONG', null],
    ['', null],
    ['SSH-2.0-OpenSSH_9.2', null],
    ['ClamAV', null],
  ])('%j', (reply, want) => {
    expect(interpretVersionReply(reply)).toBe(want);
  });
});

describe('configuration', () => {
  it('refuses what cannot work, at start', () => {
    const base = { timeoutMs: 1000, maxConcurrent: 1, maxBytes: 10 };
    expect(() => clamavCheck({ ...base, socket: 'relative.sock' })).toThrow(/absolute path/);
    expect(() => clamavCheck({ ...base, host: 'bad host!' })).toThrow(/neither an IP address nor a host name/);
    expect(() => clamavCheck({ ...base, host: 'clamd.example', port: 0 })).toThrow(/port/);
    expect(() => clamavCheck({ ...base, socket: '/x', timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => clamavCheck({ ...base, socket: '/x', maxConcurrent: 0 })).toThrow(/max/);
    expect(clamavCheck({ ...base, host: '127.0.0.1', port: 3310 }).where).toBe('tcp:127.0.0.1:3310');
    expect(clamavCheck({ ...base, host: '::1', port: 3310 }).where).toBe('tcp:[::1]:3310');
    expect(clamavCheck({ ...base, socket: '/run/clamav/clamd.ctl' }).where).toBe('unix:/run/clamav/clamd.ctl');
  });

  it('a file over maxBytes is an error, never sent, never a pass', async () => {
    const check = clamavCheck({ socket: '/nonexistent/clamd.sock', timeoutMs: 1000, maxConcurrent: 1, maxBytes: 4 });
    const r = await withInput(Buffer.from('12345'), (input) => check.run(input, never));
    expect(r.outcome).toBe('error');
    expect(r.reason).toBe('not scanned: 5 bytes is more than transit.clamav.maxBytes (4)');
  });
});

describe('clamd not reachable: held for retry, never a pass', () => {
  it('no socket file (ENOENT) throws CheckUnavailable, and runChecks marks it retry', async () => {
    const check = clamavCheck({ socket: '/nonexistent/clamd.sock', timeoutMs: 1000, maxConcurrent: 1, maxBytes: 1000 });
    const before = openFds();
    await withInput(Buffer.from('hello'), async (input) => {
      await expect(check.run(input, never)).rejects.toThrow(CheckUnavailable);
      await expect(check.run(input, never)).rejects.toThrow(/cannot connect to clamd at \/nonexistent\/clamd.sock: ENOENT/);
      const out = await runChecks([check], input);
      expect(out).toMatchObject({ verdict: 'rejected', retry: true });
      expect(out.results[0]).toMatchObject({ name: 'clamav', outcome: 'error', retry: true });
    });
    expect(openFds()).toBe(before);
  });

  it('a stale socket file (ECONNREFUSED) too', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamav-'));
    const sock = path.join(dir, 'stale.sock');
    fs.closeSync(native.listen(sock, 0o600, 1)); // the file stays, nobody listens: what a crashed clamd leaves
    const check = clamavCheck({ socket: sock, timeoutMs: 1000, maxConcurrent: 1, maxBytes: 1000 });
    await withInput(Buffer.from('hello'), async (input) => {
      await expect(check.run(input, never)).rejects.toThrow(/ECONNREFUSED/);
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a server that never answers: CheckUnavailable after timeoutMs, before runChecks would give up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamav-'));
    const sock = path.join(dir, 'mute.sock');
    const conns: net.Socket[] = [];
    const srv = net.createServer((c) => conns.push(c));
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      const check = clamavCheck({ socket: sock, timeoutMs: 300, maxConcurrent: 1, maxBytes: 1000 });
      expect(check.timeoutMs).toBeGreaterThan(2 * 300);
      const before = openFds();
      await withInput(Buffer.from('hello'), async (input) => {
        const out = await runChecks([check], input);
        expect(out.retry).toBe(true);
        expect(out.results[0]!.reason).toBe(`unavailable: clamd at unix:${sock} did not answer within 300 ms`);
      });
      for (const c of conns.splice(0)) c.destroy(); // the server's ends live in this process too
      await new Promise((r) => setImmediate(r));
      expect(openFds()).toBe(before);
    } finally {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a scan clamd never finishes, though it answers VERSION: an error (rejected, not held for ever), its connection closed, its slot given back', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamav-'));
    const sock = path.join(dir, 'stuck.sock');
    const scans: net.Socket[] = [];
    let closed = 0;
    // Answers VERSION at once; takes every scan request and never answers it.
    const srv = net.createServer((c) => {
      c.once('data', (d) => {
        if (d.toString().startsWith('zVERSION')) {
          c.end('ClamAV 9.9.9\0');
          return;
        }
        scans.push(c);
        c.on('close', () => closed++);
        c.resume();
      });
    });
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      const check = clamavCheck({ socket: sock, timeoutMs: 300, maxConcurrent: 1, maxBytes: 1000 });
      const before = openFds();
      await withInput(Buffer.from('a file clamd chokes on'), async (input) => {
        const out = await runChecks([check], input);
        expect(out.retry).toBe(false);
        expect(out.verdict).toBe('rejected');
        expect(out.results[0]).toMatchObject({ outcome: 'error', reason: 'scan error: clamd did not finish scanning the file within 300 ms, though it answers', engine: 'ClamAV 9.9.9' });
      });
      // Our end of the scan's connection is closed: the server sees it go.
      for (let i = 0; i < 500 && closed < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect([scans.length, closed]).toEqual([1, 1]);
      // The one slot is free again: the next file's scan reaches clamd (it does not wait for a slot).
      await withInput(Buffer.from('the next file'), async (input) => {
        const r = await check.run(input, never);
        expect(r).toMatchObject({ outcome: 'error', engine: 'ClamAV 9.9.9' });
      });
      for (let i = 0; i < 500 && closed < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect([scans.length, closed]).toEqual([2, 2]);
      for (const c of scans) c.destroy(); // the server's ends live in this process too
      for (let i = 0; i < 500 && openFds() !== before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(openFds()).toBe(before);
    } finally {
      for (const c of scans) c.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stranger at the socket (not clamd) is unavailable, not a pass', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamav-'));
    const sock = path.join(dir, 'stranger.sock');
    // resume(): a paused server socket would never read our EOF, and close() would wait for it.
    const srv = net.createServer((c) => c.resume().end('220 smtp.example ESMTP\r\n'));
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      const check = clamavCheck({ socket: sock, timeoutMs: 2000, maxConcurrent: 1, maxBytes: 1000 });
      await withInput(Buffer.from('hello'), async (input) => {
        await expect(check.run(input, never)).rejects.toThrow(CheckUnavailable);
      });
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('at most maxConcurrent scans reach clamd at once; scans that cannot finish in time are never passed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-clamav-'));
    const sock = path.join(dir, 'slow.sock');
    let open = 0;
    let most = 0;
    const conns: net.Socket[] = [];
    // Answers VERSION at once and holds every other request until told to.
    const srv = net.createServer((c) => {
      c.once('data', (d) => {
        if (d.toString().startsWith('zVERSION')) {
          c.end('ClamAV 9.9.9\0');
          return;
        }
        // A scan request: count the scans in progress at once.
        open++;
        most = Math.max(most, open);
        c.on('close', () => open--);
        conns.push(c);
      });
    });
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      const check = clamavCheck({ socket: sock, timeoutMs: 2000, maxConcurrent: 2, maxBytes: 1000 });
      const inputs = [sealed(Buffer.from('a')), sealed(Buffer.from('b')), sealed(Buffer.from('c'))];
      const runs = inputs.map((input) => check.run(input, never).then((r) => r, (e: unknown) => e));
      // Two scans are held by the server; the third must not have connected.
      for (let i = 0; i < 200 && conns.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(conns.length).toBe(2);
      for (const c of conns.splice(0)) c.end('fd[5]: OK\0');
      // The third now gets a slot and is held too; release it.
      for (let i = 0; i < 200 && conns.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      for (const c of conns.splice(0)) c.end('fd[5]: OK\0');
      const results = await Promise.all(runs);
      for (const r of results) expect(r).toEqual({ outcome: 'pass', reason: 'no signature matched', engine: 'ClamAV 9.9.9' });
      expect(most).toBeLessThanOrEqual(2);
      for (const input of inputs) fs.closeSync(input.fd);

      // One slot, and a server that holds every scan (but answers VERSION): the
      // first scan times out while clamd still answers, so that file is an error.
      // The second either gives up waiting for the slot (held: CheckUnavailable;
      // slots.test.ts pins the slot wait down) or gets it and times out the same
      // way. Never a pass.
      const one = clamavCheck({ socket: sock, timeoutMs: 200, maxConcurrent: 1, maxBytes: 1000 });
      const a = sealed(Buffer.from('a'));
      const b = sealed(Buffer.from('b'));
      const first = one.run(a, never).then((r) => r, (e: unknown) => e);
      for (let i = 0; i < 200 && conns.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
      const second = one.run(b, never).then((r) => r, (e: unknown) => e);
      expect(await first).toMatchObject({ outcome: 'error', reason: 'scan error: clamd did not finish scanning the file within 200 ms, though it answers' });
      const err = await second;
      if (err instanceof CheckUnavailable) expect(err.message).toMatch(/scan slots stayed busy/);
      else expect(err).toMatchObject({ outcome: 'error' });
      for (const c of conns.splice(0)) c.destroy();
      fs.closeSync(a.fd);
      fs.closeSync(b.fd);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const NO_CLAMD = HAVE_CLAMD ? '' : ` (skipped: ${CLAMD} missing; apt-get install clamav-daemon)`;

describe.skipIf(!HAVE_CLAMD)(`a real clamd over its local socket (FILDES)${NO_CLAMD}`, () => {
  let clamd: Clamd;
  beforeAll(async () => {
    clamd = await Clamd.create({ maxFileSize: '1M' });
    await clamd.start();
  });
  afterAll(async () => {
    await clamd?.destroy();
  });
  const check = () => clamavCheck({ socket: clamd.socket, timeoutMs: 20_000, maxConcurrent: 2, maxBytes: 4 * 1024 * 1024 });

  it('a clean file passes; the engine is clamd\'s VERSION', async () => {
    const r = await withInput(Buffer.from('just some text\n'), (input) => check().run(input, never));
    expect(r).toEqual({ outcome: 'pass', reason: 'no signature matched', engine: 'ClamAV 1.4.6' });
  });

  it('EICAR fails with the signature name, alone or in the middle of a larger file', async () => {
    const plain = await withInput(eicar(), (input) => check().run(input, never));
    expect(plain).toMatchObject({ outcome: 'fail', reason: `infected: ${EICAR_SIGNATURE}` });
    const embedded = Buffer.concat([Buffer.alloc(200_000, 'a'), eicar(), Buffer.alloc(200_000, 'b')]);
    const r = await withInput(embedded, (input) => check().run(input, never));
    expect(r).toMatchObject({ outcome: 'fail', reason: `infected: ${EICAR_SIGNATURE}` });
  });

  it('a file past clamd\'s MaxFileSize is a scan error (AlertExceedsMax), not clean', async () => {
    const r = await withInput(Buffer.alloc(1536 * 1024, 'x'), (input) => check().run(input, never));
    expect(r.outcome).toBe('error');
    expect(r.reason).toMatch(/^scan error: clamd stopped at a limit \(Heuristics\.Limits\.Exceeded\.MaxFileSize\)/);
  });

  it('a descriptor clamd cannot scan (a pipe) is a scan error', async () => {
    const [rd, wr] = pipe();
    try {
      const r = await check().run({ fd: rd, size: 1, sha256hex: 'a'.repeat(64), name: 'p' }, never);
      expect(r).toMatchObject({ outcome: 'error', reason: 'scan error: Not a regular file' });
    } finally {
      fs.closeSync(rd);
      fs.closeSync(wr);
    }
  });

  it('many scans at once all get their own answer, and no descriptor leaks', async () => {
    const c = check();
    const before = openFds();
    const inputs = Array.from({ length: 12 }, (_, i) => sealed(i % 3 === 0 ? eicar() : Buffer.from(`clean ${i}\n`)));
    const results = await Promise.all(inputs.map((input) => c.run(input, never)));
    results.forEach((r, i) => expect(r.outcome, `file ${i}`).toBe(i % 3 === 0 ? 'fail' : 'pass'));
    for (const input of inputs) fs.closeSync(input.fd);
    expect(openFds()).toBe(before);
  });

  it('waitUntilUp: waits with backoff while clamd is down, logs, and returns once it answers', async () => {
    await clamd.stop();
    const lines: { level: string; obj: Record<string, unknown> }[] = [];
    const log = {
      info: (obj: object) => lines.push({ level: 'info', obj: obj as Record<string, unknown> }),
      warn: (obj: object) => lines.push({ level: 'warn', obj: obj as Record<string, unknown> }),
    };
    const ac = new AbortController();
    const waiting = check().waitUntilUp(log, ac.signal);
    for (let i = 0; i < 200 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(lines[0]).toMatchObject({ level: 'warn', obj: { event: 'scanner-waiting', scanner: 'clamav', attempt: 1 } });
    // Meanwhile a scan is held, not passed.
    await withInput(Buffer.from('x'), async (input) => {
      await expect(check().run(input, never)).rejects.toThrow(CheckUnavailable);
    });
    await clamd.start();
    expect(await waiting).toBe(true);
    expect(lines.at(-1)).toMatchObject({ level: 'info', obj: { event: 'scanner-ready', engine: 'ClamAV 1.4.6' } });
  });

  it('waitUntilUp ends (false) when transit stops before clamd is up', async () => {
    const c = clamavCheck({ socket: '/nonexistent/clamd.sock', timeoutMs: 1000, maxConcurrent: 1, maxBytes: 1 });
    const ac = new AbortController();
    const waiting = c.waitUntilUp({ info() {}, warn() {} }, ac.signal);
    ac.abort();
    expect(await waiting).toBe(false);
  });
});

describe.skipIf(!HAVE_CLAMD)(`a real clamd over TCP (INSTREAM)${NO_CLAMD}`, () => {
  let clamd: Clamd;
  beforeAll(async () => {
    clamd = await Clamd.create({ tcp: true, streamMaxLength: '1M' });
    await clamd.start();
  });
  afterAll(async () => {
    await clamd?.destroy();
  });
  // maxBytes deliberately above StreamMaxLength, to see what clamd does past it.
  const check = () => clamavCheck({ host: '127.0.0.1', port: clamd.port, timeoutMs: 20_000, maxConcurrent: 2, maxBytes: 8 * 1024 * 1024 });

  it('clean passes, EICAR in the middle of a file fails with the signature, an empty file passes', async () => {
    expect(await withInput(Buffer.from('clean\n'), (i) => check().run(i, never))).toEqual({ outcome: 'pass', reason: 'no signature matched', engine: 'ClamAV 1.4.6' });
    const embedded = Buffer.concat([Buffer.alloc(300_000, 'a'), eicar(), Buffer.alloc(300_000, 'b')]);
    expect(await withInput(embedded, (i) => check().run(i, never))).toMatchObject({ outcome: 'fail', reason: `infected: ${EICAR_SIGNATURE}` });
    expect(await withInput(Buffer.alloc(0), (i) => check().run(i, never))).toMatchObject({ outcome: 'pass' });
  });

  it('a stream over StreamMaxLength is a scan error (clamd is up, so it refused the file), never a pass or a retry', async () => {
    for (let i = 0; i < 3; i++) {
      // Whether the reply survives the reset varies from run to run (facts.md); both ways must end the same.
      const r = await withInput(Buffer.alloc(3 * 1024 * 1024, 'z'), (input) => check().run(input, never));
      expect(r.outcome).toBe('error');
      expect(r.reason).toMatch(/^scan error: (INSTREAM size limit exceeded|clamd at 127\.0\.0\.1:\d+ (broke|closed) the connection)/);
    }
  });

  it('nobody listening on the port is unavailable', async () => {
    const dead = clamavCheck({ host: '127.0.0.1', port: clamd.port, timeoutMs: 2000, maxConcurrent: 1, maxBytes: 10 });
    await clamd.stop();
    try {
      await withInput(Buffer.from('x'), async (input) => {
        await expect(dead.run(input, never)).rejects.toThrow(/cannot connect to clamd at 127\.0\.0\.1:\d+: ECONNREFUSED/);
      });
    } finally {
      await clamd.start();
    }
  });
});

describe.skipIf(!HAVE_CLAMD)(`a real clamd with a versioned signature database${NO_CLAMD}`, () => {
  // Like Debian's official databases: VERSION says "ClamAV 1.4.6/<db version>/<db date>".
  const DB_VERSION = 27514;
  let clamd: Clamd;
  beforeAll(async () => {
    clamd = await Clamd.create({ tcp: true, dbVersion: DB_VERSION });
    await clamd.start();
  });
  afterAll(async () => {
    await clamd?.destroy();
  });

  it('every result names the engine and the signature database version, over FILDES and INSTREAM alike', async () => {
    const local = clamavCheck({ socket: clamd.socket, timeoutMs: 20_000, maxConcurrent: 1, maxBytes: 1024 * 1024 });
    const remote = clamavCheck({ host: '127.0.0.1', port: clamd.port, timeoutMs: 20_000, maxConcurrent: 1, maxBytes: 1024 * 1024 });
    for (const check of [local, remote]) {
      const clean = await withInput(Buffer.from('clean\n'), (i) => check.run(i, never));
      expect(clean).toMatchObject({ outcome: 'pass', reason: 'no signature matched' });
      expect(clean.engine).toMatch(engineFor(DB_VERSION));
      const bad = await withInput(Buffer.concat([Buffer.alloc(1000, 'a'), eicar()]), (i) => check.run(i, never));
      expect(bad).toMatchObject({ outcome: 'fail', reason: `infected: ${EICAR_SIGNATURE}` });
      expect(bad.engine).toMatch(engineFor(DB_VERSION));
    }
  });
});

/** pipe - a FIFO opened both ways: a descriptor that is not a regular file (Node has no pipe()). */
function pipe(): [number, number] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-fifo-'));
  const p = path.join(dir, 'fifo');
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${String(r.stderr)}`);
  const rd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(p, fs.constants.O_WRONLY);
  fs.rmSync(dir, { recursive: true, force: true });
  return [rd, wr];
}
