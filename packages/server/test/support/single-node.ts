import { join } from 'node:path';
import { readPostmasterPid, stopPostgres } from '@trustee/replicator';
import {
  bootstrapActiveDb,
  createLogger,
  initConfdir,
  nodeInstance,
  startServer,
  updateKeytrusteeConf,
  type Logger,
  type RunningServer,
} from '@trustee/server';
import { freePort } from './ports';
import { trackPid, untrackPid } from './processes';
import { makeTempDir, removeDir } from './temp-dir';
import { takeTestKeys } from './test-keys';

export interface SingleNode {
  home: string;
  confdir: string;
  dbDir: string;
  dbPort: number;
  url: string;
  server: RunningServer;
  /** Stops the server and PostgreSQL (by PID as a last resort) and removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * One real node: confdir (RSA 4096 identity), PostgreSQL started as the unprivileged user on a
 * free port, and the HTTPS server in-process on a free port. Start once per test file.
 */
export async function startSingleNode(
  opts: {
    logLevel?: string;
    /** keytrustee.conf keys to set before the server starts. */ conf?: Record<string, unknown>;
    /** The server's logger (e.g. one writing to memory, for a test that reads the log); default: stderr at logLevel. */
    log?: Logger;
  } = {},
): Promise<SingleNode> {
  const home = makeTempDir();
  const confdir = join(home, 'confdir');
  const dbDir = join(home, 'db');
  const dbPort = await freePort();
  try {
    await initConfdir({ confdir, host: 'localhost', port: 0, keys: await takeTestKeys() });
    await bootstrapActiveDb({ confdir, pgRootdir: dbDir, port: dbPort, listenAddresses: '127.0.0.1' });
  } catch (e) {
    await Promise.resolve()
      .then(() =>
        stopPostgres(nodeInstance({ confdir, pgRootdir: dbDir, port: dbPort }), { mode: 'immediate' }),
      )
      .catch(() => undefined);
    removeDir(home);
    throw e;
  }
  if (opts.conf) updateKeytrusteeConf(confdir, opts.conf);
  const pgPid = readPostmasterPid(dbDir);
  if (pgPid) trackPid(pgPid);
  let server: RunningServer;
  try {
    server = await startServer({
      confdir,
      port: 0,
      listenAddress: '127.0.0.1',
      log:
        opts.log ?? createLogger({ level: opts.logLevel ?? process.env.TRUSTEE_TEST_LOG_LEVEL ?? 'silent' }),
    });
  } catch (e) {
    await stopPostgres(nodeInstance({ confdir })).catch(() => undefined);
    removeDir(home);
    throw e;
  }
  return {
    home,
    confdir,
    dbDir,
    dbPort,
    url: `https://localhost:${server.port}`,
    server,
    async stop() {
      await server.close().catch(() => undefined);
      await stopPostgres(nodeInstance({ confdir }), { mode: 'immediate' }).catch(() => undefined);
      if (pgPid) {
        try {
          process.kill(pgPid, 'SIGKILL');
        } catch {
          // already stopped
        }
        untrackPid(pgPid);
      }
      removeDir(home);
    },
  };
}
