import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { escapeLogLine, LOG_NET_MAX_CHARS } from './log.js';
import { escapeForLog } from './names.js';

/** What no string of a log line may decode to: controls, format (bidi, zero-width, BOM), line and paragraph separators. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** strings - every string (keys too) of a parsed JSON value. */
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      strings(x, out);
    }
  }
  return out;
}

const HOSTILE = 'a\u001b[2J\u009b31m\u202etxt.exe\u200b\u2066x\u2069\u007f\n\r\t\u2028\u2029\ufeff\ud800z';

describe('escapeLogLine: the net over every finished log line', () => {
  it('rewrites every string that decodes to something unsafe, at any depth, keys included', () => {
    const line = `${JSON.stringify({ level: 'info', reason: HOSTILE, checks: [{ name: 'c', reason: HOSTILE }], [`k${HOSTILE}`]: 1, msg: HOSTILE })}\n`;
    const out = escapeLogLine(line);
    expect(out.endsWith('}\n')).toBe(true);
    const parsed = JSON.parse(out) as Record<string, unknown>;
    for (const s of strings(parsed)) expect(s).not.toMatch(UNSAFE);
    expect(parsed.reason).toBe(escapeForLog(HOSTILE, LOG_NET_MAX_CHARS));
    expect(parsed.msg).toBe('a\\u{1b}[2J\\u{9b}31m\\u{202e}txt.exe\\u{200b}\\u{2066}x\\u{2069}\\u{7f}\\u{a}\\u{d}\\u{9}\\u{2028}\\u{2029}\\u{feff}\\u{d800}z');
    // Not in the raw bytes either: no C1, bidi or zero-width character is written as it is.
    expect(out.slice(0, -1)).not.toMatch(UNSAFE);
  });

  it('leaves plain lines, our own fields and text escaped at its call site exactly as they are', () => {
    const plain = `${JSON.stringify({ level: 'info', stage: 'transit', event: 'checked', id: 'abc-1', size: 5, name: 'résumé 📄.pdf', path: 'C:\\dir\\x' })}\n`;
    expect(escapeLogLine(plain)).toBe(plain);
    const escaped = `${JSON.stringify({ name: escapeForLog(HOSTILE), reason: escapeForLog('back\\slash \u001b') })}\n`;
    expect(escapeLogLine(escaped)).toBe(escaped);
  });

  it('property: any string in any field decodes to a safe string; lines without unsafe text are unchanged', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 40 })), fc.string({ unit: 'binary' }), (obj, msg) => {
        const line = `${JSON.stringify({ ...obj, nested: [obj], msg })}\n`;
        const out = escapeLogLine(line);
        for (const s of strings(JSON.parse(out))) expect(s).not.toMatch(UNSAFE);
        // Idempotent: the net's own output passes through it unchanged.
        expect(escapeLogLine(out)).toBe(out);
      }),
      { numRuns: 200 },
    );
  });

  it('never throws, even on a string that is not valid JSON', () => {
    const out = escapeLogLine('{"a":"x\\u{1b}\u001b\u202e"}\n');
    expect(() => JSON.parse(out)).not.toThrow();
    for (const v of strings(JSON.parse(out))) expect(v).not.toMatch(UNSAFE);
  });

  it('bounds what it had to escape', () => {
    const out = JSON.parse(escapeLogLine(JSON.stringify({ reason: '\u001b'.repeat(10_000) }))) as { reason: string };
    expect(out.reason.length).toBeLessThanOrEqual(LOG_NET_MAX_CHARS + 1);
    expect(out.reason.endsWith('…')).toBe(true);
  });
});

describe('createLogger: every line a daemon writes goes through the net', () => {
  it('message, fields, child bindings and errors of a real logger come out escaped', () => {
    const log = fileURLToPath(new URL('../dist/log.js', import.meta.url));
    const script = `
      const { createLogger } = await import(${JSON.stringify(log)});
      const h = ${JSON.stringify(HOSTILE)};
      const l = createLogger('transit');
      l.info({ event: 'x', reason: h, checks: [{ reason: h }] }, 'msg ' + h);
      l.child({ id: 'child' + h }).warn({ event: 'y' }, 'from a child');
      l.error({ event: 'z', err: new Error('boom ' + h) }, 'an error object');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).not.toMatch(UNSAFE);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      for (const s of strings(parsed)) expect(s).not.toMatch(UNSAFE);
    }
    const [first, second, third] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first!.msg).toBe(`msg ${escapeForLog(HOSTILE, LOG_NET_MAX_CHARS)}`);
    expect(second!.id).toBe(`child${escapeForLog(HOSTILE, LOG_NET_MAX_CHARS)}`);
    expect(String((third!.err as { message: string }).message)).toContain('boom a\\u{1b}[2J');
  });
});
