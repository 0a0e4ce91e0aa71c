// Allocation for the connection paths: the same as malloc, with one difference that
// tests need: allocation failure can be injected, so that what the server does when
// memory runs out (fail the connection or the call, never corrupt a stream) is proved
// rather than hoped for.
#pragma once

#include <stddef.h>
#include <stdint.h>

void *mem_alloc(size_t n);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t n);

// Test hook: the n-th mem_* allocation from now fails (1 = the next one); the others
// succeed, as when memory is short for a moment. 0 turns injection off.
void mem_fail_after(uint32_t n);
