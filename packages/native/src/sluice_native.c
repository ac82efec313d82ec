/*
 * NAME
 *	sluice_native 3
 * SUMMARY
 *	descriptor passing, peer credentials and sealed memfds for Sluice
 * SYNOPSIS
 *	const native = require("sluice_native.node");
 *
 *	native.listen(path, mode, backlog)	-> fd
 *	native.socketInfo(fd)			-> { domain, type, listening }
 *	native.setNonblockCloexec(fd)
 *	native.relisten(fd, backlog)
 *	native.connect(path)			-> fd
 *	native.connectStream(path)		-> fd
 *	native.accept(fd)			-> fd | -1
 *	native.send(fd, data, passFd)		-> bytes | -1
 *	native.recv(fd, maxBytes)		-> { data, fd } | null
 *	native.peerCred(fd)			-> { pid, uid, gid }
 *	native.memfdCreate(name)		-> fd
 *	native.addSeals(fd, seals)
 *	native.getSeals(fd)			-> seals
 *	native.fdFlags(fd)			-> F_GETFL flags
 *	native.setFdFlags(fd, flags)		   F_SETFL (O_APPEND, O_DIRECT, O_NONBLOCK...)
 *	native.setLease(fd, F_RDLCK | F_UNLCK)
 *	native.getLease(fd)			-> F_RDLCK | F_UNLCK
 *	native.linkFd(fd, path)
 *	native.alignedBuffer(bytes)		-> ArrayBuffer (4096-aligned)
 *	native.poll(fd, callback)		-> Poller { start, stop, close }
 *	native.setDumpable(0 | 1)
 *	native.getDumpable()			-> 0 | 1 | 2
 *	native.constants
 * DESCRIPTION
 *	This is the only C in Sluice. Each function performs one system
 *	call, or a fixed short sequence of them, for TypeScript code that
 *	makes every decision: nothing here knows about uids, sizes,
 *	access modes or protocol state.
 *
 *	The source is split by concern; each file's own page says more:
 *
 *	sockets.c	listen ... peerCred: AF_UNIX sockets, sendmsg and
 *			recvmsg with one descriptor in SCM_RIGHTS, SO_PEERCRED
 *	descriptors.c	memfdCreate ... alignedBuffer: memfds and seals,
 *			status flags, leases, linkat of an O_TMPFILE
 *	poller.c	poll: readiness on the Node event loop (uv_poll)
 *	process.c	setDumpable, getDumpable: prctl(PR_SET/GET_DUMPABLE)
 *	common.c	reading arguments, throwing errors (sluice_native.h)
 *	sluice_native.c	this page, the constants and the module init
 *
 *	Every descriptor created or received here is close-on-exec. No call
 *	here blocks, and nothing runs on the libuv threadpool.
 * SECURITY
 *	recv() treats the peer as hostile and closes every descriptor of a
 *	refused record before it throws (sockets.c). listen() never lets the
 *	socket file exist with more permission than asked for (sockets.c).
 * DIAGNOSTICS
 *	A failed system call throws an Error whose message looks like
 *	"recvmsg: EAGAIN (Resource temporarily unavailable)", with .code
 *	(the errno name), .errno (negative, as in node:fs) and .syscall.
 *	A refused record throws with .code ESLUICE_TRUNC, ESLUICE_CTRUNC,
 *	ESLUICE_CMSG or ESLUICE_MULTIFD and .fds, the number of
 *	descriptors closed. A wrong argument type throws a TypeError
 *	(ERR_INVALID_ARG_TYPE), a bad value a RangeError
 *	(ERR_OUT_OF_RANGE); both name the function and the argument.
 * BUGS
 *	uv.h is outside N-API's ABI promise: rebuild for each Node major.
 * SEE ALSO
 *	unix(7), memfd_create(2), fcntl(2), packages/native/README.md
 */

#include <fcntl.h>
#include <sys/socket.h>
#include <uv.h>
#include "sluice_native.h"

/* make_constants - the frozen constants object */
static napi_value make_constants(napi_env env)
{
    static const struct { const char *name; int value; } table[] = {
	{"AF_UNIX", AF_UNIX}, {"SOCK_SEQPACKET", SOCK_SEQPACKET}, {"SOCK_STREAM", SOCK_STREAM},
	{"O_ACCMODE", O_ACCMODE}, {"O_RDONLY", O_RDONLY}, {"O_WRONLY", O_WRONLY},
	{"O_RDWR", O_RDWR}, {"O_PATH", O_PATH}, {"O_TMPFILE", O_TMPFILE},
	{"F_SEAL_SEAL", F_SEAL_SEAL}, {"F_SEAL_SHRINK", F_SEAL_SHRINK},
	{"F_SEAL_GROW", F_SEAL_GROW}, {"F_SEAL_WRITE", F_SEAL_WRITE},
	{"F_RDLCK", F_RDLCK}, {"F_UNLCK", F_UNLCK},
	{"POLL_READABLE", UV_READABLE}, {"POLL_WRITABLE", UV_WRITABLE},
	{"POLL_DISCONNECT", UV_DISCONNECT},
    };
    napi_value obj, v;
    size_t  i;

    CHECK(napi_create_object(env, &obj));
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
	CHECK(napi_create_int32(env, table[i].value, &v));
	CHECK(napi_set_named_property(env, obj, table[i].name, v));
    }
    CHECK(napi_object_freeze(env, obj));
    return (obj);
}

/* init - module entry, once per environment (main thread or worker) */
NAPI_MODULE_INIT()
{
    napi_value consts;

    if (sn_sockets_init(env, exports) == NULL
	|| sn_descriptors_init(env, exports) == NULL
	|| sn_poller_init(env, exports) == NULL
	|| sn_process_init(env, exports) == NULL
	|| (consts = make_constants(env)) == NULL)
	return (NULL);
    CHECK(napi_set_named_property(env, exports, "constants", consts));
    return (exports);
}
