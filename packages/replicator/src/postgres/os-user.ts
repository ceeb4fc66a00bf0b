import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, statSync } from 'node:fs';
import { ReplicatorError } from '../errors';

/**
 * The service account, as in the original Key Trustee Server: PostgreSQL runs as it when Trustee
 * is started as root (PostgreSQL refuses root), it owns the confdir, and the runbook's
 * `sudo -u keytrustee …` and `su - keytrustee` commands run as it.
 */
export const DEFAULT_PG_OS_USER = 'keytrustee';

/** Login shell of a service account we create: the runbook does `su - keytrustee`. */
export const SERVICE_ACCOUNT_SHELL = '/bin/bash';

export interface RunAs {
  uid: number;
  gid: number;
  user: string;
  home: string;
  /** Name of the primary group (owning group of the database sockets). */
  group: string;
  /** Every group id of the account, primary first, then supplementary ones (as `id` lists them). */
  groups: number[];
}

/** Home of a service account we create: `/var/lib/<user>` (the original's `/var/lib/keytrustee`). */
export function serviceAccountHome(user: string): string {
  return `/var/lib/${user}`;
}

/** Parses `id USER` output: `uid=999(keytrustee) gid=995(keytrustee) groups=995(keytrustee),104(postgres)`. */
export function parseIdOutput(
  text: string,
): Pick<RunAs, 'uid' | 'gid' | 'user' | 'group' | 'groups'> | undefined {
  const m = /^uid=(\d+)\(([^)]*)\) gid=(\d+)\(([^)]*)\)(?: groups=(\S+))?/.exec(text.trim());
  if (!m) return undefined;
  const gid = Number(m[3]);
  const extra = (m[5] ?? '')
    .split(',')
    .map((g) => Number(/^(\d+)/.exec(g)?.[1]))
    .filter((g) => Number.isInteger(g) && g !== gid);
  return { uid: Number(m[1]), user: m[2], gid, group: m[4], groups: [gid, ...new Set(extra)] };
}

/**
 * Answers found, kept for a few seconds: one process (a CLI, the test runner, keytrusteed) asks
 * for the same account many times in a row (every PgInstance it builds), and each answer cost one
 * or two child processes (`getent`, `id`). Only found answers are kept; our own `usermod` forgets
 * the account it changed.
 */
const MEMO_MS = 5000;
const accountMemo = new Map<string, { at: number; value: RunAs }>();
const ownerMemo = new Map<number, { at: number; value: string }>();

function remembered<K, V>(
  memo: Map<K, { at: number; value: V }>,
  key: K,
  find: () => V | undefined,
): V | undefined {
  const kept = memo.get(key);
  if (kept && Date.now() - kept.at < MEMO_MS) return kept.value;
  const value = find();
  if (value === undefined) memo.delete(key);
  else memo.set(key, { at: Date.now(), value });
  return value;
}

/** The account by name (a copy: callers may change its group list). */
function lookupUser(user: string): RunAs | undefined {
  const found = remembered(accountMemo, user, () => lookupUserNow(user));
  return found && { ...found, groups: [...found.groups] };
}

function lookupUserNow(user: string): RunAs | undefined {
  try {
    const line = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
    const [name, , , , , home] = line.split(':');
    const ids = parseIdOutput(execFileSync('id', ['--', name], { encoding: 'utf8' }));
    return ids ? { ...ids, user: name, home } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Name of the account owning an existing data directory (its PG_VERSION file), when that is not
 * root: a node set up before the service account was `keytrustee` (the OS user was `trustee`)
 * keeps running as the account that owns its files.
 */
export function dataDirOwner(dataDir: string): string | undefined {
  try {
    const uid = statSync(`${dataDir.replace(/\/+$/, '')}/PG_VERSION`).uid;
    if (uid === 0) return undefined;
    return remembered(
      ownerMemo,
      uid,
      () => execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8' }).split(':')[0] || undefined,
    );
  } catch {
    return undefined;
  }
}

/** The account this process runs as (PostgreSQL runs as it when we are not root). */
export function currentAccount(): RunAs | undefined {
  try {
    const ids = parseIdOutput(execFileSync('id', [], { encoding: 'utf8' }));
    return ids ? { ...ids, home: process.env.HOME ?? '/tmp' } : undefined;
  } catch {
    return undefined;
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * When running as root, returns the unprivileged service account PostgreSQL must run as,
 * creating it if needed: a system user with its own group, a private home (`/var/lib/<user>`,
 * 0700, where its GnuPG keyring lives) and a login shell, but no password (root reaches it with
 * `su -` / `sudo -u`).
 * An existing account is reused as it is. Returns undefined when not root: PostgreSQL then runs
 * as the current user.
 */
export function ensurePgOsUser(user: string = DEFAULT_PG_OS_USER): RunAs | undefined {
  if (!isRoot()) return undefined;
  const found = lookupUser(user);
  if (found) return found;
  const home = serviceAccountHome(user);
  try {
    execFileSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--create-home',
        '--home-dir',
        home,
        '--shell',
        SERVICE_ACCOUNT_SHELL,
        user,
      ],
      { stdio: 'pipe' },
    );
  } catch (e) {
    // A concurrent process may have created it between the lookup and useradd.
    const raced = lookupUser(user);
    if (raced) return raced;
    throw new ReplicatorError(
      'OS_USER_FAILED',
      `could not create OS user "${user}" for PostgreSQL: ${String(e)}`,
      {
        cause: e,
      },
    );
  }
  const created = lookupUser(user);
  if (!created) throw new ReplicatorError('OS_USER_FAILED', `OS user "${user}" missing right after useradd`);
  // useradd leaves an existing directory as it is: the home must be the account's (~/.gnupg),
  // and private: backups and extracted dumps land in it by default.
  if (existsSync(created.home)) {
    if (statSync(created.home).uid !== created.uid) chownSync(created.home, created.uid, created.gid);
    chmodSync(created.home, 0o700);
  }
  return created;
}

/** The group whose members may create sockets in libpq's default directory (Debian: 2775 postgres:postgres). */
export const SOCKET_DIR_GROUP = 'postgres';

/**
 * True when an account (uid and all its group ids) may create files in a directory with this
 * owner and mode: write and search permission through the owner, group or other bits, as the
 * kernel checks them (the first class that matches decides).
 */
export function canCreateFilesIn(
  dir: { uid: number; gid: number; mode: number },
  account: { uid: number; groups: number[] },
): boolean {
  if (account.uid === 0) return true;
  const wx = (bits: number) => (bits & 0o3) === 0o3;
  if (dir.uid === account.uid) return wx(dir.mode >> 6);
  if (account.groups.includes(dir.gid)) return wx(dir.mode >> 3);
  return wx(dir.mode);
}

function groupName(gid: number): string | undefined {
  try {
    return execFileSync('getent', ['group', String(gid)], { encoding: 'utf8' }).split(':')[0] || undefined;
  } catch {
    return undefined;
  }
}

/** Blocks for `ms` (usermod is retried synchronously, like the rest of this module's I/O). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** `usermod -aG`, tolerating a concurrent caller holding the lock of /etc/group. */
function addToGroup(account: RunAs, group: string, gid: number): RunAs {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      execFileSync('usermod', ['-aG', group, account.user], { stdio: 'pipe' });
    } catch (e) {
      last = e;
    }
    accountMemo.delete(account.user);
    const now = lookupUser(account.user);
    if (now?.groups.includes(gid)) return now;
    sleepSync(200);
  }
  throw new Error(`usermod -aG ${group} ${account.user} failed: ${String(last)}`);
}

/**
 * Decides whether PostgreSQL, running as `account`, can keep a second socket in `dir` (libpq's
 * default, so `psql -p PORT` finds it without -h). As root, an account that may not create files
 * there joins the directory's group when that group is `postgres` (never any other, e.g. root's).
 * `canKeepGroups`: the postmaster is started with the account's supplementary groups (setpriv);
 * without it only the primary group counts. Returns the account (with its new group) and either
 * the directory or a one-line reason why there is no socket there.
 */
export function ensureSharedSocketAccess(
  account: RunAs,
  dir: string,
  opts: { asRoot: boolean; canKeepGroups: boolean },
): { account: RunAs; dir?: string; note?: string } {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return { account, note: `${dir} does not exist` };
  }
  if (!st.isDirectory()) return { account, note: `${dir} is not a directory` };
  const effective = (a: RunAs) => (opts.canKeepGroups ? a : { ...a, groups: [a.gid] });
  if (canCreateFilesIn(st, effective(account))) return { account, dir };
  const group = groupName(st.gid) ?? String(st.gid);
  const how = `${account.user} cannot create files in ${dir} (group ${group}, mode 0${(st.mode & 0o7777).toString(8)})`;
  if (!opts.asRoot) return { account, note: `${how}; add ${account.user} to group ${group}` };
  if (!opts.canKeepGroups)
    return { account, note: `${how}; setpriv (util-linux) is needed to keep group ${group}` };
  if (group !== SOCKET_DIR_GROUP || (st.mode & 0o030) !== 0o030) return { account, note: how };
  try {
    const joined = addToGroup(account, group, st.gid);
    return canCreateFilesIn(st, joined) ? { account: joined, dir } : { account: joined, note: how };
  } catch (e) {
    return { account, note: `${how}: ${(e as Error).message.split('\n')[0]}` };
  }
}
