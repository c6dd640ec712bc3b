// A small web app for tests/live/test_own_app.py: notes in PostgreSQL over the Unix socket (peer auth), files
// on an app volume, secrets from the environment (only their digests are ever shown), an outbound fetch.
// Streams for the edge's long-lived paths: a streamed upload, server-sent events and a WebSocket, each told
// goodbye on SIGTERM so a client can tell a release ending cleanly from a dropped connection.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { Pool } = require('pg');

const pool = new Pool({ max: 4 });   // PGHOST/PGUSER/PGDATABASE from webstack's environment
const media = process.env.MEDIA_DIR;
const digest = (value) => crypto.createHash('sha256').update(value || '').digest('hex');
const release = process.env.APP_RELEASE || null;
let stopping = false;   // set by SIGTERM: a stream opened from then on is told goodbye at once

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function hashBody(req) {   // {bytes, sha256} as the body arrives: an upload of any size is never held in memory
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk) => { bytes += chunk.length; hash.update(chunk); });
    req.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    req.on('close', () => { if (!req.complete) reject(new Error('upload aborted')); });
    req.on('error', reject);
  });
}

function fetchOut(url) {   // GET url with a 3 s budget: {ok, status|error}
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: true, status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

async function handle(req, res) {
  const url = new URL(req.url, 'http://app');
  if (url.pathname === '/readiness') {
    await pool.query('SELECT 1 FROM release_runs LIMIT 1');   // the database answers and is migrated
    return send(res, 200, { ok: true });
  }
  if (url.pathname === '/' && req.method === 'GET') {
    const notes = await pool.query('SELECT text FROM notes ORDER BY id');
    const items = notes.rows.map((r) => `<li>${escape(r.text)}</li>`).join('');
    return send(res, 200, `<!doctype html><title>node app</title><h1>Notes</h1><ul>${items}</ul>\n`,
      'text/html; charset=utf-8');
  }
  if (url.pathname === '/notes' && req.method === 'POST') {
    const text = await readBody(req);
    await pool.query('INSERT INTO notes (text) VALUES ($1)', [text]);
    return send(res, 201, { ok: true });
  }
  if (url.pathname === '/release-runs') {
    const runs = await pool.query('SELECT release FROM release_runs ORDER BY id');
    return send(res, 200, runs.rows.map((r) => r.release));
  }
  if (url.pathname === '/request') {
    return send(res, 200, { host: req.headers.host, forwardedFor: req.headers['x-forwarded-for'],
      forwardedProto: req.headers['x-forwarded-proto'], path: req.url });
  }
  if (url.pathname === '/secrets') {   // digests only: the test compares them with what it set
    return send(res, 200, { APP_API_TOKEN: digest(process.env.APP_API_TOKEN),
      DJANGO_SECRET_KEY: digest(process.env.DJANGO_SECRET_KEY),
      DJANGO_SECRET_KEY_LENGTH: (process.env.DJANGO_SECRET_KEY || '').length });
  }
  if (url.pathname === '/media' && req.method === 'GET') {
    const files = {};
    for (const name of fs.readdirSync(media).sort()) files[name] = fs.readFileSync(path.join(media, name), 'utf8');
    return send(res, 200, { uid: process.getuid(), files });
  }
  if (url.pathname.startsWith('/media/') && req.method === 'PUT') {
    const name = path.basename(url.pathname);
    fs.writeFileSync(path.join(media, name), await readBody(req));
    return send(res, 201, { ok: true });
  }
  if (url.pathname === '/egress') {
    return send(res, 200, await fetchOut(url.searchParams.get('url')));
  }
  if (url.pathname === '/upload' && req.method === 'POST') {
    return send(res, 200, await hashBody(req));
  }
  if (url.pathname === '/events' && req.method === 'GET') {
    return openEventStream(res);
  }
  return send(res, 404, { error: 'not found' });
}

// --- server-sent events: `hello`, a `tick` every 200 ms, `bye` when the release ends -----------------------

const eventStreams = new Set();

const sendEvent = (res, event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

function openEventStream(res) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',   // nginx passes each event on as it comes, whatever the site's proxy_buffering
    Connection: 'close' });      // the connection ends with the stream: none is left idle to hold up a shutdown
  sendEvent(res, 'hello', { release, pid: process.pid });
  let count = 0;
  const stream = { res, timer: setInterval(() => sendEvent(res, 'tick', { n: ++count }), 200),
    closed: new Promise((resolve) => res.on('close', resolve)) };
  eventStreams.add(stream);
  res.on('close', () => { clearInterval(stream.timer); eventStreams.delete(stream); });
  if (stopping) endEventStream(stream);
}

function endEventStream(stream) {   // `bye`, then the body's last chunk: the client sees an end, not a reset
  clearInterval(stream.timer);
  sendEvent(stream.res, 'bye', { release });
  stream.res.end();
  return stream.closed;
}

// --- WebSocket at /ws (RFC 6455): a `hello`, echoes of text messages, close 1001 when the release ends ------

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';   // RFC 6455 section 1.3
const WS_MAX_MESSAGE = 1 << 20;   // larger messages are refused (1009) rather than buffered
const webSockets = new Set();

class WsError extends Error {   // a protocol problem: the connection is closed with `code`
  constructor(code, message) { super(message); this.code = code; }
}

function wsFrame(opcode, payload) {   // one final, unmasked frame (a server never masks)
  const size = payload.length;
  const head = Buffer.alloc(size < 126 ? 2 : size < 65536 ? 4 : 10);   // 7-, 16- or 64-bit length
  head[0] = 0x80 | opcode;
  if (size < 126) head[1] = size;
  else if (size < 65536) { head[1] = 126; head.writeUInt16BE(size, 2); }
  else { head[1] = 127; head.writeBigUInt64BE(BigInt(size), 2); }
  return Buffer.concat([head, payload]);
}

function wsParse(buf) {   // the first whole frame in buf: {fin, opcode, payload, size}, or null until it is there
  if (buf.length < 2) return null;
  if (buf[0] & 0x70) throw new WsError(1002, 'reserved bits set');
  if (!(buf[1] & 0x80)) throw new WsError(1002, 'client frames must be masked');
  let length = buf[1] & 0x7f;
  let at = 2;
  if (length === 126) {
    if (buf.length < 4) return null;
    length = buf.readUInt16BE(2);
    at = 4;
  } else if (length === 127) {
    if (buf.length < 10) return null;
    const big = buf.readBigUInt64BE(2);   // checked before Number(): a 2^63 length must not wrap to a small one
    length = big > BigInt(WS_MAX_MESSAGE) ? Infinity : Number(big);
    at = 10;
  }
  if (length > WS_MAX_MESSAGE) throw new WsError(1009, 'message too big');
  if (buf.length < at + 4 + length) return null;
  const mask = buf.subarray(at, at + 4);
  const payload = Buffer.from(buf.subarray(at + 4, at + 4 + length));
  for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return { fin: (buf[0] & 0x80) !== 0, opcode: buf[0] & 0x0f, payload, size: at + 4 + length };
}

function wsClose(ws, code, reason = '') {   // our close frame, once; the socket goes 2 s later in any case
  if (ws.closing) return;
  ws.closing = true;
  let payload = Buffer.alloc(0);
  if (code) {
    payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    payload = Buffer.concat([payload, Buffer.from(reason)]);
  }
  ws.socket.write(wsFrame(0x8, payload));
  ws.timer = setTimeout(() => ws.socket.destroy(), 2000);
}

function wsOnFrame(ws, { fin, opcode, payload }) {
  if (opcode >= 0x8 && (!fin || payload.length > 125)) throw new WsError(1002, 'bad control frame');
  if (opcode === 0x8) {   // the client's close, or its answer to ours: echo its code, then end the connection
    ws.closeReceived = true;
    wsClose(ws, payload.length >= 2 ? payload.readUInt16BE(0) : 0);
    return ws.socket.end();
  }
  if (opcode === 0x9) return ws.socket.write(wsFrame(0xa, payload));   // ping: pong with the same payload
  if (opcode === 0xa) return undefined;
  if (opcode === 0x2) throw new WsError(1003, 'text messages only');
  if (opcode !== 0x1 && opcode !== 0x0) throw new WsError(1002, 'unknown opcode');
  if ((opcode === 0x0) !== (ws.fragments !== null)) throw new WsError(1002, 'unexpected continuation');
  ws.fragments = (ws.fragments || []).concat(payload);
  ws.received += payload.length;
  if (ws.received > WS_MAX_MESSAGE) throw new WsError(1009, 'message too big');
  if (!fin) return undefined;
  const text = Buffer.concat(ws.fragments).toString('utf8');
  ws.fragments = null;
  ws.received = 0;
  if (!ws.closing) ws.socket.write(wsFrame(0x1, Buffer.from(`echo:${text}`)));   // nothing after our close frame
  return undefined;
}

function acceptWebSocket(req, socket, head) {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  const ws = { socket, closing: false, closeReceived: false, timer: null, fragments: null, received: 0,
    closed: new Promise((resolve) => socket.on('close', resolve)) };
  webSockets.add(ws);
  socket.on('close', () => { clearTimeout(ws.timer); webSockets.delete(ws); });
  socket.on('end', () => socket.end());   // the client left without a close frame: so do we
  socket.write(wsFrame(0x1, Buffer.from(JSON.stringify({ hello: release, pid: process.pid }))));
  let buffered = Buffer.alloc(0);
  const feed = (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    try {
      for (let frame = wsParse(buffered); frame && !ws.closeReceived; frame = wsParse(buffered)) {
        buffered = buffered.subarray(frame.size);
        wsOnFrame(ws, frame);
      }
    } catch (err) {   // a broken stream cannot be parsed further: close frame, then the connection ends
      socket.removeListener('data', feed);
      wsClose(ws, err.code || 1011, err.message);
      socket.end();
    }
  };
  socket.on('data', feed);
  feed(head);   // bytes that came with the handshake
  if (stopping) goAway(ws);
}

function goAway(ws) {   // SIGTERM: close 1001, then the socket ends after the client's close (or 2 s)
  wsClose(ws, 1001, 'release ends');
  return ws.closed;
}

function refuseUpgrade(socket, status, text) {   // a plain HTTP answer on the raw socket, which then goes
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\n` +
    `Connection: close\r\n\r\n${text}\n`, () => socket.destroy());
}

function onUpgrade(req, socket, head) {
  socket.on('error', () => socket.destroy());   // a client that resets is not the server's problem
  const { pathname } = new URL(req.url, 'http://app');
  if (pathname !== '/ws') return refuseUpgrade(socket, 404, 'Not Found');
  if (req.method !== 'GET' || (req.headers.upgrade || '').toLowerCase() !== 'websocket' ||
      !req.headers['sec-websocket-key'] || req.headers['sec-websocket-version'] !== '13') {
    return refuseUpgrade(socket, 400, 'Bad Request');
  }
  return acceptWebSocket(req, socket, head);
}

// --- the server -------------------------------------------------------------------------------------------

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 503, { error: err.message }));
});
server.on('upgrade', onUpgrade);
server.keepAliveTimeout = 65000;   // longer than the edge's keepalive: the edge closes idle connections first
server.listen(Number(process.env.PORT), '0.0.0.0', () => console.log(`listening on ${server.address().port}`));

// SIGTERM: finish what is in flight, say goodbye on every event stream and WebSocket and wait for them to end,
// close the pool, exit. Whatever still hangs after 20 s does not keep the release's container running.
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  console.log('SIGTERM: closing');
  setTimeout(() => process.exit(0), 20000).unref();
  const serverClosed = new Promise((resolve) => server.close(resolve));   // also waits for upgraded sockets
  if (server.closeIdleConnections) server.closeIdleConnections();   // idle keep-alive connections end now
  const ended = [...eventStreams].map(endEventStream).concat([...webSockets].map(goAway));
  Promise.all([serverClosed, ...ended]).then(() => pool.end())
    .catch((err) => console.error(`SIGTERM: ${err.message}`)).then(() => process.exit(0));
});
