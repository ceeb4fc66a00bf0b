/**
 * The node-local deny list (issue 10, finding 2): clients revoked on a passive while its active
 * was unreachable, when no write can reach the replicated `clients` table. The node's server
 * refuses them with CLIENT_DISABLED until the replicated state says disabled, then drops the
 * entry (deny-list-watcher.ts). An entry only ever tightens access, so it is honoured whatever
 * the node's role, survives restarts, is kept in backups and may be copied with the confdir.
 *
 * `<confdir>/deny-list.json` (0600, replaced atomically):
 * `{ "entries": [{ "fingerprint": "4096R/…", "since": ISO time, "by": OS user }] }`.
 * Two processes change it (keytrustee-orgtool adds, keytrusteed removes): every
 * read-modify-write holds `deny-list.json.lock`, so neither loses the other's change.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod/v3';
import { writeSecretFile } from '../confdir/secret-files';
import { FINGERPRINT_RE } from '../crypto/fingerprint';

export const DENY_LIST_FILE = 'deny-list.json';

/** A lock older than this was left by a process that died while holding it (held for milliseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_RETRY_MS = 20;

const entrySchema = z.object({
  fingerprint: z.string().regex(FINGERPRINT_RE, 'not a client fingerprint'),
  /** When this node started refusing the client (ISO time). */
  since: z.string(),
  /** OS user who ran disable-client. */
  by: z.string(),
});
const fileSchema = z.object({ entries: z.array(entrySchema) });

export type DenyEntry = z.infer<typeof entrySchema>;

export function denyListPath(confdir: string): string {
  return join(confdir, DENY_LIST_FILE);
}

/** A missing file is an empty list; an unreadable or malformed one is an error (never guessed). */
export function readDenyList(confdir: string): DenyEntry[] {
  const file = denyListPath(confdir);
  if (!existsSync(file)) return [];
  try {
    return fileSchema.parse(JSON.parse(readFileSync(file, 'utf8'))).entries;
  } catch (e) {
    const why = e instanceof z.ZodError ? (e.issues[0]?.message ?? 'malformed') : (e as Error).message;
    throw new Error(`cannot read the deny list ${file}: ${why}; fix or remove it`, { cause: e });
  }
}

function writeDenyList(confdir: string, entries: DenyEntry[]): void {
  writeSecretFile(denyListPath(confdir), `${JSON.stringify({ entries }, null, 2)}\n`);
}

/** Took the lock, or (waitMs elapsed) another process holds it. */
function tryLock(lock: string): boolean {
  try {
    const fd = openSync(lock, 'wx', 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  try {
    if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
  } catch {
    // released meanwhile
  }
  return false;
}

/**
 * Runs `fn` holding the deny list's lock file (O_EXCL create; no flock in Node without a native
 * module). Waits up to `waitMs` for another holder; with 0 it gives up at once and returns
 * undefined (the server's pruning simply tries again on its next round).
 */
async function withDenyListLock<T>(confdir: string, waitMs: number, fn: () => T): Promise<T | undefined> {
  const lock = `${denyListPath(confdir)}.lock`;
  const deadline = Date.now() + waitMs;
  while (!tryLock(lock)) {
    if (Date.now() >= deadline) {
      if (waitMs === 0) return undefined;
      throw new Error(`the deny list is locked by another process (${lock}); try again`);
    }
    await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Adds `entry` unless its fingerprint is already listed; returns the entry in force. */
export async function addToDenyList(
  confdir: string,
  entry: DenyEntry,
): Promise<{ added: boolean; entry: DenyEntry }> {
  const out = await withDenyListLock(confdir, 5000, () => {
    const entries = readDenyList(confdir);
    const present = entries.find((e) => e.fingerprint === entry.fingerprint);
    if (present) return { added: false, entry: present };
    writeDenyList(confdir, [...entries, entrySchema.parse(entry)]);
    return { added: true, entry };
  });
  return out!;
}

/**
 * Removes the entries `drop` selects (re-read under the lock, so an entry added meanwhile is
 * judged too) and returns them; the file is rewritten only when something goes. With
 * `waitMs` 0 and the lock busy, removes nothing and returns undefined.
 */
export async function removeFromDenyList(
  confdir: string,
  drop: (e: DenyEntry) => boolean,
  waitMs = 5000,
): Promise<DenyEntry[] | undefined> {
  return withDenyListLock(confdir, waitMs, () => {
    const entries = readDenyList(confdir);
    const gone = entries.filter(drop);
    if (gone.length > 0)
      writeDenyList(
        confdir,
        entries.filter((e) => !gone.includes(e)),
      );
    return gone;
  });
}
