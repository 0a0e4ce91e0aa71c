// bench/micro: Google Benchmark microbenchmarks of the protocol layer (src/proto).
// Run through bench/micro/run.sh for medians and ratios; or directly, with any
// --benchmark_* flag (e.g. --benchmark_filter=utf8).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "micro.h"

uint8_t *micro_alloc(size_t n) {
    size_t rounded = (n + 63) & ~(size_t)63;
    uint8_t *p = (uint8_t *)aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        fprintf(stderr, "microbench: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

const char *micro_size_name(size_t n) {
    static char names[16][24];
    static int next;
    char *s = names[next++ & 15];
    if (n >= (1u << 20) && n % (1u << 20) == 0) snprintf(s, 24, "%zuMiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0) snprintf(s, 24, "%zuKiB", n >> 10);
    else snprintf(s, 24, "%zuB", n);
    return s;
}

bool micro_fail(const char *what) {
    fprintf(stderr, "microbench: self-check failed: %s\n", what);
    return false;
}

int main(int argc, char **argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    // Registration order is the order of the report.
    bool ok = micro_register_mask();
    ok = micro_register_utf8() && ok;
    ok = micro_register_frame() && ok;
    ok = micro_register_handshake() && ok;
    ok = micro_register_deflate() && ok;
    if (!ok) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
