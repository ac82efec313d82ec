// The one verdict rule, shared by transit and egress: a table of cases.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { decide, reportReason, type Finding } from './verdict.js';

/** A check result as transit's runChecks makes it (engine included, retry only when true). */
type Result = Finding & { engine: string; retry?: true };

describe('decide', () => {
  const r = (outcome: string, extra: Partial<Result> = {}): Result =>
    ({ name: `c-${outcome}`, outcome, reason: `why ${outcome}`, engine: 'e', ...extra }) as Result;
  const table: Array<[string, Result[], 'accepted' | 'rejected', boolean, string]> = [
    ['no results', [], 'rejected', false, 'no checks configured'],
    ['one pass', [r('pass')], 'accepted', false, 'the 1 check passed'],
    ['three passes', [r('pass'), r('pass'), r('pass')], 'accepted', false, 'all 3 checks passed'],
    ['one fail', [r('fail')], 'rejected', false, 'c-fail failed: why fail'],
    ['one error', [r('error')], 'rejected', false, 'c-error error: why error'],
    ['pass then fail', [r('pass'), r('fail')], 'rejected', false, 'c-fail failed: why fail'],
    ['fail and error listed in order', [r('error'), r('pass'), r('fail')], 'rejected', false, 'c-error error: why error; c-fail failed: why fail'],
    ['unknown outcome is not a pass', [r('pass'), r('PASS')], 'rejected', false, 'c-PASS unknown outcome: why PASS'],
    ['retry alone', [r('pass'), r('error', { retry: true })], 'rejected', true, 'held for retry: c-error error: why error'],
    ['retry with fail', [r('fail'), r('error', { retry: true })], 'rejected', false, 'c-fail failed: why fail; c-error error: why error'],
    ['retry with plain error', [r('error'), r('error', { retry: true })], 'rejected', false, 'c-error error: why error; c-error error: why error'],
    ['retry flag on a pass is ignored', [r('pass', { retry: true })], 'accepted', false, 'the 1 check passed'],
    ['retry flag on a fail does not make it retryable', [r('fail', { retry: true })], 'rejected', false, 'c-fail failed: why fail'],
  ];
  it.each(table)('%s', (_label, results, verdict, retry, reason) => {
    expect(decide(results)).toEqual({ verdict, retry, reason });
  });
});

describe('decide with the upstream verdict (egress)', () => {
  const pass = { name: 'size', outcome: 'pass', reason: 'fine' };
  const fail = { name: 'clamav', outcome: 'fail', reason: 'Eicar FOUND' };
  const table: Array<[string, Finding[], 'accepted' | 'rejected' | undefined, 'accepted' | 'rejected']> = [
    ['transit accepted, every check passed', [pass], 'accepted', 'accepted'],
    ['transit rejected although every check passed', [pass], 'rejected', 'rejected'],
    ['transit accepted with a failing check', [pass, fail], 'accepted', 'rejected'],
    ['transit accepted with no checks', [], 'accepted', 'rejected'],
    ['no upstream verdict: the checks alone', [pass], undefined, 'accepted'],
  ];
  it.each(table)('%s', (_label, results, upstream, verdict) => {
    expect(decide(results, upstream).verdict).toBe(verdict);
  });
});

describe('reportReason (the reason a signed report states)', () => {
  const r = (name: string, outcome: string, reason: string): Finding => ({ name, outcome, reason });
  const table: Array<[string, Finding[], 'accepted' | 'rejected', string]> = [
    ['accepted: empty', [r('size', 'pass', 'fine')], 'accepted', ''],
    ['one failure', [r('size', 'pass', 'fine'), r('clamav', 'fail', 'Eicar FOUND')], 'rejected', 'clamav: Eicar FOUND'],
    ['failures and errors in order', [r('yara', 'error', 'timed out'), r('type', 'fail', 'not allowed')], 'rejected', 'yara: timed out; type: not allowed'],
    ['rejected with no checks', [], 'rejected', 'no checks ran'],
    ['rejected upstream with every check passed', [r('size', 'pass', 'fine')], 'rejected', 'transit rejected the file'],
  ];
  it.each(table)('%s', (_label, results, verdict, reason) => {
    expect(reportReason(results, verdict)).toBe(reason);
  });
});

describe('the verdict and reason of the signed test vector', () => {
  // packages/report/test-vector/vector.json is what independent verifiers check against: the one
  // rule must give back exactly the verdict and reason its reports state.
  const vector = JSON.parse(fs.readFileSync(new URL('../../report/test-vector/vector.json', import.meta.url), 'utf8')) as {
    cases: { label: string; body: { verdict: 'accepted' | 'rejected'; reason: string; checks: { name: string; result: string; reason: string }[] } }[];
  };
  it.each(vector.cases.map((c) => [c.label, c.body] as const))('%s', (_label, body) => {
    const results = body.checks.map((k) => ({ name: k.name, outcome: k.result, reason: k.reason }));
    const { verdict } = decide(results, body.verdict);
    expect(verdict).toBe(body.verdict);
    expect(reportReason(results, verdict)).toBe(body.reason);
  });
});
