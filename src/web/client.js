// wsreactor browser client: the /ws messaging protocol (docs/messaging.md) with
// reconnection, recovery of missed publications, a send queue, heartbeats and token
// refresh. An ES module with no dependencies: import { connect } from "/client.js".
// The API is described in docs/client.md and typed in /client.d.ts.

/** An error from the server (its `code`), or "timeout", "closed", "dropped". */
export class WsrError extends Error {
  constructor(code, message, envelope) {
    super(message || code);
    this.name = "WsrError";
    this.code = code;
    this.envelope = envelope;
  }
}

const DEFAULTS = {
  token: null, getToken: null, tokenTransport: "query",
  minDelay: 500, maxDelay: 30000,
  queueSize: 1000, requestTimeout: 10000, connectTimeout: 10000,
  pingInterval: 25000, pingTimeout: 10000,
  refreshMargin: 30000,
  WebSocket: null,
};

// The close codes of the protocol that are about credentials: retrying with the same
// token can only fail the same way, so reconnection waits for a different token.
const AUTH_FAILED = new Set([4001, 4003]);
const TOKEN_EXPIRED = 4002;

// The `exp` claim of a JWT in ms, or null. Not verified: it only says when to refresh.
function jwtExpiry(token) {
  try {
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch (_) {
    return null;
  }
}

// A throwing handler must not break the client's state machine; rethrowing later
// still shows it in the console.
function safeCall(fn, ...args) {
  try { fn(...args); } catch (e) { setTimeout(() => { throw e; }); }
}

export class Client {
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.state = "idle";           // idle, connecting, open, reconnecting, closed
    this.clientId = null;
    this.user = null;
    this._token = this.options.token;
    this._ws = null;
    this._established = false;     // connection:established seen on the current socket
    this._attempt = 0;
    this._stopped = false;
    this._seq = 0;
    this._prefix = Math.random().toString(36).slice(2, 8) + "-";
    this._pending = new Map();     // our id -> {resolve, reject, timer, sent, map}
    this._calls = new Map();       // correlationId of call() -> pending entry
    this._queue = [];              // {env, id} made while not open
    this._channels = new Map();    // name -> {handlers, since, waiters}
    this._handlers = new Map();    // envelope type -> Set of handlers
    this._events = { state: new Set(), reset: new Set(), dropped: new Set(), error: new Set() };
    this._timers = { reconnect: 0, ping: 0, refresh: 0, connect: 0 };
    for (const [ev, opt] of [["state", "onState"], ["reset", "onReset"], ["dropped", "onDropped"],
                             ["error", "onError"]]) {
      if (typeof options[opt] === "function") this._events[ev].add(options[opt]);
    }
  }

  // --- events ------------------------------------------------------------------------
  /** Handler for every incoming envelope of `type` ("*": all). Returns an unsubscriber. */
  on(type, handler) { return this._add(this._handlers, type, handler); }
  onState(handler) { return this._addEvent("state", handler); }
  onReset(handler) { return this._addEvent("reset", handler); }
  onDropped(handler) { return this._addEvent("dropped", handler); }
  onError(handler) { return this._addEvent("error", handler); }

  _add(map, key, handler) {
    if (!map.has(key)) map.set(key, new Set());
    map.get(key).add(handler);
    return () => map.get(key)?.delete(handler);
  }
  _addEvent(name, handler) {
    this._events[name].add(handler);
    return () => this._events[name].delete(handler);
  }
  _emit(name, ...args) { for (const h of [...this._events[name]]) safeCall(h, ...args); }
  _setState(state, detail = {}) {
    this.state = state;
    this._emit("state", { state, ...detail });
  }

  // --- connection --------------------------------------------------------------------
  /** Starts connecting (connect() calls it). */
  open() {
    if (this._ws || this._stopped) return this;
    this._connect();
    return this;
  }

  /** Closes for good: no reconnection; queued and unanswered requests reject. */
  close(code = 1000, reason = "") {
    this._stopped = true;
    this._clearTimers();
    const ws = this._detach();
    if (ws) try { ws.close(code, reason); } catch (_) { /* already closing */ }
    this._failPending(() => true, "closed", "the client was closed");
    for (const q of this._queue) this._settleQueued(q, "closed", "the client was closed");
    this._queue = [];
    this._setState("closed", { code, reason, final: true });
  }

  async _connect() {
    this._setState("connecting", { attempt: this._attempt });
    if (this.options.getToken && !this._freshToken) {
      try {
        const t = await this.options.getToken();
        if (t) this._token = t;
      } catch (e) {
        this._emit("error", e);
      }
      if (this._stopped) return;
    }
    this._freshToken = false;
    let url = this.url;
    if (this._token && this.options.tokenTransport === "query") {
      url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(this._token);
    }
    const WS = this.options.WebSocket || globalThis.WebSocket;
    let ws;
    try {
      ws = new WS(url);
    } catch (e) {
      this._emit("error", e);
      this._scheduleReconnect(1006, String(e));
      return;
    }
    this._ws = ws;
    this._established = false;
    this._tokenUsed = this._token;
    // A socket that neither opens nor fails (a black-holed network) is given up on.
    this._timers.connect = setTimeout(() => this._dead("connect timeout"), this.options.connectTimeout);
    ws.onmessage = (e) => this._onMessage(e.data);
    ws.onclose = (e) => { if (this._ws === ws) this._onClose(e.code, e.reason); };
    ws.onerror = () => {};  // always followed by close, which carries what is known
  }

  // Stops listening to the socket, so a dead one that takes long to close cannot race
  // with its successor.
  _detach() {
    const ws = this._ws;
    if (ws) ws.onmessage = ws.onclose = ws.onerror = null;
    this._ws = null;
    this._established = false;
    return ws;
  }

  _dead(reason) {
    const ws = this._detach();
    if (ws) try { ws.close(4000, reason); } catch (_) { /* ignore */ }
    this._onClose(4000, reason);
  }

  _clearTimers() {
    for (const k of Object.keys(this._timers)) { clearTimeout(this._timers[k]); this._timers[k] = 0; }
  }

  async _onClose(code, reason) {
    this._detach();
    this._clearTimers();
    // Only what went out on this socket is lost with it; queued sends wait for the next.
    this._failPending((p) => p.sent, "closed", `connection closed (${code})`);
    if (this._stopped) return;
    if (AUTH_FAILED.has(code) || code === TOKEN_EXPIRED) {
      // Hammering with a refused token helps nobody: go on only with a different one.
      const failed = this._tokenUsed;
      let fresh = null;
      if (this.options.getToken) {
        try { fresh = await this.options.getToken(); } catch (e) { this._emit("error", e); }
      }
      if (this._stopped) return;
      if (!fresh || fresh === failed) {
        this._stopped = true;
        this._failQueue("closed", `authentication failed (${code})`);
        this._setState("closed", { code, reason, final: true });
        return;
      }
      this._token = fresh;
      this._freshToken = true;
      if (code === TOKEN_EXPIRED) this._attempt = 0;  // expiry is routine: back at once
    }
    this._scheduleReconnect(code, reason);
  }

  _scheduleReconnect(code, reason) {
    // Full jitter (random in [0, min(max, min * 2^attempt)]) spreads a crowd of clients
    // that lost the server at the same moment, so they do not come back in lockstep.
    const cap = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** this._attempt);
    const delay = Math.floor(Math.random() * cap);
    this._attempt++;
    this._setState("reconnecting", { code, reason, attempt: this._attempt, delay });
    this._timers.reconnect = setTimeout(() => this._connect(), delay);
  }

  // After connection:established: authenticate in-band if asked, resubscribe every
  // channel from where it stopped, then flush the queue, so queued sends come after
  // the state they may depend on.
  async _setup(env) {
    clearTimeout(this._timers.connect);
    this._established = true;
    this.clientId = env.payload.clientId;
    this.user = env.payload.user;
    const ws = this._ws;
    try {
      if (this._token && this.options.tokenTransport === "auth") {
        const ack = await this._request({ type: "auth", payload: { token: this._token } }, true);
        this.user = ack.payload.user;
        this._scheduleRefresh(ack.payload.expiresAt, ack.timestamp);
      } else if (this._token) {
        this._scheduleRefresh(jwtExpiry(this._token), env.timestamp);
      }
      const todo = [...this._channels].filter(([, c]) => !c.inFlight).map(([name]) => name);
      await Promise.all(todo.map((name) => this._subscribeOnce(name)));
    } catch (e) {
      if (this._ws !== ws) return;  // that socket is gone; its close is being handled
      this._emit("error", e);
    }
    if (this._ws !== ws) return;
    this._attempt = 0;
    const queued = this._queue;
    this._queue = [];
    for (const q of queued) {
      if (q.id && !this._pending.has(q.id)) continue;  // timed out while queued
      if (q.id) this._pending.get(q.id).sent = true;
      this._raw(q.env);
    }
    this._setState("open", { clientId: this.clientId, user: this.user });
    this._schedulePing();
  }

  _schedulePing() {
    if (!this.options.pingInterval) return;
    const ws = this._ws;
    this._timers.ping = setTimeout(async () => {
      try {
        await this._request({ type: "ping" }, true, this.options.pingTimeout);
        if (this._ws === ws) this._schedulePing();
      } catch (e) {
        // No pong: the network may hold the socket open for minutes; do not wait.
        if (this._ws === ws && e.code === "timeout") this._dead("no pong");
      }
    }, this.options.pingInterval);
  }

  // Refresh before expiry, measured on the server's clock (its timestamp), so a
  // browser whose clock is off does not refresh too late.
  _scheduleRefresh(expiresAt, serverNow) {
    clearTimeout(this._timers.refresh);
    if (!expiresAt || !this.options.getToken) return;
    const left = expiresAt - (serverNow || Date.now());
    const wait = Math.max(0, left - Math.min(this.options.refreshMargin, left / 4));
    const ws = this._ws;
    this._timers.refresh = setTimeout(() => this.refreshToken().catch((e) => {
      if (this._ws === ws) this._emit("error", e);
    }), wait);
  }

  /** Asks getToken() for a token now and sends it in-band (auth). */
  async refreshToken() {
    const t = this.options.getToken && await this.options.getToken();
    if (!t || !this._established) return;
    this._token = t;
    this._tokenUsed = t;
    const ack = await this._request({ type: "auth", payload: { token: t } }, true);
    this.user = ack.payload.user;
    this._scheduleRefresh(ack.payload.expiresAt, ack.timestamp);
    return ack.payload;
  }

  // --- sending -----------------------------------------------------------------------
  _raw(env) { this._ws.send(JSON.stringify(env)); }

  _failPending(which, code, message) {
    for (const [id, p] of this._pending) {
      if (!which(p)) continue;
      clearTimeout(p.timer);
      this._pending.delete(id);
      p.reject(new WsrError(code, message));
    }
  }
  _failQueue(code, message) {
    for (const q of this._queue) this._settleQueued(q, code, message);
    this._queue = [];
  }
  _settleQueued(q, code, message) {
    const p = q.id && this._pending.get(q.id);
    if (!p) return;
    clearTimeout(p.timer);
    this._pending.delete(q.id);
    p.reject(new WsrError(code, message, q.env));
  }

  // Sends env with a fresh id; the Promise settles with its answer. `direct` bypasses
  // the queue (the client's own setup and heartbeat messages).
  _request(env, direct = false, timeout = this.options.requestTimeout) {
    if (this._stopped) return Promise.reject(new WsrError("closed", "the client was closed"));
    const id = this._prefix + ++this._seq;
    env = { ...env, id };
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, sent: false, timer: 0 };
      if (timeout > 0) {
        p.timer = setTimeout(() => {
          this._pending.delete(id);
          reject(new WsrError("timeout", `no answer to ${env.type} in ${timeout} ms`, env));
        }, timeout);
      }
      this._pending.set(id, p);
      if (direct ? this._established : this.state === "open") {
        p.sent = true;
        this._raw(env);
      } else if (direct) {
        this._pending.delete(id);
        clearTimeout(p.timer);
        reject(new WsrError("closed", "not connected", env));
      } else {
        this._enqueue({ env, id });
      }
    });
  }

  _enqueue(q) {
    this._queue.push(q);
    if (this._queue.length > this.options.queueSize) {
      // The oldest goes: after a long outage the newest state matters most.
      const old = this._queue.shift();
      this._settleQueued(old, "dropped", "the send queue was full");
      this._emit("dropped", old.env);
    }
  }

  /** Any message type; resolves with the answering envelope, rejects on `error`. */
  request(type, payload, opts = {}) {
    const env = { type };
    if (payload !== undefined) env.payload = payload;
    if (opts.channel) env.channel = opts.channel;
    return this._request(env, false, opts.timeout ?? this.options.requestTimeout);
  }

  /** Publishes on a channel; resolves with the publication's offset. */
  async publish(channel, payload, opts = {}) {
    const env = { type: "publish", channel, payload };
    if (opts.event) env.event = opts.event;
    const ack = await this._request(env, false, opts.timeout ?? this.options.requestTimeout);
    return ack.payload.offset;
  }

  /** A direct message to a client id; resolves on the server's ack (not_found rejects). */
  async send(to, event, payload, opts = {}) {
    const env = { type: "send", to, event, payload };
    if (opts.correlationId) env.correlationId = opts.correlationId;
    await this._request(env, false, opts.timeout ?? this.options.requestTimeout);
  }

  /** send() then wait for the peer's reply carrying the same correlationId. */
  call(to, event, payload, opts = {}) {
    const cid = opts.correlationId || this._prefix + "call-" + ++this._seq;
    const timeout = opts.timeout ?? this.options.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._calls.delete(cid);
        reject(new WsrError("timeout", `no reply to ${event} in ${timeout} ms`));
      }, timeout);
      this._calls.set(cid, { resolve, reject, timer, from: to });
      this.send(to, event, payload, { correlationId: cid, timeout }).catch((e) => {
        clearTimeout(timer);
        this._calls.delete(cid);
        reject(e);
      });
    });
  }

  /** Who is subscribed to a channel now: [{clientId, user}]. */
  async presence(channel, opts = {}) {
    const env = await this._request({ type: "presence", channel }, false, opts.timeout ?? this.options.requestTimeout);
    return env.payload.clients;
  }

  // --- channels ----------------------------------------------------------------------
  /** Subscribes (and keeps subscribed across reconnections); resolves with the first
   *  `subscribed` payload. opts.since starts from a known {offset, epoch}. */
  subscribe(channel, handler, opts = {}) {
    let ch = this._channels.get(channel);
    const fresh = !ch;
    if (fresh) {
      ch = { handlers: new Set(), since: opts.since || null, waiters: [], inFlight: false };
      this._channels.set(channel, ch);
    }
    if (handler) ch.handlers.add(handler);
    if (!fresh && ch.last) return Promise.resolve(ch.last);
    const p = new Promise((resolve, reject) => ch.waiters.push({ resolve, reject }));
    if (fresh && this._established && !ch.inFlight) this._subscribeOnce(channel).catch(() => {});
    return p;
  }

  /** Stops a handler, or the whole channel when none is named (or it was the last). */
  unsubscribe(channel, handler) {
    const ch = this._channels.get(channel);
    if (!ch) return;
    if (handler) ch.handlers.delete(handler);
    if (handler && ch.handlers.size) return;
    this._channels.delete(channel);
    for (const w of ch.waiters) w.reject(new WsrError("closed", "unsubscribed"));
    if (this._established) this._request({ type: "unsubscribe", channel }, true).catch(() => {});
  }

  /** The last {offset, epoch} seen on a channel: where a reconnection resumes. */
  position(channel) { return this._channels.get(channel)?.since || null; }

  async _subscribeOnce(channel) {
    const ch = this._channels.get(channel);
    if (!ch) return;
    const env = { type: "subscribe", channel };
    const asked = ch.since;
    if (asked) env.payload = { since: asked };
    ch.inFlight = true;
    let ans;
    try {
      ans = await this._request(env, true);
    } catch (e) {
      ch.inFlight = false;
      if (e.code === "closed" || e.code === "timeout" || this._channels.get(channel) !== ch) throw e;
      // Refused (forbidden, unauthorized...): retrying would be refused the same way.
      this._channels.delete(channel);
      for (const w of ch.waiters.splice(0)) w.reject(e);
      this._emit("error", e);
      return;
    }
    ch.inFlight = false;
    const s = ans.payload;
    // With recovered:true the missed publications follow this answer and move `since`
    // themselves; otherwise the page reloads its state as of the channel's offset now.
    if (!(asked && s.recovered)) ch.since = { offset: s.offset, epoch: s.epoch };
    ch.last = s;
    for (const w of ch.waiters.splice(0)) w.resolve(s);
    if (asked && !s.recovered) this._emit("reset", channel, s);
  }

  // --- receiving ---------------------------------------------------------------------
  _onMessage(data) {
    let env;
    try { env = JSON.parse(data); } catch (_) { return; }
    if (env.type === "connection:established") { this._setup(env); }
    const cid = env.correlationId;
    if (cid !== undefined && this._pending.has(cid)) {
      const p = this._pending.get(cid);
      this._pending.delete(cid);
      clearTimeout(p.timer);
      if (env.type === "error") {
        const { code, message } = env.payload || {};
        p.reject(new WsrError(code || "error", message, env));
      } else {
        p.resolve(env);
      }
    } else if (cid !== undefined && this._calls.has(cid) && env.type !== "error") {
      const c = this._calls.get(cid);
      this._calls.delete(cid);
      clearTimeout(c.timer);
      c.resolve(env);
    }
    if (env.channel && typeof env.offset === "number") {
      const ch = this._channels.get(env.channel);
      if (ch) {
        ch.since = { offset: env.offset, epoch: env.epoch };
        for (const h of [...ch.handlers]) safeCall(h, env.payload, env);
      }
    }
    for (const key of [env.type, "*"]) {
      const hs = this._handlers.get(key);
      if (hs) for (const h of [...hs]) safeCall(h, env);
    }
  }
}

/** Creates a Client and starts connecting. */
export function connect(url, options = {}) {
  return new Client(url, options).open();
}

export default connect;
