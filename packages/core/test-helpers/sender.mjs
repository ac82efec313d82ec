// sender - an upstream stage in its own process (maybe under another uid),
// honest or not. Prints one JSON line when done.
//
//   node sender.mjs SOCK KIND FILE [CLAIM_HEX]
//
// KIND: the descriptor sent with a valid IngressTransfer record
//   rdonly     FILE opened O_RDONLY (honest)
//   writable   FILE opened O_RDWR, claims truthful
//   fifo       FILE is a FIFO: the sender puts one byte in it first and
//              afterwards reports whether that byte is still there
//   socket     its own connected socket
//   dir        FILE's directory
//   devzero    /dev/zero
//   opath      FILE opened O_PATH
//   nofd       no descriptor at all
//   rewrite    FILE O_RDONLY while it keeps flipping FILE between two
//              contents of the same length (FILE and FILE.b) for 300 ms
//   garbage    random bytes with FILE O_RDONLY
//   oversized  a 100 KiB record with FILE O_RDONLY
//   truncated  the first half of a valid record with FILE O_RDONLY
//   empty      a zero-length record (looks like EOF)
// Then it waits until the receiver closes the connection (or 1.5 s).
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const native = require(fileURLToPath(new URL('../../native/build/Release/sluice_native.node', import.meta.url)));
const { encodeIngressTransfer } = await import(new URL('../../protocol/dist/index.js', import.meta.url).href);

const [sock, kind, file, claimHex] = process.argv.slice(2);
const O_PATH = 0o10000000;
// The sender's own limits, far above the receiver's: what the receiver accepts is its policy, not ours.
const SENDER_LIMITS = { maxRecordBytes: 1 << 20, maxNameBytes: 1 << 20, maxFileSize: Number.MAX_SAFE_INTEGER };

function record(size, sha256) {
  return Buffer.from(encodeIngressTransfer({
    id: `t-${process.pid}`,
    name: path.basename(file ?? 'x'),
    size,
    sha256,
    receivedAt: new Date().toISOString(),
    refusal: '',
  }, SENDER_LIMITS));
}

function truthful(p) {
  const bytes = fs.readFileSync(p);
  return { size: bytes.length, sha256: claimHex ? Buffer.from(claimHex, 'hex') : createHash('sha256').update(bytes).digest() };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function untilClosed(fd, ms = 1500) {
  const end = Date.now() + ms;
  const replies = [];
  while (Date.now() < end) {
    let r;
    try {
      r = native.recv(fd, 65536);
    } catch (e) {
      return { replies, end: e.code };
    }
    if (r === null) { await sleep(10); continue; }
    if (r.data.length === 0) return { replies, end: 'eof' };
    replies.push(r.data.toString('hex'));
    if (r.fd >= 0) fs.closeSync(r.fd);
  }
  return { replies, end: 'timeout' };
}

const conn = native.connect(sock);
const out = { kind, pid: process.pid, uid: process.getuid() };
let send = -1;
let data;
let stopFlip = null;
try {
  switch (kind) {
    case 'rdonly': case 'garbage': case 'oversized': case 'truncated': {
      const t = truthful(file);
      send = fs.openSync(file, 'r');
      data = record(t.size, t.sha256);
      if (kind === 'garbage') data = randomBytes(200);
      if (kind === 'oversized') data = Buffer.concat([data, Buffer.alloc(100 * 1024, 0x41)]);
      if (kind === 'truncated') data = data.subarray(0, Math.floor(data.length / 2));
      break;
    }
    case 'writable': {
      const t = truthful(file);
      send = fs.openSync(file, 'r+');
      data = record(t.size, t.sha256);
      break;
    }
    case 'fifo': {
      const w = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
      fs.writeSync(w, 'x');
      send = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      data = record(1, createHash('sha256').update('x').digest());
      stopFlip = () => {
        const b = Buffer.alloc(8);
        let n = 0;
        try { n = fs.readSync(send, b, 0, 8, null); } catch (e) { out.fifoRead = e.code; }
        out.fifoStillHas = b.subarray(0, n).toString();
        fs.closeSync(w);
      };
      break;
    }
    case 'socket':
      send = conn;
      data = record(0, createHash('sha256').digest());
      break;
    case 'dir':
      send = fs.openSync(path.dirname(file), 'r');
      data = record(4096, createHash('sha256').digest());
      break;
    case 'devzero':
      send = fs.openSync('/dev/zero', 'r');
      data = record(0, createHash('sha256').digest());
      break;
    case 'opath': {
      const t = truthful(file);
      send = fs.openSync(file, O_PATH);
      data = record(t.size, t.sha256);
      break;
    }
    case 'nofd': {
      const t = truthful(file);
      data = record(t.size, t.sha256);
      break;
    }
    case 'rewrite': {
      const a = fs.readFileSync(file);
      const b = fs.readFileSync(`${file}.b`);
      const t = truthful(file);
      send = fs.openSync(file, 'r');
      const w = fs.openSync(file, 'r+');
      let flip = true;
      const timer = setInterval(() => {
        // Rewrite in place, in two halves, so a reader can see a mix.
        const src = flip ? b : a;
        fs.writeSync(w, src, 0, src.length >> 1, 0);
        fs.writeSync(w, src, src.length >> 1, src.length - (src.length >> 1), src.length >> 1);
        flip = !flip;
      }, 0);
      stopFlip = () => { clearInterval(timer); fs.closeSync(w); };
      setTimeout(() => stopFlip && clearInterval(timer), 300);
      data = record(t.size, t.sha256);
      break;
    }
    case 'empty':
      data = Buffer.alloc(0);
      break;
    default:
      throw new Error(`sender.mjs: unknown kind ${kind}`);
  }
  try {
    out.sent = native.send(conn, data, send === conn ? conn : send);
  } catch (e) {
    out.sendError = e.code;
  }
  Object.assign(out, await untilClosed(conn));
} finally {
  if (stopFlip) stopFlip();
  if (send >= 0 && send !== conn) fs.closeSync(send);
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
