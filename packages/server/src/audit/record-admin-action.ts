import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { connectNodeOwner } from '../db/node-db';
import { adminActor, appendLocalAudit, type AuditEntry } from './append-audit';
import { deriveAuditKey } from './audit-mac';

/**
 * Records an operator's action on this node (promote, restore, allow-single-node-writes) in the
 * audit trail. These run exactly when the pair cannot replicate, so the row commits locally
 * (appendLocalAudit) and reaches the passive with the WAL once one streams. The action has
 * already happened: a row that cannot be written is reported as a warning (returned), never
 * turned into a failure of the command.
 */
export async function recordAdminAction(
  confdir: string,
  command: string,
  entry: Omit<AuditEntry, 'who'>,
): Promise<string | undefined> {
  try {
    const conf = loadKeytrusteeConf(confdir);
    const key = deriveAuditKey(confPaths(confdir).masterKey);
    const client = await connectNodeOwner(conf, confdir);
    try {
      await appendLocalAudit(client, key, { ...entry, who: adminActor(command) });
    } finally {
      await client.end().catch(() => undefined);
    }
    return undefined;
  } catch (e) {
    return `warning: the audit row for ${command} was not written: ${(e as Error).message}`;
  }
}
