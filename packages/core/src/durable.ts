/*
 * NAME
 *   durable - small filesystem steps that survive a crash
 *
 * SYNOPSIS
 *   ensureDir(path, 0o700);                   // create, or check owner and tighten mode
 *   fsyncDir(path);
 *   writeDurable(dir, name, data, 0o600);     // tmp file, fsync, rename, fsync dir
 *
 * DESCRIPTION
 *   "Durable" means: after the call returns, a power cut leaves either the
 *   old state or the new one, never a torn file. Temporary files are named
 *   `.tmp-*` so a restarting stage can recognise and remove its leftovers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export const TMP_PREFIX = '.tmp-';

/** fsyncDir - make a directory's entries (creations, renames, unlinks) durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** ensureDir - create a directory with `mode`, or insist an existing one is ours and tighten it to `mode`. */
export function ensureDir(dir: string, mode: number): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (st.uid !== process.getuid!()) {
    throw new Error(`${dir} is owned by uid ${st.uid}, not by this stage (uid ${process.getuid!()})`);
  }
  if ((st.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
}

/** writeDurable - write a whole file under a temporary name, fsync it, rename it into place, fsync the directory. */
export function writeDurable(dir: string, name: string, data: string | Uint8Array, mode: number): void {
  const tmp = path.join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path.join(dir, name));
  fsyncDir(dir);
}

/** removeTemporaries - delete leftovers of an interrupted writeDurable; returns how many. */
export function removeTemporaries(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(TMP_PREFIX)) {
      fs.rmSync(path.join(dir, name), { force: true });
      n++;
    }
  }
  return n;
}
