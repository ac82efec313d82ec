// recv() against a hostile peer (a Python child, because the addon itself can
// only ever send one descriptor): every refused record closes every descriptor
// that came with it, and the next good record is still received.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { HELPERS, PYTHON, acceptOne, child, openFds, tempDir } from '../test-helpers/harness.mjs';

let dir: string;
beforeEach(() => {
  dir = tempDir();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

// hostile - run hostile_peer.py in MODE to completion; return our end of its connection.
async function hostile(mode: string) {
  const sock = path.join(dir, `${mode}.sock`);
  const file = path.join(dir, 'payload');
  fs.writeFileSync(file, 'payload');
  const lfd = native.listen(sock, 0o600, 4);
  const c = child([PYTHON, path.join(HELPERS, 'hostile_peer.py'), sock, mode, file]);
  const conn = await acceptOne(lfd, c);
  const res = await c.done;
  expect(res.code, res.stderr).toBe(0);
  fs.closeSync(lfd);
  return conn;
}

// refused - recv once, expecting a refusal; check nothing was left open.
function refused(fd: number, maxBytes: number) {
  const before = openFds();
  let err: any;
  try {
    native.recv(fd, maxBytes);
  } catch (e) {
    err = e;
  }
  expect(openFds()).toEqual(before); // no descriptor leaked
  expect(err, 'recv should have refused the record').toBeInstanceOf(Error);
  expect(err.syscall).toBe('recvmsg');
  expect(err.message).toMatch(new RegExp(`^recvmsg: ${err.code} \\(record refused, \\d+ descriptors? closed\\)$`));
  return err;
}

// good - the next record is the good one, with its one descriptor; then EOF.
function expectGoodThenEof(conn: number) {
  const r = native.recv(conn, 1024)!;
  expect(r.data.toString()).toBe('good');
  expect(fs.readFileSync(r.fd, 'utf8')).toBe('payload');
  fs.closeSync(r.fd);
  expect(native.recv(conn, 1024)).toEqual({ data: Buffer.alloc(0), fd: -1 });
  fs.closeSync(conn);
}

describe('recv refuses hostile records and closes what arrived', () => {
  it('two descriptors in one record: ESLUICE_MULTIFD, both closed', async () => {
    const conn = await hostile('two-fds');
    expect(refused(conn, 1024)).toMatchObject({ code: 'ESLUICE_MULTIFD', fds: 2 });
    expectGoodThenEof(conn);
  });

  it('nine descriptors: ESLUICE_MULTIFD, all nine closed', async () => {
    const conn = await hostile('nine-fds');
    expect(refused(conn, 1024)).toMatchObject({ code: 'ESLUICE_MULTIFD', fds: 9 });
    expectGoodThenEof(conn);
  });

  it('more descriptors than the control buffer holds: ESLUICE_CTRUNC, the installed ones closed', async () => {
    const conn = await hostile('many-fds');
    const err = refused(conn, 1024);
    expect(err.code).toBe('ESLUICE_CTRUNC');
    // The kernel installs what fits and drops the rest: the control buffer has
    // room for 8 fds plus credentials, which in one SCM_RIGHTS message is 16.
    expect(err.fds).toBe(16);
    expectGoodThenEof(conn);
  });

  it('a record longer than maxBytes: ESLUICE_TRUNC, its descriptor closed', async () => {
    const conn = await hostile('big');
    expect(refused(conn, 10)).toMatchObject({ code: 'ESLUICE_TRUNC', fds: 1 });
    expectGoodThenEof(conn);
  });

  it('SCM_CREDENTIALS (socket handed over with SO_PASSCRED set): ESLUICE_CMSG', async () => {
    const conn = await hostile('creds');
    const handed = native.recv(conn, 1024)!;
    expect(handed.data.toString()).toBe('here');
    expect(native.socketInfo(handed.fd).type).toBe(native.constants.SOCK_SEQPACKET);
    // credentials plus one SCM_RIGHTS fd: refused, the fd closed
    expect(refused(handed.fd, 1024)).toMatchObject({ code: 'ESLUICE_CMSG', fds: 1 });
    // credentials alone: refused as well
    expect(refused(handed.fd, 1024)).toMatchObject({ code: 'ESLUICE_CMSG', fds: 0 });
    fs.closeSync(handed.fd);
    expectGoodThenEof(conn);
  });

  it('SCM_PIDFD (socket handed over with SO_PASSPIDFD set): ESLUICE_CMSG, the pidfd closed', async () => {
    const conn = await hostile('pidfd');
    const handed = native.recv(conn, 1024)!;
    // the kernel installs a pidfd with each record; with the SCM_RIGHTS fd that makes 2
    expect(refused(handed.fd, 1024)).toMatchObject({ code: 'ESLUICE_CMSG', fds: 2 });
    expect(refused(handed.fd, 1024)).toMatchObject({ code: 'ESLUICE_CMSG', fds: 1 });
    fs.closeSync(handed.fd);
    expectGoodThenEof(conn);
  });
});
