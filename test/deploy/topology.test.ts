/*
 * NAME
 *   topology.test - the whole station on the real topology, as root:
 *   system users, socket activation, sshd and scp
 *
 * DESCRIPTION
 *   Users from the sysusers file (systemd-sysusers), directories from the
 *   tmpfiles file (systemd-tmpfiles --create), each daemon as its own user,
 *   the listening sockets made the way the socket units make them (root
 *   binds, chowns, chmods and listens, then hands descriptor 3 to the stage
 *   with LISTEN_FDS/LISTEN_PID, as systemd does), notifications on a
 *   NOTIFY_SOCKET, a real sshd on 127.0.0.1 with the drop-in, and uploads
 *   with the real scp client as the drop account.
 *
 *   The files in deploy/ name the production users and paths. This test
 *   applies them with every name given a unique prefix (users
 *   "slXXXX-drop" ..., paths /var/lib/slXXXX, /run/slXXXX, /etc/slXXXX), so
 *   it never touches a real installation or a concurrent run, and it
 *   removes all of it afterwards. nspawn.test.ts lets systemd itself do
 *   what this test imitates.
 *
 * SECURITY
 *   Needs root (users, chroot, setpriv, sshd) and is skipped with the
 *   reason in every title otherwise; CI runs as root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { Daemon, SOCKET_LAUNCHER, deploy, has, startSshd, installOnce, isRoot, must, one, parseUnit, readUnit, removeInstall, run, skipReason, waitFor, words, renamer } from './support.js';

const topologyTools = ['systemd-sysusers', 'systemd-tmpfiles', 'setpriv', 'useradd', 'usermod', 'userdel', 'groupdel', '/usr/sbin/sshd', 'scp', 'sftp', 'ssh-keygen', '/usr/bin/python3'];
const missingTools = topologyTools.filter((t) => !has(t));
const topologyWhy = !isRoot
  ? 'needs root (users, chroot, setpriv, sshd); CI runs as root'
  : missingTools.length > 0
    ? `missing ${missingTools.join(', ')} (Debian: systemd, util-linux, passwd, openssh-server, openssh-client, python3)`
    : '';
const skipped = skipReason(topologyWhy !== '', topologyWhy);

/** CONNECT - connect to a SEQPACKET socket and say what happened: "connected" or the errno name. */
const CONNECT = String.raw`
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(sys.argv[1])
    print("connected", flush=True)
    s.recv(1)   # transit closes a refused peer at once: recv returns b""
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
`;

afterAll(removeInstall);

describe.skipIf(topologyWhy !== '')(`the real topology: system users, socket activation, sshd and scp${skipped}`, () => {
  const p = `sl${randomBytes(3).toString('hex')}`;
  const base = `/var/lib/${p}`;
  const runDir = `/run/${p}`;
  const etc = `/etc/${p}`;
  const cred = `/run/${p}-credentials`;
  const names = ['drop', 'ingress', 'transit', 'egress', 'inbox', 'out', 'uploaders'].map((n) => `${p}-${n}`);
  const user = (n: string) => `${p}-${n}`;
  /** rewrite - the production names in deploy/ files, made unique to this run. */
  const rewrite = renamer({ prefix: p, cred, base, runDir, etc, names: ['drop', 'ingress', 'transit', 'egress', 'inbox', 'out', 'uploaders'] });

  let tmp = '';
  let lib = '';
  let cli = '';
  const daemons: Daemon[] = [];
  let sshd: Daemon | undefined;
  let port = 0;
  const notify = new Map<string, string[]>();
  const notifySockets: { close(): void }[] = [];
  const uid = (name: string) => Number(must('id', ['-u', name]).trim());
  const stage = (n: string) => daemons.find((d) => d.name === n)!;
  const dump = () => daemons.map((d) => `--- ${d.name}\n${d.lines.slice(-8).map((l) => JSON.stringify(l)).join('\n')}\n${d.stderr}`).join('\n') + (sshd ? `\n--- sshd\n${sshd.stderr.slice(-2000)}` : '');

  /** listenNotify - a NOTIFY_SOCKET for one stage, as systemd provides; records every datagram. */
  function listenNotify(name: string): string {
    const require = createRequire(import.meta.url);
    const { DgramSocket } = require('node-unix-socket') as {
      DgramSocket: new () => { bind(p: string): void; on(e: 'data', f: (b: Buffer) => void): void; close(): void };
    };
    const sockPath = path.join(runDir, `notify-${name}.sock`);
    const s = new DgramSocket();
    s.bind(sockPath);
    fs.chmodSync(sockPath, 0o666);
    notify.set(name, []);
    s.on('data', (b) => notify.get(name)!.push(...b.toString().split('\n').filter(Boolean)));
    notifySockets.push(s);
    return sockPath;
  }

  function scp(files: string[]) {
    return run('scp', ['-q', '-P', String(port), ...sshOpts(), ...files, `${user('drop')}@127.0.0.1:`]);
  }
  const sshOpts = () => ['-i', path.join(tmp, 'uploader'), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-topology-'));
    const d = installOnce();
    lib = path.join(d, 'usr/local/lib/sluice');
    cli = path.join(lib, 'packages/cli/dist/main.js');

    // Users and directories, from the shipped files.
    fs.writeFileSync(path.join(tmp, 'sysusers.conf'), rewrite(fs.readFileSync(path.join(deploy, 'sysusers.d/sluice.conf'), 'utf8')));
    must('systemd-sysusers', [path.join(tmp, 'sysusers.conf')]);
    fs.writeFileSync(path.join(tmp, 'tmpfiles.conf'), rewrite(fs.readFileSync(path.join(deploy, 'tmpfiles.d/sluice.conf'), 'utf8')));
    must('systemd-tmpfiles', ['--create', path.join(tmp, 'tmpfiles.conf')]);
    // sysusers makes the account locked ("!*"); sshd with UsePAM no refuses locked accounts.
    must('usermod', ['-p', '*', user('drop')]);

    // The signing key, and the copy LoadCredential= would make: 0500 directory, 0400 file, owned by egress.
    must(process.execPath, [cli, 'keygen', '--out', `${etc}/keys`, '--name', 'signing']);
    fs.mkdirSync(cred, { mode: 0o700 });
    fs.copyFileSync(`${etc}/keys/signing.key`, `${cred}/signing.key`);
    const egressUid = uid(user('egress'));
    fs.chownSync(`${cred}/signing.key`, egressUid, 0);
    fs.chmodSync(`${cred}/signing.key`, 0o400);
    fs.chownSync(cred, egressUid, 0);
    fs.chmodSync(cred, 0o500);

    fs.writeFileSync(`${etc}/sluice.json`, rewrite(fs.readFileSync(path.join(deploy, 'sluice.json'), 'utf8')), { mode: 0o644 });
    const config = `${etc}/sluice.json`;
    const script = (s: string) => path.join(lib, `packages/${s}/dist/main.js`);
    const envFor = (s: string) => ({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NOTIFY_SOCKET: listenNotify(s), WATCHDOG_USEC: '2000000' });
    fs.writeFileSync(path.join(tmp, 'launcher.py'), SOCKET_LAUNCHER);
    fs.writeFileSync(path.join(tmp, 'connect.py'), CONNECT);
    fs.chmodSync(tmp, 0o755);

    // Egress, then transit, then ingress: the order of the units' After= lines.
    const sock = (unit: string) => parseUnit(rewrite(fs.readFileSync(path.join(deploy, unit), 'utf8'))).Socket!;
    for (const s of ['egress', 'transit'] as const) {
      const u = sock(`sluice-${s}.socket`);
      const umask = one(readUnit(`sluice-${s}.service`), 'Service', 'UMask');
      const launcherArgs = [u.ListenSequentialPacket![0]!, u.SocketUser![0]!, u.SocketGroup![0]!, u.SocketMode![0]!, user(s), umask];
      const dmn = new Daemon(s, '/usr/bin/python3', [path.join(tmp, 'launcher.py'), ...launcherArgs, process.execPath, script(s), '--config', config], envFor(s));
      daemons.push(dmn);
      await waitFor(() => dmn.events('started').length > 0, `${s} started`, dump);
    }
    // Ingress creates no socket; it gets its two capabilities as ambient ones, as AmbientCapabilities= gives them.
    const ingressUnit = parseUnit(rewrite(fs.readFileSync(path.join(deploy, 'sluice-ingress.service'), 'utf8')));
    const caps = words(ingressUnit, 'Service', 'AmbientCapabilities').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
    const ingressUmask = one(ingressUnit, 'Service', 'UMask');
    const ingress = new Daemon(
      'ingress',
      '/bin/sh',
      ['-c', `umask ${ingressUmask} && exec setpriv "$@"`, 'setpriv', `--reuid=${user('ingress')}`, `--regid=${user('ingress')}`, '--init-groups', `--inh-caps=-all,${caps}`, `--ambient-caps=-all,${caps}`, `--bounding-set=-all,${caps}`, '--no-new-privs', process.execPath, script('ingress'), '--config', config],
      envFor('ingress'),
    );
    daemons.push(ingress);
    await waitFor(() => ingress.events('started').length > 0 && ingress.events('downstream-connected').length > 0, 'ingress started and connected', dump);

    // sshd on 127.0.0.1 with the drop-in, as Debian's sshd_config includes it (first).
    must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(tmp, 'hostkey')]);
    must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(tmp, 'uploader')]);
    fs.writeFileSync(`${etc}/drop_authorized_keys`, fs.readFileSync(path.join(tmp, 'uploader.pub')), { mode: 0o644 });
    fs.writeFileSync(path.join(tmp, 'sluice-drop.conf'), rewrite(fs.readFileSync(path.join(deploy, 'sshd_config.d/sluice-drop.conf'), 'utf8')));
    ({ sshd, port } = await startSshd(tmp, ['sluice-drop.conf'], dump));
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([...daemons, ...(sshd ? [sshd] : [])].map((d) => d.stop()));
    for (const s of notifySockets) s.close();
    for (const u of ['drop', 'ingress', 'transit', 'egress']) run('userdel', [user(u)]);
    for (const n of names) run('groupdel', [n]); // the users' own groups are gone with them; the rest here
    for (const dir of [base, runDir, etc, cred, tmp]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it(`the listening stages adopted descriptor 3 and told "systemd" READY=1${skipped}`, () => {
    for (const s of ['transit', 'egress']) expect(stage(s).events('listening')[0]).toMatchObject({ socket: 'fd 3' });
    for (const s of ['ingress', 'transit', 'egress']) expect(notify.get(s), s).toContain('READY=1');
  });

  it(`ingress accepted transit's socket: the peer it reads is the transit user, not the root that listened first${skipped}`, () => {
    const connected = stage('ingress').events('downstream-connected')[0] as { peer: { uid: number } };
    expect(connected.peer.uid).toBe(uid(user('transit')));
    expect(stage('ingress').events('peer-refused')).toEqual([]);
    const toEgress = stage('transit').events('downstream-connected')[0] as { peer: { uid: number } };
    expect(toEgress.peer.uid).toBe(uid(user('egress')));
    // Everything runs as its own user.
    for (const s of ['ingress', 'transit', 'egress']) {
      const status = fs.readFileSync(`/proc/${stage(s).child.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)![1], s).toBe(String(uid(user(s))));
    }
    const ingressStatus = fs.readFileSync(`/proc/${stage('ingress').child.pid}/status`, 'utf8');
    expect(/^CapEff:\s+(\S+)/m.exec(ingressStatus)![1]).toBe('0000000010000004'); // CAP_DAC_READ_SEARCH | CAP_LEASE
    for (const s of ['transit', 'egress']) {
      const st = fs.readFileSync(`/proc/${stage(s).child.pid}/status`, 'utf8');
      expect(/^CapEff:\s+(\S+)/m.exec(st)![1], s).toBe('0000000000000000');
      expect(/^CapBnd:\s+(\S+)/m.exec(st)![1], s).toBe('0000000000000000'); // CapabilityBoundingSet= (empty)
      expect(/^NoNewPrivs:\s+(\d)/m.exec(st)![1], s).toBe('1');
    }
  });

  it(`a clean 0600 upload by scp arrives in the outbox with a report that \`sluice verify\` accepts${skipped}`, async () => {
    const file = path.join(tmp, 'clean report.txt');
    fs.writeFileSync(file, 'quarterly numbers: 1, 2, 3\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600); // unreadable to any other user once uploaded: ingress needs CAP_DAC_READ_SEARCH
    const r = scp([file]);
    expect(r.status, r.stderr).toBe(0);
    const out = path.join(base, 'outbox', 'clean report.txt');
    await waitFor(() => fs.existsSync(`${out}.sluice.json`), 'the report', dump);
    const v = run(process.execPath, [cli, 'verify', out, `${out}.sluice.json`, '--pub', `${etc}/keys/signing.pub`]);
    expect(v.stdout + v.stderr).toMatch(/^ok: accepted/);
    expect(v.status).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe('quarterly numbers: 1, 2, 3\n');
    // Consumers (group sluice-out) can read it; nobody else can.
    const st = fs.statSync(out);
    expect(st.mode & 0o7777).toBe(0o640);
    expect(st.gid).toBe(Number(must('getent', ['group', user('out')]).split(':')[2]));
    expect(fs.readdirSync(path.join(base, 'drop/inbox'))).toEqual([]);
  });

  it(`a disallowed file is rejected: only a signed rejection report leaves${skipped}`, async () => {
    const file = path.join(tmp, 'holiday.png');
    fs.copyFileSync('/usr/bin/true', file); // an ELF program under an image name
    const r = scp([file]);
    expect(r.status, r.stderr).toBe(0);
    const report = path.join(base, 'rejected', 'holiday.png.sluice.json');
    await waitFor(() => fs.existsSync(report), 'the rejection report', dump);
    const body = JSON.parse(fs.readFileSync(report, 'utf8')) as { verdict: string; reason: string };
    expect(body.verdict).toBe('rejected');
    expect(body.reason).not.toBe('');
    expect(fs.existsSync(path.join(base, 'outbox', 'holiday.png'))).toBe(false);
    const v = run(process.execPath, [cli, 'verify', '--report-only', report, '--pub', `${etc}/keys/signing.pub`]);
    expect(v.status, v.stdout + v.stderr).toBe(0);
  });

  it(`the drop account gets no shell and no request the drop-in refuses${skipped}`, () => {
    const ssh = run('ssh', ['-p', String(port), ...sshOpts(), `${user('drop')}@127.0.0.1`, 'id']);
    expect(ssh.status).not.toBe(0);
    expect(ssh.stdout).not.toMatch(/uid=/);
    fs.writeFileSync(path.join(tmp, 'probe.txt'), 'probe\n');
    expect(scp([path.join(tmp, 'probe.txt')]).status).toBe(0);
    // probe.txt may already be picked up; every request below is refused before it looks at the name.
    for (const cmd of ['chmod 4755 probe.txt', 'symlink /etc/passwd link', 'ln probe.txt hard', 'rm probe.txt', 'mkdir dir', 'get probe.txt /dev/null', 'ls']) {
      const r = run('sftp', ['-P', String(port), ...sshOpts(), '-b', '-', `${user('drop')}@127.0.0.1`], { input: `${cmd}\n` });
      if (cmd !== 'ls') expect(r.status, cmd).not.toBe(0); // sftp's ls reports a refused readdir but does not abort the batch
      expect(r.stderr, cmd).toMatch(/Permission denied|not found|does not support/); // a denied extension is not even advertised
    }
  });

  it(`a process of another user is refused at transit's socket: by the file mode, and by transit's peer check${skipped}`, async () => {
    const connectAs = (groups: string[]) =>
      run('setpriv', [`--reuid=${user('drop')}`, `--regid=${user('drop')}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', '/usr/bin/python3', path.join(tmp, 'connect.py'), path.join(runDir, 'transit.sock')]);
    // The drop account is not in the socket's group: the kernel refuses the connect.
    expect(connectAs([]).stdout.trim()).toBe('EACCES');
    // Even with the socket's group (a misconfigured mode would give that much), transit closes it: peer-refused.
    const before = stage('transit').events('peer-refused').length;
    expect(connectAs([user('ingress')]).stdout.trim()).toBe('connected');
    await waitFor(() => stage('transit').events('peer-refused').length > before, 'peer-refused in transit log', dump);
    const refused = stage('transit').events('peer-refused').at(-1) as { peer: { uid: number } };
    expect(refused.peer.uid).toBe(uid(user('drop')));
  });

  it(`every stage fed the watchdog${skipped}`, async () => {
    // WATCHDOG_USEC=2 s: a ping every second.
    await waitFor(() => ['ingress', 'transit', 'egress'].every((s) => notify.get(s)!.includes('WATCHDOG=1')), 'WATCHDOG=1 from every stage', dump, 10_000);
  });
});
