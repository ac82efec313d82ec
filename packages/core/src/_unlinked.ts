/*
 * NAME
 *   _unlinked - the nameless 0600 file a private copy goes to when memory cannot hold it
 *
 * SYNOPSIS
 *   const { fd, direct } = openUnlinked(dir, size);   // O_TMPFILE|O_EXCL|O_RDWR, 0600
 *
 * DESCRIPTION
 *   openUnlinked opens a new file with no name in `dir`: O_TMPFILE, so it
 *   never appears in the directory, and O_EXCL, so it can never be given a
 *   name later (linkat refuses it, ENOENT). Its mode is 0600 (under the
 *   caller's umask), read-write for the copy; from DIRECT_MIN_BYTES on it is
 *   opened with O_DIRECT, as the stages' other large copies are (direct.ts),
 *   unless the filesystem refuses that (EINVAL), when it is opened without.
 *   The file and its blocks disappear with its last descriptor: a crash
 *   leaves nothing behind to clean up.
 *
 * SECURITY
 *   Such a file cannot be sealed as a memfd is. What keeps it private is its
 *   owner and mode (0600, the stage's own user) inside the stage's own 0700
 *   directory, and that it has no name anyone could open. A read-only
 *   descriptor handed to another user cannot be reopened for writing through
 *   /proc: the reopen checks the 0600 mode.
 *
 * OWNERSHIP
 *   The caller owns the returned descriptor and closes it.
 */
import * as fs from 'node:fs';
import { constants as C } from '@sluice/native';
import { DIRECT_MIN_BYTES } from './_copy-buffers.js';

/** The flags of a private copy's file: no name, and never one (O_EXCL), read-write. */
const UNLINKED = C.O_TMPFILE | fs.constants.O_EXCL | fs.constants.O_RDWR;

/** openUnlinked - a new nameless 0600 file in dir for a copy of `size` bytes; O_DIRECT when large and the filesystem takes it. */
export function openUnlinked(dir: string, size: number): { fd: number; direct: boolean } {
  if (size >= DIRECT_MIN_BYTES) {
    try {
      return { fd: fs.openSync(dir, UNLINKED | fs.constants.O_DIRECT, 0o600), direct: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  return { fd: fs.openSync(dir, UNLINKED, 0o600), direct: false };
}
