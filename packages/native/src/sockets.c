/*
 * NAME
 *	sockets 3
 * SUMMARY
 *	AF_UNIX sockets, one descriptor per record, and the peer's credentials
 * SYNOPSIS
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
 * DESCRIPTION
 *	Sockets are AF_UNIX SOCK_SEQPACKET on filesystem paths, non-blocking
 *	and close-on-exec, except connectStream()'s, which are SOCK_STREAM
 *	(for clamd's FILDES). No call waits: accept, send and recv return -1
 *	or null when there is nothing to do, and readiness comes from
 *	poll() (poller.c). A record carries at most one descriptor, in
 *	SCM_RIGHTS; every descriptor received here is close-on-exec.
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
 *	A refused record throws with .code ESLUICE_TRUNC, ESLUICE_CTRUNC,
 *	ESLUICE_CMSG or ESLUICE_MULTIFD and .fds, the number of
 *	descriptors closed; other failures as in common.c.
 * SEE ALSO
 *	unix(7), sendmsg(2), recvmsg(2), packages/native/README.md
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sluice_native.h"

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04			/* Linux 6.5 (SO_PASSPIDFD); not in glibc 2.36 */
#endif

#define RECV_FDS_SEEN	8		/* fds recv() can see in one record, at least */
#define RECV_BYTES_MAX	(64 << 20)	/* a sanity cap on maxBytes */

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
    if (sn_arg_sun(env, argv[0], "listen", &sa, &len) < 0
	|| sn_arg_int(env, argv[1], "listen", "mode", 0, 0777, &mode) < 0
	|| sn_arg_int(env, argv[2], "listen", "backlog", 0, 65535, &backlog) < 0)
	return (NULL);
    if ((fd = new_socket()) < 0)
	return (sn_throw_errno(env, "socket", errno));
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
    return (sn_new_fd(env, fd));

fail:
    err = errno;
    if (bound)
	unlink(sa.sun_path);
    close(fd);
    return (sn_throw_errno(env, call, err));
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
    if (sn_arg_fd(argv[0], "socketInfo", &fd) < 0)
	return (NULL);
    CHECK(napi_create_object(env, &obj));
    for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
	len = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, opts[i].opt, &val, &len) < 0)
	    return (sn_throw_errno(env, "getsockopt", errno));
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
    if (sn_arg_fd(argv[0], "setNonblockCloexec", &fd) < 0)
	return (NULL);
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0
	|| (fl = fcntl(fd, F_GETFD)) < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
	return (sn_throw_errno(env, "fcntl", errno));
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
    if (sn_arg_fd(argv[0], "relisten", &fd) < 0
	|| sn_arg_int(env, argv[1], "relisten", "backlog", 0, 65535, &backlog) < 0)
	return (NULL);
    if (listen(fd, backlog) < 0)
	return (sn_throw_errno(env, "listen", errno));
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
    if (sn_arg_sun(env, argv[0], fn, &sa, &len) < 0)
	return (NULL);
    if ((fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
	return (sn_throw_errno(env, "socket", errno));
    /* AF_UNIX connects at once or fails (EAGAIN: backlog full); no EINPROGRESS. */
    if (connect(fd, (struct sockaddr *) &sa, len) < 0) {
	err = errno;
	close(fd);
	return (sn_throw_errno(env, "connect", err));
    }
    return (sn_new_fd(env, fd));
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
    if (sn_arg_fd(argv[0], "accept", &fd) < 0)
	return (NULL);
    do {
	conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (conn < 0 && errno == EINTR);
    if (conn < 0)
	return (errno == EAGAIN || errno == EWOULDBLOCK ?
		sn_int(env, -1) : sn_throw_errno(env, "accept4", errno));
    return (sn_new_fd(env, conn));
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
    if (sn_arg_fd(argv[0], "send", &fd) < 0)
	return (NULL);
    if (napi_is_typedarray(env, argv[1], &is_ta) != napi_ok || !is_ta
	|| napi_get_typedarray_info(env, argv[1], &type, &iov.iov_len, &iov.iov_base,
				    &ab, &off) != napi_ok
	|| type != napi_uint8_array)
	return (sn_bad_arg(env, 0, "send", "data", "must be a Uint8Array"), NULL);
    if (sn_arg_int(env, argv[2], "send", "passFd", -1, FD_MAX, &pass) < 0)
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
		sn_int(env, -1) : sn_throw_errno(env, "sendmsg", errno));
    return (sn_int(env, (int) n));
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
    if (sn_arg_fd(argv[0], "recv", &fd) < 0
	|| sn_arg_int(env, argv[1], "recv", "maxBytes", 0, RECV_BYTES_MAX, &max) < 0)
	return (NULL);
    if ((iov.iov_base = malloc(max > 0 ? max : 1)) == NULL)
	return (sn_throw_errno(env, "malloc", ENOMEM));
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
	    return (sn_throw_errno(env, "recvmsg", err));
	CHECK(napi_get_null(env, &obj));
	return (obj);
    }
    if ((why = recv_scan(&msg, fds, sizeof(fds) / sizeof(fds[0]), &nfds)) != NULL) {
	free(iov.iov_base);
	for (i = 0; i < nfds; i++)
	    close(fds[i]);
	snprintf(desc, sizeof(desc), "record refused, %d descriptor%s closed",
		 nfds, nfds == 1 ? "" : "s");
	return (sn_throw_sys(env, "recvmsg", why, desc, 0, nfds));
    }
    fd = nfds == 1 ? fds[0] : -1;
    if (napi_create_buffer_copy(env, n, iov.iov_base, NULL, &data) != napi_ok
	|| napi_create_object(env, &obj) != napi_ok
	|| napi_set_named_property(env, obj, "data", data) != napi_ok
	|| sn_set_num(env, obj, "fd", fd) != napi_ok) {
	if (fd >= 0)
	    close(fd);
	obj = sn_fail(env);
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
    if (sn_arg_fd(argv[0], "peerCred", &fd) < 0)
	return (NULL);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
	return (sn_throw_errno(env, "getsockopt", errno));
    CHECK(napi_create_object(env, &obj));
    CHECK(sn_set_num(env, obj, "pid", uc.pid));
    CHECK(sn_set_num(env, obj, "uid", uc.uid));
    CHECK(sn_set_num(env, obj, "gid", uc.gid));
    return (obj);
}
/* sn_sockets_init - define this file's functions on exports */
napi_value sn_sockets_init(napi_env env, napi_value exports)
{
    static const napi_property_descriptor fns[] = {
	FN("listen", sn_listen), FN("socketInfo", sn_socket_info),
	FN("setNonblockCloexec", sn_set_nonblock_cloexec), FN("relisten", sn_relisten),
	FN("connect", sn_connect), FN("connectStream", sn_connect_stream),
	FN("accept", sn_accept), FN("send", sn_send), FN("recv", sn_recv),
	FN("peerCred", sn_peer_cred),
    };

    CHECK(napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
    return (exports);
}
