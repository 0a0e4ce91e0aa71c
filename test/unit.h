// Shared by the cmocka unit tests: cmocka included for C++, and the exit of main().
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

extern "C" { // cmocka 1.1.5's header has no C++ guards
#include <cmocka.h>
}

// cmocka reports a failure by longjmp out of the test, past its frees, and
// LeakSanitizer would then add a report for memory only the failure stranded, burying
// the real message. A failed run exits without the leak check; a passing run keeps it.
static inline int unit_exit(int failures) {
    if (failures) {
        fflush(stdout);
        fflush(stderr);
        _exit(failures);
    }
    return 0;
}
