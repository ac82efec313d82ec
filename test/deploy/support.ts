/*
 * NAME
 *   support - what the deployment tests in test/deploy/ share: the files in
 *   deploy/ parsed, the privilege tables of docs/privsep.md, `make install`
 *   into a scratch DESTDIR, and daemons run as child processes
 *
 * DESCRIPTION
 *   Every test that may be skipped carries the reason in its title through
 *   skipReason (" [skipped: why]"), so a listing of skipped tests says why.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const deploy = path.join(root, 'deploy');
export const isRoot = process.getuid?.() === 0;
export const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
export const hasAnalyze = has('systemd-analyze');
/** skipReason - " [skipped: reason]" when cond holds, else '': appended to the title of every test that may be skipped. */
export const skipReason = (cond: boolean, reason: string) => (cond ? ` [skipped: ${reason}]` : '');

export const SERVICES = ['sluice-ingress.service', 'sluice-transit.service', 'sluice-egress.service'];
export const SOCKETS = ['sluice-transit.socket', 'sluice-egress.socket'];
export const UNITS = [...SERVICES, ...SOCKETS, 'sluice.target'];

// ---------------------------------------------------------------- parsing

export type Unit = Record<string, Record<string, string[]>>;

/** parseUnit - an INI unit file: section -> key -> every value given (comments and blank lines dropped). */
export function parseUnit(text: string): Unit {
  const out: Unit = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    ((out[section] ??= {})[key] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

export const readUnit = (name: string) => parseUnit(fs.readFileSync(path.join(deploy, name), 'utf8'));
/** words - every whitespace-separated word of every value of a key; an empty assignment yields none. */
export const words = (u: Unit, section: string, key: string) => (u[section]?.[key] ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));
export const one = (u: Unit, section: string, key: string) => {
  const v = u[section]?.[key];
  expect(v, `${section}.${key}`).toHaveLength(1);
  return v![0]!;
};

/** mdTable - the first table under a "## heading" of a markdown file, as rows of header -> cell (backticks removed). */
export function mdTable(file: string, heading: string): Record<string, string>[] {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.indexOf(`\n## ${heading}\n`);
  expect(start, `section "${heading}" in ${file}`).toBeGreaterThan(-1);
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(first)) {
    if (!l.startsWith('|')) break;
    rows.push(l.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, '')));
  }
  const [header, , ...body] = rows;
  return body.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
}
/** list - a table cell as a set of words; "—" is the empty set. */
export const list = (cell: string) => (cell === '—' ? [] : cell.split(/[\s,]+/).filter(Boolean)).sort();

export interface TmpfilesLine { type: string; path: string; mode: string; user: string; group: string }
export function tmpfilesLines(text: string): TmpfilesLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const [type, p, mode, user, group] = l.trim().split(/\s+/);
      return { type: type!, path: p!, mode: mode!, user: user!, group: group! };
    });
}

export interface Sysusers { users: Set<string>; groups: Set<string>; members: Map<string, Set<string>> }
export function sysusers(text: string): Sysusers {
  const s: Sysusers = { users: new Set(), groups: new Set(), members: new Map() };
  for (const l of text.split('\n')) {
    const m = /^([ugm])\s+(\S+)\s+(\S+)/.exec(l);
    if (!m) continue;
    if (m[1] === 'u') s.users.add(m[2]!);
    if (m[1] === 'g') s.groups.add(m[2]!);
    if (m[1] === 'm') {
      if (!s.members.has(m[3]!)) s.members.set(m[3]!, new Set());
      s.members.get(m[3]!)!.add(m[2]!);
    }
  }
  return s;
}

// ---------------------------------------------------------------- make install

/**
 * installOnce - `make install DESTDIR=<fresh dir>` once per test file (every
 * test of the file that needs an installed tree shares it); removeInstall,
 * in the file's afterAll, removes it.
 */
let installed: string | undefined;
export function installOnce(): string {
  if (installed) return installed;
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-install-'));
  fs.chmodSync(dest, 0o755); // the stages of the topology tests run from it under their own users
  const r = spawnSync('make', ['-s', 'install', `DESTDIR=${dest}`], { cwd: root, encoding: 'utf8' });
  expect(r.status, r.stderr + r.stdout).toBe(0);
  installed = dest;
  return dest;
}
export function removeInstall(): void {
  if (installed) fs.rmSync(installed, { recursive: true, force: true });
  installed = undefined;
}

// ---------------------------------------------------------------- processes

export type Line = Record<string, unknown> & { event?: string };

export class Daemon {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  stderr = '';
  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(l) as Line);
        } catch {
          this.lines.push({ event: 'unparsed', text: l });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }
  events(e: string): Line[] {
    return this.lines.filter((l) => l.event === e);
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

export async function waitFor(pred: () => boolean, what: string, explain: () => string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${explain()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
}
export function must(cmd: string, args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/**
 * The launcher does what systemd does for a socket unit and the service it
 * activates: as root, socket(AF_UNIX, SOCK_SEQPACKET), bind, chown to
 * SocketUser:SocketGroup, chmod SocketMode, listen; the socket becomes
 * descriptor 3; it sets the unit's UMask=, LISTEN_FDS=1 and LISTEN_PID =
 * its own pid, and execs setpriv, which drops to the stage's user and
 * groups with no capabilities and execs the daemon (each exec keeps the
 * pid, descriptor 3 and the umask). topology.test.ts and uploaders-e2e.test.ts
 * start the stages with it.
 */
export const SOCKET_LAUNCHER = String.raw`
import grp, os, pwd, socket, sys
path, sock_user, sock_group, mode, stage_user, umask = sys.argv[1:7]
argv = sys.argv[7:]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
os.chown(path, pwd.getpwnam(sock_user).pw_uid, grp.getgrnam(sock_group).gr_gid)
os.chmod(path, int(mode, 8))
s.listen(128)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3, inheritable=True)
    s.close()
else:
    os.set_inheritable(3, True)
os.umask(int(umask, 8))
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), WATCHDOG_PID=str(os.getpid()))
# setpriv drops to the stage's user, its own group and its supplementary groups,
# with no capabilities (CapabilityBoundingSet= is empty), and execs the daemon:
# the pid, descriptor 3 and the umask stay.
setpriv = ["/usr/bin/setpriv", "--reuid=" + stage_user, "--regid=" + stage_user, "--init-groups",
           "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
os.execve(setpriv[0], setpriv + argv, env)
`;

/** freePort - a TCP port on 127.0.0.1 that nothing listens on now (for a test's sshd). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * startSshd - a real sshd on a free port of 127.0.0.1 with the given drop-ins (files in `tmp`, included
 * first, as Debian's sshd_config includes sshd_config.d) and the host key `tmp`/hostkey; checked with
 * `sshd -t`, resolved once it listens.
 */
export async function startSshd(
  tmp: string,
  dropIns: string[],
  dump: () => string,
  env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
): Promise<{ sshd: Daemon; port: number }> {
  const port = await freePort();
  const config = path.join(tmp, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      ...dropIns.map((f) => `Include ${path.join(tmp, f)}`),
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(tmp, 'hostkey')}`,
      'PidFile none',
      'UsePAM no',
      'StrictModes yes',
      'LogLevel VERBOSE',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
  must('/usr/sbin/sshd', ['-t', '-f', config]);
  const sshd = new Daemon('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', config], env);
  try {
    await waitFor(() => sshd.stderr.includes(`Server listening on 127.0.0.1 port ${port}`), 'sshd listening', dump);
  } catch (err) {
    await sshd.stop(); // the caller never got it: stop it here
    throw err;
  }
  return { sshd, port };
}

/**
 * bootedSystemd - the pid of the systemd that `nspawn` (systemd-nspawn -b) booted, once the
 * container has finished booting (`systemctl is-system-running` in it says running or degraded).
 */
export async function bootedSystemd(nspawn: Daemon): Promise<number> {
  const children = () => {
    try {
      return fs.readFileSync(`/proc/${nspawn.child.pid}/task/${nspawn.child.pid}/children`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  // The container's PID 1 is the child of nspawn once it has become systemd.
  const comm = (pid: string) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const systemd = () => children().split(/\s+/).find((c) => comm(c) === 'systemd');
  await waitFor(() => systemd() !== undefined, 'the container to start systemd', () => nspawn.stderr);
  const pid = Number(systemd());
  let now = '';
  const state = () => run('nsenter', ['-t', String(pid), '-a', 'systemctl', 'is-system-running']).stdout.trim();
  await waitFor(() => ['running', 'degraded'].includes((now = state())), 'the container to finish booting', () => `state ${now}\n${nspawn.stderr}`, 90_000);
  return pid;
}

/**
 * powerOff - stop a container `nspawn` booted: `systemctl poweroff` in it when its systemd (`pid1`)
 * is up, SIGTERM to nspawn after 20 s and SIGKILL after 30 s if it is still there.
 */
export async function powerOff(nspawn: Daemon | undefined, pid1: number | undefined): Promise<void> {
  if (!nspawn || nspawn.child.exitCode !== null) return;
  const exited = new Promise((r) => nspawn.child.once('exit', r));
  if (pid1) run('nsenter', ['-t', String(pid1), '-a', 'systemctl', '--no-block', 'poweroff']);
  const t1 = setTimeout(() => nspawn.child.kill('SIGTERM'), 20_000);
  const t2 = setTimeout(() => nspawn.child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(t1);
  clearTimeout(t2);
}

/**
 * renamer - rewrite the production names in a deploy/ file to this run's: the egress credentials
 * directory to `cred`, /var/lib/sluice, /run/sluice and /etc/sluice to `base`, `runDir` and `etc`,
 * and each sluice-NAME user or group of `names` to PREFIX-NAME.
 */
export function renamer(o: { prefix: string; cred: string; base: string; runDir: string; etc: string; names: string[] }): (text: string) => string {
  const accounts = new RegExp(`\\bsluice-(${o.names.join('|')})\\b`, 'g');
  return (text) =>
    text
      .replace(/\/run\/credentials\/sluice-egress\.service/g, o.cred)
      .replace(/\/var\/lib\/sluice(?=[/\s"]|$)/gm, o.base)
      .replace(/\/run\/sluice(?=[/\s"]|$)/gm, o.runDir)
      .replace(/\/etc\/sluice(?=[/\s"]|$)/gm, o.etc)
      .replace(accounts, `${o.prefix}-$1`);
}
