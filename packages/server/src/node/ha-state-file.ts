/**
 * Node-local HA facts that must survive a restart and are not replicated: this node's fence, the
 * operator's expiring single-node-write permission, and the promotions it went through. Kept in
 * `<confdir>/ha-state.json` (0600, written atomically); the server re-reads it on every poll, so a
 * `ktadmin` command takes effect within one poll period.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from '../confdir/secret-files';

export const HA_STATE_FILE = 'ha-state.json';

export interface PromotionRecord {
  at: string;
  fromTimeline: number;
  toTimeline: number;
  forced: boolean;
  /** OS user who ran the command. */
  by: string;
}

export interface HaState {
  /** Set when this node found its peer active on a higher timeline; removed by `ktadmin rejoin`. */
  fenced?: { peerTimeline: number; since: string; peer: string | null };
  /** Single-node writes allowed until this ISO time (operator decision, expires on its own). */
  singleNodeWrites?: { until: string; by: string; since: string };
  promotions?: PromotionRecord[];
}

export function haStatePath(confdir: string): string {
  return join(confdir, HA_STATE_FILE);
}

/** Reads the file; a missing file is an empty state, an unreadable one is an error (never guessed). */
export function readHaState(confdir: string): HaState {
  const file = haStatePath(confdir);
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as HaState;
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}; fix or remove it`, { cause: e });
  }
}

/** Applies `update` to the current state and writes the result atomically (0600). */
export function updateHaState(confdir: string, update: (s: HaState) => HaState): HaState {
  const next = update(readHaState(confdir));
  writeSecretFile(haStatePath(confdir), `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

/** Milliseconds since epoch until which single-node writes are allowed, or null. */
export function singleNodeWritesUntil(s: HaState): number | null {
  const t = s.singleNodeWrites ? Date.parse(s.singleNodeWrites.until) : NaN;
  return Number.isFinite(t) ? t : null;
}
