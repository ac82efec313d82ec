// module-trace-hooks - the ES module load hook of module-trace.mjs: one {"esm": url} line per module.
import { appendFileSync } from 'node:fs';

let file;

/** initialize - where to write, from register()'s data. */
export function initialize(data) {
  file = data.file;
}

/** load - record the module, then load it as usual. */
export async function load(url, context, next) {
  appendFileSync(file, `${JSON.stringify({ esm: url })}\n`);
  return next(url, context);
}
