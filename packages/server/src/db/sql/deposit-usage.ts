import type { ClientBase } from 'pg';

/** A client's counters after a change (migration 0009's deposit_usage). */
export interface DepositUsage {
  liveDeposits: number;
  valueBytes: number;
}

/**
 * Adds the deltas to the client's counters and returns the new values. The row stays locked until
 * the transaction ends: writes of one client take turns here, other clients are not held up.
 */
export async function addDepositUsage(
  c: ClientBase,
  owner: string,
  delta: { liveDeposits: number; valueBytes: number },
): Promise<DepositUsage> {
  const { rows } = await c.query<{ live_deposits: number; value_bytes: string }>({
    name: 'kt-add-deposit-usage',
    text: `insert into deposit_usage as u (owner_fp, live_deposits, value_bytes) values ($1, greatest($2::int, 0), greatest($3::bigint, 0))
           on conflict (owner_fp) do update
             set live_deposits = greatest(u.live_deposits + $2::int, 0), value_bytes = greatest(u.value_bytes + $3::bigint, 0)
           returning live_deposits, value_bytes::text`,
    values: [owner, delta.liveDeposits, delta.valueBytes],
  });
  return { liveDeposits: rows[0].live_deposits, valueBytes: Number(rows[0].value_bytes) };
}
