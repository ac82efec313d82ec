// addon - load the built addon by absolute path, for child processes.
// Children run without vitest's alias, so they cannot import @sluice/native.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ADDON_PATH = fileURLToPath(new URL('../build/Release/sluice_native.node', import.meta.url));
export const native = createRequire(import.meta.url)(ADDON_PATH);

// waitFor - resolve with the events once fd is ready; the poller is closed
// from inside its own callback, which is one of the cases under test.
export function waitFor(fd, events = native.constants.POLL_READABLE) {
  return new Promise((resolve, reject) => {
    const poller = native.poll(fd, (status, got) => {
      poller.close();
      if (status < 0) reject(new Error(`poll status ${status}`));
      else resolve(got);
    });
    poller.start(events);
  });
}

// print - one JSON line on stdout, the way every helper reports back.
export function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}
