// Channel namespaces: channels named "NAME:…" take the options of namespace NAME (who
// may subscribe and publish, history, presence); every other channel the defaults.
#pragma once

#include <stdint.h>

#include "msg/auth.h"
#include "wsr/messaging.h"

// WSR_OK, or WSR_EINVAL after a log line (a bad or repeated name).
int ns_validate(const wsr_messaging_options *o);
// The options of a channel (a valid name).
const wsr_namespace *ns_of(const wsr_messaging_options *o, const char *channel, uint32_t len);

enum ns_action { NS_SUBSCRIBE, NS_PUBLISH };

// Whether `who` (NULL: anonymous) may do `a` on the channel: NULL when allowed, else
// the error code: "unauthorized" for an anonymous client where users are required,
// "forbidden" otherwise.
const char *ns_check(const wsr_namespace *ns, ns_action a, const auth_identity *who, const char *channel,
                     uint32_t len);
