/*
 * NAME
 *   fds - descriptors: this process's table (for leak checks), and what a descriptor is
 *
 * SYNOPSIS
 *   const before = countOpenFds(); ...; expect(countOpenFds()).toBe(before);
 *   fileKind(fs.fstatSync(fd))   // 'regular file', 'fifo', 'socket', ...
 */
import * as fs from 'node:fs';

/** countOpenFds - how many descriptors this process has open (leak checks in tests). */
export function countOpenFds(): number {
  return fs.readdirSync('/proc/self/fd').length - 1; // minus the one readdir itself used
}

/** fileKind - a short name for what fstat says a descriptor is. */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSymbolicLink()) return 'symlink';
  return 'unknown';
}
