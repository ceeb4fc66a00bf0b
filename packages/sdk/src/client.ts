import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { DepositCache, DEFAULT_CACHE, type CacheOptions } from './cache';
import { callWithRetry, type Attempt, type CallContext } from './call-with-retry';
import { defaultConfigPath, optionsFromConfig, readConfigFile } from './config-file';
import { unwrapDataKey } from './data-key';
import { DEFAULT_BREAKER, EndpointSet, type Endpoint } from './endpoints';
import { decryptValue, encryptValue, isEnvelope } from './envelope';
import { TrusteeError, errorFromResponse, isTrusteeError } from './errors';
import { createEmitter, type Emit } from './hooks';
import { headerValue, isNodeActive, sendRequest, type HttpRequest, type HttpResponse } from './http';
import { IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH, assertValidName } from './names';
import { registerConfig, type RegisterOptions, type RegisteredConfig } from './register';
import { DEFAULT_RETRY, SECOND, type RetryOptions } from './retry';
import type {
  CallOptions,
  ClusterStatus,
  DeleteOptions,
  DepositListPage,
  DepositValue,
  DepositWire,
  EncryptionMode,
  EndpointStatus,
  GetOptions,
  HealthWire,
  ListOptions,
  ListPageOptions,
  ListPageWire,
  PutOptions,
  PutResult,
  RequestKind,
  TrusteeClientOptions,
  TrusteeLogger,
} from './types';
import { parseDeposit, parseHealth, parseListPage, parsePutResult } from './wire';

export const DEFAULT_TIMEOUT_MS = 5 * SECOND;
export const DEFAULT_DEADLINE_MS = 15 * SECOND;
/** Re-seals after a VERSION_CONFLICT on a version this client guessed (concurrent writers). */
const MAX_SEAL_ROUNDS = 5;
/** Names whose latest version this client remembers (the If-Match guess of a put). */
const MAX_KNOWN_VERSIONS = 10_000;

/** A deposit as read: plaintext bytes (decrypted unless stored raw) and where they came from. */
export interface Deposit {
  name: string;
  version: number;
  value: Buffer;
  metadata: Record<string, unknown> | null;
  createdAt: Date;
  /** True when the stored value was an SDK envelope (and was decrypted). */
  encrypted: boolean;
  /** 'cache' within ttlMs; 'stale-cache' when no node answered and an older entry was served. */
  source: 'server' | 'cache' | 'stale-cache';
  /** The value decoded as text (default UTF-8). */
  text(encoding?: BufferEncoding): string;
}

/** A registration: what was written, and a ready client over it. */
export interface RegistrationResult extends RegisteredConfig {
  client: TrusteeClient;
}

/**
 * Registers a new client: key pair + CSR, `POST /v1/clients/register` on the active node, a fresh
 * data key wrapped with the new public key, the config file written 0600, and a client over it.
 */
export async function registerClient(options: RegisterOptions): Promise<RegistrationResult> {
  const registered = await registerConfig(options);
  const client = new TrusteeClient(
    optionsFromConfig(registered.config, { logger: options.logger, ...options.clientOptions }),
  );
  return { ...registered, client };
}

/** Errors after which a read may be answered from a stale cache entry: no node could answer. */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'NETWORK_ERROR',
  'TIMEOUT',
  'CIRCUIT_OPEN',
  'DEADLINE_EXCEEDED',
  'UNAVAILABLE',
  'SERVER_ERROR',
]);

/**
 * Client of a two-node Trustee cluster: writes go to the active node, reads to whichever node
 * answers, values are envelope-encrypted on this side by default.
 */
export class TrusteeClient {
  private readonly endpoints: EndpointSet;
  private readonly cache: DepositCache;
  private readonly emit: Emit;
  private readonly logger?: TrusteeLogger;
  private readonly encryption: EncryptionMode;
  private readonly dataKey?: Buffer;
  private readonly acceptUnencrypted: boolean;
  private readonly timeoutMs: number;
  private readonly deadlineMs: number;
  private readonly retry: RetryOptions;
  private readonly callContext: CallContext;
  private readonly knownVersions = new LRUCache<string, number>({ max: MAX_KNOWN_VERSIONS });

  constructor(options: TrusteeClientOptions) {
    this.logger = options.logger;
    this.emit = createEmitter(options.hooks, options.logger);
    this.encryption = options.encryption ?? 'envelope';
    this.dataKey = resolveDataKey(options);
    this.acceptUnencrypted = options.acceptUnencrypted ?? false;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    const cacheOptions: CacheOptions = { ...DEFAULT_CACHE, ...options.cache };
    this.cache = new DepositCache(cacheOptions);
    if (options.skipSslCheck === true) {
      this.logger?.warn(
        { endpoints: options.endpoints },
        'TLS verification disabled (skipSslCheck): server identity is not checked',
      );
    }
    const tls = { cert: options.cert, key: options.key, ca: options.ca, skipSslCheck: options.skipSslCheck };
    this.endpoints = new EndpointSet(
      options.endpoints,
      tls,
      { ...DEFAULT_BREAKER, ...options.breaker },
      this.emit,
    );
    this.callContext = {
      endpoints: this.endpoints,
      retry: this.retry,
      timeoutMs: this.timeoutMs,
      emit: this.emit,
      logger: this.logger,
      probeActive: (node, timeoutMs, signal) => this.probeActive(node, timeoutMs, signal),
    };
  }

  /**
   * Client from a config file written by `register`. Refuses (CONFIG_INSECURE) a file that group or
   * others may read or write. `overrides` win over the file (timeouts, hooks, logger...).
   */
  static fromConfigFile(
    filePath: string = defaultConfigPath(),
    overrides: Partial<TrusteeClientOptions> = {},
  ): TrusteeClient {
    return new TrusteeClient(optionsFromConfig(readConfigFile(filePath), overrides));
  }

  /** Generates a key pair, registers it, writes the config file (0600) and returns a ready client. */
  static register(options: RegisterOptions): Promise<RegistrationResult> {
    return registerClient(options);
  }

  /**
   * Stores a new version of `name`. Retries reuse one Idempotency-Key, so a write lands at most once.
   *
   * An encrypted value is bound to the version it will be stored as, so the put carries
   * `If-Match: <latest>` (the caller's `ifMatch`, else the latest version this client knows, else
   * 0). Without a caller `ifMatch`, a VERSION_CONFLICT (another writer came first) re-seals the
   * value for the version the server named and tries again, at most a few times.
   */
  async put(name: string, value: DepositValue, options: PutOptions = {}): Promise<PutResult> {
    assertValidName(name);
    const idempotencyKey = checkIdempotencyKey(options.idempotencyKey ?? randomUUID());
    const plaintext = toBytes(value);
    const sealed = options.raw !== true && this.encryption !== 'none';
    if (sealed && this.dataKey === undefined) throw missingDataKey();
    if (options.ifMatch !== undefined && (!Number.isSafeInteger(options.ifMatch) || options.ifMatch < 0)) {
      throw new TrusteeError('INVALID_ARGUMENT', 'ifMatch must be a non-negative integer version');
    }
    let expected = options.ifMatch ?? (sealed ? (this.knownVersions.get(name) ?? 0) : undefined);
    try {
      for (let round = 0; ; round += 1) {
        try {
          return await this.putOnce(name, plaintext, sealed, expected, idempotencyKey, options);
        } catch (e) {
          const current = conflictVersion(e);
          // Only a guess of ours is corrected; a caller's ifMatch conflict is the caller's answer.
          if (options.ifMatch !== undefined || !sealed || current === undefined || round >= MAX_SEAL_ROUNDS)
            throw e;
          expected = current;
        }
      }
    } catch (e) {
      throw withIdempotencyKey(e, idempotencyKey);
    } finally {
      // Even a failed put may have landed (WRITE_IN_DOUBT): never serve the old latest afterwards.
      this.cache.invalidateLatest(name);
    }
  }

  private async putOnce(
    name: string,
    plaintext: Buffer,
    sealed: boolean,
    ifMatch: number | undefined,
    idempotencyKey: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const newVersion = ifMatch === undefined ? undefined : ifMatch + 1;
    const stored =
      sealed && this.dataKey !== undefined && newVersion !== undefined
        ? encryptValue(this.dataKey, name, newVersion, plaintext, idempotencyKey)
        : plaintext;
    const body = JSON.stringify({ value: stored.toString('base64'), metadata: options.metadata });
    const headers: Record<string, string> = { 'idempotency-key': idempotencyKey };
    if (ifMatch !== undefined) headers['if-match'] = String(ifMatch);
    const wire = await this.call('put', 'write', options, async (a) => {
      const res = await this.send(a, 'write', { method: 'PUT', path: depositPath(name), headers, body });
      const result = parsePutResult(res.body, a.node.url);
      // The value is sealed for newVersion: a server storing it under another name or version
      // would make it unreadable, so such an answer is a protocol error, not a success.
      if (result.name !== name || (newVersion !== undefined && result.version !== newVersion)) {
        throw new TrusteeError(
          'PROTOCOL_ERROR',
          `put ${name} expected version ${newVersion ?? 'any'}, the server answered ${result.name} version ${result.version}`,
          { node: a.node.url },
        );
      }
      return result;
    });
    this.knownVersions.set(name, wire.version);
    return { name: wire.name, version: wire.version, idempotencyKey };
  }

  /** Reads the latest (or a given) version; decrypts envelopes. NOT_FOUND when deleted or unknown. */
  async get(name: string, options: GetOptions = {}): Promise<Deposit> {
    assertValidName(name);
    const { version } = options;
    const cached = options.noCache === true ? undefined : this.cache.fresh(name, version);
    if (cached !== undefined) {
      this.emit('onCacheHit', { name, version, freshness: 'fresh', ageMs: cached.ageMs });
      return this.decodeDeposit(cached.deposit, 'cache');
    }
    this.emit('onCacheMiss', { name, version });
    // An own put/delete finishing while this read is in flight keeps its answer out of the cache.
    const ticket = this.cache.beginRead(name);
    let wire: DepositWire;
    try {
      wire = await this.fetchDeposit(name, version, options);
    } catch (e) {
      this.cache.finishRead(ticket);
      // A node says the name (or this version) is gone — deleted or destroyed, perhaps by another
      // process: nothing cached for it may be served again, not even stale during an outage.
      if (isTrusteeError(e) && e.code === 'NOT_FOUND') this.cache.invalidateName(name);
      return this.serveStale(name, version, e);
    }
    this.cache.finishRead(ticket, wire, version === undefined);
    if (version === undefined) this.knownVersions.set(name, wire.version);
    return this.decodeDeposit(wire, 'server');
  }

  /** One page of names with their latest versions. */
  async listPage(options: ListPageOptions = {}): Promise<DepositListPage> {
    const query = new URLSearchParams();
    if (options.prefix !== undefined) query.set('prefix', options.prefix);
    if (options.pageSize !== undefined) query.set('limit', String(options.pageSize));
    if (options.cursor !== undefined && options.cursor !== null) query.set('cursor', options.cursor);
    const qs = query.toString();
    const wire: ListPageWire = await this.call('list', 'read', options, async (a) => {
      const res = await this.send(a, 'read', {
        method: 'GET',
        path: `/v1/deposits${qs === '' ? '' : `?${qs}`}`,
      });
      return parseListPage(res.body, a.node.url);
    });
    return {
      items: wire.items.map((i) => ({ name: i.name, version: i.version, createdAt: new Date(i.createdAt) })),
      nextCursor: wire.nextCursor,
    };
  }

  /** Every deposit name (latest version), fetching pages lazily. */
  async *list(options: ListOptions = {}): AsyncGenerator<DepositListPage['items'][number], void, undefined> {
    let cursor: string | null | undefined;
    const seen = new Set<string>();
    do {
      const page = await this.listPage({ ...options, cursor });
      yield* page.items;
      cursor = page.nextCursor;
      // A cursor that does not advance would loop forever: stop with a typed error instead.
      if (cursor !== null && seen.has(cursor)) {
        throw new TrusteeError('PROTOCOL_ERROR', 'the server returned the same list cursor twice');
      }
      if (cursor !== null) seen.add(cursor);
    } while (cursor !== null);
  }

  /** Deletes `name` (the server records a tombstone version). NOT_FOUND when unknown. */
  delete(name: string, options: DeleteOptions = {}): Promise<void> {
    return this.deleteRequest('delete', name, '', options);
  }

  /**
   * Destroys `name`: the server erases the value of every version on both nodes, irreversibly,
   * keeping a tombstone (DELETE ?destroy=true). Destroying a destroyed name succeeds again;
   * NOT_FOUND when the name never existed (or is another client's). Every cached version of the
   * name is dropped from this client's cache, whatever the outcome. Another process's cache
   * keeps what it holds until its entries expire (`ttlMs`) or a read finds the name gone.
   */
  destroy(name: string, options: DeleteOptions = {}): Promise<void> {
    return this.deleteRequest('destroy', name, '?destroy=true', options);
  }

  /** DELETE of a name (tombstone or destroy); every cached version is dropped, whatever the outcome. */
  private async deleteRequest(
    operation: 'delete' | 'destroy',
    name: string,
    query: string,
    options: DeleteOptions,
  ): Promise<void> {
    assertValidName(name);
    const idempotencyKey = checkIdempotencyKey(options.idempotencyKey ?? randomUUID());
    try {
      await this.call(operation, 'write', options, (a) =>
        this.send(a, 'write', {
          method: 'DELETE',
          path: `${depositPath(name)}${query}`,
          headers: { 'idempotency-key': idempotencyKey },
        }),
      );
    } catch (e) {
      throw withIdempotencyKey(e, idempotencyKey);
    } finally {
      this.cache.invalidateName(name);
      // The version this client last saw is no longer the latest.
      this.knownVersions.delete(name);
    }
  }

  /** Health of every endpoint, asked in parallel. Never throws for an unreachable node. */
  async status(options: CallOptions = {}): Promise<ClusterStatus> {
    const endpoints = await Promise.all(
      this.endpoints.nodes.map((node) => this.endpointStatus(node, options.signal)),
    );
    const active = endpoints.find((e) => e.health?.role === 'active')?.url ?? null;
    if (active !== null) this.endpoints.setActive(active);
    return { endpoints, active };
  }

  /** True when values are sealed in envelopes on this side (encryption 'envelope' with a data key). */
  get isEncrypting(): boolean {
    return this.encryption === 'envelope' && this.dataKey !== undefined;
  }

  /** Closes the keep-alive connections. The client must not be used afterwards. */
  close(): void {
    this.endpoints.close();
  }

  // ---- internals ------------------------------------------------------------------------------

  private call<T>(
    operation: string,
    kind: 'read' | 'write',
    options: CallOptions,
    attempt: (a: Attempt) => Promise<T>,
  ): Promise<T> {
    return callWithRetry(this.callContext, {
      operation,
      kind,
      deadlineMs: options.deadlineMs ?? this.deadlineMs,
      signal: options.signal,
      attempt,
    });
  }

  private fetchDeposit(
    name: string,
    version: number | undefined,
    options: CallOptions,
  ): Promise<DepositWire> {
    const path =
      depositPath(name) + (version === undefined ? '' : `?version=${encodeURIComponent(String(version))}`);
    return this.call('get', 'read', options, async (a) => {
      const res = await this.send(a, 'read', { method: 'GET', path });
      return parseDeposit(res.body, name, a.node.url, version);
    });
  }

  /** When no node could answer, an entry younger than maxStaleMs beats an error. */
  private serveStale(name: string, version: number | undefined, error: unknown): Deposit {
    // An integrity failure is an answer (the stored value is bad), not an outage: never masked.
    const stale =
      isTrusteeError(error) && UNREACHABLE_CODES.has(error.code) && !error.isIntegrityFailure
        ? this.cache.stale(name, version)
        : undefined;
    if (stale === undefined) throw error;
    this.emit('onCacheHit', { name, version, freshness: 'stale', ageMs: stale.ageMs });
    this.logger?.warn(
      { name, version, ageMs: stale.ageMs, code: (error as TrusteeError).code },
      'trustee sdk served a stale cached deposit',
    );
    return this.decodeDeposit(stale.deposit, 'stale-cache');
  }

  /** Sends one request to one node with hooks; non-2xx answers become TrusteeErrors. */
  private async send(
    a: Attempt,
    kind: RequestKind,
    request: Omit<HttpRequest, 'timeoutMs' | 'signal'>,
  ): Promise<HttpResponse> {
    const event = { node: a.node.url, method: request.method, path: request.path, kind };
    const started = Date.now();
    this.emit('onRequest', event);
    let res: HttpResponse;
    try {
      res = await sendRequest(a.node.agent, a.node.url, {
        ...request,
        timeoutMs: a.timeoutMs,
        signal: a.signal,
      });
    } catch (e) {
      const error = e as TrusteeError;
      this.emit('onRequestError', { ...event, error, durationMs: Date.now() - started });
      throw error;
    }
    this.emit('onResponse', { ...event, status: res.status, durationMs: Date.now() - started });
    if (res.status >= 200 && res.status < 300) return res;
    throw errorFromResponse(res.status, res.body, a.node.url, headerValue(res.headers, 'retry-after'));
  }

  private async probeActive(node: Endpoint, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return isNodeActive(node.agent, node.url, timeoutMs, signal);
  }

  private async endpointStatus(node: Endpoint, signal?: AbortSignal): Promise<EndpointStatus> {
    const started = Date.now();
    const base = { url: node.url, breaker: this.endpoints.breakerState(node) };
    let res: HttpResponse;
    try {
      res = await sendRequest(node.agent, node.url, {
        method: 'GET',
        path: '/v1/health',
        timeoutMs: this.timeoutMs,
        signal,
      });
    } catch (e) {
      const error = e as TrusteeError;
      return {
        ...base,
        reachable: false,
        latencyMs: Date.now() - started,
        error: { code: error.code, message: error.message },
      };
    }
    const latencyMs = Date.now() - started;
    let health: HealthWire | undefined;
    try {
      health = parseHealth(res.body, node.url);
    } catch (e) {
      const error = e as TrusteeError;
      return {
        ...base,
        reachable: true,
        httpStatus: res.status,
        latencyMs,
        error: { code: error.code, message: error.message },
      };
    }
    return { ...base, reachable: true, httpStatus: res.status, latencyMs, health };
  }

  private decodeDeposit(wire: DepositWire, source: Deposit['source']): Deposit {
    const stored = Buffer.from(wire.value, 'base64');
    const { value, encrypted } = this.decodeValue(wire.name, wire.version, stored);
    return {
      name: wire.name,
      version: wire.version,
      value,
      metadata: wire.metadata,
      createdAt: new Date(wire.createdAt),
      encrypted,
      source,
      text: (encoding: BufferEncoding = 'utf8') => value.toString(encoding),
    };
  }

  private decodeValue(name: string, version: number, stored: Buffer): { value: Buffer; encrypted: boolean } {
    if (this.encryption === 'none') return { value: stored, encrypted: false };
    if (isEnvelope(stored)) {
      if (this.dataKey === undefined) throw missingDataKey();
      return { value: decryptValue(this.dataKey, name, version, stored), encrypted: true };
    }
    // A non-envelope value in envelope mode could be a substitution by whoever controls the
    // server, so it is refused unless the caller said raw deposits are expected.
    if (this.acceptUnencrypted) return { value: stored, encrypted: false };
    throw new TrusteeError(
      'DECRYPT_FAILED',
      `cannot decrypt deposit ${name}: value is not an SDK envelope (stored raw? set acceptUnencrypted to read it)`,
      { details: { name } },
    );
  }
}

function resolveDataKey(options: TrusteeClientOptions): Buffer | undefined {
  const { dataKey } = options;
  if (dataKey === undefined) {
    if ((options.encryption ?? 'envelope') === 'envelope') throw missingDataKey();
    return undefined;
  }
  if (dataKey instanceof Uint8Array) return Buffer.from(dataKey);
  return unwrapDataKey(dataKey, options.key);
}

function missingDataKey(): TrusteeError {
  return new TrusteeError(
    'CONFIG_INVALID',
    "envelope encryption needs a dataKey (from the config file written by register), or set encryption: 'none'",
  );
}

function toBytes(value: DepositValue): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TrusteeError('INVALID_ARGUMENT', 'value must be a string, Buffer or Uint8Array');
}

function checkIdempotencyKey(key: string): string {
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      `idempotencyKey must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters without spaces`,
    );
  }
  return key;
}

function depositPath(name: string): string {
  return `/v1/deposits/${encodeURIComponent(name)}`;
}

/** The server's current version from a VERSION_CONFLICT answer, when it named one. */
function conflictVersion(e: unknown): number | undefined {
  if (!isTrusteeError(e) || e.code !== 'VERSION_CONFLICT') return undefined;
  const v = e.details.currentVersion;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** Attaches the write's key so the caller can retry a WRITE_IN_DOUBT with it later. */
function withIdempotencyKey(e: unknown, idempotencyKey: string): unknown {
  if (isTrusteeError(e)) e.details.idempotencyKey = idempotencyKey;
  return e;
}
