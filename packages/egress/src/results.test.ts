// results: a named uploader's copies of their reports. A copy is the report file's bytes, never
// overwrites another, counts as an output that must be in place, and old ones are swept.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, type Logger } from '@sluice/core';
import { Results } from './results.js';

let dir: string;
let events: { event: string }[];
const log = {
  info: (o: { event: string }) => events.push(o),
  warn: (o: { event: string }) => events.push(o),
  error: (o: { event: string }) => events.push(o),
  child: () => log,
} as unknown as Logger;

const results = (enabled = true) =>
  new Results({
    cfg: parseConfig({ uploaders: { enabled, inbox: path.join(dir, 'inbox', '{name}'), results: path.join(dir, 'results', '{name}'), resultsDays: 30 } }),
    log,
  });
/** report - a report file in the place directory (its bytes stand for a signed report). */
const report = (stored: string, text: string) => {
  const p = path.join(dir, 'outbox', `${stored}.sluice.json`);
  fs.writeFileSync(p, text);
  return p;
};
const entry = (id: string, stored: string, uploader?: string) => ({ id, stored, body: uploader ? { uploader } : {} });
const resultsOf = (u: string) => path.join(dir, 'results', u);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-results-'));
  for (const d of ['outbox', 'results/alice', 'results/bob']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  events = [];
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('Results', () => {
  it("copies the report file byte for byte into the uploader's results, 0640, and then counts it in place", async () => {
    const r = results();
    const rep = report('a.txt', '{"report":1}\n');
    const e = entry('T1', 'a.txt', 'alice');
    expect(r.inPlace(e, rep)).toBe(false); // a crash before the copy: the delivery is not done
    await r.copy(e, rep);
    const copy = path.join(resultsOf('alice'), 'a.txt.sluice.json');
    expect(fs.readFileSync(copy, 'utf8')).toBe('{"report":1}\n');
    expect(fs.statSync(copy).mode & 0o777).toBe(0o640);
    expect(r.inPlace(e, rep)).toBe(true);
    await r.copy(e, rep); // again (a resend after a crash): nothing new
    expect(fs.readdirSync(resultsOf('alice'))).toEqual(['a.txt.sluice.json']);
    expect(fs.readdirSync(resultsOf('bob'))).toEqual([]);
  });

  it('never overwrites an older result of the same stored name: the copy goes under the transfer id', async () => {
    const r = results();
    const first = report('a.txt', '{"first":1}\n');
    await r.copy(entry('T1', 'a.txt', 'alice'), first);
    const second = report('a.txt', '{"second":2}\n'); // the stored name came again (the outbox was emptied)
    const e2 = entry('T2', 'a.txt', 'alice');
    expect(r.inPlace(e2, second)).toBe(false); // the name is taken by other bytes
    await r.copy(e2, second);
    expect(fs.readFileSync(path.join(resultsOf('alice'), 'a.txt.sluice.json'), 'utf8')).toBe('{"first":1}\n');
    expect(fs.readFileSync(path.join(resultsOf('alice'), 'T2.sluice.json'), 'utf8')).toBe('{"second":2}\n');
    expect(r.inPlace(e2, second)).toBe(true);
  });

  it('has nothing to do for the anonymous drop, with uploaders disabled, or for an uploader whose results directory is gone', async () => {
    const rep = report('b.txt', 'x\n');
    for (const [r, e] of [
      [results(), entry('T3', 'b.txt')],
      [results(false), entry('T4', 'b.txt', 'alice')],
      [results(), entry('T5', 'b.txt', 'carol')],
    ] as const) {
      expect(r.inPlace(e, rep)).toBe(true);
      await r.copy(e, rep);
    }
    expect([...fs.readdirSync(resultsOf('alice')), ...fs.readdirSync(resultsOf('bob'))]).toEqual([]);
    expect(events.map((e) => e.event)).toEqual(['results-unavailable']);
  });

  it('the sweep removes report copies older than resultsDays, nothing else', async () => {
    const r = results();
    const old = Date.now() / 1000 - 31 * 86_400;
    for (const [u, name, age] of [
      ['alice', 'old.txt.sluice.json', old],
      ['bob', 'old2.sluice.json', old],
      ['alice', 'new.txt.sluice.json', Date.now() / 1000],
      ['alice', 'not-a-report.txt', old],
    ] as const) {
      const p = path.join(resultsOf(u), name);
      fs.writeFileSync(p, 'x');
      fs.utimesSync(p, age, age);
    }
    expect(await r.sweep()).toBe(true);
    expect(fs.readdirSync(resultsOf('alice')).sort()).toEqual(['new.txt.sluice.json', 'not-a-report.txt']);
    expect(fs.readdirSync(resultsOf('bob'))).toEqual([]);
    expect(events).toContainEqual(expect.objectContaining({ event: 'results-swept', removed: 2, complete: true }));
  });
});
