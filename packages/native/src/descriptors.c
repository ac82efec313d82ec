/*
 * NAME
 *	descriptors 3
 * SUMMARY
 *	what a descriptor is and may become: flags, seals, leases, names
 * SYNOPSIS
 *	native.memfdCreate(name)		-> fd
 *	native.addSeals(fd, seals)
 *	native.getSeals(fd)			-> seals
 *	native.fdFlags(fd)			-> F_GETFL flags
 *	native.setFdFlags(fd, flags)		   F_SETFL (O_APPEND, O_DIRECT, O_NONBLOCK...)
 *	native.setLease(fd, F_RDLCK | F_UNLCK)
 *	native.getLease(fd)			-> F_RDLCK | F_UNLCK
 *	native.linkFd(fd, path)
 *	native.alignedBuffer(bytes)		-> ArrayBuffer (4096-aligned)
 * DESCRIPTION
 *	The syscalls a stage needs to inspect a received descriptor and to
 *	make its own copy unchangeable: memfd_create(MFD_ALLOW_SEALING),
 *	fcntl's seals, status flags and read leases, and linkat() to name an
 *	O_TMPFILE. Each fcntl() function is one row of fcntl_ops: one
 *	command, at most one integer argument. alignedBuffer gives the
 *	memory O_DIRECT reads and writes need. fstat, pread and close are
 *	node:fs's.
 * SECURITY
 *	A memfd's inode is mode 0777: until it is sealed, anyone holding any
 *	descriptor of it can reopen /proc/PID/fd/N for writing. The status
 *	flags setFdFlags changes belong to the open file description, shared
 *	with every process that holds a descriptor of it.
 * SEE ALSO
 *	memfd_create(2), fcntl(2), linkat(2), packages/native/README.md
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "sluice_native.h"

#define MEMFD_NAME_MAX	249		/* MFD_NAME_MAX_LEN in the kernel */
#define PATH_BYTES_MAX	4095		/* PATH_MAX minus the NUL */

/* sn_memfd_create - memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING) */
static napi_value sn_memfd_create(napi_env env, napi_callback_info info)
{
    char    name[MEMFD_NAME_MAX + 1];
    int     fd;

    ARGS(1);
    if (sn_arg_str(env, argv[0], "memfdCreate", "name", name, MEMFD_NAME_MAX) < 0)
	return (NULL);
    if ((fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
	return (sn_throw_errno(env, "memfd_create", errno));
    return (sn_new_fd(env, fd));
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
    if (sn_arg_fd(argv[0], op->fn, &fd) < 0
	|| (op->arg && sn_arg_int(env, argv[1], op->fn, op->arg, 0, FD_MAX, &arg) < 0))
	return (NULL);
    if (op->cmd == F_SETLEASE && arg != F_RDLCK && arg != F_UNLCK)
	return (sn_bad_arg(env, 1, op->fn, op->arg, "must be F_RDLCK or F_UNLCK"), NULL);
    if ((r = fcntl(fd, op->cmd, arg)) < 0)
	return (sn_throw_errno(env, "fcntl", errno));
    return (op->arg ? NULL : sn_int(env, r));
}

/* sn_link_fd - name an open file by linkat of /proc/self/fd/N; never replaces */
static napi_value sn_link_fd(napi_env env, napi_callback_info info)
{
    char    path[PATH_BYTES_MAX + 1], proc[32];
    int     fd;

    ARGS(2);
    if (sn_arg_fd(argv[0], "linkFd", &fd) < 0
	|| sn_arg_str(env, argv[1], "linkFd", "path", path, PATH_BYTES_MAX) < 0)
	return (NULL);
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
	return (sn_throw_errno(env, "linkat", errno));
    return (NULL);
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
    if (sn_arg_int(env, argv[0], "alignedBuffer", "bytes", ALIGN_BYTES, ALIGNED_MAX, &bytes) < 0)
	return (NULL);
    if (bytes % ALIGN_BYTES != 0)
	return (sn_bad_arg(env, 1, "alignedBuffer", "bytes", "must be a multiple of 4096"), NULL);
    if ((err = posix_memalign(&mem, ALIGN_BYTES, (size_t) bytes)) != 0)
	return (sn_throw_errno(env, "posix_memalign", err));
    memset(mem, 0, (size_t) bytes);
    if (napi_create_external_arraybuffer(env, mem, (size_t) bytes, aligned_free, NULL, &out) != napi_ok) {
	free(mem);
	return (sn_fail(env));
    }
    return (out);
}

/* sn_descriptors_init - define this file's functions on exports */
napi_value sn_descriptors_init(napi_env env, napi_value exports)
{
#define FCNTL(i) { fcntl_ops[i].fn, NULL, sn_fcntl, NULL, NULL, NULL, napi_enumerable, \
	    (void *) &fcntl_ops[i] }
    const napi_property_descriptor fns[] = {	/* automatic: FCNTL(i) reads fcntl_ops */
	FN("memfdCreate", sn_memfd_create), FCNTL(0), FCNTL(1), FCNTL(2), FCNTL(3),
	FCNTL(4), FCNTL(5), FN("linkFd", sn_link_fd), FN("alignedBuffer", sn_aligned_buffer),
    };
#undef FCNTL

    CHECK(napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
    return (exports);
}
