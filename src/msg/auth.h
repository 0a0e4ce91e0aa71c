// Who a client is: credentials checked against the configured sources (a users file
// of crypt(3) hashes, one user and password from the environment, JWT bearer tokens)
// and the identity they give (user, permissions, expiry). No I/O besides reading the
// files at start and on reload; the slow part of a password check (crypt) is a plain
// function the caller runs off the loop.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "wsr/messaging.h"

// An authenticated client. One allocation: the strings follow the struct.
struct auth_identity {
    const char *user;
    // Channel patterns from the token's claims ("*" matches any run of characters):
    // "channels" grants subscribe, "publish" grants publish. NULL-terminated; NULL when
    // the claim is absent (nothing granted).
    const char *const *subscribe;
    const char *const *publish;
    uint64_t expires_ms; // the token's exp; 0: does not expire (Basic)
};

void auth_identity_free(auth_identity *id);
// A copy of the identity, for a connection that keeps it.
auth_identity *auth_identity_new(const char *user, size_t user_len, const char *const *subscribe,
                                 const char *const *publish, uint64_t expires_ms);
// True when one of the patterns matches the channel name.
bool auth_granted(const char *const *patterns, const char *channel, size_t len);

struct auth_user {
    char *name;
    char *hash; // crypt(3) text: $2b$ (bcrypt), $y$ (yescrypt), $6$ (sha512-crypt), ...
};

struct auth {
    const char *users_file;
    auth_user *users;
    uint32_t nusers;
    const char *env_user, *env_password;
    const char *jwt_secret;
    const char *jwt_key_file;
    char *jwt_key;     // the PEM text of jwt_key_file
    size_t jwt_key_len;
    const char *audience, *issuer;
};

// Reads the users file and the JWT public key. WSR_OK, or WSR_EINVAL/WSR_ENOMEM after a
// log line that names the file and the line.
int auth_init(auth *a, const wsr_messaging_options *o);
// Re-reads both files; on any error the ones in use stay.
int auth_reload(auth *a);
void auth_free(auth *a);
// True when any credential source is configured.
bool auth_configured(const auth *a);
bool auth_accepts_tokens(const auth *a);

enum auth_result { AUTH_OK, AUTH_BAD, AUTH_EXPIRED };

// A JWT: signature (the algorithm must fit the key configured: HS* with the secret,
// RS*/ES* with the public key; "none" never), exp, nbf, aud, iss; sub is the user.
// AUTH_OK with a new identity in *out, else *why says what was wrong.
auth_result auth_token(const auth *a, const char *token, size_t len, uint64_t now_ms, auth_identity **out,
                       const char **why);

// "Authorization: Basic ..." decoded into user and password (NUL-terminated, in buf of
// cap bytes). False when malformed.
bool auth_basic_decode(const char *b64, size_t len, char *buf, size_t cap, const char **user,
                       const char **password);
// True when user and password are the environment's (the password compared in constant
// time); false also when that is not the user (the users file may still know it).
bool auth_env_match(const auth *a, const char *user, const char *password);
// The stored hash for user, copied into out (cap bytes); when the user is unknown, a hash
// that costs the same to check and never matches (*known false), so that the time an
// answer takes does not tell which users exist. False when no users file is configured.
bool auth_user_hash(const auth *a, const char *user, char *out, size_t cap, bool *known);
// The slow check: crypt(3) of password with the hash's own salt, compared in constant
// time. Thread-safe (crypt_r); run it off the loop.
bool auth_crypt_check(const char *hash, const char *password);
