import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { privateCopy, type CopyPlace } from '@sluice/core';
import { INLINE_CLOSE_MAX_BYTES, closeCopy } from './transfer.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-transfer-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** copyOf - transit's private copy of `size` bytes, in memory or in a nameless file in `dir`. */
async function copyOf(size: number, place: CopyPlace) {
  const file = path.join(dir, `in-${size}`);
  fs.writeFileSync(file, Buffer.alloc(size, 0x61));
  const src = fs.openSync(file, 'r');
  try {
    return await privateCopy(src, { maxBytes: 1 << 30, claimedSize: size }, { place: () => place });
  } finally {
    fs.closeSync(src);
  }
}

/** isOpen - whether `fd` still refers to the copy of inode `ino` (a closed number may be reused at once). */
const isOpen = (fd: number, ino: number) => {
  try {
    return fs.fstatSync(fd).ino === ino;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('EBADF');
    return false;
  }
};

describe('closeCopy', () => {
  it('closes a small copy in memory at once, on the event loop', async () => {
    for (const size of [0, 4096, INLINE_CLOSE_MAX_BYTES]) {
      const copy = await copyOf(size, 'memory');
      expect(copy.place).toBe('memory');
      const ino = fs.fstatSync(copy.fd).ino;
      const closing = closeCopy(copy);
      expect(isOpen(copy.fd, ino), `${size} bytes`).toBe(false); // before the promise has had a chance to settle
      await closing;
    }
  });

  it('closes a larger copy in memory, and any copy on disk, once its promise settles', async () => {
    // On the threadpool: whether it is done before the promise settles is a race, so only the end is checked.
    for (const [size, place] of [[INLINE_CLOSE_MAX_BYTES + 1, 'memory'], [4096, { dir }]] as const) {
      const copy = await copyOf(size, place);
      const ino = fs.fstatSync(copy.fd).ino;
      await closeCopy(copy);
      expect(isOpen(copy.fd, ino), `${size} bytes in ${copy.place}`).toBe(false);
    }
  });
});
