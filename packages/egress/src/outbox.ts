/*
 * NAME
 *   outbox - egress's files: unnamed copies, free names, signed reports, links
 *
 * SYNOPSIS
 *   const out = new Outbox({ cfg, log, signer });
 *   const { fd, copied } = await out.copyIn(src, size);   // accepted: our own copy, unnamed
 *   const copied = await hashOnly(src, size);             // rejected: our own digest only
 *   const stored = out.chooseName('outbox', original);
 *   await out.link(fd, 'outbox', stored);
 *   await out.writeReport(entry);
 *   out.inPlace(entry)                                    // both outputs linked?
 *
 * DESCRIPTION
 *   Every output starts as an unnamed file (O_TMPFILE) in the directory it
 *   will live in, with mode egress.outputMode exactly (the unit's UMask=0077
 *   would narrow it to 0600, unreadable to sluice-out). It is fsynced, then
 *   linked under its name with linkat, which never overwrites: a name taken
 *   meanwhile fails with EEXIST rather than replace another output.
 *
 *   Files of DIRECT_MIN_BYTES and more are copied with O_DIRECT: the disk
 *   takes the bytes from an aligned buffer, and the copy into the page
 *   cache, half of a buffered copy's CPU, goes (docs/performance.md). A
 *   filesystem that refuses O_DIRECT (EINVAL) gets buffered copies from
 *   then on, said once (`direct-io-unavailable`).
 *
 *   A stored name is sanitizeName() of the uploaded one, or its
 *   collisionName() when that is taken in the directory, as a file or as a
 *   report, or promised to an unfinished delivery (`reserved`).
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
import { REPORT_FORMAT, type ReportBody, type SignerPool } from '@sluice/report';
import type { JournalEntry } from './journal.js';
import { Results } from './results.js';

export type Place = JournalEntry['place'];

export interface OutboxOptions {
  cfg: Config;
  log: Logger;
  signer: SignerPool;
}

export class Outbox {
  /** "place/name" promised to unfinished deliveries (two transfers must never pick the same one). */
  reserved = new Set<string>();
  /** The named uploaders' copies of their reports (results.ts). */
  readonly results: Results;
  private directOk = true;

  constructor(private readonly o: OutboxOptions) {
    this.results = new Results({ cfg: o.cfg, log: o.log });
    for (const d of [o.cfg.egress.outbox, o.cfg.egress.rejected]) {
      if (!fs.statSync(d).isDirectory()) throw new Error(`${d} is not a directory`);
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
    try {
      fs.lstatSync(path.join(this.dir(place), name));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** chooseName - a stored name free in the place, for the file and its report alike. */
  chooseName(place: Place, original: string): string {
    const base = sanitizeName(original);
    for (let n = 1; ; n++) {
      const name = n === 1 ? base : collisionName(base, n);
      if (!this.reserved.has(`${place}/${name}`) && !this.exists(place, name) && !this.exists(place, name + REPORT_SUFFIX)) return name;
    }
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

  /** link - give an unnamed file its final name, after an fsync; never overwrite. */
  async link(fd: number, place: Place, name: string): Promise<void> {
    await fsyncFd(fd); // on the threadpool: other transfers' flushes run at the same time
    native.linkFd(fd, path.join(this.dir(place), name));
  }

  /** writeReport - sign the body, write it unnamed, link it as <stored>.sluice.json. */
  async writeReport(entry: JournalEntry): Promise<void> {
    // A body journalled by an earlier version names an earlier format; its members mean the same in this one.
    const text = await this.o.signer.signAndSerialize({ ...entry.body, format: REPORT_FORMAT } as unknown as ReportBody);
    const fd = await this.openTmp(entry.place);
    try {
      fs.writeFileSync(fd, text);
      await this.link(fd, entry.place, entry.stored + REPORT_SUFFIX);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** openTmp - an unnamed file in a place, mode outputMode exactly. */
  private async openTmp(place: Place, flags = 0): Promise<number> {
    // On the threadpool: allocating the inode can take milliseconds (ext4 without a journal steps over recently freed ones).
    const mode = this.o.cfg.egress.outputMode;
    const fd = await openFd(this.dir(place), C.O_TMPFILE | fs.constants.O_RDWR | flags, mode);
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

/** hashOnly - SHA-256 of exactly `size` bytes of a descriptor, by positional reads, into nowhere. */
export async function hashOnly(fd: number, size: number): Promise<CopyResult> {
  const sink = fs.openSync('/dev/null', 'w');
  try {
    return await copyAndHash(fd, sink, size);
  } finally {
    fs.closeSync(sink);
  }
}
