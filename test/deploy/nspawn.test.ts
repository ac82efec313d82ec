/*
 * NAME
 *   nspawn.test - the station under systemd itself, in a container booted
 *   from this host's /usr
 *
 * DESCRIPTION
 *   topology.test.ts imitates what systemd does. This test lets systemd do
 *   it: it boots a container (systemd-nspawn, private network) whose /usr is
 *   this host's /usr with the installed tree (`make install`) laid over it
 *   and whose /etc is a copy of this host's, and runs the units exactly as
 *   shipped: sysusers and tmpfiles at boot, socket activation,
 *   LoadCredential=, Type=notify, the sandboxes, the distribution's own
 *   sshd with the drop-in. Nothing of it touches the host.
 *
 * SECURITY
 *   Needs root, systemd-nspawn (Debian systemd-container), nsenter and
 *   openssh-server; skipped with the reason in every title otherwise. CI
 *   runs as root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Daemon, type Line, has, installOnce, isRoot, must, removeInstall, run, skipReason, waitFor, bootedSystemd, powerOff } from './support.js';

const nspawnWhy = !isRoot
  ? 'needs root; CI runs as root'
  : !has('systemd-nspawn')
    ? 'systemd-nspawn is not installed (Debian package systemd-container)'
    : !has('nsenter') || !fs.existsSync('/lib/systemd/systemd') || !has('/usr/sbin/sshd')
      ? 'needs nsenter, systemd and openssh-server'
      : '';
const skipped = skipReason(nspawnWhy !== '', nspawnWhy);

afterAll(removeInstall);

describe.skipIf(nspawnWhy !== '')(`under systemd itself, in a container booted from this host's /usr${skipped}`, () => {
  let rootDir = '';
  let nspawn: Daemon | undefined;
  let pid1 = 0;
  const inC = (cmd: string, args: string[], input?: string) =>
    run('nsenter', ['-t', String(pid1), '-a', cmd, ...args], input === undefined ? {} : { input });
  const mustC = (cmd: string, args: string[]) => {
    const r = inC(cmd, args);
    if (r.status !== 0) throw new Error(`in the container: ${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const journal = (): Line[] =>
    inC('journalctl', ['--no-pager', '-o', 'cat', '-u', 'sluice-*'])
      .stdout.split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const explain = () => `${inC('systemctl', ['--no-pager', 'status', 'sluice*']).stdout}\n${inC('journalctl', ['--no-pager', '-n', '40', '-u', 'sluice-*']).stdout}`;

  beforeAll(async () => {
    const dest = installOnce();
    rootDir = fs.mkdtempSync('/var/tmp/sluice-nspawn-');
    fs.chmodSync(rootDir, 0o755); // it is the container's "/": every user must traverse it
    for (const d of ['usr/lib', 'etc', 'var', 'tmp', 'run', 'proc', 'sys', 'dev', 'root', 'home']) fs.mkdirSync(path.join(rootDir, d), { recursive: true });
    for (const l of ['bin', 'lib', 'lib64', 'sbin']) fs.symlinkSync(`usr/${l}`, path.join(rootDir, l));
    fs.chmodSync(path.join(rootDir, 'tmp'), 0o1777);
    must('cp', ['-a', '/etc/.', path.join(rootDir, 'etc')]);
    // nspawn looks for os-release before it mounts /usr over this placeholder.
    fs.copyFileSync('/usr/lib/os-release', path.join(rootDir, 'usr/lib/os-release'));
    fs.rmSync(path.join(rootDir, 'etc/machine-id'), { force: true });
    must('systemd-machine-id-setup', [`--root=${rootDir}`]);
    // What `make install` put under /etc; the rest comes with the overlay on /usr.
    must('cp', ['-a', `${dest}/etc/.`, path.join(rootDir, 'etc')]);
    // A directory no unit names, on no deny-list: ingress must not see it anyway.
    fs.mkdirSync(path.join(rootDir, 'data'));
    fs.writeFileSync(path.join(rootDir, 'data/secret.txt'), 'an operator\'s file\n', { mode: 0o600 });

    nspawn = new Daemon('nspawn', 'systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--private-network', '-D', rootDir, `--overlay=/usr:${dest}/usr:/usr`, '--console=pipe', '-b'], {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    });
    pid1 = await bootedSystemd(nspawn);
  }, 120_000);

  afterAll(async () => {
    await powerOff(nspawn, pid1);
    if (rootDir) fs.rmSync(rootDir, { recursive: true, force: true });
  }, 60_000);

  it(`boot made the users and directories; sluice.target starts all three stages and they stay up${skipped}`, async () => {
    expect(mustC('stat', ['-c', '%U:%G %a', '/var/lib/sluice/drop/inbox']).trim()).toBe('root:sluice-inbox 2770');
    expect(mustC('id', ['-nG', 'sluice-ingress']).trim().split(' ').sort()).toEqual(['sluice-inbox', 'sluice-ingress']);
    mustC('sluice', ['keygen', '--out', '/etc/sluice/keys', '--name', 'signing']);
    mustC('systemctl', ['start', 'sluice.target']);
    const stages = ['sluice-ingress', 'sluice-transit', 'sluice-egress'];
    await waitFor(() => inC('systemctl', ['is-active', ...stages]).stdout.trim().split('\n').every((s) => s === 'active'), 'three active stages', explain);
    const lines = journal();
    for (const s of ['ingress', 'transit', 'egress']) expect(lines.some((l) => l.stage === s && l.event === 'started'), s).toBe(true);
    expect(lines.filter((l) => l.level === 'error' || l.level === 'fatal' || l.event === 'peer-refused'), explain()).toEqual([]);
    for (const s of stages) expect(mustC('systemctl', ['show', '-p', 'NRestarts', '--value', s]).trim(), s).toBe('0');
  });

  it(`an scp upload through the distribution's sshd arrives, 0640 for sluice-out, with a report \`sluice verify\` accepts${skipped}`, async () => {
    mustC('sh', ['-c', 'rm -f /root/uploader /root/uploader.pub && ssh-keygen -q -t ed25519 -N "" -f /root/uploader && install -m 0644 /root/uploader.pub /etc/sluice/drop_authorized_keys']);
    mustC('systemctl', ['start', 'ssh']);
    mustC('sh', ['-c', 'printf "measured values\\n1,2\\n" > /root/values.txt && chmod 0600 /root/values.txt']);
    const scpR = inC('scp', ['-q', '-i', '/root/uploader', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '/root/values.txt', 'sluice-drop@127.0.0.1:']);
    expect(scpR.status, scpR.stderr).toBe(0);
    const out = '/var/lib/sluice/outbox/values.txt';
    await waitFor(() => inC('test', ['-e', `${out}.sluice.json`]).status === 0, 'the report', explain);
    const v = inC('sluice', ['verify', out, `${out}.sluice.json`, '--pub', '/etc/sluice/keys/signing.pub']);
    expect(v.stdout + v.stderr).toMatch(/^ok: accepted/);
    expect(v.status).toBe(0);
    expect(mustC('stat', ['-c', '%U:%G %a', out]).trim()).toBe('sluice-egress:sluice-out 640');
    expect(JSON.parse(mustC('cat', [`${out}.sluice.json`])).format).toBe('sluice-report/3');
  });

  it(`a consumer (group sluice-out, nothing else) audits the transparency log with \`sluice log verify\`; others cannot read it${skipped}`, () => {
    const log = '/var/lib/sluice/log';
    expect(mustC('stat', ['-c', '%U:%G %a %n', log, `${log}/leaves`, `${log}/heads`]).trim().split('\n')).toEqual([
      `sluice-egress:sluice-out 750 ${log}`,
      `sluice-egress:sluice-out 640 ${log}/leaves`,
      `sluice-egress:sluice-out 640 ${log}/heads`,
    ]);
    mustC('install', ['-m', '0644', '/etc/sluice/keys/signing.pub', '/tmp/signing.pub']); // the key the station publishes
    const as = (groups: string[], cmd: string[]) =>
      inC('setpriv', ['--reuid=nobody', '--regid=nogroup', groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups', ...cmd]);
    const v = as(['sluice-out'], ['sluice', 'log', 'verify', log, '--pub', '/tmp/signing.pub']);
    expect(v.stdout + v.stderr).toMatch(/^ok: 1 leaves, 1 tree heads/);
    expect(v.status).toBe(0);
    const other = as([], ['sluice', 'log', 'verify', log, '--pub', '/tmp/signing.pub']);
    expect(other.stderr).toMatch(/cannot read the log/);
    expect(other.status).toBe(2);
  });

  it(`ingress runs with only CAP_DAC_READ_SEARCH and CAP_LEASE and sees only what it needs; egress alone got the key${skipped}`, () => {
    const pid = mustC('systemctl', ['show', '-p', 'MainPID', '--value', 'sluice-ingress']).trim();
    const status = mustC('cat', [`/proc/${pid}/status`]);
    expect(/^CapEff:\s+(\S+)/m.exec(status)![1]).toBe('0000000010000004');
    const view = (dir: string) => inC('nsenter', ['-t', pid, '-m', 'ls', '-A', dir]).stdout.trim().split('\n').filter(Boolean).sort();
    // An allow-list: an empty root with only what docs/privsep.md "What ingress sees" binds (and systemd's own).
    expect(view('/')).toEqual(['dev', 'etc', 'lib', 'lib64', 'proc', 'run', 'sys', 'tmp', 'usr', 'var']);
    expect(view('/usr/local')).toEqual(['lib']);
    expect(view('/usr/local/lib')).toEqual(['sluice']);
    expect(mustC('cat', ['/data/secret.txt'])).toBe("an operator's file\n"); // there, for the container's root
    expect(inC('nsenter', ['-t', pid, '-m', 'cat', '/data/secret.txt']).status).not.toBe(0); // not there, for ingress
    expect(view('/etc')).toEqual(['group', 'ld.so.cache', 'passwd', 'sluice']);
    expect(view('/etc/sluice')).toEqual(['sluice.json']);
    expect(view('/run')).toEqual(['sluice', 'systemd']);
    expect(view('/var/lib/sluice')).toEqual(['drop', 'ingress', 'metrics', 'uploaders']); // metrics: only its own directory (metrics/ingress)
    expect(inC('nsenter', ['-t', pid, '-m', 'cat', '/etc/shadow']).status).not.toBe(0);
    expect(mustC('stat', ['-c', '%U %a', '/run/credentials/sluice-egress.service/signing.key']).trim()).toBe('sluice-egress 400');
    for (const s of ['sluice-transit', 'sluice-egress']) {
      const p = mustC('systemctl', ['show', '-p', 'MainPID', '--value', s]).trim();
      expect(/^CapEff:\s+(\S+)/m.exec(mustC('cat', [`/proc/${p}/status`]))![1], s).toBe('0000000000000000');
    }
    // No core files, and egress, which holds the key, is not dumpable: proc(5) gives its files to root.
    for (const s of ['sluice-ingress', 'sluice-transit', 'sluice-egress']) expect(mustC('systemctl', ['show', '-p', 'LimitCORE', '--value', s]).trim(), s).toBe('0');
    const owner = (s: string) => mustC('stat', ['-c', '%U', `/proc/${mustC('systemctl', ['show', '-p', 'MainPID', '--value', s]).trim()}/status`]).trim();
    expect(owner('sluice-egress')).toBe('root');
    expect(owner('sluice-transit')).toBe('sluice-transit');
  });

  it(`stopping the target stops each stage cleanly (SIGTERM, \`stopping\`, \`stopped\`), none having restarted${skipped}`, async () => {
    for (const s of ['sluice-ingress', 'sluice-transit', 'sluice-egress']) expect(mustC('systemctl', ['show', '-p', 'NRestarts', '--value', s]).trim(), s).toBe('0');
    mustC('systemctl', ['stop', 'sluice.target']);
    await waitFor(() => inC('systemctl', ['is-active', 'sluice-ingress', 'sluice-transit', 'sluice-egress']).stdout.trim().split('\n').every((s) => s === 'inactive'), 'three inactive stages', explain);
    for (const s of ['sluice-ingress', 'sluice-transit', 'sluice-egress']) expect(mustC('systemctl', ['show', '-p', 'Result', '--value', s]).trim(), s).toBe('success');
    const stopped = journal().filter((l) => l.event === 'stopped').map((l) => l.stage);
    expect(new Set(stopped)).toEqual(new Set(['ingress', 'transit', 'egress']));
  });
});
