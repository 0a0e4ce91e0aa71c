#include "core/mem.h"

#include <stdlib.h>

// Per thread, like everything a server touches.
static thread_local uint32_t fail_countdown;

void mem_fail_after(uint32_t n) { fail_countdown = n; }

static bool injected_failure(void) {
    if (!fail_countdown) return false;
    if (fail_countdown > 1) {
        fail_countdown--;
        return false;
    }
    return true; // stays at 1: every later allocation fails too
}

void *mem_alloc(size_t n) { return injected_failure() ? nullptr : malloc(n); }
void *mem_calloc(size_t count, size_t size) { return injected_failure() ? nullptr : calloc(count, size); }
void *mem_realloc(void *p, size_t n) { return injected_failure() ? nullptr : realloc(p, n); }
