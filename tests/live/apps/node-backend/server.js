// A small web app for tests/live/test_own_app.py: notes in PostgreSQL over the Unix socket (peer auth), files
// on an app volume, secrets from the environment (only their digests are ever shown), an outbound fetch.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { Pool } = require('pg');

const pool = new Pool({ max: 4 });   // PGHOST/PGUSER/PGDATABASE from webstack's environment
const media = process.env.MEDIA_DIR;
const digest = (value) => crypto.createHash('sha256').update(value || '').digest('hex');

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
  return send(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 503, { error: err.message }));
});
server.keepAliveTimeout = 65000;   // longer than the edge's keepalive: the edge closes idle connections first
server.listen(Number(process.env.PORT), '0.0.0.0', () => console.log(`listening on ${process.env.PORT}`));

// SIGTERM: finish what is in flight, close the pool, exit.
process.on('SIGTERM', () => {
  console.log('SIGTERM: closing');
  server.close(() => pool.end().then(() => process.exit(0)));
  if (server.closeIdleConnections) server.closeIdleConnections();   // idle keep-alive connections end now
  setTimeout(() => process.exit(0), 20000).unref();
});
