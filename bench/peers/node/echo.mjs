// bench/peers/node/echo.mjs: a WebSocket echo server on node `ws`, for bench/run-peers.sh.
// As ws's README echo: one WebSocketServer on /echo, every message sent back with its type.
// No permessage-deflate, no optional native add-ons (bufferutil, utf-8-validate).
//
// usage: node echo.mjs [PORT]   (default 0: an ephemeral port); listens on 127.0.0.1 and
// prints "listening on 127.0.0.1:PORT" on stderr. SIGINT/SIGTERM stop it.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(process.argv[2] || 0),
  path: '/echo',
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

wss.on('listening', () => {
  process.stderr.write(`listening on 127.0.0.1:${wss.address().port}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
