#!/usr/bin/env node
/*
 * KeyProvider throughput on a real local pair (issue 11): generateEncryptedKey and
 * decryptEncryptedKey ops/s, each against the raw deposit read path measured in the same run
 * (TrusteeClient.get of a 32-byte deposit with the read cache off: one mTLS round trip + one PK
 * select + envelope open). Rows with "cache off" make the KeyProvider go to the nodes every time
 * (EDEK cache off, read cache off: getCurrentKey/getKeyVersion = 2 reads in parallel); the others
 * use the defaults (EDEK cache 100/0.3, read cache 5 s).
 * Not part of `npm test`. Usage: npm run bench:kms [-- --seconds N --concurrency C]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, registerBenchClient, buildPair, removePair, writeResults, runBench } = require('./lib');
const server = require('../packages/server/dist');
const sdk = require('../packages/sdk/dist');

const arg = (name, dflt, lo, hi) => {
  const i = process.argv.indexOf(name);
  const v = i > 0 ? Number(process.argv[i + 1]) : dflt;
  return Math.min(hi, Math.max(lo, Number.isFinite(v) ? v : dflt));
};
const SECONDS = arg('--seconds', 5, 1, 60);
const CONCURRENCY = arg('--concurrency', 32, 1, 256);
const ROUNDS = 3;
const say = (m) => process.stdout.write(`${m}\n`);

/** ops/s of `op` run by CONCURRENCY callers for SECONDS. Any failure stops the benchmark. */
async function opsPerSecond(op) {
  const end = Date.now() + SECONDS * 1000;
  let ops = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        await op();
        ops += 1;
      }
    }),
  );
  return ops / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main() {
  const t0 = Date.now();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-kms-'));
  fs.chmodSync(home, 0o755);
  const children = [];
  const closers = [];
  let cluster;
  const stopAll = async () => {
    for (const close of closers) await close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await removePair(cluster, home);
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    say(`[1/3] building a local pair in ${home}…`);
    cluster = await buildPair(home);
    for (const n of [cluster.a, cluster.b]) {
      children.push(server.spawnNodeServer(n, { logLevel: 'warn' }));
      await server.waitForHealth(n.url, 30_000);
    }
    const configPath = await registerBenchClient(sdk, cluster, home);
    const open = (clientOverrides, providerOptions) => {
      const p = sdk.KeyProvider.fromConfigFile(configPath, clientOverrides, providerOptions);
      closers.push(() => p.close());
      return p;
    };
    const raw = sdk.TrusteeClient.fromConfigFile(configPath, { cache: { maxEntries: 0 } });
    closers.push(async () => raw.close());
    await raw.put('bench-deposit', Buffer.alloc(32, 7));
    const warm = open({}, {});
    const cold = open({ cache: { maxEntries: 0 } }, { edekCache: false });
    await warm.createKey('bench-key', { length: 128 });
    await warm.rollNewVersion('bench-key');
    const eek = await warm.generateEncryptedKey('bench-key');

    const cases = [
      ['raw deposit read (`get`, read cache off) — baseline', () => raw.get('bench-deposit')],
      ['`generateEncryptedKey`, EDEK cache on (default)', () => warm.generateEncryptedKey('bench-key')],
      ['`generateEncryptedKey`, caches off (2 reads each)', () => cold.generateEncryptedKey('bench-key')],
      ['`decryptEncryptedKey`, read cache on (default)', () => warm.decryptEncryptedKey(eek)],
      ['`decryptEncryptedKey`, caches off (2 reads each)', () => cold.decryptEncryptedKey(eek)],
    ];
    say(`[2/3] ${cases.length} cases × ${ROUNDS} rounds × ${SECONDS} s, ${CONCURRENCY} concurrent callers…`);
    const results = cases.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, [, op]] of cases.entries()) results[i].push(await opsPerSecond(op));
    }
    const base = median(results[0]);
    const rows = cases.map(([label], i) => {
      const m = median(results[i]);
      return `| ${label} | ${m.toFixed(0)} | ${(m / base).toFixed(2)} |`;
    });
    const table = ['| operation | median ops/s | × raw read |', '|---|---:|---:|', ...rows].join('\n');
    say(`[3/3] done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    say(table);
    writeResults(
      'kms-results.md',
      `# KeyProvider throughput\n\nMeasured ${new Date().toISOString()} on ${os.cpus().length} cores by \`npm run bench:kms\`: ` +
        `${CONCURRENCY} concurrent callers in the benchmark process, ${ROUNDS} rounds of ${SECONDS} s per case (medians), ` +
        `servers and PostgreSQL on the same box; load average at the end ${os.loadavg()[0].toFixed(1)} ` +
        `(other work shares the box: compare the ratios, not the absolute numbers).\n\n${table}\n`,
    );
  } finally {
    await stopAll();
  }
}

runBench(main);
