/*
 * NAME
 *   cpu - where the CPU went during a figure: the daemons, the machine, the disk wait
 *
 * SYNOPSIS
 *   import { cpuSnapshot, cpuSince } from './cpu.mjs';
 *   const s = cpuSnapshot(pids);
 *   ...
 *   cpuSince(s)  // { seconds, cores, daemons: { [pid]: cpuSeconds }, kernel: { [pid]: of which in the kernel }, machine: { busy, iowait },
 *                //   disks: { [name]: { busy, written, flushes } } }
 *
 * DESCRIPTION
 *   A figure below its bound is limited by something; these numbers say
 *   which. If the daemons used close to cores x elapsed CPU seconds, the
 *   pipeline is CPU-bound and only less work per byte helps. If the machine
 *   was busy but the daemons were not, someone else had the CPU (these
 *   machines are shared: the figure is then pessimistic). If the CPUs sat
 *   in iowait, or a disk had I/O in flight most of the time, the disk was
 *   the limit.
 *
 *   Per process: utime + stime from /proc/PID/stat (stime alone: the time in
 *   system calls and faults, printed as "kernel"), which include every
 *   thread (libuv's threadpool does the copies' read/write syscalls, and the
 *   signer workers sign). Machine-wide: the first line of /proc/stat. Disks:
 *   /proc/diskstats, field 13 (milliseconds with I/O in flight: 100% of
 *   the elapsed time means the device never idled), sectors written and
 *   flush requests (fsyncs that reached the device).
 *   Kernel writeback threads are not any daemon's: they show only in the
 *   machine's figure.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';

const TICK = 100; // USER_HZ: /proc reports clock ticks of 1/100 s on Linux

/** procTicks - utime + stime of a process (all threads) and stime alone, in ticks; NaN if it is gone. */
function procTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { all: Number(f[11]) + Number(f[12]), kernel: Number(f[12]) }; // fields 14 and 15 of proc(5), counted after "pid (comm)"
  } catch {
    return { all: NaN, kernel: NaN };
  }
}

/** machineTicks - busy, idle and iowait ticks over all CPUs. */
function machineTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq + steal, idle, iowait };
}

/** diskTicks - ms the block devices spent with I/O in flight, and sectors written (/proc/diskstats, whole disks only). */
function diskTicks() {
  const out = {};
  for (const line of fs.readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14 || /^(loop|ram|zram)/.test(f[2]) || fs.existsSync(`/sys/class/block/${f[2]}/partition`)) continue;
    out[f[2]] = { busyMs: Number(f[12]), written: Number(f[9]) * 512, flushes: f.length >= 20 ? Number(f[18]) : 0 };
  }
  return out;
}

/** cpuSnapshot - counters now, for the given pids. */
export function cpuSnapshot(pids) {
  return { at: performance.now(), pids: Object.fromEntries(pids.map((p) => [p, procTicks(p)])), machine: machineTicks(), disks: diskTicks() };
}

/** cpuSince - CPU seconds since a snapshot: per daemon, and the machine's busy and iowait seconds. */
export function cpuSince(snap) {
  const now = cpuSnapshot(Object.keys(snap.pids));
  const daemons = {};
  const kernel = {};
  for (const p of Object.keys(snap.pids)) {
    daemons[p] = (now.pids[p].all - snap.pids[p].all) / TICK;
    kernel[p] = (now.pids[p].kernel - snap.pids[p].kernel) / TICK;
  }
  const disks = {};
  for (const [d, v] of Object.entries(now.disks)) {
    const b = snap.disks[d];
    if (!b || v.written === b.written) continue; // only disks the figure wrote to
    disks[d] = { busy: (v.busyMs - b.busyMs) / 1000, written: v.written - b.written, flushes: v.flushes - b.flushes };
  }
  return {
    seconds: (now.at - snap.at) / 1000,
    disks,
    cores: os.availableParallelism(),
    daemons,
    kernel,
    machine: { busy: (now.machine.busy - snap.machine.busy) / TICK, iowait: (now.machine.iowait - snap.machine.iowait) / TICK },
  };
}
