/**
 * Wire types of the Trustee HTTP API (DESIGN.md) and the SDK's public option/result types.
 * The server may import the wire types (STYLE §8); they carry no behaviour.
 */
import type { TrusteeError } from './errors';
import type { RetryOptions } from './retry';

// ---- wire -------------------------------------------------------------------------------------

/** `GET /v1/deposits/:name` answer. `value` is base64 of the stored bytes. */
export interface DepositWire {
  name: string;
  version: number;
  value: string;
  metadata: Record<string, unknown> | null;
  createdAt: string;
}

/** `PUT /v1/deposits/:name` answer. */
export interface PutResultWire {
  name: string;
  version: number;
}

export interface ListItemWire {
  name: string;
  version: number;
  createdAt: string;
}

/** `GET /v1/deposits` answer. */
export interface ListPageWire {
  items: ListItemWire[];
  nextCursor: string | null;
}

export type NodeRole = 'active' | 'passive' | 'unknown';

/** `GET /v1/health` body (sent with 200 or 503). */
export interface HealthWire {
  role: NodeRole;
  writable: boolean;
  db: string;
  replication: {
    state: string | null;
    syncState: string | null;
    lagBytes: number | null;
    replayLagSeconds: number | null;
  };
  version: string;
}

/** `POST /v1/clients/register` body. */
export interface RegisterRequestWire {
  org: string;
  authCode?: string;
  csr: string;
  name?: string;
}

export type ClientState = 'active' | 'pending';

/** `POST /v1/clients/register` answer. */
export interface RegisterResponseWire {
  fingerprint: string;
  state: ClientState;
  certificate: string;
  caCertificate: string;
}

// ---- SDK --------------------------------------------------------------------------------------

/** Read cache policy. Entries hold the server's answer as received: ciphertext when encryption is on. */
export interface CacheOptions {
  /** Max cached answers (LRU beyond that); 0 disables the cache. Default 1000. */
  maxEntries: number;
  /** How long an entry answers reads without asking a node, in ms. Default 5000. */
  ttlMs: number;
  /** When every node is unreachable, answer from an expired entry. Default true. */
  serveStaleOnError: boolean;
  /** Oldest entry (age since it was fetched, ms) that may be served on error. Default 15 min. */
  maxStaleMs: number;
}

/** Minimal leveled logger (pino-compatible). The SDK never creates one. */
export interface TrusteeLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type RequestKind = 'read' | 'write' | 'health';

export interface RequestEvent {
  node: string;
  method: string;
  path: string;
  kind: RequestKind;
}
export interface ResponseEvent extends RequestEvent {
  status: number;
  durationMs: number;
}
export interface RequestErrorEvent extends RequestEvent {
  error: TrusteeError;
  durationMs: number;
}
export interface RetryEvent {
  operation: string;
  /** 0-based retry number. */
  attempt: number;
  delayMs: number;
  error: TrusteeError;
}
export interface FailoverEvent {
  operation: string;
  from: string;
  to: string;
  error: TrusteeError;
}
export interface CacheHitEvent {
  name: string;
  version?: number;
  /** 'stale' = served from an expired entry because no node answered. */
  freshness: 'fresh' | 'stale';
  ageMs: number;
}
export interface ActiveChangeEvent {
  previous: string | null;
  active: string | null;
}
export interface BreakerEvent {
  node: string;
  state: 'closed' | 'open' | 'half-open';
}

/**
 * Hooks for metrics and logging. Called synchronously; an exception thrown by a hook is
 * swallowed (and logged) so instrumentation can never break a call.
 */
export interface TrusteeHooks {
  onRequest?(event: RequestEvent): void;
  onResponse?(event: ResponseEvent): void;
  onRequestError?(event: RequestErrorEvent): void;
  onRetry?(event: RetryEvent): void;
  onFailover?(event: FailoverEvent): void;
  onCacheHit?(event: CacheHitEvent): void;
  onCacheMiss?(event: { name: string; version?: number }): void;
  onActiveChange?(event: ActiveChangeEvent): void;
  onBreakerStateChange?(event: BreakerEvent): void;
}

/** Per-node circuit breaker policy. */
export interface BreakerOptions {
  /** Consecutive node failures (network, timeout, 5xx) that open the breaker. Default 5. */
  threshold: number;
  /** How long an open breaker rejects calls before letting one test call through, ms. Default 10000. */
  halfOpenAfterMs: number;
}

export type EncryptionMode = 'envelope' | 'none';

export interface TrusteeClientOptions {
  /** Base URLs of both nodes, e.g. `['https://kt1:11371', 'https://kt2:11371']`. */
  endpoints: string[];
  /** PEM certificate(s) to trust for the nodes' TLS (their self-signed certs or a CA). Default: system roots. */
  ca?: string | string[];
  /** Disables server certificate verification. Dangerous: anyone on the path can read your keys. Default false. */
  skipSslCheck?: boolean;
  /** Client certificate PEM issued at registration (mTLS). */
  cert: string;
  /** Client private key PEM. */
  key: string;
  /**
   * Client data key for envelope encryption: 32 raw bytes, or the wrapped form from the config file
   * (unwrapped with `key`). Required when `encryption` is 'envelope'.
   */
  dataKey?: Uint8Array | { alg: 'RSA-OAEP-SHA256'; wrapped: string };
  /** 'envelope' (default): AES-256-GCM client-side; 'none': values are stored as given. */
  encryption?: EncryptionMode;
  /** Accept deposits that are not envelopes when reading in 'envelope' mode (e.g. written with `raw`). Default false. */
  acceptUnencrypted?: boolean;
  /** Timeout of one HTTP attempt, ms. Default 5000. */
  timeoutMs?: number;
  /** Overall budget of one call including retries and failover, ms. Default 15000. */
  deadlineMs?: number;
  retry?: Partial<RetryOptions>;
  cache?: Partial<CacheOptions>;
  breaker?: Partial<BreakerOptions>;
  logger?: TrusteeLogger;
  hooks?: TrusteeHooks;
}

export type DepositValue = Uint8Array | Buffer | string;

export interface CallOptions {
  /** Aborts the call (no retry after an abort). */
  signal?: AbortSignal;
  /** Overrides the client's `deadlineMs` for this call. */
  deadlineMs?: number;
}

export interface PutOptions extends CallOptions {
  /** Stored in clear next to the value: never put secrets here. */
  metadata?: Record<string, unknown>;
  /** Write only if the latest version is this one (optimistic concurrency), else VERSION_CONFLICT. */
  ifMatch?: number;
  /** Reuse to make a retried put idempotent across processes; ≤ 200 characters. Default: random UUID. */
  idempotencyKey?: string;
  /** Store the bytes as given, without envelope encryption. */
  raw?: boolean;
}

export interface GetOptions extends CallOptions {
  version?: number;
  /** Skip the fresh-cache lookup (stale entries may still be served when no node answers). */
  noCache?: boolean;
}

export interface DeleteOptions extends CallOptions {
  idempotencyKey?: string;
}

export interface ListOptions extends CallOptions {
  prefix?: string;
  /** Items per page requested from the server. */
  pageSize?: number;
}

export interface ListPageOptions extends ListOptions {
  cursor?: string | null;
}

export interface PutResult {
  name: string;
  version: number;
  /** The key sent with every try; reuse it to resolve a WRITE_IN_DOUBT later. */
  idempotencyKey: string;
}

export interface DepositListItem {
  name: string;
  version: number;
  createdAt: Date;
}

export interface DepositListPage {
  items: DepositListItem[];
  nextCursor: string | null;
}

export interface EndpointStatus {
  url: string;
  /** True when the node answered its health endpoint (200 or 503 with a body). */
  reachable: boolean;
  httpStatus?: number;
  health?: HealthWire;
  error?: { code: string; message: string };
  latencyMs: number;
  breaker: BreakerEvent['state'];
}

export interface ClusterStatus {
  endpoints: EndpointStatus[];
  /** URL of the node reporting role 'active', or null. */
  active: string | null;
}
