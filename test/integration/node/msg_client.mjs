// Messaging client: node `ws` against a running wsreactor /ws (the JSON protocol).
//
// Usage: node msg_client.mjs ws://HOST:PORT/ws
// Two connections: one subscribes to a channel, the other publishes to it (with an id);
// the subscriber must get the publication (payload as sent, from the publisher's client
// id) and the publisher the ack with the same offset. Then a ping/pong and a direct send.
// Prints TAP and exits 0 when every case passed, 1 otherwise; the run is cut at 20 s.
// Run by test/integration/test_messaging.py. Dependencies: `npm ci` in this directory.
import WebSocket from 'ws';

const url = process.argv[2];
if (!url) {
    console.error('usage: node msg_client.mjs ws://HOST:PORT/ws');
    process.exit(2);
}

let n = 0;
let failed = 0;
const ok = (pass, desc, diag) => {
    n++;
    if (!pass) failed++;
    console.log(`${pass ? 'ok' : 'not ok'} ${n} - ${desc}`);
    if (!pass && diag !== undefined) for (const line of String(diag).split('\n')) console.log(`# ${line}`);
};
const budget = setTimeout(() => {
    ok(false, 'script budget', 'the run did not finish within 20 s');
    console.log(`1..${n}`);
    process.exit(1);
}, 20000);

// A connection whose parsed messages are awaited one by one (5 s each).
function connect() {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { handshakeTimeout: 5000, perMessageDeflate: false });
        const queue = [];
        const waiters = [];
        ws.on('message', (data, isBinary) => {
            const m = { raw: data.toString('utf8'), isBinary };
            const w = waiters.shift();
            if (w) w(m); else queue.push(m);
        });
        ws.next = () => new Promise((res, rej) => {
            if (queue.length) return res(queue.shift());
            const t = setTimeout(() => rej(new Error('no message within 5 s')), 5000);
            waiters.push((m) => { clearTimeout(t); res(m); });
        });
        ws.nextJson = async () => {
            const m = await ws.next();
            if (m.isBinary) throw new Error('binary message from the server');
            return { raw: m.raw, msg: JSON.parse(m.raw) };
        };
        ws.on('open', () => resolve(ws));
        ws.on('error', reject);
    });
}

async function main() {
    const sub = await connect();
    const pub = await connect();
    const est = [await sub.nextJson(), await pub.nextJson()];
    const idRe = /^[0-9a-f]{32}$/;
    ok(est.every((e) => e.msg.type === 'connection:established' && idRe.test(e.msg.payload.clientId) &&
        e.msg.payload.user === null && typeof e.msg.timestamp === 'number'),
       'connection:established with a client id', est.map((e) => e.raw).join('\n'));
    const subId = est[0].msg.payload.clientId;
    const pubId = est[1].msg.payload.clientId;
    const channel = `node:${process.pid}:${Date.now()}`;

    sub.send(JSON.stringify({ type: 'subscribe', channel, id: 's1' }));
    const s = await sub.nextJson();
    ok(s.msg.type === 'subscribed' && s.msg.correlationId === 's1' && s.msg.channel === channel &&
       s.msg.payload.offset === 0 && /^[0-9a-f]{16}$/.test(s.msg.payload.epoch) && s.msg.payload.recovered === false,
       'subscribed', s.raw);

    const payloadText = '{ "hello" : "from node", "n": [1, 2.5, null] }';
    pub.send(`{"type":"publish","channel":${JSON.stringify(channel)},"event":"greet","id":"p1","payload":${payloadText}}`);
    const a = await pub.nextJson();
    ok(a.msg.type === 'ack' && a.msg.correlationId === 'p1' && a.msg.payload.offset === 1, 'publisher ack', a.raw);
    const m = await sub.nextJson();
    ok(m.msg.type === 'greet' && m.msg.channel === channel && m.msg.offset === 1 &&
       m.msg.epoch === s.msg.payload.epoch && m.msg.from === pubId && m.raw.includes(`"payload":${payloadText},`),
       'subscriber gets the publication, payload as sent', m.raw);

    pub.send(JSON.stringify({ type: 'send', to: subId, event: 'direct', correlationId: 'c1', payload: [1] }));
    const d = await sub.nextJson();
    ok(d.msg.type === 'direct' && d.msg.from === pubId && d.msg.correlationId === 'c1' &&
       JSON.stringify(d.msg.payload) === '[1]', 'direct send', d.raw);

    sub.send(JSON.stringify({ type: 'ping', id: 'z' }));
    const p = await sub.nextJson();
    ok(p.msg.type === 'pong' && p.msg.correlationId === 'z', 'nothing else pending, pong', p.raw);

    for (const ws of [sub, pub]) ws.close(1000);
}

main().catch((e) => ok(false, 'exception', e && e.stack || e)).finally(() => {
    clearTimeout(budget);
    console.log(`1..${n}`);
    process.exitCode = failed ? 1 : 0;
});
