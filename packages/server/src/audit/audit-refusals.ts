import type { AuditAction, AuditEntry } from './append-audit';

/**
 * Refused registrations, authentication failures and refused writes are not writes: recording
 * each as a row would let anyone fill the disk and load the write path. They are counted in
 * memory instead, per one-minute window and per (action, result, actor, source, org), and the
 * active writes one aggregate row per key and window (audit-flusher.ts). A window holds at most
 * `maxKeysPerWindow` keys; further keys fold into one overflow key per (action, result) with
 * actor and source `*`. So at most maxKeysPerWindow + (actions × codes) rows a minute, however
 * hard someone tries. A passive cannot write: it keeps its windows (at most `maxWindows`, the
 * oldest dropped and counted) and writes them once it is the active.
 */
export interface Refusal {
  action: AuditAction;
  /** The stable error code answered. */
  result: string;
  /** Client fingerprint when known, else ''. */
  actor?: string;
  source?: string;
  org?: string | null;
}

export interface RefusalCounterOptions {
  /** Window length, ms; default 60 000. */
  windowMs?: number;
  /** Distinct keys per window before folding into the overflow key; default 100. */
  maxKeysPerWindow?: number;
  /** Windows held while they cannot be written (a passive, a failed flush); default 60. */
  maxWindows?: number;
  now?: () => number;
  /** Called on every count (metrics). */
  onCount?: (r: Refusal) => void;
}

interface Bucket {
  refusal: Refusal;
  count: number;
}

const OVERFLOW = '*';

export class RefusalCounter {
  /** Window start (ms) → key → bucket. */
  private windows = new Map<number, Map<string, Bucket>>();
  /** Refusals dropped because too many windows were held (a passive for over an hour). */
  dropped = 0;
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly maxWindows: number;
  private readonly now: () => number;
  private readonly onCount?: (r: Refusal) => void;

  constructor(opts: RefusalCounterOptions = {}) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxKeys = opts.maxKeysPerWindow ?? 100;
    this.maxWindows = opts.maxWindows ?? 60;
    this.now = opts.now ?? Date.now;
    this.onCount = opts.onCount;
  }

  /** Counts one refusal (O(1), in memory). */
  count(r: Refusal): void {
    this.onCount?.(r);
    const start = Math.floor(this.now() / this.windowMs) * this.windowMs;
    let window = this.windows.get(start);
    if (!window) {
      window = new Map();
      this.windows.set(start, window);
      this.trim();
    }
    const exact = {
      action: r.action,
      result: r.result,
      actor: r.actor ?? '',
      source: r.source ?? '',
      org: r.org ?? null,
    };
    let key = JSON.stringify(exact);
    let refusal: Refusal = exact;
    if (!window.has(key) && window.size >= this.maxKeys) {
      refusal = { action: r.action, result: r.result, actor: OVERFLOW, source: OVERFLOW, org: null };
      key = JSON.stringify(refusal);
    }
    const bucket = window.get(key);
    if (bucket) bucket.count++;
    else window.set(key, { refusal, count: 1 });
  }

  /**
   * Aggregate audit entries of the windows that have ended (and the current one with
   * `includeOpen`: at shutdown, or a test), removed from the counter.
   */
  takeClosed(includeOpen = false): AuditEntry[] {
    const current = Math.floor(this.now() / this.windowMs) * this.windowMs;
    const out: AuditEntry[] = [];
    for (const [start, window] of [...this.windows].sort((a, b) => a[0] - b[0])) {
      if (start >= current && !includeOpen) continue;
      this.windows.delete(start);
      for (const { refusal, count } of window.values()) out.push(this.entry(start, refusal, count));
    }
    return out;
  }

  /** Puts back what takeClosed returned when it could not be written (bounded like the rest). */
  putBack(entries: AuditEntry[]): void {
    for (const e of entries) {
      const start = (e.at as Date).getTime();
      let window = this.windows.get(start);
      if (!window) {
        window = new Map();
        this.windows.set(start, window);
      }
      const refusal: Refusal = {
        action: e.action,
        result: e.result as string,
        actor: e.who.name,
        source: e.who.source ?? '',
        org: e.org ?? null,
      };
      const key = JSON.stringify(refusal);
      const bucket = window.get(key);
      if (bucket) bucket.count += e.count ?? 1;
      else window.set(key, { refusal, count: e.count ?? 1 });
    }
    this.trim();
  }

  /** Refusals counted and not yet taken. */
  held(): number {
    let n = 0;
    for (const w of this.windows.values()) for (const b of w.values()) n += b.count;
    return n;
  }

  private trim(): void {
    const starts = [...this.windows.keys()].sort((a, b) => a - b);
    while (starts.length > this.maxWindows) {
      const start = starts.shift() as number;
      for (const b of this.windows.get(start)?.values() ?? []) this.dropped += b.count;
      this.windows.delete(start);
    }
  }

  private entry(start: number, r: Refusal, count: number): AuditEntry {
    return {
      who: { kind: 'client', name: r.actor || '-', source: r.source || null },
      action: r.action,
      result: r.result,
      org: r.org ?? null,
      count,
      at: new Date(start),
      detail: `refusals in ${this.windowMs / 1000} s`,
    };
  }
}
