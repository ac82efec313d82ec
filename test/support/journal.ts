// journal - read egress's journal.log as a test sees it, without touching it (egress may be running).
import * as fs from 'node:fs';
import * as path from 'node:path';

export type JournalState = 'intended' | 'done';

/** journalStates - every transfer id in <dir>/egress/journal.log with the state its last record gives it. */
export function journalStates(dir: string): Map<string, JournalState> {
  const states = new Map<string, JournalState>();
  for (const line of fs.readFileSync(journalPath(dir), 'utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line) as { op: string; id?: string; entry?: { id: string } };
    if (rec.op === 'intend') {
      if (states.get(rec.entry!.id) !== 'done') states.set(rec.entry!.id, 'intended');
    } else {
      states.set(rec.id!, 'done');
    }
  }
  return states;
}

/** journalPath - egress's journal in a `sluice dev` directory. */
export const journalPath = (dir: string) => path.join(dir, 'egress', 'journal.log');

/** loseLastDone - what a power cut leaves when the last record, `id`'s done (never flushed), did not reach the disk. */
export function loseLastDone(dir: string, id: string): void {
  const text = fs.readFileSync(journalPath(dir), 'utf8');
  const cut = text.lastIndexOf('\n', text.length - 2) + 1;
  const last = JSON.parse(text.slice(cut)) as { op: string; id?: string };
  if (last.op !== 'done' || last.id !== id) throw new Error(`the journal's last record is not ${id}'s done: ${text.slice(cut)}`);
  fs.truncateSync(journalPath(dir), Buffer.byteLength(text.slice(0, cut)));
}
