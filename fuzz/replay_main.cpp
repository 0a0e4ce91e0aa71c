// Regression replay for builds without libFuzzer: runs LLVMFuzzerTestOneInput over every
// file of the given directories (or the given files) and reports TAP, one line per input:
//
//   replay_frame fuzz/corpus/frame fuzz/regression/frame
//   1..37
//   ok 1 - fuzz/corpus/frame/close-1000
//   not ok 2 - fuzz/regression/frame/crash-3f2a... # killed by signal 6
//
// Each input runs in a child process, so one crash is reported against its file and the
// rest still run; the exit status is 1 if any input failed. ASan/UBSan/LSan reports go to
// stderr from the child. Files whose names start with '.' or "README" are skipped, so a
// folder can explain itself. A path that does not exist is a failure: a renamed corpus
// must not turn the test into a silent pass. REPLAY_NO_FORK=1 runs inputs in-process
// (for a debugger); the first crash then ends the run.
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

struct path_list {
    char **items;
    bool *missing;
    size_t len, cap;
};

static void list_add(path_list *l, const char *path, bool missing) {
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->items = (char **)realloc(l->items, l->cap * sizeof *l->items);
        l->missing = (bool *)realloc(l->missing, l->cap * sizeof *l->missing);
        if (!l->items || !l->missing) {
            fprintf(stderr, "replay: out of memory\n");
            exit(2);
        }
    }
    l->items[l->len] = strdup(path);
    l->missing[l->len] = missing;
    l->len++;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool skipped_name(const char *name) { return name[0] == '.' || strncmp(name, "README", 6) == 0; }

// Adds the regular files of dir, sorted by name so that test numbers are stable.
static void add_dir(path_list *l, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        list_add(l, dir, true);
        return;
    }
    size_t first = l->len;
    for (struct dirent *e; (e = readdir(d));) {
        if (skipped_name(e->d_name)) continue;
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path) continue;
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) list_add(l, path, false);
    }
    closedir(d);
    qsort(l->items + first, l->len - first, sizeof *l->items, cmp_str);
}

// Reads a whole file into a buffer of exactly its size, so that ASan sees any read past
// the end of the input.
static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return nullptr;
    uint8_t *buf = nullptr;
    size_t len = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            len = (size_t)end;
            buf = (uint8_t *)malloc(len ? len : 1);
            if (buf && fread(buf, 1, len, f) != len) {
                free(buf);
                buf = nullptr;
            }
        }
    }
    fclose(f);
    *size = len;
    return buf;
}

// Returns 0 when the input ran cleanly, else writes a TAP directive into why.
static int run_one(const char *path, bool use_fork, char *why, size_t why_cap) {
    size_t size = 0;
    uint8_t *buf = read_file(path, &size);
    if (!buf) {
        snprintf(why, why_cap, "cannot read: %s", strerror(errno));
        return 1;
    }
    if (!use_fork) {
        LLVMFuzzerTestOneInput(buf, size);
        free(buf);
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, why_cap, "fork: %s", strerror(errno));
        free(buf);
        return 1;
    }
    if (pid == 0) {
        LLVMFuzzerTestOneInput(buf, size);
        free(buf);
        exit(0); // not _exit: LeakSanitizer runs its check at exit
    }
    free(buf);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status)) snprintf(why, why_cap, "killed by signal %d", WTERMSIG(status));
    else snprintf(why, why_cap, "exit status %d", WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    const char *nf = getenv("REPLAY_NO_FORK");
    bool use_fork = !(nf && nf[0] == '1');

    path_list l = {nullptr, nullptr, 0, 0};
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) list_add(&l, argv[i], true);
        else if (S_ISDIR(st.st_mode)) add_dir(&l, argv[i]);
        else list_add(&l, argv[i], false);
    }
    if (l.len == 0) {
        printf("1..0 # SKIP no inputs\n");
        return 0;
    }
    printf("1..%zu\n", l.len);
    int failed = 0;
    for (size_t i = 0; i < l.len; i++) {
        char why[128] = "";
        int bad = l.missing[i] ? (snprintf(why, sizeof why, "no such file or directory"), 1)
                               : run_one(l.items[i], use_fork, why, sizeof why);
        if (bad) printf("not ok %zu - %s # %s\n", i + 1, l.items[i], why);
        else printf("ok %zu - %s\n", i + 1, l.items[i]);
        failed += bad;
        free(l.items[i]);
    }
    fflush(stdout);
    free(l.items);
    free(l.missing);
    return failed ? 1 : 0;
}
