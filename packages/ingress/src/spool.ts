/*
 * NAME
 *   spool - ingress's durable queue of transfers not yet acknowledged
 *
 * SYNOPSIS
 *   const spool = new Spool(dir);
 *   const entries = spool.recover();          // at start: clean up, list what is queued
 *   spool.commit(meta, tmpDataName, fd);      // make a picked-up file durable (fd: the copy, still open)
 *   spool.forget(id);                         // after the final ack
 *   spool.hold(id, reason);                   // refused downstream: keep, stop sending
 *
 * DESCRIPTION
 *   Layout of the spool directory (0700, ingress only):
 *     <id>.data          the private copy (0600), written once, never changed
 *     <id>.json          its metadata; its presence is the commit point
 *     .tmp-*             an interrupted copy or metadata write (removed at start)
 *     held/<id>.*        transfers transit refused as records: kept for an operator
 *
 *   A transfer exists once <id>.json is durable, and it is forgotten only
 *   after the final ack (invariant 6). A .data file without its .json is an
 *   interrupted pickup whose inbox file is still in place, so it is removed.
 *
 *   Metadata remembers the inbox entry (name, device, inode) the copy came
 *   from. If ingress crashed after the commit but before it removed the
 *   inbox file, recovery removes that file instead of picking it up twice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, fsyncDirShared, fsyncFd, removeTemporaries, unlinkFile, writeDurable, writeDurableAsync, TMP_PREFIX } from '@sluice/core';

export interface SpoolMeta {
  id: string;
  /** The uploaded name, as UTF-8 (invalid bytes replaced). */
  name: string;
  /** The uploaded name's raw bytes, base64 (to find the inbox entry again). */
  rawName: string;
  size: number;
  sha256: string;
  receivedAt: string;
  /** Non-empty when ingress itself refused the upload; the data file is then empty. */
  refusal: string;
  source: { dev: number; ino: number } | null;
  /** The named uploader whose inbox the file appeared in (uploaders.enabled); absent for the anonymous drop. */
  uploader?: string;
}

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class Spool {
  readonly dir: string;
  readonly heldDir: string;

  constructor(dir: string) {
    this.dir = dir;
    this.heldDir = path.join(dir, 'held');
  }

  dataPath(id: string): string {
    return path.join(this.dir, `${id}.data`);
  }

  /** tmpPath - a fresh temporary name for a copy in progress. */
  tmpPath(id: string): string {
    return path.join(this.dir, `${TMP_PREFIX}${id}.data`);
  }

  /** recover - remove leftovers of interrupted work; return every committed, unacknowledged transfer, oldest first. */
  recover(): { entries: SpoolMeta[]; removed: number } {
    let removed = removeTemporaries(this.dir);
    const entries: SpoolMeta[] = [];
    const names = new Set(fs.readdirSync(this.dir));
    for (const name of names) {
      if (name.endsWith('.data')) {
        const id = name.slice(0, -'.data'.length);
        if (!names.has(`${id}.json`)) {
          fs.rmSync(path.join(this.dir, name), { force: true });
          removed++;
        }
      } else if (name.endsWith('.json')) {
        const id = name.slice(0, -'.json'.length);
        if (!ID_RE.test(id) || !names.has(`${id}.data`)) continue; // not ours; left for an operator
        entries.push(JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as SpoolMeta);
      }
    }
    if (removed > 0) fsyncDir(this.dir);
    entries.sort((a, b) => (a.receivedAt < b.receivedAt ? -1 : a.receivedAt > b.receivedAt ? 1 : a.id < b.id ? -1 : 1));
    return { entries, removed };
  }

  /**
   * commit - fsync the copied data, give it its name, then write the metadata: the transfer now exists.
   *
   * `dataFd` is the descriptor the copy was written through (or any open descriptor of
   * `tmpData`): fsync flushes the file, whichever descriptor asks, so the copy is not opened a
   * second time for it. It stays the caller's to close.
   *
   * The flushes run on the threadpool: a synchronous fsync of a large copy held ingress's
   * event loop for the whole writeback, and the other pickup's hashing with it. The lease pickup
   * holds meanwhile makes a writer that opens the upload wait; takeOut then sees the broken lease
   * and keeps the file for another pickup (pickup.test.ts), so the longer window loses nothing.
   */
  async commit(meta: SpoolMeta, tmpData: string, dataFd: number): Promise<void> {
    await fsyncFd(dataFd);
    fs.renameSync(tmpData, this.dataPath(meta.id));
    await writeDurableAsync(this.dir, `${meta.id}.json`, JSON.stringify(meta), 0o600); // fsyncs the directory too
  }

  /** update - replace a committed transfer's metadata, durably (pickup: the inbox file stays after all). */
  update(meta: SpoolMeta): void {
    writeDurable(this.dir, `${meta.id}.json`, JSON.stringify(meta), 0o600);
  }

  /** forget - remove a transfer after its final ack: metadata first, so a crash in between leaves only removable data. */
  async forget(id: string): Promise<void> {
    // Both on the threadpool: freeing a file's blocks waits for the disk's discard (-o discard), and a
    // large file's takes a while. A missing file is fine.
    await unlinkFile(path.join(this.dir, `${id}.json`));
    await unlinkFile(this.dataPath(id));
    await fsyncDirShared(this.dir);
  }

  /** hold - move a transfer out of the queue for an operator to look at; nothing is deleted. */
  hold(id: string, reason: string): void {
    fs.mkdirSync(this.heldDir, { recursive: true, mode: 0o700 });
    writeDurable(this.heldDir, `${id}.reason`, `${reason}\n`, 0o600);
    fs.renameSync(this.dataPath(id), path.join(this.heldDir, `${id}.data`));
    fs.renameSync(path.join(this.dir, `${id}.json`), path.join(this.heldDir, `${id}.json`));
    fsyncDir(this.heldDir);
    fsyncDir(this.dir);
  }
}

/** countHeld - the transfers in spool/held/, waiting for an operator (0 when there is no such directory). */
export function countHeld(spool: Spool): number {
  try {
    return fs.readdirSync(spool.heldDir).filter((n) => n.endsWith('.json')).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}
