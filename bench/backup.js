#!/usr/bin/env node
/*
 * Backup and restore of 100,000 deposits (issue #9) against the physical baselines on the same
 * data in the same run: raw `pg_dump -f` vs `ktbackup` (cleartext and encrypted), raw
 * `createdb` + `psql -f` vs `ktadmin restore --from` (which also creates the PostgreSQL cluster:
 * its `initdb` + start is measured and reported separately). Target: ≤ 1.5×.
 * Not part of `npm test`. Usage: npm run bench:backup [-- --deposits N]
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, median } = require('./lib');
const server = require('../packages/server/dist');
const replicator = require('../packages/replicator/dist');

const ROOT = path.join(__dirname, '..');
const KTADMIN = path.join(ROOT, 'packages/server/bin/ktadmin.js');
const KTBACKUP = path.join(ROOT, 'packages/server/bin/ktbackup.js');
const argN = process.argv.indexOf('--deposits');
const N = Math.min(1_000_000, Math.max(1000, argN > 0 ? Number(process.argv[argN + 1]) : 100_000));
const say = (m) => process.stdout.write(`${m}\n`);

function timed(bin, args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 256 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0)
    throw new Error(`${path.basename(bin)} ${args.slice(0, 3).join(' ')} failed: ${r.stderr || r.stdout}`);
  return { ms, out: r.stdout };
}

async function main() {
  const t0 = Date.now();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-backup-'));
  fs.chmodSync(home, 0o755);
  const confdir = path.join(home, 'confdir');
  const dbDir = path.join(home, 'db');
  const restoreHome = path.join(home, 'restored');
  const gnupg = path.join(home, 'gnupg');
  fs.mkdirSync(gnupg, { mode: 0o700 });
  const [apiPort, dbPort, rawPort, restorePort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const bin = replicator.findPgBinDir();
  const sock = replicator.socketDirFor(dbDir);
  const stops = [];
  try {
    say(`[1/5] node with ${N.toLocaleString()} deposits in ${home}…`);
    await server.initConfdir({ confdir, host: 'bench.example.com', port: apiPort });
    await server.bootstrapActiveDb({ confdir, pgRootdir: dbDir, port: dbPort, listenAddresses: '127.0.0.1' });
    stops.push(() => replicator.stopPostgres(server.nodeInstance({ confdir })));
    const psql = (port, host, db, sql) =>
      timed(path.join(bin, 'psql'), [
        '-X',
        '-q',
        '-h',
        host,
        '-p',
        String(port),
        '-U',
        'keytrustee',
        '-d',
        db,
        '-c',
        sql,
      ]);
    psql(
      dbPort,
      sock,
      'keytrustee',
      `
      insert into orgs (uuid, name, auth_secret_sealed, auth_secret_key_id) values ('bench', 'bench', '\\x00', 'k');
      insert into clients (fingerprint, org_id, state, certificate) select '2048R/BENCH', id, 'active', 'cert' from orgs;
      insert into deposits (owner_fp, name, version, sealed_value, key_id, idempotency_key, request_hash)
        select '2048R/BENCH', 'key-' || g, 1, decode(repeat(md5(g::text), 8), 'hex'), 'k1', md5(g::text), sha224(g::text::bytea)
          from generate_series(1, ${N}) g;`,
    );
    const gpg = (args) =>
      timed('gpg', ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
        GNUPGHOME: gnupg,
      });
    gpg(['--quick-gen-key', 'Bench <bench@example.com>', 'default', 'default', 'never']);

    say('[2/5] backups: raw pg_dump vs ktbackup (3 runs each)…');
    const rawDump = [];
    const clear = [];
    const enc = [];
    let lastClear;
    let lastEnc;
    for (let i = 0; i < 3; i++) {
      const f = path.join(home, `raw-${i}.sql`);
      rawDump.push(
        timed(path.join(bin, 'pg_dump'), [
          '-h',
          sock,
          '-p',
          String(dbPort),
          '-U',
          'keytrustee',
          '--exclude-schema=graphile_worker',
          '-f',
          f,
          'keytrustee',
        ]).ms,
      );
      const c = timed(process.execPath, [
        KTBACKUP,
        '-c',
        confdir,
        '--cleartext',
        '-q',
        `--output=${path.join(home, 'clear')}`,
        '--roll=1',
      ]);
      clear.push(c.ms);
      lastClear = c.out.trim();
      const e = timed(
        process.execPath,
        [
          KTBACKUP,
          '-c',
          confdir,
          '--gpg-recipient=bench@example.com',
          '-q',
          `--output=${path.join(home, 'enc')}`,
          '--roll=1',
        ],
        { GNUPGHOME: gnupg },
      );
      enc.push(e.ms);
      lastEnc = e.out.trim();
      await new Promise((r) => setTimeout(r, 1100)); // distinct file names (second resolution)
    }
    const rawSql = path.join(home, 'raw-0.sql');

    say('[3/5] baseline restore: createdb + psql -f into a second server…');
    const rawDir = path.join(home, 'rawdb');
    const rawInst = replicator.createPgInstance({ dataDir: rawDir, port: rawPort });
    const tInit = Date.now();
    await replicator.initDataDir(rawInst);
    await replicator.startPostgres(rawInst);
    const initMs = Date.now() - tInit;
    stops.push(() => replicator.stopPostgres(rawInst));
    const rawSock = replicator.socketDirFor(rawDir);
    // The dump grants to the app role (migration 0004): the raw server needs it as the node has it.
    psql(rawPort, rawSock, 'postgres', 'create role keytrustee_app');
    const rawRestore = [];
    for (let i = 0; i < 3; i++) {
      psql(rawPort, rawSock, 'postgres', 'drop database if exists kt_raw');
      const t = process.hrtime.bigint();
      psql(rawPort, rawSock, 'postgres', 'create database kt_raw');
      timed(
        path.join(bin, 'psql'),
        [
          '-X',
          '-q',
          '-v',
          'ON_ERROR_STOP=1',
          '--single-transaction',
          '-h',
          rawSock,
          '-p',
          String(rawPort),
          '-U',
          'keytrustee',
          '-d',
          'kt_raw',
          '-f',
          rawSql,
        ],
        { PGOPTIONS: '-c synchronous_commit=local' },
      );
      rawRestore.push(Number(process.hrtime.bigint() - t) / 1e6);
    }

    say('[4/5] ktadmin restore --from (encrypted backup, 3 runs)…');
    const restore = [];
    for (let i = 0; i < 3; i++) {
      const rc = path.join(restoreHome, 'confdir');
      const args = [
        KTADMIN,
        '--confdir',
        rc,
        'restore',
        '--from',
        lastEnc,
        '--pg-rootdir',
        path.join(restoreHome, 'db'),
        '--port',
        String(restorePort),
        '--slave',
        'localhost:1',
      ];
      if (i > 0) args.push('--force');
      fs.mkdirSync(restoreHome, { recursive: true, mode: 0o755 });
      restore.push(timed(process.execPath, args, { GNUPGHOME: gnupg }).ms);
      stops.push(() =>
        replicator.stopPostgres(
          replicator.createPgInstance({ dataDir: path.join(restoreHome, 'db'), port: restorePort }),
        ),
      );
      await replicator.stopPostgres(
        replicator.createPgInstance({ dataDir: path.join(restoreHome, 'db'), port: restorePort }),
      );
    }

    const m = (xs) => median(xs);
    const sizes = {
      sql: fs.statSync(rawSql).size,
      clear: fs.statSync(lastClear).size,
      enc: fs.statSync(lastEnc).size,
    };
    const row = (what, ms, base, baseMs) =>
      `| ${what} | ${ms.toFixed(0)} | ${base} | ${baseMs.toFixed(0)} | ${(ms / baseMs).toFixed(2)} |`;
    const table = [
      '| step | median ms | baseline (same data, same run) | baseline ms | ratio |',
      '|---|---:|---|---:|---:|',
      row('`ktbackup --cleartext`', m(clear), '`pg_dump -f`', m(rawDump)),
      row('`ktbackup --gpg-recipient`', m(enc), '`pg_dump -f`', m(rawDump)),
      row(
        '`ktadmin restore --from` (encrypted; creates the cluster)',
        m(restore),
        '`createdb` + `psql -f` (into a running server)',
        m(rawRestore),
      ),
      row(
        '`ktadmin restore --from` minus cluster creation',
        m(restore) - initMs,
        '`createdb` + `psql -f`',
        m(rawRestore),
      ),
      `| cluster creation (initdb + start), measured | ${initMs} | — | — | — |`,
    ].join('\n');
    say(`[5/5] done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    say(
      `${N.toLocaleString()} deposits; dump ${(sizes.sql / 1048576).toFixed(1)} MiB, cleartext tarball ${(sizes.clear / 1048576).toFixed(1)} MiB, encrypted ${(sizes.enc / 1048576).toFixed(1)} MiB\n`,
    );
    say(table);
    const out = path.join(__dirname, 'backup-results.md');
    fs.writeFileSync(
      out,
      `# Backup and restore timings\n\nMeasured ${new Date().toISOString()} on ${os.cpus().length} cores by \`npm run bench:backup\`: ${N.toLocaleString()} deposits, medians of 3.\n\n${table}\n`,
    );
    say(`\nwritten to ${path.relative(ROOT, out)}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    fs.rmSync(home, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
});
