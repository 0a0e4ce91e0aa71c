// Allowed-origin patterns: the check against cross-site WebSocket hijacking. A browser
// sends the page's origin in the upgrade request and lets any page open a WebSocket to
// any server with the user's cookies; the server alone can refuse a foreign page.
//
// Pure string code: no I/O, no allocation.
#pragma once

#include <stddef.h>

// A pattern is a full origin "scheme://host[:port]" where host may start with "*.":
// "https://app.example.com", "https://*.example.com" (one or more labels before
// example.com; NOT example.com itself), "http://localhost:3000", "http://[::1]:8080", or
// "*" (any origin, even none), or "null" (exactly the origin "null" that sandboxed pages
// and file: URLs send). Scheme and host compare case-insensitively; a port equal to the
// scheme's default (http/ws 80, https/wss 443) is the same as none. No path, no
// trailing slash, no userinfo. An empty origin or "null" matches only "*" (and "null"
// only the pattern "null").

// Syntax check for option parsing.
bool origin_pattern_valid(const char *pattern);
// True when the Origin header value origin[0..origin_len) is allowed by pattern. false
// for an invalid pattern or a malformed origin.
bool origin_match(const char *pattern, const char *origin, size_t origin_len);
