/*
 * NAME
 *   bounds - what this machine allows, measured in the same run as the pipeline
 *
 * SYNOPSIS
 *   import { copyHashRate, durableWriteRate, perFileFloor } from './bounds.mjs';
 *   copyHashRate(paths)               // MB/s: one core, copy + SHA-256 into a fresh memfd
 *   copyHashFileRate(paths, dir)      // MB/s: one core, copy + SHA-256 into a new file in dir, fsync
 *   copyHashDirectRate(paths, dir)    // MB/s: the same with O_DIRECT writes (egress's outbox copy)
 *   durableWriteRate(dir, bytes)      // MB/s: write + fsync of fresh blocks on the pipeline's disk
 *   await perFileFloor(dir, n)        // files/s (and ms signing): one process, per file one hybrid signature + two durable 4 KiB writes
 *
 * DESCRIPTION
 *   Every figure `make bench` prints is a ratio against one of these,
 *   measured minutes apart on the same machine, because these machines are
 *   shared and noisy and an absolute MB/s means little.
 *
 *   copyHashRate is the work each stage does per byte (invariant 1: own
 *   copy, hashed while copying), done the fastest simple way: synchronous
 *   read(2)/write(2) of 1 MiB (Sluice's COPY_CHUNK) into a fresh memfd, with
 *   node:crypto SHA-256, on one thread. Sources are page-cached inputs, as
 *   the pipeline's are. Median of the given files.
 *
 *   copyHashFileRate is the same copy into a new file on the pipeline's
 *   filesystem, fsynced at the end: what ingress does per byte (into its
 *   spool). On Linux a buffered write into a file's page cache, its
 *   writeback and the fsync cost noticeably more CPU than a write into
 *   shmem. copyHashDirectRate is egress's copy into the outbox, which
 *   writes with O_DIRECT and skips the page cache. With copyHashRate
 *   (transit) they give the CPU ceiling of the three stages on N cores:
 *   N / (1/file + 1/memfd + 1/direct) (run.mjs).
 *
 *   durableWriteRate is the disk's rate for fresh blocks written once and
 *   fsynced, which the pipeline does twice per byte (ingress spool, egress
 *   outbox): it is the other bound of the large-file figure. Median of three.
 *
 *   perFileFloor is the least work one file needs, done in one process with
 *   nothing overlapped: a report signed as egress signs it (ML-DSA-65 and
 *   Ed25519 over the canonical bytes, both verified, serialized: the
 *   SignerPool inline path) and two durable 4 KiB writes (write a temporary
 *   file, fsync, rename, fsync the directory: writeDurable from core). A
 *   pipeline that overlaps stages on two cores should beat it.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { native, ALL_SEALS } from '@sluice/native';
import { writeDurable } from '@sluice/core';
import { SignerPool, writeKeyFiles, loadSecretKey, keyIdOfSecret } from '@sluice/report';
import { median } from './stats.mjs';

const CHUNK = 1 << 20;

/** copyHashOnce - copy one file into a fresh memfd while hashing; MB/s. */
function copyHashOnce(src) {
  const fd = fs.openSync(src, 'r');
  const memfd = native.memfdCreate('bench-copy');
  try {
    const size = fs.fstatSync(fd).size;
    fs.ftruncateSync(memfd, size);
    const buf = Buffer.allocUnsafe(CHUNK);
    const hash = createHash('sha256');
    const t0 = performance.now();
    for (let pos = 0; pos < size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
      if (n === 0) throw new Error(`${src} shrank`);
      let w = 0;
      while (w < n) w += fs.writeSync(memfd, buf, w, n - w, pos + w);
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    hash.digest();
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

/** copyHashFileOnce - copy one file into a new file in dir while hashing, fsync, remove; MB/s. `direct`: O_DIRECT from an aligned buffer, as egress. */
function copyHashFileOnce(src, dir, i, direct = false) {
  const fd = fs.openSync(src, 'r');
  const p = path.join(dir, `.bench-copy-${i}`);
  const out = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (direct ? fs.constants.O_DIRECT : 0), 0o600);
  try {
    const size = fs.fstatSync(fd).size;
    if (direct && size % 4096 !== 0) throw new Error(`${src}: the direct bound needs a size in whole 4 KiB blocks`);
    const buf = direct ? Buffer.from(native.alignedBuffer(CHUNK)) : Buffer.allocUnsafe(CHUNK);
    const hash = createHash('sha256');
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let pos = 0; pos < size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
      if (n === 0) throw new Error(`${src} shrank`);
      let w = 0;
      while (w < n) w += fs.writeSync(out, buf, w, n - w, pos + w);
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    hash.digest();
    fs.fsyncSync(out);
    // A direct write waits for the device with the core idle, and the pipeline overlaps that wait with
    // other work: what it costs the ceiling is CPU time. A buffered copy keeps its core busy throughout.
    const c = process.cpuUsage(c0);
    const seconds = direct ? (c.user + c.system) / 1e6 : (performance.now() - t0) / 1000;
    return size / seconds / 1e6;
  } finally {
    fs.closeSync(out);
    fs.closeSync(fd);
    fs.rmSync(p, { force: true });
  }
}

/** copyHashFileRate - median single-core copy+SHA-256+fsync rate into files in `dir`, MB/s. */
export function copyHashFileRate(paths, dir) {
  return { mbps: median(paths.map((p, i) => copyHashFileOnce(p, dir, i))), runs: paths.length };
}

/** copyHashDirectRate - the same with O_DIRECT writes from an aligned buffer (egress's outbox copy), MB per CPU-second. */
export function copyHashDirectRate(paths, dir) {
  return { mbps: median(paths.map((p, i) => copyHashFileOnce(p, dir, i, true))), runs: paths.length };
}

/** durableWriteRate - write `bytes` of random data to a new file and fsync it; median of 3, MB/s. */
export function durableWriteRate(dir, bytes = 256 << 20) {
  const block = randomBytes(4 << 20);
  const rates = [];
  for (let i = 0; i < 3; i++) {
    const p = path.join(dir, `.bench-disk-${i}`);
    const fd = fs.openSync(p, 'wx', 0o600);
    try {
      const t0 = performance.now();
      for (let pos = 0; pos < bytes; pos += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, bytes - pos), pos);
      fs.fsyncSync(fd);
      rates.push(bytes / ((performance.now() - t0) / 1000) / 1e6);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(p, { force: true });
    }
  }
  return { mbps: median(rates), runs: rates };
}

/** reportBody - a report body like the one egress signs for an accepted 4 KiB text file. */
function reportBody(keyId, i, sha256) {
  const now = new Date().toISOString();
  const name = `s-${String(i).padStart(5, '0')}.txt`;
  return {
    format: 'sluice-report/1',
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
