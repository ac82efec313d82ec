// The YARA check with Debian's real yara and yarac: rules compiled at start
// (a broken rule stops everything, with yarac's message), matches read from
// the output, and every way the output could mislead us treated as an
// error. Stand-in "yara" scripts play the parts the real one will not play
// on demand: hang, print nonsense, or silently scan nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as native from '@sluice/native';
import { HAVE_YARA, YARA, YARAC } from '../../../../test/support/clamd.js';
import { CheckUnavailable, runChecks, type CheckInput } from './check.js';
import { parseYaraOutput, yaraCheck, YaraSetupError, type YaraConfig } from './yara.js';

const never = new AbortController().signal;

function sealed(bytes: Uint8Array | string): CheckInput {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const w = native.memfdCreate('yara-test');
  fs.writeSync(w, b);
  native.addSeals(w, native.ALL_SEALS);
  const fd = fs.openSync(`/proc/self/fd/${w}`, 'r');
  fs.closeSync(w);
  return { fd, size: b.length, sha256hex: 'a'.repeat(64), name: 'f.txt' };
}

async function withInput<T>(bytes: Uint8Array | string, f: (input: CheckInput) => Promise<T>): Promise<T> {
  const input = sealed(bytes);
  try {
    return await f(input);
  } finally {
    fs.closeSync(input.fd);
  }
}

describe('parseYaraOutput', () => {
  const T = '/dev/fd/4';
  it.each([
    ['', { ok: true, matched: [], seen: false }],
    [`sluice:sluice_seen ${T}\n`, { ok: true, matched: [], seen: true }],
    [`rules:Evil ${T}\nsluice:sluice_seen ${T}\n`, { ok: true, matched: ['Evil'], seen: true }],
    [`rules:A ${T}\nrules:B ${T}\nrules:A ${T}\n`, { ok: true, matched: ['A', 'B'], seen: false }],
  ])('%j', (out, want) => {
    expect(parseYaraOutput(out, T)).toEqual(want);
  });

  it.each([
    [`rules:Evil ${T}`, 'ends in the middle of a line'],
    [`rules:Evil /dev/fd/5\n`, 'unexpected yara output'],
    [`other:Evil ${T}\n`, 'unexpected yara output'],
    [`Evil ${T}\n`, 'unexpected yara output'],
    [`sluice:something_else ${T}\n`, 'unexpected yara output'],
    [`rules:Evil [tag] ${T}\n`, 'unexpected yara output'],
    [`error scanning ${T}: could not open file\n`, 'unexpected yara output'],
    [`\n`, 'unexpected yara output'],
  ])('%j is an error, never "no match"', (out, why) => {
    const r = parseYaraOutput(out, T);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.error).toContain(why);
  });
});

describe.skipIf(!HAVE_YARA)(`with Debian yara${HAVE_YARA ? '' : ` (skipped: ${YARA} or ${YARAC} missing; apt-get install yara)`}`, () => {
  let dir: string;
  const cfg = (over: Partial<YaraConfig> = {}): YaraConfig => ({
    rules: path.join(dir, 'rules.yar'),
    command: YARA,
    compiler: YARAC,
    timeoutMs: 20_000,
    maxConcurrent: 2,
    maxBytes: 1024 * 1024,
    ...over,
  });
  /** script - a stand-in yara: a shell script in the temp dir. */
  const script = (name: string, body: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return p;
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-yara-'));
    fs.writeFileSync(
      path.join(dir, 'rules.yar'),
      [
        'include "more.yar"',
        'rule Sluice_Test_Marker { strings: $a = "SLUICE-YARA-TEST-MARKER" condition: $a }',
        'rule Never { condition: false }',
      ].join('\n'),
    );
    fs.writeFileSync(path.join(dir, 'more.yar'), 'rule Second_Marker { strings: $b = "SECOND-MARKER" condition: $b }\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('compiles at start; a clean file passes, a match fails naming the rule (included files too)', async () => {
    const check = await yaraCheck(cfg());
    try {
      expect(check.engine).toMatch(/^yara 4\.\d+\.\d+, rules sha256:[0-9a-f]{16}$/);
      expect(await withInput('nothing to see\n', (i) => check.run(i, never))).toEqual({ outcome: 'pass', reason: 'no rule matched', engine: check.engine });
      const big = Buffer.concat([Buffer.alloc(300_000, 'a'), Buffer.from('SLUICE-YARA-TEST-MARKER and SECOND-MARKER'), Buffer.alloc(300_000, 'b')]);
      expect(await withInput(big, (i) => check.run(i, never))).toEqual({
        outcome: 'fail',
        reason: 'matched YARA rules: Second_Marker, Sluice_Test_Marker', // in the order of the rules (the include comes first)
        engine: check.engine,
      });
      expect(await withInput('x SECOND-MARKER x', (i) => check.run(i, never))).toMatchObject({ outcome: 'fail', reason: 'matched YARA rule: Second_Marker' });
      // An empty file is scanned (and its size rule matches at 0 bytes).
      expect(await withInput('', (i) => check.run(i, never))).toMatchObject({ outcome: 'pass' });
    } finally {
      check.close();
    }
  });

  it('the compiled rules are fixed at start: editing the source later changes nothing', async () => {
    const rules = path.join(dir, 'mutable.yar');
    fs.writeFileSync(rules, 'rule Old { strings: $a = "OLD-MARKER" condition: $a }\n');
    const check = await yaraCheck(cfg({ rules }));
    try {
      fs.writeFileSync(rules, 'rule New { strings: $a = "NEW-MARKER" condition: $a }\n');
      expect(await withInput('NEW-MARKER', (i) => check.run(i, never))).toMatchObject({ outcome: 'pass' });
      expect(await withInput('OLD-MARKER', (i) => check.run(i, never))).toMatchObject({ outcome: 'fail', reason: 'matched YARA rule: Old' });
    } finally {
      check.close();
    }
  });

  it('a rule that does not compile stops start-up with yarac\'s message', async () => {
    const bad = path.join(dir, 'bad.yar');
    fs.writeFileSync(bad, 'rule Broken { strings: $a = "x" condition: $b }\n');
    const err = await yaraCheck(cfg({ rules: bad })).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(YaraSetupError);
    expect((err as Error).message).toMatch(/^YARA rules .*bad\.yar do not compile \(yarac exit 1\): .*undefined string "\$b"/);
  });

  it('a missing rules file, a missing yara or yarac: clear start-up errors', async () => {
    await expect(yaraCheck(cfg({ rules: path.join(dir, 'none.yar') }))).rejects.toThrow(/YARA rules .*none\.yar: cannot read: ENOENT/);
    await expect(yaraCheck(cfg({ rules: dir }))).rejects.toThrow(/not a regular file/);
    await expect(yaraCheck(cfg({ command: path.join(dir, 'no-yara') }))).rejects.toThrow(/YARA command .*no-yara cannot run: ENOENT/);
    await expect(yaraCheck(cfg({ compiler: path.join(dir, 'no-yarac') }))).rejects.toThrow(/YARA compiler .*no-yarac cannot run: ENOENT/);
  });

  it('compile warnings are kept for the log', async () => {
    const slow = path.join(dir, 'slow.yar');
    fs.writeFileSync(slow, 'rule Short { strings: $a = "x" condition: $a }\n');
    const check = await yaraCheck(cfg({ rules: slow }));
    check.close();
    expect(check.warnings.join('\n')).toMatch(/may slow down scanning/);
  });

  it('a yara that scans nothing (the /dev/stdin trap) is caught at start by the self-test', async () => {
    // Real yara, but on an empty stdin instead of the file: exit 0, no match, no complaint.
    const blind = script('blind-yara', `[ "$1" = --version ] && exec ${YARA} --version\nexec ${YARA} -C -e -d sluice_size=0 /dev/fd/3 /dev/stdin </dev/null >/dev/null`);
    const err = await yaraCheck(cfg({ command: blind })).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(YaraSetupError);
    expect((err as Error).message).toMatch(/cannot scan a sealed memfd through \/dev\/fd\/4: scan error: yara did not see the whole file/);
  });

  it('after start, output that cannot be trusted is an error, never a pass', async () => {
    const flag = path.join(dir, 'misbehave');
    const cases: [string, string, RegExp][] = [
      ['silent', 'exit 0', /yara did not see the whole file/],
      ['garbage', 'echo "hello world"; exit 0', /unexpected yara output/],
      ['warning', `${YARA} "$@"; echo "warning: too many matches for \\$a" >&2; exit 0`, /yara warned, results may be incomplete/],
      ['failing', 'echo "error scanning /dev/fd/4: could not map file" >&2; exit 1', /yara exit 1: error scanning/],
      ['crashing', 'kill -SEGV $$', /yara killed by SIGSEGV/],
    ];
    for (const [name, misbehaviour, reason] of cases) {
      const cmd = script(`${name}-yara`, `[ -e ${flag} ] && { ${misbehaviour}; }\nexec ${YARA} "$@"`);
      fs.rmSync(flag, { force: true });
      const check = await yaraCheck(cfg({ command: cmd }));
      try {
        fs.writeFileSync(flag, '');
        const r = await withInput('nothing to see\n', (i) => check.run(i, never));
        expect(r.outcome, name).toBe('error');
        expect(r.reason, name).toMatch(reason);
      } finally {
        fs.rmSync(flag, { force: true });
        check.close();
      }
    }
  });

  it('a scan past timeoutMs is killed and rejects the file', async () => {
    const flag = path.join(dir, 'hang');
    const cmd = script('hanging-yara', `[ -e ${flag} ] && exec sleep 60\nexec ${YARA} "$@"`);
    fs.rmSync(flag, { force: true });
    const check = await yaraCheck(cfg({ command: cmd, timeoutMs: 1000 }));
    try {
      fs.writeFileSync(flag, '');
      const out = await withInput('x', (i) => runChecks([check], i));
      expect(out).toMatchObject({ verdict: 'rejected', retry: false });
      expect(out.results[0]).toMatchObject({ name: 'yara', outcome: 'error', reason: 'scan error: yara did not finish within 1000 ms' });
    } finally {
      fs.rmSync(flag, { force: true });
      check.close();
    }
  });

  it('a file over maxBytes is an error, not scanned', async () => {
    const check = await yaraCheck(cfg({ maxBytes: 4 }));
    try {
      expect(await withInput('12345', (i) => check.run(i, never))).toMatchObject({
        outcome: 'error',
        reason: 'not scanned: 5 bytes is more than transit.yara.maxBytes (4)',
      });
    } finally {
      check.close();
    }
  });

  it('a yara that cannot be started after start-up is unavailable (held), and a closed check never passes', async () => {
    const moving = path.join(dir, 'moving-yara');
    fs.symlinkSync(YARA, moving);
    const check = await yaraCheck(cfg({ command: moving }));
    fs.rmSync(moving);
    await withInput('x', async (i) => {
      await expect(check.run(i, never)).rejects.toThrow(CheckUnavailable);
      await expect(check.run(i, never)).rejects.toThrow(/cannot run yara: ENOENT/);
    });
    check.close();
    await withInput('x', async (i) => {
      await expect(check.run(i, never)).rejects.toThrow(CheckUnavailable);
    });
  });

  it('many scans at once: each its own answer, no descriptor left behind', async () => {
    const check = await yaraCheck(cfg({ maxConcurrent: 2 }));
    const before = fs.readdirSync('/proc/self/fd').length;
    const inputs = Array.from({ length: 8 }, (_, i) => sealed(i % 2 === 0 ? `x SLUICE-YARA-TEST-MARKER ${i}` : `clean ${i}`));
    const results = await Promise.all(inputs.map((input) => check.run(input, never)));
    results.forEach((r, i) => expect(r.outcome, `file ${i}`).toBe(i % 2 === 0 ? 'fail' : 'pass'));
    for (const input of inputs) fs.closeSync(input.fd);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
    check.close();
  });
});
