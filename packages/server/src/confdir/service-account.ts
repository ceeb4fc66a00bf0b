/**
 * The confdir belongs to the service account (`keytrustee`, PostgreSQL's OS user), as in the
 * original product: the runbook's `sudo -u keytrustee ktbackup` reads it and writes its backup
 * beside it. Root keeps every right; the modes stay as written (secrets 0600, directories 0700).
 */
import { lchownSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { ensurePgOsUser, type RunAs } from '@trustee/replicator';

/** Chowns a directory tree without following symbolic links. */
function chownTree(dir: string, account: RunAs): void {
  lchownSync(dir, account.uid, account.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, account);
    else lchownSync(p, account.uid, account.gid);
  }
}

/**
 * The directories strictly between `createdFrom` (the first one `mkdirSync(confdir, {recursive})`
 * created) and `confdir`: the parents this process created, e.g. `/var/lib/keytrustee`.
 * Directories that existed before are never listed (the confdir's parent may be `/tmp` or `/etc`).
 */
export function createdParents(confdir: string, createdFrom: string | undefined): string[] {
  if (!createdFrom) return [];
  const rel = relative(createdFrom, dirname(confdir));
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return [];
  const out: string[] = [];
  for (let d = dirname(confdir); d !== createdFrom; d = dirname(d)) out.push(d);
  return [...out, createdFrom];
}

/**
 * When running as root: gives the confdir tree, and the parents this process created above it
 * (`createdFrom`), to the service account. Returns the account, or undefined when not root (the
 * files are then already the current user's).
 */
export function giveConfdirToServiceAccount(
  confdir: string,
  createdFrom?: string,
  account: RunAs | undefined = ensurePgOsUser(),
): RunAs | undefined {
  if (!account) return undefined;
  for (const d of createdParents(confdir, createdFrom)) lchownSync(d, account.uid, account.gid);
  chownTree(confdir, account);
  return account;
}
