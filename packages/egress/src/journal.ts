/*
 * NAME
 *   journal - egress's record of what it delivered, for exactly-once output
 *
 * SYNOPSIS
 *   const j = new Journal(stateDir);
 *   j.get(id)            // the intent or delivery recorded for a transfer
 *   j.intend(entry)      // durable before any name is linked into place
 *   j.complete(id)       // both outputs linked and fsynced
 *   j.reservedNames()    // names promised to unfinished deliveries
 *
 * DESCRIPTION
 *   Before egress links a file or a report into place it writes, durably,
 *   which name it will use and the unsigned report body (pending/). If
 *   egress dies after that, the transfer comes again (ingress still holds
 *   it: no ack was sent) and egress finishes the same delivery under the
 *   same name instead of making a second copy. Names of unfinished
 *   deliveries stay reserved across restarts, so no other transfer can take
 *   one in the meantime. Once both outputs are linked and the directory is
 *   fsynced, the entry moves to delivered/; a transfer that arrives again
 *   after that (its ack was lost) is acked again without touching the
 *   outbox.
 *
 *   Layout: <state>/pending/<id>.json and <state>/delivered/<id>.json (0600).
 *
 * BUGS
 *   delivered/ grows by one small file per transfer; prune entries older
 *   than ingress could still re-send (its spool is empty of them) with
 *   find -mtime in a timer. Sluice itself does not prune yet.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureDir, fsyncDir, fsyncDirShared, removeTemporaries, writeDurableAsync } from '@sluice/core';

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

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class Journal {
  private readonly pending: string;
  private readonly delivered: string;

  constructor(stateDir: string) {
    this.pending = path.join(stateDir, 'pending');
    this.delivered = path.join(stateDir, 'delivered');
    ensureDir(this.pending, 0o700);
    ensureDir(this.delivered, 0o700);
    removeTemporaries(this.pending);
    removeTemporaries(this.delivered);
    this.dropCompletedPending();
  }

  /** get - the entry for a transfer and whether its delivery completed. */
  get(id: string): { entry: JournalEntry; complete: boolean } | null {
    if (!ID_RE.test(id)) return null;
    for (const [dir, complete] of [
      [this.delivered, true],
      [this.pending, false],
    ] as const) {
      try {
        return { entry: JSON.parse(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8')) as JournalEntry, complete };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return null;
  }

  /** intend - record, durably, the name and body a delivery will use, before anything is linked. */
  async intend(entry: JournalEntry): Promise<void> {
    await writeDurableAsync(this.pending, `${entry.id}.json`, JSON.stringify(entry), 0o600);
  }

  /**
   * complete - the delivery's outputs are durable in place.
   *
   * Only delivered/ is flushed: that the entry is there is what must survive. If a crash loses the
   * entry's removal from pending/, both copies exist afterwards; get() looks in delivered/ first,
   * and the constructor removes such leftovers before reservedNames() reads pending/ (one
   * directory flush fewer per file, issue 9).
   */
  async complete(id: string): Promise<void> {
    fs.renameSync(path.join(this.pending, `${id}.json`), path.join(this.delivered, `${id}.json`));
    await fsyncDirShared(this.delivered);
  }

  /** dropCompletedPending - pending entries whose delivery completed (a crash undid only their removal). */
  private dropCompletedPending(): void {
    let n = 0;
    for (const f of fs.readdirSync(this.pending)) {
      if (f.endsWith('.json') && fs.existsSync(path.join(this.delivered, f))) {
        fs.rmSync(path.join(this.pending, f), { force: true });
        n++;
      }
    }
    if (n > 0) fsyncDir(this.pending);
  }

  /** reservedNames - "place/name" of every unfinished delivery (kept from other transfers across restarts). */
  reservedNames(): Set<string> {
    const names = new Set<string>();
    for (const f of fs.readdirSync(this.pending)) {
      if (!f.endsWith('.json')) continue;
      const e = JSON.parse(fs.readFileSync(path.join(this.pending, f), 'utf8')) as JournalEntry;
      names.add(`${e.place}/${e.stored}`);
    }
    return names;
  }
}
