// Counts the heap calls of the whole process (the libraries' shared objects
// included: a malloc defined in the executable interposes libc's), for
// `jsonbench-count allocs NAME N`. Forwards to glibc's __libc_* entry points.
#include <cstddef>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

static unsigned long g_calls, g_bytes;

void jb_alloc_counts(unsigned long* calls, unsigned long* bytes)
{
    *calls = g_calls;
    *bytes = g_bytes;
}

void* malloc(size_t n)
{
    g_calls++;
    g_bytes += n;
    return __libc_malloc(n);
}
void* calloc(size_t a, size_t b)
{
    g_calls++;
    g_bytes += a * b;
    return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n)
{
    g_calls++;
    g_bytes += n;
    return __libc_realloc(p, n);
}
void* memalign(size_t al, size_t n)
{
    g_calls++;
    g_bytes += n;
    return __libc_memalign(al, n);
}
void* aligned_alloc(size_t al, size_t n) { return memalign(al, n); }
int posix_memalign(void** out, size_t al, size_t n)
{
    void* p = memalign(al, n);
    if (!p)
        return 12;  // ENOMEM
    *out = p;
    return 0;
}
void free(void* p) { __libc_free(p); }
}
