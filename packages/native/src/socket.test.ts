// Sockets across real processes: listen modes under any umask, adoption of an
// inherited listener, connect/accept, SO_PEERCRED of a child under another uid,
// one record with and without a descriptor in each direction.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import {
  CAN_SWITCH_UID,
  HELPERS,
  NOBODY,
  PYTHON,
  acceptOne,
  child,
  lastJson,
  nodeHelper,
  tempDir,
  waitFor,
} from '../test-helpers/harness.mjs';

const { constants: C } = native;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const STRACE = '/usr/bin/strace';

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// pair - a connected pair in this process: [listening, client, server].
function pair(name = 's') {
  const sock = path.join(dir, name);
  const lfd = native.listen(sock, 0o600, 4);
  const c = native.connect(sock);
  const s = native.accept(lfd);
  expect(s).toBeGreaterThanOrEqual(0);
  return [lfd, c, s] as const;
}

// cloexecAndNonblock - both flags, read from /proc/self/fdinfo.
function fdinfoFlags(fd: number) {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return parseInt(m![1]!, 8);
}

describe('listen', () => {
  it.each([
    [0o000, 0o600],
    [0o000, 0o660],
    [0o000, 0o666],
    [0o077, 0o660],
    [0o022, 0o666],
    [0o777, 0o600],
    [0o000, 0o000],
  ])('umask %o, mode %o: the socket file has exactly the mode', async (umask, mode) => {
    const sock = path.join(dir, 'l.sock');
    const c = nodeHelper('listen-umask.mjs', [sock, umask.toString(8), mode.toString(8)]);
    const res = await c.done;
    expect(res.code, res.stderr).toBe(0);
    const out = lastJson(res.stdout);
    expect(out.mode.toString(8)).toBe(mode.toString(8));
    expect(out.info).toEqual({ domain: C.AF_UNIX, type: C.SOCK_SEQPACKET, listening: true });
  });

  // The no-race property, observed: strace makes the chmod after bind() a no-op,
  // so the file keeps the mode bind() gave it. That must already be `mode`
  // (umask 0), or narrower (umask 077): never wider, never 0777.
  it.skipIf(!fs.existsSync(STRACE)).each([
    [0o000, 0o600, 0o600],
    [0o000, 0o666, 0o666],
    [0o077, 0o660, 0o600],
  ])(`umask %o, mode %o, chmod suppressed: bind() alone gives %o${fs.existsSync(STRACE) ? '' : ` [skipped: no ${STRACE} (Debian strace)]`}`, async (umask, mode, atBind) => {
    const sock = path.join(dir, 'race.sock');
    const trace = path.join(dir, 'trace');
    const helper = path.join(HELPERS, 'listen-umask.mjs');
    const argv = [STRACE, '-f', '-o', trace, '-e', 'trace=chmod', '-e', 'inject=chmod:retval=0'];
    const res = await child([...argv, process.execPath, helper, sock, umask.toString(8), mode.toString(8)]).done;
    expect(res.code, res.stderr).toBe(0);
    expect(fs.readFileSync(trace, 'utf8')).toMatch(/chmod\("\/proc\/self\/fd\/\d+", 0\d+\)\s+= 0 \(INJECTED\)/);
    expect(lastJson(res.stdout).mode.toString(8)).toBe(atBind.toString(8));
  });

  it('returns a non-blocking, close-on-exec listening descriptor', () => {
    const lfd = native.listen(path.join(dir, 's'), 0o600, 1);
    expect(fdinfoFlags(lfd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
    expect(native.accept(lfd)).toBe(-1); // nothing pending: -1, not a throw
    fs.closeSync(lfd);
  });

  it('refuses an existing path (EADDRINUSE) and never replaces it', () => {
    const sock = path.join(dir, 's');
    fs.writeFileSync(sock, 'not a socket');
    expect(() => native.listen(sock, 0o600, 1)).toThrow(
      expect.objectContaining({ code: 'EADDRINUSE', syscall: 'bind', errno: -98 }),
    );
    expect(fs.readFileSync(sock, 'utf8')).toBe('not a socket');
  });

  it('throws errno errors in the documented shape', () => {
    let err: any;
    try {
      native.listen(path.join(dir, 'missing', 's'), 0o600, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('bind: ENOENT (No such file or directory)');
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'bind' });
  });
});

describe('socketInfo and setNonblockCloexec', () => {
  it('adopts an inherited, blocking, inheritable listener (systemd style)', async () => {
    const sock = path.join(dir, 'adopt.sock');
    const py = [
      'import os, socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)',
      `s.bind(${JSON.stringify(sock)})`,
      's.listen(4)',
      'fd = s.detach()',
      'if fd != 3: os.dup2(fd, 3); os.close(fd)',
      'os.set_inheritable(3, True)  # what systemd hands over: inheritable and blocking',
      `os.execv(sys.argv[1], [sys.argv[1], ${JSON.stringify(path.join(HELPERS, 'adopt.mjs'))}])`,
    ].join('\n');
    const res = await child([PYTHON, '-c', py, process.execPath]).done;
    expect(res.code, res.stderr).toBe(0);
    const out = lastJson(res.stdout);
    expect(out.info).toEqual({ domain: C.AF_UNIX, type: C.SOCK_SEQPACKET, listening: true });
    // Node's own startup (uv_disable_stdio_inheritance) already marks every
    // inherited fd close-on-exec; O_NONBLOCK is what the adopter must add.
    expect(out.before & O_NONBLOCK).toBe(0);
    expect(out.after & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
    expect(out.again).toBe(out.after);
    expect(out.accept).toBe(-1); // non-blocking now: no connection, no hang
  });

  it('reports a connected socket as not listening, and ENOTSOCK for a file', () => {
    const [lfd, c, s] = pair();
    expect(native.socketInfo(c)).toEqual({ domain: 1, type: 5, listening: false });
    const mfd = native.memfdCreate('not-a-socket');
    expect(() => native.socketInfo(mfd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
    [lfd, c, s, mfd].forEach((fd) => fs.closeSync(fd));
  });
});

describe('connect and accept', () => {
  it('connect fails with ENOENT, and ECONNREFUSED on a stale socket file', () => {
    expect(() => native.connect(path.join(dir, 'none'))).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'connect' }),
    );
    const sock = path.join(dir, 'stale');
    fs.closeSync(native.listen(sock, 0o600, 1));
    expect(() => native.connect(sock)).toThrow(expect.objectContaining({ code: 'ECONNREFUSED' }));
  });

  it('gives both ends SOCK_NONBLOCK|SOCK_CLOEXEC', () => {
    const fds = pair();
    for (const fd of fds) expect(fdinfoFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
    fds.forEach((fd) => fs.closeSync(fd));
  });

  it('peerCred returns the real pid/uid/gid of a child under another uid', async () => {
    const sock = path.join(dir, 'cred.sock');
    const lfd = native.listen(sock, 0o666, 4);
    const c = nodeHelper('peer.mjs', ['cred', sock], { asUser: true });
    const conn = await acceptOne(lfd, c);
    const reported = JSON.parse(await c.line());
    const cred = native.peerCred(conn);
    expect(cred).toEqual(reported);
    expect(cred.pid).toBe(c.proc.pid);
    if (CAN_SWITCH_UID) expect(cred).toMatchObject({ uid: NOBODY, gid: NOBODY });
    expect(native.peerCred(lfd)).toMatchObject({ pid: process.pid, uid: process.getuid!() });
    fs.closeSync(conn); // the child waits for EOF
    expect((await c.done).code).toBe(0);
    fs.closeSync(lfd);
  });

  it.skipIf(!CAN_SWITCH_UID)(`the mode is enforced: another uid cannot connect to a 0600 socket${CAN_SWITCH_UID ? '' : ' [skipped: switching to another uid needs root]'}`, async () => {
    const sock = path.join(dir, 'private.sock');
    const lfd = native.listen(sock, 0o600, 4);
    const res = await nodeHelper('peer.mjs', ['connect', sock], { asUser: true }).done;
    expect(lastJson(res.stdout)).toEqual({ result: 'EACCES' });
    fs.closeSync(lfd);
  });
});

describe('send and recv', () => {
  it('receives bytes and one descriptor from another process; same file', async () => {
    const sock = path.join(dir, 'fd.sock');
    const file = path.join(dir, 'upload.bin');
    fs.writeFileSync(file, 'file contents', { mode: 0o644 });
    const lfd = native.listen(sock, 0o666, 4);
    const c = nodeHelper('peer.mjs', ['send-fd', sock, file, 'hello record'], { asUser: true });
    const conn = await acceptOne(lfd, c);
    await waitFor(conn);
    const r = native.recv(conn, 4096)!;
    expect(r.data).toBeInstanceOf(Buffer);
    expect(r.data.toString()).toBe('hello record');
    expect(r.fd).toBeGreaterThanOrEqual(0);
    const got = fs.fstatSync(r.fd);
    const want = fs.statSync(file);
    expect([got.dev, got.ino]).toEqual([want.dev, want.ino]);
    expect(native.fdFlags(r.fd) & C.O_ACCMODE).toBe(C.O_RDONLY);
    expect(fdinfoFlags(r.fd) & O_CLOEXEC).toBe(O_CLOEXEC); // MSG_CMSG_CLOEXEC
    expect(fs.readFileSync(r.fd, 'utf8')).toBe('file contents');
    expect(JSON.parse(await c.line())).toMatchObject({ sent: 12 });
    fs.closeSync(r.fd);
    fs.closeSync(conn);
    expect((await c.done).code).toBe(0);
    fs.closeSync(lfd);
  });

  it('receives a record without a descriptor as fd -1', async () => {
    const sock = path.join(dir, 'nofd.sock');
    const lfd = native.listen(sock, 0o666, 4);
    const c = nodeHelper('peer.mjs', ['send-nofd', sock, 'just bytes'], { asUser: true });
    const conn = await acceptOne(lfd, c);
    await waitFor(conn);
    expect(native.recv(conn, 4096)).toEqual({ data: Buffer.from('just bytes'), fd: -1 });
    fs.closeSync(conn);
    expect((await c.done).code).toBe(0);
    fs.closeSync(lfd);
  });

  it('sends a descriptor to another process; the child sees the same file', async () => {
    const sock = path.join(dir, 'give.sock');
    const file = path.join(dir, 'given.txt');
    fs.writeFileSync(file, 'given');
    const lfd = native.listen(sock, 0o666, 4);
    const c = nodeHelper('peer.mjs', ['recv-fd', sock], { asUser: true });
    const conn = await acceptOne(lfd, c);
    const fd = fs.openSync(file, 'r');
    expect(native.send(conn, Buffer.from('take this'), fd)).toBe(9);
    const res = await c.done;
    expect(res.code, res.stderr).toBe(0);
    const out = lastJson(res.stdout);
    const st = fs.fstatSync(fd);
    expect(out).toMatchObject({ data: 'take this', ino: st.ino, dev: st.dev });
    expect(out.flags & C.O_ACCMODE).toBe(C.O_RDONLY);
    [fd, conn, lfd].forEach((x) => fs.closeSync(x));
  });

  it('a zero-length record reads as an empty Buffer; so does EOF', () => {
    const [lfd, c, s] = pair();
    expect(native.send(c, new Uint8Array(0), -1)).toBe(0);
    const r = native.recv(s, 16)!;
    expect(r.data.length).toBe(0);
    expect(r.fd).toBe(-1);
    fs.closeSync(c);
    expect(native.recv(s, 16)).toEqual({ data: Buffer.alloc(0), fd: -1 });
    [lfd, s].forEach((fd) => fs.closeSync(fd));
  });

  it('a zero-length record can still carry a descriptor, which the caller owns', () => {
    const [lfd, c, s] = pair();
    const mfd = native.memfdCreate('zero');
    native.send(c, Buffer.alloc(0), mfd);
    const r = native.recv(s, 16)!;
    expect(r.data.length).toBe(0);
    expect(fs.fstatSync(r.fd).ino).toBe(fs.fstatSync(mfd).ino);
    [lfd, c, s, mfd, r.fd].forEach((fd) => fs.closeSync(fd));
  });

  it('sends a Uint8Array view at its offset, and a maxBytes of 0 works', () => {
    const [lfd, c, s] = pair();
    const backing = Buffer.from('xxABCyy');
    native.send(c, new Uint8Array(backing.buffer, backing.byteOffset + 2, 3), -1);
    expect(native.recv(s, 3)!.data.toString()).toBe('ABC');
    native.send(c, Buffer.alloc(0), -1);
    expect(native.recv(s, 0)!.data.length).toBe(0);
    [lfd, c, s].forEach((fd) => fs.closeSync(fd));
  });

  it('returns null / -1 on EAGAIN instead of blocking or throwing', () => {
    const [lfd, c, s] = pair();
    expect(native.recv(s, 16)).toBeNull();
    const chunk = Buffer.alloc(32 * 1024);
    let sent = 0;
    let last = 0;
    for (let i = 0; i < 10_000 && (last = native.send(c, chunk, -1)) !== -1; i++) sent++;
    expect(last).toBe(-1);
    expect(sent).toBeGreaterThan(0);
    [lfd, c, s].forEach((fd) => fs.closeSync(fd));
  });

  it('send to a closed peer throws EPIPE (MSG_NOSIGNAL: no SIGPIPE)', () => {
    const [lfd, c, s] = pair();
    fs.closeSync(s);
    expect(() => native.send(c, Buffer.from('x'), -1)).toThrow(
      expect.objectContaining({ code: 'EPIPE', syscall: 'sendmsg' }),
    );
    [lfd, c].forEach((fd) => fs.closeSync(fd));
  });

  it('passing a descriptor that is not open throws EBADF and sends nothing', () => {
    const [lfd, c, s] = pair();
    expect(() => native.send(c, Buffer.from('x'), 999_999)).toThrow(
      expect.objectContaining({ code: 'EBADF', syscall: 'sendmsg' }),
    );
    expect(native.recv(s, 16)).toBeNull();
    [lfd, c, s].forEach((fd) => fs.closeSync(fd));
  });
});
