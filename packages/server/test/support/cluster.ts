import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPostmasterPid, startPostgres } from '@trustee/replicator';
import {
  localNodeSpecs,
  nodeInstance,
  setupLocalCluster,
  spawnNodeServer,
  stopLocalDatabases,
  updateKeytrusteeConf,
  waitForHealth,
  type LocalCluster,
  type LocalNodeSpec,
} from '@trustee/server';
import { BINS } from './cli';
import { registerTestClient, type TestClient } from './clients';
import { freePort } from './ports';
import { childPids, trackPid, untrackPid, waitForExit } from './processes';
import { makeTempDir, removeDir } from './temp-dir';
import { takeTestKeys } from './test-keys';

export type NodeName = 'a' | 'b';

export interface TestCluster extends LocalCluster {
  home: string;
  node(n: NodeName): LocalNodeSpec;
  /** PID of the node's keytrusteed child process (undefined when stopped). */
  serverPid(n: NodeName): number | undefined;
  /** PID of the node's postmaster (undefined when not running). */
  pgPid(n: NodeName): number | undefined;
  /** Kills keytrusteed of a node with `signal` and waits for it to exit. */
  killServer(n: NodeName, signal?: NodeJS.Signals): Promise<void>;
  startServer(n: NodeName): Promise<void>;
  /** SIGKILLs the postmaster and all its children (a crash, no shutdown checkpoint). */
  killPostgres(n: NodeName): Promise<void>;
  /** Sends a signal (SIGSTOP/SIGCONT) to the postmaster and its children. */
  signalPostgres(n: NodeName, signal: NodeJS.Signals): void;
  startPostgres(n: NodeName): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real two-node cluster on free loopback ports: two PostgreSQL instances with synchronous
 * streaming replication and two keytrusteed child processes. Start once per test file.
 */
export async function startTestCluster(
  opts: {
    /** keytrustee.conf keys set on both nodes before their servers start. */ conf?: Record<string, unknown>;
  } = {},
): Promise<TestCluster> {
  const home = makeTempDir('trustee-cluster-');
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const clusterOpts = {
    home,
    apiPorts: [ports[0], ports[1]] as [number, number],
    dbPorts: [ports[2], ports[3]] as [number, number],
    keys: await takeTestKeys(),
  };
  let cluster: LocalCluster;
  try {
    cluster = await setupLocalCluster(clusterOpts);
  } catch (e) {
    // A half-built cluster: stop whatever PostgreSQL already runs before removing its files.
    const [a, b] = localNodeSpecs(clusterOpts);
    await stopLocalDatabases({ a, b }).catch(() => undefined);
    removeDir(home);
    throw e;
  }
  const spec = (n: NodeName) => (n === 'a' ? cluster.a : cluster.b);
  if (opts.conf) {
    updateKeytrusteeConf(cluster.a.confdir, opts.conf);
    updateKeytrusteeConf(cluster.b.confdir, opts.conf);
  }
  const servers: Partial<Record<NodeName, ChildProcess>> = {};
  const trackPg = (n: NodeName) => {
    const pid = readPostmasterPid(spec(n).dbDir);
    if (pid) trackPid(pid);
  };
  trackPg('a');
  trackPg('b');

  async function startServerOf(n: NodeName): Promise<void> {
    const child = spawnNodeServer(spec(n), { keytrusteedBin: BINS.keytrusteedDist, logLevel: 'info' });
    if (child.pid) trackPid(child.pid);
    servers[n] = child;
    try {
      await waitForHealth(spec(n).url, 20_000);
    } catch (e) {
      // Say why: whether it exited (and how) and what it logged, before the temp dir goes.
      const exited = child.exitCode !== null || child.signalCode !== null;
      throw new Error(
        `${(e as Error).message}; keytrusteed of node ${n} ${exited ? `exited (${child.exitCode ?? child.signalCode})` : 'still runs'}; ` +
          `last lines of ${spec(n).dir}/keytrusteed.log:\n${logTail(join(spec(n).dir, 'keytrusteed.log'), 30)}`,
      );
    }
  }

  const tc: TestCluster = {
    ...cluster,
    home,
    node: spec,
    serverPid: (n) => servers[n]?.pid,
    pgPid: (n) => readPostmasterPid(spec(n).dbDir),
    async killServer(n, signal = 'SIGKILL') {
      const child = servers[n];
      if (!child?.pid) return;
      child.kill(signal);
      await waitForExit(child.pid, 10_000);
      untrackPid(child.pid);
      servers[n] = undefined;
    },
    startServer: startServerOf,
    async killPostgres(n) {
      const pid = readPostmasterPid(spec(n).dbDir);
      if (!pid) return;
      const kids = childPids(pid);
      for (const p of [pid, ...kids]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await waitForExit(pid, 10_000);
      for (const p of kids) await waitForExit(p, 5_000);
      untrackPid(pid);
    },
    signalPostgres(n, signal) {
      const pid = readPostmasterPid(spec(n).dbDir);
      if (!pid) return;
      for (const p of [pid, ...childPids(pid)]) {
        try {
          process.kill(p, signal);
        } catch {
          // gone
        }
      }
    },
    async startPostgres(n) {
      await startPostgres(nodeInstance({ confdir: spec(n).confdir }));
      trackPg(n);
    },
    async stop() {
      // Un-freeze first: a SIGSTOPped postmaster ignores everything but SIGKILL.
      tc.signalPostgres('a', 'SIGCONT');
      tc.signalPostgres('b', 'SIGCONT');
      await tc.killServer('a', 'SIGTERM');
      await tc.killServer('b', 'SIGTERM');
      await stopPairDatabases(cluster);
      removeDir(home);
    },
  };
  try {
    // Both at once: each decides its role from its own PostgreSQL (a standby is passive), and a
    // peer that does not answer yet is only unreachable, so neither start waits on the other.
    const started = await Promise.allSettled([startServerOf('a'), startServerOf('b')]);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } catch (e) {
    await tc.stop();
    throw e;
  }
  return tc;
}

/** The last `lines` lines of a log file (or why there are none), for a failure message. */
export function logTail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (e) {
    return `(unreadable: ${(e as Error).message})`;
  }
}

/** Stops both PostgreSQLs of a pair (passive first), then SIGKILLs a postmaster that did not stop; never throws. */
export async function stopPairDatabases(pair: Pick<LocalCluster, 'a' | 'b'>): Promise<void> {
  const pids = [readPostmasterPid(pair.a.dbDir), readPostmasterPid(pair.b.dbDir)];
  await stopLocalDatabases(pair).catch(() => undefined);
  for (const pid of pids) {
    if (!pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // stopped cleanly
    }
    untrackPid(pid);
  }
}

export interface ClusterFixture {
  cluster: TestCluster;
  /** A client registered (active) in the cluster's organization, when asked for. */
  client: TestClient;
}

/**
 * Registers beforeAll/afterAll for one cluster per test file (plus a registered client when
 * `withClient`); the returned object is filled in before the first test runs.
 */
export function useTestCluster(opts: { withClient?: boolean } = {}): ClusterFixture {
  const fixture = {} as ClusterFixture;
  beforeAll(async () => {
    fixture.cluster = await startTestCluster();
    if (opts.withClient) {
      fixture.client = await registerTestClient(
        fixture.cluster.a.url,
        fixture.cluster.org,
        fixture.cluster.authCode,
      );
    }
  });
  afterAll(async () => {
    await fixture.cluster?.stop();
  });
  return fixture;
}
