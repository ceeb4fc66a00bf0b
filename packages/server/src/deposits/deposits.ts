import type { PoolClient } from 'pg';
import { withClient } from '../db/pool';
import { addDepositUsage } from '../db/sql/deposit-usage';
import {
  countValueVersions,
  destroyValues,
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
import { quotaExceeded, versionsToPrune, type DepositQuotas } from './quotas';
import { encodeCursor, type ListParams } from './validate-deposit';

export interface DepositServices {
  write: WritePathOptions;
  keys: KeyHierarchy;
  quotas: DepositQuotas;
  /**
   * Called after a commit that erased values (destroy, or a PUT pruning old versions): the old
   * tuples stay in the table's pages until VACUUM (vacuum-after-destroy.ts).
   */
  onValuesErased?: () => void;
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
  action: 'deposit.put' | 'deposit.delete' | 'deposit.destroy';
}

/**
 * The row an Idempotency-Key produced answers this request: same name and same request digest.
 * A destroyed version lost its digest with its value (migration 0009); a retry naming the same
 * deposit gets the first answer (the version existed; its value is gone either way).
 */
function samePriorRequest(prior: DepositRow, req: WriteRequest): boolean {
  if (prior.name !== req.name) return false;
  if (prior.request_hash === null) return prior.destroyed_at !== null;
  return prior.request_hash.equals(req.hash);
}

function keyReused(): AppError {
  return new AppError('INVALID_REQUEST', 'this Idempotency-Key was already used for a different request');
}

/** What a write decided: a row to insert, or nothing to write (the answer is `version`). */
type VersionFields = Omit<
  Parameters<typeof insertDeposit>[1],
  'owner' | 'name' | 'idempotencyKey' | 'requestHash' | 'version'
>;
type Decision = VersionFields | { unchanged: number };

/** What a write's decision did besides the new version (told to writeVersion). */
interface WriteEffects {
  /** Versions whose values it erased (destroy, pruning). */
  erasedVersions: number;
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
  if (!samePriorRequest(prior, req)) throw keyReused();
  await runWriteBarrier(svc.write, ctl);
  return { name: prior.name, version: prior.version, replayed: true };
}

async function writeVersion(
  svc: DepositServices,
  req: WriteRequest,
  ctl: WriteControl,
  decide: (c: PoolClient, latest: DepositRow | undefined, effects: WriteEffects) => Promise<Decision>,
): Promise<WriteResult> {
  const effects: WriteEffects = { erasedVersions: 0 };
  const result = await writeVersionOnce(svc, req, ctl, effects, (c, latest) => decide(c, latest, effects));
  // Committed (both nodes): the erased values' old row versions can go now.
  if (effects.erasedVersions > 0 && !result.replayed) svc.onValuesErased?.();
  return result;
}

async function writeVersionOnce(
  svc: DepositServices,
  req: WriteRequest,
  ctl: WriteControl,
  effects: WriteEffects,
  decide: (c: PoolClient, latest: DepositRow | undefined) => Promise<Decision>,
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
            if (!samePriorRequest(prior, req)) throw keyReused();
            // The first attempt may still be unconfirmed on the passive (it ended WRITE_IN_DOUBT
            // while we waited for the lock): this transaction stores nothing, and the replay is
            // answered only after the passive has applied it (below, with no connection held).
            return { name: prior.name, version: prior.version, replayed: true };
          }
        }
        const fields = await decide(c, latest);
        // Nothing to change (a destroy of what is destroyed already): answered like a replay,
        // after the passive has applied everything this node committed — an earlier attempt
        // that ended WRITE_IN_DOUBT included.
        if ('unchanged' in fields) return { name: req.name, version: fields.unchanged, replayed: true };
        const version = (latest?.version ?? 0) + 1;
        await appendAudit(c, tx, {
          who: req.who,
          action: req.action,
          subject: req.name,
          subjectVersion: version,
        });
        if (req.action === 'deposit.put' && effects.erasedVersions > 0) {
          // The version quota's prune mode erased the oldest values in this same transaction.
          await appendAudit(c, tx, {
            who: req.who,
            action: 'deposit.prune',
            subject: req.name,
            subjectVersion: version,
            detail: `pruned ${effects.erasedVersions} oldest version(s)`,
          });
        }
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
  return writeVersion(svc, { ...args, hash, action: 'deposit.put' }, ctl, async (c, latest, effects) => {
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
    effects.erasedVersions = await chargePut(c, svc.quotas, { ...args, latest });
    const version = current + 1;
    const sealed = await svc.keys.seal(args.value, depositAad(args.owner, args.name, version));
    return {
      deleted: false,
      sealedValue: sealed.blob,
      keyId: sealed.keyId,
      metadata: args.metadata,
      valueBytes: args.value.length,
      destroyed: false,
    };
  });
}

/**
 * The quotas of a PUT, inside its transaction (after the name lock): the versions of this name
 * (pruning the oldest values in prune mode), then the client's counters (their row lock makes
 * the check exact). A refusal throws, and the rollback undoes the counters and any pruning.
 * Returns how many versions were pruned.
 */
async function chargePut(
  c: PoolClient,
  quotas: DepositQuotas,
  put: { owner: string; name: string; value: Buffer; latest: DepositRow | undefined },
): Promise<number> {
  const { owner, name, latest } = put;
  const existing = latest ? await countValueVersions(c, owner, name) : 0;
  const prune = versionsToPrune(existing, quotas);
  if (prune === 'refuse') {
    throw quotaExceeded(
      'versions',
      quotas.maxVersionsPerDeposit,
      `${name} already has ${existing} versions holding a value; destroy it (DELETE ?destroy=true) or ask the operator to enable pruning`,
    );
  }
  // Audited as deposit.prune by writeVersionOnce (effects.erasedVersions).
  const freed = prune > 0 ? await destroyValues(c, owner, name, prune) : { versions: 0, bytes: 0 };
  const newName = !latest || latest.deleted;
  const addedBytes = put.value.length - freed.bytes;
  const usage = await addDepositUsage(c, owner, { liveDeposits: newName ? 1 : 0, valueBytes: addedBytes });
  if (newName && usage.liveDeposits > quotas.maxDeposits) {
    throw quotaExceeded(
      'deposits',
      quotas.maxDeposits,
      `this client has ${usage.liveDeposits - 1} deposits already; delete some before creating ${name}`,
    );
  }
  if (addedBytes > 0 && usage.valueBytes > quotas.maxBytes) {
    throw quotaExceeded(
      'bytes',
      quotas.maxBytes,
      `this client stores ${usage.valueBytes - addedBytes} bytes of values; ${put.value.length} more would exceed the limit (deleted names keep their older versions until destroyed)`,
    );
  }
  return freed.versions;
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
  return writeVersion(svc, { ...args, hash, action: 'deposit.delete' }, ctl, async (c, latest) => {
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
    // The name stops counting; its older versions keep their values (and bytes) until destroyed.
    await addDepositUsage(c, args.owner, { liveDeposits: -1, valueBytes: 0 });
    return tombstone(false);
  });
}

function tombstone(destroyed: boolean): VersionFields {
  return { deleted: true, sealedValue: null, keyId: null, metadata: null, valueBytes: null, destroyed };
}

/**
 * DELETE ?destroy=true: erases the value (and metadata and request digest) of every version of
 * `name` in one write transaction, committed on both nodes, and records a tombstone version
 * stamped destroyed. Unknown (or another client's) name: NOT_FOUND. Destroyed already: nothing
 * to write, answered as success once the passive has applied every earlier commit.
 */
export async function destroyDeposit(
  svc: DepositServices,
  args: { owner: string; name: string; idempotencyKey: string | null; who: AuditActor },
  ctl: WriteControl = {},
): Promise<WriteResult> {
  const hash = await requestHash(svc.keys, ['DESTROY', args.name]);
  // The audit row (writeVersionOnce) is written with the tombstone, in this transaction.
  return writeVersion(svc, { ...args, hash, action: 'deposit.destroy' }, ctl, async (c, latest, effects) => {
    if (!latest) throw new AppError('NOT_FOUND', `no deposit named ${args.name}`);
    const gone = await destroyValues(c, args.owner, args.name, null);
    effects.erasedVersions = gone.versions;
    if (gone.versions === 0 && latest.deleted) return { unchanged: latest.version };
    await addDepositUsage(c, args.owner, {
      liveDeposits: latest.deleted ? 0 : -1,
      valueBytes: -gone.bytes,
    });
    return tombstone(true);
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
  // Only the owner reads its rows, so saying "destroyed" tells nobody else anything.
  if (row && row.destroyed_at !== null && !row.deleted) {
    throw new AppError('NOT_FOUND', `version ${row.version} of ${args.name} was destroyed`, {
      details: { destroyed: true },
    });
  }
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
