// The `sluice` command as users run it: keygen, verify (every exit code), and
// egress's refusal to start without a usable signing key.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSecretKey, signReport, serializeReport, keyIdOfSecret, EXIT_CODES, MAX_REPORT_BYTES, REPORT_FORMAT, type ReportBody } from '../packages/report/src/index.js';
import { devConfig, stageScript } from '../packages/cli/src/dev.js';
import { Pipeline } from './support/pipeline.js';

const CLI = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url));
// The timeout turns a hang (e.g. reading a FIFO) into a failed test (status null), not a stuck run.
const sluice = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

let dir: string;
let keys: { secret: string; pub: string };
let other: { secret: string; pub: string };
let keygenOutput = '';

function body(over: Partial<ReportBody> & { bytes?: string } = {}): ReportBody {
  const bytes = over.bytes ?? 'hello\n';
  const { bytes: _b, ...rest } = over;
  const secret = loadSecretKey(keys.secret);
  return {
    format: REPORT_FORMAT,
    station: 'test',
    software: 'sluice 0.1.0',
    key: keyIdOfSecret(secret),
    transfer: 't-1',
    name: { original: 'hello.txt', stored: 'hello.txt' },
    size: Buffer.byteLength(bytes),
    sha256: sha(bytes),
    verdict: 'accepted',
    reason: '',
    checks: [{ name: 'file-type', result: 'pass', reason: 'txt', engine: 'test' }],
    times: { received: '2026-11-22T06:00:00.000Z', checked: '2026-11-22T06:00:01.000Z', reported: '2026-11-22T06:00:02.000Z' },
    ...rest,
  } as ReportBody;
}

function writeReport(name: string, b: ReportBody, secretPath = keys.secret): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, serializeReport(signReport(b, loadSecretKey(secretPath))));
  return p;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cli-'));
  const k = sluice('keygen', '--out', path.join(dir, 'keys'));
  expect(k.status, k.stderr).toBe(0);
  keys = { secret: path.join(dir, 'keys', 'sluice-report.key'), pub: path.join(dir, 'keys', 'sluice-report.pub') };
  keygenOutput = k.stdout + k.stderr;
  expect(sluice('keygen', '--out', path.join(dir, 'other')).status).toBe(0);
  other = { secret: path.join(dir, 'other', 'sluice-report.key'), pub: path.join(dir, 'other', 'sluice-report.pub') };
  fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello\n');
});

describe('sluice keygen', () => {
  it('writes a 0400 private key and a 0444 public key, prints where, and never overwrites', () => {
    expect(fs.statSync(keys.secret).mode & 0o777).toBe(0o400);
    expect(fs.statSync(keys.pub).mode & 0o777).toBe(0o444);
    // It says where the files are, and never prints the secret seeds.
    expect(keygenOutput).toContain(keys.secret);
    expect(keygenOutput).toContain(keys.pub);
    const seeds = JSON.parse(fs.readFileSync(keys.secret, 'utf8')) as { ed25519: string; mldsa65: string };
    expect(keygenOutput).not.toContain(seeds.ed25519);
    expect(keygenOutput).not.toContain(seeds.mldsa65);
    const again = sluice('keygen', '--out', path.join(dir, 'keys'));
    expect(again.status).not.toBe(0);
    expect(fs.statSync(keys.secret).mode & 0o777).toBe(0o400);
  });
});

describe('sluice verify', () => {
  const file = () => path.join(dir, 'hello.txt');

  it('exit 0 when both signatures, size, digest and verdict check out', () => {
    const r = sluice('verify', file(), writeReport('ok.json', body()), '--pub', keys.pub);
    expect(r.status, r.stderr).toBe(EXIT_CODES.ok);
  });

  it.each([
    ['a file whose bytes differ', () => [path.join(dir, 'other.txt'), writeReport('m.json', body())], EXIT_CODES.mismatch],
    ['a rejection report', () => [file(), writeReport('rej.json', body({ verdict: 'rejected', reason: 'file-type: elf' }))], EXIT_CODES.rejected],
    ['a report signed by another key', () => [file(), writeReport('other.json', body({ key: keyIdOfSecret(loadSecretKey(other.secret)) }), other.secret)], EXIT_CODES['unknown-key']],
    ['a report that is not JSON', () => [file(), (fs.writeFileSync(path.join(dir, 'bad.json'), '{nope'), path.join(dir, 'bad.json'))], EXIT_CODES.malformed],
  ])('%s → its own exit code and a one-line reason', (_what, make, code) => {
    fs.writeFileSync(path.join(dir, 'other.txt'), 'HELLO\n');
    const [f, rep] = make() as [string, string];
    const r = sluice('verify', f, rep, '--pub', keys.pub);
    expect(r.status).toBe(code);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^FAILED: /);
  });

  it('a flipped byte in the report body is a bad signature (or malformed), never ok', () => {
    const rep = writeReport('flip.json', body());
    const text = fs.readFileSync(rep, 'utf8');
    const i = text.indexOf('"station":"test"') + '"station":"t'.length;
    fs.writeFileSync(rep, `${text.slice(0, i)}E${text.slice(i + 1)}`);
    const r = sluice('verify', file(), rep, '--pub', keys.pub);
    expect(r.status).toBe(EXIT_CODES['bad-signature']);
  });

  it('--report-only checks a rejection report; --json prints the result for machines', () => {
    const rep = writeReport('rej2.json', body({ verdict: 'rejected', reason: 'too-large' }));
    const r = sluice('verify', '--report-only', rep, '--pub', keys.pub, '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ ok: true, code: 'ok', exitCode: 0 });
    expect(j.report.verdict).toBe('rejected');
  });

  it('--json prints the uploader of a report from a named uploader, and none for the anonymous drop', () => {
    const named = sluice('verify', file(), writeReport('named.json', body({ uploader: 'alice' })), '--pub', keys.pub, '--json');
    expect(named.status).toBe(0);
    expect(JSON.parse(named.stdout).report.uploader).toBe('alice');
    const anonymous = sluice('verify', file(), writeReport('anon.json', body()), '--pub', keys.pub, '--json');
    expect(JSON.parse(anonymous.stdout).report).not.toHaveProperty('uploader');
  });

  it('--json on a failure: one line with ok false and the code; the body only once the signatures verified', () => {
    const rep = writeReport('json-flip.json', body());
    const text = fs.readFileSync(rep, 'utf8');
    const i = text.indexOf('"transfer":"t-1"') + '"transfer":"t-'.length;
    fs.writeFileSync(rep, `${text.slice(0, i)}2${text.slice(i + 1)}`);
    const bad = sluice('verify', file(), rep, '--pub', keys.pub, '--json');
    expect(bad.status).toBe(EXIT_CODES['bad-signature']);
    expect(bad.stdout).toMatch(/^[\x20-\x7e]+\n$/);
    const j = JSON.parse(bad.stdout);
    expect(j).toMatchObject({ ok: false, code: 'bad-signature', exitCode: EXIT_CODES['bad-signature'] });
    expect(j.reason).toMatch(/^bad signature: /);
    expect(j).not.toHaveProperty('report'); // unauthenticated content is never passed on

    const rej = sluice('verify', file(), writeReport('json-rej.json', body({ verdict: 'rejected', reason: 'clamav: infected' })), '--pub', keys.pub, '--json');
    expect(rej.status).toBe(EXIT_CODES.rejected);
    expect(JSON.parse(rej.stdout)).toMatchObject({ ok: false, code: 'rejected', report: { verdict: 'rejected', reason: 'clamav: infected' } });
  });

  it('--report-only still refuses a bad signature and another key', () => {
    const rep = writeReport('ro-flip.json', body({ verdict: 'rejected', reason: 'too-large' }));
    const text = fs.readFileSync(rep, 'utf8');
    fs.writeFileSync(rep, text.replace('"reason":"too-large"', '"reason":"too-largE"'));
    expect(sluice('verify', '--report-only', rep, '--pub', keys.pub).status).toBe(EXIT_CODES['bad-signature']);
    expect(sluice('verify', '--report-only', writeReport('ro-rej.json', body({ verdict: 'rejected', reason: 'x' })), '--pub', other.pub).status).toBe(EXIT_CODES['unknown-key']);
  });

  it('a REPORT that is not a regular file (a FIFO) is a usage error, at once, not a hang', () => {
    const fifo = path.join(dir, 'report.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = sluice('verify', file(), fifo, '--pub', keys.pub);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('not a regular file');
  });

  it('a REPORT over the 2 MiB bound is malformed', () => {
    const big = path.join(dir, 'big.json');
    fs.writeFileSync(big, `${'{'.repeat(MAX_REPORT_BYTES + 10)}\n`);
    const r = sluice('verify', file(), big, '--pub', keys.pub);
    expect(r.status).toBe(EXIT_CODES.malformed);
    expect(r.stderr).toMatch(/^FAILED: malformed report: report is larger than 2097152 bytes\n$/);
  });

  it('the test vector under docs/report-vector/ verifies with the exit codes its README states', () => {
    const vdir = fileURLToPath(new URL('../docs/report-vector/', import.meta.url));
    const pub = path.join(vdir, 'vector.pub');
    const hello = path.join(vdir, 'hello.txt');
    const expected: [string, number][] = [
      ['accepted', EXIT_CODES.ok],
      ['rejected', EXIT_CODES.rejected],
      ['refused', EXIT_CODES.mismatch],
      ['v1-accepted', EXIT_CODES.ok],
      ['v1-rejected', EXIT_CODES.rejected],
      ['v1-refused', EXIT_CODES.mismatch],
      ['log-0', EXIT_CODES.ok],
      ['log-1', EXIT_CODES.rejected],
      ['log-2', EXIT_CODES.mismatch],
      ['log-3', EXIT_CODES.ok],
      ['log-4', EXIT_CODES.ok],
    ];
    expect(fs.readdirSync(vdir).filter((f) => f.endsWith('.sluice.json')).sort()).toEqual(expected.map(([n]) => `${n}.sluice.json`).sort());
    for (const [name, code] of expected) {
      const rep = path.join(vdir, `${name}.sluice.json`);
      const r = sluice('verify', hello, rep, '--pub', pub);
      expect([name, r.status], r.stdout + r.stderr).toEqual([name, code]);
    }
  });

  it('an empty file against a report of an upload refused at pickup: mismatch (4), in either format', () => {
    const vdir = fileURLToPath(new URL('../docs/report-vector/', import.meta.url));
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    for (const name of ['refused', 'v1-refused']) {
      const r = sluice('verify', empty, path.join(vdir, `${name}.sluice.json`), '--pub', path.join(vdir, 'vector.pub'));
      expect([name, r.status]).toEqual([name, EXIT_CODES.mismatch]);
      expect(r.stderr).toMatch(/^FAILED: file does not match report: the report is about an upload refused at pickup and never copied; it vouches for no bytes/);
    }
    const only = sluice('verify', '--report-only', path.join(vdir, 'refused.sluice.json'), '--pub', path.join(vdir, 'vector.pub'), '--json');
    expect(only.status).toBe(EXIT_CODES.ok);
    expect(JSON.parse(only.stdout).report).toMatchObject({ format: 'sluice-report/2', sha256: null, size: 5368709120, verdict: 'rejected' });
  });

  it('usage errors exit 2 and say what is missing', () => {
    const r = sluice('verify', file());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--pub');
  });
});

describe('egress and its signing key (fail closed)', () => {
  const runEgress = (keyPath: string) => {
    const d = fs.mkdtempSync(path.join(dir, 'eg-'));
    for (const sub of ['outbox', 'rejected', 'run']) fs.mkdirSync(path.join(d, sub));
    const cfg = devConfig(d, { egress: { signingKey: keyPath } });
    fs.writeFileSync(path.join(d, 'sluice.json'), JSON.stringify(cfg));
    return spawnSync(process.execPath, [stageScript('egress'), '--config', path.join(d, 'sluice.json')], { encoding: 'utf8', timeout: 20_000 });
  };

  it('refuses to start without a key file', () => {
    const r = runEgress(path.join(dir, 'no-such.key'));
    expect(r.status).toBe(1);
    const fatal = r.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.level === 'fatal');
    expect(fatal).toMatchObject({ event: 'startup-failed', stage: 'egress' });
    expect(fatal.reason).toContain('no-such.key');
  });

  it('refuses a key that group or others can read, and never prints key material', () => {
    const loose = path.join(dir, 'loose.key');
    fs.copyFileSync(keys.secret, loose);
    fs.chmodSync(loose, 0o644);
    const r = runEgress(loose);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('startup-failed');
    const seeds = JSON.parse(fs.readFileSync(keys.secret, 'utf8')) as { ed25519: string; mldsa65: string };
    expect(r.stdout + r.stderr).not.toContain(seeds.ed25519);
    expect(r.stdout + r.stderr).not.toContain(seeds.mldsa65);
  });
});

describe('sluice dev --uploaders', () => {
  it('refuses a name that is not an uploader name, as a usage error', () => {
    const r = sluice('dev', '--dir', path.join(dir, 'never-made'), '--uploaders', 'alice,Bob');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--uploaders: "Bob" is not an uploader name');
    expect(fs.existsSync(path.join(dir, 'never-made'))).toBe(false);
  });

  it('writes a configuration with uploaders enabled and the DIR templates; without the option, none', async () => {
    const p = await Pipeline.start(undefined, { uploaders: ['alice', 'bob'] });
    try {
      const cfg = JSON.parse(fs.readFileSync(path.join(p.dir, 'sluice.json'), 'utf8'));
      expect(cfg.uploaders).toEqual({ enabled: true, inbox: path.join(p.dir, 'inbox', '{name}'), results: path.join(p.dir, 'results', '{name}') });
      for (const d of ['inbox/alice', 'inbox/bob', 'results/alice', 'results/bob']) expect(fs.lstatSync(path.join(p.dir, d)).isDirectory()).toBe(true);
      expect(p.lines.find((l) => l.stage === 'ingress' && l.event === 'watching')).toMatchObject({ uploaders: 2 });
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});

describe('sluice dev and its key', () => {
  it('generates its own key pair (private 0400) and says where the public key is', async () => {
    const p = await Pipeline.start(); // no configuration given: sluice dev writes its own
    try {
      const starting = p.events('dev-starting');
      expect(starting).toHaveLength(1);
      const pub = String(starting[0]!.publicKey);
      expect(starting[0]).toMatchObject({ newKey: true, publicKey: p.publicKey });
      expect(String(starting[0]!.msg)).toContain(`--pub ${pub}`);
      expect(fs.statSync(pub).mode & 0o777).toBe(0o444);
      const secret = pub.replace(/\.pub$/, '.key');
      expect(fs.statSync(secret).mode & 0o777).toBe(0o400);
      // The public key printed is the one egress signs with.
      const listening = p.lines.find((l) => l.stage === 'egress' && l.event === 'listening')!;
      expect(listening.key).toBe(keyIdOfSecret(loadSecretKey(secret)));
      expect(JSON.parse(fs.readFileSync(path.join(p.dir, 'sluice.json'), 'utf8'))).not.toHaveProperty('uploaders');
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});
