/*
 * NAME
 *   zip - a zip's members, read with yauzl, and the structure checks yauzl leaves out
 *
 * SYNOPSIS
 *   import { inspectZipFd, inspectZipStream } from './zip.js';
 *
 *   await inspectZipFd(run, fd, size, path, level)        // a zip on a descriptor (the upload)
 *   await inspectZipStream(run, bytes, path, level)       // a nested zip, streamed
 *
 * DESCRIPTION
 *   yauzl (pinned ~3.4) reads the central directory and inflates members;
 *   it refuses a missing or malformed end record, entries past the end of
 *   the file, strong encryption, and members whose data inflates to more
 *   or fewer bytes than the directory says (validateEntrySizes). It reads
 *   through a RandomAccessReader of positional reads (source.ts), never the
 *   whole file.
 *
 *   First every entry of the central directory is read and checked, before
 *   a byte is inflated; only then are the members' data read, one at a
 *   time, in directory order. A zip is refused (naming the member and the
 *   rule) when:
 *     - it declares more entries than maxMembers leaves room for;
 *     - a name breaks the name rules (names.ts), or is a duplicate;
 *     - a member is encrypted, or compressed other than stored or deflate;
 *     - a member is a symlink, device, FIFO or socket (Unix mode bits in
 *       the external attributes), or a directory with data;
 *     - its declared size is more than maxMemberRatio times its compressed
 *       size (past RATIO_FLOOR_BYTES), or the declared sizes add up past
 *       maxExpandedBytes;
 *     - the local header disagrees with the central directory on the name,
 *       the flags' encryption bit, the method, the CRC or the sizes (zero
 *       sizes and CRC are allowed when a data descriptor follows, and
 *       0xffffffff when ZIP64 carries them);
 *     - two entries' local headers or data overlap: the non-recursive zip
 *       bomb, where thousands of directory entries point into one deflate
 *       stream;
 *     - bytes lie outside every entry: before the first local header,
 *       between one entry's data (and its data descriptor) and the next
 *       header, or between the last entry and the central directory.
 *   yauzl's own errors become "malformed zip: ..." refusals.
 *
 *   A nested zip is read from its end, so it cannot be streamed: it is
 *   first written to a nameless file (O_TMPFILE, 0600) in transit.state,
 *   counted against maxSpillBytes, then read like the upload, and closed
 *   whatever happens.
 *
 * BUGS
 *   The central directory's start comes from yauzl's ZipFile
 *   (readEntryCursor before the first entry is read), which is not part of
 *   its documented API; the pinned version is tested, and a yauzl without
 *   it makes every zip an error (never a pass).
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import yauzl from 'yauzl';
import { openUnlinked } from '@sluice/core';
import { Inspection, RATIO_FLOOR_BYTES, Refusal, messageOf } from './limits.js';
import { memberNameProblem } from './names.js';
import { inspectMember } from './member.js';
import { rangeStream } from './source.js';

/** writeAt - one positional write; resolves to the bytes written. */
function writeAt(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
const closeFd = promisify(fs.close);

/** Positional reads of a borrowed descriptor, for yauzl. */
class FdReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {
    super();
  }
  override _readStreamForRange(start: number, end: number) {
    return rangeStream(this.fd, start, Math.min(end, this.size));
  }
  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null, bytesRead: number) => void) {
    fs.read(this.fd, buffer, offset, length, position, (err, n) => callback(err, n));
  }
}

/** One central directory entry, as much of it as the second pass needs. */
interface ZipRecord {
  name: string;
  directory: boolean;
  headerStart: number;
  dataStart: number;
  dataEnd: number;
  descriptor: boolean;
  deflated: boolean;
  compressedSize: number;
  uncompressedSize: number;
}

const S_IFMT = 0o170000;
const FILE_TYPES: Readonly<Record<number, string>> = {
  0o120000: 'symlink', 0o020000: 'character device', 0o060000: 'block device', 0o010000: 'FIFO', 0o140000: 'socket',
};
const UNIX_HOST = 3;
const ZIP64_MARK = 0xffffffff;
let archiveIds = 0;

/** open - yauzl's ZipFile over the reader, lazily, strings left undecoded. */
function open(reader: FdReader, size: number): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(reader, size, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true, strictFileNames: true }, (err, zf) =>
      err ? reject(err) : resolve(zf),
    );
  });
}

/** nextEntry - the next central directory entry, or undefined at the end. */
function nextEntry(zf: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      zf.off('entry', onEntry);
      zf.off('end', onEnd);
      zf.off('error', onError);
    };
    const onEntry = (e: yauzl.Entry): void => (done(), resolve(e));
    const onEnd = (): void => (done(), resolve(undefined));
    const onError = (err: Error): void => (done(), reject(err));
    zf.on('entry', onEntry);
    zf.on('end', onEnd);
    zf.on('error', onError);
    zf.readEntry();
  });
}

/** malformed - yauzl's complaint as a refusal of the zip at `path`. */
const malformed = (path: readonly string[], err: unknown): Refusal => (err instanceof Refusal ? err : new Refusal(path, `malformed zip: ${messageOf(err)}`));

/** checkEntry - the per-entry rules; returns what the second pass needs. */
async function checkEntry(run: Inspection, zf: yauzl.ZipFile, e: yauzl.Entry, zipPath: readonly string[], archiveKey: string): Promise<ZipRecord> {
  const raw = Buffer.from(e.fileNameRaw);
  const name = yauzl.getFileNameLowLevel(e.generalPurposeBitFlag, raw, e.extraFields, true);
  const path = [...zipPath, name];
  const problem = memberNameProblem(name, run.limits.maxNameBytes);
  if (problem !== undefined) throw new Refusal(path, problem);
  // CP437 (names without the UTF-8 flag) shows control bytes as graphic characters; an unzipper writes the bytes.
  const control = raw.findIndex((b) => b < 0x20 || b === 0x7f);
  if (control >= 0) throw new Refusal(path, `name has a control character (byte 0x${raw[control]!.toString(16).padStart(2, '0')})`);
  run.uniqueName(path, archiveKey, name);

  const directory = name.endsWith('/');
  if ((e.generalPurposeBitFlag & 0x1) !== 0) throw new Refusal(path, 'encrypted member: it cannot be inspected');
  if (e.compressionMethod !== 0 && e.compressionMethod !== 8) throw new Refusal(path, `compression method ${e.compressionMethod} cannot be inspected (only stored and deflate)`);
  if (e.versionMadeBy >>> 8 === UNIX_HOST) {
    const type = (e.externalFileAttributes >>> 16) & S_IFMT;
    const what = FILE_TYPES[type];
    if (what !== undefined) throw new Refusal(path, `${what}: only regular files and directories may be members`);
    if (type === 0o040000 && !directory) throw new Refusal(path, 'directory without a trailing "/" in its name');
    if (type === 0o100000 && directory) throw new Refusal(path, 'regular file with a trailing "/" in its name');
  }
  if (directory && (e.uncompressedSize !== 0 || e.compressedSize > 2)) throw new Refusal(path, 'directory with data');
  run.member(path, directory);
  if (e.uncompressedSize > RATIO_FLOOR_BYTES && e.uncompressedSize > run.limits.maxMemberRatio * Math.max(1, e.compressedSize)) {
    throw new Refusal(path, `declares ${e.uncompressedSize} bytes from ${e.compressedSize} compressed, more than ${run.limits.maxMemberRatio} times (transit.archives.maxMemberRatio)`);
  }

  let local: yauzl.LocalFileHeader;
  try {
    local = await new Promise<yauzl.LocalFileHeader>((resolve, reject) => zf.readLocalFileHeader(e, (err, h) => (err ? reject(err) : resolve(h))));
  } catch (err) {
    throw new Refusal(path, `local header unreadable: ${messageOf(err)}`);
  }
  if (!Buffer.from(local.fileName).equals(raw)) throw new Refusal(path, 'local header and central directory disagree on the name');
  if ((local.generalPurposeBitFlag & 0x1) !== (e.generalPurposeBitFlag & 0x1)) throw new Refusal(path, 'local header and central directory disagree on encryption');
  if (local.compressionMethod !== e.compressionMethod) throw new Refusal(path, 'local header and central directory disagree on the compression method');
  const descriptor = (local.generalPurposeBitFlag & 0x8) !== 0;
  const agrees = (localValue: number, central: number): boolean =>
    localValue === central || localValue === ZIP64_MARK || (descriptor && localValue === 0);
  if (!agrees(local.compressedSize, e.compressedSize) || !agrees(local.uncompressedSize, e.uncompressedSize)) {
    throw new Refusal(path, `local header and central directory disagree on the sizes (${local.compressedSize}/${local.uncompressedSize} against ${e.compressedSize}/${e.uncompressedSize})`);
  }
  if (!(local.crc32 === e.crc32 || (descriptor && local.crc32 === 0))) throw new Refusal(path, 'local header and central directory disagree on the CRC');
  return {
    name,
    directory,
    headerStart: e.relativeOffsetOfLocalHeader,
    dataStart: local.fileDataStart,
    dataEnd: local.fileDataStart + e.compressedSize,
    descriptor,
    deflated: e.compressionMethod === 8,
    compressedSize: e.compressedSize,
    uncompressedSize: e.uncompressedSize,
  };
}

/** checkLayout - entries in file order must tile [0, centralDirectory) with no overlap and no gap. */
function checkLayout(records: readonly ZipRecord[], zipPath: readonly string[], centralDirectory: number): void {
  const sorted = [...records].sort((a, b) => a.headerStart - b.headerStart);
  let at = 0;
  let previous: ZipRecord | undefined;
  const gapAllowed = (gap: number): boolean => previous !== undefined && previous.descriptor && [12, 16, 20, 24].includes(gap);
  for (const r of sorted) {
    if (r.headerStart < at) {
      throw new Refusal([...zipPath, r.name], `overlaps ${previous === undefined ? 'another entry' : `"${previous.name}"`}: entries that share bytes (a zip bomb's trick)`);
    }
    if (r.headerStart > at && !gapAllowed(r.headerStart - at)) {
      throw new Refusal([...zipPath, r.name], `${r.headerStart - at} bytes before its header belong to no entry`);
    }
    at = r.dataEnd;
    previous = r;
  }
  if (at > centralDirectory) throw new Refusal([...zipPath, previous!.name], 'data runs into the central directory');
  if (centralDirectory > at && !gapAllowed(centralDirectory - at)) {
    throw new Refusal(zipPath, `${centralDirectory - at} bytes before the central directory belong to no entry`);
  }
}

/** inspectZipFd - every member of the zip in fd[0, size); throws a Refusal. */
export async function inspectZipFd(run: Inspection, fd: number, size: number, zipPath: readonly string[], level: number): Promise<void> {
  const archiveKey = `zip${++archiveIds}`;
  let zf: yauzl.ZipFile;
  try {
    zf = await open(new FdReader(fd, size), size);
  } catch (err) {
    throw malformed(zipPath, err);
  }
  zf.on('error', () => {}); // every error is also delivered to whoever waits; none may go unhandled
  try {
    const centralDirectory = (zf as unknown as { readEntryCursor?: unknown }).readEntryCursor;
    if (typeof centralDirectory !== 'number') throw new Error('yauzl no longer exposes the central directory offset (readEntryCursor)');
    run.expectMembers(zipPath, zf.entryCount);
    const records: ZipRecord[] = [];
    let declared = 0;
    for (;;) {
      run.options.signal.throwIfAborted();
      let e: yauzl.Entry | undefined;
      try {
        e = await nextEntry(zf);
      } catch (err) {
        throw malformed(zipPath, err);
      }
      if (e === undefined) break;
      const r = await checkEntry(run, zf, e, zipPath, archiveKey);
      declared += r.uncompressedSize;
      if (run.expanded + declared > run.limits.maxExpandedBytes) {
        throw new Refusal([...zipPath, r.name], `the members declare more than ${run.limits.maxExpandedBytes} bytes in all (transit.archives.maxExpandedBytes)`);
      }
      records.push(r);
    }
    checkLayout(records, zipPath, centralDirectory);
    for (const r of records) {
      if (r.directory) continue;
      const path = [...zipPath, r.name];
      let stream: NodeJS.ReadableStream;
      try {
        stream = await new Promise((resolve, reject) =>
          zf.openReadStreamLowLevel(r.dataStart, r.compressedSize, 0, r.compressedSize, r.deflated, r.uncompressedSize, (err, s) => (err ? reject(err) : resolve(s))),
        );
      } catch (err) {
        throw new Refusal(path, `data unreadable: ${messageOf(err)}`);
      }
      await inspectMember(run, { path, name: r.name, level, compressed: () => r.compressedSize }, stream as AsyncIterable<Uint8Array>);
    }
  } finally {
    zf.close();
  }
}

/** inspectZipStream - a nested zip: written to a nameless file in transit.state, then inspected; throws a Refusal. */
export async function inspectZipStream(run: Inspection, bytes: AsyncIterable<Uint8Array>, zipPath: readonly string[], level: number): Promise<void> {
  const dir = run.options.spillDir;
  if (dir === undefined) throw new Refusal(zipPath, 'nested zip cannot be inspected here (no directory to hold it)');
  const { fd } = openUnlinked(dir, 0);
  let size = 0;
  try {
    for await (const chunk of bytes) {
      run.reserveSpill(zipPath, chunk.length);
      size += chunk.length;
      let done = 0;
      while (done < chunk.length) done += await writeAt(fd, chunk, done, chunk.length - done, size - chunk.length + done);
    }
    await inspectZipFd(run, fd, size, zipPath, level);
  } finally {
    run.releaseSpill(size);
    await closeFd(fd);
  }
}
