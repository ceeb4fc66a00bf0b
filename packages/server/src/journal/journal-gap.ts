/**
 * Plaintext side files of the journal directory, so "does the journal need a fresh backup?" is
 * answerable without the key (metrics, the backup job). They hold positions only, never data.
 *
 *   gap.json          the newest gap the consumer recorded (also a GAP record in the segments)
 *   last-backup.json  the newest backup position reported with recordJournalBackup
 *   gap-pending.json  a gap being opened (slot dropped/created, GAP record not yet written)
 *   journal.json      the PostgreSQL system identifier whose changes this journal holds
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { JournalError } from './journal-error';
import { comparePosition, type GapReason, type JournalGap, type JournalPosition } from './journal-record';

export const GAP_FILE = 'gap.json';
export const LAST_BACKUP_FILE = 'last-backup.json';
export const IDENTITY_FILE = 'journal.json';
/** Written before the slot is created or dropped, removed once the GAP record is durable. */
export const GAP_PENDING_FILE = 'gap-pending.json';

export type GapState = Omit<JournalGap, 'type' | 'lsn' | 'timeline'>;

export interface BackupPosition extends JournalPosition {
  /** When the backup was taken, ISO 8601. */
  at?: string;
  /** The backup file, for the operator. */
  file?: string;
}

/** Writes a small JSON file atomically and durably (0600, temp + fsync + rename). */
function syncDir(dir: string): void {
  const d = openSync(dir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

function writeJsonDurably(dir: string, name: string, value: unknown): void {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
  syncDir(dir);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Records the newest gap (called by the consumer right after its GAP record is durable). */
export function writeGapState(dir: string, gap: JournalGap): void {
  const state: GapState = {
    fromLsn: gap.fromLsn,
    fromTimeline: gap.fromTimeline,
    toLsn: gap.toLsn,
    toTimeline: gap.toTimeline,
    reason: gap.reason,
    at: gap.at,
  };
  writeJsonDurably(dir, GAP_FILE, state);
}

/**
 * Binds the directory to one database cluster: both nodes of a pair share the system identifier
 * (base backup, rewind and promotion keep it), but a cluster restored from a dump is new and
 * starts its LSNs over, which would interleave with the old records. Such a journal is refused.
 */
export function claimJournalDir(dir: string, systemIdentifier: string): void {
  const file = join(dir, IDENTITY_FILE);
  const current = readJson<{ systemIdentifier: string }>(file);
  if (!current) {
    writeJsonDurably(dir, IDENTITY_FILE, { systemIdentifier, createdAt: new Date().toISOString() });
    return;
  }
  if (current.systemIdentifier !== systemIdentifier)
    throw new JournalError(
      'JOURNAL_INVALID',
      `${dir} holds the journal of another PostgreSQL cluster (system identifier ${current.systemIdentifier}, ` +
        `this node's is ${systemIdentifier}, e.g. after a restore): keep it with its backups and set JOURNAL_DIR to a new directory`,
    );
}

/**
 * A crash between creating the slot and writing the GAP record must not lose the gap: the intent
 * is durable first, and the next start writes the GAP record if it finds the intent.
 */
export function markGapPending(dir: string, reason: GapReason): void {
  writeJsonDurably(dir, GAP_PENDING_FILE, { reason, at: new Date().toISOString() });
}

export function readGapPending(dir: string): GapReason | undefined {
  return readJson<{ reason: GapReason }>(join(dir, GAP_PENDING_FILE))?.reason;
}

export function clearGapPending(dir: string): void {
  rmSync(join(dir, GAP_PENDING_FILE), { force: true });
  syncDir(dir);
}

export function readGapState(dir: string): GapState | undefined {
  return readJson<GapState>(join(dir, GAP_FILE));
}

export function readLastBackup(dir: string): BackupPosition | undefined {
  return readJson<BackupPosition>(join(dir, LAST_BACKUP_FILE));
}

/**
 * Tells the journal a backup now covers everything up to `pos` (the WAL position read before its
 * dump, and its timeline). Keeps the newest position; call it after each successful backup.
 */
export function recordJournalBackup(dir: string, pos: BackupPosition): void {
  const current = readLastBackup(dir);
  if (current && comparePosition(current, pos) >= 0) return;
  writeJsonDurably(dir, LAST_BACKUP_FILE, { ...pos, at: pos.at ?? new Date().toISOString() });
}

/**
 * True while the journal has a gap no backup covers: restoring the last backup plus the journal
 * would lose the writes of the gap, so a fresh backup must be taken (metric `trustee_journal_gap`).
 */
export function journalNeedsFreshBackup(dir: string): boolean {
  const gap = readGapState(dir);
  if (!gap) return false;
  const backup = readLastBackup(dir);
  return !backup || comparePosition(backup, { timeline: gap.toTimeline, lsn: gap.toLsn }) < 0;
}
