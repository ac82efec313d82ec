// peer - a well-behaved Sluice peer in its own process (maybe under another uid).
//
//   node peer.mjs cred      SOCK                 report own pid/uid/gid, wait for EOF
//   node peer.mjs connect   SOCK                 report connect's error code, or 'ok'
//   node peer.mjs send-fd   SOCK FILE PAYLOAD    send PAYLOAD with FILE opened O_RDONLY
//   node peer.mjs send-nofd SOCK PAYLOAD         send PAYLOAD without a descriptor
//   node peer.mjs recv-fd   SOCK                 receive one record; report the fd's
//                                                identity and whether a read-write
//                                                reopen of it can change the bytes
import fs from 'node:fs';
import { native, waitFor, print } from './addon.mjs';

const [cmd, sock, ...rest] = process.argv.slice(2);

// untilEof - keep the connection open until the other side closes it.
async function untilEof(fd) {
  for (;;) {
    await waitFor(fd);
    const r = native.recv(fd, 64);
    if (r && r.data.length === 0) return;
  }
}

// tryWrite - reopen /proc/self/fd/N read-write and write one byte: 'ok' or the error code.
function tryWrite(fd) {
  let w = -1;
  try {
    w = fs.openSync(`/proc/self/fd/${fd}`, 'r+');
    fs.writeSync(w, 'X', 0);
    return 'ok';
  } catch (e) {
    return e.code;
  } finally {
    if (w >= 0) fs.closeSync(w);
  }
}

const me = { pid: process.pid, uid: process.getuid(), gid: process.getgid() };
if (cmd === 'connect') {
  try {
    fs.closeSync(native.connect(sock));
    print({ result: 'ok' });
  } catch (e) {
    print({ result: e.code });
  }
} else if (cmd === 'cred') {
  const fd = native.connect(sock);
  print(me);
  await untilEof(fd);
} else if (cmd === 'send-fd' || cmd === 'send-nofd') {
  const fd = native.connect(sock);
  const file = cmd === 'send-fd' ? fs.openSync(rest[0], 'r') : -1;
  const payload = Buffer.from(cmd === 'send-fd' ? rest[1] : rest[0]);
  const sent = native.send(fd, payload, file);
  if (file >= 0) fs.closeSync(file); // the receiver has its own reference now
  print({ ...me, sent });
  await untilEof(fd);
} else if (cmd === 'recv-fd') {
  const fd = native.connect(sock);
  await waitFor(fd);
  const r = native.recv(fd, 65536);
  const out = { data: r.data.toString(), fd: r.fd };
  if (r.fd >= 0) {
    const st = fs.fstatSync(r.fd);
    Object.assign(out, { ino: st.ino, dev: st.dev, flags: native.fdFlags(r.fd), write: tryWrite(r.fd) });
  }
  print(out);
} else {
  throw new Error(`peer.mjs: unknown command ${cmd}`);
}
