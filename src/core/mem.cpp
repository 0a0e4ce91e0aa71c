#include "core/mem.h"

#include <stdlib.h>

// Per thread, like everything a server touches.
static thread_local uint32_t fail_countdown;

void mem_fail_after(uint32_t n) { fail_countdown = n; }

static bool injected_failure(void) { return fail_countdown && --fail_countdown == 0; }

void *mem_alloc(size_t n) { return injected_failure() ? nullptr : malloc(n); }
void *mem_calloc(size_t count, size_t size) { return injected_failure() ? nullptr : calloc(count, size); }
void *mem_realloc(void *p, size_t n) { return injected_failure() ? nullptr : realloc(p, n); }
