import { LRUCache } from 'lru-cache';
import { MINUTE, SECOND } from './retry';
import type { CacheOptions, DepositWire } from './types';

export type { CacheOptions };

export const DEFAULT_CACHE: CacheOptions = {
  maxEntries: 1000,
  ttlMs: 5 * SECOND,
  serveStaleOnError: true,
  maxStaleMs: 15 * MINUTE,
};

interface CacheEntry {
  deposit: DepositWire;
  storedAtMs: number;
}

export interface CacheLookup {
  deposit: DepositWire;
  ageMs: number;
}

/**
 * LRU of deposit answers keyed by `name@version` plus a `name@latest` entry. Freshness is computed
 * here from an injected clock rather than with lru-cache's own TTL, because expired entries must
 * stay available for serve-stale-on-error.
 */
/** Taken before a read goes to a node; the answer is cached only if no own write of the name came between. */
export interface ReadTicket {
  readonly name: string;
  readonly writes: number;
}

export class DepositCache {
  private readonly lru: LRUCache<string, CacheEntry> | undefined;
  /** Names with reads in flight: how many, and how many own writes invalidated the name meanwhile. */
  private readonly inFlight = new Map<string, { readers: number; writes: number }>();

  constructor(
    private readonly options: CacheOptions = DEFAULT_CACHE,
    private readonly now: () => number = Date.now,
  ) {
    this.lru = options.maxEntries > 0 ? new LRUCache({ max: options.maxEntries }) : undefined;
  }

  /** Stores an answer under its version and, when it answered a latest read, under latest too. */
  store(deposit: DepositWire, servedAsLatest: boolean): void {
    if (this.lru === undefined) return;
    const entry = { deposit, storedAtMs: this.now() };
    this.lru.set(keyOf(deposit.name, deposit.version), entry);
    if (servedAsLatest) this.lru.set(keyOf(deposit.name, undefined), entry);
  }

  /** Starts a read of `name`; pass the ticket to `finishRead`, whatever the outcome. */
  beginRead(name: string): ReadTicket {
    const state = this.inFlight.get(name) ?? { readers: 0, writes: 0 };
    state.readers += 1;
    this.inFlight.set(name, state);
    return { name, writes: state.writes };
  }

  /**
   * Ends a read; stores its answer unless an own put/delete of the name was invalidated since the
   * read began (the answer may predate that write and must not outlive it in the cache).
   */
  finishRead(ticket: ReadTicket, deposit?: DepositWire, servedAsLatest = false): void {
    const state = this.inFlight.get(ticket.name);
    const overtaken = state !== undefined && state.writes !== ticket.writes;
    if (state !== undefined) {
      state.readers -= 1;
      if (state.readers <= 0) this.inFlight.delete(ticket.name);
    }
    if (deposit !== undefined && !overtaken) this.store(deposit, servedAsLatest);
  }

  /** An entry younger than `ttlMs`, or undefined. */
  fresh(name: string, version?: number): CacheLookup | undefined {
    // Strictly younger, so that ttlMs 0 means "never answer without asking a node".
    return this.lookup(name, version, this.options.ttlMs - 1);
  }

  /** An entry younger than `maxStaleMs` (for when no node answers), or undefined. */
  stale(name: string, version?: number): CacheLookup | undefined {
    if (!this.options.serveStaleOnError) return undefined;
    return this.lookup(name, version, this.options.maxStaleMs);
  }

  /** Drops the latest entry of `name` (after our own put: its version changed). */
  invalidateLatest(name: string): void {
    this.overtakeReads(name);
    this.lru?.delete(keyOf(name, undefined));
  }

  /** Drops every entry of `name` (after our own delete: no version may be served any more). */
  invalidateName(name: string): void {
    this.overtakeReads(name);
    if (this.lru === undefined) return;
    const prefix = `${name}@`;
    for (const key of [...this.lru.keys()]) if (key.startsWith(prefix)) this.lru.delete(key);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  private overtakeReads(name: string): void {
    const state = this.inFlight.get(name);
    if (state !== undefined) state.writes += 1;
  }

  private lookup(name: string, version: number | undefined, maxAgeMs: number): CacheLookup | undefined {
    const entry = this.lru?.get(keyOf(name, version));
    if (entry === undefined) return undefined;
    const ageMs = this.now() - entry.storedAtMs;
    return ageMs <= maxAgeMs ? { deposit: entry.deposit, ageMs } : undefined;
  }
}

// '@' cannot occur in a deposit name, so the keys never collide.
function keyOf(name: string, version: number | undefined): string {
  return `${name}@${version === undefined ? 'latest' : String(version)}`;
}
