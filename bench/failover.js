#!/usr/bin/env node
/*
 * Failover timings on a real local pair (issue #8): `ktadmin promote`, `ktadmin rejoin` (pg_rewind),
 * and the time from rejoin to writable, over several cycles that alternate the roles. Each row
 * names its baseline measured in the same run: the bare PostgreSQL step inside the command
 * (pg_promote(), pg_rewind) and the start-up of the CLI itself (`ktadmin --version`).
 * Not part of `npm test`. Usage: npm run bench:failover [-- --cycles N]
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, killTree, healthStatus, buildPair, removePair, writeResults, runBench } = require('./lib');
const server = require('../packages/server/dist');
const { readPostmasterPid } = require('../packages/replicator/dist');

const ROOT = path.join(__dirname, '..');
const KTADMIN = path.join(ROOT, 'packages/server/bin/ktadmin.js');
const KEYTRUSTEED = path.join(ROOT, 'packages/server/dist/cli/keytrusteed.js');
const cyclesArg = process.argv.indexOf('--cycles');
const CYCLES = Math.min(10, Math.max(1, cyclesArg > 0 ? Number(process.argv[cyclesArg + 1]) : 3));
const say = (m) => process.stdout.write(`${m}\n`);

function ktadmin(confdir, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [KTADMIN, '--confdir', confdir, ...args], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`ktadmin ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return { ms, out: r.stdout };
}

async function waitUntil(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main() {
  const t0 = Date.now();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-bench-failover-'));
  fs.chmodSync(home, 0o755);
  const children = new Map();
  let cluster;
  const startServer = async (n) => {
    const child = spawn(process.execPath, [KEYTRUSTEED, '--confdir', n.confdir], {
      stdio: 'ignore',
      env: { ...process.env, TRUSTEE_LOG_LEVEL: 'warn' },
    });
    children.set(n.name, child);
    await server.waitForHealth(n.url, 30_000);
  };
  const stopAll = async () => {
    for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await removePair(cluster, home);
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    say(`[1/${CYCLES + 2}] building a local pair in ${home}…`);
    cluster = await buildPair(home);
    await startServer(cluster.a);
    await startServer(cluster.b);
    const baselineCli = [];
    for (let i = 0; i < 3; i++) baselineCli.push(ktadmin(cluster.a.confdir, ['--version']).ms);
    const rows = [];
    let active = cluster.a;
    let passive = cluster.b;
    for (let i = 0; i < CYCLES; i++) {
      say(
        `[${i + 2}/${CYCLES + 2}] cycle ${i + 1}: kill ${active.name}, promote ${passive.name}, rejoin ${active.name}…`,
      );
      children.get(active.name).kill('SIGKILL');
      killTree(readPostmasterPid(active.dbDir));
      await new Promise((r) => setTimeout(r, 300));
      const promote = ktadmin(passive.confdir, ['promote']);
      const pgPromoteMs = Number(/promotion took (\d+) ms/.exec(promote.out)[1]);
      // The old active comes back (its PostgreSQL, then its server): fenced until rejoin.
      ktadmin(active.confdir, ['db', '--start', '--background']);
      await startServer(active);
      const rejoin = ktadmin(active.confdir, ['rejoin', '--master', `localhost:${passive.dbPort}`]);
      const rewindMs = Number(/pg_rewind done in (\d+) ms/.exec(rejoin.out)[1]);
      const t1 = Date.now();
      await waitUntil('writable', async () => (await healthStatus(passive.url, '/writable')) === 200);
      rows.push({
        promoteMs: promote.ms,
        pgPromoteMs,
        rejoinMs: rejoin.ms,
        rewindMs,
        writableMs: Date.now() - t1,
      });
      [active, passive] = [passive, active];
    }
    const m = (k) => median(rows.map((r) => r[k]));
    const cli = median(baselineCli);
    const table = [
      '| step | median ms | baseline (same run) | baseline ms | ratio |',
      '|---|---:|---|---:|---:|',
      `| \`ktadmin promote\` (CLI, end to end) | ${m('promoteMs').toFixed(0)} | pg_promote() + checkpoint inside it | ${m('pgPromoteMs').toFixed(0)} | ${(m('promoteMs') / m('pgPromoteMs')).toFixed(2)} |`,
      `| \`ktadmin promote\` minus CLI start-up | ${(m('promoteMs') - cli).toFixed(0)} | pg_promote() + checkpoint | ${m('pgPromoteMs').toFixed(0)} | ${((m('promoteMs') - cli) / m('pgPromoteMs')).toFixed(2)} |`,
      `| \`ktadmin rejoin\` (pg_rewind path) | ${m('rejoinMs').toFixed(0)} | pg_rewind alone | ${m('rewindMs').toFixed(0)} | ${(m('rejoinMs') / m('rewindMs')).toFixed(2)} |`,
      `| rejoin returned → active writable | ${m('writableMs').toFixed(0)} | write-gate poll period | 200 | ${(m('writableMs') / 200).toFixed(2)} |`,
      `| CLI start-up (\`ktadmin --version\`) | ${cli.toFixed(0)} | — | — | — |`,
    ].join('\n');
    say(
      `[${CYCLES + 2}/${CYCLES + 2}] done in ${((Date.now() - t0) / 1000).toFixed(1)} s (${CYCLES} cycles, medians)\n`,
    );
    say(table);
    writeResults(
      'failover-results.md',
      `# Failover timings\n\nMeasured ${new Date().toISOString()} on ${os.cpus().length} cores, ${CYCLES} cycles (medians), by \`npm run bench:failover\`.\n\n${table}\n`,
    );
  } finally {
    await stopAll();
  }
}

runBench(main);
