/*
 * NAME
 *   uploader - `sluice uploader add|remove|list`: the named uploaders'
 *   accounts, directories and keys
 *
 * SYNOPSIS
 *   sluice uploader add NAME --key PUBKEY_FILE [OPTIONS]
 *   sluice uploader remove NAME [--purge] [OPTIONS]
 *   sluice uploader list [--json] [OPTIONS]
 *
 *   OPTIONS (a station whose names differ from the defaults, and tests):
 *     --config FILE       /etc/sluice/sluice.json: uploaders.inbox and
 *                         uploaders.results (the directory templates),
 *                         transit.egressUser (the results' owner)
 *     --keys DIR          /etc/sluice/uploaders/keys (sshd's AuthorizedKeysFile)
 *     --group GROUP       sluice-uploaders (sshd's Match Group)
 *     --inbox-group GROUP sluice-inbox (the group ingress reads inboxes by)
 *
 * DESCRIPTION
 *   add      makes the account NAME (system user, its own primary group,
 *            supplementary groups GROUP and INBOX-GROUP, shell
 *            /usr/sbin/nologin, home /, password field "*": no password,
 *            not locked), its chroot BASE/NAME (root 0755), BASE/NAME/inbox
 *            (root:INBOX-GROUP 2770), BASE/NAME/results (egress:NAME 2750)
 *            and its key file KEYS/NAME (root 0644, "restrict" added to
 *            the key's options). Everything or nothing: a step that fails
 *            undoes the ones before it. Run again with the same key, it
 *            repairs owners and modes and changes nothing else; with
 *            another key it refuses. On a retiring uploader (see remove) it
 *            takes the key given and opens the account again.
 *   remove   at once: deletes the key file, locks and expires the account
 *            (no new login, whatever sshd's UsePAM). Then, only if no
 *            session of the account is running and its inbox holds nothing
 *            ingress would pick up: deletes the account, its group, its
 *            inbox and its results (copies of reports whose originals stay
 *            in outbox/ and rejected/). Otherwise the uploader is
 *            "retiring": exit 3, and `remove` again finishes it once
 *            ingress has emptied the inbox. Files ingress never picks up
 *            (dotfiles, *.part, *.filepart, *.tmp: abandoned partial
 *            uploads) keep it retiring unless --purge, which deletes them.
 *            An uploaded file is never deleted by this command.
 *   list     one line per uploader (members of GROUP, and directories in
 *            BASE named like uploaders): name, key fingerprint, files
 *            waiting in its inbox (+ partial ones), state: active,
 *            retiring, incomplete (what is missing or wrong), orphaned (a
 *            directory without an account).
 *
 *   BASE is the directory above "{name}" in uploaders.inbox; both
 *   templates must be BASE/{name}/DIR, because sshd chroots an uploader to
 *   BASE/NAME (deploy/sshd_config.d/sluice-uploaders.conf).
 *
 * SECURITY
 *   Root only. NAME must match ^[a-z_][a-z0-9_-]{0,31}$, not start with
 *   "sluice" (the station's own accounts), and not be an existing user or
 *   group unless it is already an uploader. BASE, the keys directory and
 *   every directory above them must be root's and not group- or
 *   world-writable (sshd's ChrootDirectory and StrictModes rules); a
 *   directory this command sets up is checked with lstat, never followed
 *   if it is a symbolic link.
 *
 * DIAGNOSTICS
 *   Exit 0 done; 1 refused or failed, with a message naming the cause (and
 *   what was undone); 2 usage; 3 remove left the uploader retiring.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A valid uploader name: a portable system user name (useradd's own rule, tightened to lower case). */
export const UPLOADER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
/** MAX_KEY_FILE_BYTES - a key file larger than this is refused unread (an RSA 16384-bit key line is ~2.8 KB). */
export const MAX_KEY_FILE_BYTES = 16 * 1024;
/**
 * IGNORED - names ingress never picks up: its own rule (isIgnored in
 * packages/ingress/src/pickup.ts; docs/operations.md, "Interrupted
 * uploads"), except ".sluice-taken-*", where ingress parks an upload it is
 * still handing on: that one is waiting, not abandoned.
 */
const IGNORED = (n: string) => !n.startsWith('.sluice-taken-') && (n.startsWith('.') || /\.(part|filepart|tmp)$/.test(n));

const DEFAULTS = {
  config: '/etc/sluice/sluice.json',
  keys: '/etc/sluice/uploaders/keys',
  group: 'sluice-uploaders',
  inboxGroup: 'sluice-inbox',
  inboxTemplate: '/var/lib/sluice/uploaders/{name}/inbox',
  resultsTemplate: '/var/lib/sluice/uploaders/{name}/results',
  egressUser: 'sluice-egress',
};

const USAGE = `usage:
  sluice uploader add NAME --key PUBKEY_FILE [OPTIONS]
  sluice uploader remove NAME [--purge] [OPTIONS]
  sluice uploader list [--json] [OPTIONS]
OPTIONS: --config FILE  --keys DIR  --group GROUP  --inbox-group GROUP`;

/** Refusal - an expected refusal or failure: printed as one message, exit 1. */
export class Refusal extends Error {}
class UsageError extends Error {}

// ---------------------------------------------------------------- pure checks

/** nameProblem - why NAME cannot be an uploader's name, or null. */
export function nameProblem(name: string): string | null {
  if (!UPLOADER_NAME.test(name)) return `${JSON.stringify(name)} is not a valid uploader name (^[a-z_][a-z0-9_-]{0,31}$)`;
  if (name.startsWith('sluice')) return `${name}: names starting with "sluice" belong to the station's own accounts`;
  return null;
}

/**
 * keyLine - the line to store for a public key file's text: exactly one
 * line (a trailing newline allowed), no NUL, not a private key, with
 * "restrict" put first among its options. ssh-keygen still has to accept it
 * (checkKeyLine).
 */
export function keyLine(text: string): string {
  if (text.includes('\0')) throw new Refusal('the key file holds a NUL byte: not a public key');
  if (/PRIVATE KEY/.test(text)) throw new Refusal('the key file holds a private key: give the public one (.pub)');
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  if (lines.length !== 1) throw new Refusal(`the key file must hold exactly one public key line, not ${lines.length}`);
  const line = lines[0]!.trim();
  if (line.startsWith('#')) throw new Refusal('the key file holds only a comment');
  // A line that starts with a key type has no options; otherwise its first field is the options.
  return /^(ssh-|ecdsa-|sk-)/.test(line) ? `restrict ${line}` : `restrict,${line}`;
}

export interface Layout { base: string; inboxDir: string; resultsDir: string }

/**
 * layoutOf - BASE and the two directory names under BASE/NAME from the
 * uploaders.inbox and uploaders.results templates, which must both be
 * BASE/{name}/DIR (one "{name}", as a whole path component).
 */
export function layoutOf(inboxTemplate: string, resultsTemplate: string): Layout {
  const split = (t: string, key: string) => {
    if (!path.isAbsolute(t) || path.normalize(t) !== t) throw new Refusal(`uploaders.${key} ${JSON.stringify(t)}: must be an absolute, normalized path`);
    const parts = t.split('/');
    const at = parts.indexOf('{name}');
    if (at < 0 || parts.filter((p) => p.includes('{name}')).length !== 1) throw new Refusal(`uploaders.${key} ${JSON.stringify(t)}: must hold {name} once, as a whole path component`);
    if (at !== parts.length - 2) throw new Refusal(`uploaders.${key} ${JSON.stringify(t)}: must be BASE/{name}/DIR (sshd chroots an uploader to BASE/NAME)`);
    return { base: parts.slice(0, at).join('/') || '/', dir: parts[at + 1]! };
  };
  const i = split(inboxTemplate, 'inbox');
  const r = split(resultsTemplate, 'results');
  if (i.base !== r.base) throw new Refusal(`uploaders.inbox and uploaders.results must share BASE/{name}/ (${i.base} and ${r.base})`);
  if (i.dir === r.dir) throw new Refusal('uploaders.inbox and uploaders.results must be different directories');
  return { base: i.base, inboxDir: i.dir, resultsDir: r.dir };
}

// ---------------------------------------------------------------- the system

interface Options { config: string; keys: string; group: string; inboxGroup: string }
interface Station extends Layout { keys: string; group: string; inboxGroup: string; egressUser: string; enabled: boolean }
interface Passwd { name: string; uid: number; gid: number; gecos: string; home: string; shell: string }

/** sh - run a command; its stdout, or a Refusal with its stderr. */
function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 60_000 });
  if (r.error) throw new Refusal(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Refusal(`${cmd} ${args.join(' ')}: exit ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** getent - the fields of one entry of an NSS database, or null if there is none. */
function getent(db: 'passwd' | 'group' | 'shadow', key: string): string[] | null {
  const r = spawnSync('getent', [db, key], { encoding: 'utf8' });
  if (r.status === 2) return null; // "key not found"
  if (r.status !== 0) throw new Refusal(`getent ${db} ${key}: exit ${r.status}`);
  return r.stdout.trim().split(':');
}
function passwd(name: string): Passwd | null {
  const f = getent('passwd', name);
  return f && { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), gecos: f[4]!, home: f[5]!, shell: f[6]! };
}
const groupGid = (name: string) => {
  const f = getent('group', name);
  return f && Number(f[2]);
};
const groupsOf = (name: string) => sh('id', ['-Gn', name]).trim().split(/\s+/);

/** isUploader - NAME is an account this command made: its own primary group, and a member of the uploaders' group. */
function isUploader(u: Passwd, st: Station): boolean {
  return groupGid(u.name) === u.gid && groupsOf(u.name).includes(st.group);
}

/** readStation - the layout and names from the configuration file and the options. */
function readStation(o: Options): Station {
  let doc: { uploaders?: Record<string, unknown>; transit?: Record<string, unknown> };
  try {
    doc = JSON.parse(fs.readFileSync(o.config, 'utf8')) as typeof doc;
  } catch (err) {
    throw new Refusal(`${o.config}: cannot read the configuration: ${(err as Error).message}`);
  }
  const str = (v: unknown, dflt: string, key: string) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'string') throw new Refusal(`${o.config}: ${key} must be a string`);
    return v;
  };
  const u = doc.uploaders ?? {};
  const layout = layoutOf(str(u.inbox, DEFAULTS.inboxTemplate, 'uploaders.inbox'), str(u.results, DEFAULTS.resultsTemplate, 'uploaders.results'));
  const egressUser = str(doc.transit?.egressUser, DEFAULTS.egressUser, 'transit.egressUser');
  return { ...layout, keys: o.keys, group: o.group, inboxGroup: o.inboxGroup, egressUser, enabled: u.enabled === true };
}

const chrootOf = (st: Station, name: string) => path.join(st.base, name);
const inboxOf = (st: Station, name: string) => path.join(st.base, name, st.inboxDir);
const resultsOf = (st: Station, name: string) => path.join(st.base, name, st.resultsDir);
const keyFileOf = (st: Station, name: string) => path.join(st.keys, name);

/** checkRootChain - DIR and every directory above it are root's and not group- or world-writable (sshd's rule). */
function checkRootChain(dir: string, what: string): void {
  for (let p = dir; ; p = path.dirname(p)) {
    let s: fs.Stats;
    try {
      s = fs.statSync(p);
    } catch (err) {
      throw new Refusal(`${what} ${dir}: ${p}: ${(err as Error).message}`);
    }
    if (!s.isDirectory()) throw new Refusal(`${what} ${dir}: ${p} is not a directory`);
    if (s.uid !== 0 || (s.mode & 0o022) !== 0) throw new Refusal(`${what} ${dir}: ${p} must be root's and not group- or world-writable (sshd refuses it otherwise)`);
    if (p === path.dirname(p)) return;
  }
}

/** lstatOrNull - lstat, or null if nothing is there. */
function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Undo - the steps taken so far, undone in reverse order when a later one fails. */
class Undo {
  private readonly steps: { what: string; undo: () => void }[] = [];
  push(what: string, undo: () => void): void {
    this.steps.push({ what, undo });
  }
  /** rollback - undo every step, newest first; what could not be undone. */
  rollback(): string[] {
    const failed: string[] = [];
    for (const s of this.steps.reverse()) {
      try {
        s.undo();
      } catch (err) {
        failed.push(`${s.what}: ${(err as Error).message}`);
      }
    }
    return failed;
  }
}

/**
 * ensureDir - DIR exists as a directory (not a link) with this owner and
 * mode; true if anything changed. A new directory is created 0700 and only
 * then given its owner and mode, so it is never more open than meant.
 */
function ensureDir(dir: string, uid: number, gid: number, mode: number, undo: Undo): boolean {
  const s = lstatOrNull(dir);
  if (!s) {
    fs.mkdirSync(dir, { mode: 0o700 });
    undo.push(`mkdir ${dir}`, () => fs.rmdirSync(dir));
    fs.chownSync(dir, uid, gid);
    fs.chmodSync(dir, mode);
    return true;
  }
  if (!s.isDirectory()) throw new Refusal(`${dir} exists and is not a directory${s.isSymbolicLink() ? ' (a symbolic link)' : ''}`);
  if (s.uid === uid && s.gid === gid && (s.mode & 0o7777) === mode) return false;
  undo.push(`chown/chmod ${dir}`, () => {
    fs.lchownSync(dir, s.uid, s.gid);
    fs.chmodSync(dir, s.mode & 0o7777);
  });
  fs.lchownSync(dir, uid, gid);
  fs.chmodSync(dir, mode);
  return true;
}

/** fsyncDir - make a directory's entries durable. */
function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** writeKeyFile - FILE holds exactly TEXT, root 0644, written beside it and renamed in (durable). */
function writeKeyFile(file: string, text: string, undo: Undo): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeFileSync(fd, text);
    fs.fchownSync(fd, 0, 0);
    fs.fchmodSync(fd, 0o644);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  undo.push(`write ${file}`, () => fs.rmSync(file, { force: true }));
  fsyncDir(path.dirname(file));
}

/** readKeyFile - the stored line and its fingerprint for the operator's key file, checked by ssh-keygen. */
function readKeyFile(file: string): { line: string; fingerprint: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw new Refusal(`--key ${file}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Refusal(`--key ${file}: not a regular file`);
    if (st.size > MAX_KEY_FILE_BYTES) throw new Refusal(`--key ${file}: ${st.size} bytes, more than a public key file holds (${MAX_KEY_FILE_BYTES})`);
    text = fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
  let line: string;
  try {
    line = keyLine(text);
  } catch (err) {
    throw new Refusal(`--key ${file}: ${(err as Error).message}`);
  }
  const r = spawnSync('ssh-keygen', ['-l', '-f', '-'], { encoding: 'utf8', input: `${line}\n` });
  if (r.error) throw new Refusal(`ssh-keygen: ${r.error.message} (Debian package openssh-client)`);
  if (r.status !== 0) throw new Refusal(`--key ${file}: ssh-keygen does not accept it as a public key: ${r.stderr.trim()}`);
  return { line, fingerprint: r.stdout.trim().split(/\s+/)[1]! };
}

/** fingerprintOf - the fingerprint of a stored key file, or null if there is none or it is unreadable. */
function fingerprintOf(file: string): string | null {
  if (!lstatOrNull(file)) return null;
  const r = spawnSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(/\s+/)[1]! : null;
}

/** waiting - what an inbox holds: files ingress will pick up, and names it never picks up. */
function waiting(inbox: string): { files: string[]; ignored: string[] } {
  let names: string[];
  try {
    names = fs.readdirSync(inbox);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], ignored: [] };
    throw err;
  }
  return { files: names.filter((n) => !IGNORED(n)), ignored: names.filter(IGNORED) };
}

/** processesOf - the pids of processes running under UID (an uploader's running sftp session). */
function processesOf(uid: number): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${e}/status`, 'utf8'));
      if (m && Number(m[1]) === uid) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** shadowOf - the password field and the account expiry date of NAME's shadow entry. */
function shadowOf(name: string): { password: string; expire: string } {
  const f = getent('shadow', name);
  return { password: f?.[1] ?? '', expire: f?.[7] ?? '' };
}

function requireRoot(): void {
  if (process.geteuid?.() !== 0) throw new Refusal('must be run as root (it manages system accounts)');
}

// ---------------------------------------------------------------- add

function add(name: string, keyFile: string, st: Station): number {
  requireRoot();
  const bad = nameProblem(name);
  if (bad) throw new Refusal(bad);
  const key = readKeyFile(keyFile);
  for (const g of [st.group, st.inboxGroup]) if (groupGid(g) === null) throw new Refusal(`group ${g} does not exist (systemd-sysusers creates it)`);
  const egress = passwd(st.egressUser);
  if (!egress) throw new Refusal(`user ${st.egressUser} does not exist (systemd-sysusers creates it)`);
  checkRootChain(st.base, 'the uploaders directory');
  checkRootChain(st.keys, 'the keys directory');

  const keyFile_ = keyFileOf(st, name);
  const stored = `${key.line}\n`;
  let user = passwd(name);
  const existed = user !== null;
  let retiring = false;
  if (user) {
    if (!isUploader(user, st)) throw new Refusal(`${name} is an existing user that is not a Sluice uploader (not in ${st.group}, or its primary group is not its own)`);
    const present = lstatOrNull(keyFile_);
    if (present) {
      if (!present.isFile()) throw new Refusal(`${keyFile_} exists and is not a regular file`);
      if (fs.readFileSync(keyFile_, 'utf8') !== stored) throw new Refusal(`${name} is an uploader with another key (${fingerprintOf(keyFile_) ?? 'unreadable'}); remove it first to give it this one`);
    } else retiring = true;
  } else {
    if (groupGid(name) !== null) throw new Refusal(`a group named ${name} exists already: the uploader's own group cannot be made`);
    if (lstatOrNull(chrootOf(st, name))) throw new Refusal(`${chrootOf(st, name)} exists, left from an earlier uploader: move it away first`);
  }

  const undo = new Undo();
  let changed = false;
  try {
    if (!user) {
      // System account (uid below UID_MIN, no aging), its own group, no home directory made, no password ("*": not locked).
      sh('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/', '--shell', '/usr/sbin/nologin', '--comment', 'Sluice uploader', '--groups', `${st.group},${st.inboxGroup}`, '--password', '*', name]);
      undo.push(`useradd ${name}`, () => {
        sh('userdel', [name]);
        if (groupGid(name) !== null) sh('groupdel', [name]);
      });
      user = passwd(name)!;
      changed = true;
    } else {
      const sh0 = shadowOf(name);
      if (sh0.password !== '*' || sh0.expire !== '') {
        sh('usermod', ['--password', '*', '--expiredate', '', name]);
        undo.push(`unlock ${name}`, () => sh('usermod', ['--password', sh0.password, '--expiredate', sh0.expire, name]));
        changed = true;
      }
    }
    const inboxGid = groupGid(st.inboxGroup)!;
    changed = ensureDir(chrootOf(st, name), 0, 0, 0o755, undo) || changed;
    changed = ensureDir(inboxOf(st, name), 0, inboxGid, 0o2770, undo) || changed;
    changed = ensureDir(resultsOf(st, name), egress.uid, user.gid, 0o2750, undo) || changed;
    const present = lstatOrNull(keyFile_);
    if (!present || present.uid !== 0 || present.gid !== 0 || (present.mode & 0o7777) !== 0o644) {
      writeKeyFile(keyFile_, stored, undo);
      changed = true;
    }
  } catch (err) {
    const failed = undo.rollback();
    const msg = err instanceof Refusal ? err.message : `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim();
    throw new Refusal(`${name}: ${msg}; ${failed.length ? `undone except: ${failed.join('; ')}` : 'every step before it undone'}`);
  }
  const state = !changed ? 'unchanged' : retiring ? 'active again' : existed ? 'repaired' : 'added';
  process.stdout.write(`${name}: ${state} (${key.fingerprint}); uploads to ${inboxOf(st, name)}, results in ${resultsOf(st, name)}\n`);
  if (!st.enabled) process.stdout.write(`note: uploaders.enabled is not true in the configuration: ingress does not serve named uploaders yet\n`);
  return 0;
}

// ---------------------------------------------------------------- remove

function remove(name: string, purge: boolean, st: Station): number {
  requireRoot();
  if (!UPLOADER_NAME.test(name)) throw new Refusal(`${JSON.stringify(name)} is not a valid uploader name`);
  const user = passwd(name);
  if (!user) {
    const left = [chrootOf(st, name), keyFileOf(st, name)].filter((p) => lstatOrNull(p));
    throw new Refusal(`${name}: no such uploader${left.length ? ` (left without an account: ${left.join(', ')}; check and remove by hand)` : ''}`);
  }
  if (!isUploader(user, st)) throw new Refusal(`${name} is not a Sluice uploader (not in ${st.group}, or its primary group is not its own): refusing to touch it`);

  // 1. No new login: the key goes (sshd reads it at each login), and the account is locked and expired
  //    (with UsePAM yes sshd accepts a locked account's key, but PAM refuses an expired account).
  const key = keyFileOf(st, name);
  if (lstatOrNull(key)) {
    fs.rmSync(key);
    fsyncDir(st.keys);
  }
  const sh0 = shadowOf(name);
  if (!sh0.password.startsWith('!') || sh0.expire !== '1') sh('usermod', ['--lock', '--expiredate', '1', name]);

  // 2. Finish only when nothing is lost: no session running, nothing ingress would still pick up.
  const inbox = inboxOf(st, name);
  const w = waiting(inbox);
  const sessions = processesOf(user.uid);
  if (sessions.length > 0 || w.files.length > 0 || (w.ignored.length > 0 && !purge)) {
    const why = [
      sessions.length ? `${sessions.length} process(es) of ${name} running (pid ${sessions.join(', ')}: an upload in progress)` : '',
      w.files.length ? `${w.files.length} file(s) waiting in ${inbox} for ingress` : '',
      w.ignored.length && !purge ? `${w.ignored.length} partial upload(s) ingress never picks up (${w.ignored.slice(0, 5).join(', ')}${w.ignored.length > 5 ? ', ...' : ''}): --purge deletes them` : '',
    ].filter(Boolean);
    process.stdout.write(`${name}: retiring: no new login; not finished: ${why.join('; ')}. Run \`sluice uploader remove ${name}${purge ? ' --purge' : ''}\` again later.\n`);
    return 3;
  }
  for (const n of w.ignored) {
    fs.rmSync(path.join(inbox, n), { recursive: true, force: true });
    process.stdout.write(`${name}: deleted partial upload ${path.join(inbox, n)}\n`);
  }
  // 3. The account and its directories. Results are copies of reports egress also keeps in outbox/ and rejected/;
  //    they go with the account, because its gid may be given to a later account.
  const chroot = chrootOf(st, name);
  const c = lstatOrNull(chroot);
  if (c && !c.isDirectory()) throw new Refusal(`${chroot} is not a directory: check it by hand`);
  if (lstatOrNull(inbox)) fs.rmdirSync(inbox); // empty, or this fails: never a recursive delete of an inbox
  fs.rmSync(resultsOf(st, name), { recursive: true, force: true });
  if (c) fs.rmdirSync(chroot);
  sh('userdel', [name]);
  if (groupGid(name) !== null) sh('groupdel', [name]);
  process.stdout.write(`${name}: removed\n`);
  return 0;
}

// ---------------------------------------------------------------- list

export interface ListEntry { name: string; fingerprint: string | null; waiting: number; partial: number; state: 'active' | 'retiring' | 'incomplete' | 'orphaned'; problems: string[] }

function list(st: Station): ListEntry[] {
  requireRoot();
  const members = getent('group', st.group)?.[3]?.split(',').filter(Boolean) ?? [];
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(st.base).filter((n) => UPLOADER_NAME.test(n));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const inboxGid = groupGid(st.inboxGroup);
  const egress = passwd(st.egressUser);
  return [...new Set([...members, ...dirs])].sort().map((name): ListEntry => {
    const user = passwd(name);
    const w = waiting(inboxOf(st, name));
    const fingerprint = fingerprintOf(keyFileOf(st, name));
    const base = { name, fingerprint, waiting: w.files.length, partial: w.ignored.length };
    if (!user || !isUploader(user, st)) return { ...base, state: 'orphaned', problems: [user ? `${name} is not an uploader account` : `no account ${name}`] };
    const problems: string[] = [];
    const want: [string, number, number | null, number][] = [
      [chrootOf(st, name), 0, 0, 0o755],
      [inboxOf(st, name), 0, inboxGid, 0o2770],
      [resultsOf(st, name), egress?.uid ?? -1, user.gid, 0o2750],
    ];
    for (const [dir, uid, gid, mode] of want) {
      const s = lstatOrNull(dir);
      if (!s || !s.isDirectory()) problems.push(`${dir} missing`);
      else if (s.uid !== uid || s.gid !== gid || (s.mode & 0o7777) !== mode) problems.push(`${dir} is ${s.uid}:${s.gid} ${(s.mode & 0o7777).toString(8)}, not ${uid}:${gid} ${mode.toString(8)}`);
    }
    const sh0 = shadowOf(name);
    const locked = sh0.password.startsWith('!') || sh0.expire !== '';
    if (!fingerprint || locked) return { ...base, state: 'retiring', problems };
    return { ...base, state: problems.length ? 'incomplete' : 'active', problems };
  });
}

// ---------------------------------------------------------------- the command

/** runUploader - `sluice uploader ...`: the exit code (usage errors print the usage and give 2). */
export function runUploader(argv: string[]): number {
  const args = [...argv];
  const take = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${flag} needs a value`);
    args.splice(i, 2);
    return v;
  };
  const flag = (f: string) => {
    const i = args.indexOf(f);
    if (i >= 0) args.splice(i, 1);
    return i >= 0;
  };
  try {
    const sub = args.shift();
    const o: Options = {
      config: take('--config') ?? DEFAULTS.config,
      keys: take('--keys') ?? DEFAULTS.keys,
      group: take('--group') ?? DEFAULTS.group,
      inboxGroup: take('--inbox-group') ?? DEFAULTS.inboxGroup,
    };
    const one = () => {
      if (args.length !== 1) throw new UsageError(args.length ? `unexpected argument ${JSON.stringify(args[1] ?? args[0])}` : `sluice uploader ${sub} needs NAME`);
      return args[0]!;
    };
    switch (sub) {
      case 'add': {
        const key = take('--key');
        if (!key) throw new UsageError('sluice uploader add needs --key PUBKEY_FILE');
        const name = one();
        return add(name, key, readStation(o));
      }
      case 'remove': {
        const purge = flag('--purge');
        const name = one();
        return remove(name, purge, readStation(o));
      }
      case 'list': {
        const json = flag('--json');
        if (args.length) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
        const entries = list(readStation(o));
        if (json) process.stdout.write(`${JSON.stringify(entries)}\n`);
        else {
          const rows = [['NAME', 'FINGERPRINT', 'WAITING', 'STATE'], ...entries.map((e) => [e.name, e.fingerprint ?? '-', `${e.waiting}${e.partial ? ` (+${e.partial} partial)` : ''}`, [e.state, ...e.problems].join(': ')])];
          const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
          for (const r of rows) process.stdout.write(`${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]!) : c)).join('  ')}\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? 'sluice uploader needs add, remove or list' : `unknown subcommand ${JSON.stringify(sub)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sluice uploader: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof Refusal) {
      process.stderr.write(`sluice uploader: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
