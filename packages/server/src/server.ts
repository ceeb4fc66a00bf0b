import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type RedisClient from 'ioredis';
import { lazyModule } from './lazy-module';
import type { Client } from 'pg';
import { runMigrations } from '@trustee/replicator';
import { createApp } from './app';
import { loadKeytrusteeConf, resolveConfPath, type KeytrusteeConf } from './config';
import { confPaths } from './confdir/paths';
import { assertSecretFileMode, readSecretFile } from './confdir/secret-files';
import type { ServerContext } from './context';
import { DenyListWatcher } from './auth/deny-list-watcher';
import { keyFingerprint } from './crypto/fingerprint';
import {
  connectNodeDb,
  connectNodeOwner,
  DB_APP_ROLE,
  ensureAppRole,
  nodeDbTarget,
  StartupError,
} from './db/node-db';
import { createRequestPool, type Db } from './db/pool';
import { depositQuotasOf } from './deposits/quotas';
import { DepositVacuum } from './deposits/vacuum-after-destroy';
import { foldDepositUsage } from './db/sql/deposit-usage';
import { MIGRATIONS_DIR, VERSION } from './package-info';
import { startNodeJournal } from './journal/run-journal-while-active';
import { openNodeKeys, startHsmMaintenance, type HsmStatus } from './keys/open-node-keys';
import type { OpenedKeys } from './keys/open-key-hierarchy';
import { createLogger, type Logger } from './logger';
import { createMetrics } from './metrics';
import { startCountRefresh } from './metrics-refresh';
import { backupSettings } from './jobs/backup-schedule';
import { NodeState } from './node/node-state';
import { createRateLimits } from './rate-limit';
import { SignPool } from './crypto/sign-pool';
import { clientAddressPolicy } from './http/client-address';
import { DecoyRegistrations } from './orgs/decoy-registration';
import { createJobRunner } from './jobs/job-runner';
import { applyConnectionLimits } from './http/connection-limits';
import {
  answerConnect,
  answerMalformedRequest,
  answerUnsupportedExpectation,
} from './http/malformed-request';
import { everyMs } from './rate-limit';
import { enqueueBackupNow } from './jobs/backup-now';
import { parseListenAddress } from './tls/listen-address';
import {
  activeClientCheck,
  apiMetricsAccess,
  guardApiMetrics,
  startMetricsListener,
} from './tls/metrics-access';
import { createTlsReloader, logNodeTls, prepareNodeTls, type TlsReloadResult } from './tls/node-tls';
import { certificateExpirySeconds } from './tls/server-tls';
import { deriveAuditKey } from './audit/audit-mac';
import { RefusalCounter } from './audit/audit-refusals';
import { startAuditLoop } from './audit/audit-chainer';

/** Loaded only when REDIS_URL is set (235 KB). */
const ioredis = lazyModule(() => require('ioredis') as { default: typeof RedisClient });

export { MIGRATIONS_DIR, VERSION } from './package-info';
export { connectNodeDb, DB_APP_ROLE, StartupError } from './db/node-db';

export interface StartOptions {
  confdir: string;
  /** Overrides keytrustee.conf PORT (0 = any free port, for tests). */
  port?: number;
  listenAddress?: string;
  log?: Logger;
  /** Node-state poll period (default 200 ms). */
  pollIntervalMs?: number;
  /** Peer probe period (default 1000 ms). */
  peerProbeIntervalMs?: number;
}

export interface RunningServer {
  server: Server;
  port: number;
  ctx: ServerContext;
  conf: KeytrusteeConf;
  /** METRICS_LISTEN's bound address (plain HTTP /metrics), when configured. */
  metricsAddress?: AddressInfo;
  /** SIGHUP: re-reads the TLS keys of keytrustee.conf and the .ssl/ files; keeps the old ones if the new are unusable. */
  reloadTls(): Promise<TlsReloadResult>;
  /** @internal Runs an audit pass now (refusal aggregates, chaining), for tests. */
  auditPass(): Promise<void>;
  close(): Promise<void>;
}

/** Refuses to start when any secret file is readable by group/others (DESIGN.md). */
export function checkSecretFiles(confdir: string, conf: KeytrusteeConf): void {
  const p = confPaths(confdir);
  for (const f of [
    p.identityKey,
    p.masterKey,
    p.replicationSecret,
    resolveConfPath(confdir, conf.SSL_PRIVATE_KEY),
  ]) {
    try {
      assertSecretFileMode(f);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        if (f === p.replicationSecret) continue;
        throw new StartupError(`missing ${f}; run \`ktadmin --confdir ${confdir} init\``);
      }
      throw new StartupError((e as Error).message);
    }
  }
}

/** Records the identity on a fresh active (it then replicates to the passive for the identity check). */
async function recordIdentity(client: Client, fingerprint: string): Promise<void> {
  await client.query(
    'insert into cluster_identity (id, fingerprint) values (1, $1) on conflict (id) do nothing',
    [fingerprint],
  );
}

async function appRoleExists(db: Db): Promise<boolean> {
  const { rows } = await db.control
    .query<{ ok: boolean }>('select exists (select 1 from pg_roles where rolname = $1) as ok', [DB_APP_ROLE])
    .catch(() => ({ rows: [{ ok: true }] }));
  return rows[0]?.ok === true;
}

/** One log line per 10 s about refused connections, not one per connection. */
const connectionWarning = everyMs(10_000);

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const conf = loadKeytrusteeConf(opts.confdir);
  checkSecretFiles(opts.confdir, conf);
  const log = opts.log ?? createLogger({ name: 'keytrusteed' });
  const p = confPaths(opts.confdir);
  const identityKey = readSecretFile(p.identityKey).toString('utf8');
  const identity = {
    keyPem: identityKey,
    certPem: readFileSync(p.identityCert, 'utf8'),
    fingerprint: keyFingerprint(identityKey),
  };
  // TLS first: a key that cannot be opened or a cipher list OpenSSL rejects stops the start here.
  const tlsSource = { confdir: opts.confdir, clientCaPem: identity.certPem };
  const nodeTls = await prepareNodeTls({ ...tlsSource, settings: conf });
  logNodeTls(log, nodeTls, 'TLS ready');
  // Requests run as the least-privilege role; the control pool (state, cancels) as the owner.
  const db = connectNodeDb(conf, opts.confdir, { requestUser: DB_APP_ROLE });
  const metrics = createMetrics();
  // The key hierarchy: the master key file, or data keys under a KEK on the HSM (a missing token
  // or a wrong PIN stops the start here, saying which).
  let opened: OpenedKeys & { hsmStatus: HsmStatus };
  try {
    opened = await openNodeKeys(opts.confdir, conf, db, metrics, log);
  } catch (e) {
    await db.close();
    throw e;
  }
  const { keys, hsm, hsmStatus } = opened;
  metrics.tlsCertificateExpiry.set(certificateExpirySeconds(nodeTls.certificate));
  const redisUrl = conf.REDIS_URL;
  const redis = redisUrl
    ? new ioredis.default(redisUrl, {
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        lazyConnect: false,
      })
    : undefined;
  redis?.on('error', (e: Error) =>
    log.warn({ err: e.message }, 'redis error; rate limits fall back to allowing'),
  );
  let nodeState: NodeState | undefined;
  let denyList: DenyListWatcher | undefined;
  // RSA signatures for registrations run on worker threads (issue 10, finding 5).
  const signPool = new SignPool({
    keyPem: identity.keyPem,
    threads: conf.SIGNING_THREADS,
    maxQueue: conf.SIGNING_QUEUE_MAX,
    log: log.child({ component: 'sign-pool' }),
  });
  try {
    const peerUrl = conf.PEERS[0];
    nodeState = new NodeState({
      pool: db.control,
      identityFingerprint: identity.fingerprint,
      intervalMs: opts.pollIntervalMs,
      requireSyncStandby: conf.PEERS.length > 0,
      peerUrl,
      confdir: opts.confdir,
      peerProbeIntervalMs: opts.peerProbeIntervalMs,
      log: log.child({ component: 'node-state' }),
    });
    // Ask the peer first: an old active coming back must know it was superseded before it serves.
    await nodeState.probePeerOnce();
    const first = await nodeState.poll();
    if (first.dbUp && first.role === 'active' && nodeState.decide().role === 'active') {
      // Migrations are DDL: the owner role, on a connection of their own that no request reuses.
      const client = await connectNodeOwner(conf, opts.confdir);
      try {
        // Schema changes are local (not waiting on the standby): they replicate like any WAL.
        await client.query('set synchronous_commit = local');
        const applied = await runMigrations(client, MIGRATIONS_DIR);
        if (applied.length) log.info({ applied }, 'schema migrated');
        // A database loaded by hand from a dump (the seed's manual restore) has migration 0004
        // recorded but not the role, which lives outside the database: make sure of it here.
        await ensureAppRole(client);
        // Same session as the migrations (synchronous_commit = local): never waits for a passive.
        await recordIdentity(client, identity.fingerprint);
      } finally {
        await client.end().catch(() => undefined);
      }
    } else if (!first.dbUp) {
      log.warn({ error: first.error }, 'database not reachable at start; will keep polling');
    }
    if (first.dbUp && !(await appRoleExists(db))) {
      // Only a passive whose active has not yet run migration 0004 (an upgrade in progress).
      await db.pool.end();
      db.pool = createRequestPool(nodeDbTarget(conf, opts.confdir));
      log.warn(
        { role: DB_APP_ROLE },
        'the least-privilege database role does not exist yet (the active creates it when it migrates); serving requests as the owner role until the next restart',
      );
    }
    const ns = nodeState;
    await ns.start();
    // Clients revoked on this node while the replicated state could not be written (issue 10).
    denyList = new DenyListWatcher({
      confdir: opts.confdir,
      pool: db.control,
      log: log.child({ component: 'deny-list' }),
    });
    denyList.start();
    const ctx: ServerContext = {
      db,
      keys,
      hsm,
      hsmStatus,
      identity,
      nodeState: ns,
      denyList,
      metrics,
      limits: createRateLimits({
        perSecond: conf.RATE_LIMIT_PER_SECOND,
        registrationFailures: conf.REGISTRATION_FAILURES_PER_15_MIN,
        registrations: conf.REGISTRATIONS_PER_15_MIN,
        redis,
        redisKeyPrefix: conf.REDIS_KEY_PREFIX,
        registrationFailureWindowS: conf.REGISTRATION_FAILURE_WINDOW_SECONDS,
      }),
      signPool,
      decoys: new DecoyRegistrations(identity.keyPem),
      clientAddress: clientAddressPolicy({
        trustedProxies: conf.TRUSTED_PROXIES,
        header: conf.CLIENT_ADDRESS_HEADER,
      }),
      log,
      maxValueBytes: conf.MAX_VALUE_BYTES,
      maxPendingClientsPerOrg: conf.MAX_PENDING_CLIENTS_PER_ORG,
      depositQuotas: depositQuotasOf(conf),
      maxClientsAutoApprovedOrg: conf.QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG,
      depositVacuum: new DepositVacuum(
        async () => {
          const owner = await connectNodeOwner(conf, opts.confdir);
          try {
            await owner.query('vacuum (truncate false) deposits');
          } finally {
            await owner.end();
          }
        },
        log.child({ component: 'vacuum' }),
      ),
      version: VERSION,
      auditRefusals: new RefusalCounter({
        onCount: (r) => metrics.audit.refusals.inc({ action: r.action, result: r.result }),
      }),
      write: {
        auditKey: deriveAuditKey(p.masterKey),
        db,
        commitWaitMs: conf.COMMIT_WAIT_MS,
        requireSyncStandby: ns.requireSyncStandby,
        onStandbyMissing: () => void ns.poll(),
        log,
        gate: () => ns.admitWrite(),
        onSingleNodeWrite: () => metrics.singleNodeWrites.inc(),
        onInDoubt: (reason) => metrics.writesInDoubt.inc({ reason }),
      },
    };
    const hsmTimer = hsm
      ? startHsmMaintenance({
          hsm,
          intervalMs: Math.max(500, Math.min(30_000, (conf.HSM_DATA_KEY_MAX_AGE_SECONDS * 1000) / 2)),
          write: () => (ns.decide().role === 'active' ? ctx.write : undefined),
          metrics,
          log: log.child({ component: 'hsm' }),
        })
      : undefined;
    const metricsTimer = setInterval(() => metrics.observeNode(ns), 1000);
    metricsTimer.unref();
    metrics.observeNode(ns);
    metrics.buildInfo.set({ version: VERSION, node_version: process.version }, 1);
    // Background jobs (scheduled backups) run only while this node decides it is the active.
    const jobs = createJobRunner({
      confdir: opts.confdir,
      conf,
      log: log.child({ component: 'jobs' }),
      metrics,
      isActive: () => ns.decide().role === 'active',
      mail: conf.SMTP_URL
        ? {
            keys,
            identityKeyPem: identity.keyPem,
            smtp: { url: conf.SMTP_URL, from: conf.SMTP_FROM || `keytrustee@${conf.HOST}` },
            pendingNoticeIntervalS: conf.MAIL_PENDING_NOTICE_INTERVAL_SECONDS,
          }
        : undefined,
    });

    const app = createApp(ctx);
    const server = createServer(
      {
        // key, served chain (+ .ssl/ssl-cert-keytrustee-ca.pem), passphrase, client CA, floor, ciphers
        ...nodeTls.options,
        requestCert: true,
        // Registration and health are anonymous; authenticated routes check `socket.authorized`.
        rejectUnauthorized: false,
        handshakeTimeout: conf.TLS_HANDSHAKE_TIMEOUT_MS,
      },
      guardApiMetrics(app, apiMetricsAccess(conf), activeClientCheck({ db, denyList, decoys: ctx.decoys })),
    );
    const tlsReloader = createTlsReloader({
      ...tlsSource,
      server,
      initial: nodeTls,
      readSettings: () => loadKeytrusteeConf(opts.confdir),
      log: log.child({ component: 'tls' }),
      metrics,
    });
    server.keepAliveTimeout = 65_000;
    // Requests Node's HTTP layer refuses itself answer in the documented error shape too.
    server.on(
      'clientError',
      answerMalformedRequest((code) => metrics.errors.inc({ code })),
    );
    server.on(
      'checkExpectation',
      answerUnsupportedExpectation((code) => metrics.errors.inc({ code })),
    );
    server.on(
      'connect',
      answerConnect((code) => metrics.errors.inc({ code })),
    );
    applyConnectionLimits(
      server,
      {
        handshakeTimeoutMs: conf.TLS_HANDSHAKE_TIMEOUT_MS,
        headersTimeoutMs: conf.HEADERS_TIMEOUT_MS,
        requestTimeoutMs: conf.REQUEST_TIMEOUT_MS,
        maxConnectionsPerSource: conf.MAX_CONNECTIONS_PER_SOURCE,
      },
      () => {
        metrics.connectionsRefused.inc();
        if (connectionWarning.due())
          log.warn('connection refused: too many open connections from one source');
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? conf.PORT, opts.listenAddress ?? conf.LISTEN_ADDRESS, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const metricsListener = conf.METRICS_LISTEN
      ? await startMetricsListener({
          listen: parseListenAddress(conf.METRICS_LISTEN),
          registry: metrics.registry,
          beforeScrape: () => metrics.observeNode(ns),
          log,
        }).catch((e: Error) => {
          server.close();
          throw new StartupError(`METRICS_LISTEN ${conf.METRICS_LISTEN}: ${e.message}`);
        })
      : undefined;
    log.info({ port, role: ns.current().role, fingerprint: identity.fingerprint }, 'keytrusteed listening');
    // Change journal (JOURNAL_DIR): streams from the logical slot while this node decides it is active.
    const journal = startNodeJournal({
      conf,
      confdir: opts.confdir,
      log,
      registry: metrics.registry,
      isActive: () => ns.decide().role === 'active',
      // A gap (e.g. after a promotion) means backup + journal no longer covers every write:
      // queue a fresh backup at once (needs scheduled backups configured; else the log says so).
      onGap: () => {
        enqueueBackupNow(opts.confdir).then(
          (r) => log.warn({ jobId: r.jobId }, 'journal gap: fresh backup queued'),
          (e: Error) =>
            log.error(
              { err: e.message },
              'journal gap: could not queue a fresh backup; take one now with ktbackup',
            ),
        );
      },
    });
    jobs.start();
    // Audit trail: refusal aggregates and the chain, on the active only (audit-chainer.ts).
    const audit = startAuditLoop({
      write: ctx.write,
      key: ctx.write.auditKey as Buffer,
      refusals: ctx.auditRefusals,
      metrics: metrics.audit,
      log: log.child({ component: 'audit' }),
      isActive: () => ns.decide().role === 'active',
      // The quota counters: deltas appended by writes, folded here (db/sql/deposit-usage.ts).
      housekeeping: [foldDepositUsage],
    });
    const countRefresh = startCountRefresh(db.control, metrics, log, {
      backups: { dir: backupSettings(opts.confdir, conf).dir, host: conf.HOST },
    });
    return {
      server,
      port,
      ctx,
      conf,
      metricsAddress: metricsListener?.address,
      reloadTls: () => tlsReloader.reload(),
      auditPass: () => audit.tick(true),
      async close() {
        clearInterval(metricsTimer);
        await audit.stop();
        hsmTimer?.stop();
        countRefresh.stop();
        await metricsListener?.close();
        await journal?.close();
        ns.stop();
        denyList?.stop();
        await jobs.stop();
        await ctx.depositVacuum.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        redis?.disconnect();
        await signPool.close();
        await db.close();
        hsm?.close();
      },
    };
  } catch (e) {
    nodeState?.stop();
    denyList?.stop();
    redis?.disconnect();
    await signPool.close();
    await db.close();
    hsm?.close();
    throw e;
  }
}
