/*
 * NAME
 *	sluice_mldsa 3
 * SUMMARY
 *	ML-DSA-65 signing (FIPS 204) for egress's reports, in C
 * SYNOPSIS
 *	const mldsa = require("sluice_mldsa.node");
 *
 *	mldsa.sign(secretKey, message, deterministic)	-> Uint8Array (3309 bytes)
 * DESCRIPTION
 *	The one call egress makes per report that is too slow in JavaScript
 *	here (about 11 ms with @noble/post-quantum, 0.7 ms in C; issue 9,
 *	docs/performance.md). The algorithm is PQClean's ml-dsa-65 "clean"
 *	implementation, vendored unchanged in vendor/pqclean/ (see its
 *	README.md); this file only checks arguments and supplies randomness.
 *
 *	sign() is ML-DSA.Sign of FIPS 204 (Algorithm 2) with the EMPTY context
 *	string: the same bytes as @noble/post-quantum's
 *	ml_dsa65.sign(message, secretKey, { context: empty }). It is hedged
 *	(32 fresh bytes from getrandom() per signature) unless deterministic
 *	is true, which uses the all-zero rnd of FIPS 204's deterministic
 *	variant (only the test vectors do).
 *
 *	Verification and key generation stay in JavaScript (@noble), so each
 *	fresh signature is checked by an independent implementation before a
 *	report leaves egress (_hybrid.ts).
 * SECURITY
 *	The secret key is read from the caller's buffer and never stored;
 *	PQClean leaves its expansion on this thread's stack (as noble leaves
 *	it on the heap). PQClean's SHAKE contexts are malloc()ed, and it calls
 *	exit(111) if such a 200-byte allocation fails; the stage then stops
 *	and systemd restarts it, nothing is signed.
 *	The deterministic flag is per call and per thread: randombytes() below
 *	is called only from inside sign(), on the thread that called it.
 * DIAGNOSTICS
 *	A wrong argument type throws a TypeError, a secret key of the wrong
 *	length a RangeError (ERR_OUT_OF_RANGE), both naming the argument; a
 *	failed getrandom() an Error with .code (errno name) and .syscall.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include <node_api.h>

#include "api.h"
#include "randombytes.h"

#define SK_BYTES	PQCLEAN_MLDSA65_CLEAN_CRYPTO_SECRETKEYBYTES
#define SIG_BYTES	PQCLEAN_MLDSA65_CLEAN_CRYPTO_BYTES

static _Thread_local bool zero_rnd;	/* this thread's sign() is deterministic */
static _Thread_local int rnd_errno;	/* getrandom() failed inside this sign() */

/* randombytes - PQClean's source of randomness: getrandom(), or zeros for a deterministic sign() */
int randombytes(uint8_t *out, size_t n)
{
    ssize_t got;

    if (zero_rnd) {
	memset(out, 0, n);
	return (0);
    }
    while (n > 0) {
	if ((got = getrandom(out, n, 0)) < 0) {
	    if (errno == EINTR)
		continue;
	    rnd_errno = errno;
	    memset(out, 0, n);		/* the signature is discarded below */
	    return (-1);
	}
	out += got;
	n -= (size_t) got;
    }
    return (0);
}

static napi_value fail(napi_env env, const char *code, const char *msg, int range)
{
    if (range)
	napi_throw_range_error(env, code, msg);
    else
	napi_throw_type_error(env, code, msg);
    return (NULL);
}

/* bytes - the contents of a Uint8Array (or Buffer) argument */
static int bytes(napi_env env, napi_value v, const char *msg, uint8_t **data, size_t *len)
{
    napi_typedarray_type type;
    napi_value ab;
    size_t  off;
    bool    is;

    if (napi_is_typedarray(env, v, &is) != napi_ok || !is
	|| napi_get_typedarray_info(env, v, &type, len, (void **) data, &ab, &off) != napi_ok
	|| type != napi_uint8_array) {
	fail(env, "ERR_INVALID_ARG_TYPE", msg, 0);
	return (-1);
    }
    if (*data == NULL)			/* an empty array may have no storage */
	*data = (uint8_t *) "";
    return (0);
}

/* sn_sign - ML-DSA-65 signature of message under secretKey, empty context */
static napi_value sn_sign(napi_env env, napi_callback_info info)
{
    napi_value argv[3], out;
    size_t  argc = 3, sklen, mlen, siglen = 0;
    uint8_t *sk, *m, *sig;
    bool    det;
    int     r;

    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
	return (NULL);
    if (argc != 3)
	return (fail(env, "ERR_INVALID_ARG_TYPE", "sign(): expects (secretKey, message, deterministic)", 0));
    if (bytes(env, argv[0], "sign(): argument 'secretKey' must be a Uint8Array", &sk, &sklen) < 0
	|| bytes(env, argv[1], "sign(): argument 'message' must be a Uint8Array", &m, &mlen) < 0)
	return (NULL);
    if (sklen != SK_BYTES)
	return (fail(env, "ERR_OUT_OF_RANGE", "sign(): argument 'secretKey' must be 4032 bytes (an ML-DSA-65 secret key)", 1));
    if (napi_get_value_bool(env, argv[2], &det) != napi_ok)
	return (fail(env, "ERR_INVALID_ARG_TYPE", "sign(): argument 'deterministic' must be a boolean", 0));
    if (napi_create_buffer(env, SIG_BYTES, (void **) &sig, &out) != napi_ok)
	return (NULL);
    zero_rnd = det;
    rnd_errno = 0;
    r = PQCLEAN_MLDSA65_CLEAN_crypto_sign_signature_ctx(sig, &siglen, m, mlen, NULL, 0, sk);
    zero_rnd = false;
    if (rnd_errno != 0) {
	napi_value err, code, msg, sys;

	memset(sig, 0, SIG_BYTES);
	napi_create_string_utf8(env, "getrandom failed; nothing signed", NAPI_AUTO_LENGTH, &msg);
	napi_create_string_utf8(env, strerrorname_np(rnd_errno), NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, "getrandom", NAPI_AUTO_LENGTH, &sys);
	napi_create_error(env, code, msg, &err);
	napi_set_named_property(env, err, "syscall", sys);
	napi_throw(env, err);
	return (NULL);
    }
    if (r != 0 || siglen != SIG_BYTES) {	/* only a context over 255 bytes fails, and ours is empty */
	napi_throw_error(env, "ESLUICE_MLDSA", "ML-DSA-65 signing failed");
	return (NULL);
    }
    return (out);
}

NAPI_MODULE_INIT()
{
    napi_property_descriptor fn = { "sign", NULL, sn_sign, NULL, NULL, NULL, napi_enumerable, NULL };

    if (napi_define_properties(env, exports, 1, &fn) != napi_ok)
	return (NULL);
    return (exports);
}
