// Interop client: node `ws` against a running wsreactor /echo, over ws:// or wss://.
//
// Usage: node ws_client.mjs ws://HOST:PORT/echo [MAX_BYTES]
//        node ws_client.mjs wss://HOST:PORT/echo --ca CA_FILE --sni OTHER_SNI_NAME
// Without --ca: permessage-deflate in several configurations (messages up to MAX_BYTES);
// run by test/integration/test_deflate.py. With --ca: TLS verified against CA_FILE
// (refused without it), with and without compression, and SNI asking for OTHER_SNI_NAME;
// run by test/integration/test_tls.py.
// Prints TAP ("ok N - ..." / "not ok N - ...", then "1..N") and exits 0 when every case
// passed, 1 otherwise. Every wait is bounded; the whole run is cut at 45 s.
// Dependencies: `npm ci` in this directory.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const USAGE = 'usage: node ws_client.mjs ws://HOST:PORT/echo [MAX_BYTES]\n' +
    '       node ws_client.mjs wss://HOST:PORT/echo --ca CA_FILE --sni OTHER_SNI_NAME';
const args = process.argv.slice(2);
// Takes "--name VALUE" out of args; undefined when absent.
function option(name) {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const [, value] = args.splice(i, 2);
    return value ?? '';
}
const caFile = option('--ca');
const otherName = option('--sni');
const [url, maxArg] = args;
const maxBytes = Number(maxArg || 1 << 20);
if (!url || (caFile === undefined) !== (otherName === undefined) || caFile === '' || otherName === '') {
    console.error(USAGE);
    process.exit(2);
}

let n = 0;
let failed = 0;
const ok = (pass, desc, diag) => {
    n++;
    if (!pass) failed++;
    console.log(`${pass ? 'ok' : 'not ok'} ${n} - ${desc}`);
    if (!pass && diag) for (const line of String(diag).split('\n')) console.log(`# ${line}`);
};

const budget = setTimeout(() => {
    ok(false, 'script budget', 'the run did not finish within 45 s');
    console.log(`1..${n}`);
    process.exit(1);
}, 45000);

// A connection whose received messages are awaited one by one.
function connect(options) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { handshakeTimeout: 5000, ...options });
        ws.responseExtensions = '';
        ws.on('upgrade', (res) => { ws.responseExtensions = res.headers['sec-websocket-extensions'] || ''; });
        const queue = [];
        const waiters = [];
        ws.on('message', (data, isBinary) => {
            const m = { data, isBinary };
            const w = waiters.shift();
            if (w) w.resolve(m);
            else queue.push(m);
        });
        ws.on('close', (code, reason) => {
            ws.closeCode = code;
            for (const w of waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason}`));
        });
        ws.next = (ms = 10000) => {
            if (queue.length) return Promise.resolve(queue.shift());
            return new Promise((res, rej) => {
                const w = { resolve: res, reject: rej };
                const t = setTimeout(() => {
                    waiters.splice(waiters.indexOf(w), 1);
                    rej(new Error(`no message within ${ms} ms`));
                }, ms);
                w.resolve = (m) => { clearTimeout(t); res(m); };
                w.reject = (e) => { clearTimeout(t); rej(e); };
                waiters.push(w);
            });
        };
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
    });
}

function closeCleanly(ws) {
    return new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve(ws.closeCode);
        const t = setTimeout(() => { ws.terminate(); resolve(-1); }, 5000);
        ws.once('close', (code) => { clearTimeout(t); resolve(code); });
        ws.close(1000);
    });
}

function text(size, seed) {
    const words = ['alpha ', 'beta ', 'gamma ', 'délta ', '{"id":', '"naïve":"✓",', '\n', '😀 '];
    let s = '';
    let x = seed * 2654435761 >>> 0;
    while (s.length < size) {
        x = (x * 1103515245 + 12345) >>> 0;
        s += words[x % words.length];
    }
    // Cut on a code point boundary (no lone surrogate).
    s = s.slice(0, size);
    if (s.length && /[\uD800-\uDBFF]$/.test(s)) s = s.slice(0, -1);
    return s;
}

function binary(size, compressible) {
    if (!compressible) return randomBytes(size);
    const b = Buffer.alloc(size);
    const block = randomBytes(700);
    for (let i = 0; i < size; i++) b[i] = (i % 3000) < 700 ? block[i % 700] : (i & 0x0f);
    return b;
}

async function echo(ws, payload, desc, fragments = 1) {
    try {
        const isBinary = typeof payload !== 'string';
        if (fragments <= 1) {
            ws.send(payload, { binary: isBinary });
        } else {
            const whole = isBinary ? payload : Buffer.from(payload, 'utf8');
            const step = Math.ceil(whole.length / fragments) || 1;
            for (let i = 0; i < fragments; i++) {
                const chunk = whole.subarray(i * step, (i + 1) * step);
                ws.send(chunk, { binary: isBinary, fin: i === fragments - 1 });
            }
        }
        const m = await ws.next();
        if (m.isBinary !== isBinary) return ok(false, desc, `sent binary=${isBinary}, got binary=${m.isBinary}`);
        const got = isBinary ? m.data : m.data.toString('utf8');
        const same = isBinary ? Buffer.compare(got, payload) === 0 : got === payload;
        ok(same, desc, same ? '' : `sent ${payload.length}, got ${got.length} (or bytes differ)`);
    } catch (e) {
        ok(false, desc, e.stack || String(e));
    }
}

// A connection for a named case, or undefined after a failed "NAME: connect".
async function connectFor(name, options) {
    try {
        return await connect(options);
    } catch (e) {
        ok(false, `${name}: connect`, e.stack || String(e));
        return undefined;
    }
}

// Sends count text messages make(i) one by one, each awaited: whether all came back
// in order and unchanged.
async function echoInOrder(ws, count, make) {
    for (let i = 0; i < count; i++) {
        const msg = make(i);
        ws.send(msg);
        try {
            if ((await ws.next()).data.toString('utf8') !== msg) return false;
        } catch (e) {
            return false;
        }
    }
    return true;
}

// Closes with 1000 and checks the server's close code.
async function closeOk(ws, name) {
    const code = await closeCleanly(ws);
    ok(code === 1000, `${name}: close 1000`, `close code ${code}`);
}

// permessage-deflate in several configurations, each echoing messages of many sizes.
async function deflateSuite() {
    const variants = [
        ['default offer, threshold 0', { threshold: 0 }, (ext) => ext.startsWith('permessage-deflate')],
        ['ws defaults (threshold 1024)', true, (ext) => ext.startsWith('permessage-deflate')],
        ['no context takeover, client bits 10, server bits 11',
            { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, clientMaxWindowBits: 10,
              serverMaxWindowBits: 11 },
            (ext) => ext.includes('server_no_context_takeover') && ext.includes('client_max_window_bits=10') &&
                ext.includes('server_max_window_bits=11')],
        ['client and server bits 9', { threshold: 0, clientMaxWindowBits: 9, serverMaxWindowBits: 9 },
            (ext) => ext.includes('client_max_window_bits=9') && ext.includes('server_max_window_bits=9')],
        ['compression off', false, (ext) => ext === ''],
    ];

    for (const [name, pmd, extOk] of variants) {
        const ws = await connectFor(name, { perMessageDeflate: pmd });
        if (!ws) continue;
        const ext = ws.responseExtensions;
        ok(extOk(ext), `${name}: negotiated "${ext}"`, `unexpected Sec-WebSocket-Extensions "${ext}"`);
        const sizes = [0, 1, 63, 64, 125, 126, 1000, 1023, 1024, 5000, 65535, 65536, 200000];
        if (maxBytes >= 2 << 20) sizes.push((2 << 20) - 7);
        for (const size of sizes) {
            await echo(ws, text(size, size), `${name}: text ${size}`);
            await echo(ws, binary(size, true), `${name}: compressible binary ${size}`);
        }
        // Empty messages between others: ws compresses them (threshold 0) as 0x00 that must
        // not disturb the shared window.
        for (const [i, m] of [text(300, 1), '', text(300, 1), '', Buffer.alloc(0), text(300, 2)].entries())
            await echo(ws, m, `${name}: empty messages between others, #${i}`);
        await echo(ws, binary(100000, false), `${name}: random binary 100000`);
        await echo(ws, text(10000, 3), `${name}: text 10000 in 7 fragments`, 7);
        await echo(ws, binary(300000, true), `${name}: binary 300000 in 4 fragments`, 4);
        await echo(ws, binary(3, false), `${name}: binary 3 in 3 fragments`, 3);
        const all = await echoInOrder(ws, 150,
            (i) => JSON.stringify({ seq: i, type: 'update', body: text(40 + (i % 60), i % 5) }));
        ok(all, `${name}: 150 similar messages (context takeover where agreed)`);
        await closeOk(ws, name);
    }
}

// TLS: the certificate verified against ca, with and without compression, and SNI.
async function tlsSuite(ca) {
    // Without the CA the server's certificate must not verify (the client checks it).
    try {
        const ws = await connect({ perMessageDeflate: false });
        ok(false, 'without the CA: refused', 'connected although the CA was not given');
        ws.terminate();
    } catch (e) {
        ok(/self[-_ ]signed|unable[-_ ]to[-_ ](get|verify)/i.test(String(e.code || e.message)),
            `without the CA: refused (${e.code || e.message})`, e.stack || String(e));
    }

    for (const [name, pmd, extOk] of [
        ['no compression', false, (ext) => ext === ''],
        ['permessage-deflate', { threshold: 0 }, (ext) => ext.startsWith('permessage-deflate')],
    ]) {
        const ws = await connectFor(name, { ca, perMessageDeflate: pmd });
        if (!ws) continue;
        const sock = ws._socket;
        ok(sock.authorized === true && sock.encrypted === true,
            `${name}: a verified TLS connection (${sock.getProtocol()})`, `authorized=${sock.authorized} ${sock.authorizationError}`);
        const cert = sock.getPeerCertificate();
        ok(cert.subject && cert.subject.CN === 'localhost', `${name}: certificate CN=localhost`, JSON.stringify(cert.subject));
        ok(extOk(ws.responseExtensions), `${name}: negotiated "${ws.responseExtensions}"`);
        await echo(ws, 'hello over wss ✓', `${name}: text`);
        await echo(ws, randomBytes(100 * 1024), `${name}: random binary 100 KiB`);
        await echo(ws, randomBytes(1000000), `${name}: random binary 1 MB`);
        await echo(ws, binary(1 << 20, true), `${name}: compressible binary 1 MiB`);
        const all = await echoInOrder(ws, 200, (i) => JSON.stringify({ seq: i, body: 'x'.repeat(i % 97) }));
        ok(all, `${name}: 200 small messages in order`);
        await closeOk(ws, name);
    }

    // SNI: asking for the other name gets the other certificate.
    try {
        const ws = await connect({ ca, servername: otherName, perMessageDeflate: false });
        const cert = ws._socket.getPeerCertificate();
        ok(cert.subject && cert.subject.CN === otherName, `SNI ${otherName}: its certificate`, JSON.stringify(cert.subject));
        await echo(ws, 'sni', `SNI ${otherName}: text`);
        await closeOk(ws, `SNI ${otherName}`);
    } catch (e) {
        ok(false, `SNI ${otherName}: connect`, e.stack || String(e));
    }
}

if (caFile !== undefined) await tlsSuite(readFileSync(caFile));
else await deflateSuite();

clearTimeout(budget);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
