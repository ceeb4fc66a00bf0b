'use strict';
/* Small pieces every benchmark in bench/ uses. */
const net = require('node:net');
const { execFileSync } = require('node:child_process');
const https = require('node:https');
const path = require('node:path');

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

module.exports = { freePort, median, killTree, healthStatus, registerBenchClient };
