/**
 * `disable-client` and `enable-client` (issue 10, finding 2). Disabling works during exactly the
 * incident where a key may be stolen: with both nodes up it is a normal two-node write; on an
 * active whose passive is down it commits on this node alone (the passive replays it when it
 * returns); on a passive whose active is unreachable it goes into the node-local deny list.
 * Enabling only ever goes through the normal two-node write.
 */
import type { PoolClient } from 'pg';
import { appendAudit, processActor, osUserName, type AuditActor } from '../audit/append-audit';
import { addToDenyList, denyListPath, removeFromDenyList, type DenyEntry } from '../auth/deny-list';
import { withClient } from '../db/pool';
import { selectClient, updateClientState } from '../db/sql/clients';
import { runWrite, type WritePathOptions, type WriteTx } from '../db/write-path';
import { AppError, toAppError } from '../errors';
import type { WriteMode } from '../node/decide';
import type { NodeState } from '../node/node-state';
import { decideRevocationPath } from './revocation-path';
import { setClientState } from './orgs';

export interface RevocationServices {
  write: WritePathOptions;
  /** This node's state; the revocation path is read off its decision. */
  state: NodeState;
  /** Holds the node-local deny list. */
  confdir: string;
}

export type RevocationOutcome =
  /** Committed by the normal write path: on both nodes (`sync`), or alone by design or operator decision. */
  | { path: 'write'; writeMode: WriteMode }
  /**
   * Committed on this active alone: the passive was not streaming (or did not confirm in time,
   * `unconfirmed`); it replays the commit when it streams again.
   */
  | { path: 'local-commit'; unconfirmed: boolean }
  /** This passive refuses the client through its deny list; the active has not been told. */
  | { path: 'deny-list'; added: boolean; file: string; entry: DenyEntry }
  /** Nothing to do: the (replicated) state already says disabled. */
  | { path: 'already-disabled' };

/** Revokes the client by the one path this node allows now (revocation-path.ts). */
export async function revokeClient(
  svc: RevocationServices,
  fingerprint: string,
  who: AuditActor = processActor(),
): Promise<RevocationOutcome> {
  for (let attempt = 0; ; attempt++) {
    const path = decideRevocationPath(svc.state.decide(), svc.state.peerObservation());
    if (path.kind === 'refused') throw new AppError(path.code, path.message);
    if (path.kind === 'deny-list') return denyOnThisNode(svc, fingerprint);
    try {
      return await disableInDatabase(svc, fingerprint, who);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      // A commit cut short while waiting for the passive is committed here: in force on this node.
      if (code === 'WRITE_IN_DOUBT' && (await isDisabledHere(svc, fingerprint))) {
        return { path: 'local-commit', unconfirmed: true };
      }
      // The passive went away between the decision and the commit: decide again on a fresh poll.
      if (attempt > 0 || (code !== 'PASSIVE_UNAVAILABLE' && code !== 'WRITE_IN_DOUBT')) throw e;
      await svc.state.poll();
    }
  }
}

/**
 * One transaction that changes only this client's state, through runWrite. Its gate re-reads the
 * decision: a local commit (`'single-node'`: synchronous_commit = local) is allowed for this
 * write alone, never for anything else.
 */
async function disableInDatabase(
  svc: RevocationServices,
  fingerprint: string,
  who: AuditActor,
): Promise<RevocationOutcome> {
  // How the gate let this write commit (set by the gate, read after the commit).
  const chosen: { mode: WriteMode | 'local-commit' } = { mode: 'sync' };
  const opts: WritePathOptions = {
    ...svc.write,
    gate: () => {
      const path = decideRevocationPath(svc.state.decide(), svc.state.peerObservation());
      if (path.kind === 'refused') throw new AppError(path.code, path.message);
      if (path.kind === 'deny-list') throw new AppError('NOT_ACTIVE', 'this node became passive; run again');
      chosen.mode = path.kind === 'local-commit' ? 'local-commit' : path.writeMode;
      return path.kind === 'local-commit' ? 'single-node' : path.writeMode;
    },
    // Not the operator's single-node-write mode: its metric and log line would misreport this write.
    onSingleNodeWrite: undefined,
    log: undefined,
  };
  const changed = await runWrite(opts, (c, tx) => disableRow(c, tx, fingerprint, who));
  if (!changed) return { path: 'already-disabled' };
  const { mode } = chosen;
  return mode === 'local-commit'
    ? { path: 'local-commit', unconfirmed: false }
    : { path: 'write', writeMode: mode };
}

/** False when the client was already disabled (nothing written, so nothing to wait for). */
async function disableRow(
  c: PoolClient,
  tx: WriteTx,
  fingerprint: string,
  who: AuditActor,
): Promise<boolean> {
  const existing = await selectClient(c, fingerprint);
  if (!existing) throw new AppError('NOT_FOUND', `no client with fingerprint ${fingerprint}`);
  if (existing.state === 'disabled') return false;
  await updateClientState(c, fingerprint, 'disabled');
  await appendAudit(c, tx, {
    who,
    action: 'client.disable',
    org: existing.org_name,
    subject: fingerprint,
    detail: `was ${existing.state}, now disabled`,
  });
  return true;
}

async function isDisabledHere(svc: RevocationServices, fingerprint: string): Promise<boolean> {
  try {
    const row = await withClient(svc.write.db.pool, (c) => selectClient(c, fingerprint));
    return row?.state === 'disabled';
  } catch {
    return false;
  }
}

/** Passive, active unreachable: the client must exist in the replicated state; then it is listed. */
async function denyOnThisNode(svc: RevocationServices, fingerprint: string): Promise<RevocationOutcome> {
  const row = await withClient(svc.write.db.pool, (c) => selectClient(c, fingerprint)).catch((e: unknown) => {
    throw toAppError(e);
  });
  if (!row) throw new AppError('NOT_FOUND', `no client with fingerprint ${fingerprint}`);
  if (row.state === 'disabled') return { path: 'already-disabled' };
  const { added, entry } = await addToDenyList(svc.confdir, {
    fingerprint,
    since: new Date().toISOString(),
    by: osUserName(),
  });
  return { path: 'deny-list', added, file: denyListPath(svc.confdir), entry };
}

/**
 * Enables the client with the normal two-node write (refused during an outage, as every write
 * but a revocation), then drops it from this node's deny list: the operator's cluster-wide
 * decision supersedes a local revocation. Returns whether an entry was dropped.
 */
export async function enableClient(
  svc: RevocationServices,
  fingerprint: string,
  who: AuditActor = processActor(),
): Promise<boolean> {
  await setClientState(svc, fingerprint, 'active', who);
  const gone = await removeFromDenyList(svc.confdir, (e) => e.fingerprint === fingerprint);
  return (gone?.length ?? 0) > 0;
}
