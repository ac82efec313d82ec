/*
 * NAME
 *   limits - the archive inspector's bounds, its tally and its one refusal
 *
 * SYNOPSIS
 *   import { Refusal, Inspection, type ArchiveLimits, RATIO_FLOOR_BYTES,
 *            READ_CHUNK_BYTES, HEAD_BYTES } from './limits.js';
 *
 *   const run = new Inspection(limits, allowed, { signal, topSize, spillDir, open });
 *   run.count(path, bytes, memberBytes, compressed)   // throws Refusal past a bound
 *   throw new Refusal(path, 'rule')                   // the member and the rule
 *
 * DESCRIPTION
 *   One Inspection per upload holds what every level of nesting shares:
 *   the members seen, the bytes expanded, the nested zips written out,
 *   and the configured bounds (transit.archives, docs/configuration.md).
 *
 *   A Refusal is the inspector's only way of saying no: the path of the
 *   member (outermost first, one element per archive level) and the rule
 *   it broke. The check turns it into a 'fail' whose reason names both,
 *   escaped. Format errors reported by the libraries (yauzl, tar-stream,
 *   node:zlib) become Refusals at the place they are received; anything
 *   else thrown is a bug, and runChecks reports it as an error (the file
 *   is still rejected).
 *
 * MEMORY
 *   The inspector holds, whatever the upload: per nesting level one head
 *   of HEAD_BYTES (what file-type sees of a member), one read or inflate
 *   chunk (READ_CHUNK_BYTES, zlib's 32 KiB window and its output chunk)
 *   and the text scanner's decoded chunk; for each zip, a table of its
 *   members (offsets, sizes, name: about 100 bytes plus the name, so at
 *   most maxMembers x (100 + maxNameBytes)); the set of member names (for
 *   duplicates). With the defaults (depth 3, 10,000 members, 1 KiB names)
 *   that is under 24 MiB; core's TRANSIT_ARCHIVE_BYTES (32 MiB) is what the
 *   configuration check counts per transfer. Members are never held whole.
 *   Nested zips are written to nameless files in transit.state, bounded by
 *   maxSpillBytes, never to RAM.
 */
import { escapeForLog } from '@sluice/core';

/** transit.archives, as the inspector uses it. */
export interface ArchiveLimits {
  readonly maxDepth: number;
  readonly maxMembers: number;
  readonly maxExpandedBytes: number;
  readonly maxRatio: number;
  readonly maxMemberRatio: number;
  readonly maxNameBytes: number;
  readonly maxSpillBytes: number;
  /** Archive types passed whole (not inspected). */
  readonly allowOpaque: readonly string[];
}

/** Below this many expanded bytes a ratio is not checked: small files compress arbitrarily well and harm no one. */
export const RATIO_FLOOR_BYTES = 1024 * 1024;
/** One positional read of the sealed copy (or a nested zip's file), and the highWaterMark of the streams built on it. */
export const READ_CHUNK_BYTES = 64 * 1024;
/** What file-type sees of each member (content.ts' PREFIX_BYTES). */
export const HEAD_BYTES = 64 * 1024;

/** The archive formats the inspector opens, by content id. */
export type ArchiveKind = 'zip' | 'tar' | 'gz' | 'tar.gz';
export const INSPECTED_KINDS: ReadonlySet<string> = new Set<ArchiveKind>(['zip', 'tar', 'gz', 'tar.gz']);

/** Refusal - a member broke a rule: the file is rejected, naming both. */
export class Refusal extends Error {
  readonly path: readonly string[];
  readonly rule: string;
  constructor(path: readonly string[], rule: string) {
    super(`${describePath(path)}: ${rule}`);
    this.name = 'Refusal';
    this.path = path;
    this.rule = rule;
  }
}

/** describePath - a member's path for a reason: innermost first, each level quoted and escaped ("x" in "inner.zip"). */
export function describePath(path: readonly string[]): string {
  if (path.length === 0) return 'archive';
  return `member ${[...path].reverse().map((p) => `"${escapeForLog(p, 200)}"`).join(' in ')}`;
}

/** messageOf - a library's error as one short line. */
export function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 200);
}

/** How an Inspection opens a nested archive (check.ts wires zip.ts, tar.ts and gzip.ts). */
export type OpenNested = (run: Inspection, kind: ArchiveKind, source: AsyncIterable<Uint8Array>, path: readonly string[], level: number) => Promise<void>;

export interface InspectionOptions {
  readonly signal: AbortSignal;
  /** Size of the upload: the denominator of the overall ratio. */
  readonly topSize: number;
  /** Directory for nameless files holding nested zips (transit.state); undefined: nested zips are refused. */
  readonly spillDir: string | undefined;
  readonly open: OpenNested;
  /** Whether members' extensions must match their content (transit.extensionMatch). */
  readonly extensionMatch: boolean;
}

/** Inspection - one upload's bounds and tally, shared by every level. */
export class Inspection {
  readonly limits: ArchiveLimits;
  readonly allowed: ReadonlySet<string>;
  readonly opaque: ReadonlySet<string>;
  readonly options: InspectionOptions;
  files = 0;
  directories = 0;
  expanded = 0;
  archives = 0;
  spilled = 0;
  private readonly names = new Set<string>();

  constructor(limits: ArchiveLimits, allowed: ReadonlySet<string>, options: InspectionOptions) {
    this.limits = limits;
    this.allowed = allowed;
    this.opaque = new Set(limits.allowOpaque);
    this.options = options;
  }

  get members(): number {
    return this.files + this.directories;
  }

  /** member - count one more member, refusing past maxMembers. */
  member(path: readonly string[], directory: boolean): void {
    if (this.members + 1 > this.limits.maxMembers) {
      throw new Refusal(path, `more than ${this.limits.maxMembers} members (transit.archives.maxMembers)`);
    }
    if (directory) this.directories++;
    else this.files++;
  }

  /** expectMembers - refuse at once when an archive declares more members than are left. */
  expectMembers(path: readonly string[], n: number): void {
    if (this.members + n > this.limits.maxMembers) {
      throw new Refusal(path, `${n} members, more than ${this.limits.maxMembers - this.members} left of transit.archives.maxMembers (${this.limits.maxMembers})`);
    }
  }

  /**
   * count - `bytes` more expanded bytes of the member at `path`, which has
   * now expanded to memberBytes from `compressed` bytes (undefined when not
   * known). Throws a Refusal past maxExpandedBytes or either ratio.
   */
  count(path: readonly string[], bytes: number, memberBytes: number, compressed: number | undefined): void {
    this.expanded += bytes;
    const l = this.limits;
    if (this.expanded > l.maxExpandedBytes) {
      throw new Refusal(path, `expands past ${l.maxExpandedBytes} bytes in all (transit.archives.maxExpandedBytes)`);
    }
    if (this.expanded > RATIO_FLOOR_BYTES && this.expanded > l.maxRatio * Math.max(1, this.options.topSize)) {
      throw new Refusal(path, `the upload expands past ${l.maxRatio} times its size of ${this.options.topSize} bytes (transit.archives.maxRatio)`);
    }
    if (compressed !== undefined && memberBytes > RATIO_FLOOR_BYTES && memberBytes > l.maxMemberRatio * Math.max(1, compressed)) {
      throw new Refusal(path, `expands past ${l.maxMemberRatio} times its ${compressed} compressed bytes (transit.archives.maxMemberRatio)`);
    }
  }

  /** uniqueName - refuse a second member of the same archive with the same name (NFC, any case: a case-insensitive or normalizing filesystem would merge them). */
  uniqueName(path: readonly string[], archiveKey: string, name: string): void {
    const key = `${archiveKey}\u0000${name.replace(/\/+$/, '').normalize('NFC').toLowerCase()}`;
    if (this.names.has(key)) throw new Refusal(path, 'duplicate name: another member of the same archive has this name (compared in NFC, ignoring case)');
    this.names.add(key);
  }

  /** reserveSpill - room for `bytes` more of nested zips in transit.state; refuses past maxSpillBytes. */
  reserveSpill(path: readonly string[], bytes: number): void {
    if (this.spilled + bytes > this.limits.maxSpillBytes) {
      throw new Refusal(path, `nested zip larger than transit.archives.maxSpillBytes (${this.limits.maxSpillBytes} bytes) cannot be inspected`);
    }
    this.spilled += bytes;
  }

  releaseSpill(bytes: number): void {
    this.spilled -= bytes;
  }
}
