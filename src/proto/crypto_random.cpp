// crypto_random for both backends: the kernel's generator through getrandom(2). OpenSSL's
// RAND_bytes would do as well, but its first call initialises the library's
// configuration, default provider and DRBG, about 2 MB of resident pages in a daemon
// that otherwise needs none of them.
#include <errno.h>
#include <sys/random.h>

#include "proto/crypto.h"

bool crypto_random(void *buf, size_t n) {
    // getrandom blocks only until the kernel's pool is first seeded (early boot on a
    // board without a hardware RNG); after that it never fails for n <= 256 and may
    // return fewer bytes for more, or be interrupted by a signal.
    uint8_t *p = (uint8_t *)buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}
