/*
 * NAME
 *   clamd - a private clamd for the benchmark, and clamd's own FILDES scan rate
 *
 * SYNOPSIS
 *   import { HAVE_CLAMD, BenchClamd } from './clamd.mjs';
 *   const c = await BenchClamd.start(dir, { threads: 4 });
 *   const r = await c.fildesRate(paths, 4);   // { seconds, files, bytes, mbps }
 *   await c.stop();
 *
 * DESCRIPTION
 *   Debian's /usr/sbin/clamd in the foreground with its own clamd.conf,
 *   socket and database in `dir`. clamd refuses to start without a
 *   database, so it gets one .ndb signature: 32 random bytes (fresh each
 *   run) that none of the benchmark's inputs contain. Scanning cost then is
 *   clamd's parsing and matching machinery with a minimal database: an
 *   optimistic rate, faster than with the official databases, so the ratio
 *   against it is a strict one. clamd's cache of clean files is off
 *   (DisableCache): both measurements scan the same files, and the second
 *   must not be a cache lookup.
 *
 *   fildesRate measures clamd alone: for each file, one connection,
 *   "zFILDES\0", then one byte carrying the file's read-only descriptor in
 *   SCM_RIGHTS, and the reply, with `concurrency` scans in flight, the
 *   way transit's check talks to clamd (packages/transit/src/checks/clamav.ts)
 *   but without Sluice around it. The client is a short Python script
 *   (/usr/bin/python3, standard library: socket.sendmsg passes descriptors;
 *   Node's net cannot), so no Sluice code is on this side of the
 *   comparison. Every reply must be "fd[N]: OK"; anything else is an error,
 *   because a rate of failed scans means nothing.
 *
 * SECURITY
 *   clamd runs as the invoking user, listening only on a socket in `dir`.
 */
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const CLAMD = '/usr/sbin/clamd';
export const PYTHON = '/usr/bin/python3';
export const HAVE_CLAMD = fs.existsSync(CLAMD) && fs.existsSync(PYTHON);

/** The FILDES client: argv = socket, concurrency, files...; prints one JSON line. */
const FILDES_CLIENT = String.raw`
import array, json, os, socket, sys, threading, time
sock, conc, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def scan(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"zFILDES\0")
        s.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        reply = b""
        while not reply.endswith(b"\0"):
            d = s.recv(4096)
            if not d:
                break
            reply += d
        s.close()
        return reply.rstrip(b"\0").decode("utf-8", "replace")
    finally:
        os.close(fd)
bad = []
queue = list(files)
lock = threading.Lock()
def worker():
    while True:
        with lock:
            if not queue:
                return
            p = queue.pop(0)
        r = scan(p)
        if not (r.startswith("fd[") and r.endswith(": OK")):
            with lock:
                bad.append(p + ": " + r)
scan(files[0])  # warm-up: clamd's first scan pays for lazy initialisation
t0 = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(conc)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"seconds": time.monotonic() - t0, "bad": bad[:5]}))
`;

/** ask - one z-command over the local socket; resolves with the reply. */
function ask(socketPath, command, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socketPath });
    let got = '';
    const timer = setTimeout(() => s.destroy(new Error('timeout')), timeoutMs);
    s.on('connect', () => s.write(`z${command}\0`));
    s.setEncoding('utf8').on('data', (d) => (got += d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got.replace(/\0$/, ''));
    });
  });
}

export class BenchClamd {
  /** start - write clamd.conf and a one-signature database under dir, start clamd, wait for PONG. */
  static async start(dir, { threads = 4 } = {}) {
    fs.mkdirSync(path.join(dir, 'db'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'db', 'bench.ndb'), `Sluice-Bench-Nothing:0:*:${randomBytes(32).toString('hex')}\n`);
    const socket = path.join(dir, 'clamd.sock');
    const conf = path.join(dir, 'clamd.conf');
    fs.writeFileSync(
      conf,
      [
        'Foreground yes',
        `LocalSocket ${socket}`,
        'LocalSocketMode 600',
        'FixStaleSocket yes',
        `DatabaseDirectory ${path.join(dir, 'db')}`,
        `LogFile ${path.join(dir, 'clamd.log')}`,
        `PidFile ${path.join(dir, 'clamd.pid')}`,
        'AlertExceedsMax yes',
        // clamd remembers files it found clean (by MD5) and does not scan them again; the
        // benchmark scans the same files twice (clamd alone, then through Sluice), so without
        // this the second pass would measure a cache lookup.
        'DisableCache yes',
        `MaxThreads ${threads}`,
        'SelfCheck 3600',
        '',
      ].join('\n'),
    );
    const c = new BenchClamd(dir, socket, spawn(CLAMD, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const end = Date.now() + 30_000;
    for (;;) {
      if (c.child.exitCode !== null) throw new Error(`clamd exited (${c.child.exitCode}): ${c.output}`);
      try {
        if ((await ask(socket, 'PING', 500)) === 'PONG') break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > end) throw new Error(`clamd did not answer PING: ${c.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    c.version = await ask(socket, 'VERSION');
    return c;
  }

  constructor(dir, socket, child) {
    this.dir = dir;
    this.socket = socket;
    this.child = child;
    this.output = '';
    this.version = '';
    for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (d) => (this.output = (this.output + d).slice(-4000)));
  }

  get pid() {
    return this.child.pid;
  }

  /** fildesRate - clamd alone scanning `paths` by FILDES, `concurrency` at once. */
  fildesRate(paths, concurrency) {
    const bytes = paths.reduce((n, p) => n + fs.statSync(p).size, 0);
    return new Promise((resolve, reject) => {
      execFile(PYTHON, ['-c', FILDES_CLIENT, this.socket, String(concurrency), ...paths], { timeout: 300_000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`FILDES client failed: ${err.message} ${stderr}`));
        const r = JSON.parse(stdout);
        if (r.bad.length) return reject(new Error(`clamd did not answer OK: ${r.bad.join('; ')}`));
        resolve({ seconds: r.seconds, files: paths.length, bytes, mbps: bytes / r.seconds / 1e6 });
      });
    });
  }

  /** stop - SIGTERM and wait. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  }
}
