// bench/json/jsonbench: the JSON round (jb.h) of every candidate, side by side.
//   jsonbench list
//   jsonbench check              outputs of every implementation for the sample envelopes
//   jsonbench time RUNS ITERS    ns per round, median of RUNS (implementations interleaved)
//   jsonbench rounds NAME N      N rounds of one implementation (for callgrind)
//   jsonbench allocs NAME N      heap calls per round (jsonbench-count only)
//   jsonbench hostile            accept/reject of hostile inputs, each in a child process
#include "jb.h"

#include <jansson.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/wait.h>
#include <unistd.h>

namespace jb {
extern const Impl rj_dom, rj_sax, sj_od, sj_od_full, sj_dom, js;
}  // namespace jb

// Defined by count.cpp in jsonbench-count only.
extern "C" __attribute__((weak)) void jb_alloc_counts(unsigned long* calls, unsigned long* bytes);

using namespace jb;

namespace {

const char* const kMessages[] = {
    R"({"type":"publish","channel":"agents:42:output","id":"c-17","payload":{"line":"building target 3/7","level":"info","seq":1234}})",
    R"({"type":"publish","channel":"agents:42:output","id":"c-18","correlationId":"9f1c","payload":{"line":"error: \"foo.c\":12: expected ';'\n\tat main() \u2014 ünïcödé ✓ \ud83d\ude80","level":"error","seq":1235,"tags":["build","cc"],"ok":false}})",
    R"({"type":"publish","channel":"dashboards:ops","id":"c-19","event":"metrics","payload":{"host":"edge-07","cpu":[31,27,55,12],"mem":{"used":118734848,"total":268435456,"swap":0},"procs":[{"pid":1201,"name":"wsreactor","rss":5242880,"threads":1},{"pid":1388,"name":"agent","rss":41943040,"threads":7},{"pid":1402,"name":"sshd","rss":7340032,"threads":1}],"net":{"rx":123456789,"tx":987654321},"note":null,"up":true,"ts":1764489600123}})",
    R"({"type":"subscribe","channel":"agents:42:output","id":"c-20","correlationId":"sub-1","to":"8f3c2a9e1b7d4c60"})",
};
constexpr int kNumMessages = sizeof kMessages / sizeof kMessages[0];

const Meta kMeta = {1234, 1764489600123ull, "8f3c2a9e1b7d4c60a1e2f3b4c5d6e7f8"};

const Impl* g_impls[16];
int g_n;

void collect()
{
    for (const Impl* i : {&rj_dom, &rj_sax, &sj_od, &sj_od_full, &sj_dom, &js})
        g_impls[g_n++] = i;
}

const Impl* find(const char* name)
{
    for (int i = 0; i < g_n; i++)
        if (strcmp(g_impls[i]->name, name) == 0)
            return g_impls[i];
    fprintf(stderr, "no implementation %s\n", name);
    exit(2);
}

// The server's receive buffer: the message, then padding.
char g_in[1 << 21];
char g_out[1 << 22];
size_t g_len[kNumMessages];

long one(const Impl* im, int k)
{
    size_t n = g_len[k];
    memcpy(g_in, kMessages[k], n);
    memset(g_in + n, 0, kPad);
    return im->round(g_in, n, kMeta, g_out, sizeof g_out);
}

long run(const Impl* im, long rounds)
{
    long sum = 0;
    for (long i = 0; i < rounds; i++)
        sum += one(im, static_cast<int>(i % kNumMessages));
    return sum;
}

double now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int cmd_check()
{
    int bad = 0;
    for (int k = 0; k < kNumMessages; k++) {
        char ref[4096];
        long rn = -1;
        printf("message %d (%zu bytes): %s\n", k, g_len[k], kMessages[k]);
        for (int i = 0; i < g_n; i++) {
            long n = one(g_impls[i], k);
            if (n < 0) {
                printf("  %-10s REJECTED\n", g_impls[i]->name);
                bad++;
                continue;
            }
            // Compare with the first output as JSON values (jansson), and as bytes.
            json_t* a = json_loadb(g_out, n, JSON_REJECT_DUPLICATES, nullptr);
            const char* verdict = a ? "valid" : "INVALID JSON";
            if (rn < 0) {
                memcpy(ref, g_out, n);
                rn = n;
            } else if (a) {
                json_t* b = json_loadb(ref, rn, 0, nullptr);
                if (n == rn && memcmp(ref, g_out, n) == 0)
                    verdict = "same bytes as the first";
                else if (json_equal(a, b))
                    verdict = "same value, other bytes";
                else
                    verdict = "DIFFERENT VALUE";
                json_decref(b);
            }
            if (!a)
                bad++;
            json_decref(a);
            printf("  %-10s %4ld B  %s\n  %.*s\n", g_impls[i]->name, n, verdict, static_cast<int>(n), g_out);
        }
    }
    return bad ? 1 : 0;
}

int cmd_time(int runs, long iters)
{
    double res[16][64];
    runs = std::min(runs, 64);
    for (int r = 0; r < runs; r++) {
        for (int j = 0; j < g_n; j++) {
            int i = (j + r) % g_n;  // rotate who goes first
            run(g_impls[i], iters / 10);  // warm caches and predictors
            double t0 = now_ns();
            volatile long sink = run(g_impls[i], iters);
            (void)sink;
            res[i][r] = (now_ns() - t0) / iters;
        }
    }
    for (int i = 0; i < g_n; i++) {
        std::sort(res[i], res[i] + runs);
        printf("time %s median %.1f min %.1f max %.1f\n", g_impls[i]->name, res[i][runs / 2], res[i][0],
               res[i][runs - 1]);
    }
    return 0;
}

int cmd_allocs(const Impl* im, long n)
{
    if (!jb_alloc_counts) {
        fprintf(stderr, "allocs: build jsonbench-count\n");
        return 2;
    }
    run(im, 1000);  // first-use buffers (parsers, pools) are not per-round costs
    unsigned long c0, b0, c1, b1;
    jb_alloc_counts(&c0, &b0);
    run(im, n);
    jb_alloc_counts(&c1, &b1);
    printf("allocs %s calls %.2f bytes %.1f\n", im->name, double(c1 - c0) / n, double(b1 - b0) / n);
    return 0;
}

// Hostile inputs: what the server must do with each (1 = accept, 0 = reject, 2 = either:
// RFC 8259 lets a parser limit the range of numbers, and calls duplicate names and
// U+0000 in strings interoperability risks, so rejecting them is a fair policy too).
struct Case {
    const char* name;
    int expect;
    char* data;
    size_t len;
};

char* dup_str(const char* s, size_t n)
{
    char* p = static_cast<char*>(malloc(n + 1));
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

Case mk(const char* name, int expect, const char* s, size_t n) { return Case{name, expect, dup_str(s, n), n}; }
Case mk(const char* name, int expect, const char* s) { return mk(name, expect, s, strlen(s)); }

// prefix + N x open + N x close + suffix
Case nest(const char* name, int expect, const char* pre, char open, char close, int n, const char* post)
{
    size_t a = strlen(pre), c = strlen(post);
    size_t len = a + 2 * static_cast<size_t>(n) + c;
    char* p = static_cast<char*>(malloc(len + 1));
    memcpy(p, pre, a);
    memset(p + a, open, n);
    memset(p + a + n, close, n);
    memcpy(p + a + 2 * n, post, c);
    p[len] = 0;
    return Case{name, expect, p, len};
}

int cmd_hostile()
{
#define PUB R"({"type":"publish","channel":"c",)"
    Case cs[] = {
        mk("baseline publish", 1, PUB R"("payload":{"a":1}})"),
        mk("trailing whitespace", 1, PUB R"("payload":1}  )" "\n"),
        nest("payload 1000 x [ (under 1024)", 1, PUB R"("payload":)", '[', ']', 1000, "}"),
        nest("payload 10,000 x [ ]", 0, PUB R"("payload":)", '[', ']', 10000, "}"),
        nest("payload 100,000 x [ ]", 0, PUB R"("payload":)", '[', ']', 100000, "}"),
        nest("root 10,000 x [ ]", 0, "", '[', ']', 10000, ""),
        nest("root 10,000 x [ unclosed", 0, "", '[', ' ', 10000, ""),
        nest("unknown key 10,000 x [ ]", 0, PUB R"("x":)", '[', ']', 10000, R"(,"payload":1})"),
        mk("payload int 2^64 (valid JSON)", 2, PUB R"("payload":{"n":18446744073709551616}})"),
        mk("payload int 30 digits (valid JSON)", 2, PUB R"("payload":{"n":123456789012345678901234567890}})"),
        mk("payload 1e999 (valid JSON)", 2, PUB R"("payload":{"n":1e999}})"),
        mk("payload -0.0e-400 (valid JSON)", 1, PUB R"("payload":{"n":-0.0e-400}})"),
        mk("payload bad number 01", 0, PUB R"("payload":{"n":01}})"),
        mk("payload bad number 1.", 0, PUB R"("payload":{"n":1.}})"),
        mk("payload missing colon", 0, PUB R"("payload":{"a" 1}})"),
        mk("payload [1,,2]", 0, PUB R"("payload":[1,,2]})"),
        mk("payload tru", 0, PUB R"("payload":{"a":tru}})"),
        mk("payload bad escape \\x", 0, PUB R"("payload":{"a":"\x41"}})"),
        mk("unknown key's value malformed", 0, PUB R"("x":{"a" 1},"payload":1})"),
        mk("channel invalid UTF-8 \\xff", 0, R"({"type":"publish","channel":"c)" "\xff" R"("})"),
        mk("channel overlong \\xc0\\xaf", 0, R"({"type":"publish","channel":"c)" "\xc0\xaf" R"("})"),
        mk("channel UTF-8 surrogate \\xed\\xa0\\x80", 0, R"({"type":"publish","channel":"c)" "\xed\xa0\x80" R"("})"),
        mk("channel truncated UTF-8 \\xe2\\x82", 0, R"({"type":"publish","channel":"c)" "\xe2\x82" R"("})"),
        mk("payload string invalid UTF-8", 0, PUB R"("payload":{"a":"x)" "\xff" R"("}})"),
        mk("payload key invalid UTF-8", 0, PUB R"("payload":{"x)" "\xfe" R"(":1}})"),
        mk("invalid UTF-8 outside strings", 0, PUB R"("payload":1} )" "\xff"),
        mk("channel lone \\ud800 escape", 0, R"({"type":"publish","channel":"\ud800"})"),
        mk("channel lone \\udc00 escape", 0, R"({"type":"publish","channel":"\udc00"})"),
        mk("payload lone \\ud800 escape", 0, PUB R"("payload":"\ud800x"})"),
        mk("duplicate envelope key type", 0, R"({"type":"publish","type":"subscribe","channel":"c"})"),
        mk("duplicate envelope key payload", 0, PUB R"("payload":1,"payload":2})"),
        mk("duplicate key inside payload", 2, PUB R"("payload":{"a":1,"a":2}})"),
        mk("trailing garbage x", 0, PUB R"("payload":1} x)"),
        mk("trailing second object", 0, PUB R"("payload":1}{})"),
        mk("trailing comma in object", 0, PUB R"("payload":1,})"),
        mk("NUL byte after the object", 0, PUB "\"payload\":1}\0junk", sizeof(PUB) - 1 + 17),
        mk("NUL byte inside a string", 0, R"({"type":"publish","channel":"a)" "\0" R"(b"})", 36),
        mk("NUL byte before the object", 0, "\0{}", 3),
        mk("escaped \\u0000 in channel (valid JSON)", 2, R"({"type":"publish","channel":"a\u0000b"})"),
        mk("channel not a string", 0, R"({"type":"publish","channel":5})"),
        mk("root is an array", 0, R"([{"type":"publish","channel":"c"}])"),
        mk("root is a string", 0, R"("publish")"),
        mk("empty input", 0, ""),
        mk("truncated", 0, PUB R"("payload":{"a":)"),
    };
#undef PUB
    int nc = sizeof cs / sizeof cs[0];
    printf("%-40s %6s", "case", "want");
    for (int i = 0; i < g_n; i++)
        printf(" %10s", g_impls[i]->name);
    printf("\n");
    int wrong[16] = {};
    for (int c = 0; c < nc; c++) {
        printf("%-40s %6s", cs[c].name, cs[c].expect == 2 ? "either" : cs[c].expect ? "accept" : "reject");
        for (int i = 0; i < g_n; i++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                memcpy(g_in, cs[c].data, cs[c].len);
                memset(g_in + cs[c].len, 0, kPad);
                long n = g_impls[i]->round(g_in, cs[c].len, kMeta, g_out, sizeof g_out);
                _exit(n >= 0 ? 1 : 0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            const char* r;
            int got = -1;
            if (WIFSIGNALED(st))
                r = WTERMSIG(st) == SIGSEGV ? "CRASH" : "SIGNAL";
            else
                got = WEXITSTATUS(st), r = got ? "accept" : "reject";
            bool ok = got == cs[c].expect || (cs[c].expect == 2 && got >= 0);
            if (!ok)
                wrong[i]++;
            printf(" %9s%s", r, ok ? " " : "*");
        }
        printf("\n");
    }
    printf("%-40s %6s", "wrong (*)", "");
    for (int i = 0; i < g_n; i++)
        printf(" %10d", wrong[i]);
    printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    collect();
    for (int k = 0; k < kNumMessages; k++)
        g_len[k] = strlen(kMessages[k]);
    const char* cmd = argc > 1 ? argv[1] : "check";
    if (strcmp(cmd, "list") == 0) {
        for (int i = 0; i < g_n; i++)
            printf("%s\t%s\n", g_impls[i]->name, g_impls[i]->note);
        return 0;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check();
    if (strcmp(cmd, "time") == 0 && argc == 4)
        return cmd_time(atoi(argv[2]), atol(argv[3]));
    if (strcmp(cmd, "rounds") == 0 && argc == 4) {
        long r = run(find(argv[2]), atol(argv[3]));
        return r == 0 ? 1 : 0;
    }
    if (strcmp(cmd, "allocs") == 0 && argc == 4)
        return cmd_allocs(find(argv[2]), atol(argv[3]));
    if (strcmp(cmd, "hostile") == 0)
        return cmd_hostile();
    fprintf(stderr, "usage: %s list|check|time RUNS ITERS|rounds NAME N|allocs NAME N|hostile\n", argv[0]);
    return 2;
}
