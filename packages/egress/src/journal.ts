/*
 * NAME
 *   journal - egress's record of what it delivered, for exactly-once output
 *
 * SYNOPSIS
 *   const j = new Journal(stateDir, { retentionDays, isDelivered, log });
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
 *   (isDelivered). One file and at most one flush per transfer, where a file
 *   per transfer costs an inode, three flushes and two renames
 *   (docs/performance.md).
 *
 *   At start, and once the records appended since outnumber both
 *   COMPACT_EVERY and the records kept (so rewriting costs O(1) per record), the log is
 *   rewritten (temporary file, fsync, rename, fsync of the directory) with
 *   what is still needed: every unfinished intent, and the deliveries done
 *   less than retentionDays ago. A transfer that comes again later than
 *   that (ingress held it for days after egress delivered it and its ack
 *   was lost) is delivered a second time, under a new name, rather than
 *   acked as a duplicate; nothing is lost either way. Memory: about 400
 *   bytes per delivery kept (measured: a Map of 100,000 such entries).
 *
 *   Reading the log at start: a crash can cut its end short. The last line
 *   without its newline (a write the crash interrupted) and lines holding
 *   NUL bytes (blocks whose data never reached the disk) are records that
 *   were never flushed, so nothing was linked on their strength; they are
 *   dropped and counted (`journal-recovered`). Any other line that is not a
 *   valid record stops egress with the line's number: the journal is not
 *   guessed at.
 *
 *   Earlier versions kept one file per transfer (<state>/pending/<id>.json,
 *   <state>/delivered/<id>.json); those are read at start, written into the
 *   log, and removed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SharedFlush, fdatasyncFd, fsyncDir, writeDurable, removeTemporaries, type Logger } from '@sluice/core';

export interface JournalEntry {
  id: string;
  sha256: string;
  size: number;
  verdict: 'accepted' | 'rejected';
  /** 'outbox' or 'rejected': the directory the outputs go to. */
  place: 'outbox' | 'rejected';
  stored: string;
  /** The report body (without signature), exactly as it will be signed. */
  body: Record<string, unknown>;
}

/** Delivered - what is kept of a done delivery: enough to ack it again, or refuse its id with other bytes. */
export interface Delivered {
  id: string;
  sha256: string;
  place: 'outbox' | 'rejected';
  stored: string;
  /** When it was done (ISO time); retention counts from here. */
  at: string;
}

export type Known = { complete: false; entry: JournalEntry; durable: boolean } | { complete: true; entry: Delivered };

export interface JournalOptions {
  /** Days a done delivery is remembered (to ack a late resend as a duplicate). */
  retentionDays: number;
  /** Are an unfinished intent's outputs in place? (Its report exists: a lost done record.) */
  isDelivered?: (entry: JournalEntry) => boolean;
  log?: Logger;
  /** The fewest records appended between two compactions (default COMPACT_EVERY; tests use fewer). */
  compactEvery?: number;
}

export const JOURNAL_FILE = 'journal.log';
/** The fewest records appended between two compactions. */
export const COMPACT_EVERY = 10_000;

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const SHA_RE = /^[0-9a-f]{64}$/;
const DAY_MS = 86_400_000;

/** JournalError - the log holds a line that is not a record; egress does not start on it. */
export class JournalError extends Error {}

export class Journal {
  private readonly file: string;
  private readonly state = new Map<string, Known>();
  private fd = -1;
  private size = 0;
  private appended = 0;
  private flush!: SharedFlush;
  /** Set when a failed append could not be undone: no further record is written until a restart. */
  private broken: Error | null = null;

  constructor(
    private readonly dir: string,
    private readonly opts: JournalOptions,
  ) {
    this.file = path.join(dir, JOURNAL_FILE);
    removeTemporaries(dir);
    const lost = this.load();
    const imported = this.importOldLayout();
    let resolved = 0;
    for (const [id, k] of this.state) {
      if (!k.complete && opts.isDelivered?.(k.entry)) {
        this.state.set(id, { complete: true, entry: delivered(k.entry, new Date().toISOString()) });
        resolved++;
      }
    }
    this.compact(); // throws at start: a journal that cannot be rewritten is not one to deliver on
    this.removeOldLayout(imported);
    if (lost > 0 || resolved > 0 || imported.length > 0) {
      opts.log?.info({ event: 'journal-recovered', dropped: lost, resolved, imported: imported.length }, 'egress journal read back after an interruption');
    }
  }

  /** get - the intent or delivery recorded for a transfer. */
  get(id: string): Known | null {
    return this.state.get(id) ?? null;
  }

  /** intend - record, durably, the name and body a delivery will use, before anything is linked. */
  async intend(entry: JournalEntry): Promise<void> {
    this.append({ op: 'intend', entry });
    const known: Known = { complete: false, entry, durable: false };
    this.state.set(entry.id, known);
    await this.flush.request(); // a failure leaves it not durable: the retry records it again
    known.durable = true;
  }

  /**
   * complete - the delivery's outputs are durable in place: remember it as done.
   *
   * Not flushed, and a failed write (ENOSPC) is only logged: the delivery itself is already
   * durable, and a lost done record is read back as delivered at the next start (isDelivered).
   */
  complete(id: string): void {
    const k = this.state.get(id);
    if (!k || k.complete) return;
    const at = new Date().toISOString();
    this.state.set(id, { complete: true, entry: delivered(k.entry, at) });
    try {
      this.append({ op: 'done', id, at });
    } catch (err) {
      this.opts.log?.warn({ event: 'journal-write-failed', id, reason: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not record a delivery as done; it is read back from its report at the next start');
      return;
    }
    if (this.appended >= Math.max(this.opts.compactEvery ?? COMPACT_EVERY, this.state.size)) {
      try {
        this.compact();
      } catch (err) {
        this.appended = 0; // try again after as many records more
        this.opts.log?.warn({ event: 'journal-compaction-failed', reason: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not rewrite the egress journal; it keeps growing meanwhile');
      }
    }
  }

  /** reservedNames - "place/name" of every unfinished delivery (kept from other transfers across restarts). */
  reservedNames(): Set<string> {
    const names = new Set<string>();
    for (const k of this.state.values()) if (!k.complete) names.add(`${k.entry.place}/${k.entry.stored}`);
    return names;
  }

  /** close - wait for running flushes, close the log. */
  async close(): Promise<void> {
    const fd = this.fd;
    this.fd = -1;
    if (fd < 0) return;
    await this.flush.idle();
    fs.closeSync(fd);
  }

  /** append - one record at the end of the log; a failed or short write is undone (truncated away). */
  private append(rec: Record<string, unknown>): void {
    if (this.broken) throw this.broken;
    if (this.fd < 0) throw Object.assign(new Error('egress journal is closed'), { code: 'ECLOSED' });
    const line = Buffer.from(`${JSON.stringify(rec)}\n`);
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
    this.size += line.length;
    this.appended++;
  }

  /** compact - rewrite the log with what is still needed; switch appends to the new file. */
  private compact(): void {
    const cutoff = Date.now() - this.opts.retentionDays * DAY_MS;
    const lines: string[] = [];
    for (const [id, k] of this.state) {
      if (k.complete) {
        if (Date.parse(k.entry.at) < cutoff) this.state.delete(id);
        else lines.push(JSON.stringify({ op: 'delivered', ...k.entry }));
      } else {
        lines.push(JSON.stringify({ op: 'intend', entry: k.entry }));
      }
    }
    const text = lines.map((l) => `${l}\n`).join('');
    writeDurable(this.dir, JOURNAL_FILE, text, 0o600);
    for (const k of this.state.values()) if (!k.complete) k.durable = true;
    const fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND);
    const old = this.fd;
    const oldFlush = this.flush;
    this.fd = fd;
    this.size = Buffer.byteLength(text);
    this.appended = 0;
    this.broken = null;
    this.flush = new SharedFlush(() => fdatasyncFd(fd));
    // Flushes of the old file may still run on the threadpool: close it only after them.
    if (old >= 0) void oldFlush.idle().then(() => fs.closeSync(old));
  }

  /** load - read the log into memory; returns how many unflushed records a crash cut off. */
  private load(): number {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let lost = 0;
    let start = 0;
    for (let n = 1; start < buf.length; n++) {
      const nl = buf.indexOf(0x0a, start);
      const raw = buf.subarray(start, nl < 0 ? buf.length : nl);
      start = nl < 0 ? buf.length : nl + 1;
      if (nl < 0 || raw.includes(0)) {
        lost++; // cut short, or never reached the disk: not flushed, so nothing was linked on it
        continue;
      }
      if (raw.length === 0) continue;
      this.apply(raw.toString('utf8'), n);
    }
    return lost;
  }

  /** apply - one line of the log; anything but a valid record is a JournalError naming the line. */
  private apply(line: string, n: number): void {
    const bad = (why: string) => new JournalError(`egress journal ${this.file} line ${n}: ${why}; egress does not start on a journal it cannot read (move the file aside to start afresh)`);
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw bad('not JSON');
    }
    if (rec === null || typeof rec !== 'object') throw bad('not a record');
    switch (rec.op) {
      case 'intend': {
        const e = rec.entry as JournalEntry;
        if (!isEntry(e)) throw bad('an intent without a valid entry');
        if (this.state.get(e.id)?.complete) return; // a resend's intent written again after its done: stays done
        this.state.set(e.id, { complete: false, entry: e, durable: true });
        return;
      }
      case 'done': {
        const { id, at } = rec;
        if (typeof id !== 'string' || !ID_RE.test(id) || typeof at !== 'string' || Number.isNaN(Date.parse(at))) throw bad('a done record without a valid id and time');
        const k = this.state.get(id);
        if (!k) throw bad(`done for ${id}, which has no intent before it`);
        if (!k.complete) this.state.set(id, { complete: true, entry: delivered(k.entry, at) });
        return;
      }
      case 'delivered': {
        const d = { id: rec.id, sha256: rec.sha256, place: rec.place, stored: rec.stored, at: rec.at } as Delivered;
        if (!isDelivered(d)) throw bad('a delivered record with a missing or invalid field');
        this.state.set(d.id, { complete: true, entry: d });
        return;
      }
      default:
        throw bad(`unknown op ${JSON.stringify(rec.op)}`);
    }
  }

  /** importOldLayout - entries of pending/ and delivered/ (the earlier one-file-per-transfer layout). */
  private importOldLayout(): string[] {
    const dirs: string[] = [];
    for (const sub of ['pending', 'delivered'] as const) {
      const d = path.join(this.dir, sub);
      let names: string[];
      try {
        names = fs.readdirSync(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      dirs.push(d);
      for (const name of names) {
        if (!name.endsWith('.json')) continue;
        const f = path.join(d, name);
        const e = JSON.parse(fs.readFileSync(f, 'utf8')) as JournalEntry;
        if (!isEntry(e)) throw new JournalError(`${f}: not a journal entry; egress does not start on a journal it cannot read`);
        if (sub === 'pending' && !this.state.has(e.id)) this.state.set(e.id, { complete: false, entry: e, durable: true });
        if (sub === 'delivered') this.state.set(e.id, { complete: true, entry: delivered(e, fs.statSync(f).mtime.toISOString()) });
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

function delivered(e: JournalEntry | Delivered, at: string): Delivered {
  return { id: e.id, sha256: e.sha256, place: e.place, stored: e.stored, at };
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
    isDelivered(delivered(e, new Date(0).toISOString())) &&
    Number.isSafeInteger(e.size) &&
    e.size >= 0 &&
    (e.verdict === 'accepted' || e.verdict === 'rejected') &&
    !!e.body &&
    typeof e.body === 'object'
  );
}
