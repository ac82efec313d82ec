/*
 * NAME
 *   machine - describe the machine a benchmark ran on
 *
 * SYNOPSIS
 *   import { describeMachine } from './machine.mjs';
 *   describeMachine(dir)   // { cpus, cpu, kernel, node, memory, disk }
 *
 * DESCRIPTION
 *   Ratios travel between machines better than rates, but neither means
 *   much without the machine: CPU count and model, kernel, Node, memory,
 *   and the filesystem and block device the pipeline's directories are on
 *   (from /proc/self/mountinfo and /sys/block), and for ext4 whether it has
 *   a journal (/sys/fs/ext4/DEV/journal_task names jbd2's thread, or says
 *   "<none>").
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** readOr - a file's trimmed text, or a fallback. */
function readOr(p, fallback = '?') {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** diskOf - filesystem type, device and its properties for the mount holding `dir`. */
function diskOf(dir) {
  const st = fs.statSync(dir);
  const major = Math.floor(st.dev / 256) & 0xfff; // glibc's gnu_dev_major for small numbers
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  let fstype = '?';
  let source = '?';
  for (const line of readOr('/proc/self/mountinfo', '').split('\n')) {
    const f = line.split(' ');
    if (f[2] === `${major}:${minor}`) {
      const dash = f.indexOf('-');
      fstype = f[dash + 1];
      source = f[dash + 2];
    }
  }
  const sys = `/sys/dev/block/${major}:${minor}`;
  let block = '?';
  try {
    block = fs.realpathSync(sys).split('/').pop();
  } catch {
    /* not a block device (tmpfs, overlay) */
  }
  const queue = fs.existsSync(`/sys/block/${block}/queue`) ? `/sys/block/${block}/queue` : `${sys}/../queue`;
  const rotational = readOr(`${queue}/rotational`);
  const sectors = Number(readOr(`/sys/block/${block}/size`, readOr(`${sys}/size`, '0')));
  const model = readOr(`/sys/block/${block}/device/model`, '');
  const kind = rotational === '0' ? 'non-rotational' : rotational === '1' ? 'rotational' : 'unknown kind';
  const size = sectors > 0 ? `${Math.round((sectors * 512) / 1e9)} GB` : '? GB';
  // ext4 without a journal behaves differently under fsync (no commit to share) and inode churn
  // (it skips recently deleted inodes when allocating): docs/performance.md. jbd2's task is named here.
  let journal = '';
  if (fstype === 'ext4') {
    const task = readOr(`/sys/fs/ext4/${path.basename(source)}/journal_task`, '?');
    journal = task === '?' ? '' : task === '' || task === '<none>' ? ' without a journal' : ' with a journal';
  }
  return `${source} (${block}${model ? `, ${model}` : ''}, ${kind}, ${size}), ${fstype}${journal}`;
}

/** describeMachine - the facts docs/performance.md records beside every result. */
export function describeMachine(dir) {
  const cpuinfo = readOr('/proc/cpuinfo', '');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?';
  return {
    cpus: os.availableParallelism(),
    cpu: model,
    kernel: os.release(),
    node: process.version,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    disk: diskOf(dir),
  };
}
