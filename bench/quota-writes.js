#!/usr/bin/env node
/*
 * Write throughput with per-client quotas (issue 16) on a real local pair: every PUT updates its
 * client's deposit_usage row in the write transaction, so writes of one client take turns on that
 * row lock while different clients do not. Two cases, rounds interleaved: 8 clients writing one
 * request at a time each, and 1 client with 8 requests in flight. Run it on a build without
 * quotas (the commit before) for the comparison.
 * Not part of `npm test`. Usage: npm run bench:quota [-- --seconds N]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, buildPair, removePair, runBench } = require('./lib');
const server = require('../packages/server/dist');
const sdk = require('../packages/sdk/dist');

const i = process.argv.indexOf('--seconds');
const SECONDS = Math.min(60, Math.max(1, i > 0 ? Number(process.argv[i + 1]) || 5 : 5));
const ROUNDS = 3;
const WRITERS = 8;
const say = (m) => process.stdout.write(`${m}\n`);

async function opsPerSecond(clients, op) {
  const end = Date.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    clients.map(async (c, w) => {
      for (let n = 0; Date.now() < end; n++) {
        await op(c, w, n);
        ops += 1;
      }
    }),
  );
  return ops / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-quota-'));
  fs.chmodSync(home, 0o755);
  const children = {};
  const clients = [];
  let cluster;
  const stopAll = async () => {
    for (const c of clients) c.close();
    for (const c of Object.values(children))
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await removePair(cluster, home);
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    say(`[1/3] building a local pair in ${home}…`);
    cluster = await buildPair(home);
    for (const n of [cluster.a, cluster.b])
      server.updateKeytrusteeConf(n.confdir, { RATE_LIMIT_PER_SECOND: 1_000_000 });
    for (const n of ['a', 'b']) {
      children[n] = server.spawnNodeServer(cluster[n], { logLevel: 'warn' });
      await server.waitForHealth(cluster[n].url, 30_000);
    }
    say(`[2/3] registering ${WRITERS} clients…`);
    for (let w = 0; w < WRITERS; w++) {
      const reg = await sdk.TrusteeClient.register({
        servers: [cluster.a.url, cluster.b.url],
        org: cluster.org,
        authCode: cluster.authCode,
        configPath: path.join(home, `client-${w}.conf`),
        skipSslCheck: true,
        keyBits: 2048,
      });
      reg.client.close();
      clients.push(
        sdk.TrusteeClient.fromConfigFile(path.join(home, `client-${w}.conf`), { cache: { maxEntries: 0 } }),
      );
    }
    // 50 names per writer: versions per name stay far below QUOTA_MAX_VERSIONS_PER_DEPOSIT.
    const put = (c, w, n) => c.put(`q-${w}-${n % 50}`, Buffer.alloc(32, n % 256));
    const oneClient = Array.from({ length: WRITERS }, () => clients[0]);
    const cases = [
      ['8 clients, 1 write in flight each', clients],
      ['1 client, 8 writes in flight', oneClient],
    ];
    await opsPerSecond(clients, put); // warm-up, not counted
    say(`[3/3] writes, ${ROUNDS} rounds × ${SECONDS} s, cases interleaved…`);
    const results = Object.fromEntries(cases.map(([label]) => [label, []]));
    for (let r = 0; r < ROUNDS; r++)
      for (const [label, cs] of cases) results[label].push(await opsPerSecond(cs, put));
    for (const [label] of cases)
      say(
        `      ${label}: ${median(results[label]).toFixed(0)} writes/s (rounds ${results[label].map((x) => x.toFixed(0)).join(', ')})`,
      );
  } finally {
    await stopAll();
  }
}

runBench(main);
