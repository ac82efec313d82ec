/*
 * NAME
 *   fds - this process's descriptor table, for leak checks
 *
 * SYNOPSIS
 *   const before = countOpenFds(); ...; expect(countOpenFds()).toBe(before);
 */
import * as fs from 'node:fs';

/** countOpenFds - how many descriptors this process has open (leak checks in tests). */
export function countOpenFds(): number {
  return fs.readdirSync('/proc/self/fd').length - 1; // minus the one readdir itself used
}
