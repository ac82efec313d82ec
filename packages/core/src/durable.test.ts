// durable: the asynchronous steps. What matters is that sharing a
// directory fsync never answers a caller with a flush that began before its
// request (it might have missed the caller's entry), and that it does share.
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { SharedFlush, closeFd, fsyncDirShared, fsyncFd, openFd, unlinkFile, writeDurableAsync, TMP_PREFIX } from './durable.js';

const cjsFs = createRequire(import.meta.url)('node:fs') as typeof fs;
const realFsync = cjsFs.fsync;

afterEach(() => {
  cjsFs.fsync = realFsync;
  syncBuiltinESMExports();
});

/** instrumentFsync - log every fsync's start and end; `fail` makes the n-th (1-based) fail with EIO. */
function instrumentFsync(log: string[], fail = 0): void {
  let n = 0;
  cjsFs.fsync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    const k = ++n;
    log.push(`start ${k}`);
    realFsync(fd, (err) => {
      log.push(`end ${k}`);
      cb(k === fail ? Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }) : err);
    });
  }) as typeof fs.fsync;
  syncBuiltinESMExports();
}

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-durable-'));

describe('SharedFlush', () => {
  it('forty requests while one flush runs are served by one more flush; idle() waits for both', async () => {
    const runs: { resolve: () => void }[] = [];
    const f = new SharedFlush(() => new Promise<void>((resolve) => runs.push({ resolve })));
    const first = f.request();
    let later = 0;
    const rest = Array.from({ length: 40 }, () => f.request().then(() => later++));
    let idle = false;
    void f.idle().then(() => (idle = true));
    expect(runs).toHaveLength(1);
    runs[0]!.resolve();
    await first;
    expect(later).toBe(0); // not answered by the flush that began before them
    await new Promise((r) => setImmediate(r));
    expect(runs).toHaveLength(2);
    expect(idle).toBe(false);
    runs[1]!.resolve();
    await Promise.all(rest);
    await new Promise((r) => setImmediate(r));
    expect(later).toBe(40);
    expect(idle).toBe(true);
    expect(f.isIdle).toBe(true);
  });
});

describe('fsyncDirShared', () => {
  it('a request made while a flush runs waits for the next flush, which serves every such request', async () => {
    const dir = tmpDir();
    const log: string[] = [];
    instrumentFsync(log);
    const a = fsyncDirShared(dir).then(() => log.push('a done'));
    // b and c ask while flush 1 is running: flush 1 may have missed their entries.
    const b = fsyncDirShared(dir).then(() => log.push('b done'));
    const c = fsyncDirShared(dir).then(() => log.push('c done'));
    await Promise.all([a, b, c]);
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start 1', 'start 2']);
    expect(log.indexOf('a done')).toBeGreaterThan(log.indexOf('end 1'));
    expect(log.indexOf('b done')).toBeGreaterThan(log.indexOf('end 2'));
    expect(log.indexOf('c done')).toBeGreaterThan(log.indexOf('end 2'));
    expect(log.indexOf('start 2')).toBeGreaterThan(log.indexOf('end 1'));
    fs.rmSync(dir, { recursive: true });
  });

  it('after everything settled, a new request starts its own flush', async () => {
    const dir = tmpDir();
    const log: string[] = [];
    instrumentFsync(log);
    await fsyncDirShared(dir);
    await fsyncDirShared(dir);
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
    fs.rmSync(dir, { recursive: true });
  });

  it('a failed flush fails its own callers only; the waiting ones get the next flush', async () => {
    const dir = tmpDir();
    const log: string[] = [];
    instrumentFsync(log, 1);
    const a = fsyncDirShared(dir);
    const b = fsyncDirShared(dir);
    await expect(a).rejects.toMatchObject({ code: 'EIO' });
    await expect(b).resolves.toBeUndefined();
    expect(log.filter((l) => l.startsWith('start'))).toHaveLength(2);
    fs.rmSync(dir, { recursive: true });
  });

  it('a directory that cannot be opened rejects, and the next request tries again', async () => {
    const missing = path.join(tmpDir(), 'gone');
    await expect(fsyncDirShared(missing)).rejects.toMatchObject({ code: 'ENOENT' });
    fs.mkdirSync(missing);
    await expect(fsyncDirShared(missing)).resolves.toBeUndefined();
    fs.rmSync(path.dirname(missing), { recursive: true });
  });
});

describe('writeDurableAsync', () => {
  it('writes the whole file under its name with the mode, flushes file and directory, leaves no temporary', async () => {
    const dir = tmpDir();
    const log: string[] = [];
    instrumentFsync(log);
    await writeDurableAsync(dir, 'meta.json', '{"a":1}', 0o600);
    expect(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')).toBe('{"a":1}');
    expect(fs.statSync(path.join(dir, 'meta.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith(TMP_PREFIX))).toEqual([]);
    expect(log.filter((l) => l.startsWith('start'))).toHaveLength(2); // the file, then the directory
    fs.rmSync(dir, { recursive: true });
  });

  it('a failed file flush removes the temporary and leaves the name absent', async () => {
    const dir = tmpDir();
    instrumentFsync([], 1);
    await expect(writeDurableAsync(dir, 'meta.json', 'x', 0o600)).rejects.toMatchObject({ code: 'EIO' });
    expect(fs.readdirSync(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });

  it('fsyncFd rejects on a bad descriptor instead of throwing synchronously', async () => {
    const fd = fs.openSync(os.devNull, 'r');
    fs.closeSync(fd);
    await expect(fsyncFd(fd)).rejects.toMatchObject({ code: 'EBADF' });
  });
});

describe('openFd, closeFd, unlinkFile (the threadpool versions)', () => {
  it('open with numeric flags and the exact mode, close, unlink; a second unlink says there was nothing', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'x');
    const fd = await openFd(f, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    fs.writeSync(fd, 'abc');
    await closeFd(fd);
    expect(fs.readFileSync(f, 'utf8')).toBe('abc');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600 & ~process.umask());
    await expect(openFd(f, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await unlinkFile(f)).toBe(true);
    expect(fs.existsSync(f)).toBe(false);
    expect(await unlinkFile(f)).toBe(false);
    fs.rmSync(dir, { recursive: true });
  });

  it('errors other than a missing file reject, with their code', async () => {
    const dir = tmpDir();
    await expect(unlinkFile(dir)).rejects.toMatchObject({ code: 'EISDIR' });
    const fd = fs.openSync(os.devNull, 'r');
    fs.closeSync(fd);
    await expect(closeFd(fd)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(openFd(path.join(dir, 'missing', 'x'), fs.constants.O_RDONLY, 0)).rejects.toMatchObject({ code: 'ENOENT' });
    fs.rmSync(dir, { recursive: true });
  });
});
