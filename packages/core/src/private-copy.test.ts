// privateCopy into a nameless file (the place for copies RAM cannot hold):
// the same checks and hash as a sealed memfd, a file that is 0600, has no
// name and can never get one, and only a read-only descriptor handed back.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native, constants as C } from '@sluice/native';
import { privateCopy } from './copy.js';
import { countOpenFds } from './fds.js';
import { DIRECT_MIN_BYTES } from './direct.js';

let dir: string;
let state: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-private-'));
  state = path.join(dir, 'state');
  fs.mkdirSync(state, { mode: 0o700 });
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** source - a file of these bytes, opened read-only (the sender's descriptor). */
function source(bytes: Buffer | { sparse: number; tail: string }): { ro: number; sha: string; size: number } {
  const f = path.join(dir, `src-${Math.random().toString(36).slice(2)}`);
  let whole: Buffer;
  if (Buffer.isBuffer(bytes)) {
    fs.writeFileSync(f, bytes);
    whole = bytes;
  } else {
    const fd = fs.openSync(f, 'w');
    fs.writeSync(fd, bytes.tail, bytes.sparse - bytes.tail.length);
    fs.closeSync(fd);
    whole = Buffer.alloc(bytes.sparse);
    whole.write(bytes.tail, bytes.sparse - bytes.tail.length);
  }
  return { ro: fs.openSync(f, 'r'), sha: createHash('sha256').update(whole).digest('hex'), size: whole.length };
}

describe('privateCopy to disk', () => {
  it.each([
    ['a small file', Buffer.from('hello, disk\n')],
    ['an empty file', Buffer.alloc(0)],
    ['a sparse file past the O_DIRECT threshold, not a whole number of blocks', { sparse: 3 * DIRECT_MIN_BYTES + 1234, tail: 'X' }],
  ] as const)('%s: a nameless 0600 file, read-only descriptor, digest of the bytes', async (_, bytes) => {
    const src = source(bytes as Buffer | { sparse: number; tail: string });
    const before = countOpenFds();
    const copy = await privateCopy(src.ro, { maxBytes: 1 << 30, claimedSize: src.size }, { place: () => ({ dir: state }) });
    try {
      expect(copy.place).toBe('disk');
      expect(copy.size).toBe(src.size);
      expect(copy.sha256.toString('hex')).toBe(src.sha);
      // Only the read-only descriptor is left open: the writable one was closed.
      expect(countOpenFds()).toBe(before + 1);
      expect(native.fdFlags(copy.fd) & C.O_ACCMODE).toBe(C.O_RDONLY);
      expect(() => fs.writeSync(copy.fd, 'x', 0)).toThrow(/EBADF/);
      const st = fs.fstatSync(copy.fd);
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o600);
      expect(st.nlink).toBe(0);
      expect(st.size).toBe(src.size);
      // No name: the directory is empty, /proc says "(deleted)", and O_EXCL means it can never be linked.
      expect(fs.readdirSync(state)).toEqual([]);
      expect(fs.readlinkSync(`/proc/self/fd/${copy.fd}`)).toMatch(/ \(deleted\)$/);
      expect(() => native.linkFd(copy.fd, path.join(state, 'named'))).toThrow(/ENOENT/);
      expect(fs.readdirSync(state)).toEqual([]);
      // The bytes read back are the bytes hashed.
      const back = Buffer.alloc(src.size);
      if (src.size > 0) fs.readSync(copy.fd, back, 0, src.size, 0);
      expect(createHash('sha256').update(back).digest('hex')).toBe(src.sha);
    } finally {
      fs.closeSync(copy.fd);
      fs.closeSync(src.ro);
    }
  });

  it('refuses a file that grows under the copy and leaves no file and no descriptor behind', async () => {
    const f = path.join(dir, 'grows');
    fs.writeFileSync(f, Buffer.alloc(2 * DIRECT_MIN_BYTES, 7));
    const ro = fs.openSync(f, 'r');
    const before = countOpenFds();
    try {
      const copying = privateCopy(ro, { maxBytes: 1 << 30, claimedSize: 2 * DIRECT_MIN_BYTES }, {
        place: () => {
          fs.appendFileSync(f, 'more'); // after the check, before the copy: the sender's file grew
          return { dir: state };
        },
      });
      await expect(copying).rejects.toMatchObject({ reason: 'grew' });
      expect(countOpenFds()).toBe(before);
      expect(fs.readdirSync(state)).toEqual([]);
    } finally {
      fs.closeSync(ro);
    }
  });

  it('asks for a place only after the descriptor passed its checks, with the size fstat gave', async () => {
    const src = source(Buffer.from('twelve bytes'));
    const asked: number[] = [];
    try {
      await expect(privateCopy(src.ro, { maxBytes: 5 }, { place: (n) => (asked.push(n), { dir: state }) })).rejects.toMatchObject({ reason: 'too-large' });
      await expect(privateCopy(src.ro, { maxBytes: 100, claimedSize: 3 }, { place: (n) => (asked.push(n), { dir: state }) })).rejects.toMatchObject({ reason: 'size-mismatch' });
      expect(asked).toEqual([]);
      const copy = await privateCopy(src.ro, { maxBytes: 100 }, { place: (n) => (asked.push(n), 'memory') });
      fs.closeSync(copy.fd);
      expect([asked, copy.place]).toEqual([[12], 'memory']);
    } finally {
      fs.closeSync(src.ro);
    }
  });
});
