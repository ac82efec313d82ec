/*
 * NAME
 *   deb.test - `make deb`, lintian, and the package installed, upgraded
 *   and purged with apt in a container booted from this host's /usr
 *
 * DESCRIPTION
 *   Builds two packages: the tree's version and a rebuild with a higher
 *   version (SLUICE_DEB_VERSION). Checks the first one's control fields,
 *   file places and conffiles, and that lintian reports no error.
 *
 *   Then, as nspawn.test.ts does, boots a container (systemd-nspawn,
 *   private network) whose /usr is this host's /usr under an empty
 *   writable overlay, whose /etc is a copy of this host's and whose
 *   /var/lib/dpkg is a copy of this host's package database: dpkg and apt
 *   in the container see the packages whose files /usr holds, and what
 *   they install lands in the overlay only. Nothing touches the host.
 *   In it:
 *     - `apt install ./sluice_<v>_<arch>.deb`: users, directories and a
 *       key made, sluice.target enabled and not started, the operator
 *       told to read operations.md; started, the three stages come up
 *       under systemd and an scp upload is delivered and verifies;
 *     - an upgrade to the rebuilt package while files are in flight: one
 *       batch held in ingress's spool (egress stopped), a second uploaded
 *       by scp while apt runs; every file ends with exactly one report,
 *       the key and an edited configuration survive, the stages restart;
 *     - `apt purge`: the conffiles go, the key, the data and the users stay.
 *
 *   The dependency on nodejs (>= 20.19): the container's package database
 *   is the host's, so the host's own `nodejs` entry satisfies it when it
 *   has one that recent (this machine's node is a repacked NodeSource
 *   build, registered with dpkg as nodejs). A host whose node is not
 *   registered with dpkg at all gets, in the container only, a test-only
 *   stand-in: an empty package named nodejs, built with dpkg-deb, standing
 *   for the /usr/bin/node the container shares. A host whose dpkg knows an
 *   older nodejs is skipped with the reason (replacing that entry would
 *   remove its files from the container's /usr).
 *
 *   The host's /usr/sbin/policy-rc.d (if any, as in Docker images) is
 *   hidden in the container's overlay: the maintainer scripts ask it
 *   before they stop or start a unit, as Debian wants, and the test wants
 *   them to act as they would on a real host.
 *
 * SECURITY
 *   The container part needs root, systemd-nspawn, nsenter, apt and
 *   openssh-server; building needs dpkg-dev, lintian needs lintian. Each
 *   is skipped with the reason in its title otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, type Line, has, isRoot, must, root, run, skipReason, waitFor, bootedSystemd, powerOff } from './support.js';

const UPGRADE_VERSION_SUFFIX = '+upgradetest1';
const HELD = 20; // files held in ingress's spool across the upgrade
const DURING = 20; // files uploaded by scp while apt upgrades

const buildWhy = !has('dpkg-deb') || !has('dpkg-gencontrol') || !has('dpkg-shlibdeps') ? 'needs dpkg-dev (test/setup-host.sh installs it)' : '';
const lintianWhy = buildWhy || (!has('lintian') ? 'lintian is not installed (test/setup-host.sh installs it)' : '');

/** hostNodejs - how the container gets its nodejs (>= 20.19): the host's dpkg entry, a stand-in, or not at all (the reason). */
function hostNodejs(): { how: 'host' | 'standin' } | { why: string } {
  const q = run('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', 'nodejs']);
  const [status, installed] = q.status === 0 ? q.stdout.trim().split(' ') : ['', ''];
  if (status !== 'installed') return { how: 'standin' };
  if (run('dpkg', ['--compare-versions', installed!, 'ge', '20.19']).status === 0) return { how: 'host' };
  return { why: `this host's dpkg knows nodejs ${installed}, older than 20.19` };
}
const node = buildWhy ? { why: buildWhy } : hostNodejs();
const nspawnWhy =
  buildWhy ||
  (!isRoot
    ? 'needs root; CI runs as root'
    : !has('systemd-nspawn')
      ? 'systemd-nspawn is not installed (Debian package systemd-container)'
      : !has('nsenter') || !has('apt') || !fs.existsSync('/lib/systemd/systemd') || !has('/usr/sbin/sshd')
        ? 'needs nsenter, apt, systemd and openssh-server'
        : 'why' in node
          ? node.why
          : '');

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-deb-'));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;
const arch = buildWhy ? '' : must('dpkg', ['--print-architecture']).trim();
const debName = (v: string) => `sluice_${v}_${arch}.deb`;

let built = false;
/** buildBoth - `make deb` for the tree's version and for the upgrade's, once per file. */
function buildBoth(): void {
  if (built) return;
  for (const extra of [[], [`SLUICE_DEB_VERSION=${version}${UPGRADE_VERSION_SUFFIX}`]]) {
    const r = run('make', ['-s', 'deb', `DEB_OUT=${out}`, ...extra], { cwd: root, timeout: 600_000 });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/\/sluice_[^/]+\.deb$/);
  }
  built = true;
}

describe.skipIf(buildWhy !== '')(`make deb${skipReason(buildWhy !== '', buildWhy)}`, () => {
  beforeAll(buildBoth, 900_000);

  it(`builds ${debName(version)} with the dependencies, places and conffiles of a Debian daemon${skipReason(buildWhy !== '', buildWhy)}`, () => {
    const deb = path.join(out, debName(version));
    const field = (f: string) => must('dpkg-deb', ['-f', deb, f]).trim();
    expect(field('Package')).toBe('sluice');
    expect(field('Version')).toBe(version);
    expect(field('Architecture')).toBe(arch);
    const depends = field('Depends').split(/,\s*/);
    expect(depends).toContain('nodejs (>= 20.19)');
    expect(depends).toContain('openssh-server');
    expect(depends.some((d) => d.startsWith('libc6 ('))).toBe(true); // dpkg-shlibdeps, for the native addons
    expect(field('Recommends').split(/,\s*/).sort()).toEqual(['clamav-daemon', 'yara']);
    const files = must('dpkg-deb', ['-c', deb])
      .split('\n')
      .map((l) => l.split(/\s+/)[5] ?? '')
      .filter(Boolean)
      .map((f) => f.replace(/^\./, ''));
    for (const f of [
      '/usr/lib/systemd/system/sluice.target',
      '/usr/lib/systemd/system/sluice-ingress.service',
      '/usr/lib/systemd/system/sluice-transit.socket',
      '/usr/lib/systemd/system/sluice-egress.service',
      '/usr/lib/sysusers.d/sluice.conf',
      '/usr/lib/tmpfiles.d/sluice.conf',
      '/usr/lib/sluice/packages/native/build/Release/sluice_native.node',
      '/usr/bin/sluice',
      '/usr/share/doc/sluice/operations.md',
      '/usr/share/doc/sluice/copyright',
      '/usr/share/doc/sluice/changelog.gz',
    ]) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('/usr/local'))).toEqual([]);
    // No key and no data in the package: postinst and tmpfiles make them on the host.
    expect(files.filter((f) => f.startsWith('/etc/sluice/keys') || f.startsWith('/var/'))).toEqual([]);
    const x = fs.mkdtempSync(path.join(out, 'x-'));
    must('dpkg-deb', ['-e', deb, x]);
    expect(fs.readFileSync(path.join(x, 'conffiles'), 'utf8').trim().split('\n').sort()).toEqual(['/etc/sluice/sluice.json', '/etc/ssh/sshd_config.d/sluice-drop.conf', '/etc/ssh/sshd_config.d/sluice-uploaders.conf']);
    must('dpkg-deb', ['-x', deb, x]);
    const unit = fs.readFileSync(path.join(x, 'usr/lib/systemd/system/sluice-egress.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/usr\/lib\/sluice\/packages\/egress\/dist\/main\.js --config \/etc\/sluice\/sluice\.json$/m);
    expect(unit).not.toContain('/usr/local');
  });

  it(`refuses a changelog that disagrees with package.json, naming both versions${skipReason(buildWhy !== '', buildWhy)}`, () => {
    const fake = fs.mkdtempSync(path.join(out, 'tree-'));
    fs.mkdirSync(path.join(fake, 'packaging/deb'), { recursive: true });
    for (const f of fs.readdirSync(path.join(root, 'packaging/deb'))) fs.copyFileSync(path.join(root, 'packaging/deb', f), path.join(fake, 'packaging/deb', f));
    fs.writeFileSync(path.join(fake, 'package.json'), JSON.stringify({ name: 'sluice', version: '9.9.9' }));
    const r = run('sh', [path.join(fake, 'packaging/deb/build.sh')], { env: { ...process.env, DEB_OUT: fake } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`changelog's top entry is ${version} but package.json says 9.9.9`);
  });

  it.skipIf(lintianWhy !== '')(`lintian reports no error (its warnings are overridden, each with a reason)${skipReason(lintianWhy !== '', lintianWhy)}`, () => {
    const r = run('lintian', ['--fail-on', 'error,warning', path.join(out, debName(version))], { timeout: 300_000 });
    expect(r.stdout.split('\n').filter((l) => /^[EW]: /.test(l)), r.stdout + r.stderr).toEqual([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 300_000);
});

describe.skipIf(nspawnWhy !== '')(`the package under apt and systemd, in a container booted from this host's /usr${skipReason(nspawnWhy !== '', nspawnWhy)}`, () => {
  const skipped = skipReason(nspawnWhy !== '', nspawnWhy);
  let rootDir = '';
  let upper = '';
  let nspawn: Daemon | undefined;
  let pid1 = 0;
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C.UTF-8' };
  const inC = (cmd: string, args: string[]) => run('nsenter', ['-t', String(pid1), '-a', cmd, ...args], { env, timeout: 300_000 });
  const mustC = (cmd: string, args: string[]) => {
    const r = inC(cmd, args);
    if (r.status !== 0) throw new Error(`in the container: ${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const sh = (script: string) => mustC('sh', ['-c', script]);
  const journal = (): Line[] =>
    inC('journalctl', ['--no-pager', '-o', 'cat', '-u', 'sluice-*'])
      .stdout.split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const explain = () => `${inC('systemctl', ['--no-pager', 'status', 'sluice*']).stdout}\n${inC('journalctl', ['--no-pager', '-n', '60', '-u', 'sluice-*']).stdout}`;
  const STAGES = ['sluice-ingress', 'sluice-transit', 'sluice-egress'];
  const allActive = () => inC('systemctl', ['is-active', ...STAGES]).stdout.trim().split('\n').every((s) => s === 'active');
  const mainPids = () => STAGES.map((s) => mustC('systemctl', ['show', '-p', 'MainPID', '--value', s]).trim());
  const scpArgs = (files: string[]) => ['-q', '-i', '/root/uploader', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', ...files, 'sluice-drop@127.0.0.1:'];
  const reports = () => sh('cd /var/lib/sluice && ls outbox rejected 2>/dev/null | grep "\\.sluice\\.json$" || true').trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    buildBoth();
    rootDir = fs.mkdtempSync('/var/tmp/sluice-deb-root-');
    upper = fs.mkdtempSync('/var/tmp/sluice-deb-usr-');
    fs.chmodSync(rootDir, 0o755);
    fs.chmodSync(upper, 0o755);
    for (const d of ['usr/lib', 'etc', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'var/log/apt', 'var/tmp', 'tmp', 'run', 'proc', 'sys', 'dev', 'root', 'home']) {
      fs.mkdirSync(path.join(rootDir, d), { recursive: true });
    }
    for (const l of ['bin', 'lib', 'lib64', 'sbin']) fs.symlinkSync(`usr/${l}`, path.join(rootDir, l));
    fs.chmodSync(path.join(rootDir, 'tmp'), 0o1777);
    fs.chmodSync(path.join(rootDir, 'var/tmp'), 0o1777);
    must('cp', ['-a', '/etc/.', path.join(rootDir, 'etc')]);
    must('cp', ['-a', '/var/lib/dpkg', path.join(rootDir, 'var/lib/dpkg')]);
    // A clean slate for the package's own files, whatever this host has.
    for (const f of ['etc/sluice', 'etc/ssh/sshd_config.d/sluice-drop.conf', 'etc/ssh/sshd_config.d/sluice-uploaders.conf']) fs.rmSync(path.join(rootDir, f), { recursive: true, force: true });
    fs.copyFileSync('/usr/lib/os-release', path.join(rootDir, 'usr/lib/os-release'));
    fs.rmSync(path.join(rootDir, 'etc/machine-id'), { force: true });
    must('systemd-machine-id-setup', [`--root=${rootDir}`]);
    for (const v of [version, `${version}${UPGRADE_VERSION_SUFFIX}`]) fs.copyFileSync(path.join(out, debName(v)), path.join(rootDir, 'var/tmp', debName(v)));
    if ('how' in node && node.how === 'standin') {
      const s = path.join(out, 'nodejs-standin');
      fs.mkdirSync(path.join(s, 'DEBIAN'), { recursive: true });
      fs.writeFileSync(
        path.join(s, 'DEBIAN/control'),
        `Package: nodejs\nVersion: 20.19.0-0~sluicetest\nArchitecture: all\nMaintainer: Sluice tests <tests@invalid>\nDescription: test-only stand-in for the host's /usr/bin/node\n This host's node is not registered with dpkg; the container shares it.\n`,
      );
      must('dpkg-deb', ['--root-owner-group', '--build', s, path.join(rootDir, 'var/tmp/nodejs-standin.deb')]);
    }

    nspawn = new Daemon('nspawn', 'systemd-nspawn', ['--quiet', '--register=no', '--keep-unit', '--private-network', '-D', rootDir, `--overlay=/usr:${upper}:/usr`, '--console=pipe', '-b'], {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    });
    pid1 = await bootedSystemd(nspawn);
    // The maintainer scripts ask policy-rc.d; the host's (Docker's "exit 101") is hidden in the overlay only.
    sh('rm -f /usr/sbin/policy-rc.d');
    if ('how' in node && node.how === 'standin') sh('dpkg -i /var/tmp/nodejs-standin.deb');
  }, 900_000);

  afterAll(async () => {
    await powerOff(nspawn, pid1);
    for (const d of [rootDir, upper]) if (d) fs.rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it(`apt install makes users, directories and a key, enables sluice.target without starting it, and says to read operations.md${skipped}`, () => {
    const r = inC('apt', ['install', '-y', '--no-install-recommends', `/var/tmp/${debName(version)}`]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('read /usr/share/doc/sluice/operations.md first');
    expect(r.stdout).toMatch(/sluice: key id: +\S+/);
    expect(mustC('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', 'sluice']).trim()).toBe(`installed ${version}`);
    expect(inC('systemctl', ['is-enabled', 'sluice.target']).stdout.trim()).toBe('enabled');
    expect(inC('systemctl', ['is-active', 'sluice.target', ...STAGES]).stdout.trim().split('\n')).toEqual(['inactive', 'inactive', 'inactive', 'inactive']);
    expect(mustC('stat', ['-c', '%U:%G %a', '/etc/sluice/keys/signing.key']).trim()).toBe('root:root 400');
    expect(mustC('stat', ['-c', '%U:%G %a', '/var/lib/sluice/drop/inbox']).trim()).toBe('root:sluice-inbox 2770');
    expect(mustC('id', ['-nG', 'sluice-ingress']).trim().split(' ').sort()).toEqual(['sluice-inbox', 'sluice-ingress']);
  });

  it(`started, the three stages come up under systemd and an scp upload is delivered with a report that verifies${skipped}`, async () => {
    mustC('systemctl', ['start', 'sluice.target']);
    await waitFor(allActive, 'three active stages', explain);
    const lines = journal();
    for (const s of ['ingress', 'transit', 'egress']) expect(lines.some((l) => l.stage === s && l.event === 'started'), s).toBe(true);
    expect(lines.filter((l) => l.level === 'error' || l.level === 'fatal'), explain()).toEqual([]);

    sh('rm -f /root/uploader /root/uploader.pub && ssh-keygen -q -t ed25519 -N "" -f /root/uploader && install -m 0644 /root/uploader.pub /etc/sluice/drop_authorized_keys');
    // Running or not before the install, sshd now has the drop-in (postinst reloads a running one).
    mustC('systemctl', ['start', 'ssh']);
    sh('printf "measured values\\n1,2\\n" > /root/values.txt && chmod 0600 /root/values.txt');
    const scp = inC('scp', scpArgs(['/root/values.txt']));
    expect(scp.status, scp.stderr).toBe(0);
    const f = '/var/lib/sluice/outbox/values.txt';
    await waitFor(() => inC('test', ['-e', `${f}.sluice.json`]).status === 0, 'the report', explain);
    const v = inC('sluice', ['verify', f, `${f}.sluice.json`, '--pub', '/etc/sluice/keys/signing.pub']);
    expect(v.stdout + v.stderr).toMatch(/^ok: accepted/);
    expect(v.status).toBe(0);
  });

  it(`sluice status as root: OK with three stages up and the delivery counted; the .prom links where node_exporter reads, for sluice-operators only; a stopped stage is CRITICAL by name${skipped}`, async () => {
    type Report = {
      status: string;
      exitCode: number;
      stages: Record<string, { up: boolean; state: string }>;
      files: { sinceStart: { received: number | null; accepted: number | null } };
      lastDelivery: { verdict: string; stored: string } | null;
      keyId: string | null;
      problems: { level: string; stage?: string; text: string }[];
    };
    const status = (args: string[] = []) => inC('sluice', ['status', ...args]);
    const statusJson = (): { code: number | null; out: string; report: Report | null } => {
      const r = status(['--json']);
      try {
        return { code: r.status, out: r.stdout + r.stderr, report: JSON.parse(r.stdout) as Report };
      } catch {
        return { code: r.status, out: r.stdout + r.stderr, report: null };
      }
    };
    let last = statusJson();
    // egress rewrites its status file soon after a delivery; ingress, which counts the pickup, at its next status.intervalMs.
    const counted = (r: Report | null) => (r?.files.sinceStart.accepted ?? 0) >= 1 && (r?.files.sinceStart.received ?? 0) >= 1;
    await waitFor(() => counted((last = statusJson()).report), 'ingress and egress to count the upload in their status files', () => `${last.out}\n${inC('ls', ['-laR', '/var/lib/sluice/metrics']).stdout}\n${explain()}`);
    const j = last.report!;
    expect(journal().filter((l) => l.event === 'status-unavailable' || l.event === 'status-write-failed')).toEqual([]);
    expect(last.code, last.out).toBe(0);
    expect(j.status).toBe('OK');
    expect(j.problems).toEqual([]);
    for (const s of ['ingress', 'transit', 'egress']) expect(j.stages[s], s).toMatchObject({ up: true, state: 'running' });
    expect(j.lastDelivery).toMatchObject({ verdict: 'accepted', stored: 'values.txt' });
    expect(j.keyId).toMatch(/^[0-9a-f]+$/);
    const human = status();
    expect(human.status, human.stdout + human.stderr).toBe(0);
    expect(human.stdout.split('\n')[0]).toMatch(/^SLUICE OK - all stages up;/);
    expect(human.stdout).toMatch(/^ {2}since the stages started: received [1-9]\d*, accepted [1-9]\d*, rejected 0$/m);
    expect(human.stdout).toMatch(/^ {2}last delivery: \S+ accepted values\.txt$/m);

    // Where node_exporter's textfile collector reads (--collector.textfile.directory=/var/lib/sluice/metrics).
    expect(mustC('stat', ['-c', '%U:%G %a', '/var/lib/sluice/metrics']).trim()).toBe('root:sluice-operators 751');
    for (const s of ['ingress', 'transit', 'egress']) {
      const link = `/var/lib/sluice/metrics/${s}.prom`;
      expect(mustC('readlink', [link]).trim(), link).toBe(`${s}/${s}.prom`);
      expect(mustC('stat', ['-c', '%U:%G %a', `/var/lib/sluice/metrics/${s}`]).trim(), s).toBe(`sluice-${s}:sluice-operators 2750`);
      expect(mustC('stat', ['-L', '-c', '%F %U:%G %a', link]).trim(), link).toBe(`regular file sluice-${s}:sluice-operators 640`);
      expect(mustC('stat', ['-c', '%U:%G %a', `/var/lib/sluice/metrics/${s}/${s}.json`]).trim(), s).toBe(`sluice-${s}:sluice-operators 640`);
      expect(mustC('cat', [link]), link).toContain(`sluice_stage_info{stage="${s}",`);
    }
    expect(mustC('cat', ['/var/lib/sluice/metrics/egress.prom'])).toMatch(/^sluice_files_total\{stage="egress",outcome="accepted"\} [1-9]\d*$/m);
    // A member of sluice-operators reads them (as node_exporter would); anyone else does not.
    const asOperator = inC('setpriv', ['--reuid=nobody', '--regid=nogroup', '--groups=sluice-operators', 'sh', '-c', 'cat /var/lib/sluice/metrics/*.prom >/dev/null && sluice status']);
    expect(asOperator.status, asOperator.stdout + asOperator.stderr).toBe(0);
    const asOther = inC('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'cat', '/var/lib/sluice/metrics/egress.prom']);
    expect(asOther.status).not.toBe(0);
    expect(asOther.stderr).toContain('Permission denied');
    const statusAsOther = inC('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sluice', 'status']);
    expect(statusAsOther.status, statusAsOther.stdout).toBe(3);
    expect(statusAsOther.stdout).toMatch(/^SLUICE UNKNOWN/);

    // A stage down: the socket too, or the next connection from ingress would start transit again.
    mustC('systemctl', ['stop', 'sluice-transit.socket', 'sluice-transit.service']);
    expect(inC('systemctl', ['is-active', 'sluice-transit.socket', 'sluice-transit.service']).stdout.trim().split('\n')).toEqual(['inactive', 'inactive']);
    const down = status();
    expect(down.status, down.stdout + down.stderr).toBe(2);
    expect(down.stdout.split('\n')[0]).toMatch(/^SLUICE CRITICAL - transit down;/);
    expect(down.stdout).toMatch(/^ {2}CRITICAL transit down: stopped at /m);
    const downJson = statusJson();
    expect(downJson.code).toBe(2);
    expect(downJson.report?.stages.transit).toMatchObject({ up: false, state: 'stopped' });
    expect(downJson.report?.stages.ingress.up).toBe(true);
    expect(downJson.report?.stages.egress.up).toBe(true);
    expect(downJson.report?.problems.map((p) => [p.level, p.stage])).toEqual([['CRITICAL', 'transit']]);

    mustC('systemctl', ['start', 'sluice-transit.socket', 'sluice-transit.service']);
    await waitFor(allActive, 'three active stages again', explain);
    await waitFor(() => status().status === 0, 'sluice status to say OK again', () => `${status().stdout}\n${explain()}`);
  }, 120_000);

  it(`an upgrade with ${HELD} files held in the spool and ${DURING} uploaded meanwhile loses none: each gets exactly one report; key and edited configuration stay${skipped}`, async () => {
    const newVersion = `${version}${UPGRADE_VERSION_SUFFIX}`;
    const pubBefore = mustC('sha256sum', ['/etc/sluice/keys/signing.pub']);
    sh('sed -i "s/\\"maxFileBytes\\": 4294967296/\\"maxFileBytes\\": 4294967295/" /etc/sluice/sluice.json && grep -q 4294967295 /etc/sluice/sluice.json');
    sh(`mkdir -p /root/up && cd /root/up && for i in $(seq -w 1 ${HELD + DURING}); do printf "file %s of the upgrade\\n" "$i" > "up-$i.txt"; done`);
    const names = Array.from({ length: HELD + DURING }, (_, i) => `up-${String(i + 1).padStart(2, '0')}.txt`);
    const held = names.slice(0, HELD);
    const during = names.slice(HELD);

    // Batch one: in flight for certain, since egress is down; ingress spools them and waits for acks.
    mustC('systemctl', ['stop', 'sluice-egress.socket', 'sluice-egress.service']);
    const scp1 = inC('scp', scpArgs(held.map((n) => `/root/up/${n}`)));
    expect(scp1.status, scp1.stderr).toBe(0);
    await waitFor(() => sh('ls -A /var/lib/sluice/drop/inbox | wc -l').trim() === '0', 'ingress to take every upload into its spool', explain);
    expect(reports().filter((r) => r.startsWith('up-'))).toEqual([]);
    const pidsBefore = mainPids();

    // Batch two by scp while apt upgrades; both at once.
    const scp2 = spawn('nsenter', ['-t', String(pid1), '-a', 'scp', ...scpArgs(during.map((n) => `/root/up/${n}`))], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let scp2err = '';
    scp2.stderr!.on('data', (d: Buffer) => (scp2err += d.toString()));
    const scp2done = new Promise<number | null>((r) => scp2.once('exit', (code) => r(code)));
    const up = inC('apt', ['install', '-y', '--no-install-recommends', `/var/tmp/${debName(newVersion)}`]);
    expect(up.status, up.stdout + up.stderr).toBe(0);
    expect(await scp2done, scp2err).toBe(0);
    expect(mustC('dpkg-query', ['-W', '-f=${Version}', 'sluice']).trim()).toBe(newVersion);

    await waitFor(() => names.every((n) => reports().includes(`${n}.sluice.json`)), `reports for all ${names.length} files`, () => `${reports().join(' ')}\n${explain()}`, 120_000);
    await waitFor(allActive, 'three active stages after the upgrade', explain);
    // Exactly once: one report per name, nothing stored twice under another name, every one accepted and verified.
    const outbox = sh('ls /var/lib/sluice/outbox').trim().split('\n');
    expect(outbox.filter((f) => f.startsWith('up-')).sort()).toEqual(names.flatMap((n) => [n, `${n}.sluice.json`]).sort());
    expect(sh('ls /var/lib/sluice/rejected | grep "^up-" || true').trim()).toBe('');
    const verified = sh(`cd /var/lib/sluice/outbox && for f in up-*.txt; do sluice verify "$f" "$f.sluice.json" --pub /etc/sluice/keys/signing.pub; done`);
    expect(verified.trim().split('\n').filter((l) => l.startsWith('ok: accepted'))).toHaveLength(names.length);

    expect(mustC('sha256sum', ['/etc/sluice/keys/signing.pub'])).toBe(pubBefore);
    expect(mustC('cat', ['/etc/sluice/sluice.json'])).toContain('"maxFileBytes": 4294967295');
    const pidsAfter = mainPids();
    for (let i = 0; i < STAGES.length; i++) expect(pidsAfter[i], STAGES[i]).not.toBe(pidsBefore[i]);
    expect(inC('test', ['-e', '/run/sluice.dpkg-restart']).status).not.toBe(0);
  }, 300_000);

  it(`apt purge stops the stages and removes the conffiles, and keeps the key, the data and the users${skipped}`, async () => {
    const r = inC('apt', ['purge', '-y', 'sluice']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Left in place on purpose');
    expect(inC('systemctl', ['is-active', ...STAGES]).stdout.trim().split('\n')).toEqual(['inactive', 'inactive', 'inactive']);
    for (const gone of ['/etc/sluice/sluice.json', '/etc/ssh/sshd_config.d/sluice-drop.conf', '/etc/ssh/sshd_config.d/sluice-uploaders.conf', '/usr/lib/sluice', '/usr/bin/sluice']) expect(inC('test', ['-e', gone]).status, gone).not.toBe(0);
    for (const kept of ['/etc/sluice/keys/signing.key', '/etc/sluice/keys/signing.pub', '/var/lib/sluice/outbox/values.txt', '/var/lib/sluice/outbox/values.txt.sluice.json']) expect(inC('test', ['-e', kept]).status, kept).toBe(0);
    expect(inC('id', ['sluice-egress']).status).toBe(0);
  }, 120_000);
});
