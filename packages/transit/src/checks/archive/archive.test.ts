// The archive inspector on real archives: made here by Python's zipfile and
// tarfile (/usr/bin/python3), or, for zips no tool writes (overlapping
// entries, a lying central directory, an encrypted member), built byte by
// byte below. Every refusal must name the member and the rule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { archiveCheck, inspectArchive, type ArchiveLimits } from '../index.js';
import { gunzippedName } from './gzip.js';
import { memberNameProblem } from './names.js';

const MiB = 1024 * 1024;
const LIMITS: ArchiveLimits = {
  maxDepth: 3,
  maxMembers: 10_000,
  maxExpandedBytes: 4 * 1024 * MiB,
  maxRatio: 100,
  maxMemberRatio: 200,
  maxNameBytes: 1024,
  maxSpillBytes: 256 * MiB,
  allowOpaque: [],
};
const ALLOW = ['txt', 'png', 'zip', 'tar', 'gz', 'tar.gz', 'json', 'csv'];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-archive-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** python - run a Python snippet (with helpers) in the test directory; it writes archives there. */
function python(code: string): void {
  const prelude = `
import zipfile, tarfile, io, gzip, os
PNG = bytes.fromhex('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082')
ELF = b'\\x7fELF\\x02\\x01\\x01' + b'\\0' * 200
def zipbytes(members, method=zipfile.ZIP_DEFLATED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', method) as z:
        for m in members:
            if isinstance(m, zipfile.ZipInfo): z.writestr(m, b'')
            else: z.writestr(m[0], m[1])
    return b.getvalue()
def tarbytes(members, mode='w'):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode=mode) as t:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name); ti.type = kind
            if kind == tarfile.SYMTYPE or kind == tarfile.LNKTYPE: ti.linkname = data; t.addfile(ti)
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE): t.addfile(ti)
            else: ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    return b.getvalue()
def out(name, data): open(name, 'wb').write(data)
`;
  execFileSync('/usr/bin/python3', ['-c', prelude + code], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
}

const file = (name: string) => path.join(dir, name);

type Opts = { limits?: Partial<ArchiveLimits>; allow?: string[]; extensionMatch?: boolean; spillDir?: string | undefined };

/** check - the archive check's result on a file of the test directory (or given bytes). */
async function check(name: string, opts: Opts = {}, bytes?: Uint8Array) {
  if (bytes !== undefined) fs.writeFileSync(file(name), bytes);
  const c = archiveCheck({
    limits: { ...LIMITS, ...opts.limits },
    allow: opts.allow ?? ALLOW,
    extensionMatch: opts.extensionMatch ?? true,
    spillDir: 'spillDir' in opts ? opts.spillDir : dir,
  });
  const fd = fs.openSync(file(name), 'r');
  try {
    const size = fs.fstatSync(fd).size;
    return await c.run({ fd, size, sha256hex: '0'.repeat(64), name }, new AbortController().signal);
  } finally {
    fs.closeSync(fd);
  }
}

// --- a zip written byte by byte (APPNOTE 4.3.7, 4.3.12, 4.3.16), for structures no tool writes ---
interface RawEntry {
  name: string;
  data: Uint8Array; // as stored (compressed when method 8)
  method?: number;
  usize?: number;
  crc?: number;
  flags?: number;
  /** Central directory overrides: a lie. */
  cd?: { name?: string; usize?: number; csize?: number; offset?: number };
}
function u16(n: number) { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; }
function u32(n: number) { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; }
function localHeader(e: RawEntry): Buffer {
  const name = Buffer.from(e.name);
  return Buffer.concat([u32(0x04034b50), u16(20), u16(e.flags ?? 0), u16(e.method ?? 0), u16(0), u16(0), u32(e.crc ?? zlib.crc32(e.data)), u32(e.data.length), u32(e.usize ?? e.data.length), u16(name.length), u16(0), name]);
}
function rawZip(entries: RawEntry[], opts: { between?: Uint8Array; layout?: (locals: Buffer[]) => { body: Buffer; offsets: number[] } } = {}): Buffer {
  const locals = entries.map((e) => Buffer.concat([localHeader(e), e.data]));
  let body: Buffer;
  let offsets: number[];
  if (opts.layout) ({ body, offsets } = opts.layout(locals));
  else {
    offsets = [];
    const parts: Buffer[] = [];
    let at = 0;
    locals.forEach((l, i) => {
      if (i > 0 && opts.between) { parts.push(Buffer.from(opts.between)); at += opts.between.length; }
      offsets.push(at);
      parts.push(l);
      at += l.length;
    });
    body = Buffer.concat(parts);
  }
  const central = entries.map((e, i) => {
    const name = Buffer.from(e.cd?.name ?? e.name);
    return Buffer.concat([u32(0x02014b50), u16(20), u16(20), u16(e.flags ?? 0), u16(e.method ?? 0), u16(0), u16(0), u32(e.crc ?? zlib.crc32(e.data)), u32(e.cd?.csize ?? e.data.length), u32(e.cd?.usize ?? e.usize ?? e.data.length), u16(name.length), u16(0), u16(0), u16(0), u16(0), u32(0), u32(e.cd?.offset ?? offsets[i]!), name]);
  });
  const cd = Buffer.concat(central);
  const eocd = Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(entries.length), u16(entries.length), u32(cd.length), u32(body.length), u16(0)]);
  return Buffer.concat([body, cd, eocd]);
}
const text = (s: string) => Buffer.from(s);

describe('zip', () => {
  beforeAll(() =>
    python(`
out('ok.zip', zipbytes([('docs/', b''), ('docs/notes.txt', b'hello world\\n' * 100), ('img/pic.png', PNG), ('data.json', b'{"a": [1, 2]}')]))
out('elf.zip', zipbytes([('notes.txt', b'hi\\n'), ('tool', ELF)]))
out('elf-named-txt.zip', zipbytes([('notes.txt', b'hi\\n'), ('readme.txt', ELF)]))
out('png-named-txt.zip', zipbytes([('pic.txt', PNG)]))
out('script.zip', zipbytes([('run.txt', b'#!/bin/sh\\nrm -rf /\\n')]))
out('traversal.zip', zipbytes([('a.txt', b'x'), ('../../x', b'y')]))
out('deep-traversal.zip', zipbytes([('a/b/../../../etc/passwd', b'y')]))
out('absolute.zip', zipbytes([('/etc/passwd', b'y')]))
out('bidi.zip', zipbytes([('invoice\\u202efdp.txt', b'y')]))
out('control.zip', zipbytes([('\\u00e9\\x1b]0;pwned\\x07.txt', b'y')]))  # non-ASCII: written with the UTF-8 flag
out('control-cp437.zip', zipbytes([('a\\x1b]0;pwned\\x07.txt', b'y')]))  # ASCII: no flag, read as CP437
out('longname.zip', zipbytes([('d/' * 600 + 'a.txt', b'y')]))
zi = zipfile.ZipInfo('link'); zi.create_system = 3; zi.external_attr = (0o120777 << 16)
out('symlink.zip', zipbytes([zi]))
zi = zipfile.ZipInfo('dev'); zi.create_system = 3; zi.external_attr = (0o020644 << 16)
out('device.zip', zipbytes([zi]))
import warnings; warnings.simplefilter('ignore')
out('duplicate.zip', zipbytes([('a.txt', b'one'), ('a.txt', b'two')]))
out('duplicate-case.zip', zipbytes([('README.txt', b'one'), ('readme.TXT', b'two')]))
z1 = zipbytes([('deep.txt', b'deep')])
z2 = zipbytes([('l2.zip', z1)])
z3 = zipbytes([('l3.zip', z2)])
z4 = zipbytes([('l4.zip', z3)])
out('depth3.zip', z3)
out('depth4.zip', z4)
out('nested-elf.zip', zipbytes([('inner.zip', zipbytes([('tool', ELF)]))]))
out('ratio-bomb.zip', zipbytes([('zeros.txt', b'a' * (40 * 1024 * 1024))]))
out('truncated.zip', zipbytes([('a.txt', b'hello' * 100)])[:-30])
out('bzip2.zip', zipbytes([('a.txt', b'hello')], zipfile.ZIP_BZIP2))
out('empty.zip', zipbytes([]))
out('emptyfile.zip', zipbytes([('empty.txt', b'')]))
out('many.zip', zipbytes([('f%d.txt' % i, b'x') for i in range(50)]))
out('inner7z.zip', zipbytes([('x.7z', b"7z\\xbc\\xaf'\\x1c\\x00\\x04" + b'\\0' * 64)]))
`),
  );

  it('a zip of text, a PNG, JSON and a directory passes, with its member count and expanded size', async () => {
    const r = await check('ok.zip');
    expect(r.outcome).toBe('pass');
    expect(r.reason).toMatch(/^zip: 4 members \(3 files, 1 directory\), \d+ bytes expanded; every member passed$/);
  });

  it.each([
    ['elf.zip', /^member "tool": content type elf is not allowed$/],
    ['elf-named-txt.zip', /^member "readme\.txt": content type elf is not allowed$/],
    ['png-named-txt.zip', /^member "pic\.txt": extension \.txt does not match content type png/],
    ['script.zip', /^member "run\.txt": script or markup not allowed: shell/],
    ['traversal.zip', /^member "\.\.\/\.\.\/x": path traversal/],
    ['deep-traversal.zip', /^member "a\/b\/\.\.\/\.\.\/\.\.\/etc\/passwd": path traversal/],
    ['absolute.zip', /^member "\/etc\/passwd": absolute name$/],
    ['bidi.zip', /^member "invoice\\u\{202e\}fdp\.txt": name has a control, bidi or invisible character \(U\+202E\)$/],
    ['control.zip', /^member "é\\u\{1b\}\]0;pwned\\u\{7\}\.txt": name has a control, bidi or invisible character \(U\+001B\)/],
    ['control-cp437.zip', /^member "a←\]0;pwned•\.txt": name has a control character \(byte 0x1b\)/],
    ['longname.zip', /name of 1205 bytes is longer than 1024/],
    ['symlink.zip', /^member "link": symlink: only regular files and directories may be members$/],
    ['device.zip', /^member "dev": character device: only regular files/],
    ['duplicate.zip', /^member "a\.txt": duplicate name/],
    ['duplicate-case.zip', /^member "readme\.TXT": duplicate name/],
    ['depth4.zip', /^member "l2\.zip" in "l3\.zip" in "l4\.zip": zip nested 4 archives deep, more than 3/],
    ['nested-elf.zip', /^member "tool" in "inner\.zip": content type elf is not allowed$/],
    ['ratio-bomb.zip', /^member "zeros\.txt": declares 41943040 bytes from \d+ compressed, more than 200 times/],
    ['truncated.zip', /^archive: malformed zip: /],
    ['bzip2.zip', /^member "a\.txt": compression method 12 cannot be inspected/],
    ['inner7z.zip', /^member "x\.7z": 7z archive cannot be inspected/],
  ])('%s is refused, naming the member and the rule', async (name, reason) => {
    const r = await check(name);
    expect(r.outcome).toBe('fail');
    expect(r.reason).toMatch(reason);
  });

  it('nesting to maxDepth passes; one level less is refused', async () => {
    expect((await check('depth3.zip')).reason).toMatch(/^zip: 3 members .* 2 nested archives/);
    expect((await check('depth3.zip', { limits: { maxDepth: 1 } })).reason).toMatch(/^member "l3\.zip": zip nested 2 archives deep, more than 1/);
  });

  it('an empty zip and an empty member pass', async () => {
    expect((await check('empty.zip')).reason).toMatch(/^zip: 0 members/);
    expect((await check('emptyfile.zip')).outcome).toBe('pass');
  });

  it('counts members against maxMembers before reading any', async () => {
    expect((await check('many.zip', { limits: { maxMembers: 50 } })).outcome).toBe('pass');
    expect((await check('many.zip', { limits: { maxMembers: 49 } })).reason).toMatch(/^archive: 50 members, more than 49 left of transit\.archives\.maxMembers/);
  });

  it('a nested zip is refused when there is nowhere to write it out, or it is larger than maxSpillBytes', async () => {
    expect((await check('depth3.zip', { spillDir: undefined })).reason).toMatch(/^member "l3\.zip": nested zip cannot be inspected here/);
    expect((await check('depth3.zip', { limits: { maxSpillBytes: 100 } })).reason).toMatch(/^member "l3\.zip": nested zip larger than transit\.archives\.maxSpillBytes/);
  });

  it('members are held to the allowlist the operator set', async () => {
    expect((await check('ok.zip', { allow: ['txt', 'zip', 'json'] })).reason).toMatch(/^member "img\/pic\.png": content type png is not allowed/);
    expect((await check('png-named-txt.zip', { extensionMatch: false })).outcome).toBe('pass');
  });
});

describe('zip structure no tool writes', () => {
  const hello = text('hello\n');

  it('overlapping entries (the non-recursive zip bomb) are refused before anything is inflated', async () => {
    // Entry "b"'s header and data lie inside entry "a"'s stored data.
    const inner = Buffer.concat([localHeader({ name: 'b.txt', data: hello }), hello]);
    const zip = rawZip([{ name: 'a.txt', data: inner, cd: {} }, { name: 'b.txt', data: hello, cd: { offset: 30 + 5 } }], {
      layout: (locals) => ({ body: locals[0]!, offsets: [0, 35] }),
    });
    const r = await check('overlap.zip', {}, zip);
    expect(r.outcome).toBe('fail');
    expect(r.reason).toMatch(/^member "b\.txt": overlaps "a\.txt": entries that share bytes/);
  });

  it('many directory entries pointing at one local header are refused', async () => {
    const one = rawZip([{ name: 'a.txt', data: hello }]);
    const zip = rawZip([{ name: 'a.txt', data: hello }, { name: 'a.txt', data: hello, cd: { name: 'b.txt', offset: 0 } }], {
      layout: () => ({ body: one.subarray(0, 30 + 5 + hello.length), offsets: [0, 0] }),
    });
    const r = await check('same-header.zip', {}, zip);
    expect(r.outcome).toBe('fail');
    expect(r.reason).toMatch(/^member "b\.txt": local header and central directory disagree on the name/);
  });

  it('a central directory that lies about a name or a size is refused', async () => {
    const name = rawZip([{ name: 'a.txt', data: hello, cd: { name: 'b.txt' } }]);
    expect((await check('lying-name.zip', {}, name)).reason).toMatch(/^member "b\.txt": local header and central directory disagree on the name/);
    const deflated = zlib.deflateRawSync(Buffer.alloc(10 * MiB, 0x61));
    const size = rawZip([{ name: 'a.txt', data: deflated, method: 8, usize: 10 * MiB, crc: 0, cd: { usize: 1000 } }]);
    expect((await check('lying-size.zip', {}, size)).reason).toMatch(/^member "a\.txt": local header and central directory disagree on the sizes/);
  });

  it('a member that inflates past the size both headers declare is stopped there', async () => {
    const deflated = zlib.deflateRawSync(Buffer.alloc(10 * MiB, 0x61));
    const zip = rawZip([{ name: 'a.txt', data: deflated, method: 8, usize: 1000, crc: 0 }]);
    const r = await check('understated.zip', {}, zip);
    expect(r.outcome).toBe('fail');
    expect(r.reason).toMatch(/^member "a\.txt": data does not decode: too many bytes in the stream/);
  });

  it('bytes outside every entry are refused', async () => {
    const zip = rawZip([{ name: 'a.txt', data: hello }, { name: 'b.txt', data: hello }], { between: text('HIDDEN') });
    expect((await check('gap.zip', {}, zip)).reason).toMatch(/^member "b\.txt": 6 bytes before its header belong to no entry/);
    const tail = rawZip([{ name: 'a.txt', data: hello }], { layout: (locals) => ({ body: Buffer.concat([locals[0]!, text('SMUGGLED')]), offsets: [0] }) });
    expect((await check('tail.zip', {}, tail)).reason).toMatch(/^archive: 8 bytes before the central directory belong to no entry/);
  });

  it('an encrypted member is refused: it cannot be inspected', async () => {
    const data = Buffer.concat([Buffer.alloc(12, 7), hello]); // traditional encryption: a 12-byte header before the data
    const zip = rawZip([{ name: 'secret.txt', data, flags: 1, usize: hello.length }]);
    const r = await check('encrypted.zip', {}, zip);
    expect(r.reason).toMatch(/^member "secret\.txt": encrypted member: it cannot be inspected$/);
  });

  it('the same zip, honest, passes', async () => {
    const zip = rawZip([{ name: 'a.txt', data: hello }, { name: 'b.txt', data: hello }]);
    expect((await check('honest.zip', {}, zip)).reason).toMatch(/^zip: 2 members/);
  });
});

describe('tar, tar.gz and gz', () => {
  beforeAll(() =>
    python(`
ok = tarbytes([('./', b'', tarfile.DIRTYPE), ('./notes.txt', b'hello\\n', tarfile.REGTYPE), ('./img/pic.png', PNG, tarfile.REGTYPE)])
out('ok.tar', ok)
out('ok.tar.gz', gzip.compress(ok))
out('ok.tgz', gzip.compress(ok))
out('notes.txt.gz', gzip.compress(b'hello\\n' * 10))
out('elf.gz', gzip.compress(ELF))
out('symlink.tar', tarbytes([('a.txt', b'x', tarfile.REGTYPE), ('link', '/etc/passwd', tarfile.SYMTYPE)]))
out('hardlink.tar', tarbytes([('a.txt', b'x', tarfile.REGTYPE), ('h', 'a.txt', tarfile.LNKTYPE)]))
out('device.tar.gz', gzip.compress(tarbytes([('null', b'', tarfile.CHRTYPE)])))
out('fifo.tar', tarbytes([('pipe', b'', tarfile.FIFOTYPE)]))
out('traversal.tgz', gzip.compress(tarbytes([('../../x', b'y', tarfile.REGTYPE)])))
out('elf.tar', tarbytes([('bin/tool', ELF, tarfile.REGTYPE)]))
out('duplicate.tar', tarbytes([('a.txt', b'x', tarfile.REGTYPE), ('a.txt', b'y', tarfile.REGTYPE)]))
out('paxname.tar', tarbytes([('p/' * 80 + 'long.txt', b'long name\\n', tarfile.REGTYPE)]))
out('bomb.gz', gzip.compress(b'\\0' * (64 * 1024 * 1024)))
out('tarbomb.tar.gz', gzip.compress(tarbytes([('zeros.txt', b'a' * (64 * 1024 * 1024), tarfile.REGTYPE)])))
out('truncated.tar.gz', gzip.compress(ok)[:-20])
out('truncated.tar', ok[:700])
out('trailing.gz', gzip.compress(b'hello\\n') + b'\\0' * 100)
inner = gzip.compress(tarbytes([('deep.txt', b'deep\\n', tarfile.REGTYPE)]))
out('nested.tar', tarbytes([('inner.tar.gz', inner, tarfile.REGTYPE)]))
out('zip-in-tgz.tgz', gzip.compress(tarbytes([('in.zip', zipbytes([('tool', ELF)]), tarfile.REGTYPE)])))
`),
  );

  it.each([
    ['ok.tar', /^tar: 3 members \(2 files, 1 directory\), \d+ bytes expanded; every member passed$/],
    ['ok.tar.gz', /^tar\.gz: 3 members \(2 files, 1 directory\)/],
    ['ok.tgz', /^tar\.gz: 3 members/],
    ['notes.txt.gz', /^gz: 1 member \(1 file, 0 directories\), 60 bytes expanded/],
    ['paxname.tar', /^tar: 1 member/],
    ['nested.tar', /^tar: 2 members \(2 files, 0 directories\), .* 1 nested archive/],
  ])('%s passes', async (name, reason) => {
    const r = await check(name);
    expect(r.reason).toMatch(reason);
    expect(r.outcome).toBe('pass');
  });

  it.each([
    ['elf.gz', /^member "elf": content type elf is not allowed/],
    ['symlink.tar', /^member "link": symlink \(to "\/etc\/passwd"\): only regular files and directories/],
    ['hardlink.tar', /^member "h": hard link \(to "a\.txt"\)/],
    ['device.tar.gz', /^member "null" in "device\.tar": character device/],
    ['fifo.tar', /^member "pipe": FIFO/],
    ['traversal.tgz', /^member "\.\.\/\.\.\/x" in "traversal\.tar": path traversal/],
    ['elf.tar', /^member "bin\/tool": content type elf is not allowed/],
    ['duplicate.tar', /^member "a\.txt": duplicate name/],
    ['bomb.gz', /^member "bomb": (the upload expands past 100 times|expands past 200 times)/],
    ['tarbomb.tar.gz', /^member "tarbomb\.tar": (the upload expands past 100 times|expands past 200 times)/],
    ['truncated.tar.gz', /^member "truncated\.tar": data does not decode: unexpected end of file/],
    ['truncated.tar', /^archive: malformed tar: /],
    ['trailing.gz', /^archive: 100 bytes after the end of the gzip data/],
    ['zip-in-tgz.tgz', /^member "tool" in "in\.zip" in "zip-in-tgz\.tar": content type elf is not allowed/],
  ])('%s is refused, naming the member and the rule', async (name, reason) => {
    const r = await check(name);
    expect(r.outcome).toBe('fail');
    expect(r.reason).toMatch(reason);
  });

  it('maxExpandedBytes stops a member that stays under the ratios', async () => {
    const r = await check('ok.tar', { limits: { maxExpandedBytes: 10 } });
    expect(r.reason).toMatch(/^member "\.\/img\/pic\.png": expands past 10 bytes in all \(transit\.archives\.maxExpandedBytes\)/);
  });
});

describe('what is not inspected', () => {
  it('another archive format is refused unless allowed as opaque; a non-archive passes', async () => {
    const sevenZip = Buffer.concat([Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04]), Buffer.alloc(64)]);
    expect((await check('x.7z', {}, sevenZip)).reason).toBe('7z archive cannot be inspected (transit.archives.allowOpaque does not list it)');
    expect((await check('x.7z', { limits: { allowOpaque: ['7z'] } }, sevenZip)).outcome).toBe('pass');
    expect((await check('plain.txt', {}, text('just text\n'))).reason).toBe('not an archive (content type txt)');
  });

  it('the factory refuses an opaque type that is not an archive', () => {
    expect(() => archiveCheck({ limits: { ...LIMITS, allowOpaque: ['exe'] }, allow: ALLOW, extensionMatch: true, spillDir: dir })).toThrow(/allowOpaque "exe"/);
  });
});

describe('names', () => {
  it.each([
    ['a/b.txt', undefined],
    ['./a.txt', undefined],
    ['dir/', undefined],
    ['', /empty/],
    ['..', /traversal/],
    ['a\\b', /backslash/],
    ['C:/x', /drive letter/],
    ['a\u200bb', /U\+200B/],
    ['bad\uFFFD', /UTF-8/],
  ])('%j', (name, want) => {
    const got = memberNameProblem(name, 1024);
    if (want === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(want);
  });

  it('the content of a gzip is named after it', () => {
    expect(gunzippedName('a.tgz')).toBe('a.tar');
    expect(gunzippedName('notes.txt.gz')).toBe('notes.txt');
    expect(gunzippedName('data')).toBe('data');
  });
});

describe('inspectArchive', () => {
  it('returns the refusal with its path and rule', async () => {
    const fd = fs.openSync(file('nested-elf.zip'), 'r');
    try {
      const v = await inspectArchive(fd, fs.fstatSync(fd).size, 'nested-elf.zip', 'zip', { limits: LIMITS, allowed: new Set(ALLOW), extensionMatch: true, spillDir: dir }, new AbortController().signal);
      expect(v).toMatchObject({ ok: false, path: ['inner.zip', 'tool'], rule: 'content type elf is not allowed' });
    } finally {
      fs.closeSync(fd);
    }
  });
});
