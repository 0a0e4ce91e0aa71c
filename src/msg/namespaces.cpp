#include "msg/namespaces.h"

#include <string.h>

enum { MAX_NAMESPACE = 64 };

static bool name_ok(const char *n) {
    size_t len = strlen(n);
    if (!len || len > MAX_NAMESPACE) return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.@/-", c)))
            return false;
    }
    return true;
}

int ns_validate(const wsr_messaging_options *o) {
    for (uint32_t i = 0; i < o->nnamespaces; i++) {
        const char *n = o->namespaces[i].name;
        if (!n || !name_ok(n)) {
            wsr_log(WSR_LOG_ERROR, "namespace '%s': names are 1-64 of A-Z a-z 0-9 _ . @ / -", n ? n : "");
            return WSR_EINVAL;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(o->namespaces[j].name, n) == 0) {
                wsr_log(WSR_LOG_ERROR, "namespace '%s' given twice", n);
                return WSR_EINVAL;
            }
    }
    return WSR_OK;
}

const wsr_namespace *ns_of(const wsr_messaging_options *o, const char *channel, uint32_t len) {
    const char *colon = (const char *)memchr(channel, ':', len);
    if (colon) {
        size_t n = (size_t)(colon - channel);
        for (uint32_t i = 0; i < o->nnamespaces; i++) {
            const char *name = o->namespaces[i].name;
            if (strlen(name) == n && memcmp(name, channel, n) == 0) return &o->namespaces[i];
        }
    }
    return &o->defaults;
}

const char *ns_check(const wsr_namespace *ns, ns_action a, const auth_identity *who, const char *channel,
                     uint32_t len) {
    switch (a == NS_SUBSCRIBE ? ns->subscribe : ns->publish) {
    case WSR_ALLOW_ANYONE: return nullptr;
    case WSR_ALLOW_USERS: return who ? nullptr : "unauthorized";
    case WSR_ALLOW_GRANTED:
        if (!who) return "unauthorized";
        return auth_granted(a == NS_SUBSCRIBE ? who->subscribe : who->publish, channel, len) ? nullptr : "forbidden";
    case WSR_ALLOW_BACKEND: return "forbidden";
    }
    return "forbidden";
}
