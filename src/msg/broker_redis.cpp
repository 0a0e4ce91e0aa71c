// The Redis broker (src/msg/broker.h, docs/scaling.md): hiredis on this loop through its
// libuv adapter, no thread and no blocking call. Two connections per node: one for
// commands (pipelined: hiredis writes whatever was queued when the socket is writable)
// and one subscribed to the bus and to the node's own channel.
//
// Every change that other nodes must see is one Lua script, so that it is atomic in
// Redis: a publication takes the channel's next offset, appends the framed envelope to
// the channel's stream and PUBLISHes it on the bus in one step, which gives one order per
// channel that every node sees.
//
// Keys (one database; the {name} hash tags keep a channel's keys in one slot):
//   wsr:{CH}:m        hash: e = the channel's epoch, o = its newest offset
//   wsr:{CH}:s        stream of the framed envelopes (fields o, d), trimmed by count/age
//   wsr:{CH}:p        hash: NODE/CLIENTID -> {"clientId","user"} (presence)
//   wsr:node:NODE     the node's heartbeat (expires when the node dies)
//   wsr:nodes         set of nodes; wsr:node:NODE:ch and :cl its channels and clients
//   wsr:client:ID     the node that has the client (direct messages)
// Pub/Sub channels: wsr:bus:DB (every node) and wsr:node:DB:NODE (one node).
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg/broker.h"
#include "msg/namespaces.h"
#include "msg/server.h"
#include "proto/crypto.h"

// How often the node says it lives, and how long after its last word it counts as dead
// (its presence entries and clients are then swept by the other nodes).
enum { TICK_MS = 500, BEAT_MS = 1000, NODE_TTL_MS = 10000 };
// A connection that does not come up, a command that gets no answer, and a subscriber
// that hears nothing (not even this node's own heartbeat) for this long is dropped and
// made again: hiredis's libuv adapter ignores poll errors, so a dead socket might
// otherwise never be noticed.
enum { CONNECT_TIMEOUT_MS = 3000, REPLY_TIMEOUT_MS = 5000, SILENCE_MS = 5000, CONNECT_CHECK_MS = 50 };
// At most this many commands, and this many bytes of them, wait for Redis's answers
// (queue_full): 8 MiB, a few percent of the smallest machine this runs on.
enum { BROKER_QUEUE_MAX = 4096 };
static const uint64_t BROKER_QUEUE_BYTES = 8ull << 20; // when --broker-queue is 0
enum { BACKOFF_MIN_MS = 100, BACKOFF_MAX_MS = 5000 };
// Channel keys stay this long after their last publication or subscription: the epoch
// and the offsets of a channel nobody uses are forgotten after a day.
static const uint64_t KEEP_MS = 24ull * 3600 * 1000;

// --- the scripts ---------------------------------------------------------------------------

// Publications on #KEYS/2 channels. KEYS: meta and stream of each. ARGV: bus, a new
// epoch (for a channel that has none), the envelope's tail, KEEP_MS, then per channel:
// name, the envelope's head, history count, history age (ms). The envelope is
// head .. offset .. ,"epoch":"E" .. tail. Returns {{offset, epoch}, ...}.
static const char S_PUBLISH[] =
    "local bus, cand, tail, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local out, now = {}, nil\n"
    "for i = 1, #KEYS / 2 do\n"
    "  local m, s, a = KEYS[2 * i - 1], KEYS[2 * i], 4 + 4 * (i - 1)\n"
    "  local name, head, count, ttl = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])\n"
    "  local e = redis.call('HGET', m, 'e')\n"
    "  if not e then e = cand; redis.call('HSET', m, 'e', e) end\n"
    "  local o = redis.call('HINCRBY', m, 'o', 1)\n"
    "  redis.call('PEXPIRE', m, keep)\n"
    "  local d = head .. o .. ',\"epoch\":\"' .. e .. '\"' .. tail\n"
    "  if count > 0 then\n"
    "    redis.call('XADD', s, 'MAXLEN', count, '*', 'o', o, 'd', d)\n"
    "    if ttl > 0 then\n"
    "      if not now then local t = redis.call('TIME'); now = t[1] * 1000 + math.floor(t[2] / 1000) end\n"
    "      if now > ttl then redis.call('XTRIM', s, 'MINID', now - ttl) end\n"
    "    end\n"
    "    redis.call('PEXPIRE', s, keep)\n"
    "  end\n"
    "  redis.call('PUBLISH', bus, 'p ' .. name .. ' ' .. e .. ' ' .. o .. ' ' .. d)\n"
    "  out[i] = {o, e}\n"
    "end\n"
    "return out\n";

// A subscription. KEYS: meta, stream. ARGV: asked (1/0), since, the client's epoch, a new
// epoch, KEEP_MS, history age (ms), history count, bytes at most. Returns {epoch, offset,
// recovered, envelopes after since oldest first...}: recovered only when every one is
// still there and young enough, and they fit in the bytes (an answer this node must hold
// at once: past it the client reloads instead).
static const char S_RECOVER[] =
    "local m, s = KEYS[1], KEYS[2]\n"
    "local e = redis.call('HGET', m, 'e')\n"
    "if not e then e = ARGV[4]; redis.call('HSET', m, 'e', e, 'o', 0) end\n"
    "redis.call('PEXPIRE', m, ARGV[5])\n"
    "local o = tonumber(redis.call('HGET', m, 'o') or '0')\n"
    "if ARGV[1] ~= '1' or ARGV[3] ~= e then return {e, o, 0} end\n"
    "local since = tonumber(ARGV[2])\n"
    "if since == o then return {e, o, 1} end\n"
    "local want = o - since\n"
    "if since > o or want > tonumber(ARGV[7]) then return {e, o, 0} end\n"
    "local r = redis.call('XREVRANGE', s, '+', '-', 'COUNT', want)\n"
    "if #r < want or tonumber(r[want][2][2]) ~= since + 1 then return {e, o, 0} end\n"
    "local ttl = tonumber(ARGV[6])\n"
    "if ttl > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  local id = r[want][1]\n"
    "  local born = tonumber(string.sub(id, 1, string.find(id, '-') - 1))\n"
    "  if t[1] * 1000 + math.floor(t[2] / 1000) - born > ttl then return {e, o, 0} end\n"
    "end\n"
    "local out, bytes, cap = {e, o, 1}, 0, tonumber(ARGV[8])\n"
    "for i = want, 1, -1 do\n"
    "  bytes = bytes + #r[i][2][4]\n"
    "  if bytes > cap then return {e, o, 0} end\n"
    "  out[#out + 1] = r[i][2][4]\n"
    "end\n"
    "return out\n";

// A presence change. KEYS: presence hash, the node's channel set. ARGV: bus, joined
// (1/0), node, client id, client object, channel, announce (1/0).
static const char S_PRESENCE[] =
    "local f = ARGV[3] .. '/' .. ARGV[4]\n"
    "if ARGV[2] == '1' then redis.call('HSET', KEYS[1], f, ARGV[5]); redis.call('SADD', KEYS[2], ARGV[6])\n"
    "else redis.call('HDEL', KEYS[1], f) end\n"
    "if ARGV[7] == '1' then\n"
    "  redis.call('PUBLISH', ARGV[1], (ARGV[2] == '1' and 'j ' or 'l ') .. ARGV[6] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5])\n"
    "end\n"
    "return 1\n";

// The members of a channel on live nodes. KEYS: presence hash. ARGV: bytes at most.
// Entries of dead nodes are dropped on the way. Returns {1 when some did not fit in the
// bytes else 0, client objects...}.
static const char S_MEMBERS[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local alive, out, cap, used = {}, {0}, tonumber(ARGV[1]), 0\n"
    "for i = 1, #h, 2 do\n"
    "  local node = string.match(h[i], '^([^/]+)/')\n"
    "  local a = alive[node]\n"
    "  if a == nil then a = node ~= nil and redis.call('EXISTS', 'wsr:node:' .. node) == 1; alive[node] = a end\n"
    "  if not a then redis.call('HDEL', KEYS[1], h[i])\n"
    "  elseif used + #h[i + 1] > cap then out[1] = 1\n"
    "  else used = used + #h[i + 1]; out[#out + 1] = h[i + 1] end\n"
    "end\n"
    "return out\n";

// The node's heartbeat, and the sweep of nodes whose heartbeat expired (their presence
// entries go, with a leave to every node; their clients leave the registry). ARGV: op
// ('beat'; 'forget': this node's own entries go, as after a lost connection, before
// they are written again; 'bye': the node stops, as a dead one is swept but at once),
// node, its Pub/Sub channel, NODE_TTL_MS, bus. A beat returns 2 when the node's own
// heartbeat had expired (it may have been swept as dead meanwhile), else 1.
static const char S_NODE[] =
    "local op, me, mine, ttl, bus = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local function forget(n, announce)\n"
    "  for _, ch in ipairs(redis.call('SMEMBERS', 'wsr:node:' .. n .. ':ch')) do\n"
    "    local p = 'wsr:{' .. ch .. '}:p'\n"
    "    local h = redis.call('HGETALL', p)\n"
    "    for i = 1, #h, 2 do\n"
    "      local id = string.match(h[i], '^' .. n .. '/(.+)$')\n"
    "      if id then\n"
    "        redis.call('HDEL', p, h[i])\n"
    "        if announce then redis.call('PUBLISH', bus, 'l ' .. ch .. ' ' .. id .. ' ' .. h[i + 1]) end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', 'wsr:node:' .. n .. ':cl')) do redis.call('DEL', 'wsr:client:' .. id) end\n"
    "  redis.call('DEL', 'wsr:node:' .. n .. ':ch', 'wsr:node:' .. n .. ':cl')\n"
    "end\n"
    "if op == 'forget' then forget(me, false); return 1 end\n"
    "if op == 'bye' then\n"
    "  forget(me, true); redis.call('DEL', 'wsr:node:' .. me); redis.call('SREM', 'wsr:nodes', me); return 1\n"
    "end\n"
    "local had = redis.call('EXISTS', 'wsr:node:' .. me)\n"
    "redis.call('SET', 'wsr:node:' .. me, '1', 'PX', ttl)\n"
    "redis.call('SADD', 'wsr:nodes', me)\n"
    "redis.call('PUBLISH', mine, 'h')\n"
    "for _, n in ipairs(redis.call('SMEMBERS', 'wsr:nodes')) do\n"
    "  if redis.call('EXISTS', 'wsr:node:' .. n) == 0 then forget(n, true); redis.call('SREM', 'wsr:nodes', n) end\n"
    "end\n"
    "return had == 1 and 1 or 2\n";

// A message to the node of a client. KEYS: the client's registry key. ARGV: the prefix
// of node channels, the message. 1 when a live node has the client and heard it, 0 when
// no live node has the client, 2 when its node is not listening now (its subscriber
// connection is away: the heartbeat outlives it by up to 10 s), so the message is lost.
static const char S_ROUTE[] =
    "local n = redis.call('GET', KEYS[1])\n"
    "if not n or redis.call('EXISTS', 'wsr:node:' .. n) == 0 then return 0 end\n"
    "if redis.call('PUBLISH', ARGV[1] .. n, ARGV[2]) == 0 then return 2 end\n"
    "return 1\n";

// The backend's history. KEYS: meta, stream. ARGV: how many, bytes at most, the age limit
// in ms (0: none; the stream is trimmed by age only when a publication comes, so a quiet
// channel keeps older entries). Returns {epoch or '', offset, envelopes oldest first...}:
// the newest younger than the age limit that fit in the bytes.
static const char S_HISTORY[] =
    "local e = redis.call('HGET', KEYS[1], 'e')\n"
    "local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')\n"
    "local out, n, cap = {e or '', o}, tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "if n > 0 then\n"
    "  local min, ttl = '-', tonumber(ARGV[3])\n"
    "  if ttl > 0 then\n"
    "    local t = redis.call('TIME')\n"
    "    local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "    if now > ttl then min = string.format('%.0f', now - ttl) end\n"
    "  end\n"
    "  local r = redis.call('XREVRANGE', KEYS[2], '+', min, 'COUNT', n)\n"
    "  local last, bytes = 0, 0\n"
    "  while last < #r and bytes + #r[last + 1][2][4] <= cap do last = last + 1; bytes = bytes + #r[last][2][4] end\n"
    "  for i = last, 1, -1 do out[#out + 1] = r[i][2][4] end\n"
    "end\n"
    "return out\n";

enum script_id { SC_PUBLISH, SC_RECOVER, SC_PRESENCE, SC_MEMBERS, SC_NODE, SC_ROUTE, SC_HISTORY, NSCRIPTS };
static const char *const SCRIPTS[NSCRIPTS] = {S_PUBLISH, S_RECOVER, S_PRESENCE, S_MEMBERS, S_NODE, S_ROUTE, S_HISTORY};

// --- state ------------------------------------------------------------------------------------

struct redis_link {
    redisAsyncContext *ac; // NULL: not connected
    bool ready;            // set up: authenticated, database selected, scripts loaded / subscribed
    bool failed_setup;     // a set-up command failed: dropped at the next tick
    uint64_t started_ms;   // when the connection was started
    uint64_t heard_ms;     // the last reply or message
    uint32_t waiting;      // commands without an answer yet
};

struct broker_resolve; // a name being resolved off the loop

struct msg_broker {
    wsr_messaging *ms;
    uv_loop_t *loop;
    broker_url url;
    char node[17];
    char bus[40];         // wsr:bus:DB
    char node_prefix[40]; // wsr:node:DB:
    char mine[64];        // wsr:node:DB:NODE
    char sha[NSCRIPTS][41];
    redis_link cmd, sub;
    uv_timer_t tick;
    uint64_t retry_ms;    // when to connect again
    uint32_t backoff_ms;
    uint64_t beat_ms;     // the last heartbeat sent
    broker_resolve *resolving;
    char addr[BROKER_HOST_MAX + 1]; // the address of url.host (resolved when a name)
    bool up, ever_up, closing, closed;
    uint32_t attempts;    // failed connects: which of a host name's addresses to try next
    uint64_t reconnects, errors;
    // Commands sent and not answered yet, and their bytes (queue_full).
    uint32_t queued;
    size_t queued_bytes;
    bool full_logged;     // queue_full was logged, and the queue has not drained since
    env_out scratch;      // envelopes' heads and tails
};

struct broker_resolve {
    uv_getaddrinfo_t req;
    msg_broker *b; // NULL once the broker closed
};

// One command's context: what to do with the answer, and who waits for it. Variable
// parts (the correlation id, channel names) follow the struct.
enum op_kind {
    OP_SETUP, OP_PLAIN, OP_BEAT, OP_PUBLISH, OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_CATCHUP, OP_MEMBERS, OP_ROUTE, OP_DISCONNECT, OP_HISTORY
};
struct broker_op {
    msg_broker *b;
    op_kind kind;
    broker_waiter_kind wk;
    wsr_conn_id conn;
    uint32_t client;      // OP_SUBSCRIBE, OP_UNSUBSCRIBE: the client slot
    uint32_t n;           // OP_PUBLISH: channels
    bool broadcast;       // OP_PUBLISH: the answer of /api/broadcast
    uint32_t corr_len;    // bytes of the correlation id; UINT32_MAX: none
    size_t bytes;         // counted in msg_broker.queued_bytes until answered (send_args); 0: not
    uint32_t names_len;   // channel names, each NUL-terminated
    char text[];          // correlation id, then the names
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static void tick(uv_timer_t *t);

bool broker_up(const msg_broker *b) { return b && b->up && !b->closing; }
const char *broker_node(const msg_broker *b) { return b->node; }

void broker_stats(const msg_broker *b, wsr_messaging_stats *st) {
    st->broker_up = broker_up(b);
    st->broker_reconnects = b->reconnects;
    st->broker_errors = b->errors;
}

static void hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

// A fresh epoch for a channel Redis does not know: random, so that a channel made again
// (its keys expired, or Redis restarted empty) never reuses an old one.
static void new_epoch(char out[17]) {
    unsigned char raw[8];
    if (!crypto_random(raw, sizeof raw)) {
        uint64_t t = uv_hrtime();
        memcpy(raw, &t, sizeof raw);
    }
    hex(raw, sizeof raw, out);
}

// --- commands -----------------------------------------------------------------------------------

// The arguments of one command. Strings are referenced where they live, or copied into
// the arena (keys and numbers made here); arena entries are kept as offsets until the
// command is sent, as the arena may move while it grows.
struct args {
    const char **v;
    size_t *len;
    size_t *at;     // arena offset + 1, or 0: v[i] is the caller's
    int n, cap;
    char *arena;
    size_t used, arena_cap;
    bool failed;
};

static void args_free(args *a) {
    free(a->v);
    free(a->len);
    free(a->at);
    free(a->arena);
}

static bool args_room(args *a) {
    if (a->n < a->cap) return true;
    int cap = a->cap ? a->cap * 2 : 16;
    const char **v = (const char **)realloc(a->v, (size_t)cap * sizeof *v);
    if (v) a->v = v;
    size_t *len = (size_t *)realloc(a->len, (size_t)cap * sizeof *len);
    if (len) a->len = len;
    size_t *at = (size_t *)realloc(a->at, (size_t)cap * sizeof *at);
    if (at) a->at = at;
    if (!v || !len || !at) return a->failed = true, false;
    a->cap = cap;
    return true;
}

static void arg(args *a, const char *s, size_t len) {
    if (a->failed || !args_room(a)) return;
    a->v[a->n] = s;
    a->len[a->n] = len;
    a->at[a->n++] = 0;
}

static void arg_str(args *a, const char *s) { arg(a, s, strlen(s)); }

// An argument made of up to three pieces, copied.
static void arg_cat(args *a, const char *p1, size_t l1, const char *p2, size_t l2, const char *p3, size_t l3) {
    if (a->failed || !args_room(a)) return;
    size_t need = l1 + l2 + l3;
    if (a->used + need > a->arena_cap) {
        size_t cap = a->arena_cap ? a->arena_cap : 256;
        while (cap < a->used + need) cap *= 2;
        char *na = (char *)realloc(a->arena, cap);
        if (!na) return (void)(a->failed = true);
        a->arena = na;
        a->arena_cap = cap;
    }
    char *d = a->arena + a->used;
    if (l1) memcpy(d, p1, l1);
    if (l2) memcpy(d + l1, p2, l2);
    if (l3) memcpy(d + l1 + l2, p3, l3);
    a->v[a->n] = nullptr;
    a->len[a->n] = need;
    a->at[a->n++] = a->used + 1;
    a->used += need;
}

static void arg_u64(args *a, uint64_t v) {
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    arg_cat(a, num, (size_t)n, nullptr, 0, nullptr, 0);
}

// wsr:{NAME}:SUFFIX
static void arg_key(args *a, const char *name, size_t len, const char *suffix) {
    arg_cat(a, "wsr:{", 5, name, len, suffix, strlen(suffix));
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

// What a command costs while it waits: its arguments as hiredis queues them (RESP adds
// a few bytes per argument), plus the operation.
static size_t args_bytes(const args *a) {
    size_t n = sizeof(broker_op) + 16;
    for (int i = 0; i < a->n; i++) n += a->len[i] + 16;
    return n;
}

// Sends a command on the command connection; op (may be NULL) gets the answer. False
// when it could not be queued (the broker is down, out of memory): op is then the
// caller's to free.
static bool send_args(msg_broker *b, args *a, broker_op *op) {
    if (a->failed || !b->cmd.ac) return false;
    for (int i = 0; i < a->n; i++)
        if (a->at[i]) a->v[i] = a->arena + a->at[i] - 1;
    if (redisAsyncCommandArgv(b->cmd.ac, on_reply, op, a->n, a->v, a->len) != REDIS_OK) return false;
    if (!b->cmd.waiting++) b->cmd.heard_ms = now_ms(); // the wait for an answer starts now
    if (op) {
        op->bytes = args_bytes(a);
        b->queued++;
        b->queued_bytes += op->bytes;
    }
    return true;
}

// Redis slow but answering (a fork for BGSAVE, a slow script, a saturated network) trips
// no timeout, and clients may send faster than it answers: what waits for it (hiredis's
// output buffer, the operations) is bounded by count and bytes, and an operation past
// the bound is answered unavailable (HTTP 503) at once, as when Redis is down. One
// command is always let through, however large (a message of max_message). The node's
// own upkeep (presence, registry, heartbeats, catch-ups, the answer of an unsubscribe)
// is never refused; it is counted, and it is bounded by the clients and channels.
static bool queue_full(msg_broker *b, const args *a) {
    if (!b->queued) return false;
    uint64_t cap = b->ms->opts.broker_queue ? b->ms->opts.broker_queue : BROKER_QUEUE_BYTES;
    bool full = b->queued >= BROKER_QUEUE_MAX || b->queued_bytes + args_bytes(a) > cap;
    if (full && !b->full_logged) {
        b->full_logged = true;
        wsr_log(WSR_LOG_WARN, "broker: Redis is not keeping up (%u commands, %zu bytes waiting): operations are "
                "answered unavailable until it does", b->queued, b->queued_bytes);
    }
    return full;
}

// send_args for an operation: the arguments are freed, and so is op (counted as an
// error) when it could not be sent. False then: the caller answers unavailable.
static bool send_op(msg_broker *b, args *a, broker_op *op) {
    bool upkeep = op->kind == OP_CATCHUP || op->kind == OP_UNSUBSCRIBE;
    bool sent = (upkeep || !queue_full(b, a)) && send_args(b, a, op);
    args_free(a);
    if (!sent) {
        free(op);
        b->errors++;
    }
    return sent;
}

static broker_op *op_new(msg_broker *b, op_kind kind, const broker_waiter *w, const env_str *corr, size_t names_len) {
    size_t cl = corr && corr->ptr ? corr->len : 0;
    broker_op *op = (broker_op *)calloc(1, sizeof *op + cl + names_len + 1);
    if (!op) return nullptr;
    op->b = b;
    op->kind = kind;
    op->wk = w ? w->kind : BW_NONE;
    op->conn = w ? w->conn : 0;
    op->corr_len = corr && corr->ptr ? (uint32_t)cl : UINT32_MAX;
    if (cl) memcpy(op->text, corr->ptr, cl);
    op->names_len = (uint32_t)names_len;
    return op;
}

static env_str op_corr(const broker_op *op) {
    return op->corr_len == UINT32_MAX ? env_str{nullptr, 0} : env_str{op->text, op->corr_len};
}
static char *op_names(broker_op *op) { return op->text + (op->corr_len == UINT32_MAX ? 0 : op->corr_len); }

// The most bytes of publications or members one answer of Redis may bring (a recovery,
// a history, a presence list):
// hiredis holds a whole answer in memory, so it is bounded as the local histories are
// (--history-memory), and by 16 MiB on top.
static uint64_t reply_cap(const msg_broker *b) {
    uint64_t cap = b->ms->opts.history_memory;
    return cap && cap < (16u << 20) ? cap : 16u << 20;
}

static void evalsha(args *a, msg_broker *b, script_id s, int nkeys) {
    arg_str(a, "EVALSHA");
    arg_str(a, b->sha[s]);
    arg_u64(a, (uint64_t)nkeys);
}

// --- answers -----------------------------------------------------------------------------------

// An operation that did not happen: the waiter hears unavailable (503 on the API).
static void answer_unavailable(msg_broker *b, broker_op *op, const char *why) {
    wsr_messaging *ms = b->ms;
    env_str corr = op_corr(op);
    env_str ch{op_names(op), op->names_len};
    if (op->kind == OP_SUBSCRIBE) return msg_subscribe_failed(ms, op->client, op->conn, &corr, &ch, why);
    if (op->kind == OP_CATCHUP) return msg_caught_up(ms, &ch, nullptr, 0, false, nullptr, nullptr, 0);
    // Leaving needs nothing of Redis: it happens whatever the answer.
    if (op->kind == OP_UNSUBSCRIBE) return msg_unsubscribe(ms, op->client, op->conn, &corr, &ch);
    if (op->wk == BW_WS) msg_send_error(ms, op->conn, &corr, "unavailable", why);
    if (op->wk == BW_HTTP) msg_api_error(ms, op->conn, 503, "unavailable", why);
}

static bool is_str(const redisReply *r) { return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS); }
static bool is_int(const redisReply *r) { return r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0; }
static bool is_epoch(const redisReply *r) { return is_str(r) && r->len == 16; }

// Not the answer a script of ours gives: a Redis that is not what we expect, or keys
// somebody else wrote. Logged (rate-limited) and answered unavailable.
static void bad_reply(msg_broker *b, broker_op *op, const char *what) {
    b->errors++;
    wsr_log(WSR_LOG_WARN, "broker: an answer of Redis that is not the expected one (%s)", what);
    answer_unavailable(b, op, "the broker gave an answer that is not understood");
}

static void done_publish(msg_broker *b, broker_op *op, const redisReply *r) {
    wsr_messaging *ms = b->ms;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != op->n) return bad_reply(b, op, "publish");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *p = r->element[i];
        if (p->type != REDIS_REPLY_ARRAY || p->elements != 2 || !is_int(p->element[0]) || !is_epoch(p->element[1]))
            return bad_reply(b, op, "publish");
    }
    ms->counts.publications += op->n;
    env_str corr = op_corr(op);
    if (op->wk == BW_WS) {
        uint64_t off = (uint64_t)r->element[0]->element[0]->integer;
        return msg_ack(ms, op->conn, &corr, &off);
    }
    if (op->wk != BW_HTTP) return;
    env_out_reset(&ms->out);
    if (op->broadcast) {
        env_key(&ms->out, "channels", true);
        env_raw(&ms->out, "[", 1);
    }
    const char *name = op_names(op);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *p = r->element[i];
        if (i) env_raw(&ms->out, ",", 1);
        if (op->broadcast) {
            env_key(&ms->out, "channel", true);
            env_string(&ms->out, name, strlen(name));
            name += strlen(name) + 1;
        }
        env_key(&ms->out, "offset", !op->broadcast);
        env_u64(&ms->out, (uint64_t)p->element[0]->integer);
        env_key(&ms->out, "epoch", false);
        env_string(&ms->out, p->element[1]->str, 16);
        env_raw(&ms->out, "}", 1);
    }
    if (op->broadcast) env_raw(&ms->out, "]}", 2);
    msg_api_answer(ms, op->conn, 200);
}

static void done_subscribe(msg_broker *b, broker_op *op, const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_epoch(r->element[0]) || !is_int(r->element[1]) ||
        !is_int(r->element[2]))
        return bad_reply(b, op, "subscribe");
    uint32_t n = (uint32_t)(r->elements - 3);
    const char **data = n ? (const char **)malloc(n * sizeof *data) : nullptr;
    size_t *lens = n ? (size_t *)malloc(n * sizeof *lens) : nullptr;
    if (n && (!data || !lens)) {
        free(data);
        free(lens);
        return answer_unavailable(b, op, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        const redisReply *d = r->element[3 + i];
        if (!is_str(d)) {
            free(data);
            free(lens);
            return bad_reply(b, op, "subscribe");
        }
        data[i] = d->str;
        lens[i] = d->len;
    }
    char epoch[17];
    memcpy(epoch, r->element[0]->str, 16);
    epoch[16] = '\0';
    env_str corr = op_corr(op), ch{op_names(op), op->names_len};
    if (op->kind == OP_CATCHUP)
        msg_caught_up(b->ms, &ch, epoch, (uint64_t)r->element[1]->integer, r->element[2]->integer == 1, data, lens, n);
    else
        msg_subscribed(b->ms, op->client, op->conn, &corr, &ch, epoch, (uint64_t)r->element[1]->integer,
                       r->element[2]->integer == 1, data, lens, n);
    free(data);
    free(lens);
}

static void done_members(msg_broker *b, broker_op *op, const redisReply *r) {
    wsr_messaging *ms = b->ms;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_int(r->element[0])) return bad_reply(b, op, "presence");
    for (size_t i = 1; i < r->elements; i++)
        if (!is_str(r->element[i])) return bad_reply(b, op, "presence");
    bool truncated = r->element[0]->integer == 1;
    env_str corr = op_corr(op);
    if (op->wk == BW_WS) {
        msg_begin(ms, "presence", &corr);
        env_key(&ms->out, "channel", false);
        env_string(&ms->out, op_names(op), op->names_len);
        env_key(&ms->out, "payload", false);
    } else {
        env_out_reset(&ms->out);
    }
    env_key(&ms->out, "clients", true);
    env_raw(&ms->out, "[", 1);
    for (size_t i = 1; i < r->elements; i++) {
        if (i > 1) env_raw(&ms->out, ",", 1);
        env_raw(&ms->out, r->element[i]->str, r->element[i]->len);
    }
    // More members than one answer may bring (reply_cap): those that fit, and a flag.
    if (truncated) env_lit(&ms->out, "],\"truncated\":true}");
    else env_raw(&ms->out, "]}", 2);
    if (op->wk == BW_WS) {
        msg_finish(&ms->out);
        msg_send_out(ms, op->conn);
    } else if (op->wk == BW_HTTP) {
        msg_api_answer(ms, op->conn, 200);
    }
}

static void done_route(msg_broker *b, broker_op *op, const redisReply *r) {
    wsr_messaging *ms = b->ms;
    if (!is_int(r) || r->integer > 2) return bad_reply(b, op, "route");
    if (r->integer == 2) {
        // Nobody received it: never acknowledged (the client may be reachable again soon).
        b->errors++;
        return answer_unavailable(b, op, "the client's node is not listening to the bus");
    }
    bool found = r->integer == 1;
    env_str corr = op_corr(op);
    if (op->kind == OP_ROUTE) {
        if (found) ms->counts.direct_messages++;
        if (op->wk == BW_WS) {
            if (found) return msg_ack(ms, op->conn, &corr, nullptr);
            return msg_send_error(ms, op->conn, &corr, "not_found", "no client with that id");
        }
        if (op->wk != BW_HTTP) return;
        if (!found) return msg_api_error(ms, op->conn, 404, "not_found", "no client with that id is connected");
        env_out_reset(&ms->out);
        env_lit(&ms->out, "{}");
        return msg_api_answer(ms, op->conn, 200);
    }
    if (op->wk != BW_HTTP) return;
    if (!found) return msg_api_error(ms, op->conn, 404, "not_found", "no such client is connected");
    env_out_reset(&ms->out);
    env_lit(&ms->out, "{\"disconnected\":1}");
    msg_api_answer(ms, op->conn, 200);
}

static void done_history(msg_broker *b, broker_op *op, const redisReply *r) {
    wsr_messaging *ms = b->ms;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0]) || !is_int(r->element[1]) ||
        (r->element[0]->len != 0 && r->element[0]->len != 16))
        return bad_reply(b, op, "history");
    for (size_t i = 2; i < r->elements; i++)
        if (!is_str(r->element[i])) return bad_reply(b, op, "history");
    env_out_reset(&ms->out);
    env_key(&ms->out, "channel", true);
    env_string(&ms->out, op_names(op), op->names_len);
    env_key(&ms->out, "offset", false);
    env_u64(&ms->out, (uint64_t)r->element[1]->integer);
    env_key(&ms->out, "epoch", false);
    if (r->element[0]->len)
        env_string(&ms->out, r->element[0]->str, 16);
    else
        env_lit(&ms->out, "null");
    env_key(&ms->out, "publications", false);
    env_raw(&ms->out, "[", 1);
    for (size_t i = 2; i < r->elements; i++) {
        if (i > 2) env_raw(&ms->out, ",", 1);
        env_raw(&ms->out, r->element[i]->str, r->element[i]->len);
    }
    env_raw(&ms->out, "]}", 2);
    msg_api_answer(ms, op->conn, 200);
}

static void resync(msg_broker *b, bool announce);

// A live node whose heartbeat expired (stopped or frozen for longer than NODE_TTL_MS, or
// Redis slow) may have been swept by another node, its presence and registry entries
// gone while its clients are still here; its connections need not have dropped, so no
// reconnect writes them again: the beat says so, and they are written again now, with
// a join for the members elsewhere, which heard a leave.
static void done_beat(msg_broker *b, const redisReply *r) {
    if (!is_int(r) || r->integer != 2 || !broker_up(b)) return;
    wsr_log(WSR_LOG_WARN, "broker: this node's heartbeat had expired in Redis (it may have been taken for dead): "
            "its clients' presence and registry entries are written again");
    resync(b, true);
}

static redis_link *link_of(msg_broker *b, const redisAsyncContext *ac) {
    return ac == b->cmd.ac ? &b->cmd : ac == b->sub.ac ? &b->sub : nullptr;
}

static void check_up(msg_broker *b);

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    msg_broker *b = (msg_broker *)ac->data;
    broker_op *op = (broker_op *)privdata;
    const redisReply *r = (const redisReply *)reply;
    redis_link *l = link_of(b, ac);
    if (l) {
        if (l->waiting) l->waiting--;
        l->heard_ms = now_ms();
    }
    if (op && op->bytes) {
        b->queued--;
        b->queued_bytes -= op->bytes;
        if (!b->queued) b->full_logged = false;
    }
    // Closing: the server that would carry an answer may be gone already.
    if (b->closing || !op) return free(op);
    if (!r) {
        // The connection went with the command on it. It may or may not have run; the
        // waiter is told it did not, which is never a lie about a delivery (a client
        // that retries may see it twice, with two offsets).
        if (op->kind != OP_SETUP && op->kind != OP_PLAIN) b->errors++;
        answer_unavailable(b, op, "the broker connection was lost");
        return free(op);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        b->errors++;
        wsr_log(WSR_LOG_WARN, "broker: Redis answered an error: %.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
        // A replica after a failover (READONLY), a Redis still loading its data (LOADING)
        // or one that lost our scripts (NOSCRIPT: SCRIPT FLUSH) will not do better on this
        // connection: it is made again (the scripts loaded anew, perhaps on the new
        // primary behind the same address).
        bool hopeless = r->len >= 7 && (memcmp(r->str, "READONL", 7) == 0 || memcmp(r->str, "LOADING", 7) == 0 ||
                                         memcmp(r->str, "NOSCRIP", 7) == 0);
        if ((op->kind == OP_SETUP || hopeless) && l) l->failed_setup = true;
        answer_unavailable(b, op, "the broker refused the operation");
        return free(op);
    }
    switch (op->kind) {
    case OP_SETUP:
        // The last set-up command (the last script) answered: the link is ready.
        if (l && op->n && !l->failed_setup) {
            l->ready = true;
            check_up(b);
        }
        break;
    case OP_PLAIN: break;
    case OP_BEAT: done_beat(b, r); break;
    case OP_PUBLISH: done_publish(b, op, r); break;
    case OP_SUBSCRIBE:
    case OP_CATCHUP: done_subscribe(b, op, r); break;
    case OP_UNSUBSCRIBE: answer_unavailable(b, op, nullptr); break; // PING answered: now
    case OP_MEMBERS: done_members(b, op, r); break;
    case OP_ROUTE:
    case OP_DISCONNECT: done_route(b, op, r); break;
    case OP_HISTORY: done_history(b, op, r); break;
    }
    free(op);
}

// A command whose answer nobody waits for; errors are counted and logged.
static void send_plain(msg_broker *b, args *a) {
    broker_op *op = op_new(b, OP_PLAIN, nullptr, nullptr, 0);
    if (!op || !send_args(b, a, op)) {
        free(op);
        b->errors++;
    }
}

// --- the bus ------------------------------------------------------------------------------------

// A message of the bus or of this node's channel (bus_parse). Anything malformed (another
// program on the same channel, a node of another version) is logged, rate-limited, and
// dropped.
static void on_bus(msg_broker *b, const char *m, size_t len) {
    wsr_messaging *ms = b->ms;
    bus_msg bm;
    if (!bus_parse(m, len, &bm)) {
        wsr_log(WSR_LOG_WARN, "broker: a bus message that is not ours was dropped (%zu bytes)", len);
        return;
    }
    char cid[CLIENT_ID_LEN + 1] = "", text[124] = "";
    if (bm.client_id) memcpy(cid, bm.client_id, CLIENT_ID_LEN);
    if (bm.kind == BUS_DISCONNECT || bm.kind == BUS_DISCONNECT_USER) memcpy(text, bm.data, bm.data_len);
    switch (bm.kind) {
    case BUS_HEARTBEAT: return; // heard_ms is all it is for
    case BUS_PUBLICATION: {
        if (bm.data_len > ms->opts.max_message) {
            wsr_log(WSR_LOG_WARN, "broker: a publication on the bus is larger than max-message here; dropped");
            return;
        }
        char ep[17];
        memcpy(ep, bm.epoch, 16);
        ep[16] = '\0';
        return msg_bus_publication(ms, bm.channel, bm.channel_len, ep, bm.offset, bm.data, bm.data_len);
    }
    case BUS_JOIN:
    case BUS_LEAVE:
        return msg_bus_presence(ms, bm.channel, bm.channel_len, cid, bm.data, bm.data_len, bm.kind == BUS_JOIN);
    case BUS_DIRECT: return msg_bus_direct(ms, cid, bm.data, bm.data_len);
    case BUS_DISCONNECT: return msg_bus_disconnect(ms, cid, bm.code, text);
    case BUS_DISCONNECT_USER:
        if (memcmp(bm.node, b->node, 16) == 0) return; // its node closed them already
        msg_disconnect_user(ms, bm.user, bm.user_len, bm.code, text);
        return;
    }
}

static void on_sub(redisAsyncContext *ac, void *reply, void *) {
    msg_broker *b = (msg_broker *)ac->data;
    const redisReply *r = (const redisReply *)reply;
    if (!r || b->closing || ac != b->sub.ac) return;
    b->sub.heard_ms = now_ms();
    if (r->type == REDIS_REPLY_ERROR) {
        b->sub.failed_setup = true;
        wsr_log(WSR_LOG_WARN, "broker: SUBSCRIBE refused: %.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_str(r->element[0])) return;
    const redisReply *kind = r->element[0];
    if (kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) {
        // Both channels confirmed: the node hears the bus from now on.
        if (r->element[2]->type == REDIS_REPLY_INTEGER && r->element[2]->integer == 2) {
            b->sub.ready = true;
            check_up(b);
        }
        return;
    }
    if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && is_str(r->element[2]))
        on_bus(b, r->element[2]->str, r->element[2]->len);
}

// --- connections ----------------------------------------------------------------------------------

static void log_url(const msg_broker *b, char *out, size_t cap) {
    if (b->url.unix_socket)
        snprintf(out, cap, "unix://%s", b->url.path);
    else
        snprintf(out, cap, "%s:%u", b->url.host, b->url.port);
}

static void schedule_retry(msg_broker *b) {
    if (b->closing) return;
    uint64_t now = now_ms();
    if (b->retry_ms > now) return; // already waiting
    // Doubling from 100 ms to 5 s with a random part, so that nodes that lost Redis
    // together do not come back in lockstep.
    uint32_t r = 0;
    if (!crypto_random(&r, sizeof r)) r = (uint32_t)uv_hrtime();
    b->retry_ms = now + b->backoff_ms / 2 + r % (b->backoff_ms / 2 + 1);
    b->backoff_ms = b->backoff_ms * 2 > (uint32_t)BACKOFF_MAX_MS ? (uint32_t)BACKOFF_MAX_MS : b->backoff_ms * 2;
    // The tick fires then (and every TICK_MS after): a short backoff is not rounded up to
    // the tick, which would leave the node away from the bus longer than it needs.
    uv_timer_start(&b->tick, tick, b->retry_ms - now, TICK_MS);
}

static void went_down(msg_broker *b, const char *why) {
    if (b->up) {
        char where[BROKER_HOST_MAX + BROKER_PATH_MAX + 16];
        log_url(b, where, sizeof where);
        wsr_log(WSR_LOG_WARN, "broker: Redis at %s is down (%s): publications answer unavailable until it is back",
                where, why);
    }
    b->up = false;
}

static void on_connect(const redisAsyncContext *ac, int status) {
    msg_broker *b = (msg_broker *)ac->data;
    if (status == REDIS_OK) return;
    // hiredis frees the context after this callback.
    redis_link *l = link_of(b, ac);
    if (l) *l = redis_link{};
    if (b->closing) return;
    b->errors++;
    b->attempts++;
    wsr_log(WSR_LOG_WARN, "broker: cannot connect to Redis: %s", ac->errstr);
    went_down(b, "connect failed");
    schedule_retry(b);
}

static void finish_close(msg_broker *b);

static void on_disconnect(const redisAsyncContext *ac, int status) {
    msg_broker *b = (msg_broker *)ac->data;
    redis_link *l = link_of(b, ac);
    bool was_cmd = l == &b->cmd;
    if (l) *l = redis_link{};
    if (b->closing) {
        if (was_cmd) finish_close(b); // the goodbye went out (broker_close)
        return;
    }
    went_down(b, status == REDIS_OK ? "closed" : ac->errstr);
    schedule_retry(b);
}

// Drops a link now (a timeout, a failed set-up): its commands are answered unavailable
// from hiredis's free, here in a timer callback, never inside a caller's call.
static void link_drop(msg_broker *b, redis_link *l, const char *why) {
    redisAsyncContext *ac = l->ac;
    if (!ac) return;
    b->errors++;
    char where[BROKER_HOST_MAX + BROKER_PATH_MAX + 16];
    log_url(b, where, sizeof where);
    wsr_log(WSR_LOG_WARN, "broker: dropping the connection to Redis at %s: %s", where, why);
    went_down(b, why);
    redisAsyncFree(ac); // calls on_disconnect when it was connected
    *l = redis_link{};
    schedule_retry(b);
}

// AUTH, as the URL says (a user: Redis 6 ACL; a password alone: requirepass). Returns
// the commands queued.
static uint32_t send_auth(msg_broker *b, redisAsyncContext *ac) {
    if (!b->url.pass[0]) return 0;
    const char *v[3] = {"AUTH", b->url.user, b->url.pass};
    size_t len[3] = {4, strlen(b->url.user), strlen(b->url.pass)};
    if (!b->url.user[0]) { // AUTH password
        v[1] = v[2];
        len[1] = len[2];
    }
    redisAsyncCommandArgv(ac, on_reply, op_new(b, OP_SETUP, nullptr, nullptr, 0), b->url.user[0] ? 3 : 2, v, len);
    return 1;
}

static bool link_open(msg_broker *b, redis_link *l, bool subscriber) {
    redisAsyncContext *ac =
        b->url.unix_socket ? redisAsyncConnectUnix(b->url.path) : redisAsyncConnect(b->addr, b->url.port);
    if (!ac) return false;
    if (ac->err) {
        wsr_log(WSR_LOG_WARN, "broker: cannot connect to Redis: %s", ac->errstr);
        redisAsyncFree(ac);
        return false;
    }
    ac->data = b;
    if (redisLibuvAttach(ac, b->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return false;
    }
    // The daemon's loop ends when the server is done; Redis must not keep it running.
    uv_unref((uv_handle_t *)&((redisLibuvEvents *)ac->ev.data)->handle);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    *l = redis_link{};
    l->ac = ac;
    l->started_ms = l->heard_ms = now_ms();
    // Looked at soon (connect_error), then every TICK_MS.
    uv_timer_start(&b->tick, tick, CONNECT_CHECK_MS, TICK_MS);
    // Set-up commands are queued now and go out once connected, before anything else.
    l->waiting = send_auth(b, ac);
    // Named, so that an operator sees in CLIENT LIST which node and link is which.
    char name[48];
    snprintf(name, sizeof name, "wsr:%s:%s", b->node, subscriber ? "sub" : "cmd");
    const char *nv[3] = {"CLIENT", "SETNAME", name};
    size_t nl[3] = {6, 7, strlen(name)};
    redisAsyncCommandArgv(ac, on_reply, op_new(b, OP_SETUP, nullptr, nullptr, 0), 3, nv, nl);
    l->waiting++;
    if (subscriber) {
        const char *v[3] = {"SUBSCRIBE", b->bus, b->mine};
        size_t len[3] = {9, strlen(b->bus), strlen(b->mine)};
        redisAsyncCommandArgv(ac, on_sub, nullptr, 3, v, len);
        return true;
    }
    char db[16];
    snprintf(db, sizeof db, "%u", b->url.db);
    const char *sv[2] = {"SELECT", db};
    size_t sl[2] = {6, strlen(db)};
    redisAsyncCommandArgv(ac, on_reply, op_new(b, OP_SETUP, nullptr, nullptr, 0), 2, sv, sl);
    for (int i = 0; i < NSCRIPTS; i++) {
        const char *v[3] = {"SCRIPT", "LOAD", SCRIPTS[i]};
        size_t len[3] = {6, 4, strlen(SCRIPTS[i])};
        broker_op *op = op_new(b, OP_SETUP, nullptr, nullptr, 0);
        if (op) op->n = i == NSCRIPTS - 1; // the last one makes the link ready
        redisAsyncCommandArgv(ac, on_reply, op, 3, v, len);
    }
    l->waiting += 1 + NSCRIPTS;
    return true;
}

static void connect_links(msg_broker *b) {
    bool ok = true;
    if (!b->cmd.ac) ok = link_open(b, &b->cmd, false);
    if (ok && !b->sub.ac) ok = link_open(b, &b->sub, true);
    if (!ok) {
        b->errors++;
        b->attempts++;
        schedule_retry(b);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    broker_resolve *r = (broker_resolve *)req->data;
    msg_broker *b = r->b;
    if (b) b->resolving = nullptr;
    if (b && status == 0 && res) {
        // A name with several addresses (localhost: ::1 and 127.0.0.1) where Redis listens
        // on one of them: after a failed connect the next one is tried, so a refused one
        // is not the only one ever tried.
        uint32_t n = 0;
        for (addrinfo *i = res; i; i = i->ai_next) n++;
        addrinfo *pick = res;
        for (uint32_t k = b->attempts % n; k; k--) pick = pick->ai_next;
        void *a = pick->ai_family == AF_INET6 ? (void *)&((sockaddr_in6 *)pick->ai_addr)->sin6_addr
                                              : (void *)&((sockaddr_in *)pick->ai_addr)->sin_addr;
        inet_ntop(pick->ai_family, a, b->addr, sizeof b->addr);
        connect_links(b);
    } else if (b) {
        b->errors++;
        wsr_log(WSR_LOG_WARN, "broker: cannot resolve %s: %s", b->url.host, uv_strerror(status));
        schedule_retry(b);
    }
    uv_freeaddrinfo(res);
    free(r);
}

// Connects the links that are missing. A host name is resolved off the loop first
// (hiredis would resolve it with a blocking getaddrinfo).
static void start_connect(msg_broker *b) {
    if (b->resolving || b->closing) return;
    b->retry_ms = 0;
    unsigned char probe[16];
    if (b->url.unix_socket || inet_pton(AF_INET, b->url.host, probe) == 1 || inet_pton(AF_INET6, b->url.host, probe) == 1) {
        if (!b->url.unix_socket) snprintf(b->addr, sizeof b->addr, "%s", b->url.host);
        return connect_links(b);
    }
    broker_resolve *r = (broker_resolve *)calloc(1, sizeof *r);
    if (!r) return schedule_retry(b);
    r->b = b;
    r->req.data = r;
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    if (uv_getaddrinfo(b->loop, &r->req, on_resolved, b->url.host, nullptr, &hints) != 0) {
        free(r);
        return schedule_retry(b);
    }
    b->resolving = r;
}

// --- presence and the registry, written again after a connection was lost ----------------------

static void client_json(msg_broker *b, uint32_t client) {
    wsr_messaging *ms = b->ms;
    env_out saved = ms->out; // msg_client_object writes into ms->out
    ms->out = b->scratch;
    env_out_reset(&ms->out);
    msg_client_object(ms, client);
    b->scratch = ms->out;
    ms->out = saved;
}

static void presence_send(msg_broker *b, uint32_t client, const char *name, uint32_t len, bool joined, bool announce) {
    client_json(b, client);
    if (b->scratch.failed) return (void)b->errors++;
    const msg_client *c = &b->ms->clients[client];
    args a = {};
    evalsha(&a, b, SC_PRESENCE, 2);
    arg_key(&a, name, len, "}:p");
    arg_cat(&a, "wsr:node:", 9, b->node, 16, ":ch", 3);
    arg_str(&a, b->bus);
    arg_str(&a, joined ? "1" : "0");
    arg(&a, b->node, 16);
    arg(&a, c->id, CLIENT_ID_LEN);
    arg(&a, b->scratch.buf, b->scratch.len);
    arg(&a, name, len);
    arg_str(&a, announce ? "1" : "0");
    send_plain(b, &a);
    args_free(&a);
}

static void registry_send(msg_broker *b, const char *id, bool open) {
    args a = {};
    arg_str(&a, open ? "SET" : "DEL");
    arg_cat(&a, "wsr:client:", 11, id, CLIENT_ID_LEN, nullptr, 0);
    if (open) arg(&a, b->node, 16);
    send_plain(b, &a);
    args_free(&a);
    args s = {};
    arg_str(&s, open ? "SADD" : "SREM");
    arg_cat(&s, "wsr:node:", 9, b->node, 16, ":cl", 3);
    arg(&s, id, CLIENT_ID_LEN);
    send_plain(b, &s);
    args_free(&s);
}

// S_NODE; checked: the answer goes to done_beat (the periodic beat: a resync's own beat
// finds the heartbeat gone whenever Redis lost it, and rewrites everything already).
static void send_node(msg_broker *b, const char *op, bool checked) {
    args a = {};
    evalsha(&a, b, SC_NODE, 0);
    arg_str(&a, op);
    arg(&a, b->node, 16);
    arg_str(&a, b->mine);
    arg_u64(&a, NODE_TTL_MS);
    arg_str(&a, b->bus);
    if (checked) {
        broker_op *o = op_new(b, OP_BEAT, nullptr, nullptr, 0);
        if (!o || !send_args(b, &a, o)) {
            free(o);
            b->errors++;
        }
    } else {
        send_plain(b, &a);
    }
    args_free(&a);
}

// Redis may have lost everything (a restart without persistence) or kept entries of
// clients that left meanwhile: this node's entries are dropped and written again from
// what it has now. Pipelined: one round trip's worth of commands per client and
// subscription, sent at once.
// announce: the members elsewhere hear a join (they heard a leave when this node was
// swept).
static void resync(msg_broker *b, bool announce) {
    wsr_messaging *ms = b->ms;
    send_node(b, "forget", false);
    send_node(b, "beat", false);
    b->beat_ms = now_ms();
    for (uint32_t i = 0; i < ms->nclients; i++) {
        const msg_client *c = &ms->clients[i];
        if (!c->id[0]) continue;
        registry_send(b, c->id, true);
        if (i >= ms->chans.clients_cap) continue;
        const chan_client *cl = &ms->chans.clients[i];
        for (uint32_t k = 0; k < cl->n; k++) {
            const channel *ch = channels_at(&ms->chans, cl->chans[k].channel);
            presence_send(b, i, ch->name, ch->name_len, true, announce);
        }
    }
}

static void check_up(msg_broker *b) {
    if (b->up || !b->cmd.ready || !b->sub.ready) return;
    b->up = true;
    b->backoff_ms = BACKOFF_MIN_MS;
    char where[BROKER_HOST_MAX + BROKER_PATH_MAX + 16];
    log_url(b, where, sizeof where);
    bool again = b->ever_up;
    if (again) b->reconnects++;
    wsr_log(WSR_LOG_INFO, "broker: %s Redis at %s as node %s", again ? "reconnected to" : "connected to", where,
            b->node);
    b->ever_up = true;
    resync(b, false);
    // What the bus carried while this node did not hear it is in the streams.
    if (again) msg_catch_up(b->ms);
}

// The error of a connect still in progress (0: none yet). hiredis's libuv adapter drops
// poll errors, so a refused connect would otherwise wait out CONNECT_TIMEOUT_MS; the
// socket is asked directly (a pending error is only read here when the link is then
// dropped).
static int connect_error(const redis_link *l) {
    if (!l->ac || (l->ac->c.flags & REDIS_CONNECTED)) return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(l->ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

static void tick(uv_timer_t *t) {
    msg_broker *b = (msg_broker *)t->data;
    if (b->closing) return;
    uint64_t now = now_ms();
    redis_link *links[2] = {&b->cmd, &b->sub};
    for (redis_link *l : links) {
        if (!l->ac) continue;
        if (l->failed_setup) {
            link_drop(b, l, "a set-up command failed, or Redis cannot serve (READONLY, LOADING, NOSCRIPT)");
        } else if (int err = l->ready ? 0 : connect_error(l)) { // read once: reading clears it
            b->attempts++;
            char why[96];
            snprintf(why, sizeof why, "cannot connect: %s", strerror(err));
            link_drop(b, l, why);
        } else if (!l->ready && now - l->started_ms > CONNECT_TIMEOUT_MS) {
            b->attempts++;
            link_drop(b, l, "connect timed out");
        } else if (l == &b->cmd && l->waiting && now - l->heard_ms > REPLY_TIMEOUT_MS) link_drop(b, l, "no answer in time");
        else if (l == &b->sub && l->ready && now - l->heard_ms > SILENCE_MS) link_drop(b, l, "the subscriber heard nothing");
    }
    if ((!b->cmd.ac || !b->sub.ac) && b->retry_ms && now >= b->retry_ms) start_connect(b);
    if (b->up && now - b->beat_ms >= BEAT_MS) {
        b->beat_ms = now;
        send_node(b, "beat", true);
    }
}

// --- life -------------------------------------------------------------------------------------------

// The SHA-1 of each script, for EVALSHA (the scripts are loaded on every connection
// before anything uses them).
static void script_shas(msg_broker *b) {
    for (int i = 0; i < NSCRIPTS; i++) {
        uint8_t md[CRYPTO_SHA1_LEN];
        crypto_sha1(SCRIPTS[i], strlen(SCRIPTS[i]), md);
        hex(md, sizeof md, b->sha[i]);
    }
}

msg_broker *broker_new(wsr_messaging *ms, uv_loop_t *loop, const broker_url *u) {
    msg_broker *b = (msg_broker *)calloc(1, sizeof *b);
    if (!b) return nullptr;
    b->ms = ms;
    b->loop = loop;
    b->url = *u;
    new_epoch(b->node); // 64 random bits name the node
    snprintf(b->bus, sizeof b->bus, "wsr:bus:%u", u->db);
    snprintf(b->node_prefix, sizeof b->node_prefix, "wsr:node:%u:", u->db);
    snprintf(b->mine, sizeof b->mine, "%s%s", b->node_prefix, b->node);
    b->backoff_ms = BACKOFF_MIN_MS;
    script_shas(b);
    uv_timer_init(loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&b->tick);
    start_connect(b);
    return b;
}

static void on_tick_closed(uv_handle_t *h) {
    msg_broker *b = (msg_broker *)h->data;
    wsr_messaging *ms = b->ms;
    env_out_free(&b->scratch);
    free(b);
    if (--ms->timers_open == 0 && !ms->jobs) msg_release(ms);
}

// The end: the command connection goes (now, or once its goodbye was answered), then the
// timer, whose close callback frees the broker. Once.
static void finish_close(msg_broker *b) {
    if (b->closed) return;
    b->closed = true;
    redisAsyncContext *ac = b->cmd.ac;
    b->cmd = redis_link{};
    if (ac) redisAsyncFree(ac); // commands still waiting: their callbacks only free them
    uv_close((uv_handle_t *)&b->tick, on_tick_closed);
}

// The goodbye took too long: Redis is gone or stuck; the process does not wait for it.
static void on_goodbye_late(uv_timer_t *t) { finish_close((msg_broker *)t->data); }

void broker_close(msg_broker *b) {
    b->closing = true;
    b->ms->timers_open++;
    if (b->resolving) {
        b->resolving->b = nullptr; // its callback frees it
        uv_cancel((uv_req_t *)&b->resolving->req);
    }
    // Waiting commands' callbacks run here with no reply and free their contexts.
    if (b->sub.ac) redisAsyncFree(b->sub.ac);
    b->sub = redis_link{};
    if (!b->cmd.ac || !b->cmd.ready) return finish_close(b);
    // A node that stops says so: its clients' presence entries go at once (a leave to
    // every other node) instead of when its heartbeat expires, and with them what is
    // still queued (the leaves of its last clients). hiredis sends what is queued and
    // closes once every answer is in; the loop is kept running for it (its handles are
    // referenced again), a second at most.
    send_node(b, "bye", false);
    uv_ref((uv_handle_t *)&((redisLibuvEvents *)b->cmd.ac->ev.data)->handle);
    uv_ref((uv_handle_t *)&b->tick);
    uv_timer_start(&b->tick, on_goodbye_late, 1000, 0);
    redisAsyncDisconnect(b->cmd.ac); // may finish at once (nothing queued): on_disconnect
}

// --- operations ---------------------------------------------------------------------------------

bool broker_publish(msg_broker *b, const broker_waiter *w, const envelope *e, const char *from, const env_str *channels,
                    uint32_t n, bool broadcast_answer, const char **why) {
    wsr_messaging *ms = b->ms;
    if (!broker_up(b)) {
        b->errors++;
        *why = "the message bus (Redis) is down";
        return false;
    }
    // The tail is shared by every channel: payload, from, timestamp.
    env_out *o = &b->scratch;
    env_out_reset(o);
    env_key(o, "payload", false);
    if (e->payload.ptr)
        env_raw(o, e->payload.ptr, e->payload.len);
    else
        env_lit(o, "null");
    if (from) {
        env_key(o, "from", false);
        env_string(o, from, CLIENT_ID_LEN);
    }
    msg_finish(o);
    size_t tail_len = o->len;
    // Then each channel's head, after it in the same buffer: {"type":…,"channel":…,"offset":
    enum { MAX_PUBLISH = 256 };
    size_t head_at[MAX_PUBLISH], head_len[MAX_PUBLISH];
    if (n > MAX_PUBLISH) { // never cut short: an answer for fewer channels would be a false success
        *why = "more than 256 channels in one publication";
        return false;
    }
    size_t names = 0;
    for (uint32_t i = 0; i < n; i++) {
        head_at[i] = o->len;
        env_key(o, "type", true);
        if (e->event.ptr && e->event.len)
            env_string(o, e->event.ptr, e->event.len);
        else
            env_lit(o, "\"message\"");
        env_key(o, "channel", false);
        env_string(o, channels[i].ptr, channels[i].len);
        env_key(o, "offset", false);
        head_len[i] = o->len - head_at[i];
        names += channels[i].len + 1;
        // What a client may not send, it is not sent either: the largest offset has 20
        // digits, the epoch part 27 bytes.
        if (head_len[i] + 20 + 27 + tail_len > ms->opts.max_message) {
            *why = MSG_TOO_LARGE;
            return false;
        }
    }
    if (o->failed) {
        *why = "out of memory";
        return false;
    }
    broker_op *op = op_new(b, OP_PUBLISH, w, w ? &w->correlation : nullptr, broadcast_answer ? names : 0);
    if (!op) {
        *why = "out of memory";
        return false;
    }
    op->n = n;
    op->broadcast = broadcast_answer;
    char *nm = op_names(op);
    args a = {};
    evalsha(&a, b, SC_PUBLISH, (int)(2 * n));
    for (uint32_t i = 0; i < n; i++) {
        arg_key(&a, channels[i].ptr, channels[i].len, "}:m");
        arg_key(&a, channels[i].ptr, channels[i].len, "}:s");
        if (broadcast_answer) {
            memcpy(nm, channels[i].ptr, channels[i].len);
            nm += channels[i].len + 1;
        }
    }
    char epoch[17];
    new_epoch(epoch);
    arg_str(&a, b->bus);
    arg(&a, epoch, 16);
    arg(&a, o->buf, tail_len);
    arg_u64(&a, KEEP_MS);
    for (uint32_t i = 0; i < n; i++) {
        const wsr_namespace *ns = ns_of(&ms->opts, channels[i].ptr, channels[i].len);
        arg(&a, channels[i].ptr, channels[i].len);
        arg(&a, o->buf + head_at[i], head_len[i]);
        arg_u64(&a, ns->history_size);
        arg_u64(&a, ns->history_ttl_ms);
    }
    if (send_op(b, &a, op)) return true;
    *why = b->full_logged ? "the message bus (Redis) is not keeping up" : "the message bus (Redis) is down";
    return false;
}

// S_RECOVER for op (a subscription or a catch-up).
static bool send_recover(msg_broker *b, broker_op *op, const env_str *channel, bool asked, uint64_t since,
                         const env_str *since_epoch) {
    memcpy(op_names(op), channel->ptr, channel->len);
    const wsr_namespace *ns = ns_of(&b->ms->opts, channel->ptr, channel->len);
    char epoch[17];
    new_epoch(epoch);
    args a = {};
    evalsha(&a, b, SC_RECOVER, 2);
    arg_key(&a, channel->ptr, channel->len, "}:m");
    arg_key(&a, channel->ptr, channel->len, "}:s");
    bool ok_epoch = asked && since_epoch->ptr && since_epoch->len == 16;
    arg_str(&a, ok_epoch ? "1" : "0");
    arg_u64(&a, ok_epoch ? since : 0);
    if (ok_epoch)
        arg(&a, since_epoch->ptr, 16);
    else
        arg_str(&a, "-");
    arg(&a, epoch, 16);
    arg_u64(&a, KEEP_MS);
    arg_u64(&a, ns->history_ttl_ms);
    arg_u64(&a, ns->history_size);
    arg_u64(&a, reply_cap(b));
    return send_op(b, &a, op);
}

bool broker_subscribe(msg_broker *b, uint32_t client, const env_str *correlation, const env_str *channel, bool asked,
                      uint64_t since, const env_str *since_epoch) {
    if (!broker_up(b)) return b->errors++, false;
    broker_op *op = op_new(b, OP_SUBSCRIBE, nullptr, correlation, channel->len);
    if (!op) return false;
    op->wk = BW_WS;
    op->client = client;
    op->conn = b->ms->clients[client].conn;
    return send_recover(b, op, channel, asked, since, since_epoch);
}

bool broker_catch_up(msg_broker *b, const env_str *channel, uint64_t since, const env_str *epoch) {
    if (!broker_up(b)) return false;
    broker_op *op = op_new(b, OP_CATCHUP, nullptr, nullptr, channel->len);
    return op && send_recover(b, op, channel, true, since, epoch);
}

bool broker_after(msg_broker *b, uint32_t client, const env_str *correlation, const env_str *channel) {
    // The command link alone matters: a subscribe may wait on it while the subscriber
    // link is down.
    if (!b || b->closing || !b->cmd.ac || !b->cmd.ready) return false;
    broker_op *op = op_new(b, OP_UNSUBSCRIBE, nullptr, correlation, channel->len);
    if (!op) return false;
    op->wk = BW_WS;
    op->client = client;
    op->conn = b->ms->clients[client].conn;
    memcpy(op_names(op), channel->ptr, channel->len);
    // Commands are answered in order on the one connection: when PING's answer comes,
    // the client's earlier subscribe has been answered and handled.
    args a = {};
    arg_str(&a, "PING");
    return send_op(b, &a, op);
}

void broker_presence_change(msg_broker *b, uint32_t client, const char *channel, uint32_t len, bool joined, bool announce) {
    if (broker_up(b)) presence_send(b, client, channel, len, joined, announce);
}

bool broker_presence_query(msg_broker *b, const broker_waiter *w, const env_str *channel) {
    if (!broker_up(b)) return b->errors++, false;
    broker_op *op = op_new(b, OP_MEMBERS, w, &w->correlation, channel->len);
    if (!op) return false;
    memcpy(op_names(op), channel->ptr, channel->len);
    args a = {};
    evalsha(&a, b, SC_MEMBERS, 1);
    arg_key(&a, channel->ptr, channel->len, "}:p");
    arg_u64(&a, reply_cap(b));
    return send_op(b, &a, op);
}

// A message for the node that has client_id (S_ROUTE).
static bool route(msg_broker *b, broker_op *op, const char *client_id, const char *msg, size_t mlen, const char *m2,
                  size_t l2) {
    args a = {};
    evalsha(&a, b, SC_ROUTE, 1);
    arg_cat(&a, "wsr:client:", 11, client_id, CLIENT_ID_LEN, nullptr, 0);
    arg_str(&a, b->node_prefix);
    arg_cat(&a, msg, mlen, m2, l2, nullptr, 0);
    return send_op(b, &a, op);
}

bool broker_direct(msg_broker *b, const broker_waiter *w, const char *client_id, uint32_t id_len, const char *data,
                   size_t len) {
    if (!broker_up(b) || id_len != CLIENT_ID_LEN) return b->errors++, false;
    broker_op *op = op_new(b, OP_ROUTE, w, w ? &w->correlation : nullptr, 0);
    if (!op) return false;
    char head[2 + CLIENT_ID_LEN + 2];
    snprintf(head, sizeof head, "d %.*s ", CLIENT_ID_LEN, client_id);
    return route(b, op, client_id, head, sizeof head - 1, data, len);
}

bool broker_disconnect_client(msg_broker *b, const broker_waiter *w, const char *client_id, uint32_t id_len,
                              uint16_t code, const char *reason) {
    if (!broker_up(b) || id_len != CLIENT_ID_LEN) return b->errors++, false;
    broker_op *op = op_new(b, OP_DISCONNECT, w, nullptr, 0);
    if (!op) return false;
    char head[2 + CLIENT_ID_LEN + 8];
    int hl = snprintf(head, sizeof head, "x %.*s %u ", CLIENT_ID_LEN, client_id, code);
    return route(b, op, client_id, head, (size_t)hl, reason, strlen(reason));
}

bool broker_disconnect_user(msg_broker *b, const char *user, uint32_t user_len, uint16_t code, const char *reason) {
    if (!broker_up(b)) return b->errors++, false;
    if (!user_len) return true; // nobody has the empty name
    char head[64];
    int hl = snprintf(head, sizeof head, "u %s %u %u ", b->node, code, user_len);
    args a = {};
    arg_str(&a, "PUBLISH");
    arg_str(&a, b->bus);
    arg_cat(&a, head, (size_t)hl, user, user_len, reason, strlen(reason));
    send_plain(b, &a);
    args_free(&a);
    return true;
}

bool broker_history(msg_broker *b, const broker_waiter *w, const env_str *channel, uint64_t limit) {
    if (!broker_up(b)) return b->errors++, false;
    broker_op *op = op_new(b, OP_HISTORY, w, nullptr, channel->len);
    if (!op) return false;
    memcpy(op_names(op), channel->ptr, channel->len);
    const wsr_namespace *ns = ns_of(&b->ms->opts, channel->ptr, channel->len);
    args a = {};
    evalsha(&a, b, SC_HISTORY, 2);
    arg_key(&a, channel->ptr, channel->len, "}:m");
    arg_key(&a, channel->ptr, channel->len, "}:s");
    arg_u64(&a, limit < ns->history_size ? limit : ns->history_size);
    arg_u64(&a, reply_cap(b));
    arg_u64(&a, ns->history_ttl_ms);
    return send_op(b, &a, op);
}

void broker_client_open(msg_broker *b, uint32_t client) {
    if (broker_up(b)) registry_send(b, b->ms->clients[client].id, true);
}

void broker_client_close(msg_broker *b, const char *client_id) {
    if (broker_up(b)) registry_send(b, client_id, false);
}
