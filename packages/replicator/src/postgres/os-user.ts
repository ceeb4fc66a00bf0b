import { execFileSync } from 'node:child_process';
import { ReplicatorError } from '../errors';

/** OS account PostgreSQL runs under when Trustee is started as root (PostgreSQL refuses root). */
export const DEFAULT_PG_OS_USER = 'trustee';

export interface RunAs {
  uid: number;
  gid: number;
  user: string;
  home: string;
}

function lookupUser(user: string): RunAs | undefined {
  try {
    const line = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
    const [name, , uid, gid, , home] = line.split(':');
    return { user: name, uid: Number(uid), gid: Number(gid), home };
  } catch {
    return undefined;
  }
}

/**
 * When running as root, returns the unprivileged account PostgreSQL must run as, creating it
 * (system user, no login shell) if needed. Returns undefined when not root: PostgreSQL then
 * runs as the current user.
 */
export function ensurePgOsUser(user: string = DEFAULT_PG_OS_USER): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const found = lookupUser(user);
  if (found) return found;
  try {
    execFileSync('useradd', ['--system', '--create-home', '--shell', '/usr/sbin/nologin', user], {
      stdio: 'pipe',
    });
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
  return created;
}
