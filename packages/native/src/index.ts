/*
 * NAME
 *   @sluice/native - the only C code in this repository: descriptor passing,
 *   peer credentials, sealed memfds, and the few other syscalls Node lacks.
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
 *   Errors: a failed syscall throws an Error with message
 *   "recvmsg: EAGAIN (Resource temporarily unavailable)", `code` 'EAGAIN',
 *   `errno` -11 (negative, as node:fs does) and `syscall` 'recvmsg'; libuv
 *   failures in poll() look the same with syscall 'uv_poll_init' or
 *   'uv_poll_start'. A wrong argument type throws TypeError
 *   (code ERR_INVALID_ARG_TYPE), a number that is not an integer in range, an
 *   empty or over-long string, a RangeError (ERR_OUT_OF_RANGE); both messages
 *   name the function and the argument, e.g. "recv(): argument 'fd' ...".
 *   Nothing reaches a syscall before every argument has been checked.
 *   Descriptors are integers in [0, 2^31-1].
 *
 *   All sockets are AF_UNIX SOCK_SEQPACKET, non-blocking and close-on-exec,
 *   except those of connectStream(): SOCK_STREAM, for clamd's FILDES command.
 *   Every descriptor the addon creates or receives is close-on-exec.
 *
 * NOT EXPOSED
 *   - Blocking variants of accept/recv/send: readiness comes from `poll()` on
 *     the libuv loop; nothing parks a threadpool thread.
 *   - close(), fstat(), pread(): node:fs already does these on raw descriptors.
 *   - SCM_CREDENTIALS / SO_PASSCRED: SO_PEERCRED at connect time is what we
 *     check; any control message other than one SCM_RIGHTS fd is refused.
 *   - More than one descriptor per record, in either direction.
 *   - Abstract-namespace sockets: no filesystem permission, so no mode to check.
 *   - SO_PEERPIDFD: available on this kernel, but nothing consumes a pidfd yet.
 *   - Write leases (F_WRLCK), F_SETSIG: only "is anyone writing?" is asked
 *     (setLease), and "did a writer open it while we held the lease?" (getLease).
 *   - prctl() beyond PR_SET/GET_DUMPABLE (setDumpable, getDumpable); resource
 *     limits (RLIMIT_CORE) are the unit's (LimitCORE=), not set from here.
 */
import { createRequire } from 'node:module';

/**
 * Refusal codes thrown by `recv`. The record is consumed, every descriptor it
 * carried (SCM_RIGHTS, and SCM_PIDFD if the socket had SO_PASSPIDFD) has been
 * closed, and the connection is still usable. The Error has `code`,
 * `syscall` 'recvmsg', no `errno`, and `fds`: how many descriptors were
 * closed. When several apply, the first in this list is reported.
 */
export type RecvRefusal =
  | 'ESLUICE_TRUNC' // MSG_TRUNC: record longer than the buffer
  | 'ESLUICE_CTRUNC' // MSG_CTRUNC: control data truncated (more than 16 fds)
  | 'ESLUICE_CMSG' // a control message other than SCM_RIGHTS (SCM_CREDENTIALS, SCM_PIDFD, ...)
  | 'ESLUICE_MULTIFD'; // more than one descriptor in SCM_RIGHTS

export interface Received {
  /** The record's bytes. A zero-length record is indistinguishable from EOF on SEQPACKET. */
  data: Buffer;
  /**
   * The one descriptor that came with the record (close-on-exec), or -1.
   * Owned by the caller, who must close it even when `data` is empty: a
   * zero-length record may carry a descriptor.
   */
  fd: number;
}

/** SO_PEERCRED: the peer's credentials as of connect() (pids can be reused since). */
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

/**
 * A uv_poll handle on the Node event loop. While started it keeps the process
 * alive and cannot be garbage-collected (even if unreferenced); once stopped
 * it does neither, and if collected its handle is released. Methods called
 * on anything but a Poller throw TypeError.
 */
export interface Poller {
  /**
   * (Re)start watching for `events`, a non-empty subset of POLL_READABLE |
   * POLL_WRITABLE | POLL_DISCONNECT (else RangeError). Level-triggered: the
   * callback repeats while the condition holds. Throws Error code
   * 'ERR_POLLER_CLOSED' after close().
   */
  start(events: number): void;
  /** Stop watching; the handle no longer keeps the loop alive. No-op after close(). */
  stop(): void;
  /** Stop and release the uv_poll handle. Idempotent; safe inside the callback. Does not close the fd. */
  close(): void;
}

export interface NativeBinding {
  /**
   * socket()+fchmod(mode)+bind()+chmod(path, mode)+listen(). The path never
   * exists with more permission than `mode` (0..0o777), whatever the umask;
   * the chmod only undoes umask narrowing and does not follow symlinks.
   * `path` is a filesystem path of 1..107 UTF-8 bytes (never abstract).
   * Throws EADDRINUSE if the path exists: removing a stale socket is the
   * caller's decision. If a step after bind() fails, the new file is removed.
   * Returns the listening fd (non-blocking, close-on-exec).
   */
  listen(path: string, mode: number, backlog: number): number;
  /** getsockopt(SO_DOMAIN, SO_TYPE, SO_ACCEPTCONN) of any socket fd (e.g. one from LISTEN_FDS). */
  socketInfo(fd: number): SocketInfo;
  /**
   * fcntl: set O_NONBLOCK and FD_CLOEXEC on an adopted descriptor. (Node
   * already marks every inherited fd close-on-exec at startup; O_NONBLOCK is
   * what actually changes. O_NONBLOCK is shared with other holders of the file.)
   */
  setNonblockCloexec(fd: number): void;
  /**
   * listen(fd, backlog) again on an adopted listening socket (0..65535), so
   * that connecting peers read this process's credentials (SO_PEERCRED)
   * instead of those of whoever listened first: under socket activation
   * that is systemd, uid 0. Throws EINVAL for an unbound socket.
   */
  relisten(fd: number, backlog: number): void;
  /** socket()+connect() to a path. Throws on failure (ECONNREFUSED, ENOENT, EAGAIN when the backlog is full). */
  connect(path: string): number;
  /**
   * socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC)+connect() to a
   * path: clamd's local socket, whose FILDES command takes a descriptor in
   * SCM_RIGHTS (Node's net module cannot send one). Same errors as
   * connect(); EPROTOTYPE when the path is a SEQPACKET socket. On the fd,
   * send() may send fewer bytes than given (a stream has no records; the
   * passed descriptor travels with the first byte sent), recv() returns
   * whatever bytes are there (empty data with fd -1 is EOF), poll() works.
   */
  connectStream(path: string): number;
  /** accept4(SOCK_NONBLOCK|SOCK_CLOEXEC). Returns the new fd, or -1 when none is pending (EAGAIN). */
  accept(fd: number): number;
  /**
   * sendmsg(MSG_NOSIGNAL|MSG_DONTWAIT) of one record (`data` is a Uint8Array,
   * Buffer included, and may be empty), with exactly one fd in SCM_RIGHTS when
   * passFd >= 0 and none when it is -1. Returns bytes sent (all of them), or
   * -1 on EAGAIN (wait for POLL_WRITABLE). EPIPE, EMSGSIZE, EBADF throw.
   * passFd stays open and owned by the caller.
   */
  send(fd: number, data: Uint8Array, passFd: number): number;
  /**
   * recvmsg(MSG_CMSG_CLOEXEC|MSG_DONTWAIT) of one record of at most maxBytes
   * (0..64 MiB). Returns null on EAGAIN. An empty `data` with fd -1 is a
   * zero-length record or EOF (SEQPACKET cannot tell them apart). Throws
   * RecvRefusal codes (see above) for a record that must not be accepted.
   */
  recv(fd: number, maxBytes: number): Received | null;
  /** getsockopt(SO_PEERCRED): the peer as of connect(); for a listening socket, ourselves. */
  peerCred(fd: number): PeerCred;
  /**
   * memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING): a read-write memfd
   * with no seals. `name` (1..249 bytes) is only a label in /proc. Until
   * sealed, anyone with any descriptor to it can reopen it read-write.
   */
  memfdCreate(name: string): number;
  /** fcntl(F_ADD_SEALS). EPERM once F_SEAL_SEAL is set; EBUSY for F_SEAL_WRITE while shared writable mappings exist. */
  addSeals(fd: number, seals: number): void;
  /** fcntl(F_GET_SEALS). EINVAL for files that cannot be sealed. */
  getSeals(fd: number): number;
  /**
   * fcntl(F_GETFL): the status flags, including O_ACCMODE bits and O_PATH
   * (Linux keeps O_PATH in the file's flags; checked on 6.18). An O_PATH fd's
   * access-mode bits read as O_RDONLY, so test O_PATH before trusting
   * O_ACCMODE. Other bits (O_LARGEFILE, O_APPEND, O_NONBLOCK, ...) appear too.
   */
  fdFlags(fd: number): number;
  /**
   * fcntl(F_SETFL, flags): set the file status flags the kernel lets change
   * (O_APPEND, O_DIRECT, O_NOATIME, O_NONBLOCK, O_ASYNC); it ignores the
   * access-mode and creation bits. They belong to the open file, so every
   * descriptor that shares it (a sender's included) sees the change: use it
   * on open files this process made, never on a received descriptor.
   * EINVAL for O_DIRECT on a filesystem that refuses it.
   */
  setFdFlags(fd: number, flags: number): void;
  /**
   * fcntl(F_SETLEASE, F_RDLCK | F_UNLCK); any other type is a RangeError.
   * F_RDLCK fails with EAGAIN while any process (this one included) holds the
   * file open for writing. Regular files only; the caller must own the file
   * or have CAP_LEASE. While a lease is held, a writer's open() breaks it and
   * the kernel sends SIGIO (default action: terminate): hold it briefly.
   */
  setLease(fd: number, type: number): void;
  /**
   * fcntl(F_GETLEASE): the lease this descriptor holds: F_RDLCK, or F_UNLCK
   * when there is none *or a writer's open() is breaking it* (the kernel
   * reports the type the lease is being downgraded to). Synchronous, unlike
   * the SIGIO that announces the same break through the event loop.
   */
  getLease(fd: number): number;
  /**
   * linkat(AT_FDCWD, "/proc/self/fd/<fd>", AT_FDCWD, path, AT_SYMLINK_FOLLOW):
   * give an O_TMPFILE a name. EEXIST if path exists, a dangling symlink
   * included (never overwrites). ENOENT for an O_TMPFILE|O_EXCL file, EXDEV
   * across filesystems (a memfd). Needs /proc. Does not fsync the directory.
   */
  linkFd(fd: number, path: string): void;
  /**
   * posix_memalign(4096, bytes), zeroed, as an ArrayBuffer freed by the GC:
   * memory O_DIRECT reads and writes accept (Node's own buffers are not
   * page-aligned). bytes: a multiple of 4096 in [4096, 64 MiB], else RangeError.
   */
  alignedBuffer(bytes: number): ArrayBuffer;
  /**
   * uv_poll on fd, returned stopped; callback(status, events) runs on the JS
   * thread with `this` the Poller. status < 0 is a libuv error (events is 0,
   * and the handle has stopped). A callback that throws raises
   * 'uncaughtException'. One active Poller per fd (libuv: EEXIST); close the
   * Poller before closing its fd. Regular files throw EPERM (epoll).
   */
  poll(fd: number, callback: (status: number, events: number) => void): Poller;
  /**
   * prctl(PR_SET_DUMPABLE, value), value 0 or 1 (else RangeError). At 0 the
   * process leaves no core dump, and a process of the same uid without
   * CAP_SYS_PTRACE cannot ptrace it or open its /proc/PID/mem, environ or
   * fd/ (proc(5): they become root's). For the whole process, every thread
   * included; execve() resets it.
   */
  setDumpable(value: number): void;
  /** prctl(PR_GET_DUMPABLE): 0, 1, or 2 (the kernel's SUID_DUMP_ROOT). */
  getDumpable(): number;
  /** Constants the callers need to interpret results. */
  constants: {
    AF_UNIX: number;
    SOCK_SEQPACKET: number;
    SOCK_STREAM: number;
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
  relisten,
  connect,
  connectStream,
  accept,
  send,
  recv,
  peerCred,
  memfdCreate,
  addSeals,
  getSeals,
  fdFlags,
  setFdFlags,
  setLease,
  getLease,
  linkFd,
  alignedBuffer,
  poll,
  setDumpable,
  getDumpable,
} = native;

/** The four seals that make a memfd immutable for everyone, its creator included. */
export const ALL_SEALS =
  native.constants.F_SEAL_WRITE |
  native.constants.F_SEAL_GROW |
  native.constants.F_SEAL_SHRINK |
  native.constants.F_SEAL_SEAL;
