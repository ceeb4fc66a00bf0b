/**
 * What a stopped data directory is, from `pg_controldata`: a primary that was shut down or
 * crashed, or a copy of a standby (`in archive recovery`), and on which timeline.
 * @see https://www.postgresql.org/docs/current/app-pgcontroldata.html
 */
import { join } from 'node:path';
import type { PgInstance } from './instance';
import { runPgTool } from './run';

export interface ControlData {
  /** `Database cluster state`: e.g. `shut down`, `in production`, `in archive recovery`, `shut down in recovery`. */
  state: string;
  /** `Latest checkpoint's TimeLineID`. */
  timeline: number | null;
}

/** Parses pg_controldata's output (pure, unit-tested). */
export function parseControlData(text: string): ControlData {
  const field = (name: string) =>
    new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\']/g, '\\$&')}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const tli = Number(field("Latest checkpoint's TimeLineID"));
  return {
    state: field('Database cluster state') ?? 'unknown',
    timeline: Number.isInteger(tli) ? tli : null,
  };
}

/** True for the states a standby (or a copy of one) leaves in pg_control. */
export function isRecoveryState(state: string): boolean {
  return /recovery/.test(state);
}

export async function readControlData(inst: PgInstance): Promise<ControlData> {
  const r = await runPgTool(join(inst.binDir, 'pg_controldata'), ['-D', inst.dataDir], {
    runAs: inst.runAs,
    timeoutMs: 30_000,
  });
  return parseControlData(r.stdout);
}
