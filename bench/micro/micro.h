// Microbenchmarks of src/proto, each against a plain reference implementation measured
// in the same run, so that what gets quoted is a ratio (these machines are shared and
// noisy; absolute figures drift, paired ratios much less).
//
// Naming: every benchmark is "group/case/impl". Within one group/case, the impl whose
// name starts with "ref" is the reference the others are divided by (bench/micro/run.sh).
#pragma once

#include <benchmark/benchmark.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Each module checks, before registering anything, that our code and its reference
// agree on every input it will time (a benchmark of a wrong answer is worthless).
// Returns false, after printing why, when they do not.
bool micro_register_mask(void);
bool micro_register_utf8(void);
bool micro_register_frame(void);
bool micro_register_handshake(void);
bool micro_register_deflate(void);

// Deterministic inputs: the same bytes on every run and machine.
struct micro_rng {
    uint64_t s;
};
static inline uint64_t micro_rand(micro_rng *r) {
    // xorshift64*
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}
static inline uint32_t micro_below(micro_rng *r, uint32_t n) { return (uint32_t)(micro_rand(r) % n); }

// 64-byte aligned, zeroed; exits on failure. Lives for the whole process.
uint8_t *micro_alloc(size_t n);
// "16B", "125B", "1KiB", "16KiB", "1MiB".
const char *micro_size_name(size_t n);
// Failure report used by the checks.
bool micro_fail(const char *what);

// Registers fn under "group/case/impl"; fn receives ctx, which outlives the run.
template <typename T>
benchmark::internal::Benchmark *micro_add(const char *group, const char *kase, const char *impl,
                                          void (*fn)(benchmark::State &, const T *), const T *ctx) {
    char name[160];
    snprintf(name, sizeof name, "%s/%s/%s", group, kase, impl);
    return benchmark::RegisterBenchmark(name, fn, ctx);
}
