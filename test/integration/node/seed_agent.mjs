// The seed scenario's AGENT: a node `ws` client of wsreactor's /ws (docs/messaging.md).
//
// Usage: node seed_agent.mjs ws://HOST:PORT/ws CHANNEL [--reconnect]
// It connects, learns its client id from connection:established and answers every
// `command:request` direct message with a `send` back to the requester (to = the
// request's `from`, event `command:response`, the request's `correlationId`). The command
// {"command":"stream","lines":N,"intervalMs":M} is accepted at once and then streams N
// publications {"command": correlationId, "line": i} (event `output`) on CHANNEL, one
// every M ms; streams run one after the other in the order they were asked for.
// With --reconnect, a closed connection is opened again (every 100 ms, for up to 10 s):
// a new connection is a new client id.
//
// It reports what happens as JSON lines on stdout, for test/integration/test_seed.py:
//   {"event":"ready","clientId","channel"}        each connection:established
//   {"event":"request","from","correlationId","payload"}
//   {"event":"responded","to","correlationId"}    the server acked the response send
//   {"event":"streamed","correlationId","offsets"} every line of a stream acked: their offsets
//   {"event":"closed","code","reason"}            a connection was closed
//   {"event":"error"|"unexpected"|"fatal",...}    anything else: the test fails on it
// It closes with 1000 and exits 0 when stdin ends; exits 1 on a fatal problem or when
// the connection is lost without --reconnect. The run is cut at 90 s.
import WebSocket from 'ws';

const [url, channel] = process.argv.slice(2, 4);
const reconnect = process.argv.includes('--reconnect');
if (!url || !channel) {
    console.error('usage: node seed_agent.mjs ws://HOST:PORT/ws CHANNEL [--reconnect]');
    process.exit(2);
}

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fatal = (message) => {
    emit({ event: 'fatal', message });
    process.exit(1);
};
setTimeout(() => fatal('still running after 90 s'), 90000).unref();

let ws = null;          // the open connection, if any
let stopping = false;
let retryUntil = Date.now() + 5000;
let streams = Promise.resolve();
const pending = new Map();   // id of a message we sent -> {resolve, reject}
let nextId = 0;

// Sends a message with a fresh id; resolves with the ack's payload, rejects on an error.
function request(msg) {
    const sock = ws;
    if (!sock) return Promise.reject(new Error('not connected'));
    const id = `a${++nextId}`;
    return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        sock.send(JSON.stringify({ ...msg, id }));
    });
}

function failPending(why) {
    for (const { reject } of pending.values()) reject(new Error(why));
    pending.clear();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stream(corr, lines, intervalMs) {
    const acks = [];
    for (let i = 1; i <= lines; i++) {
        acks.push(request({ type: 'publish', channel, event: 'output', payload: { command: corr, line: i } }));
        if (i < lines) await sleep(intervalMs);
    }
    try {
        const offsets = (await Promise.all(acks)).map((p) => (p ? p.offset : null));
        emit({ event: 'streamed', correlationId: corr, offsets });
    } catch (e) {
        emit({ event: 'error', message: `stream ${corr}: ${e.message}` });
    }
}

function onRequest(msg) {
    const corr = msg.correlationId;
    emit({ event: 'request', from: msg.from, correlationId: corr ?? null, payload: msg.payload ?? null });
    const p = msg.payload || {};
    let answer;
    if (typeof corr !== 'string') {
        emit({ event: 'error', message: 'command:request without a correlationId' });
        answer = { ok: false, error: 'no correlationId' };
    } else if (p.command === 'stream' && Number.isInteger(p.lines) && p.lines > 0) {
        answer = { ok: true, command: 'stream', lines: p.lines };
    } else {
        answer = { ok: false, error: 'unknown command' };
    }
    const resp = { type: 'send', to: msg.from, event: 'command:response', payload: answer };
    if (typeof corr === 'string') resp.correlationId = corr;
    request(resp).then(
        () => emit({ event: 'responded', to: msg.from, correlationId: corr ?? null }),
        (e) => emit({ event: 'error', message: `response to ${corr}: ${e.message}` }));
    if (answer.ok) {
        const interval = Number.isInteger(p.intervalMs) && p.intervalMs >= 0 ? p.intervalMs : 20;
        streams = streams.then(() => stream(corr, p.lines, interval));
    }
}

function onMessage(raw, isBinary) {
    if (isBinary) return emit({ event: 'unexpected', raw: '(a binary message)' });
    const text = raw.toString('utf8');
    let msg;
    try {
        msg = JSON.parse(text);
    } catch (e) {
        return emit({ event: 'unexpected', raw: text });
    }
    const waiter = typeof msg.correlationId === 'string' ? pending.get(msg.correlationId) : undefined;
    if (msg.type === 'connection:established') {
        emit({ event: 'ready', clientId: msg.payload.clientId, channel });
    } else if (msg.type === 'command:request') {
        onRequest(msg);
    } else if (msg.type === 'ack' && waiter) {
        pending.delete(msg.correlationId);
        waiter.resolve(msg.payload);
    } else if (msg.type === 'error' && waiter) {
        pending.delete(msg.correlationId);
        waiter.reject(new Error(text));
    } else if (msg.type === 'error') {
        emit({ event: 'error', message: text });
    } else {
        emit({ event: 'unexpected', raw: text });
    }
}

function open() {
    const sock = new WebSocket(url, { handshakeTimeout: 5000, perMessageDeflate: false });
    let opened = false;
    sock.on('open', () => {
        opened = true;
        ws = sock;
        if (stopping) sock.close(1000, 'agent stopping');
    });
    sock.on('message', onMessage);
    sock.on('error', (e) => {
        if (opened) emit({ event: 'error', message: `socket: ${e.message}` });
    });
    sock.on('close', (code, reason) => {
        if (ws === sock) ws = null;
        if (opened) emit({ event: 'closed', code, reason: reason.toString('utf8') });
        failPending(`connection closed (${code})`);
        if (stopping) process.exit(0);
        if (opened && !reconnect) fatal(`connection lost (${code})`);
        if (opened) retryUntil = Date.now() + 10000;
        if (Date.now() > retryUntil) fatal('could not connect within the retry window');
        setTimeout(open, opened ? 0 : 100);
    });
}

process.stdin.on('end', () => {
    stopping = true;
    if (ws) ws.close(1000, 'agent stopping');
    else process.exit(0);
});
process.stdin.resume();
open();
