import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChecks, type CheckInput, type CheckRun } from './check.js';
import { CHUNK_BYTES, FILE_TYPE_VERSION, PREFIX_BYTES, detectContent, detectContentOf, type ContentInfo } from './content.js';
import { sizeLimitCheck } from './size.js';
import { fileTypeCheck } from './file-type.js';
import { extensionMatchCheck } from './extension.js';

// Samples are built here (magic bytes plus filler), never committed as binaries.
const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const MiB = 1024 * 1024;

const SAMPLES = {
  png: Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    u32be(13), Buffer.from('IHDR'), Buffer.alloc(13, 1), u32be(0),
    u32be(100), Buffer.from('IDAT'), Buffer.alloc(100, 7), u32be(0),
    u32be(0), Buffer.from('IEND'), u32be(0),
  ]),
  jpg: Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), Buffer.alloc(1000, 0x42), Buffer.from([0xff, 0xd9])]),
  pdf: Buffer.concat([
    Buffer.from('%PDF-1.7\n%'),
    Buffer.from([0xe2, 0xe3, 0xcf, 0xd3]), // the customary binary comment line
    Buffer.from('\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n'),
  ]),
  elf: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(8), Buffer.from([2, 0, 0x3e, 0]), Buffer.alloc(2000)]),
  zip: (() => {
    const name = Buffer.from('hello.txt');
    const data = Buffer.from('hello world\n');
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt32LE(data.length, 18);
    header.writeUInt32LE(data.length, 22);
    header.writeUInt16LE(name.length, 26);
    return Buffer.concat([header, name, data, Buffer.from('PK\x05\x06'), Buffer.alloc(18)]);
  })(),
  txt: Buffer.from('Dear operator,\nthis is plain text.\n'),
  csv: Buffer.from('name,age\nalice,30\nbob,41\n'),
  json: Buffer.from('{"name": "alice", "tags": ["a", "b"], "n": 1.5}\n'),
  esc: Buffer.from('harmless\n\u001b]0;pwned\u0007\u001b[2J\n'),
  invalidUtf8: Buffer.from([...Buffer.from('caf'), 0xe9, 0x0a]),
  empty: Buffer.alloc(0),
  // "BM" is the whole bmp signature; "MZ" the whole exe signature.
  bmText: Buffer.from('BMW sales report\n'),
};

let dir: string;
const fds: number[] = [];
let counter = 0;

/** fileInput - a temporary file holding bytes, opened read-only: the CheckInput transit would build. */
function fileInput(bytes: Uint8Array, name: string): CheckInput {
  const path = join(dir, `f${counter++}`);
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  fds.push(fd);
  return { fd, size: bytes.length, sha256hex: createHash('sha256').update(bytes).digest('hex'), name };
}

/** bigText - size bytes of ASCII lines, with `patch` written at `at`. */
function bigText(size: number, patch?: { at: number; bytes: Uint8Array }): Buffer {
  const line = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n');
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i += line.length) line.copy(buf, i);
  if (patch) buf.set(patch.bytes, patch.at);
  return buf;
}

const detect = (bytes: Uint8Array): Promise<ContentInfo> => {
  const input = fileInput(bytes, 'x');
  return detectContentOf(input.fd, input.size, new AbortController().signal);
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-content-'));
});

afterAll(() => {
  for (const fd of fds) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

describe('detectContent', () => {
  const table: Array<[keyof typeof SAMPLES, string, string[]]> = [
    ['png', 'png', ['png']],
    ['jpg', 'jpg', ['jpg']],
    ['pdf', 'pdf', ['pdf']],
    ['elf', 'elf', ['elf']],
    ['zip', 'zip', ['zip']],
    ['txt', 'txt', ['txt']],
    ['csv', 'csv', ['csv', 'txt']],
    ['json', 'json', ['json', 'txt']],
    ['esc', 'unknown', ['unknown']],
    ['invalidUtf8', 'unknown', ['unknown']],
    ['empty', 'empty', ['empty', 'txt']],
    ['bmText', 'bmp', ['bmp', 'txt']],
  ];
  it.each(table)('%s', async (sample, type, ids) => {
    const info = await detect(SAMPLES[sample]);
    expect(info.type).toBe(type);
    expect(info.ids).toEqual(ids);
  });

  it('says why something is not text', async () => {
    expect((await detect(SAMPLES.esc)).detail).toBe('binary, not text: escape character (ESC, 0x1b) at byte 9');
  });

  it('finds a NUL late in a 5 MiB text file, at its exact offset', async () => {
    const at = 5 * MiB - 3;
    const info = await detect(bigText(5 * MiB, { at, bytes: Uint8Array.of(0) }));
    expect(info.type).toBe('unknown');
    expect(info.detail).toBe(`binary, not text: NUL byte at byte ${at}`);
  });

  it('scans the whole file on either side of the prefix length: a file the prefix holds and one a byte longer', async () => {
    // Up to PREFIX_BYTES the text scan works on the prefix already read; past it, on reads of its own.
    for (const size of [PREFIX_BYTES - 1, PREFIX_BYTES, PREFIX_BYTES + 1]) {
      expect((await detect(bigText(size))).type, `${size} bytes of text`).toBe('txt');
      const info = await detect(bigText(size, { at: size - 1, bytes: Uint8Array.of(0) }));
      expect(info.type, `${size} bytes, a NUL last`).toBe('unknown');
      expect(info.detail).toBe(`binary, not text: NUL byte at byte ${size - 1}`);
    }
    const png = Buffer.concat([SAMPLES.png, Buffer.alloc(PREFIX_BYTES - SAMPLES.png.length, 0)]);
    expect(await detect(png)).toMatchObject({ type: 'png', ids: ['png'] });
  });

  it('accepts multibyte characters split across a read boundary', async () => {
    for (const ch of ['é', '€', '\u{1F600}']) {
      const bytes = Buffer.from(ch);
      for (let back = 1; back < bytes.length; back++) {
        const info = await detect(bigText(3 * CHUNK_BYTES, { at: 2 * CHUNK_BYTES - back, bytes }));
        expect(info.type, `${ch} starting ${back} bytes before the boundary`).toBe('txt');
      }
    }
  });

  it('refuses invalid UTF-8 after the first chunk', async () => {
    const at = 2 * CHUNK_BYTES + 5;
    const info = await detect(bigText(3 * CHUNK_BYTES, { at, bytes: Uint8Array.of(0xc3, 0x28) }));
    expect(info.type).toBe('unknown');
    expect(info.detail).toBe(`binary, not text: invalid UTF-8 in bytes ${2 * CHUNK_BYTES} to ${3 * CHUNK_BYTES - 1}`);
  });

  it('refuses a file shorter than its recorded size (an error, not a verdict)', async () => {
    const input = fileInput(SAMPLES.txt, 'x');
    await expect(detectContentOf(input.fd, input.size + 10, new AbortController().signal)).rejects.toThrow(
      /before its recorded size/,
    );
  });

  it('never reads past the recorded size', async () => {
    const bytes = Buffer.concat([SAMPLES.txt, Buffer.from([0])]);
    const input = fileInput(bytes, 'x');
    const info = await detectContentOf(input.fd, SAMPLES.txt.length, new AbortController().signal);
    expect(info.type).toBe('txt');
  });

  it('does not move the descriptor offset', async () => {
    const input = fileInput(SAMPLES.json, 'x');
    await detectContentOf(input.fd, input.size, new AbortController().signal);
    const buf = Buffer.alloc(4);
    const { readSync } = await import('node:fs');
    expect(readSync(input.fd, buf, 0, 4, null)).toBe(4); // reads from the (unmoved) current offset
    expect(buf.toString()).toBe('{"na');
  });

  it('is memoised per input object', async () => {
    const input = fileInput(SAMPLES.csv, 'x');
    const signal = new AbortController().signal;
    const [a, b] = await Promise.all([detectContent(input, signal), detectContent(input, signal)]);
    expect(a).toBe(b);
    expect(await detectContent(input, signal)).toBe(a);
    expect(await detectContent({ ...input }, signal)).not.toBe(a);
  });

  it('keeps detecting for one caller when another caller gives up', async () => {
    const input = fileInput(bigText(8 * MiB), 'x');
    const quitter = new AbortController();
    const first = detectContent(input, quitter.signal);
    const second = detectContent(input, new AbortController().signal);
    quitter.abort(new Error('gave up'));
    await expect(first).rejects.toThrow('gave up');
    expect((await second).type).toBe('txt');
  });

  it('stops reading when every caller gave up, and starts afresh for a new one', async () => {
    const input = fileInput(bigText(8 * MiB), 'x');
    const quitter = new AbortController();
    const first = detectContent(input, quitter.signal);
    quitter.abort(new Error('gave up'));
    await expect(first).rejects.toThrow('gave up');
    expect((await detectContent(input, new AbortController().signal)).type).toBe('txt');
  });

  it(`pins the file-type version it names (${FILE_TYPE_VERSION})`, () => {
    const candidates = ['../../../../node_modules/file-type/package.json', '../../node_modules/file-type/package.json'];
    for (const rel of candidates) {
      try {
        const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { version: string };
        expect(pkg.version).toBe(FILE_TYPE_VERSION);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    throw new Error('file-type package.json not found');
  });
});

describe('sizeLimitCheck', () => {
  it('passes at the limit and fails above it', async () => {
    const check = sizeLimitCheck({ maxBytes: 10 });
    const signal = new AbortController().signal;
    const at = await check.run(fileInput(Buffer.alloc(10, 0x61), 'a'), signal);
    const above = await check.run(fileInput(Buffer.alloc(11, 0x61), 'a'), signal);
    expect(at.outcome).toBe('pass');
    expect(above).toEqual({ outcome: 'fail', reason: 'size 11 bytes exceeds the limit of 10 bytes', engine: 'sluice size-limit' });
  });

  it.each([-1, 1.5, Number.NaN, '10'])('refuses maxBytes %s at construction', (maxBytes) => {
    expect(() => sizeLimitCheck({ maxBytes: maxBytes as number })).toThrow(TypeError);
  });
});

describe('fileTypeCheck', () => {
  const allow = ['png', 'jpg', 'pdf', 'txt'];
  const run = async (bytes: Uint8Array, allowList = allow): Promise<CheckRun> =>
    fileTypeCheck({ allow: allowList }).run(fileInput(bytes, 'x'), new AbortController().signal);

  it.each([
    ['png', SAMPLES.png],
    ['jpg', SAMPLES.jpg],
    ['pdf', SAMPLES.pdf],
    ['plain text', SAMPLES.txt],
    ['CSV, as txt', SAMPLES.csv],
    ['JSON, as txt', SAMPLES.json],
    ['empty file, as txt', SAMPLES.empty],
    ['text that starts with a bmp signature, as txt', SAMPLES.bmText],
  ])('passes %s', async (_label, bytes) => {
    expect((await run(bytes)).outcome).toBe('pass');
  });

  it('fails an ELF with the documented reason', async () => {
    expect(await run(SAMPLES.elf)).toMatchObject({ outcome: 'fail', reason: 'content type elf is not allowed' });
  });

  it('fails a ZIP', async () => {
    expect((await run(SAMPLES.zip)).reason).toBe('content type zip is not allowed');
  });

  it('fails text with escape sequences as unknown binary', async () => {
    expect((await run(SAMPLES.esc)).reason).toBe(
      'content type unknown (binary, not text: escape character (ESC, 0x1b) at byte 9) is not allowed',
    );
  });

  it('allows only the sub-kind when the list names only the sub-kind', async () => {
    expect((await run(SAMPLES.json, ['json'])).outcome).toBe('pass');
    expect((await run(SAMPLES.txt, ['json'])).reason).toBe('content type txt is not allowed');
    expect((await run(SAMPLES.csv, ['csv'])).outcome).toBe('pass');
    expect((await run(SAMPLES.empty, ['png'])).reason).toBe('content type empty is not allowed');
    expect((await run(SAMPLES.empty, ['empty'])).outcome).toBe('pass');
  });

  it.each([[[]], [['jpeg']], [['png', 'PNG']], [[42]]])('refuses the allowlist %j at construction', (list) => {
    expect(() => fileTypeCheck({ allow: list as string[] })).toThrow(TypeError);
  });

  it('names the likely typo', () => {
    expect(() => fileTypeCheck({ allow: ['jpeg'] })).toThrow(`unknown content type "jpeg" (did you mean 'jpg'?)`);
  });
});

describe('extensionMatchCheck', () => {
  const run = async (bytes: Uint8Array, name: string): Promise<CheckRun> =>
    extensionMatchCheck().run(fileInput(bytes, name), new AbortController().signal);

  const table: Array<[string, Uint8Array, 'pass' | 'fail']> = [
    ['photo.png', SAMPLES.png, 'pass'],
    ['PHOTO.PNG', SAMPLES.png, 'pass'],
    ['photo.jpeg', SAMPLES.jpg, 'pass'],
    ['photo.jpg', SAMPLES.jpg, 'pass'],
    ['photo.png', SAMPLES.pdf, 'fail'],
    ['notes.txt', SAMPLES.elf, 'fail'],
    ['notes.txt', SAMPLES.txt, 'pass'],
    ['notes.md', SAMPLES.txt, 'pass'],
    ['data.csv', SAMPLES.csv, 'pass'],
    ['data.csv', SAMPLES.txt, 'pass'],
    ['data.json', SAMPLES.json, 'pass'],
    ['data.json', SAMPLES.txt, 'fail'],
    ['data.txt', SAMPLES.json, 'pass'],
    ['README', SAMPLES.txt, 'pass'],
    ['program', SAMPLES.elf, 'fail'],
    ['archive.zip', SAMPLES.zip, 'pass'],
    ['report.docx', SAMPLES.zip, 'pass'],
    ['report.pdf', SAMPLES.zip, 'fail'],
    ['script.py', SAMPLES.txt, 'pass'],
    ['script.py', SAMPLES.elf, 'fail'],
    ['evil.exe. ', SAMPLES.png, 'fail'],
    ['invoice\u202Efdp.exe', SAMPLES.pdf, 'fail'],
    ['photo.png', SAMPLES.empty, 'pass'],
    ['blob.bin', SAMPLES.invalidUtf8, 'pass'],
    ['notes.txt', SAMPLES.invalidUtf8, 'fail'],
    ['sales.txt', SAMPLES.bmText, 'pass'],
  ];
  it.each(table)('%j with %#', async (name, bytes, outcome) => {
    expect((await run(bytes, name)).outcome).toBe(outcome);
  });

  it('explains a mismatch', async () => {
    expect((await run(SAMPLES.pdf, 'photo.png')).reason).toBe('extension .png does not match content type pdf (accepted: png)');
    expect((await run(SAMPLES.elf, 'program')).reason).toBe('no extension does not match content type elf (accepted: txt)');
  });
});

describe('runChecks with the content checks', () => {
  const checks = (): ReturnType<typeof sizeLimitCheck>[] => [
    sizeLimitCheck({ maxBytes: 10 * MiB }),
    fileTypeCheck({ allow: ['png', 'jpg', 'pdf', 'txt', 'csv', 'json'] }),
    extensionMatchCheck(),
  ];

  it('accepts a matching PNG', async () => {
    const out = await runChecks(checks(), fileInput(SAMPLES.png, 'photo.png'));
    expect(out.verdict).toBe('accepted');
    expect(out.results.map((r) => r.outcome)).toEqual(['pass', 'pass', 'pass']);
  });

  it('rejects a disguised ELF and lists both failures', async () => {
    const out = await runChecks(checks(), fileInput(SAMPLES.elf, 'notes.txt'));
    expect(out.verdict).toBe('rejected');
    expect(out.results.map((r) => r.outcome)).toEqual(['pass', 'fail', 'fail']);
    expect(out.reason).toBe(
      'file-type failed: content type elf is not allowed; extension-match failed: extension .txt does not match content type elf (accepted: txt)',
    );
  });

  it('rejects an oversized text file, and still reports the other checks', async () => {
    const out = await runChecks([sizeLimitCheck({ maxBytes: 4 * MiB }), ...checks().slice(1)], fileInput(bigText(5 * MiB), 'big.txt'));
    expect(out.verdict).toBe('rejected');
    expect(out.results.map((r) => r.outcome)).toEqual(['fail', 'pass', 'pass']);
  });

  it('turns a content check timeout into an error (rejected)', async () => {
    const out = await runChecks(
      [fileTypeCheck({ allow: ['txt'], timeoutMs: 1 })],
      fileInput(bigText(16 * MiB), 'big.txt'),
    );
    expect(out.verdict).toBe('rejected');
    expect(out.results[0]).toMatchObject({ outcome: 'error', reason: 'timed out after 1 ms' });
  });
});
