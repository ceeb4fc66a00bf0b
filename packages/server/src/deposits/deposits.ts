import type { PoolClient } from 'pg';
import { withClient } from '../db/pool';
import {
  insertDeposit,
  lockDepositName,
  selectDepositByIdempotencyKey,
  selectDepositPage,
  selectDepositVersion,
  selectLatestDeposit,
  selectPriorAndLatest,
  type DepositRow,
} from '../db/sql/deposits';
import { appendAudit, type AuditActor } from '../audit/append-audit';
import { runWrite, runWriteBarrier, type WriteControl, type WritePathOptions } from '../db/write-path';
import { AppError, hsmUnavailable, SQLSTATE, toAppError } from '../errors';
import { HsmUnavailableError, type KeyHierarchy } from '../keys/key-hierarchy';
import { encodeCursor, type ListParams } from './validate-deposit';

export interface DepositServices {
  write: WritePathOptions;
  keys: KeyHierarchy;
}

export interface WriteResult {
  name: string;
  version: number;
  /** True when an earlier request with the same Idempotency-Key produced this result. */
  replayed: boolean;
}

/** The row's owner, name and version are bound as associated data: a row moved elsewhere fails to open. */
export function depositAad(owner: string, name: string, version: number): Buffer {
  return Buffer.from(`trustee-deposit-v1\u0000${owner}\u0000${name}\u0000${version}`, 'utf8');
}

/** Length-prefixed parts (unambiguous), digested with the key hierarchy's keyed digest. */
function requestHash(keys: KeyHierarchy, parts: (string | Buffer | null)[]): Promise<Buffer> {
  const framed: Buffer[] = [];
  for (const p of parts) {
    const b = p === null ? Buffer.from([0]) : Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8');
    framed.push(Buffer.from(`${b.length}:`), b);
  }
  return keys.digest(Buffer.concat(framed));
}

interface WriteRequest {
  owner: string;
  name: string;
  idempotencyKey: string | null;
  hash: Buffer;
  /** Who asked (the audit row). */
  who: AuditActor;
  action: 'deposit.put' | 'deposit.delete';
}

/**
 * A retry carrying a known Idempotency-Key gets the first result — once the passive has applied
 * it, since the first attempt may have ended WRITE_IN_DOUBT. The wait (runWriteBarrier) writes
 * nothing and holds no connection, so replays neither queue behind each other nor drain the pool.
 */
async function replayIfKnown(
  svc: DepositServices,
  req: WriteRequest,
  ctl: WriteControl,
): Promise<WriteResult | undefined> {
  if (!req.idempotencyKey) return undefined;
  const key = req.idempotencyKey;
  const prior = await withClient(
    svc.write.db.pool,
    (c) => selectDepositByIdempotencyKey(c, req.owner, key),
    ctl.signal,
  ).catch((e: unknown) => {
    throw toAppError(e);
  });
  if (!prior) return undefined;
  if (prior.name !== req.name || !prior.request_hash?.equals(req.hash)) {
    throw new AppError('INVALID_REQUEST', 'this Idempotency-Key was already used for a different request');
  }
  await runWriteBarrier(svc.write, ctl);
  return { name: prior.name, version: prior.version, replayed: true };
}

async function writeVersion(
  svc: DepositServices,
  req: WriteRequest,
  ctl: WriteControl,
  decide: (
    c: PoolClient,
    latest: DepositRow | undefined,
  ) => Promise<
    Omit<Parameters<typeof insertDeposit>[1], 'owner' | 'name' | 'idempotencyKey' | 'requestHash' | 'version'>
  >,
): Promise<WriteResult> {
  // Before the transaction, so that replays never queue on the name lock (tests/issue-10-barrier).
  const replay = await replayIfKnown(svc, req, ctl);
  if (replay) return replay;
  try {
    const result = await runWrite(
      svc.write,
      async (c, tx): Promise<WriteResult> => {
        await lockDepositName(c, req.owner, req.name);
        // One round trip under the lock: the Idempotency-Key re-check (a concurrent retry may
        // have committed meanwhile) and the latest version.
        const { prior, latest } = await selectPriorAndLatest(c, req.owner, req.name, req.idempotencyKey);
        if (req.idempotencyKey) {
          if (prior) {
            if (prior.name !== req.name || !prior.request_hash?.equals(req.hash)) {
              throw new AppError(
                'INVALID_REQUEST',
                'this Idempotency-Key was already used for a different request',
              );
            }
            // The first attempt may still be unconfirmed on the passive (it ended WRITE_IN_DOUBT
            // while we waited for the lock): this transaction stores nothing, and the replay is
            // answered only after the passive has applied it (below, with no connection held).
            return { name: prior.name, version: prior.version, replayed: true };
          }
        }
        const fields = await decide(c, latest);
        const version = (latest?.version ?? 0) + 1;
        await appendAudit(c, tx, {
          who: req.who,
          action: req.action,
          subject: req.name,
          subjectVersion: version,
        });
        // The last statement before COMMIT: its RETURNING answers the standby check too.
        const inserted = await insertDeposit(c, {
          ...fields,
          owner: req.owner,
          name: req.name,
          version,
          idempotencyKey: req.idempotencyKey,
          requestHash: req.hash,
        });
        tx.standbyStreaming = inserted.standby_streaming;
        return { name: req.name, version, replayed: false };
      },
      ctl,
    );
    if (result.replayed) await runWriteBarrier(svc.write, ctl);
    return result;
  } catch (e) {
    // Same key, different name, raced past the lock: the unique index caught it.
    if (
      (e as AppError).cause &&
      ((e as AppError).cause as { code?: string }).code === SQLSTATE.UNIQUE_VIOLATION
    ) {
      const replay2 = await replayIfKnown(svc, req, ctl);
      if (replay2) return replay2;
    }
    throw e;
  }
}

export async function putDeposit(
  svc: DepositServices,
  args: {
    owner: string;
    name: string;
    value: Buffer;
    metadata: Record<string, unknown> | null;
    ifMatch: number | null;
    idempotencyKey: string | null;
    who: AuditActor;
  },
  ctl: WriteControl = {},
): Promise<WriteResult> {
  const hash = await requestHash(svc.keys, [
    'PUT',
    args.name,
    args.value,
    JSON.stringify(args.metadata),
    String(args.ifMatch),
  ]);
  return writeVersion(svc, { ...args, hash, action: 'deposit.put' }, ctl, async (_c, latest) => {
    const current = latest?.version ?? 0;
    if (args.ifMatch !== null && args.ifMatch !== current) {
      throw new AppError(
        'VERSION_CONFLICT',
        `If-Match ${args.ifMatch} does not match the current version ${current}`,
        {
          details: { currentVersion: current },
        },
      );
    }
    const version = current + 1;
    const sealed = await svc.keys.seal(args.value, depositAad(args.owner, args.name, version));
    return { deleted: false, sealedValue: sealed.blob, keyId: sealed.keyId, metadata: args.metadata };
  });
}

export async function deleteDeposit(
  svc: DepositServices,
  args: {
    owner: string;
    name: string;
    ifMatch: number | null;
    idempotencyKey: string | null;
    who: AuditActor;
  },
  ctl: WriteControl = {},
): Promise<WriteResult> {
  const hash = await requestHash(svc.keys, ['DELETE', args.name, String(args.ifMatch)]);
  return writeVersion(svc, { ...args, hash, action: 'deposit.delete' }, ctl, async (_c, latest) => {
    if (!latest || latest.deleted) throw new AppError('NOT_FOUND', `no deposit named ${args.name}`);
    if (args.ifMatch !== null && args.ifMatch !== latest.version) {
      throw new AppError(
        'VERSION_CONFLICT',
        `If-Match ${args.ifMatch} does not match the current version ${latest.version}`,
        {
          details: { currentVersion: latest.version },
        },
      );
    }
    return { deleted: true, sealedValue: null, keyId: null, metadata: null };
  });
}

export interface DepositView {
  name: string;
  version: number;
  value: string;
  metadata: Record<string, unknown> | null;
  createdAt: string;
}

export async function getDeposit(
  svc: DepositServices,
  args: { owner: string; name: string; version: number | null },
): Promise<DepositView> {
  const row = await withClient(svc.write.db.pool, (c) =>
    args.version === null
      ? selectLatestDeposit(c, args.owner, args.name)
      : selectDepositVersion(c, args.owner, args.name, args.version),
  ).catch((e: unknown) => {
    throw toAppError(e);
  });
  // Unknown, deleted, or another client's: the same 404, no hint that it exists.
  if (!row || row.deleted || !row.sealed_value || !row.key_id) {
    throw new AppError(
      'NOT_FOUND',
      `no deposit named ${args.name}${args.version ? ` with version ${args.version}` : ''}`,
    );
  }
  let value: Buffer;
  try {
    value = await svc.keys.open(row.key_id, row.sealed_value, depositAad(args.owner, row.name, row.version));
  } catch (e) {
    // The HSM is down and this value's data key is not cached: the node's problem, not the row's.
    if (e instanceof HsmUnavailableError) throw hsmUnavailable(e);
    // Tampered, moved or sealed with a key this node lacks: never a value, never a retry hint.
    throw new AppError(
      'UNAVAILABLE',
      'the stored value failed its integrity check or its key is unavailable; contact the operator',
      {
        cause: e,
        // One bad row, not a sick node: the SDK fails over without counting it against this node.
        details: { reason: 'INTEGRITY' },
      },
    );
  }
  return {
    name: row.name,
    version: row.version,
    value: value.toString('base64'),
    metadata: row.metadata,
    createdAt: row.created_at.toISOString(),
  };
}

export async function listDeposits(
  svc: DepositServices,
  owner: string,
  params: ListParams,
): Promise<{ items: { name: string; version: number; createdAt: string }[]; nextCursor: string | null }> {
  const rows = await withClient(svc.write.db.pool, (c) =>
    selectDepositPage(c, owner, params.prefix, params.after, params.limit + 1),
  ).catch((e: unknown) => {
    throw toAppError(e);
  });
  const page = rows.slice(0, params.limit);
  return {
    items: page.map((r) => ({ name: r.name, version: r.version, createdAt: r.created_at.toISOString() })),
    nextCursor: rows.length > params.limit ? encodeCursor(page[page.length - 1].name) : null,
  };
}
