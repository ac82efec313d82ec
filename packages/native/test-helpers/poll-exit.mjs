// poll-exit - does a process with a Poller in state MODE exit by itself?
//   node [--expose-gc] poll-exit.mjs DIR MODE
// Prints one JSON line per event; 'exit' last if the loop drained.
//   never-started  poll() only
//   stopped        start(), then stop()
//   closed         start(), then close()
//   active         start() and nothing else: must NOT exit (the control case)
//   close-in-cb    close() (twice) from inside the callback
//   stop-in-cb     stop() from inside the callback
//   gc-active      start(), drop every reference, gc(): the callback must still fire
//   gc-stopped     start(), stop(), drop, gc(): collected, handle released, exits
//   throw-in-cb    the callback throws: it must surface as uncaughtException
import fs from 'node:fs';
import { native, print } from './addon.mjs';

const [dir, mode] = process.argv.slice(2);
const R = native.constants.POLL_READABLE;
const path = `${dir}/${mode}.sock`;
const lfd = native.listen(path, 0o600, 4);
const cfd = native.connect(path);
const sfd = native.accept(lfd);
process.on('exit', () => print({ event: 'exit' }));

const sendLater = () => setTimeout(() => native.send(cfd, Buffer.from('ping'), -1), 50);

if (mode === 'never-started') {
  native.poll(sfd, () => print({ event: 'callback' }));
} else if (mode === 'stopped' || mode === 'closed' || mode === 'active') {
  const p = native.poll(sfd, () => print({ event: 'callback', data: native.recv(sfd, 64).data.toString() }));
  p.start(R);
  if (mode === 'stopped') p.stop();
  if (mode === 'closed') p.close();
  native.send(cfd, Buffer.from('ping'), -1); // readable now: only 'active' may call back
  setTimeout(() => print({ event: 'timer' }), 200);
} else if (mode === 'close-in-cb' || mode === 'stop-in-cb') {
  const p = native.poll(sfd, (status, events) => {
    print({ event: 'callback', status, events, data: native.recv(sfd, 64).data.toString() });
    if (mode === 'close-in-cb') {
      p.close();
      p.close();
    } else p.stop();
    native.send(cfd, Buffer.from('again'), -1); // must not call back any more
  });
  p.start(R);
  sendLater();
} else if (mode === 'gc-active') {
  native.poll(sfd, () => {
    print({ event: 'callback', data: native.recv(sfd, 64).data.toString() });
    process.exit(0);
  }).start(R);
  for (let i = 0; i < 3; i++) globalThis.gc();
  setTimeout(() => {
    globalThis.gc();
    native.send(cfd, Buffer.from('ping'), -1);
  }, 50);
} else if (mode === 'gc-stopped') {
  const registry = new FinalizationRegistry(() => print({ event: 'collected' }));
  (() => {
    const p = native.poll(sfd, () => print({ event: 'callback' }));
    p.start(R);
    p.stop();
    registry.register(p, 'poller');
  })();
  const spin = (n) => {
    globalThis.gc();
    if (n > 0) setTimeout(() => spin(n - 1), 10);
    else native.send(cfd, Buffer.from('ping'), -1);
  };
  spin(10);
} else if (mode === 'throw-in-cb') {
  process.on('uncaughtException', (e) => {
    print({ event: 'uncaught', message: e.message });
    process.exit(0);
  });
  native.poll(sfd, () => {
    throw new Error('boom from callback');
  }).start(R);
  sendLater();
} else {
  throw new Error(`poll-exit.mjs: unknown mode ${mode}`);
}
fs.unlinkSync(path);
