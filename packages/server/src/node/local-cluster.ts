import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  chmodSync,
  chownSync,
  copyFileSync,
  statSync,
} from 'node:fs';
import { request } from 'node:https';
import { join, relative } from 'node:path';
import { readPostmasterPid, startPostgres, stopPostgres } from '@trustee/replicator';
import { initConfdir, type InitKeys } from '../confdir/init-confdir';
import { createReplicationCa, hasReplicationCa } from '../confdir/replication-ca';
import { openNodeServices } from './node-services';
import { addOrg, listOrgs } from '../orgs/orgs';
import {
  addStandbyOnActive,
  bootstrapActiveDb,
  bootstrapPassiveDb,
  enableSynchronousReplication,
  nodeInstance,
} from './bootstrap-db';
import { readNodeStatus } from './node-status';

export interface LocalNodeSpec {
  name: 'node-a' | 'node-b';
  dir: string;
  confdir: string;
  dbDir: string;
  apiPort: number;
  dbPort: number;
  url: string;
}

export interface LocalClusterOptions {
  /** Root of the cluster state (`./.trustee`, TRUSTEE_HOME). */
  home: string;
  apiPorts?: [number, number];
  dbPorts?: [number, number];
  /** Organization created on first set-up; default `demo`. */
  org?: string;
  onStep?: (message: string) => void;
  /** Pre-made identity / replication CA keys for node-a's init (test helpers only). */
  keys?: InitKeys;
}

export interface LocalCluster {
  a: LocalNodeSpec;
  b: LocalNodeSpec;
  org: string;
  authCode: string;
  fingerprint: string;
  /** True when this call created the cluster, false when it reused existing state. */
  created: boolean;
}

export function localNodeSpecs(opts: LocalClusterOptions): [LocalNodeSpec, LocalNodeSpec] {
  const [apiA, apiB] = opts.apiPorts ?? [11371, 11372];
  const [dbA, dbB] = opts.dbPorts ?? [11381, 11382];
  const spec = (name: 'node-a' | 'node-b', apiPort: number, dbPort: number): LocalNodeSpec => {
    const dir = join(opts.home, name);
    return {
      name,
      dir,
      confdir: join(dir, 'confdir'),
      dbDir: join(dir, 'db'),
      apiPort,
      dbPort,
      url: `https://localhost:${apiPort}`,
    };
  };
  return [spec('node-a', apiA, dbA), spec('node-b', apiB, dbB)];
}

/**
 * Creates (first run) or restarts (later runs) the PostgreSQL side of a local two-node
 * cluster, following the seed's HA order: active confdir + database with the passive's
 * replication prepared, confdir copied without .ssl/, passive base backup, synchronous
 * replication, then an organization.
 */
export async function setupLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const step = opts.onStep ?? (() => undefined);
  const [a, b] = localNodeSpecs(opts);
  const org = opts.org ?? 'demo';
  // PostgreSQL runs as an unprivileged user: it must be able to traverse down to its data dir.
  for (const d of [opts.home, a.dir, b.dir]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o755);
  }
  const created = !existsSync(join(a.dbDir, 'PG_VERSION'));
  if (created) {
    step('node-a: creating configuration (cluster identity RSA 4096)…');
    await initConfdir({
      confdir: a.confdir,
      host: 'localhost',
      port: a.apiPort,
      peers: [b.url],
      force: true,
      ...(opts.keys ? { keys: opts.keys } : {}),
    });
    step(`node-a: bootstrapping the active database on port ${a.dbPort}…`);
    await bootstrapActiveDb({
      confdir: a.confdir,
      pgRootdir: a.dbDir,
      port: a.dbPort,
      listenAddresses: '127.0.0.1',
    });
    await addStandbyOnActive({ confdir: a.confdir, slave: `localhost:${b.dbPort}` });
    step('node-b: copying the cluster identity (confdir without .ssl/)…');
    await initConfdir({
      confdir: b.confdir,
      host: 'localhost',
      port: b.apiPort,
      peers: [a.url],
      fromPeerConfdir: a.confdir,
      force: true,
    });
    step(`node-b: base backup from node-a into the passive database on port ${b.dbPort}…`);
    await bootstrapPassiveDb({
      confdir: b.confdir,
      pgRootdir: b.dbDir,
      port: b.dbPort,
      master: `localhost:${a.dbPort}`,
    });
    step('enabling synchronous replication…');
    await enableSynchronousReplication({ confdir: a.confdir, timeoutMs: 30_000 });
    const svc = await openNodeServices(a.confdir);
    try {
      await addOrg(svc, org, [`admin@${org}.example`]);
    } finally {
      await svc.close();
    }
  } else {
    step('reusing existing cluster state; starting both databases…');
    if (!hasReplicationCa(a.confdir)) {
      // State made before the replication link was verified: both confdirs are here, so do
      // what an operator does by hand (make the CA on the active, copy it to the passive).
      step('this state predates the replication CA: creating it on node-a and copying it to node-b…');
      for (const f of createReplicationCa(a.confdir, 'localhost')) {
        const to = join(b.confdir, relative(a.confdir, f));
        copyFileSync(f, to);
        const st = statSync(f);
        chmodSync(to, st.mode & 0o777);
        chownSync(to, st.uid, st.gid);
      }
    }
    await startPostgres(nodeInstance({ confdir: a.confdir, prepareTls: true }));
    await startPostgres(nodeInstance({ confdir: b.confdir, prepareTls: true }));
  }
  const svc = await openNodeServices(a.confdir);
  let authCode: string;
  let fingerprint: string;
  try {
    const orgs = await listOrgs(svc);
    authCode = orgs[org]?.auth_secret ?? '';
    fingerprint = (await readNodeStatus(a.confdir)).fingerprint;
  } finally {
    await svc.close();
  }
  return { a, b, org, authCode, fingerprint, created };
}

/** Stops both databases (passive first, so the active never waits on a vanished standby at shutdown). */
export async function stopLocalDatabases(cluster: Pick<LocalCluster, 'a' | 'b'>): Promise<void> {
  for (const n of [cluster.b, cluster.a]) {
    if (readPostmasterPid(n.dbDir))
      await stopPostgres(nodeInstance({ confdir: n.confdir })).catch(() => undefined);
  }
}

/** Spawns `keytrusteed --confdir` for a node as a child process, logging to DIR/keytrusteed.log. */
export function spawnNodeServer(
  node: LocalNodeSpec,
  opts: {
    keytrusteedBin?: string;
    logLevel?: string;
    /** Command to run keytrusteed under (tests: `ip netns exec NS`); default none. */
    prefix?: string[];
  } = {},
): ChildProcess {
  const bin = opts.keytrusteedBin ?? join(__dirname, '..', 'cli', 'keytrusteed.js');
  const logFd = openSync(join(node.dir, 'keytrusteed.log'), 'a');
  const [file, ...args] = [...(opts.prefix ?? []), process.execPath, bin, '--confdir', node.confdir];
  try {
    return spawn(file, args, {
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, TRUSTEE_LOG_LEVEL: opts.logLevel ?? process.env.TRUSTEE_LOG_LEVEL ?? 'info' },
    });
  } finally {
    closeSync(logFd);
  }
}

/** Resolves when `url/v1/health` answers at all (200 or 503), rejects after the timeout. */
export async function waitForHealth(url: string, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      const req = request(
        `${url}/v1/health`,
        { rejectUnauthorized: false, timeout: 1000, agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status) return status;
    if (Date.now() > deadline) throw new Error(`${url} did not answer /v1/health within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
