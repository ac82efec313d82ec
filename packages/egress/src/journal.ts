/*
 * NAME
 *   journal - egress's record of what it delivered, for exactly-once output
 *
 * SYNOPSIS
 *   const j = new Journal(stateDir, { retentionDays, maxDeliveries, maxUnfinished, isDelivered, log });
 *   j.get(id)            // the intent or delivery recorded for a transfer
 *   await j.intend(entry)   // durable before any name is linked into place
 *   j.complete(id)       // both outputs linked and their directory fsynced
 *   j.reservedNames()    // names promised to unfinished deliveries
 *   await j.close()
 *
 * DESCRIPTION
 *   Before egress links a file or a report into place it records, durably,
 *   which name it will use and the unsigned report body (an intent). If
 *   egress dies after that, the transfer comes again (ingress still holds
 *   it: no ack was sent) and egress finishes the same delivery under the
 *   same name instead of making a second copy. Names of unfinished
 *   deliveries stay reserved across restarts, so no other transfer can take
 *   one in the meantime. Once both outputs are linked and their directory is
 *   fsynced, the delivery is recorded as done; a transfer that arrives again
 *   after that (its ack was lost) is acked again without touching the
 *   outbox.
 *
 *   Layout: <state>/journal.log (0600), one JSON record per line, appended:
 *     {"op":"intend","entry":{...}}                            name and report body
 *     {"op":"done","id":"...","at":"<ISO time>"}               outputs durable in place
 *     {"op":"delivered","id","sha256","place","stored","at"}   a done delivery, as compaction keeps it
 *
 *   An intent is flushed (fdatasync) before intend() returns; intents of
 *   transfers handled together share one flush (SharedFlush: group commit).
 *   A done record is not flushed: the outputs are already durable when it is
 *   written, and if a power cut loses it, the intent is still there and its
 *   report is in place, which the next start reads as delivered
 *   (isDelivered). One file and at most one flush per transfer.
 *
 * BOUNDS
 *   Memory holds, whatever the size of the log:
 *   - at most maxDeliveries done deliveries (egress.journalMaxDeliveries),
 *     each as its id, digest, place, stored name and time (what that costs
 *     in bytes: docs/configuration.md). Beyond that the oldest is forgotten, as it
 *     is once it is older than retentionDays (egress.journalDays). A
 *     transfer that comes again after its delivery was forgotten (its ack
 *     was lost and ingress held it all that time) is delivered a second
 *     time, under a new name: a duplicate, never a loss. Forgetting before
 *     retentionDays is logged (`journal-forgot`).
 *   - at most maxUnfinished unfinished deliveries
 *     (egress.journalMaxUnfinished), each as its id, digest, name and the
 *     place of its intent in the log; the report body stays on disk and is
 *     read back when the transfer comes again. These are never forgotten
 *     (their names must stay reserved): with maxUnfinished of them, intend()
 *     refuses a new delivery (EJOURNALFULL, `journal-full`; egress acks
 *     RETRY, the file waits in ingress's spool). A log holding more than
 *     maxUnfinished that are not already in place stops egress at start,
 *     naming the key to raise.
 *   - one chunk of the log being read (READ_CHUNK) or written
 *     (WRITE_CHUNK), and one line of at most MAX_LINE_BYTES.
 *
 *   At start, and once at least COMPACT_EVERY records were appended and
 *   the log has grown to twice its size after the last rewrite (so
 *   rewriting costs O(1) per byte appended), the log is rewritten with what
 *   is kept: streamed into a temporary file, fsynced, renamed over the log,
 *   and the directory fsynced. So on disk the log stays under about twice
 *   what is kept, or COMPACT_EVERY records more than that.
 *
 *   Reading the log at start streams it. A crash can cut its end short. The
 *   last line without its newline (a write the crash interrupted) and lines
 *   holding NUL bytes (blocks whose data never reached the disk) are
 *   records that were never flushed, so nothing was linked on their
 *   strength; they are dropped and counted (`journal-recovered`). Any other
 *   line that is not a valid record stops egress with the line's number:
 *   the journal is not guessed at.
 *
 *   Earlier versions kept one file per transfer (<state>/pending/<id>.json,
 *   <state>/delivered/<id>.json); those are read at start (within the same
 *   bounds), written into the log, and removed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SharedFlush, TMP_PREFIX, fdatasyncFd, fsyncDir, removeTemporaries, type Logger } from '@sluice/core';

type Place = 'outbox' | 'rejected';

export interface JournalEntry {
  id: string;
  sha256: string;
  size: number;
  verdict: 'accepted' | 'rejected';
  /** 'outbox' or 'rejected': the directory the outputs go to. */
  place: Place;
  stored: string;
  /** The report body (without signature), exactly as it will be signed. */
  body: Record<string, unknown>;
}

/** Delivered - what is kept of a done delivery: enough to ack it again, or refuse its id with other bytes. */
export interface Delivered {
  id: string;
  sha256: string;
  place: Place;
  stored: string;
  /** When it was done (ISO time); retention counts from here. */
  at: string;
}

export type Known = { complete: false; entry: JournalEntry; durable: boolean } | { complete: true; entry: Delivered };

export interface JournalOptions {
  /** Days a done delivery is remembered (to ack a late resend as a duplicate). */
  retentionDays: number;
  /** The most done deliveries remembered (egress.journalMaxDeliveries); beyond, the oldest is forgotten. */
  maxDeliveries?: number;
  /** The most unfinished deliveries held (egress.journalMaxUnfinished); beyond, intend() refuses. */
  maxUnfinished?: number;
  /** Are an unfinished intent's outputs in place? (Its report exists: a lost done record.) */
  isDelivered?: (entry: JournalEntry) => boolean;
  log?: Logger;
  /** The fewest records appended between two compactions (default COMPACT_EVERY; tests use fewer). */
  compactEvery?: number;
}

export const JOURNAL_FILE = 'journal.log';
/** The fewest records appended between two compactions. */
export const COMPACT_EVERY = 10_000;
/** Default of egress.journalMaxDeliveries: done deliveries remembered. */
export const MAX_DELIVERIES = 200_000;
/** Default of egress.journalMaxUnfinished: unfinished deliveries held. */
export const MAX_UNFINISHED = 10_000;
/**
 * The longest line the log holds. An intent's report body comes from one protocol record
 * (limits.maxRecordBytes, at most 1 MiB) and JSON escapes a byte into at most six.
 */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;
/** Bytes of the log read at a time at start. */
const READ_CHUNK = 1024 * 1024;
/** Bytes of a compacted log gathered before one write. */
const WRITE_CHUNK = 256 * 1024;

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const SHA_RE = /^[0-9a-f]{64}$/;
const DAY_MS = 86_400_000;
const NL = 0x0a;

/** JournalError - the log holds a line that is not a record, or more than egress may hold; egress does not start on it. */
export class JournalError extends Error {}

/** Kept - what memory holds of a done delivery (its id is the key). */
class Kept {
  constructor(
    readonly sha256: string,
    readonly place: Place,
    readonly stored: string,
    /** When it was done, in ms since the epoch. */
    readonly at: number,
  ) {}
}

/** Pending - what memory holds of an unfinished delivery; its intent (with the report body) stays in the log. */
class Pending {
  constructor(
    readonly sha256: string,
    readonly place: Place,
    readonly stored: string,
    /** Is its intent flushed? */
    public durable: boolean,
    /** Where its intent line is in the current log (bytes, without the newline). */
    public pos: number,
    public len: number,
    /** The entry itself, only while it is in no log yet (imported from the earlier layout). */
    public entry: JournalEntry | null,
  ) {}
}

export class Journal {
  private readonly file: string;
  private readonly maxDeliveries: number;
  private readonly maxUnfinished: number;
  /** Done deliveries, oldest first (insertion order). */
  private readonly done = new Map<string, Kept>();
  private readonly pending = new Map<string, Pending>();
  /** One iterator over `done`, kept: a fresh one would step over every entry already deleted from the front. */
  private oldest: Iterator<string> | null = null;
  /** Done deliveries forgotten for maxDeliveries since the last `journal-forgot`. */
  private forgotten = 0;
  /** Intents refused for maxUnfinished since the last time there was room (one `journal-full` per episode). */
  private full = false;
  /**
   * Done records a write could not take (ENOSPC): written again before the next record, so the log
   * catches up once there is room. At most maxUnfinished, the oldest dropped first (a lost done
   * record costs nothing but a look at the outputs at the next start: isDelivered).
   */
  private readonly lostDone: { id: string; at: string }[] = [];
  /** At start: were intents resolved as delivered before the whole log was read? Then a done record may find none. */
  private resolvedEarly = false;
  private resolved = 0;
  /** The current log, O_RDWR|O_APPEND: appended to, and read for intents' bodies. */
  private fd = -1;
  private size = 0;
  /** The size of the log when it was last rewritten. */
  private compacted = 0;
  private appended = 0;
  private flush: SharedFlush | null = null;
  /** Set when a failed append could not be undone: no further record is written until a restart. */
  private broken: Error | null = null;

  constructor(
    private readonly dir: string,
    private readonly opts: JournalOptions,
  ) {
    this.file = path.join(dir, JOURNAL_FILE);
    this.maxDeliveries = bound(opts.maxDeliveries ?? MAX_DELIVERIES, 'maxDeliveries');
    this.maxUnfinished = bound(opts.maxUnfinished ?? MAX_UNFINISHED, 'maxUnfinished');
    removeTemporaries(dir);
    let lost: number;
    let imported: string[];
    try {
      lost = this.load();
      imported = this.importOldLayout();
      this.resolve();
      this.compact(); // throws at start: a journal that cannot be rewritten is not one to deliver on
    } catch (err) {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.fd = -1;
      throw err;
    }
    this.removeOldLayout(imported);
    if (lost > 0 || this.resolved > 0 || imported.length > 0) {
      opts.log?.info({ event: 'journal-recovered', dropped: lost, resolved: this.resolved, imported: imported.length }, 'egress journal read back after an interruption');
    }
  }

  /** get - the intent or delivery recorded for a transfer (an intent's body is read back from the log). */
  get(id: string): Known | null {
    const k = this.done.get(id);
    if (k) return { complete: true, entry: { id, sha256: k.sha256, place: k.place, stored: k.stored, at: new Date(k.at).toISOString() } };
    const p = this.pending.get(id);
    if (p) return { complete: false, entry: this.entryOf(id, p), durable: p.durable };
    return null;
  }

  /** intend - record, durably, the name and body a delivery will use, before anything is linked. */
  async intend(entry: JournalEntry): Promise<void> {
    let p = this.pending.get(entry.id);
    if (!p && this.pending.size >= this.maxUnfinished) {
      if (!this.full) {
        this.full = true;
        this.opts.log?.warn(
          { event: 'journal-full', unfinished: this.pending.size, bound: this.maxUnfinished },
          'egress journal holds as many unfinished deliveries as egress.journalMaxUnfinished; new deliveries are retried until one is finished',
        );
      }
      throw Object.assign(new Error(`egress journal holds ${this.maxUnfinished} unfinished deliveries (egress.journalMaxUnfinished); a new one waits until one of them is finished`), {
        code: 'EJOURNALFULL',
      });
    }
    const { pos, len } = this.append({ op: 'intend', entry });
    if (p) {
      p.pos = pos;
      p.len = len;
      p.entry = null;
      p.durable = false;
    } else {
      p = new Pending(entry.sha256, entry.place, entry.stored, false, pos, len, null);
      this.pending.set(entry.id, p);
    }
    this.done.delete(entry.id);
    await this.flush!.request(); // a failure leaves it not durable: the retry records it again
    p.durable = true;
  }

  /**
   * complete - the delivery's outputs are durable in place: remember it as done.
   *
   * Not flushed, and a failed write (ENOSPC) is only logged: the delivery itself is already
   * durable, and a lost done record is read back as delivered at the next start (isDelivered).
   */
  complete(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    const at = Date.now();
    this.pending.delete(id);
    if (this.pending.size < this.maxUnfinished) this.full = false;
    this.remember(id, new Kept(p.sha256, p.place, p.stored, at));
    const done = { id, at: new Date(at).toISOString() };
    try {
      this.writeLostDone();
      this.append({ op: 'done', ...done });
    } catch (err) {
      if (this.lostDone.length >= this.maxUnfinished) this.lostDone.shift();
      this.lostDone.push(done);
      this.opts.log?.warn({ event: 'journal-write-failed', id, reason: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not record a delivery as done; written again once there is room, else read back from its report at the next start');
      return;
    }
    // Rewriting costs about the size of what is kept: wait until as much again was appended (O(1) per byte).
    if (this.appended >= (this.opts.compactEvery ?? COMPACT_EVERY) && this.size >= 2 * this.compacted) {
      try {
        this.compact();
      } catch (err) {
        this.appended = 0; // try again after as many records more
        this.opts.log?.warn({ event: 'journal-compaction-failed', reason: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not rewrite the egress journal; it keeps growing meanwhile');
      }
    }
  }

  /** writeLostDone - append the done records a full disk refused earlier, oldest first; throws (keeping the rest) if one still does not fit. */
  private writeLostDone(): void {
    while (this.lostDone.length > 0) {
      this.append({ op: 'done', ...this.lostDone[0]! });
      this.lostDone.shift();
    }
  }

  /** reservedNames - "place/name" of every unfinished delivery (kept from other transfers across restarts). */
  reservedNames(): Set<string> {
    const names = new Set<string>();
    for (const p of this.pending.values()) names.add(`${p.place}/${p.stored}`);
    return names;
  }

  /** close - wait for running flushes, close the log. */
  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = -1;
    if (fd < 0) return;
    await this.flush?.idle();
    fs.closeSync(fd);
  }

  /** remember - a done delivery, newest; forget the oldest beyond maxDeliveries. */
  private remember(id: string, k: Kept): void {
    this.done.delete(id); // a delivery done again goes to the end
    this.done.set(id, k);
    while (this.done.size > this.maxDeliveries) {
      let next = this.oldest?.next();
      if (!next || next.done) {
        this.oldest = this.done.keys();
        next = this.oldest.next();
      }
      this.done.delete(next.value as string);
      this.forgotten++;
    }
  }

  /** reportForgotten - one `journal-forgot` for the deliveries forgotten for maxDeliveries since the last one. */
  private reportForgotten(): void {
    if (this.forgotten === 0) return;
    const first = this.done.values().next();
    this.opts.log?.info(
      { event: 'journal-forgot', forgotten: this.forgotten, bound: this.maxDeliveries, oldest: first.done ? '' : new Date(first.value.at).toISOString() },
      'egress.journalMaxDeliveries reached: the oldest deliveries were forgotten before egress.journalDays; a resend of one would be delivered again under a new name',
    );
    this.forgotten = 0;
  }

  /** append - one record at the end of the log; a failed or short write is undone (truncated away). */
  private append(rec: Record<string, unknown>): { pos: number; len: number } {
    if (this.broken) throw this.broken;
    if (this.fd < 0) throw Object.assign(new Error('egress journal is closed'), { code: 'ECLOSED' });
    const line = Buffer.from(`${JSON.stringify(rec)}\n`);
    if (line.length > MAX_LINE_BYTES) {
      throw Object.assign(new Error(`egress journal: a record of ${line.length} bytes, over MAX_LINE_BYTES (${MAX_LINE_BYTES})`), { code: 'E2BIG' });
    }
    let written = 0;
    try {
      while (written < line.length) written += fs.writeSync(this.fd, line, written); // O_APPEND: always at the end
    } catch (err) {
      if (written > 0) {
        try {
          fs.ftruncateSync(this.fd, this.size);
        } catch (undo) {
          this.broken = Object.assign(new Error(`egress journal ${this.file}: a partial record could not be removed (${(undo as NodeJS.ErrnoException).code ?? String(undo)}); restart egress`), {
            code: 'EJOURNAL',
          });
        }
      }
      throw err;
    }
    const pos = this.size;
    this.size += line.length;
    this.appended++;
    return { pos, len: line.length - 1 };
  }

  /** compact - stream what is kept into a new log (temporary, fsync, rename, fsync dir); switch appends to it. */
  private compact(): void {
    const cutoff = Date.now() - this.opts.retentionDays * DAY_MS;
    const tmp = path.join(this.dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const out = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    const w = new LineWriter(out);
    const places: number[] = []; // new pos and len of each intent, in the order of `pending`
    try {
      for (const [id, k] of this.done) {
        if (k.at < cutoff) {
          this.done.delete(id);
          continue;
        }
        w.line(Buffer.from(JSON.stringify({ op: 'delivered', id, sha256: k.sha256, place: k.place, stored: k.stored, at: new Date(k.at).toISOString() })));
      }
      for (const [id, p] of this.pending) {
        const raw = p.entry ? Buffer.from(JSON.stringify({ op: 'intend', entry: p.entry })) : this.readLine(id, p);
        places.push(w.line(raw), raw.length);
      }
      w.end();
      fs.fsyncSync(out);
    } catch (err) {
      fs.closeSync(out);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(out);
    fs.renameSync(tmp, this.file);
    fsyncDir(this.dir);
    this.lostDone.length = 0; // the rewritten log holds every delivery kept, done records lost before included
    const fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_APPEND);
    let i = 0;
    for (const p of this.pending.values()) {
      p.pos = places[i++]!;
      p.len = places[i++]!;
      p.entry = null;
      p.durable = true;
    }
    const old = this.fd;
    const oldFlush = this.flush;
    this.fd = fd;
    this.size = w.size;
    this.compacted = w.size;
    this.appended = 0;
    this.broken = null;
    this.flush = new SharedFlush(() => fdatasyncFd(fd));
    // Flushes of the old file may still run on the threadpool: close it only after them.
    if (old >= 0) {
      if (oldFlush) void oldFlush.idle().then(() => fs.closeSync(old));
      else fs.closeSync(old);
    }
    this.reportForgotten();
  }

  /** entryOf - an unfinished delivery's whole entry: in memory while it is in no log, else its intent read back. */
  private entryOf(id: string, p: Pending): JournalEntry {
    if (p.entry) return p.entry;
    let rec: IntentRecord | null = null;
    try {
      rec = JSON.parse(this.readLine(id, p).toString('utf8')) as IntentRecord;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
    }
    if (rec?.op !== 'intend' || !isEntry(rec.entry) || rec.entry.id !== id) {
      throw new JournalError(`egress journal ${this.file}: the intent of ${id} at byte ${p.pos} does not read back`);
    }
    return rec.entry;
  }

  /** readLine - the bytes of an intent's line in the current log. */
  private readLine(id: string, p: Pending): Buffer {
    if (this.fd < 0) throw Object.assign(new Error('egress journal is closed'), { code: 'ECLOSED' });
    const buf = Buffer.allocUnsafe(p.len);
    for (let got = 0; got < p.len; ) {
      const n = fs.readSync(this.fd, buf, got, p.len - got, p.pos + got);
      if (n === 0) throw new JournalError(`egress journal ${this.file}: the intent of ${id} at byte ${p.pos} is past the end of the file`);
      got += n;
    }
    return buf;
  }

  /** load - stream the log into memory (within the bounds); returns how many unflushed records a crash cut off. */
  private load(): number {
    try {
      this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_APPEND);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    const cutoff = Date.now() - this.opts.retentionDays * DAY_MS;
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let lost = 0;
    let n = 1; // the number of the line being read
    let at = 0; // where in the file the next chunk starts
    let carry: Buffer[] = []; // the start of a line that goes on in the next chunk
    let carryPos = 0;
    let carryLen = 0;
    let overlong = false; // the line being read is over MAX_LINE_BYTES: passed over, not kept
    let overlongNul = false;
    const line = (raw: Buffer, pos: number) => {
      if (raw.includes(0)) lost++; // never reached the disk: not flushed, so nothing was linked on it
      else if (raw.length > 0) this.apply(raw.toString('utf8'), n, pos, raw.length, cutoff);
      n++;
    };
    for (;;) {
      const got = fs.readSync(this.fd, buf, 0, READ_CHUNK, at);
      if (got === 0) break;
      const chunk = buf.subarray(0, got);
      const chunkPos = at;
      at += got;
      let start = 0;
      while (start < got) {
        const nl = chunk.indexOf(NL, start);
        const end = nl < 0 ? got : nl;
        if (overlong) {
          overlongNul ||= chunk.subarray(start, end).includes(0);
        } else if (carryLen + end - start > MAX_LINE_BYTES) {
          overlongNul = carry.some((c) => c.includes(0)) || chunk.subarray(start, end).includes(0);
          overlong = true;
          carry = [];
          carryLen = 0;
        } else if (nl < 0) {
          if (carryLen === 0) carryPos = chunkPos + start;
          carry.push(Buffer.from(chunk.subarray(start, end))); // a copy: `buf` is read into again
          carryLen += end - start;
        } else if (carryLen > 0) {
          carry.push(chunk.subarray(start, end));
          line(Buffer.concat(carry), carryPos);
          carry = [];
          carryLen = 0;
        } else {
          line(chunk.subarray(start, end), chunkPos + start);
        }
        if (nl < 0) break;
        if (overlong) {
          if (!overlongNul) throw this.bad(n, `longer than ${MAX_LINE_BYTES} bytes`);
          lost++; // a run of never-written blocks
          n++;
          overlong = false;
        }
        start = nl + 1;
      }
    }
    if (carryLen > 0 || overlong) lost++; // cut short: the crash interrupted the write
    return lost;
  }

  /** bad - the JournalError for line n. */
  private bad(n: number, why: string): JournalError {
    return new JournalError(`egress journal ${this.file} line ${n}: ${why}; egress does not start on a journal it cannot read (move the file aside to start afresh)`);
  }

  /** apply - one line of the log; anything but a valid record is a JournalError naming the line. */
  private apply(line: string, n: number, pos: number, len: number, cutoff: number): void {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw this.bad(n, 'not JSON');
    }
    if (rec === null || typeof rec !== 'object') throw this.bad(n, 'not a record');
    switch (rec.op) {
      case 'intend': {
        const e = rec.entry as JournalEntry;
        if (!isEntry(e)) throw this.bad(n, 'an intent without a valid entry');
        const k = this.done.get(e.id);
        if (k && k.sha256 === e.sha256 && k.place === e.place && k.stored === e.stored) return; // its intent again after its done: stays done
        const p = this.pending.get(e.id);
        if (p) {
          p.pos = pos;
          p.len = len;
          p.durable = true;
          return;
        }
        this.done.delete(e.id); // the same id delivered again after it was forgotten: a new delivery
        this.pending.set(e.id, new Pending(e.sha256, e.place, e.stored, true, pos, len, null));
        this.checkUnfinished(`line ${n}`);
        return;
      }
      case 'done': {
        const { id, at } = rec;
        const time = typeof at === 'string' ? Date.parse(at) : NaN;
        if (typeof id !== 'string' || !ID_RE.test(id) || Number.isNaN(time)) throw this.bad(n, 'a done record without a valid id and time');
        const p = this.pending.get(id);
        if (!p) {
          if (this.done.has(id) || this.resolvedEarly) return; // done already (read back from its report)
          throw this.bad(n, `done for ${id}, which has no intent before it`);
        }
        this.pending.delete(id);
        if (time >= cutoff) this.remember(id, new Kept(p.sha256, p.place, p.stored, time));
        return;
      }
      case 'delivered': {
        const d = { id: rec.id, sha256: rec.sha256, place: rec.place, stored: rec.stored, at: rec.at } as Delivered;
        if (!isDelivered(d)) throw this.bad(n, 'a delivered record with a missing or invalid field');
        this.pending.delete(d.id);
        const time = Date.parse(d.at);
        if (time >= cutoff) this.remember(d.id, new Kept(d.sha256, d.place, d.stored, time));
        else this.done.delete(d.id);
        return;
      }
      default:
        throw this.bad(n, `unknown op ${JSON.stringify(rec.op)}`);
    }
  }

  /**
   * checkUnfinished - at start, past maxUnfinished: first read as delivered those whose outputs are in place;
   * if there are still too many, egress does not start (dropping one could give its name to another file).
   */
  private checkUnfinished(where: string): void {
    if (this.pending.size <= this.maxUnfinished) return;
    this.resolve();
    this.resolvedEarly = true;
    if (this.pending.size <= this.maxUnfinished) return;
    throw new JournalError(
      `egress journal ${this.file} (${where}): more than ${this.maxUnfinished} unfinished deliveries, the bound egress.journalMaxUnfinished; ` +
        'egress does not start without keeping each one reserved: raise egress.journalMaxUnfinished (a few hundred bytes of memory each, docs/configuration.md) and start again',
    );
  }

  /** resolve - unfinished deliveries whose outputs are in place (their done record was lost) become done. */
  private resolve(): void {
    const inPlace = this.opts.isDelivered;
    if (!inPlace) return;
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (inPlace(this.entryOf(id, p))) {
        this.pending.delete(id);
        this.remember(id, new Kept(p.sha256, p.place, p.stored, now));
        this.resolved++;
      }
    }
  }

  /** importOldLayout - entries of pending/ and delivered/ (one file per transfer, the layout before the log). */
  private importOldLayout(): string[] {
    const dirs: string[] = [];
    const cutoff = Date.now() - this.opts.retentionDays * DAY_MS;
    for (const sub of ['pending', 'delivered'] as const) {
      const d = path.join(this.dir, sub);
      let dir: fs.Dir;
      try {
        dir = fs.opendirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      dirs.push(d);
      try {
        for (let de = dir.readSync(); de !== null; de = dir.readSync()) {
          if (!de.name.endsWith('.json')) continue;
          const f = path.join(d, de.name);
          const e = JSON.parse(fs.readFileSync(f, 'utf8')) as JournalEntry;
          if (!isEntry(e)) throw new JournalError(`${f}: not a journal entry; egress does not start on a journal it cannot read`);
          if (sub === 'pending' && !this.pending.has(e.id) && !this.done.has(e.id)) {
            this.pending.set(e.id, new Pending(e.sha256, e.place, e.stored, true, 0, 0, e));
            this.checkUnfinished(f);
          }
          if (sub === 'delivered') {
            this.pending.delete(e.id);
            const time = fs.statSync(f).mtimeMs;
            if (time >= cutoff) this.remember(e.id, new Kept(e.sha256, e.place, e.stored, time));
          }
        }
      } finally {
        dir.closeSync();
      }
    }
    return dirs;
  }

  /** removeOldLayout - once the log holds their entries durably. */
  private removeOldLayout(dirs: string[]): void {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    if (dirs.length > 0) fsyncDir(this.dir);
  }
}

/** LineWriter - lines written to a file WRITE_CHUNK bytes at a time; `size` counts every byte given. */
class LineWriter {
  private parts: Buffer[] = [];
  private gathered = 0;
  size = 0;

  constructor(private readonly fd: number) {}

  /** line - add one line (a newline follows it); returns where it starts in the file. */
  line(raw: Buffer): number {
    const pos = this.size;
    this.parts.push(raw, NEWLINE);
    this.gathered += raw.length + 1;
    this.size += raw.length + 1;
    if (this.gathered >= WRITE_CHUNK) this.end();
    return pos;
  }

  /** end - write what is gathered. */
  end(): void {
    if (this.gathered === 0) return;
    const data = Buffer.concat(this.parts, this.gathered);
    for (let written = 0; written < data.length; ) written += fs.writeSync(this.fd, data, written);
    this.parts = [];
    this.gathered = 0;
  }
}

const NEWLINE = Buffer.from('\n');

type IntentRecord = { op?: unknown; entry?: JournalEntry };

/** bound - a count option: a positive safe integer. */
function bound(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`Journal: ${name} must be a positive integer, not ${n}`);
  return n;
}

const isName = (s: unknown) => typeof s === 'string' && s.length > 0 && !s.includes('/') && s !== '.' && s !== '..';

function isDelivered(d: Delivered): boolean {
  return (
    typeof d.id === 'string' &&
    ID_RE.test(d.id) &&
    typeof d.sha256 === 'string' &&
    SHA_RE.test(d.sha256) &&
    (d.place === 'outbox' || d.place === 'rejected') &&
    isName(d.stored) &&
    typeof d.at === 'string' &&
    !Number.isNaN(Date.parse(d.at))
  );
}

function isEntry(e: JournalEntry | undefined): e is JournalEntry {
  return (
    !!e &&
    typeof e === 'object' &&
    isDelivered({ id: e.id, sha256: e.sha256, place: e.place, stored: e.stored, at: new Date(0).toISOString() }) &&
    Number.isSafeInteger(e.size) &&
    e.size >= 0 &&
    (e.verdict === 'accepted' || e.verdict === 'rejected') &&
    !!e.body &&
    typeof e.body === 'object'
  );
}
