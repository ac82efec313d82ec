// sealedCopy against a sender that changes its file while the copy runs, made
// deterministic: sealedCopy checks the descriptor and starts its first read
// synchronously, then yields; the test changes the file before the copy's
// next read (a shrink) or its final one-byte-past-the-end read (a growth).
// Also: the copy never moves the offset of the open file it shares with the
// sender (that offset would be a channel back to the sender).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sealedCopy } from './copy.js';
import { countOpenFds } from './fds.js';
import { COPY_CHUNK } from './_copy-buffers.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-race-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** fdPos - the file offset of a descriptor, from /proc/self/fdinfo. */
const fdPos = (fd: number) => Number(/^pos:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]);

function file(size: number): string {
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, Buffer.alloc(size, 0x41));
  return f;
}

describe('sealedCopy of a file that changes under it', () => {
  it('a file that shrinks during the copy is refused (shrank), and no descriptor leaks', async () => {
    const f = file(4 * COPY_CHUNK);
    const before = countOpenFds();
    const ro = fs.openSync(f, 'r');
    const copying = sealedCopy(ro, { maxBytes: 8 * COPY_CHUNK, claimedSize: 4 * COPY_CHUNK });
    fs.truncateSync(f, COPY_CHUNK / 4); // before the second chunk is read
    await expect(copying).rejects.toMatchObject({ reason: 'shrank' });
    fs.closeSync(ro);
    expect(countOpenFds()).toBe(before); // the memfd was closed on the error path
  });

  it('a file that grows during the copy is refused (grew), and no descriptor leaks', async () => {
    const f = file(2 * COPY_CHUNK);
    const before = countOpenFds();
    const ro = fs.openSync(f, 'r');
    const copying = sealedCopy(ro, { maxBytes: 8 * COPY_CHUNK, claimedSize: 2 * COPY_CHUNK });
    fs.appendFileSync(f, 'one more byte than was claimed'); // before the read past the end
    await expect(copying).rejects.toMatchObject({ reason: 'grew' });
    fs.closeSync(ro);
    expect(countOpenFds()).toBe(before);
  });

  it('never moves the file offset it shares with the sender', async () => {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, 'abcdefghij'.repeat(1000));
    const ro = fs.openSync(f, 'r');
    const head = Buffer.alloc(3);
    fs.readSync(ro, head, 0, 3, null); // the sender has read 3 bytes: offset 3
    expect(fdPos(ro)).toBe(3);
    const copy = await sealedCopy(ro, { maxBytes: 1 << 20, claimedSize: 10_000 });
    fs.closeSync(copy.fd);
    expect(fdPos(ro)).toBe(3);
    const next = Buffer.alloc(3);
    fs.readSync(ro, next, 0, 3, null);
    expect(next.toString()).toBe('def');
    fs.closeSync(ro);
  });
});
