// The release command: creates the schema (idempotent) and records one row per run, and a file on the app
// volume, so a test can count runs. FAIL_MIGRATION makes it fail after printing a few lines.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { Client } = require('pg');

async function main() {
  const release = process.env.APP_RELEASE || 'unknown';
  console.log(`migrate: release ${release}, user ${process.getuid()}`);
  if (!process.env.APP_API_TOKEN || !process.env.DJANGO_SECRET_KEY) {
    throw new Error('the secrets are not in the environment');
  }
  if (process.env.FAIL_MIGRATION) {
    console.log('migrate: applying 0002_broken');
    console.error(`migrate: error: relation "no_such_table" does not exist (${process.env.FAIL_MIGRATION})`);
    process.exit(3);
  }
  const client = new Client();   // PGHOST (the socket directory), PGUSER, PGDATABASE: peer auth, no password
  await client.connect();
  await client.query(`CREATE TABLE IF NOT EXISTS release_runs (
      id serial PRIMARY KEY, release text NOT NULL, ran_at timestamptz NOT NULL DEFAULT now())`);
  await client.query(`CREATE TABLE IF NOT EXISTS notes (
      id serial PRIMARY KEY, text text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  await client.query('INSERT INTO release_runs (release) VALUES ($1)', [release]);
  await client.end();
  // The digests of the secrets it got (never the values): the test compares them with the app's.
  const digest = (value) => crypto.createHash('sha256').update(value).digest('hex');
  fs.writeFileSync(`${process.env.MEDIA_DIR}/release-${release}.txt`,
    `migrated ${release} ${digest(process.env.APP_API_TOKEN)} ${digest(process.env.DJANGO_SECRET_KEY)}\n`);
  console.log('migrate: done');
}

main().catch((err) => { console.error(`migrate: ${err.message}`); process.exit(1); });
