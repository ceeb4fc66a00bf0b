#!/usr/bin/env node
/*
 * `npm start`: a local two-node Trustee cluster under ./.trustee (TRUSTEE_HOME overrides):
 * node-a active (11371 / PostgreSQL 11381), node-b passive (11372 / 11382); TRUSTEE_API_PORTS
 * and TRUSTEE_DB_PORTS (`A,B`) choose other ports. First run creates everything; later runs
 * reuse the state. When one node's keytrusteed or PostgreSQL dies, the other node keeps running
 * and the commands that recover are printed. Ctrl-C stops everything still running.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const server = require('../packages/server/dist');
const replicator = require('../packages/replicator/dist');

const home = path.resolve(process.env.TRUSTEE_HOME || path.join(__dirname, '..', '.trustee'));
const t0 = Date.now();
const say = (m) => process.stdout.write(`${m}\n`);
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1)}s]`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ROLE = { 'node-a': 'active', 'node-b': 'passive' };
/** Bounds of the Ctrl-C path: keytrusteed gets this long after SIGTERM, PostgreSQL per mode. */
const KEYTRUSTEED_STOP_MS = 10_000;
const PG_STOP_MS = { fast: 20_000, immediate: 10_000 };

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** `NAME=A,B` → [A, B]; undefined when unset. */
function portsFromEnv(name, example) {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return undefined;
  const parts = value.split(',').map((p) => p.trim());
  const ok = (p) => /^\d{1,5}$/.test(p) && Number(p) >= 1 && Number(p) <= 65535;
  if (parts.length !== 2 || !parts.every(ok) || parts[0] === parts[1])
    throw new Error(`${name} must be two different ports for node-a and node-b, e.g. ${name}=${example}`);
  return parts.map(Number);
}

/** The ports an existing cluster under `home` was created with (its keytrustee.conf files). */
function existingPorts() {
  const [a, b] = server.localNodeSpecs({ home });
  if (!fs.existsSync(path.join(a.dbDir, 'PG_VERSION'))) return undefined;
  try {
    const [ca, cb] = [a, b].map((n) => server.loadKeytrusteeConf(n.confdir));
    return { api: [ca.PORT, cb.PORT], db: [ca.DB_PORT, cb.DB_PORT] };
  } catch {
    return undefined;
  }
}

function choosePorts() {
  const api = portsFromEnv('TRUSTEE_API_PORTS', '11371,11372');
  const db = portsFromEnv('TRUSTEE_DB_PORTS', '11381,11382');
  const existing = existingPorts();
  if (existing) {
    for (const [name, asked, had] of [
      ['TRUSTEE_API_PORTS', api, existing.api],
      ['TRUSTEE_DB_PORTS', db, existing.db],
    ]) {
      if (asked && (asked[0] !== had[0] || asked[1] !== had[1]))
        throw new Error(
          `${home} holds a cluster made with ${name}=${had.join(',')}; use those ports or delete ${home} to start from scratch`,
        );
    }
    return { apiPorts: existing.api, dbPorts: existing.db };
  }
  const apiPorts = api ?? [11371, 11372];
  const dbPorts = db ?? [11381, 11382];
  if (new Set([...apiPorts, ...dbPorts]).size !== 4)
    throw new Error(
      `the four ports must differ (API ${apiPorts.join(',')}, PostgreSQL ${dbPorts.join(',')})`,
    );
  return { apiPorts, dbPorts };
}

/** PID of a keytrusteed still running from a pid file (a stale file or a reused pid does not count). */
function runningKeytrusteed(file) {
  let pid;
  try {
    pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('keytrusteed') ? pid : undefined;
  } catch {
    if (fs.existsSync('/proc/self/cmdline')) return undefined; // gone
  }
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

const running = (child) => child.exitCode === null && child.signalCode === null;

/** Resolves once every child has exited or after `ms`, whichever comes first. */
function waitChildren(children, ms) {
  let timer;
  return Promise.race([
    Promise.all(children.map((c) => (running(c) ? new Promise((r) => c.once('exit', r)) : undefined))),
    new Promise((r) => (timer = setTimeout(r, ms))),
  ]).finally(() => clearTimeout(timer));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Stops one node's PostgreSQL if it runs: pg_ctl fast, then immediate, then SIGKILL; all bounded. */
async function stopDatabase(n) {
  const pid = replicator.readPostmasterPid(n.dbDir);
  if (!pid) return;
  say(`stopping PostgreSQL of ${n.name} (pid ${pid})…`);
  const inst = replicator.createPgInstance({ dataDir: n.dbDir, port: n.dbPort });
  for (const mode of ['fast', 'immediate']) {
    try {
      await withTimeout(replicator.stopPostgres(inst, { mode }), PG_STOP_MS[mode], `pg_ctl stop -m ${mode}`);
    } catch (e) {
      say(`  ${n.name}: ${e.message}`);
    }
    if (!replicator.readPostmasterPid(n.dbDir)) return;
  }
  say(`  ${n.name}: killing the postmaster (pid ${pid})`);
  killPid(pid);
  for (let i = 0; i < 100 && replicator.readPostmasterPid(n.dbDir); i++) await sleep(50);
}

function killPid(pid) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Set once there is something to stop: an unexpected error then stops it instead of leaving it running. */
let onFatal;

const describeExit = (code, signal) => (signal ? `was killed by ${signal}` : `exited with code ${code}`);

async function main() {
  const { apiPorts, dbPorts } = choosePorts();
  const [a, b] = server.localNodeSpecs({ home, apiPorts, dbPorts });
  for (const n of [a, b]) {
    const pid = runningKeytrusteed(path.join(n.dir, 'keytrusteed.pid'));
    if (pid)
      throw new Error(`${n.name}'s keytrusteed is already running (pid ${pid}); stop that npm start first`);
    if (!(await portFree(n.apiPort)))
      throw new Error(`port ${n.apiPort} (${n.name} HTTPS) is in use by another program`);
    if (!replicator.readPostmasterPid(n.dbDir) && !(await portFree(n.dbPort))) {
      throw new Error(`port ${n.dbPort} (${n.name} PostgreSQL) is in use by another program`);
    }
  }

  /** Everything below is started by this process and stopped by shutdown(). */
  const nodes = [a, b];
  const children = new Map(); // node name → keytrusteed ChildProcess
  const dbUp = new Map(); // node name → postmaster pid while it runs, 0 once lost
  const other = (n) => (n === a ? b : a);
  let phase = 'setup'; // setup → starting → up → stopping
  let watch;
  let stopT0 = 0;
  let interrupted = false;
  let forced = false;

  const shutdown = async (code) => {
    if (phase === 'stopping') return;
    phase = 'stopping';
    if (!stopT0) stopT0 = Date.now();
    clearInterval(watch);
    const live = [...children.entries()].filter(([, c]) => running(c));
    if (live.length) {
      say(`\nstopping keytrusteed (${live.map(([name]) => name).join(', ')})…`);
      for (const [, c] of live) c.kill('SIGTERM');
      await waitChildren(
        live.map(([, c]) => c),
        KEYTRUSTEED_STOP_MS,
      );
      for (const [name, c] of live) {
        if (!running(c)) continue;
        say(`  ${name}: keytrusteed did not stop within ${KEYTRUSTEED_STOP_MS / 1000} s; killing it`);
        c.kill('SIGKILL');
      }
      await waitChildren(
        live.map(([, c]) => c),
        5000,
      );
    } else say('');
    // Passive first, so the active never waits on a vanished standby at shutdown.
    for (const n of [b, a]) await stopDatabase(n);
    say(
      `stopped in ${((Date.now() - stopT0) / 1000).toFixed(1)} s. State kept in ${home} (delete it to start from scratch).`,
    );
    process.exit(code);
  };
  const onSignal = (signal) => {
    if (phase === 'setup') {
      if (!interrupted) say(`\n${signal}: stopping as soon as the set-up is done (again to force)…`);
      else forceExit();
      interrupted = true;
      return;
    }
    if (phase === 'stopping') return forceExit();
    void shutdown(0);
  };
  /** A second Ctrl-C: kill by PID whatever is still running, without waiting. */
  const forceExit = () => {
    if (forced) return;
    forced = true;
    say('forced stop: killing what is still running');
    for (const c of children.values()) if (running(c)) c.kill('SIGKILL');
    for (const n of nodes) {
      const pid = replicator.readPostmasterPid(n.dbDir);
      if (pid) killPid(pid);
    }
    process.exit(1);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  say(`Trustee local cluster in ${home}`);
  let cluster;
  try {
    cluster = await server.setupLocalCluster({
      home,
      apiPorts,
      dbPorts,
      onStep: (m) => say(`${stamp()} ${m}`),
    });
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    for (const n of [b, a]) await stopDatabase(n);
    process.exit(1);
  }
  for (const n of nodes) dbUp.set(n.name, replicator.readPostmasterPid(n.dbDir) || 0);
  onFatal = () => shutdown(1);
  if (interrupted) {
    phase = 'starting';
    return shutdown(0);
  }
  phase = 'starting';

  /** What brings `lost` back; `databaseLost` adds the restart of its PostgreSQL alone. */
  const recoveryLines = (lost, databaseLost = false) => {
    const survivor = other(lost);
    const restart = `press Ctrl-C here, then run \`npm start\` again (the state in ${home} is kept)`;
    const lines = databaseLost
      ? [
          `  To recover: start it again (Ctrl-C here stops it too):`,
          `    npx ktadmin --confdir ${lost.confdir} db --start --background`,
          `  or ${restart}.`,
        ]
      : [`  To recover: ${restart}.`];
    if (lost === a) {
      lines.push(`  If ${a.name} cannot come back, make ${b.name} the active instead:`);
      // `promote` refuses while the old active still answers: stop what is left of it first.
      const leftover = children.get(a.name);
      if (leftover && running(leftover)) lines.push(`    kill ${leftover.pid}     # ${a.name}'s keytrusteed`);
      if (dbUp.get(a.name))
        lines.push(`    npx ktadmin --confdir ${a.confdir} db --stop     # ${a.name}'s PostgreSQL`);
      lines.push(`    npx ktadmin --confdir ${survivor.confdir} promote`);
      lines.push(`  and later bring ${a.name} back as its passive:`);
      lines.push(`    npx ktadmin --confdir ${a.confdir} rejoin --master localhost:${survivor.dbPort}`);
    }
    return lines;
  };

  const survivorLine = (lost) => {
    const survivor = other(lost);
    if (!children.get(survivor.name) || !running(children.get(survivor.name))) return undefined;
    if (survivor === b)
      return `  ${b.name} keeps running at ${b.url}: reads are served there; writes are refused until ${a.name} is back.`;
    return dbUp.get(b.name)
      ? `  ${a.name} keeps running at ${a.url}: reads and writes (its PostgreSQL still replicates to ${b.name}'s).`
      : `  ${a.name} keeps running at ${a.url}: reads are served; writes are refused until ${b.name}'s PostgreSQL is back.`;
  };

  const onKeytrusteedExit = (n, child, code, signal) => {
    const log = path.join(n.dir, 'keytrusteed.log');
    if (phase === 'stopping') return;
    if (phase === 'starting') {
      say(`${n.name}: keytrusteed ${describeExit(code, signal)} while starting; see ${log}`);
      return void shutdown(1);
    }
    say('');
    say(
      `${stamp()} ${n.name} (${ROLE[n.name]}): keytrusteed (pid ${child.pid}) ${describeExit(code, signal)}. Its log: ${log}`,
    );
    const alive = [...children.values()].filter(running);
    if (alive.length === 0) {
      say('  No keytrusteed is left running: stopping the databases too.');
      return void shutdown(1);
    }
    const line = survivorLine(n);
    if (line) say(line);
    for (const l of recoveryLines(n)) say(l);
  };

  const onDatabaseLost = (n, pid) => {
    say('');
    say(
      `${stamp()} ${n.name} (${ROLE[n.name]}): its PostgreSQL (pid ${pid}, port ${n.dbPort}) is no longer running. Server log: ${path.join(n.dbDir, 'log')}/`,
    );
    if (n === a)
      say(
        `  ${a.name} cannot serve until it is back; ${b.name} keeps serving reads at ${b.url}; writes are refused.`,
      );
    else
      say(
        `  Writes on ${a.name} are refused (PASSIVE_UNAVAILABLE) until it is back; reads keep working on ${a.name}.`,
      );
    for (const l of recoveryLines(n, true)) say(l);
  };

  const checkDatabases = () => {
    if (phase === 'stopping') return;
    for (const n of nodes) {
      const was = dbUp.get(n.name);
      const pid = replicator.readPostmasterPid(n.dbDir) || 0;
      dbUp.set(n.name, pid);
      if (was && !pid) onDatabaseLost(n, was);
      else if (!was && pid) say(`${stamp()} ${n.name}: PostgreSQL is running again (pid ${pid}).`);
    }
  };
  watch = setInterval(checkDatabases, 1000);

  for (const n of nodes) {
    say(
      `${stamp()} ${n.name}: starting keytrusteed on ${n.url} (log: ${path.join(n.dir, 'keytrusteed.log')})…`,
    );
    const child = server.spawnNodeServer(n);
    children.set(n.name, child);
    // A Ctrl-C in the terminal reaches the children too: let our own SIGINT handler run first.
    child.on('exit', (code, signal) => setTimeout(() => onKeytrusteedExit(n, child, code, signal), 200));
  }
  try {
    await server.waitForHealth(a.url);
    await server.waitForHealth(b.url);
  } catch (e) {
    if (phase !== 'starting') return;
    say(`error: ${e.message}; see the keytrusteed.log files`);
    return shutdown(1);
  }
  if (phase !== 'starting') return;
  phase = 'up';
  // Clients trust the two self-signed node certificates, nothing else.
  const caFile = path.join(home, 'node-certs.pem');
  fs.writeFileSync(
    caFile,
    [a, b]
      .map((n) => fs.readFileSync(path.join(n.confdir, '.ssl', 'ssl-cert-keytrustee.pem'), 'utf8'))
      .join(''),
  );
  const clientConf = path.join(home, 'client.conf');
  say('');
  say(
    `Trustee is up in ${((Date.now() - t0) / 1000).toFixed(1)} s${cluster.created ? ' (new cluster)' : ' (existing state reused)'}:`,
  );
  say(`  node-a  active   ${a.url}   PostgreSQL port ${a.dbPort}`);
  say(`  node-b  passive  ${b.url}   PostgreSQL port ${b.dbPort}`);
  say(`  cluster fingerprint: ${cluster.fingerprint}`);
  say(`  organization: ${cluster.org}   auth code: ${cluster.authCode}`);
  say('');
  say('Register a client and store a deposit:');
  say(
    `  npx ktclient register --server ${a.url},${b.url} --org ${cluster.org} --auth '${cluster.authCode}' --ca ${caFile} --config ${clientConf}`,
  );
  say(`  npx ktclient --config ${clientConf} put hello --value world`);
  say(`  npx ktclient --config ${clientConf} get hello`);
  say('');
  say('Admin: npx ktadmin --confdir ' + a.confdir + ' status');
  say('If one node dies the other keeps running. Press Ctrl-C to stop everything.');
}

main().catch((e) => {
  process.stderr.write(`error: ${e.message}\n`);
  if (onFatal) return onFatal();
  process.exit(1);
});
