// fdFlags, setLease and linkFd: the file-side syscalls.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { nodeHelper, tempDir } from '../test-helpers/harness.mjs';

const { constants: C } = native;
const O_LARGEFILE = 0o100000;

let dir: string;
let file: string;
beforeEach(() => {
  dir = tempDir();
  file = path.join(dir, 'file');
  fs.writeFileSync(file, 'contents', { mode: 0o644 });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// code - the error code fn throws, or 'ok'.
function code(fn: () => unknown) {
  try {
    fn();
    return 'ok';
  } catch (e: any) {
    return e.code;
  }
}

describe('fdFlags', () => {
  it.each([
    ['r', C.O_RDONLY],
    ['w', C.O_WRONLY],
    ['a', C.O_WRONLY],
    ['r+', C.O_RDWR],
  ])('open(%s) has access mode %d and no O_PATH', (flags, accmode) => {
    const fd = fs.openSync(file, flags);
    const fl = native.fdFlags(fd);
    expect(fl & C.O_ACCMODE).toBe(accmode);
    expect(fl & C.O_PATH).toBe(0);
    fs.closeSync(fd);
  });

  it('an O_PATH descriptor shows O_PATH, and its access-mode bits read as O_RDONLY', () => {
    // This is why a caller must test O_PATH before trusting O_ACCMODE == O_RDONLY.
    for (const target of [file, dir]) {
      const fd = fs.openSync(target, C.O_PATH);
      const fl = native.fdFlags(fd);
      expect(fl & C.O_PATH).toBe(C.O_PATH);
      expect(fl & C.O_ACCMODE).toBe(C.O_RDONLY);
      fs.closeSync(fd);
    }
  });

  it('reports other status flags as the kernel keeps them (O_LARGEFILE, O_APPEND)', () => {
    const fd = fs.openSync(file, 'a');
    expect(native.fdFlags(fd) & (fs.constants.O_APPEND | O_LARGEFILE)).toBe(fs.constants.O_APPEND | O_LARGEFILE);
    fs.closeSync(fd);
  });

  it('throws EBADF for a descriptor that is not open', () => {
    expect(() => native.fdFlags(999_999)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fcntl' }));
  });
});

describe('setFdFlags', () => {
  it('sets O_DIRECT on an open file, seen by every descriptor sharing it, and clears it again', () => {
    const fd = fs.openSync(file, 'r');
    const twin = fs.openSync(`/proc/self/fd/${fd}`, 'r'); // a new open file: must not change
    const before = native.fdFlags(fd);
    native.setFdFlags(fd, before | fs.constants.O_DIRECT);
    expect(native.fdFlags(fd) & fs.constants.O_DIRECT).toBe(fs.constants.O_DIRECT);
    expect(native.fdFlags(twin) & fs.constants.O_DIRECT).toBe(0);
    native.setFdFlags(fd, before);
    expect(native.fdFlags(fd)).toBe(before);
    fs.closeSync(twin);
    fs.closeSync(fd);
  });

  it('cannot change the access mode (the kernel ignores those bits)', () => {
    const fd = fs.openSync(file, 'r');
    native.setFdFlags(fd, C.O_RDWR);
    expect(native.fdFlags(fd) & C.O_ACCMODE).toBe(C.O_RDONLY);
    fs.closeSync(fd);
  });

  it('throws EBADF for a descriptor that is not open', () => {
    expect(() => native.setFdFlags(999_999, 0)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fcntl' }));
  });
});

describe('getLease', () => {
  it('F_RDLCK while the lease stands, F_UNLCK without one', () => {
    const fd = fs.openSync(file, 'r');
    expect(native.getLease(fd)).toBe(C.F_UNLCK);
    native.setLease(fd, C.F_RDLCK);
    expect(native.getLease(fd)).toBe(C.F_RDLCK);
    native.setLease(fd, C.F_UNLCK);
    expect(native.getLease(fd)).toBe(C.F_UNLCK);
    fs.closeSync(fd);
  });

  it('F_UNLCK, synchronously, once a writer\'s open() is breaking the lease; the writer waits until it is released', async () => {
    let sigio = 0;
    const onSigio = () => sigio++; // SIGIO's default action would end this process
    process.on('SIGIO', onSigio);
    const fd = fs.openSync(file, 'r');
    try {
      native.setLease(fd, C.F_RDLCK);
      const writer = nodeHelper('hold-open.mjs', [file, 'r+'], { stdin: 'pipe' });
      // The writer blocks in open() until the lease goes; poll until the kernel reports the break.
      const deadline = Date.now() + 20_000;
      while (native.getLease(fd) === C.F_RDLCK && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(native.getLease(fd)).toBe(C.F_UNLCK);
      native.setLease(fd, C.F_UNLCK);
      expect(await writer.line()).toBe('ready'); // its open() completed only now
      writer.proc.stdin!.end();
      expect((await writer.done).code).toBe(0);
      expect(sigio).toBeGreaterThanOrEqual(1);
    } finally {
      fs.closeSync(fd);
      process.off('SIGIO', onSigio);
    }
  });
});

describe('setLease', () => {
  it('F_RDLCK succeeds when no one writes, and F_UNLCK releases it', () => {
    const fd = fs.openSync(file, 'r');
    native.setLease(fd, C.F_RDLCK);
    expect(fs.readFileSync('/proc/locks', 'utf8')).toMatch(/LEASE\s+ACTIVE\s+READ/);
    native.setLease(fd, C.F_UNLCK);
    fs.closeSync(fd);
  });

  it('F_RDLCK fails with EAGAIN while another process holds the file open for writing', async () => {
    const fd = fs.openSync(file, 'r');
    const writer = nodeHelper('hold-open.mjs', [file, 'r+'], { stdin: 'pipe' });
    expect(await writer.line()).toBe('ready');
    expect(() => native.setLease(fd, C.F_RDLCK)).toThrow(
      expect.objectContaining({ code: 'EAGAIN', syscall: 'fcntl', message: 'fcntl: EAGAIN (Resource temporarily unavailable)' }),
    );
    writer.proc.stdin!.end();
    expect((await writer.done).code).toBe(0);
    native.setLease(fd, C.F_RDLCK); // the writer is gone
    native.setLease(fd, C.F_UNLCK);
    fs.closeSync(fd);
  });

  it('another reader does not prevent a read lease', async () => {
    const fd = fs.openSync(file, 'r');
    const reader = nodeHelper('hold-open.mjs', [file, 'r'], { stdin: 'pipe' });
    expect(await reader.line()).toBe('ready');
    native.setLease(fd, C.F_RDLCK);
    native.setLease(fd, C.F_UNLCK);
    reader.proc.stdin!.end();
    expect((await reader.done).code).toBe(0);
    fs.closeSync(fd);
  });

  it('our own writable descriptor counts as a writer', () => {
    const fd = fs.openSync(file, 'r+');
    expect(code(() => native.setLease(fd, C.F_RDLCK))).toBe('EAGAIN');
    fs.closeSync(fd);
  });

  it('only F_RDLCK and F_UNLCK are accepted', () => {
    const fd = fs.openSync(file, 'r');
    expect(() => native.setLease(fd, 1 /* F_WRLCK */)).toThrow(RangeError);
    fs.closeSync(fd);
  });
});

describe('linkFd', () => {
  const O_TMPFILE_RDWR = () => C.O_TMPFILE | C.O_RDWR;

  it('names an O_TMPFILE with its contents and mode', () => {
    const fd = fs.openSync(dir, O_TMPFILE_RDWR(), 0o600);
    fs.writeSync(fd, 'unnamed until now');
    const out = path.join(dir, 'named');
    native.linkFd(fd, out);
    expect(fs.readFileSync(out, 'utf8')).toBe('unnamed until now');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.statSync(out).ino).toBe(fs.fstatSync(fd).ino);
    fs.closeSync(fd);
  });

  it('never overwrites: EEXIST for a file, for itself, and for a dangling symlink', () => {
    const fd = fs.openSync(dir, O_TMPFILE_RDWR(), 0o600);
    fs.writeSync(fd, 'new');
    expect(code(() => native.linkFd(fd, file))).toBe('EEXIST');
    expect(fs.readFileSync(file, 'utf8')).toBe('contents');
    native.linkFd(fd, path.join(dir, 'once'));
    expect(code(() => native.linkFd(fd, path.join(dir, 'once')))).toBe('EEXIST');
    const sym = path.join(dir, 'sym');
    fs.symlinkSync(path.join(dir, 'elsewhere'), sym);
    expect(code(() => native.linkFd(fd, sym))).toBe('EEXIST');
    expect(fs.existsSync(path.join(dir, 'elsewhere'))).toBe(false);
    fs.closeSync(fd);
  });

  it('an O_TMPFILE|O_EXCL file cannot be named; a memfd cannot cross filesystems', () => {
    const excl = fs.openSync(dir, O_TMPFILE_RDWR() | fs.constants.O_EXCL, 0o600);
    expect(code(() => native.linkFd(excl, path.join(dir, 'x')))).toBe('ENOENT');
    const mfd = native.memfdCreate('m');
    expect(code(() => native.linkFd(mfd, path.join(dir, 'y')))).toBe('EXDEV');
    [excl, mfd].forEach((x) => fs.closeSync(x));
  });
});
