#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

wsr_log_level log_level = WSR_LOG_INFO;

// Set once by the embedder before it starts servers; read on every line.
static wsr_log_fn sink_fn;
static void *sink_user;
static wsr_log_format log_format = WSR_LOG_TEXT;

void wsr_log_set_level(wsr_log_level level) { log_level = level; }

void wsr_log_set_format(wsr_log_format format) { log_format = format == WSR_LOG_JSON ? WSR_LOG_JSON : WSR_LOG_TEXT; }

void wsr_log_set_sink(wsr_log_fn fn, void *user) {
    sink_fn = fn;
    sink_user = user;
}

enum { LOG_BURST = 10, LOG_WINDOW_MS = 5000, LOG_SITES = 64 };

// A call site is known by its format string: a literal, so one address per site.
struct log_site {
    const char *fmt;
    uint64_t window_start; // ms
    uint32_t written;      // lines written in this window
    uint32_t suppressed;   // lines dropped in this window
    wsr_log_level level;
};

// Per thread, like the servers that log: two servers on two threads never share it.
static thread_local log_site sites[LOG_SITES];
static thread_local uint32_t sites_pending; // sites holding an unwritten summary
static thread_local uint64_t suppressed_total;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// NULL when every slot is taken by another site: that line is then not limited. The
// library and the daemon have far fewer sites than slots.
static log_site *site_of(const char *fmt) {
    uint32_t h = (uint32_t)(((uintptr_t)fmt >> 3) * 0x9E3779B97F4A7C15ull >> 58);
    for (uint32_t i = 0; i < LOG_SITES; i++) {
        log_site *s = &sites[(h + i) % LOG_SITES];
        if (s->fmt == fmt) return s;
        if (!s->fmt) {
            s->fmt = fmt;
            return s;
        }
    }
    return nullptr;
}

// The length of the UTF-8 sequence at s[0..len), or 0 when it is not one (RFC 3629
// §4: no overlong forms, no surrogates, nothing past U+10FFFF).
static size_t utf8_seq(const uint8_t *s, size_t len) {
    uint8_t b = s[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF; // range of the second byte
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b >= 0xE0 && b <= 0xEF) n = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4) n = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if (len < n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

size_t log_json_escape(char *out, size_t cap, const char *s, size_t len) {
    if (!cap) return 0;
    const uint8_t *p = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *piece = esc;
        size_t pn, used = 1;
        uint8_t b = p[i];
        if (b == '"' || b == '\\') {
            esc[0] = '\\', esc[1] = (char)b, pn = 2;
        } else if (b < 0x20) {
            static const char short_esc[] = "btn\0fr"; // \b \t \n (no \v) \f \r
            if (b >= 8 && b <= 13 && short_esc[b - 8])
                esc[0] = '\\', esc[1] = short_esc[b - 8], pn = 2;
            else
                pn = (size_t)snprintf(esc, sizeof esc, "\\u%04x", b);
        } else if (b < 0x80) {
            piece = (const char *)p + i, pn = 1;
        } else if ((used = utf8_seq(p + i, len - i))) {
            piece = (const char *)p + i, pn = used;
        } else {
            piece = "\xEF\xBF\xBD", pn = 3, used = 1; // U+FFFD for the byte
        }
        if (o + pn >= cap) break;
        memcpy(out + o, piece, pn);
        o += pn;
        i += used;
    }
    out[o] = 0;
    return o;
}

static void emit(wsr_log_level level, const char *msg, size_t len) {
    if (sink_fn) return sink_fn(level, msg, sink_user);
    static const char *const names[] = {"error", "warn ", "info ", "debug"};
    static const char *const json_names[] = {"error", "warn", "info", "debug"};
    // A message is at most 1023 bytes; escaped, each byte takes at most 6.
    char line[6 * 1024 + 128];
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t tn = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tn, sizeof ts - tn, ".%03dZ", (int)(tv.tv_usec / 1000));
    size_t n;
    if (log_format == WSR_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, json_names[level]);
        n += log_json_escape(line + n, sizeof line - n - 3, msg, len);
        memcpy(line + n, "\"}\n", 3);
        n += 3;
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %s %.*s\n", ts, names[level], (int)len, msg);
        if (n >= sizeof line) n = sizeof line - 1;
    }
    // One write per line, so lines from a daemon and its test harness never interleave.
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}

static void summarise(log_site *s) {
    if (!s->suppressed) return;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%u similar lines suppressed in %u s (\"%s\")", s->suppressed,
                     (unsigned)(LOG_WINDOW_MS / 1000), s->fmt);
    emit(s->level, msg, n < (int)sizeof msg ? (size_t)n : sizeof msg - 1);
    s->suppressed = 0;
    sites_pending--;
}

bool log_admit(wsr_log_level level, const char *fmt) {
    log_site *s = site_of(fmt);
    if (!s) return true;
    uint64_t now = now_ms();
    if (now - s->window_start >= LOG_WINDOW_MS) {
        summarise(s);
        s->window_start = now;
        s->written = 0;
    }
    if (s->written >= LOG_BURST) {
        if (s->suppressed++ == 0) sites_pending++;
        suppressed_total++;
        return false;
    }
    s->written++;
    s->level = level;
    return true;
}

static void vlog_write(wsr_log_level level, const char *fmt, va_list ap) {
    char msg[1024];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) return;
    emit(level, msg, n < (int)sizeof msg ? (size_t)n : sizeof msg - 1);
}

void log_write(wsr_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog_write(level, fmt, ap);
    va_end(ap);
}

void wsr_log(wsr_log_level level, const char *fmt, ...) {
    if (level > log_level || !log_admit(level, fmt)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog_write(level, fmt, ap);
    va_end(ap);
}

bool log_flush_suppressed(void) {
    if (!sites_pending) return false;
    uint64_t now = now_ms();
    for (log_site &s : sites) {
        if (!s.suppressed || now - s.window_start < LOG_WINDOW_MS) continue;
        summarise(&s);
        s.window_start = now;
        s.written = 0;
    }
    return sites_pending > 0;
}

uint64_t log_suppressed_total(void) { return suppressed_total; }
