import { Counter, Gauge, type Registry } from 'prom-client';

/** Audit trail series. Labels are actions and error codes of this code base, never names or values. */
export function createAuditMetrics(registry: Registry) {
  return {
    rowsChained: new Counter({
      name: 'trustee_audit_rows_total',
      help: 'Audit rows this node chained (writes, and aggregate rows of refusals), by action',
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    unchained: new Gauge({
      name: 'trustee_audit_unchained',
      help: 'Audit rows committed but not yet chained, as the active last saw them (normally 0 within 1 s)',
      registers: [registry],
    }),
    chainSeq: new Gauge({
      name: 'trustee_audit_chain_seq',
      help: 'Position of the last chained audit row; keep its history: a later verify finding a lower last position means rows were cut from the end',
      registers: [registry],
    }),
    invalidRows: new Gauge({
      name: 'trustee_audit_invalid_rows',
      help: 'Unchained audit rows whose MAC is wrong (inserted or changed in the database); the chainer leaves them out; run ktadmin audit verify',
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'trustee_audit_refusals_total',
      help: 'Refused registrations, authentication failures and refused writes counted for the audit trail, by action and error code',
      labelNames: ['action', 'result'] as const,
      registers: [registry],
    }),
    refusalsDropped: new Counter({
      name: 'trustee_audit_refusals_dropped_total',
      help: 'Counted refusals dropped before they could be written (held on a node that stayed unable to write for over an hour)',
      registers: [registry],
    }),
  };
}

export type AuditMetrics = ReturnType<typeof createAuditMetrics>;
