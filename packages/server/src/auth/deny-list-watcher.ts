/**
 * The server's view of this node's deny list (deny-list.ts): requireClient asks it on every
 * request; the file is re-read when it changes (checked every 250 ms, so a revocation written by
 * keytrustee-orgtool is honoured within 1 s), and an entry is dropped once the replicated
 * `clients` table says the client is disabled (then the database refuses it on every node, and
 * a later enable-client on the active is not overridden by a stale local entry).
 */
import { statSync } from 'node:fs';
import type { Pool } from 'pg';
import { withClient } from '../db/pool';
import { selectDisabledFingerprints } from '../db/sql/clients';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { denyListPath, readDenyList, removeFromDenyList, type DenyEntry } from './deny-list';

export interface DenyListWatcherOptions {
  confdir: string;
  /** Reads the replicated clients table (the control pool: small queries, bounded by its timeout). */
  pool: Pool;
  log?: Logger;
  /** How often the file is checked for a change, in ms; default 250. */
  recheckMs?: number;
  /** How often listed clients are compared with the replicated state, in ms; default 1000. */
  pruneIntervalMs?: number;
  now?: () => number;
}

export class DenyListWatcher {
  private entries = new Map<string, DenyEntry>();
  /** inode:size:mtime of the file last read ('' = absent): a rename-replaced file always differs. */
  private signature = '';
  private checkedAt = Number.NEGATIVE_INFINITY;
  private error?: string;
  /** Fingerprints last reported as refused here but not (yet) disabled in the replicated state. */
  private localOnly = '';
  private timer?: NodeJS.Timeout;
  private pruning = false;
  private pruneError?: string;
  private readonly file: string;
  private readonly now: () => number;

  constructor(private readonly opts: DenyListWatcherOptions) {
    this.file = denyListPath(opts.confdir);
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.refresh(true);
    this.timer = setInterval(() => {
      // E.g. the confdir not writable: the entries stay (over-refusing, never under), said in the log.
      this.pruneOnce().then(
        () => (this.pruneError = undefined),
        (e: Error) => {
          if (this.pruneError !== e.message)
            this.opts.log?.warn({ err: e.message }, 'deny list not pruned; trying again every second');
          this.pruneError = e.message;
        },
      );
    }, this.opts.pruneIntervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /**
   * Whether this node refuses `fingerprint` through its deny list. An unreadable list fails
   * closed: the node cannot tell whom it must refuse, so it refuses every client (UNAVAILABLE)
   * until an operator fixes or removes the file.
   */
  isDenied(fingerprint: string): boolean {
    this.refresh();
    if (this.error !== undefined) {
      throw new AppError(
        'UNAVAILABLE',
        'this node cannot read its deny list, so it serves no client until an operator fixes it; use the other node',
        { retryAfterSec: 1 },
      );
    }
    return this.entries.has(fingerprint);
  }

  /** Number of listed clients (for logs and tests). */
  size(): number {
    this.refresh();
    return this.entries.size;
  }

  private refresh(force = false): void {
    const now = this.now();
    if (!force && now - this.checkedAt < (this.opts.recheckMs ?? 250)) return;
    this.checkedAt = now;
    let signature: string;
    try {
      const st = statSync(this.file);
      signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return this.fail(e as Error);
      signature = '';
    }
    if (signature === this.signature && this.error === undefined) return;
    try {
      const entries = readDenyList(this.opts.confdir);
      this.entries = new Map(entries.map((e) => [e.fingerprint, e]));
      this.signature = signature;
      if (this.error !== undefined) this.opts.log?.info({ file: this.file }, 'deny list readable again');
      this.error = undefined;
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(e: Error): void {
    if (this.error !== e.message) {
      this.opts.log?.error(
        { file: this.file, err: e.message },
        'deny list unreadable: refusing every client until it is fixed or removed',
      );
    }
    this.error = e.message;
    this.signature = '\0';
  }

  /**
   * Drops the entries whose client the replicated state now says is disabled, and returns them.
   * A database that does not answer leaves the list as it is (the next round tries again).
   */
  async pruneOnce(): Promise<DenyEntry[]> {
    this.refresh(true);
    if (this.pruning || this.error !== undefined || this.entries.size === 0) {
      this.reportLocalOnly([]);
      return [];
    }
    this.pruning = true;
    try {
      const listed = [...this.entries.values()];
      let disabled: Set<string>;
      try {
        disabled = new Set(
          await withClient(this.opts.pool, (c) =>
            selectDisabledFingerprints(
              c,
              listed.map((e) => e.fingerprint),
            ),
          ),
        );
      } catch (e) {
        this.opts.log?.debug({ err: (e as Error).message }, 'deny list not compared: database unavailable');
        return [];
      }
      // Only what was verified: an entry re-added meanwhile has another `since`, and is judged next round.
      const verified = new Set(
        listed.filter((e) => disabled.has(e.fingerprint)).map((e) => `${e.fingerprint} ${e.since}`),
      );
      const gone =
        verified.size === 0
          ? []
          : ((await removeFromDenyList(
              this.opts.confdir,
              (e) => verified.has(`${e.fingerprint} ${e.since}`),
              0,
            )) ?? []);
      for (const e of gone) {
        this.opts.log?.info(
          { client: e.fingerprint, since: e.since },
          'deny-list entry dropped: the replicated state says the client is disabled',
        );
      }
      this.refresh(true);
      this.reportLocalOnly(listed.filter((e) => !disabled.has(e.fingerprint)).map((e) => e.fingerprint));
      return gone;
    } finally {
      this.pruning = false;
    }
  }

  /** Says once per change which clients only this node refuses (the active still has to be told). */
  private reportLocalOnly(fingerprints: string[]): void {
    const key = fingerprints.join(',');
    if (key === this.localOnly) return;
    this.localOnly = key;
    if (fingerprints.length === 0) return;
    this.opts.log?.warn(
      { clients: fingerprints, file: this.file },
      'deny list: clients refused on this node only; run keytrustee-orgtool disable-client on the active to revoke them cluster-wide',
    );
  }
}
