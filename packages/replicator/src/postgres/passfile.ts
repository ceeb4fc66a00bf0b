/**
 * The replication password lives in a libpq password file, never on a command line, in
 * postgresql.auto.conf or in a log.
 *
 * Location: `<parent of data dir>/<data dir name>.pgpass` (e.g. `node-b/db.pgpass`), mode 0600,
 * owned by the PostgreSQL OS user. Not inside the data directory, because pg_basebackup needs an
 * empty one and pg_rewind/basebackup would delete or copy it; not in the OS user's home, because
 * two local nodes share that user and one fixed file would mix their entries. The standby's
 * `primary_conninfo` names it with `passfile=`, so the walreceiver reads it on every reconnect.
 * @see https://www.postgresql.org/docs/current/libpq-pgpass.html
 */
import { chmodSync, chownSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { PgInstance } from './instance';

export interface PassfileEntry {
  host: string;
  port: number;
  /** `*` matches any; physical replication connections look up the database `replication`. */
  database?: string;
  user: string;
  password: string;
}

/** Where this instance's replication password file lives (see the module comment). */
export function passfilePath(inst: Pick<PgInstance, 'dataDir'>): string {
  return join(dirname(inst.dataDir), `${basename(inst.dataDir)}.pgpass`);
}

/** One `host:port:database:user:password` line; `:` and `\` inside fields are backslash-escaped. */
export function renderPassfileLine(e: PassfileEntry): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return [esc(e.host), String(e.port), esc(e.database ?? '*'), esc(e.user), esc(e.password)].join(':');
}

/**
 * Writes the password file (replacing it) readable only by the PostgreSQL OS user; libpq ignores
 * a file that group or others can read. Written beside and renamed so no reader sees half a file.
 */
export function writePassfile(inst: PgInstance, entries: PassfileEntry[]): string {
  const file = passfilePath(inst);
  const tmp = `${file}.tmp`;
  if (existsSync(tmp)) chmodSync(tmp, 0o600);
  writeFileSync(tmp, `${entries.map(renderPassfileLine).join('\n')}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  if (inst.runAs) chownSync(tmp, inst.runAs.uid, inst.runAs.gid);
  renameSync(tmp, file);
  return file;
}
