/** Closed set of replicator failure codes; each message says what was found and what to do. */
export type ReplicatorErrorCode =
  | 'PG_BINARIES_MISSING'
  | 'PG_COMMAND_FAILED'
  | 'PG_START_FAILED'
  | 'PG_NOT_READY'
  | 'DATA_DIR_EXISTS'
  | 'DATA_DIR_INACCESSIBLE'
  | 'INITDB_TEMPLATE_MISMATCH'
  | 'OS_USER_FAILED'
  | 'PG_VERSION_UNSUPPORTED'
  | 'MIGRATION_FAILED'
  | 'REPLICATION_TIMEOUT'
  | 'REPLICATION_FAILED'
  | 'INVALID_ARGUMENT'
  | 'NOT_IN_RECOVERY'
  | 'PROMOTE_FAILED'
  | 'REWIND_FAILED'
  | 'REWIND_IMPOSSIBLE';

export class ReplicatorError extends Error {
  readonly code: ReplicatorErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(
    code: ReplicatorErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'ReplicatorError';
    this.code = code;
    this.details = opts.details;
  }
}
