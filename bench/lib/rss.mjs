/*
 * NAME
 *   rss - resident memory of the daemons, from /proc
 *
 * SYNOPSIS
 *   import { memOf, shmem, resetPeak, RssSampler } from './rss.mjs';
 *   memOf(pid)            // { rss, hwm } in bytes (VmRSS, VmHWM)
 *   shmem()               // the machine's shared memory in bytes (/proc/meminfo Shmem: memfds, tmpfs)
 *   resetPeak(pid)        // VmHWM := VmRSS (echo 5 > /proc/PID/clear_refs)
 *   const s = new RssSampler(pids, 20); s.start(); ...; s.stop(); s.max[pid]
 *
 * DESCRIPTION
 *   The memory figure compares each daemon's peak RSS while a 2 GiB file
 *   passes with its idle RSS. The kernel keeps the peak itself (VmHWM), so
 *   no spike between samples is missed; writing 5 to clear_refs (Linux 4.0+)
 *   resets it after start-up and warm-up, so the peak is the file's alone.
 *   Sampling VmRSS as well cross-checks it, and is the fallback if the
 *   reset is not permitted.
 *
 *   RSS counts what the process maps: its heap, stacks, code and buffers.
 *   Transit's sealed memfd is read and written with pread/pwrite, never
 *   mapped, so it is page cache (shmem), not RSS; the same holds for the
 *   spool and outbox files. The figure therefore shows exactly whether file
 *   bytes pile up in a daemon's own memory (JS heap, Buffers). The memfd is
 *   RAM all the same, by design (transit's copy lives in RAM: design.md), so
 *   the sampler also follows the machine's Shmem, which grows by the size of
 *   the file while transit holds it.
 */
import * as fs from 'node:fs';

/** memOf - VmRSS and VmHWM of a process, in bytes. */
export function memOf(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** shmem - the machine's shared memory (memfds, tmpfs), in bytes. */
export function shmem() {
  const m = /^Shmem:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** resetPeak - make VmHWM start again from the current RSS; false if not permitted. */
export function resetPeak(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** RssSampler - the largest VmRSS seen per pid, sampled every intervalMs. */
export class RssSampler {
  constructor(pids, intervalMs = 20) {
    this.pids = pids;
    this.intervalMs = intervalMs;
    this.max = Object.fromEntries(pids.map((p) => [p, 0]));
    this.maxShmem = 0;
    this.timer = null;
  }
  sample() {
    this.maxShmem = Math.max(this.maxShmem, shmem());
    for (const p of this.pids) {
      try {
        this.max[p] = Math.max(this.max[p], memOf(p).rss);
      } catch {
        /* a stage restarting: its figure is void, and the run says so (stage-exited) */
      }
    }
  }
  start() {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }
  stop() {
    clearInterval(this.timer);
    this.sample();
  }
}
