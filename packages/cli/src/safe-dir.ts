/*
 * NAME
 *   safe-dir - directories only the current user (or root) can have made
 *
 * SYNOPSIS
 *   import { ownDir, ownFileOrAbsent, UnsafePathError } from './safe-dir.js';
 *
 *   ownDir(path, mode): string        the directory's real path; creates it if missing
 *   ownFileOrAbsent(path): boolean    true when a regular file of ours is there
 *
 * DESCRIPTION
 *   `sluice dev --dir DIR` writes keys, spool, journal and delivered files
 *   under DIR, often somewhere shared like /tmp. Another local user who
 *   creates DIR first (or a directory in it, or a symbolic link such as
 *   DIR/outbox -> ~victim/.ssh) must not get anything written where they
 *   choose. ownDir() accepts a directory only when nobody but the current
 *   user or root can have put it, or anything in it, there:
 *
 *     - every directory above it is owned by root or the current user and is
 *       not writable by group or others, unless it is sticky (like /tmp,
 *       where only an entry's owner may rename or remove it). A symbolic
 *       link on the way is allowed only if root or the current user owns
 *       it; the real path it leads to is checked the same way;
 *     - the directory itself is not a symbolic link, is a directory, is
 *       owned by the current user and is not writable by group or others.
 *
 *   A missing directory is created with mkdir(2), which never follows a
 *   symbolic link in its last component (a link planted there makes it fail
 *   with EEXIST), and then checked like an existing one. Missing ancestors
 *   are created the same way, one at a time.
 *
 *   This is also how a re-run is recognised: a directory an earlier
 *   `sluice dev` made is the current user's, with modes no one else can
 *   write through, so it passes; so does a directory the same user made
 *   beforehand (mktemp -d), which is how the tests and `sluice demo` put a
 *   sluice.json in it first. Nothing else passes. No marker file is needed:
 *   a marker could only be forged by someone who can already write there.
 *
 * DIAGNOSTICS
 *   UnsafePathError names the path and why it was refused, e.g.
 *   "/tmp/d/outbox: is a symbolic link (to /root/.ssh); sluice dev never
 *   follows a link inside its directory".
 *
 * BUGS
 *   Root can put anything anywhere; it is trusted, as OpenSSH's StrictModes
 *   trusts it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { escapeForLog } from '@sluice/core';

/** UnsafePathError - a path sluice dev refuses to use, and why. */
export class UnsafePathError extends Error {
  readonly path: string;
  readonly why: string;
  constructor(p: string, why: string) {
    super(`${p}: ${why}`);
    this.name = 'UnsafePathError';
    this.path = p;
    this.why = why;
  }
}

const me = (): number => process.getuid!();
const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`;

/** lstatOrNull - lstat, or null when nothing is there. */
function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new UnsafePathError(p, `cannot look at it: ${(err as Error).message}`);
  }
}

/** trustedOwner - root or the current user. */
const trustedOwner = (uid: number): boolean => uid === 0 || uid === me();

/** checkAncestor - a directory above ours: owned by root or us, writable by no one else unless sticky. */
function checkAncestor(p: string, st: fs.Stats): void {
  if (!st.isDirectory()) throw new UnsafePathError(p, 'is not a directory');
  if (!trustedOwner(st.uid)) {
    throw new UnsafePathError(p, `is owned by uid ${st.uid}, neither you (uid ${me()}) nor root: that user could replace what sluice dev uses below it`);
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new UnsafePathError(p, `is writable by group or others and not sticky (mode ${octal(st.mode)}): anyone could replace what sluice dev uses below it`);
  }
}

/** checkOwn - a directory sluice dev uses: ours, a real directory, writable by no one else. */
function checkOwn(p: string, st: fs.Stats): void {
  if (st.isSymbolicLink()) {
    let to = '';
    try {
      to = ` (to ${escapeForLog(fs.readlinkSync(p))})`; // the target is the planter's text: escaped
    } catch {
      // the link went away; it is refused all the same
    }
    throw new UnsafePathError(p, `is a symbolic link${to}; sluice dev never follows a link inside its directory`);
  }
  if (!st.isDirectory()) throw new UnsafePathError(p, 'is not a directory');
  if (st.uid !== me()) {
    throw new UnsafePathError(p, `is owned by uid ${st.uid}, not by you (uid ${me()}): sluice dev uses only directories it made or that are yours`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UnsafePathError(p, `is writable by group or others (mode ${octal(st.mode)}); make it private (chmod go-w) or use a new directory`);
  }
}

/** mkdirHere - create one directory (never through a link), then lstat it. */
function mkdirHere(p: string, mode: number): fs.Stats {
  try {
    fs.mkdirSync(p, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new UnsafePathError(p, `cannot create it: ${(err as Error).message}`);
  }
  const st = lstatOrNull(p);
  if (st === null) throw new UnsafePathError(p, 'vanished just after it was created');
  return st;
}

/** components - the names in an absolute path. */
const components = (abs: string): string[] => abs.split('/').filter((s) => s !== '');

/** safeParent - the real path of the directory that will hold `abs`, every step on the way checked (created if missing). */
function safeParent(abs: string): string {
  let cur = '/';
  checkAncestor('/', fs.lstatSync('/'));
  for (const part of components(path.dirname(abs))) {
    const next = path.join(cur, part);
    const st = lstatOrNull(next) ?? mkdirHere(next, 0o755);
    if (!st.isSymbolicLink()) {
      checkAncestor(next, st);
      cur = next;
      continue;
    }
    if (!trustedOwner(st.uid)) throw new UnsafePathError(next, `is a symbolic link owned by uid ${st.uid}, neither you (uid ${me()}) nor root`);
    // Follow it only after checking every directory of the real path it leads to.
    let real: string;
    try {
      real = fs.realpathSync(next);
    } catch (err) {
      throw new UnsafePathError(next, `is a symbolic link that cannot be followed: ${(err as Error).message}`);
    }
    let step = '/';
    for (const q of components(real)) {
      step = path.join(step, q);
      checkAncestor(step, fs.lstatSync(step));
    }
    cur = real;
  }
  return cur;
}

/**
 * ownDir - the real path of directory `p`, created with `mode` if missing;
 * throws UnsafePathError unless only the current user or root can have made
 * it and what is above it. An existing directory's mode is left as it is.
 */
export function ownDir(p: string, mode: number): string {
  const abs = path.resolve(p);
  if (abs === '/') throw new UnsafePathError(abs, 'is the root directory');
  const real = path.join(safeParent(abs), path.basename(abs));
  const st = lstatOrNull(real) ?? mkdirHere(real, mode);
  checkOwn(real, st);
  return real;
}

/**
 * ownFileOrAbsent - false when nothing is at `p`; true when a regular file
 * owned by the current user is; throws UnsafePathError for anything else
 * (a symbolic link, another user's file, a directory, ...). Call it only
 * inside a directory ownDir() accepted.
 */
export function ownFileOrAbsent(p: string): boolean {
  const st = lstatOrNull(p);
  if (st === null) return false;
  if (st.isSymbolicLink()) throw new UnsafePathError(p, 'is a symbolic link; sluice dev never follows a link inside its directory');
  if (!st.isFile()) throw new UnsafePathError(p, 'is not a regular file');
  if (st.uid !== me()) throw new UnsafePathError(p, `is owned by uid ${st.uid}, not by you (uid ${me()})`);
  return true;
}

/** readOwnFile - the text of a regular file of ours, opened without following a link. */
export function readOwnFile(p: string): string {
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UnsafePathError(p, code === 'ELOOP' ? 'is a symbolic link; sluice dev never follows a link inside its directory' : `cannot open it: ${(err as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UnsafePathError(p, 'is not a regular file');
    if (st.uid !== me()) throw new UnsafePathError(p, `is owned by uid ${st.uid}, not by you (uid ${me()})`);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}
