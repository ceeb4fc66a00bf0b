import { AppError } from '../errors';

/** Per-client limits (keytrustee.conf QUOTA_*; defaults in config.ts). */
export interface DepositQuotas {
  /** Names whose latest version is not a tombstone (QUOTA_MAX_DEPOSITS). */
  maxDeposits: number;
  /** Versions of one name that still hold a value (QUOTA_MAX_VERSIONS_PER_DEPOSIT). */
  maxVersionsPerDeposit: number;
  /** true: a PUT beyond maxVersionsPerDeposit destroys the oldest values instead of refusing. */
  pruneOldestVersions: boolean;
  /** Bytes of every version still holding a value, as the client sent them (QUOTA_MAX_BYTES). */
  maxBytes: number;
}

/** Which limit refused: the label of trustee_quota_refusals_total{kind}. */
export type QuotaKind = 'deposits' | 'versions' | 'bytes' | 'clients';

export const QUOTA_KINDS: readonly QuotaKind[] = ['deposits', 'versions', 'bytes', 'clients'];

/** The keytrustee.conf setting behind each kind (named in the refusal). */
const QUOTA_SETTINGS: Record<QuotaKind, string> = {
  deposits: 'QUOTA_MAX_DEPOSITS',
  versions: 'QUOTA_MAX_VERSIONS_PER_DEPOSIT',
  bytes: 'QUOTA_MAX_BYTES',
  clients: 'QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG',
};

/**
 * QUOTA_EXCEEDED (429) naming the limit and this client's own figure, never anyone else's. No
 * Retry-After: waiting does not cure it (the SDK does not retry it either).
 */
export function quotaExceeded(kind: QuotaKind, limit: number, message: string): AppError {
  const setting = QUOTA_SETTINGS[kind];
  return new AppError('QUOTA_EXCEEDED', `${message} (${setting} = ${limit})`, {
    details: { quota: setting, limit },
  });
}

/** The quota kind of an error, when it is a quota refusal (for the metric). */
export function quotaKindOf(e: unknown): QuotaKind | undefined {
  if (!(e instanceof AppError) || e.code !== 'QUOTA_EXCEEDED') return undefined;
  return QUOTA_KINDS.find((k) => QUOTA_SETTINGS[k] === e.details?.quota);
}

/**
 * How many of the oldest value-holding versions a PUT must erase (prune mode) so that, with the
 * new one, `existing` stays within the limit; or 'refuse' when pruning is off. Pure.
 */
export function versionsToPrune(existing: number, quotas: DepositQuotas): number | 'refuse' {
  const excess = existing + 1 - quotas.maxVersionsPerDeposit;
  if (excess <= 0) return 0;
  return quotas.pruneOldestVersions ? excess : 'refuse';
}

/** The deposit quotas of a parsed keytrustee.conf. */
export function depositQuotasOf(conf: {
  QUOTA_MAX_DEPOSITS: number;
  QUOTA_MAX_VERSIONS_PER_DEPOSIT: number;
  QUOTA_PRUNE_OLDEST_VERSIONS: boolean;
  QUOTA_MAX_BYTES: number;
}): DepositQuotas {
  return {
    maxDeposits: conf.QUOTA_MAX_DEPOSITS,
    maxVersionsPerDeposit: conf.QUOTA_MAX_VERSIONS_PER_DEPOSIT,
    pruneOldestVersions: conf.QUOTA_PRUNE_OLDEST_VERSIONS,
    maxBytes: conf.QUOTA_MAX_BYTES,
  };
}
