#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

wsr_log_level log_level = WSR_LOG_INFO;

void wsr_log_set_level(wsr_log_level level) { log_level = level; }

void log_write(wsr_log_level level, const char *fmt, ...) {
    static const char *const names[] = {"error", "warn ", "info ", "debug"};
    char line[1024];
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03dZ %s ", (int)(tv.tv_usec / 1000), names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + m > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + m);
    line[n++] = '\n';
    // One write per line, so lines from a daemon and its test harness never interleave.
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}
