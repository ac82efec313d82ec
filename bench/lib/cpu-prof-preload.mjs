/*
 * NAME
 *   cpu-prof-preload - profile a Node process from start to exit (what --cpu-prof does)
 *
 * SYNOPSIS
 *   SLUICE_CPU_PROF_DIR=/tmp/prof NODE_OPTIONS="--import /abs/bench/lib/cpu-prof-preload.mjs" node ...
 *
 * DESCRIPTION
 *   Node 20 refuses --cpu-prof in NODE_OPTIONS, and `sluice dev` starts the
 *   stages itself with a fixed command line, so `bench/run.mjs --cpu-prof DIR`
 *   preloads this module instead (NODE_OPTIONS reaches every stage and
 *   worker). It starts V8's sampling profiler through node:inspector and,
 *   when the process exits (the stages call process.exit on SIGTERM),
 *   writes DIR/<pid>-<thread>.cpuprofile, the same format --cpu-prof writes.
 *   A process killed by SIGKILL writes nothing.
 *
 *   On the main thread inspector.Session dispatches synchronously, which is
 *   what makes writing the profile from the 'exit' handler possible.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session } from 'node:inspector';
import { threadId } from 'node:worker_threads';

const dir = process.env.SLUICE_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (!err) fs.writeFileSync(path.join(dir, `${process.pid}-${threadId}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
