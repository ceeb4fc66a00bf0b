'use strict';
/* Small pieces every benchmark in bench/ uses. */
const net = require('node:net');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const server = require('../packages/server/dist');
const { readPostmasterPid } = require('../packages/replicator/dist');

/** A free TCP port on loopback. */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Median of a list of numbers (the upper one for an even count). */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** SIGKILLs a process and its direct children (a keytrusteed or a postmaster and its backends). */
function killTree(pid) {
  if (!pid) return;
  let kids = [];
  try {
    kids = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children
  }
  for (const p of [pid, ...kids]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** HTTP status of `url/v1/health<which>` (e.g. '/writable'); 0 when the node does not answer in 2 s. */
function healthStatus(url, which = '') {
  return new Promise((resolve) => {
    const req = https.get(
      `${url}/v1/health${which}`,
      { rejectUnauthorized: false, agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

/**
 * Registers one SDK client (2048-bit key) with the cluster's organization and writes its config
 * to `home/client.conf`; returns that path.
 */
async function registerBenchClient(sdk, cluster, home) {
  const configPath = path.join(home, 'client.conf');
  const reg = await sdk.TrusteeClient.register({
    servers: [cluster.a.url, cluster.b.url],
    org: cluster.org,
    authCode: cluster.authCode,
    configPath,
    skipSslCheck: true,
    keyBits: 2048,
  });
  reg.client.close();
  return configPath;
}

/** A local pair (server.setupLocalCluster) in `home` on four free ports. */
async function buildPair(home) {
  const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  return server.setupLocalCluster({
    home,
    apiPorts: [ports[0], ports[1]],
    dbPorts: [ports[2], ports[3]],
  });
}

/**
 * Stops a pair's databases (SIGKILL to what is left of a postmaster) and removes `home`; `cluster`
 * is undefined when the pair was never built. The benchmark stops its own keytrusteed children first.
 */
async function removePair(cluster, home) {
  if (cluster) await server.stopLocalDatabases(cluster).catch(() => undefined);
  for (const n of cluster ? [cluster.a, cluster.b] : []) {
    const pid = readPostmasterPid(n.dbDir);
    if (pid) killTree(pid);
  }
  fs.rmSync(home, { recursive: true, force: true });
}

/** Writes `text` to `bench/<file>` and says where. */
function writeResults(file, text) {
  const out = path.join(__dirname, file);
  fs.writeFileSync(out, text);
  process.stdout.write(`\nwritten to ${path.relative(path.join(__dirname, '..'), out)}\n`);
}

/** Runs a benchmark's `main`: a failure is one line on stderr and exit status 1. */
function runBench(main) {
  main().catch((e) => {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  });
}

module.exports = {
  freePort,
  median,
  killTree,
  healthStatus,
  registerBenchClient,
  buildPair,
  removePair,
  writeResults,
  runBench,
};
