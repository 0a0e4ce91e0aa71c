// A minimal program per library for the code-size figure: reads one envelope from
// stdin, does the round (jb.h) with one implementation, writes the result. Built with
// -ffunction-sections -fdata-sections -Wl,--gc-sections so that only what that
// implementation uses stays; JB_LIB_NONE is the baseline (copies the input).
#include "jb.h"

#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace jb {
extern const Impl rj_sax, sj_od, js;

#ifdef JB_LIB_NONE
namespace {
long copy_round(char* in, size_t len, const Meta& m, char* out, size_t cap)
{
    char* p = put_u64(out, out + cap, m.offset);
    p = put_string(p, out + cap, in, len);
    return p ? p - out : -1;
}
}  // namespace
const Impl none = {"none", "", copy_round};
#endif
}  // namespace jb

#if defined(JB_LIB_RJ)
#define IMPL jb::rj_sax
#elif defined(JB_LIB_SJ)
#define IMPL jb::sj_od
#elif defined(JB_LIB_JS)
#define IMPL jb::js
#else
#define IMPL jb::none
#endif

static char in[65536 + jb::kPad];
static char out[6 * 65536 + 256];

int main()
{
    ssize_t n = read(0, in, sizeof in - jb::kPad);
    if (n < 0)
        return 2;
    memset(in + n, 0, jb::kPad);
    const jb::Meta m = {1, 2, "8f3c2a9e1b7d4c60a1e2f3b4c5d6e7f8"};
    long r = IMPL.round(in, static_cast<size_t>(n), m, out, sizeof out);
    if (r < 0)
        return 1;
    fwrite(out, 1, static_cast<size_t>(r), stdout);
    return 0;
}
