/*
 * NAME
 *   uploaders-e2e.test - named uploaders end to end, as root: two uploaders
 *   upload over scp through a real sshd into the running station, and each
 *   fetches its own signed report over sftp
 *
 * DESCRIPTION
 *   The whole station as topology.test.ts runs it (groups and users from the
 *   shipped sysusers file, directories from the shipped tmpfiles file, each
 *   stage as its own user with its listening socket made the way the socket
 *   units make it, ingress with the ambient capabilities of its unit), with
 *   uploaders.enabled, plus the real sshd with both shipped drop-ins as in
 *   uploaders.test.ts, and two uploaders made by the compiled `sluice
 *   uploader add` on the running station. Every production name gets a
 *   unique prefix (groups "suXXXXXX-inbox" ..., /var/lib/suXXXXXX,
 *   /run/suXXXXXX, /etc/suXXXXXX); the uploaders are "suXXXXXXa" and
 *   "suXXXXXXb". Everything is removed afterwards.
 *
 *   The stages run from this tree's packages/<stage>/dist (run `make build`
 *   first), not from an installed copy: install.test.ts and topology.test.ts
 *   cover installation.
 *
 * SECURITY
 *   Needs root (accounts, chroot, setpriv, sshd) and is skipped with the
 *   reason in every title otherwise; CI runs as root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, SOCKET_LAUNCHER, deploy, has, startSshd, isRoot, must, one, parseUnit, readUnit, root, run, skipReason, waitFor, words, renamer } from './support.js';

const tools = ['systemd-sysusers', 'systemd-tmpfiles', 'setpriv', 'useradd', 'usermod', 'userdel', 'groupdel', 'getent', '/usr/sbin/sshd', 'scp', 'sftp', 'ssh-keygen', '/usr/bin/python3'];
const missing = tools.filter((t) => !has(t));
const dist = (pkg: string) => path.join(root, `packages/${pkg}/dist/main.js`);
const why = !isRoot
  ? 'needs root (accounts, chroot, setpriv, sshd); CI runs as root'
  : missing.length > 0
    ? `missing ${missing.join(', ')} (Debian: systemd, util-linux, passwd, openssh-server, openssh-client, python3)`
    : !['cli', 'ingress', 'transit', 'egress'].every((s) => fs.existsSync(dist(s)))
      ? 'packages/*/dist is not built (make build)'
      : '';
const skipped = skipReason(why !== '', why);

interface Report {
  name: { original: string; stored: string };
  size: number;
  sha256: string;
  verdict: string;
  uploader?: string;
}

describe.skipIf(why !== '')(`named uploaders end to end: the station, a real sshd, scp and sftp as two uploaders${skipped}`, () => {
  const p = `su${randomBytes(3).toString('hex')}`;
  const base = `/var/lib/${p}`;
  const runDir = `/run/${p}`;
  const etc = `/etc/${p}`;
  const cred = `/run/${p}-credentials`;
  const g = (n: string) => `${p}-${n}`;
  const alice = `${p}a`;
  const bob = `${p}b`;
  /** rewrite - the production names in deploy/ files, made unique to this run. */
  const rewrite = renamer({ prefix: p, cred, base, runDir, etc, names: ['drop', 'ingress', 'transit', 'egress', 'inbox', 'out', 'uploaders', 'operators'] });
  const home = (n: string) => `${base}/uploaders/${n}`;
  const keysDir = `${etc}/uploaders/keys`;
  const pub = `${etc}/keys/signing.pub`;
  let tmp = '';
  let config = '';
  let port = 0;
  const daemons: Daemon[] = [];
  let sshd: Daemon | undefined;

  const key = (n: string) => path.join(tmp, `key-${n}`);
  const sshOpts = (n: string) => ['-i', key(n), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'];
  /** sftp - one sftp batch as uploader N; a line starting "-" does not abort the batch when it fails. */
  const sftp = (n: string, cmds: string[]) => run('sftp', ['-P', String(port), ...sshOpts(n), '-b', '-', `${n}@127.0.0.1`], { input: `${cmds.join('\n')}\n` });
  const uid = (n: string) => Number(must('id', ['-u', n]).trim());
  const nameOfUid = (u: number) => must('getent', ['passwd', String(u)]).split(':')[0];
  const nameOfGid = (gid: number) => must('getent', ['group', String(gid)]).split(':')[0];
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const dump = () =>
    daemons.map((d) => `--- ${d.name}\n${d.lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}\n${d.stderr.slice(-2000)}`).join('\n') +
    (sshd ? `\n--- sshd\n${sshd.stderr.slice(-3000)}` : '');
  /** running - pids of processes running as user N (sshd's session process ends a moment after the client). */
  const running = (n: string) => {
    const u = uid(n);
    return fs.readdirSync('/proc').filter((e) => {
      try {
        return /^\d+$/.test(e) && new RegExp(`^Uid:\\s+${u}\\s`, 'm').test(fs.readFileSync(`/proc/${e}/status`, 'utf8'));
      } catch {
        return false;
      }
    });
  };

  /** What each uploader sent, and the report egress wrote for it (filled by the first test). */
  const content = (n: string) => Buffer.alloc(1024 * 1024, n === alice ? 'alice wrote this line.\n' : 'bob wrote another line\n');
  const reports = new Map<string, { body: Report; text: Buffer; file: string }>();

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-uploaders-e2e-'));
    fs.chmodSync(tmp, 0o755);

    // Groups, users and directories, from the shipped files.
    fs.writeFileSync(path.join(tmp, 'sysusers.conf'), rewrite(fs.readFileSync(path.join(deploy, 'sysusers.d/sluice.conf'), 'utf8')));
    must('systemd-sysusers', [path.join(tmp, 'sysusers.conf')]);
    fs.writeFileSync(path.join(tmp, 'tmpfiles.conf'), rewrite(fs.readFileSync(path.join(deploy, 'tmpfiles.d/sluice.conf'), 'utf8')));
    must('systemd-tmpfiles', ['--create', path.join(tmp, 'tmpfiles.conf')]);

    // The signing key, and the copy LoadCredential= would make: 0500 directory, 0400 file, owned by egress.
    must(process.execPath, [dist('cli'), 'keygen', '--out', `${etc}/keys`, '--name', 'signing']);
    fs.mkdirSync(cred, { mode: 0o700 });
    fs.copyFileSync(`${etc}/keys/signing.key`, `${cred}/signing.key`);
    fs.chownSync(`${cred}/signing.key`, uid(g('egress')), 0);
    fs.chmodSync(`${cred}/signing.key`, 0o400);
    fs.chownSync(cred, uid(g('egress')), 0);
    fs.chmodSync(cred, 0o500);

    // The shipped configuration with named uploaders on; ingress rescans the uploaders' directory every second,
    // so an uploader added to the running station is served soon.
    const doc = JSON.parse(rewrite(fs.readFileSync(path.join(deploy, 'sluice.json'), 'utf8'))) as Record<string, Record<string, unknown>>;
    doc.ingress = { ...doc.ingress, rescanIntervalMs: 1000 };
    doc.uploaders = { ...doc.uploaders, enabled: true, inbox: `${base}/uploaders/{name}/inbox`, results: `${base}/uploaders/{name}/results` };
    doc.status = { ...doc.status, dir: `${base}/metrics`, group: g('operators') };
    config = `${etc}/sluice.json`;
    fs.writeFileSync(config, JSON.stringify(doc, null, 2), { mode: 0o644 });
    const check = run(process.execPath, [dist('cli'), 'config', 'check', config]);
    expect(check.status, check.stdout + check.stderr).toBe(0);

    // Egress, then transit (socket activated), then ingress with its unit's ambient capabilities.
    fs.writeFileSync(path.join(tmp, 'launcher.py'), SOCKET_LAUNCHER);
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    for (const s of ['egress', 'transit'] as const) {
      const u = parseUnit(rewrite(fs.readFileSync(path.join(deploy, `sluice-${s}.socket`), 'utf8'))).Socket!;
      const umask = one(readUnit(`sluice-${s}.service`), 'Service', 'UMask');
      const args = [u.ListenSequentialPacket![0]!, u.SocketUser![0]!, u.SocketGroup![0]!, u.SocketMode![0]!, g(s), umask];
      const d = new Daemon(s, '/usr/bin/python3', [path.join(tmp, 'launcher.py'), ...args, process.execPath, dist(s), '--config', config], env);
      daemons.push(d);
      await waitFor(() => d.events('started').length > 0, `${s} started`, dump);
    }
    const unit = parseUnit(rewrite(fs.readFileSync(path.join(deploy, 'sluice-ingress.service'), 'utf8')));
    const caps = words(unit, 'Service', 'AmbientCapabilities').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
    const ingress = new Daemon(
      'ingress',
      '/bin/sh',
      ['-c', `umask ${one(unit, 'Service', 'UMask')} && exec setpriv "$@"`, 'setpriv', `--reuid=${g('ingress')}`, `--regid=${g('ingress')}`, '--init-groups', `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, '--no-new-privs', process.execPath, dist('ingress'), '--config', config],
      env,
    );
    daemons.push(ingress);
    await waitFor(() => ingress.events('started').length > 0 && ingress.events('downstream-connected').length > 0, 'ingress started and connected', dump);

    // The two uploaders, added to the running station by the compiled CLI.
    for (const n of [alice, bob]) {
      must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${n}@test`, '-f', key(n)]);
      const r = run(process.execPath, [dist('cli'), 'uploader', 'add', n, '--key', `${key(n)}.pub`, '--config', config, '--keys', keysDir, '--group', g('uploaders'), '--inbox-group', g('inbox')]);
      expect(r.status, r.stdout + r.stderr).toBe(0);
    }

    // sshd on 127.0.0.1 with both drop-ins, as Debian's sshd_config includes them (first).
    must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(tmp, 'hostkey')]);
    for (const f of ['sluice-drop.conf', 'sluice-uploaders.conf']) fs.writeFileSync(path.join(tmp, f), rewrite(fs.readFileSync(path.join(deploy, 'sshd_config.d', f), 'utf8')));
    ({ sshd, port } = await startSshd(tmp, ['sluice-drop.conf', 'sluice-uploaders.conf'], dump, env));
  }, 180_000);

  afterAll(async () => {
    await sshd?.stop();
    await Promise.allSettled(daemons.map((d) => d.stop()));
    for (const n of [alice, bob]) {
      if (run('getent', ['passwd', n]).status !== 0) continue;
      await waitFor(() => running(n).length === 0, `no process of ${n}`, () => running(n).join(', ')).catch(() => undefined);
      run('userdel', [n]);
    }
    for (const u of ['drop', 'ingress', 'transit', 'egress']) run('userdel', [g(u)]);
    for (const n of [alice, bob, ...['drop', 'ingress', 'transit', 'egress', 'inbox', 'out', 'uploaders', 'operators'].map(g)]) run('groupdel', [n]);
    for (const dir of [base, runDir, etc, cred, tmp]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it(`two uploaders scp the same name at once, one while the other's upload is in progress: each report names its uploader, holds its bytes and verifies; each fetches it over sftp${skipped}`, async () => {
    for (const n of [alice, bob]) {
      fs.mkdirSync(path.join(tmp, n));
      fs.writeFileSync(path.join(tmp, n, 'report.txt'), content(n), { mode: 0o600 }); // 0600: uploaded as 0200
    }
    const scp = (n: string, extra: string[] = []) => ['-q', '-P', String(port), ...sshOpts(n), ...extra, path.join(tmp, n, 'report.txt'), `${n}@127.0.0.1:`];
    // Alice's upload is slowed to 800 kbit/s (1 MiB: about ten seconds) so that bob's whole upload of the same name
    // happens while hers is in progress; ingress must take neither half-written.
    const slow = spawn('scp', scp(alice, ['-l', '800']), { stdio: ['ignore', 'ignore', 'pipe'] });
    let slowErr = '';
    slow.stderr.on('data', (d: Buffer) => (slowErr += d.toString()));
    const slowDone = new Promise<number | null>((resolve) => slow.on('close', resolve));
    await waitFor(() => fs.existsSync(`${home(alice)}/inbox/report.txt`) || slow.exitCode !== null, "alice's upload begun", dump);
    const fast = run('scp', scp(bob));
    expect(fast.status, fast.stderr + dump()).toBe(0);
    expect(slow.exitCode, "the test's premise: bob's upload ran during alice's").toBe(null);
    expect(await slowDone, slowErr + dump()).toBe(0);

    // Both reports, in outbox/ beside the files, each naming its own uploader.
    const outbox = path.join(base, 'outbox');
    const reportNames = () => fs.readdirSync(outbox).filter((f) => f.endsWith('.sluice.json'));
    await waitFor(() => reportNames().length >= 2, 'two reports in outbox/', dump, 60_000);
    expect(fs.readdirSync(path.join(base, 'rejected'))).toEqual([]);
    for (const f of reportNames()) {
      const text = fs.readFileSync(path.join(outbox, f));
      const body = JSON.parse(text.toString()) as Report;
      expect(reports.has(body.uploader!), `two reports name ${body.uploader}`).toBe(false);
      reports.set(body.uploader!, { body, text, file: path.join(outbox, body.name.stored) });
    }
    expect([...reports.keys()].sort()).toEqual([alice, bob]);
    for (const n of [alice, bob]) {
      const { body, file } = reports.get(n)!;
      expect(body, n).toMatchObject({ verdict: 'accepted', uploader: n, name: { original: 'report.txt' }, size: content(n).length, sha256: sha256(content(n)) });
      expect(fs.readFileSync(file).equals(content(n)), n).toBe(true);
      const v = run(process.execPath, [dist('cli'), 'verify', file, `${file}.sluice.json`, '--pub', pub, '--json']);
      expect(v.status, v.stdout + v.stderr).toBe(0);
      expect(JSON.parse(v.stdout), n).toMatchObject({ ok: true, code: 'ok', report: { verdict: 'accepted', uploader: n } });
      expect(fs.readdirSync(`${home(n)}/inbox`), n).toEqual([]); // ingress took the upload
    }
    expect(reports.get(alice)!.body.name.stored).not.toBe(reports.get(bob)!.body.name.stored);

    // Each uploader's results/ holds a copy of exactly its own report, as egress writes it: egress's, the uploader's group, 0640.
    for (const n of [alice, bob]) {
      const { body, text } = reports.get(n)!;
      const name = `${body.name.stored}.sluice.json`;
      expect(fs.readdirSync(`${home(n)}/results`), n).toEqual([name]);
      const st = fs.statSync(`${home(n)}/results/${name}`);
      expect([nameOfUid(st.uid), nameOfGid(st.gid), st.mode & 0o7777], n).toEqual([g('egress'), n, 0o640]);
      // Fetched over sftp by its absolute path in the chroot (the session starts in /inbox).
      const local = path.join(tmp, `fetched-${n}.json`);
      const r = sftp(n, [`get "/results/${name}" ${local}`, 'ls -1 /results']);
      expect(r.status, r.stderr + dump()).toBe(0);
      expect(fs.readFileSync(local).equals(text), n).toBe(true);
      expect(r.stdout.split('\n').filter((l) => l.startsWith('/results/')), n).toEqual([`/results/${name}`]);
    }
  }, 180_000);

  it(`neither uploader can list, read or write the other's results or inbox over sftp, nor the other's results as its own uid${skipped}`, () => {
    expect([...reports.keys()].sort(), 'the reports of the first test').toEqual([alice, bob]);
    for (const [me, other] of [[alice, bob], [bob, alice]] as const) {
      const theirs = `${reports.get(other)!.body.name.stored}.sluice.json`;
      const planted = path.join(tmp, 'planted.sluice.json');
      fs.writeFileSync(planted, '{"forged":true}\n');
      const local = path.join(tmp, `stolen-${me}.json`);
      // Every name me could give the other's files: inside the chroot none of them exists.
      for (const cmd of [
        `get "/results/${theirs}" ${local}`,
        `get "/../${other}/results/${theirs}" ${local}`,
        `get "${home(other)}/results/${theirs}" ${local}`,
        `get "../../${other}/results/${theirs}" ${local}`,
        `ls /../${other}/results`,
        `ls ${home(other)}/results`,
        `ls ${home(other)}/inbox`,
        `put ${planted} "/../${other}/results/${theirs}"`,
        `put ${planted} ${home(other)}/results/planted.sluice.json`,
        `put ${planted} ${home(other)}/inbox/planted.txt`,
        `put ${planted} "/results/${theirs}"`,
      ]) {
        const r = sftp(me, [cmd]);
        expect(r.status === 0 && !cmd.startsWith('ls'), `${me}: ${cmd}`).toBe(false); // sftp's ls reports a failed listing without failing the batch
        expect(r.stdout + r.stderr, `${me}: ${cmd}`).toMatch(/not found|No such file|Permission denied|Couldn't/);
        if (cmd.startsWith('ls')) expect(r.stdout.split('\n').filter((l) => !l.startsWith('sftp>')).join('\n'), `${me}: ${cmd}`).not.toMatch(/sluice\.json|report/);
        expect(fs.existsSync(local), `${me}: ${cmd}`).toBe(false);
      }
      // Outside sshd's chroot, the modes alone keep the other's results from the uploader's own uid too. (Not
      // the inboxes: every uploader is in the inbox group, and only the chroot separates them; docs/privsep.md.)
      const as = (cmd: string[]) => run('setpriv', [`--reuid=${me}`, `--regid=${me}`, '--init-groups', ...cmd]);
      for (const cmd of [
        ['ls', `${home(other)}/results`],
        ['cat', `${home(other)}/results/${theirs}`],
        ['touch', `${home(other)}/results/planted.sluice.json`],
      ]) {
        const r = as(cmd);
        expect(r.status, `${me}: ${cmd.join(' ')}`).not.toBe(0);
        expect(r.stderr, `${me}: ${cmd.join(' ')}`).toMatch(/Permission denied/);
      }
      // The other's results are as egress left them.
      expect(fs.readdirSync(`${home(other)}/results`)).toEqual([theirs]);
      expect(fs.readFileSync(`${home(other)}/results/${theirs}`).equals(reports.get(other)!.text)).toBe(true);
      expect(fs.readdirSync(`${home(other)}/inbox`)).toEqual([]);
    }
    // Nothing the uploaders tried reached the pipeline: still only the two accepted files, nothing rejected.
    expect(fs.readdirSync(path.join(base, 'outbox')).filter((f) => f.endsWith('.sluice.json'))).toHaveLength(2);
    expect(fs.readdirSync(path.join(base, 'rejected'))).toEqual([]);
  });
});
