/**
 * Failures of the change journal. Not an HTTP error (the journal never answers clients): the
 * codes are stable so `ktadmin restore --journal` can print them and tests can match them.
 */
export type JournalErrorCode =
  /** Replay met a recorded gap after its starting point (allowGap not set). */
  | 'JOURNAL_GAP'
  /** A record in the middle of the journal fails authentication or framing. */
  | 'JOURNAL_CORRUPT'
  /** A segment was written with another key (another cluster's master key). */
  | 'JOURNAL_KEY_MISMATCH'
  /** A record could not be written, or applied during replay. */
  | 'JOURNAL_WRITE_FAILED'
  | 'JOURNAL_REPLAY_FAILED'
  /** Bad argument or configuration (e.g. a master key of the wrong size). */
  | 'JOURNAL_INVALID';

export class JournalError extends Error {
  readonly code: JournalErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(
    code: JournalErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'JournalError';
    this.code = code;
    this.details = opts.details;
  }
}
