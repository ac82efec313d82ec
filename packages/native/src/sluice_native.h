/*
 * NAME
 *	sluice_native.h 3h
 * SUMMARY
 *	what the addon's source files share
 * SYNOPSIS
 *	#include "sluice_native.h"
 *
 *	napi_value sn_sockets_init(napi_env env, napi_value exports);
 *	napi_value sn_descriptors_init(napi_env env, napi_value exports);
 *	napi_value sn_poller_init(napi_env env, napi_value exports);
 *	napi_value sn_process_init(napi_env env, napi_value exports);
 * DESCRIPTION
 *	Each concern (sockets.c, descriptors.c, poller.c, process.c) defines its own
 *	functions on `exports` from its *_init, called once per environment by
 *	the module init in sluice_native.c. The rest is the plumbing of
 *	common.c: reading arguments, throwing errors, handing values to JS.
 *
 *	Every napi_status is checked. In a function called from JS, CHECK()
 *	leaves an exception pending (sn_fail) and returns NULL. A function
 *	that throws returns sn_thrown() of the throw's status. Where no JS
 *	caller can be told (finalizers, libuv callbacks, cleanup hooks), MUST()
 *	stops the process on a failure, naming the call: those calls fail only
 *	on a broken runtime or a bug here, and a loud stop beats a silent leak
 *	or a dangling handle. The few calls there that may fail while the
 *	environment is torn down are checked where they are made.
 *
 *	Everything declared here has hidden visibility: only the module init
 *	is exported by the shared object, and no symbol of Node's can take the
 *	place of one of ours.
 */
#ifndef SLUICE_NATIVE_H
#define SLUICE_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <node_api.h>

#pragma GCC visibility push(hidden)

#define FD_MAX		2147483647.0	/* the largest descriptor an argument may name */

/* CHECK - in a function called from JS: on failure, leave an exception pending and return NULL */
#define CHECK(call) do { if ((call) != napi_ok) return (sn_fail(env)); } while (0)

/* MUST - where no JS caller can be told: a failure is a bug or a broken runtime, so stop */
#define MUST(call) do { if ((call) != napi_ok) \
	napi_fatal_error(__func__, NAPI_AUTO_LENGTH, #call, NAPI_AUTO_LENGTH); } while (0)

/* ARGS - napi_value argv[n] and argc from the call's info */
#define ARGS(n) napi_value argv[n]; size_t argc = n; \
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/* FN - a property descriptor for an exported function */
#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }

/* common.c: errors */
napi_value sn_fail(napi_env env);
napi_value sn_thrown(napi_env env, napi_status st);
napi_value sn_throw_sys(napi_env env, const char *syscall, const char *code,
		                const char *desc, int err, int nfds);
napi_value sn_throw_errno(napi_env env, const char *syscall, int err);
int	sn_bad_arg(napi_env env, int range, const char *fn, const char *name,
		           const char *what);

/* common.c: arguments */
int	sn_arg_int(napi_env env, napi_value v, const char *fn, const char *name,
		           double min, double max, int *out);
int	sn_arg_str(napi_env env, napi_value v, const char *fn, const char *name,
		           char *buf, size_t max);
int	sn_arg_sun(napi_env env, napi_value v, const char *fn,
		           struct sockaddr_un *sa, socklen_t *len);

#define sn_arg_fd(v, fn, out) sn_arg_int(env, (v), (fn), "fd", 0, FD_MAX, (out))

/* common.c: values */
napi_status sn_set_num(napi_env env, napi_value obj, const char *key, double n);
napi_value sn_int(napi_env env, int n);
napi_value sn_new_fd(napi_env env, int fd);

/* the concerns */
napi_value sn_sockets_init(napi_env env, napi_value exports);
napi_value sn_descriptors_init(napi_env env, napi_value exports);
napi_value sn_poller_init(napi_env env, napi_value exports);
napi_value sn_process_init(napi_env env, napi_value exports);

#pragma GCC visibility pop

#endif
