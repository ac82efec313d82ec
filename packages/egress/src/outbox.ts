/*
 * NAME
 *   outbox - egress's files: unnamed copies, free names, signed reports, links
 *
 * SYNOPSIS
 *   const out = new Outbox({ cfg, log, tlog });
 *   const { fd, copied } = await out.copyIn(src, size);   // accepted: our own copy, unnamed
 *   const copied = await hashOnly(src, size);             // rejected: our own digest only
 *   const stored = out.chooseName('outbox', original);  // O(log n) lookups, O(1) in the common case
 *   const report = await out.signReport(entry);           // signed, written, fsynced, unnamed
 *   await out.publish(entry, fd, report);                 // file then report, back to back
 *   out.inPlace(entry)                                    // both outputs linked?
 *
 * DESCRIPTION
 *   Every output starts as an unnamed file (O_TMPFILE) in the directory it
 *   will live in, with mode egress.outputMode exactly (the unit's UMask=0077
 *   would narrow it to 0600, unreadable to sluice-out): set with fchmod,
 *   unless the directory gives a new file that mode exactly by itself. That
 *   is tried once per directory when egress starts (an unnamed file created
 *   there, its mode read back: neither the umask, which egress never
 *   changes, nor a default ACL narrowed it); a default ACL added to the
 *   directory while egress runs takes effect from its next start, and can
 *   only narrow the mode, never widen it. It is fsynced, then
 *   linked under its name with linkat, which never overwrites: a name taken
 *   meanwhile fails with EEXIST rather than replace another output.
 *
 *   A file is never left in the outbox without its report. The report is
 *   linked last, because its appearance is what tells a consumer the file
 *   is complete. Everything that can fail for want of a descriptor, of
 *   space or of a signer (signing; opening, writing and fsyncing both
 *   unnamed files) is done before the first link; publish() then links the
 *   file and its report in one synchronous step, nothing opened or awaited
 *   between the two linkat calls. If the report's link fails all the same
 *   (ENOSPC growing the directory, EIO), the file linked a moment before is
 *   unlinked again (`output-unlinked`), and the resend links both. Only a
 *   crash exactly between the two calls (a kill, a power cut) can leave a
 *   lone file; the journal then holds the delivery unfinished and its
 *   resend links the report (docs/architecture.md, "The handoff rule").
 *
 *   Files of DIRECT_MIN_BYTES and more are copied with O_DIRECT: the disk
 *   takes the bytes from an aligned buffer, and the copy into the page
 *   cache, half of a buffered copy's CPU, goes (docs/performance.md). A
 *   filesystem that refuses O_DIRECT (EINVAL) gets buffered copies from
 *   then on, said once (`direct-io-unavailable`).
 *
 *   A stored name is sanitizeName() of the uploaded one, or its
 *   collisionName(base, n) when that is taken in the directory, as a file or
 *   as a report, or promised to an unfinished delivery (`reserved`). The
 *   n is found without walking every taken one: NAME_HINTS_MAX names that
 *   collided recently remember the next n to try (the least recently used
 *   is forgotten first); from there, while that n is taken, n is tried at
 *   doubling distances until a free one is found, and a binary search
 *   between the last taken and that free one settles on a free n whose
 *   predecessor is taken. So a name used n times costs O(log n) lookups
 *   the first time after a start (or after its hint was forgotten) and
 *   four (base and candidate, each as file and as report) after that. The
 *   numbers need not be consecutive, and one a consumer freed below the
 *   hint is not looked for again; a taken one is never used.
 *
 * BOUNDS
 *   Descriptors: a delivery holds at most DESCRIPTORS_PER_DELIVERY at once
 *   (deliver.ts says which). Memory: NAME_HINTS_MAX hints, each a name of
 *   at most MAX_NAME_BYTES and a number; `reserved` holds at most
 *   egress.journalMaxUnfinished names (the journal refuses more).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  copyAndHash,
  copyAndHashDirect,
  collisionName,
  errnoCode,
  fsyncFd,
  openFd,
  sanitizeName,
  DIRECT_MIN_BYTES,
  REPORT_SUFFIX,
  type Config,
  type CopyResult,
  type Logger,
} from '@sluice/core';
import { native, constants as C } from '@sluice/native';
import { canonicalBytes, LOGGED_REPORT_FORMAT, serializeLogged, type ReportBody } from '@sluice/report';
import type { TransparencyLog } from './tlog.js';
import type { JournalEntry } from './journal.js';
import { Results } from './results.js';

export type Place = JournalEntry['place'];

/** The most names whose next collision number egress remembers (each at most MAX_NAME_BYTES and a number). */
export const NAME_HINTS_MAX = 1024;

export interface OutboxOptions {
  cfg: Config;
  log: Logger;
  /** The station's transparency log: it vouches for every report (sluice-report/3). */
  tlog: TransparencyLog;
}

export class Outbox {
  /** "place/name" promised to unfinished deliveries (two transfers must never pick the same one). */
  reserved = new Set<string>();
  /** "place/base" of names that collided recently -> the next n to try (at most NAME_HINTS_MAX, least recently used first). */
  private readonly hints = new Map<string, number>();
  /** The named uploaders' copies of their reports (results.ts). */
  readonly results: Results;
  private directOk = true;
  /** Places whose new files need no fchmod to have outputMode exactly (header). */
  private readonly exactMode = new Set<Place>();

  constructor(private readonly o: OutboxOptions) {
    this.results = new Results({ cfg: o.cfg, log: o.log });
    for (const place of ['outbox', 'rejected'] as const) {
      const d = this.dir(place);
      if (!fs.statSync(d).isDirectory()) throw new Error(`${d} is not a directory`);
      if (createsExactly(d, o.cfg.egress.outputMode)) this.exactMode.add(place);
    }
  }

  /** dir - the directory of a place. */
  dir(place: Place): string {
    return place === 'outbox' ? this.o.cfg.egress.outbox : this.o.cfg.egress.rejected;
  }

  /**
   * inPlace - are a delivery's outputs all linked? A delivery whose outputs are in place is done,
   * even if a power cut took its done record (that record is not flushed). Both are checked:
   * without the directory's fsync a power cut may keep one link and lose the other, and then the
   * resend must finish the delivery, not ack it. A named uploader's copy of the report is one of
   * the outputs too (results.ts).
   */
  inPlace(e: { id: string; place: Place; stored: string; body: Record<string, unknown> }): boolean {
    const report = e.stored + REPORT_SUFFIX;
    return (
      this.exists(e.place, report) &&
      (e.place !== 'outbox' || this.exists(e.place, e.stored)) &&
      this.results.inPlace(e, path.join(this.dir(e.place), report))
    );
  }

  /** exists - does a name exist in a place (without following links)? */
  exists(place: Place, name: string): boolean {
    return fs.lstatSync(path.join(this.dir(place), name), { throwIfNoEntry: false }) !== undefined; // other errors throw
  }

  /** chooseName - a stored name free in the place, for the file and its report alike (header: how n is found). */
  chooseName(place: Place, original: string): string {
    const base = sanitizeName(original);
    if (this.free(place, base)) return base;
    const key = `${place}/${base}`;
    const taken = (n: number) => !this.free(place, collisionName(base, n));
    let n = this.hints.get(key) ?? 2;
    if (taken(n)) {
      // Gallop: lo is taken; hi moves away at doubling distances until it is free.
      let lo = n;
      let step = 1;
      let hi = lo + step;
      while (taken(hi)) {
        lo = hi;
        step *= 2;
        hi = lo + step;
      }
      // Binary search between them: lo stays taken, hi stays free.
      while (hi - lo > 1) {
        const mid = lo + Math.floor((hi - lo) / 2);
        if (taken(mid)) lo = mid;
        else hi = mid;
      }
      n = hi;
    }
    this.hints.delete(key); // most recently used last
    this.hints.set(key, n + 1);
    if (this.hints.size > NAME_HINTS_MAX) this.hints.delete(this.hints.keys().next().value as string);
    return collisionName(base, n);
  }

  /** free - is a name unused in a place: no file, no report, not promised to an unfinished delivery? */
  private free(place: Place, name: string): boolean {
    return !this.reserved.has(`${place}/${name}`) && !this.exists(place, name) && !this.exists(place, name + REPORT_SUFFIX);
  }

  /** copyIn - egress's own copy, unnamed in the outbox, hashed as it is written. */
  async copyIn(src: number, size: number): Promise<{ fd: number; copied: CopyResult }> {
    const direct = size >= DIRECT_MIN_BYTES ? await this.openDirect() : -1;
    const fd = direct >= 0 ? direct : await this.openTmp('outbox');
    try {
      return { fd, copied: await (direct >= 0 ? copyAndHashDirect : copyAndHash)(src, fd, size) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /**
   * signReport - the report of a delivery, written and fsynced into an unnamed file, returned only
   * once its leaf and tree head are durable in the log; the caller closes it. The report is
   * written while the head is flushed (tlog.ts appendSigned): nobody sees it before it is linked.
   */
  async signReport(entry: JournalEntry): Promise<number> {
    // A body journalled by an earlier version names an earlier format; its members mean the same in this one.
    const body = { ...entry.body, format: LOGGED_REPORT_FORMAT } as unknown as ReportBody;
    const { inclusion, durable } = await this.o.tlog.appendSigned(canonicalBytes(body)); // the head is signed and written
    const text = serializeLogged(body, inclusion);
    const fd = await this.openTmp(entry.place);
    try {
      fs.writeFileSync(fd, text);
      // Both on the threadpool: the report's flush and the head's run at the same time.
      await Promise.all([fsyncFd(fd), durable]);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return fd;
  }

  /**
   * publish - link a delivery's outputs that are not in place yet: the file (`file`, accepted only),
   * then its report (`report`, -1 when it is in place), back to back; never overwrite. A report that
   * cannot be linked takes back the file this call linked, so no file is left without its report.
   * `fresh`: the entry's name was chosen by this process for this delivery (chooseName, then
   * reserved), so neither output can be in place and the file is not looked for; a name taken
   * all the same still fails its linkat with EEXIST, never overwritten.
   */
  async publish(entry: JournalEntry, file: number, report: number, opts: { fresh?: boolean } = {}): Promise<void> {
    const linkFile = entry.place === 'outbox' && (opts.fresh === true || !this.exists('outbox', entry.stored));
    if (linkFile) await fsyncFd(file);
    // From here on nothing is opened or awaited: the two links follow each other at once.
    const filePath = path.join(this.dir(entry.place), entry.stored);
    if (linkFile) native.linkFd(file, filePath);
    if (report < 0) return;
    try {
      native.linkFd(report, filePath + REPORT_SUFFIX);
    } catch (err) {
      if (linkFile) this.unlinkLone(entry, errnoCode(err) ?? String(err));
      throw err;
    }
  }

  /** unlinkLone - take back a file whose report could not be linked; the resend brings a fresh copy and links both. */
  private unlinkLone(entry: JournalEntry, why: string): void {
    try {
      fs.unlinkSync(path.join(this.dir('outbox'), entry.stored)); // the copy's descriptor is still open: no blocks are freed here
      this.o.log.warn({ event: 'output-unlinked', id: entry.id, stored: entry.stored, reason: why }, 'the report could not be linked; the file is taken back until the resend links both');
    } catch (err) {
      this.o.log.error(
        { event: 'output-without-report', id: entry.id, stored: entry.stored, reason: errnoCode(err) ?? String(err) },
        'the report could not be linked and the file could not be taken back; the resend links the report',
      );
    }
  }

  /** openTmp - an unnamed file in a place, mode outputMode exactly. */
  private async openTmp(place: Place, flags = 0): Promise<number> {
    // On the threadpool: allocating the inode can take milliseconds (ext4 without a journal steps over recently freed ones).
    const mode = this.o.cfg.egress.outputMode;
    const fd = await openFd(this.dir(place), C.O_TMPFILE | fs.constants.O_RDWR | flags, mode);
    if (this.exactMode.has(place)) return fd; // created with `mode` exactly (header)
    try {
      fs.fchmodSync(fd, mode);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return fd;
  }

  /** openDirect - an O_DIRECT unnamed file in the outbox, or -1 once the filesystem has refused O_DIRECT. */
  private async openDirect(): Promise<number> {
    if (!this.directOk) return -1;
    try {
      return await this.openTmp('outbox', fs.constants.O_DIRECT);
    } catch (err) {
      if (errnoCode(err) !== 'EINVAL') throw err;
      this.directOk = false;
      this.o.log.info({ event: 'direct-io-unavailable', reason: 'EINVAL' }, 'the outbox filesystem refuses O_DIRECT; buffered copies');
      return -1;
    }
  }
}

/**
 * createsExactly - does an unnamed file created in `dir` with `mode` get exactly that mode (nothing
 * narrowed by the umask or a default ACL)? False when it cannot be tried: then every output is fchmodded.
 */
export function createsExactly(dir: string, mode: number): boolean {
  let fd: number;
  try {
    fd = fs.openSync(dir, C.O_TMPFILE | fs.constants.O_RDWR, mode);
  } catch {
    return false;
  }
  try {
    return (fs.fstatSync(fd).mode & 0o7777) === mode;
  } finally {
    fs.closeSync(fd);
  }
}

/** hashOnly - SHA-256 of exactly `size` bytes of a descriptor, by positional reads, into nowhere. */
export async function hashOnly(fd: number, size: number): Promise<CopyResult> {
  const sink = fs.openSync('/dev/null', 'w');
  try {
    return await copyAndHash(fd, sink, size);
  } finally {
    fs.closeSync(sink);
  }
}
