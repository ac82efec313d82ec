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
 *	native.constants
 * DESCRIPTION
 *	This is the only C in Sluice. Each function performs one system
 *	call, or a fixed short sequence of them, for TypeScript code that
 *	makes every decision: nothing here knows about uids, sizes,
 *	access modes or protocol state.
 *
 *	Sockets are AF_UNIX SOCK_SEQPACKET, non-blocking and close-on-exec,
 *	except connectStream()'s, which are SOCK_STREAM (for clamd's FILDES).
 *	Every descriptor created or received here is close-on-exec.
 *	Readiness comes from a uv_poll handle on the Node event loop;
 *	no call here blocks, and nothing runs on the libuv threadpool.
 * SECURITY
 *	recv() treats the peer as hostile. A record is refused when it
 *	was truncated (MSG_TRUNC), its control data was truncated
 *	(MSG_CTRUNC), it carried any control message other than
 *	SCM_RIGHTS, or more than one descriptor. On every refusal each
 *	descriptor that arrived with the record is closed before the
 *	exception is thrown, so a hostile peer cannot fill our fd table.
 *
 *	listen() fchmod()s the socket before bind(), so the socket file
 *	never exists with more permission than requested; the chmod()
 *	after bind() only undoes umask narrowing and does not follow
 *	symlinks. The socket's directory must be writable by us alone.
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
 *	libuv allows one active Poller per descriptor (EEXIST), and a
 *	Poller must be closed before its descriptor is.
 * SEE ALSO
 *	unix(7), memfd_create(2), fcntl(2), packages/native/README.md
 */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04			/* Linux 6.5 (SO_PASSPIDFD); not in glibc 2.36 */
#endif

#define RECV_FDS_SEEN	8		/* fds recv() can see in one record, at least */
#define RECV_BYTES_MAX	(64 << 20)	/* a sanity cap on maxBytes */
#define MEMFD_NAME_MAX	249		/* MFD_NAME_MAX_LEN in the kernel */
#define PATH_BYTES_MAX	4095		/* PATH_MAX minus the NUL */
#define FD_MAX		2147483647.0
#define POLL_EVENTS	(UV_READABLE | UV_WRITABLE | UV_DISCONNECT)

#define CHECK(call) do { if ((call) != napi_ok) return (napi_fail(env)); } while (0)
#define ARGS(n) napi_value argv[n]; size_t argc = n; \
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

typedef struct {			/* per-environment state */
    napi_ref poller_class;
    napi_ref callback_key;		/* symbol under which a Poller keeps its callback */
    int     constructing;		/* poll() is calling the Poller constructor */
} addon_t;

typedef struct {			/* one uv_poll handle and its JS object */
    uv_poll_t handle;			/* handle.data points back here */
    napi_env env;
    napi_ref self;			/* the wrap; strong only while the handle is active */
    napi_async_context async;
    napi_async_cleanup_hook_handle hook;	/* closes the handle at env teardown */
    enum { OPEN, CLOSING, CLOSED } state;	/* of the uv handle */
    int     wrapped;			/* the JS object still points here */
    int     strong, in_callback;
} poller_t;

static const napi_type_tag poller_tag = {0x736c75696365ULL, 0x706f6c6c6572ULL};

/* napi_fail - make sure a failed napi call leaves an exception pending */
static napi_value napi_fail(napi_env env)
{
    const napi_extended_error_info *ei = NULL;
    bool    pending = false;
    char    msg[160];

    napi_get_last_error_info(env, &ei);
    snprintf(msg, sizeof(msg), "N-API call failed: %s",
	     ei && ei->error_message ? ei->error_message : "unknown");
    if (napi_is_exception_pending(env, &pending) == napi_ok && !pending)
	napi_throw_error(env, "ERR_SLUICE_NAPI", msg);
    return (NULL);
}

/* set_num - obj[key] = n */
static napi_status set_num(napi_env env, napi_value obj, const char *key, double n)
{
    napi_value v;
    napi_status st = napi_create_double(env, n, &v);

    return (st == napi_ok ? napi_set_named_property(env, obj, key, v) : st);
}

/* throw_sys - throw "syscall: CODE (description)" with .code, .errno, .fds, .syscall */
static napi_value throw_sys(napi_env env, const char *syscall, const char *code,
			            const char *desc, int err, int nfds)
{
    napi_value error, v_code, v_msg, v;
    char    msg[256];

    snprintf(msg, sizeof(msg), "%s: %s (%s)", syscall, code, desc);
    CHECK(napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v_code));
    CHECK(napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &v_msg));
    CHECK(napi_create_error(env, v_code, v_msg, &error));
    if (err != 0)
	CHECK(set_num(env, error, "errno", err));
    if (nfds >= 0)
	CHECK(set_num(env, error, "fds", nfds));
    CHECK(napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v));
    CHECK(napi_set_named_property(env, error, "syscall", v));
    napi_throw(env, error);
    return (NULL);
}

/* throw_errno - throw for a failed system call */
static napi_value throw_errno(napi_env env, const char *syscall, int err)
{
    const char *name = strerrorname_np(err), *desc = strerrordesc_np(err);

    return (throw_sys(env, syscall, name ? name : "EUNKNOWN",
		      desc ? desc : "Unknown error", -err, -1));
}

/* throw_uv - throw for a failed libuv call (r is a negative errno) */
static napi_value throw_uv(napi_env env, const char *call, int r)
{
    return (throw_sys(env, call, uv_err_name(r), uv_strerror(r), r, -1));
}

/* bad_arg - throw a TypeError or RangeError naming function and argument */
static int bad_arg(napi_env env, int range, const char *fn, const char *name,
		           const char *what)
{
    char    msg[200];

    snprintf(msg, sizeof(msg), "%s(): argument '%s' %s", fn, name, what);
    if (range)
	napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    else
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return (-1);
}

/* arg_int - an integral number in [min, max], or -1 with an exception */
static int arg_int(napi_env env, napi_value v, const char *fn, const char *name,
		           double min, double max, int *out)
{
    napi_valuetype t;
    double  d;
    char    what[80];

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_number
	|| napi_get_value_double(env, v, &d) != napi_ok)
	return (bad_arg(env, 0, fn, name, "must be a number"));
    if (!isfinite(d) || d != floor(d) || d < min || d > max) {
	snprintf(what, sizeof(what), "must be an integer in [%.0f, %.0f]", min, max);
	return (bad_arg(env, 1, fn, name, what));
    }
    *out = (int) d;
    return (0);
}

#define arg_fd(v, fn, out) arg_int(env, (v), (fn), "fd", 0, FD_MAX, (out))

/* arg_str - a non-empty string of at most max UTF-8 bytes, no NUL, into buf[max + 1] */
static int arg_str(napi_env env, napi_value v, const char *fn, const char *name,
		           char *buf, size_t max)
{
    napi_valuetype t;
    size_t  len = 0;
    char    what[64];

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_string
	|| napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
	return (bad_arg(env, 0, fn, name, "must be a string"));
    if (len == 0)
	return (bad_arg(env, 1, fn, name, "must not be empty"));
    if (len > max) {
	snprintf(what, sizeof(what), "must be at most %zu bytes long", max);
	return (bad_arg(env, 1, fn, name, what));
    }
    if (napi_get_value_string_utf8(env, v, buf, max + 1, &len) != napi_ok
	|| strlen(buf) != len)
	return (bad_arg(env, 0, fn, name, "must not contain NUL bytes"));
    return (0);
}

/* arg_sun - a sockaddr_un from a path argument; never the abstract namespace */
static int arg_sun(napi_env env, napi_value v, const char *fn,
		           struct sockaddr_un *sa, socklen_t *len)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (arg_str(env, v, fn, "path", sa->sun_path, sizeof(sa->sun_path) - 1) < 0)
	return (-1);
    *len = offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1;
    return (0);
}

/* int_value - a JS number from a C int */
static napi_value int_value(napi_env env, int n)
{
    napi_value v;

    CHECK(napi_create_int32(env, n, &v));
    return (v);
}

/* new_fd - hand a descriptor we own to JS, closing it if even that fails */
static napi_value new_fd(napi_env env, int fd)
{
    napi_value v;

    if (napi_create_int32(env, fd, &v) == napi_ok)
	return (v);
    close(fd);
    return (napi_fail(env));
}

/* new_socket - socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC) */
static int new_socket(void)
{
    return (socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

/* sn_listen - socket, fchmod, bind, chmod, listen on a filesystem path */
static napi_value sn_listen(napi_env env, napi_callback_info info)
{
    struct sockaddr_un sa;
    socklen_t len;
    const char *call;
    int     mode, backlog, fd, err, bound = 0;

    ARGS(3);
    if (arg_sun(env, argv[0], "listen", &sa, &len) < 0
	|| arg_int(env, argv[1], "listen", "mode", 0, 0777, &mode) < 0
	|| arg_int(env, argv[2], "listen", "backlog", 0, 65535, &backlog) < 0)
	return (NULL);
    if ((fd = new_socket()) < 0)
	return (throw_errno(env, "socket", errno));
    /* bind() gives the new file the socket inode's mode minus umask: set it first. */
    call = "fchmod";
    if (fchmod(fd, mode) < 0)
	goto fail;
    call = "bind";
    if (bind(fd, (struct sockaddr *) &sa, len) < 0)
	goto fail;
    bound = 1;
    /* Only undoes umask narrowing; never wider than mode; never follows a symlink. */
    call = "chmod";
    if (fchmodat(AT_FDCWD, sa.sun_path, mode, AT_SYMLINK_NOFOLLOW) < 0)
	goto fail;
    call = "listen";
    if (listen(fd, backlog) < 0)
	goto fail;
    return (new_fd(env, fd));

fail:
    err = errno;
    if (bound)
	unlink(sa.sun_path);
    close(fd);
    return (throw_errno(env, call, err));
}

/* sn_socket_info - SO_DOMAIN, SO_TYPE and SO_ACCEPTCONN of a socket */
static napi_value sn_socket_info(napi_env env, napi_callback_info info)
{
    static const struct { const char *key; int opt; } opts[] = {
	{"domain", SO_DOMAIN}, {"type", SO_TYPE}, {"listening", SO_ACCEPTCONN},
    };
    napi_value obj, v;
    socklen_t len;
    size_t  i;
    int     fd, val;

    ARGS(1);
    if (arg_fd(argv[0], "socketInfo", &fd) < 0)
	return (NULL);
    CHECK(napi_create_object(env, &obj));
    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
	len = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, opts[i].opt, &val, &len) < 0)
	    return (throw_errno(env, "getsockopt", errno));
	if (opts[i].opt == SO_ACCEPTCONN)
	    CHECK(napi_get_boolean(env, val != 0, &v));
	else
	    CHECK(napi_create_int32(env, val, &v));
	CHECK(napi_set_named_property(env, obj, opts[i].key, v));
    }
    return (obj);
}

/* sn_set_nonblock_cloexec - O_NONBLOCK and FD_CLOEXEC on an adopted descriptor */
static napi_value sn_set_nonblock_cloexec(napi_env env, napi_callback_info info)
{
    int     fd, fl;

    ARGS(1);
    if (arg_fd(argv[0], "setNonblockCloexec", &fd) < 0)
	return (NULL);
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0
	|| (fl = fcntl(fd, F_GETFD)) < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
	return (throw_errno(env, "fcntl", errno));
    return (NULL);
}

/*
 * sn_relisten - listen() again on an adopted listening socket. Linux then
 * records the caller's credentials as the ones connecting peers read with
 * SO_PEERCRED; otherwise they are those of whoever listened first (systemd,
 * uid 0), and the connector's check of the stage's uid would fail.
 */
static napi_value sn_relisten(napi_env env, napi_callback_info info)
{
    int     fd, backlog;

    ARGS(2);
    if (arg_fd(argv[0], "relisten", &fd) < 0
	|| arg_int(env, argv[1], "relisten", "backlog", 0, 65535, &backlog) < 0)
	return (NULL);
    if (listen(fd, backlog) < 0)
	return (throw_errno(env, "listen", errno));
    return (NULL);
}

/* connect_path - socket of the given type and connect to a path; never waits */
static napi_value connect_path(napi_env env, napi_callback_info info,
			               const char *fn, int type)
{
    struct sockaddr_un sa;
    socklen_t len;
    int     fd, err;

    ARGS(1);
    if (arg_sun(env, argv[0], fn, &sa, &len) < 0)
	return (NULL);
    if ((fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
	return (throw_errno(env, "socket", errno));
    /* AF_UNIX connects at once or fails (EAGAIN: backlog full); no EINPROGRESS. */
    if (connect(fd, (struct sockaddr *) &sa, len) < 0) {
	err = errno;
	close(fd);
	return (throw_errno(env, "connect", err));
    }
    return (new_fd(env, fd));
}

/* sn_connect - SOCK_SEQPACKET connect to a path (the stages' wire) */
static napi_value sn_connect(napi_env env, napi_callback_info info)
{
    return (connect_path(env, info, "connect", SOCK_SEQPACKET));
}

/* sn_connect_stream - SOCK_STREAM connect to a path (clamd's local socket) */
static napi_value sn_connect_stream(napi_env env, napi_callback_info info)
{
    return (connect_path(env, info, "connectStream", SOCK_STREAM));
}

/* sn_accept - accept4 one pending connection, or -1 when there is none */
static napi_value sn_accept(napi_env env, napi_callback_info info)
{
    int     fd, conn;

    ARGS(1);
    if (arg_fd(argv[0], "accept", &fd) < 0)
	return (NULL);
    do {
	conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (conn < 0 && errno == EINTR);
    if (conn < 0)
	return (errno == EAGAIN || errno == EWOULDBLOCK ?
		int_value(env, -1) : throw_errno(env, "accept4", errno));
    return (new_fd(env, conn));
}

/* sn_send - sendmsg one record, with one fd in SCM_RIGHTS when passFd >= 0 */
static napi_value sn_send(napi_env env, napi_callback_info info)
{
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    struct msghdr msg = {0};
    struct iovec iov;
    struct cmsghdr *cmsg;
    napi_typedarray_type type;
    napi_value ab;
    size_t  off;
    bool    is_ta = false;
    ssize_t n;
    int     fd, pass;

    ARGS(3);
    if (arg_fd(argv[0], "send", &fd) < 0)
	return (NULL);
    if (napi_is_typedarray(env, argv[1], &is_ta) != napi_ok || !is_ta
	|| napi_get_typedarray_info(env, argv[1], &type, &iov.iov_len, &iov.iov_base,
				    &ab, &off) != napi_ok
	|| type != napi_uint8_array)
	return (bad_arg(env, 0, "send", "data", "must be a Uint8Array"), NULL);
    if (arg_int(env, argv[2], "send", "passFd", -1, FD_MAX, &pass) < 0)
	return (NULL);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (pass >= 0) {
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &pass, sizeof(int));
    }
    do {
	n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
	return (errno == EAGAIN || errno == EWOULDBLOCK ?
		int_value(env, -1) : throw_errno(env, "sendmsg", errno));
    return (int_value(env, (int) n));
}

/* recv_scan - collect every descriptor of a record; name the refusal, if any */
static const char *recv_scan(struct msghdr *msg, int *fds, int max, int *nfds)
{
    struct cmsghdr *c;
    const char *other = NULL;
    char   *end = (char *) msg->msg_control + msg->msg_controllen;
    size_t  bytes, i;

    *nfds = 0;
    for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
	if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
	    other = "ESLUICE_CMSG";
	/* SCM_PIDFD (after SO_PASSPIDFD) installs a descriptor too. */
	if (c->cmsg_level != SOL_SOCKET || c->cmsg_len < CMSG_LEN(0)
	    || (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != SCM_PIDFD))
	    continue;
	bytes = c->cmsg_len - CMSG_LEN(0);
	if ((char *) CMSG_DATA(c) + bytes > end)
	    bytes = end - (char *) CMSG_DATA(c);
	for (i = 0; i + sizeof(int) <= bytes && *nfds < max; i += sizeof(int))
	    memcpy(&fds[(*nfds)++], CMSG_DATA(c) + i, sizeof(int));
    }
    /* When several apply, the first of TRUNC, CTRUNC, CMSG, MULTIFD is named. */
    if (msg->msg_flags & MSG_TRUNC)
	return ("ESLUICE_TRUNC");
    if (msg->msg_flags & MSG_CTRUNC)
	return ("ESLUICE_CTRUNC");
    return (other ? other : *nfds > 1 ? "ESLUICE_MULTIFD" : NULL);
}

/* sn_recv - recvmsg one record; refuse a bad one and close all its descriptors */
static napi_value sn_recv(napi_env env, napi_callback_info info)
{
    union {				/* 8 fds plus credentials: in practice 16 fds */
	char    buf[CMSG_SPACE(RECV_FDS_SEEN * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	struct cmsghdr align;
    }       ctl;
    int     fds[sizeof(ctl) / sizeof(int)];
    struct msghdr msg = {0};
    struct iovec iov;
    napi_value obj, data;
    const char *why;
    char    desc[64];
    ssize_t n;
    int     fd, max, nfds, i, err;

    ARGS(2);
    if (arg_fd(argv[0], "recv", &fd) < 0
	|| arg_int(env, argv[1], "recv", "maxBytes", 0, RECV_BYTES_MAX, &max) < 0)
	return (NULL);
    if ((iov.iov_base = malloc(max > 0 ? max : 1)) == NULL)
	return (throw_errno(env, "malloc", ENOMEM));
    iov.iov_len = max;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    do {
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
	err = errno;
	free(iov.iov_base);
	if (err != EAGAIN && err != EWOULDBLOCK)
	    return (throw_errno(env, "recvmsg", err));
	CHECK(napi_get_null(env, &obj));
	return (obj);
    }
    if ((why = recv_scan(&msg, fds, sizeof(fds) / sizeof(fds[0]), &nfds)) != NULL) {
	free(iov.iov_base);
	for (i = 0; i < nfds; i++)
	    close(fds[i]);
	snprintf(desc, sizeof(desc), "record refused, %d descriptor%s closed",
		 nfds, nfds == 1 ? "" : "s");
	return (throw_sys(env, "recvmsg", why, desc, 0, nfds));
    }
    fd = nfds == 1 ? fds[0] : -1;
    if (napi_create_buffer_copy(env, n, iov.iov_base, NULL, &data) != napi_ok
	|| napi_create_object(env, &obj) != napi_ok
	|| napi_set_named_property(env, obj, "data", data) != napi_ok
	|| set_num(env, obj, "fd", fd) != napi_ok) {
	if (fd >= 0)
	    close(fd);
	obj = napi_fail(env);
    }
    free(iov.iov_base);
    return (obj);
}

/* sn_peer_cred - SO_PEERCRED: the peer's pid, uid and gid as of connect() */
static napi_value sn_peer_cred(napi_env env, napi_callback_info info)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    napi_value obj;
    int     fd;

    ARGS(1);
    if (arg_fd(argv[0], "peerCred", &fd) < 0)
	return (NULL);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
	return (throw_errno(env, "getsockopt", errno));
    CHECK(napi_create_object(env, &obj));
    CHECK(set_num(env, obj, "pid", uc.pid));
    CHECK(set_num(env, obj, "uid", uc.uid));
    CHECK(set_num(env, obj, "gid", uc.gid));
    return (obj);
}

#define ALIGN_BYTES	4096		/* O_DIRECT: logical block size and page */
#define ALIGNED_MAX	(64.0 * 1024 * 1024)

/* aligned_free - finalizer of an alignedBuffer's memory */
static void aligned_free(napi_env env, void *data, void *hint)
{
    (void) env;
    (void) hint;
    free(data);
}

/* sn_aligned_buffer - posix_memalign(4096, bytes) as an ArrayBuffer, for O_DIRECT I/O */
static napi_value sn_aligned_buffer(napi_env env, napi_callback_info info)
{
    napi_value out;
    void   *mem;
    int     bytes, err;

    ARGS(1);
    if (arg_int(env, argv[0], "alignedBuffer", "bytes", ALIGN_BYTES, ALIGNED_MAX, &bytes) < 0)
	return (NULL);
    if (bytes % ALIGN_BYTES != 0)
	return (bad_arg(env, 1, "alignedBuffer", "bytes", "must be a multiple of 4096"), NULL);
    if ((err = posix_memalign(&mem, ALIGN_BYTES, (size_t) bytes)) != 0)
	return (throw_errno(env, "posix_memalign", err));
    memset(mem, 0, (size_t) bytes);
    if (napi_create_external_arraybuffer(env, mem, (size_t) bytes, aligned_free, NULL, &out) != napi_ok) {
	free(mem);
	return (napi_fail(env));
    }
    return (out);
}

/* sn_memfd_create - memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) */
static napi_value sn_memfd_create(napi_env env, napi_callback_info info)
{
    char    name[MEMFD_NAME_MAX + 1];
    int     fd;

    ARGS(1);
    if (arg_str(env, argv[0], "memfdCreate", "name", name, MEMFD_NAME_MAX) < 0)
	return (NULL);
    if ((fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
	return (throw_errno(env, "memfd_create", errno));
    return (new_fd(env, fd));
}

typedef struct { const char *fn; int cmd; const char *arg; } fcntl_op_t;

static const fcntl_op_t fcntl_ops[] = {	/* the functions that are one fcntl() */
    {"addSeals", F_ADD_SEALS, "seals"},	/* F_ADD_SEALS */
    {"getSeals", F_GET_SEALS, NULL},	/* F_GET_SEALS */
    {"fdFlags", F_GETFL, NULL},		/* F_GETFL; on Linux includes O_PATH */
    {"setFdFlags", F_SETFL, "flags"},	/* F_SETFL; the kernel ignores access-mode bits */
    {"setLease", F_SETLEASE, "type"},	/* F_SETLEASE, F_RDLCK or F_UNLCK only */
    {"getLease", F_GETLEASE, NULL},	/* F_GETLEASE: F_UNLCK while a writer breaks it */
};

/* sn_fcntl - addSeals, getSeals, fdFlags, setFdFlags, setLease, getLease (the op arrives as data) */
static napi_value sn_fcntl(napi_env env, napi_callback_info info)
{
    const fcntl_op_t *op;
    napi_value argv[2];
    size_t  argc = 2;
    void   *data;
    int     fd, arg = 0, r;

    CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, &data));
    op = data;
    if (arg_fd(argv[0], op->fn, &fd) < 0
	|| (op->arg && arg_int(env, argv[1], op->fn, op->arg, 0, FD_MAX, &arg) < 0))
	return (NULL);
    if (op->cmd == F_SETLEASE && arg != F_RDLCK && arg != F_UNLCK)
	return (bad_arg(env, 1, op->fn, op->arg, "must be F_RDLCK or F_UNLCK"), NULL);
    if ((r = fcntl(fd, op->cmd, arg)) < 0)
	return (throw_errno(env, "fcntl", errno));
    return (op->arg ? NULL : int_value(env, r));
}

/* sn_link_fd - name an open file by linkat of /proc/self/fd/N; never replaces */
static napi_value sn_link_fd(napi_env env, napi_callback_info info)
{
    char    path[PATH_BYTES_MAX + 1], proc[32];
    int     fd;

    ARGS(2);
    if (arg_fd(argv[0], "linkFd", &fd) < 0
	|| arg_str(env, argv[1], "linkFd", "path", path, PATH_BYTES_MAX) < 0)
	return (NULL);
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
	return (throw_errno(env, "linkat", errno));
    return (NULL);
}

/*
 * A Poller's memory is shared by libuv (the handle) and JS (the wrapped
 * object), and is freed when both have let go: poller_closed() when the
 * handle is closed, poller_drop() when close() or the GC unwraps it. The
 * wrap is a strong reference while the handle is active, so an active
 * Poller is never collected; a stopped one may be. At environment teardown
 * (process or worker exit) an async cleanup hook closes the handle, and
 * Node waits for that, so no close callback outlives this library.
 */

/* poller_closed - uv_close callback: the handle is gone */
static void poller_closed(uv_handle_t *handle)
{
    poller_t *p = handle->data;

    if (p->hook)
	napi_remove_async_cleanup_hook(p->hook);	/* teardown may go on */
    p->hook = NULL;
    p->state = CLOSED;
    if (!p->wrapped)
	free(p);
}

/* poller_shut - close the handle, once */
static void poller_shut(poller_t *p)
{
    if (p->state == OPEN) {
	p->state = CLOSING;
	uv_close((uv_handle_t *) &p->handle, poller_closed);
    }
}

/* poller_teardown - async cleanup hook: the environment is going away */
static void poller_teardown(napi_async_cleanup_hook_handle hook, void *arg)
{
    (void) hook;
    poller_shut(arg);
}

/* poller_drop - the JS side lets go (close() or GC): shut, free if closed */
static void poller_drop(napi_env env, poller_t *p)
{
    p->wrapped = 0;
    napi_delete_reference(env, p->self);
    if (!p->in_callback)		/* else poller_cb destroys it afterwards */
	napi_async_destroy(env, p->async);
    if (p->state == CLOSED)
	free(p);
    else
	poller_shut(p);
}

/* poller_hold - keep the JS object alive exactly while the handle is active */
static void poller_hold(napi_env env, poller_t *p, int want)
{
    if (want && !p->strong && napi_reference_ref(env, p->self, NULL) == napi_ok)
	p->strong = 1;
    else if (!want && p->strong && napi_reference_unref(env, p->self, NULL) == napi_ok)
	p->strong = 0;
}

/* poller_cb - readiness on the loop: call back into JS */
static void poller_cb(uv_poll_t *handle, int status, int events)
{
    poller_t *p = handle->data;
    napi_env env = p->env;
    napi_handle_scope scope;
    napi_value obj, key, cb, argv[2], exc;
    addon_t *addon = NULL;
    bool    pending = false;

    if (p->state != OPEN || !p->wrapped || napi_open_handle_scope(env, &scope) != napi_ok)
	return;
    if (napi_get_instance_data(env, (void **) &addon) == napi_ok && addon
	&& napi_get_reference_value(env, p->self, &obj) == napi_ok && obj
	&& napi_get_reference_value(env, addon->callback_key, &key) == napi_ok
	&& napi_get_property(env, obj, key, &cb) == napi_ok
	&& napi_create_int32(env, status, &argv[0]) == napi_ok
	&& napi_create_int32(env, status < 0 ? 0 : events, &argv[1]) == napi_ok) {
	p->in_callback = 1;
	napi_make_callback(env, p->async, obj, cb, 2, argv, NULL);
	p->in_callback = 0;
    }
    /* No JS frame is below us: a throw becomes an uncaughtException. */
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending
	&& napi_get_and_clear_last_exception(env, &exc) == napi_ok)
	napi_fatal_exception(env, exc);
    if (!p->wrapped)			/* close() ran inside the callback */
	napi_async_destroy(env, p->async);
    else if (!uv_is_active((uv_handle_t *) handle))	/* stop(), or a libuv error */
	poller_hold(env, p, 0);
    napi_close_handle_scope(env, scope);
}

/* poller_finalize - the (stopped) JS object was collected */
static void poller_finalize(napi_env env, void *data, void *hint)
{
    (void) hint;
    poller_drop(env, data);
}

/* poller_this - the poller behind `this`: NULL once closed; -1 if not a Poller */
static int poller_this(napi_env env, napi_callback_info info, napi_value *arg,
		               napi_value *self, poller_t **pp)
{
    size_t  argc = 1;
    bool    tagged = false;
    void   *ptr = NULL;

    if (napi_get_cb_info(env, info, &argc, arg, self, NULL) != napi_ok)
	return (napi_fail(env), -1);
    if (napi_check_object_type_tag(env, *self, &poller_tag, &tagged) != napi_ok || !tagged) {
	napi_throw_type_error(env, "ERR_INVALID_THIS", "Poller method called on a non-Poller");
	return (-1);
    }
    if (napi_unwrap(env, *self, &ptr) != napi_ok)	/* close() removed the wrap */
	ptr = NULL;
    *pp = ptr;
    return (0);
}

/* poller_start - uv_poll_start for the given events */
static napi_value poller_start(napi_env env, napi_callback_info info)
{
    napi_value arg, self;
    poller_t *p;
    int     events, r;

    if (poller_this(env, info, &arg, &self, &p) < 0)
	return (NULL);
    if (p == NULL || p->state != OPEN)
	return (napi_throw_error(env, "ERR_POLLER_CLOSED", "start(): Poller is closed"), NULL);
    if (arg_int(env, arg, "start", "events", 1, POLL_EVENTS, &events) < 0)
	return (NULL);
    if ((r = uv_poll_start(&p->handle, events, poller_cb)) < 0)
	return (throw_uv(env, "uv_poll_start", r));
    poller_hold(env, p, 1);
    return (NULL);
}

/* poller_stop - uv_poll_stop; the handle no longer keeps the loop alive */
static napi_value poller_stop(napi_env env, napi_callback_info info)
{
    napi_value arg, self;
    poller_t *p;

    if (poller_this(env, info, &arg, &self, &p) < 0)
	return (NULL);
    if (p != NULL && p->state == OPEN) {
	uv_poll_stop(&p->handle);
	poller_hold(env, p, 0);
    }
    return (NULL);
}

/* poller_close - release the handle; idempotent, safe inside the callback */
static napi_value poller_close(napi_env env, napi_callback_info info)
{
    napi_value arg, self;
    poller_t *p;

    if (poller_this(env, info, &arg, &self, &p) < 0)
	return (NULL);
    if (p != NULL) {
	napi_remove_wrap(env, self, NULL);	/* the finalizer will not run */
	poller_drop(env, p);
    }
    return (NULL);
}

/* poller_construct - refuse `new Poller()` from JS: poll() is the only factory */
static napi_value poller_construct(napi_env env, napi_callback_info info)
{
    addon_t *addon = NULL;
    napi_value self;

    CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
    if (napi_get_instance_data(env, (void **) &addon) != napi_ok || !addon
	|| !addon->constructing)
	return (napi_throw_type_error(env, "ERR_ILLEGAL_CONSTRUCTOR",
				      "Poller: use poll(fd, callback)"), NULL);
    return (self);
}

/* sn_poll - a stopped Poller watching fd, calling back on the JS thread */
static napi_value sn_poll(napi_env env, napi_callback_info info)
{
    napi_property_descriptor prop = {0};
    napi_valuetype t;
    napi_value cls, obj, name;
    napi_status st;
    addon_t *addon = NULL;
    uv_loop_t *loop;
    poller_t *p;
    int     fd, r;

    ARGS(2);
    if (arg_fd(argv[0], "poll", &fd) < 0)
	return (NULL);
    if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
	return (bad_arg(env, 0, "poll", "callback", "must be a function"), NULL);
    CHECK(napi_get_instance_data(env, (void **) &addon));
    CHECK(napi_get_reference_value(env, addon->poller_class, &cls));
    addon->constructing = 1;
    st = napi_new_instance(env, cls, 0, NULL, &obj);
    addon->constructing = 0;
    CHECK(st);
    CHECK(napi_type_tag_object(env, obj, &poller_tag));
    CHECK(napi_get_reference_value(env, addon->callback_key, &prop.name));
    prop.value = argv[1];
    prop.attributes = napi_default;	/* read-only, not enumerable, fixed */
    CHECK(napi_define_properties(env, obj, 1, &prop));
    CHECK(napi_get_uv_event_loop(env, &loop));
    CHECK(napi_create_string_utf8(env, "SluicePoller", NAPI_AUTO_LENGTH, &name));
    if ((p = calloc(1, sizeof(*p))) == NULL)
	return (throw_errno(env, "calloc", ENOMEM));
    p->env = env;
    p->handle.data = p;
    if ((r = uv_poll_init(loop, &p->handle, fd)) < 0) {
	free(p);
	return (throw_uv(env, "uv_poll_init", r));
    }
    if (napi_add_async_cleanup_hook(env, poller_teardown, p, &p->hook) != napi_ok
	|| napi_async_init(env, obj, name, &p->async) != napi_ok
	|| napi_wrap(env, obj, p, poller_finalize, NULL, &p->self) != napi_ok) {
	if (p->async)
	    napi_async_destroy(env, p->async);
	poller_shut(p);			/* not wrapped: poller_closed() frees it */
	return (napi_fail(env));
    }
    p->wrapped = 1;
    return (obj);
}

/* addon_free - environment teardown: drop the per-environment state */
static void addon_free(napi_env env, void *data, void *hint)
{
    addon_t *addon = data;

    (void) hint;
    napi_delete_reference(env, addon->poller_class);
    napi_delete_reference(env, addon->callback_key);
    free(addon);
}

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
#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
#define FCNTL(i) { fcntl_ops[i].fn, NULL, sn_fcntl, NULL, NULL, NULL, napi_enumerable, \
	    (void *) &fcntl_ops[i] }
#define METHOD(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }
    const napi_property_descriptor fns[] = {	/* automatic: FCNTL() reads fcntl_ops */
	FN("listen", sn_listen), FN("socketInfo", sn_socket_info),
	FN("setNonblockCloexec", sn_set_nonblock_cloexec), FN("relisten", sn_relisten),
	FN("connect", sn_connect), FN("connectStream", sn_connect_stream),
	FN("accept", sn_accept),
	FN("send", sn_send), FN("recv", sn_recv), FN("peerCred", sn_peer_cred),
	FN("memfdCreate", sn_memfd_create), FCNTL(0), FCNTL(1), FCNTL(2), FCNTL(3),
	FCNTL(4), FCNTL(5),
	FN("linkFd", sn_link_fd), FN("poll", sn_poll),
	FN("alignedBuffer", sn_aligned_buffer),
    };
    static const napi_property_descriptor methods[] = {
	METHOD("start", poller_start), METHOD("stop", poller_stop),
	METHOD("close", poller_close),
    };
    napi_value cls, key, desc, consts;
    addon_t *addon;

    if ((addon = calloc(1, sizeof(*addon))) == NULL)
	return (throw_errno(env, "calloc", ENOMEM));
    if (napi_set_instance_data(env, addon, addon_free, NULL) != napi_ok) {
	free(addon);
	return (napi_fail(env));
    }
    CHECK(napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_construct, NULL,
			    sizeof(methods) / sizeof(methods[0]), methods, &cls));
    CHECK(napi_create_reference(env, cls, 1, &addon->poller_class));
    CHECK(napi_create_string_utf8(env, "sluice.poller.callback", NAPI_AUTO_LENGTH, &desc));
    CHECK(napi_create_symbol(env, desc, &key));
    CHECK(napi_create_reference(env, key, 1, &addon->callback_key));
    CHECK(napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
    if ((consts = make_constants(env)) == NULL)
	return (NULL);
    CHECK(napi_set_named_property(env, exports, "constants", consts));
    return (exports);
}
