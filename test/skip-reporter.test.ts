// skip-reporter.test - the reason the end-of-run list gives for each skipped
// test: a ctx.skip note, else the marker in the test's or a suite's name,
// else that none was stated.
import { describe, expect, it } from 'vitest';
import type { TestCase } from 'vitest/node';
import { NO_REASON, reasonIn, skipReason, withoutMarker } from './support/skip-reporter.js';

/** fakeTest - the parts of a TestCase that skipReason reads: names up the tree, mode and result. */
function fakeTest(names: string[], opts: { note?: string; mode?: string } = {}): TestCase {
  let node: unknown = { type: 'module', name: 'file.test.ts' };
  for (const name of names.slice(0, -1)) node = { type: 'suite', name, parent: node };
  return {
    type: 'test',
    name: names.at(-1)!,
    parent: node,
    options: { mode: opts.mode ?? 'skip' },
    result: () => ({ state: 'skipped', errors: undefined, note: opts.note }),
  } as unknown as TestCase;
}

describe('the reason in a name', () => {
  it.each([
    ['device nodes are refused [skipped: mknod needs root]', 'mknod needs root', 'device nodes are refused'],
    ['a real clamd (skipped: /usr/sbin/clamd missing; apt-get install clamav-daemon)', '/usr/sbin/clamd missing; apt-get install clamav-daemon', 'a real clamd'],
    ['scanners (skipped: clamd missing (apt-get install clamav-daemon); yara missing (apt-get install yara))', 'clamd missing (apt-get install clamav-daemon); yara missing (apt-get install yara)', 'scanners'],
    ['a peer is refused (SKIPPED: needs root)', 'needs root', 'a peer is refused'],
    ['a [skipped: marker] in the middle', 'marker', 'a in the middle'],
    ['unterminated [skipped: no closing bracket', 'no closing bracket', 'unterminated'],
  ])('%s', (name, reason, rest) => {
    expect(reasonIn(name)).toBe(reason);
    expect(withoutMarker(name)).toBe(rest);
  });

  it('a name without a marker has none, even if it says "skipped" elsewhere', () => {
    expect(reasonIn('device nodes (mknod: needs root; skipped otherwise)')).toBeUndefined();
    expect(withoutMarker('plain name')).toBe('plain name');
  });
});

describe('skipReason', () => {
  it("the test's own marker", () => {
    expect(skipReason(fakeTest(['suite', 'test [skipped: why]']))).toBe('why');
  });
  it("an enclosing suite's marker, the nearest first", () => {
    expect(skipReason(fakeTest(['outer (skipped: far)', 'inner [skipped: near]', 'test']))).toBe('near');
    expect(skipReason(fakeTest(['outer (skipped: far)', 'inner', 'test']))).toBe('far');
  });
  it('a ctx.skip note comes first', () => {
    expect(skipReason(fakeTest(['suite', 'test [skipped: name]'], { note: 'note' }))).toBe('note');
  });
  it('a todo says so', () => {
    expect(skipReason(fakeTest(['suite', 'test'], { mode: 'todo' }))).toMatch(/^todo/);
  });
  it('no marker anywhere: listed as having no stated reason', () => {
    expect(skipReason(fakeTest(['suite', 'umask %o, mode %o'], {}))).toBe(NO_REASON);
  });
});
