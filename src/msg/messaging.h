// The messaging protocol on a WebSocket endpoint (docs/messaging.md): JSON envelopes,
// client ids, channels with offsets and recovery from their history, direct messages,
// and an error envelope for every bad message. Built on the public API only.
#pragma once

#include <stdint.h>

#include "wsr/wsr.h"

struct uv_loop_s;
struct msg_server;

struct msg_options {
    uint64_t max_message;      // the server's wsr_options.max_message
    uint32_t max_channels;     // channels at once; more: subscribe/publish answer unavailable
    uint32_t history_count;    // publications kept per channel for recovery
    uint64_t history_age_ms;   // and for how long
    uint64_t history_bytes;    // held by all channels' histories together, at most
    uint32_t max_strikes;      // bad messages in a row before the connection is closed 1008
    // Token buckets per connection: messages and bytes a second, and the bursts allowed
    // above them. A message past either is answered rate_limited (with retryAfterMs)
    // and counts as a bad one. 0: no limit.
    uint32_t rate_messages, burst_messages;
    uint64_t rate_bytes, burst_bytes;
};

void msg_options_default(msg_options *o);
// Serves the protocol on path, on the server's loop (a timer expires old history).
// NULL when out of memory or the path is taken.
msg_server *msg_server_new(struct uv_loop_s *loop, wsr_server *srv, const char *path, const msg_options *o);
// Serves the backend HTTP API under prefix (e.g. "/api/"): publish, send, channels.
// Requests must carry "Authorization: Bearer KEY" with one of keys (NULL-terminated,
// kept by the caller); with no key at all every request is answered 403, so the API is
// never open by accident. WSR_OK or the error of wsr_server_http.
int msg_server_api(msg_server *ms, const char *prefix, const char *const *keys);
// Stops the timer; the memory goes from the loop, after its close callback (run the
// loop afterwards, as for wsr_server_free). Call once the server is freed.
void msg_server_free(msg_server *ms);
