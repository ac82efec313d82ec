import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckUnavailable,
  MAX_REASON_CHARS,
  runChecks,
  type Check,
  type CheckInput,
  type CheckResult,
  type CheckRun,
} from './check.js';

let dir: string;
let input: CheckInput;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-check-'));
  const path = join(dir, 'f');
  writeFileSync(path, 'hello\n');
  input = { fd: openSync(path, 'r'), size: 6, sha256hex: 'a'.repeat(64), name: 'f.txt' };
});

afterAll(() => {
  closeSync(input.fd);
  rmSync(dir, { recursive: true, force: true });
});

/** check - a Check whose run is the given function. */
function check(name: string, run: (input: CheckInput, signal: AbortSignal) => Promise<CheckRun>, timeoutMs = 1000): Check {
  return { name, timeoutMs, engine: `${name}-engine`, run };
}

const pass = (name = 'ok'): Check => check(name, async () => ({ outcome: 'pass', reason: 'fine', engine: 'e' }));
const fail = (name = 'no'): Check => check(name, async () => ({ outcome: 'fail', reason: 'bad', engine: 'e' }));

describe('runChecks', () => {
  it('accepts when every check passes, and keeps the order', async () => {
    const out = await runChecks([pass('a'), pass('b')], input);
    expect(out.verdict).toBe('accepted');
    expect(out.retry).toBe(false);
    expect(out.reason).toBe('all 2 checks passed');
    expect(out.results).toEqual([
      { name: 'a', outcome: 'pass', reason: 'fine', engine: 'e' },
      { name: 'b', outcome: 'pass', reason: 'fine', engine: 'e' },
    ]);
  });

  it('rejects with zero checks', async () => {
    const out = await runChecks([], input);
    expect(out).toEqual({ verdict: 'rejected', reason: 'no checks configured', retry: false, results: [] });
  });

  it('runs every check even after a failure, and lists each result', async () => {
    let ranAfter = false;
    const later = check('later', async () => {
      ranAfter = true;
      return { outcome: 'pass', reason: 'fine', engine: 'e' };
    });
    const out = await runChecks([fail('first'), later], input);
    expect(ranAfter).toBe(true);
    expect(out.verdict).toBe('rejected');
    expect(out.results.map((r) => r.outcome)).toEqual(['fail', 'pass']);
    expect(out.reason).toBe('first failed: bad');
  });

  it('turns a thrown exception into an error: message only, one line, bounded', async () => {
    const out = await runChecks(
      [
        check('throws', async () => {
          throw new Error(`line one\nline two ${'x'.repeat(5000)}`);
        }),
        pass(),
      ],
      input,
    );
    const r = out.results[0] as CheckResult;
    expect(out.verdict).toBe('rejected');
    expect(r.outcome).toBe('error');
    expect(r.engine).toBe('throws-engine');
    expect(r.reason.startsWith('line one\\u{a}line two')).toBe(true);
    expect(r.reason).not.toMatch(/\n|at .*check\.test/);
    expect(r.reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS + 1);
  });

  it('turns a synchronous throw and a thrown non-Error into errors', async () => {
    const sync: Check = {
      name: 'sync',
      timeoutMs: 1000,
      run: () => {
        throw new TypeError('boom');
      },
    };
    const str = check('str', () => Promise.reject('just a string'));
    const out = await runChecks([sync, str], input);
    expect(out.results.map((r) => [r.outcome, r.reason])).toEqual([
      ['error', 'boom'],
      ['error', 'just a string'],
    ]);
    expect(out.results[0]?.engine).toBe('unknown');
  });

  it('times out a hanging check: error, aborted signal, verdict rejected', async () => {
    let seen: AbortSignal | undefined;
    const hang = check(
      'hangs',
      (_input, signal) => {
        seen = signal;
        return new Promise<CheckRun>(() => {});
      },
      50,
    );
    const started = Date.now();
    const out = await runChecks([hang, pass()], input);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(out.verdict).toBe('rejected');
    expect(out.retry).toBe(false);
    expect(out.results[0]).toEqual({ name: 'hangs', outcome: 'error', reason: 'timed out after 50 ms', engine: 'hangs-engine' });
    expect(seen?.aborted).toBe(true);
  });

  it('ignores what a timed-out check says later, even a late rejection', async () => {
    const late = check('late', () => new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 80)), 20);
    const out = await runChecks([late], input);
    expect(out.results[0]?.reason).toBe('timed out after 20 ms');
    await new Promise((r) => setTimeout(r, 120)); // an unhandled rejection would fail the run
  });

  const garbage: Array<[string, unknown, string]> = [
    ['undefined', undefined, 'malformed result: not an object (undefined)'],
    ['null', null, 'malformed result: not an object (null)'],
    ['a string', 'pass', 'malformed result: not an object (string)'],
    ['unknown outcome', { outcome: 'maybe', reason: 'r', engine: 'e' }, 'malformed result: unknown outcome "maybe"'],
    ['outcome PASS', { outcome: 'PASS', reason: 'r', engine: 'e' }, 'malformed result: unknown outcome "PASS"'],
    ['missing outcome', { reason: 'r', engine: 'e' }, 'malformed result: unknown outcome undefined'],
    ['missing reason', { outcome: 'pass', engine: 'e' }, 'malformed result: reason is not a string'],
    ['missing engine', { outcome: 'pass', reason: 'r' }, 'malformed result: engine is not a non-empty string'],
    ['numeric reason', { outcome: 'pass', reason: 1, engine: 'e' }, 'malformed result: reason is not a string'],
  ];
  it.each(garbage)('treats a garbage result (%s) as an error', async (_label, value, reason) => {
    const out = await runChecks([check('garbage', async () => value as CheckRun)], input);
    expect(out.verdict).toBe('rejected');
    expect(out.results[0]).toEqual({ name: 'garbage', outcome: 'error', reason, engine: 'garbage-engine' });
  });

  it('treats a result whose getter throws as an error', async () => {
    const evil = {
      get outcome(): string {
        throw new Error('getter');
      },
    };
    const out = await runChecks([check('evil', async () => evil as unknown as CheckRun)], input);
    expect(out.results[0]?.outcome).toBe('error');
    expect(out.results[0]?.reason).toBe('malformed result: getter');
  });

  it('gives a fail without a reason a placeholder, not a pass', async () => {
    const out = await runChecks([check('quiet', async () => ({ outcome: 'fail', reason: '', engine: 'e' }))], input);
    expect(out.results[0]).toMatchObject({ outcome: 'fail', reason: '(no reason given)' });
  });

  it.each([0, -1, 1.5, Number.NaN, Infinity, 2 ** 31, '100'])('refuses timeoutMs %s as an error', async (timeoutMs) => {
    const c = { ...pass('t'), timeoutMs: timeoutMs as number };
    const out = await runChecks([c], input);
    expect(out.results[0]).toMatchObject({ outcome: 'error', reason: expect.stringContaining('invalid timeoutMs') });
    expect(out.verdict).toBe('rejected');
  });

  it('reports a malformed check object as an error', async () => {
    const out = await runChecks([{ name: '', timeoutMs: 10 } as unknown as Check, null as unknown as Check], input);
    expect(out.results.map((r) => [r.name, r.outcome])).toEqual([
      ['(unnamed check)', 'error'],
      ['(unnamed check)', 'error'],
    ]);
  });

  it('escapes control and bidi characters in names and reasons', async () => {
    const c = check('a\u202Eb\n', async () => ({ outcome: 'fail', reason: 'x\u001b[2Jy', engine: 'e\u0000' }));
    const out = await runChecks([c], input);
    expect(out.results[0]).toEqual({ name: 'a\\u{202e}b\\u{a}', outcome: 'fail', reason: 'x\\u{1b}[2Jy', engine: 'e\\u{0}' });
  });

  it('passes one frozen input object, the same for every check', async () => {
    const seen: CheckInput[] = [];
    const spy = (name: string): Check =>
      check(name, async (i) => {
        seen.push(i);
        return { outcome: 'pass', reason: '', engine: 'e' };
      });
    await runChecks([spy('a'), spy('b')], { ...input });
    expect(seen[0]).toBe(seen[1]);
    expect(Object.isFrozen(seen[0])).toBe(true);
    expect(seen[0]).toEqual(input);
  });

  it('refuses a malformed input as a bug (TypeError)', async () => {
    await expect(runChecks([pass()], { ...input, sha256hex: 'XYZ' })).rejects.toThrow(TypeError);
    await expect(runChecks([pass()], { ...input, size: -1 })).rejects.toThrow(TypeError);
    await expect(runChecks([pass()], { ...input, fd: 1.5 })).rejects.toThrow(TypeError);
  });

  describe('retry (CheckUnavailable)', () => {
    const unavailable = (name = 'clamav'): Check =>
      check(name, async () => {
        throw new CheckUnavailable('connect ECONNREFUSED /run/clamav/clamd.ctl');
      });

    it('marks the result and the outcome for retry; the verdict stays rejected', async () => {
      const out = await runChecks([pass('size'), unavailable()], input);
      expect(out.verdict).toBe('rejected');
      expect(out.retry).toBe(true);
      expect(out.results[1]).toEqual({
        name: 'clamav',
        outcome: 'error',
        reason: 'unavailable: connect ECONNREFUSED /run/clamav/clamd.ctl',
        engine: 'clamav-engine',
        retry: true,
      });
      expect(out.reason).toBe('held for retry: clamav error: unavailable: connect ECONNREFUSED /run/clamav/clamd.ctl');
    });

    it('does not retry when another check failed for good', async () => {
      const out = await runChecks([fail('size'), unavailable()], input);
      expect(out.retry).toBe(false);
      expect(out.verdict).toBe('rejected');
    });

    it('does not retry a timeout', async () => {
      const hang = check('yara', () => new Promise<CheckRun>(() => {}), 20);
      const out = await runChecks([hang, unavailable()], input);
      expect(out.retry).toBe(false);
    });
  });
});
