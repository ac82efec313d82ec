/*
 * log-files - a small transparency log read whole, for tests: every tree head, every leaf.
 * (The station's own readers stream; a test's log is a few leaves.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LOG_FILES, readHeads, readLeaves, type SignedTreeHead } from '../../packages/report/src/index.js';

function withLogFile<T>(dir: string, name: string, f: (fd: number) => T): T {
  const fd = fs.openSync(path.join(dir, name), 'r');
  try {
    return f(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** headsOf - every tree head of the log in `dir` (a line that does not parse throws). */
export function headsOf(dir: string): SignedTreeHead[] {
  return withLogFile(dir, LOG_FILES.heads, (fd) =>
    [...readHeads(fd)].map((h) => {
      if (!h.head) throw new Error(`heads line ${h.line + 1}: ${h.problem}`);
      return h.head;
    }),
  );
}

/** leavesOf - every whole leaf of the log in `dir`, in order. */
export function leavesOf(dir: string): Buffer[] {
  return withLogFile(dir, LOG_FILES.leaves, (fd) => [...readLeaves(fd)]);
}
