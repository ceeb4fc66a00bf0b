import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { IN_DOUBT_REASONS } from './db/write-path';
import { QUOTA_KINDS } from './deposits/quotas';
import { HTTP_STATUS } from './errors';
import type { NodeState } from './node/node-state';
import { HSM_OPS, type HsmOp } from './keys/kek-backend';
import { createAuditMetrics } from './audit/audit-metrics';
import { createMailMetrics } from './mail/mail-metrics';

/** Codes a refused write gets from the node decision (decide.ts); a low, fixed label set. */
const WRITE_REFUSAL_CODES = ['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'UNAVAILABLE'] as const;

/** One registry per server instance (tests run several in one process). Labels never carry secrets or names of deposits. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'trustee_http_requests_total',
    help: 'HTTP requests by route template, method and status code',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'trustee_http_request_duration_seconds',
    help: 'HTTP request latency by route template and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'trustee_errors_total',
    help: 'Error answers sent, by stable error code (DESIGN.md), counted by the error handler',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const rateLimitRejections = new Counter({
    name: 'trustee_rate_limit_rejections_total',
    help: 'Requests answered RATE_LIMITED (429), by limiter: registration, requests or contact-token (key page)',
    labelNames: ['limiter'] as const,
    registers: [registry],
  });
  const quotaRefusals = new Counter({
    name: 'trustee_quota_refusals_total',
    help: 'Requests answered QUOTA_EXCEEDED (429), by quota: deposits, versions, bytes, clients (auto-approved org)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of QUOTA_KINDS) quotaRefusals.inc({ kind }, 0);
  const buildInfo = new Gauge({
    name: 'trustee_build_info',
    help: 'Always 1; labels: the server package version and the Node.js version',
    labelNames: ['version', 'node_version'] as const,
    registers: [registry],
  });
  const writeRefusalCode = new Gauge({
    name: 'trustee_write_refusal_code',
    help: 'Why writes are refused now: 1 for the error code a write would get (NOT_ACTIVE, PASSIVE_UNAVAILABLE, UNAVAILABLE), 0 for the others; all 0 while writable',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const deposits = new Gauge({
    name: 'trustee_deposit_rows_estimate',
    help: "Rows of the deposits table (every version and tombstone), PostgreSQL's estimate (pg_class.reltuples), refreshed every 30 s",
    registers: [registry],
  });
  const clients = new Gauge({
    name: 'trustee_clients',
    help: 'Registered clients by state (active, pending, disabled), counted every 30 s',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const writeRefusals = new Counter({
    name: 'trustee_write_refusals_total',
    help: 'Writes refused or left in doubt, by reason (NOT_ACTIVE, PASSIVE_UNAVAILABLE, WRITE_IN_DOUBT, UNAVAILABLE)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const writesInDoubt = new Counter({
    name: 'trustee_writes_in_doubt_total',
    help: 'Writes answered WRITE_IN_DOUBT, by reason: commit_outcome_unknown, standby_wait_interrupted, standby_not_confirmed, replay_not_confirmed',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const role = new Gauge({
    name: 'trustee_node_role',
    help: '1 for the role this node decided (active, passive, fenced, unavailable), 0 for the others',
    labelNames: ['role'] as const,
    registers: [registry],
  });
  const writable = new Gauge({
    name: 'trustee_writable',
    help: '1 when this node accepts writes',
    registers: [registry],
  });
  const dbUp = new Gauge({
    name: 'trustee_db_up',
    help: '1 when the local PostgreSQL answers',
    registers: [registry],
  });
  const syncConnected = new Gauge({
    name: 'trustee_replication_sync_connected',
    help: 'Active: 1 when a synchronous standby is streaming. Passive: 1 when the WAL receiver is streaming',
    registers: [registry],
  });
  const lagBytes = new Gauge({
    name: 'trustee_replication_lag_bytes',
    help: 'Bytes of WAL the standby has not replayed yet',
    registers: [registry],
  });
  const lagSeconds = new Gauge({
    name: 'trustee_replication_replay_lag_seconds',
    help: 'Replay lag of the standby in seconds',
    registers: [registry],
  });
  const identityMismatch = new Gauge({
    name: 'trustee_identity_mismatch',
    help: "1 when this node's cluster identity differs from the active's (it then refuses client traffic)",
    registers: [registry],
  });

  const singleNodeMode = new Gauge({
    name: 'trustee_single_node_writes_enabled',
    help: '1 while an operator allows writes without the passive (ktadmin allow-single-node-writes; degraded)',
    registers: [registry],
  });
  const singleNodeWrites = new Counter({
    name: 'trustee_single_node_writes_total',
    help: 'Writes committed on this node only, under single-node mode',
    registers: [registry],
  });
  const fenced = new Gauge({
    name: 'trustee_fenced',
    help: '1 when this node found its peer promoted past it and serves nothing until `ktadmin rejoin`',
    registers: [registry],
  });
  const timeline = new Gauge({
    name: 'trustee_timeline',
    help: "This node's PostgreSQL timeline (a promotion increases it)",
    registers: [registry],
  });
  const peerReachable = new Gauge({
    name: 'trustee_peer_reachable',
    help: "1 when the peer's API answered the last probe (absent for a single node)",
    registers: [registry],
  });
  const slotLost = new Gauge({
    name: 'trustee_replication_slot_lost',
    help: 'Replication slots invalidated by max_slot_wal_keep_size (the passive must be rebuilt with --replace)',
    registers: [registry],
  });

  const backupLastSuccess = new Gauge({
    name: 'trustee_backup_last_success_timestamp_seconds',
    help: 'When the newest backup of this host in BACKUP_DIR was written (scheduled run, or the newest file at start); 0: none',
    registers: [registry],
  });
  const backupFailures = new Counter({
    name: 'trustee_backup_failures_total',
    help: 'Scheduled backup runs (attempts) that failed on this node; the reason is in the log',
    registers: [registry],
  });
  const backupDuration = new Gauge({
    name: 'trustee_backup_duration_seconds',
    help: 'Duration of the last scheduled backup run on this node (successful or not)',
    registers: [registry],
  });
  const jobRunnerActive = new Gauge({
    name: 'trustee_job_runner_active',
    help: '1 while this node runs the background job runner (graphile-worker; only on the active)',
    registers: [registry],
  });
  jobRunnerActive.set(0);

  const connectionsRefused = new Counter({
    name: 'trustee_connections_refused_total',
    help: 'TCP connections closed at once because their source address held MAX_CONNECTIONS_PER_SOURCE already',
    registers: [registry],
  });
  const rateLimitStoreErrors = new Counter({
    name: 'trustee_rate_limit_store_errors_total',
    help: 'Rate-limit store (Redis) failures by limiter: registration refuses (fail closed), requests are let through (fail open)',
    labelNames: ['limiter'] as const,
    registers: [registry],
  });

  const tlsCertificateExpiry = new Gauge({
    name: 'trustee_tls_certificate_expiry_timestamp_seconds',
    help: "notAfter of the TLS certificate this node serves on its API port (its own, not the chain's), Unix seconds",
    registers: [registry],
  });
  const tlsReloads = new Counter({
    name: 'trustee_tls_reloads_total',
    help: 'TLS certificate reloads (SIGHUP) by result: ok (served to new connections) or failed (the previous one kept; the reason is in the log)',
    labelNames: ['result'] as const,
    registers: [registry],
  });

  // Every known label value starts at 0, so the series exist from the first scrape and
  // increase()/rate() see the first event (a series born at 1 hides it).
  for (const code of Object.keys(HTTP_STATUS)) errors.inc({ code }, 0);
  for (const reason of ['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT', 'UNAVAILABLE'])
    writeRefusals.inc({ reason }, 0);
  for (const reason of IN_DOUBT_REASONS) writesInDoubt.inc({ reason }, 0);
  for (const limiter of ['registration', 'requests', 'contact-token']) {
    rateLimitRejections.inc({ limiter }, 0);
    rateLimitStoreErrors.inc({ limiter }, 0);
  }
  for (const result of ['ok', 'failed']) tlsReloads.inc({ result }, 0);

  /** Gauges from the node's one decision and its snapshot. */
  // Key HSM (issue 14): labels are the operation and a CKR_* style reason, never a key, PIN or label.
  const hsmOperations = new Counter({
    name: 'trustee_hsm_operations_total',
    help: 'HSM operations (open, find, generate, wrap, unwrap) by result (ok, error)',
    labelNames: ['op', 'result'] as const,
    registers: [registry],
  });
  const hsmOperationSeconds = new Histogram({
    name: 'trustee_hsm_operation_duration_seconds',
    help: 'Latency of HSM operations by operation',
    labelNames: ['op'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [registry],
  });
  const hsmErrors = new Counter({
    name: 'trustee_hsm_errors_total',
    help: 'Failed HSM operations by operation and reason (a PKCS#11 CKR_* code or TOKEN_NOT_PRESENT, KEK_NOT_FOUND)',
    labelNames: ['op', 'reason'] as const,
    registers: [registry],
  });
  const hsmUp = new Gauge({
    name: 'trustee_hsm_up',
    help: '1 when the last HSM operation succeeded, 0 after a failure; absent without an HSM',
    registers: [registry],
  });
  const hsmDataKeyCacheEntries = new Gauge({
    name: 'trustee_hsm_data_key_cache_entries',
    help: 'Unwrapped data keys held in memory (bounded by HSM_DATA_KEY_CACHE_SIZE)',
    registers: [registry],
  });
  const hsmDataKeysRewrapped = new Counter({
    name: 'trustee_hsm_data_keys_rewrapped_total',
    help: 'Data keys re-wrapped from a retiring KEK to the active one (KEK rotation, on the active)',
    registers: [registry],
  });
  function observeHsm(op: HsmOp, seconds: number, errorReason?: string): void {
    hsmOperations.inc({ op, result: errorReason ? 'error' : 'ok' });
    hsmOperationSeconds.observe({ op }, seconds);
    if (errorReason)
      hsmErrors.inc({ op, reason: /^[A-Z0-9_]{1,64}$/.test(errorReason) ? errorReason : 'OTHER' });
    hsmUp.set(errorReason ? 0 : 1);
  }
  /** Zero series for every operation, so a dashboard shows 0 rather than nothing on an HSM node. */
  function initHsmSeries(): void {
    for (const op of HSM_OPS) {
      hsmOperations.inc({ op, result: 'ok' }, 0);
      hsmOperations.inc({ op, result: 'error' }, 0);
    }
  }

  function observeNode(ns: NodeState): void {
    const s = ns.current();
    const d = ns.decide();
    for (const r of ['active', 'passive', 'fenced', 'unavailable'] as const)
      role.set({ role: r }, d.role === r ? 1 : 0);
    writable.set(d.writable ? 1 : 0);
    const refusal = d.writable ? undefined : (d.writeRefusal ?? d.readRefusal)?.code;
    for (const code of WRITE_REFUSAL_CODES) writeRefusalCode.set({ code }, refusal === code ? 1 : 0);
    singleNodeMode.set(d.singleNodeWrites ? 1 : 0);
    fenced.set(d.role === 'fenced' ? 1 : 0);
    if (s.timeline !== null) timeline.set(s.timeline);
    const peer = ns.peerObservation();
    if (peer) peerReachable.set(peer.reachable ? 1 : 0);
    slotLost.set(s.lostSlots.length);
    dbUp.set(s.dbUp ? 1 : 0);
    syncConnected.set(
      s.role === 'active' ? (s.syncStreaming ? 1 : 0) : s.replication.state === 'streaming' ? 1 : 0,
    );
    lagBytes.set(s.replication.lagBytes ?? 0);
    lagSeconds.set(s.replication.replayLagSeconds ?? 0);
    identityMismatch.set(s.identityMatches === false ? 1 : 0);
  }

  return {
    registry,
    requests,
    latency,
    errors,
    rateLimitRejections,
    quotaRefusals,
    buildInfo,
    deposits,
    clients,
    writeRefusals,
    writesInDoubt,
    singleNodeWrites,
    observeNode,
    backupLastSuccess,
    backupFailures,
    backupDuration,
    jobRunnerActive,
    rateLimitStoreErrors,
    connectionsRefused,
    tlsCertificateExpiry,
    tlsReloads,
    observeHsm,
    initHsmSeries,
    hsmUp,
    hsmDataKeyCacheEntries,
    hsmDataKeysRewrapped,
    audit: createAuditMetrics(registry),
    mail: createMailMetrics(registry),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
