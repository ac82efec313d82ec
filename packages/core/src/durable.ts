/*
 * NAME
 *   durable - small filesystem steps that survive a crash
 *
 * SYNOPSIS
 *   ensureDir(path, 0o700);                   // create, or check owner and tighten mode
 *   fsyncDir(path);
 *   writeDurable(dir, name, data, 0o600);     // tmp file, fsync, rename, fsync dir
 *
 *   await fsyncFd(fd);                        // the same steps through libuv's threadpool,
 *   await fsyncDirShared(path);               //   directory fsyncs shared between callers
 *   const f = new SharedFlush(() => fdatasyncFd(fd)); await f.request();   // group commit
 *   await writeDurableAsync(dir, name, data, 0o600);
 *   await openFd(path, flags, mode); await closeFd(fd); await unlinkFile(path);
 *
 * DESCRIPTION
 *   "Durable" means: after the call returns, a power cut leaves either the
 *   old state or the new one, never a torn file. Temporary files are named
 *   `.tmp-*` so a restarting stage can recognise and remove its leftovers.
 *
 *   The synchronous steps block the event loop for a whole disk flush, so a
 *   stage that uses them handles one durable step at a time (seven flushes
 *   per file in egress, five in ingress). The async variants run the fsync
 *   on the threadpool, so several transfers' flushes are in flight at once
 *   and a journalling filesystem commits them together (ext4's jbd2 joins
 *   concurrent fsyncs into one commit); on ext4 without a journal there is
 *   no commit to share (docs/performance.md, "Standing decisions").
 *
 *   fsyncDirShared goes further for directories: while an fsync of a
 *   directory is running, every new request for it waits for the *next*
 *   fsync, which starts when the running one ends and serves all of them.
 *   A request is never answered by an fsync that began before the request
 *   (that one may have missed its entry), so every caller still gets its own
 *   durability before it acks; only the number of flushes shrinks.
 *
 *   openFd, closeFd and unlinkFile are open(2), close(2) and unlink(2) on the
 *   threadpool, for the calls that can take milliseconds: creating a file
 *   (on ext4 without a journal the inode allocator steps over every inode
 *   freed in the last minute), and the last close or unlink of a file, which
 *   frees its blocks (with `-o discard`, waiting for the disk) or a memfd's
 *   pages.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

export const TMP_PREFIX = '.tmp-';

/** fsyncDir - make a directory's entries (creations, renames, unlinks) durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** ensureDir - create a directory with `mode`, or insist an existing one is ours and tighten it to `mode`. */
export function ensureDir(dir: string, mode: number): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (st.uid !== process.getuid!()) {
    throw new Error(`${dir} is owned by uid ${st.uid}, not by this stage (uid ${process.getuid!()})`);
  }
  if ((st.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
}

const TMP_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
// randomUUID draws from a cache that node:crypto fills for many names at once (randomBytes: one call, and a getpid, each).
const temporaryName = (dir: string) => path.join(dir, `${TMP_PREFIX}${randomUUID()}`);

/** createTemporary - a new `.tmp-*` file in dir with data written (not yet flushed), still open. */
function createTemporary(dir: string, data: string | Uint8Array, mode: number): { tmp: string; fd: number } {
  const tmp = temporaryName(dir);
  return fillTemporary(tmp, fs.openSync(tmp, TMP_FLAGS, mode), data);
}

/** createTemporaryAsync - createTemporary with the creation on the threadpool (openFd). */
async function createTemporaryAsync(dir: string, data: string | Uint8Array, mode: number): Promise<{ tmp: string; fd: number }> {
  const tmp = temporaryName(dir);
  return fillTemporary(tmp, await openFd(tmp, TMP_FLAGS, mode), data);
}

/** fillTemporary - write data into a temporary file just created; on failure close and remove it. */
function fillTemporary(tmp: string, fd: number, data: string | Uint8Array): { tmp: string; fd: number } {
  try {
    fs.writeFileSync(fd, data); // a small write into the page cache; the flush is what takes time
  } catch (err) {
    discardTemporary(tmp, fd);
    throw err;
  }
  return { tmp, fd };
}

/** discardTemporary - close and remove a temporary file whose flush failed. */
function discardTemporary(tmp: string, fd: number): void {
  fs.closeSync(fd);
  fs.rmSync(tmp, { force: true });
}

/** writeDurable - write a whole file under a temporary name, fsync it, rename it into place, fsync the directory. */
export function writeDurable(dir: string, name: string, data: string | Uint8Array, mode: number): void {
  const { tmp, fd } = createTemporary(dir, data, mode);
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    discardTemporary(tmp, fd);
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path.join(dir, name));
  fsyncDir(dir);
}

/** removeTemporaries - delete leftovers of an interrupted writeDurable; returns how many. */
export function removeTemporaries(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(TMP_PREFIX)) {
      fs.rmSync(path.join(dir, name), { force: true });
      n++;
    }
  }
  return n;
}

/** fsyncFd - fsync(2) on the threadpool. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** openFd - open(2) on the threadpool (numeric flags, e.g. O_TMPFILE). */
export function openFd(file: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/** closeFd - close(2) on the threadpool. */
export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

/** unlinkFile - unlink(2) on the threadpool; false if there was nothing to remove. */
export function unlinkFile(file: string): Promise<boolean> {
  return new Promise((resolve, reject) =>
    fs.unlink(file, (err) => (err ? (err.code === 'ENOENT' ? resolve(false) : reject(err)) : resolve(true))),
  );
}

/** fdatasyncFd - fdatasync(2) on the threadpool (an appended record: its bytes and the file's size). */
export function fdatasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fsyncDirOnce - fsync a directory; only the flush runs on the threadpool (open and close are quick). */
async function fsyncDirOnce(dir: string): Promise<void> {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

interface Waiting {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function waiting(): Waiting {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * SharedFlush - group commit for one file or directory.
 *
 * request() starts a flush, or, while one runs, waits for the *next* one, which starts when the
 * running one ends and serves every request made meanwhile. A request is never answered by a
 * flush that began before it. idle() settles once no flush runs or waits (before closing the
 * descriptor a flush uses).
 */
export class SharedFlush {
  private running: Promise<void> | null = null;
  private next: Waiting | null = null;
  private idlers: (() => void)[] = [];

  constructor(private readonly flushOnce: () => Promise<void>) {}

  request(): Promise<void> {
    if (!this.running) return this.start();
    this.next ??= waiting();
    return this.next.promise;
  }

  get isIdle(): boolean {
    return this.running === null;
  }

  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idlers.push(resolve));
  }

  private start(): Promise<void> {
    const run = this.flushOnce();
    this.running = run;
    const after = () => {
      this.running = null;
      const next = this.next;
      this.next = null;
      if (next) {
        this.start().then(next.resolve, next.reject);
      } else {
        for (const f of this.idlers.splice(0)) f();
      }
    };
    run.then(after, after);
    return run;
  }
}

const dirFlushes = new Map<string, SharedFlush>();

/** fsyncDirShared - make a directory's entries durable; concurrent callers share flushes that began after their request. */
export function fsyncDirShared(dir: string): Promise<void> {
  let flush = dirFlushes.get(dir);
  if (!flush) {
    const f = new SharedFlush(() => fsyncDirOnce(dir));
    dirFlushes.set(dir, f);
    flush = f;
  }
  const done = flush.request();
  const f = flush;
  void f.idle().then(() => {
    if (dirFlushes.get(dir) === f && f.isIdle) dirFlushes.delete(dir);
  });
  return done;
}

/** writeDurableAsync - writeDurable with both flushes off the event loop, the directory's shared with other callers. */
export async function writeDurableAsync(dir: string, name: string, data: string | Uint8Array, mode: number): Promise<void> {
  const { tmp, fd } = await createTemporaryAsync(dir, data, mode);
  try {
    await fsyncFd(fd);
  } catch (err) {
    discardTemporary(tmp, fd);
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path.join(dir, name));
  await fsyncDirShared(dir);
}
