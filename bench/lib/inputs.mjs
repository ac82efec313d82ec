/*
 * NAME
 *   inputs - benchmark uploads: large PNG-shaped files and small text files
 *
 * SYNOPSIS
 *   import { writeLargeInput, writeSmallInputs, syncAll } from './inputs.mjs';
 *   const { path, size, sha256 } = writeLargeInput(dir, 'big-0.png', 256 * MiB, block);
 *   const files = writeSmallInputs(dir, 2000, 4096);   // [{ name, path, sha256 }]
 *
 * DESCRIPTION
 *   Inputs must be accepted by the default `sluice dev` checks (size limit,
 *   file-type allowlist, extension match), or the figure would measure the
 *   rejection path, which copies nothing into the outbox.
 *
 *   Large files are PNGs as far as any reader of the first 64 KiB can tell:
 *   the PNG signature, a valid IHDR chunk and an IDAT chunk header; the rest
 *   is incompressible random data (one random block repeated, with a unique
 *   prefix per file so every digest differs). file-type says png; the
 *   clean-text scan stops at byte 0 (0x89), exactly as with a real image.
 *   Nothing in Sluice decompresses, so the repetition cannot flatter it.
 *
 *   Small files are 4 KiB of plain ASCII text lines named *.txt, each one
 *   different; they are accepted as txt (the text scan reads all of it).
 *
 *   The SHA-256 of every input is computed while it is written, so the
 *   benchmark can check each report states the bytes that went in.
 *
 *   Inputs are written, then fsynced (syncAll) before any timing starts: a
 *   real upload has been written by sshd long before it is renamed into
 *   place, and dirty input pages flushing in the background would steal the
 *   disk from the fsyncs being measured.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

/** crc32 - the PNG chunk checksum (ISO 3309), for a valid IHDR. */
function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

/** pngHeader - signature, IHDR (1000x1000 RGBA), and the header of an IDAT chunk of `idatLength` bytes. */
function pngHeader(idatLength) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdrData = Buffer.alloc(13);
  ihdrData.writeUInt32BE(1000, 0);
  ihdrData.writeUInt32BE(1000, 4);
  ihdrData[8] = 8; // bit depth
  ihdrData[9] = 6; // RGBA
  const ihdrType = Buffer.from('IHDR');
  const ihdr = Buffer.alloc(4 + 4 + 13 + 4);
  ihdr.writeUInt32BE(13, 0);
  ihdrType.copy(ihdr, 4);
  ihdrData.copy(ihdr, 8);
  ihdr.writeUInt32BE(crc32(Buffer.concat([ihdrType, ihdrData])), 21);
  const idat = Buffer.alloc(8);
  idat.writeUInt32BE(Math.min(idatLength, 0x7fffffff), 0);
  Buffer.from('IDAT').copy(idat, 4);
  return Buffer.concat([sig, ihdr, idat]);
}

/** randomBlock - the incompressible block large inputs are made of. */
export function randomBlock(bytes = 8 << 20) {
  return randomBytes(bytes);
}

/** writeLargeInput - a PNG-shaped file of exactly `size` bytes; returns its path and SHA-256. */
export function writeLargeInput(dir, name, size, block) {
  const p = path.join(dir, name);
  const head = Buffer.concat([pngHeader(size - 41), randomBytes(32)]); // 41 = signature + IHDR chunk + IDAT chunk header
  const hash = createHash('sha256');
  const fd = fs.openSync(p, 'wx', 0o644);
  try {
    let pos = 0;
    const put = (buf) => {
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, pos + off);
      hash.update(buf);
      pos += buf.length;
    };
    put(head.subarray(0, Math.min(head.length, size)));
    while (pos < size) put(block.subarray(0, Math.min(block.length, size - pos)));
  } finally {
    fs.closeSync(fd);
  }
  return { name, path: p, size, sha256: hash.digest('hex') };
}

const WORDS = 'sluice ingress transit egress report digest spool inbox outbox sealed memfd ack durable verdict checks bytes names upload station'.split(' ');

/** textOf - `size` bytes of clean ASCII text lines, unique by `seed`. */
function textOf(seed, size) {
  let s = `file ${seed} ${randomBytes(8).toString('hex')}\n`;
  let x = seed * 2654435761 + 1;
  while (s.length < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += WORDS[x % WORDS.length] + ((x >>> 8) % 9 === 0 ? '\n' : ' ');
  }
  return Buffer.from(s.slice(0, size - 1) + '\n', 'ascii');
}

/** writeSmallInputs - n text files of `size` bytes named s-00000.txt...; returns [{ name, path, sha256 }]. */
export function writeSmallInputs(dir, n, size, prefix = 's') {
  const out = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${String(i).padStart(5, '0')}.txt`;
    const p = path.join(dir, name);
    const data = textOf(i, size);
    fs.writeFileSync(p, data, { flag: 'wx', mode: 0o644 });
    out.push({ name, path: p, size, sha256: createHash('sha256').update(data).digest('hex') });
  }
  return out;
}

/** syncAll - flush every dirty page to disk (inputs), so timings start from a quiet disk. */
export function syncAll() {
  execFileSync('sync');
}
