// journal: what egress remembers across a crash (issue 7). complete() flushes delivered/ only, so a
// crash may bring back an entry's pending/ copy beside its delivered/ one; that must read as
// delivered and must not keep its name reserved.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Journal, type JournalEntry } from './journal.js';

let state: string;
beforeEach(() => {
  state = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-journal-'));
});
afterEach(() => fs.rmSync(state, { recursive: true, force: true }));

const entry = (id: string, stored: string): JournalEntry => ({
  id,
  sha256: 'ab'.repeat(32),
  size: 3,
  verdict: 'accepted',
  place: 'outbox',
  stored,
  body: { transfer: id },
});

describe('Journal', () => {
  it('intend reserves a name across a restart; complete releases it and reads as delivered', async () => {
    const j = new Journal(state);
    await j.intend(entry('t1', 'a.txt'));
    expect(new Journal(state).reservedNames()).toEqual(new Set(['outbox/a.txt']));
    expect(new Journal(state).get('t1')).toMatchObject({ complete: false, entry: { stored: 'a.txt' } });
    await j.complete('t1');
    const again = new Journal(state);
    expect(again.reservedNames()).toEqual(new Set());
    expect(again.get('t1')).toMatchObject({ complete: true, entry: { stored: 'a.txt' } });
  });

  it('a pending entry beside its delivered one (a crash undid the removal) is dropped at start, not reserved', async () => {
    const j = new Journal(state);
    await j.intend(entry('t2', 'b.txt'));
    await j.complete('t2');
    await j.intend(entry('t3', 'c.txt')); // really unfinished
    fs.writeFileSync(path.join(state, 'pending', 't2.json'), JSON.stringify(entry('t2', 'b.txt')));
    const after = new Journal(state);
    expect(fs.existsSync(path.join(state, 'pending', 't2.json'))).toBe(false);
    expect(after.reservedNames()).toEqual(new Set(['outbox/c.txt']));
    expect(after.get('t2')?.complete).toBe(true);
    expect(after.get('t3')?.complete).toBe(false);
  });
});
