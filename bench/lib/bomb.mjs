/*
 * NAME
 *   bomb - the archive bombs of the bench's "bomb" figure, and how one is measured
 *
 * SYNOPSIS
 *   import { writeBombs, measureBomb } from './lib/bomb.mjs';
 *
 *   const files = await writeBombs(dir);          // [{ name, path, what }]
 *   const m = measureBomb(file.path, dir, file.archives);   // { ms, growthBytes, outcome, reason }
 *
 * DESCRIPTION
 *   Three uploads that expand to far more than transit could hold, written
 *   here byte by byte (the zip writer below only writes; the inspector reads
 *   with yauzl):
 *     nest.zip     42.zip-style: 16 zips in a zip, four levels down, each
 *                  leaf holding 1 GiB of zeros: 64 TiB if unpacked;
 *     overlap.zip  the overlapping-entry bomb: 10,000 central directory
 *                  entries sharing one local header and one deflate stream
 *                  of 1 GiB of zeros: 10 TB if each were inflated;
 *     ratio.zip    one member of 1 GiB of zeros; and ratio.gz, the same gzipped.
 *   measureBomb() runs the archive check on one of them in a fresh Node
 *   process (packages/transit/dist, the defaults of transit.archives) and
 *   reports its time and its RSS growth (the peak, VmHWM of
 *   /proc/self/status, less the RSS before the check started; not getrusage's
 *   maxRSS, which a child inherits from the process that forked it). The goal (docs/capacity.md, "Archives"): each refused
 *   within 2 s, growing by at most 64 MiB.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';

const MiB = 1 << 20;
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

/** deflateZeros - a raw deflate stream of n zero bytes, built 1 MiB at a time, with its CRC-32. */
async function deflateZeros(n) {
  const d = zlib.createDeflateRaw({ level: 9 });
  const parts = [];
  d.on('data', (c) => parts.push(c));
  const zero = Buffer.alloc(MiB);
  let crc = 0;
  for (let left = n; left > 0; left -= MiB) {
    const chunk = left >= MiB ? zero : zero.subarray(0, left);
    crc = zlib.crc32(chunk, crc);
    if (!d.write(chunk)) await new Promise((r) => d.once('drain', r));
  }
  await new Promise((r) => d.end(r));
  return { data: Buffer.concat(parts), crc, size: n };
}

/** zip - a zip of [name, { data, crc, size, method }] members, with optional extra central entries. */
function zip(members, extraCentral = []) {
  const locals = [];
  const central = [];
  let at = 0;
  for (const [name, m] of members) {
    const n = Buffer.from(name);
    const header = Buffer.concat([u32(0x04034b50), u16(20), u16(0), u16(m.method), u16(0), u16(0), u32(m.crc), u32(m.data.length), u32(m.size), u16(n.length), u16(0), n]);
    central.push(Buffer.concat([u32(0x02014b50), u16(20), u16(20), u16(0), u16(m.method), u16(0), u16(0), u32(m.crc), u32(m.data.length), u32(m.size), u16(n.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(at), n]));
    locals.push(header, m.data);
    at += header.length + m.data.length;
  }
  for (const c of extraCentral) central.push(c(central[0]));
  const cd = Buffer.concat(central);
  return Buffer.concat([...locals, cd, u32(0x06054b50), u16(0), u16(0), u16(central.length), u16(central.length), u32(cd.length), u32(at), u16(0)]);
}

const deflated = (bytes) => ({ data: zlib.deflateRawSync(bytes, { level: 9 }), crc: zlib.crc32(bytes), size: bytes.length, method: 8 });

/** writeBombs - write the bombs into dir; returns their paths. */
export async function writeBombs(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const zeros = { ...(await deflateZeros(1024 * MiB)), method: 8 };
  const out = [];
  const put = (name, bytes, what, archives = {}) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    out.push({ name, path: p, what, bytes: bytes.length, archives });
  };

  let level = zip([['0.txt', zeros]]);
  for (let i = 0; i < 4; i++) {
    const inner = deflated(level);
    level = zip(Array.from({ length: 16 }, (_, k) => [`${k}.zip`, inner]));
  }
  put('nest.zip', level, '42.zip-style nest, 16 per level, 4 levels, 1 GiB leaves');

  // 10,000 directory entries, all pointing at the one local header at offset 0.
  const copies = Array.from({ length: 9_999 }, (_, i) => (first) => {
    const c = Buffer.from(first);
    const name = Buffer.from(String(i + 1).padStart(5, '0'));
    c.writeUInt16LE(name.length, 28);
    return Buffer.concat([c.subarray(0, 46), name]);
  });
  put('overlap.zip', zip([['00000', zeros]], copies), 'overlapping entries: 10,000 sharing one 1 GiB deflate stream (ratio bounds lifted: the layout rule alone)', { maxMemberRatio: 1_000_000, maxRatio: 1_000_000 });
  put('ratio.zip', zip([['zeros.txt', zeros]]), 'one member, 1 GiB of zeros');
  const gz = execFileSync('gzip', ['-c', '-9'], { input: Buffer.alloc(256 * MiB), maxBuffer: 64 * MiB });
  put('ratio.gz', gz, 'gzip of 256 MiB of zeros');
  return out;
}

const CHILD = `
import * as fs from 'node:fs';
const { archiveCheck } = await import(process.argv[1]);
const { parseConfig } = await import(process.argv[2]);
const file = process.argv[3];
const cfg = parseConfig({ transit: { allowTypes: ['txt', 'zip', 'gz', 'tar', 'tar.gz'], archives: JSON.parse(process.argv[5]) } });
const { enabled, ...limits } = cfg.transit.archives;
const check = archiveCheck({ limits, allow: cfg.transit.allowTypes, extensionMatch: true, spillDir: process.argv[4] });
const fd = fs.openSync(file, 'r');
const size = fs.fstatSync(fd).size;
globalThis.gc?.();
const before = process.memoryUsage().rss;
const t0 = performance.now();
const r = await check.run({ fd, size, sha256hex: '0'.repeat(64), name: file.split('/').pop() }, new AbortController().signal);
const ms = performance.now() - t0;
const peak = Number(/VmHWM:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
process.stdout.write(JSON.stringify({ ms, growthBytes: Math.max(0, peak - before), outcome: r.outcome, reason: r.reason }));
`;

/** measureBomb - run the archive check on one bomb in a fresh process: time and RSS growth. */
export function measureBomb(file, spillDir, archives = {}) {
  const root = new URL('../../', import.meta.url);
  const check = new URL('packages/transit/dist/checks/index.js', root).href;
  const core = new URL('packages/core/dist/index.js', root).href;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, check, core, file, spillDir, JSON.stringify(archives)], { encoding: 'utf8', cwd: new URL('packages/transit/', root).pathname });
  return JSON.parse(out);
}
