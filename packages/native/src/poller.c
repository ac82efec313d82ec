/*
 * NAME
 *	poller 3
 * SUMMARY
 *	readiness of a descriptor on the Node event loop (uv_poll)
 * SYNOPSIS
 *	const p = native.poll(fd, (status, events) => { ... });
 *	p.start(POLL_READABLE | POLL_WRITABLE | POLL_DISCONNECT);
 *	p.stop();
 *	p.close();
 * DESCRIPTION
 *	poll() returns a stopped Poller around a uv_poll handle on the
 *	environment's loop; the callback runs on the JS thread through
 *	napi_make_callback, inside a handle scope. Readiness is level-
 *	triggered. No call here blocks, and nothing runs on the threadpool.
 *
 *	A Poller's memory is shared by libuv (the handle) and JS (the wrapped
 *	object), and is freed when both have let go: poller_closed() when the
 *	handle is closed, poller_drop() when close() or the GC unwraps it. The
 *	wrap is a strong reference while the handle is active, so an active
 *	Poller is never collected; a stopped one may be. At environment
 *	teardown (process or worker exit) an async cleanup hook closes the
 *	handle, and Node waits for that, so no close callback outlives this
 *	library.
 *
 *	The per-environment state (the instance data) is the Poller class and
 *	the symbol under which a Poller keeps its callback.
 * DIAGNOSTICS
 *	A failed libuv call throws like a failed system call (common.c), with
 *	the libuv error's name as .code. A callback that throws raises
 *	'uncaughtException', as any Node callback would.
 * BUGS
 *	uv.h is outside N-API's ABI promise: rebuild for each Node major.
 *	libuv allows one active Poller per descriptor (EEXIST), and a
 *	Poller must be closed before its descriptor is.
 * SEE ALSO
 *	uv_poll_t in libuv's documentation, packages/native/README.md
 */

#include <errno.h>
#include <stdlib.h>
#include <uv.h>
#include "sluice_native.h"

#define POLL_EVENTS	(UV_READABLE | UV_WRITABLE | UV_DISCONNECT)

typedef struct {			/* per-environment state */
    napi_ref poller_class;
    napi_ref callback_key;		/* symbol under which a Poller keeps its callback */
    int     constructing;		/* poll() is calling the Poller constructor */
} poll_env_t;

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

/* throw_uv - throw for a failed libuv call (r is a negative errno) */
static napi_value throw_uv(napi_env env, const char *call, int r)
{
    return (sn_throw_sys(env, call, uv_err_name(r), uv_strerror(r), r, -1));
}

/* poller_closed - uv_close callback: the handle is gone */
static void poller_closed(uv_handle_t *handle)
{
    poller_t *p = handle->data;

    if (p->hook)
	MUST(napi_remove_async_cleanup_hook(p->hook));	/* teardown may go on */
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
    MUST(napi_delete_reference(env, p->self));
    if (!p->in_callback)		/* else poller_cb destroys it afterwards */
	MUST(napi_async_destroy(env, p->async));
    if (p->state == CLOSED)
	free(p);
    else
	poller_shut(p);
}

/* poller_hold - keep the JS object alive exactly while the handle is active */
static void poller_hold(napi_env env, poller_t *p, int want)
{
    /* A failed ref leaves the object collectable: its finalizer then shuts the handle. */
    if (want && !p->strong && napi_reference_ref(env, p->self, NULL) == napi_ok)
	p->strong = 1;
    else if (!want && p->strong && napi_reference_unref(env, p->self, NULL) == napi_ok)
	p->strong = 0;
}

/* poller_raise - after a failed call into JS: a pending exception becomes an uncaughtException */
static void poller_raise(napi_env env)
{
    napi_value exc;
    bool    pending = false;

    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending
	|| napi_get_and_clear_last_exception(env, &exc) != napi_ok)
	return;
    /* No JS frame is below us. This fails only in an environment that can run no more JS. */
    if (napi_fatal_exception(env, exc) != napi_ok)
	return;				/* torn down: nobody is left to tell */
}

/* poller_cb - readiness on the loop: call back into JS */
static void poller_cb(uv_poll_t *handle, int status, int events)
{
    poller_t *p = handle->data;
    napi_env env = p->env;
    napi_handle_scope scope;
    napi_value obj, key, cb, argv[2];
    napi_status called = napi_generic_failure;	/* until the callback has returned */
    poll_env_t *pe = NULL;

    if (p->state != OPEN || !p->wrapped || napi_open_handle_scope(env, &scope) != napi_ok)
	return;
    if (napi_get_instance_data(env, (void **) &pe) == napi_ok && pe
	&& napi_get_reference_value(env, p->self, &obj) == napi_ok && obj
	&& napi_get_reference_value(env, pe->callback_key, &key) == napi_ok
	&& napi_get_property(env, obj, key, &cb) == napi_ok
	&& napi_create_int32(env, status, &argv[0]) == napi_ok
	&& napi_create_int32(env, status < 0 ? 0 : events, &argv[1]) == napi_ok) {
	p->in_callback = 1;
	called = napi_make_callback(env, p->async, obj, cb, 2, argv, NULL);
	p->in_callback = 0;
    }
    if (called != napi_ok)		/* the callback threw, or could not be reached */
	poller_raise(env);
    if (!p->wrapped)			/* close() ran inside the callback */
	MUST(napi_async_destroy(env, p->async));
    else if (!uv_is_active((uv_handle_t *) handle))	/* stop(), or a libuv error */
	poller_hold(env, p, 0);
    MUST(napi_close_handle_scope(env, scope));
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
	return (sn_fail(env), -1);
    if (napi_check_object_type_tag(env, *self, &poller_tag, &tagged) != napi_ok || !tagged) {
	(void) sn_thrown(env, napi_throw_type_error(env, "ERR_INVALID_THIS",
						    "Poller method called on a non-Poller"));
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
	return (sn_thrown(env, napi_throw_error(env, "ERR_POLLER_CLOSED", "start(): Poller is closed")));
    if (sn_arg_int(env, arg, "start", "events", 1, POLL_EVENTS, &events) < 0)
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
	CHECK(napi_remove_wrap(env, self, NULL));	/* the finalizer will not run */
	poller_drop(env, p);
    }
    return (NULL);
}

/* poller_construct - refuse `new Poller()` from JS: poll() is the only factory */
static napi_value poller_construct(napi_env env, napi_callback_info info)
{
    poll_env_t *pe = NULL;
    napi_value self;

    CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
    if (napi_get_instance_data(env, (void **) &pe) != napi_ok || !pe || !pe->constructing)
	return (sn_thrown(env, napi_throw_type_error(env, "ERR_ILLEGAL_CONSTRUCTOR",
						     "Poller: use poll(fd, callback)")));
    return (self);
}

/* sn_poll - a stopped Poller watching fd, calling back on the JS thread */
static napi_value sn_poll(napi_env env, napi_callback_info info)
{
    napi_property_descriptor prop = {0};
    napi_valuetype t;
    napi_value cls, obj, name;
    napi_status st;
    poll_env_t *pe = NULL;
    uv_loop_t *loop;
    poller_t *p;
    int     fd, r;

    ARGS(2);
    if (sn_arg_fd(argv[0], "poll", &fd) < 0)
	return (NULL);
    if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
	return (sn_bad_arg(env, 0, "poll", "callback", "must be a function"), NULL);
    CHECK(napi_get_instance_data(env, (void **) &pe));
    CHECK(napi_get_reference_value(env, pe->poller_class, &cls));
    pe->constructing = 1;
    st = napi_new_instance(env, cls, 0, NULL, &obj);
    pe->constructing = 0;
    CHECK(st);
    CHECK(napi_type_tag_object(env, obj, &poller_tag));
    CHECK(napi_get_reference_value(env, pe->callback_key, &prop.name));
    prop.value = argv[1];
    prop.attributes = napi_default;	/* read-only, not enumerable, fixed */
    CHECK(napi_define_properties(env, obj, 1, &prop));
    CHECK(napi_get_uv_event_loop(env, &loop));
    CHECK(napi_create_string_utf8(env, "SluicePoller", NAPI_AUTO_LENGTH, &name));
    if ((p = calloc(1, sizeof(*p))) == NULL)
	return (sn_throw_errno(env, "calloc", ENOMEM));
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
	    MUST(napi_async_destroy(env, p->async));
	poller_shut(p);			/* not wrapped: poller_closed() frees it */
	return (sn_fail(env));
    }
    p->wrapped = 1;
    return (obj);
}

/* poll_env_free - environment teardown: drop the per-environment state */
static void poll_env_free(napi_env env, void *data, void *hint)
{
    poll_env_t *pe = data;

    (void) hint;
    if (pe->poller_class)
	MUST(napi_delete_reference(env, pe->poller_class));
    if (pe->callback_key)
	MUST(napi_delete_reference(env, pe->callback_key));
    free(pe);
}

/* sn_poller_init - the Poller class, the callback symbol, and poll() on exports */
napi_value sn_poller_init(napi_env env, napi_value exports)
{
#define METHOD(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }
    static const napi_property_descriptor methods[] = {
	METHOD("start", poller_start), METHOD("stop", poller_stop),
	METHOD("close", poller_close),
    };
#undef METHOD
    static const napi_property_descriptor fns[] = {FN("poll", sn_poll)};
    napi_value cls, key, desc;
    poll_env_t *pe;

    if ((pe = calloc(1, sizeof(*pe))) == NULL)
	return (sn_throw_errno(env, "calloc", ENOMEM));
    if (napi_set_instance_data(env, pe, poll_env_free, NULL) != napi_ok) {
	free(pe);
	return (sn_fail(env));
    }
    CHECK(napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_construct, NULL,
			    sizeof(methods) / sizeof(methods[0]), methods, &cls));
    CHECK(napi_create_reference(env, cls, 1, &pe->poller_class));
    CHECK(napi_create_string_utf8(env, "sluice.poller.callback", NAPI_AUTO_LENGTH, &desc));
    CHECK(napi_create_symbol(env, desc, &key));
    CHECK(napi_create_reference(env, key, 1, &pe->callback_key));
    CHECK(napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
    return (exports);
}
