// Sealed memfds: after the four seals nobody, the creator included, can change
// the bytes, not even through a read-write reopen of /proc/self/fd/N in another
// process under another uid. Without seals anyone holding any fd can.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { acceptOne, lastJson, nodeHelper, tempDir } from '../test-helpers/harness.mjs';

const { constants: C, ALL_SEALS } = native;

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// filled - a fresh memfd holding TEXT.
function filled(text: string) {
  const fd = native.memfdCreate('sluice-test');
  fs.writeSync(fd, text);
  return fd;
}

// code - the error code fn throws, or 'ok'.
function code(fn: () => unknown) {
  try {
    fn();
    return 'ok';
  } catch (e: any) {
    return e.code;
  }
}

describe('memfdCreate and seals', () => {
  it('creates a read-write, close-on-exec, sealable, unsealed memfd', () => {
    const fd = native.memfdCreate('x');
    expect(native.fdFlags(fd) & C.O_ACCMODE).toBe(C.O_RDWR);
    expect(native.getSeals(fd)).toBe(0);
    expect(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).toMatch(/^flags:\s+0*2[0-7]{6}$/m);
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe('/memfd:x (deleted)');
    fs.closeSync(fd);
  });

  it('the four seals stop write and truncate with EPERM, also through /proc/self/fd/N', () => {
    const fd = filled('hello');
    native.addSeals(fd, ALL_SEALS);
    expect(native.getSeals(fd)).toBe(ALL_SEALS);
    expect(code(() => fs.writeSync(fd, 'x', 0))).toBe('EPERM');
    expect(code(() => fs.writeSync(fd, 'x', 5))).toBe('EPERM'); // append
    expect(code(() => fs.ftruncateSync(fd, 0))).toBe('EPERM');
    expect(code(() => fs.ftruncateSync(fd, 100))).toBe('EPERM');
    const rw = fs.openSync(`/proc/self/fd/${fd}`, 'r+'); // reopening itself is allowed...
    expect(code(() => fs.writeSync(rw, 'J', 0))).toBe('EPERM'); // ...changing bytes is not
    expect(code(() => fs.ftruncateSync(rw, 1))).toBe('EPERM');
    expect(code(() => fs.truncateSync(`/proc/self/fd/${fd}`, 0))).toBe('EPERM');
    expect(code(() => native.addSeals(fd, 0))).toBe('EPERM'); // F_SEAL_SEAL
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('hello');
    [rw, fd].forEach((x) => fs.closeSync(x));
  });

  it('an unsealed memfd can be changed by anyone holding a descriptor to it', () => {
    const fd = filled('hello');
    const ro = fs.openSync(`/proc/self/fd/${fd}`, 'r');
    const rw = fs.openSync(`/proc/self/fd/${ro}`, 'r+'); // read-only fd is no protection
    fs.writeSync(rw, 'J', 0);
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('Jello');
    [rw, ro, fd].forEach((x) => fs.closeSync(x));
  });

  it('seals accumulate and getSeals reports each', () => {
    const fd = filled('abc');
    native.addSeals(fd, C.F_SEAL_SHRINK);
    native.addSeals(fd, C.F_SEAL_GROW);
    expect(native.getSeals(fd)).toBe(C.F_SEAL_SHRINK | C.F_SEAL_GROW);
    fs.writeSync(fd, 'X', 0); // no F_SEAL_WRITE yet: in-place writes still work
    native.addSeals(fd, C.F_SEAL_WRITE | C.F_SEAL_SEAL);
    expect(native.getSeals(fd)).toBe(ALL_SEALS);
    fs.closeSync(fd);
  });

  it('addSeals/getSeals on a regular file fail with EINVAL', () => {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r+');
    expect(code(() => native.getSeals(fd))).toBe('EINVAL');
    expect(code(() => native.addSeals(fd, ALL_SEALS))).toBe('EINVAL');
    fs.closeSync(fd);
  });

  it('names: up to 249 bytes; longer is a RangeError, not a kernel EINVAL', () => {
    fs.closeSync(native.memfdCreate('n'.repeat(249)));
    expect(() => native.memfdCreate('n'.repeat(250))).toThrow(RangeError);
  });
});

describe('a memfd handed to another process (under another uid when root)', () => {
  // give - send fd to a peer.mjs recv-fd child; return its report.
  async function give(fd: number) {
    const sock = path.join(dir, 'give.sock');
    const lfd = native.listen(sock, 0o666, 4);
    const c = nodeHelper('peer.mjs', ['recv-fd', sock], { asUser: true });
    const conn = await acceptOne(lfd, c);
    native.send(conn, Buffer.from('memfd'), fd);
    const res = await c.done;
    expect(res.code, res.stderr).toBe(0);
    [conn, lfd].forEach((x) => fs.closeSync(x));
    fs.unlinkSync(sock);
    return lastJson(res.stdout);
  }

  it('unsealed, even a read-only descriptor lets the receiver rewrite the bytes', async () => {
    const fd = filled('original');
    const ro = fs.openSync(`/proc/self/fd/${fd}`, 'r');
    const out = await give(ro);
    expect(out.flags & C.O_ACCMODE).toBe(C.O_RDONLY);
    expect(out).toMatchObject({ ino: fs.fstatSync(fd).ino, dev: fs.fstatSync(fd).dev, write: 'ok' });
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('Xriginal');
    [ro, fd].forEach((x) => fs.closeSync(x));
  });

  it('sealed, the receiver gets EPERM and the bytes stay', async () => {
    const fd = filled('original');
    native.addSeals(fd, ALL_SEALS);
    const ro = fs.openSync(`/proc/self/fd/${fd}`, 'r');
    const out = await give(ro);
    expect(out.write).toBe('EPERM');
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('original');
    [ro, fd].forEach((x) => fs.closeSync(x));
  });
});
