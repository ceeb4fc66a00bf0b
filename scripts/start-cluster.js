#!/usr/bin/env node
/*
 * `npm start`: a local two-node Trustee cluster under ./.trustee (TRUSTEE_HOME overrides):
 * node-a active (11371 / PostgreSQL 11381), node-b passive (11372 / 11382). First run creates
 * everything; later runs reuse the state. Ctrl-C stops everything this started.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const server = require('../packages/server/dist');

const home = path.resolve(process.env.TRUSTEE_HOME || path.join(__dirname, '..', '.trustee'));
const t0 = Date.now();
const say = (m) => process.stdout.write(`${m}\n`);
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1)}s]`;

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function alivePid(file) {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function main() {
  const [a, b] = server.localNodeSpecs({ home });
  for (const n of [a, b]) {
    const pid = alivePid(path.join(n.dir, 'keytrusteed.pid'));
    if (pid)
      throw new Error(`${n.name}'s keytrusteed is already running (pid ${pid}); stop that npm start first`);
    if (!(await portFree(n.apiPort)))
      throw new Error(`port ${n.apiPort} (${n.name} HTTPS) is in use by another program`);
    if (!alivePid(path.join(n.dbDir, 'postmaster.pid')) && !(await portFree(n.dbPort))) {
      throw new Error(`port ${n.dbPort} (${n.name} PostgreSQL) is in use by another program`);
    }
  }
  say(`Trustee local cluster in ${home}`);
  const cluster = await server.setupLocalCluster({ home, onStep: (m) => say(`${stamp()} ${m}`) });
  const children = [];
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    say('\nstopping keytrusteed (both nodes)…');
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)),
    );
    say('stopping PostgreSQL (passive, then active)…');
    await server.stopLocalDatabases(cluster);
    say('stopped. State kept in ' + home + ' (delete it to start from scratch).');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  for (const n of [cluster.a, cluster.b]) {
    say(
      `${stamp()} ${n.name}: starting keytrusteed on ${n.url} (log: ${path.join(n.dir, 'keytrusteed.log')})…`,
    );
    const child = server.spawnNodeServer(n);
    child.on('exit', (code, signal) => {
      if (!stopping) {
        say(`${n.name}: keytrusteed exited (${signal || code}); see ${path.join(n.dir, 'keytrusteed.log')}`);
        void stop(1);
      }
    });
    children.push(child);
  }
  await server.waitForHealth(cluster.a.url);
  await server.waitForHealth(cluster.b.url);
  // Clients trust the two self-signed node certificates, nothing else.
  const caFile = path.join(home, 'node-certs.pem');
  fs.writeFileSync(
    caFile,
    [cluster.a, cluster.b]
      .map((n) => fs.readFileSync(path.join(n.confdir, '.ssl', 'ssl-cert-keytrustee.pem'), 'utf8'))
      .join(''),
  );
  const clientConf = path.join(home, 'client.conf');
  say('');
  say(
    `Trustee is up in ${((Date.now() - t0) / 1000).toFixed(1)} s${cluster.created ? ' (new cluster)' : ' (existing state reused)'}:`,
  );
  say(`  node-a  active   ${cluster.a.url}   PostgreSQL port ${cluster.a.dbPort}`);
  say(`  node-b  passive  ${cluster.b.url}   PostgreSQL port ${cluster.b.dbPort}`);
  say(`  cluster fingerprint: ${cluster.fingerprint}`);
  say(`  organization: ${cluster.org}   auth code: ${cluster.authCode}`);
  say('');
  say('Register a client and store a deposit:');
  say(
    `  npx ktclient register --server ${cluster.a.url},${cluster.b.url} --org ${cluster.org} --auth '${cluster.authCode}' --ca ${caFile} --config ${clientConf}`,
  );
  say(`  npx ktclient --config ${clientConf} put hello --value world`);
  say(`  npx ktclient --config ${clientConf} get hello`);
  say('');
  say('Admin: npx ktadmin --confdir ' + cluster.a.confdir + ' status');
  say('Press Ctrl-C to stop both nodes.');
}

main().catch(async (e) => {
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
});
