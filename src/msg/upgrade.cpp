// The upgrade hook of the messaging endpoint: upgrades a second per client address,
// then credentials (Basic against the environment's user or the users file, a JWT from
// "Authorization: Bearer" or ?token=). A password hash is checked off the loop and the
// upgrade answered when it is done; the identity waits in a pending slot for on_open.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg/server.h"
#include "proto/crypto.h"

enum { MAX_CRED = 512, MAX_HASH = 256, ADDRESS_LEN = 64 };

bool msg_query_param(wsr_str q, const char *name, char *out, size_t cap, size_t *len) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < q.len;) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&') end++;
        if (end - i > nl && memcmp(q.ptr + i, name, nl) == 0 && q.ptr[i + nl] == '=') {
            size_t n = 0;
            for (size_t j = i + nl + 1; j < end; j++) {
                char c = q.ptr[j];
                if (c == '%' && j + 2 < end && isxdigit((unsigned char)q.ptr[j + 1]) &&
                    isxdigit((unsigned char)q.ptr[j + 2])) {
                    char hex[3] = {q.ptr[j + 1], q.ptr[j + 2], 0};
                    c = (char)strtol(hex, nullptr, 16);
                    j += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (n == cap) return false;
                out[n++] = c;
            }
            *len = n;
            return true;
        }
        i = end + 1;
    }
    return false;
}


// --- identities waiting for on_open ---------------------------------------------------------

static uint32_t pending_add(wsr_messaging *ms, wsr_conn_id conn, auth_identity *who) {
    uint32_t slot = ms->pending_free;
    if (slot == MSG_NONE) {
        if (ms->npending == ms->pending_cap) {
            uint32_t cap = ms->pending_cap ? ms->pending_cap * 2 : 16;
            msg_pending *np = (msg_pending *)realloc(ms->pending, cap * sizeof *np);
            if (!np) return MSG_NONE;
            ms->pending = np;
            ms->pending_cap = cap;
        }
        slot = ms->npending++;
    } else {
        ms->pending_free = ms->pending[slot].next_free;
    }
    ms->pending[slot] = msg_pending{conn, who, msg_now_ms(), MSG_NONE};
    return slot;
}

static void pending_drop(wsr_messaging *ms, uint32_t slot) {
    auth_identity_free(ms->pending[slot].who);
    ms->pending[slot].conn = 0;
    ms->pending[slot].who = nullptr;
    ms->pending[slot].next_free = ms->pending_free;
    ms->pending_free = slot;
}

auth_identity *msg_pending_take(wsr_messaging *ms, wsr_conn_id conn, void *user_ptr) {
    uintptr_t u = (uintptr_t)user_ptr;
    if (!(u & MSG_PENDING_BIT)) return nullptr;
    uint32_t slot = (uint32_t)(u & ~MSG_PENDING_BIT) - 1;
    if (slot >= ms->npending || ms->pending[slot].conn != conn) return nullptr;
    auth_identity *who = ms->pending[slot].who;
    ms->pending[slot].who = nullptr;
    pending_drop(ms, slot);
    return who;
}

void msg_pending_sweep(wsr_messaging *ms, uint64_t now_ms) {
    for (uint32_t i = 0; i < ms->npending; i++)
        if (ms->pending[i].conn && now_ms - ms->pending[i].at_ms > PENDING_MS) pending_drop(ms, i);
}

// --- answers ------------------------------------------------------------------------------------

// Accepts the upgrade; an identity goes with it through a pending slot.
static void accept_as(wsr_messaging *ms, wsr_conn_id conn, auth_identity *who) {
    void *user = nullptr;
    uint32_t slot = MSG_NONE;
    if (who) {
        slot = pending_add(ms, conn, who);
        if (slot == MSG_NONE) {
            auth_identity_free(who);
            wsr_respond(ms->srv, conn, 503, "Retry-After: 1\r\n", "out of memory\n", 14);
            return;
        }
        user = (void *)(MSG_PENDING_BIT | (uintptr_t)(slot + 1));
    }
    if (wsr_upgrade_accept(ms->srv, conn, user, nullptr) != WSR_OK && slot != MSG_NONE) pending_drop(ms, slot);
}

// 401 with the challenges of the configured sources, and the error as JSON.
static void refuse(wsr_messaging *ms, wsr_conn_id conn, uint16_t status, const char *code, const char *why,
                   bool bad_token) {
    char addr[ADDRESS_LEN];
    wsr_conn_address(ms->srv, conn, addr, sizeof addr);
    wsr_log(WSR_LOG_INFO, "messaging: upgrade from %s refused %u: %s", addr, status, why);
    if (status == 401) ms->counts.auth_failures++;
    char headers[256];
    size_t n = 0;
    headers[0] = '\0';
    if (status == 401) {
        if (ms->creds.users_file || ms->creds.env_user)
            n += (size_t)snprintf(headers + n, sizeof headers - n, "WWW-Authenticate: Basic realm=\"wsreactor\", charset=\"UTF-8\"\r\n");
        if (auth_accepts_tokens(&ms->creds))
            snprintf(headers + n, sizeof headers - n, "WWW-Authenticate: Bearer realm=\"wsreactor\"%s\r\n",
                     bad_token ? ", error=\"invalid_token\"" : "");
    }
    env_out_reset(&ms->out);
    env_key(&ms->out, "error", true);
    msg_error_object(&ms->out, code, why);
    env_raw(&ms->out, "}", 1);
    strncat(headers, "Content-Type: application/json\r\n", sizeof headers - strlen(headers) - 1);
    wsr_respond(ms->srv, conn, status, headers, ms->out.buf, ms->out.failed ? 0 : ms->out.len);
}

// --- passwords off the loop -------------------------------------------------------------------

struct crypt_job {
    uv_work_t work;
    wsr_messaging *ms;
    wsr_conn_id conn;
    bool known, ok;
    char user[MAX_CRED];
    char password[MAX_CRED];
    char hash[MAX_HASH];
};

static void crypt_run(uv_work_t *w) {
    crypt_job *j = (crypt_job *)w->data;
    j->ok = auth_crypt_check(j->hash, j->password) && j->known;
}

static void crypt_done(uv_work_t *w, int status) {
    crypt_job *j = (crypt_job *)w->data;
    wsr_messaging *ms = j->ms;
    ms->jobs--;
    if (!ms->freeing) {
        if (status == 0 && j->ok) {
            auth_identity *who = auth_identity_new(j->user, strlen(j->user), nullptr, nullptr, 0);
            if (who)
                accept_as(ms, j->conn, who);
            else
                wsr_respond(ms->srv, j->conn, 503, "Retry-After: 1\r\n", "out of memory\n", 14);
        } else {
            refuse(ms, j->conn, 401, "unauthorized", "wrong user or password", false);
        }
    }
    crypto_wipe(j->password, sizeof j->password);
    free(j);
    if (!ms->timers_open && !ms->jobs) msg_release(ms);
}

static void basic(wsr_messaging *ms, wsr_conn_id conn, const char *b64, size_t len) {
    char buf[2 * MAX_CRED];
    const char *user, *password;
    if (!auth_basic_decode(b64, len, buf, sizeof buf, &user, &password) || strlen(user) >= MAX_CRED ||
        strlen(password) >= MAX_CRED)
        return refuse(ms, conn, 401, "unauthorized", "malformed Basic credentials", false);
    if (auth_env_match(&ms->creds, user, password)) {
        auth_identity *who = auth_identity_new(user, strlen(user), nullptr, nullptr, 0);
        crypto_wipe(buf, sizeof buf); // user points into it
        if (!who) return (void)wsr_respond(ms->srv, conn, 503, "Retry-After: 1\r\n", "out of memory\n", 14);
        return accept_as(ms, conn, who);
    }
    crypt_job *j = (crypt_job *)calloc(1, sizeof *j);
    if (!j || !auth_user_hash(&ms->creds, user, j->hash, sizeof j->hash, &j->known)) {
        crypto_wipe(buf, sizeof buf);
        free(j);
        return refuse(ms, conn, 401, "unauthorized", "wrong user or password", false);
    }
    j->ms = ms;
    j->conn = conn;
    memcpy(j->user, user, strlen(user) + 1);
    memcpy(j->password, password, strlen(password) + 1);
    crypto_wipe(buf, sizeof buf);
    j->work.data = j;
    uv_loop_t *loop = ms->expire.loop;
    if (uv_queue_work(loop, &j->work, crypt_run, crypt_done) != 0) {
        crypto_wipe(j->password, sizeof j->password);
        free(j);
        return refuse(ms, conn, 401, "unauthorized", "cannot check the password now", false);
    }
    ms->jobs++;
}

static void bearer(wsr_messaging *ms, wsr_conn_id conn, const char *token, size_t len) {
    auth_identity *who;
    const char *why;
    auth_result r = auth_token(&ms->creds, token, len, msg_now_ms(), &who, &why);
    if (r != AUTH_OK) return refuse(ms, conn, 401, "unauthorized", why, true);
    accept_as(ms, conn, who);
}

void msg_on_upgrade(wsr_server *, wsr_request *req, void *user) {
    wsr_messaging *ms = (wsr_messaging *)user;
    wsr_conn_id conn = wsr_request_id(req);
    char addr[ADDRESS_LEN];
    wsr_request_address(req, addr, sizeof addr);
    uint64_t wait = rate_table_take(&ms->handshakes, addr, msg_now_ms());
    if (wait) {
        char h[64];
        snprintf(h, sizeof h, "Retry-After: %llu\r\n", (unsigned long long)((wait + 999) / 1000));
        wsr_log(WSR_LOG_INFO, "messaging: upgrade from %s refused 429: over the handshake rate", addr);
        ms->counts.handshakes_limited++;
        wsr_respond(ms->srv, conn, 429, h, "too many upgrades from this address\n", 36);
        return;
    }
    wsr_str v;
    if (wsr_request_header(req, "Authorization", &v)) {
        if (v.len > 6 && strncasecmp(v.ptr, "Basic ", 6) == 0 && (ms->creds.users_file || ms->creds.env_user))
            return basic(ms, conn, v.ptr + 6, v.len - 6);
        if (v.len > 7 && strncasecmp(v.ptr, "Bearer ", 7) == 0 && auth_accepts_tokens(&ms->creds))
            return bearer(ms, conn, v.ptr + 7, v.len - 7);
        return refuse(ms, conn, 401, "unauthorized", "an Authorization scheme this server does not take", false);
    }
    char token[8192];
    size_t tlen;
    if (msg_query_param(wsr_request_query(req), "token", token, sizeof token, &tlen)) {
        if (!auth_accepts_tokens(&ms->creds))
            return refuse(ms, conn, 401, "unauthorized", "tokens are not accepted here", true);
        return bearer(ms, conn, token, tlen);
    }
    // Anonymous: refused when authentication is required at the upgrade; with an
    // authentication timeout it may still open and send `auth` in time.
    if (ms->opts.auth_required && !ms->opts.auth_timeout_ms)
        return refuse(ms, conn, 401, "unauthorized", "authentication required", false);
    accept_as(ms, conn, nullptr);
}
