/*
 * NAME
 *   journal - egress's record of what it delivered, for exactly-once output
 *
 * SYNOPSIS
 *   const j = new Journal(stateDir);
 *   j.get(id)          // the intent or delivery recorded for a transfer
 *   j.record(entry)    // durable before any name is linked into the outbox
 *
 * DESCRIPTION
 *   Before egress links a file or a report into place it writes, durably,
 *   which name it will use and the unsigned report body. If egress dies
 *   after that, the transfer comes again (ingress still holds it: no ack
 *   was sent) and egress finishes the same delivery under the same name
 *   instead of making a second copy. A transfer that arrives again after
 *   it was fully delivered (its ack was lost) is acked again without
 *   touching the outbox.
 *
 *   Layout: <state>/delivered/<id>.json (0600), one per transfer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureDir, removeTemporaries, writeDurable } from '@sluice/core';

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

export class Journal {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'delivered');
    ensureDir(this.dir, 0o700);
    removeTemporaries(this.dir);
  }

  get(id: string): JournalEntry | null {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, `${id}.json`), 'utf8')) as JournalEntry;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  record(entry: JournalEntry): void {
    writeDurable(this.dir, `${entry.id}.json`, JSON.stringify(entry), 0o600);
  }
}
