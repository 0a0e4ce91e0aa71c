// Unit tests for permessage-deflate negotiation (src/proto/extensions.*).
//
// One table: Sec-WebSocket-Extensions header line(s) and a server configuration in,
// the exact response value pmd_write_response writes (or "declined") out. The rows
// follow RFC 7692 §5 and §7: the first acceptable offer wins across offers and header
// lines; an offer with an unknown or duplicate parameter or an invalid value is
// declined; server_max_window_bits is answered when offered (with at most the offered
// value) and may be sent unasked; client_max_window_bits is never answered unless
// offered; shared mode adds both *_no_context_takeover parameters, dedicated mode
// echoes what the client offered.
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "proto/extensions.h"

// Server configurations.
static const pmd_config OFF = {PMD_OFF, 15, 15};
static const pmd_config SH = {PMD_SHARED, 15, 15};
static const pmd_config DE = {PMD_DEDICATED, 15, 15};
static const pmd_config SH_S12 = {PMD_SHARED, 12, 15};
static const pmd_config SH_C9 = {PMD_SHARED, 15, 9};
static const pmd_config DE_S12 = {PMD_DEDICATED, 12, 15};
static const pmd_config DE_S8 = {PMD_DEDICATED, 8, 15};
static const pmd_config DE_C10 = {PMD_DEDICATED, 15, 10};
static const pmd_config DE_C8 = {PMD_DEDICATED, 15, 8};
static const pmd_config DE_C9 = {PMD_DEDICATED, 15, 9};
static const pmd_config DE_C11 = {PMD_DEDICATED, 15, 11};
static const pmd_config DE_C12 = {PMD_DEDICATED, 15, 12};

// Response values.
#define PMD "permessage-deflate"
#define SNCT "; server_no_context_takeover"
#define CNCT "; client_no_context_takeover"
#define SHARED PMD SNCT CNCT
#define SMWB(n) "; server_max_window_bits=" #n
#define CMWB(n) "; client_max_window_bits=" #n
#define DECLINED nullptr

enum { MAX_LINES = 4 };

struct neg_case {
    const pmd_config *cfg;
    const char *lines[MAX_LINES]; // header lines, each passed to pmd_negotiate
    const char *want;             // the response value, or DECLINED
};

// clang-format off
static const neg_case cases[] = {
    // -- the plain offer in every mode ------------------------------------------------
    {&SH, {PMD}, SHARED},
    {&DE, {PMD}, PMD},
    {&OFF, {PMD}, DECLINED},
    {&OFF, {PMD SNCT CNCT}, DECLINED},
    {&OFF, {"foo", PMD, PMD "; client_max_window_bits"}, DECLINED},

    // -- context takeover: dedicated echoes, shared adds both unasked ------------------
    {&DE, {PMD SNCT}, PMD SNCT},
    {&DE, {PMD CNCT}, PMD CNCT},
    {&DE, {PMD SNCT CNCT}, PMD SNCT CNCT},
    {&DE, {PMD CNCT SNCT}, PMD SNCT CNCT},
    {&SH, {PMD SNCT}, SHARED},
    {&SH, {PMD CNCT}, SHARED},
    {&SH, {PMD CNCT SNCT}, SHARED},

    // -- server_max_window_bits: answered when offered, min(offer, config) -------------
    {&DE, {PMD "; server_max_window_bits=10"}, PMD SMWB(10)},
    {&DE, {PMD "; server_max_window_bits=15"}, PMD SMWB(15)},
    {&DE, {PMD "; server_max_window_bits=8"}, PMD SMWB(8)},
    {&DE, {PMD "; server_max_window_bits=9"}, PMD SMWB(9)},
    {&SH, {PMD "; server_max_window_bits=9"}, SHARED SMWB(9)},
    {&SH, {PMD "; server_max_window_bits=15"}, SHARED SMWB(15)},
    {&DE_S12, {PMD "; server_max_window_bits=10"}, PMD SMWB(10)},
    {&DE_S12, {PMD "; server_max_window_bits=13"}, PMD SMWB(12)},
    {&DE_S12, {PMD "; server_max_window_bits=15"}, PMD SMWB(12)},
    {&DE_S12, {PMD "; server_max_window_bits=12"}, PMD SMWB(12)},
    // A server may announce a smaller window unasked (§7.1.2.1).
    {&DE_S12, {PMD}, PMD SMWB(12)},
    {&SH_S12, {PMD}, SHARED SMWB(12)},
    {&DE_S8, {PMD}, PMD SMWB(8)},
    {&DE_S8, {PMD "; server_max_window_bits=12"}, PMD SMWB(8)},
    {&DE, {PMD "; server_max_window_bits=\"10\""}, PMD SMWB(10)},
    {&DE, {PMD "; server_max_window_bits=\"1\\0\""}, PMD SMWB(10)}, // quoted-pair unescapes to 10
    {&DE, {PMD SNCT "; server_max_window_bits=11"}, PMD SNCT SMWB(11)},
    // Invalid values: outside 8..15, leading zeros, not a number, no value.
    {&DE, {PMD "; server_max_window_bits"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits="}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=7"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=16"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=0"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=1"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=08"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=010"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=015"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=100"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=-9"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=+9"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=9.0"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=9a"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=x"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=1O"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=\"\""}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=\"010\""}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=\"16\""}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=\" 10\""}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=\"10"}, DECLINED}, // unterminated quote
    {&SH, {PMD "; server_max_window_bits=7"}, DECLINED},

    // -- client_max_window_bits: only when offered, only when < 15 ---------------------
    {&DE, {PMD "; client_max_window_bits"}, PMD},
    {&DE_C10, {PMD "; client_max_window_bits"}, PMD CMWB(10)},
    {&DE_C10, {PMD "; client_max_window_bits=12"}, PMD CMWB(10)},
    {&DE_C10, {PMD "; client_max_window_bits=9"}, PMD CMWB(9)},
    {&DE_C10, {PMD "; client_max_window_bits=10"}, PMD CMWB(10)},
    {&DE, {PMD "; client_max_window_bits=12"}, PMD CMWB(12)},
    {&DE, {PMD "; client_max_window_bits=8"}, PMD CMWB(8)},
    {&DE, {PMD "; client_max_window_bits=15"}, PMD},
    {&DE, {PMD "; client_max_window_bits=\"11\""}, PMD CMWB(11)},
    {&DE_C8, {PMD "; client_max_window_bits"}, PMD CMWB(8)},
    {&SH_C9, {PMD "; client_max_window_bits"}, SHARED CMWB(9)},
    {&SH_C9, {PMD "; client_max_window_bits=12"}, SHARED CMWB(9)},
    // Never answered when not offered, whatever the configuration.
    {&DE_C10, {PMD}, PMD},
    {&DE_C8, {PMD SNCT CNCT}, PMD SNCT CNCT},
    {&SH_C9, {PMD}, SHARED},
    {&SH_C9, {PMD "; server_max_window_bits=10"}, SHARED SMWB(10)},
    {&DE_C10, {PMD "; server_max_window_bits=10"}, PMD SMWB(10)},
    // Invalid values.
    {&DE, {PMD "; client_max_window_bits="}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=7"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=16"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=08"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=010"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=x"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=\"\""}, DECLINED},
    {&DE, {PMD "; client_max_window_bits=\"7\""}, DECLINED},
    {&DE_C10, {PMD "; client_max_window_bits=-1"}, DECLINED},

    // -- both window parameters, all four parameters ---------------------------------
    {&DE_C12, {PMD "; server_max_window_bits=10; client_max_window_bits"}, PMD SMWB(10) CMWB(12)},
    {&DE_C12, {PMD "; client_max_window_bits=9; server_max_window_bits=14"}, PMD SMWB(14) CMWB(9)},
    {&DE_C12, {PMD CNCT SNCT "; client_max_window_bits; server_max_window_bits=9"},
     PMD SNCT CNCT SMWB(9) CMWB(12)},
    {&SH_C9, {PMD "; client_max_window_bits; server_max_window_bits=10"}, SHARED SMWB(10) CMWB(9)},

    // -- flags must not carry a value -------------------------------------------------
    {&DE, {PMD "; server_no_context_takeover=1"}, DECLINED},
    {&DE, {PMD "; client_no_context_takeover=true"}, DECLINED},
    {&DE, {PMD "; server_no_context_takeover=\"\""}, DECLINED},
    {&DE, {PMD "; client_no_context_takeover="}, DECLINED},
    {&SH, {PMD "; server_no_context_takeover=\"x\""}, DECLINED},

    // -- duplicates -------------------------------------------------------------------
    {&DE, {PMD SNCT SNCT}, DECLINED},
    {&DE, {PMD CNCT CNCT}, DECLINED},
    {&SH, {PMD CNCT SNCT CNCT}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=10; server_max_window_bits=10"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=10; server_max_window_bits=11"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits; client_max_window_bits"}, DECLINED},
    {&DE, {PMD "; client_max_window_bits; client_max_window_bits=10"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=10; SERVER_MAX_WINDOW_BITS=10"}, DECLINED},
    {&DE, {PMD "; server_no_context_takeover; Server_No_Context_Takeover"}, DECLINED},

    // -- unknown parameters -----------------------------------------------------------
    {&DE, {PMD "; foo"}, DECLINED},
    {&DE, {PMD "; foo=1"}, DECLINED},
    {&SH, {PMD SNCT "; foo=\"bar\""}, DECLINED},
    {&DE, {PMD "; no_context_takeover"}, DECLINED},
    {&DE, {PMD "; max_window_bits=10"}, DECLINED},
    {&DE, {PMD "; server_no_context_takeoverx"}, DECLINED},
    {&DE, {PMD "; server_no_context_takeove"}, DECLINED},
    {&DE, {PMD "; server_max_window_bit=10"}, DECLINED},
    {&DE, {PMD "; client_max_window_bitss"}, DECLINED},
    {&DE, {PMD "; server_max_window_bits=10; x-foo"}, DECLINED},

    // -- several offers: the first acceptable one wins ----------------------------------
    {&DE, {PMD "; foo, " PMD "; server_max_window_bits=10"}, PMD SMWB(10)},
    {&DE_C11, {PMD "; server_max_window_bits=7, " PMD "; client_max_window_bits"}, PMD CMWB(11)},
    {&DE, {PMD "; server_max_window_bits=10; foo, " PMD "; server_max_window_bits=12"}, PMD SMWB(12)},
    {&DE, {PMD "; server_max_window_bits=12, " PMD "; server_max_window_bits=10"}, PMD SMWB(12)},
    {&DE, {PMD SNCT SNCT ", " PMD CNCT}, PMD CNCT},
    // AB 13.7-style: three offers, the first valid one is taken.
    {&DE, {PMD CNCT "; client_max_window_bits; server_max_window_bits=9, " PMD CNCT
           "; client_max_window_bits, " PMD "; client_max_window_bits"},
     PMD CNCT SMWB(9)},
    {&SH, {PMD CNCT "; client_max_window_bits; server_max_window_bits=9, " PMD CNCT
           "; client_max_window_bits, " PMD "; client_max_window_bits"},
     SHARED SMWB(9)},
    {&DE_C10, {PMD SNCT "; server_max_window_bits=9, " PMD CNCT "; client_max_window_bits, " PMD},
     PMD SNCT SMWB(9)},
    {&DE_C10, {PMD SNCT "; server_max_window_bits=99, " PMD CNCT "; client_max_window_bits, " PMD},
     PMD CNCT CMWB(10)},
    {&DE_C10, {PMD SNCT "; server_max_window_bits=99, " PMD CNCT "; client_max_window_bits=x, " PMD}, PMD},
    {&DE_C10, {PMD SNCT "; server_max_window_bits=99, " PMD CNCT "; client_max_window_bits=x, " PMD "; y"},
     DECLINED},

    // -- other extensions around the offer --------------------------------------------
    {&DE, {"x-webkit-deflate-frame; no_context_takeover, " PMD}, PMD},
    {&DE, {"x-webkit-deflate-frame, " PMD CNCT}, PMD CNCT},
    {&DE, {PMD ", x-webkit-deflate-frame"}, PMD},
    {&SH, {PMD "; client_max_window_bits, foo"}, SHARED},
    {&DE, {"foo, bar; baz=1, " PMD CNCT}, PMD CNCT},
    {&DE, {"foo; bar=\"a, b\", " PMD}, PMD},
    {&DE, {"foo; bar=\"0123456789abcdefghij\", " PMD}, PMD},
    {&DE, {"foo; bar=\"a\\\"b\", " PMD}, PMD},
    {&DE, {"foo"}, DECLINED},
    {&DE, {"x-webkit-deflate-frame"}, DECLINED},
    {&DE, {"deflate-frame; no_context_takeover"}, DECLINED},
    {&DE, {"permessage-deflat"}, DECLINED},
    {&DE, {"permessage-deflatex"}, DECLINED},
    {&DE, {"permessage-deflate-x"}, DECLINED},
    {&DE, {"xpermessage-deflate"}, DECLINED},
    {&DE, {"permessage"}, DECLINED},
    {&DE, {"permessage-compress"}, DECLINED},
    // An offer inside another extension's quoted parameter value is no offer.
    {&DE, {"foo; bar=\"x, permessage-deflate\""}, DECLINED},
    {&DE, {"foo; bar=\"x, permessage-deflate, y\""}, DECLINED},
    {&DE, {"foo; bar=\"aaaaaaaaaaaaaaaaaaaa, permessage-deflate, b\""}, DECLINED},

    // -- names are case-insensitive ---------------------------------------------------
    {&SH, {"PERMESSAGE-DEFLATE"}, SHARED},
    {&DE, {"PerMessage-Deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=10; server_MAX_window_BITS=12"},
     PMD SNCT SMWB(12) CMWB(10)},
    {&DE, {"permessage-deflate; CLIENT_NO_CONTEXT_TAKEOVER"}, PMD CNCT},

    // -- whitespace -------------------------------------------------------------------
    {&DE, {"  permessage-deflate  "}, PMD},
    {&DE, {"permessage-deflate ; server_max_window_bits = 10 ; client_no_context_takeover "}, PMD CNCT SMWB(10)},
    {&DE_C9, {"permessage-deflate;server_max_window_bits=10;client_max_window_bits"}, PMD SMWB(10) CMWB(9)},
    {&DE, {"\tpermessage-deflate\t;\tclient_no_context_takeover\t"}, PMD CNCT},
    {&DE, {"foo ,permessage-deflate"}, PMD},
    {&DE, {"foo,permessage-deflate;server_no_context_takeover"}, PMD SNCT},
    {&DE, {"permessage -deflate"}, DECLINED},
    {&DE, {"permessage-deflate; server_no_context _takeover"}, DECLINED},
    {&DE, {"permessage-deflate; server_max_window_bits=1 0"}, DECLINED},

    // -- garbage ----------------------------------------------------------------------
    {&DE, {""}, DECLINED},
    {&DE, {" "}, DECLINED},
    {&DE, {","}, DECLINED},
    {&DE, {";"}, DECLINED},
    {&DE, {"=,;\"\\"}, DECLINED},
    {&SH, {",,, permessage-deflate ,,"}, SHARED}, // empty list elements are allowed
    {&DE, {"permessage-deflate;"}, DECLINED},
    {&DE, {"permessage-deflate;;"}, DECLINED},
    {&DE, {"permessage-deflate; ;server_no_context_takeover"}, DECLINED},
    {&DE, {";permessage-deflate"}, DECLINED},
    {&DE, {"permessage-deflate server_no_context_takeover"}, DECLINED},
    {&DE, {"permessage-deflate=1"}, DECLINED},
    {&DE, {"\"permessage-deflate\""}, DECLINED},
    {&DE, {"permessage-deflate; =10"}, DECLINED},
    {&DE, {"permessage-deflate; server_max_window_bits==10"}, DECLINED},
    {&DE, {"permessage-deflate; server_max_window_bits=10="}, DECLINED},
    {&DE, {"permessage-deflate; client_max_window_bits=10\""}, DECLINED},
    {&DE, {"permessage-deflate; server_no_context_takeover@"}, DECLINED},
    {&DE, {"permessage-deflate\x01"}, DECLINED},
    {&DE, {"permessage-deflate; @@@, permessage-deflate"}, PMD},
    {&DE, {"@@@, permessage-deflate; client_no_context_takeover"}, PMD CNCT},
    {&DE, {"permessage-deflate; server_max_window_bits=\"10, permessage-deflate"}, DECLINED},

    // -- several header lines: pmd_negotiate per line, the first agreement stays --------
    {&DE, {"foo", PMD}, PMD},
    {&DE, {PMD "; server_max_window_bits=10", PMD}, PMD SMWB(10)},
    {&DE, {PMD "; bogus", PMD CNCT}, PMD CNCT},
    {&DE, {PMD "; server_max_window_bits=16", "x", PMD "; server_max_window_bits=11"}, PMD SMWB(11)},
    {&DE, {"", PMD}, PMD},
    {&SH, {"x-webkit-deflate-frame", "foo, " PMD SNCT, PMD "; server_max_window_bits=9"}, SHARED},
    {&DE_C12, {PMD "; client_max_window_bits", PMD "; client_max_window_bits=9"}, PMD CMWB(12)},
    {&DE, {PMD "; foo", PMD "; bar", PMD "; baz", PMD "; server_max_window_bits=07"}, DECLINED},
    {&DE, {PMD "; foo", PMD "; bar", PMD "; baz", PMD "; server_max_window_bits=13"}, PMD SMWB(13)},
};
// clang-format on

// Runs one row. Each line is copied into a buffer of exactly its length (no NUL after
// it), so a parser that reads past `len` trips AddressSanitizer.
static bool run_case(const neg_case &c, char *got, size_t cap, pmd_params *p) {
    *p = pmd_params{};
    for (int i = 0; i < MAX_LINES && c.lines[i]; i++) {
        size_t n = strlen(c.lines[i]);
        char *line = (char *)malloc(n ? n : 1);
        memcpy(line, c.lines[i], n);
        pmd_negotiate(c.cfg, line, n, p);
        free(line);
    }
    if (!p->enabled) return false;
    size_t n = pmd_write_response(p, got, cap);
    if (n == 0 || n >= cap || got[n] != '\0') {
        snprintf(got, cap, "<pmd_write_response returned %zu>", n);
        return true;
    }
    return true;
}

static const char *mode_name(uint8_t m) { return m == PMD_OFF ? "off" : m == PMD_SHARED ? "shared" : "dedicated"; }

static void describe(const neg_case &c, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "[%s s%u c%u]", mode_name(c.cfg->mode), c.cfg->server_window_bits,
                                c.cfg->client_window_bits);
    for (int i = 0; i < MAX_LINES && c.lines[i] && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, " {%s}", c.lines[i]);
}

static void test_negotiation_table(void **) {
    int failures = 0;
    size_t count = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < count; i++) {
        const neg_case &c = cases[i];
        char got[256], desc[1024];
        pmd_params p;
        bool enabled = run_case(c, got, sizeof got, &p);
        bool ok = c.want ? enabled && strcmp(got, c.want) == 0 : !enabled;
        if (ok) continue;
        describe(c, desc, sizeof desc);
        print_error("row %zu %s\n    want: %s\n    got:  %s\n", i, desc, c.want ? c.want : "(declined)",
                    enabled ? got : "(declined)");
        failures++;
    }
    if (failures) fail_msg("%d of %zu negotiation rows failed", failures, count);
}

// The agreed parameters (not only the text) are what the data path uses.
static void test_agreed_params(void **) {
    pmd_params p = {};
    const char *v = PMD;
    pmd_negotiate(&DE, v, strlen(v), &p);
    assert_true(p.enabled);
    assert_false(p.server_no_context_takeover);
    assert_false(p.client_no_context_takeover);
    assert_false(p.server_window_requested);
    assert_int_equal(p.server_window_bits, 15);
    assert_int_equal(p.client_window_bits, 15); // not offered: the client may use 15

    p = pmd_params{};
    v = PMD CNCT "; server_max_window_bits=10; client_max_window_bits=11";
    pmd_negotiate(&DE_C12, v, strlen(v), &p);
    assert_true(p.enabled);
    assert_false(p.server_no_context_takeover);
    assert_true(p.client_no_context_takeover);
    assert_true(p.server_window_requested);
    assert_int_equal(p.server_window_bits, 10);
    assert_int_equal(p.client_window_bits, 11);

    p = pmd_params{};
    pmd_negotiate(&SH_C9, PMD, strlen(PMD), &p);
    assert_true(p.enabled);
    assert_true(p.server_no_context_takeover);
    assert_true(p.client_no_context_takeover);
    assert_int_equal(p.client_window_bits, 15); // not offered: 9 is never imposed

    p = pmd_params{};
    pmd_negotiate(&OFF, PMD, strlen(PMD), &p);
    assert_false(p.enabled);
}

// The parser stops at len: a value cut short is judged as cut.
static void test_length_is_respected(void **) {
    const char *v = PMD "; server_max_window_bits=10";
    pmd_params p = {};
    pmd_negotiate(&DE, v, strlen(v) - 1, &p); // "...=1"
    assert_false(p.enabled);

    p = pmd_params{};
    v = PMD "; foo";
    pmd_negotiate(&DE, v, strlen(PMD), &p); // the unknown parameter is past the end
    assert_true(p.enabled);

    // An embedded NUL is a byte like any other, not the end of the value.
    static const char nul[] = PMD "\0; foo";
    p = pmd_params{};
    pmd_negotiate(&DE, nul, sizeof nul - 1, &p);
    assert_false(p.enabled);

    p = pmd_params{};
    pmd_negotiate(&DE, "", 0, &p);
    assert_false(p.enabled);
}

static void test_write_response_capacity(void **) {
    pmd_params p = {};
    p.enabled = true;
    p.server_no_context_takeover = p.client_no_context_takeover = true;
    p.server_window_requested = true;
    p.server_window_bits = 15;
    p.client_window_bits = 9;
    const char *want = SHARED SMWB(15) CMWB(9);
    size_t len = strlen(want);
    char out[256];
    memset(out, 'Z', sizeof out);
    assert_int_equal(pmd_write_response(&p, out, sizeof out), len);
    assert_string_equal(out, want);
    // The longest possible response fits the server's 160-byte buffer.
    p.client_window_bits = 14;
    assert_true(pmd_write_response(&p, out, 160) > 0);
    p.client_window_bits = 9;
    for (size_t cap = 0; cap <= len; cap++) {
        memset(out, 'Z', sizeof out);
        if (pmd_write_response(&p, out, cap) != 0) fail_msg("cap %zu: a %zu-byte response does not fit", cap, len);
        if (out[cap] != 'Z') fail_msg("cap %zu: wrote past the capacity", cap);
    }
    assert_int_equal(pmd_write_response(&p, out, len + 1), len);
    assert_string_equal(out, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiation_table),
        cmocka_unit_test(test_agreed_params),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_write_response_capacity),
    };
    return unit_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
