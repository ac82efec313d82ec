/*
 * NAME
 *   pickup - find complete uploads in the inbox and take ingress's copy
 *
 * SYNOPSIS
 *   const inbox = new Inbox({ dir, spool, log, maxFileBytes, ... });
 *   inbox.start();      // rescan, inotify, periodic rescan and rechecks
 *
 * DESCRIPTION
 *   Everything in the inbox was written by the uploader, who is hostile: it
 *   picks names, contents, file types and timing. For each name:
 *
 *   1. Ignored: dotfiles, *.part, *.filepart, *.tmp. Uploaders write under
 *      such a name and rename into place; the rename (inotify MOVED_TO) is
 *      seen at once.
 *   2. lstat, without following anything. A symlink, directory, FIFO,
 *      socket, device, a file with more than one link or over the size
 *      limit is refused without ever being opened: ingress records a
 *      refusal (an empty spool entry with the reason, which becomes a signed
 *      rejection report downstream) and removes the inbox entry (directories
 *      are reported once and left in place). The reason is "<code>: <detail>";
 *      for a regular file the detail starts with "<N> bytes", the size lstat
 *      saw, which the report states as the size seen at pickup (nothing was
 *      copied, so it has no digest; docs/report-format.md).
 *   3. open(O_RDONLY|O_NOFOLLOW|O_NONBLOCK) and fstat: it must be the very
 *      inode lstat saw (otherwise it was swapped; look again later), and
 *      its size is checked against the limit again (it may have grown
 *      since lstat; the copy takes the size fstat reports).
 *   4. Complete? A read lease (F_SETLEASE F_RDLCK) is granted only while no
 *      process has the file open for writing. A paused or stalled uploader
 *      still holds it open, so it is not picked up however long it sleeps;
 *      it is checked again every recheckIntervalMs. The lease is held during
 *      the copy: a writer that opens the file meanwhile breaks it (SIGIO),
 *      and that copy (only that one: F_GETLEASE tells which lease broke) is
 *      thrown away and retried later.
 *   5. Copy into the spool with positional reads, hashing (copyAndHash;
 *      copyAndHashDirect with O_DIRECT from DIRECT_MIN_BYTES on),
 *      check that size and mtime did not move, commit the spool entry
 *      durably, and only then remove the inbox file (if it is still the
 *      same inode) and fsync the inbox directory. The removal first moves
 *      the file aside and asks the kernel whether a writer opened it since
 *      the copy (F_GETLEASE); if one did, the file goes back and is picked
 *      up again when the writer is done, so its new version is not lost
 *      (takeOut).
 *
 *   Names wait in memory (queued for a look, or still open for writing and
 *   looked at again) up to maxQueuedNames. A rescan reads the inbox one
 *   entry at a time and stops at that bound (inbox-queue-full); inotify
 *   events for new names are dropped there too. Once the queue has drained,
 *   the inbox is read again from its start, where what was taken is gone:
 *   a name turned away is found later, never lost.
 *
 *   Taking the lease needs to own the file or CAP_LEASE. Without either,
 *   completeness cannot be proven, so the file is not picked up (fail
 *   closed) and `lease-unavailable` is logged.
 *
 * BUGS
 *   An upload whose connection dropped ends like a complete one: the
 *   client closed the file. Sluice cannot tell the difference; such a file
 *   is processed with the bytes it has, and its report shows its size and
 *   digest. Uploaders that need all-or-nothing upload to *.part and rename.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { native, constants as C } from '@sluice/native';
import { copyAndHash, copyAndHashDirect, DIRECT_MIN_BYTES, describe, errnoCode, escapeForLog, fileKind, fsyncDir, fsyncDirShared, closeFd, openFd, Refused, station, type Logger } from '@sluice/core';
import type { Spool, SpoolMeta } from './spool.js';

const IGNORED_SUFFIXES = ['.part', '.filepart', '.tmp'];
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** isIgnored - names an uploader uses while still writing, and dotfiles. */
export function isIgnored(name: string): boolean {
  return name.startsWith('.') || IGNORED_SUFFIXES.some((s) => name.endsWith(s));
}

/** asideName - where takeOut parks a copied upload while it asks whether a writer opened it (a dotfile: never picked up). */
export function asideName(id: string): Buffer {
  return Buffer.from(`.sluice-taken-${id}`);
}

/** Random bytes per transfer id, and how many ids' worth newTransferId draws at once. */
const ID_RANDOM_BYTES = 8;
const ID_RANDOM_BATCH = 256;
/** Random bytes drawn for ids not yet made; the next id's start at idRandomAt. */
let idRandom = Buffer.alloc(0);
let idRandomAt = 0;

/**
 * newTransferId - sortable by time, unique by randomness, safe as a file name.
 *
 * The random part comes from a batch drawn for ID_RANDOM_BATCH ids at a time: every call into
 * OpenSSL's generator costs a getpid(2) (its fork check) besides the bytes. Ids are unique, not
 * secret; every byte is still used once.
 */
export function newTransferId(): string {
  if (idRandomAt + ID_RANDOM_BYTES > idRandom.length) {
    idRandom = randomBytes(ID_RANDOM_BYTES * ID_RANDOM_BATCH);
    idRandomAt = 0;
  }
  const random = idRandom.toString('hex', idRandomAt, idRandomAt + ID_RANDOM_BYTES);
  idRandomAt += ID_RANDOM_BYTES;
  return `${Date.now().toString(36)}-${random}`;
}

export interface InboxOptions {
  dir: string;
  spool: Spool;
  log: Logger;
  maxFileBytes: number;
  rescanIntervalMs: number;
  recheckIntervalMs: number;
  /** Bound on the names held in memory waiting for a look (queued + waiting); ingress.maxQueuedNames. */
  maxQueuedNames: number;
  /** Called after a transfer is durable in the spool and gone from the inbox. */
  onCommitted: (meta: SpoolMeta) => void;
  /** Backpressure: given the copies in progress, may another start? While not, files wait in the inbox. */
  canAccept: (copying: number) => boolean;
  /** The spool's byte budget: room for a copy of `bytes`, or false (the file waits in the inbox). */
  spoolBytes: SpoolBytes;
  /** The named uploader this inbox belongs to (uploaders.enabled): written into every spool entry. */
  uploader?: string;
  /** Fair turns: with several inboxes, who starts the next look (uploaders.ts); without, this inbox alone. */
  turns?: { pump(): void };
  /** A bound shared with other inboxes (ingress.maxQueuedNames overall): may one more name be held? */
  roomForName?: () => boolean;
  /**
   * Quota on files: called when a new name is held, with the uploader's other names held or being
   * looked at; a text ("N files of NAME's wait ...") refuses the file when it is looked at.
   */
  admitFile?: (others: number) => string | null;
  /** Quota on bytes: called at the look with the bytes this file and the copies in progress add; a text refuses it. */
  admitBytes?: (bytes: number) => string | null;
}

/**
 * SpoolBytes - bytes of uploads in the spool (ingress.spoolBytes): what fstat said of each,
 * reserved before its copy starts, given back when the copy fails or the entry leaves the spool.
 */
export class SpoolBytes {
  private used = 0;
  constructor(readonly limit: number) {}
  /** reserve - count `bytes` if they fit; false if not. */
  reserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }
  /** release - give back what a reservation (or a recovered entry) counted. */
  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
  /** add - count an entry already in the spool (recovered at start), even past the limit. */
  add(bytes: number): void {
    this.used += bytes;
  }
  get bytes(): number {
    return this.used;
  }
}

/** Directories in the inbox remembered as reported (the drop's sftp cannot make one; a local user could). */
const REPORTED_DIRS_MAX = 1024;

/** A copy in progress and the upload's descriptor, whose read lease it holds. */
interface LeasedCopy {
  fd: number;
  ac: AbortController;
}

/** Copies holding a lease; a SIGIO means a writer opened one of them. */
const leased = new Set<LeasedCopy>();
let sigioInstalled = false;
function installSigio(): void {
  if (sigioInstalled) return;
  sigioInstalled = true;
  // Without a handler, SIGIO's default action would kill the process.
  process.on('SIGIO', onSigio);
}

/**
 * onSigio - abort exactly the copies whose lease a writer is breaking.
 *
 * One SIGIO (it carries no descriptor: F_SETSIG is not used, and standard
 * signals do not queue, so one delivery may stand for several breaks) says
 * only that some lease is being broken. F_GETLEASE on each descriptor says
 * which: F_UNLCK while a writer's open() waits for it. Every other copy goes
 * on; aborting them all would let one uploader who opens their own file
 * throw away everyone else's copies. A descriptor F_GETLEASE cannot answer
 * for is aborted too (fail closed: its copy is retried later).
 */
function onSigio(): void {
  for (const copy of leased) {
    let held: boolean;
    try {
      held = native.getLease(copy.fd) === C.F_RDLCK;
    } catch {
      held = false;
    }
    if (!held) copy.ac.abort(new Refused('writer-opened', 'a writer opened the file during the copy'));
  }
}

export class Inbox {
  private readonly o: InboxOptions;
  /** `spool-full` said for the current episode (reset by the next copy that fits). */
  private spoolFullSaid = false;
  private readonly dirBuf: Buffer;
  /** Names waiting to be looked at (key: base64 of the raw name). With `waiting`, at most maxQueuedNames. */
  private readonly queue = new Map<string, Buffer>();
  /** Names still open for writing, looked at again every recheckIntervalMs. A name is in one of the two maps at most. */
  private readonly waiting = new Map<string, Buffer>();
  /** A name was turned away at the bound since the inbox was last read to its end: read it again once the queue drains. */
  private readAgain = false;
  /** Names being looked at now; an event for one of them asks for another look afterwards. */
  private readonly inProgress = new Map<string, boolean>();
  /**
   * Directories already reported (dev:ino), so a rescan does not report them again; at most
   * REPORTED_DIRS_MAX, the oldest forgotten first (it is then reported once more, which costs a report).
   */
  private readonly reportedDirs = new Set<string>();
  private active = 0;
  private readonly parallel = 2;
  private watcher: fs.FSWatcher | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private leaseWarned = false;
  /** False once the spool's filesystem has refused O_DIRECT. */
  private directOk = true;
  /** Names held beyond the uploader's file quota, and the refusal each gets when looked at. A subset of the held names. */
  private readonly overQuota = new Map<string, string>();
  /** Bytes of the copies in progress (the byte quota counts them as waiting). */
  private copyingBytes = 0;
  /** The bound on names held by this inbox (maxQueuedNames; uploaders.ts gives each inbox its share). */
  private maxNames: number;

  constructor(o: InboxOptions) {
    this.o = o;
    this.dirBuf = Buffer.from(o.dir);
    this.maxNames = o.maxQueuedNames;
  }

  /** limitNames - a new bound on the names this inbox holds (uploaders.ts, as uploaders come and go). */
  limitNames(n: number): void {
    this.maxNames = Math.max(1, n);
  }

  /** copying - looks and copies in progress. */
  get copying(): number {
    return this.active;
  }

  /** atBound - no room for one more held name: this inbox's bound, or the one shared with other inboxes. */
  private atBound(): boolean {
    return this.held >= this.maxNames || (this.o.roomForName !== undefined && !this.o.roomForName());
  }

  start(): void {
    installSigio();
    this.watcher = fs.watch(this.o.dir, { encoding: 'buffer', persistent: true }, (_ev, name) => {
      if (name) this.consider(name);
    });
    this.watcher.on('error', (err) => {
      this.o.log.error({ event: 'watch-failed', reason: describe(err) }, 'inbox watch failed; relying on rescans');
    });
    this.rescan();
    this.timers.push(setInterval(() => this.rescan(), this.o.rescanIntervalMs));
    this.timers.push(
      setInterval(() => {
        for (const [k, n] of this.waiting) {
          this.waiting.delete(k);
          this.consider(n);
        }
      }, this.o.recheckIntervalMs),
    );
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    for (const t of this.timers) clearInterval(t);
  }

  /** idle - nothing queued or being copied (tests, shutdown). */
  get busy(): number {
    return this.active + this.queue.size;
  }

  /** held - names held in memory for a later look (queued or waiting); never more than maxQueuedNames. */
  get held(): number {
    return this.queue.size + this.waiting.size;
  }

  /** rescan - look at every entry (start, periodic safety net, after backpressure eases), up to the bound. */
  rescan(): void {
    if (this.stopped) return;
    // Names already queued wait only for room; re-reading the whole inbox for each finished
    // transfer would cost O(n^2) with n files waiting (10,000 uploads: minutes of CPU). Once the
    // queue drains, the next rescan reads the directory again and finds anything inotify missed.
    if (this.queue.size > 0) {
      this.pump();
      return;
    }
    // One entry at a time, never the whole listing: an inbox of a million names must cost no more
    // memory than maxQueuedNames of them. Where the bound stops the reading, the next read starts
    // again from the beginning, where the names already taken are gone.
    this.readAgain = false;
    let dir: fs.Dir | null = null;
    try {
      // latin1 maps each byte of a name to one character and back: the raw bytes, whatever they are.
      dir = fs.opendirSync(this.o.dir, { encoding: 'latin1' });
      for (let e = dir.readSync(); e !== null; e = dir.readSync()) {
        if (!this.consider(Buffer.from(e.name, 'latin1'))) {
          this.o.log.info(
            { event: 'inbox-queue-full', queued: this.held, maxQueuedNames: this.maxNames, ...(this.o.uploader ? { uploader: this.o.uploader } : {}) },
            'stopped reading the inbox at the bound on queued names; the rest are read once the queue drains',
          );
          break;
        }
      }
    } catch (err) {
      this.o.log.error({ event: 'rescan-failed', reason: describe(err) }, 'cannot read the inbox');
    } finally {
      dir?.closeSync();
    }
  }

  /**
   * consider - queue a name for a look, unless ignored or already queued. False only when the name
   * is new and maxQueuedNames are held: it is not remembered, and a read of the inbox once the
   * queue has drained finds it again.
   */
  consider(name: Buffer): boolean {
    if (this.stopped) return true;
    const text = name.toString('utf8');
    if (isIgnored(text) || name.includes(0x2f)) return true;
    const key = name.toString('base64');
    if (this.inProgress.has(key)) {
      this.inProgress.set(key, true); // one name is never handled twice at once: look again when done
      return true;
    }
    if (!this.queue.has(key)) {
      const known = this.waiting.delete(key);
      if (!known && this.atBound()) {
        this.readAgain = true;
        return false;
      }
      if (!known && this.o.admitFile && !this.overQuota.has(key)) {
        const why = this.o.admitFile(this.held + this.active);
        if (why !== null) this.overQuota.set(key, why);
      }
      this.queue.set(key, name);
    }
    this.pump();
    return true;
  }

  /** later - look at a name again in recheckIntervalMs; at the bound it is left to the next read of the inbox. */
  private later(key: string, name: Buffer): void {
    if (this.queue.has(key) || this.waiting.has(key)) return;
    if (this.atBound()) {
      this.readAgain = true;
      return;
    }
    this.waiting.set(key, name);
  }

  /** pump - start looks while there is room; with fair turns, the turns decide whose look is next. */
  private pump(): void {
    if (this.o.turns) this.o.turns.pump();
    else while (this.startOne());
  }

  /** startOne - start the look at the next queued name, if there is one and room for it; true if started. */
  startOne(): boolean {
    if (this.stopped || !(this.active < this.parallel && this.queue.size > 0 && this.o.canAccept(this.active))) return false;
    {
      const [key, name] = this.queue.entries().next().value as [string, Buffer];
      this.queue.delete(key);
      this.active++;
      this.inProgress.set(key, false);
      this.look(name)
        .catch((err) => {
          this.o.log.error(
            { event: 'pickup-failed', name: escapeForLog(name.toString('utf8')), reason: errnoCode(err) ?? 'error', detail: escapeForLog(describe(err)) },
            'pickup failed; the upload stays in the inbox and is tried again',
          );
          this.later(key, name);
        })
        .finally(() => {
          this.active--;
          const again = this.inProgress.get(key);
          this.inProgress.delete(key);
          if (again) this.consider(name);
          this.pump();
          // Names were turned away at the bound: read the inbox again now that there is room.
          if (this.readAgain && this.queue.size === 0 && !this.stopped) setImmediate(() => this.rescan());
        });
    }
    return true;
  }

  private full(name: Buffer): Buffer {
    return Buffer.concat([this.dirBuf, Buffer.from('/'), name]);
  }

  /** look - decide what to do with one inbox entry. */
  private async look(name: Buffer): Promise<void> {
    const p = this.full(name);
    const key = name.toString('base64');
    const overQuota = this.overQuota.get(key);
    this.overQuota.delete(key);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return; // gone (renamed away, or already taken)
      throw err;
    }
    if (st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      if (this.reportedDirs.has(key)) return;
      if (this.reportedDirs.size >= REPORTED_DIRS_MAX) this.reportedDirs.delete(this.reportedDirs.values().next().value!);
      this.reportedDirs.add(key);
      await this.refuse(name, st, 'not-regular', 'directory', false);
      return;
    }
    if (!st.isFile()) {
      await this.refuse(name, st, 'not-regular', fileKind(st), true);
      return;
    }
    if (st.nlink === 0) {
      // lstat raced a rename over this name: it found the old inode just as its last link went.
      // Not a hard link and nothing to refuse; whatever now holds the name gets its own look.
      this.later(name.toString('base64'), name);
      return;
    }
    if (st.nlink !== 1) {
      await this.refuse(name, st, 'hard-link', `${st.size} bytes, regular file with ${st.nlink} links`, true);
      return;
    }
    if (st.size > this.o.maxFileBytes) {
      await this.refuse(name, st, 'too-large', `${st.size} bytes, over the limit of ${this.o.maxFileBytes}`, true);
      return;
    }
    if (overQuota !== undefined) {
      await this.refuse(name, st, 'quota-files', `${st.size} bytes, ${overQuota}`, true);
      return;
    }
    const overBytes = this.o.admitBytes?.(this.copyingBytes + st.size) ?? null;
    if (overBytes !== null) {
      await this.refuse(name, st, 'quota-bytes', `${st.size} bytes, ${overBytes}`, true);
      return;
    }
    this.copyingBytes += st.size;
    try {
      await this.take(name, st);
    } finally {
      this.copyingBytes -= st.size;
    }
  }

  /**
   * openSpoolCopy - the new spool file for a copy of `size` bytes: O_DIRECT from DIRECT_MIN_BYTES on.
   *
   * A buffered copy into the spool would fill the page cache with a copy that transit reads once
   * (docs/performance.md); a filesystem that refuses O_DIRECT (EINVAL) gets buffered copies from
   * then on, said once in the log.
   */
  private async openSpoolCopy(tmp: string, size: number): Promise<{ out: number; direct: boolean }> {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    // On the threadpool, as egress's creations: allocating the inode can take milliseconds.
    if (size >= DIRECT_MIN_BYTES && this.directOk) {
      try {
        return { out: await openFd(tmp, flags | fs.constants.O_DIRECT, 0o600), direct: true };
      } catch (err) {
        if (errnoCode(err) !== 'EINVAL') throw err;
        fs.rmSync(tmp, { force: true }); // the open created the file before the filesystem refused the flag (ramfs does)
        this.directOk = false;
        this.o.log.info({ event: 'direct-io-unavailable', reason: 'EINVAL' }, 'the spool filesystem refuses O_DIRECT; buffered copies');
      }
    }
    return { out: await openFd(tmp, flags, 0o600), direct: false };
  }

  /** take - lease, copy into the spool, commit, remove from the inbox. */
  private async take(name: Buffer, st: fs.Stats): Promise<void> {
    const p = this.full(name);
    const key = name.toString('base64');
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return;
      if (code === 'ELOOP') {
        // Swapped for a symlink between lstat and open: look again (and refuse it then).
        this.inProgress.set(key, true);
        return;
      }
      throw err;
    }
    const id = newTransferId();
    const tmp = this.o.spool.tmpPath(id);
    const ac = new AbortController();
    const copy: LeasedCopy = { fd, ac };
    let leasedNow = false;
    /** Spool bytes reserved for this copy, until the committed entry counts them (or the copy fails). */
    let reserved = 0;
    try {
      const fst = fs.fstatSync(fd);
      if (fst.dev !== st.dev || fst.ino !== st.ino || !fst.isFile()) {
        this.later(key, name); // replaced under us; look again later
        return;
      }
      // The size lstat saw is not the size the copy would take: the copy takes what fstat says now
      // (the file may have grown since lstat), so the limit is checked again here.
      if (fst.size > this.o.maxFileBytes) {
        await this.refuse(name, fst, 'too-large', `${fst.size} bytes, over the limit of ${this.o.maxFileBytes}`, true);
        return;
      }
      // The spool's disk is bounded in bytes (a sparse upload costs its full size here): no room, the file waits.
      if (!this.o.spoolBytes.reserve(fst.size)) {
        if (!this.spoolFullSaid) {
          this.spoolFullSaid = true;
          this.o.log.warn({ event: 'spool-full', name: escapeForLog(name.toString('utf8')), size: fst.size, spooled: this.o.spoolBytes.bytes, limit: this.o.spoolBytes.limit }, 'no room in the spool; uploads wait in the inbox');
        }
        this.later(key, name);
        return;
      }
      reserved = fst.size;
      this.spoolFullSaid = false;
      try {
        native.setLease(fd, C.F_RDLCK);
        leasedNow = true;
        leased.add(copy);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EAGAIN') {
          this.o.log.debug({ event: 'upload-in-progress', name: escapeForLog(name.toString('utf8')) }, 'still open for writing');
          this.later(key, name);
          return;
        }
        if (code === 'EACCES' || code === 'EPERM') {
          if (!this.leaseWarned) {
            this.leaseWarned = true;
            this.o.log.error(
              { event: 'lease-unavailable', name: escapeForLog(name.toString('utf8')), reason: code },
              'cannot prove the upload is complete (need file ownership or CAP_LEASE); not picking it up',
            );
          }
          this.later(key, name);
          return;
        }
        throw err;
      }
      const receivedAt = new Date().toISOString();
      const { out, direct } = await this.openSpoolCopy(tmp, fst.size);
      let meta: SpoolMeta;
      try {
        // endCheckedAfter: the fstat below notices a file that grew after the copy's last read.
        const copied = await (direct ? copyAndHashDirect : copyAndHash)(fd, out, fst.size, { signal: ac.signal, endCheckedAfter: true });
        const after = fs.fstatSync(fd);
        if (after.size !== fst.size || after.mtimeMs !== fst.mtimeMs) {
          throw new Refused('changed', 'the file changed during the copy');
        }
        meta = {
          id,
          name: name.toString('utf8'),
          rawName: key,
          size: copied.size,
          sha256: copied.sha256.toString('hex'),
          receivedAt,
          refusal: '',
          source: { dev: st.dev, ino: st.ino },
          ...(this.o.uploader ? { uploader: this.o.uploader } : {}),
        };
        await this.o.spool.commit(meta, tmp, out); // flushes the copy through `out`
      } finally {
        fs.closeSync(out);
      }
      const reopened = await this.takeOut(name, fst, fd, meta);
      this.o.log.info(
        { event: 'picked-up', id, name: escapeForLog(name.toString('utf8')), ...(this.o.uploader ? { uploader: this.o.uploader } : {}), size: meta.size, sha256: meta.sha256 },
        'upload complete; spooled',
      );
      station.file('picked-up', meta.size);
      this.o.onCommitted(reopened ?? meta);
      reserved = 0; // the entry counts them now, until it leaves the spool
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      if (err instanceof Refused) {
        this.o.log.info({ event: 'pickup-deferred', name: escapeForLog(name.toString('utf8')), reason: err.reason }, err.message);
        this.later(key, name);
        return;
      }
      throw err;
    } finally {
      if (reserved > 0) this.o.spoolBytes.release(reserved);
      leased.delete(copy); // before the descriptor is closed: its number may be reused at once
      if (leasedNow) {
        try {
          native.setLease(fd, C.F_UNLCK);
        } catch {
          /* closing the descriptor drops the lease anyway */
        }
      }
      // The last reference to an upload already unlinked: the close frees its blocks (and waits for
      // the disk's discard), so on the threadpool.
      await closeFd(fd);
    }
  }

  /** refuse - record a refusal durably (it becomes a signed rejection report), then remove the entry. */
  private async refuse(name: Buffer, st: fs.Stats, reason: string, what: string, remove: boolean): Promise<void> {
    const id = newTransferId();
    const tmp = this.o.spool.tmpPath(id);
    const empty = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const meta: SpoolMeta = {
      id,
      name: name.toString('utf8'),
      rawName: name.toString('base64'),
      size: 0,
      sha256: EMPTY_SHA256,
      receivedAt: new Date().toISOString(),
      refusal: `${reason}: ${what}`,
      source: remove ? { dev: st.dev, ino: st.ino } : null,
      ...(this.o.uploader ? { uploader: this.o.uploader } : {}),
    };
    try {
      await this.o.spool.commit(meta, tmp, empty);
    } finally {
      fs.closeSync(empty);
    }
    if (remove) await this.removeFromInbox(name, st);
    this.o.log.warn(
      { event: 'upload-refused', id, name: escapeForLog(name.toString('utf8')), ...(this.o.uploader ? { uploader: this.o.uploader } : {}), reason, detail: what },
      'upload refused at ingress',
    );
    station.file('refused');
    this.o.onCommitted(meta);
  }

  /**
   * takeOut - remove a copied upload from the inbox, unless a writer opened it after the copy.
   *
   * A writer that opens the upload while we hold its read lease (between the end of the copy and
   * here) waits in open() for the lease, then writes into whatever inode its path lookup found.
   * Unlinking that inode would lose the new version. So the upload is first renamed aside (no new
   * open can find it by its name), then the lease is read synchronously (F_GETLEASE; the SIGIO that
   * says the same comes only through the event loop): still ours, nobody opened it, and the aside
   * name is unlinked. Broken: the spool entry forgets its source (a restart must not remove the
   * file), the file goes back under its name, or a fresh one if an upload took the name
   * meanwhile, and it is looked at again once the writer is done. Returns the updated
   * metadata when the file was put back, else null.
   */
  private async takeOut(name: Buffer, st: { dev: number; ino: number }, fd: number, meta: SpoolMeta): Promise<SpoolMeta | null> {
    const p = this.full(name);
    const aside = this.full(asideName(meta.id));
    try {
      const now = fs.lstatSync(p);
      if (now.dev !== st.dev || now.ino !== st.ino) return null; // something new under that name: leave it
      fs.renameSync(p, aside);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      return null;
    }
    if (native.getLease(fd) === C.F_RDLCK) {
      fs.unlinkSync(aside);
      await fsyncDirShared(this.o.dir);
      return null;
    }
    const kept: SpoolMeta = { ...meta, source: null };
    this.o.spool.update(kept);
    const back = this.putBack(aside, name, meta.id);
    this.later(back.toString('base64'), back);
    this.o.log.warn(
      { event: 'upload-reopened', id: meta.id, name: escapeForLog(name.toString('utf8')), detail: escapeForLog(back.toString('utf8')) },
      'a writer opened the upload after it was copied; the copy goes on, the file stays for another pickup',
    );
    return kept;
  }

  /** putBack - give an aside file back to the inbox under its name, or a fresh one beside it; never overwrite. */
  private putBack(aside: Buffer, name: Buffer, id: string): Buffer {
    for (const candidate of [name, Buffer.concat([name, Buffer.from(`.reopened-${id}`)])]) {
      try {
        fs.linkSync(aside, this.full(candidate));
        fs.unlinkSync(aside);
        fsyncDir(this.o.dir);
        return candidate;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
    }
    throw new Error(`cannot put ${escapeForLog(name.toString('utf8'))} back: both names are taken`);
  }

  /** removeFromInbox - unlink the entry if it is still the inode we took; fsync the inbox. */
  async removeFromInbox(name: Buffer, st: { dev: number; ino: number }): Promise<void> {
    const p = this.full(name);
    try {
      const now = fs.lstatSync(p);
      if (now.dev !== st.dev || now.ino !== st.ino) return; // something new under that name: leave it
      fs.unlinkSync(p);
      await fsyncDirShared(this.o.dir); // shared: one flush of the inbox serves every pickup waiting for one
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }

  /** forgetRecovered - after a crash: remove inbox files whose copy was already committed; finish an interrupted takeOut. */
  async forgetRecovered(meta: SpoolMeta): Promise<void> {
    const name = Buffer.from(meta.rawName, 'base64');
    const aside = asideName(meta.id);
    if (meta.source) {
      await this.removeFromInbox(aside, meta.source);
      await this.removeFromInbox(name, meta.source);
    } else if (fs.existsSync(this.full(aside))) {
      this.putBack(this.full(aside), name, meta.id); // reopened by a writer: it belongs to the inbox
    }
  }
}
