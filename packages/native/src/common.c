/*
 * NAME
 *	common 3
 * SUMMARY
 *	errors thrown to JS, arguments read from JS, values handed to JS
 * SYNOPSIS
 *	#include "sluice_native.h"
 *
 *	return (sn_throw_errno(env, "recvmsg", errno));
 *	if (sn_arg_fd(argv[0], "recv", &fd) < 0) return (NULL);
 *	return (sn_new_fd(env, fd));
 * DESCRIPTION
 *	A failed system call throws an Error "syscall: CODE (description)"
 *	with .code (the errno name), .errno (negative, as in node:fs) and
 *	.syscall; a refused record adds .fds. A wrong argument type throws a
 *	TypeError (ERR_INVALID_ARG_TYPE), a bad value a RangeError
 *	(ERR_OUT_OF_RANGE); both name the function and the argument. A failed
 *	N-API call throws ERR_SLUICE_NAPI unless an exception is already
 *	pending.
 * SEE ALSO
 *	sluice_native.h, packages/native/README.md ("Errors")
 */

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sluice_native.h"

/* sn_fail - make sure a failed napi call leaves an exception pending; NULL */
napi_value sn_fail(napi_env env)
{
    const napi_extended_error_info *ei = NULL;
    bool    pending = false;
    char    msg[160];

    if (napi_get_last_error_info(env, &ei) != napi_ok)
	ei = NULL;
    snprintf(msg, sizeof(msg), "N-API call failed: %s",
	     ei && ei->error_message ? ei->error_message : "unknown");
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
	return (NULL);
    /* Not even an error can be thrown: the caller would get undefined for a failure. */
    MUST(napi_throw_error(env, "ERR_SLUICE_NAPI", msg));
    return (NULL);
}

/* sn_thrown - NULL, after a throw whose status is st; if the throw failed, sn_fail */
napi_value sn_thrown(napi_env env, napi_status st)
{
    return (st == napi_ok ? NULL : sn_fail(env));
}

/* sn_set_num - obj[key] = n */
napi_status sn_set_num(napi_env env, napi_value obj, const char *key, double n)
{
    napi_value v;
    napi_status st = napi_create_double(env, n, &v);

    return (st == napi_ok ? napi_set_named_property(env, obj, key, v) : st);
}

/* sn_throw_sys - throw "syscall: CODE (description)" with .code, .errno, .fds, .syscall */
napi_value sn_throw_sys(napi_env env, const char *syscall, const char *code,
			        const char *desc, int err, int nfds)
{
    napi_value error, v_code, v_msg, v;
    char    msg[256];

    snprintf(msg, sizeof(msg), "%s: %s (%s)", syscall, code, desc);
    CHECK(napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v_code));
    CHECK(napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &v_msg));
    CHECK(napi_create_error(env, v_code, v_msg, &error));
    if (err != 0)
	CHECK(sn_set_num(env, error, "errno", err));
    if (nfds >= 0)
	CHECK(sn_set_num(env, error, "fds", nfds));
    CHECK(napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v));
    CHECK(napi_set_named_property(env, error, "syscall", v));
    return (sn_thrown(env, napi_throw(env, error)));
}

/* sn_throw_errno - throw for a failed system call */
napi_value sn_throw_errno(napi_env env, const char *syscall, int err)
{
    const char *name = strerrorname_np(err), *desc = strerrordesc_np(err);

    return (sn_throw_sys(env, syscall, name ? name : "EUNKNOWN",
			 desc ? desc : "Unknown error", -err, -1));
}

/* sn_bad_arg - throw a TypeError or RangeError naming function and argument; -1 */
int     sn_bad_arg(napi_env env, int range, const char *fn, const char *name,
		           const char *what)
{
    char    msg[200];

    snprintf(msg, sizeof(msg), "%s(): argument '%s' %s", fn, name, what);
    (void) sn_thrown(env, range ? napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg)
		     : napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg));
    return (-1);
}

/* sn_arg_int - an integral number in [min, max], or -1 with an exception */
int     sn_arg_int(napi_env env, napi_value v, const char *fn, const char *name,
		           double min, double max, int *out)
{
    napi_valuetype t;
    double  d;
    char    what[80];

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_number
	|| napi_get_value_double(env, v, &d) != napi_ok)
	return (sn_bad_arg(env, 0, fn, name, "must be a number"));
    if (!isfinite(d) || d != floor(d) || d < min || d > max) {
	snprintf(what, sizeof(what), "must be an integer in [%.0f, %.0f]", min, max);
	return (sn_bad_arg(env, 1, fn, name, what));
    }
    *out = (int) d;
    return (0);
}

/* sn_arg_str - a non-empty string of at most max UTF-8 bytes, no NUL, into buf[max + 1] */
int     sn_arg_str(napi_env env, napi_value v, const char *fn, const char *name,
		           char *buf, size_t max)
{
    napi_valuetype t;
    size_t  len = 0;
    char    what[64];

    if (napi_typeof(env, v, &t) != napi_ok || t != napi_string
	|| napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
	return (sn_bad_arg(env, 0, fn, name, "must be a string"));
    if (len == 0)
	return (sn_bad_arg(env, 1, fn, name, "must not be empty"));
    if (len > max) {
	snprintf(what, sizeof(what), "must be at most %zu bytes long", max);
	return (sn_bad_arg(env, 1, fn, name, what));
    }
    if (napi_get_value_string_utf8(env, v, buf, max + 1, &len) != napi_ok
	|| strlen(buf) != len)
	return (sn_bad_arg(env, 0, fn, name, "must not contain NUL bytes"));
    return (0);
}

/* sn_arg_sun - a sockaddr_un from a path argument; never the abstract namespace */
int     sn_arg_sun(napi_env env, napi_value v, const char *fn,
		           struct sockaddr_un *sa, socklen_t *len)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (sn_arg_str(env, v, fn, "path", sa->sun_path, sizeof(sa->sun_path) - 1) < 0)
	return (-1);
    *len = offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1;
    return (0);
}

/* sn_int - a JS number from a C int */
napi_value sn_int(napi_env env, int n)
{
    napi_value v;

    CHECK(napi_create_int32(env, n, &v));
    return (v);
}

/* sn_new_fd - hand a descriptor we own to JS, closing it if even that fails */
napi_value sn_new_fd(napi_env env, int fd)
{
    napi_value v;

    if (napi_create_int32(env, fd, &v) == napi_ok)
	return (v);
    close(fd);
    return (sn_fail(env));
}
