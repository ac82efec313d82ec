// poll-worker - worker threads that end with Pollers in every state, in a
// process of their own: an environment teardown that left a uv close callback
// pointing into the unloaded addon used to segfault here.
//   node poll-worker.mjs DIR
// Prints one JSON line per worker, then {"done":true}; exit status 0.
// The main thread must NOT load the addon: only when the worker holds the
// last reference does its teardown unmap the library.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const ADDON_PATH = fileURLToPath(new URL('../build/Release/sluice_native.node', import.meta.url));
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const body = `
const { workerData: { addon, path, mode }, parentPort } = require('node:worker_threads');
const n = require(addon);
const R = n.constants.POLL_READABLE;
const l = n.listen(path, 0o600, 4), c = n.connect(path), s = n.accept(l);
require('node:fs').unlinkSync(path);
const active = n.poll(s, () => {
  n.recv(s, 64);
  parentPort.postMessage('callback');
  if (mode === 'terminate-in-cb') for (;;);  // stuck in JS when terminate() comes
});
active.start(R);
const stopped = n.poll(c, () => {});
stopped.start(n.constants.POLL_WRITABLE);
stopped.stop();
n.poll(l, () => {}).close();
n.send(c, Buffer.from('x'), -1);
if (mode === 'exit') setTimeout(() => process.exit(0), 50);
`;

const dir = process.argv[2];
const modes = ['exit', 'terminate', 'terminate-in-cb', 'exit', 'terminate'];
for (const [i, mode] of modes.entries()) {
  const w = new Worker(body, { eval: true, workerData: { addon: ADDON_PATH, path: `${dir}/w${i}.sock`, mode } });
  let callbacks = 0;
  w.on('message', () => {
    callbacks++;
    if (mode !== 'exit') setTimeout(() => w.terminate(), 20);
  });
  const code = await new Promise((resolve) => w.on('exit', resolve));
  print({ mode, callbacks, code });
}
print({ done: true });
