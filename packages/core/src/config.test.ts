import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { largestFixedRecord } from '@sluice/protocol';
import { ConfigError, defaults, parseConfig, parseConfigText, resolveUid, schemaKeys } from './config.js';
import { wireLimits } from './receive.js';

const problemsOf = (doc: unknown): string[] => {
  try {
    parseConfig(doc);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('configuration', () => {
  it('an empty document takes every default', () => {
    const cfg = defaults();
    expect(cfg.station).toBe('sluice');
    expect(cfg.transit.socket).toBe('/run/sluice/transit.sock');
    expect(cfg.egress.outputMode).toBe(0o640);
    expect(cfg.transit.extensionMatch).toBe(true);
  });

  it.each([
    [{ transit: { checkTimeoutMs: 'soon' } }, 'transit.checkTimeoutMs: expected an integer from 10 to 3600000, got "soon"'],
    [{ transit: { extensionMatch: 'yes' } }, 'transit.extensionMatch: expected true or false, got "yes"'],
    [{ egress: { signingkey: '/x' } }, 'egress.signingkey: unknown key'],
    [{ typo: 1 }, 'typo: unknown key'],
    [{ egress: { outputMode: 640 } }, 'egress.outputMode: expected an octal mode string such as "0660", got 640'],
    [{ egress: { outputMode: '04750' } }, 'egress.outputMode: "04750" has setuid, setgid or sticky bits; only permission bits ("0000" to "0777") are allowed'],
    [{ egress: { outputMode: '2640' } }, 'egress.outputMode: "2640" has setuid, setgid or sticky bits; only permission bits ("0000" to "0777") are allowed'],
    [{ egress: { outputMode: '1777' } }, 'egress.outputMode: "1777" has setuid, setgid or sticky bits; only permission bits ("0000" to "0777") are allowed'],
    [{ transit: { socketMode: '06660' } }, 'transit.socketMode: "06660" has setuid, setgid or sticky bits; only permission bits ("0000" to "0777") are allowed'],
    [{ ingress: { inbox: 'relative/inbox' } }, 'ingress.inbox: expected an absolute path, got "relative/inbox"'],
    [{ transit: { allowUsers: [] } }, 'transit.allowUsers: expected a non-empty list of user names or uids, got []'],
    [{ transit: { allowTypes: ['PNG'] } }, 'transit.allowTypes: expected a list of strings matching /^[a-z0-9]{1,16}(\\.[a-z0-9]{1,8})?$/, got ["PNG"]'],
    [{ limits: 5 }, 'limits: expected an object, got 5'],
    [{ station: '' }, 'station: expected a non-empty string of at most 256 characters, got ""'],
  ])('%j is refused, naming the key', (doc, message) => {
    expect(problemsOf(doc)).toEqual([message]);
  });

  it('reports every problem at once', () => {
    expect(problemsOf({ a: 1, b: 2, ingress: { maxInFlight: 0 } })).toHaveLength(3);
  });

  it('limits that cannot carry the largest record a name allows are refused, naming both keys', () => {
    const largest = largestFixedRecord(4096);
    expect(problemsOf({ limits: { maxNameBytes: 4096, maxRecordBytes: largest - 1 } })).toEqual([
      `limits.maxRecordBytes: ${largest - 1} cannot hold the largest record that limits.maxNameBytes 4096 allows (${largest} bytes); raise it or lower limits.maxNameBytes`,
    ]);
    expect(problemsOf({ limits: { maxNameBytes: 4096, maxRecordBytes: largest } })).toEqual([]);
  });

  it('wireLimits: the one source of the protocol limits, files over 4 GiB included', () => {
    const cfg = parseConfig({ limits: { maxFileBytes: 6 * 1024 ** 3, maxNameBytes: 2048, maxRecordBytes: 128 * 1024 } });
    expect(wireLimits(cfg)).toEqual({ maxFileSize: 6 * 1024 ** 3, maxNameBytes: 2048, maxRecordBytes: 128 * 1024 });
    expect(wireLimits(defaults()).maxRecordBytes).toBeGreaterThanOrEqual(largestFixedRecord(defaults().limits.maxNameBytes));
  });

  it('refuses text that is not JSON, saying so', () => {
    expect(() => parseConfigText('{ station: x }', 'f.json')).toThrow(/f\.json: 1 configuration error:\n {2}not valid JSON/);
  });

  it('resolves users by name or uid, and names an unknown user', () => {
    expect(resolveUid('root')).toBe(0);
    expect(resolveUid(1234)).toBe(1234);
    expect(() => resolveUid('no-such-user-here')).toThrow(/unknown user "no-such-user-here"/);
  });

  it('every key of the schema is documented in docs/configuration.md', () => {
    const doc = fs.readFileSync(fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url)), 'utf8');
    const missing = schemaKeys().filter((k) => !doc.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });
});

describe('sluice config check', () => {
  const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));
  const run = (file: string) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [cli, 'config', 'check', file], { encoding: 'utf8', stdio: 'pipe' }) };
    } catch (err) {
      const e = err as { status: number; stderr: string };
      return { code: e.status, out: e.stderr };
    }
  };

  it('says ok for a valid file and exits 0; lists each problem and exits 1 otherwise', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cfg-'));
    const good = path.join(dir, 'good.json');
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(good, JSON.stringify({ station: 'gw-1', transit: { allowTypes: ['pdf'] } }));
    fs.writeFileSync(bad, JSON.stringify({ transit: { allowtypes: ['pdf'], maxInFlight: -1 } }));
    expect(run(good)).toEqual({ code: 0, out: `${good}: ok\n` });
    const r = run(bad);
    expect(r.code).toBe(1);
    expect(r.out).toContain('transit.allowtypes: unknown key');
    expect(r.out).toContain('transit.maxInFlight: expected an integer from 1 to 1024, got -1');
    fs.rmSync(dir, { recursive: true });
  });
});

describe('limits that cannot hold together', () => {
  const GiB = 1024 ** 3;
  const MiB = 1024 ** 2;
  const problems = (doc: unknown): string[] => {
    try {
      parseConfig(doc);
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };

  it('the defaults and deploy/sluice.json hold together', () => {
    expect(problems({})).toEqual([]);
    const here = path.dirname(fileURLToPath(import.meta.url));
    expect(() => parseConfigText(fs.readFileSync(path.join(here, '../../../deploy/sluice.json'), 'utf8'))).not.toThrow();
  });

  it('refuses a maxFileBytes that neither of transit\'s budgets can hold, naming the keys', () => {
    const p = problems({ limits: { maxFileBytes: 20 * GiB } });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^limits\.maxFileBytes \(20480 MiB\).*transit\.copyDiskBytes is 16384 MiB.*transit\.copyMemoryBytes 512 MiB/);
    // RAM alone may hold every file: then no disk is needed.
    expect(problems({ limits: { maxFileBytes: 100 * MiB }, transit: { copyDiskBytes: 0 } })).toEqual([]);
    expect(problems({ limits: { maxFileBytes: 600 * MiB }, transit: { copyDiskBytes: 0 } })[0]).toMatch(/^limits\.maxFileBytes/);
  });

  it('refuses a maxFileBytes the ingress spool cannot hold, naming the keys', () => {
    const p = problems({ ingress: { spoolBytes: 1 * GiB } });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^limits\.maxFileBytes \(4096 MiB\) is larger than ingress\.spoolBytes \(1024 MiB\)/);
    expect(problems({ ingress: { spoolBytes: 1 * GiB }, limits: { maxFileBytes: 1 * GiB } })).toEqual([]);
  });

  it('refuses deliveries, journal and signers that together exceed egress.memoryMaxBytes, naming the keys', () => {
    const p = problems({ egress: { maxInFlight: 128 } });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^egress\.maxInFlight \(128\) x 13 MiB \+ \(egress\.journalMaxDeliveries \+ egress\.journalMaxUnfinished\) \(210000\) x 512 bytes \+ egress\.signers \(2\) x 32 MiB \+ 160 MiB .* over egress\.memoryMaxBytes \(1024 MiB/);
    expect(problems({ egress: { maxInFlight: 128, memoryMaxBytes: 4 * GiB } })).toEqual([]);
    expect(problems({ egress: { journalMaxDeliveries: 5_000_000 } })[0]).toMatch(/^egress\.maxInFlight .* over egress\.memoryMaxBytes/);
  });

  it('refuses more transfers forwarded by transit than egress takes at once, naming both keys', () => {
    expect(problems({ egress: { maxInFlight: 16 } })).toEqual([
      'transit.maxForwarding (32) is more than egress.maxInFlight (16): egress would answer the rest "retry" at once; lower the first or raise the second',
    ]);
    expect(problems({ egress: { maxInFlight: 16 }, transit: { maxForwarding: 16 } })).toEqual([]);
  });

  it('refuses a RAM budget that, with the transfers in flight, exceeds transit.memoryMaxBytes, naming the keys', () => {
    const tooMany = problems({ transit: { maxInFlight: 64, archives: { enabled: false } } });
    expect(tooMany).toHaveLength(1);
    expect(tooMany[0]).toMatch(/transit\.copyMemoryBytes \(512 MiB\) \+ transit\.maxInFlight \(64\) x 16 MiB \+ 160 MiB .* is 1696 MiB, over transit\.memoryMaxBytes \(1024 MiB/);
    // Archive inspection, on by default, adds its buffers to every transfer.
    const inspecting = problems({ transit: { maxInFlight: 64 } });
    expect(inspecting[0]).toMatch(/transit\.maxInFlight \(64\) x 48 MiB \(32 MiB of it for transit\.archives\) \+ 160 MiB .* is 3744 MiB/);
    expect(problems({ transit: { maxInFlight: 7 } })).toEqual([]);
    expect(problems({ transit: { maxInFlight: 7, archives: { maxDepth: 0 } } })).toEqual([expect.stringMatching(/^transit\.archives\.maxDepth: expected an integer from 1 to 8/)]);
    expect(problems({ transit: { copyMemoryBytes: 900 * MiB } })[0]).toMatch(/over transit\.memoryMaxBytes/);
    expect(problems({ transit: { copyMemoryBytes: 900 * MiB, memoryMaxBytes: 2 * GiB } })).toEqual([]);
    // YARA processes count too.
    const yara = problems({ transit: { copyMemoryBytes: 700 * MiB, yara: { enabled: true, maxConcurrent: 4 } } });
    expect(yara[0]).toMatch(/transit\.yara\.maxConcurrent \(4\) x 64 MiB/);
  });

  it('reports both at once, and only once every key is valid on its own', () => {
    expect(problems({ limits: { maxFileBytes: 20 * GiB }, transit: { maxInFlight: 64 } })).toHaveLength(2);
    expect(problems({ limits: { maxFileBytes: 20 * GiB }, transit: { maxInFlight: 'four' } })).toEqual([expect.stringMatching(/^transit\.maxInFlight: expected an integer/)]);
  });
});
