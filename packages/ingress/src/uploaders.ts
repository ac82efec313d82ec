/*
 * NAME
 *   uploaders - one inbox per named uploader, fair turns between them, quotas
 *
 * SYNOPSIS
 *   const ups = new Uploaders({ cfg, log, spool, forwarder, onCommitted });
 *   ups.discover();                    // read the uploaders' directory (at start, then periodically)
 *   await ups.forgetRecovered(meta);   // after a crash, as Inbox.forgetRecovered
 *   ups.start(); ups.pump(); ups.stop();
 *
 * DESCRIPTION
 *   With uploaders.enabled, the uploaders are the subdirectories of the
 *   directory that holds {name} in the uploaders.inbox template, whose names
 *   are valid uploader names (UPLOADER_NAME) and whose inbox (the template
 *   with the name) is a directory, not a link. They are read at start and
 *   every ingress.rescanIntervalMs: a new one gets an Inbox (pickup.ts) of
 *   its own, one whose directory is gone is no longer watched (what it had
 *   spooled is still delivered). The uploader's name comes from the
 *   directory, never from anything the uploader wrote, and goes into every
 *   spool entry of that inbox.
 *
 *   Fair turns: a look at an upload (and its copy) is started by pump(),
 *   which gives each inbox with names queued one start in turn (Map order,
 *   the inbox served goes to the back), at most PICKUP_PARALLEL at once in
 *   all, and only while the spool holds fewer than 4 x ingress.maxInFlight
 *   transfers. So a backlog of one uploader delays another's first file by
 *   at most one pickup per uploader with work; the forwarder takes turns the
 *   same way (forward.ts).
 *
 *   Quotas, per uploader: a name seen while maxFilesWaiting of the
 *   uploader's files wait (names held in memory, looks in progress, and
 *   spooled files not yet acknowledged) is refused when it is looked at
 *   (`quota-files`); a file whose size would take the uploader's bytes
 *   waiting (copies in progress and spooled) past maxBytesWaiting is
 *   refused (`quota-bytes`). Either way the uploader gets a signed rejection
 *   report that names the quota, and nobody else is affected.
 *
 * BOUNDS
 *   At most MAX_UPLOADERS inboxes (beyond, `uploaders-too-many`, once per
 *   read of the directory). Names held: ingress.maxQueuedNames in all, and
 *   each inbox at most its share (maxQueuedNames / uploaders served), so one
 *   uploader's flood of names cannot leave no room for another's.
 */
import * as fs from 'node:fs';
import {
  describe,
  errnoCode,
  uploaderPath,
  uploadersRoot,
  MAX_UPLOADERS,
  UPLOADER_NAME,
  type Config,
  type Logger,
} from '@sluice/core';
import { Inbox, type SpoolBytes } from './pickup.js';
import type { Spool, SpoolMeta } from './spool.js';
import type { Forwarder } from './forward.js';

/** Looks (and copies) in progress at once, over every inbox: as one inbox allows. */
export const PICKUP_PARALLEL = 2;

export interface UploadersOptions {
  cfg: Config;
  log: Logger;
  spool: Spool;
  forwarder: Pick<Forwarder, 'size' | 'waiting'>;
  onCommitted: (meta: SpoolMeta) => void;
  /** The spool's byte budget (ingress.spoolBytes), shared by every uploader's inbox. */
  spoolBytes: SpoolBytes;
}

export class Uploaders {
  /** The inboxes served, by uploader; Map order is the turn order (the one served goes to the back). */
  private readonly inboxes = new Map<string, Inbox>();
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private pumping = false;
  private tooManyWarned = false;

  constructor(private readonly o: UploadersOptions) {}

  /** names - the uploaders served now. */
  get names(): string[] {
    return [...this.inboxes.keys()];
  }

  /** heldNames - names held in memory over every inbox (the `inbox` queue gauge). */
  get heldNames(): number {
    return this.held();
  }

  /** held - names held in memory over every inbox. */
  private held(): number {
    let n = 0;
    for (const inbox of this.inboxes.values()) n += inbox.held;
    return n;
  }

  /** copying - looks in progress over every inbox. */
  private copying(): number {
    let n = 0;
    for (const inbox of this.inboxes.values()) n += inbox.copying;
    return n;
  }

  /** canAccept - room for another look: the global bounds, not the inbox's own. */
  private canAccept(): boolean {
    const copying = this.copying();
    return copying < PICKUP_PARALLEL && this.o.forwarder.size + copying < this.o.cfg.ingress.maxInFlight * 4;
  }

  /** discover - read the uploaders' directory; serve new uploaders, stop serving gone ones. */
  discover(): void {
    const u = this.o.cfg.uploaders;
    const root = uploadersRoot(u.inbox);
    const found = new Set<string>();
    let more = false;
    let d: fs.Dir | null = null;
    try {
      d = fs.opendirSync(root);
      for (let e = d.readSync(); e !== null; e = d.readSync()) {
        if (!UPLOADER_NAME.test(e.name)) continue;
        const inbox = uploaderPath(u.inbox, e.name);
        if (fs.lstatSync(inbox, { throwIfNoEntry: false })?.isDirectory() !== true) continue;
        if (found.size >= MAX_UPLOADERS) {
          more = true;
          break;
        }
        found.add(e.name);
      }
    } catch (err) {
      // Keep serving what is known: a transient error must not stop every uploader.
      this.o.log.error({ event: 'rescan-failed', reason: errnoCode(err) ?? describe(err), detail: root }, 'cannot read the uploaders directory');
      return;
    } finally {
      d?.closeSync();
    }
    if (more && !this.tooManyWarned) {
      this.o.log.error({ event: 'uploaders-too-many', served: found.size, max: MAX_UPLOADERS }, `more than ${MAX_UPLOADERS} uploaders; the rest are not served`);
    }
    this.tooManyWarned = more;
    for (const [name, inbox] of this.inboxes) {
      if (found.has(name)) continue;
      inbox.stop();
      this.inboxes.delete(name);
      this.o.log.info({ event: 'uploader-gone', uploader: name }, 'inbox gone; no longer served');
    }
    for (const name of found) {
      if (this.inboxes.has(name)) continue;
      const inbox = this.makeInbox(name);
      this.inboxes.set(name, inbox);
      this.o.log.info({ event: 'uploader-added', uploader: name, inbox: uploaderPath(u.inbox, name) }, 'serving an uploader');
      if (this.started) inbox.start();
    }
    const share = Math.max(1, Math.floor(this.o.cfg.ingress.maxQueuedNames / Math.max(1, this.inboxes.size)));
    for (const inbox of this.inboxes.values()) inbox.limitNames(share);
  }

  /** makeInbox - the Inbox of one uploader, with the shared bounds, the quotas and the turns. */
  private makeInbox(name: string): Inbox {
    const { cfg, log, spool, forwarder } = this.o;
    const u = cfg.uploaders;
    return new Inbox({
      dir: uploaderPath(u.inbox, name),
      spool,
      log: log.child({ uploader: name }),
      maxFileBytes: cfg.limits.maxFileBytes,
      rescanIntervalMs: cfg.ingress.rescanIntervalMs,
      recheckIntervalMs: cfg.ingress.recheckIntervalMs,
      maxQueuedNames: cfg.ingress.maxQueuedNames,
      onCommitted: this.o.onCommitted,
      canAccept: () => this.canAccept(),
      spoolBytes: this.o.spoolBytes,
      uploader: name,
      turns: this,
      roomForName: () => this.held() < cfg.ingress.maxQueuedNames,
      admitFile: (others) => {
        const waiting = others + forwarder.waiting(name).files;
        return waiting >= u.maxFilesWaiting ? `${waiting} files of ${name}'s wait, at most uploaders.maxFilesWaiting (${u.maxFilesWaiting})` : null;
      },
      admitBytes: (bytes) => {
        const waiting = forwarder.waiting(name).bytes;
        return waiting + bytes > u.maxBytesWaiting
          ? `${waiting} bytes of ${name}'s wait, this file would pass uploaders.maxBytesWaiting (${u.maxBytesWaiting})`
          : null;
      },
    });
  }

  /** pump - give each inbox with work one start in turn, while there is room. */
  pump(): void {
    if (this.pumping) return; // a start that asks for a pump is served by the loop already running
    this.pumping = true;
    try {
      let started = true;
      while (started) {
        started = false;
        for (const [name, inbox] of this.inboxes) {
          if (!inbox.startOne()) continue;
          this.inboxes.delete(name); // served: to the back of the turns
          this.inboxes.set(name, inbox);
          started = true;
          break;
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** forgetRecovered - Inbox.forgetRecovered in the entry's uploader's inbox (served or not). */
  async forgetRecovered(meta: SpoolMeta): Promise<void> {
    if (meta.uploader === undefined || !UPLOADER_NAME.test(meta.uploader)) return;
    const inbox = this.inboxes.get(meta.uploader);
    if (inbox) return inbox.forgetRecovered(meta);
    const dir = uploaderPath(this.o.cfg.uploaders.inbox, meta.uploader);
    if (fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory() !== true) return;
    await this.makeInbox(meta.uploader).forgetRecovered(meta); // never started: only its removal helpers
  }

  /** start - watch every inbox; read the uploaders' directory again every rescanIntervalMs. */
  start(): void {
    this.started = true;
    for (const inbox of this.inboxes.values()) inbox.start();
    this.timer = setInterval(() => this.discover(), this.o.cfg.ingress.rescanIntervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const inbox of this.inboxes.values()) inbox.stop();
  }
}
