#!/usr/bin/env node
/*
 * The read baseline of bench/run.js: a bare node:https server with exactly the node's TLS
 * settings (loadServerTls on its confdir: same key, certificate chain, client CA, protocol floor,
 * ciphers), client certificates required (mTLS), keep-alive, answering every GET with one
 * `SELECT … by primary key` on the same PostgreSQL, same app role, same pool size.
 * Usage: node bench/bare-server.js CONFDIR PORT OWNER NAME   (prints "ready" when listening)
 */
'use strict';
const https = require('node:https');
const fs = require('node:fs');
const { Pool } = require('pg');
const { loadServerTls } = require('../packages/server/dist/tls/server-tls');
const { loadKeytrusteeConf, confPaths } = require('../packages/server/dist');
const { nodeDbTarget, DB_APP_ROLE } = require('../packages/server/dist/db/node-db');

async function main() {
  const [confdir, port, owner, name] = process.argv.slice(2);
  const conf = loadKeytrusteeConf(confdir);
  const tls = await loadServerTls({
    confdir,
    settings: conf,
    clientCaPem: fs.readFileSync(confPaths(confdir).identityCert, 'utf8'),
  });
  const pool = new Pool({ ...nodeDbTarget(conf, confdir), user: DB_APP_ROLE, max: 20 });
  const sql =
    'select name, version, deleted, sealed_value, key_id, metadata, created_at from deposits where owner_fp = $1 and name = $2 order by version desc limit 1';
  const server = https.createServer(
    { ...tls.options, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      pool.query(sql, [owner, name]).then(
        ({ rows }) => {
          const r = rows[0];
          const body = JSON.stringify({
            name: r.name,
            version: r.version,
            value: r.sealed_value.toString('base64'),
            metadata: r.metadata,
            createdAt: r.created_at.toISOString(),
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        },
        (e) => res.writeHead(500).end(String(e.message)),
      );
    },
  );
  server.keepAliveTimeout = 65_000;
  server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => {
    server.close();
    void pool.end().then(() => process.exit(0));
  });
}

main().catch((e) => {
  process.stderr.write(`bare-server: ${e.stack}\n`);
  process.exit(1);
});
