// Interop client: node `ws` over TLS (wss://) against a running wsreactor /echo.
//
// Usage: node wss_client.mjs wss://127.0.0.1:PORT/echo CA_FILE OTHER_SNI_NAME
// Prints TAP ("ok N - ..." / "not ok N - ...", then "1..N") and exits 0 when every case
// passed, 1 otherwise. Every wait is bounded; the whole run is cut at 45 s.
// Run by test/integration/test_tls.py; dependencies: `npm ci` in this directory.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const [url, caFile, otherName] = process.argv.slice(2);
if (!url || !caFile || !otherName) {
    console.error('usage: node wss_client.mjs wss://HOST:PORT/echo CA_FILE OTHER_SNI_NAME');
    process.exit(2);
}
const ca = readFileSync(caFile);

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
        ws.on('close', (code) => {
            ws.closeCode = code;
            for (const w of waiters.splice(0)) w.reject(new Error(`closed ${code}`));
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

async function echo(ws, payload, desc) {
    try {
        const isBinary = typeof payload !== 'string';
        ws.send(payload, { binary: isBinary });
        const m = await ws.next();
        if (m.isBinary !== isBinary) return ok(false, desc, `sent binary=${isBinary}, got binary=${m.isBinary}`);
        const got = isBinary ? m.data : m.data.toString('utf8');
        const same = isBinary ? Buffer.compare(got, payload) === 0 : got === payload;
        ok(same, desc, same ? '' : `sent ${payload.length}, got ${got.length} (or bytes differ)`);
    } catch (e) {
        ok(false, desc, e.stack || String(e));
    }
}

function compressible(size) {
    const b = Buffer.alloc(size);
    const block = randomBytes(700);
    for (let i = 0; i < size; i++) b[i] = (i % 3000) < 700 ? block[i % 700] : (i & 0x0f);
    return b;
}

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
    let ws;
    try {
        ws = await connect({ ca, perMessageDeflate: pmd });
    } catch (e) {
        ok(false, `${name}: connect`, e.stack || String(e));
        continue;
    }
    const sock = ws._socket;
    ok(sock.authorized === true && sock.encrypted === true,
        `${name}: a verified TLS connection (${sock.getProtocol()})`, `authorized=${sock.authorized} ${sock.authorizationError}`);
    const cert = sock.getPeerCertificate();
    ok(cert.subject && cert.subject.CN === 'localhost', `${name}: certificate CN=localhost`, JSON.stringify(cert.subject));
    ok(extOk(ws.responseExtensions), `${name}: negotiated "${ws.responseExtensions}"`);
    await echo(ws, 'hello over wss ✓', `${name}: text`);
    await echo(ws, randomBytes(100 * 1024), `${name}: random binary 100 KiB`);
    await echo(ws, randomBytes(1000000), `${name}: random binary 1 MB`);
    await echo(ws, compressible(1 << 20), `${name}: compressible binary 1 MiB`);
    let all = true;
    for (let i = 0; i < 200 && all; i++) {
        const msg = JSON.stringify({ seq: i, body: 'x'.repeat(i % 97) });
        ws.send(msg);
        try {
            all = (await ws.next()).data.toString('utf8') === msg;
        } catch (e) {
            all = false;
        }
    }
    ok(all, `${name}: 200 small messages in order`);
    const code = await closeCleanly(ws);
    ok(code === 1000, `${name}: close 1000`, `close code ${code}`);
}

// SNI: asking for the other name gets the other certificate.
try {
    const ws = await connect({ ca, servername: otherName, perMessageDeflate: false });
    const cert = ws._socket.getPeerCertificate();
    ok(cert.subject && cert.subject.CN === otherName, `SNI ${otherName}: its certificate`, JSON.stringify(cert.subject));
    await echo(ws, 'sni', `SNI ${otherName}: text`);
    const code = await closeCleanly(ws);
    ok(code === 1000, `SNI ${otherName}: close 1000`, `close code ${code}`);
} catch (e) {
    ok(false, `SNI ${otherName}: connect`, e.stack || String(e));
}

clearTimeout(budget);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
