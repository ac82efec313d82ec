/*
 * NAME
 *   clamd - a private clamd, for the benchmark and the tests; and clamd's
 *   own FILDES scan rate
 *
 * SYNOPSIS
 *   import { writeClamdConf, ClamdProcess, ask, BenchClamd, HAVE_CLAMD } from './clamd.mjs';
 *
 *   const { socket, conf, db } = writeClamdConf(dir, { socketMode: '600', threads: 4, lines: [] });
 *   // ... the caller writes its signature database into db ...
 *   const p = await ClamdProcess.start(conf, socket);  // resolves once clamd answers PING
 *   await ask(socket, 'VERSION');
 *   await p.stop();
 *
 *   const c = await BenchClamd.start(dir, { threads: 4 });
 *   const r = await c.fildesRate(paths, 4);   // { seconds, files, bytes, mbps }
 *   await c.stop();
 *
 * DESCRIPTION
 *   A private clamd is Debian's /usr/sbin/clamd in the foreground with its
 *   own clamd.conf, socket, database directory, log and pid file, all in
 *   one directory: nothing of the machine's own clamav configuration is
 *   used or touched. clamd refuses to start without a database; what goes
 *   into `db` is the caller's. test/support/clamd.ts builds the tests'
 *   clamd on writeClamdConf and ClamdProcess (it has a .d.mts beside it).
 *
 *   BenchClamd is the benchmark's: one .ndb signature of 32 random bytes
 *   (fresh each run) that none of the benchmark's inputs contain. Scanning
 *   cost then is clamd's parsing and matching machinery with a minimal
 *   database: an optimistic rate, faster than with the official databases,
 *   so the ratio against it is a strict one. clamd's cache of clean files
 *   is off (DisableCache): both measurements scan the same files, and the
 *   second must not be a cache lookup.
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
 * DIAGNOSTICS
 *   ClamdProcess.start throws with the tail of clamd's output when clamd
 *   exits, or does not answer PING within CLAMD_START_MS (it is killed then).
 *
 * SECURITY
 *   clamd runs as the invoking user, listening only on a socket in `dir`
 *   (and on a TCP address only if the caller's `lines` ask for one).
 */
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export const CLAMD = '/usr/sbin/clamd';
export const PYTHON = '/usr/bin/python3';
export const HAVE_CLAMD = fs.existsSync(CLAMD) && fs.existsSync(PYTHON);

/** How long clamd may take to answer its first PING (a one-line database takes about 0.1 s). */
export const CLAMD_START_MS = 30_000;
/** How long clamd may take to exit after SIGTERM before it gets SIGKILL. */
export const CLAMD_STOP_MS = 10_000;
/** How much of clamd's stdout and stderr is kept for error messages (characters, the latest). */
const OUTPUT_TAIL = 4000;

/**
 * writeClamdConf - `dir`/clamd.conf for a private clamd: socket, database
 * directory (created, empty), log and pid file in `dir`; `lines` are added
 * as they are. Returns the paths.
 */
export function writeClamdConf(dir, { socketMode, threads, lines = [] }) {
  const db = path.join(dir, 'db');
  fs.mkdirSync(db, { recursive: true });
  const socket = path.join(dir, 'clamd.sock');
  const conf = path.join(dir, 'clamd.conf');
  const all = [
    'Foreground yes',
    `LocalSocket ${socket}`,
    `LocalSocketMode ${socketMode}`,
    'FixStaleSocket yes',
    `DatabaseDirectory ${db}`,
    `LogFile ${path.join(dir, 'clamd.log')}`,
    `PidFile ${path.join(dir, 'clamd.pid')}`,
    // Without this clamd answers OK for what it did not scan past its limits.
    'AlertExceedsMax yes',
    `MaxThreads ${threads}`,
    'SelfCheck 3600',
    ...lines,
  ];
  fs.writeFileSync(conf, `${all.join('\n')}\n`);
  return { socket, conf, db };
}

/** ask - one z-command over the local socket (Node's net can speak it; it just cannot pass descriptors). */
export function ask(socketPath, command, timeoutMs = 2000) {
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

/** ClamdProcess - one running clamd, started from a clamd.conf; its pid, the tail of its output, signals, stop. */
export class ClamdProcess {
  /** start - run clamd with `conf` and wait until it answers PING on `socket`. */
  static async start(conf, socket) {
    const p = new ClamdProcess(spawn(CLAMD, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const end = Date.now() + CLAMD_START_MS;
    for (;;) {
      if (p.child.exitCode !== null) throw new Error(`clamd exited (${p.child.exitCode}): ${p.output}`);
      try {
        if ((await ask(socket, 'PING', 500)) === 'PONG') return p;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > end) {
        await p.stop();
        throw new Error(`clamd did not answer PING: ${p.output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  constructor(child) {
    this.child = child;
    this.output = '';
    for (const s of [child.stdout, child.stderr]) s.setEncoding('utf8').on('data', (d) => (this.output = (this.output + d).slice(-OUTPUT_TAIL)));
  }

  get pid() {
    return this.child.pid;
  }

  /** signal - send `sig` (e.g. SIGSTOP, SIGCONT) if clamd is still running. */
  signal(sig) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
  }

  /** stop - SIGCONT (in case it is stopped), SIGTERM, SIGKILL after CLAMD_STOP_MS; resolves once it exited. */
  async stop() {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), CLAMD_STOP_MS);
    await exited;
    clearTimeout(t);
  }
}

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

export class BenchClamd {
  /** start - a private clamd with a one-signature database under dir, answering PING. */
  static async start(dir, { threads = 4 } = {}) {
    const { socket, conf, db } = writeClamdConf(dir, {
      socketMode: '600',
      threads,
      // clamd remembers files it found clean (by MD5) and does not scan them again; the
      // benchmark scans the same files twice (clamd alone, then through Sluice), so without
      // this the second pass would measure a cache lookup.
      lines: ['DisableCache yes'],
    });
    fs.writeFileSync(path.join(db, 'bench.ndb'), `Sluice-Bench-Nothing:0:*:${randomBytes(32).toString('hex')}\n`);
    const c = new BenchClamd(dir, socket, await ClamdProcess.start(conf, socket));
    c.version = await ask(socket, 'VERSION');
    return c;
  }

  constructor(dir, socket, clamd) {
    this.dir = dir;
    this.socket = socket;
    this.process = clamd;
    this.version = '';
  }

  get pid() {
    return this.process.pid;
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

  /** stop - stop clamd and wait for it. */
  stop() {
    return this.process.stop();
  }
}
