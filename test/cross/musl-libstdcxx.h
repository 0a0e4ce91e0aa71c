/* test/cross/musl-libstdcxx.h: included first in every C++ file of the musl build
 * (test/cross/musl.sh, bin/musl-c++).
 *
 * Debian's libstdc++ headers were configured for glibc's locale model, and two of them
 * (<bits/c++locale.h>, <bits/ctype_base.h>) name glibc's spelling of the locale handle
 * and the bits of its character-class table. simdjson includes <ostream>, which reaches
 * both, although the daemon never formats through a stream. The names are given here
 * with glibc's values, so that the headers compile. Nothing links against them: code of
 * libstdc++.a that really used glibc's locales would need glibc's own functions, which
 * musl does not have, and the link would fail rather than run wrong.
 *
 * The same holds for pthread_cond_clockwait (glibc 2.30), which an inline function of
 * <bits/std_mutex.h> calls and C++20's <memory> includes: declared here, defined nowhere,
 * so that a use of it is a link error.
 */
#ifndef WSR_MUSL_LIBSTDCXX_H
#define WSR_MUSL_LIBSTDCXX_H

#include <locale.h>
#include <pthread.h>
#include <time.h>

/* musl's locale_t is the same kind of pointer that glibc calls __locale_t. */
typedef locale_t __locale_t;

/* glibc's class bits, numbered 0..11 and stored with the two bytes of a 16-bit word
 * swapped on little-endian machines. */
#define WSR_GLIBC_ISBIT(bit) ((bit) < 8 ? ((1 << (bit)) << 8) : ((1 << (bit)) >> 8))
#define _ISupper WSR_GLIBC_ISBIT(0)
#define _ISlower WSR_GLIBC_ISBIT(1)
#define _ISalpha WSR_GLIBC_ISBIT(2)
#define _ISdigit WSR_GLIBC_ISBIT(3)
#define _ISxdigit WSR_GLIBC_ISBIT(4)
#define _ISspace WSR_GLIBC_ISBIT(5)
#define _ISprint WSR_GLIBC_ISBIT(6)
#define _ISgraph WSR_GLIBC_ISBIT(7)
#define _ISblank WSR_GLIBC_ISBIT(8)
#define _IScntrl WSR_GLIBC_ISBIT(9)
#define _ISpunct WSR_GLIBC_ISBIT(10)
#define _ISalnum WSR_GLIBC_ISBIT(11)

#ifdef __cplusplus
extern "C"
#endif
int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                           const struct timespec *abstime);

#endif
