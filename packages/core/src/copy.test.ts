import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native, ALL_SEALS } from '@sluice/native';
import { execFileSync } from 'node:child_process';
import { copyAndHash, sealedCopy } from './copy.js';
import { copyAndHashDirect, DIRECT_MIN_BYTES } from './direct.js';
import { countOpenFds } from './fds.js';
import { COPY_CHUNK } from './_copy-buffers.js';
import { Refused } from './errors.js';

describe('sealedCopy', () => {
  it('copies a 2 GiB file through a bounded buffer: the JS heap does not grow with the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-big-'));
    const file = path.join(dir, 'big.bin');
    const size = 2 * 1024 ** 3;
    const fd = fs.openSync(file, 'w+');
    fs.ftruncateSync(fd, size); // sparse: reads as zeros without using the disk
    fs.writeSync(fd, 'head', 0);
    fs.writeSync(fd, 'tail', size - 4);
    fs.closeSync(fd);
    const ro = fs.openSync(file, 'r');
    const base = process.memoryUsage();
    let peakHeap = 0;
    let peakBuffers = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakHeap = Math.max(peakHeap, m.heapUsed - base.heapUsed);
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
    }, 5);
    try {
      const copy = await sealedCopy(ro, { maxBytes: size, claimedSize: size });
      try {
        expect(copy.size).toBe(size);
        expect(native.getSeals(copy.fd) & ALL_SEALS).toBe(ALL_SEALS);
        expect(fs.fstatSync(copy.fd).size).toBe(size);
        const tail = Buffer.alloc(4);
        fs.readSync(copy.fd, tail, 0, 4, size - 4);
        expect(tail.toString()).toBe('tail');
      } finally {
        fs.closeSync(copy.fd);
      }
    } finally {
      clearInterval(sampler);
      fs.closeSync(ro);
      fs.rmSync(dir, { recursive: true });
    }
    // One reused COPY_CHUNK (4 MiB) buffer, not 2 GiB: allow generous slack for the sampler itself and the GC.
    expect(peakBuffers).toBeLessThan(32 * 1024 * 1024);
    expect(peakHeap).toBeLessThan(32 * 1024 * 1024);
  }, 120_000);

  it('refuses a claim that differs from the file size before reading, and leaks nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-claim-'));
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'twelve bytes');
    const before = countOpenFds();
    const ro = fs.openSync(file, 'r');
    await expect(sealedCopy(ro, { maxBytes: 100, claimedSize: 11 })).rejects.toMatchObject({ reason: 'size-mismatch' });
    await expect(sealedCopy(ro, { maxBytes: 5 })).rejects.toBeInstanceOf(Refused);
    fs.closeSync(ro);
    expect(countOpenFds()).toBe(before);
    fs.rmSync(dir, { recursive: true });
  });

  it('the digest is of exactly the bytes copied', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-dig-'));
    const file = path.join(dir, 'f');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    fs.writeFileSync(file, bytes);
    const ro = fs.openSync(file, 'r');
    const copy = await sealedCopy(ro, { maxBytes: bytes.length });
    fs.closeSync(ro);
    expect(copy.sha256.toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(fs.readFileSync(`/proc/self/fd/${copy.fd}`).equals(bytes)).toBe(true); // not toEqual: element by element, 15 s for 3 MiB
    fs.closeSync(copy.fd);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('sealedCopy of a spool file: whole aligned blocks, the sender\'s open file left as it was', () => {
  // The spool's filesystem here: the project's own disk (os.tmpdir() may be tmpfs elsewhere), where
  // O_DIRECT works: a copy that set it on the descriptor it was sent would show it in the flags.
  const base = path.join(process.cwd(), 'tmp');
  let dir: string;
  beforeEach(() => {
    fs.mkdirSync(base, { recursive: true });
    dir = fs.mkdtempSync(path.join(base, 'sealed-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const pattern = (size: number) => {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4093) bytes[i] = (i * 31) & 0xff;
    if (size > 0) bytes[size - 1] = 0xee;
    return bytes;
  };
  async function copyOf(file: string, size: number, during?: (ro: number) => void) {
    const ro = fs.openSync(file, 'r');
    try {
      const before = { flags: native.fdFlags(ro), fdinfo: fdinfoFlags(ro) };
      const copying = sealedCopy(ro, { maxBytes: size, claimedSize: size });
      during?.(ro);
      const copy = await copying;
      const held = fs.readFileSync(`/proc/self/fd/${copy.fd}`);
      fs.closeSync(copy.fd);
      const after = { flags: native.fdFlags(ro), fdinfo: fdinfoFlags(ro) };
      return { copy, held, flags: after.flags, before, after };
    } finally {
      fs.closeSync(ro);
    }
  }

  for (const size of [0, 1, DIRECT_MIN_BYTES - 1, DIRECT_MIN_BYTES, DIRECT_MIN_BYTES + 1, COPY_CHUNK + 4096, 3 * COPY_CHUNK + 123]) {
    it(`${size} bytes: the copy holds exactly them, and the sender's file status flags are unchanged`, async () => {
      const bytes = pattern(size);
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, bytes);
      const { copy, held, flags, before, after } = await copyOf(file, size);
      expect(flags & fs.constants.O_DIRECT).toBe(0); // nobody set it on the open file the sender shares with us
      expect(after).toEqual(before); // F_GETFL and /proc/self/fdinfo alike
      expect(held.equals(bytes)).toBe(true);
      expect(copy.sha256.toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    });
  }

  it('a sender that sets O_DIRECT after the check, on a large or a small file, changes nothing but speed', async () => {
    const big = pattern(3 * COPY_CHUNK + 123);
    fs.writeFileSync(path.join(dir, 'big'), big);
    const setBig = await copyOf(path.join(dir, 'big'), big.length, (ro) => native.setFdFlags(ro, native.fdFlags(ro) | fs.constants.O_DIRECT));
    expect(setBig.flags & fs.constants.O_DIRECT).toBe(fs.constants.O_DIRECT);
    expect(setBig.held.equals(big)).toBe(true);
    expect(setBig.copy.sha256.toString('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    const small = pattern(10_001);
    fs.writeFileSync(path.join(dir, 'small'), small);
    const set = await copyOf(path.join(dir, 'small'), small.length, (ro) => native.setFdFlags(ro, native.fdFlags(ro) | fs.constants.O_DIRECT));
    expect(set.flags & fs.constants.O_DIRECT).toBe(fs.constants.O_DIRECT);
    expect(set.held.equals(small)).toBe(true);
    expect(set.copy.sha256.toString('hex')).toBe(createHash('sha256').update(small).digest('hex'));
  });

  it('a file that grows inside its last block during the copy is refused (grew)', async () => {
    const size = DIRECT_MIN_BYTES + 100;
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, pattern(size));
    const ro = fs.openSync(file, 'r');
    try {
      const copying = sealedCopy(ro, { maxBytes: 2 * size, claimedSize: size });
      fs.appendFileSync(file, 'x'); // byte size + 1: in the same 4 KiB block as the last claimed byte
      await expect(copying).rejects.toMatchObject({ reason: 'grew' });
    } finally {
      fs.closeSync(ro);
    }
  });

  it('twelve copies at once, more than the buffer pool keeps, and some that fail: each copy holds only its own bytes', async () => {
    // Buffers go back to the pool when a copy settles and are handed to the next; a buffer shared by two
    // live copies, or given back while a read or write still used it, would mix files here.
    const files = Array.from({ length: 12 }, (_, i) => {
      const bytes = Buffer.alloc(2 * COPY_CHUNK + 1000 * (i + 1), 0x30 + i);
      const file = path.join(dir, `f${i}`);
      fs.writeFileSync(file, bytes);
      return { file, bytes };
    });
    for (let round = 0; round < 2; round++) {
      const results = await Promise.allSettled(
        // Every 4th file shrinks once its copy has begun: that copy fails with its buffers taken.
        files.map(({ file, bytes }, i) => copyOf(file, bytes.length, i % 4 === 3 ? () => fs.truncateSync(file, COPY_CHUNK / 2) : undefined)),
      );
      results.forEach((r, i) => {
        if (i % 4 === 3) {
          expect(r.status).toBe('rejected');
          expect((r as PromiseRejectedResult).reason).toMatchObject({ reason: 'shrank' });
          fs.writeFileSync(files[i]!.file, files[i]!.bytes); // whole again for the next round
          return;
        }
        expect(r.status).toBe('fulfilled');
        const { held, copy } = (r as PromiseFulfilledResult<Awaited<ReturnType<typeof copyOf>>>).value;
        expect(held.equals(files[i]!.bytes)).toBe(true);
        expect(copy.sha256.toString('hex')).toBe(createHash('sha256').update(files[i]!.bytes).digest('hex'));
      });
    }
  });

  const isRoot = process.getuid?.() === 0;
  it.skipIf(!isRoot)(`a file on a filesystem that refuses O_DIRECT (ramfs) is copied exactly${isRoot ? '' : ' [skipped: mounting ramfs needs root]'}`, async () => {
    const mnt = path.join(dir, 'ramfs');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'ramfs', 'ramfs', mnt]);
    try {
      const bytes = pattern(DIRECT_MIN_BYTES + 4097);
      fs.writeFileSync(path.join(mnt, 'f'), bytes);
      const { copy, held, flags } = await copyOf(path.join(mnt, 'f'), bytes.length);
      expect(flags & fs.constants.O_DIRECT).toBe(0);
      expect(held.equals(bytes)).toBe(true);
      expect(copy.sha256.toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

/** fdinfoFlags - the open file's flags as /proc/self/fdinfo shows them (octal, as the kernel prints them). */
function fdinfoFlags(fd: number): string {
  return /^flags:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!;
}

describe('copyAndHashDirect', () => {
  const O_TMPFILE = native.constants.O_TMPFILE;
  // The outbox's filesystem here: the project's own disk (os.tmpdir() may be tmpfs elsewhere).
  const base = path.join(process.cwd(), 'tmp');

  /** direct - copy `bytes` from a file into an O_DIRECT O_TMPFILE; return the result and what the file holds. */
  async function direct(bytes: Buffer) {
    fs.mkdirSync(base, { recursive: true });
    const dir = fs.mkdtempSync(path.join(base, 'direct-'));
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, bytes);
    const src = fs.openSync(file, 'r');
    const dst = fs.openSync(dir, O_TMPFILE | fs.constants.O_RDWR | fs.constants.O_DIRECT, 0o600);
    try {
      const r = await copyAndHashDirect(src, dst, bytes.length);
      fs.fsyncSync(dst);
      return { r, held: fs.readFileSync(`/proc/self/fd/${dst}`), flags: native.fdFlags(dst) };
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(dir, { recursive: true });
    }
  }

  for (const size of [0, 1, 4095, 4096, 4097, COPY_CHUNK - 1, COPY_CHUNK, COPY_CHUNK + 4097, 3 * COPY_CHUNK + 123]) {
    it(`${size} bytes: the file holds exactly them (no padding), and the digest is theirs`, async () => {
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4093) bytes[i] = (i * 31) & 0xff;
      if (size > 0) bytes[size - 1] = 0xee;
      const { r, held, flags } = await direct(bytes);
      expect(flags & fs.constants.O_DIRECT).toBe(fs.constants.O_DIRECT); // really bypassing the page cache
      expect(r.size).toBe(size);
      expect(held.length).toBe(size);
      expect(held.equals(bytes)).toBe(true);
      expect(r.sha256.toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    });
  }

  it('a write that fails while the next chunk is read: the copy rejects with that error, no write left running', async () => {
    fs.mkdirSync(base, { recursive: true });
    const dir = fs.mkdtempSync(path.join(base, 'direct-'));
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, Buffer.alloc(3 * COPY_CHUNK, 7));
    fs.writeFileSync(path.join(dir, 'dst'), '');
    const src = fs.openSync(file, 'r');
    const dst = fs.openSync(path.join(dir, 'dst'), fs.constants.O_RDONLY | fs.constants.O_DIRECT); // every write: EBADF
    try {
      await expect(copyAndHashDirect(src, dst, 3 * COPY_CHUNK)).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('a source shorter than claimed is refused (shrank), one longer too (grew)', async () => {
    fs.mkdirSync(base, { recursive: true });
    const dir = fs.mkdtempSync(path.join(base, 'direct-'));
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, Buffer.alloc(10_000, 1));
    const src = fs.openSync(file, 'r');
    const dst = fs.openSync(dir, O_TMPFILE | fs.constants.O_RDWR | fs.constants.O_DIRECT, 0o600);
    try {
      await expect(copyAndHashDirect(src, dst, 20_000)).rejects.toMatchObject({ reason: 'shrank' });
      await expect(copyAndHashDirect(src, dst, 5_000)).rejects.toMatchObject({ reason: 'grew' });
      await expect(copyAndHashDirect(src, dst, 5_000)).rejects.toBeInstanceOf(Refused);
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(dir, { recursive: true });
    }
  });
});

describe('copyAndHash with endCheckedAfter (the caller checks the size after the copy: ingress)', () => {
  // The last read also asks for the block that holds offset `size` when its buffer has room (below a chunk),
  // and a read of its own looks there otherwise (from a whole chunk on): both ways must refuse the same files.
  const sizes = [0, 1, 4095, 4096, 4097, 8192, COPY_CHUNK - 4096, COPY_CHUNK - 1, COPY_CHUNK, COPY_CHUNK + 1, 2 * COPY_CHUNK];
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-endcheck-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** copy - copy `claimed` bytes of a file holding `bytes` into a fresh file; the outcome and what the copy holds. */
  async function copy(bytes: Buffer, claimed: number) {
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, bytes);
    const src = fs.openSync(file, 'r');
    const out = path.join(dir, 'dst');
    const dst = fs.openSync(out, 'w', 0o600);
    try {
      const r = await copyAndHash(src, dst, claimed, { endCheckedAfter: true });
      return { r, held: fs.readFileSync(out) };
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(out, { force: true });
    }
  }

  for (const size of sizes) {
    it(`${size} bytes: copied exactly; a byte more is refused (grew), a byte less too (shrank)`, async () => {
      const bytes = Buffer.alloc(size + 1);
      for (let i = 0; i < bytes.length; i += 4093) bytes[i] = (i * 31) & 0xff;
      bytes[size] = 0xee;
      const exact = bytes.subarray(0, size);
      const { r, held } = await copy(exact, size);
      expect(held.equals(exact)).toBe(true);
      expect(r.sha256.toString('hex')).toBe(createHash('sha256').update(exact).digest('hex'));
      await expect(copy(bytes, size)).rejects.toMatchObject({ reason: 'grew' });
      if (size > 0) await expect(copy(bytes.subarray(0, size - 1), size)).rejects.toMatchObject({ reason: 'shrank' });
    });
  }
});
