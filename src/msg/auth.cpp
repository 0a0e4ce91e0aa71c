#include "msg/auth.h"

#define SIMDJSON_DEVELOPMENT_CHECKS 0
#include <crypt.h>
#include <errno.h>
#if WSR_HAVE_JWT
#include <jwt.h>
#endif
#include <simdjson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "proto/crypto.h"

using namespace simdjson;

enum { MAX_TOKEN = 8192, MAX_PATTERNS = 64, MAX_PATTERN = 160, MAX_USER = 256 };

// --- identities ---------------------------------------------------------------------------

static size_t list_bytes(const char *const *l, size_t *n) {
    size_t b = 0;
    *n = 0;
    for (; l && l[*n]; (*n)++) b += strlen(l[*n]) + 1;
    return b;
}

// Places a copy of list l (n strings) in an identity's block: its pointer array at
// *slots, its strings at *strings; both advance.
static const char *const *list_place(const char *const *l, size_t n, char **slots, char **strings) {
    if (!l) return nullptr;
    char **arr = (char **)*slots;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(l[i]) + 1;
        memcpy(*strings, l[i], len);
        arr[i] = *strings;
        *strings += len;
    }
    arr[n] = nullptr;
    *slots += (n + 1) * sizeof(char *);
    return arr;
}

auth_identity *auth_identity_new(const char *user, size_t user_len, const char *const *subscribe,
                                 const char *const *publish, uint64_t expires_ms) {
    size_t ns, np;
    size_t bs = list_bytes(subscribe, &ns), bp = list_bytes(publish, &np);
    // The pointer arrays right after the struct (aligned), then every string.
    size_t arrays = (subscribe ? (ns + 1) * sizeof(char *) : 0) + (publish ? (np + 1) * sizeof(char *) : 0);
    auth_identity *id = (auth_identity *)malloc(sizeof *id + arrays + bs + bp + user_len + 1);
    if (!id) return nullptr;
    char *slots = (char *)(id + 1), *strings = slots + arrays;
    id->subscribe = list_place(subscribe, ns, &slots, &strings);
    id->publish = list_place(publish, np, &slots, &strings);
    memcpy(strings, user, user_len);
    strings[user_len] = '\0';
    id->user = strings;
    id->expires_ms = expires_ms;
    return id;
}

void auth_identity_free(auth_identity *id) { free(id); }

// '*' matches any run of characters (also none); everything else itself.
static bool glob(const char *p, const char *s, const char *end) {
    const char *star = nullptr, *resume = nullptr;
    while (s < end) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p && *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return !*p;
}

bool auth_granted(const char *const *patterns, const char *channel, size_t len) {
    for (size_t i = 0; patterns && patterns[i]; i++)
        if (glob(patterns[i], channel, channel + len)) return true;
    return false;
}

// --- files --------------------------------------------------------------------------------

static void users_free(auth_user *u, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        crypto_wipe(u[i].hash, strlen(u[i].hash));
        free(u[i].name);
        free(u[i].hash);
    }
    free(u);
}

// "user:hash" lines; blank lines and lines starting with '#' are skipped.
static int users_read(const char *path, auth_user **out, uint32_t *nout) {
    FILE *f = fopen(path, "r");
    if (!f) {
        wsr_log(WSR_LOG_ERROR, "users file %s: %s", path, strerror(errno));
        return WSR_EINVAL;
    }
    auth_user *users = nullptr;
    uint32_t n = 0, cap = 0;
    char line[1024];
    int lineno = 0, r = WSR_OK;
    while (r == WSR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            wsr_log(WSR_LOG_ERROR, "users file %s:%d: line too long", path, lineno);
            r = WSR_EINVAL;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!len || line[0] == '#') continue;
        char *colon = strchr(line, ':');
        if (!colon || colon == line || colon - line >= MAX_USER) {
            wsr_log(WSR_LOG_ERROR, "users file %s:%d: expected user:hash", path, lineno);
            r = WSR_EINVAL;
            break;
        }
        *colon = '\0';
        const char *hash = colon + 1;
        // libxcrypt knows what it can check; DES and MD5 hashes are refused, not trusted.
        int salt = crypt_checksalt(hash);
        if (salt != CRYPT_SALT_OK) {
            wsr_log(WSR_LOG_ERROR, "users file %s:%d: user %s: %s", path, lineno, line,
                    salt == CRYPT_SALT_METHOD_LEGACY ? "a legacy hash (use bcrypt: htpasswd -B, or yescrypt)"
                                                     : "not a crypt(3) hash this system checks (htpasswd -B makes one)");
            r = WSR_EINVAL;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            auth_user *nu = (auth_user *)realloc(users, cap * sizeof *nu);
            if (!nu) {
                r = WSR_ENOMEM;
                break;
            }
            users = nu;
        }
        users[n].name = strdup(line);
        users[n].hash = strdup(hash);
        n++;
        if (!users[n - 1].name || !users[n - 1].hash) r = WSR_ENOMEM;
    }
    crypto_wipe(line, sizeof line);
    fclose(f);
    if (r == WSR_OK && !n) {
        wsr_log(WSR_LOG_ERROR, "users file %s: no users", path);
        r = WSR_EINVAL;
    }
    if (r != WSR_OK) {
        users_free(users, n);
        return r;
    }
    *out = users;
    *nout = n;
    return WSR_OK;
}

static int key_read(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        wsr_log(WSR_LOG_ERROR, "JWT public key %s: %s", path, strerror(errno));
        return WSR_EINVAL;
    }
    char *buf = (char *)malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    bool whole = buf && feof(f);
    fclose(f);
    if (!buf) return WSR_ENOMEM;
    if (!whole || !n || !strstr(buf, "-----BEGIN")) {
        free(buf);
        wsr_log(WSR_LOG_ERROR, "JWT public key %s: not a PEM file of at most 64 KiB", path);
        return WSR_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return WSR_OK;
}

int auth_init(auth *a, const wsr_messaging_options *o) {
    memset(a, 0, sizeof *a);
    a->users_file = o->users_file && *o->users_file ? o->users_file : nullptr;
    a->env_user = o->auth_user && *o->auth_user ? o->auth_user : nullptr;
    a->env_password = o->auth_password;
    a->jwt_secret = o->jwt_secret && *o->jwt_secret ? o->jwt_secret : nullptr;
    a->jwt_key_file = o->jwt_public_key && *o->jwt_public_key ? o->jwt_public_key : nullptr;
    a->audience = o->jwt_audience && *o->jwt_audience ? o->jwt_audience : nullptr;
    a->issuer = o->jwt_issuer && *o->jwt_issuer ? o->jwt_issuer : nullptr;
    if (a->env_user && (!a->env_password || !*a->env_password)) {
        wsr_log(WSR_LOG_ERROR, "auth: a user without a password");
        return WSR_EINVAL;
    }
#if !WSR_HAVE_JWT
    // libjwt needs libcrypto, which a build without TLS leaves out; a static build needs a
    // static libjwt, which Debian does not ship (meson.build, docs/edge.md).
    if (a->jwt_secret || a->jwt_key_file) {
        wsr_log(WSR_LOG_ERROR, "auth: this build has no JWT support (built with -Dtls=disabled, "
                               "or -Dstatic=true without a static libjwt): "
                               "jwt-secret and jwt-public-key cannot be used");
        return WSR_EINVAL;
    }
#endif
    if (a->jwt_secret && strlen(a->jwt_secret) < 32)
        wsr_log(WSR_LOG_WARN, "auth: the JWT secret is shorter than 32 bytes: tokens can be forged by guessing it");
    int r = auth_reload(a);
    if (r != WSR_OK) auth_free(a);
    return r;
}

int auth_reload(auth *a) {
    auth_user *users = nullptr;
    uint32_t n = 0;
    char *key = nullptr;
    size_t key_len = 0;
    if (a->users_file) {
        int r = users_read(a->users_file, &users, &n);
        if (r != WSR_OK) return r;
    }
    if (a->jwt_key_file) {
        int r = key_read(a->jwt_key_file, &key, &key_len);
        if (r != WSR_OK) {
            users_free(users, n);
            return r;
        }
    }
    if (a->users_file) {
        users_free(a->users, a->nusers);
        a->users = users;
        a->nusers = n;
    }
    if (a->jwt_key_file) {
        free(a->jwt_key);
        a->jwt_key = key;
        a->jwt_key_len = key_len;
    }
    return WSR_OK;
}

void auth_free(auth *a) {
    users_free(a->users, a->nusers);
    free(a->jwt_key);
    a->users = nullptr;
    a->nusers = 0;
    a->jwt_key = nullptr;
}

bool auth_configured(const auth *a) { return a->users_file || a->env_user || auth_accepts_tokens(a); }
bool auth_accepts_tokens(const auth *a) { return a->jwt_secret || a->jwt_key_file; }

// --- tokens -------------------------------------------------------------------------------

#if WSR_HAVE_JWT
static bool is_hmac(jwt_alg_t alg) { return alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384 || alg == JWT_ALG_HS512; }
static bool is_public(jwt_alg_t alg) { return alg >= JWT_ALG_RS256 && alg <= JWT_ALG_ES512; }

// Verifies with each configured key whose algorithms the token's alg must belong to: an
// HS256 token "signed" with the public key's PEM as its HMAC secret must not pass.
static jwt_t *verified(const auth *a, const char *token) {
    jwt_t *j = nullptr;
    if (a->jwt_secret && !jwt_decode(&j, token, (const unsigned char *)a->jwt_secret, (int)strlen(a->jwt_secret))) {
        if (is_hmac(jwt_get_alg(j))) return j;
        jwt_free(j);
        j = nullptr;
    }
    if (a->jwt_key && !jwt_decode(&j, token, (const unsigned char *)a->jwt_key, (int)a->jwt_key_len)) {
        if (is_public(jwt_get_alg(j))) return j;
        jwt_free(j);
    }
    return nullptr;
}
#endif

// A NumericDate claim in milliseconds: absent (true, *ms 0), a number, or wrong (false).
static bool date_claim(dom::object claims, const char *name, uint64_t *ms) {
    *ms = 0;
    dom::element v;
    if (claims[name].get(v)) return true;
    double d;
    if (v.get_double().get(d) || d < 0 || d > 1e13) return false;
    *ms = (uint64_t)(d * 1000);
    return true;
}

// A claim that is a string or an array of strings, as patterns into out (NULL-terminated;
// storage in buf). Absent: *present false.
static bool pattern_claim(dom::object claims, const char *name, const char **out, char *buf, size_t cap,
                          bool *present) {
    dom::element v;
    *present = false;
    out[0] = nullptr;
    if (claims[name].get(v)) return true;
    *present = true;
    size_t n = 0, used = 0;
    auto add = [&](std::string_view s) {
        if (n == MAX_PATTERNS || !s.size() || s.size() >= MAX_PATTERN || used + s.size() + 1 > cap) return false;
        for (char c : s)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.:@/-*", c)) ||
                !c)
                return false;
        memcpy(buf + used, s.data(), s.size());
        buf[used + s.size()] = '\0';
        out[n++] = buf + used;
        out[n] = nullptr;
        used += s.size() + 1;
        return true;
    };
    std::string_view s;
    if (!v.get_string().get(s)) return add(s);
    dom::array arr;
    if (v.get_array().get(arr)) return false;
    for (dom::element e : arr)
        if (e.get_string().get(s) || !add(s)) return false;
    return true;
}

static bool audience_ok(dom::object claims, const char *want) {
    dom::element v;
    if (claims["aud"].get(v)) return false;
    std::string_view s;
    if (!v.get_string().get(s)) return s == want;
    dom::array arr;
    if (v.get_array().get(arr)) return false;
    for (dom::element e : arr)
        if (!e.get_string().get(s) && s == want) return true;
    return false;
}

auth_result auth_token(const auth *a, const char *token, size_t len, uint64_t now_ms, auth_identity **out,
                       const char **why) {
    *out = nullptr;
    if (!auth_accepts_tokens(a)) {
        *why = "tokens are not accepted here";
        return AUTH_BAD;
    }
    char copy[MAX_TOKEN + 1];
    if (!len || len > MAX_TOKEN || memchr(token, '\0', len)) {
        *why = "malformed token";
        return AUTH_BAD;
    }
    memcpy(copy, token, len);
    copy[len] = '\0';
#if WSR_HAVE_JWT
    jwt_t *j = verified(a, copy);
    if (!j) {
        *why = "token signature or format not valid";
        return AUTH_BAD;
    }
    char *json = jwt_get_grants_json(j, nullptr);
    jwt_free(j);
#else
    // Not reached: auth_init refuses token keys in a build without JWT.
    char *json = nullptr;
#endif
    if (!json) {
        *why = "token without claims";
        return AUTH_BAD;
    }
    dom::parser parser;
    dom::object claims;
    bool parsed = !parser.parse(json, strlen(json)).get_object().get(claims);
    free(json);
    if (!parsed) {
        *why = "token claims are not a JSON object";
        return AUTH_BAD;
    }
    uint64_t exp, nbf;
    if (!date_claim(claims, "exp", &exp) || !date_claim(claims, "nbf", &nbf)) {
        *why = "exp and nbf must be numbers";
        return AUTH_BAD;
    }
    if (exp && exp <= now_ms) {
        *why = "token expired";
        return AUTH_EXPIRED;
    }
    if (nbf && nbf > now_ms) {
        *why = "token not valid yet (nbf)";
        return AUTH_BAD;
    }
    if (a->audience && !audience_ok(claims, a->audience)) {
        *why = "token audience (aud) not accepted";
        return AUTH_BAD;
    }
    std::string_view s;
    if (a->issuer && (claims["iss"].get_string().get(s) || s != a->issuer)) {
        *why = "token issuer (iss) not accepted";
        return AUTH_BAD;
    }
    if (claims["sub"].get_string().get(s) || !s.size() || s.size() > MAX_USER) {
        *why = "token without a subject (sub)";
        return AUTH_BAD;
    }
    const char *subscribe[MAX_PATTERNS + 1], *publish[MAX_PATTERNS + 1];
    char sbuf[4096], pbuf[4096];
    bool has_s, has_p;
    if (!pattern_claim(claims, "channels", subscribe, sbuf, sizeof sbuf, &has_s) ||
        !pattern_claim(claims, "publish", publish, pbuf, sizeof pbuf, &has_p)) {
        *why = "channels and publish must be channel patterns (a string or an array of at most 64)";
        return AUTH_BAD;
    }
    *out = auth_identity_new(s.data(), s.size(), has_s ? subscribe : nullptr, has_p ? publish : nullptr, exp);
    if (!*out) {
        *why = "out of memory";
        return AUTH_BAD;
    }
    return AUTH_OK;
}

// --- passwords ----------------------------------------------------------------------------

bool auth_basic_decode(const char *b64, size_t len, char *buf, size_t cap, const char **user,
                       const char **password) {
    while (len && b64[len - 1] == ' ') len--;
    if (!len || cap == 0) return false;
    // One byte is kept for the NUL.
    ssize_t n = crypto_base64_decode(b64, len, (uint8_t *)buf, cap - 1);
    if (n < 0) return false;
    buf[n] = '\0';
    if (memchr(buf, '\0', (size_t)n)) return false;
    char *colon = strchr(buf, ':');
    if (!colon || colon == buf) return false;
    *colon = '\0';
    *user = buf;
    *password = colon + 1;
    return true;
}

bool auth_env_match(const auth *a, const char *user, const char *password) {
    if (!a->env_user || strcmp(user, a->env_user) != 0) return false;
    size_t n = strlen(password);
    return n == strlen(a->env_password) && crypto_equal(password, a->env_password, n);
}

bool auth_user_hash(const auth *a, const char *user, char *out, size_t cap, bool *known) {
    if (!a->nusers) return false;
    const auth_user *u = &a->users[0];
    *known = false;
    for (uint32_t i = 0; i < a->nusers; i++)
        if (strcmp(a->users[i].name, user) == 0) {
            u = &a->users[i];
            *known = true;
            break;
        }
    // An unknown user is checked against a real user's hash (the same method and cost)
    // with its last character changed: no password gives that text back.
    size_t n = strlen(u->hash);
    if (n + 1 > cap) return false;
    memcpy(out, u->hash, n + 1);
    if (!*known) out[n - 1] = out[n - 1] == '.' ? '/' : '.';
    return true;
}

bool auth_crypt_check(const char *hash, const char *password) {
    struct crypt_data *cd = (struct crypt_data *)calloc(1, sizeof *cd);
    if (!cd) return false;
    const char *h = crypt_r(password, hash, cd);
    size_t n = strlen(hash);
    bool ok = h && h[0] != '*' && strlen(h) == n && crypto_equal(h, hash, n);
    crypto_wipe(cd, sizeof *cd);
    free(cd);
    return ok;
}
