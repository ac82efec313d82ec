/*
 * NAME
 *   uploaders.test - named uploaders on a real system, as root:
 *   `sluice uploader add/remove/list`, and two uploaders against a real
 *   sshd with the real sftp and scp clients
 *
 * DESCRIPTION
 *   Groups from the shipped sysusers file, directories from the shipped
 *   tmpfiles file, the shipped sshd drop-ins (sluice-drop.conf and
 *   sluice-uploaders.conf) under a real sshd on 127.0.0.1, accounts made by
 *   the compiled `sluice uploader` (run `make build` first). As in
 *   topology.test.ts every production name gets a unique prefix (groups
 *   "suXXXXXX-uploaders" ..., /var/lib/suXXXXXX, /etc/suXXXXXX) so the test
 *   never touches a real installation or a concurrent run; the uploaders
 *   are "suXXXXXXa" and "suXXXXXXb". Everything is removed afterwards.
 *
 *   No pipeline runs here: results files are written as egress writes them
 *   (as the egress user, 0640, in the results directory), and "ingress
 *   picked the file up" is the file's removal from the inbox.
 *   uploaders-e2e.test.ts runs the stages themselves behind the same sshd.
 *
 * SECURITY
 *   Needs root (accounts, chroot, sshd, mount) and is skipped with the
 *   reason in every title otherwise; CI runs as root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon, deploy, has, startSshd, isRoot, mdTable, must, root, run, skipReason, waitFor } from './support.js';

const tools = ['systemd-sysusers', 'systemd-tmpfiles', 'setpriv', 'useradd', 'usermod', 'userdel', 'groupdel', 'getent', 'mount', '/usr/sbin/sshd', 'scp', 'sftp', 'ssh', 'ssh-keygen'];
const missing = tools.filter((t) => !has(t));
const cliPath = path.join(root, 'packages/cli/dist/main.js');
const why = !isRoot
  ? 'needs root (accounts, chroot, sshd); CI runs as root'
  : missing.length > 0
    ? `missing ${missing.join(', ')} (Debian: systemd, util-linux, passwd, openssh-server, openssh-client)`
    : !fs.existsSync(cliPath)
      ? 'packages/cli/dist is not built (make build)'
      : '';
const skipped = skipReason(why !== '', why);

/** runAsync - a command run to its end without blocking the test: its exit status and output. */
function runAsync(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe.skipIf(why !== '')(`named uploaders: sluice uploader on real accounts, a real sshd, sftp and scp${skipped}`, () => {
  const p = `su${randomBytes(3).toString('hex')}`;
  const base = `/var/lib/${p}`;
  const etc = `/etc/${p}`;
  const g = (n: string) => `${p}-${n}`;
  const alice = `${p}a`;
  const bob = `${p}b`;
  const rewrite = (text: string) =>
    text
      .replace(/\/var\/lib\/sluice(?=[/\s"]|$)/gm, base)
      .replace(/\/etc\/sluice(?=[/\s"]|$)/gm, etc)
      .replace(/\bsluice-(drop|ingress|transit|egress|inbox|out|uploaders)\b/g, `${p}-$1`);
  const home = (n: string) => `${base}/uploaders/${n}`;
  const keysDir = `${etc}/uploaders/keys`;
  const full = `${etc}/keys-full`;
  let tmp = '';
  let config = '';
  let port = 0;
  let sshd: Daemon | undefined;

  const cli = (...args: string[]) => run(process.execPath, [cliPath, 'uploader', ...args, '--config', config, '--keys', keysDir, '--group', g('uploaders'), '--inbox-group', g('inbox')]);
  const key = (n: string) => path.join(tmp, `key-${n}`);
  const sshOpts = (n: string) => ['-i', key(n), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'];
  /** sftp - one sftp batch as uploader N; a line starting "-" does not abort the batch when it fails. */
  const sftp = (n: string, cmds: string[]) => run('sftp', ['-P', String(port), ...sshOpts(n), '-b', '-', `${n}@127.0.0.1`], { input: `${cmds.join('\n')}\n` });
  const scpArgs = (n: string, files: string[]) => ['-q', '-P', String(port), ...sshOpts(n), ...files, `${n}@127.0.0.1:`];
  const passwd = (n: string) => run('getent', ['passwd', n]);
  const exists = (n: string) => passwd(n).status === 0;
  const groupExists = (n: string) => run('getent', ['group', n]).status === 0;
  const nameOfUid = (uid: number) => must('getent', ['passwd', String(uid)]).split(':')[0];
  const nameOfGid = (gid: number) => must('getent', ['group', String(gid)]).split(':')[0];
  const fingerprint = (file: string) => must('ssh-keygen', ['-l', '-f', file]).split(/\s+/)[1];
  const dump = () => (sshd ? `--- sshd\n${sshd.stderr.slice(-3000)}` : '');
  /**
   * sessionsEnded - wait until no process runs as uploader N: sshd's session process ends a moment after the
   * client's, and `remove` rightly keeps an uploader with a running session retiring.
   */
  const sessionsEnded = async (n: string) => {
    const uid = Number(must('id', ['-u', n]).trim());
    const running = () =>
      fs.readdirSync('/proc').filter((e) => {
        try {
          return /^\d+$/.test(e) && new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(fs.readFileSync(`/proc/${e}/status`, 'utf8'));
        } catch {
          return false;
        }
      });
    await waitFor(() => running().length === 0, `no process of ${n}`, () => `still running: ${running().join(', ')}\n${dump()}`);
  };
  /** asEgress - write a results file as egress does: as the egress user, mode 0640, in the uploader's results directory. */
  const asEgress = (n: string, file: string, text: string) => {
    const r = run('setpriv', [`--reuid=${g('egress')}`, `--regid=${g('egress')}`, '--clear-groups', 'sh', '-c', 'umask 027 && cat > "$1"', 'sh', `${home(n)}/results/${file}`], { input: text });
    expect(r.status, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-uploaders-'));
    fs.chmodSync(tmp, 0o755);
    fs.writeFileSync(path.join(tmp, 'sysusers.conf'), rewrite(fs.readFileSync(path.join(deploy, 'sysusers.d/sluice.conf'), 'utf8')));
    must('systemd-sysusers', [path.join(tmp, 'sysusers.conf')]);
    fs.writeFileSync(path.join(tmp, 'tmpfiles.conf'), rewrite(fs.readFileSync(path.join(deploy, 'tmpfiles.d/sluice.conf'), 'utf8')));
    must('systemd-tmpfiles', ['--create', path.join(tmp, 'tmpfiles.conf')]);
    // The configuration names the uploaders' directories (deploy/sluice.json, once it has them, rewritten like the rest).
    const doc = JSON.parse(rewrite(fs.readFileSync(path.join(deploy, 'sluice.json'), 'utf8'))) as Record<string, Record<string, unknown>>;
    doc.uploaders = { ...doc.uploaders, enabled: true, inbox: `${base}/uploaders/{name}/inbox`, results: `${base}/uploaders/{name}/results` };
    config = `${etc}/sluice.json`;
    fs.writeFileSync(config, JSON.stringify(doc, null, 2));
    for (const n of [alice, bob, `${bob}-new`, 'other']) must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${n}@test`, '-f', key(n)]);

    must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(tmp, 'hostkey')]);
    for (const f of ['sluice-drop.conf', 'sluice-uploaders.conf']) fs.writeFileSync(path.join(tmp, f), rewrite(fs.readFileSync(path.join(deploy, 'sshd_config.d', f), 'utf8')));
    ({ sshd, port } = await startSshd(tmp, ['sluice-drop.conf', 'sluice-uploaders.conf'], dump));
  }, 120_000);

  afterAll(async () => {
    await sshd?.stop();
    run('umount', [full]);
    for (const u of [alice, bob, 'carol', ...['drop', 'ingress', 'transit', 'egress'].map(g)]) run('userdel', [u]);
    for (const n of [alice, bob, 'carol', ...['drop', 'ingress', 'transit', 'egress', 'inbox', 'out', 'uploaders'].map(g)]) run('groupdel', [n]);
    for (const dir of [base, etc, tmp]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it(`add makes the account, its directories and its key file as docs/privsep.md says, and sshd -t passes${skipped}`, () => {
    for (const n of [alice, bob]) {
      const r = cli('add', n, '--key', `${key(n)}.pub`);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`${n}: added (${fingerprint(`${key(n)}.pub`)})`);
    }
    // The account: its own primary group, the two supplementary groups, no shell, home /, password "*" (no password, not locked).
    const [, , , gid, gecos, homeDir, shell] = must('getent', ['passwd', alice]).trim().split(':');
    expect([nameOfGid(Number(gid)), gecos, homeDir, shell]).toEqual([alice, 'Sluice uploader', '/', '/usr/sbin/nologin']);
    expect(must('id', ['-Gn', alice]).trim().split(/\s+/).sort()).toEqual([alice, g('inbox'), g('uploaders')].sort());
    expect(must('getent', ['shadow', alice]).split(':')[1]).toBe('*');
    // The directories and the key file, cell by cell against the table "Named uploaders".
    const rows = mdTable(path.join(root, 'docs/privsep.md'), 'Named uploaders');
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      const file = rewrite(row.path!).replace(/NAME/g, alice);
      const st = fs.lstatSync(file);
      const want = (cell: string) => rewrite(cell).replace(/^NAME$/, alice);
      expect([nameOfUid(st.uid), nameOfGid(st.gid), (st.mode & 0o7777).toString(8).padStart(4, '0')], file).toEqual([want(row.owner!), want(row.group!), row.mode]);
      expect(st.isSymbolicLink()).toBe(false);
    }
    expect(fs.readFileSync(`${keysDir}/${alice}`, 'utf8')).toBe(`restrict ${fs.readFileSync(`${key(alice)}.pub`, 'utf8').trim()}\n`);
    expect(fs.readdirSync(home(alice)).sort()).toEqual(['inbox', 'results']);
    // sshd accepts the drop-ins with the accounts in place.
    const t = run('/usr/sbin/sshd', ['-t', '-f', path.join(tmp, 'sshd_config')]);
    expect(t.status, t.stderr).toBe(0);
    const listed = JSON.parse(cli('list', '--json').stdout) as { name: string; fingerprint: string; waiting: number; state: string }[];
    expect(listed.map((e) => [e.name, e.fingerprint, e.waiting, e.state])).toEqual([
      [alice, fingerprint(`${key(alice)}.pub`), 0, 'active'],
      [bob, fingerprint(`${key(bob)}.pub`), 0, 'active'],
    ]);
    expect(cli('list').stdout).toMatch(new RegExp(`^${alice}\\s+SHA256:\\S+\\s+0\\s+active$`, 'm'));
  });

  it(`add again with the same key changes nothing (or repairs a mode); with another key it refuses${skipped}`, () => {
    const before = fs.statSync(`${keysDir}/${alice}`);
    const again = cli('add', alice, '--key', `${key(alice)}.pub`);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${alice}: unchanged`);
    const after = fs.statSync(`${keysDir}/${alice}`);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    fs.chmodSync(`${home(alice)}/inbox`, 0o777);
    const repair = cli('add', alice, '--key', `${key(alice)}.pub`);
    expect(repair.stdout).toContain(`${alice}: repaired`);
    expect(fs.statSync(`${home(alice)}/inbox`).mode & 0o7777).toBe(0o2770);
    const other = cli('add', alice, '--key', `${key('other')}.pub`);
    expect(other.status).toBe(1);
    expect(other.stderr).toContain('is an uploader with another key');
    expect(fs.readFileSync(`${keysDir}/${alice}`, 'utf8')).toContain(fs.readFileSync(`${key(alice)}.pub`, 'utf8').trim());
  });

  it(`add refuses bad names, existing users and groups, and anything but one public key line, and makes nothing${skipped}`, () => {
    const pub = `${key('other')}.pub`;
    const cases: [string, string][] = [
      ['root', 'an existing user that is not a Sluice uploader'],
      [g('drop'), 'an existing user that is not a Sluice uploader'],
      [g('inbox'), `a group named ${g('inbox')} exists already`],
      ['sluice-drop', "the station's own accounts"],
      ['Alice', 'not a valid uploader name'],
      ['1abc', 'not a valid uploader name'],
      ['a'.repeat(33), 'not a valid uploader name'],
      ['../x', 'not a valid uploader name'],
    ];
    for (const [n, msg] of cases) {
      const r = cli('add', n, '--key', pub);
      expect(r.status, n).toBe(1);
      expect(r.stderr, n).toContain(msg);
    }
    expect(must('getent', ['passwd', 'root']).split(':').slice(5)).toEqual(['/root', '/bin/bash\n']);
    expect(must('id', ['-Gn', g('drop')])).not.toContain(g('uploaders'));
    const bad = (name: string, text: string) => {
      fs.writeFileSync(path.join(tmp, name), text);
      return path.join(tmp, name);
    };
    const keys: [string, string][] = [
      [bad('two.pub', fs.readFileSync(pub, 'utf8').repeat(2)), 'exactly one public key line, not 2'],
      [key('other'), 'private key'],
      [bad('junk.pub', 'ssh-ed25519 not-base64 x\n'), 'ssh-keygen does not accept it'],
      [bad('empty.pub', ''), 'not 0'],
      [path.join(tmp, 'absent.pub'), 'ENOENT'],
    ];
    for (const [file, msg] of keys) {
      const r = cli('add', 'carol', '--key', file);
      expect(r.status, file).toBe(1);
      expect(r.stderr, file).toContain(msg);
    }
    expect(exists('carol')).toBe(false);
    expect(fs.existsSync(home('carol'))).toBe(false);
    expect(cli('add', 'carol').status).toBe(2); // no --key: a usage error
  });

  it(`add is all or nothing: a key file that cannot be written (a full disk) undoes the account and its directories${skipped}`, () => {
    fs.mkdirSync(full, { mode: 0o755 });
    must('mount', ['-t', 'tmpfs', '-o', 'size=16k,mode=0755', 'tmpfs', full]);
    const filler = run('dd', ['if=/dev/zero', `of=${full}/filler`, 'bs=4k', 'count=64']); // stops at ENOSPC
    expect(filler.stderr).toMatch(/No space left/);
    const r = run(process.execPath, [cliPath, 'uploader', 'add', 'carol', '--key', `${key('other')}.pub`, '--config', config, '--keys', full, '--group', g('uploaders'), '--inbox-group', g('inbox')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ENOSPC.*every step before it undone/);
    expect(exists('carol')).toBe(false);
    expect(groupExists('carol')).toBe(false);
    expect(fs.existsSync(home('carol'))).toBe(false);
    expect(fs.readdirSync(full)).toEqual(['filler']);
  });

  it(`two uploaders upload the same name at once over scp: each file lands whole in its own inbox, 0200, readable by neither${skipped}`, async () => {
    const files = { [alice]: path.join(tmp, 'a', 'report.txt'), [bob]: path.join(tmp, 'b', 'report.txt') };
    const content = (n: string) => Buffer.alloc(4 * 1024 * 1024, n === alice ? 'A' : 'B');
    for (const n of [alice, bob]) {
      fs.mkdirSync(path.dirname(files[n]!));
      fs.writeFileSync(files[n]!, content(n), { mode: 0o644 });
    }
    const [ra, rb] = await Promise.all([alice, bob].map((n) => runAsync('scp', scpArgs(n, [files[n]!]))));
    expect(ra!.status, ra!.stderr + dump()).toBe(0);
    expect(rb!.status, rb!.stderr + dump()).toBe(0);
    for (const n of [alice, bob]) {
      const up = `${home(n)}/inbox/report.txt`;
      expect(fs.readFileSync(up).equals(content(n)), n).toBe(true);
      const st = fs.statSync(up);
      expect([nameOfUid(st.uid), nameOfGid(st.gid), st.mode & 0o7777]).toEqual([n, g('inbox'), 0o200]);
    }
    // sftp put works the same way.
    const put = sftp(alice, [`put ${files[alice]} second.txt`]);
    expect(put.status, put.stderr).toBe(0);
    expect(fs.readFileSync(`${home(alice)}/inbox/second.txt`).equals(content(alice))).toBe(true);
    fs.rmSync(`${home(alice)}/inbox/second.txt`); // as ingress would
  });

  it(`each uploader fetches and lists its own results over sftp, and cannot reach the other's directories at all${skipped}`, () => {
    asEgress(alice, 'report.txt.sluice.json', '{"for":"alice"}\n');
    asEgress(bob, 'report.txt.sluice.json', '{"for":"bob"}\n');
    for (const [n, text] of [[alice, '{"for":"alice"}\n'], [bob, '{"for":"bob"}\n']] as const) {
      const local = path.join(tmp, `got-${n}.json`);
      const r = sftp(n, [`get /results/report.txt.sluice.json ${local}`, 'ls -1 /results', 'ls -1 /']);
      expect(r.status, r.stderr + dump()).toBe(0);
      expect(fs.readFileSync(local, 'utf8')).toBe(text);
      // The chroot holds exactly the uploader's own inbox and results.
      expect(r.stdout).toMatch(/^\/results\/report\.txt\.sluice\.json$/m);
      expect(r.stdout.split('\n').filter((l) => /^\/(inbox|results)$/.test(l)).sort()).toEqual(['/inbox', '/results']);
    }
    // Alice's names for bob's files: none of them exists inside her chroot.
    const other = home(bob);
    for (const cmd of [
      `get ${other}/results/report.txt.sluice.json ${tmp}/x`,
      `get ../../${bob}/results/report.txt.sluice.json ${tmp}/x`,
      `get /../${bob}/inbox/report.txt ${tmp}/x`,
      `ls ${other}`,
      `ls /../${bob}`,
      `put ${tmp}/got-${alice}.json ${other}/inbox/planted`,
      `put ${tmp}/got-${alice}.json /../${bob}/inbox/planted`,
    ]) {
      const r = sftp(alice, [cmd]);
      expect(r.status === 0 && !cmd.startsWith('ls'), cmd).toBe(false);
      expect(r.stdout + r.stderr, cmd).toMatch(/not found|No such file|Permission denied|Couldn't/);
      expect(r.stdout.split('\n').filter((l) => !l.startsWith('sftp>')).join('\n'), cmd).not.toContain('report.txt');
    }
    expect(fs.readdirSync(`${other}/inbox`)).toEqual(['report.txt']);
    expect(fs.existsSync(`${tmp}/x`)).toBe(false);
  });

  it(`an uploader cannot read its uploads back, change, link, remove or rename into results, nor get a shell${skipped}`, () => {
    fs.writeFileSync(path.join(tmp, 'probe.txt'), 'probe\n');
    for (const cmd of [
      `get /inbox/report.txt ${tmp}/readback`,
      'chmod 644 /inbox/report.txt',
      'symlink /results/report.txt.sluice.json /inbox/link',
      'ln /inbox/report.txt /inbox/hard',
      'rm /inbox/report.txt',
      'rm /results/report.txt.sluice.json',
      'mkdir /inbox/dir',
      'rename /inbox/report.txt /results/moved',
      `put ${tmp}/probe.txt /results/planted.sluice.json`,
      `put ${tmp}/probe.txt /planted`,
    ]) {
      const r = sftp(alice, [cmd]);
      expect(r.status, cmd).not.toBe(0);
      expect(r.stderr, cmd).toMatch(/Permission denied|does not support|not found|Couldn't/);
    }
    expect(fs.existsSync(`${tmp}/readback`)).toBe(false);
    expect(fs.readdirSync(`${home(alice)}/inbox`)).toEqual(['report.txt']);
    expect(fs.readdirSync(`${home(alice)}/results`)).toEqual(['report.txt.sluice.json']);
    expect(fs.readdirSync(home(alice)).sort()).toEqual(['inbox', 'results']);
    const ssh = run('ssh', ['-p', String(port), ...sshOpts(alice), `${alice}@127.0.0.1`, 'id']);
    expect(ssh.status).not.toBe(0);
    expect(ssh.stdout).not.toMatch(/uid=/);
    // Another key than the uploader's own is refused.
    const wrong = run('sftp', ['-P', String(port), ...sshOpts('other'), '-b', '-', `${alice}@127.0.0.1`], { input: 'ls\n' });
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/Permission denied/);
  });

  it(`remove stops new logins at once and keeps the uploader retiring until ingress has taken every upload; then it goes entirely${skipped}`, async () => {
    const upload = `${home(alice)}/inbox/report.txt`;
    const bytes = fs.readFileSync(upload);
    const r1 = cli('remove', alice);
    expect(r1.status, r1.stderr).toBe(3);
    expect(r1.stdout).toContain(`${alice}: retiring`);
    expect(r1.stdout).toContain('1 file(s) waiting');
    expect(fs.existsSync(`${keysDir}/${alice}`)).toBe(false);
    expect(must('getent', ['shadow', alice]).split(':')[1]).toMatch(/^!/);
    expect(fs.readFileSync(upload).equals(bytes)).toBe(true);
    const listed = JSON.parse(cli('list', '--json').stdout) as { name: string; fingerprint: string | null; waiting: number; state: string }[];
    expect(listed.find((e) => e.name === alice)).toMatchObject({ fingerprint: null, waiting: 1, state: 'retiring' });
    const login = sftp(alice, ['ls /']);
    expect(login.status).not.toBe(0);
    expect(login.stderr).toMatch(/Permission denied/);

    // Ingress takes the upload; an abandoned partial upload is left, which only --purge deletes.
    fs.rmSync(upload);
    fs.writeFileSync(`${home(alice)}/inbox/half.pdf.part`, 'half');
    const r2 = cli('remove', alice);
    expect(r2.status).toBe(3);
    expect(r2.stdout).toContain('--purge deletes them');
    expect(exists(alice)).toBe(true);
    await sessionsEnded(alice);
    const r3 = cli('remove', alice, '--purge');
    expect(r3.status, r3.stderr).toBe(0);
    expect(r3.stdout).toContain(`deleted partial upload ${home(alice)}/inbox/half.pdf.part`);
    expect(r3.stdout).toContain(`${alice}: removed`);
    expect(exists(alice)).toBe(false);
    expect(groupExists(alice)).toBe(false);
    expect(fs.existsSync(home(alice))).toBe(false);
    expect(JSON.parse(cli('list', '--json').stdout).map((e: { name: string }) => e.name)).toEqual([bob]);

    // Remove touches nothing that is not an uploader.
    const root_ = cli('remove', 'root');
    expect(root_.status).toBe(1);
    expect(root_.stderr).toContain('not a Sluice uploader');
    expect(must('getent', ['shadow', 'root']).split(':')[1]).not.toMatch(/^!/);
    expect(cli('remove', 'nosuchuploader').stderr).toContain('no such uploader');
  });

  it(`a retiring uploader given a new key is active again; remove with an empty inbox finishes at once${skipped}`, async () => {
    expect(cli('remove', bob).status).toBe(3); // bob's report.txt is waiting
    const again = cli('add', bob, '--key', `${key(`${bob}-new`)}.pub`);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${bob}: active again`);
    expect(must('getent', ['shadow', bob]).split(':')[1]).toBe('*');
    const r = run('sftp', ['-P', String(port), ...sshOpts(`${bob}-new`), '-b', '-', `${bob}@127.0.0.1`], { input: 'ls -1 /results\n' });
    expect(r.status, r.stderr + dump()).toBe(0);
    expect(r.stdout).toContain('report.txt.sluice.json');
    expect(sftp(bob, ['ls /']).status).not.toBe(0); // the old key no longer works
    fs.rmSync(`${home(bob)}/inbox/report.txt`); // as ingress would
    await sessionsEnded(bob);
    const gone = cli('remove', bob);
    expect(gone.status, gone.stdout + gone.stderr).toBe(0);
    expect(exists(bob)).toBe(false);
    expect(fs.readdirSync(`${base}/uploaders`)).toEqual([]);
    expect(fs.readdirSync(keysDir)).toEqual([]);
  });
});
