// connectStream: a SOCK_STREAM client for clamd's local socket, whose FILDES
// command takes the file to scan as one descriptor in SCM_RIGHTS. The peer is
// a Python stream server in a child process that reads the passed file
// through the descriptor and echoes what it read, so the test shows the
// descriptor really crossed processes, not just that sendmsg returned.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { PYTHON, child, openFds, tempDir } from '../test-helpers/harness.mjs';

const { constants: C } = native;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function fdinfoFlags(fd: number) {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return parseInt(m![1]!, 8);
}

// A clamd-like peer: read a NUL-terminated command, then one byte carrying a
// descriptor, then answer "<command>:<the file's bytes>\0" and close.
const PEER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print('ready', flush=True)
c, _ = s.accept()
cmd = b''
while not cmd.endswith(b'\\0'):
    cmd += c.recv(1)
fds = array.array('i')
data, anc, flags, addr = c.recvmsg(1, socket.CMSG_SPACE(fds.itemsize))
for level, kind, payload in anc:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
content = os.pread(fds[0], 1 << 16, 0) if len(fds) == 1 else b'NO-FD'
c.sendall(cmd[:-1] + b':' + content + b'\\0')
c.close()
`;

/** readAll - everything the peer sends until EOF, waiting with poll(). */
function readAll(fd: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const p = native.poll(fd, () => {
      try {
        for (;;) {
          const r = native.recv(fd, 4096);
          if (r === null) return; // EAGAIN: wait for the next readiness
          expect(r.fd).toBe(-1);
          if (r.data.length === 0) {
            p.close();
            resolve(Buffer.concat(parts));
            return;
          }
          parts.push(r.data);
        }
      } catch (err) {
        p.close();
        reject(err);
      }
    });
    p.start(C.POLL_READABLE);
  });
}

describe('connectStream', () => {
  it('connects a non-blocking, close-on-exec SOCK_STREAM socket that passes a descriptor the peer can read', async () => {
    const sock = path.join(dir, 'clamd.sock');
    const peer = child([PYTHON, '-c', PEER, sock]);
    expect(await peer.line()).toBe('ready');

    const memfd = native.memfdCreate('stream-test');
    fs.writeSync(memfd, 'bytes only the descriptor can show');
    native.addSeals(memfd, native.ALL_SEALS);
    const fd = native.connectStream(sock);
    try {
      expect(native.socketInfo(fd)).toEqual({ domain: C.AF_UNIX, type: C.SOCK_STREAM, listening: false });
      expect(fdinfoFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
      expect(native.send(fd, Buffer.from('zFILDES\0'), -1)).toBe(8);
      expect(native.send(fd, Buffer.from([0]), memfd)).toBe(1);
      const reply = await readAll(fd);
      expect(reply.toString()).toBe('zFILDES:bytes only the descriptor can show\0');
    } finally {
      fs.closeSync(fd);
      fs.closeSync(memfd);
    }
    const res = await peer.done;
    expect(res.code, res.stderr).toBe(0);
  });

  it('fails at once, closing its socket: ENOENT, ECONNREFUSED (stale file), EPROTOTYPE (a SEQPACKET listener)', () => {
    const before = openFds();
    expect(() => native.connectStream(path.join(dir, 'missing.sock'))).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'connect' }),
    );

    const stale = path.join(dir, 'stale.sock');
    const lfd = native.listen(stale, 0o600, 1);
    fs.closeSync(lfd); // the file stays, nobody listens
    expect(() => native.connectStream(stale)).toThrow(expect.objectContaining({ code: 'ECONNREFUSED', syscall: 'connect' }));

    const seq = path.join(dir, 'seq.sock');
    const sfd = native.listen(seq, 0o600, 1);
    try {
      expect(() => native.connectStream(seq)).toThrow(expect.objectContaining({ code: 'EPROTOTYPE', syscall: 'connect' }));
    } finally {
      fs.closeSync(sfd);
    }
    expect(openFds()).toEqual(before);
  });

  it('a SEQPACKET connect() to a stream listener is refused too (the two never mix)', async () => {
    const sock = path.join(dir, 'stream.sock');
    const py = `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print('ready', flush=True)
time.sleep(5)
`;
    const peer = child([PYTHON, '-c', py, sock]);
    try {
      expect(await peer.line()).toBe('ready');
      expect(() => native.connect(sock)).toThrow(expect.objectContaining({ code: 'EPROTOTYPE' }));
      const fd = native.connectStream(sock);
      fs.closeSync(fd);
    } finally {
      peer.proc.kill();
      await peer.done;
    }
  });
});
