#!/usr/bin/env node
/*
 * Key HSM throughput on a real local pair (issue 14): writes (PUT through the write path) with
 * the master key file and then with the KEK on a SoftHSM2 token; reads (GET of a 32-byte deposit,
 * SDK read cache off) of HSM-sealed rows (data keys cached, the default) against rows sealed
 * before the switch, which the same servers open with the master key file, rounds interleaved;
 * then with a data-key cache of one entry and reads alternating between two data keys, so that
 * every read unwraps its data key on the token.
 * Not part of `npm test`. Usage: npm run bench:hsm [-- --seconds N]
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, registerBenchClient, buildPair, removePair, writeResults, runBench } = require('./lib');
const server = require('../packages/server/dist');
const sdk = require('../packages/sdk/dist');

const ROOT = path.join(__dirname, '..');
const KTADMIN = path.join(ROOT, 'packages/server/bin/ktadmin.js');
const MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find(
  (p) => fs.existsSync(p),
);
const i = process.argv.indexOf('--seconds');
const SECONDS = Math.min(60, Math.max(1, i > 0 ? Number(process.argv[i + 1]) || 5 : 5));
const ROUNDS = 3;
const READERS = 32;
const WRITERS = 8;
const DEPOSITS = 100;
const say = (m) => process.stdout.write(`${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function opsPerSecond(concurrency, op) {
  const end = Date.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let n = 0; Date.now() < end; n++) {
        await op(w, n);
        ops += 1;
      }
    }),
  );
  return ops / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function ktadmin(confdir, args) {
  const r = spawnSync(process.execPath, [KTADMIN, '--confdir', confdir, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`ktadmin ${args[0]} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function main() {
  if (!MODULE) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const t0 = Date.now();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-hsm-'));
  fs.chmodSync(home, 0o755);
  // The token: its own SOFTHSM2_CONF, inherited by ktadmin and both keytrusteed children.
  const tokens = path.join(home, 'tokens');
  fs.mkdirSync(tokens, { mode: 0o700 });
  process.env.SOFTHSM2_CONF = path.join(home, 'softhsm2.conf');
  fs.writeFileSync(
    process.env.SOFTHSM2_CONF,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', 'bench', '--pin', '1234', '--so-pin', '5678'],
    {
      stdio: 'ignore',
    },
  );
  const pinFile = path.join(home, 'pin');
  fs.writeFileSync(pinFile, '1234\n', { mode: 0o600 });

  const children = {};
  const closers = [];
  let cluster;
  const stopServers = async () => {
    for (const c of Object.values(children)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  };
  const startServers = async () => {
    for (const n of ['a', 'b']) {
      children[n] = server.spawnNodeServer(cluster[n], { logLevel: 'warn' });
      await server.waitForHealth(cluster[n].url, 30_000);
    }
  };
  const stopAll = async () => {
    for (const close of closers) await close();
    for (const c of Object.values(children))
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await removePair(cluster, home);
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    say(`[1/4] building a local pair in ${home}…`);
    cluster = await buildPair(home);
    for (const n of [cluster.a, cluster.b])
      server.updateKeytrusteeConf(n.confdir, { RATE_LIMIT_PER_SECOND: 1_000_000 });
    await startServers();
    const configPath = await registerBenchClient(sdk, cluster, home);
    const open = () => {
      const c = sdk.TrusteeClient.fromConfigFile(configPath, { cache: { maxEntries: 0 } });
      closers.push(async () => c.close());
      return c;
    };
    let client = open();
    for (let d = 0; d < DEPOSITS; d++) await client.put(`bench-${d}`, Buffer.alloc(32, d));
    const read = (c, prefix) => (w, n) => c.get(`${prefix}-${(w * 7 + n) % DEPOSITS}`);
    const write = (c) => (w, n) => c.put(`bench-w-${w}`, Buffer.alloc(32, n % 256));
    const results = {};
    // Cases measured round by round, interleaved, so that load from elsewhere hits them alike.
    const measure = async (cases) => {
      for (const [label] of cases) results[label] = [];
      for (let r = 0; r < ROUNDS; r++)
        for (const [label, concurrency, op] of cases)
          results[label].push(await opsPerSecond(concurrency, op));
      for (const [label] of cases) say(`      ${label}: ${median(results[label]).toFixed(0)} ops/s`);
    };
    // Warm-up (JIT, connection pools), not counted.
    await opsPerSecond(READERS, read(client, 'bench'));
    await opsPerSecond(WRITERS, write(client));

    say(`[2/4] master key file: writes, ${ROUNDS} rounds × ${SECONDS} s…`);
    await measure([['write, file KEK', WRITERS, write(client)]]);

    say(
      '[3/4] KEK on a SoftHSM2 token (ktadmin keyhsm on both, restart): writes, then reads of file- and HSM-sealed rows…',
    );
    const flags = ['keyhsm', '--pkcs11-module', MODULE, '--token-label', 'bench', '--pin-file', pinFile];
    ktadmin(cluster.a.confdir, flags);
    ktadmin(cluster.b.confdir, flags);
    await stopServers();
    await startServers();
    for (let d = 0; d < DEPOSITS; d++) await client.put(`hsm-${d}`, Buffer.alloc(32, d));
    await measure([['write, HSM KEK', WRITERS, write(client)]]);
    // Rows sealed before the switch open with the master key file in the same server: the
    // fairest baseline for the HSM-sealed rows.
    await measure([
      ['read, file-sealed rows', READERS, read(client, 'bench')],
      ['read, HSM KEK (data keys cached)', READERS, read(client, 'hsm')],
    ]);

    say('[4/4] data-key cache of 1, reads alternating between two data keys (every read unwraps)…');
    // A new data key every second on the active for a moment: a second data key for the cold rows.
    for (const n of [cluster.a, cluster.b])
      server.updateKeytrusteeConf(n.confdir, { HSM_DATA_KEY_CACHE_SIZE: 1 });
    server.updateKeytrusteeConf(cluster.a.confdir, { HSM_DATA_KEY_MAX_AGE_SECONDS: 1 });
    await stopServers();
    await startServers();
    client = open();
    await sleep(2500);
    await client.put('hsm-second-key', Buffer.alloc(32, 1));
    await opsPerSecond(READERS, read(client, 'bench'));
    await measure([
      ['read, file-sealed rows (cache-1 servers)', READERS, read(client, 'bench')],
      [
        'read, HSM KEK, every read unwraps',
        READERS,
        (w, n) => client.get(n % 2 ? 'hsm-second-key' : `hsm-${(w * 7 + n) % DEPOSITS}`),
      ],
    ]);

    const rows = [
      ['write, file KEK', 'write, file KEK'],
      ['write, HSM KEK', 'write, file KEK'],
      ['read, file-sealed rows', 'read, file-sealed rows'],
      ['read, HSM KEK (data keys cached)', 'read, file-sealed rows'],
      ['read, HSM KEK, every read unwraps', 'read, file-sealed rows (cache-1 servers)'],
    ].map(([label, base]) => {
      const m = median(results[label]);
      return `| ${label} | ${m.toFixed(0)} | ${(m / median(results[base])).toFixed(2)} (vs ${base}) |`;
    });
    const table = ['| case | median ops/s | ratio |', '|---|---:|---|', ...rows].join('\n');
    say(`\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s\n\n${table}`);
    writeResults(
      'hsm-results.md',
      `# Key HSM throughput\n\nMeasured ${new Date().toISOString()} on ${os.cpus().length} cores by \`npm run bench:hsm\`: ` +
        `${READERS} readers / ${WRITERS} writers in the benchmark process (read cache off), ${ROUNDS} rounds of ${SECONDS} s per case (medians), ` +
        `two nodes, PostgreSQL and SoftHSM2 on the same box; load average at the end ${os.loadavg()[0].toFixed(1)} ` +
        `(other work shares the box: compare the ratios, not the absolute numbers).\n\n${table}\n`,
    );
  } finally {
    await stopAll();
  }
}

runBench(main);
