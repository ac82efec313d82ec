/*
 * NAME
 *   module-trace - preloaded with `--import`, records every module a process loads
 *
 * SYNOPSIS
 *   SLUICE_MODULE_TRACE=DIR NODE_OPTIONS="--import /path/to/module-trace.mjs" node main.js
 *
 * DESCRIPTION
 *   Appends JSON lines to DIR/<pid>.jsonl, in every thread (worker threads
 *   run --import preloads too):
 *     {"script": argv[1], "thread": N}   first, from each thread
 *     {"esm": url}                      each ES module loaded (a load hook, module-trace-hooks.mjs)
 *     {"cjs": filename}                 each require(), native addons included
 *   Node 20 passes a CommonJS require() made inside CommonJS code to no
 *   module hook, hence the wrapper around Module._load. Used by
 *   test/no-signing-in-ingress-transit.test.ts.
 */
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { threadId } from 'node:worker_threads';

const file = `${process.env.SLUICE_MODULE_TRACE}/${process.pid}.jsonl`;
const record = (entry) => appendFileSync(file, `${JSON.stringify(entry)}\n`);
record({ script: process.argv[1], thread: threadId });
register(new URL('./module-trace-hooks.mjs', import.meta.url), { data: { file } });

const load = Module._load;
Module._load = function traced(request, parent, isMain) {
  const loaded = load.apply(this, arguments);
  let filename = request;
  try {
    filename = Module._resolveFilename(request, parent, isMain);
  } catch {
    // keep the request as given
  }
  record({ cjs: filename });
  return loaded;
};
