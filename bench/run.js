#!/usr/bin/env node
/*
 * `npm run bench` (issue 12): every row against its physical baseline measured in the same run on
 * the same machine, as ratios. Regenerates bench/RESULTS.md and bench/results.json.
 * Not part of `npm test`. Usage: npm run bench [-- --quick] [-- --seconds N]
 *   --quick: shorter measuring windows, backup/restore on 10,000 deposits instead of 100,000.
 * The per-client rate limit (RATE_LIMIT_PER_SECOND, default 500) is raised to 1,000,000 in both
 * nodes' keytrustee.conf so it never caps a row.
 */
'use strict';
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { freePort, killTree, healthStatus, registerBenchClient } = require('./lib');
const server = require('../packages/server/dist');
const sdk = require('../packages/sdk/dist');
const replicator = require('../packages/replicator/dist');

const ROOT = path.join(__dirname, '..');
const KTADMIN = path.join(ROOT, 'packages/server/bin/ktadmin.js');
const QUICK = process.argv.includes('--quick');
const secArg = process.argv.indexOf('--seconds');
const SECONDS = Math.min(30, Math.max(1, secArg > 0 ? Number(process.argv[secArg + 1]) : QUICK ? 3 : 5));
const ROUNDS = QUICK ? 1 : 2;
const READERS = 32;
const WRITERS = 8;
const RATE_LIMIT = 1_000_000;
const STEPS = 11;
const t0 = Date.now();
let stepNo = 0;
const step = (m) =>
  process.stdout.write(`[${++stepNo}/${STEPS}] ${((Date.now() - t0) / 1000).toFixed(0)}s ${m}\n`);
const note = (m) => process.stdout.write(`      ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

function run(bin, args, opts = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000, ...opts });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0)
    throw new Error(
      `${path.basename(bin)} ${args.slice(0, 4).join(' ')} failed: ${r.stderr || r.stdout || r.error}`,
    );
  return { ms, out: r.stdout };
}

const ktadmin = (confdir, args) => run(process.execPath, [KTADMIN, '--confdir', confdir, ...args]);

async function waitUntil(what, fn, timeoutMs = 60_000, everyMs = 10) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** RSS of a process in MiB (/proc/PID/status VmRSS). */
function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system) of a process so far, ms (/proc/PID/stat, clock ticks of 10 ms). */
function cpuMs(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * `callers` loops of `op` for SECONDS: ops/s, per-op latencies (ms), and CPU per operation of this
 * (the calling) process and of `serverPid`. Any failure is counted.
 */
async function load(callers, op, serverPid) {
  const cpu0 = process.cpuUsage();
  const srv0 = serverPid ? cpuMs(serverPid) : 0;
  const end = Date.now() + SECONDS * 1000;
  const lat = [];
  let errors = 0;
  let firstError;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async (_x, c) => {
      for (let i = 0; Date.now() < end; i++) {
        const t = process.hrtime.bigint();
        try {
          await op(c, i);
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        } catch (e) {
          errors += 1;
          firstError ??= e;
        }
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (firstError) note(`${errors} errors, first: ${firstError.code ?? ''} ${firstError.message}`);
  const cpu = process.cpuUsage(cpu0);
  const n = Math.max(1, lat.length);
  return {
    opsPerSec: lat.length / secs,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    errors,
    clientCpuMsPerOp: (cpu.user + cpu.system) / 1000 / n,
    serverCpuMsPerOp: serverPid ? (cpuMs(serverPid) - srv0) / n : undefined,
  };
}

/** The median round (by ops/s) of several. */
const medianRound = (rounds) => {
  const s = [...rounds].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return s[Math.floor(s.length / 2)];
};

/** Raw PUT over mTLS without the SDK's retries: the HTTP status and error code as the node answers. */
function rawPut(agent, url, name) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ value: Buffer.from('probe').toString('base64') });
    const req = https.request(
      `${url}/v1/deposits/${name}`,
      {
        method: 'PUT',
        agent,
        timeout: 4000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let code = '';
          try {
            code = JSON.parse(text).error?.code ?? '';
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode, code });
        });
      },
    );
    req.on('error', (e) => resolve({ status: 0, code: e.code ?? 'NETWORK' }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** Quickstart baseline: raw initdb + start + pg_basebackup -R + start + synchronous_standby_names, until sync. */
function rawPair(home, ports) {
  const bin = replicator.findPgBinDir();
  const dir = path.join(home, 'raw');
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('chown', ['keytrustee:keytrustee', dir]);
  const as = (tool, args) =>
    run('runuser', ['-u', 'keytrustee', '--', path.join(bin, tool), ...args], { cwd: '/tmp' });
  const p = path.join(dir, 'p');
  const s = path.join(dir, 's');
  const t = process.hrtime.bigint();
  as('initdb', ['-D', p, '-U', 'postgres', '--data-checksums', '--auth-local=trust', '--auth-host=trust']);
  fs.appendFileSync(
    p + '/postgresql.conf',
    `port = ${ports[0]}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nwal_level = replica\n`,
  );
  as('pg_ctl', ['-D', p, '-w', '-l', path.join(dir, 'p.log'), 'start']);
  as('psql', [
    '-X',
    '-q',
    '-h',
    dir,
    '-p',
    String(ports[0]),
    '-U',
    'postgres',
    '-c',
    "select pg_create_physical_replication_slot('s')",
  ]);
  as('pg_basebackup', [
    '-D',
    s,
    '-h',
    '127.0.0.1',
    '-p',
    String(ports[0]),
    '-U',
    'postgres',
    '-R',
    '-X',
    'stream',
    '-S',
    's',
    '-c',
    'fast',
  ]);
  fs.appendFileSync(s + '/postgresql.conf', `port = ${ports[1]}\n`);
  // -R wrote primary_conninfo into postgresql.auto.conf (read last) without application_name.
  fs.appendFileSync(
    s + '/postgresql.auto.conf',
    `primary_conninfo = 'host=127.0.0.1 port=${ports[0]} user=postgres application_name=s'\n`,
  );
  as('pg_ctl', ['-D', s, '-w', '-l', path.join(dir, 's.log'), 'start']);
  as('psql', [
    '-X',
    '-q',
    '-h',
    dir,
    '-p',
    String(ports[0]),
    '-U',
    'postgres',
    '-c',
    "alter system set synchronous_standby_names = 's'",
    '-c',
    'select pg_reload_conf()',
  ]);
  let synced = false;
  for (let i = 0; i < 300 && !synced; i++) {
    const r = as('psql', [
      '-X',
      '-At',
      '-h',
      dir,
      '-p',
      String(ports[0]),
      '-U',
      'postgres',
      '-c',
      "select count(*) from pg_stat_replication where sync_state = 'sync'",
    ]);
    synced = r.out.trim() === '1';
  }
  if (!synced) throw new Error('raw pair: the standby never became synchronous');
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  const stop = () => {
    for (const d of [s, p])
      spawnSync(
        'runuser',
        ['-u', 'keytrustee', '--', path.join(bin, 'pg_ctl'), '-D', d, '-m', 'immediate', 'stop'],
        { cwd: '/tmp' },
      );
  };
  return { ms, stop };
}

/** Bytes of every PostgreSQL log file under `dir` (logging_collector writes DATA/log/*.log). */
function pgLogs(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (/\/log\/[^/]+\.log$/.test(f)) out.push(f);
    }
  };
  walk(dir);
  return out;
}

/**
 * SQL round trips per request of the request pool (application_name keytrusteed): log_statement=all
 * and a log_line_prefix with the application name for the duration of `n` calls of `op`, then the
 * `statement:`/`execute` lines of that pool counted and divided by n.
 */
async function roundTrips(psqlSuper, dataDir, n, op) {
  psqlSuper(
    "alter system set log_statement = 'all'",
    "alter system set log_line_prefix = '[%a] '",
    'select pg_reload_conf()',
  );
  await sleep(500);
  const sizes = new Map(pgLogs(dataDir).map((f) => [f, fs.statSync(f).size]));
  for (let i = 0; i < n; i++) await op(i);
  await sleep(300);
  psqlSuper(
    'alter system reset log_statement',
    'alter system reset log_line_prefix',
    'select pg_reload_conf()',
  );
  let count = 0;
  for (const f of pgLogs(dataDir)) {
    const text = fs
      .readFileSync(f)
      .subarray(sizes.get(f) ?? 0)
      .toString('utf8');
    count += text
      .split('\n')
      .filter((l) => l.startsWith('[keytrusteed] ') && /LOG:\s+(statement|execute)/.test(l)).length;
  }
  return count / n;
}

/** SDK heap of a DepositCache holding 100,000 entries (32-byte values), in a fresh process. */
function sdkCacheHeap() {
  const script = `
    const { DepositCache } = require(${JSON.stringify(path.join(ROOT, 'packages/sdk/dist'))});
    const collect = global.gc;
    collect(); collect();
    const before = process.memoryUsage().heapUsed;
    const cache = new DepositCache({ maxEntries: 100000, ttlMs: 5000, serveStaleOnError: true, maxStaleMs: 900000 });
    const value = Buffer.alloc(60, 7).toString('base64');
    for (let i = 0; i < 100000; i++) {
      cache.store({ name: 'deposit-' + i, version: 1, value, metadata: null, createdAt: new Date().toISOString() }, false);
    }
    collect(); collect();
    const after = process.memoryUsage().heapUsed;
    process.stdout.write(String((after - before) / 1048576) + ' ' + (cache.fresh('deposit-99999', 1) ? 1 : 0));
  `;
  const r = run(process.execPath, ['--expose-gc', '-e', script]);
  const [mib, ok] = r.out.trim().split(' ');
  if (ok !== '1') throw new Error('cache lookup after filling failed');
  return Number(mib);
}

async function main() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-'));
  fs.chmodSync(home, 0o755);
  const ports = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const children = new Map();
  const extra = [];
  const closers = [];
  let cluster;
  const rows = [];
  const cpuTable = [];
  const row = (r) => {
    rows.push(r);
    const fmt = (v) => (typeof v === 'number' ? v.toFixed(v < 10 ? 2 : 0) : (v ?? ''));
    note(
      `→ ${r.row}: ${fmt(r.value)} ${r.unit ?? ''} (baseline ${fmt(r.baselineValue)}) ratio ${fmt(r.ratio)} ${r.met === undefined ? '' : r.met ? 'met' : 'NOT met'}`,
    );
  };
  const startServer = async (n) => {
    const child = server.spawnNodeServer(n, { logLevel: 'warn' });
    children.set(n.name, child);
    await server.waitForHealth(n.url, 30_000);
    return child;
  };
  const stopAll = async () => {
    for (const close of closers) await Promise.resolve(close()).catch(() => undefined);
    for (const c of [...children.values(), ...extra])
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (cluster) await server.stopLocalDatabases(cluster).catch(() => undefined);
    for (const n of cluster ? [cluster.a, cluster.b] : []) killTree(replicator.readPostmasterPid(n.dbDir));
    fs.rmSync(home, { recursive: true, force: true });
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  const load1 = os.loadavg();
  try {
    // (6) Quickstart.
    step('quickstart baseline: raw initdb + pg_basebackup, synchronous pair…');
    const raw = rawPair(home, [ports[4], ports[5]]);
    raw.stop();
    step('quickstart: setupLocalCluster + both keytrusteed until writable…');
    const q0 = Date.now();
    cluster = await server.setupLocalCluster({
      home,
      apiPorts: [ports[0], ports[1]],
      dbPorts: [ports[2], ports[3]],
    });
    for (const n of [cluster.a, cluster.b])
      server.updateKeytrusteeConf(n.confdir, { RATE_LIMIT_PER_SECOND: RATE_LIMIT });
    await Promise.all([startServer(cluster.a), startServer(cluster.b)]);
    await waitUntil('writable', async () => (await healthStatus(cluster.a.url, '/writable')) === 200);
    const quickMs = Date.now() - q0;
    row({
      row: '6',
      what: 'Quickstart: `npm start` path (setupLocalCluster + 2× keytrusteed) to writable',
      baseline: 'raw initdb + start + pg_basebackup -R + start + sync standby',
      value: quickMs / 1000,
      unit: 's',
      baselineValue: raw.ms / 1000,
      ratio: quickMs / raw.ms,
      target: '≤ 20 s',
      met: quickMs <= 20_000,
    });

    const configPath = await registerBenchClient(sdk, cluster, home);
    const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    const client = sdk.TrusteeClient.fromConfigFile(configPath, { cache: { maxEntries: 0 } });
    closers.push(() => client.close());
    await client.put('bench-read', Buffer.alloc(32, 7));
    const owner = server.keyFingerprint(cfg.privateKey);
    const keyA = () => children.get('node-a').pid;

    // (1) Read.
    step(
      `read: bare https+mTLS+pg baseline vs SDK get (cache off), ${READERS} callers, ${ROUNDS}×${SECONDS}s each…`,
    );
    const bare = spawn(
      process.execPath,
      [path.join(__dirname, 'bare-server.js'), cluster.a.confdir, String(ports[6]), owner, 'bench-read'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    extra.push(bare);
    await new Promise((resolve, reject) => {
      bare.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      bare.on('exit', (c) => reject(new Error(`bare server exited ${c}`)));
    });
    const bareAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 64,
      cert: cfg.certificate,
      key: cfg.privateKey,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    });
    closers.push(() => bareAgent.destroy());
    const bareGet = () =>
      new Promise((resolve, reject) => {
        https
          .get(`https://127.0.0.1:${ports[6]}/v1/deposits/bench-read`, { agent: bareAgent }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () =>
              res.statusCode === 200
                ? resolve(JSON.parse(Buffer.concat(chunks).toString()))
                : reject(new Error(`status ${res.statusCode}`)),
            );
          })
          .on('error', reject);
      });
    await bareGet();
    const idleRss = rssMiB(keyA());
    const readBase = [];
    const readSdk = [];
    let peakRss = idleRss;
    for (let r = 0; r < ROUNDS; r++) {
      readBase.push(await load(READERS, bareGet, bare.pid));
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMiB(keyA()))), 200);
      readSdk.push(await load(READERS, () => client.get('bench-read'), keyA()));
      clearInterval(sampler);
    }
    bare.kill('SIGTERM');
    const rb = medianRound(readBase);
    const rs = medianRound(readSdk);
    cpuTable.push(
      `| read (row 1) | SDK get → keytrusteed | ${rs.clientCpuMsPerOp.toFixed(2)} | ${rs.serverCpuMsPerOp.toFixed(2)} |`,
      `| read (row 1) | node:https client → bare server | ${rb.clientCpuMsPerOp.toFixed(2)} | ${rb.serverCpuMsPerOp.toFixed(2)} |`,
    );
    row({
      row: '1',
      what: `Read: SDK get, cache off, ${READERS} callers, mTLS, active`,
      baseline: 'bare node:https (same TLS options, mTLS, keep-alive) + one PK SELECT, same PG/role',
      value: rs.opsPerSec,
      unit: 'ops/s',
      p50: rs.p50,
      p99: rs.p99,
      baselineValue: rb.opsPerSec,
      baselineP50: rb.p50,
      baselineP99: rb.p99,
      ratio: rs.opsPerSec / rb.opsPerSec,
      target: '≥ 0.85',
      met: rs.opsPerSec / rb.opsPerSec >= 0.85,
      errors: rs.errors,
    });

    // (2) Write.
    step(
      `write: SDK put (${WRITERS} callers) vs pgbench single-row INSERT (${WRITERS} clients), remote_apply and local…`,
    );
    const sock = replicator.socketDirFor(cluster.a.dbDir);
    const pgArgs = ['-h', sock, '-p', String(cluster.a.dbPort), '-U', replicator.DB_SUPERUSER];
    const pgbin = replicator.findPgBinDir();
    run(path.join(pgbin, 'psql'), [
      '-X',
      '-q',
      ...pgArgs,
      '-d',
      replicator.DB_NAME,
      '-c',
      'create table if not exists bench_insert (id bigserial primary key, owner text, name text, v bytea)',
    ]);
    const script = path.join(home, 'insert.sql');
    fs.writeFileSync(script, "insert into bench_insert (owner, name, v) values ('o', 'n', '\\x00112233');\n");
    const pgbench = (mode) => {
      const r = run(
        path.join(pgbin, 'pgbench'),
        [
          '-n',
          '-f',
          script,
          '-c',
          String(WRITERS),
          '-j',
          '2',
          '-T',
          String(SECONDS),
          '-r',
          ...pgArgs,
          replicator.DB_NAME,
        ],
        { env: { ...process.env, PGOPTIONS: `-c synchronous_commit=${mode}` } },
      );
      const tps = Number(/tps = ([\d.]+)/.exec(r.out)[1]);
      const latMs = Number(/latency average = ([\d.]+) ms/.exec(r.out)?.[1] ?? NaN);
      return { opsPerSec: tps, p50: latMs, p99: NaN };
    };
    const wSdk = [];
    const wApply = [];
    const wLocal = [];
    for (let r = 0; r < ROUNDS; r++) {
      wApply.push(pgbench('remote_apply'));
      wLocal.push(pgbench('local'));
      wSdk.push(
        await load(WRITERS, (c, i) => client.put(`w${r}-${c}-${i}`, Buffer.alloc(32, i & 255)), keyA()),
      );
    }
    const ws = medianRound(wSdk);
    cpuTable.push(
      `| write (row 2) | SDK put → keytrusteed | ${ws.clientCpuMsPerOp.toFixed(2)} | ${ws.serverCpuMsPerOp.toFixed(2)} |`,
    );
    const wa = medianRound(wApply);
    const wl = medianRound(wLocal);
    row({
      row: '2',
      what: `Write: SDK put, ${WRITERS} callers (synchronous pair, remote_apply)`,
      baseline: `pgbench single-row INSERT, ${WRITERS} clients, remote_apply, same pair`,
      value: ws.opsPerSec,
      unit: 'ops/s',
      p50: ws.p50,
      p99: ws.p99,
      baselineValue: wa.opsPerSec,
      baselineP50: wa.p50,
      ratio: ws.opsPerSec / wa.opsPerSec,
      target: '≥ 0.80',
      met: ws.opsPerSec / wa.opsPerSec >= 0.8,
      errors: ws.errors,
    });
    row({
      row: '2b',
      what: 'Cost of synchronous replication: pgbench remote_apply vs local',
      baseline: `pgbench single-row INSERT, ${WRITERS} clients, synchronous_commit=local`,
      value: wa.opsPerSec,
      unit: 'ops/s',
      p50: wa.p50,
      baselineValue: wl.opsPerSec,
      baselineP50: wl.p50,
      ratio: wa.opsPerSec / wl.opsPerSec,
      target: '(information)',
    });

    // SQL round trips per request (request pool only), counted in the active's PostgreSQL log.
    const psqlSuper = (...cmds) =>
      run(path.join(pgbin, 'psql'), [
        '-X',
        '-q',
        ...pgArgs,
        '-d',
        replicator.DB_NAME,
        ...cmds.flatMap((c) => ['-c', c]),
      ]);
    const rtGet = await roundTrips(psqlSuper, cluster.a.dbDir, 20, () => client.get('bench-read'));
    const rtPut = await roundTrips(psqlSuper, cluster.a.dbDir, 20, (i) =>
      client.put(`rt-${i}`, Buffer.alloc(32, 1)),
    );
    row({
      row: 'rt',
      what: 'SQL round trips per request of the request pool (PostgreSQL log, log_statement=all), GET / PUT',
      baseline: 'bare server: 1 per GET; pgbench: 1 per INSERT (autocommit)',
      value: `${rtGet.toFixed(1)} / ${rtPut.toFixed(1)}`,
      unit: '',
      target: '(information)',
    });

    // (8) Memory.
    step('memory: keytrusteed RSS idle / under read load; SDK heap with 100k cached entries…');
    row({
      row: '8a',
      what: 'Memory: keytrusteed RSS idle → peak under the read load',
      baseline: 'idle RSS',
      value: peakRss,
      unit: 'MiB',
      baselineValue: idleRss,
      ratio: peakRss / idleRss,
      target: '(information)',
    });
    const heap = sdkCacheHeap();
    row({
      row: '8b',
      what: 'Memory: SDK DepositCache heap with 100,000 entries (32-byte values)',
      baseline: '—',
      value: heap,
      unit: 'MiB',
      target: '(information)',
    });

    // (4) Write refusal and resume: kill the passive (keytrusteed + PostgreSQL).
    step('write refusal: SIGKILL the passive (node-b) → first PASSIVE_UNAVAILABLE; restart → first write…');
    const probeAgent = new https.Agent({
      keepAlive: true,
      cert: cfg.certificate,
      key: cfg.privateKey,
      rejectUnauthorized: false,
    });
    closers.push(() => probeAgent.destroy());
    const probe = (i) => rawPut(probeAgent, cluster.a.url, `probe-${i}`);
    if ((await probe('warm')).status !== 201) throw new Error('probe write failed before the kill');
    const kill0 = Date.now();
    children.get('node-b').kill('SIGKILL');
    killTree(replicator.readPostmasterPid(cluster.b.dbDir));
    let refusedMs = NaN;
    let otherAnswers = 0;
    for (let i = 0; i < 2000 && Date.now() - kill0 < 30_000; i++) {
      const r = await probe(`k${i}`);
      if (r.code === 'PASSIVE_UNAVAILABLE') {
        refusedMs = Date.now() - kill0;
        break;
      }
      if (r.status !== 201) otherAnswers += 1;
      await sleep(5);
    }
    const restart0 = Date.now();
    ktadmin(cluster.b.confdir, ['db', '--start', '--background']);
    let resumeMs = NaN;
    for (let i = 0; i < 6000 && Date.now() - restart0 < 60_000; i++) {
      if ((await probe(`r${i}`)).status === 201) {
        resumeMs = Date.now() - restart0;
        break;
      }
      await sleep(5);
    }
    await startServer(cluster.b);
    row({
      row: '4a',
      what: 'Write refusal: passive SIGKILLed (server + PostgreSQL) → first PASSIVE_UNAVAILABLE',
      baseline: `write-gate poll period (200 ms); ${otherAnswers} other non-201 answers before`,
      value: refusedMs,
      unit: 'ms',
      baselineValue: 200,
      ratio: refusedMs / 200,
      target: '≤ 1000 ms',
      met: refusedMs <= 1000,
    });
    row({
      row: '4b',
      what: 'Write resume: passive PostgreSQL restarted (`ktadmin db --start --background`) → first successful write',
      baseline: 'includes the PostgreSQL start itself',
      value: resumeMs,
      unit: 'ms',
      target: '≤ 3000 ms',
      met: resumeMs <= 3000,
    });

    // (3) Failover: reads at a fixed rate while the active is SIGKILLed.
    step('failover: reads every 5 ms (SDK, cache off, both endpoints) while the active is SIGKILLed…');
    await waitUntil('writable again', async () => (await healthStatus(cluster.a.url, '/writable')) === 200);
    const foClient = sdk.TrusteeClient.fromConfigFile(configPath, { cache: { maxEntries: 0 } });
    closers.push(() => foClient.close());
    const successes = [];
    const lats = [];
    let foErrors = 0;
    let foFirstErr;
    let stopReads = false;
    const reader = (async () => {
      const inflight = new Set();
      while (!stopReads) {
        const t = Date.now();
        const p = foClient.get('bench-read').then(
          () => {
            successes.push(Date.now());
            lats.push(Date.now() - t);
          },
          (e) => {
            foErrors += 1;
            foFirstErr ??= e;
          },
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        await sleep(5);
      }
      await Promise.all(inflight);
    })();
    await sleep(1000);
    const killAt = Date.now();
    children.get('node-a').kill('SIGKILL');
    killTree(replicator.readPostmasterPid(cluster.a.dbDir));
    await sleep(3000);
    stopReads = true;
    await reader;
    let gap = 0;
    for (let i = 1; i < successes.length; i++)
      if (successes[i] >= killAt - 1000) gap = Math.max(gap, successes[i] - successes[i - 1]);
    if (foFirstErr)
      note(`failover read errors: ${foErrors}, first: ${foFirstErr.code} ${foFirstErr.message}`);
    row({
      row: '3',
      what: 'Failover: reads every 5 ms while the active (server + PostgreSQL) is SIGKILLed; longest gap between successful reads',
      baseline: 'read period 5 ms',
      value: gap,
      unit: 'ms gap',
      p50: pct(lats, 50),
      p99: pct(lats, 99),
      baselineValue: 5,
      ratio: gap / 5,
      target: 'gap ≤ 500 ms, 0 errors',
      met: gap <= 500 && foErrors === 0,
      errors: foErrors,
    });

    // (7) Recovery: promote the passive, rejoin the old active (pg_rewind), time to writable.
    step('recovery: ktadmin promote node-b, restart node-a, ktadmin rejoin (pg_rewind), until writable…');
    const rec0 = Date.now();
    const promote = ktadmin(cluster.b.confdir, ['promote']);
    const pgPromoteMs = Number(/promotion took (\d+) ms/.exec(promote.out)?.[1] ?? NaN);
    ktadmin(cluster.a.confdir, ['db', '--start', '--background']);
    await startServer(cluster.a);
    const rejoin = ktadmin(cluster.a.confdir, ['rejoin', '--master', `localhost:${cluster.b.dbPort}`]);
    const rewindMs = Number(/pg_rewind done in (\d+) ms/.exec(rejoin.out)?.[1] ?? NaN);
    await waitUntil('node-b writable', async () => (await healthStatus(cluster.b.url, '/writable')) === 200);
    const recMs = Date.now() - rec0;
    await client.put('after-recovery', Buffer.from('x'));
    row({
      row: '7',
      what: 'Recovery: `ktadmin promote` (passive) + restart old active + `ktadmin rejoin` → writable pair (a put succeeds)',
      baseline: 'pg_promote() + pg_rewind inside those commands',
      value: recMs,
      unit: 'ms',
      baselineValue: pgPromoteMs + rewindMs,
      ratio: recMs / (pgPromoteMs + rewindMs),
      target: '(none set)',
    });
    await stopAll();
    cluster = undefined;

    // (5) Backup/restore: bench/backup.js (its own node; it measures raw pg_dump/psql in the same run).
    const deposits = QUICK ? 10_000 : 100_000;
    step(`backup/restore: bench/backup.js --deposits ${deposits} (vs raw pg_dump / createdb + psql)…`);
    run(process.execPath, [path.join(__dirname, 'backup.js'), '--deposits', String(deposits)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const md = fs.readFileSync(path.join(__dirname, 'backup-results.md'), 'utf8');
    const cell = (label) => {
      const line = md.split('\n').find((l) => l.startsWith(`| ${label}`));
      if (!line) return undefined;
      const c = line.split('|').map((x) => x.trim());
      return { ms: Number(c[2]), base: Number(c[4]), ratio: Number(c[5]) };
    };
    const b1 = cell('`ktbackup --gpg-recipient`');
    const b2 = cell('`ktadmin restore --from` (encrypted; creates the cluster)');
    if (b1)
      row({
        row: '5a',
        what: `Backup of ${deposits.toLocaleString()} deposits: \`ktbackup --gpg-recipient\``,
        baseline: '`pg_dump -f` same data',
        value: b1.ms,
        unit: 'ms',
        baselineValue: b1.base,
        ratio: b1.ratio,
        target: '≤ 1.5×',
        met: b1.ratio <= 1.5,
      });
    if (b2)
      row({
        row: '5b',
        what: `Restore of ${deposits.toLocaleString()} deposits: \`ktadmin restore --from\` (creates the cluster)`,
        baseline: '`createdb` + `psql -f` into a running server',
        value: b2.ms,
        unit: 'ms',
        baselineValue: b2.base,
        ratio: b2.ratio,
        target: '≤ 1.5×',
        met: b2.ratio <= 1.5,
      });
    step('writing bench/RESULTS.md and bench/results.json…');
  } finally {
    await stopAll();
  }
  const totalS = (Date.now() - t0) / 1000;
  const load2 = os.loadavg();
  const fmt = (v, d = 0) =>
    typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—';
  const table = [
    '| row | what | baseline (same run) | ours | p50 ms | p99 ms | baseline value | ratio | target | met? |',
    '|---|---|---|---:|---:|---:|---:|---:|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.row} | ${r.what} | ${r.baseline} | ${fmt(r.value, r.value < 10 ? 2 : 0)} ${r.unit ?? ''} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.baselineValue, r.baselineValue < 10 ? 2 : 0)}${r.baselineP50 ? ` (p50 ${fmt(r.baselineP50, 1)}${r.baselineP99 ? `, p99 ${fmt(r.baselineP99, 1)}` : ''})` : ''} | ${fmt(r.ratio, 2)} | ${r.target} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'}${r.errors ? ` (${r.errors} errors)` : ''} |`,
    ),
  ].join('\n');
  const meta = {
    measuredAt: new Date().toISOString(),
    cores: os.cpus().length,
    loadAverageAtStart: load1,
    loadAverageAtEnd: load2,
    quick: QUICK,
    secondsPerWindow: SECONDS,
    rounds: ROUNDS,
    rateLimitPerSecond: RATE_LIMIT,
    totalSeconds: totalS,
  };
  fs.writeFileSync(
    path.join(__dirname, 'results.json'),
    JSON.stringify({ ...meta, rows, cpuPerOp: cpuTable }, null, 2) + '\n',
  );
  const cpuMd = cpuTable.length
    ? `\nCPU per operation in the same windows (ms; PostgreSQL's share not included):\n\n| row | path | load generator process (SDK or bare client) | server process |\n|---|---|---:|---:|\n${cpuTable.join('\n')}\n`
    : '';
  const notesFile = path.join(__dirname, 'RESULTS-notes.md');
  const notes = fs.existsSync(notesFile) ? `\n${fs.readFileSync(notesFile, 'utf8')}` : '';
  fs.writeFileSync(
    path.join(__dirname, 'RESULTS.md'),
    `# Benchmarks against physical baselines\n\nGenerated by \`npm run bench\`${QUICK ? ' --quick' : ''} at ${meta.measuredAt} on ${meta.cores} cores in ${totalS.toFixed(0)} s; load average (1/5/15 min) ${load1.map((x) => x.toFixed(2)).join(' / ')} at start, ${load2.map((x) => x.toFixed(2)).join(' / ')} at end. Windows of ${SECONDS} s, median of ${ROUNDS} round(s), alternating ours and the baseline. The per-client rate limit is raised to RATE_LIMIT_PER_SECOND=${RATE_LIMIT.toLocaleString('en-US')} in both nodes' keytrustee.conf for the run, so it caps no row. Ratios are what count on this shared machine; absolute numbers vary with its load.\n\n${table}\n${cpuMd}${notes}`,
  );
  process.stdout.write(
    `done in ${totalS.toFixed(0)} s; bench/RESULTS.md and bench/results.json written\n\n${table}\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`error: ${e.stack}\n`);
  process.exit(1);
});
