/*
 * NAME
 *   archive - the 'archive' check: look inside zip, tar, tar.gz and gz
 *
 * SYNOPSIS
 *   import { archiveCheck, inspectArchive } from './archive/check.js';
 *
 *   archiveCheck({ limits, allow, extensionMatch, spillDir, timeoutMs? }): Check
 *   inspectArchive(fd, size, name, kind, options, signal): Promise<ArchiveVerdict>
 *
 * DESCRIPTION
 *   The check shares content detection with the type checks (content.ts,
 *   read once per upload). When the upload is a zip, tar, tar.gz or gz,
 *   every member is held to the rules of a file (member.ts), nested
 *   archives are opened to transit.archives.maxDepth, and the bounds of
 *   transit.archives apply (limits.ts); the formats are read by zip.ts
 *   (yauzl), tar.ts (tar-stream) and gzip.ts (node:zlib). Another archive
 *   format (7z, rar, xz, ...) fails as not inspectable unless
 *   transit.archives.allowOpaque lists it. Anything else passes: it is not
 *   an archive, and the other checks judge it.
 *
 *   Reasons: "12 members (10 files, 2 directories), 1048576 bytes
 *   expanded, 1 nested archive"; a refusal names the member, innermost
 *   first and escaped, and the rule: 'member "../../x" in "inner.zip":
 *   path traversal (a ".." component)'.
 *
 *   The upload's own name, type and extension are the other checks'
 *   business; the upload is level 1 of the nesting.
 *
 * SECURITY
 *   Fails closed: a format error from a library is a refusal; an
 *   exception of ours is an error (runChecks); a timeout aborts the
 *   inspection, and every stream and nested-zip file it opened is closed.
 *   ClamAV and YARA still scan the whole upload as they do any file.
 */
import { escapeForLog } from '@sluice/core';
import type { Check, CheckInput, CheckRun } from '../check.js';
import { CONTENT_ENGINE, KNOWN_CONTENT_IDS, detectContent } from '../content.js';
import { INSPECTED_KINDS, Inspection, Refusal, describePath, type ArchiveKind, type ArchiveLimits, type OpenNested } from './limits.js';
import { OPAQUE_KINDS } from './member.js';
import { rangeStream } from './source.js';
import { inspectZipFd, inspectZipStream } from './zip.js';
import { inspectTarStream } from './tar.js';
import { inspectGzipStream } from './gzip.js';

export const ARCHIVE_ENGINE = `sluice archive (yauzl 3.4, tar-stream 3.1, node:zlib) + ${CONTENT_ENGINE}`;

export interface ArchiveCheckConfig {
  limits: ArchiveLimits;
  /** transit.allowTypes: members are held to it too. */
  allow: readonly string[];
  /** transit.extensionMatch: members' names must match their content too. */
  extensionMatch: boolean;
  /** Where nested zips are written out (transit.state); undefined refuses nested zips. */
  spillDir: string | undefined;
  /** Default 120,000 ms. */
  timeoutMs?: number;
}

export type ArchiveVerdict =
  | { ok: true; reason: string }
  | { ok: false; reason: string; path: readonly string[]; rule: string };

/** openNested - the opener Inspection uses for an archive inside an archive. */
const openNested: OpenNested = (run, kind, source, path, level) => {
  switch (kind) {
    case 'zip':
      return inspectZipStream(run, source, path, level);
    case 'tar':
      return inspectTarStream(run, source, path, level, true);
    case 'gz':
    case 'tar.gz':
      return inspectGzipStream(run, source, path, level, path[path.length - 1] ?? 'unnamed');
  }
};

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export interface InspectOptions {
  limits: ArchiveLimits;
  allowed: ReadonlySet<string>;
  extensionMatch: boolean;
  spillDir: string | undefined;
}

/** inspectArchive - every member of the archive in fd[0, size), of the given kind; never throws a Refusal, returns it. */
export async function inspectArchive(fd: number, size: number, name: string, kind: ArchiveKind, o: InspectOptions, signal: AbortSignal): Promise<ArchiveVerdict> {
  const run = new Inspection(o.limits, o.allowed, { signal, topSize: size, spillDir: o.spillDir, open: openNested, extensionMatch: o.extensionMatch });
  try {
    if (kind === 'zip') await inspectZipFd(run, fd, size, [], 1);
    else if (kind === 'tar') await inspectTarStream(run, rangeStream(fd, 0, size), [], 1, false);
    else await inspectGzipStream(run, rangeStream(fd, 0, size), [], 1, name);
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: `${describePath(err.path)}: ${err.rule}`, path: err.path, rule: err.rule };
    throw err;
  }
  const nested = run.archives === 0 ? '' : `, ${plural(run.archives, 'nested archive')}`;
  return {
    ok: true,
    reason: `${kind}: ${plural(run.members, 'member')} (${plural(run.files, 'file')}, ${plural(run.directories, 'directory', 'directories')}), ${run.expanded} bytes expanded${nested}; every member passed`,
  };
}

/** archiveCheck - the 'archive' check. */
export function archiveCheck(config: ArchiveCheckConfig): Check {
  const { limits, allow, extensionMatch, spillDir, timeoutMs = 120_000 } = config;
  for (const id of limits.allowOpaque) {
    if (!OPAQUE_KINDS.has(id)) {
      throw new TypeError(`archiveCheck: allowOpaque ${JSON.stringify(id)} is not an archive type detection knows (known: ${[...OPAQUE_KINDS].join(', ')})`);
    }
  }
  for (const id of allow) {
    if (!KNOWN_CONTENT_IDS.has(id)) throw new TypeError(`archiveCheck: unknown content type ${JSON.stringify(id)}`);
  }
  const options: InspectOptions = { limits, allowed: new Set(allow), extensionMatch, spillDir };
  return {
    name: 'archive',
    timeoutMs,
    engine: ARCHIVE_ENGINE,
    async run(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
      const info = await detectContent(input, signal);
      if (INSPECTED_KINDS.has(info.type)) {
        const v = await inspectArchive(input.fd, input.size, input.name, info.type as ArchiveKind, options, signal);
        return { outcome: v.ok ? 'pass' : 'fail', reason: v.reason, engine: ARCHIVE_ENGINE };
      }
      if (OPAQUE_KINDS.has(info.type)) {
        return limits.allowOpaque.includes(info.type)
          ? { outcome: 'pass', reason: `${info.type} archive passed whole, not inspected (transit.archives.allowOpaque)`, engine: ARCHIVE_ENGINE }
          : { outcome: 'fail', reason: `${info.type} archive cannot be inspected (transit.archives.allowOpaque does not list it)`, engine: ARCHIVE_ENGINE };
      }
      return { outcome: 'pass', reason: `not an archive (content type ${escapeForLog(info.type, 40)})`, engine: ARCHIVE_ENGINE };
    },
  };
}
