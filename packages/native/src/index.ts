/*
 * NAME
 *   @sluice/native - the only C in Sluice: descriptor passing, peer
 *   credentials, sealed memfds, and the few other syscalls Node lacks.
 *
 * SYNOPSIS
 *   import * as native from '@sluice/native';
 *
 * DESCRIPTION
 *   A thin, policy-free binding. Every function performs one syscall (or a
 *   fixed short sequence of them) and reports failure as a JS exception whose
 *   `code` is the errno name (e.g. 'EAGAIN', 'EPERM') and whose `syscall` names
 *   the call. Every decision (which uid to trust, which access mode is
 *   acceptable, which size is too big) is made in TypeScript by the callers.
 *
 *   All sockets are AF_UNIX SOCK_SEQPACKET, non-blocking and close-on-exec.
 *   Every descriptor the addon creates or receives is close-on-exec.
 *
 * NOT EXPOSED
 *   - Blocking variants of accept/recv/send: readiness comes from `poll()` on
 *     the libuv loop; nothing parks a threadpool thread.
 *   - close(), fstat(), pread(): node:fs already does these on raw descriptors.
 *   - SCM_CREDENTIALS / SO_PASSCRED: SO_PEERCRED at connect time is what we
 *     check; any control message other than one SCM_RIGHTS fd is refused.
 *   - More than one descriptor per record, in either direction.
 */
import { createRequire } from 'node:module';

/** Refusal codes thrown by `recv` (the record is consumed and every fd it carried is closed). */
export type RecvRefusal =
  | 'ESLUICE_TRUNC' // MSG_TRUNC: record longer than the buffer
  | 'ESLUICE_CTRUNC' // MSG_CTRUNC: control data truncated (e.g. too many fds)
  | 'ESLUICE_MULTIFD' // more than one descriptor in SCM_RIGHTS
  | 'ESLUICE_CMSG'; // a control message other than SCM_RIGHTS

export interface Received {
  /** The record's bytes. A zero-length record is indistinguishable from EOF on SEQPACKET. */
  data: Buffer;
  /** The one descriptor that came with the record, or -1. Owned by the caller. */
  fd: number;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface SocketInfo {
  /** SO_DOMAIN (AF_UNIX = 1). */
  domain: number;
  /** SO_TYPE (SOCK_SEQPACKET = 5). */
  type: number;
  /** SO_ACCEPTCONN. */
  listening: boolean;
}

export interface Poller {
  /** (Re)start watching for `events` (POLL_READABLE | POLL_WRITABLE). */
  start(events: number): void;
  /** Stop watching; the handle no longer keeps the loop alive. */
  stop(): void;
  /** Stop and release the uv_poll handle. Idempotent. Does not close the fd. */
  close(): void;
}

export interface NativeBinding {
  /** socket()+fchmod(mode)+bind()+chmod(path, mode)+listen(). The path never exists with more permissions than `mode`. Returns the listening fd. */
  listen(path: string, mode: number, backlog: number): number;
  /** getsockopt(SO_DOMAIN, SO_TYPE, SO_ACCEPTCONN) of any socket fd (e.g. one from LISTEN_FDS). */
  socketInfo(fd: number): SocketInfo;
  /** fcntl: set O_NONBLOCK and FD_CLOEXEC on an adopted descriptor. */
  setNonblockCloexec(fd: number): void;
  /** socket()+connect() to a path. Throws on failure (ECONNREFUSED, ENOENT, EAGAIN when the backlog is full). */
  connect(path: string): number;
  /** accept4(SOCK_NONBLOCK|SOCK_CLOEXEC). Returns the new fd, or -1 on EAGAIN. */
  accept(fd: number): number;
  /** sendmsg(MSG_NOSIGNAL) of one record, with exactly one fd in SCM_RIGHTS when passFd >= 0. Returns bytes sent, or -1 on EAGAIN. */
  send(fd: number, data: Uint8Array, passFd: number): number;
  /** recvmsg(MSG_CMSG_CLOEXEC) of one record of at most maxBytes. Returns null on EAGAIN. Throws RecvRefusal codes (see above). */
  recv(fd: number, maxBytes: number): Received | null;
  /** getsockopt(SO_PEERCRED). */
  peerCred(fd: number): PeerCred;
  /** memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING). */
  memfdCreate(name: string): number;
  /** fcntl(F_ADD_SEALS). */
  addSeals(fd: number, seals: number): void;
  /** fcntl(F_GET_SEALS). */
  getSeals(fd: number): number;
  /** fcntl(F_GETFL): the status flags, including O_ACCMODE bits and O_PATH. */
  fdFlags(fd: number): number;
  /** fcntl(F_SETLEASE, F_RDLCK | F_UNLCK). Fails with EAGAIN while any process holds the file open for writing. */
  setLease(fd: number, type: number): void;
  /** linkat(AT_FDCWD, "/proc/self/fd/<fd>", AT_FDCWD, path, AT_SYMLINK_FOLLOW): give an O_TMPFILE a name. EEXIST if path exists (never overwrites). */
  linkFd(fd: number, path: string): void;
  /** uv_poll on fd; callback(status, events) runs on the JS thread. status < 0 is a libuv error. */
  poll(fd: number, callback: (status: number, events: number) => void): Poller;
  /** Constants the callers need to interpret results. */
  constants: {
    AF_UNIX: number;
    SOCK_SEQPACKET: number;
    O_ACCMODE: number;
    O_RDONLY: number;
    O_WRONLY: number;
    O_RDWR: number;
    O_PATH: number;
    O_TMPFILE: number;
    F_SEAL_SEAL: number;
    F_SEAL_SHRINK: number;
    F_SEAL_GROW: number;
    F_SEAL_WRITE: number;
    F_RDLCK: number;
    F_UNLCK: number;
    POLL_READABLE: number;
    POLL_WRITABLE: number;
    POLL_DISCONNECT: number;
  };
}

const require = createRequire(import.meta.url);

/** load - find the compiled addon (build/Release after `node-gyp rebuild`). */
function load(): NativeBinding {
  return require('../build/Release/sluice_native.node') as NativeBinding;
}

export const native: NativeBinding = load();
export const constants = native.constants;
export const {
  listen,
  socketInfo,
  setNonblockCloexec,
  connect,
  accept,
  send,
  recv,
  peerCred,
  memfdCreate,
  addSeals,
  getSeals,
  fdFlags,
  setLease,
  linkFd,
  poll,
} = native;

/** The four seals that make a memfd immutable for everyone, its creator included. */
export const ALL_SEALS =
  native.constants.F_SEAL_WRITE |
  native.constants.F_SEAL_GROW |
  native.constants.F_SEAL_SHRINK |
  native.constants.F_SEAL_SEAL;
