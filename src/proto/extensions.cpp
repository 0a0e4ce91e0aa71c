#include "proto/extensions.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

// RFC 9110 §5.6.2 tchar.
static bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

struct cursor {
    const char *p, *end;
};

static void skip_ows(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static bool read_token(cursor *c, const char **s, size_t *n) {
    skip_ows(c);
    *s = c->p;
    while (c->p < c->end && is_tchar(*c->p)) c->p++;
    *n = (size_t)(c->p - *s);
    return *n > 0;
}

// A parameter value: a token or a quoted-string, unquoted into buf.
static bool read_value(cursor *c, char *buf, size_t cap, size_t *n) {
    skip_ows(c);
    *n = 0;
    if (c->p < c->end && *c->p == '"') {
        // Scan to the closing quote even when the value is too long to keep, so a
        // comma inside the quotes is never taken for the start of another offer.
        bool fits = true;
        c->p++;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\' && c->p + 1 < c->end) c->p++;
            if (*n + 1 >= cap)
                fits = false;
            else
                buf[(*n)++] = *c->p;
            c->p++;
        }
        if (c->p == c->end) return false;
        c->p++;
        return fits && *n > 0;
    }
    const char *s;
    size_t len;
    if (!read_token(c, &s, &len) || len >= cap) return false;
    memcpy(buf, s, len);
    *n = len;
    return true;
}

// Window bits: 8..15 in decimal with no leading zero (RFC 7692 §7.1.2.1).
static int parse_bits(const char *v, size_t n) {
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

struct offer {
    unsigned seen;
    int server_bits; // offered server_max_window_bits, or 0
    int client_bits; // offered client_max_window_bits value; -1 valueless; 0 absent
};

// Parses the parameters after an extension name up to the next ',' or the end.
// Returns false when the offer must be declined; the cursor still ends after it.
static bool parse_params(cursor *c, offer *o) {
    bool ok = true;
    *o = offer{0, 0, 0};
    for (;;) {
        skip_ows(c);
        if (c->p == c->end || *c->p == ',') return ok;
        if (*c->p != ';') {
            ok = false; // garbage: skip to the next offer
            while (c->p < c->end && *c->p != ',') c->p++;
            return false;
        }
        c->p++;
        const char *name;
        size_t nlen;
        if (!read_token(c, &name, &nlen)) {
            ok = false;
            continue;
        }
        char val[16];
        size_t vlen = 0;
        bool has_value = false;
        skip_ows(c);
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            has_value = true;
            if (!read_value(c, val, sizeof val, &vlen)) ok = false;
        }
        unsigned bit;
        if (nlen == 26 && strncasecmp(name, "server_no_context_takeover", nlen) == 0)
            bit = P_SNCT;
        else if (nlen == 26 && strncasecmp(name, "client_no_context_takeover", nlen) == 0)
            bit = P_CNCT;
        else if (nlen == 22 && strncasecmp(name, "server_max_window_bits", nlen) == 0)
            bit = P_SMWB;
        else if (nlen == 22 && strncasecmp(name, "client_max_window_bits", nlen) == 0)
            bit = P_CMWB;
        else {
            ok = false; // unknown parameter
            continue;
        }
        if (o->seen & bit) ok = false; // duplicate
        o->seen |= bit;
        if (bit == P_SNCT || bit == P_CNCT) {
            if (has_value) ok = false;
        } else if (bit == P_SMWB) {
            int b = has_value ? parse_bits(val, vlen) : -1;
            if (b < 0) ok = false;
            o->server_bits = b;
        } else {
            int b = has_value ? parse_bits(val, vlen) : -1;
            if (has_value && b < 0) ok = false;
            o->client_bits = has_value ? b : -1;
        }
    }
}

// Our answer to one valid offer, or false when we cannot accept it.
static bool accept_offer(const pmd_config *cfg, const offer *o, pmd_params *out) {
    pmd_params p = {};
    p.enabled = true;
    bool shared = cfg->mode == PMD_SHARED;
    // Declaring no context takeover ourselves is always allowed (§7.1.1.1); shared
    // streams require it both ways, and the client's half may be added unasked
    // (§7.1.1.2).
    p.server_no_context_takeover = shared || (o->seen & P_SNCT);
    p.client_no_context_takeover = shared || (o->seen & P_CNCT);
    int sbits = cfg->server_window_bits;
    if (o->server_bits && o->server_bits < sbits) sbits = o->server_bits;
    p.server_window_bits = (uint8_t)sbits;
    // Accepting a server_max_window_bits offer means answering it (§7.1.2.1).
    p.server_window_requested = o->server_bits != 0;
    if (o->client_bits) {
        // Offered (with or without a value): we may ask for a smaller window.
        int cap = o->client_bits > 0 ? o->client_bits : 15;
        p.client_window_bits = (uint8_t)(cfg->client_window_bits < cap ? cfg->client_window_bits : cap);
    } else {
        // Not offered: we must not answer with it, and the client may use 15.
        p.client_window_bits = 15;
    }
    *out = p;
    return true;
}

void pmd_negotiate(const pmd_config *cfg, const char *value, size_t len, pmd_params *out) {
    if (cfg->mode == PMD_OFF || out->enabled) return;
    cursor c = {value, value + len};
    while (c.p < c.end) {
        const char *name;
        size_t nlen;
        bool named = read_token(&c, &name, &nlen);
        offer o;
        bool valid = parse_params(&c, &o) && named;
        if (valid && nlen == 18 && strncasecmp(name, "permessage-deflate", nlen) == 0 && accept_offer(cfg, &o, out))
            return;
        if (c.p < c.end && *c.p == ',') c.p++;
    }
}

size_t pmd_write_response(const pmd_params *p, char *out, size_t cap) {
    int n = snprintf(out, cap, "permessage-deflate%s%s", p->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     p->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (n < 0 || (size_t)n >= cap) return 0;
    size_t len = (size_t)n;
    if (p->server_window_bits < 15 || p->server_window_requested) {
        n = snprintf(out + len, cap - len, "; server_max_window_bits=%u", p->server_window_bits);
        if (n < 0 || (size_t)n >= cap - len) return 0;
        len += (size_t)n;
    }
    if (p->client_window_bits < 15) {
        n = snprintf(out + len, cap - len, "; client_max_window_bits=%u", p->client_window_bits);
        if (n < 0 || (size_t)n >= cap - len) return 0;
        len += (size_t)n;
    }
    return len;
}
