/*
 * NAME
 *	process 3
 * SUMMARY
 *	attributes of the calling process that Node cannot set
 * SYNOPSIS
 *	native.setDumpable(0 | 1)
 *	native.getDumpable()			-> 0 | 1 | 2
 * DESCRIPTION
 *	prctl(PR_SET_DUMPABLE) and prctl(PR_GET_DUMPABLE). A process that
 *	is not dumpable leaves no core dump, and a process of the same uid
 *	without CAP_SYS_PTRACE can neither ptrace it nor open its
 *	/proc/PID/mem, environ, maps or fd/ (they belong to root). The
 *	attribute is the whole process's (every thread, worker threads
 *	included), and execve() of a program resets it to 1.
 *
 *	setDumpable takes 0 or 1 only: 2 (SUID_DUMP_ROOT) is refused by the
 *	kernel for PR_SET_DUMPABLE, and by the argument check here first.
 *	getDumpable may report 2, as the kernel does for a process that
 *	changed credentials under fs.suid_dumpable=2.
 * SECURITY
 *	Egress calls setDumpable(0) before it reads the signing key, and
 *	does not start if that fails (packages/egress/src/main.ts).
 * SEE ALSO
 *	prctl(2), proc(5) ("/proc/pid"), core(5)
 */

#include <errno.h>
#include <sys/prctl.h>
#include "sluice_native.h"

/* sn_set_dumpable - prctl(PR_SET_DUMPABLE, 0 | 1) */
static napi_value sn_set_dumpable(napi_env env, napi_callback_info info)
{
    int     value;

    ARGS(1);
    if (sn_arg_int(env, argv[0], "setDumpable", "value", 0, 1, &value) < 0)
	return (NULL);
    if (prctl(PR_SET_DUMPABLE, (unsigned long) value, 0UL, 0UL, 0UL) < 0)
	return (sn_throw_errno(env, "prctl", errno));
    return (NULL);
}

/* sn_get_dumpable - prctl(PR_GET_DUMPABLE) */
static napi_value sn_get_dumpable(napi_env env, napi_callback_info info)
{
    int     r;

    (void) info;
    if ((r = prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL)) < 0)
	return (sn_throw_errno(env, "prctl", errno));
    return (sn_int(env, r));
}

/* sn_process_init - define this file's functions on exports */
napi_value sn_process_init(napi_env env, napi_value exports)
{
    static const napi_property_descriptor fns[] = {
	FN("setDumpable", sn_set_dumpable), FN("getDumpable", sn_get_dumpable),
    };

    CHECK(napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns));
    return (exports);
}
