import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import {
  addOrg,
  enableSynchronousReplication,
  initConfdir,
  listOrgs,
  openNodeServices,
  spawnNodeServer,
  type LocalNodeSpec,
} from '@trustee/server';
import { BINS, runCli } from './cli';
import { stopPairDatabases } from './cluster';
import { makeCsr } from './clients';
import type { NetnsHttp } from './netns-http';
import type { PartitionNet } from './netns';
import { freePort } from './ports';
import { trackPid, untrackPid, waitFor, waitForExit } from './processes';
import { makeTempDir, removeDir } from './temp-dir';
import { takeTestKeys } from './test-keys';

/** API ports: each node has its namespace to itself, so the product defaults never collide. */
const API_PORT = { a: 11371, b: 11372 } as const;

export interface NetnsPair {
  home: string;
  spec: Record<'a' | 'b', LocalNodeSpec>;
  /** Each node's API as the client namespace dials it. */
  clientUrl: Record<'a' | 'b', string>;
  org: string;
  authCode: string;
  /** Stops both keytrusteeds and PostgreSQLs (by pid as a last resort) and removes the files; never throws. */
  stop(): Promise<void>;
}

async function runIn(net: PartitionNet, ns: 'a' | 'b', bin: string, args: string[]): Promise<void> {
  const r = await runCli(bin, args, { prefix: net.execPrefix(ns), timeoutMs: 90_000 });
  if (r.code !== 0)
    throw new Error(`${args.join(' ')} in namespace ${ns} failed (${r.code}): ${r.stderr || r.stdout}`);
}

/**
 * A real pair placed on the partition network, set up as an operator would between two hosts:
 * node A (PostgreSQL + keytrusteed in namespace a) is bootstrapped with `--slave B`, node B's
 * confdir is copied from A's, B takes its base backup over the A–B link, replication is made
 * synchronous, and an organization is added. Every command that opens or listens on TCP runs
 * through `ip netns exec`; the test process itself reaches the databases only by their unix
 * sockets (a filesystem path, not tied to a network namespace).
 */
export async function startNetnsPair(net: PartitionNet, http: NetnsHttp): Promise<NetnsPair> {
  const home = makeTempDir('trustee-partition-');
  const spec = (n: 'a' | 'b', dbPort: number): LocalNodeSpec => {
    const dir = join(home, `node-${n}`);
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    return {
      name: n === 'a' ? 'node-a' : 'node-b',
      dir,
      confdir: join(dir, 'confdir'),
      dbDir: join(dir, 'db'),
      apiPort: API_PORT[n],
      // A free port of the root namespace: the databases' sockets share the filesystem
      // (/var/run/postgresql/.s.PGSQL.PORT) with every other PostgreSQL on the machine.
      dbPort,
      url: `https://${net.peerAddr[n]}:${API_PORT[n]}`,
    };
  };
  const nodes = { a: spec('a', await freePort()), b: spec('b', await freePort()) };
  const servers: Partial<Record<'a' | 'b', ChildProcess>> = {};
  const org = 'partition';

  const stop = async () => {
    for (const n of ['a', 'b'] as const) {
      const child = servers[n];
      if (!child?.pid) continue;
      child.kill('SIGTERM');
      if (!(await waitForExit(child.pid, 10_000))) child.kill('SIGKILL');
      untrackPid(child.pid);
    }
    await stopPairDatabases(nodes);
    removeDir(home);
  };

  try {
    const { a, b } = nodes;
    await initConfdir({
      confdir: a.confdir,
      host: net.peerAddr.a,
      port: a.apiPort,
      peers: [b.url],
      force: true,
      keys: await takeTestKeys(),
    });
    await runIn(net, 'a', BINS.ktadmin, [
      ...['--confdir', a.confdir, 'db', '--bootstrap', '--port', String(a.dbPort)],
      ...['--pg-rootdir', a.dbDir, '--slave', `${net.peerAddr.b}:${b.dbPort}`],
    ]);
    await initConfdir({
      confdir: b.confdir,
      host: net.peerAddr.b,
      port: b.apiPort,
      peers: [a.url],
      fromPeerConfdir: a.confdir,
      force: true,
    });
    await runIn(net, 'b', BINS.ktadmin, [
      ...['--confdir', b.confdir, 'db', '--bootstrap', '--port', String(b.dbPort)],
      ...['--pg-rootdir', b.dbDir, '--master', `${net.peerAddr.a}:${a.dbPort}`],
    ]);
    for (const n of ['a', 'b'] as const) {
      const pid = readPostmasterPid(nodes[n].dbDir);
      if (pid) trackPid(pid);
    }
    // Over A's unix socket, from here: no TCP involved.
    await enableSynchronousReplication({ confdir: a.confdir, timeoutMs: 30_000 });
    const svc = await openNodeServices(a.confdir);
    let authCode: string;
    try {
      await addOrg(svc, org, [`admin@${org}.example`]);
      authCode = (await listOrgs(svc))[org].auth_secret;
    } finally {
      await svc.close();
    }
    const clientUrl = {
      a: `https://${net.clientAddr.a}:${a.apiPort}`,
      b: `https://${net.clientAddr.b}:${b.apiPort}`,
    };
    for (const n of ['a', 'b'] as const) {
      const child = spawnNodeServer(nodes[n], {
        keytrusteedBin: BINS.keytrusteedDist,
        logLevel: 'info',
        prefix: net.execPrefix(n),
      });
      if (child.pid) trackPid(child.pid);
      servers[n] = child;
    }
    // Health as the client sees it, from its namespace: the test process cannot dial these.
    for (const n of ['a', 'b'] as const) {
      await waitFor(
        `node ${n} answers /v1/health from the client namespace`,
        async () => (await http.request(clientUrl[n], { path: '/v1/health', timeoutMs: 2000 })).status,
        30_000,
        200,
      );
    }
    return { home, spec: nodes, clientUrl, org, authCode, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Registers a client with A through the client namespace and hands its certificate to the proxy. */
export async function registerNetnsClient(
  pair: NetnsPair,
  http: NetnsHttp,
): Promise<{ fingerprint: string; cert: string; key: string }> {
  const { csr, key } = makeCsr(pair.org);
  const res = await http.request(pair.clientUrl.a, {
    method: 'POST',
    path: '/v1/clients/register',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ org: pair.org, authCode: pair.authCode, csr }),
  });
  if (res.status !== 200) throw new Error(`registration failed: ${res.status} ${res.error ?? res.text}`);
  http.setCreds({ cert: res.json.certificate, key });
  return { fingerprint: res.json.fingerprint, cert: res.json.certificate, key };
}
