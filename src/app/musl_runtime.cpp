// What the static daemon on musl (make static, docs/edge.md) needs from a run time that
// glibc's static start-up and Debian's libstdc++ would otherwise give; linked only when the
// C library is not glibc (meson.build).
//
// 1. ifuncs. frame_mask_bulk is built twice on x86-64 (target_clones: AVX2 and the
// baseline), and the linker makes the choice an IRELATIVE relocation that the program's
// start-up must apply. glibc's static start-up does; musl's does not, and the call would
// land nowhere. relocate_ifuncs below applies them before anything else runs.
//
// 2. C++. Debian's libstdc++.a and libsupc++.a were built for glibc. Of them, the daemon
// needs what a program compiled with -fno-exceptions still calls: operator new and delete,
// thread-safe initialisation of function-local statics, and the few std::__throw_*
// functions that simdjson's templates name. Taken from libstdc++.a they bring the whole
// exception runtime (the unwinder, the personality routine, the demangler of the verbose
// terminate handler, std::string), and those call glibc-only functions (_dl_find_object,
// __libc_single_threaded) that musl does not have. Defined here, the linker takes none of
// libstdc++'s objects for them.
//
// Nothing in the daemon can catch an exception, so where libstdc++ would throw these
// report on stderr and abort, which is what a libstdc++ configured without exceptions
// does and what std::terminate would do here anyway.
#include <elf.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <new>

#if !defined(__x86_64__)
#error "relocate_ifuncs knows x86-64's IRELATIVE only; the musl build is made for x86-64"
#endif

// The linker brackets a static program's IRELATIVE relocations with these two symbols.
extern "C" const Elf64_Rela __rela_iplt_start[] __attribute__((weak, visibility("hidden")));
extern "C" const Elf64_Rela __rela_iplt_end[] __attribute__((weak, visibility("hidden")));

// Each relocation names a resolver (the addend), which returns the chosen function's
// address by the CPU it runs on; that address goes into the slot (the offset) the calls
// go through. Priority 101, the first a program may use: before any other constructor.
// The addresses are absolute because static builds are not position-independent
// (-Db_pie=false in make static); a static PIE would have to add its load address.
__attribute__((constructor(101))) static void relocate_ifuncs() {
    typedef uintptr_t (*resolver)();
    for (const Elf64_Rela *r = __rela_iplt_start; r < __rela_iplt_end; r++) {
        if (ELF64_R_TYPE(r->r_info) != R_X86_64_IRELATIVE) continue;
        *(uintptr_t *)r->r_offset = ((resolver)r->r_addend)();
    }
}

[[noreturn]] static void cxx_fatal(const char *what) {
    // write(2), not stdio: this may run while the heap is exhausted.
    static const char prefix[] = "wsreactor: fatal: ";
    size_t n = 0;
    while (what[n]) n++;
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, what, n);
    (void)!write(2, "\n", 1);
    abort();
}

void *operator new(size_t n) {
    // malloc(0) may return NULL; new must return a distinct pointer.
    void *p = malloc(n ? n : 1);
    if (!p) cxx_fatal("out of memory (operator new)");
    return p;
}

void *operator new[](size_t n) { return operator new(n); }

void *operator new(size_t n, const std::nothrow_t &) noexcept { return malloc(n ? n : 1); }

void *operator new[](size_t n, const std::nothrow_t &) noexcept { return malloc(n ? n : 1); }

void operator delete(void *p) noexcept { free(p); }
void operator delete[](void *p) noexcept { free(p); }
void operator delete(void *p, size_t) noexcept { free(p); }
void operator delete[](void *p, size_t) noexcept { free(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { free(p); }

namespace std {
void __throw_bad_alloc() { cxx_fatal("out of memory (std::bad_alloc)"); }
void __throw_length_error(const char *what) { cxx_fatal(what); }
void __throw_logic_error(const char *what) { cxx_fatal(what); }
} // namespace std

// The Itanium C++ ABI's guard of a function-local static: its first byte is non-zero once
// the object is initialised. The second byte here marks an initialisation in progress, so
// that a second thread waits for the first rather than initialising again. One lock for
// all guards: this runs once per static.
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t guard_done = PTHREAD_COND_INITIALIZER;

extern "C" int __cxa_guard_acquire(uint64_t *guard) {
    uint8_t *g = (uint8_t *)guard;
    if (__atomic_load_n(&g[0], __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&guard_lock);
    while (g[1]) pthread_cond_wait(&guard_done, &guard_lock);
    int mine = !g[0];
    if (mine) g[1] = 1;
    pthread_mutex_unlock(&guard_lock);
    return mine;
}

extern "C" void __cxa_guard_release(uint64_t *guard) {
    uint8_t *g = (uint8_t *)guard;
    pthread_mutex_lock(&guard_lock);
    g[1] = 0;
    __atomic_store_n(&g[0], 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&guard_done);
    pthread_mutex_unlock(&guard_lock);
}

// Called when the initialiser did not complete (it cannot throw here, but the ABI has it).
extern "C" void __cxa_guard_abort(uint64_t *guard) {
    uint8_t *g = (uint8_t *)guard;
    pthread_mutex_lock(&guard_lock);
    g[1] = 0;
    pthread_cond_broadcast(&guard_done);
    pthread_mutex_unlock(&guard_lock);
}

extern "C" void __cxa_pure_virtual() { cxx_fatal("pure virtual function called"); }
