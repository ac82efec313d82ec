// Which checks transit runs, from the configuration: the scanners appear
// only when explicitly enabled, in a fixed order (the order of every
// report), and a scanner that cannot be set up stops transit from starting.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, parseConfig } from '@sluice/core';
import { HAVE_YARA, YARA } from '../../../test/support/clamd.js';

const NO_YARA = HAVE_YARA ? '' : ` (skipped: ${YARA} missing; apt-get install yara)`;
import { buildChecks } from './build-checks.js';

type Line = { level: string; obj: Record<string, unknown> };
const recorder = () => {
  const lines: Line[] = [];
  return {
    lines,
    log: {
      info: (obj: object) => lines.push({ level: 'info', obj: obj as Record<string, unknown> }),
      warn: (obj: object) => lines.push({ level: 'warn', obj: obj as Record<string, unknown> }),
    },
  };
};

const problemsOf = (doc: unknown): string[] => {
  try {
    parseConfig(doc);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('scanner configuration', () => {
  it('both scanners are off by default', () => {
    const cfg = parseConfig({});
    expect(cfg.transit.clamav).toEqual({
      enabled: false,
      socket: '/run/clamav/clamd.ctl',
      host: '',
      port: 3310,
      timeoutMs: 60_000,
      maxConcurrent: 4,
      maxBytes: 25 * 1024 * 1024,
    });
    expect(cfg.transit.yara).toMatchObject({ enabled: false, rules: '/etc/sluice/yara/rules.yar', command: '/usr/bin/yara', compiler: '/usr/bin/yarac' });
  });

  it('a scanner section with settings but no "enabled" is an error: settings alone must not look like a running scanner', () => {
    expect(problemsOf({ transit: { clamav: { socket: '/run/clamav/clamd.ctl' } } })).toEqual([
      'transit.clamav.enabled: must be set to true or false when other transit.clamav keys are given',
    ]);
    expect(problemsOf({ transit: { yara: { rules: '/etc/r.yar' } } })).toEqual([
      'transit.yara.enabled: must be set to true or false when other transit.yara keys are given',
    ]);
    expect(problemsOf({ transit: { clamav: {}, yara: {} } })).toEqual([]);
    expect(problemsOf({ transit: { clamav: { enabled: false, socket: '/x' }, yara: { enabled: true } } })).toEqual([]);
  });

  it.each([
    [{ transit: { clamav: { enabled: 'yes' } } }, 'transit.clamav.enabled: expected true or false, got "yes"'],
    [{ transit: { clamav: { enabled: true, port: 0 } } }, 'transit.clamav.port: expected an integer from 1 to 65535, got 0'],
    [{ transit: { clamav: { enabled: true, socket: 'clamd.ctl' } } }, 'transit.clamav.socket: expected an absolute path, got "clamd.ctl"'],
    [{ transit: { clamav: { enabled: true, timeout: 5 } } }, 'transit.clamav.timeout: unknown key'],
    [{ transit: { yara: { enabled: true, maxConcurrent: 0 } } }, 'transit.yara.maxConcurrent: expected an integer from 1 to 64, got 0'],
    [{ transit: { yara: { enabled: true, rules: 'rules.yar' } } }, 'transit.yara.rules: expected an absolute path, got "rules.yar"'],
  ])('%j is refused, naming the key', (doc, message) => {
    expect(problemsOf(doc)).toEqual([message]);
  });
});

describe('buildChecks', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-build-checks-'));
    fs.writeFileSync(path.join(dir, 'good.yar'), 'rule Marker { strings: $a = "MARKER-X" condition: $a }\n');
    fs.writeFileSync(path.join(dir, 'bad.yar'), 'rule Broken { condition: $nothing }\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('without scanners: the content checks only (archive inspection is on by default)', async () => {
    const { lines, log } = recorder();
    const built = await buildChecks(parseConfig({}), log);
    expect(built.checks.map((c) => c.name)).toEqual(['size-limit', 'file-type', 'extension-match', 'archive']);
    built.stop();
    expect(lines).toEqual([]);
    const off = await buildChecks(parseConfig({ transit: { archives: { enabled: false } } }), log);
    expect(off.checks.map((c) => c.name)).toEqual(['size-limit', 'file-type', 'extension-match']);
    off.stop();
  });

  it('an allowOpaque type that is not an archive stops transit from starting', async () => {
    const { log } = recorder();
    await expect(buildChecks(parseConfig({ transit: { archives: { allowOpaque: ['exe'] } } }), log)).rejects.toThrow(/allowOpaque "exe" is not an archive type/);
  });

  it.skipIf(!HAVE_YARA)(`with both scanners: in report order, yara compiled, clamd waited for in the background${NO_YARA}`, async () => {
    const { lines, log } = recorder();
    const cfg = parseConfig({
      transit: {
        clamav: { enabled: true, socket: path.join(dir, 'no-clamd.sock') },
        yara: { enabled: true, rules: path.join(dir, 'good.yar') },
      },
    });
    const built = await buildChecks(cfg, log);
    try {
      expect(built.checks.map((c) => c.name)).toEqual(['size-limit', 'file-type', 'extension-match', 'archive', 'clamav', 'yara']);
      expect(lines.find((l) => l.obj.event === 'scanner-ready')?.obj).toMatchObject({ scanner: 'yara', engine: expect.stringMatching(/^yara /) });
      for (let i = 0; i < 200 && !lines.some((l) => l.obj.event === 'scanner-waiting'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(lines.find((l) => l.obj.event === 'scanner-waiting')?.obj).toMatchObject({ scanner: 'clamav', attempt: 1 });
    } finally {
      built.stop();
    }
  });

  it.skipIf(!HAVE_YARA)(`a YARA rule that does not compile makes buildChecks throw (transit does not start)${NO_YARA}`, async () => {
    const { log } = recorder();
    const cfg = parseConfig({ transit: { yara: { enabled: true, rules: path.join(dir, 'bad.yar') } } });
    await expect(buildChecks(cfg, log)).rejects.toThrow(/^YARA rules .*bad\.yar do not compile \(yarac exit 1\): .*undefined string "\$nothing"/);
  });
});
