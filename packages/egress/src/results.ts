/*
 * NAME
 *   results - each named uploader's copies of their reports, and their removal when old
 *
 * SYNOPSIS
 *   const results = new Results({ cfg, log });
 *   results.dirOf(entry)              // the uploader's results directory, or null (anonymous, or disabled)
 *   results.inPlace(entry, report)    // is this delivery's copy there?
 *   await results.copy(entry, report) // link a copy of the report file there, durably
 *   results.start(); results.stop();  // the periodic sweep of old results
 *
 * DESCRIPTION
 *   For a file from a named uploader (the report body's `uploader`), egress
 *   puts a copy of the signed report file, byte for byte, into
 *   uploaders.results with {name} replaced: `<stored-name>.sluice.json`, mode
 *   RESULTS_MODE. The copy is an unnamed file (O_TMPFILE) in that directory,
 *   fsynced, linked (linkat never overwrites), and the directory fsynced,
 *   before egress acks: it is one of the outputs that must be in place for a
 *   delivery to be done (Outbox.inPlace), so a crash before it is made
 *   re-creates it from the report file when the transfer comes again.
 *
 *   The results directory is shared by the uploader's accepted and rejected
 *   files, and consumers may empty outbox/, so a stored name can come again
 *   while an older copy still holds it. An output never overwrites another:
 *   the copy then goes under `<transfer-id>.sluice.json` instead (the id is
 *   unique and short), and the report inside names the stored name. Whether
 *   a delivery's copy is in place is decided by content: the primary name
 *   holding exactly this report's bytes, or the id name existing.
 *
 *   A missing results directory (an uploader retired with `sluice uploader
 *   remove` while files were on their way) does not hold a file back: the
 *   delivery goes on without the copy (`results-unavailable`), since the
 *   report in outbox/ or rejected/ is the record; only the uploader's
 *   notification is missing.
 *
 *   Sweep: at start and every SWEEP_INTERVAL_MS, every results directory is
 *   read one entry at a time and each `*.sluice.json` regular file last
 *   modified more than uploaders.resultsDays ago is removed. One sweep looks
 *   at most SWEEP_MAX_ENTRIES entries in all and removes at most
 *   SWEEP_MAX_REMOVED files, yielding to the event loop every SWEEP_BATCH
 *   entries; when a bound stops it, the next sweep comes after
 *   SWEEP_AGAIN_MS and starts with the uploader after the last one it
 *   finished. Nothing but report copies is ever removed, never a directory.
 *
 * BOUNDS
 *   One copy in memory at a time per delivery (a report file is at most
 *   MAX_REPORT_BYTES); the sweep holds one directory handle and one name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  errnoCode,
  describe,
  escapeForLog,
  fsyncDirShared,
  fsyncFd,
  openFd,
  uploaderPath,
  uploadersRoot,
  REPORT_SUFFIX,
  UPLOADER_NAME,
  MAX_UPLOADERS,
  type Config,
  type Logger,
} from '@sluice/core';
import { native, constants as C } from '@sluice/native';
import { MAX_REPORT_BYTES } from '@sluice/report';

/** Mode of a results copy: egress writes, the uploader's own group reads (docs/operations.md). */
export const RESULTS_MODE = 0o640;
/** Time between two sweeps of old results. */
export const SWEEP_INTERVAL_MS = 60 * 60 * 1000;
/** Time to the next sweep when a bound stopped one. */
export const SWEEP_AGAIN_MS = 60 * 1000;
/** Entries one sweep looks at, in all directories together. */
export const SWEEP_MAX_ENTRIES = 20_000;
/** Files one sweep removes. */
export const SWEEP_MAX_REMOVED = 1_000;
/** Entries looked at between two yields to the event loop. */
export const SWEEP_BATCH = 500;

/** The parts of a journal entry this file needs. */
export interface ResultEntry {
  id: string;
  stored: string;
  body: Record<string, unknown>;
}

export interface ResultsOptions {
  cfg: Config;
  log: Logger;
}

export class Results {
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private stopped = false;
  /** Where the next sweep starts: the uploader after the last one a sweep finished. */
  private cursor = '';

  constructor(private readonly o: ResultsOptions) {}

  /** uploaderOf - the entry's named uploader, or null. */
  private uploaderOf(entry: ResultEntry): string | null {
    const u = entry.body.uploader;
    return typeof u === 'string' && UPLOADER_NAME.test(u) ? u : null;
  }

  /** dirOf - the uploader's results directory, or null when the file has none (anonymous, or uploaders disabled). */
  dirOf(entry: ResultEntry): string | null {
    const u = this.uploaderOf(entry);
    if (!this.o.cfg.uploaders.enabled || u === null) return null;
    return uploaderPath(this.o.cfg.uploaders.results, u);
  }

  /** inPlace - is the copy of `report` (the report file's path) there, or is there nowhere to put one? */
  inPlace(entry: ResultEntry, report: string): boolean {
    const dir = this.dirOf(entry);
    if (dir === null || !isDir(dir)) return true;
    if (exists(path.join(dir, `${entry.id}${REPORT_SUFFIX}`))) return true;
    const primary = path.join(dir, entry.stored + REPORT_SUFFIX);
    if (!exists(primary)) return false;
    const ours = readReport(report);
    return ours !== null && sameBytes(primary, ours);
  }

  /**
   * copy - a copy of the report file `report` in the uploader's results directory, durable
   * (file and directory fsynced), unless one is there already. No-op for a file without one.
   */
  async copy(entry: ResultEntry, report: string): Promise<void> {
    const dir = this.dirOf(entry);
    if (dir === null) return;
    if (!isDir(dir)) {
      this.o.log.warn(
        { event: 'results-unavailable', id: entry.id, uploader: this.uploaderOf(entry), dir: escapeForLog(dir) },
        "the uploader's results directory is missing; delivered without a copy there",
      );
      return;
    }
    const bytes = readReport(report);
    if (bytes === null) throw Object.assign(new Error(`report ${report} is missing or too large to copy`), { code: 'ENOENT' });
    const fd = await openFd(dir, C.O_TMPFILE | fs.constants.O_RDWR, RESULTS_MODE);
    try {
      fs.fchmodSync(fd, RESULTS_MODE); // exactly, whatever the umask
      fs.writeFileSync(fd, bytes);
      await fsyncFd(fd);
      for (const name of [entry.stored + REPORT_SUFFIX, `${entry.id}${REPORT_SUFFIX}`]) {
        try {
          native.linkFd(fd, path.join(dir, name));
          break;
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
          // Taken: by this very copy (made before a crash), or by an older result of the same name.
          if (name === `${entry.id}${REPORT_SUFFIX}` || sameBytes(path.join(dir, name), bytes)) break;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    await fsyncDirShared(dir);
  }

  /** start - sweep now and every SWEEP_INTERVAL_MS (only with named uploaders). */
  start(): void {
    if (!this.o.cfg.uploaders.enabled) return;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sweep().then((complete) => this.schedule(complete ? SWEEP_INTERVAL_MS : SWEEP_AGAIN_MS));
    }, ms);
    this.timer.unref();
  }

  /**
   * sweep - remove results older than uploaders.resultsDays, within the bounds of the header.
   * Resolves true when every directory was read to its end.
   */
  async sweep(now = Date.now()): Promise<boolean> {
    if (this.sweeping) return false;
    this.sweeping = true;
    const cutoff = now - this.o.cfg.uploaders.resultsDays * 86_400_000;
    let examined = 0;
    let removed = 0;
    let complete = true;
    try {
      const names = this.uploaders();
      // Resume after the last uploader a bounded sweep finished, so every one gets its turn.
      const start = names.findIndex((n) => n > this.cursor);
      const order = start < 0 ? names : [...names.slice(start), ...names.slice(0, start)];
      for (const name of order) {
        const dir = uploaderPath(this.o.cfg.uploaders.results, name);
        let d: fs.Dir | null = null;
        try {
          d = fs.opendirSync(dir);
          for (let e = d.readSync(); e !== null; e = d.readSync()) {
            if (++examined % SWEEP_BATCH === 0) await new Promise((r) => setImmediate(r));
            if (examined > SWEEP_MAX_ENTRIES || removed >= SWEEP_MAX_REMOVED || this.stopped) {
              complete = false;
              break;
            }
            if (!e.name.endsWith(REPORT_SUFFIX)) continue;
            const p = path.join(dir, e.name);
            const st = fs.lstatSync(p, { throwIfNoEntry: false });
            if (!st || !st.isFile() || st.mtimeMs >= cutoff) continue;
            fs.unlinkSync(p);
            removed++;
          }
        } catch (err) {
          this.o.log.error({ event: 'results-sweep-failed', uploader: name, reason: errnoCode(err) ?? describe(err) }, 'cannot sweep a results directory');
        } finally {
          d?.closeSync();
        }
        if (!complete) break;
        this.cursor = name;
      }
      if (complete) this.cursor = '';
      if (removed > 0 || !complete) {
        this.o.log.info({ event: 'results-swept', removed, examined: Math.min(examined, SWEEP_MAX_ENTRIES), complete }, `removed ${removed} results older than ${this.o.cfg.uploaders.resultsDays} days`);
      }
    } finally {
      this.sweeping = false;
    }
    return complete;
  }

  /** uploaders - the names with a results directory: valid names under the template's root, sorted, at most MAX_UPLOADERS. */
  private uploaders(): string[] {
    const root = uploadersRoot(this.o.cfg.uploaders.results);
    const names: string[] = [];
    let d: fs.Dir | null = null;
    try {
      d = fs.opendirSync(root);
      for (let e = d.readSync(); e !== null && names.length < MAX_UPLOADERS; e = d.readSync()) {
        if (UPLOADER_NAME.test(e.name) && isDir(uploaderPath(this.o.cfg.uploaders.results, e.name))) names.push(e.name);
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') this.o.log.error({ event: 'results-sweep-failed', reason: errnoCode(err) ?? describe(err) }, 'cannot read the uploaders directory');
    } finally {
      d?.closeSync();
    }
    return names.sort();
  }
}

/** isDir - a directory there, not through a final symbolic link. */
function isDir(p: string): boolean {
  return fs.lstatSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** exists - anything under that name (a dangling link too). */
function exists(p: string): boolean {
  return fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}

/** readReport - a report file's bytes (not through a link), or null when missing or over MAX_REPORT_BYTES. */
function readReport(p: string): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_REPORT_BYTES) return null;
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** sameBytes - does the regular file at p hold exactly `bytes`? */
function sameBytes(p: string, bytes: Buffer): boolean {
  const other = readReport(p);
  return other !== null && other.equals(bytes);
}
