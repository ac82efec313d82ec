/*
 * NAME
 *   bounds - what this machine allows, measured in the same run as the pipeline
 *
 * SYNOPSIS
 *   import { copyHashRate, copyHashDirectRate, diskMixRate, perFileFloor } from './bounds.mjs';
 *   copyHashRate(paths)               // MB/s: one core, copy + SHA-256 into a fresh memfd
 *   copyHashDirectRate(paths, dir)    // MB per CPU-second: the same into a file written with O_DIRECT, fsynced
 *   await diskMixRate(dir, paths)     // MB/s: what the disk allows the pipeline (two direct writes, one direct read per byte)
 *   await perFileFloor(dir, n)        // files/s (and ms signing): one process, per file one hybrid signature + two durable 4 KiB writes
 *   filesystemFloor(dir, n)           // CPU ms per 4 KiB file: the three stages' filesystem steps, one process, synchronously
 *
 * DESCRIPTION
 *   Every figure `make bench` prints is a ratio against one of these,
 *   measured minutes apart on the same machine, because these machines are
 *   shared and noisy and an absolute MB/s means little.
 *
 *   copyHashRate is the work each stage does per byte (invariant 1: own
 *   copy, hashed while copying), done the fastest simple way: synchronous
 *   read(2)/write(2) of 1 MiB into a fresh memfd, with node:crypto SHA-256,
 *   on one thread, from a source read into the page cache just before
 *   (untimed). Median of the given files. It is what transit does per
 *   byte.
 *
 *   copyHashDirectRate is the same copy into a new file on the pipeline's
 *   filesystem, written with O_DIRECT from an aligned buffer and fsynced:
 *   what ingress (into its spool) and egress (into the outbox) do per byte
 *   for files of 1 MiB and more. The device takes the bytes from the
 *   buffer, so it costs less CPU than the memfd copy; it is measured in CPU
 *   seconds, because the pipeline overlaps the device's time with other
 *   work. With copyHashRate it gives the CPU ceiling of the three stages on
 *   N cores: N / (2/direct + 1/memfd) (run.mjs).
 *
 *   diskMixRate is the large figure's other bound: per byte the pipeline
 *   writes the disk twice (spool, outbox) and reads it once (transit's read
 *   of the spool), all with O_DIRECT and up to three at once. It runs that
 *   mix, two fresh files written and fsynced while a third file is read,
 *   4 MiB at a time, and returns the bytes moved per second divided by
 *   three.
 *
 *   perFileFloor is the least work one file needs, done in one process with
 *   nothing overlapped: a report signed as egress signs it (ML-DSA-65 and
 *   Ed25519 over the canonical bytes, both verified, serialized: the
 *   SignerPool inline path) and two durable 4 KiB writes (write a temporary
 *   file, fsync, rename, fsync the directory: writeDurable from core). A
 *   pipeline that overlaps stages on two cores should beat it.
 *
 *   filesystemFloor is the other side of the CPU per small file: the
 *   system calls the invariants make every stage issue for one file, in
 *   the order the stages issue them, made synchronously one file at a time
 *   in one process (no threadpool, no event loop, no channel, no checks,
 *   no signature). Ingress: lstat, open and fstat the upload, take and drop
 *   its read lease, copy it hashed into a new spool file, fsync, rename,
 *   write its metadata durably (new file, fsync, rename), fsync the spool,
 *   move the upload aside and unlink it, fsync the inbox; later unlink both
 *   spool files and fsync the spool. Transit: a sealed memfd copy, hashed.
 *   Egress: an O_TMPFILE copy, hashed; the journal intent appended and
 *   fdatasynced; the leaf and a tree head appended, each fdatasynced; the
 *   report in a second O_TMPFILE, fsynced; the copy fsynced; both linked;
 *   the outbox fsynced; the journal's done record. It returns the CPU
 *   (user + kernel) of the timed files, per file: what is left of a small
 *   file's cost once everything Sluice adds around these calls is gone.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { native, ALL_SEALS, constants as C } from '@sluice/native';
import { writeDurable } from '@sluice/core';
import { SignerPool, writeKeyFiles, loadSecretKey, keyIdOfSecret, REPORT_FORMAT } from '@sluice/report';
import { median } from './stats.mjs';

const CHUNK = 1 << 20;

/** copyAndHashSync - the bounds' copy: `size` bytes from fd to out through buf, synchronously, hashing each chunk. */
function copyAndHashSync(src, fd, out, buf, size) {
  const hash = createHash('sha256');
  for (let pos = 0; pos < size; ) {
    const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
    if (n === 0) throw new Error(`${src} shrank`);
    let w = 0;
    while (w < n) w += fs.writeSync(out, buf, w, n - w, pos + w);
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  return hash.digest();
}

/** copyHashOnce - copy one file into a fresh memfd while hashing; MB/s. */
function copyHashOnce(src) {
  const fd = fs.openSync(src, 'r');
  const memfd = native.memfdCreate('bench-copy');
  try {
    const size = fs.fstatSync(fd).size;
    fs.ftruncateSync(memfd, size);
    const buf = Buffer.allocUnsafe(CHUNK);
    // Into the page cache first, untimed: the outputs measured after the pipeline were written with
    // O_DIRECT, and a cold read would lower the bound (and flatter the ratio).
    for (let pos = 0; pos < size; pos += CHUNK) fs.readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
    const t0 = performance.now();
    copyAndHashSync(src, fd, memfd, buf, size);
    native.addSeals(memfd, ALL_SEALS); // as transit does; costs nothing measurable
    const s = (performance.now() - t0) / 1000;
    return size / s / 1e6;
  } finally {
    fs.closeSync(memfd);
    fs.closeSync(fd);
  }
}

/** copyHashRate - median single-core copy+SHA-256 rate over `paths`, MB/s (10^6 B/s). */
export function copyHashRate(paths) {
  copyHashOnce(paths[0]); // warm the JIT and the allocator
  return { mbps: median(paths.map((p) => copyHashOnce(p))), runs: paths.length };
}

/** copyHashDirectOnce - copy one file into a new O_DIRECT file in dir while hashing, fsync, remove; MB per CPU-second. */
function copyHashDirectOnce(src, dir, i) {
  const fd = fs.openSync(src, 'r');
  const p = path.join(dir, `.bench-copy-${i}`);
  const out = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_DIRECT, 0o600);
  try {
    const size = fs.fstatSync(fd).size;
    if (size % 4096 !== 0) throw new Error(`${src}: the direct bound needs a size in whole 4 KiB blocks`);
    const buf = Buffer.from(native.alignedBuffer(CHUNK));
    const c0 = process.cpuUsage();
    copyAndHashSync(src, fd, out, buf, size);
    fs.fsyncSync(out);
    // A direct write waits for the device with the core idle, and the pipeline overlaps that wait with
    // other work: what it costs the ceiling is CPU time.
    const c = process.cpuUsage(c0);
    return size / ((c.user + c.system) / 1e6) / 1e6;
  } finally {
    fs.closeSync(out);
    fs.closeSync(fd);
    fs.rmSync(p, { force: true });
  }
}

/** copyHashDirectRate - median single-core copy+SHA-256 into O_DIRECT files in `dir`, fsynced; MB per CPU-second. */
export function copyHashDirectRate(paths, dir) {
  return { mbps: median(paths.map((p, i) => copyHashDirectOnce(p, dir, i))), runs: paths.length };
}

/** directStream - write (`src` null) or read `bytes` of a file with O_DIRECT, 4 MiB at a time, one request in flight. */
async function directStream(file, bytes, write) {
  const fh = await fs.promises.open(file, (write ? fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL : fs.constants.O_RDONLY) | fs.constants.O_DIRECT, 0o600);
  try {
    const buf = Buffer.from(native.alignedBuffer(4 << 20));
    if (write) buf.set(randomBytes(buf.length));
    for (let pos = 0; pos < bytes; pos += buf.length) {
      const len = Math.min(buf.length, bytes - pos);
      const { bytesRead = 0, bytesWritten = 0 } = write ? await fh.write(buf, 0, len, pos) : await fh.read(buf, 0, len, pos);
      if ((write ? bytesWritten : bytesRead) !== len) throw new Error(`${file}: short ${write ? 'write' : 'read'} at ${pos}`);
    }
    if (write) await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * diskMixRate - MB/s of pipeline bytes the disk allows: two fresh 256 MiB files written and fsynced while
 * 256 MiB of an existing (fsynced) file is read, all O_DIRECT; bytes moved per second over 3. Median of 3.
 */
export async function diskMixRate(dir, readPaths, bytes = 256 << 20) {
  const rates = [];
  for (let i = 0; i < 3; i++) {
    const outs = [0, 1].map((k) => path.join(dir, `.bench-disk-${i}-${k}`));
    try {
      const t0 = performance.now();
      await Promise.all([...outs.map((p) => directStream(p, bytes, true)), directStream(readPaths[i % readPaths.length], bytes, false)]);
      rates.push((3 * bytes) / ((performance.now() - t0) / 1000) / 1e6 / 3);
    } finally {
      for (const p of outs) fs.rmSync(p, { force: true });
    }
  }
  return { mbps: median(rates), runs: rates };
}

/** reportBody - a report body like the one egress signs for an accepted 4 KiB text file. */
function reportBody(keyId, i, sha256) {
  const now = new Date().toISOString();
  const name = `s-${String(i).padStart(5, '0')}.txt`;
  return {
    format: REPORT_FORMAT,
    station: 'sluice-dev',
    software: 'sluice 0.1.0',
    key: keyId,
    transfer: `bench-${i}-${randomBytes(8).toString('hex')}`,
    name: { original: name, stored: name },
    size: 4096,
    sha256,
    verdict: 'accepted',
    reason: '',
    checks: [
      { name: 'size-limit', result: 'pass', reason: 'size 4096 bytes is within the limit of 4294967296 bytes', engine: 'sluice size-limit' },
      { name: 'file-type', result: 'pass', reason: 'content type txt is allowed', engine: 'file-type 21.3.4 + sluice text scan' },
      { name: 'extension-match', result: 'pass', reason: 'extension .txt matches content type txt', engine: 'file-type 21.3.4 + sluice text scan' },
    ],
    times: { received: now, checked: now, reported: now },
  };
}

/** perFileFloor - files/s of the minimal per-file work in one process, nothing overlapped. */
export async function perFileFloor(dir, n = 300) {
  const keysDir = path.join(dir, 'keys');
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  writeKeyFiles(keysDir, { name: 'floor' });
  const secret = loadSecretKey(path.join(keysDir, 'floor.key'));
  const keyId = keyIdOfSecret(secret);
  const pool = new SignerPool(secret, { inline: true });
  const out = path.join(dir, 'out');
  fs.mkdirSync(out, { recursive: true });
  const data = randomBytes(4096);
  const sha = createHash('sha256').update(data).digest('hex');
  let signMs = 0;
  const one = async (i) => {
    const t = performance.now();
    await pool.signAndSerialize(reportBody(keyId, i, sha));
    signMs += performance.now() - t;
    writeDurable(out, `f-${i}`, data, 0o640);
    writeDurable(out, `f-${i}.r`, data, 0o640);
  };
  for (let i = 0; i < 20; i++) await one(-1 - i); // warm-up, not timed
  signMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one(i);
  const s = (performance.now() - t0) / 1000;
  await pool.close();
  // Left in place until the figure ends: deleting them now would leave thousands of recently deleted inodes for the
  // pipeline's own files to step over (ext4 without a journal; docs/performance.md).
  return { filesPerSec: n / s, msPerFile: (s * 1000) / n, signMsPerFile: signMs / n, n };
}

/** fsyncPath - open, fsync, close: a directory's entries made durable, as core's fsyncDir. */
function fsyncPath(p) {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

/** filesystemFloor - CPU ms per file of the three stages' per-file filesystem steps, synchronously (see DESCRIPTION). */
export function filesystemFloor(dir, n = 500) {
  const sub = (name) => {
    const p = path.join(dir, name);
    fs.mkdirSync(p, { recursive: true, mode: 0o700 });
    return p;
  };
  const [inbox, spool, outbox, state, log] = ['inbox', 'spool', 'outbox', 'state', 'log'].map(sub);
  const data = randomBytes(4096);
  const warm = 20;
  for (let i = 0; i < warm + n; i++) fs.writeFileSync(path.join(inbox, `f-${i}`), data);
  fsyncPath(inbox);
  const journal = fs.openSync(path.join(state, 'journal.log'), 'a', 0o600);
  const leaves = fs.openSync(path.join(log, 'leaves'), 'a', 0o640);
  const heads = fs.openSync(path.join(log, 'heads'), 'a', 0o640);
  const buf = Buffer.alloc(64 << 10);
  const hashed = (fd, out) => {
    const got = fs.readSync(fd, buf, 0, buf.length, 0);
    createHash('sha256').update(buf.subarray(0, got)).digest();
    fs.writeSync(out, buf, 0, got, 0);
  };
  const meta = JSON.stringify({ id: 'x'.repeat(25), name: 'f-00000', rawName: 'Zi0wMDAwMA==', size: 4096, sha256: 'a'.repeat(64), receivedAt: new Date().toISOString(), refusal: '', source: { dev: 1, ino: 1 } });
  const intent = `${JSON.stringify({ op: 'intend', entry: { body: 'b'.repeat(900) } })}\n`;
  const report = 'r'.repeat(3000);
  const one = (i) => {
    // ingress
    const up = path.join(inbox, `f-${i}`);
    const st = fs.lstatSync(up);
    const fd = fs.openSync(up, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    fs.fstatSync(fd);
    native.setLease(fd, C.F_RDLCK);
    const tmp = path.join(spool, `.tmp-${i}.data`);
    const copy = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    hashed(fd, copy);
    fs.fstatSync(fd);
    fs.fsyncSync(copy);
    fs.closeSync(copy);
    fs.renameSync(tmp, path.join(spool, `${i}.data`));
    const mtmp = path.join(spool, `.tmp-${i}.json`);
    const m = fs.openSync(mtmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    fs.writeSync(m, meta);
    fs.fsyncSync(m);
    fs.closeSync(m);
    fs.renameSync(mtmp, path.join(spool, `${i}.json`));
    fsyncPath(spool);
    if (fs.lstatSync(up).ino !== st.ino) throw new Error(`${up} changed`);
    const aside = path.join(inbox, `.aside-${i}`);
    fs.renameSync(up, aside);
    native.getLease(fd);
    fs.unlinkSync(aside);
    fsyncPath(inbox);
    native.setLease(fd, C.F_UNLCK);
    fs.closeSync(fd);
    // transit
    const spooled = fs.openSync(path.join(spool, `${i}.data`), fs.constants.O_RDONLY);
    const sealed = native.memfdCreate('floor');
    hashed(spooled, sealed);
    native.addSeals(sealed, ALL_SEALS);
    // egress
    const own = fs.openSync(outbox, C.O_TMPFILE | fs.constants.O_RDWR, 0o640);
    hashed(sealed, own);
    fs.writeSync(journal, intent);
    fs.fdatasyncSync(journal);
    fs.writeSync(leaves, buf, 0, 1100);
    fs.fdatasyncSync(leaves);
    fs.writeSync(heads, buf, 0, 6500);
    fs.fdatasyncSync(heads);
    const rep = fs.openSync(outbox, C.O_TMPFILE | fs.constants.O_RDWR, 0o640);
    fs.writeSync(rep, report);
    fs.fsyncSync(rep);
    fs.fsyncSync(own);
    native.linkFd(own, path.join(outbox, `f-${i}`));
    native.linkFd(rep, path.join(outbox, `f-${i}.sluice.json`));
    fsyncPath(outbox);
    fs.writeSync(journal, `{"op":"done","id":"${i}"}\n`);
    for (const x of [rep, own, sealed, spooled]) fs.closeSync(x);
    // ingress, after the ack
    fs.unlinkSync(path.join(spool, `${i}.json`));
    fs.unlinkSync(path.join(spool, `${i}.data`));
    fsyncPath(spool);
  };
  for (let i = 0; i < warm; i++) one(i);
  const t0 = process.cpuUsage();
  for (let i = warm; i < warm + n; i++) one(i);
  const used = process.cpuUsage(t0);
  for (const fd of [journal, leaves, heads]) fs.closeSync(fd);
  return { cpuMsPerFile: (used.user + used.system) / 1000 / n, kernelMsPerFile: used.system / 1000 / n, n };
}
