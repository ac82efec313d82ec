/*
 * NAME
 *   skip-reporter - after a test run, every skipped test and why
 *
 * SYNOPSIS
 *   vitest.config.ts: reporters: ['default', new SkipReporter()]
 *
 * DESCRIPTION
 *   A skipped test is a check that did not run; the default reporter only
 *   counts them. This reporter prints, after the default summary, a
 *   "skipped:" section: each reason, and under it the file and full name
 *   of every test skipped for it; or "skipped: none".
 *
 *   The reason is where the tests put it: in the name of the test or of an
 *   enclosing suite, as "[skipped: REASON]" or "(skipped: REASON)", added
 *   only when the condition of its skipIf/runIf holds; or the note given to
 *   ctx.skip(note). A skip without either is listed as having no stated
 *   reason, so that it shows. Tests left out by -t PATTERN are not skips of
 *   the suite: they are counted on one line, not listed.
 */
import type { Reporter, TestCase, TestModule, TestSuite, Vitest } from 'vitest/node';

/** NO_REASON - what the list says of a skip whose name states no reason. */
export const NO_REASON = 'no reason stated (the test or its suite should say "[skipped: why]" in its name)';

/**
 * marker - where a "[skipped: ...]" or "(skipped: ...)" marker sits in a
 * name: its start, its end (past its matching bracket: a reason may hold
 * brackets of its own) and its reason; or undefined.
 */
function marker(name: string): { start: number; end: number; reason: string } | undefined {
  const m = /\s*([[(])\s*skipped:\s*/i.exec(name);
  if (!m) return undefined;
  const open = m[1]!;
  const close = open === '[' ? ']' : ')';
  const from = m.index + m[0].length;
  let depth = 1;
  for (let i = from; i < name.length; i++) {
    const c = name[i];
    if (c === open) depth++;
    else if (c === close && --depth === 0) return { start: m.index, end: i + 1, reason: name.slice(from, i).trim() };
  }
  return { start: m.index, end: name.length, reason: name.slice(from).trim() };
}

/** reasonIn - the reason a name's skip marker states, or undefined. */
export function reasonIn(name: string): string | undefined {
  return marker(name)?.reason;
}

/** withoutMarker - a name with its skip marker taken out (the list states the reason once, above it). */
export function withoutMarker(name: string): string {
  const m = marker(name);
  return m ? name.slice(0, m.start) + name.slice(m.end) : name;
}

/** skipReason - why a skipped test was skipped: its ctx.skip note, else the first marker in its name or an enclosing suite's. */
export function skipReason(test: TestCase): string {
  const result = test.result();
  if (result.state === 'skipped' && result.note) return result.note;
  if (test.options.mode === 'todo') return 'todo: not written yet';
  let node: TestCase | TestSuite | TestModule = test;
  while (node.type !== 'module') {
    const why = reasonIn(node.name);
    if (why) return why;
    node = node.parent;
  }
  return NO_REASON;
}

export class SkipReporter implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  /** unselected - true when the test was left out by the run's -t pattern rather than skipped by the suite. */
  private unselected(test: TestCase): boolean {
    const pattern = this.vitest?.config.testNamePattern;
    if (!pattern) return false;
    const names: string[] = [];
    for (let node: TestCase | TestSuite | TestModule = test; node.type !== 'module'; node = node.parent) names.unshift(node.name);
    return !pattern.test(names.join(' '));
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byReason = new Map<string, string[]>();
    let count = 0;
    let unselected = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests('skipped')) {
        if (this.unselected(test)) {
          unselected++;
          continue;
        }
        const names: string[] = [];
        for (let node: TestCase | TestSuite | TestModule = test; node.type !== 'module'; node = node.parent) names.unshift(withoutMarker(node.name));
        const why = skipReason(test);
        if (!byReason.has(why)) byReason.set(why, []);
        byReason.get(why)!.push([mod.relativeModuleId, ...names].join(' > '));
        count++;
      }
    }
    const log = (s: string) => (this.vitest ? this.vitest.logger.log(s) : console.log(s));
    log('');
    log(count === 0 ? 'skipped: none' : `skipped: ${count}, by reason`);
    for (const [why, tests] of byReason) {
      log(`  ${why}`);
      for (const t of tests) log(`    ${t}`);
    }
    if (unselected > 0) log(`(and ${unselected} not selected by -t ${String(this.vitest?.config.testNamePattern)})`);
  }
}
