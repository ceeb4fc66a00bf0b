import { auditChainMac, auditRowMac, macsEqual, type AuditFields } from './audit-mac';

/** A row as stored (audit_log), with its MACs and chain position. */
export interface StoredAuditRow extends AuditFields {
  id: string;
  rowMac: Buffer;
  /** Chain position, null until the chainer reached the row. */
  seq: number | null;
  chainMac: Buffer | null;
}

/**
 * What is wrong with a row: `changed` (its fields no longer match its MAC), `removed` (a gap in
 * the chain before it, or a link that does not follow from the row before: a row was deleted,
 * reordered or renumbered), `inserted` (a row with no valid MAC outside the chain, a duplicate
 * position, or a row left unchained longer than the chainer ever takes).
 */
export type AuditProblemKind = 'changed' | 'removed' | 'inserted';

export interface AuditProblem {
  kind: AuditProblemKind;
  id: string;
  seq: number | null;
  at: Date;
  message: string;
}

/**
 * Walks the chained rows in seq order (`checkChained`) and then the unchained ones
 * (`checkUnchained`), collecting problems. After a problem it carries on from the row's stored
 * link, so one deletion is reported once, not as every later row.
 */
export class AuditChainCheck {
  /** Rows chained and intact so far. */
  intact = 0;
  /** Unchained rows younger than the bound (the chainer has not reached them yet). */
  pending = 0;
  problems: AuditProblem[] = [];
  lastSeq = 0;
  lastAt: Date | undefined;
  private prev: Buffer | null = null;

  constructor(
    private readonly key: Buffer,
    /** Oldest an unchained row may be before it counts as inserted, ms. */
    private readonly maxUnchainedAgeMs: number,
  ) {}

  checkChained(row: StoredAuditRow): void {
    const seq = row.seq as number;
    const expected = this.lastSeq + 1;
    const problem = (kind: AuditProblemKind, message: string) =>
      this.problems.push({ kind, id: row.id, seq, at: row.at, message });
    const rowOk = macsEqual(auditRowMac(this.key, row), row.rowMac);
    if (seq < expected) {
      problem('inserted', `a second row at chain position ${seq}`);
      return;
    }
    if (!rowOk) problem('changed', 'its fields do not match its MAC (changed, or forged)');
    if (seq > expected) {
      problem(
        'removed',
        seq - expected === 1
          ? `chain position ${expected} is missing before it (a row was removed)`
          : `chain positions ${expected}..${seq - 1} are missing before it (rows were removed)`,
      );
    } else if (!macsEqual(auditChainMac(this.key, this.prev, seq, row.rowMac), row.chainMac)) {
      problem(
        'removed',
        'its chain link does not follow from the row before (a row was removed, reordered or renumbered, or the link altered)',
      );
    } else if (rowOk) {
      this.intact++;
    }
    this.prev = row.chainMac;
    this.lastSeq = seq;
    this.lastAt = row.at;
  }

  checkUnchained(row: StoredAuditRow, now: Date): void {
    const problem = (message: string) =>
      this.problems.push({ kind: 'inserted', id: row.id, seq: null, at: row.at, message });
    if (!macsEqual(auditRowMac(this.key, row), row.rowMac)) {
      problem('an unchained row whose fields do not match its MAC (inserted or changed)');
    } else if (now.getTime() - row.at.getTime() > this.maxUnchainedAgeMs) {
      problem(
        `unchained for longer than ${Math.round(this.maxUnchainedAgeMs / 1000)} s (inserted behind the chainer, or no chainer has run on the active)`,
      );
    } else {
      this.pending++;
    }
  }
}
